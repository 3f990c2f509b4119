//! Runtime tests: receipts name the module and error of a failed call (one failure per module),
//! a failing end-of-block hook drops its writes, and the chain-wide invariants catch unaccounted
//! reserves and allocations.

use crate::mock::{address, fixtures::provisioned, MockChain};
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
