//! Tests of `market` against the mock chain (every invariant checked after every block, the
//! chain-wide escrow conservation included): billing that follows verified service, its split,
//! refunds, and the attacker's inputs (zero prices, shares above 100 %, overflows).

use logos_framework::{MapExt, Module};
use logos_primitives::Amount;
use logos_runtime::mock::{
    address, assert_failed,
    fixtures::{market, small, World, REGION},
};
use logos_runtime::MarketModule;
use logos_types::{
    balances::{community_account, Accounts},
    catalog::TemplateId,
    dvci::{ProviderId, Providers, Reliabilities, ResourceClass},
    market::{Call, CloseReason, Event, LeaseId, Leases, Payout, Role, Terms},
    operations::{EnvironmentId, Phase},
    provisioning::Verdict,
    Event as RuntimeEvent,
};

const FIRST: LeaseId = LeaseId(0);

/// Every token: balances and reserves (escrows, bonds, stakes, deposits) of every account.
fn total_supply(world: &World) -> u128 {
    Accounts::iter_from(&world.chain.state)
        .map(|entry| {
            let (_, account) = entry.unwrap();
            account.balance.0 + account.reserved.0
        })
        .sum()
}

/// Runs `blocks` empty blocks, checking after each that no token was made or lost.
fn advance_conserving(world: &mut World, blocks: u64) -> Vec<RuntimeEvent> {
    let supply = total_supply(world);
    let mut all = Vec::new();
    for _ in 0..blocks {
        let (_, events) = world.chain.execute_with_events(&[]).unwrap();
        assert_eq!(total_supply(world), supply, "tokens conserved");
        all.extend(events);
    }
    all
}

fn market_events(events: &[RuntimeEvent]) -> Vec<Event> {
    events
        .iter()
        .filter_map(|event| match event {
            RuntimeEvent::Market(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lease_is_charged_only_for_verified_blocks_and_the_charge_is_split() {
    let mut world = market(1);
    world.privileged(Call::SetPrice {
        class: ResourceClass::ComputeHosted,
        price: Amount(100),
    });
    let supply = total_supply(&world);
    let owner = address(&world.owner);
    let owner_before = world.chain.account(&owner).balance;
    assert!(world.lease(5).success);
    let escrow = Amount(5 * 200);
    // Pending: nothing charged, the block counted against the provider.
    advance_conserving(&mut world, 3);
    let lease = world.lease_record(0);
    assert_eq!((lease.escrow, lease.blocks_billed), (escrow, 0));
    assert_eq!(lease.unverified_blocks, 4);
    world.verify();
    let verified_at = world.chain.height;
    let task = world.assignment();
    let assignee = task.assigned.unwrap();
    let confirmers = task.verifiers.checkers.to_vec();
    assert_eq!(confirmers.len(), 2, "the quorum that confirmed");
    // Charged from the block that verified it: 200 per block; 10 % community, 5 % assignee,
    // 5 % split between the two confirming checkers, the rest to the provider.
    let lease = world.lease_record(0);
    assert_eq!(lease.blocks_billed, 1);
    assert_eq!(lease.last_verified_at, Some(verified_at));
    let events = advance_conserving(&mut world, 1);
    let payouts = vec![
        Payout {
            account: owner,
            role: Role::Provider,
            amount: Amount(160),
        },
        Payout {
            account: community_account(),
            role: Role::Community,
            amount: Amount(20),
        },
        Payout {
            account: assignee,
            role: Role::Assignee,
            amount: Amount(10),
        },
        Payout {
            account: confirmers[0],
            role: Role::Checker,
            amount: Amount(5),
        },
        Payout {
            account: confirmers[1],
            role: Role::Checker,
            amount: Amount(5),
        },
    ];
    assert_eq!(
        market_events(&events),
        vec![Event::LeaseBilled {
            lease: FIRST,
            charged: Amount(200),
            payouts: payouts.clone()
        }]
    );
    let events = advance_conserving(&mut world, 3);
    let closed = market_events(&events);
    assert!(closed.contains(&Event::LeaseClosed {
        lease: FIRST,
        reason: CloseReason::EscrowExhausted,
        refund: Amount::ZERO
    }));
    let lease = world.lease_record(0);
    assert_eq!((lease.blocks_billed, lease.verified_blocks), (5, 5));
    let summed: Vec<_> = payouts
        .iter()
        .map(|payout| Payout {
            amount: Amount(payout.amount.0 * 5),
            ..*payout
        })
        .collect();
    assert_eq!(lease.payouts.to_vec(), summed, "who was paid what");
    assert_eq!(
        world.chain.account(&owner).balance,
        Amount(owner_before.0 + 800)
    );
    let reliability = world.chain.map::<Reliabilities>(&ProviderId(0)).unwrap();
    assert_eq!(
        (reliability.verified_blocks, reliability.unverified_blocks),
        (5, lease.unverified_blocks)
    );
    // Never runs free after that.
    assert!(market_events(&advance_conserving(&mut world, 2)).is_empty());
    assert_eq!(total_supply(&world), supply);
}

#[test]
fn a_lease_never_verified_is_closed_at_the_deadline_with_a_full_refund() {
    let mut world = market(1);
    world.privileged(Call::SetTerms {
        terms: Terms {
            verify_deadline_blocks: 30,
            ..Terms::default()
        },
    });
    let tenant = address(&world.tenant);
    let before = world.chain.account(&tenant);
    assert!(world.lease(100).success);
    let created_at = world.chain.height;
    // The assignee says it runs; a quorum finds it dead: never verified.
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    assert!(world.report(&assignee, 1, Phase::Running).success);
    world.draw();
    world.vote_all(Verdict::EndpointDead);
    let remaining = created_at + 30 - world.chain.height;
    let events = advance_conserving(&mut world, remaining);
    assert!(market_events(&events).contains(&Event::LeaseClosed {
        lease: FIRST,
        reason: CloseReason::NeverVerified,
        refund: Amount(2_000)
    }));
    let lease = world.lease_record(0);
    assert_eq!(
        lease.closed,
        Some((created_at + 30, CloseReason::NeverVerified))
    );
    assert_eq!((lease.blocks_billed, lease.payouts.len()), (0, 0));
    let after = world.chain.account(&tenant);
    assert_eq!(after.reserved, before.reserved);
    assert_eq!(
        after.balance.0 + world.chain.params.min_fee.0,
        before.balance.0,
        "everything back but the fee of its transaction"
    );
    let provider = world.chain.map::<Providers>(&ProviderId(0)).unwrap();
    assert!(provider.allocated.is_zero());
}

#[test]
fn grace_covers_a_short_gap_and_a_long_one_closes_the_lease() {
    let mut world = market(1);
    world.privileged(Call::SetTerms {
        terms: Terms {
            grace_blocks: 3,
            verify_deadline_blocks: 20,
            ..Terms::default()
        },
    });
    assert!(world.lease(1_000).success);
    world.verify();
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    let billed = world.lease_record(0).blocks_billed;
    // The workload stops: reported, no longer verified.
    assert!(world.report(&assignee, 1, Phase::Failed).success);
    let stopped_at = world.chain.height;
    advance_conserving(&mut world, 10);
    let lease = world.lease_record(0);
    let last = lease.last_verified_at.unwrap();
    assert_eq!(last, stopped_at - 1);
    assert_eq!(
        lease.blocks_billed,
        billed + 3,
        "charged for the grace blocks only"
    );
    let remaining = last + 20 - world.chain.height;
    let events = advance_conserving(&mut world, remaining);
    let refund = Amount(lease.escrow.0);
    assert!(market_events(&events).contains(&Event::LeaseClosed {
        lease: FIRST,
        reason: CloseReason::ServiceLost,
        refund
    }));
}

#[test]
fn tenant_closes_early_and_gets_the_unspent_escrow_back() {
    let mut world = market(1);
    assert!(world.lease(100).success);
    let tenant = address(&world.tenant);
    let before = world.chain.account(&tenant);
    let receipt = world.tenant_call(Call::CloseLease { lease: FIRST });
    assert!(receipt.success);
    // Never verified: nothing was charged.
    let refund = Amount(20 * 100);
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
fn a_zero_price_is_refused() {
    let mut world = market(1);
    let root = world.root.clone();
    let zero = world.chain.call(
        &root,
        Call::SetPrice {
            class: ResourceClass::ComputeHosted,
            price: Amount::ZERO,
        },
    );
    assert_eq!(
        assert_failed(&zero, "market", "ZeroPrice"),
        "a price must be above zero"
    );
    assert_eq!(
        world
            .chain
            .map::<logos_types::market::Prices>(&ResourceClass::ComputeHosted),
        Some(Amount(10)),
        "the old price stands"
    );
}

#[test]
fn terms_are_privileged_and_shares_never_exceed_the_charge() {
    let mut world = market(1);
    let terms = Terms {
        assignee_share: 40,
        checkers_share: 50,
        ..Terms::default()
    };
    let refused = world.tenant_call(Call::SetTerms { terms });
    assert_failed(&refused, "market", "BadOrigin");
    let root = world.root.clone();
    // 10 % community + 40 + 51 > 100.
    let over = world.chain.call(
        &root,
        Call::SetTerms {
            terms: Terms {
                checkers_share: 51,
                ..terms
            },
        },
    );
    assert_failed(&over, "market", "InvalidTerms");
    let no_deadline = world.chain.call(
        &root,
        Call::SetTerms {
            terms: Terms {
                verify_deadline_blocks: 0,
                ..terms
            },
        },
    );
    assert_failed(&no_deadline, "market", "InvalidTerms");
    assert!(world.privileged(Call::SetTerms { terms }).success);
    let share = world
        .chain
        .call(&root, Call::SetCommunityShare { percent: 11 });
    assert_failed(&share, "market", "ShareTooLarge");
}

#[test]
fn placement_prefers_providers_that_served_well() {
    let mut world = market(2);
    assert!(world.lease(1_000).success);
    let first = world.lease_record(0).provider;
    // A quorum finds environment 0's provider unreachable: a fault on its record.
    let assignee = world.key_of(world.assignment().assigned.unwrap());
    assert!(world.report(&assignee, 1, Phase::Running).success);
    world.draw();
    world.vote_all(Verdict::AgentUnreachable);
    let faulty = world.chain.map::<Reliabilities>(&first).unwrap();
    assert_eq!(faulty.faults, 1);
    // The other provider has less free vCPU after two leases, and still comes first.
    for lease in 1..4 {
        assert!(world.lease(1_000).success);
        assert_ne!(world.lease_record(lease).provider, first, "lease {lease}");
    }
}

#[test]
fn only_the_tenant_extends_or_closes() {
    let mut world = market(1);
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
    world.verify();
    world.chain.advance(4);
    assert!(
        world.lease_record(0).closed.is_none(),
        "extension keeps it running"
    );
    assert_eq!(world.lease_record(0).escrow, Amount(20 * 9 - 20 * 5));
}

#[test]
fn prices_and_the_community_share_are_privileged() {
    let mut world = market(0);
    let _ = EnvironmentId(0);
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
