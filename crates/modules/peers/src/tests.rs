//! Tests of `peers` against the mock chain (every invariant checked after every block),
//! from the attacker's side: forged, replayed, squatted, malformed, over the limit.

use commonware_cryptography::Signer;
use logos_primitives::{Amount, KeySignature, NodeKey, PrivateKey};
use logos_runtime::mock::{address, assert_failed, fixtures::market, fixtures::World};
use logos_types::{
    peers::{
        sign_registration, Call, Event, FullNodeKeys, FullNodes, MinimumDeposit, P2pAddress,
        DEFAULT_MINIMUM_DEPOSIT, FULL_NODES_MAX,
    },
    Event as RuntimeEvent,
};

/// The minimum deposit of [`world`] (the fixture's accounts hold 1e9; the default is 1e9).
const DEPOSIT: Amount = Amount(1_000_000);

fn at(text: &str) -> P2pAddress {
    text.parse().unwrap()
}

/// The market fixture with [`DEPOSIT`] as the minimum deposit.
fn world() -> World {
    let mut world = market(0);
    assert_eq!(
        world.chain.value::<MinimumDeposit>(),
        DEFAULT_MINIMUM_DEPOSIT
    );
    world.privileged(Call::SetMinimumDeposit { deposit: DEPOSIT });
    world
}

/// `node`'s signature for `owner` at `p2p_address` on the mock chain.
fn sign(
    world: &World,
    node: &PrivateKey,
    owner: &PrivateKey,
    p2p_address: &str,
) -> (NodeKey, KeySignature) {
    sign_registration(
        node,
        &world.chain.chain_id,
        &address(owner),
        &at(p2p_address),
    )
}

/// `node`'s registration by `owner` at `address` with the minimum deposit.
fn registration(world: &World, node: &PrivateKey, owner: &PrivateKey, p2p_address: &str) -> Call {
    let (key, signature) = sign(world, node, owner, p2p_address);
    Call::RegisterFullNode {
        key,
        address: at(p2p_address),
        deposit: DEPOSIT,
        signature,
    }
}

fn node(seed: u64) -> PrivateKey {
    PrivateKey::from_seed(1_000 + seed)
}

fn key(node: &PrivateKey) -> NodeKey {
    NodeKey::from_public_key(&node.public_key())
}

fn reserved(world: &World, account: &PrivateKey) -> Amount {
    world.chain.account(&address(account)).reserved
}

#[test]
fn a_registration_reserves_its_deposit_until_its_owner_deregisters() {
    let mut world = world();
    let (alice, mallory) = (world.owner.clone(), world.tenant.clone());
    let free_before = world.chain.account(&address(&alice)).balance;
    let receipt = world.chain.call(
        &alice,
        registration(&world, &node(0), &alice, "127.0.0.1:30400"),
    );
    assert!(receipt.success, "{receipt:?}");
    assert!(receipt
        .events
        .contains(&RuntimeEvent::Peers(Event::FullNodeRegistered {
            key: key(&node(0)),
            owner: address(&alice),
        })));
    let record = world.chain.map::<FullNodes>(&key(&node(0))).unwrap();
    assert_eq!((record.owner, record.deposit), (address(&alice), DEPOSIT));
    assert_eq!(world.chain.value::<FullNodeKeys>().len(), 1);
    assert_eq!(reserved(&world, &alice), DEPOSIT);

    // Nobody else deregisters it.
    let refused = world
        .chain
        .call(&mallory, Call::DeregisterFullNode { key: key(&node(0)) });
    assert_failed(&refused, "peers", "NotOwner");
    assert_eq!(world.chain.value::<FullNodeKeys>().len(), 1);

    let receipt = world
        .chain
        .call(&alice, Call::DeregisterFullNode { key: key(&node(0)) });
    assert!(receipt.success, "{receipt:?}");
    assert!(world.chain.map::<FullNodes>(&key(&node(0))).is_none());
    assert_eq!(world.chain.value::<FullNodeKeys>().len(), 0);
    assert_eq!(reserved(&world, &alice), Amount::ZERO);
    // Only the two fees were spent.
    let fees = Amount(world.chain.params.min_fee.0 * 2);
    assert_eq!(
        world.chain.account(&address(&alice)).balance,
        free_before.checked_sub(fees).unwrap()
    );
    let again = world
        .chain
        .call(&alice, Call::DeregisterFullNode { key: key(&node(0)) });
    assert_failed(&again, "peers", "UnknownFullNode");
}

#[test]
fn a_registration_needs_the_node_keys_signature_for_this_sender_and_address() {
    let mut world = world();
    let (alice, mallory) = (world.owner.clone(), world.tenant.clone());
    // Signed for alice, submitted by another account (a replay or a squat).
    let stolen = registration(&world, &node(0), &alice, "127.0.0.1:30400");
    let refused = world.chain.call(&mallory, stolen.clone());
    assert_failed(&refused, "peers", "BadSignature");
    // Signed for one address, submitted with another.
    let Call::RegisterFullNode { key, signature, .. } = stolen.clone() else {
        unreachable!()
    };
    let moved = Call::RegisterFullNode {
        key,
        address: at("10.0.0.9:30400"),
        deposit: DEPOSIT,
        signature,
    };
    assert_failed(&world.chain.call(&alice, moved), "peers", "BadSignature");
    // Signed by another key.
    let forged = Call::RegisterFullNode {
        key,
        address: at("127.0.0.1:30400"),
        deposit: DEPOSIT,
        signature: sign(&world, &node(1), &alice, "127.0.0.1:30400").1,
    };
    assert_failed(&world.chain.call(&alice, forged), "peers", "BadSignature");
    let flipped = {
        let mut bytes = signature.0;
        bytes[10] ^= 1;
        Call::RegisterFullNode {
            key,
            address: at("127.0.0.1:30400"),
            deposit: DEPOSIT,
            signature: KeySignature(bytes),
        }
    };
    assert_failed(&world.chain.call(&alice, flipped), "peers", "BadSignature");
    assert_eq!(world.chain.value::<FullNodeKeys>().len(), 0);
    assert_eq!(reserved(&world, &alice), Amount::ZERO);

    // The genuine one goes through once; the same key again (even freshly signed) does not.
    assert!(world.chain.call(&alice, stolen.clone()).success);
    let twice = world.chain.call(&alice, stolen);
    assert_eq!(
        assert_failed(&twice, "peers", "AlreadyRegistered"),
        format!("full node {key} is registered already")
    );
    let by_mallory = world.chain.call(
        &mallory,
        registration(&world, &node(0), &mallory, "127.0.0.1:1"),
    );
    assert_failed(&by_mallory, "peers", "AlreadyRegistered");
    assert_eq!(world.chain.value::<FullNodeKeys>().len(), 1);
    assert_eq!(reserved(&world, &alice), DEPOSIT);
    assert_eq!(reserved(&world, &mallory), Amount::ZERO);
}

#[test]
fn malformed_keys_addresses_and_deposits_are_refused() {
    let mut world = world();
    let alice = world.owner.clone();
    for text in [
        "0.0.0.0:1",
        "[::]:1",
        "224.0.0.1:1",
        "[ff02::1]:1",
        "255.255.255.255:1",
    ] {
        let (key, signature) = sign(&world, &node(0), &alice, text);
        let call = Call::RegisterFullNode {
            key,
            address: at(text),
            deposit: DEPOSIT,
            signature,
        };
        let refused = world.chain.call(&alice, call);
        assert_eq!(
            assert_failed(&refused, "peers", "InvalidAddress"),
            format!("address {} cannot be a connection's source", at(text))
        );
    }
    // Not a curve point (a key nobody can hold).
    let invalid = (0u8..=255)
        .map(|byte| NodeKey([byte; 32]))
        .find(|key| key.public_key().is_err())
        .expect("some byte pattern is not a point");
    let call = Call::RegisterFullNode {
        key: invalid,
        address: at("127.0.0.1:30400"),
        deposit: DEPOSIT,
        signature: KeySignature([0; 64]),
    };
    assert_failed(&world.chain.call(&alice, call), "peers", "InvalidKey");
    // Below the minimum deposit.
    let (key, signature) = sign(&world, &node(0), &alice, "127.0.0.1:30400");
    let low = Call::RegisterFullNode {
        key,
        address: at("127.0.0.1:30400"),
        deposit: Amount(DEPOSIT.0 - 1),
        signature,
    };
    assert_failed(&world.chain.call(&alice, low), "peers", "DepositTooLow");
    // More than the sender has.
    let rich = Call::RegisterFullNode {
        key,
        address: at("127.0.0.1:30400"),
        deposit: Amount(u128::MAX),
        signature,
    };
    assert_failed(
        &world.chain.call(&alice, rich),
        "balances",
        "InsufficientBalance",
    );
    assert_eq!(world.chain.value::<FullNodeKeys>().len(), 0);
    assert_eq!(reserved(&world, &alice), Amount::ZERO);
}

#[test]
fn the_registry_holds_at_most_its_limit_and_frees_a_slot_on_deregistration() {
    let mut world = world();
    let owner = world.owner.clone();
    for seed in 0..FULL_NODES_MAX as u64 {
        let receipt = world.chain.call(
            &owner,
            registration(&world, &node(seed), &owner, "10.1.2.3:1"),
        );
        assert!(receipt.success, "{seed}: {receipt:?}");
    }
    assert_eq!(world.chain.value::<FullNodeKeys>().len(), FULL_NODES_MAX);
    let extra = registration(&world, &node(FULL_NODES_MAX as u64), &owner, "10.1.2.3:1");
    let refused = world.chain.call(&owner, extra.clone());
    assert_failed(&refused, "peers", "RegistryFull");
    let freed = world
        .chain
        .call(&owner, Call::DeregisterFullNode { key: key(&node(3)) });
    assert!(freed.success);
    assert!(world.chain.call(&owner, extra).success);
    assert_eq!(world.chain.value::<FullNodeKeys>().len(), FULL_NODES_MAX);
    let total = Amount(DEPOSIT.0 * FULL_NODES_MAX as u128);
    assert_eq!(reserved(&world, &owner), total);
}

#[test]
fn only_the_privileged_origin_sets_the_minimum_deposit_and_it_applies_to_new_registrations() {
    let mut world = world();
    let alice = world.owner.clone();
    let refused = world.tenant_call(Call::SetMinimumDeposit {
        deposit: Amount::ZERO,
    });
    assert_failed(&refused, "peers", "BadOrigin");
    assert_eq!(world.chain.value::<MinimumDeposit>(), DEPOSIT);
    world.privileged(Call::SetMinimumDeposit {
        deposit: Amount(DEPOSIT.0 * 2),
    });
    assert_eq!(world.chain.value::<MinimumDeposit>(), Amount(DEPOSIT.0 * 2));
    let receipt = world.chain.call(
        &alice,
        registration(&world, &node(0), &alice, "127.0.0.1:30400"),
    );
    assert_failed(&receipt, "peers", "DepositTooLow");
}

#[test]
fn a_key_list_that_disagrees_with_the_records_is_caught_by_try_state() {
    use logos_framework::Module;
    let mut world = world();
    let alice = world.owner.clone();
    assert!(
        world
            .chain
            .call(
                &alice,
                registration(&world, &node(0), &alice, "127.0.0.1:1")
            )
            .success
    );
    let mut state = world.chain.state.clone();
    let unlisted: logos_types::codec::BoundedVec<NodeKey, FULL_NODES_MAX> =
        Vec::new().try_into().unwrap();
    state.insert(
        <FullNodeKeys as logos_types::StorageValue>::key(),
        logos_types::codec::encode(&unlisted),
    );
    let violation = crate::Peers::try_state(&state).unwrap_err();
    assert!(
        violation.contains("0 keys listed but 1 full nodes"),
        "{violation}"
    );
    // Listed out of order (two registered, the list reversed).
    let second = registration(&world, &node(1), &alice, "127.0.0.1:1");
    assert!(world.chain.call(&alice, second).success);
    let mut state = world.chain.state.clone();
    let mut keys = world.chain.value::<FullNodeKeys>().into_inner();
    keys.reverse();
    let reversed: logos_types::codec::BoundedVec<NodeKey, FULL_NODES_MAX> =
        keys.try_into().unwrap();
    state.insert(
        <FullNodeKeys as logos_types::StorageValue>::key(),
        logos_types::codec::encode(&reversed),
    );
    let violation = crate::Peers::try_state(&state).unwrap_err();
    assert!(violation.contains("out of order"), "{violation}");
}

#[test]
fn a_signature_for_another_chain_does_not_register_here() {
    let mut world = world();
    let alice = world.owner.clone();
    let other = logos_primitives::ChainId(logos_primitives::hash(&[b"other chain"]));
    let (key, signature) =
        sign_registration(&node(0), &other, &address(&alice), &at("127.0.0.1:1"));
    let call = Call::RegisterFullNode {
        key,
        address: at("127.0.0.1:1"),
        deposit: DEPOSIT,
        signature,
    };
    assert_failed(&world.chain.call(&alice, call), "peers", "BadSignature");
}
