//! Types of the `provisioning` module.

use crate::{
    modules::{
        dvci::ENDPOINT_MAX_BYTES,
        operations::{EnvironmentId, Phase, MESSAGE_MAX_BYTES},
    },
    storage::{read_text, text_size, write_text},
};
use bytes::BufMut;
use commonware_codec::{
    Buf, EncodeSize, Error as CodecError, FixedSize, RangeCfg, Read, ReadExt, Write,
};
use logos_primitives::{Address, Amount};

/// Most registered provisioners.
pub const PROVISIONERS_MAX: usize = 128;
/// Cross-checkers drawn per round (fewer if fewer other provisioners exist).
pub const CHECKERS: usize = 2;

/// A registered provisioner.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provisioner {
    /// Stake reserved from its account, smallest unit.
    pub stake: Amount,
    /// Total slashed so far, smallest unit.
    pub slashed: Amount,
    /// Height it registered at.
    pub registered_at: u64,
}

impl Write for Provisioner {
    fn write(&self, buf: &mut impl BufMut) {
        self.stake.write(buf);
        self.slashed.write(buf);
        self.registered_at.write(buf);
    }
}

impl FixedSize for Provisioner {
    const SIZE: usize = 2 * Amount::SIZE + 8;
}

impl Read for Provisioner {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            stake: Amount::read(buf)?,
            slashed: Amount::read(buf)?,
            registered_at: u64::read(buf)?,
        })
    }
}

/// What the assigned provisioner observed about one generation of an environment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The generation observed.
    pub generation: u64,
    /// The phase observed.
    pub phase: Phase,
    /// Where the workload's health port is reachable (`ip:port`), empty if nowhere.
    pub endpoint: String,
    /// Why (a CamelCase reason, then details), e.g. `HealthCheckPassed` or `OOMKilled: …`.
    pub message: String,
}

impl Write for Report {
    fn write(&self, buf: &mut impl BufMut) {
        self.generation.write(buf);
        self.phase.write(buf);
        write_text(&self.endpoint, buf);
        write_text(&self.message, buf);
    }
}

impl EncodeSize for Report {
    fn encode_size(&self) -> usize {
        8 + 1 + text_size(&self.endpoint) + text_size(&self.message)
    }
}

impl Read for Report {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            generation: u64::read(buf)?,
            phase: Phase::read(buf)?,
            endpoint: read_text(buf, ENDPOINT_MAX_BYTES)?,
            message: read_text(buf, MESSAGE_MAX_BYTES)?,
        })
    }
}

/// Who realizes an environment and who checks it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    pub checkers: Vec<Address>,
    /// Their votes: agrees with the report or not.
    pub votes: Vec<(Address, bool)>,
    /// Provisioners removed from this environment for a missing or contradicted report.
    pub replaced: Vec<Address>,
}

impl Assignment {
    /// Votes that decide a round: a majority of its checkers.
    pub fn quorum(&self) -> usize {
        self.checkers.len() / 2 + 1
    }

    /// (agreeing, disagreeing) votes of the current round.
    pub fn tally(&self) -> (usize, usize) {
        let agreeing = self.votes.iter().filter(|(_, agrees)| *agrees).count();
        (agreeing, self.votes.len() - agreeing)
    }

    /// True once a quorum of the round's checkers agreed. (A disagreeing quorum reassigns the
    /// environment, which clears the round.)
    pub fn decided(&self) -> bool {
        !self.checkers.is_empty() && self.tally().0 >= self.quorum()
    }
}

impl Write for Assignment {
    fn write(&self, buf: &mut impl BufMut) {
        self.assigned.write(buf);
        self.assigned_at.write(buf);
        self.report.write(buf);
        self.round.write(buf);
        self.round_opened_at.write(buf);
        self.checkers.write(buf);
        self.votes.write(buf);
        self.replaced.write(buf);
    }
}

impl EncodeSize for Assignment {
    fn encode_size(&self) -> usize {
        self.assigned.encode_size()
            + 8
            + self.report.encode_size()
            + 16
            + self.checkers.encode_size()
            + self.votes.encode_size()
            + self.replaced.encode_size()
    }
}

impl Read for Assignment {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let checkers = (RangeCfg::new(0..=CHECKERS), ());
        Ok(Self {
            assigned: Option::<Address>::read(buf)?,
            assigned_at: u64::read(buf)?,
            report: Option::<Report>::read(buf)?,
            round: u64::read(buf)?,
            round_opened_at: u64::read(buf)?,
            checkers: Vec::<Address>::read_cfg(buf, &checkers)?,
            votes: Vec::<(Address, bool)>::read_cfg(buf, &(RangeCfg::new(0..=CHECKERS), ((), ())))?,
            replaced: Vec::<Address>::read_cfg(buf, &(RangeCfg::new(0..=PROVISIONERS_MAX), ()))?,
        })
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

/// Calls of the `provisioning` module (call index first on the wire).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// 0: register the sender as a provisioner, reserving `stake` (at least the minimum).
    RegisterProvisioner {
        /// Stake, smallest unit.
        stake: Amount,
    },
    /// 1: leave and get the remaining stake back; only while assigned to no active environment.
    DeregisterProvisioner,
    /// 2 (assigned provisioner): report the observed state of the current generation.
    Report {
        /// The environment.
        environment: EnvironmentId,
        /// What was observed.
        report: Report,
    },
    /// 3 (drawn cross-checker): agree or disagree with the report of round `round`.
    CrossCheck {
        /// The environment.
        environment: EnvironmentId,
        /// The round voted on.
        round: u64,
        /// True if the checker observed what the report says.
        agrees: bool,
    },
    /// 4 (privileged): set the minimum stake.
    SetMinimumStake {
        /// Smallest unit.
        stake: Amount,
    },
}

impl Write for Call {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Call::RegisterProvisioner { stake } => {
                0u8.write(buf);
                stake.write(buf);
            }
            Call::DeregisterProvisioner => 1u8.write(buf),
            Call::Report {
                environment,
                report,
            } => {
                2u8.write(buf);
                environment.write(buf);
                report.write(buf);
            }
            Call::CrossCheck {
                environment,
                round,
                agrees,
            } => {
                3u8.write(buf);
                environment.write(buf);
                round.write(buf);
                agrees.write(buf);
            }
            Call::SetMinimumStake { stake } => {
                4u8.write(buf);
                stake.write(buf);
            }
        }
    }
}

impl EncodeSize for Call {
    fn encode_size(&self) -> usize {
        1 + match self {
            Call::RegisterProvisioner { .. } | Call::SetMinimumStake { .. } => Amount::SIZE,
            Call::DeregisterProvisioner => 0,
            Call::Report { report, .. } => 8 + report.encode_size(),
            Call::CrossCheck { .. } => 8 + 8 + 1,
        }
    }
}

impl Read for Call {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(Call::RegisterProvisioner {
                stake: Amount::read(buf)?,
            }),
            1 => Ok(Call::DeregisterProvisioner),
            2 => Ok(Call::Report {
                environment: EnvironmentId::read(buf)?,
                report: Report::read(buf)?,
            }),
            3 => Ok(Call::CrossCheck {
                environment: EnvironmentId::read(buf)?,
                round: u64::read(buf)?,
                agrees: bool::read(buf)?,
            }),
            4 => Ok(Call::SetMinimumStake {
                stake: Amount::read(buf)?,
            }),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

/// Events of the `provisioning` module.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
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

/// Errors of the `provisioning` module.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The call needs the privileged origin.
    #[error("the call needs the privileged origin")]
    NotPrivileged,
    /// The stake is below the minimum.
    #[error("stake below the minimum of {minimum}")]
    StakeTooLow {
        /// The minimum.
        minimum: Amount,
    },
    /// The stake could not be reserved.
    #[error("stake could not be reserved: {0}")]
    StakeUnpaid(String),
    /// The sender is already a provisioner.
    #[error("already registered")]
    AlreadyRegistered,
    /// The sender is not a provisioner.
    #[error("not a registered provisioner")]
    NotRegistered,
    /// The provisioner set is full.
    #[error("provisioner set is full")]
    TooManyProvisioners,
    /// The provisioner is still assigned to an active environment.
    #[error("still assigned to environment {0}")]
    StillAssigned(EnvironmentId),
    /// No such active environment.
    #[error("unknown or inactive environment {0}")]
    UnknownEnvironment(EnvironmentId),
    /// The sender is not the environment's assigned provisioner.
    #[error("not the assigned provisioner of environment {0}")]
    NotAssigned(EnvironmentId),
    /// The report is about another generation than the current one.
    #[error("generation {reported} is not the current generation {current}")]
    WrongGeneration {
        /// The report's.
        reported: u64,
        /// The chain's.
        current: u64,
    },
    /// The report repeats the last one.
    #[error("report unchanged")]
    UnchangedReport,
    /// The sender is not a checker of this round, or the round is not the current one.
    #[error("not a cross-checker of round {0}")]
    NotChecker(u64),
    /// The checker already voted in this round.
    #[error("already voted")]
    AlreadyVoted,
    /// The round is already decided.
    #[error("round {0} is already decided")]
    RoundDecided(u64),
}
