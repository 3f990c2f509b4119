//! The provisioner's decisions, pure: given the desired state, what was observed and the
//! assignment, which effects to carry out. No I/O here; [`crate::Provisioner`] observes,
//! calls [`decide`] or [`decide_vote`], and hands each [`Effect`] to its [`crate::Effects`].
//!
//! Reconciling an assigned environment (level-triggered: the decision depends only on the
//! latest observation, never on what happened before):
//!
//! | desired | agent says | effects |
//! |---|---|---|
//! | any | nothing (unreachable) | retry later |
//! | Running | refused to realize it (e.g. its image: `ImageRefused`) | report `Failed` with the agent's reason, retry later |
//! | Destroyed | it exists | destroy |
//! | Destroyed | it is absent | report `Destroyed` |
//! | Running | absent, or another generation | ensure |
//! | Running | stopped (exited, OOM-killed) | report `Failed` with why, retry later; once that is reported: ensure (restart) |
//! | Running | running, health check passes, attested by the agent | report `Running` at its endpoint, with the attestation |
//! | Running | running, health check passes, not attested | retry later |
//! | Running | running, health check fails | report `Pending`, recheck soon (it is starting) |
//!
//! A report already on chain (or submitted and not yet final) is not submitted again.
//!
//! Cross-checking: a checker of the current, undecided round gives a [`Verdict`] from what it
//! observed itself, so that blame falls where the fault is:
//!
//! | the provider's agent | the checker's own probe of the endpoint | verdict |
//! |---|---|---|
//! | does not answer | — | `AgentUnreachable` (the provider) |
//! | says the reported generation runs at the reported endpoint and ports | passes | `Confirmed` |
//! | says so | fails | `EndpointDead` (the provider) |
//! | says so, with another image digest or other limits than the desired spec | — | `SpecMismatch` (the provider) |
//! | says the reported generation's workload stopped (exited, OOM-killed) | — | `Stopped` (nobody if the report was attested, else the assignee) |
//! | says anything else (absent, refused, other generation, endpoint or ports) | — | `Contradicted` (the assignee; the provider if the report was attested) |
//!
//! A verdict that blames the provider for what may be a blip (`AgentUnreachable`,
//! `EndpointDead`) is given only once the round is [`PROVIDER_BLAME_PATIENCE_BLOCKS`] old
//! ([`vote_now`]); until then the checker observes again.

use logos_api::agent::{Observation, Refused, WorkloadState};
use logos_primitives::Address;
use logos_types::{
    dvci::Endpoint,
    operations::{Desired, Environment, Message, Phase, PortMapping, Spec},
    provisioning::{Assignment, Report, Verdict},
};

/// What the provider's agent says about an environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentView {
    /// The agent did not answer (or answered something unreadable).
    Unreachable(String),
    /// The agent has no such environment.
    Absent,
    /// The agent runs (or ran) it.
    Present(Observation),
    /// The agent refused to realize it, and said why.
    Refused(Refused),
}

/// Everything observed about one environment before deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The agent's view.
    pub agent: AgentView,
    /// The probe of the workload's health endpoint (made when the agent says it runs).
    pub health: Option<Result<(), String>>,
}

/// What the provisioner does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Ask the agent to create, recreate or restart the current generation (resumes with the
    /// agent's new view).
    Ensure,
    /// Ask the agent to remove the environment (resumes with it absent).
    Destroy,
    /// Submit this report on chain.
    Report(Report),
    /// Vote in the cross-check round.
    Vote {
        /// The round.
        round: u64,
        /// What was observed.
        verdict: Verdict,
    },
    /// Come back after a backoff: the environment is not where it should be yet.
    Retry(String),
    /// Come back soon: the workload runs and its health check does not pass yet, which is
    /// what a starting workload looks like (the backoff is capped lower than [`Effect::Retry`]'s).
    Recheck(String),
}

fn report(generation: u64, phase: Phase, endpoint: &str, message: &str) -> Report {
    Report {
        generation,
        phase,
        endpoint: Endpoint::truncated(endpoint),
        ports: Default::default(),
        message: Message::truncated(message),
        attestation: None,
    }
}

/// A report of what `observation` shows: its endpoint and port mappings (at most
/// `PORTS_MAX`, the chain refuses undeclared ones), and for `Running` the agent's attestation
/// of them.
fn observed_report(
    generation: u64,
    phase: Phase,
    observation: &Observation,
    message: &str,
) -> Report {
    let mut report = report(generation, phase, &observation.endpoint, message);
    let ports: Vec<PortMapping> = observation
        .ports
        .iter()
        .take(logos_types::workload::PORTS_MAX)
        .copied()
        .collect();
    report.ports = ports.try_into().unwrap_or_default();
    if phase == Phase::Running {
        report.attestation = observation.attestation.clone();
    }
    report
}

/// The `Failed` report of a stopped workload.
fn stopped(generation: u64, workload: &WorkloadState) -> Option<Report> {
    let message = match workload {
        WorkloadState::Running => return None,
        WorkloadState::OomKilled { limit_mib } => {
            format!("OOMKilled: exceeded its memory limit of {limit_mib} MiB; restarting")
        }
        WorkloadState::Exited { code } => format!("Exited: status {code:?}; restarting"),
    };
    Some(report(generation, Phase::Failed, "", &message))
}

/// Reconciles one environment (see the module docs). `submitted` is the last report this
/// provisioner submitted that may not be final yet.
pub fn decide(
    me: Address,
    desired: &Environment,
    observed: &Observed,
    assignment: &Assignment,
    submitted: Option<&Report>,
) -> Vec<Effect> {
    if assignment.assigned != Some(me) {
        return Vec::new();
    }
    let generation = desired.generation;
    let new = |report: Report| {
        let same = |known: Option<&Report>| known.is_some_and(|known| known.same_as(&report));
        let known = same(assignment.report.as_ref()) || same(submitted);
        (!known).then_some(Effect::Report(report))
    };
    let observation = match (&observed.agent, desired.desired) {
        (AgentView::Unreachable(reason), _) => {
            return vec![Effect::Retry(format!("agent unreachable: {reason}"))]
        }
        (AgentView::Present(_), Desired::Destroyed) => return vec![Effect::Destroy],
        (AgentView::Absent, Desired::Destroyed) => {
            return new(report(generation, Phase::Destroyed, "", "Destroyed"))
                .into_iter()
                .collect();
        }
        (AgentView::Absent, Desired::Running) => return vec![Effect::Ensure],
        (AgentView::Refused(refused), Desired::Running) => {
            let message = format!("{}: {}", refused.reason, refused.error);
            let failed = report(generation, Phase::Failed, "", &message);
            let retry = Effect::Retry(format!("agent refused: {}", refused.error));
            return new(failed).into_iter().chain([retry]).collect();
        }
        (AgentView::Refused(_), Desired::Destroyed) => return vec![Effect::Destroy],
        (AgentView::Present(observation), Desired::Running) => observation,
    };
    if observation.generation != generation {
        return vec![Effect::Ensure];
    }
    if let Some(failure) = stopped(generation, &observation.workload) {
        return match new(failure) {
            // Reported first (with why), restored next time.
            Some(effect) => vec![effect, Effect::Retry("workload stopped".into())],
            None => vec![Effect::Ensure],
        };
    }
    match &observed.health {
        // Reported `Running` only on the agent's attested word: a provider that withholds it
        // cannot later deny it to the checkers and have the assignee blamed.
        Some(Ok(())) if observation.attestation.is_none() => {
            vec![Effect::Retry(
                "the agent did not attest that it runs".into(),
            )]
        }
        Some(Ok(())) => new(observed_report(
            generation,
            Phase::Running,
            observation,
            "HealthCheckPassed",
        ))
        .into_iter()
        .collect(),
        failing => {
            let why = match failing {
                Some(Err(reason)) => reason.clone(),
                _ => "not probed".into(),
            };
            let starting = observed_report(
                generation,
                Phase::Pending,
                observation,
                "Starting: health check not passing yet",
            );
            new(starting)
                .into_iter()
                .chain([Effect::Recheck(format!("health check: {why}"))])
                .collect()
        }
    }
}

/// True if `me` should reconcile the environment of `assignment`.
pub fn assigned_to(me: Address, assignment: &Assignment) -> bool {
    assignment.assigned == Some(me)
}

/// True if `me` is a checker of the current round, has not voted, and there is something to
/// check (a drawn, undecided round on a `Running` report).
pub fn must_vote(me: Address, assignment: &Assignment) -> bool {
    assignment.round_open()
        && assignment.draw_at.is_none()
        && assignment.checkers.contains(&me)
        && !assignment.voted(&me)
}

/// Blocks a round must be old (since its draw) before a checker blames the provider for what
/// may be a blip: well inside `CHECK_TIMEOUT_BLOCKS` (600), so a patient checker is never
/// silent.
pub const PROVIDER_BLAME_PATIENCE_BLOCKS: u64 = 200;

// A patient checker (the queue's backoff is at most 8 s: 320 blocks at 40 blocks/s) still
// answers before the round times out.
const _: () =
    assert!(PROVIDER_BLAME_PATIENCE_BLOCKS + 320 < logos_types::provisioning::CHECK_TIMEOUT_BLOCKS);

/// Whether to vote `verdict` now, `round_age_blocks` after the round's draw: at once, unless it
/// blames the provider for what a later observation may not show.
pub fn vote_now(verdict: Verdict, round_age_blocks: u64) -> bool {
    let transient = matches!(verdict, Verdict::AgentUnreachable | Verdict::EndpointDead);
    !transient || round_age_blocks >= PROVIDER_BLAME_PATIENCE_BLOCKS
}

/// What was observed of `report` against the desired `spec` (see the module docs): the agent's
/// signed view and the checker's own probe of the reported endpoint.
pub fn verdict(
    report: &Report,
    spec: &Spec,
    agent: &AgentView,
    probe: &Result<(), String>,
) -> Verdict {
    let observation = match agent {
        AgentView::Unreachable(_) => return Verdict::AgentUnreachable,
        AgentView::Present(observation) => observation,
        AgentView::Absent | AgentView::Refused(_) => return Verdict::Contradicted,
    };
    let generation = observation.generation == report.generation;
    if generation && observation.workload != WorkloadState::Running {
        return Verdict::Stopped;
    }
    let as_reported = generation
        && observation.workload == WorkloadState::Running
        && observation.endpoint == report.endpoint.as_str()
        && observation.ports.iter().eq(report.ports.iter());
    let digest = spec
        .workload
        .image
        .rsplit_once('@')
        .map(|(_, digest)| digest);
    let as_desired =
        digest == Some(observation.image.as_str()) && observation.limits == spec.resources;
    match (as_reported, as_desired, probe) {
        (false, _, _) => Verdict::Contradicted,
        (true, false, _) => Verdict::SpecMismatch,
        (true, true, Ok(())) => Verdict::Confirmed,
        (true, true, Err(_)) => Verdict::EndpointDead,
    }
}

/// The vote of `me` on `round` of `assignment`, or nothing if the round moved on, is decided,
/// or is not `me`'s to check.
pub fn decide_vote(
    me: Address,
    round: u64,
    assignment: &Assignment,
    spec: &Spec,
    agent: &AgentView,
    probe: &Result<(), String>,
) -> Vec<Effect> {
    if assignment.round != round || !must_vote(me, assignment) {
        return Vec::new();
    }
    let Some(report) = assignment.report.as_ref() else {
        return Vec::new();
    };
    vec![Effect::Vote {
        round,
        verdict: verdict(report, spec, agent, probe),
    }]
}

#[cfg(test)]
mod tests;
