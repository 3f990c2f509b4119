//! Tests of `dvci` against the mock chain (invariants checked after every block).

use super::*;
use crate::{mock::MockChain, Call as RuntimeCall, Receipt};
use commonware_cryptography::Signer;
use futures::executor::block_on;
use logos_primitives::{Address, PrivateKey};

const REGION: RegionId = 7;

fn key(seed: u64) -> (PrivateKey, Address) {
    let key = PrivateKey::from_seed(seed);
    let address = Address::from_public_key(&key.public_key());
    (key, address)
}

fn machine() -> Resources {
    Resources {
        vcpu: 10,
        memory_mib: 10_240,
        disk_gib: 100,
        gpus: 0,
    }
}

/// A chain with a privileged root (seed 1), a provider owner (seed 2) and region 7.
fn chain() -> (MockChain, PrivateKey, PrivateKey) {
    let (root, root_address) = key(1);
    let (owner, owner_address) = key(2);
    let mut chain = MockChain::new(&[
        (root_address, 1_000_000_000),
        (owner_address, 1_000_000_000),
    ]);
    chain.params.privileged_account = Some(root_address);
    let receipt = chain.call(
        &root,
        RuntimeCall::Dvci(Call::CreateRegion {
            region: REGION,
            name: "local".into(),
        }),
    );
    assert!(receipt.success, "{receipt:?}");
    (chain, root, owner)
}

fn register(chain: &mut MockChain, owner: &PrivateKey, bond: u128) -> Receipt {
    chain.call(
        owner,
        RuntimeCall::Dvci(Call::RegisterProvider {
            endpoint: "127.0.0.1:7000".into(),
            inventory: machine(),
            class: ResourceClass::ComputeHosted,
            region: REGION,
            bond: Amount(bond),
        }),
    )
}

fn set_status(
    chain: &mut MockChain,
    who: &PrivateKey,
    provider: ProviderId,
    status: ProviderStatus,
) -> Receipt {
    chain.call(
        who,
        RuntimeCall::Dvci(Call::SetProviderStatus { provider, status }),
    )
}

#[test]
fn registration_reserves_the_bond_and_activation_fills_the_aggregate() {
    let (mut chain, root, owner) = chain();
    let owner_address = Address::from_public_key(&owner.public_key());
    let receipt = register(&mut chain, &owner, 2_000_000);
    assert!(receipt.success, "{receipt:?}");
    assert_eq!(chain.account(&owner_address).reserved, Amount(2_000_000));
    let record: Provider = chain.get(&provider_key(0)).unwrap();
    assert_eq!(
        (record.status, record.owner),
        (ProviderStatus::Pending, owner_address)
    );
    assert!(set_status(&mut chain, &root, 0, ProviderStatus::Active).success);
    let group: Aggregate = chain
        .get(&aggregate_key(REGION, ResourceClass::ComputeHosted))
        .unwrap();
    assert_eq!((group.capacity, group.providers), (machine(), vec![0]));
    assert!(set_status(&mut chain, &root, 0, ProviderStatus::Excluded).success);
    let group: Aggregate = chain
        .get(&aggregate_key(REGION, ResourceClass::ComputeHosted))
        .unwrap();
    assert!(group.capacity.is_zero() && group.providers.is_empty());
}

#[test]
fn registration_errors_leave_state_untouched_but_the_fee() {
    let (mut chain, _, owner) = chain();
    let owner_address = Address::from_public_key(&owner.public_key());
    let receipt = register(&mut chain, &owner, 10);
    assert!(receipt.error.unwrap().contains("below the minimum"));
    let receipt = chain.call(
        &owner,
        RuntimeCall::Dvci(Call::RegisterProvider {
            endpoint: "x".into(),
            inventory: machine(),
            class: ResourceClass::Gpu,
            region: 99,
            bond: Amount(2_000_000),
        }),
    );
    assert_eq!(receipt.error.as_deref(), Some("unknown region 99"));
    let receipt = register(&mut chain, &owner, 5_000_000_000);
    assert!(receipt.error.unwrap().contains("cannot reserve the bond"));
    assert_eq!(chain.account(&owner_address).reserved, Amount::ZERO);
    assert!(chain.get::<Provider>(&provider_key(0)).is_none());
}

#[test]
fn only_the_privileged_origin_admits_providers_and_configures() {
    let (mut chain, _, owner) = chain();
    assert!(register(&mut chain, &owner, 2_000_000).success);
    let receipt = set_status(&mut chain, &owner, 0, ProviderStatus::Active);
    assert_eq!(
        receipt.error.as_deref(),
        Some("privileged call from an unprivileged account")
    );
    let receipt = chain.call(
        &owner,
        RuntimeCall::Dvci(Call::SetBufferPercent { percent: 10 }),
    );
    assert!(!receipt.success);
    let receipt = chain.call(
        &owner,
        RuntimeCall::Dvci(Call::CreateRegion {
            region: 1,
            name: "x".into(),
        }),
    );
    assert!(!receipt.success);
}

#[test]
fn only_the_owner_deregisters_and_gets_the_bond_back() {
    let (mut chain, root, owner) = chain();
    let owner_address = Address::from_public_key(&owner.public_key());
    assert!(register(&mut chain, &owner, 2_000_000).success);
    assert!(set_status(&mut chain, &root, 0, ProviderStatus::Active).success);
    let receipt = chain.call(
        &root,
        RuntimeCall::Dvci(Call::DeregisterProvider { provider: 0 }),
    );
    assert_eq!(receipt.error.as_deref(), Some("not the provider's owner"));
    let before = chain.account(&owner_address);
    assert!(
        chain
            .call(
                &owner,
                RuntimeCall::Dvci(Call::DeregisterProvider { provider: 0 })
            )
            .success
    );
    let after = chain.account(&owner_address);
    assert_eq!(after.reserved, Amount::ZERO);
    assert_eq!(
        after.balance,
        Amount(before.balance.0 + 2_000_000 - chain.params.min_fee.0)
    );
    assert!(chain.get::<Provider>(&provider_key(0)).is_none());
}

#[test]
fn placement_never_hands_out_the_buffer() {
    let (mut chain, root, owner) = chain();
    assert!(register(&mut chain, &owner, 2_000_000).success);
    assert!(set_status(&mut chain, &root, 0, ProviderStatus::Active).success);
    let mut overlay = crate::Overlay::new(&chain.state);
    block_on(async {
        // 30 % of 10 vCPU is held back: 7 can be placed, 8 cannot.
        let available = allocatable(&overlay, REGION, ResourceClass::ComputeHosted)
            .await
            .unwrap();
        assert_eq!(available.vcpu, 7);
        let small = Resources {
            vcpu: 4,
            memory_mib: 1_024,
            disk_gib: 10,
            gpus: 0,
        };
        assert_eq!(allocate(&mut overlay, 0, &small).await.unwrap(), Ok(()));
        let more = Resources { vcpu: 4, ..small };
        assert_eq!(
            allocate(&mut overlay, 0, &more).await.unwrap(),
            Err(PlacementError::BufferReached)
        );
        let rest = Resources { vcpu: 3, ..small };
        assert_eq!(allocate(&mut overlay, 0, &rest).await.unwrap(), Ok(()));
        assert_eq!(
            allocate(&mut overlay, 1, &rest).await.unwrap(),
            Err(PlacementError::ProviderInactive(1))
        );
        release(&mut overlay, 0, &small).await.unwrap();
        let available = allocatable(&overlay, REGION, ResourceClass::ComputeHosted)
            .await
            .unwrap();
        assert_eq!(available.vcpu, 4);
    });
    overlay.commit_transaction();
    let mut state = chain.state.clone();
    for (key, value) in overlay.into_writes() {
        state.insert(key, value.unwrap());
    }
    try_state(&state).expect("placements keep the aggregate consistent");
}

#[test]
fn invariant_catches_a_corrupted_aggregate() {
    let (mut chain, root, owner) = chain();
    assert!(register(&mut chain, &owner, 2_000_000).success);
    assert!(set_status(&mut chain, &root, 0, ProviderStatus::Active).success);
    let key = aggregate_key(REGION, ResourceClass::ComputeHosted);
    let mut group: Aggregate = chain.get(&key).unwrap();
    group.capacity.vcpu += 1;
    chain
        .state
        .insert(key, commonware_codec::Encode::encode(&group).to_vec());
    assert!(try_state(&chain.state).is_err());
}

#[test]
fn calls_round_trip_through_the_codec() {
    use commonware_codec::{DecodeExt, Encode, EncodeSize};
    let call = Call::RegisterProvider {
        endpoint: "127.0.0.1:7000".into(),
        inventory: machine(),
        class: ResourceClass::Storage,
        region: 3,
        bond: Amount(5),
    };
    let bytes = call.encode();
    assert_eq!(bytes.len(), call.encode_size());
    assert_eq!(Call::decode(bytes).unwrap(), call);
    let oversize = Call::RegisterProvider {
        endpoint: "x".repeat(ENDPOINT_MAX_BYTES + 1),
        inventory: machine(),
        class: ResourceClass::Storage,
        region: 3,
        bond: Amount(5),
    };
    let error = Call::decode(oversize.encode()).unwrap_err();
    assert!(
        matches!(error, commonware_codec::Error::InvalidLength(_)),
        "{error:?}"
    );
}
