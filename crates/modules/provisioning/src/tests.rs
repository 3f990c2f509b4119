//! Tests of `provisioning` and the environment lifecycle against the mock chain (every
//! invariant checked after each block).

use crate::{draw, Provisioning};
use commonware_cryptography::Signer;
use logos_framework::Module;
use logos_primitives::{Address, Amount, PrivateKey};
use logos_runtime::mock::{
    address, assert_failed,
    fixtures::{provisioned, World, STAKE},
};
use logos_types::{
    balances::{self, community_account},
    market,
    operations::{
        ActiveEnvironments, ConditionStatus, ConditionType, Desired, EnvironmentId, Phase,
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

fn vote(round: u64, agrees: bool) -> Call {
    Call::CrossCheck {
        environment: FIRST,
        round,
        agrees,
    }
}

#[test]
fn lease_creates_an_assigned_environment_that_a_quorum_verifies() {
    let mut world = provisioned(4);
    let environment = world.environment();
    assert_eq!(
        (environment.generation, environment.desired),
        (1, Desired::Running)
    );
    assert_eq!(
        environment.condition(ConditionType::Scheduled).status,
        ConditionStatus::True
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
    assert!(world.report(&assignee, 1, Phase::Running).success);
    let replayed = world.report(&assignee, 1, Phase::Running);
    assert_failed(&replayed, "provisioning", "UnchangedReport");
    let task = world.assignment();
    assert_eq!(task.checkers.len(), CHECKERS);
    assert!(!task.checkers.contains(&assigned));
    let environment = world.environment();
    assert_eq!(
        (environment.phase, environment.observed_generation),
        (Phase::Running, 1)
    );
    assert_eq!(environment.endpoint, "10.77.1.100:24000");
    let ready = environment.condition(ConditionType::Ready);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::True, "HealthCheckPassed")
    );
    // The assignee cannot vote on its own report; checkers vote once.
    let round = task.round;
    let own = world.provisioning(&assignee, vote(round, true));
    assert_failed(&own, "provisioning", "NotChecker");
    let first = world.key_of(task.checkers[0]);
    assert!(world.provisioning(&first, vote(round, true)).success);
    let twice = world.provisioning(&first, vote(round, true));
    assert_failed(&twice, "provisioning", "AlreadyVoted");
    assert_eq!(
        verified(&world),
        ConditionStatus::Unknown,
        "one vote is not a quorum of two"
    );
    let second = world.key_of(task.checkers[1]);
    let receipt = world.provisioning(&second, vote(round, true));
    assert!(receipt
        .events
        .contains(&RuntimeEvent::Provisioning(Event::EnvironmentVerified {
            environment: FIRST,
            round
        })));
    assert_eq!(verified(&world), ConditionStatus::True);
    let late = world.provisioning(&second, vote(round, false));
    assert_failed(&late, "provisioning", "RoundDecided");
}

#[test]
fn contradicted_report_is_slashed_and_the_task_reassigned() {
    let mut world = provisioned(4);
    let liar = world.assignment().assigned.unwrap();
    let liar_key = world.key_of(liar);
    let community_before = world.chain.account(&community_account());
    assert!(world.report(&liar_key, 1, Phase::Running).success);
    world.vote_all(false);
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
    let successor_key = world.key_of(successor);
    assert!(world.report(&successor_key, 1, Phase::Running).success);
    world.vote_all(true);
    assert_eq!(verified(&world), ConditionStatus::True);
}

#[test]
fn missing_report_gets_the_task_reassigned() {
    let mut world = provisioned(3);
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
fn undecided_round_rotates_its_checkers() {
    let mut world = provisioned(4);
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    assert!(world.report(&assignee, 1, Phase::Running).success);
    let first = world.assignment();
    world.chain.advance(CHECK_TIMEOUT_BLOCKS + 1);
    let second = world.assignment();
    assert_eq!(second.round, first.round + 1);
    assert!(second.votes.is_empty());
    let checker = world.key_of(first.checkers[0]);
    let stale = world.provisioning(&checker, vote(first.round, true));
    assert_failed(&stale, "provisioning", "NotChecker");
}

#[test]
fn closed_lease_is_destroyed_and_leaves_the_active_set() {
    let mut world = provisioned(2);
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
    let mut world = provisioned(1);
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
fn draw_is_deterministic_and_ignores_order() {
    let candidates: Vec<Address> = (0..8u8).map(|i| Address([i; 20])).collect();
    let mut reversed = candidates.clone();
    reversed.reverse();
    let randomness = [7u8; 32];
    let drawn = draw(&candidates, &randomness, FIRST, 3, 2);
    assert_eq!(drawn, draw(&reversed, &randomness, FIRST, 3, 2));
    assert_eq!(drawn.len(), 2);
    assert_ne!(
        drawn,
        draw(&candidates, &randomness, FIRST, 4, 2),
        "rounds rotate"
    );
    assert!(draw(&[], &randomness, FIRST, 1, 2).is_empty());
}

#[test]
fn invariant_catches_an_assignee_that_checks_itself() {
    let mut world = provisioned(3);
    let mut task: Assignment = world.assignment();
    let assignee = task.assigned.unwrap();
    task.checkers = vec![assignee].try_into().unwrap();
    world.chain.corrupt::<Assignments>(&FIRST, &task);
    let violation = Provisioning::try_state(&world.chain.state).unwrap_err();
    assert!(violation.contains("checks itself"), "{violation}");
}

#[test]
fn reported_port_mappings_must_be_declared_and_distinct() {
    use logos_types::operations::PortMapping;
    let mut world = provisioned(4);
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
    let mut world = provisioned(4);
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
