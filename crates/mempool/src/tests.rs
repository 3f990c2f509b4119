use super::*;
use commonware_cryptography::Signer;
use logos_primitives::{hash, PrivateKey};
use logos_types::TransactionPayload;

fn chain() -> ChainId {
    ChainId(hash(&[b"mempool-test"]))
}

fn transfer(seed: u64, nonce: u64, fee: u128) -> Transaction {
    transfer_of(seed, nonce, fee, 10)
}

fn transfer_of(seed: u64, nonce: u64, fee: u128, amount: u128) -> Transaction {
    let key = PrivateKey::from_seed(seed);
    TransactionPayload {
        chain_id: chain(),
        sender: key.public_key(),
        nonce,
        fee: Amount(fee),
        call: Call::Balances(balances::Call::Transfer {
            to: Address([2; 20]),
            amount: Amount(amount),
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
            required: Amount(110),
            pending: Amount::ZERO,
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
    for nonce in [0, 1, 2] {
        pool.insert(
            transfer(1, nonce, 100 + nonce as u128),
            &admission(0, 1_000_000),
        )
        .unwrap();
    }
    pool.insert(transfer(2, 0, 1_000), &admission(0, 1_000_000))
        .unwrap();
    // A nonce that cannot run yet is not pooled at all (it would hold a slot for free).
    assert_eq!(
        pool.insert(transfer(3, 5, 5_000), &admission(0, 1_000_000)),
        Err(Rejection::NonceGap {
            expected: 0,
            actual: 5,
            gap_max: 16
        })
    );
    assert_eq!(
        pool.insert(transfer(1, 4, 5_000), &admission(0, 1_000_000)),
        Err(Rejection::NonceGap {
            expected: 3,
            actual: 4,
            gap_max: 16
        })
    );
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
    let account = |nonce, balance| balances::AccountInfo {
        nonce,
        balance: Amount(balance),
        reserved: Amount::ZERO,
    };
    assert_eq!(pool.recheck_sender(&sender, &account(3, 1_000_000)), 0);
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.pending_spend(&sender), Amount(110));
    let mut next = BTreeMap::new();
    next.insert(sender, 3);
    assert_eq!(Mempool::select(pool.runs(), &next, 10).len(), 1);
}

/// The pool's own bookkeeping: each sender's pending spend is the sum of its entries' costs.
fn assert_spend_consistent(pool: &Mempool) {
    for (sender, nonces) in &pool.by_sender {
        let sum = nonces.values().fold(Amount::ZERO, |sum, hash| {
            sum.saturating_add(pool.by_hash[hash].cost)
        });
        assert_eq!(pool.pending_spend(sender), sum);
    }
    assert_eq!(pool.pending_spend.len(), pool.by_sender.len());
}

#[test]
fn a_next_nonce_that_the_pending_spend_leaves_unpayable_is_refused() {
    let mut pool = pool(100);
    // Balance 1,000: a transfer of 900 with fee 100 drains it.
    pool.insert(transfer_of(1, 0, 100, 900), &admission(0, 1_000))
        .unwrap();
    assert_eq!(
        pool.insert(transfer_of(1, 1, 100, 0), &admission(0, 1_000)),
        Err(Rejection::InsufficientBalance {
            available: Amount(1_000),
            required: Amount(1_100),
            pending: Amount(1_000),
        })
    );
    // Replacing the drain with a smaller transfer frees room: the old cost no longer counts.
    pool.insert(transfer_of(1, 0, 200, 500), &admission(0, 1_000))
        .unwrap();
    pool.insert(transfer_of(1, 1, 100, 200), &admission(0, 1_000))
        .unwrap();
    assert_eq!(pool.len(), 2);
    assert_eq!(
        pool.pending_spend(&transfer(1, 0, 100).sender()),
        Amount(1_000)
    );
    assert_spend_consistent(&pool);
}

#[test]
fn eviction_takes_the_later_nonces_and_frees_the_pending_spend() {
    let mut pool = pool(100);
    let hashes: Vec<Hash> = (0..4)
        .map(|nonce| {
            pool.insert(transfer(1, nonce, 100), &admission(0, 10_000))
                .unwrap()
        })
        .collect();
    pool.insert(transfer(2, 0, 100), &admission(0, 10_000))
        .unwrap();
    assert_eq!(pool.evict(&hashes[1]), 3);
    assert_eq!(pool.evict(&hashes[1]), 0, "evicting twice changes nothing");
    assert!(pool.contains(&hashes[0]));
    assert_eq!(pool.len(), 2);
    let sender = transfer(1, 0, 100).sender();
    assert_eq!(pool.pending_spend(&sender), Amount(110));
    assert_spend_consistent(&pool);
    assert_eq!(pool.evict(&hashes[0]), 1);
    assert_eq!(pool.pending_spend(&sender), Amount::ZERO);
    assert_spend_consistent(&pool);
}

#[test]
fn recheck_drops_what_a_finalized_block_made_unpayable() {
    let mut pool = pool(100);
    for nonce in 0..4 {
        pool.insert(transfer(1, nonce, 100), &admission(0, 10_000))
            .unwrap();
    }
    let sender = transfer(1, 0, 100).sender();
    // Nonce 0 finalized, and something the pool cannot see (an escrow) took most of the
    // balance: 250 left pays two of the three remaining transfers (110 each).
    let account = balances::AccountInfo {
        nonce: 1,
        balance: Amount(250),
        reserved: Amount(9_000),
    };
    assert_eq!(pool.recheck_sender(&sender, &account), 1);
    assert_eq!(pool.len(), 2);
    assert!(pool.contains(&transfer(1, 1, 100).hash()));
    assert!(pool.contains(&transfer(1, 2, 100).hash()));
    assert_spend_consistent(&pool);
}

#[test]
fn costs_that_overflow_are_refused_not_wrapped() {
    let mut pool = pool(100);
    let huge = transfer_of(1, 0, 100, u128::MAX - 50);
    assert!(matches!(
        pool.insert(huge, &admission(0, u128::MAX)),
        Err(Rejection::InsufficientBalance { .. })
    ));
    pool.insert(
        transfer_of(1, 0, 100, u128::MAX - 200),
        &admission(0, u128::MAX),
    )
    .unwrap();
    assert!(matches!(
        pool.insert(
            transfer_of(1, 1, 100, u128::MAX - 200),
            &admission(0, u128::MAX)
        ),
        Err(Rejection::InsufficientBalance { .. })
    ));
    assert_spend_consistent(&pool);
}

#[test]
fn nothing_queues_behind_a_call_whose_cost_the_pool_cannot_see() {
    let mut pool = pool(100);
    let key = PrivateKey::from_seed(1);
    let lease = TransactionPayload {
        chain_id: chain(),
        sender: key.public_key(),
        nonce: 0,
        fee: Amount(100),
        call: Call::Market(market::Call::CreateLease {
            template: logos_types::catalog::TemplateId(0),
            region: logos_types::dvci::RegionId(1),
            blocks: 1_000,
        }),
    }
    .sign(&key);
    pool.insert(lease.clone(), &admission(0, 10_000)).unwrap();
    assert_eq!(
        pool.insert(transfer(1, 1, 100), &admission(0, 10_000)),
        Err(Rejection::BehindUnpricedCall { nonce: 0 })
    );
    // Not even after a credit raised the balance.
    assert_eq!(
        pool.insert(transfer(1, 1, 100), &admission(0, 10_000_000)),
        Err(Rejection::BehindUnpricedCall { nonce: 0 })
    );
    // Once the lease is finalized (nonce 1 next), the sender queues again.
    let account = balances::AccountInfo {
        nonce: 1,
        balance: Amount(9_000),
        reserved: Amount(900),
    };
    pool.recheck_sender(&key_address(&key), &account);
    pool.insert(transfer(1, 1, 100), &admission(1, 9_000))
        .unwrap();
    assert!(!pool.contains(&lease.hash()));
    assert_spend_consistent(&pool);
}

fn key_address(key: &PrivateKey) -> Address {
    Address::from_public_key(&key.public_key())
}

#[test]
fn a_full_pool_never_evicts_the_senders_own_earlier_nonce() {
    let mut pool = pool(2);
    pool.insert(transfer(1, 0, 100), &admission(0, 10_000))
        .unwrap();
    pool.insert(transfer(2, 0, 500), &admission(0, 10_000))
        .unwrap();
    // Sender 1's next nonce outbids its own nonce 0, the cheapest: the victim is sender 2's.
    pool.insert(transfer(1, 1, 900), &admission(0, 10_000))
        .unwrap();
    assert!(pool.contains(&transfer(1, 0, 100).hash()));
    assert!(!pool.contains(&transfer(2, 0, 500).hash()));
    // Outbidding only its own transactions: refused, never a gap.
    assert_eq!(
        pool.insert(transfer(1, 2, 950), &admission(0, 10_000)),
        Err(Rejection::PoolFull)
    );
    assert_spend_consistent(&pool);
}

#[test]
fn a_pooled_nonce_can_be_replaced_but_not_skipped() {
    let mut pool = pool(100);
    for nonce in 0..3 {
        pool.insert(transfer(1, nonce, 100), &admission(0, 10_000))
            .unwrap();
    }
    // Replacing the middle nonce with a higher fee keeps the run contiguous.
    pool.insert(transfer_of(1, 1, 200, 10), &admission(0, 10_000))
        .unwrap();
    assert_eq!(pool.len(), 3);
    // Stale pooled nonces (below the account's) do not count toward the next free nonce.
    pool.insert(transfer(1, 3, 100), &admission(2, 10_000))
        .unwrap();
    assert_eq!(
        pool.insert(transfer(1, 5, 100), &admission(2, 10_000)),
        Err(Rejection::NonceGap {
            expected: 4,
            actual: 5,
            gap_max: 16
        })
    );
    assert_spend_consistent(&pool);
}

/// A transaction built locally above the wire limit (it never passed the decoder's bound) is
/// refused: relayed, every peer would refuse the message and block the sender's node.
#[test]
fn a_locally_built_oversize_transaction_is_refused() {
    let key = PrivateKey::from_seed(1);
    let evidence = vec![0u8; logos_types::staking::VOTES_MAX_BYTES];
    let call = Call::Staking(staking::Call::RecordVotes {
        kind: staking::VoteKind::Certificate,
        evidence: evidence.try_into().unwrap(),
    });
    assert!(logos_types::transaction_size(&call) > logos_types::TRANSACTION_MAX_BYTES);
    let oversize = TransactionPayload {
        chain_id: chain(),
        sender: key.public_key(),
        nonce: 0,
        fee: Amount(1_000),
        call,
    }
    .sign(&key);
    let mut pool = Mempool::new(Config::default());
    assert!(matches!(
        pool.insert(oversize, &admission(0, 1_000_000)),
        Err(Rejection::Invalid(TransactionError::Oversize { .. }))
    ));
    assert_eq!(pool.len(), 0);
    // A record of a few bytes less fits.
    let fits = vec![0u8; logos_types::staking::VOTES_MAX_BYTES - 8];
    let call = Call::Staking(staking::Call::RecordVotes {
        kind: staking::VoteKind::Vote,
        evidence: fits.try_into().unwrap(),
    });
    assert!(logos_types::transaction_size(&call) <= logos_types::TRANSACTION_MAX_BYTES);
}
