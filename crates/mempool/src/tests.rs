use super::*;
use commonware_cryptography::Signer;
use logos_primitives::{hash, PrivateKey};
use logos_types::TransactionPayload;

fn chain() -> ChainId {
    ChainId(hash(&[b"mempool-test"]))
}

fn transfer(seed: u64, nonce: u64, fee: u128) -> Transaction {
    let key = PrivateKey::from_seed(seed);
    TransactionPayload {
        chain_id: chain(),
        sender: key.public_key(),
        nonce,
        fee: Amount(fee),
        call: Call::Balances(balances::Call::Transfer {
            to: Address([2; 20]),
            amount: Amount(10),
        }),
    }
    .sign(&key)
}

fn admission(nonce: u64, balance: u128) -> Admission {
    Admission {
        chain_id: chain(),
        min_fee: Amount(100),
        account: balances::AccountInfo {
            nonce,
            balance: Amount(balance),
            reserved: Amount::ZERO,
        },
        signature_verified: false,
    }
}

fn pool(transactions_max: usize) -> Mempool {
    Mempool::new(Config {
        transactions_max,
        per_sender_max: 8,
        nonce_gap_max: 16,
    })
}

#[test]
fn every_rejection_path_has_its_error_and_changes_nothing() {
    let mut pool = pool(10);
    let ok = transfer(1, 0, 100);
    pool.insert(ok.clone(), &admission(0, 1_000)).unwrap();
    assert_eq!(
        pool.insert(ok, &admission(0, 1_000)),
        Err(Rejection::AlreadyKnown)
    );
    assert_eq!(
        pool.insert(transfer(2, 0, 100), &admission(1, 1_000)),
        Err(Rejection::StaleNonce {
            expected: 1,
            actual: 0
        })
    );
    assert!(matches!(
        pool.insert(transfer(2, 50, 100), &admission(0, 1_000)),
        Err(Rejection::NonceGap { .. })
    ));
    assert!(matches!(
        pool.insert(transfer(2, 0, 99), &admission(0, 1_000)),
        Err(Rejection::FeeTooLow { .. })
    ));
    assert_eq!(
        pool.insert(transfer(2, 0, 100), &admission(0, 109)),
        Err(Rejection::InsufficientBalance {
            available: Amount(109),
            required: Amount(110)
        })
    );
    let mut wrong_chain = admission(0, 1_000);
    wrong_chain.chain_id = ChainId(hash(&[b"other"]));
    assert!(matches!(
        pool.insert(transfer(2, 0, 100), &wrong_chain),
        Err(Rejection::Invalid(TransactionError::WrongChainId { .. }))
    ));
    // A valid transaction re-signed by nobody: keep the payload, break the signature.
    let genuine = transfer(3, 0, 100);
    let forged_bytes = {
        let mut bytes = logos_types::codec::encode(&genuine);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        bytes
    };
    let forged = Transaction::decode_bytes(&forged_bytes).unwrap();
    assert_eq!(
        pool.insert(forged, &admission(0, 1_000)),
        Err(Rejection::Invalid(TransactionError::BadSignature))
    );
    assert_eq!(pool.len(), 1);
}

#[test]
fn replacement_needs_a_higher_fee() {
    let mut pool = pool(10);
    pool.insert(transfer(1, 0, 200), &admission(0, 10_000))
        .unwrap();
    assert_eq!(
        pool.insert(transfer(1, 0, 150), &admission(0, 10_000)),
        Err(Rejection::ReplacementUnderpriced {
            pooled_fee: Amount(200)
        })
    );
    let better = pool
        .insert(transfer(1, 0, 300), &admission(0, 10_000))
        .unwrap();
    assert_eq!(pool.len(), 1);
    assert!(pool.contains(&better));
}

#[test]
fn full_pool_evicts_the_cheapest_or_refuses() {
    let mut pool = pool(2);
    pool.insert(transfer(1, 0, 100), &admission(0, 10_000))
        .unwrap();
    pool.insert(transfer(2, 0, 500), &admission(0, 10_000))
        .unwrap();
    assert_eq!(
        pool.insert(transfer(3, 0, 100), &admission(0, 10_000)),
        Err(Rejection::PoolFull)
    );
    let rich = pool
        .insert(transfer(3, 0, 900), &admission(0, 10_000))
        .unwrap();
    assert_eq!(pool.len(), 2);
    assert!(pool.contains(&rich));
    assert!(!pool.contains(&transfer(1, 0, 100).hash()));
}

#[test]
fn per_sender_limit_is_enforced() {
    let mut pool = pool(100);
    for nonce in 0..8 {
        pool.insert(transfer(1, nonce, 100), &admission(0, 1_000_000))
            .unwrap();
    }
    assert_eq!(
        pool.insert(transfer(1, 8, 100), &admission(0, 1_000_000)),
        Err(Rejection::PoolFull)
    );
}

#[test]
fn selection_is_nonce_ordered_per_sender_and_fee_first_across_senders() {
    let mut pool = pool(100);
    for nonce in [2, 0, 1] {
        pool.insert(
            transfer(1, nonce, 100 + nonce as u128),
            &admission(0, 1_000_000),
        )
        .unwrap();
    }
    pool.insert(transfer(2, 0, 1_000), &admission(0, 1_000_000))
        .unwrap();
    pool.insert(transfer(3, 5, 5_000), &admission(0, 1_000_000))
        .unwrap(); // gap: not selectable
    let selected = Mempool::select(pool.runs(), &BTreeMap::new(), 10);
    let order: Vec<(u128, u64)> = selected
        .iter()
        .map(|t| (t.payload().fee.0, t.payload().nonce))
        .collect();
    assert_eq!(order, vec![(1_000, 0), (100, 0), (101, 1), (102, 2)]);
    let limited = Mempool::select(pool.runs(), &BTreeMap::new(), 2);
    assert_eq!(limited.len(), 2);
}

#[test]
fn pruning_drops_included_nonces() {
    let mut pool = pool(100);
    for nonce in 0..4 {
        pool.insert(transfer(1, nonce, 100), &admission(0, 1_000_000))
            .unwrap();
    }
    let sender = transfer(1, 0, 100).sender();
    pool.prune_sender(&sender, 3);
    assert_eq!(pool.len(), 1);
    let mut next = BTreeMap::new();
    next.insert(sender, 3);
    assert_eq!(Mempool::select(pool.runs(), &next, 10).len(), 1);
}
