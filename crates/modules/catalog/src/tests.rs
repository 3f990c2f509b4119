//! Tests of `catalog` against the mock chain (every invariant checked after every block).

use crate::CatalogModule;
use logos_framework::Module;
use logos_runtime::mock::{
    address, assert_failed,
    fixtures::{market, provisioned, small, workload},
};
use logos_types::{
    catalog::{
        Call, Event, NextTemplateId, Product, ProductId, Products, Template, TemplateId, Templates,
    },
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
        logos_types::DispatchError::BadOrigin.to_string()
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
    // No escrow was taken (lease 0, never verified, is not charged either).
    assert_eq!(after_account.reserved, before_account.reserved);
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

fn added_id(receipt: &logos_types::Receipt) -> TemplateId {
    assert!(receipt.success, "{receipt:?}");
    receipt
        .events
        .iter()
        .find_map(|event| match event {
            RuntimeEvent::Catalog(Event::TemplateSet { id }) => Some(*id),
            _ => None,
        })
        .expect("TemplateSet")
}

#[test]
fn added_templates_take_the_next_free_id_above_every_id_set() {
    let mut world = market(0);
    // The fixture set template 0.
    assert_eq!(world.chain.value::<NextTemplateId>(), TemplateId(1));
    let template = |name: &str| Template {
        name: name.try_into().unwrap(),
        product: ProductId(0),
        workload: workload(&["x"], 8080),
    };
    let first = world.privileged(Call::AddTemplate {
        template: template("a"),
    });
    assert_eq!(added_id(&first), TemplateId(1));
    world.privileged(Call::SetTemplate {
        id: TemplateId(7),
        template: template("b"),
    });
    let next = world.privileged(Call::AddTemplate {
        template: template("c"),
    });
    assert_eq!(added_id(&next), TemplateId(8), "above the explicit id 7");
    assert_eq!(
        world.chain.map::<Templates>(&TemplateId(8)).unwrap().name,
        "c"
    );
    // Not from anyone else, and nothing moves when refused.
    let refused = world.tenant_call(Call::AddTemplate {
        template: template("d"),
    });
    assert_failed(&refused, "catalog", "BadOrigin");
    assert_eq!(world.chain.value::<NextTemplateId>(), TemplateId(9));
    // The last usable id is u32::MAX - 1: after it, no id is left to add or set.
    world.privileged(Call::SetTemplate {
        id: TemplateId(u32::MAX - 1),
        template: template("last"),
    });
    assert_eq!(world.chain.value::<NextTemplateId>(), TemplateId(u32::MAX));
    let root = world.root.clone();
    for call in [
        Call::AddTemplate {
            template: template("over"),
        },
        Call::SetTemplate {
            id: TemplateId(u32::MAX),
            template: template("over"),
        },
    ] {
        let exhausted = world.chain.call(&root, call);
        assert_failed(&exhausted, "catalog", "TemplateIdsExhausted");
    }
    assert!(world
        .chain
        .map::<Templates>(&TemplateId(u32::MAX))
        .is_none());
}

#[test]
fn templates_with_unpinned_images_or_broken_workloads_are_refused() {
    let mut world = market(0);
    let root = world.root.clone();
    let mut tagged = workload(&["x"], 8080);
    tagged.image = "127.0.0.1:5000/logos/node:latest".try_into().unwrap();
    let mut undeclared = workload(&["x"], 8080);
    undeclared.health.port = 9;
    let mut reserved = workload(&["x"], 8080);
    reserved
        .env
        .try_push(logos_types::catalog::EnvVar {
            name: "LOGOS_CHAIN_RPC".try_into().unwrap(),
            value: "http://evil".try_into().unwrap(),
        })
        .unwrap();
    let mut over_proc = workload(&["x"], 8080);
    over_proc.volume_path = Some("/proc/self".try_into().unwrap());
    for (bad, message) in [
        (tagged, "is not registry/repository@sha256"),
        (undeclared, "health port 9 is not one of the declared ports"),
        (reserved, "is reserved"),
        (over_proc, "volume path"),
    ] {
        let template = Template {
            name: "bad".try_into().unwrap(),
            product: ProductId(0),
            workload: bad,
        };
        for call in [
            Call::AddTemplate {
                template: template.clone(),
            },
            Call::SetTemplate {
                id: TemplateId(3),
                template,
            },
        ] {
            let receipt = world.chain.call(&root, call);
            let text = assert_failed(&receipt, "catalog", "InvalidWorkload");
            assert!(text.contains(message), "{text}");
        }
    }
    assert!(world.chain.map::<Templates>(&TemplateId(3)).is_none());
    assert_eq!(world.chain.value::<NextTemplateId>(), TemplateId(1));
}

#[test]
fn invariant_catches_a_template_at_or_above_the_next_id() {
    let mut world = market(0);
    let template = world.chain.map::<Templates>(&TemplateId(0)).unwrap();
    world.chain.corrupt::<Templates>(&TemplateId(5), &template);
    let violation = CatalogModule::try_state(&world.chain.state).unwrap_err();
    assert!(violation.contains("template 5"), "{violation}");
}
