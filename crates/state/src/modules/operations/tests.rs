//! Tests of `operations` against the mock chain (the lease, provisioner and report paths are
//! exercised in `provisioning`'s tests, which share this setup).

use super::*;
use crate::{
    modules::provisioning::tests::{failed, setup},
    Call as RuntimeCall,
};

#[test]
fn tenant_updates_bump_the_generation() {
    let mut setup = setup(2);
    let stranger = setup.provisioners[0].clone();
    let update = RuntimeCall::Operations(Call::UpdateEnvironment { environment: 0 });
    let refused = setup.market.chain.call(&stranger, update.clone());
    failed(&refused, "only the tenant");
    let tenant = setup.market.tenant.clone();
    assert!(setup.market.chain.call(&tenant, update).success);
    let environment = setup.environment();
    assert_eq!(environment.generation, 2);
    assert_eq!(
        environment.condition(ConditionType::Ready).status,
        ConditionStatus::Unknown
    );
}

#[test]
fn invariant_catches_an_environment_missing_from_the_active_list() {
    let mut setup = setup(1);
    setup.market.chain.state.insert(
        active_environments_key(),
        commonware_codec::Encode::encode(&Vec::<u64>::new()).to_vec(),
    );
    let error = try_state(&setup.market.chain.state).unwrap_err();
    assert!(error.contains("differs"), "{error}");
}
