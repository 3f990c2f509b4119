//! Tests of `market` against the mock chain (every invariant checked after every block, the
//! chain-wide escrow conservation included).

use logos_framework::Module;
use logos_primitives::Amount;
use logos_runtime::mock::{
    address, assert_failed,
    fixtures::{market, small, REGION},
};
use logos_runtime::MarketModule;
use logos_types::{
    balances::community_account,
    catalog::TemplateId,
    dvci::{ProviderId, Providers, ResourceClass},
    market::{Call, CloseReason, Event, LeaseId, Leases},
    operations::{self, EnvironmentId},
    Event as RuntimeEvent,
};

const FIRST: LeaseId = LeaseId(0);

#[test]
fn lease_is_billed_every_block_and_closed_when_escrow_runs_out() {
    let mut world = market(1);
    let owner_before = world.chain.account(&address(&world.owner)).balance;
    let receipt = world.lease(3);
    assert!(receipt.success, "{receipt:?}");
    let created_at = world.chain.height;
    // Billed at the end of the creating block: 20 per block, 10 % to the community pool.
    let lease = world.lease_record(0);
    assert_eq!(
        (lease.rate, lease.escrow, lease.blocks_billed),
        (Amount(20), Amount(40), 1)
    );
    assert_eq!(
        world.chain.account(&address(&world.tenant)).reserved,
        Amount(40)
    );
    let (_, events) = world.chain.execute_with_events(&[]).unwrap();
    assert_eq!(
        events,
        vec![RuntimeEvent::Market(Event::LeaseBilled {
            lease: FIRST,
            provider_payout: Amount(18),
            community_payout: Amount(2)
        })]
    );
    let (_, events) = world.chain.execute_with_events(&[]).unwrap();
    assert_eq!(
        events.len(),
        3,
        "billed, closed and destroy requested in the same block: {events:?}"
    );
    assert_eq!(
        events[1],
        RuntimeEvent::Market(Event::LeaseClosed {
            lease: FIRST,
            reason: CloseReason::EscrowExhausted,
            refund: Amount::ZERO
        })
    );
    assert_eq!(
        events[2],
        RuntimeEvent::Operations(operations::Event::DestroyRequested {
            environment: EnvironmentId(0),
            generation: 2
        })
    );
    let lease = world.lease_record(0);
    assert_eq!(
        lease.closed,
        Some((created_at + 2, CloseReason::EscrowExhausted))
    );
    assert_eq!(lease.blocks_billed, 3);
    // Never runs free: no more billing, placement released, provider paid 3 × 18.
    let (_, events) = world.chain.execute_with_events(&[]).unwrap();
    assert!(events.is_empty());
    let provider = world.chain.map::<Providers>(&ProviderId(0)).unwrap();
    assert!(provider.allocated.is_zero());
    assert_eq!(
        world.chain.account(&address(&world.owner)).balance,
        Amount(owner_before.0 + 54)
    );
    assert_eq!(world.chain.account(&community_account()).balance, Amount(6));
    assert_eq!(
        world.chain.account(&address(&world.tenant)).reserved,
        Amount::ZERO
    );
}

#[test]
fn tenant_closes_early_and_gets_the_unspent_escrow_back() {
    let mut world = market(1);
    assert!(world.lease(100).success);
    let tenant = address(&world.tenant);
    let before = world.chain.account(&tenant);
    let receipt = world.tenant_call(Call::CloseLease { lease: FIRST });
    assert!(receipt.success);
    // One block billed (the creating one); the close happens before the next block's billing.
    let refund = Amount(20 * 99);
    assert_eq!(
        receipt.events[1],
        RuntimeEvent::Market(Event::LeaseClosed {
            lease: FIRST,
            reason: CloseReason::ClosedByTenant,
            refund
        })
    );
    let after = world.chain.account(&tenant);
    assert_eq!(after.reserved, Amount::ZERO);
    assert_eq!(
        after.balance,
        Amount(before.balance.0 + refund.0 - world.chain.params.min_fee.0)
    );
    let again = world.tenant_call(Call::CloseLease { lease: FIRST });
    assert_eq!(
        assert_failed(&again, "market", "LeaseClosed"),
        "lease 0 is closed"
    );
    let extend = world.tenant_call(Call::ExtendLease {
        lease: FIRST,
        blocks: 5,
    });
    assert_failed(&extend, "market", "LeaseClosed");
    assert_eq!(world.chain.account(&tenant).reserved, Amount::ZERO);
}

#[test]
fn only_the_tenant_extends_or_closes() {
    let mut world = market(1);
    // Four blocks: billed in the creating block and in the owner's two refused blocks below.
    assert!(world.lease(4).success);
    let owner = world.owner.clone();
    let refused = world.chain.call(&owner, Call::CloseLease { lease: FIRST });
    assert_eq!(
        assert_failed(&refused, "market", "NotTenant"),
        "not the lease's tenant"
    );
    let refused = world.chain.call(
        &owner,
        Call::ExtendLease {
            lease: FIRST,
            blocks: 1,
        },
    );
    assert_failed(&refused, "market", "NotTenant");
    let receipt = world.tenant_call(Call::ExtendLease {
        lease: FIRST,
        blocks: 5,
    });
    assert!(receipt.success);
    assert_eq!(
        receipt.events[1],
        RuntimeEvent::Market(Event::LeaseExtended {
            lease: FIRST,
            added: Amount(100)
        })
    );
    world.chain.advance(4);
    assert!(
        world.lease_record(0).closed.is_none(),
        "extension keeps it running"
    );
}

#[test]
fn prices_and_the_community_share_are_privileged() {
    let mut world = market(0);
    let refused = world.tenant_call(Call::SetPrice {
        class: ResourceClass::Gpu,
        price: Amount(1),
    });
    assert_failed(&refused, "market", "BadOrigin");
    let refused = world.tenant_call(Call::SetCommunityShare { percent: 50 });
    assert_failed(&refused, "market", "BadOrigin");
    let root = world.root.clone();
    let too_large = world
        .chain
        .call(&root, Call::SetCommunityShare { percent: 101 });
    assert_failed(&too_large, "market", "ShareTooLarge");
}

#[test]
fn no_capacity_leaves_no_escrow_and_no_lease() {
    let mut world = market(0);
    let receipt = world.lease(3);
    assert_eq!(
        assert_failed(&receipt, "market", "NoCapacity"),
        "no capacity in region 1 for this product"
    );
    assert_eq!(
        world.chain.account(&address(&world.tenant)).reserved,
        Amount::ZERO
    );
    assert!(world.chain.map::<Leases>(&FIRST).is_none());
    assert_failed(&world.lease(1_000_000), "balances", "InsufficientBalance");
    assert_failed(&world.lease(0), "market", "EmptyLease");
    let unknown = world.tenant_call(Call::CreateLease {
        template: TemplateId(9),
        region: REGION,
        blocks: 1,
    });
    assert_failed(&unknown, "market", "UnknownTemplate");
}

#[test]
fn overflowing_amounts_are_refused_not_wrapped() {
    let mut world = market(1);
    world.privileged(Call::SetPrice {
        class: ResourceClass::ComputeHosted,
        price: Amount(u128::MAX / 2 + 1),
    });
    assert_failed(&world.lease(1), "market", "AmountOverflow");
    world.privileged(Call::SetPrice {
        class: ResourceClass::ComputeHosted,
        price: Amount(1),
    });
    assert_failed(&world.lease(u64::MAX), "balances", "InsufficientBalance");
    assert!(world.lease(10).success);
    let huge = world.tenant_call(Call::ExtendLease {
        lease: FIRST,
        blocks: u64::MAX,
    });
    assert_failed(&huge, "balances", "InsufficientBalance");
}

#[test]
fn scheduler_fills_the_freest_provider_and_respects_the_buffer() {
    let mut world = market(2);
    // Each provider has 10 vCPU, 7 outside the 30 % buffer; a lease takes 2.
    let mut placed = Vec::new();
    for lease in 0..6 {
        let receipt = world.lease(1_000);
        assert!(receipt.success, "lease {lease}: {receipt:?}");
        placed.push(world.lease_record(lease).provider);
    }
    // Most free vCPU first: the two providers alternate.
    assert_eq!(
        placed
            .iter()
            .filter(|provider| **provider == ProviderId(0))
            .count(),
        3
    );
    // 12 of 14 usable vCPU are taken: one more lease (2 vCPU) fits, the next does not.
    assert!(world.lease(1_000).success);
    assert_failed(&world.lease(1_000), "market", "NoCapacity");
}

#[test]
fn invariant_catches_unleased_allocations_and_unpayable_open_leases() {
    let mut world = market(1);
    assert!(world.lease(100).success);
    MarketModule::try_state(&world.chain.state).expect("a fresh lease is consistent");

    // Resources held on a provider that no open lease accounts for.
    let mut state_world = market(1);
    assert!(state_world.lease(100).success);
    let mut provider = state_world.chain.map::<Providers>(&ProviderId(0)).unwrap();
    provider.allocated = provider.allocated.checked_add(&small()).unwrap();
    state_world
        .chain
        .corrupt::<Providers>(&ProviderId(0), &provider);
    let violation = MarketModule::try_state(&state_world.chain.state).unwrap_err();
    assert!(violation.contains("provider 0 has"), "{violation}");

    // An open lease whose escrow cannot pay its next block.
    let mut lease = world.lease_record(0);
    lease.escrow = Amount(lease.rate.0 - 1);
    world.chain.corrupt::<Leases>(&FIRST, &lease);
    let violation = MarketModule::try_state(&world.chain.state).unwrap_err();
    assert!(violation.contains("cannot pay"), "{violation}");
}
