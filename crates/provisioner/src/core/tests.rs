//! Every effect of the provisioner's core, case by case.

use super::*;
use logos_api::agent::Observation;
use logos_types::provisioning::Outcome;
use logos_types::{
    catalog::TemplateId,
    dvci::ProviderId,
    operations::{EnvironmentId, Spec},
};

const ME: Address = Address([1; 20]);
const OTHER: Address = Address([2; 20]);
const ENDPOINT: &str = "10.88.1.2:8645";

fn environment(desired: Desired, generation: u64) -> Environment {
    let mut spec = Spec::default();
    spec.workload.health.port = 8645;
    let mut record = Environment::new(OTHER, ProviderId(0), TemplateId(0), spec, 1);
    record.generation = generation;
    record.desired = desired;
    record
}

fn assigned(to: Address) -> Assignment {
    Assignment {
        assigned: Some(to),
        ..Assignment::default()
    }
}

/// An attestation as the agent gives it (its signature is the chain's to check).
fn attestation() -> logos_types::provisioning::Attestation {
    logos_types::provisioning::Attestation {
        nonce: 1,
        expires_at: 100,
        signature: logos_primitives::KeySignature([7; 64]),
    }
}

fn present(generation: u64, workload: WorkloadState) -> AgentView {
    AgentView::Present(Observation {
        environment: EnvironmentId(0),
        generation,
        workload,
        endpoint: ENDPOINT.into(),
        ports: vec![PortMapping {
            port: 8645,
            published: 24_000,
        }],
        restarts: 0,
        image: "sha256:00".into(),
        started_at_ms: 1,
        limits: Default::default(),
        attestation: Some(attestation()),
    })
}

/// The desired spec the fixtures' observations match (image digest `sha256:00`, default
/// resources).
fn spec() -> Spec {
    let mut spec = Spec::default();
    spec.workload.image = "127.0.0.1:5000/x@sha256:00".try_into().unwrap();
    spec
}

fn observed(agent: AgentView, health: Option<Result<(), String>>) -> Observed {
    Observed { agent, health }
}

fn running_report(generation: u64) -> Report {
    let mut report = report(generation, Phase::Running, ENDPOINT, "HealthCheckPassed");
    report.ports = vec![PortMapping {
        port: 8645,
        published: 24_000,
    }]
    .try_into()
    .unwrap();
    report.attestation = Some(attestation());
    report
}

#[test]
fn nothing_to_do_unless_assigned() {
    let seen = observed(AgentView::Absent, None);
    let desired = environment(Desired::Running, 1);
    assert!(decide(ME, &desired, &seen, &assigned(OTHER), None).is_empty());
    assert!(decide(ME, &desired, &seen, &Assignment::default(), None).is_empty());
}

#[test]
fn an_unreachable_agent_is_retried() {
    let seen = observed(AgentView::Unreachable("refused".into()), None);
    for desired in [Desired::Running, Desired::Destroyed] {
        let effects = decide(ME, &environment(desired, 1), &seen, &assigned(ME), None);
        assert!(
            matches!(effects.as_slice(), [Effect::Retry(reason)] if reason.contains("refused"))
        );
    }
}

#[test]
fn running_is_ensured_when_absent_or_of_another_generation() {
    let desired = environment(Desired::Running, 2);
    let absent = observed(AgentView::Absent, None);
    assert_eq!(
        decide(ME, &desired, &absent, &assigned(ME), None),
        vec![Effect::Ensure]
    );
    let old = observed(present(1, WorkloadState::Running), Some(Ok(())));
    assert_eq!(
        decide(ME, &desired, &old, &assigned(ME), None),
        vec![Effect::Ensure]
    );
}

#[test]
fn a_healthy_workload_is_reported_running_once() {
    let desired = environment(Desired::Running, 1);
    let healthy = observed(present(1, WorkloadState::Running), Some(Ok(())));
    assert_eq!(
        decide(ME, &desired, &healthy, &assigned(ME), None),
        vec![Effect::Report(running_report(1))]
    );
    let mut reported = assigned(ME);
    reported.report = Some(running_report(1));
    assert!(
        decide(ME, &desired, &healthy, &reported, None).is_empty(),
        "on chain already"
    );
    let pending = running_report(1);
    assert!(
        decide(ME, &desired, &healthy, &assigned(ME), Some(&pending)).is_empty(),
        "submitted already"
    );
}

#[test]
fn an_unhealthy_workload_is_reported_pending_and_rechecked() {
    let desired = environment(Desired::Running, 1);
    let unhealthy = observed(present(1, WorkloadState::Running), Some(Err("503".into())));
    let effects = decide(ME, &desired, &unhealthy, &assigned(ME), None);
    assert!(matches!(
        effects.as_slice(),
        [Effect::Report(report), Effect::Recheck(reason)]
            if report.phase == Phase::Pending && reason.contains("503")
    ));
    let Effect::Report(starting) = effects[0].clone() else {
        unreachable!()
    };
    let again = decide(ME, &desired, &unhealthy, &assigned(ME), Some(&starting));
    assert!(
        matches!(again.as_slice(), [Effect::Recheck(_)]),
        "{again:?}"
    );
}

#[test]
fn a_stopped_workload_is_reported_then_restored() {
    let desired = environment(Desired::Running, 1);
    for workload in [
        WorkloadState::OomKilled { limit_mib: 64 },
        WorkloadState::Exited { code: Some(1) },
    ] {
        let stopped_view = observed(present(1, workload.clone()), None);
        let effects = decide(ME, &desired, &stopped_view, &assigned(ME), None);
        let [Effect::Report(failure), Effect::Retry(_)] = effects.as_slice() else {
            panic!("{effects:?}");
        };
        assert_eq!(failure.phase, Phase::Failed);
        let reason = match workload {
            WorkloadState::OomKilled { .. } => "OOMKilled",
            _ => "Exited",
        };
        assert!(failure.message.starts_with(reason), "{}", failure.message);
        let mut reported = assigned(ME);
        reported.report = Some(failure.clone());
        assert_eq!(
            decide(ME, &desired, &stopped_view, &reported, None),
            vec![Effect::Ensure],
            "restored once the failure is on chain"
        );
    }
}

#[test]
fn destroyed_is_removed_then_reported() {
    let desired = environment(Desired::Destroyed, 2);
    let there = observed(present(1, WorkloadState::Running), None);
    assert_eq!(
        decide(ME, &desired, &there, &assigned(ME), None),
        vec![Effect::Destroy]
    );
    let gone = observed(AgentView::Absent, None);
    let effects = decide(ME, &desired, &gone, &assigned(ME), None);
    assert!(matches!(
        effects.as_slice(),
        [Effect::Report(report)] if report.phase == Phase::Destroyed && report.generation == 2
    ));
    let Effect::Report(destroyed) = &effects[0] else {
        unreachable!()
    };
    assert!(decide(ME, &desired, &gone, &assigned(ME), Some(destroyed)).is_empty());
}

fn round(report: Report) -> Assignment {
    Assignment {
        assigned: Some(OTHER),
        report: Some(report),
        round: 4,
        checkers: vec![ME, Address([3; 20])].try_into().unwrap(),
        ..Assignment::default()
    }
}

#[test]
fn a_checkers_verdict_blames_what_it_observed() {
    let task = round(running_report(1));
    let running = present(1, WorkloadState::Running);
    assert!(must_vote(ME, &task));
    let vote = |verdict| vec![Effect::Vote { round: 4, verdict }];
    assert_eq!(
        decide_vote(ME, 4, &task, &spec(), &running, &Ok(())),
        vote(Verdict::Confirmed)
    );
    assert_eq!(
        decide_vote(ME, 4, &task, &spec(), &running, &Err("refused".into())),
        vote(Verdict::EndpointDead),
        "the agent says it runs, the endpoint is dead: the provider's fault"
    );
    let unreachable = AgentView::Unreachable("timed out".into());
    assert_eq!(
        decide_vote(ME, 4, &task, &spec(), &unreachable, &Err("refused".into())),
        vote(Verdict::AgentUnreachable)
    );
    let exited = present(1, WorkloadState::Exited { code: None });
    assert_eq!(
        decide_vote(ME, 4, &task, &spec(), &exited, &Ok(())),
        vote(Verdict::Stopped),
        "stopped: blames nobody after an attestation, the assignee without one"
    );
    assert_eq!(
        decide_vote(ME, 4, &task, &spec(), &AgentView::Absent, &Ok(())),
        vote(Verdict::Contradicted)
    );
    // The agent's signed observation shows what the provider really runs: another image, or
    // smaller limits than leased, is the provider's fault.
    let mut cheaper = running.clone();
    if let AgentView::Present(observation) = &mut cheaper {
        observation.limits.memory_mib = 1;
    }
    assert_eq!(
        decide_vote(ME, 4, &task, &spec(), &cheaper, &Ok(())),
        vote(Verdict::SpecMismatch)
    );
    let mut other_image = running.clone();
    if let AgentView::Present(observation) = &mut other_image {
        observation.image = "sha256:ff".into();
    }
    assert_eq!(
        decide_vote(ME, 4, &task, &spec(), &other_image, &Ok(())),
        vote(Verdict::SpecMismatch)
    );
    let older = present(2, WorkloadState::Running);
    assert_eq!(
        decide_vote(ME, 4, &task, &spec(), &older, &Ok(())),
        vote(Verdict::Contradicted),
        "another generation runs than the one reported"
    );
    let mut elsewhere = running_report(1);
    elsewhere.endpoint = "10.88.250.250:8645".try_into().unwrap();
    assert_eq!(
        decide_vote(ME, 4, &round(elsewhere), &spec(), &running, &Ok(())),
        vote(Verdict::Contradicted),
        "a report at a made-up endpoint is contradicted"
    );
    let mut remapped = running_report(1);
    remapped.ports[0].published = 24_001;
    assert_eq!(
        decide_vote(ME, 4, &round(remapped), &spec(), &running, &Ok(())),
        vote(Verdict::Contradicted),
        "a report with made-up port mappings is contradicted"
    );
}

#[test]
fn a_refused_image_is_reported_failed_with_the_agents_reason_and_retried() {
    let refused = AgentView::Refused(Refused {
        error: "digest mismatch: expected sha256:aa, got sha256:bb".into(),
        reason: "ImageRefused".into(),
    });
    let desired = environment(Desired::Running, 1);
    let effects = decide(
        ME,
        &desired,
        &observed(refused.clone(), None),
        &assigned(ME),
        None,
    );
    let Some(Effect::Report(failed)) = effects.first() else {
        panic!("{effects:?}");
    };
    assert_eq!(failed.phase, Phase::Failed);
    assert!(
        failed.message.starts_with("ImageRefused: digest mismatch"),
        "{}",
        failed.message
    );
    assert!(matches!(effects[1], Effect::Retry(_)));
    // Reported once: then only retried.
    let mut reported = assigned(ME);
    reported.report = Some(failed.clone());
    let again = decide(
        ME,
        &desired,
        &observed(refused.clone(), None),
        &reported,
        None,
    );
    assert!(matches!(again.as_slice(), [Effect::Retry(_)]), "{again:?}");
    // Destroyed anyway when the chain wants it gone.
    let gone = environment(Desired::Destroyed, 2);
    assert_eq!(
        decide(ME, &gone, &observed(refused, None), &assigned(ME), None),
        vec![Effect::Destroy]
    );
}

#[test]
fn no_vote_outside_ones_own_open_round() {
    let task = round(running_report(1));
    let running = present(1, WorkloadState::Running);
    assert!(
        decide_vote(ME, 3, &task, &spec(), &running, &Ok(())).is_empty(),
        "another round"
    );
    assert!(
        decide_vote(OTHER, 4, &task, &spec(), &running, &Ok(())).is_empty(),
        "not a checker"
    );
    let mut voted = task.clone();
    voted.votes = vec![(ME, Verdict::Confirmed)].try_into().unwrap();
    assert!(!must_vote(ME, &voted));
    assert!(
        decide_vote(ME, 4, &voted, &spec(), &running, &Ok(())).is_empty(),
        "voted already"
    );
    let mut decided = task.clone();
    decided.outcome = Some(Outcome::Confirmed);
    assert!(decide_vote(Address([3; 20]), 4, &decided, &spec(), &running, &Ok(())).is_empty());
    let failed = round(report(1, Phase::Failed, "", "Exited"));
    assert!(!must_vote(ME, &failed), "nothing to check");
    let mut undrawn = task.clone();
    undrawn.draw_at = Some(9);
    assert!(!must_vote(ME, &undrawn), "checkers not drawn yet");
    assert!(assigned_to(OTHER, &task) && !assigned_to(ME, &task));
}

#[test]
fn a_checker_is_patient_before_blaming_the_provider_for_a_blip() {
    for verdict in [
        Verdict::Confirmed,
        Verdict::Contradicted,
        Verdict::SpecMismatch,
    ] {
        assert!(vote_now(verdict, 0), "{verdict:?} is not a blip");
    }
    for verdict in [Verdict::AgentUnreachable, Verdict::EndpointDead] {
        assert!(!vote_now(verdict, 0));
        assert!(!vote_now(verdict, PROVIDER_BLAME_PATIENCE_BLOCKS - 1));
        assert!(vote_now(verdict, PROVIDER_BLAME_PATIENCE_BLOCKS));
    }
}

#[test]
fn running_is_reported_only_with_the_agents_attestation() {
    let desired = environment(Desired::Running, 1);
    let AgentView::Present(mut observation) = present(1, WorkloadState::Running) else {
        unreachable!()
    };
    let healthy =
        |observation: &Observation| observed(AgentView::Present(observation.clone()), Some(Ok(())));
    let effects = decide(ME, &desired, &healthy(&observation), &assigned(ME), None);
    let Some(Effect::Report(report)) = effects.first() else {
        panic!("{effects:?}");
    };
    assert_eq!(report.phase, Phase::Running);
    assert_eq!(report.attestation, Some(attestation()));
    // A provider that withholds it gets no Running report it could later deny.
    observation.attestation = None;
    let effects = decide(ME, &desired, &healthy(&observation), &assigned(ME), None);
    assert!(
        matches!(effects.as_slice(), [Effect::Retry(_)]),
        "{effects:?}"
    );
}
