//! Tests of `provisioning` and the environment lifecycle against the mock chain (every
//! invariant checked after each block), most of them from an attacker's side: a reporter that
//! lies and tries to restart its round, Sybil checkers, silent or dissenting checkers, a
//! provider whose agent is down, too few provisioners to check anything.

use crate::{draw, Provisioning};
use commonware_cryptography::Signer;
use logos_framework::Module;
use logos_primitives::{hash, Address, Amount, PrivateKey};
use logos_runtime::mock::{
    address, assert_failed,
    fixtures::{bare, provisioned, World, STAKE},
};
use logos_types::provisioning::{
    attestation_message, Attestation, Attested, ATTESTATION_NAMESPACE,
};
use logos_types::{
    balances::{self, community_account},
    dvci::{ProviderId, Providers, Reliabilities},
    market,
    operations::{
        self, ActiveEnvironments, ConditionStatus, ConditionType, Desired, EnvironmentId, Phase,
    },
    provisioning::*,
    Event as RuntimeEvent,
};

const FIRST: EnvironmentId = EnvironmentId(0);

fn verified(world: &World) -> ConditionStatus {
    world
        .environment()
        .condition(ConditionType::Verified)
        .status
}

fn vote(round: u64, verdict: Verdict) -> Call {
    Call::CrossCheck {
        environment: FIRST,
        round,
        verdict,
    }
}

/// The provisioning events of `receipt`.
fn provisioning_events(events: &[RuntimeEvent]) -> Vec<Event> {
    events
        .iter()
        .filter_map(|event| match event {
            RuntimeEvent::Provisioning(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// A `Running` report of generation 1 with `message`.
fn running(message: &str) -> Call {
    report_at(Phase::Running, 24_000, message)
}

/// A report of generation 1 in `phase`, its health port published at `published` on provider
/// 0's host.
fn report_at(phase: Phase, published: u16, message: &str) -> Call {
    Call::Report {
        environment: FIRST,
        report: Report {
            generation: 1,
            phase,
            endpoint: format!("10.77.1.100:{published}")
                .as_str()
                .try_into()
                .unwrap(),
            ports: vec![operations::PortMapping {
                port: 8545,
                published,
            }]
            .try_into()
            .unwrap(),
            message: message.try_into().unwrap(),
            attestation: None,
        },
    }
}

/// The assignee's key and the drawn checkers' keys after a `Running` report and the draw.
fn reported_and_drawn(world: &mut World) -> (PrivateKey, Vec<PrivateKey>) {
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    assert!(world.report(&assignee, 1, Phase::Running).success);
    world.draw();
    let checkers = world
        .assignment()
        .checkers
        .iter()
        .map(|checker| world.key_of(*checker))
        .collect();
    (assignee, checkers)
}

fn stake_of(world: &World, key: &PrivateKey) -> Amount {
    world
        .chain
        .map::<Provisioners>(&address(key))
        .unwrap()
        .stake
}

#[test]
fn lease_creates_an_assigned_environment_that_a_quorum_verifies() {
    let mut world = provisioned(5);
    let environment = world.environment();
    assert_eq!(
        (environment.generation, environment.desired),
        (1, Desired::Running)
    );
    let assigned = world.assignment().assigned.expect("assigned at creation");
    let assignee = world.key_of(assigned);
    let other = world
        .provisioners
        .iter()
        .find(|key| address(key) != assigned)
        .unwrap()
        .clone();
    assert_failed(
        &world.report(&other, 1, Phase::Running),
        "provisioning",
        "NotAssigned",
    );
    let future = world.report(&assignee, 2, Phase::Running);
    assert!(assert_failed(&future, "provisioning", "WrongGeneration").contains("generation 2"));
    let reported = world.report(&assignee, 1, Phase::Running);
    assert!(reported.success);
    let included_at = world.chain.height;
    // The round opens with the report; its checkers are drawn later, from randomness fixed
    // only after the report's block.
    let task = world.assignment();
    let draw_at = included_at + Parameters::default().draw_delay_blocks;
    assert_eq!((task.draw_at, task.checkers.len()), (Some(draw_at), 0));
    assert!(reported
        .events
        .contains(&RuntimeEvent::Provisioning(Event::RoundOpened {
            environment: FIRST,
            round: task.round,
            draw_at
        })));
    let early = world.provisioning(&other, vote(task.round, Verdict::Confirmed));
    assert_failed(&early, "provisioning", "NotChecker");
    world.draw();
    assert_eq!(world.chain.height, draw_at);
    let task = world.assignment();
    assert_eq!(task.checkers.len(), 3);
    assert!(!task.checkers.contains(&assigned));
    // Drawn with the randomness of block `draw_at` (the digest of the block before it), by
    // stake, from everyone eligible but the assignee.
    let candidates: Vec<_> = world
        .chain
        .value::<Eligible>()
        .into_iter()
        .filter(|account| *account != assigned)
        .map(|account| (account, STAKE))
        .collect();
    let randomness = hash(&[&0u64.to_be_bytes(), &(draw_at - 1).to_be_bytes()]);
    assert_eq!(
        task.checkers.to_vec(),
        draw(&candidates, randomness.as_ref(), FIRST, task.round, 3)
    );
    let replayed = world.report(&assignee, 1, Phase::Running);
    assert_failed(&replayed, "provisioning", "UnchangedReport");
    // The assignee cannot vote on its own report; checkers vote once.
    let round = task.round;
    let own = world.provisioning(&assignee, vote(round, Verdict::Confirmed));
    assert_failed(&own, "provisioning", "NotChecker");
    let first = world.key_of(task.checkers[0]);
    assert!(
        world
            .provisioning(&first, vote(round, Verdict::Confirmed))
            .success
    );
    let twice = world.provisioning(&first, vote(round, Verdict::Confirmed));
    assert_failed(&twice, "provisioning", "AlreadyVoted");
    assert_eq!(
        verified(&world),
        ConditionStatus::Unknown,
        "one vote is not a quorum of three"
    );
    let second = world.key_of(task.checkers[1]);
    let receipt = world.provisioning(&second, vote(round, Verdict::Confirmed));
    assert!(receipt
        .events
        .contains(&RuntimeEvent::Provisioning(Event::EnvironmentVerified {
            environment: FIRST,
            round
        })));
    assert_eq!(verified(&world), ConditionStatus::True);
    let verifiers = world.assignment().verifiers;
    assert_eq!(verifiers.assignee, Some(assigned));
    assert_eq!(verifiers.checkers.to_vec(), task.checkers[..2].to_vec());
    let third = world.key_of(task.checkers[2]);
    let late = world.provisioning(&third, vote(round, Verdict::Contradicted));
    assert_failed(&late, "provisioning", "RoundDecided");
}

#[test]
fn a_reporter_cannot_restart_a_round_going_against_it() {
    let mut world = provisioned(5);
    let (liar, checkers) = reported_and_drawn(&mut world);
    let round = world.assignment().round;
    let first = world.provisioning(&checkers[0], vote(round, Verdict::Contradicted));
    assert!(first.success);
    // The old dodge: a changed report restarted the round and cleared the votes. Reworded,
    // it is no new report at all; anything else waits for the round's end.
    let reworded = world.provisioning(&liar, running("HealthCheckPassed: 200 (again)"));
    assert_failed(&reworded, "provisioning", "UnchangedReport");
    for dodge in [
        report_at(Phase::Running, 24_002, "HealthCheckPassed"),
        Call::Report {
            environment: FIRST,
            report: Report {
                generation: 1,
                phase: Phase::Failed,
                endpoint: Default::default(),
                ports: Default::default(),
                message: "Exited: oops".try_into().unwrap(),
                attestation: None,
            },
        },
    ] {
        let refused = world.provisioning(&liar, dodge);
        assert_eq!(
            assert_failed(&refused, "provisioning", "RoundOpen"),
            format!("round {round} checks the last report; no new report until it ends")
        );
        let task = world.assignment();
        assert_eq!((task.round, task.votes.len()), (round, 1), "votes kept");
    }
    let stake = stake_of(&world, &liar);
    let decided = world.provisioning(&checkers[1], vote(round, Verdict::Contradicted));
    let slashed = Amount(stake.0 / 10);
    let events = provisioning_events(&decided.events);
    assert!(
        events.contains(&Event::ProvisionerSlashed {
            provisioner: address(&liar),
            environment: FIRST,
            round,
            evidence: vec![
                (address(&checkers[0]), Verdict::Contradicted),
                (address(&checkers[1]), Verdict::Contradicted)
            ],
            amount: slashed,
        }),
        "{events:?}"
    );
    assert_eq!(stake_of(&world, &liar), Amount(stake.0 - slashed.0));
}

#[test]
fn contradicted_report_is_slashed_and_the_task_reassigned() {
    let mut world = provisioned(5);
    let liar = world.assignment().assigned.unwrap();
    let liar_key = world.key_of(liar);
    let community_before = world.chain.account(&community_account());
    assert!(world.report(&liar_key, 1, Phase::Running).success);
    world.draw();
    world.vote_all(Verdict::Contradicted);
    let record: Provisioner = world.chain.map::<Provisioners>(&liar).unwrap();
    let slashed = Amount(STAKE.0 / 10);
    assert_eq!(
        (record.stake, record.slashed),
        (Amount(STAKE.0 - slashed.0), slashed)
    );
    assert_eq!(
        world.chain.account(&liar).reserved,
        record.stake,
        "the slashed part left the reserve"
    );
    let community = world.chain.account(&community_account());
    assert!(community.balance.0 >= community_before.balance.0 + slashed.0);
    let task = world.assignment();
    let successor = task.assigned.unwrap();
    assert_ne!(successor, liar);
    assert!(task.replaced.contains(&liar));
    assert!(task.report.is_none());
    assert_eq!(verified(&world), ConditionStatus::False);
    let again = world.report(&liar_key, 1, Phase::Running);
    assert_failed(&again, "provisioning", "NotAssigned");
    world.verify();
    assert_eq!(verified(&world), ConditionStatus::True);
}

#[test]
fn a_checker_voting_against_the_quorum_loses_part_of_its_stake() {
    let mut world = provisioned(5);
    let (assignee, checkers) = reported_and_drawn(&mut world);
    let round = world.assignment().round;
    let dissenter = &checkers[0];
    let before: Vec<_> = checkers.iter().map(|key| stake_of(&world, key)).collect();
    assert!(
        world
            .provisioning(dissenter, vote(round, Verdict::Contradicted))
            .success
    );
    assert!(
        world
            .provisioning(&checkers[1], vote(round, Verdict::Confirmed))
            .success
    );
    let decided = world.provisioning(&checkers[2], vote(round, Verdict::Confirmed));
    let amount = Amount(before[0].0 * 2 / 100);
    assert!(
        provisioning_events(&decided.events).contains(&Event::CheckerSlashed {
            checker: address(dissenter),
            environment: FIRST,
            round,
            verdict: Some(Verdict::Contradicted),
            outcome: Some(Outcome::Confirmed),
            amount,
        })
    );
    assert_eq!(stake_of(&world, dissenter), Amount(before[0].0 - amount.0));
    for (key, stake) in checkers[1..].iter().zip(&before[1..]) {
        assert_eq!(stake_of(&world, key), *stake, "the quorum keeps its stake");
    }
    assert_eq!(stake_of(&world, &assignee), STAKE);
    assert_eq!(verified(&world), ConditionStatus::True);
    let verifiers = world.assignment().verifiers;
    assert!(
        !verifiers.checkers.contains(&address(dissenter)),
        "not paid"
    );
}

#[test]
fn silent_checkers_are_slashed_when_the_round_times_out_and_a_new_draw_checks_the_report() {
    let mut world = provisioned(5);
    let (assignee, checkers) = reported_and_drawn(&mut world);
    let first = world.assignment();
    assert!(
        world
            .provisioning(&checkers[0], vote(first.round, Verdict::Confirmed))
            .success
    );
    world.chain.advance(CHECK_TIMEOUT_BLOCKS - 1);
    assert_eq!(world.assignment().round, first.round, "not yet timed out");
    let (_, events) = world.chain.execute_with_events(&[]).unwrap();
    let events = provisioning_events(&events);
    let silent: Vec<_> = checkers[1..].iter().map(address).collect();
    assert!(
        events.contains(&Event::RoundExpired {
            environment: FIRST,
            round: first.round,
            silent: silent.clone()
        }),
        "{events:?}"
    );
    for key in &checkers[1..] {
        assert_eq!(stake_of(&world, key), Amount(STAKE.0 - STAKE.0 * 2 / 100));
    }
    assert_eq!(stake_of(&world, &checkers[0]), STAKE, "it answered");
    assert_eq!(stake_of(&world, &assignee), STAKE, "no verdict against it");
    let second = world.assignment();
    assert_eq!(second.round, first.round + 1);
    assert!(second.votes.is_empty() && second.draw_at.is_some());
    assert_eq!(
        second.report, first.report,
        "the same report is checked again"
    );
    let stale = world.provisioning(&checkers[0], vote(first.round, Verdict::Confirmed));
    assert_failed(&stale, "provisioning", "NotChecker");
    world.draw();
    world.vote_all(Verdict::Confirmed);
    assert_eq!(verified(&world), ConditionStatus::True);
}

#[test]
fn a_provider_outage_blames_the_provider_and_not_the_assignee() {
    let mut world = provisioned(5);
    let (assignee, checkers) = reported_and_drawn(&mut world);
    let round = world.assignment().round;
    let bond = world.chain.map::<Providers>(&ProviderId(0)).unwrap().bond;
    let owner = address(&world.owner);
    let reserved = world.chain.account(&owner).reserved;
    assert!(
        world
            .provisioning(&checkers[0], vote(round, Verdict::AgentUnreachable))
            .success
    );
    let decided = world.provisioning(&checkers[1], vote(round, Verdict::EndpointDead));
    let taken = Amount(bond.0 * 5 / 100);
    let events = provisioning_events(&decided.events);
    assert!(
        events.contains(&Event::ProviderSlashed {
            provider: ProviderId(0),
            environment: FIRST,
            round,
            evidence: vec![
                (address(&checkers[0]), Verdict::AgentUnreachable),
                (address(&checkers[1]), Verdict::EndpointDead)
            ],
            amount: taken,
        }),
        "{events:?}"
    );
    let provider = world.chain.map::<Providers>(&ProviderId(0)).unwrap();
    assert_eq!(provider.bond, Amount(bond.0 - taken.0));
    assert_eq!(
        world.chain.account(&owner).reserved,
        Amount(reserved.0 - taken.0)
    );
    let reliability = world.chain.map::<Reliabilities>(&ProviderId(0)).unwrap();
    assert_eq!(reliability.faults, 1);
    assert!(reliability.score_permille() < 500, "below a new provider's");
    assert_eq!(
        stake_of(&world, &assignee),
        STAKE,
        "the assignee told the truth"
    );
    let task = world.assignment();
    assert_eq!(task.assigned, Some(address(&assignee)), "still assigned");
    assert_eq!(task.outcome, Some(Outcome::ProviderFault));
    let environment = world.environment();
    assert_eq!(verified(&world), ConditionStatus::False);
    assert_eq!(
        environment.condition(ConditionType::Ready).reason.as_str(),
        "ProviderFault"
    );
    // Checked again after the check timeout.
    world.chain.advance(CHECK_TIMEOUT_BLOCKS + 1);
    let again = world.assignment();
    assert!(again.round > round && again.outcome.is_none());
}

#[test]
fn a_provider_running_less_than_was_leased_is_slashed_on_its_agents_own_word() {
    let mut world = provisioned(5);
    let (assignee, _) = reported_and_drawn(&mut world);
    let bond = world.chain.map::<Providers>(&ProviderId(0)).unwrap().bond;
    world.vote_all(Verdict::SpecMismatch);
    assert_eq!(world.assignment().outcome, Some(Outcome::ProviderFault));
    let provider = world.chain.map::<Providers>(&ProviderId(0)).unwrap();
    assert_eq!(provider.bond, Amount(bond.0 - bond.0 * 5 / 100));
    assert_eq!(stake_of(&world, &assignee), STAKE);
    assert_ne!(verified(&world), ConditionStatus::True);
}

#[test]
fn split_verdicts_open_a_new_round_and_slash_nobody() {
    let mut world = provisioned(5);
    let (_, checkers) = reported_and_drawn(&mut world);
    let round = world.assignment().round;
    let stakes: Vec<_> = world
        .provisioners
        .iter()
        .map(|key| stake_of(&world, key))
        .collect();
    let mut last = None;
    for (key, verdict) in checkers.iter().zip([
        Verdict::Confirmed,
        Verdict::Contradicted,
        Verdict::AgentUnreachable,
    ]) {
        last = Some(world.provisioning(key, vote(round, verdict)));
    }
    let events = provisioning_events(&last.unwrap().events);
    assert!(events.contains(&Event::RoundExpired {
        environment: FIRST,
        round,
        silent: vec![]
    }));
    let after: Vec<_> = world
        .provisioners
        .iter()
        .map(|key| stake_of(&world, key))
        .collect();
    assert_eq!(stakes, after);
    assert_eq!(world.assignment().round, round + 1);
}

#[test]
fn a_new_generation_ends_the_round_without_blame() {
    let mut world = provisioned(5);
    let (assignee, checkers) = reported_and_drawn(&mut world);
    let round = world.assignment().round;
    let updated = world.tenant_call(operations::Call::UpdateEnvironment { environment: FIRST });
    assert!(updated.success, "{updated:?}");
    // A checker now sees generation 2 running and would contradict a report on 1.
    let stale = world.provisioning(&checkers[0], vote(round, Verdict::Contradicted));
    assert_failed(&stale, "provisioning", "WrongGeneration");
    assert!(world.report(&assignee, 2, Phase::Running).success);
    assert_eq!(world.assignment().round, round + 1);
    assert_eq!(stake_of(&world, &assignee), STAKE);
}

#[test]
fn a_recheck_cannot_be_ended_by_the_assignee_either() {
    let mut world = provisioned(5);
    world.verify();
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    world.chain.advance(RECHECK_INTERVAL_BLOCKS + 1);
    let recheck = world.assignment();
    assert!(recheck.round_open() && recheck.round > 1);
    assert_eq!(
        verified(&world),
        ConditionStatus::True,
        "verified while rechecked"
    );
    world.draw();
    let checkers = world.assignment().checkers;
    let first = world.key_of(checkers[0]);
    let round = world.assignment().round;
    assert!(
        world
            .provisioning(&first, vote(round, Verdict::Contradicted))
            .success
    );
    // Going against it: neither a stopped nor a new report ends it (no re-roll).
    for phase in [Phase::Failed, Phase::Pending] {
        let dodge = world.report(&assignee, 1, phase);
        assert_failed(&dodge, "provisioning", "RoundOpen");
    }
    assert_eq!(world.assignment().votes.len(), 1, "votes kept");
}

#[test]
fn a_report_stuck_short_of_running_gets_another_assignee() {
    let mut world = provisioned(5);
    let first = world.assignment().assigned.unwrap();
    let key = world.key_of(first);
    assert!(world.report(&key, 1, Phase::Pending).success);
    world.chain.advance(REPORT_TIMEOUT_BLOCKS);
    assert_eq!(world.assignment().assigned, Some(first), "not yet");
    let (_, events) = world.chain.execute_with_events(&[]).unwrap();
    let successor = world.assignment().assigned.unwrap();
    assert_ne!(successor, first);
    assert!(provisioning_events(&events).contains(&Event::TaskAssigned {
        environment: FIRST,
        provisioner: successor,
        reason: AssignReason::NotRunning
    }));
}

/// Provider 0's agent key (the fixture registers seed 500 + provider id).
fn agent_key(_world: &mut World) -> PrivateKey {
    PrivateKey::from_seed(500)
}

/// A `Running` report of generation 1 attested by `agent` for `nonce`, for the current
/// assignee, until 100 blocks from now.
fn attested(world: &World, agent: &PrivateKey, nonce: u64) -> Call {
    let assignee = world.assignment().assigned.unwrap();
    attested_for(world, agent, nonce, assignee, world.chain.height + 100)
}

fn attested_for(
    world: &World,
    agent: &PrivateKey,
    nonce: u64,
    assignee: Address,
    expires_at: u64,
) -> Call {
    let Call::Report { mut report, .. } = running("HealthCheckPassed") else {
        unreachable!()
    };
    let attested = Attested {
        provider: ProviderId(0),
        environment: FIRST,
        generation: 1,
        endpoint: report.endpoint.as_str(),
        ports: &report.ports,
        assignee,
        expires_at,
    };
    let message = attestation_message(&world.chain.chain_id, &attested, nonce);
    report.attestation = Some(Attestation {
        nonce,
        expires_at,
        signature: logos_primitives::KeySignature::from_signature(
            &agent.sign(ATTESTATION_NAMESPACE, &message),
        ),
    });
    Call::Report {
        environment: FIRST,
        report,
    }
}

#[test]
fn an_attestation_serves_only_its_asker_and_only_until_it_expires() {
    let mut world = provisioned(5);
    let agent = agent_key(&mut world);
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    // Attested for another provisioner (say, a previous assignee): not this one's to use.
    let other = world
        .provisioners
        .iter()
        .map(address)
        .find(|account| *account != address(&assignee))
        .unwrap();
    let height = world.chain.height;
    let copied = attested_for(&world, &agent, 1, other, height + 100);
    assert_failed(
        &world.provisioning(&assignee, copied),
        "provisioning",
        "BadAttestation",
    );
    // Valid when signed, expired a block later.
    let expiring = attested_for(&world, &agent, 2, address(&assignee), height + 1);
    world.chain.advance(1);
    assert_failed(
        &world.provisioning(&assignee, expiring),
        "provisioning",
        "BadAttestation",
    );
    let far = attested_for(&world, &agent, 3, address(&assignee), height + 5_000);
    assert_failed(
        &world.provisioning(&assignee, far),
        "provisioning",
        "BadAttestation",
    );
    assert!(world.assignment().report.is_none(), "nothing recorded");
}

#[test]
fn a_workload_stopped_after_its_attestation_blames_nobody_and_cannot_be_rerolled() {
    let mut world = provisioned(5);
    let agent = agent_key(&mut world);
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    assert!(
        world
            .provisioning(&assignee, attested(&world, &agent, 1))
            .success
    );
    world.draw();
    let bond = world.chain.map::<Providers>(&ProviderId(0)).unwrap().bond;
    // The tenant stops its workload right after the draw: checkers find it stopped.
    world.vote_all(Verdict::Stopped);
    let task = world.assignment();
    assert_eq!(task.outcome, Some(Outcome::Stopped));
    assert_eq!(stake_of(&world, &assignee), STAKE);
    let provider = world.chain.map::<Providers>(&ProviderId(0)).unwrap();
    assert_eq!(provider.bond, bond, "nobody lied");
    assert_ne!(verified(&world), ConditionStatus::True);
    // A new Running report waits for the recheck, even after a Failed one in between.
    assert!(world.report(&assignee, 1, Phase::Failed).success);
    let again = world.provisioning(&assignee, attested(&world, &agent, 2));
    assert_failed(&again, "provisioning", "RecheckPending");
    world.chain.advance(CHECK_TIMEOUT_BLOCKS);
    assert!(
        world
            .provisioning(&assignee, attested(&world, &agent, 3))
            .success
    );
}

#[test]
fn a_stopped_workload_behind_an_unattested_report_contradicts_the_assignee() {
    let mut world = provisioned(5);
    let (assignee, _) = reported_and_drawn(&mut world);
    world.vote_all(Verdict::Stopped);
    assert_eq!(stake_of(&world, &assignee), Amount(STAKE.0 - STAKE.0 / 10));
    assert_ne!(world.assignment().assigned, Some(address(&assignee)));
}

#[test]
fn a_report_the_agent_attested_and_then_contradicted_blames_the_provider() {
    let mut world = provisioned(5);
    let agent = agent_key(&mut world);
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    let report = attested(&world, &agent, 9);
    assert!(world.provisioning(&assignee, report).success);
    world.draw();
    let round = world.assignment().round;
    let bond = world.chain.map::<Providers>(&ProviderId(0)).unwrap().bond;
    world.vote_all(Verdict::Contradicted);
    assert_eq!(
        stake_of(&world, &assignee),
        STAKE,
        "it relayed the agent's word"
    );
    let task = world.assignment();
    assert_eq!(task.outcome, Some(Outcome::ProviderFault));
    assert_eq!(task.assigned, Some(address(&assignee)));
    let provider = world.chain.map::<Providers>(&ProviderId(0)).unwrap();
    assert_eq!(provider.bond, Amount(bond.0 - bond.0 * 5 / 100));
    assert_eq!(task.verifiers, Verifiers::default(), "nobody paid for it");
    assert!(round > 0);
}

#[test]
fn a_forged_or_misplaced_attestation_is_refused() {
    let mut world = provisioned(5);
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    let forger = PrivateKey::from_seed(501);
    let agent = agent_key(&mut world);
    let forged = world.provisioning(&assignee, attested(&world, &forger, 1));
    assert_eq!(
        assert_failed(&forged, "provisioning", "BadAttestation"),
        "the attestation is not the provider's agent's signature of this report for the \
         sender, or it expired"
    );
    // The agent's signature over another endpoint.
    let Call::Report { mut report, .. } = attested(&world, &agent, 2) else {
        unreachable!()
    };
    report.ports[0].published = 24_001;
    report.endpoint = "10.77.1.100:24001".try_into().unwrap();
    let moved = world.provisioning(
        &assignee,
        Call::Report {
            environment: FIRST,
            report: report.clone(),
        },
    );
    assert_failed(&moved, "provisioning", "BadAttestation");
    // On a report that is not `Running`.
    report.phase = Phase::Pending;
    let pending = world.provisioning(
        &assignee,
        Call::Report {
            environment: FIRST,
            report,
        },
    );
    assert_failed(&pending, "provisioning", "BadAttestation");
    assert!(world.assignment().report.is_none(), "nothing recorded");
    assert!(
        world
            .provisioning(&assignee, attested(&world, &agent, 3))
            .success
    );
}

#[test]
fn a_fresh_attestation_of_the_same_facts_is_not_a_new_report() {
    let mut world = provisioned(5);
    let agent = agent_key(&mut world);
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    assert!(
        world
            .provisioning(&assignee, attested(&world, &agent, 1))
            .success
    );
    world.draw();
    world.vote_all(Verdict::Confirmed);
    // Decided: a re-attested copy would open a new round (a new draw) if it counted as new.
    let again = world.provisioning(&assignee, attested(&world, &agent, 2));
    assert_failed(&again, "provisioning", "UnchangedReport");
}

#[test]
fn too_few_provisioners_refuse_a_lease_with_a_clear_error() {
    for count in 0..4u64 {
        let mut world = bare(1);
        world.add_provisioners(count);
        let tenant = address(&world.tenant);
        let before = world.chain.account(&tenant);
        let refused = world.lease(100);
        assert_eq!(
            assert_failed(&refused, "provisioning", "TooFewProvisioners"),
            format!("{count} eligible provisioners; verification needs 4")
        );
        let after = world.chain.account(&tenant);
        assert_eq!(after.reserved, before.reserved, "no escrow held");
        assert_eq!(
            after.balance.0 + world.chain.params.min_fee.0,
            before.balance.0
        );
        assert!(world
            .chain
            .map::<market::Leases>(&market::LeaseId(0))
            .is_none());
        let provider = world.chain.map::<Providers>(&ProviderId(0)).unwrap();
        assert!(provider.allocated.is_zero(), "nothing placed");
    }
    // The provider's own owner does not count: it would check its own machine.
    let mut world = bare(1);
    world.add_provisioners(3);
    let owner = world.owner.clone();
    let joined = world
        .chain
        .call(&owner, Call::RegisterProvisioner { stake: STAKE });
    assert!(joined.success);
    assert_failed(&world.lease(100), "provisioning", "TooFewProvisioners");
    world.add_provisioners(1);
    assert!(world.lease(100).success);
    let task = world.assignment();
    assert_ne!(task.assigned, Some(address(&world.owner)));
}

#[test]
fn stake_weighted_draw_gives_sybil_identities_nothing_more_than_their_stake() {
    // 16 honest provisioners with equal stakes; an attacker holding one fifth of the eligible
    // stake, as one account or split over 16 identities. The probability that it holds a
    // quorum (2 of 3) of a round's checkers depends on its stake, not on its identities.
    const SAMPLES: u64 = 4_000;
    let honest: Vec<_> = (0..16u8)
        .map(|i| (Address([i; 20]), Amount(4_000_000)))
        .collect();
    let attacker_stake = 16_000_000u128; // 1/5 of 80,000,000
    let one: Vec<_> = vec![(Address([200; 20]), Amount(attacker_stake))];
    let many: Vec<_> = (0..16u8)
        .map(|i| (Address([100 + i; 20]), Amount(attacker_stake / 16)))
        .collect();
    let quorum_rate = |attacker: &[(Address, Amount)]| {
        let candidates: Vec<_> = honest.iter().chain(attacker).copied().collect();
        let mut captured = 0;
        for seed in 0..SAMPLES {
            let randomness = hash(&[&seed.to_be_bytes()]);
            let drawn = draw(&candidates, randomness.as_ref(), FIRST, 1, 3);
            let theirs = drawn
                .iter()
                .filter(|account| attacker.iter().any(|(a, _)| a == *account))
                .count();
            captured += u64::from(theirs >= 2);
        }
        captured as f64 / SAMPLES as f64
    };
    let (single, split) = (quorum_rate(&one), quorum_rate(&many));
    // One account of 20 % can be drawn once at most: it never holds two seats.
    assert_eq!(single, 0.0);
    // Split over identities, the stake-weighted draw bounds it by 3f² − 2f³ with f = 0.2
    // (0.104): drawing by count would give 16 of 32 identities about 0.5.
    assert!(split < 0.13, "split identities captured {split}");
    // Each seat is drawn in proportion to stake.
    let mut seats = 0;
    for seed in 0..SAMPLES {
        let randomness = hash(&[&seed.to_be_bytes(), b"seat"]);
        let candidates: Vec<_> = honest.iter().chain(&many).copied().collect();
        let drawn = draw(&candidates, randomness.as_ref(), FIRST, 1, 1);
        seats += u64::from(many.iter().any(|(a, _)| *a == drawn[0]));
    }
    let share = seats as f64 / SAMPLES as f64;
    assert!((0.17..0.23).contains(&share), "seat share {share}");
}

#[test]
fn draw_is_deterministic_weighted_and_never_picks_twice() {
    let candidates: Vec<_> = (0..8u8)
        .map(|i| (Address([i; 20]), Amount(1 + u128::from(i))))
        .collect();
    let randomness = [7u8; 32];
    let drawn = draw(&candidates, &randomness, FIRST, 3, 3);
    assert_eq!(drawn, draw(&candidates, &randomness, FIRST, 3, 3));
    assert_eq!(drawn.len(), 3);
    let mut distinct = drawn.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
    assert_ne!(
        drawn,
        draw(&candidates, &randomness, FIRST, 4, 3),
        "rounds rotate"
    );
    assert!(draw(&[], &randomness, FIRST, 1, 2).is_empty());
    let unstaked = [(Address([9; 20]), Amount::ZERO)];
    assert!(draw(&unstaked, &randomness, FIRST, 1, 1).is_empty());
    assert_eq!(draw(&candidates, &randomness, FIRST, 1, 20).len(), 8);
}

#[test]
fn a_checker_of_an_undecided_round_cannot_leave() {
    let mut world = provisioned(5);
    let (_, checkers) = reported_and_drawn(&mut world);
    let left = world.provisioning(&checkers[0], Call::DeregisterProvisioner);
    assert_failed(&left, "provisioning", "StillAssigned");
}

#[test]
fn parameters_are_privileged_and_bounded() {
    let mut world = provisioned(5);
    let params = Parameters {
        checkers: 1,
        min_provisioners: 2,
        ..Parameters::default()
    };
    let tenant = world.tenant.clone();
    let denied = world
        .chain
        .call(&tenant, Call::SetParameters { parameters: params });
    assert_failed(&denied, "provisioning", "BadOrigin");
    let root = world.root.clone();
    for bad in [
        Parameters {
            checkers: 0,
            ..params
        },
        Parameters {
            checkers: 8,
            min_provisioners: 9,
            ..params
        },
        Parameters {
            min_provisioners: 1,
            ..params
        },
        Parameters {
            draw_delay_blocks: 1,
            ..params
        },
        Parameters {
            checker_slash_percent: 101,
            ..params
        },
        Parameters {
            provider_slash_percent: 101,
            ..params
        },
    ] {
        let refused = world
            .chain
            .call(&root, Call::SetParameters { parameters: bad });
        assert_failed(&refused, "provisioning", "InvalidParameters");
    }
    assert_eq!(world.chain.value::<Params>(), Parameters::default());
    assert!(
        world
            .privileged(Call::SetParameters { parameters: params })
            .success
    );
    assert_eq!(world.chain.value::<Params>(), params);
}

#[test]
fn invariant_catches_an_assignee_that_checks_itself() {
    let mut world = provisioned(5);
    let mut task: Assignment = world.assignment();
    let assignee = task.assigned.unwrap();
    task.checkers = vec![assignee].try_into().unwrap();
    world.chain.corrupt::<Assignments>(&FIRST, &task);
    let violation = Provisioning::try_state(&world.chain.state).unwrap_err();
    assert!(violation.contains("checks itself"), "{violation}");
}

#[test]
fn missing_report_gets_the_task_reassigned() {
    let mut world = provisioned(5);
    let silent = world.assignment().assigned.unwrap();
    world.chain.advance(REPORT_TIMEOUT_BLOCKS);
    assert_eq!(
        world.assignment().assigned,
        Some(silent),
        "not yet timed out"
    );
    let (_, events) = world.chain.execute_with_events(&[]).unwrap();
    let successor = world.assignment().assigned.unwrap();
    assert_ne!(successor, silent);
    assert!(
        events.contains(&RuntimeEvent::Provisioning(Event::TaskAssigned {
            environment: FIRST,
            provisioner: successor,
            reason: AssignReason::ReportMissing
        }))
    );
}

#[test]
fn closed_lease_is_destroyed_and_leaves_the_active_set() {
    let mut world = provisioned(5);
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    assert!(world.report(&assignee, 1, Phase::Running).success);
    let closed = world.tenant_call(market::Call::CloseLease {
        lease: market::LeaseId(0),
    });
    assert!(closed.success);
    let environment = world.environment();
    assert_eq!(
        (environment.desired, environment.generation),
        (Desired::Destroyed, 2)
    );
    // Deregistering while assigned is refused.
    let early = world.provisioning(&assignee, Call::DeregisterProvisioner);
    assert_failed(&early, "provisioning", "StillAssigned");
    assert!(world.report(&assignee, 2, Phase::Destroyed).success);
    assert!(world.chain.map::<Assignments>(&FIRST).is_none());
    assert!(world.chain.value::<ActiveEnvironments>().is_empty());
    let before = world.chain.account(&address(&assignee));
    let left = world.provisioning(&assignee, Call::DeregisterProvisioner);
    assert!(left.success, "{left:?}");
    let after = world.chain.account(&address(&assignee));
    assert_eq!(after.reserved, Amount::ZERO);
    let fee = world.chain.params.min_fee.0;
    assert_eq!(
        after.balance.0 + fee,
        before.balance.0 + STAKE.0,
        "stake back, fee paid"
    );
    let gone = world.report(&assignee, 2, Phase::Destroyed);
    assert_failed(&gone, "provisioning", "UnknownEnvironment");
}

#[test]
fn stake_below_the_minimum_is_refused() {
    let mut world = provisioned(5);
    let key = PrivateKey::from_seed(999);
    let root = world.root.clone();
    world.chain.call(
        &root,
        balances::Call::Transfer {
            to: address(&key),
            amount: Amount(10_000_000),
        },
    );
    let low = world.provisioning(
        &key,
        Call::RegisterProvisioner {
            stake: Amount(DEFAULT_MINIMUM_STAKE.0 - 1),
        },
    );
    assert_failed(&low, "provisioning", "StakeTooLow");
    let accepted = world.provisioning(&key, Call::RegisterProvisioner { stake: STAKE });
    assert!(accepted.success, "{accepted:?}");
    let again = world.provisioning(&key, Call::RegisterProvisioner { stake: STAKE });
    assert_failed(&again, "provisioning", "AlreadyRegistered");
    let set = world.provisioning(&key, Call::SetMinimumStake { stake: Amount(1) });
    assert_failed(&set, "provisioning", "BadOrigin");
    let _ = key.public_key();
}

#[test]
fn reported_port_mappings_must_be_declared_and_distinct() {
    use logos_types::operations::PortMapping;
    let mut world = provisioned(5);
    let assigned = world.assignment().assigned.expect("assigned at creation");
    let assignee = world.key_of(assigned);
    let mapping = |port, published| PortMapping { port, published };
    let report = |ports: Vec<PortMapping>| Call::Report {
        environment: FIRST,
        report: Report {
            generation: 1,
            phase: Phase::Running,
            endpoint: "10.77.1.100:24000".try_into().unwrap(),
            ports: ports.try_into().unwrap(),
            message: "HealthCheckPassed".try_into().unwrap(),
            attestation: None,
        },
    };
    // The fixture's workload declares 8545 only.
    for ports in [
        vec![mapping(22, 24001)],
        vec![mapping(8545, 24000), mapping(8545, 24001)],
    ] {
        let receipt = world.provisioning(&assignee, report(ports));
        assert_failed(&receipt, "provisioning", "UndeclaredPort");
        assert!(world.assignment().report.is_none(), "nothing recorded");
        assert!(world.environment().ports.is_empty());
    }
    let accepted = world.provisioning(&assignee, report(vec![mapping(8545, 24000)]));
    assert!(accepted.success, "{accepted:?}");
    let environment = world.environment();
    assert_eq!(environment.endpoint, "10.77.1.100:24000");
    assert_eq!(environment.ports.to_vec(), vec![mapping(8545, 24000)]);
}

#[test]
fn an_endpoint_must_be_the_providers_host_at_the_health_ports_published_port() {
    use logos_types::operations::PortMapping;
    let mut world = provisioned(5);
    let assigned = world.assignment().assigned.expect("assigned at creation");
    let assignee = world.key_of(assigned);
    let report = |endpoint: &str| Call::Report {
        environment: FIRST,
        report: Report {
            generation: 1,
            phase: Phase::Running,
            endpoint: endpoint.try_into().unwrap(),
            ports: vec![PortMapping {
                port: 8545,
                published: 24_000,
            }]
            .try_into()
            .unwrap(),
            message: "HealthCheckPassed".try_into().unwrap(),
            attestation: None,
        },
    };
    // The fixture's provider 0 registered its agent at 10.77.1.100:7100.
    for lie in [
        "10.77.9.9:24000", // another host (a checker probing itself or a third party)
        "127.0.0.1:24000", // every checker's own machine
        "0.0.0.0:24000",
        "10.77.1.100:24001", // not where the health port is published
        "10.77.1.100",       // no port
        "10.77.1.100:port",
    ] {
        let receipt = world.provisioning(&assignee, report(lie));
        assert_failed(&receipt, "provisioning", "EndpointMismatch");
        assert!(world.assignment().report.is_none(), "{lie} recorded");
    }
    let accepted = world.provisioning(&assignee, report("10.77.1.100:24000"));
    assert!(accepted.success, "{accepted:?}");
}

#[test]
fn departures_are_remembered_for_draws_and_bounded_per_window() {
    let mut world = bare(1);
    world.add_provisioners(DEPARTURES_MAX as u64 + 1);
    let keys = world.provisioners.clone();
    // All leave in one block: the bound refuses the last, and the state keeps it eligible.
    let transactions: Vec<_> = keys
        .iter()
        .map(|key| world.chain.sign(key, Call::DeregisterProvisioner.into()))
        .collect();
    let receipts = world.chain.execute(&transactions).unwrap();
    assert!(receipts[..DEPARTURES_MAX].iter().all(|r| r.success));
    let last = receipts.last().unwrap();
    assert_failed(last, "provisioning", "TooManyDepartures");
    let departed = world.chain.value::<Departures>();
    assert_eq!(departed.len(), DEPARTURES_MAX);
    assert!(departed.iter().all(|d| d.stake == STAKE));
    let straggler = keys.last().unwrap();
    assert!(world
        .chain
        .map::<Provisioners>(&address(straggler))
        .is_some());
    // A few blocks on, the window has moved: it leaves, and old departures are forgotten.
    world.chain.advance(DEPARTURES_KEPT_BLOCKS);
    let left = world.provisioning(straggler, Call::DeregisterProvisioner);
    assert!(left.success, "{left:?}");
    assert_eq!(world.chain.value::<Departures>().len(), 1);
}
