//! Tests of `provisioning` and `operations` against the mock chain (every module's invariant
//! checked after each block).

use super::*;
use crate::{
    modules::{
        market::tests::{address, market, tenant_call, Market, REGION},
        operations::{ConditionType, Desired, Environment},
    },
    Call as RuntimeCall, Receipt,
};
use commonware_cryptography::Signer;
use logos_primitives::PrivateKey;

const STAKE: Amount = Amount(2_000_000);

pub(crate) struct Setup {
    pub(crate) market: Market,
    pub(crate) provisioners: Vec<PrivateKey>,
}

/// One active provider, `count` registered provisioners and one lease (environment 0).
pub(crate) fn setup(count: u64) -> Setup {
    let mut market = market(1);
    let provisioners: Vec<_> = (0..count).map(|i| PrivateKey::from_seed(100 + i)).collect();
    for key in &provisioners {
        let root = market.root.clone();
        let funded = market.chain.call(
            &root,
            RuntimeCall::Balances(balances::Call::Transfer {
                to: address(key),
                amount: Amount(10_000_000),
            }),
        );
        assert!(funded.success);
        let registered = market.chain.call(
            key,
            RuntimeCall::Provisioning(Call::RegisterProvisioner { stake: STAKE }),
        );
        assert!(registered.success, "{registered:?}");
    }
    let created = tenant_call(
        &mut market,
        market::Call::CreateLease {
            template: 0,
            region: REGION,
            blocks: 10_000,
        },
    );
    assert!(created.success, "{created:?}");
    Setup {
        market,
        provisioners,
    }
}

impl Setup {
    fn assignment(&self) -> Assignment {
        self.market.chain.get(&assignment_key(0)).expect("assigned")
    }

    pub(crate) fn environment(&self) -> Environment {
        self.market
            .chain
            .get(&operations::environment_key(0))
            .expect("environment")
    }

    fn key_of(&self, account: Address) -> PrivateKey {
        self.provisioners
            .iter()
            .find(|key| address(key) == account)
            .expect("a test provisioner")
            .clone()
    }

    fn call(&mut self, key: &PrivateKey, call: Call) -> Receipt {
        self.market.chain.call(key, RuntimeCall::Provisioning(call))
    }

    fn report(&mut self, key: &PrivateKey, generation: u64, phase: Phase) -> Receipt {
        let report = Report {
            generation,
            phase,
            endpoint: "10.88.1.2:8645".into(),
            message: "HealthCheckPassed: 200".into(),
        };
        self.call(
            key,
            Call::Report {
                environment: 0,
                report,
            },
        )
    }

    fn vote_all(&mut self, agrees: bool) {
        let task = self.assignment();
        for checker in task.checkers {
            let key = self.key_of(checker);
            let round = task.round;
            let receipt = self.call(
                &key,
                Call::CrossCheck {
                    environment: 0,
                    round,
                    agrees,
                },
            );
            assert!(receipt.success, "{receipt:?}");
        }
    }
}

pub(crate) fn failed(receipt: &Receipt, text: &str) {
    assert!(!receipt.success);
    let error = receipt.error.as_deref().unwrap_or_default();
    assert!(error.contains(text), "{error} does not contain {text}");
}

#[test]
fn lease_creates_an_assigned_environment_that_a_quorum_verifies() {
    let mut setup = setup(4);
    let environment = setup.environment();
    assert_eq!(
        (environment.generation, environment.desired),
        (1, Desired::Running)
    );
    assert_eq!(
        environment.condition(ConditionType::Scheduled).status,
        ConditionStatus::True
    );
    let assigned = setup.assignment().assigned.expect("assigned at creation");
    let assignee = setup.key_of(assigned);
    let other = setup
        .provisioners
        .iter()
        .find(|key| address(key) != assigned)
        .unwrap()
        .clone();
    failed(&setup.report(&other, 1, Phase::Running), "not the assigned");
    failed(&setup.report(&assignee, 2, Phase::Running), "generation 2");
    assert!(setup.report(&assignee, 1, Phase::Running).success);
    failed(&setup.report(&assignee, 1, Phase::Running), "unchanged");
    let task = setup.assignment();
    assert_eq!(task.checkers.len(), CHECKERS);
    assert!(!task.checkers.contains(&assigned));
    let environment = setup.environment();
    assert_eq!(
        (environment.phase, environment.observed_generation),
        (Phase::Running, 1)
    );
    assert_eq!(environment.endpoint, "10.88.1.2:8645");
    let ready = environment.condition(ConditionType::Ready);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::True, "HealthCheckPassed")
    );
    // The assignee cannot vote on its own report; checkers vote once.
    let round = task.round;
    let vote = Call::CrossCheck {
        environment: 0,
        round,
        agrees: true,
    };
    failed(&setup.call(&assignee, vote.clone()), "not a cross-checker");
    let first = setup.key_of(task.checkers[0]);
    assert!(setup.call(&first, vote.clone()).success);
    failed(&setup.call(&first, vote), "already voted");
    assert_eq!(
        setup
            .environment()
            .condition(ConditionType::Verified)
            .status,
        ConditionStatus::Unknown,
        "one vote is not a quorum of two"
    );
    let second = setup.key_of(task.checkers[1]);
    let receipt = setup.call(
        &second,
        Call::CrossCheck {
            environment: 0,
            round,
            agrees: true,
        },
    );
    assert!(receipt
        .events
        .contains(&crate::Event::Provisioning(Event::EnvironmentVerified {
            environment: 0,
            round
        })));
    assert_eq!(
        setup
            .environment()
            .condition(ConditionType::Verified)
            .status,
        ConditionStatus::True
    );
}

#[test]
fn contradicted_report_is_slashed_and_the_task_reassigned() {
    let mut setup = setup(4);
    let liar = setup.assignment().assigned.unwrap();
    let liar_key = setup.key_of(liar);
    let community_before = setup.market.chain.account(&market::community_account());
    assert!(setup.report(&liar_key, 1, Phase::Running).success);
    setup.vote_all(false);
    let record: Provisioner = setup.market.chain.get(&provisioner_key(&liar)).unwrap();
    let slashed = Amount(STAKE.0 / 10);
    assert_eq!(
        (record.stake, record.slashed),
        (Amount(STAKE.0 - slashed.0), slashed)
    );
    assert_eq!(
        setup.market.chain.account(&liar).reserved,
        record.stake,
        "the slashed part left the reserve"
    );
    let community = setup.market.chain.account(&market::community_account());
    assert!(community.balance.0 >= community_before.balance.0 + slashed.0);
    let task = setup.assignment();
    let successor = task.assigned.unwrap();
    assert_ne!(successor, liar);
    assert!(task.replaced.contains(&liar));
    assert!(task.report.is_none());
    let environment = setup.environment();
    assert_eq!(
        environment.condition(ConditionType::Verified).status,
        ConditionStatus::False
    );
    failed(
        &setup.report(&liar_key, 1, Phase::Running),
        "not the assigned",
    );
    let successor_key = setup.key_of(successor);
    assert!(setup.report(&successor_key, 1, Phase::Running).success);
    setup.vote_all(true);
    assert_eq!(
        setup
            .environment()
            .condition(ConditionType::Verified)
            .status,
        ConditionStatus::True
    );
}

#[test]
fn missing_report_gets_the_task_reassigned() {
    let mut setup = setup(3);
    let silent = setup.assignment().assigned.unwrap();
    for _ in 0..REPORT_TIMEOUT_BLOCKS {
        setup.market.chain.execute(&[]).unwrap();
    }
    assert_eq!(
        setup.assignment().assigned,
        Some(silent),
        "not yet timed out"
    );
    let (_, events) = setup.market.chain.execute_with_events(&[]).unwrap();
    let task = setup.assignment();
    let successor = task.assigned.unwrap();
    assert_ne!(successor, silent);
    assert!(
        events.contains(&crate::Event::Provisioning(Event::TaskAssigned {
            environment: 0,
            provisioner: successor,
            reason: AssignReason::ReportMissing
        }))
    );
}

#[test]
fn undecided_round_rotates_its_checkers() {
    let mut setup = setup(4);
    let assignee = setup.key_of(setup.assignment().assigned.unwrap());
    assert!(setup.report(&assignee, 1, Phase::Running).success);
    let first = setup.assignment();
    for _ in 0..=CHECK_TIMEOUT_BLOCKS {
        setup.market.chain.execute(&[]).unwrap();
    }
    let second = setup.assignment();
    assert_eq!(second.round, first.round + 1);
    assert!(second.votes.is_empty());
    let checker = setup.key_of(first.checkers[0]);
    let stale = setup.call(
        &checker,
        Call::CrossCheck {
            environment: 0,
            round: first.round,
            agrees: true,
        },
    );
    failed(&stale, "not a cross-checker");
}

#[test]
fn closed_lease_is_destroyed_and_leaves_the_active_set() {
    let mut setup = setup(2);
    let assignee = setup.key_of(setup.assignment().assigned.unwrap());
    assert!(setup.report(&assignee, 1, Phase::Running).success);
    let closed = tenant_call(&mut setup.market, market::Call::CloseLease { lease: 0 });
    assert!(closed.success);
    let environment = setup.environment();
    assert_eq!(
        (environment.desired, environment.generation),
        (Desired::Destroyed, 2)
    );
    // Deregistering while assigned is refused.
    failed(
        &setup.call(&assignee, Call::DeregisterProvisioner),
        "still assigned",
    );
    assert!(setup.report(&assignee, 2, Phase::Destroyed).success);
    assert!(setup
        .market
        .chain
        .get::<Assignment>(&assignment_key(0))
        .is_none());
    let active: Vec<u64> = setup
        .market
        .chain
        .state
        .get(&operations::active_environments_key())
        .map(|bytes| operations::decode_active(bytes))
        .unwrap()
        .unwrap();
    assert!(active.is_empty());
    let before = setup.market.chain.account(&address(&assignee));
    let left = setup.call(&assignee, Call::DeregisterProvisioner);
    assert!(left.success, "{left:?}");
    let after = setup.market.chain.account(&address(&assignee));
    assert_eq!(after.reserved, Amount::ZERO);
    let fee = setup.market.chain.params.min_fee.0;
    assert_eq!(
        after.balance.0 + fee,
        before.balance.0 + STAKE.0,
        "stake back, fee paid"
    );
}

#[test]
fn stake_below_the_minimum_is_refused() {
    let mut setup = setup(1);
    let key = PrivateKey::from_seed(999);
    let root = setup.market.root.clone();
    setup.market.chain.call(
        &root,
        RuntimeCall::Balances(balances::Call::Transfer {
            to: address(&key),
            amount: Amount(10_000_000),
        }),
    );
    let receipt = setup.call(
        &key,
        Call::RegisterProvisioner {
            stake: Amount(DEFAULT_MINIMUM_STAKE.0 - 1),
        },
    );
    failed(&receipt, "below the minimum");
    let accepted = setup.call(&key, Call::RegisterProvisioner { stake: STAKE });
    assert!(accepted.success, "{accepted:?}");
    failed(
        &setup.call(&key, Call::RegisterProvisioner { stake: STAKE }),
        "already registered",
    );
}
