//! Runtime tests: receipts name the module and error of a failed call (one failure per module),
//! a failing end-of-block hook drops its writes, and the chain-wide invariants catch unaccounted
//! reserves and allocations.

use crate::mock::{address, fixtures::provisioned, MockChain};
use crate::BlockError;
use commonware_cryptography::Signer;
use logos_framework::MapExt;
use logos_primitives::{Address, Amount, PrivateKey};
use logos_types::{
    balances::{self, AccountInfo, Accounts},
    catalog,
    codec::encode,
    dvci::{self, ProviderId},
    market::{self, LeaseId},
    operations, provisioning, CallError, Event, Receipt, RuntimeEvent, StorageMap,
};

fn failure(receipt: &Receipt) -> &CallError {
    assert!(!receipt.success, "{receipt:?}");
    receipt
        .error
        .as_ref()
        .expect("a failed call names its error")
}

#[test]
fn every_module_names_its_failures_in_receipts() {
    let key = PrivateKey::from_seed(1);
    let mut chain = MockChain::new(&[(address(&key), 10_000_000)]);
    let cases: Vec<(logos_types::Call, &str, &str, [u8; 2])> = vec![
        (
            balances::Call::Transfer {
                to: Address([9; 20]),
                amount: Amount::ZERO,
            }
            .into(),
            "balances",
            "ZeroAmount",
            [0, 1],
        ),
        (
            dvci::Call::SetBufferPercent { percent: 10 }.into(),
            "dvci",
            "BadOrigin",
            [1, 255],
        ),
        (
            market::Call::CloseLease {
                lease: market::LeaseId(7),
            }
            .into(),
            "market",
            "UnknownLease",
            [2, 3],
        ),
        (
            operations::Call::UpdateEnvironment {
                environment: operations::EnvironmentId(3),
            }
            .into(),
            "operations",
            "UnknownEnvironment",
            [3, 0],
        ),
        (
            provisioning::Call::RegisterProvisioner { stake: Amount(1) }.into(),
            "provisioning",
            "StakeTooLow",
            [4, 0],
        ),
        (
            catalog::Call::SetProduct {
                id: catalog::ProductId(0),
                product: catalog::Product {
                    name: "p".try_into().unwrap(),
                    resources: dvci::Resources::default(),
                    class: dvci::ResourceClass::ComputeHosted,
                    compute_units: 1,
                },
            }
            .into(),
            "catalog",
            "BadOrigin",
            [5, 255],
        ),
    ];
    for (call, module, error, index) in cases {
        let receipt = chain.call(&key, call);
        let failed = failure(&receipt);
        assert_eq!(
            (failed.module.as_str(), failed.error.as_str(), failed.index),
            (module, error, index),
            "{failed}"
        );
        assert!(!failed.message.is_empty());
        let json = serde_json::to_value(&receipt).unwrap();
        assert_eq!(json["error"]["module"], module);
        assert_eq!(json["error"]["error"], error);
        assert_eq!(json["error"]["index"], serde_json::json!(index));
    }
    // Six fees paid, nothing else changed.
    let fee = chain.params.min_fee.0;
    assert_eq!(
        chain.account(&address(&key)).balance.0,
        10_000_000 - 6 * fee
    );
}

#[test]
fn unaccounted_reserve_breaks_the_chain_wide_invariant() {
    let key = PrivateKey::from_seed(2);
    let chain = MockChain::new(&[(address(&key), 1_000)]);
    let mut state = chain.state.clone();
    let stolen = AccountInfo {
        nonce: 0,
        balance: Amount(900),
        reserved: Amount(100),
    };
    state.insert(Accounts::key(&address(&key)), encode(&stolen));
    let violation = crate::try_state_all(&state).unwrap_err();
    assert!(
        violation.starts_with("runtime: reserved 100"),
        "{violation}"
    );
    assert_eq!(
        Accounts::get_from(&state, &address(&key)).unwrap(),
        Some(stolen)
    );
}

#[test]
fn a_failing_hook_drops_its_writes_and_says_why() {
    let mut world = provisioned(1);
    world.verify();
    assert!(world.lease(100).success);
    // Lease 1 names a provider that does not exist: billing it is a corruption. Lease 0 is
    // billed first, so its payment is a write the failed hook must drop.
    let mut broken = world.lease_record(1);
    broken.provider = ProviderId(99);
    world.chain.corrupt::<market::Leases>(&LeaseId(1), &broken);
    let tenant = world.chain.account(&address(&world.tenant));
    let outcome = world.chain.dry_run(&[]).unwrap();

    let failed: Vec<_> = outcome
        .block_events
        .iter()
        .filter_map(|event| match event {
            Event::Runtime(RuntimeEvent::HookFailed { module, error }) => Some((module, error)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", outcome.block_events);
    assert_eq!(failed[0].0, "market");
    assert_eq!(failed[0].1.error, "Corruption");
    assert!(!outcome
        .block_events
        .iter()
        .any(|event| matches!(event, Event::Market(market::Event::LeaseBilled { .. }))));
    let mut after = world.chain.state.clone();
    logos_framework::apply(&mut after, outcome.writes);
    assert_eq!(
        Accounts::get_from(&after, &address(&world.tenant)).unwrap(),
        Some(tenant)
    );
    assert_eq!(
        market::Leases::get_from(&after, &LeaseId(0)).unwrap(),
        Some(world.lease_record(0))
    );
}

#[test]
fn a_leader_builds_a_block_whatever_the_candidates() {
    let keys: Vec<PrivateKey> = (0..20).map(PrivateKey::from_seed).collect();
    let honest = PrivateKey::from_seed(100);
    let mut funded: Vec<(Address, u128)> = keys.iter().map(|key| (address(key), 1_000)).collect();
    funded.push((address(&honest), 1_000_000));
    let mut chain = MockChain::new(&funded);
    let fee = chain.params.min_fee;
    let mut candidates = Vec::new();
    for key in &keys {
        // A transfer that drains the balance, then a next nonce whose fee cannot be paid.
        let drain = 1_000 - fee.0;
        for amount in [drain, 1] {
            candidates.push(
                chain.sign(
                    key,
                    balances::Call::Transfer {
                        to: Address([7; 20]),
                        amount: Amount(amount),
                    }
                    .into(),
                ),
            );
        }
    }
    // A foreign chain's transaction from the honest account, then its genuine transfer (same
    // sender, so the genuine one rides behind the refused one), and an unfunded stranger's.
    let small = || -> logos_types::Call {
        balances::Call::Transfer {
            to: Address([8; 20]),
            amount: Amount(5),
        }
        .into()
    };
    let mut foreign = chain.sign(&honest, small());
    let genuine = chain.sign(&honest, small());
    let other = PrivateKey::from_seed(101);
    let stranger = chain.sign(&other, small());
    candidates.push(stranger.clone());
    candidates.push(genuine);
    foreign = logos_types::TransactionPayload {
        chain_id: logos_primitives::ChainId(logos_primitives::hash(&[b"elsewhere"])),
        ..foreign.payload().clone()
    }
    .sign(&honest);
    candidates.insert(0, foreign);

    let built = chain.build(&candidates).unwrap();
    // The 20 drains are in; the 20 unpayable follow-ups, the unfunded stranger and the foreign
    // transaction are out. The honest sender's genuine transfer has nonce 1 and so follows the
    // foreign one (nonce 0): it is left out with it, as a nonce-ordered run must be.
    assert_eq!(built.included.len(), 20);
    assert_eq!(built.skipped.len(), 20 + 2);
    let reasons: Vec<&BlockError> = built.skipped.iter().map(|(_, reason)| reason).collect();
    assert!(
        matches!(reasons[0], BlockError::WrongChainId { .. }),
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|reason| matches!(reason, BlockError::FeeUnpaid { .. }))
            .count(),
        21
    );
    // What was built is exactly what every validator computes for the included list.
    let executed = chain.dry_run(&built.included).unwrap();
    assert_eq!(executed.writes, built.outcome.writes);
    assert_eq!(executed.receipts, built.outcome.receipts);
    chain.execute(&built.included).unwrap();
    for key in &keys {
        assert_eq!(chain.account(&address(key)).balance, Amount::ZERO);
    }
    // Nothing at all is buildable too: an empty block.
    let empty = chain.build(&[]).unwrap();
    assert!(empty.included.is_empty() && empty.skipped.is_empty());
}
