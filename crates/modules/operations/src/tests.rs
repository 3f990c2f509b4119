//! Tests of `operations` against the mock chain (the lease, provisioner and report paths are
//! exercised with `provisioning`'s; these cover the tenant's update and the invariant).

use crate::Operations;
use logos_framework::Module;
use logos_runtime::mock::{
    assert_failed,
    fixtures::{machine, provisioned, workload},
};
use logos_types::{
    catalog::{self, Product, ProductId, Template, TemplateId},
    codec::encode,
    dvci::ResourceClass,
    market,
    operations::{
        ActiveEnvironments, Call, ConditionStatus, ConditionType, Desired, EnvironmentId,
        Environments,
    },
    StorageValue,
};

const FIRST: EnvironmentId = EnvironmentId(0);

#[test]
fn tenant_updates_bump_the_generation() {
    let mut world = provisioned(2);
    let stranger = world.provisioners[0].clone();
    let update = Call::UpdateEnvironment { environment: FIRST };
    let refused = world.chain.call(&stranger, update.clone());
    assert_eq!(
        assert_failed(&refused, "operations", "NotTenant"),
        "only the tenant may change this environment"
    );
    assert_eq!(world.environment().generation, 1);
    assert!(world.tenant_call(update.clone()).success);
    let environment = world.environment();
    assert_eq!(environment.generation, 2);
    assert_eq!(
        environment.condition(ConditionType::Ready).status,
        ConditionStatus::Unknown
    );
    let missing = world.tenant_call(Call::UpdateEnvironment {
        environment: EnvironmentId(9),
    });
    assert_failed(&missing, "operations", "UnknownEnvironment");
    // Once its lease closes, an environment cannot be updated (valid now, invalid a block
    // later).
    assert!(
        world
            .tenant_call(market::Call::CloseLease {
                lease: market::LeaseId(0)
            })
            .success
    );
    assert_eq!(world.environment().desired, Desired::Destroyed);
    assert_failed(&world.tenant_call(update), "operations", "Destroying");
    assert_eq!(world.environment().generation, 3);
}

#[test]
fn invariant_catches_an_environment_missing_from_the_active_list() {
    let mut world = provisioned(1);
    let mut active = world.chain.value::<ActiveEnvironments>();
    active.clear();
    world
        .chain
        .state
        .insert(ActiveEnvironments::key(), encode(&active));
    let violation = Operations::try_state(&world.chain.state).unwrap_err();
    assert!(violation.contains("differs"), "{violation}");
}

#[test]
fn invariant_catches_conditions_out_of_order() {
    let mut world = provisioned(1);
    let mut environment = world.environment();
    environment.conditions.swap(1, 2);
    world.chain.corrupt::<Environments>(&FIRST, &environment);
    let violation = Operations::try_state(&world.chain.state).unwrap_err();
    assert!(violation.contains("out of order"), "{violation}");
}

/// Template 0 set anew: another workload on `product`.
fn reused_template(product: ProductId) -> catalog::Call {
    catalog::Call::SetTemplate {
        id: TemplateId(0),
        template: Template {
            name: "reused".try_into().unwrap(),
            product,
            workload: workload(&["other"], 9000),
        },
    }
}

#[test]
fn an_update_cannot_move_an_environment_to_a_bigger_product() {
    let mut world = provisioned(1);
    let big = Product {
        name: "big".try_into().unwrap(),
        resources: machine(),
        class: ResourceClass::ComputeHosted,
        compute_units: 50,
    };
    world.privileged(catalog::Call::SetProduct {
        id: ProductId(1),
        product: big,
    });
    // The template is withdrawn and its id reused for another product: an update would give
    // the environment resources its lease does not pay for.
    world.privileged(catalog::Call::RemoveTemplate { id: TemplateId(0) });
    world.privileged(reused_template(ProductId(1)));
    let before = world.environment();
    let refused = world.tenant_call(Call::UpdateEnvironment { environment: FIRST });
    assert_eq!(
        assert_failed(&refused, "operations", "ProductChanged"),
        "template 0 now needs other resources than this environment holds"
    );
    assert_eq!(world.environment(), before);
    // Back on a product of the same resources, the new workload applies.
    world.privileged(reused_template(ProductId(0)));
    assert!(
        world
            .tenant_call(Call::UpdateEnvironment { environment: FIRST })
            .success
    );
    let updated = world.environment();
    assert_eq!(updated.generation, before.generation + 1);
    assert_eq!(updated.spec.workload, workload(&["other"], 9000));
    assert_eq!(updated.spec.resources, before.spec.resources);
}
