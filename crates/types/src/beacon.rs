//! Types of `beacon` (module index 10): each epoch's threshold group key, formed by a
//! distributed key generation (DKG) run on chain by the previous epoch's committee.
//!
//! The randomness beacon signs each height with this key (a threshold BLS signature is unique:
//! no proposer can pick among several): block `h` carries the signature of `h − 1` and its
//! randomness is that signature's hash (`logos_beacon::check_seed` states the rule). This module
//! makes the key.
//!
//! # Protocol
//! The DKG is Joint-Feldman with Desmedt resharing (GJKR99, Desmedt97) as
//! `commonware_cryptography::bls12381::dkg::feldman_desmedt` implements it, on BLS12-381
//! with signatures in G1 (`MinSig`), and the N3f1 fault model (quorum `n - f`, `f = (n - 1) / 3`):
//! - **Round.** The DKG for epoch `E` runs during epoch `E - 1`: its dealers are the committee
//!   of `E - 1` (the validators running it), its players the committee of `E` (fixed when
//!   `E - 1` started). Both are taken from staking in the block that starts `E - 1` (genesis
//!   for epoch 1) and kept ([`Rounds`]): a member removed from `E`'s committee later
//!   (slashing) stays a player, and cannot void the dealers' signed logs. Every round is a
//!   fresh DKG (no previous key), bound to the chain by [`round_namespace`] and to the epoch by
//!   its round number.
//! - **Off chain.** Each dealer sends each player its private share over an encrypted p2p
//!   channel; each player acknowledges (an ed25519 signature over the dealer and its
//!   commitment); the dealer signs its log: the commitment, and for every player its
//!   acknowledgement or, failing one, the share itself (revealed).
//! - **On chain.** The dealer's node submits the signed log from the dealer's consensus-key
//!   account ([`Call::SubmitDealing`]; each part pays the fee there, about 52 parts for a
//!   256-member round), in parts of at most [`DEALING_PART_MAX_BYTES`] (a transaction holds
//!   1,024 bytes), each appended at its offset; the last part completes it and the log is
//!   decoded and its dealer signature checked against the round then, once: a log that fails
//!   is rejected for the round (`DealingRejected`), so a dealer cannot make every block decode
//!   its log again. Parts are accepted until the block before epoch `E - 1`'s last: the last
//!   block's randomness (its seed's hash, or its parent's digest in an epoch without a key),
//!   hashed with every log, seeds the batch
//!   verification, so no dealer knew its coefficients.
//! - **Key.** At the end of epoch `E - 1`'s last block (after `staking` started `E`), the
//!   complete logs are checked and combined (`observe`): at least a quorum of the dealers'
//!   logs must be valid (acknowledgements that verify, reveals that match). The result, the
//!   group's public polynomial with the dealers and players ([`GroupKey`]), is stored for
//!   epoch `E` (`GroupKeyFormed`); otherwise `E` has no key (`DkgFailed`, with how many
//!   logs were usable) and the chain's randomness there stays the parent digest. The round
//!   and its complete logs stay through epoch `E`, for each player to derive its private
//!   share from them, and are removed when `E + 1` starts. Keys are kept
//!   [`GROUP_KEYS_KEPT_EPOCHS`] epochs.
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`Rounds`] | [`Epoch`] (the epoch keyed) | [`Round`]: dealers and players (the current epoch's and the next one's) |
//! | 1 [`Dealings`] | [`DealingKey`] (epoch, dealer's consensus key) | [`Dealing`]: the log's bytes so far, complete or rejected |
//! | 2 [`GroupKeys`] | [`Epoch`] | [`GroupKey`] |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::SubmitDealing`] | a dealer's consensus-key account |

use crate::{
    calls,
    codec::{BoundedString, BoundedVec},
    errors, events, record,
    staking::{Epoch, COMMITTEE_MAX},
    storage,
};
use commonware_codec::Encode;
use logos_primitives::{ChainId, NodeKey};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "beacon";
/// Module index of `beacon`: storage prefix, call routing, error index.
pub const INDEX: u8 = 10;

/// Largest signed dealer log, bytes: a commitment of up to [`COMMITTEE_MAX`] G2 points (96
/// bytes each; a round of `n` players commits to `n - f`) and one acknowledgement (key and
/// signature, 97 bytes) per player: about 41 KiB for 256 members, 60 KiB at the codec's
/// bound.
pub const DEALER_LOG_MAX_BYTES: usize = 60 * 1024;
/// Largest part of a dealer log in one call, bytes (the call fits a 1,024-byte transaction).
pub const DEALING_PART_MAX_BYTES: usize = 800;
/// Largest encoded group key (public polynomial and three sets of up to [`COMMITTEE_MAX`]
/// keys), bytes.
pub const GROUP_KEY_MAX_BYTES: usize = 60 * 1024;
/// Epochs a group key is kept after its epoch starts (older ones are removed).
pub const GROUP_KEYS_KEPT_EPOCHS: u64 = 16;
/// Namespace of the DKG, followed by the chain id ([`round_namespace`]).
pub const DKG_NAMESPACE: &[u8] = b"logos-beacon-dkg-v1";

/// The DKG's namespace on `chain_id`: a log signed for one chain (a spin-off's parent, say)
/// is not valid on another.
pub fn round_namespace(chain_id: &ChainId) -> Vec<u8> {
    let mut namespace = DKG_NAMESPACE.to_vec();
    namespace.extend(chain_id.encode());
    namespace
}

/// The dealers and players of the DKG for one epoch, each ascending by key.
#[record]
#[derive(Default)]
pub struct Round {
    /// Consensus keys of the previous epoch's committee.
    pub dealers: BoundedVec<NodeKey, COMMITTEE_MAX>,
    /// Consensus keys of the epoch's committee.
    pub players: BoundedVec<NodeKey, COMMITTEE_MAX>,
}

/// Where a dealing is stored: the epoch keyed and the dealer.
#[record]
#[derive(Copy, PartialOrd, Ord, Hash)]
pub struct DealingKey {
    /// The epoch the DKG is for.
    pub epoch: Epoch,
    /// The dealer's consensus key.
    pub dealer: NodeKey,
}

/// A dealer's signed log as submitted so far.
#[record]
#[derive(Default)]
pub struct Dealing {
    /// The bytes received, in order.
    pub bytes: BoundedVec<u8, DEALER_LOG_MAX_BYTES>,
    /// Whether the last part arrived (the log decoded and its signature verified).
    pub complete: bool,
    /// Whether the last part arrived and the log failed its check (no more parts this round).
    pub rejected: bool,
}

/// An epoch's group key: the DKG's public output.
#[record]
pub struct GroupKey {
    /// The group public key (the polynomial's constant term, a G2 point).
    pub public_key: BoundedVec<u8, 96>,
    /// The encoded `feldman_desmedt::Output` (public polynomial, dealers, players, reveals).
    pub output: BoundedVec<u8, GROUP_KEY_MAX_BYTES>,
}

/// Calls of `beacon`.
#[calls]
pub enum Call {
    /// Append a part of a dealer's signed log for the DKG of `epoch` (the next epoch).
    #[index(0)]
    SubmitDealing {
        /// The epoch the DKG is for.
        epoch: Epoch,
        /// Where the part goes: the bytes stored so far (0 starts the log over).
        offset: u32,
        /// The part.
        part: BoundedVec<u8, DEALING_PART_MAX_BYTES>,
        /// Whether this is the last part.
        last: bool,
    },
}

/// Events of `beacon`.
#[events]
pub enum Event {
    /// A part of a dealer's log was stored.
    DealingStored {
        /// The epoch the DKG is for.
        epoch: Epoch,
        /// The dealer.
        dealer: NodeKey,
        /// Bytes stored so far.
        size_bytes: u32,
        /// Whether the log is complete (and its signature verified).
        complete: bool,
    },
    /// A dealer's complete log failed its check: it takes no part in the round.
    DealingRejected {
        /// The epoch the DKG is for.
        epoch: Epoch,
        /// The dealer.
        dealer: NodeKey,
        /// Why.
        reason: BoundedString<96>,
    },
    /// An epoch's group key was formed.
    GroupKeyFormed {
        /// The epoch.
        epoch: Epoch,
        /// Dealers whose logs were combined.
        dealers: u32,
        /// Players holding a share.
        players: u32,
    },
    /// An epoch's DKG failed: the epoch has no group key.
    DkgFailed {
        /// The epoch.
        epoch: Epoch,
        /// Usable logs needed.
        required: u32,
        /// Usable logs found.
        found: u32,
    },
}

/// Errors of `beacon`.
#[errors]
pub enum Error {
    /// Dealings are taken only for the next epoch, until the block before the current
    /// epoch's last.
    #[index(0)]
    #[error("dealings for epoch {0} are not taken now")]
    DealingClosed(Epoch),
    /// The sender is not the account of a dealer's consensus key.
    #[index(1)]
    #[error("the sender is not a dealer of this round")]
    NotADealer,
    /// The part does not start where the stored bytes end.
    #[index(2)]
    #[error("part at offset {offset}, but {stored} bytes are stored")]
    WrongOffset {
        /// The part's offset.
        offset: u32,
        /// Bytes stored.
        stored: u32,
    },
    /// The log would exceed [`DEALER_LOG_MAX_BYTES`].
    #[index(3)]
    #[error("the dealing exceeds {DEALER_LOG_MAX_BYTES} bytes")]
    DealingTooLarge,
    /// The dealer's log is complete already.
    #[index(4)]
    #[error("the dealing is complete")]
    DealingComplete,
    /// The dealer's log was rejected this round.
    #[index(5)]
    #[error("the dealing was rejected")]
    DealingRejected,
    /// A committee's key is not a valid ed25519 point.
    #[index(6)]
    #[error("invalid committee key")]
    InvalidCommittee,
}

storage! {
    module = INDEX;
    /// The DKG rounds of the current epoch (concluded) and of the next (open; fixed when the
    /// current epoch started).
    pub Rounds: map(0) Epoch => Round;
    /// Dealers' logs of the rounds.
    pub Dealings: map(1) DealingKey => Dealing;
    /// Each epoch's group key, for the last [`GROUP_KEYS_KEPT_EPOCHS`] epochs.
    pub GroupKeys: map(2) Epoch => GroupKey;
}
