//! `beacon` (module index 10): each epoch's threshold BLS group key, from a Joint-Feldman DKG
//! run on chain by the previous epoch's committee.
//!
//! Owns [`Rounds`], [`Dealings`] and [`GroupKeys`]; types, calls and storage are declared in
//! [`logos_types::beacon`], which states the protocol. The cryptography is commonware's
//! `feldman_desmedt` (dealer logs checked and combined by its `observe`); this module decides
//! which logs count: those of the round's dealers, submitted in full from the dealer's own
//! consensus-key account before the epoch's last block, each signed by that dealer for this
//! chain and epoch (checked once, when complete). `benches/observe.rs` measures the epoch
//! change: 22.6 / 81.8 / 299 ms for 16 / 32 / 64 members (quadratic).
//!
//! # Invariant ([`Beacon::try_state`])
//! At most two rounds are kept (the current epoch's, concluded, and the next epoch's, open);
//! every stored dealing belongs to one of them and to one of its dealers, a complete one is not
//! empty and a rejected one keeps no bytes; every group key decodes, its public key is its
//! polynomial's constant term, and its epoch is one of the last [`GROUP_KEYS_KEPT_EPOCHS`].

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use commonware_codec::{Copying, Decode as _, DecodeExt as _, Encode as _};
use commonware_cryptography::bls12381::{
    dkg::feldman_desmedt::{observe, Failure, Info, Logs, Output, Reveal, SignedDealerLog},
    primitives::{
        ops,
        sharing::{Mode, ModeVersion},
        variant::{MinSig, Variant},
    },
};
use commonware_parallel::Sequential;
use commonware_utils::{ordered::Set, Faults as _, N3f1};
use logos_framework::{
    events, Context, DispatchResult, MapExt, Module, State, StateReader, TryStateResult, ValueExt,
    WriteSet,
};
use logos_primitives::{hash, parse_public_key, Address, ChainId, Hash, NodeKey, PublicKey};
use logos_staking::Staking;
use logos_types::{
    beacon::{
        round_namespace, CallHandler, Dealing, DealingKey, Dealings, Error, Event, GroupKey,
        GroupKeys, Round, Rounds, DEALING_PART_MAX_BYTES, GROUP_KEYS_KEPT_EPOCHS,
    },
    codec::{encode, BoundedString, BoundedVec},
    staking::{Committee, CurrentEpoch, Epoch, COMMITTEE_MAX},
    DispatchError, Genesis, StorageMap as _,
};
use rand_chacha::rand_core::SeedableRng as _;
use std::num::NonZeroU32;

/// The DKG's signature variant: signatures in G1 (48 bytes), public keys in G2 (96 bytes).
pub type Bls = MinSig;
/// The public output of an epoch's DKG.
pub type GroupOutput = Output<Bls, PublicKey>;
/// One epoch's DKG round, as commonware describes it.
pub type RoundInfo = Info<Bls, PublicKey>;
/// A dealer's signed log.
pub type SignedLog = SignedDealerLog<Bls, PublicKey>;

/// Domain of the seed of the batch verification when logs are combined.
const OBSERVE_SEED_DOMAIN: &[u8] = b"logos-beacon-observe-v1";
/// Namespace of the threshold signature of a height ([`verify_seed`]).
pub const SEED_NAMESPACE: &[u8] = b"logos-beacon-seed-v1";

/// The `beacon` module.
pub struct Beacon;

/// The commonware round of the DKG for `epoch` on `chain_id`: fresh (no previous key), the
/// epoch as round number, dealers and players as stored. Errors: a key that is not a valid
/// ed25519 point, or an empty set (`InvalidCommittee`).
pub fn round_info(chain_id: &ChainId, epoch: Epoch, round: &Round) -> Result<RoundInfo, Error> {
    Info::new::<N3f1>(
        &round_namespace(chain_id),
        epoch.get(),
        None,
        Mode::NonZeroCounter,
        Reveal::V1,
        key_set(&round.dealers)?,
        key_set(&round.players)?,
    )
    .map_err(|_| Error::InvalidCommittee)
}

/// Parses consensus keys into an ordered set.
fn key_set(keys: &[NodeKey]) -> Result<Set<PublicKey>, Error> {
    let keys = keys
        .iter()
        .map(NodeKey::public_key)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::InvalidCommittee)?;
    Set::try_from(keys).map_err(|_| Error::InvalidCommittee)
}

/// Decodes a signed dealer log of a round with `players` players (exactly its bytes); the
/// codec's error otherwise.
pub fn decode_log(bytes: &[u8], players: usize) -> Result<SignedLog, String> {
    let players = u32::try_from(players)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or("no players")?;
    SignedLog::decode_cfg(Copying(bytes), &players).map_err(|error| error.to_string())
}

/// The commonware log set of `epoch`'s round from its complete dealings: each decoded and its
/// dealer signature checked again against the round (a log that fails is left out). What the
/// chain combines at the epoch change, and what each player derives its share from.
pub fn round_logs(
    chain_id: &ChainId,
    epoch: Epoch,
    round: &Round,
    complete: &[Dealing],
) -> Result<Logs<Bls, PublicKey, N3f1>, Error> {
    let info = round_info(chain_id, epoch, round)?;
    let mut logs = Logs::<Bls, PublicKey, N3f1>::new(info.clone());
    for dealing in complete {
        // Each was checked when completed; one that fails now is left out.
        let Ok(signed) = decode_log(&dealing.bytes, round.players.len()) else {
            continue;
        };
        if let Some((signer, log)) = signed.check(&info) {
            logs.record(signer, log);
        }
    }
    Ok(logs)
}

/// The seed of the batch checks when `epoch`'s logs are combined: this block's randomness
/// (fixed after every log: none is taken in an epoch's last block) hashed with the chain, the
/// epoch and every log, so that no dealer knew its coefficients when it signed, whatever the
/// chain's randomness becomes.
fn observe_seed<R: StateReader>(ctx: &Context<'_, '_, R>, epoch: Epoch, logs: &[Dealing]) -> Hash {
    let logs: Vec<Hash> = logs.iter().map(|log| hash(&[&log.bytes[..]])).collect();
    let mut parts: Vec<&[u8]> = vec![
        OBSERVE_SEED_DOMAIN,
        ctx.block.chain_id.0.as_ref(),
        ctx.block.randomness.as_ref(),
    ];
    let epoch = epoch.get().to_be_bytes();
    parts.push(&epoch);
    parts.extend(logs.iter().map(|log| log.as_ref()));
    hash(&parts)
}

/// Decodes a stored group key's DKG output.
pub fn decode_output(key: &GroupKey) -> Result<GroupOutput, String> {
    let max = NonZeroU32::new(COMMITTEE_MAX as u32).ok_or("no committee")?;
    GroupOutput::decode_cfg(Copying(&key.output[..]), &(max, ModeVersion::v0()))
        .map_err(|error| error.to_string())
}

/// What the group signs for a height: the chain id and the height (big-endian).
pub fn seed_message(chain_id: &ChainId, height: u64) -> Vec<u8> {
    let mut message = chain_id.encode().to_vec();
    message.extend(height.to_be_bytes());
    message
}

/// Checks a threshold signature of `height` (48 bytes, G1) under an epoch's group key and
/// returns the seed it gives, `SHA-256(signature)`. `None` if it does not verify. The
/// signature is unique: whoever recovers it from a quorum of shares gets the same bytes.
pub fn verify_seed(
    output: &GroupOutput,
    chain_id: &ChainId,
    height: u64,
    signature: &[u8],
) -> Option<Hash> {
    let decoded = <Bls as Variant>::Signature::decode(Copying(signature)).ok()?;
    let message = seed_message(chain_id, height);
    ops::verify_message::<Bls>(output.public().public(), SEED_NAMESPACE, &message, &decoded)
        .ok()?;
    Some(hash(&[signature]))
}

/// Why a block's seed is refused ([`check_seed`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// The parent's state holds a group key for the child's epoch, and the block has no seed.
    #[error("epoch {epoch} has a group key: the block must carry the seed of height {height}")]
    Missing {
        /// The child's epoch.
        epoch: u64,
        /// The parent's height (what the seed signs).
        height: u64,
    },
    /// The block carries a seed though its epoch has no group key (epoch 0, `DkgFailed`).
    #[error("epoch {epoch} has no group key: the block must carry no seed")]
    Unexpected {
        /// The child's epoch.
        epoch: u64,
    },
    /// The seed is not the group's signature of the parent's height on this chain.
    #[error("the seed is not epoch {epoch}'s group signature of height {height}")]
    Invalid {
        /// The child's epoch.
        epoch: u64,
        /// The parent's height.
        height: u64,
    },
}

/// The chain's rule for a block's seed: a block whose parent's state holds a group key for the
/// epoch it is in (`key`, the [`GroupKeys`] entry of [`CurrentEpoch`] after the parent) must
/// carry that group's signature of the parent's height ([`verify_seed`]); a block without one
/// carries none (its randomness is then its parent's digest). No proposer has a choice: the
/// seed is unique, and its absence is allowed only where nobody could sign.
pub fn check_seed(
    key: Option<&GroupOutput>,
    epoch: u64,
    chain_id: &ChainId,
    parent_height: u64,
    seed: Option<&[u8]>,
) -> Result<(), SeedError> {
    match (key, seed) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(SeedError::Unexpected { epoch }),
        (Some(_), None) => Err(SeedError::Missing {
            epoch,
            height: parent_height,
        }),
        (Some(output), Some(seed)) => verify_seed(output, chain_id, parent_height, seed)
            .map(|_| ())
            .ok_or(SeedError::Invalid {
                epoch,
                height: parent_height,
            }),
    }
}

impl Beacon {
    /// The open round for `epoch`, or a new one from staking's committees of the epoch before
    /// (dealers) and of `epoch` (players), stored.
    async fn round<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        epoch: Epoch,
        current: Epoch,
    ) -> Result<Round, DispatchError> {
        if let Some(round) = Rounds::get(ctx.overlay, &epoch).await? {
            return Ok(round);
        }
        let dealers = committee(ctx, current).await?;
        let players = committee(ctx, epoch).await?;
        let round = round_of(&dealers, &players);
        Rounds::insert(ctx.overlay, &epoch, &round)?;
        Ok(round)
    }

    /// Combines the complete logs of `epoch`'s round into its group key, or reports why not
    /// (`DkgFailed`). The round and its complete logs stay through `epoch` (its players derive
    /// their shares from them); incomplete ones are removed.
    async fn conclude<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        epoch: Epoch,
    ) -> DispatchResult {
        let failed = |required: usize, found: u32| {
            events([Event::DkgFailed {
                epoch,
                required: if required == 0 {
                    0
                } else {
                    N3f1::quorum(required)
                },
                found,
            }])
        };
        let Some(round) = Rounds::get(ctx.overlay, &epoch).await? else {
            return Ok(failed(0, 0));
        };
        let mut complete = Vec::new();
        for dealer in round.dealers.iter() {
            let key = DealingKey {
                epoch,
                dealer: *dealer,
            };
            match Dealings::get(ctx.overlay, &key).await? {
                Some(dealing) if dealing.complete => complete.push(dealing),
                Some(_) => Dealings::remove(ctx.overlay, &key)?,
                None => {}
            }
        }
        let Ok(logs) = round_logs(&ctx.block.chain_id, epoch, &round, &complete) else {
            return Ok(failed(round.dealers.len(), 0));
        };
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(observe_seed(ctx, epoch, &complete).0);
        let event = match observe::<Bls, PublicKey, N3f1>(&mut rng, logs, &Sequential) {
            Ok(output) => {
                let key = GroupKey {
                    public_key: bytes(output.public().public().encode().to_vec())?,
                    output: bytes(output.encode().to_vec())?,
                };
                GroupKeys::insert(ctx.overlay, &epoch, &key)?;
                Event::GroupKeyFormed {
                    epoch,
                    dealers: count(output.dealers().len()),
                    players: count(output.players().len()),
                }
            }
            Err(Failure::InsufficientLogs {
                required, found, ..
            }) => Event::DkgFailed {
                epoch,
                required,
                found,
            },
        };
        Ok(events([event]))
    }

    /// Removes a round and its dealings: the previous epoch's, or one a failed hook left open.
    async fn clear<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        epoch: Epoch,
    ) -> Result<(), DispatchError> {
        let Some(round) = Rounds::get(ctx.overlay, &epoch).await? else {
            return Ok(());
        };
        for dealer in round.dealers.iter() {
            Dealings::remove(
                ctx.overlay,
                &DealingKey {
                    epoch,
                    dealer: *dealer,
                },
            )?;
        }
        Rounds::remove(ctx.overlay, &epoch)?;
        Ok(())
    }
}

/// `epoch`'s committee (empty if none is stored).
async fn committee<R: StateReader>(
    ctx: &mut Context<'_, '_, R>,
    epoch: Epoch,
) -> Result<Committee, DispatchError> {
    Ok(Staking::committee(ctx.overlay, epoch)
        .await?
        .unwrap_or_default())
}

/// The round dealt by committee `dealers` to committee `players`: their consensus keys, each
/// ascending.
pub fn round_of(dealers: &Committee, players: &Committee) -> Round {
    let keys = |committee: &Committee| {
        let mut keys: Vec<NodeKey> = committee
            .members
            .iter()
            .map(|member| member.consensus_key)
            .collect();
        keys.sort();
        BoundedVec::truncated(keys)
    };
    Round {
        dealers: keys(dealers),
        players: keys(players),
    }
}

/// Bytes into a bounded vector (the bounds fit every committee: see the crate's tests).
fn bytes<const MAX: usize>(bytes: Vec<u8>) -> Result<BoundedVec<u8, MAX>, DispatchError> {
    BoundedVec::try_from(bytes)
        .map_err(|_| logos_types::corruption("a DKG output exceeds its bound".to_string()))
}

/// A set's size as the events carry it.
fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for Beacon {
    async fn submit_dealing(
        ctx: &mut Context<'_, '_, R>,
        epoch: &Epoch,
        offset: &u32,
        part: &BoundedVec<u8, DEALING_PART_MAX_BYTES>,
        last: &bool,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let current = CurrentEpoch::get(ctx.overlay).await?;
        // Open for the next epoch until the block before the current one's last.
        let open = current.epoch.next() == Some(*epoch)
            && current
                .last_height()
                .is_some_and(|last| ctx.height() < last);
        if !open {
            return Err(Error::DealingClosed(*epoch).into());
        }
        let round = Self::round(ctx, *epoch, current.epoch).await?;
        let dealer = dealer_of(&round, &sender)?;
        let key = DealingKey {
            epoch: *epoch,
            dealer,
        };
        let stored = Dealings::get(ctx.overlay, &key).await?.unwrap_or_default();
        if stored.rejected {
            return Err(Error::DealingRejected.into());
        }
        if stored.complete {
            return Err(Error::DealingComplete.into());
        }
        // Offset 0 starts the log over.
        let mut dealing = if *offset == 0 {
            Dealing::default()
        } else {
            stored
        };
        let stored = count(dealing.bytes.len());
        if *offset != stored {
            return Err(Error::WrongOffset {
                offset: *offset,
                stored,
            }
            .into());
        }
        let mut appended = dealing.bytes.to_vec();
        appended.extend_from_slice(part);
        dealing.bytes = BoundedVec::try_from(appended).map_err(|_| Error::DealingTooLarge)?;
        if *last {
            // Checked once: a log that fails is rejected for the round, so nobody makes every
            // block decode it again (its bytes are dropped).
            if let Err(reason) = check_log(ctx, *epoch, &round, &dealer, &dealing.bytes) {
                let rejected = Dealing {
                    rejected: true,
                    ..Dealing::default()
                };
                Dealings::insert(ctx.overlay, &key, &rejected)?;
                return Ok(events([Event::DealingRejected {
                    epoch: *epoch,
                    dealer,
                    reason: BoundedString::truncated(&reason),
                }]));
            }
            dealing.complete = true;
        }
        Dealings::insert(ctx.overlay, &key, &dealing)?;
        Ok(events([Event::DealingStored {
            epoch: *epoch,
            dealer,
            size_bytes: count(dealing.bytes.len()),
            complete: dealing.complete,
        }]))
    }
}

/// The dealer of `round` whose consensus key's account is `sender` (each key hashed as it is
/// stored, not decompressed: any account may call, and pay for no curve arithmetic).
fn dealer_of(round: &Round, sender: &Address) -> Result<NodeKey, Error> {
    round
        .dealers
        .iter()
        .find(|dealer| Address::from_key_bytes(&dealer.0) == *sender)
        .copied()
        .ok_or(Error::NotADealer)
}

/// A complete log must decode and carry `dealer`'s signature for this chain, epoch, dealers
/// and players; otherwise why not.
fn check_log<R: StateReader>(
    ctx: &Context<'_, '_, R>,
    epoch: Epoch,
    round: &Round,
    dealer: &NodeKey,
    bytes: &[u8],
) -> Result<(), String> {
    let info = round_info(&ctx.block.chain_id, epoch, round).map_err(|error| error.to_string())?;
    let signed = decode_log(bytes, round.players.len())?;
    match signed.check(&info) {
        Some((signer, _)) if NodeKey::from_public_key(&signer) == *dealer => Ok(()),
        Some(_) => Err("signed by another dealer".into()),
        None => Err("the dealer's signature does not verify for this chain and round".into()),
    }
}

impl Module for Beacon {
    logos_framework::module_calls!(logos_types::beacon);

    /// When `staking` has just started an epoch `E` (its first height is the next block's):
    /// the rounds of `E - 1` (and of `E - 2`, had a hook failed) are removed with their logs
    /// and the key that aged out; `E`'s DKG is concluded; `E + 1`'s round is fixed from the
    /// committees of `E` and `E + 1` staking holds now.
    async fn on_block_end<R: StateReader>(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let current = CurrentEpoch::get(ctx.overlay).await?;
        if ctx.height().checked_add(1) != Some(current.start_height) {
            return Ok(Vec::new());
        }
        let epoch = current.epoch;
        for back in [1, 2] {
            if let Some(old) = epoch.get().checked_sub(back) {
                Self::clear(ctx, Epoch(old)).await?;
            }
        }
        if let Some(old) = epoch.get().checked_sub(GROUP_KEYS_KEPT_EPOCHS) {
            GroupKeys::remove(ctx.overlay, &Epoch(old))?;
        }
        let emitted = Self::conclude(ctx, epoch).await?;
        if let Some(next) = epoch.next() {
            Self::round(ctx, next, epoch).await?;
        }
        Ok(emitted)
    }

    /// Round 1 from the genesis validators (the committee of epochs 0 and 1).
    fn genesis(genesis: &Genesis) -> Result<WriteSet, String> {
        let mut keys = Vec::new();
        for validator in &genesis.validators {
            let key = parse_public_key(&validator.public_key)
                .map_err(|error| format!("validator key {}: {error}", validator.public_key))?;
            keys.push(NodeKey::from_public_key(&key));
        }
        keys.sort();
        let keys = BoundedVec::try_from(keys)
            .map_err(|_| "more genesis validators than a committee holds".to_string())?;
        let round = Round {
            dealers: keys.clone(),
            players: keys,
        };
        let mut writes = WriteSet::new();
        writes.insert(Rounds::key(&Epoch(1)), Some(encode(&round)));
        Ok(writes)
    }

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        let mut rounds = Vec::new();
        for entry in Rounds::iter_from(state) {
            rounds.push(entry.map_err(|error| error.to_string())?);
        }
        // The current epoch's (concluded) and the next epoch's (open).
        if rounds.len() > 2 {
            return Err(format!("{} rounds kept", rounds.len()));
        }
        for entry in Dealings::iter_from(state) {
            let (key, dealing) = entry.map_err(|error| error.to_string())?;
            let owned = rounds
                .iter()
                .any(|(epoch, round)| *epoch == key.epoch && round.dealers.contains(&key.dealer));
            if !owned {
                return Err(format!(
                    "dealing of {} for epoch {} outside the rounds kept",
                    key.dealer, key.epoch
                ));
            }
            if dealing.complete && dealing.bytes.is_empty() {
                return Err(format!("empty complete dealing of {}", key.dealer));
            }
            if dealing.rejected && (dealing.complete || !dealing.bytes.is_empty()) {
                return Err(format!("rejected dealing of {} kept", key.dealer));
            }
        }
        let current = CurrentEpoch::get_from(state)
            .map_err(|error| error.to_string())?
            .epoch
            .get();
        let mut keys = 0u64;
        for entry in GroupKeys::iter_from(state) {
            let (epoch, key) = entry.map_err(|error| error.to_string())?;
            let kept = epoch.get() <= current
                && epoch.get().saturating_add(GROUP_KEYS_KEPT_EPOCHS) > current;
            if !kept {
                return Err(format!(
                    "group key of epoch {epoch} kept in epoch {current}"
                ));
            }
            let output = decode_output(&key)?;
            if output.public().public().encode().as_ref() != &key.public_key[..] {
                return Err(format!(
                    "group key of epoch {epoch} is not its polynomial's"
                ));
            }
            keys = keys.saturating_add(1);
        }
        if keys > GROUP_KEYS_KEPT_EPOCHS {
            return Err(format!("{keys} group keys kept"));
        }
        Ok(())
    }
}
