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
//! | 4 [`Params`] | | [`Parameters`], default [`Parameters::default`] |
//! | 5 [`Departures`] | | the provisioners that left in the last [`DEPARTURES_KEPT_BLOCKS`] blocks ([`Departed`], at most [`DEPARTURES_MAX`]) |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::RegisterProvisioner`] | anyone (the stake is reserved) |
//! | 1 | [`Call::DeregisterProvisioner`] | a provisioner assigned to no active environment |
//! | 2 | [`Call::Report`] | the environment's assigned provisioner |
//! | 3 | [`Call::CrossCheck`] | a checker drawn for the round |
//! | 4 | [`Call::SetMinimumStake`] | privileged |
//! | 5 | [`Call::SetParameters`] | privileged |

use crate::{
    calls,
    codec::BoundedVec,
    dvci::{Endpoint, ProviderId},
    errors, events,
    operations::{EnvironmentId, Message, Phase, PortMapping},
    record, storage,
    workload::PORTS_MAX,
};
use logos_primitives::{Address, Amount, ChainId, KeySignature};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "provisioning";
/// Module index of `provisioning`: storage prefix, call routing, error index.
pub const INDEX: u8 = 4;

/// Most registered provisioners.
pub const PROVISIONERS_MAX: usize = 128;
/// Most provisioners that may leave within [`DEPARTURES_KEPT_BLOCKS`] blocks.
pub const DEPARTURES_MAX: usize = 16;
/// Blocks a departed provisioner is remembered for: a draw whose randomness (known once the
/// parent block exists) was known before it left still counts it, so that leaving cannot steer a
/// draw (`attestation`'s challenger draw).
pub const DEPARTURES_KEPT_BLOCKS: u64 = 2;
/// Most cross-checkers a round can draw ([`Parameters::checkers`] is at most this).
pub const CHECKERS_MAX: usize = 7;
/// Minimum stake unless changed, smallest unit.
pub const DEFAULT_MINIMUM_STAKE: Amount = Amount(1_000_000);
/// Share of the stake slashed for a contradicted report, percent.
pub const SLASH_PERCENT: u8 = 10;

/// The settings of verification (privileged: [`Call::SetParameters`]).
#[record]
#[derive(Copy)]
pub struct Parameters {
    /// Cross-checkers drawn per round, 1 to [`CHECKERS_MAX`]; a quorum is a majority of them.
    pub checkers: u8,
    /// Eligible provisioners a new lease needs (besides any of its provider's owner), at least
    /// `checkers + 1`: an assignee and a full round of checkers. Below it leases are refused.
    pub min_provisioners: u8,
    /// Blocks between the block that includes a `Running` report and the block whose
    /// randomness draws its checkers (at least 2: that randomness is known only once a block
    /// after the report's exists, so the report's own proposer cannot know or grind it).
    pub draw_delay_blocks: u64,
    /// Share of a checker's stake taken when it votes against the quorum or does not answer
    /// before the round times out, percent.
    pub checker_slash_percent: u8,
    /// Share of a provider's bond taken when a quorum observes its fault, percent.
    pub provider_slash_percent: u8,
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            checkers: 3,
            min_provisioners: 4,
            draw_delay_blocks: 2,
            checker_slash_percent: 2,
            provider_slash_percent: 5,
        }
    }
}

impl Parameters {
    /// Checks the bounds stated on each field.
    pub fn check(&self) -> Result<(), Error> {
        let checkers = usize::from(self.checkers);
        let valid = (1..=CHECKERS_MAX).contains(&checkers)
            && self.min_provisioners > self.checkers
            && self.draw_delay_blocks >= 2
            && self.checker_slash_percent <= 100
            && self.provider_slash_percent <= 100;
        if !valid {
            return Err(Error::InvalidParameters);
        }
        Ok(())
    }
}

/// What a cross-checker observed about a `Running` report. Blame follows what was observed: a
/// quorum of [`Verdict::Confirmed`] verifies the environment, of [`Verdict::Contradicted`]
/// slashes the assignee, of provider faults ([`Verdict::AgentUnreachable`],
/// [`Verdict::EndpointDead`] and [`Verdict::SpecMismatch`] together) slashes the provider's
/// bond. Wire: one byte, the index.
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The provider's agent says the workload runs as reported and the checker's own probe of
    /// the endpoint passes.
    #[index(0)]
    Confirmed,
    /// The agent answers but says otherwise (not running, another generation, endpoint or
    /// port mapping): the assignee's report is false.
    #[index(1)]
    Contradicted,
    /// The provider's agent does not answer (or not with a valid signed observation).
    #[index(2)]
    AgentUnreachable,
    /// The agent says the workload runs as reported but the endpoint does not pass the probe.
    #[index(3)]
    EndpointDead,
    /// The agent says the reported generation is there but its workload stopped (exited,
    /// OOM-killed): after the agent's attestation nobody lied (a workload may stop at any
    /// time; the tenant may stop it on purpose); without one, the report is contradicted.
    #[index(5)]
    Stopped,
    /// The agent's signed observation shows another image digest or other resource limits
    /// than the desired spec: the provider does not run what was leased.
    #[index(4)]
    SpecMismatch,
}

/// Who a round's outcome blames. Wire: one byte, the index.
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A quorum confirmed the report.
    #[index(0)]
    Confirmed,
    /// A quorum contradicted the report: the assignee.
    #[index(1)]
    AssigneeFault,
    /// A quorum observed the provider's agent unreachable, its endpoint dead or another spec
    /// than leased, or contradicted what its agent attested: the provider.
    #[index(2)]
    ProviderFault,
    /// A quorum found the attested workload stopped: nobody is blamed, nothing verified.
    #[index(3)]
    Stopped,
}

impl Verdict {
    /// The outcome a quorum of this verdict (with those of its class) gives.
    pub fn outcome(self) -> Outcome {
        match self {
            Verdict::Confirmed => Outcome::Confirmed,
            Verdict::Contradicted => Outcome::AssigneeFault,
            Verdict::Stopped => Outcome::Stopped,
            Verdict::AgentUnreachable | Verdict::EndpointDead | Verdict::SpecMismatch => {
                Outcome::ProviderFault
            }
        }
    }
}

/// Who was paid for an environment's verified service: the assignee and the checkers that
/// confirmed its last verifying round.
#[record]
#[derive(Default)]
pub struct Verifiers {
    /// The round that verified it.
    pub round: u64,
    /// The assignee whose report was confirmed.
    pub assignee: Option<Address>,
    /// The checkers that confirmed it.
    pub checkers: BoundedVec<Address, CHECKERS_MAX>,
}
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

/// A provisioner that left, remembered for [`DEPARTURES_KEPT_BLOCKS`] blocks.
#[record]
pub struct Departed {
    /// Its account.
    pub account: Address,
    /// The stake it had, smallest unit.
    pub stake: Amount,
    /// Height it had registered at.
    pub registered_at: u64,
    /// Height it left at.
    pub left_at: u64,
}

/// Namespace of an agent's signature over [`attestation_message`].
pub const ATTESTATION_NAMESPACE: &[u8] = b"logos-agent-attestation-v1";

/// The provider's agent's word that an environment runs: its signature (by the provider's
/// `agent_key`) over [`attestation_message`] of the report's generation, endpoint and port
/// mappings, for the assignee that asked and until the height its request expired at. A
/// `Running` report that carries one is the agent's own claim: if checkers later find the
/// environment absent or elsewhere, the provider contradicted itself and is blamed, not the
/// assignee that relayed it. Only that assignee can use it, and only until `expires_at`.
#[record]
pub struct Attestation {
    /// The nonce of the request the agent answered.
    pub nonce: u64,
    /// The last height at which the attestation may be reported (the request's expiry).
    pub expires_at: u64,
    /// The agent's signature.
    pub signature: KeySignature,
}

/// Furthest ahead of the reporting height an attestation's `expires_at` may be, blocks.
pub const ATTESTATION_EXPIRY_MAX_BLOCKS: u64 = 1_200;

/// What an agent attests: `environment` (on `provider`) runs `generation` at `endpoint` with
/// `ports`, said to `assignee` (the request's signer) until `expires_at`.
#[derive(Clone, Copy, Debug)]
pub struct Attested<'a> {
    /// The provider.
    pub provider: ProviderId,
    /// The environment.
    pub environment: EnvironmentId,
    /// The generation running.
    pub generation: u64,
    /// Where its health port is published.
    pub endpoint: &'a str,
    /// Its declared ports' published ports.
    pub ports: &'a [PortMapping],
    /// Who asked (the only account that may report it).
    pub assignee: Address,
    /// The last height it may be reported at.
    pub expires_at: u64,
}

/// The bytes an agent signs for `attested` on chain `chain_id`, answering the request with
/// `nonce`.
pub fn attestation_message(chain_id: &ChainId, attested: &Attested<'_>, nonce: u64) -> Vec<u8> {
    let Attested {
        provider,
        environment,
        generation,
        endpoint,
        ports,
        assignee,
        expires_at,
    } = *attested;
    let mut message = chain_id.0.as_ref().to_vec();
    message.extend_from_slice(assignee.as_bytes());
    message.extend_from_slice(&expires_at.to_be_bytes());
    message.extend_from_slice(&provider.get().to_be_bytes());
    message.extend_from_slice(&environment.get().to_be_bytes());
    message.extend_from_slice(&generation.to_be_bytes());
    message.extend_from_slice(&(endpoint.len() as u64).to_be_bytes());
    message.extend_from_slice(endpoint.as_bytes());
    message.extend_from_slice(&(ports.len() as u64).to_be_bytes());
    for mapping in ports {
        message.extend_from_slice(&mapping.port.to_be_bytes());
        message.extend_from_slice(&mapping.published.to_be_bytes());
    }
    message.extend_from_slice(&nonce.to_be_bytes());
    message
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
    /// The agent's attestation of a `Running` report (none: the assignee's word alone).
    pub attestation: Option<Attestation>,
}

impl Report {
    /// True if `other` says the same, whatever either's message or attestation (a reworded
    /// report, or a fresh attestation of the same facts, is not a new report).
    pub fn same_as(&self, other: &Report) -> bool {
        (self.generation, self.phase, &self.endpoint, &self.ports)
            == (other.generation, other.phase, &other.endpoint, &other.ports)
    }
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
    /// Height the round opened at (its report's inclusion, a redraw or a recheck), then the
    /// height its checkers were drawn at.
    pub round_opened_at: u64,
    /// The height whose block randomness draws the round's checkers, while they are not drawn.
    pub draw_at: Option<u64>,
    /// The provisioners drawn to cross-check the report in this round.
    pub checkers: BoundedVec<Address, CHECKERS_MAX>,
    /// Their verdicts.
    pub votes: BoundedVec<(Address, Verdict), CHECKERS_MAX>,
    /// How the round ended (none while it is open or no round checks the report).
    pub outcome: Option<Outcome>,
    /// Since when the reports on the current generation say the workload is not running
    /// (none: the last report says `Running`, or no report yet).
    pub stuck_since: Option<u64>,
    /// After a provider fault or a stopped workload: (generation, height) until which no new
    /// `Running` report on that generation is taken ([`Error::RecheckPending`]).
    pub quiet_until: Option<(u64, u64)>,
    /// Who verified the environment last (paid while it is billed).
    pub verifiers: Verifiers,
    /// Provisioners removed from this environment for a missing or contradicted report.
    pub replaced: BoundedVec<Address, PROVISIONERS_MAX>,
}

impl Assignment {
    /// True while a round checks the current report: it is `Running` and no outcome ended the
    /// round (its checkers may not be drawn yet).
    pub fn round_open(&self) -> bool {
        let running = self
            .report
            .as_ref()
            .is_some_and(|report| report.phase == Phase::Running);
        running && self.outcome.is_none()
    }

    /// True once the current round ended (by a quorum).
    pub fn decided(&self) -> bool {
        self.outcome.is_some()
    }

    /// Votes that decide the current round: a majority of the checkers it drew.
    pub fn quorum(&self) -> usize {
        (self.checkers.len() / 2).saturating_add(1)
    }

    /// Votes of the current round whose verdict gives `outcome`.
    pub fn tally(&self, outcome: Outcome) -> usize {
        self.votes
            .iter()
            .filter(|(_, verdict)| verdict.outcome() == outcome)
            .count()
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
    /// The previous assignee reported the workload not running for
    /// [`REPORT_TIMEOUT_BLOCKS`]: another provisioner tries.
    NotRunning,
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
    /// (drawn cross-checker) Say what was observed of the report of round `round`.
    #[index(3)]
    CrossCheck {
        /// The environment.
        environment: EnvironmentId,
        /// The round voted on.
        round: u64,
        /// What the checker observed.
        verdict: Verdict,
    },
    /// (privileged) Set the minimum stake.
    #[index(4)]
    SetMinimumStake {
        /// Smallest unit.
        stake: Amount,
    },
    /// (privileged) Set the verification parameters.
    #[index(5)]
    SetParameters {
        /// The new parameters (bounds: [`Parameters::check`]).
        parameters: Parameters,
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
    /// A `Running` report opened a cross-check round (or a round was reopened on it); its
    /// checkers are drawn with the randomness of block `draw_at`.
    RoundOpened {
        /// The environment.
        environment: EnvironmentId,
        /// The round.
        round: u64,
        /// Height whose block randomness draws the checkers.
        draw_at: u64,
    },
    /// A round ended without a quorum (it timed out, or its verdicts split); a new one opens.
    RoundExpired {
        /// The environment.
        environment: EnvironmentId,
        /// The round.
        round: u64,
        /// Checkers that did not answer (each slashed).
        silent: Vec<Address>,
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
        /// What it observed.
        verdict: Verdict,
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
        /// The round.
        round: u64,
        /// The quorum's verdicts (the evidence): checker and what it observed.
        evidence: Vec<(Address, Verdict)>,
        /// Amount moved from its stake to the community pool, smallest unit.
        amount: Amount,
    },
    /// A checker lost part of its stake: it voted against the round's quorum, or did not
    /// answer before the round timed out.
    CheckerSlashed {
        /// The checker.
        checker: Address,
        /// The environment.
        environment: EnvironmentId,
        /// The round.
        round: u64,
        /// Its verdict (none: it did not answer).
        verdict: Option<Verdict>,
        /// The round's outcome it went against (none: the round timed out).
        outcome: Option<Outcome>,
        /// Amount moved from its stake to the community pool, smallest unit.
        amount: Amount,
    },
    /// A quorum of checkers observed the provider's fault: part of its bond was taken and
    /// its reliability lowered.
    ProviderSlashed {
        /// The provider.
        provider: ProviderId,
        /// The environment observed.
        environment: EnvironmentId,
        /// The round.
        round: u64,
        /// The quorum's verdicts (the evidence): checker and what it observed.
        evidence: Vec<(Address, Verdict)>,
        /// Amount moved from its bond to the community pool, smallest unit.
        amount: Amount,
    },
    /// The verification parameters changed.
    ParametersSet {
        /// The new parameters.
        parameters: Parameters,
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
    /// A round checks the assignee's last report: no new report about the same generation
    /// until it ends.
    #[index(14)]
    #[error("round {0} checks the last report; no new report until it ends")]
    RoundOpen(u64),
    /// Too few eligible provisioners (other than the provider's owner) to assign and check a
    /// new environment.
    #[index(15)]
    #[error("{eligible} eligible provisioners; verification needs {needed}")]
    TooFewProvisioners {
        /// Eligible now.
        eligible: u64,
        /// Needed ([`Parameters::min_provisioners`]).
        needed: u64,
    },
    /// The parameters are out of their bounds.
    #[index(16)]
    #[error("parameters out of bounds (1 to 7 checkers, more provisioners than checkers, a draw delay of at least 2, percents up to 100)")]
    InvalidParameters,
    /// The attestation is not the provider's agent's signature over the report for the
    /// sender, or it expired (or the provider has no agent key, or the report is not
    /// `Running`).
    #[index(17)]
    #[error("the attestation is not the provider's agent's signature of this report for the sender, or it expired")]
    BadAttestation,
    /// A quorum just found a fault in this generation's `Running` report: another one waits
    /// for the recheck ([`CHECK_TIMEOUT_BLOCKS`] after that round), so rounds cannot be
    /// re-rolled.
    #[index(18)]
    #[error("round {0} found a fault; a new Running report waits for its recheck")]
    RecheckPending(u64),
    /// [`DEPARTURES_MAX`] provisioners left in the last [`DEPARTURES_KEPT_BLOCKS`] blocks:
    /// leave a few blocks later.
    #[index(19)]
    #[error("too many provisioners are leaving now; try again in a few blocks")]
    TooManyDepartures,
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
    /// The verification parameters.
    pub Params: value(4) Parameters = Parameters::default();
    /// The provisioners that left lately (see [`DEPARTURES_KEPT_BLOCKS`]).
    pub Departures: value(5) BoundedVec<Departed, DEPARTURES_MAX>;
}
