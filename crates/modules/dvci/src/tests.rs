//! Tests of `dvci` against the mock chain (every invariant checked after every block).

use crate::Dvci;
use commonware_cryptography::Signer;
use futures::executor::block_on;
use logos_framework::{apply, Module, Overlay};
use logos_primitives::{Address, Amount, PrivateKey};
use logos_runtime::mock::{address, assert_failed, fixtures::machine, MockChain};
use logos_types::{
    codec::{decode, encode},
    dvci::{
        Aggregate, Aggregates, Call, Endpoint, Provider, ProviderId, ProviderStatus, Providers,
        RegionId, ResourceClass, Resources, ENDPOINT_MAX_BYTES,
    },
    Receipt,
};

const REGION: RegionId = RegionId(7);
const FIRST: ProviderId = ProviderId(0);

/// A chain with a privileged root (seed 1), a provider owner (seed 2) and region 7.
fn chain() -> (MockChain, PrivateKey, PrivateKey) {
    let (root, owner) = (PrivateKey::from_seed(1), PrivateKey::from_seed(2));
    let mut chain = MockChain::with_authority(
        &[
            (address(&root), 1_000_000_000),
            (address(&owner), 1_000_000_000),
        ],
        address(&root),
    );
    let receipt = chain.call(
        &root,
        Call::CreateRegion {
            region: REGION,
            name: "local".try_into().unwrap(),
        },
    );
    assert!(receipt.success, "{receipt:?}");
    (chain, root, owner)
}

fn endpoint(text: &str) -> Endpoint {
    text.try_into().unwrap()
}

fn register(chain: &mut MockChain, owner: &PrivateKey, bond: u128) -> Receipt {
    chain.call(
        owner,
        Call::RegisterProvider {
            endpoint: endpoint("127.0.0.1:7000"),
            inventory: machine(),
            class: ResourceClass::ComputeHosted,
            region: REGION,
            bond: Amount(bond),
        },
    )
}

fn set_status(chain: &mut MockChain, who: &PrivateKey, status: ProviderStatus) -> Receipt {
    chain.call(
        who,
        Call::SetProviderStatus {
            provider: FIRST,
            status,
        },
    )
}

/// Registers provider 0 of `owner` and has `root` admit it.
fn active_provider(chain: &mut MockChain, root: &PrivateKey, owner: &PrivateKey) {
    assert!(register(chain, owner, 2_000_000).success);
    assert!(set_status(chain, root, ProviderStatus::Active).success);
}

fn aggregate(chain: &MockChain) -> Aggregate {
    chain
        .map::<Aggregates>(&(REGION, ResourceClass::ComputeHosted))
        .unwrap_or_default()
}

#[test]
fn registration_reserves_the_bond_and_activation_fills_the_aggregate() {
    let (mut chain, root, owner) = chain();
    let receipt = register(&mut chain, &owner, 2_000_000);
    assert!(receipt.success, "{receipt:?}");
    assert_eq!(chain.account(&address(&owner)).reserved, Amount(2_000_000));
    let record: Provider = chain.map::<Providers>(&FIRST).unwrap();
    assert_eq!(
        (record.status, record.owner),
        (ProviderStatus::Pending, address(&owner))
    );
    assert!(set_status(&mut chain, &root, ProviderStatus::Active).success);
    let group = aggregate(&chain);
    assert_eq!(
        (group.capacity, group.providers.to_vec()),
        (machine(), vec![FIRST])
    );
    assert!(set_status(&mut chain, &root, ProviderStatus::Excluded).success);
    let group = aggregate(&chain);
    assert!(group.capacity.is_zero() && group.providers.is_empty());
}

#[test]
fn registration_errors_leave_state_untouched_but_the_fee() {
    let (mut chain, _, owner) = chain();
    assert_failed(&register(&mut chain, &owner, 10), "dvci", "BondTooLow");
    let receipt = chain.call(
        &owner,
        Call::RegisterProvider {
            endpoint: endpoint("x"),
            inventory: machine(),
            class: ResourceClass::Gpu,
            region: RegionId(99),
            bond: Amount(2_000_000),
        },
    );
    assert_eq!(
        assert_failed(&receipt, "dvci", "UnknownRegion"),
        "unknown region 99"
    );
    let unpaid = register(&mut chain, &owner, 5_000_000_000);
    assert_failed(&unpaid, "balances", "InsufficientBalance");
    let empty = chain.call(
        &owner,
        Call::RegisterProvider {
            endpoint: Endpoint::new(),
            inventory: machine(),
            class: ResourceClass::Gpu,
            region: REGION,
            bond: Amount(2_000_000),
        },
    );
    assert_failed(&empty, "dvci", "EmptyText");
    assert_eq!(chain.account(&address(&owner)).reserved, Amount::ZERO);
    assert!(chain.map::<Providers>(&FIRST).is_none());
}

#[test]
fn only_the_privileged_origin_admits_providers_and_configures() {
    let (mut chain, _, owner) = chain();
    assert!(register(&mut chain, &owner, 2_000_000).success);
    let receipt = set_status(&mut chain, &owner, ProviderStatus::Active);
    assert_eq!(
        assert_failed(&receipt, "dvci", "BadOrigin"),
        logos_types::DispatchError::BadOrigin.to_string()
    );
    let receipt = chain.call(&owner, Call::SetBufferPercent { percent: 10 });
    assert_failed(&receipt, "dvci", "BadOrigin");
    let receipt = chain.call(
        &owner,
        Call::CreateRegion {
            region: RegionId(1),
            name: "x".try_into().unwrap(),
        },
    );
    assert_failed(&receipt, "dvci", "BadOrigin");
    assert!(aggregate(&chain).providers.is_empty());
}

#[test]
fn only_the_owner_deregisters_and_gets_the_bond_back() {
    let (mut chain, root, owner) = chain();
    active_provider(&mut chain, &root, &owner);
    let receipt = chain.call(&root, Call::DeregisterProvider { provider: FIRST });
    assert_eq!(
        assert_failed(&receipt, "dvci", "NotOwner"),
        "not the provider's owner"
    );
    let before = chain.account(&address(&owner));
    assert!(
        chain
            .call(&owner, Call::DeregisterProvider { provider: FIRST })
            .success
    );
    let after = chain.account(&address(&owner));
    assert_eq!(after.reserved, Amount::ZERO);
    assert_eq!(
        after.balance,
        Amount(before.balance.0 + 2_000_000 - chain.params.min_fee.0)
    );
    assert!(chain.map::<Providers>(&FIRST).is_none());
    assert!(aggregate(&chain).providers.is_empty());
}

#[test]
fn placement_never_hands_out_the_buffer() {
    let (mut chain, root, owner) = chain();
    active_provider(&mut chain, &root, &owner);
    let mut overlay = Overlay::new(&chain.state);
    block_on(async {
        // 30 % of 10 vCPU is held back: 7 can be placed, 8 cannot.
        let available = Dvci::allocatable(&overlay, REGION, ResourceClass::ComputeHosted)
            .await
            .unwrap();
        assert_eq!(available.vcpu, 7);
        let small = Resources {
            vcpu: 4,
            memory_mib: 1_024,
            disk_gib: 10,
            gpus: 0,
        };
        assert!(Dvci::allocate(&mut overlay, FIRST, &small).await.unwrap());
        let more = Resources { vcpu: 4, ..small };
        assert!(!Dvci::allocate(&mut overlay, FIRST, &more).await.unwrap());
        let rest = Resources { vcpu: 3, ..small };
        assert!(Dvci::allocate(&mut overlay, FIRST, &rest).await.unwrap());
        assert!(!Dvci::allocate(&mut overlay, ProviderId(1), &rest)
            .await
            .unwrap());
        Dvci::release(&mut overlay, FIRST, &small).await.unwrap();
        let available = Dvci::allocatable(&overlay, REGION, ResourceClass::ComputeHosted)
            .await
            .unwrap();
        assert_eq!(available.vcpu, 4);
        let too_much = Resources { vcpu: 9, ..small };
        assert!(
            Dvci::release(&mut overlay, FIRST, &too_much).await.is_err(),
            "a release beyond the placements is corruption, not a panic"
        );
    });
    let mut state = chain.state.clone();
    apply(&mut state, overlay.into_writes());
    Dvci::try_state(&state).expect("placements keep the aggregate consistent");
}

#[test]
fn invariant_catches_a_corrupted_aggregate() {
    let (mut chain, root, owner) = chain();
    active_provider(&mut chain, &root, &owner);
    let mut group = aggregate(&chain);
    group.capacity.vcpu += 1;
    chain.corrupt::<Aggregates>(&(REGION, ResourceClass::ComputeHosted), &group);
    assert!(Dvci::try_state(&chain.state)
        .unwrap_err()
        .contains("sums differ"));
}

#[test]
fn calls_round_trip_and_oversize_fields_do_not_decode() {
    let call = Call::RegisterProvider {
        endpoint: endpoint("127.0.0.1:7000"),
        inventory: machine(),
        class: ResourceClass::Storage,
        region: RegionId(3),
        bond: Amount(5),
    };
    assert_eq!(decode::<Call>(&encode(&call)).unwrap(), call);
    let mut bytes = encode(&call);
    // The endpoint's length prefix follows the call index: claim one byte more than allowed.
    bytes[1] = (ENDPOINT_MAX_BYTES + 1) as u8;
    assert!(decode::<Call>(&bytes).is_err());
    let unknown = [9u8];
    assert!(decode::<Call>(&unknown).is_err(), "unknown call index");
    assert!(Endpoint::try_from("x".repeat(ENDPOINT_MAX_BYTES + 1)).is_err());
    let _ = Address::default();
}

#[test]
fn only_the_owner_sets_a_usable_agent_key() {
    use logos_primitives::NodeKey;
    let (mut chain, root, owner) = chain();
    assert!(register(&mut chain, &owner, 1_000_000).success);
    let agent = NodeKey::from_public_key(&PrivateKey::from_seed(9).public_key());
    let set = |key| Call::SetAgentKey {
        provider: FIRST,
        key,
    };
    assert_failed(&chain.call(&root, set(agent)), "dvci", "NotOwner");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for unusable in [NodeKey([0xff; 32]), NodeKey(identity)] {
        let receipt = chain.call(&owner, set(unusable));
        assert_failed(&receipt, "dvci", "InvalidAgentKey");
    }
    assert_eq!(chain.map::<Providers>(&FIRST).unwrap().agent_key, None);
    let missing = chain.call(
        &owner,
        Call::SetAgentKey {
            provider: ProviderId(5),
            key: agent,
        },
    );
    assert_failed(&missing, "dvci", "UnknownProvider");
    assert!(chain.call(&owner, set(agent)).success);
    assert_eq!(
        chain.map::<Providers>(&FIRST).unwrap().agent_key,
        Some(agent)
    );
}
