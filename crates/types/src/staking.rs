//! Types of `staking` (module index 7): bonded stake, validator intents, nominations, epochs
//! and the committee elected for each epoch.
//!
//! # Protocol
//! - **Bonding.** An account bonds free tokens (reserved through `balances`) into its
//!   [`Ledger`]'s `active` stake. Unbonding moves active stake into an unlocking chunk that
//!   matures `unbonding_blocks` later; until then it can be rebonded, after that withdrawn.
//!   Only active stake counts: for elections, for governance votes, for exposure.
//! - **Intents.** A bonded account either declares itself a validator candidate ([`Validator`]:
//!   consensus key proven by the key's signature over [`intent_message`], p2p address,
//!   commission in permille) or nominates up to [`NOMINATIONS_MAX`] candidates; `Chill` drops
//!   either intent.
//! - **Epochs.** Epoch 0 starts at height 1; an epoch lasts `epoch_length_blocks` as set when it
//!   started ([`EpochInfo`]). At the end of an epoch's last block the next one starts, and the
//!   committee of the epoch *after* it is fixed: every node knows a committee a full epoch
//!   before it serves. Genesis fixes epochs 0 and 1 to the genesis validators. Each epoch's
//!   committee runs that epoch's consensus (`logos_node::orchestrator`).
//! - **Election.** While `elections` is off (proof of authority, a genesis' default) each
//!   committee carries the previous one forward. With it on, the committee is elected by
//!   sequential Phragmén (Phragmén 1895; Brill, Freeman, Janson, Lackner, "Phragmén's voting
//!   methods and justified representation", AAAI 2017) from the candidates' self-bonds and
//!   their nominators' active stake, in integer arithmetic ([`crate`] users: see
//!   `logos_staking::elect`); a candidate's backing is its self-bond plus an equal share of
//!   each of its nominators' stake split among the nominator's elected targets (all of them,
//!   fixed in [`Exposures`] at the election; a carried-forward committee carries none). An
//!   election
//!   with fewer than [`COMMITTEE_MIN`] electable candidates keeps the previous committee
//!   (`ElectionFailed`): a committee never shrinks below a BFT quorum of 4.
//! - **Slashing.** Anyone may report a fault simplex attributes to one voter (two conflicting
//!   notarize or finalize votes, or a nullify and a finalize, in one view): the two signed
//!   votes are verified in the state transition against the committee of their epoch, with
//!   the chain's consensus namespace. The offender loses `equivocation_slash_percent` of its
//!   bonded stake (active, then unlocking, newest first), and each nominator of its exposure
//!   in that epoch ([`Exposures`], fixed at the election: chilling later does not escape it,
//!   nominating later does not pay for it) as much of that exposure; the reporter earns
//!   `reporter_reward_percent` of the offender's own slash only (reporting oneself never
//!   pays), the treasury the rest. The offender is chilled, dropped from every nomination,
//!   removed from the next committee if that leaves at least [`COMMITTEE_MIN`] members, and
//!   disqualified for [`DISQUALIFIED_EPOCHS`] epochs (not declared, not elected, not paid);
//!   it is punished once per disqualification: a fault proven meanwhile is recorded
//!   (`OffenceNoted`) and never punished later. A candidate left below `min_validator_bond`
//!   or a nominator left with nothing is chilled. Exposures are kept [`EXPOSURE_EPOCHS`]
//!   epochs. The treasury cannot stake.
//! - **Rewards.** When an epoch ends its committee shares `epoch_reward` from the treasury
//!   (at most what the treasury holds): each member's part is proportional to its backing
//!   (equal parts when nobody has backing, under proof of authority), reduced in proportion to
//!   the leader turns it missed (blocks proposed with its consensus key: `min(produced,
//!   expected) / expected` with `expected` = epoch
//!   length / committee size: an offline or skipped leader proposes fewer blocks) and to the
//!   votes it missed (`voted / samples`, below); what is
//!   withheld stays in the treasury. Of a member's part it keeps its commission, and the rest
//!   is split between its self-bond and its nominators' exposure pro rata (floor; the
//!   remainder to the member).
//! - **Missed votes.** The chain samples blocks: the block before each height that is a
//!   multiple of the interval (epoch length / [`VOTE_SAMPLES_PER_EPOCH`], at least
//!   [`VOTE_SAMPLE_INTERVAL_MIN_BLOCKS`]) becomes an open [`VoteSample`] when its child
//!   executes. For [`VOTE_SAMPLE_WINDOW_BLOCKS`] blocks anyone may record the current
//!   committee's finalize votes for it ([`Call::RecordVotes`]): a certificate, or one member's
//!   vote that the certificates recorded so far lack, so no submitter can leave a member out.
//!   Each signature is verified on its own (no batch: its randomness would be public here).
//!   A sample opens only if its window ends within the epoch. A closed sample with any vote
//!   counts in [`Votes`]. At the epoch's end each member's reward is multiplied by the samples
//!   it signed over the samples counted (all of it when none was counted). Validators' nodes
//!   record the votes their engines sent.
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`Ledgers`] | [`Address`] | [`Ledger`] |
//! | 1 [`Validators`] | [`Address`] | [`Validator`] (candidates) |
//! | 2 [`ValidatorList`] | | candidates, ascending |
//! | 3 [`Nominations`] | [`Address`] | the nominator's targets, ascending |
//! | 4 [`NominatorList`] | | nominators, ascending |
//! | 5 [`Committees`] | [`Epoch`] | [`Committee`] |
//! | 6 [`CurrentEpoch`] | | [`EpochInfo`] |
//! | 7 [`TotalActive`] | | [`Amount`]: sum of all ledgers' active stake |
//! | 8 [`Config`] | | [`StakingConfig`] |
//! | 9 [`KeyOwners`] | [`NodeKey`] | the candidate that declared the consensus key |
//! | 10 [`Offences`] | [`Offence`] | height of the report (each offence slashed once) |
//! | 11 [`Disqualified`] | [`Address`] | first epoch a slashed validator may validate again |
//! | 12 [`Produced`] | | blocks each author proposed in the current epoch |
//! | 13 [`Exposures`] | [`ExposureKey`] (epoch, member) | its nominators' stake, largest first |
//! | 14 [`OpenSamples`] | | vote samples taking records |
//! | 15 [`Votes`] | | the current epoch's closed samples and who signed them |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::Bond`] | any account |
//! | 1 | [`Call::Unbond`] | the ledger's account |
//! | 2 | [`Call::Rebond`] | the ledger's account |
//! | 3 | [`Call::WithdrawUnbonded`] | the ledger's account |
//! | 4 | [`Call::Validate`] | a bonded account; signed by the consensus key |
//! | 5 | [`Call::Nominate`] | a bonded account |
//! | 6 | [`Call::Chill`] | a candidate or nominator |
//! | 7 | [`Call::SetConfig`] | privileged (governance) |
//! | 8 | [`Call::ReportEquivocation`] | anyone (the reporter is rewarded) |
//! | 9 | [`Call::SetElections`] | privileged (governance) |
//! | 10 | [`Call::RecordVotes`] | anyone |

use crate::{calls, codec::BoundedVec, errors, events, peers::P2pAddress, record, storage};
use commonware_codec::Encode;
use commonware_cryptography::Signer;
use logos_primitives::{Address, Amount, ChainId, KeySignature, NodeKey, PrivateKey};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "staking";
/// Module index of `staking`: storage prefix, call routing, error index.
pub const INDEX: u8 = 7;

/// Largest committee (simplex participants of one epoch; as many as a genesis may list).
pub const COMMITTEE_MAX: usize = crate::genesis::GENESIS_VALIDATORS_MAX;
/// Smallest committee an election may produce: 3f + 1 with f = 1.
pub const COMMITTEE_MIN: usize = 4;
/// Most validator candidates at once.
pub const CANDIDATES_MAX: usize = 256;
/// Most nominators at once (20-byte addresses: 30 KiB list; every one of them fits in one
/// member's [`Exposures`]).
pub const NOMINATORS_MAX: usize = 1_536;
/// Most candidates one nominator backs.
pub const NOMINATIONS_MAX: usize = 16;
/// Most unlocking chunks of one ledger.
pub const UNLOCKING_MAX: usize = 16;
/// Shortest epoch, blocks.
pub const EPOCH_LENGTH_MIN_BLOCKS: u64 = 10;
/// Longest epoch, blocks.
pub const EPOCH_LENGTH_MAX_BLOCKS: u64 = 1_000_000;
/// Longest unbonding period, blocks.
pub const UNBONDING_MAX_BLOCKS: u64 = 10_000_000;
/// Largest commission, permille.
pub const COMMISSION_MAX_PERMILLE: u16 = 1_000;
/// Most exposures of one committee member: every nominator (36-byte entries: 54 KiB), so all
/// stake that backs a seat is at risk with it.
pub const EXPOSURES_MAX: usize = NOMINATORS_MAX;
/// Epochs after which a member's exposures are pruned (its nominators are no longer slashable
/// for that epoch).
pub const EXPOSURE_EPOCHS: u64 = 3;
/// Largest encoded evidence of a consensus fault, bytes (two votes of about 120 bytes).
pub const EVIDENCE_MAX_BYTES: usize = 512;
/// Fewest blocks between two vote samples ([`OpenSamples`]).
pub const VOTE_SAMPLE_INTERVAL_MIN_BLOCKS: u64 = 8;
/// Vote samples per epoch at most: the sampling interval is the epoch's length over this, and
/// at least [`VOTE_SAMPLE_INTERVAL_MIN_BLOCKS`].
pub const VOTE_SAMPLES_PER_EPOCH: u64 = 32;
/// Blocks a vote sample takes records after it opens (then it is counted and closed).
pub const VOTE_SAMPLE_WINDOW_BLOCKS: u64 = 32;
/// Vote samples open at once at most (window over the smallest interval, plus one).
pub const OPEN_SAMPLES_MAX: usize = 5;
/// Largest [`Call::RecordVotes`] evidence, bytes: the transaction limit less its fixed part
/// (the whole transaction must also fit `TRANSACTION_MAX_BYTES`, a few bytes less). One vote
/// takes about 110 bytes; a certificate about 50 plus 64 per signature, so certificates fit
/// only committees of up to 12 signers: larger committees record single votes.
pub const VOTES_MAX_BYTES: usize =
    crate::transaction::TRANSACTION_MAX_BYTES - crate::transaction::TRANSACTION_OVERHEAD_BYTES;
/// Bytes of a sample's signer bitmap (one bit per participant of the largest committee).
pub const SIGNER_BITMAP_BYTES: usize = COMMITTEE_MAX.div_ceil(8);

/// Epochs a slashed validator may not declare or be elected, counted from the offence's
/// report: it misses at least the next election.
pub const DISQUALIFIED_EPOCHS: u64 = 2;
/// Namespace of the consensus key's signature over [`intent_message`].
pub const INTENT_NAMESPACE: &[u8] = b"logos-validator-intent-v1";

id_type!(
    /// An epoch number (epoch 0 starts at height 1).
    Epoch(u64)
);

/// The staking settings (privileged: [`Call::SetConfig`]).
#[record]
#[derive(Copy)]
pub struct StakingConfig {
    /// Members of an elected committee, [`COMMITTEE_MIN`] to [`COMMITTEE_MAX`].
    pub committee_size: u16,
    /// Length of epochs started from now on, [`EPOCH_LENGTH_MIN_BLOCKS`] to
    /// [`EPOCH_LENGTH_MAX_BLOCKS`].
    pub epoch_length_blocks: u64,
    /// Blocks before unbonded stake can be withdrawn, at least three epochs (stake fixed in a
    /// committee one epoch ahead stays at risk while it serves), at most
    /// [`UNBONDING_MAX_BLOCKS`].
    pub unbonding_blocks: u64,
    /// Least active stake of a validator candidate, smallest unit.
    pub min_validator_bond: Amount,
    /// Least active stake of a ledger that is not empty, smallest unit.
    pub min_bond: Amount,
    /// Off: proof of authority (each committee carries the previous one forward). On:
    /// committees are elected from stake.
    pub elections: bool,
    /// Share of an equivocating validator's bond, and of its nominators' exposure, taken,
    /// percent (0 to 100).
    pub equivocation_slash_percent: u8,
    /// Share of the offender's own slash paid to whoever reported the evidence, percent (0 to
    /// 50); the rest of every slash goes to the treasury.
    pub reporter_reward_percent: u8,
    /// Paid from the treasury to each epoch's committee at its end (at most what the treasury
    /// holds), smallest unit.
    pub epoch_reward: Amount,
}

impl Default for StakingConfig {
    fn default() -> Self {
        Self {
            committee_size: 16,
            epoch_length_blocks: 7_200,
            unbonding_blocks: 50_400,
            min_validator_bond: Amount(1_000_000_000),
            min_bond: Amount(1_000_000),
            elections: false,
            equivocation_slash_percent: 10,
            reporter_reward_percent: 10,
            epoch_reward: Amount(1_000_000_000),
        }
    }
}

impl StakingConfig {
    /// Checks the bounds stated on each field.
    pub fn check(&self) -> Result<(), Error> {
        let size = usize::from(self.committee_size);
        let valid = (COMMITTEE_MIN..=COMMITTEE_MAX).contains(&size)
            && (EPOCH_LENGTH_MIN_BLOCKS..=EPOCH_LENGTH_MAX_BLOCKS)
                .contains(&self.epoch_length_blocks)
            && (self.epoch_length_blocks.saturating_mul(3)..=UNBONDING_MAX_BLOCKS)
                .contains(&self.unbonding_blocks)
            && self.min_bond > Amount::ZERO
            && self.min_validator_bond >= self.min_bond
            && self.equivocation_slash_percent <= 100
            && self.reporter_reward_percent <= 50;
        match valid {
            true => Ok(()),
            false => Err(Error::InvalidConfig),
        }
    }
}

/// Stake waiting out the unbonding period.
#[record]
#[derive(Copy)]
pub struct Unlocking {
    /// Tokens, smallest unit.
    pub amount: Amount,
    /// First height at which they can be withdrawn.
    pub unlocks_at: u64,
}

/// An account's bonded tokens (all reserved through `balances`).
#[record]
#[derive(Default)]
pub struct Ledger {
    /// Stake that counts (elections, votes, exposure), smallest unit.
    pub active: Amount,
    /// Unbonded stake, oldest first.
    pub unlocking: BoundedVec<Unlocking, UNLOCKING_MAX>,
    /// No unbonding up to this height (a governance vote locks the voter's stake until the
    /// vote ends).
    pub locked_until: u64,
}

impl Ledger {
    /// Active plus unlocking stake: what the ledger holds reserved (`None` on overflow).
    pub fn total(&self) -> Option<Amount> {
        self.unlocking
            .iter()
            .try_fold(self.active, |sum, chunk| sum.checked_add(chunk.amount))
    }
}

/// A validator candidate's intent.
#[record]
#[derive(Copy)]
pub struct Validator {
    /// The ed25519 key it votes with in consensus.
    pub consensus_key: NodeKey,
    /// Where it accepts p2p connections.
    pub p2p_address: P2pAddress,
    /// Share of its rewards it keeps before its nominators', permille.
    pub commission_permille: u16,
}

/// One member of a committee.
#[record]
#[derive(Copy)]
pub struct Member {
    /// The validator's account.
    pub validator: Address,
    /// Its consensus key.
    pub consensus_key: NodeKey,
    /// Its p2p address.
    pub p2p_address: P2pAddress,
    /// Stake behind it at the election, smallest unit (0 under proof of authority).
    pub backing: Amount,
    /// Its commission at the election, permille.
    pub commission_permille: u16,
}

/// The committee of one epoch, ascending by account.
#[record]
#[derive(Default)]
pub struct Committee {
    /// The members.
    pub members: BoundedVec<Member, COMMITTEE_MAX>,
}

impl Committee {
    /// The members' consensus keys, in member order (the epoch's simplex participants once
    /// sorted). Errors: a key that is not a valid ed25519 point (the chain checked each when
    /// it was declared).
    pub fn consensus_keys(
        &self,
    ) -> Result<Vec<logos_primitives::PublicKey>, logos_primitives::ParseError> {
        self.members
            .iter()
            .map(|member| member.consensus_key.public_key())
            .collect()
    }
}

/// The current epoch.
#[record]
#[derive(Copy)]
pub struct EpochInfo {
    /// Its number.
    pub epoch: Epoch,
    /// Its first height.
    pub start_height: u64,
    /// Its length, blocks (fixed when it started).
    pub length_blocks: u64,
}

impl EpochInfo {
    /// The height of the epoch's last block (`None` on overflow).
    pub fn last_height(&self) -> Option<u64> {
        self.start_height
            .checked_add(self.length_blocks)?
            .checked_sub(1)
    }
}

/// What the consensus key signs to declare a candidate: chain id, account and p2p address, so
/// that nobody declares another's key and a declaration cannot be replayed on another chain.
pub fn intent_message(chain_id: &ChainId, account: &Address, address: &P2pAddress) -> Vec<u8> {
    let mut message = chain_id.encode().to_vec();
    message.extend(account.encode());
    message.extend(address.encode());
    message
}

/// The consensus key and its signature declaring `account` a candidate at `address` on
/// `chain_id`.
pub fn sign_intent(
    key: &PrivateKey,
    chain_id: &ChainId,
    account: &Address,
    address: &P2pAddress,
) -> (NodeKey, KeySignature) {
    let signature = key.sign(
        INTENT_NAMESPACE,
        &intent_message(chain_id, account, address),
    );
    (
        NodeKey::from_public_key(&key.public_key()),
        KeySignature::from_signature(&signature),
    )
}

/// A consensus fault simplex attributes to one validator (commonware-consensus `Activity`).
/// Wire: one byte, the index.
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Two notarize votes for different proposals in one view (`ConflictingNotarize`).
    #[index(0)]
    ConflictingNotarize,
    /// Two finalize votes for different proposals in one view (`ConflictingFinalize`).
    #[index(1)]
    ConflictingFinalize,
    /// A nullify and a finalize vote in one view (`NullifyFinalize`).
    #[index(2)]
    NullifyFinalize,
}

/// What [`Call::RecordVotes`] carries (commonware-consensus simplex types, ed25519 scheme).
/// Wire: one byte, the index.
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum VoteKind {
    /// A finalization certificate (`Finalization`): its signers' finalize votes.
    #[index(0)]
    Certificate,
    /// One finalize vote (`Finalize`): a member whose vote the recorded certificates lack.
    #[index(1)]
    Vote,
}

/// A finalized block whose finalize votes are being recorded (see the module docs: missed
/// votes reduce rewards).
#[record]
pub struct VoteSample {
    /// The block's height.
    pub height: u64,
    /// Its digest (what the votes sign).
    #[serde(with = "crate::runtime::hash_hex")]
    pub digest: logos_primitives::Hash,
    /// The first height at which it takes no more records.
    pub closes_at: u64,
    /// Who voted, one bit per participant in simplex's order (ascending consensus keys),
    /// least significant bit first.
    pub signed: BoundedVec<u8, SIGNER_BITMAP_BYTES>,
}

impl VoteSample {
    /// True if participant `index` voted.
    pub fn has(&self, index: usize) -> bool {
        self.signed
            .get(index / 8)
            .is_some_and(|byte| byte & (1 << (index % 8)) != 0)
    }
}

/// The current epoch's closed vote samples: how many, and how many each participant signed.
#[record]
#[derive(Default)]
pub struct VoteTally {
    /// Samples closed with at least one vote recorded.
    pub samples: u32,
    /// Samples each participant signed, in simplex's order (ascending consensus keys).
    pub signed: BoundedVec<u32, COMMITTEE_MAX>,
}

/// A nominator's stake behind one committee member in one epoch, fixed at the election.
#[record]
#[derive(Copy)]
pub struct Exposure {
    /// The nominator.
    pub nominator: Address,
    /// Its stake counted for the member (its active stake split equally among its elected
    /// targets), smallest unit.
    pub stake: Amount,
}

/// Where exposures are stored: the epoch and the member.
#[record]
#[derive(Copy, PartialOrd, Ord, Hash)]
pub struct ExposureKey {
    /// The epoch.
    pub epoch: Epoch,
    /// The member.
    pub validator: Address,
}

/// One punished offence: a validator's fault in a view of an epoch (slashed once).
#[record]
#[derive(Copy, PartialOrd, Ord, Hash)]
pub struct Offence {
    /// The consensus epoch of the votes.
    pub epoch: Epoch,
    /// Their view.
    pub view: u64,
    /// The offender's account.
    pub validator: Address,
}

/// Blocks one author proposed in the current epoch.
#[record]
#[derive(Copy)]
pub struct Authored {
    /// The author's account.
    pub author: Address,
    /// Blocks.
    pub blocks: u64,
}

/// Calls of `staking`.
#[calls]
pub enum Call {
    /// Bond `amount` of the sender's free balance (added to its active stake).
    #[index(0)]
    Bond {
        /// Tokens, smallest unit; the ledger's active stake must reach `min_bond`.
        amount: Amount,
    },
    /// Start unbonding `amount` of active stake.
    #[index(1)]
    Unbond {
        /// Tokens, smallest unit; the remaining active stake must be zero or at least
        /// `min_bond` (`min_validator_bond` for a candidate).
        amount: Amount,
    },
    /// Move up to `amount` of unlocking stake back to active, newest chunk first.
    #[index(2)]
    Rebond {
        /// Tokens, smallest unit.
        amount: Amount,
    },
    /// Release every matured unlocking chunk to the free balance.
    #[index(3)]
    WithdrawUnbonded,
    /// Declare the sender a validator candidate (drops its nominations).
    #[index(4)]
    Validate {
        /// The consensus key.
        consensus_key: NodeKey,
        /// Where it accepts p2p connections.
        p2p_address: P2pAddress,
        /// Permille, at most [`COMMISSION_MAX_PERMILLE`].
        commission_permille: u16,
        /// The consensus key's signature over [`intent_message`] in [`INTENT_NAMESPACE`].
        signature: KeySignature,
        /// When [`CANDIDATES_MAX`] candidates are listed: the one to replace, which must hold
        /// less self-bond than the sender and serve in neither the current nor the next
        /// committee, or be below `min_validator_bond` (found off chain: the chain checks only
        /// that one).
        evict: Option<Address>,
    },
    /// Back `targets` (candidates) with the sender's active stake (drops its candidacy).
    #[index(5)]
    Nominate {
        /// Candidates, 1 to [`NOMINATIONS_MAX`], distinct.
        targets: BoundedVec<Address, NOMINATIONS_MAX>,
        /// When [`NOMINATORS_MAX`] nominators are listed: the one to replace, which must hold
        /// less active stake than the sender.
        evict: Option<Address>,
    },
    /// Drop the sender's candidacy or nominations.
    #[index(6)]
    Chill,
    /// (privileged) Set the staking settings.
    #[index(7)]
    SetConfig {
        /// The new settings.
        config: StakingConfig,
    },
    /// (privileged) Switch elections on (proof of stake) or off (proof of authority), leaving
    /// the other settings as they are.
    #[index(9)]
    SetElections {
        /// On or off.
        elections: bool,
    },
    /// Report a committee member's consensus fault: its two signed votes, verified against the
    /// committee of their epoch. The offender's bond and its nominators' exposure are slashed,
    /// it is removed from the next committee and disqualified for [`DISQUALIFIED_EPOCHS`]
    /// epochs; the reporter earns `reporter_reward_percent` of the slash.
    #[index(8)]
    ReportEquivocation {
        /// Which fault.
        kind: FaultKind,
        /// The evidence's codec form (commonware-consensus simplex types, ed25519 scheme).
        evidence: BoundedVec<u8, EVIDENCE_MAX_BYTES>,
    },
    /// Record finalize votes of the current committee for an open vote sample (a block the
    /// chain samples to count who votes): each signature is verified on its own against the
    /// committee; at least one must be new. Missed votes reduce the member's reward.
    #[index(10)]
    RecordVotes {
        /// A certificate or a single vote.
        kind: VoteKind,
        /// Its codec form.
        evidence: BoundedVec<u8, VOTES_MAX_BYTES>,
    },
}

/// Events of `staking`.
#[events]
pub enum Event {
    /// Stake was bonded.
    Bonded {
        /// The account.
        account: Address,
        /// Tokens, smallest unit.
        amount: Amount,
    },
    /// Active stake started unbonding.
    Unbonded {
        /// The account.
        account: Address,
        /// Tokens, smallest unit.
        amount: Amount,
        /// First height it can be withdrawn.
        unlocks_at: u64,
    },
    /// Unlocking stake became active again.
    Rebonded {
        /// The account.
        account: Address,
        /// Tokens, smallest unit.
        amount: Amount,
    },
    /// Matured stake was released.
    Withdrawn {
        /// The account.
        account: Address,
        /// Tokens, smallest unit.
        amount: Amount,
    },
    /// An account became (or updated its intent as) a validator candidate.
    ValidatorDeclared {
        /// The account.
        account: Address,
        /// Its consensus key.
        consensus_key: NodeKey,
    },
    /// An account nominated candidates.
    Nominated {
        /// The nominator.
        account: Address,
        /// How many candidates.
        targets: u8,
    },
    /// A fault was proven while its offender was disqualified already: recorded (never
    /// punished again), not slashed.
    OffenceNoted {
        /// The offender.
        validator: Address,
        /// Epoch of the votes.
        epoch: Epoch,
        /// View of the votes.
        view: u64,
    },
    /// An account dropped its candidacy or nominations (or was replaced in a full list).
    Chilled {
        /// The account.
        account: Address,
    },
    /// The settings changed.
    ConfigChanged {
        /// New settings.
        config: StakingConfig,
    },
    /// An epoch started.
    EpochStarted {
        /// Its number.
        epoch: Epoch,
        /// Its first height.
        start_height: u64,
        /// Its length, blocks.
        length_blocks: u64,
    },
    /// The committee of a coming epoch was fixed.
    CommitteeElected {
        /// The epoch it will serve.
        epoch: Epoch,
        /// Members.
        members: u16,
        /// Sum of the members' backing, smallest unit.
        backing: Amount,
        /// False under proof of authority (the previous committee carried forward).
        elected: bool,
    },
    /// A validator was slashed for a consensus fault.
    Slashed {
        /// The offender.
        validator: Address,
        /// The fault.
        kind: FaultKind,
        /// Epoch and view of the votes.
        epoch: Epoch,
        /// View of the votes.
        view: u64,
        /// Taken from its own bond, smallest unit.
        amount: Amount,
        /// Taken from its nominators, smallest unit.
        nominators: Amount,
        /// Who reported it.
        reporter: Address,
        /// Paid to the reporter, smallest unit.
        reward: Amount,
    },
    /// A committee member was paid for the epoch that ended.
    Rewarded {
        /// The member.
        validator: Address,
        /// The epoch.
        epoch: Epoch,
        /// Paid to it and its nominators together, smallest unit.
        amount: Amount,
        /// Blocks it proposed in the epoch.
        produced: u64,
        /// Blocks a member was expected to propose (epoch length / committee size).
        expected: u64,
        /// Vote samples it signed.
        voted: u32,
        /// Vote samples of the epoch (with any vote recorded).
        samples: u32,
    },
    /// Finalize votes were recorded for a vote sample.
    VotesRecorded {
        /// The sampled block's height.
        height: u64,
        /// Members whose vote was new.
        added: u16,
    },
    /// A slashed validator was taken out of a committee already fixed.
    RemovedFromCommittee {
        /// The validator.
        validator: Address,
        /// The committee's epoch.
        epoch: Epoch,
    },
    /// Too few electable candidates: the previous committee carries forward.
    ElectionFailed {
        /// The epoch.
        epoch: Epoch,
        /// Electable candidates found.
        candidates: u16,
    },
}

/// Errors of `staking`.
#[errors]
pub enum Error {
    /// A zero amount.
    #[index(0)]
    #[error("zero amount")]
    ZeroAmount,
    /// The ledger's active stake would be below the minimum.
    #[index(1)]
    #[error("active stake {active} below the minimum {minimum}")]
    BondTooLow {
        /// Active stake it would have.
        active: Amount,
        /// The minimum.
        minimum: Amount,
    },
    /// The account has no ledger.
    #[index(2)]
    #[error("account has no bonded stake")]
    NotBonded,
    /// More than the active stake.
    #[index(3)]
    #[error("only {active} active")]
    InsufficientActive {
        /// Active stake.
        active: Amount,
    },
    /// [`UNLOCKING_MAX`] chunks are unlocking.
    #[index(4)]
    #[error("{UNLOCKING_MAX} unlocking chunks already: withdraw or rebond first")]
    TooManyUnlocking,
    /// Nothing unlocking or matured.
    #[index(5)]
    #[error("nothing to rebond or withdraw")]
    NothingUnlocking,
    /// The consensus key is not an ed25519 point.
    #[index(6)]
    #[error("invalid consensus key")]
    InvalidKey,
    /// The consensus key did not sign this intent.
    #[index(7)]
    #[error("the consensus key's signature does not verify")]
    BadSignature,
    /// Another candidate declared this consensus key.
    #[index(8)]
    #[error("consensus key {0} belongs to another candidate")]
    KeyInUse(NodeKey),
    /// The address cannot be dialed.
    #[index(9)]
    #[error("address {0} cannot be dialed")]
    InvalidAddress(P2pAddress),
    /// Commission above [`COMMISSION_MAX_PERMILLE`].
    #[index(10)]
    #[error("commission {0}‰ above {COMMISSION_MAX_PERMILLE}‰")]
    InvalidCommission(u16),
    /// [`CANDIDATES_MAX`] or [`NOMINATORS_MAX`] reached, and no replaceable entry named.
    #[index(11)]
    #[error(
        "too many candidates or nominators: name a weaker, replaceable entry to evict \
         (logos stake status lists)"
    )]
    RegistryFull,
    /// No targets, a duplicate, or a target that is not a candidate.
    #[index(12)]
    #[error("invalid nomination targets: {0}")]
    InvalidTargets(crate::codec::BoundedString<64>),
    /// Neither a candidate nor a nominator.
    #[index(13)]
    #[error("account neither validates nor nominates")]
    NotActive,
    /// Settings out of bounds.
    #[index(14)]
    #[error("staking settings out of bounds")]
    InvalidConfig,
    /// The evidence does not prove a fault of a committee member.
    #[index(15)]
    #[error("invalid evidence: {0}")]
    InvalidEvidence(crate::codec::BoundedString<96>),
    /// No committee is known for the evidence's epoch.
    #[index(16)]
    #[error("no committee for epoch {0}")]
    UnknownEpoch(Epoch),
    /// This offence was punished already.
    #[index(17)]
    #[error("offence already reported")]
    AlreadyReported,
    /// The account was slashed and may not validate until the epoch given.
    #[index(18)]
    #[error("disqualified until epoch {0}")]
    Disqualified(Epoch),
    /// The stake backs a governance vote still open.
    #[index(19)]
    #[error("stake locked by a governance vote until height {0}")]
    StakeLocked(u64),
    /// The treasury does not stake (its stake would weigh on quorums and elections).
    #[index(20)]
    #[error("the treasury cannot stake")]
    TreasuryCannotStake,
    /// The entry named for eviction cannot be replaced by the sender.
    #[index(21)]
    #[error("{0} cannot be replaced: it holds as much stake, or serves in a committee")]
    NotReplaceable(Address),
    /// No open vote sample is for the block the votes sign.
    #[index(22)]
    #[error("no open vote sample for block {0} (samples close {VOTE_SAMPLE_WINDOW_BLOCKS} blocks after they open)")]
    NoOpenSample(crate::codec::BoundedString<80>),
    /// Every vote given is recorded already.
    #[index(23)]
    #[error("every vote given is recorded already")]
    NoNewVotes,
    /// The votes do not decode or verify against the current committee.
    #[index(24)]
    #[error("invalid votes: {0}")]
    InvalidVotes(crate::codec::BoundedString<128>),
}

storage! {
    module = INDEX;
    /// Bonded stake by account.
    pub Ledgers: map(0) Address => Ledger;
    /// Validator candidates by account.
    pub Validators: map(1) Address => Validator;
    /// The keys of [`Validators`], ascending.
    pub ValidatorList: value(2) BoundedVec<Address, CANDIDATES_MAX>;
    /// Nominations by nominator, targets ascending.
    pub Nominations: map(3) Address => BoundedVec<Address, NOMINATIONS_MAX>;
    /// The keys of [`Nominations`], ascending.
    pub NominatorList: value(4) BoundedVec<Address, NOMINATORS_MAX>;
    /// The committee of each epoch, kept for every epoch (clients follow the changes).
    pub Committees: map(5) Epoch => Committee;
    /// The current epoch.
    pub CurrentEpoch: value(6) EpochInfo = EpochInfo {
        epoch: Epoch(0),
        start_height: 1,
        length_blocks: StakingConfig::default().epoch_length_blocks,
    };
    /// Sum of all ledgers' active stake, smallest unit.
    pub TotalActive: value(7) Amount;
    /// The settings.
    pub Config: value(8) StakingConfig = StakingConfig::default();
    /// The candidate that declared each consensus key (one key, one candidate).
    pub KeyOwners: map(9) NodeKey => Address;
    /// Punished offences, with the height of the report.
    pub Offences: map(10) Offence => u64;
    /// Slashed validators and the first epoch they may validate again.
    pub Disqualified: map(11) Address => Epoch;
    /// Blocks each author proposed in the current epoch (authors beyond the bound are not
    /// counted: they earn nothing).
    pub Produced: value(12) BoundedVec<Authored, COMMITTEE_MAX>;
    /// The nominators behind each member of an elected committee, largest first.
    pub Exposures: map(13) ExposureKey => BoundedVec<Exposure, EXPOSURES_MAX>;
    /// Vote samples taking records, oldest first.
    pub OpenSamples: value(14) BoundedVec<VoteSample, OPEN_SAMPLES_MAX>;
    /// The current epoch's closed vote samples.
    pub Votes: value(15) VoteTally;
}
