//! Types of `governance` (module index 8): the DAO. Proposals, stake-weighted votes, enactment
//! of privileged calls, the treasury and the bootstrap authority.
//!
//! # Protocol
//! - **Proposals.** Any account proposes one runtime call (its wire encoding, at most
//!   [`PROPOSAL_CALL_MAX_BYTES`]) and reserves the configured deposit. The call must decode and
//!   must not be a governance `Propose` or `Vote`. At most [`OPEN_MAX`] proposals are open
//!   (voting or awaiting enactment) at once, at most [`PROPOSER_OPEN_MAX`] of one account.
//! - **Votes.** An account with active stake (`staking`) votes aye or nay until the end of the
//!   voting period (the block `voting_ends_at` included), with the weight of its active stake
//!   at that moment; its stake is then locked (no unbonding) until the voting period ends, so
//!   the same tokens cannot vote twice (they cannot move to another account meanwhile). A
//!   second vote replaces the first (with the stake of the moment). Each vote is one entry:
//!   the tally is updated in place, and no number of voters locks anyone out.
//! - **Tally.** At the end of block `voting_ends_at`. Quorum: the turnout is at least
//!   `quorum_percent` of all active stake then. Approval: ayes are more than
//!   `threshold_percent` of the turnout. Without quorum (`NoQuorum`), or when more than two
//!   thirds of the turnout voted nay (a heavy `Rejected`), the deposit goes to the treasury:
//!   spam costs its deposit. Otherwise the deposit is returned, and an approved proposal is
//!   enacted at the *start* of block `voting_ends_at + enactment_delay_blocks`, before that
//!   block's transactions: the change is in force for the whole enactment block. (A vote's
//!   weight is not reduced if its voter is slashed before the tally.)
//! - **Enactment.** The call runs as the privileged origin with the treasury (the community
//!   account of `balances`) as sender: a `balances::Transfer` is a treasury spend. A failing
//!   call leaves the proposal `Failed` with the reason; its writes are dropped. The proposal
//!   is concluded before its call runs, so a call is never enacted twice.
//! - **The bootstrap authority.** A genesis may name an account (`params.privileged_account`)
//!   whose transactions are also the privileged origin, so a young network can be run before
//!   its stake is spread. [`Call::RemoveAuthority`] (by the authority itself or by a proposal)
//!   ends that for good: nothing sets it again.
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`Proposals`] | [`ProposalId`] | [`Proposal`] |
//! | 1 [`Votes`] | [`VoteKey`] (proposal, voter) | [`Vote`] |
//! | 2 [`NextProposalId`] | | [`ProposalId`] |
//! | 3 [`Open`] | | open proposals ([`OpenEntry`]: due height, proposer), ascending |
//! | 4 [`Authority`] | | the bootstrap authority, if any |
//! | 5 [`Config`] | | [`GovernanceConfig`] |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::Propose`] | any account (reserves the deposit) |
//! | 1 | [`Call::Vote`] | an account with active stake (locked until the vote ends) |
//! | 2 | [`Call::RemoveAuthority`] | privileged |
//! | 3 | [`Call::SetConfig`] | privileged |

use crate::{calls, codec::BoundedString, codec::BoundedVec, errors, events, record, storage};
use logos_primitives::{Address, Amount};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "governance";
/// Module index of `governance`: storage prefix, call routing, error index.
pub const INDEX: u8 = 8;

/// Largest encoded call a proposal carries, bytes.
pub const PROPOSAL_CALL_MAX_BYTES: usize = 16 * 1024;
/// Most proposals open at once.
pub const OPEN_MAX: usize = 32;
/// Most proposals one account has open at once (one holder cannot fill [`OPEN_MAX`] alone).
pub const PROPOSER_OPEN_MAX: usize = 4;
/// Longest reason kept for a failed enactment, bytes.
pub const FAILURE_MAX_BYTES: usize = 256;
/// Longest voting period, blocks.
pub const VOTING_PERIOD_MAX_BLOCKS: u64 = 10_000_000;
/// Longest enactment delay, blocks.
pub const ENACTMENT_DELAY_MAX_BLOCKS: u64 = 10_000_000;

id_type!(
    /// A proposal's number, from 0.
    ProposalId(u64)
);

/// The governance settings (privileged: [`Call::SetConfig`]).
#[record]
#[derive(Copy)]
pub struct GovernanceConfig {
    /// Reserved from a proposer until the tally, smallest unit; more than zero.
    pub deposit: Amount,
    /// Blocks a proposal is open to votes after the block that includes it, 1 to
    /// [`VOTING_PERIOD_MAX_BLOCKS`].
    pub voting_period_blocks: u64,
    /// Blocks from the end of voting to enactment, 1 to [`ENACTMENT_DELAY_MAX_BLOCKS`].
    pub enactment_delay_blocks: u64,
    /// Least turnout, percent of all active stake, 1 to 100.
    pub quorum_percent: u8,
    /// Ayes must be more than this percent of the turnout, 50 to 99.
    pub threshold_percent: u8,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            deposit: Amount(1_000_000_000),
            voting_period_blocks: 14_400,
            enactment_delay_blocks: 3_600,
            quorum_percent: 20,
            threshold_percent: 50,
        }
    }
}

impl GovernanceConfig {
    /// Checks the bounds stated on each field.
    pub fn check(&self) -> Result<(), Error> {
        let valid = self.deposit > Amount::ZERO
            && (1..=VOTING_PERIOD_MAX_BLOCKS).contains(&self.voting_period_blocks)
            && (1..=ENACTMENT_DELAY_MAX_BLOCKS).contains(&self.enactment_delay_blocks)
            && (1..=100).contains(&self.quorum_percent)
            && (50..=99).contains(&self.threshold_percent);
        match valid {
            true => Ok(()),
            false => Err(Error::InvalidConfig),
        }
    }
}

/// Where a proposal is. Wire: one byte, the index.
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Open to votes.
    #[index(0)]
    Voting,
    /// Approved; enacted at `enact_at`.
    #[index(1)]
    Approved,
    /// Quorum reached, threshold not.
    #[index(2)]
    Rejected,
    /// Quorum not reached (the deposit went to the treasury).
    #[index(3)]
    NoQuorum,
    /// Enacted: the call succeeded.
    #[index(4)]
    Enacted,
    /// Enacted: the call failed (see `failure`).
    #[index(5)]
    Failed,
}

impl ProposalStatus {
    /// Voting or awaiting enactment.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Voting | Self::Approved)
    }
}

/// Weighed votes, smallest unit of stake.
#[record]
#[derive(Copy, Default)]
pub struct Tally {
    /// Stake voting aye.
    pub ayes: Amount,
    /// Stake voting nay.
    pub nays: Amount,
    /// All active stake at the tally (the quorum's base; 0 while voting).
    pub total_active: Amount,
    /// Accounts that voted.
    pub voters: u32,
}

/// A proposal.
#[record]
pub struct Proposal {
    /// Who proposed it (and gets the deposit back).
    pub proposer: Address,
    /// The runtime call's wire encoding.
    pub call: BoundedVec<u8, PROPOSAL_CALL_MAX_BYTES>,
    /// Reserved from the proposer, smallest unit (0 once released or forfeited).
    pub deposit: Amount,
    /// Height of the block that included it.
    pub submitted_at: u64,
    /// Last height at which votes count.
    pub voting_ends_at: u64,
    /// Height at whose start it is enacted, once approved.
    pub enact_at: Option<u64>,
    /// Where it is.
    pub status: ProposalStatus,
    /// The votes so far (live) and, once closed, at the tally.
    pub tally: Tally,
    /// Why the enacted call failed.
    pub failure: Option<BoundedString<FAILURE_MAX_BYTES>>,
}

/// An open proposal as the per-block hooks see it: when it next needs them (the end of its
/// vote, then its enactment) and who proposed it, so that a block reads no proposal that is
/// not due.
#[record]
#[derive(Copy)]
pub struct OpenEntry {
    /// The proposal.
    pub proposal: ProposalId,
    /// Its `voting_ends_at` while voting, its `enact_at` once approved.
    pub due_at: u64,
    /// Its proposer (for [`PROPOSER_OPEN_MAX`]).
    pub proposer: Address,
}

/// Where a vote is stored: its proposal and voter.
#[record]
#[derive(Copy, PartialOrd, Ord, Hash)]
pub struct VoteKey {
    /// The proposal.
    pub proposal: ProposalId,
    /// The voter.
    pub voter: Address,
}

/// One account's vote.
#[record]
#[derive(Copy)]
pub struct Vote {
    /// Aye (true) or nay.
    pub aye: bool,
    /// Its weight: the voter's active stake when it voted, smallest unit.
    pub stake: Amount,
}

/// Calls of `governance`.
#[calls]
pub enum Call {
    /// Propose a runtime call, reserving the deposit.
    #[index(0)]
    Propose {
        /// The runtime call's wire encoding (`Call` of `logos-types`).
        encoded: BoundedVec<u8, PROPOSAL_CALL_MAX_BYTES>,
    },
    /// Vote on an open proposal with the sender's active stake.
    #[index(1)]
    Vote {
        /// The proposal.
        proposal: ProposalId,
        /// Aye (true) or nay.
        aye: bool,
    },
    /// (privileged) End the bootstrap authority for good.
    #[index(2)]
    RemoveAuthority,
    /// (privileged) Set the governance settings (proposals open now keep their periods).
    #[index(3)]
    SetConfig {
        /// The new settings.
        config: GovernanceConfig,
    },
}

/// Events of `governance`.
#[events]
pub enum Event {
    /// A proposal was submitted.
    Proposed {
        /// Its id.
        proposal: ProposalId,
        /// The proposer.
        proposer: Address,
        /// `[module index, call index]` of its call.
        call: [u8; 2],
        /// Last height of voting.
        voting_ends_at: u64,
    },
    /// A vote was cast (or replaced).
    Voted {
        /// The proposal.
        proposal: ProposalId,
        /// The voter.
        voter: Address,
        /// Aye or nay.
        aye: bool,
        /// The voter's active stake now, smallest unit.
        stake: Amount,
    },
    /// Voting ended.
    Tallied {
        /// The proposal.
        proposal: ProposalId,
        /// Approved, Rejected or NoQuorum.
        status: ProposalStatus,
        /// The tally.
        tally: Tally,
        /// Enactment height when approved.
        enact_at: Option<u64>,
    },
    /// An approved proposal's call ran.
    Enacted {
        /// The proposal.
        proposal: ProposalId,
        /// Whether the call succeeded.
        success: bool,
    },
    /// The bootstrap authority was removed.
    AuthorityRemoved {
        /// The former authority.
        former: Address,
    },
    /// The settings changed.
    ConfigChanged {
        /// New settings.
        config: GovernanceConfig,
    },
}

/// Errors of `governance`.
#[errors]
pub enum Error {
    /// The proposed bytes are not a runtime call.
    #[index(0)]
    #[error("the proposal's call does not decode: {0}")]
    UndecodableCall(BoundedString<128>),
    /// Proposals cannot propose or vote.
    #[index(1)]
    #[error("a proposal cannot carry a governance propose or vote")]
    NotGovernable,
    /// [`OPEN_MAX`] proposals are open.
    #[index(2)]
    #[error("{OPEN_MAX} proposals are open already")]
    TooManyOpen,
    /// No such proposal.
    #[index(3)]
    #[error("unknown proposal {0}")]
    UnknownProposal(ProposalId),
    /// The proposal is not open to votes.
    #[index(4)]
    #[error("proposal {0} is not open to votes")]
    VotingClosed(ProposalId),
    /// The voter has no active stake.
    #[index(5)]
    #[error("no active stake to vote with (bond first: logos stake bond)")]
    NoStake,
    /// No bootstrap authority is left.
    #[index(7)]
    #[error("the bootstrap authority was removed already")]
    NoAuthority,
    /// Settings out of bounds.
    #[index(8)]
    #[error("governance settings out of bounds")]
    InvalidConfig,
    /// Proposal ids are used up.
    #[index(9)]
    #[error("proposal ids exhausted")]
    IdsExhausted,
    /// The proposer has [`PROPOSER_OPEN_MAX`] proposals open.
    #[index(10)]
    #[error("{PROPOSER_OPEN_MAX} of your proposals are open already")]
    ProposerLimit,
}

storage! {
    module = INDEX;
    /// Proposals by id (kept after they close, for the record).
    pub Proposals: map(0) ProposalId => Proposal;
    /// Votes by proposal and voter.
    pub Votes: map(1) VoteKey => Vote;
    /// The next proposal's id.
    pub NextProposalId: value(2) ProposalId;
    /// Open proposals (voting or approved), ascending by id, with the height each is due.
    pub Open: value(3) BoundedVec<OpenEntry, OPEN_MAX>;
    /// The bootstrap authority while it exists.
    pub Authority: value(4) Option<Address>;
    /// The settings.
    pub Config: value(5) GovernanceConfig = GovernanceConfig::default();
}
