//! Tests of `catalog` against the mock chain (every invariant checked after every block).

use crate::CatalogModule;
use logos_framework::Module;
use logos_runtime::mock::{
    address, assert_failed,
    fixtures::{market, provisioned, small, workload},
};
use logos_types::{
    catalog::{Call, Event, Product, ProductId, Products, Template, TemplateId, Templates},
    dvci::{ResourceClass, Resources},
    market::{LeaseId, Leases},
    operations::{self, EnvironmentId},
    Event as RuntimeEvent,
};

fn product(resources: Resources, compute_units: u32) -> Product {
    Product {
        name: "x".try_into().unwrap(),
        resources,
        class: ResourceClass::Gpu,
        compute_units,
    }
}

#[test]
fn only_the_privileged_origin_sets_the_catalog() {
    let mut world = market(0);
    let refused = world.tenant_call(Call::SetProduct {
        id: ProductId(9),
        product: product(small(), 1),
    });
    assert_eq!(
        assert_failed(&refused, "catalog", "BadOrigin"),
        "privileged call from an unprivileged account"
    );
    assert!(world.chain.map::<Products>(&ProductId(9)).is_none());
    let template = Template {
        name: "t".try_into().unwrap(),
        product: ProductId(0),
        workload: workload(&["x"], 1),
    };
    let refused = world.tenant_call(Call::SetTemplate {
        id: TemplateId(5),
        template,
    });
    assert_failed(&refused, "catalog", "BadOrigin");
    assert!(world.chain.map::<Templates>(&TemplateId(5)).is_none());
}

#[test]
fn templates_need_a_product_and_products_need_resources() {
    let mut world = market(0);
    let root = world.root.clone();
    let orphan = Template {
        name: "t".try_into().unwrap(),
        product: ProductId(42),
        workload: workload(&["x"], 1),
    };
    let receipt = world.chain.call(
        &root,
        Call::SetTemplate {
            id: TemplateId(1),
            template: orphan,
        },
    );
    assert_eq!(
        assert_failed(&receipt, "catalog", "UnknownProduct"),
        "unknown product 42"
    );
    for empty in [product(Resources::default(), 1), product(small(), 0)] {
        let receipt = world.chain.call(
            &root,
            Call::SetProduct {
                id: ProductId(3),
                product: empty,
            },
        );
        assert_failed(&receipt, "catalog", "EmptyProduct");
    }
    world.privileged(Call::SetProduct {
        id: ProductId(3),
        product: product(small(), 5),
    });
    assert_eq!(
        world
            .chain
            .map::<Products>(&ProductId(3))
            .unwrap()
            .compute_units,
        5
    );
}

#[test]
fn invariant_catches_an_empty_product() {
    let mut world = market(0);
    let empty = product(Resources::default(), 0);
    world.chain.corrupt::<Products>(&ProductId(8), &empty);
    let violation = CatalogModule::try_state(&world.chain.state).unwrap_err();
    assert!(violation.contains("product 8"), "{violation}");
}

#[test]
fn a_removed_template_leases_no_more_but_running_environments_keep_it() {
    let mut world = provisioned(1);
    let before = world.environment();
    let refused = world.tenant_call(Call::RemoveTemplate { id: TemplateId(0) });
    assert_failed(&refused, "catalog", "BadOrigin");
    assert!(world.chain.map::<Templates>(&TemplateId(0)).is_some());
    let missing = world.chain.call(
        &world.root.clone(),
        Call::RemoveTemplate { id: TemplateId(7) },
    );
    assert_eq!(
        assert_failed(&missing, "catalog", "UnknownTemplate"),
        "unknown template 7"
    );

    let removed = world.privileged(Call::RemoveTemplate { id: TemplateId(0) });
    assert!(removed.events.iter().any(|event| matches!(
        event,
        RuntimeEvent::Catalog(Event::TemplateRemoved { id: TemplateId(0) })
    )));
    assert!(world.chain.map::<Templates>(&TemplateId(0)).is_none());
    // Valid a block ago, refused now; the tenant's balance only pays the fee.
    let before_account = world.chain.account(&address(&world.tenant));
    let lease = world.lease(100);
    assert_failed(&lease, "market", "UnknownTemplate");
    let after_account = world.chain.account(&address(&world.tenant));
    assert_eq!(
        after_account.balance.0,
        before_account.balance.0 - world.chain.params.min_fee.0
    );
    // No escrow was taken: what is reserved only shrank by one block of lease 0's billing.
    assert_eq!(
        after_account.reserved,
        before_account
            .reserved
            .checked_sub(world.lease_record(0).rate)
            .unwrap()
    );
    assert!(world.chain.map::<Leases>(&LeaseId(1)).is_none());
    // The running environment keeps the workload it was given; updating it to the template's
    // current workload fails since there is none.
    assert_eq!(world.environment().spec, before.spec);
    let update = world.tenant_call(operations::Call::UpdateEnvironment {
        environment: EnvironmentId(0),
    });
    assert_failed(&update, "operations", "UnknownTemplate");
    assert_eq!(world.environment().generation, before.generation);
    // Removing twice is refused.
    let again = world.chain.call(
        &world.root.clone(),
        Call::RemoveTemplate { id: TemplateId(0) },
    );
    assert_failed(&again, "catalog", "UnknownTemplate");
}
