//! Tests of `market` against the mock chain (every module's invariant checked after each block,
//! escrow conservation included).

use super::*;
use crate::{
    mock::MockChain,
    modules::dvci::{self, ProviderStatus, ResourceClass, Resources},
    Call as RuntimeCall, Receipt,
};
use commonware_cryptography::Signer;
use logos_primitives::PrivateKey;

pub(crate) const REGION: dvci::RegionId = 1;
const PRICE: u128 = 10; // per compute unit per block
const UNITS: u32 = 2; // compute units of the product: rate = 20 per block

pub(crate) struct Market {
    pub(crate) chain: MockChain,
    pub(crate) root: PrivateKey,
    pub(crate) owner: PrivateKey,
    pub(crate) tenant: PrivateKey,
}

pub(crate) fn address(key: &PrivateKey) -> Address {
    Address::from_public_key(&key.public_key())
}

fn small() -> Resources {
    Resources {
        vcpu: 2,
        memory_mib: 2_048,
        disk_gib: 20,
        gpus: 0,
    }
}

fn privileged(market: &mut Market, call: Call) -> Receipt {
    let root = market.root.clone();
    market.chain.call(&root, RuntimeCall::Market(call))
}

/// A chain with region 1, `providers` active 10-vCPU providers, product 0 ("small"),
/// template 0 and a price for compute-hosted.
pub(crate) fn market(providers: usize) -> Market {
    let (root, owner, tenant) = (
        PrivateKey::from_seed(1),
        PrivateKey::from_seed(2),
        PrivateKey::from_seed(3),
    );
    let mut chain = MockChain::new(&[
        (address(&root), 1_000_000_000),
        (address(&owner), 1_000_000_000),
        (address(&tenant), 1_000_000),
    ]);
    chain.params.privileged_account = Some(address(&root));
    let mut market = Market {
        chain,
        root,
        owner,
        tenant,
    };
    let root = market.root.clone();
    assert!(
        market
            .chain
            .call(
                &root,
                RuntimeCall::Dvci(dvci::Call::CreateRegion {
                    region: REGION,
                    name: "local".into()
                })
            )
            .success
    );
    for provider in 0..providers as u64 {
        let owner = market.owner.clone();
        let registered = market.chain.call(
            &owner,
            RuntimeCall::Dvci(dvci::Call::RegisterProvider {
                endpoint: format!("127.0.0.1:{}", 7_000 + provider),
                inventory: Resources {
                    vcpu: 10,
                    memory_mib: 10_240,
                    disk_gib: 100,
                    gpus: 0,
                },
                class: ResourceClass::ComputeHosted,
                region: REGION,
                bond: Amount(1_000_000),
            }),
        );
        assert!(registered.success, "{registered:?}");
        let activated = market.chain.call(
            &root,
            RuntimeCall::Dvci(dvci::Call::SetProviderStatus {
                provider,
                status: ProviderStatus::Active,
            }),
        );
        assert!(activated.success);
    }
    let product = Product {
        name: "small".into(),
        resources: small(),
        class: ResourceClass::ComputeHosted,
        compute_units: UNITS,
    };
    assert!(privileged(&mut market, Call::SetProduct { id: 0, product }).success);
    let workload = Workload {
        image: String::new(),
        command: vec!["logos".into(), "node".into()],
        ports: vec![8545],
        health_port: 8545,
    };
    let template = Template {
        name: "Logos full node".into(),
        product: 0,
        workload,
    };
    assert!(privileged(&mut market, Call::SetTemplate { id: 0, template }).success);
    assert!(
        privileged(
            &mut market,
            Call::SetPrice {
                class: ResourceClass::ComputeHosted,
                price: Amount(PRICE)
            }
        )
        .success
    );
    market
}

pub(crate) fn tenant_call(market: &mut Market, call: Call) -> Receipt {
    let tenant = market.tenant.clone();
    market.chain.call(&tenant, RuntimeCall::Market(call))
}

fn lease_of(market: &Market, id: LeaseId) -> Lease {
    market.chain.get(&lease_key(id)).expect("lease stored")
}

#[test]
fn lease_is_billed_every_block_and_closed_when_escrow_runs_out() {
    let mut market = market(1);
    let owner_before = market.chain.account(&address(&market.owner)).balance;
    let receipt = tenant_call(
        &mut market,
        Call::CreateLease {
            template: 0,
            region: REGION,
            blocks: 3,
        },
    );
    assert!(receipt.success, "{receipt:?}");
    let created_at = market.chain.height;
    // Billed at the end of the creating block: 20 per block, 10 % to the community pool.
    let lease = lease_of(&market, 0);
    assert_eq!(
        (lease.rate, lease.escrow, lease.blocks_billed),
        (Amount(20), Amount(40), 1)
    );
    assert_eq!(
        market.chain.account(&address(&market.tenant)).reserved,
        Amount(40)
    );
    let (_, events) = market.chain.execute_with_events(&[]).unwrap();
    assert_eq!(
        events,
        vec![crate::Event::Market(Event::LeaseBilled {
            lease: 0,
            provider_payout: Amount(18),
            community_payout: Amount(2)
        })]
    );
    let (_, events) = market.chain.execute_with_events(&[]).unwrap();
    assert_eq!(
        events.len(),
        3,
        "billed, closed and destroy requested in the same block: {events:?}"
    );
    assert_eq!(
        events[2],
        crate::Event::Operations(crate::modules::operations::Event::DestroyRequested {
            environment: 0,
            generation: 2
        })
    );
    assert_eq!(
        events[1],
        crate::Event::Market(Event::LeaseClosed {
            lease: 0,
            reason: CloseReason::EscrowExhausted,
            refund: Amount::ZERO
        })
    );
    let lease = lease_of(&market, 0);
    assert_eq!(
        lease.closed,
        Some((created_at + 2, CloseReason::EscrowExhausted))
    );
    assert_eq!(lease.blocks_billed, 3);
    // Never runs free: no more billing, placement released, provider paid 3 × 18.
    let (_, events) = market.chain.execute_with_events(&[]).unwrap();
    assert!(events.is_empty());
    let provider: dvci::Provider = market.chain.get(&dvci::provider_key(0)).unwrap();
    assert!(provider.allocated.is_zero());
    assert_eq!(
        market.chain.account(&address(&market.owner)).balance,
        Amount(owner_before.0 + 54)
    );
    assert_eq!(
        market.chain.account(&community_account()).balance,
        Amount(6)
    );
    assert_eq!(
        market.chain.account(&address(&market.tenant)).reserved,
        Amount::ZERO
    );
}

#[test]
fn tenant_closes_early_and_gets_the_unspent_escrow_back() {
    let mut market = market(1);
    assert!(
        tenant_call(
            &mut market,
            Call::CreateLease {
                template: 0,
                region: REGION,
                blocks: 100
            }
        )
        .success
    );
    let tenant = address(&market.tenant);
    let before = market.chain.account(&tenant);
    let receipt = tenant_call(&mut market, Call::CloseLease { lease: 0 });
    assert!(receipt.success);
    // One block billed (the creating one); the close happens before the next block's billing.
    let refund = Amount(20 * 99);
    assert_eq!(
        receipt.events[1],
        crate::Event::Market(Event::LeaseClosed {
            lease: 0,
            reason: CloseReason::ClosedByTenant,
            refund
        })
    );
    let after = market.chain.account(&tenant);
    assert_eq!(after.reserved, Amount::ZERO);
    assert_eq!(
        after.balance,
        Amount(before.balance.0 + refund.0 - market.chain.params.min_fee.0)
    );
    let again = tenant_call(&mut market, Call::CloseLease { lease: 0 });
    assert_eq!(again.error.as_deref(), Some("lease 0 is closed"));
}

#[test]
fn only_the_tenant_extends_or_closes() {
    let mut market = market(1);
    // Three blocks: billed in the creating block and in the owner's (refused) block below.
    assert!(
        tenant_call(
            &mut market,
            Call::CreateLease {
                template: 0,
                region: REGION,
                blocks: 3
            }
        )
        .success
    );
    let owner = market.owner.clone();
    let refused = market
        .chain
        .call(&owner, RuntimeCall::Market(Call::CloseLease { lease: 0 }));
    assert_eq!(refused.error.as_deref(), Some("not the lease's tenant"));
    let receipt = tenant_call(
        &mut market,
        Call::ExtendLease {
            lease: 0,
            blocks: 5,
        },
    );
    assert!(receipt.success);
    assert_eq!(
        receipt.events[1],
        crate::Event::Market(Event::LeaseExtended {
            lease: 0,
            added: Amount(100)
        })
    );
    for _ in 0..4 {
        market.chain.execute(&[]).unwrap();
    }
    assert!(
        lease_of(&market, 0).closed.is_none(),
        "extension keeps it running"
    );
}

#[test]
fn catalog_and_prices_are_privileged() {
    let mut market = market(0);
    let product = Product {
        name: "x".into(),
        resources: small(),
        class: ResourceClass::Gpu,
        compute_units: 1,
    };
    let refused = tenant_call(&mut market, Call::SetProduct { id: 9, product });
    assert_eq!(
        refused.error.as_deref(),
        Some("privileged call from an unprivileged account")
    );
    let refused = tenant_call(
        &mut market,
        Call::SetPrice {
            class: ResourceClass::Gpu,
            price: Amount(1),
        },
    );
    assert!(!refused.success);
    let workload = Workload {
        image: "x".into(),
        command: vec![],
        ports: vec![],
        health_port: 0,
    };
    let receipt = privileged(
        &mut market,
        Call::SetTemplate {
            id: 1,
            template: Template {
                name: "t".into(),
                product: 42,
                workload,
            },
        },
    );
    assert_eq!(receipt.error.as_deref(), Some("unknown product 42"));
}

#[test]
fn no_capacity_leaves_no_escrow_and_no_lease() {
    let mut market = market(0);
    let receipt = tenant_call(
        &mut market,
        Call::CreateLease {
            template: 0,
            region: REGION,
            blocks: 3,
        },
    );
    assert_eq!(
        receipt.error.as_deref(),
        Some("no capacity in region 1 for this product")
    );
    assert_eq!(
        market.chain.account(&address(&market.tenant)).reserved,
        Amount::ZERO
    );
    assert!(market.chain.get::<Lease>(&lease_key(0)).is_none());
    let unpaid = tenant_call(
        &mut market,
        Call::CreateLease {
            template: 0,
            region: REGION,
            blocks: 1_000_000,
        },
    );
    assert!(unpaid.error.unwrap().contains("cannot reserve the escrow"));
}

#[test]
fn scheduler_fills_the_freest_provider_and_respects_the_buffer() {
    let mut market = market(2);
    // Each provider has 10 vCPU, 7 outside the 30 % buffer; a lease takes 2.
    let mut placed = Vec::new();
    for lease in 0..6 {
        let receipt = tenant_call(
            &mut market,
            Call::CreateLease {
                template: 0,
                region: REGION,
                blocks: 1_000,
            },
        );
        assert!(receipt.success, "lease {lease}: {receipt:?}");
        placed.push(lease_of(&market, lease).provider);
    }
    // Most free vCPU first: the two providers alternate.
    assert_eq!(placed.iter().filter(|provider| **provider == 0).count(), 3);
    // 12 of 14 usable vCPU are taken: one more lease (2 vCPU) fits, the next does not.
    assert!(
        tenant_call(
            &mut market,
            Call::CreateLease {
                template: 0,
                region: REGION,
                blocks: 1_000
            }
        )
        .success
    );
    let refused = tenant_call(
        &mut market,
        Call::CreateLease {
            template: 0,
            region: REGION,
            blocks: 1_000,
        },
    );
    assert!(refused.error.unwrap().contains("no capacity"));
}
