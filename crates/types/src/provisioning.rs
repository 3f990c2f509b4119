//! Types of `provisioning` (module index 4): staked provisioners, who realizes each environment
//! and who cross-checks it (seed `002`: provisioners realize desired state off chain,
//! cross-check each other and are slashed for lying).
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`Provisioners`] | account ([`Address`]) | [`Provisioner`] |
//! | 1 [`Eligible`] | | ascending accounts eligible for tasks, at most [`PROVISIONERS_MAX`] |
//! | 2 [`Assignments`] | [`EnvironmentId`] | [`Assignment`] |
//! | 3 [`MinimumStake`] | | [`Amount`], default [`DEFAULT_MINIMUM_STAKE`] |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::RegisterProvisioner`] | anyone (the stake is reserved) |
//! | 1 | [`Call::DeregisterProvisioner`] | a provisioner assigned to no active environment |
//! | 2 | [`Call::Report`] | the environment's assigned provisioner |
//! | 3 | [`Call::CrossCheck`] | a checker drawn for the round |
//! | 4 | [`Call::SetMinimumStake`] | privileged |

use crate::{
    calls,
    codec::BoundedVec,
    dvci::Endpoint,
    errors, events,
    operations::{EnvironmentId, Message, Phase, PortMapping},
    record, storage,
    workload::PORTS_MAX,
};
use logos_primitives::{Address, Amount};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "provisioning";
/// Module index of `provisioning`: storage prefix, call routing, error index.
pub const INDEX: u8 = 4;

/// Most registered provisioners.
pub const PROVISIONERS_MAX: usize = 128;
/// Cross-checkers drawn per round (fewer if fewer other provisioners exist).
pub const CHECKERS: usize = 2;
/// Minimum stake unless changed, smallest unit.
pub const DEFAULT_MINIMUM_STAKE: Amount = Amount(1_000_000);
/// Share of the stake slashed for a contradicted report, percent.
pub const SLASH_PERCENT: u8 = 10;
/// Blocks an assignee has to report on a new generation before it is replaced.
pub const REPORT_TIMEOUT_BLOCKS: u64 = 900;
/// Blocks a round may stay undecided before new checkers are drawn.
pub const CHECK_TIMEOUT_BLOCKS: u64 = 600;
/// Blocks after which a decided round is reopened with new checkers.
pub const RECHECK_INTERVAL_BLOCKS: u64 = 3_000;

/// A registered provisioner.
#[record]
pub struct Provisioner {
    /// Stake reserved from its account, smallest unit.
    pub stake: Amount,
    /// Total slashed so far, smallest unit.
    pub slashed: Amount,
    /// Height it registered at.
    pub registered_at: u64,
}

/// What the assigned provisioner observed about one generation of an environment.
#[record]
pub struct Report {
    /// The generation observed.
    pub generation: u64,
    /// The phase observed.
    pub phase: Phase,
    /// Where the workload's health port is reachable (`host:port`): the provider's host (its
    /// agent's, as registered) and the health port's published port; empty if nowhere.
    pub endpoint: Endpoint,
    /// Every declared port and the port it is published on at the endpoint's host (each
    /// declared port at most once).
    pub ports: BoundedVec<PortMapping, PORTS_MAX>,
    /// Why (a CamelCase reason, then details), e.g. `HealthCheckPassed` or `OOMKilled: …`.
    pub message: Message,
}

/// Who realizes an environment and who checks it.
#[record]
#[derive(Default)]
pub struct Assignment {
    /// The provisioner that must realize the desired state (none while no provisioner is free).
    pub assigned: Option<Address>,
    /// Height it was assigned at.
    pub assigned_at: u64,
    /// Its last report on this assignment.
    pub report: Option<Report>,
    /// Cross-check round (increments with every new round).
    pub round: u64,
    /// Height the round opened at.
    pub round_opened_at: u64,
    /// The provisioners drawn to cross-check the report in this round.
    pub checkers: BoundedVec<Address, CHECKERS>,
    /// Their votes: agrees with the report or not.
    pub votes: BoundedVec<(Address, bool), CHECKERS>,
    /// Provisioners removed from this environment for a missing or contradicted report.
    pub replaced: BoundedVec<Address, PROVISIONERS_MAX>,
}

impl Assignment {
    /// Votes that decide a round: a majority of its checkers.
    pub fn quorum(&self) -> usize {
        (self.checkers.len() / 2).saturating_add(1)
    }

    /// (agreeing, disagreeing) votes of the current round.
    pub fn tally(&self) -> (usize, usize) {
        let agreeing = self.votes.iter().filter(|(_, agrees)| *agrees).count();
        (agreeing, self.votes.len().saturating_sub(agreeing))
    }

    /// True once a quorum of the round's checkers agreed. (A disagreeing quorum reassigns the
    /// environment, which clears the round.)
    pub fn decided(&self) -> bool {
        !self.checkers.is_empty() && self.tally().0 >= self.quorum()
    }

    /// True if `account` voted in the current round.
    pub fn voted(&self, account: &Address) -> bool {
        self.votes.iter().any(|(voter, _)| voter == account)
    }
}

/// Why a provisioner was assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AssignReason {
    /// The environment was just created.
    Created,
    /// The previous assignee did not report in time.
    ReportMissing,
    /// The previous assignee's report was contradicted by a quorum of cross-checks.
    ReportContradicted,
    /// A provisioner became available for an unassigned environment.
    ProvisionerAvailable,
}

/// Calls of `provisioning`.
#[calls]
pub enum Call {
    /// Register the sender as a provisioner, reserving `stake` (at least the minimum).
    #[index(0)]
    RegisterProvisioner {
        /// Stake, smallest unit.
        stake: Amount,
    },
    /// Leave and get the remaining stake back; only while assigned to no active environment.
    #[index(1)]
    DeregisterProvisioner,
    /// (assigned provisioner) Report the observed state of the current generation.
    #[index(2)]
    Report {
        /// The environment.
        environment: EnvironmentId,
        /// What was observed.
        report: Report,
    },
    /// (drawn cross-checker) Agree or disagree with the report of round `round`.
    #[index(3)]
    CrossCheck {
        /// The environment.
        environment: EnvironmentId,
        /// The round voted on.
        round: u64,
        /// True if the checker observed what the report says.
        agrees: bool,
    },
    /// (privileged) Set the minimum stake.
    #[index(4)]
    SetMinimumStake {
        /// Smallest unit.
        stake: Amount,
    },
}

/// Events of `provisioning`.
#[events]
pub enum Event {
    /// A provisioner registered.
    ProvisionerRegistered {
        /// Its account.
        provisioner: Address,
        /// Its stake.
        stake: Amount,
    },
    /// A provisioner left and got its stake back.
    ProvisionerDeregistered {
        /// Its account.
        provisioner: Address,
        /// Stake returned.
        refund: Amount,
    },
    /// An environment got an assigned provisioner.
    TaskAssigned {
        /// The environment.
        environment: EnvironmentId,
        /// The provisioner.
        provisioner: Address,
        /// Why.
        reason: AssignReason,
    },
    /// Cross-checkers were drawn for a report.
    CrossChecksDrawn {
        /// The environment.
        environment: EnvironmentId,
        /// The round.
        round: u64,
        /// Who must check.
        checkers: Vec<Address>,
    },
    /// A cross-checker voted.
    CrossChecked {
        /// The environment.
        environment: EnvironmentId,
        /// The round.
        round: u64,
        /// The checker.
        checker: Address,
        /// Its vote.
        agrees: bool,
    },
    /// A quorum of cross-checks agreed with the report: the environment is Verified.
    EnvironmentVerified {
        /// The environment.
        environment: EnvironmentId,
        /// The round.
        round: u64,
    },
    /// A provisioner's report was contradicted by a quorum and part of its stake was taken.
    ProvisionerSlashed {
        /// The provisioner.
        provisioner: Address,
        /// The environment it misreported.
        environment: EnvironmentId,
        /// Amount moved from its stake to the community pool, smallest unit.
        amount: Amount,
    },
    /// The minimum stake changed.
    MinimumStakeSet {
        /// Smallest unit.
        stake: Amount,
    },
}

/// Errors of `provisioning`.
#[errors]
pub enum Error {
    /// The stake is below the minimum.
    #[index(0)]
    #[error("stake below the minimum of {minimum}")]
    StakeTooLow {
        /// The minimum.
        minimum: Amount,
    },
    /// The sender is already a provisioner.
    #[index(1)]
    #[error("already registered")]
    AlreadyRegistered,
    /// The sender is not a provisioner.
    #[index(2)]
    #[error("not a registered provisioner")]
    NotRegistered,
    /// The provisioner set is full.
    #[index(3)]
    #[error("provisioner set is full")]
    TooManyProvisioners,
    /// The provisioner is still assigned to an active environment.
    #[index(4)]
    #[error("still assigned to environment {0}")]
    StillAssigned(EnvironmentId),
    /// No such active environment.
    #[index(5)]
    #[error("unknown or inactive environment {0}")]
    UnknownEnvironment(EnvironmentId),
    /// The sender is not the environment's assigned provisioner.
    #[index(6)]
    #[error("not the assigned provisioner of environment {0}")]
    NotAssigned(EnvironmentId),
    /// The report is about another generation than the current one.
    #[index(7)]
    #[error("generation {reported} is not the current generation {current}")]
    WrongGeneration {
        /// The report's.
        reported: u64,
        /// The chain's.
        current: u64,
    },
    /// The report repeats the last one.
    #[index(8)]
    #[error("report unchanged")]
    UnchangedReport,
    /// The sender is not a checker of this round, or the round is not the current one.
    #[index(9)]
    #[error("not a cross-checker of round {0}")]
    NotChecker(u64),
    /// The checker already voted in this round.
    #[index(10)]
    #[error("already voted")]
    AlreadyVoted,
    /// The round is already decided.
    #[index(11)]
    #[error("round {0} is already decided")]
    RoundDecided(u64),
    /// The report maps a port the workload does not declare, or one port twice.
    #[index(12)]
    #[error("port {0} is not declared by the workload or is mapped twice")]
    UndeclaredPort(u16),
    /// The endpoint is not `host:port` with the provider's own host (not loopback) and the
    /// health port's published port.
    #[index(13)]
    #[error("the endpoint must be the provider's host and the health port's published port")]
    EndpointMismatch,
}

storage! {
    module = INDEX;
    /// Provisioners by account.
    pub Provisioners: map(0) Address => Provisioner;
    /// Accounts eligible for tasks (stake at or above the minimum), ascending.
    pub Eligible: value(1) BoundedVec<Address, PROVISIONERS_MAX>;
    /// Assignments of the active environments.
    pub Assignments: map(2) EnvironmentId => Assignment;
    /// The minimum stake, smallest unit.
    pub MinimumStake: value(3) Amount = DEFAULT_MINIMUM_STAKE;
}
