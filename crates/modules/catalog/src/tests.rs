//! Tests of `catalog` against the mock chain (every invariant checked after every block).

use crate::CatalogModule;
use logos_framework::Module;
use logos_runtime::mock::{
    assert_failed,
    fixtures::{market, small, workload},
};
use logos_types::{
    catalog::{Call, Product, ProductId, Products, Template, TemplateId, Templates},
    codec::encode,
    dvci::{ResourceClass, Resources},
    StorageMap,
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
        assert_failed(&refused, "catalog", "NotPrivileged"),
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
    assert_failed(&refused, "catalog", "NotPrivileged");
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
    world.chain.state.insert(
        Products::key(&ProductId(8)),
        encode(&product(Resources::default(), 0)),
    );
    let violation = CatalogModule::try_state(&world.chain.state).unwrap_err();
    assert!(violation.contains("product 8"), "{violation}");
}
