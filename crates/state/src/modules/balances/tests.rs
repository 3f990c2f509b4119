//! Tests of `balances` against a mock chain: a `BTreeMap` state, blocks applied through the real
//! executor, and the invariant checked after every block.

use super::*;
use crate::{
    mock::MockChain, BlockError, Call as RuntimeCall, Params, Transaction, TransactionPayload,
};
use commonware_cryptography::Signer;
use futures::executor::block_on;
use logos_primitives::{hash, PrivateKey};

fn transfer(
    key: &PrivateKey,
    chain: &MockChain,
    nonce: u64,
    to: Address,
    amount: u128,
    fee: u128,
) -> Transaction {
    TransactionPayload {
        chain_id: chain.chain_id,
        sender: key.public_key(),
        nonce,
        fee: Amount(fee),
        call: RuntimeCall::Balances(Call::Transfer {
            to,
            amount: Amount(amount),
        }),
    }
    .sign(key)
}

fn alice() -> (PrivateKey, Address) {
    let key = PrivateKey::from_seed(1);
    let address = Address::from_public_key(&key.public_key());
    (key, address)
}

const BOB: Address = Address([0xB0; 20]);

#[test]
fn transfer_moves_balance_pays_fee_and_increments_nonce() {
    let (key, alice) = alice();
    let mut chain = MockChain::new(&[(alice, 100_000)]);
    let receipts = chain
        .execute(&[transfer(&key, &chain, 0, BOB, 40_000, 1_000)])
        .unwrap();
    assert!(receipts[0].success);
    assert_eq!(
        chain.account(&alice),
        AccountInfo {
            nonce: 1,
            balance: Amount(59_000),
            reserved: Amount::ZERO,
        }
    );
    assert_eq!(chain.account(&BOB).balance, Amount(40_000));
    assert_eq!(chain.account(&chain.author).balance, Amount(1_000));
    assert_eq!(
        receipts[0].events[1],
        crate::Event::Balances(Event::Transferred {
            from: alice,
            to: BOB,
            amount: Amount(40_000)
        })
    );
}

#[test]
fn failed_call_keeps_fee_and_nonce_but_drops_its_writes() {
    let (key, alice) = alice();
    let mut chain = MockChain::new(&[(alice, 5_000)]);
    let receipts = chain
        .execute(&[transfer(&key, &chain, 0, BOB, 10_000, 1_000)])
        .unwrap();
    assert!(!receipts[0].success);
    assert!(receipts[0]
        .error
        .as_ref()
        .unwrap()
        .contains("insufficient balance"));
    assert_eq!(
        chain.account(&alice),
        AccountInfo {
            nonce: 1,
            balance: Amount(4_000),
            reserved: Amount::ZERO,
        }
    );
    assert_eq!(chain.account(&BOB), AccountInfo::default());
}

#[test]
fn zero_transfer_is_an_error() {
    let (key, alice) = alice();
    let mut chain = MockChain::new(&[(alice, 5_000)]);
    let receipts = chain
        .execute(&[transfer(&key, &chain, 0, BOB, 0, 1_000)])
        .unwrap();
    assert_eq!(receipts[0].error.as_deref(), Some("zero amount"));
}

#[test]
fn invalid_transactions_reject_the_block_and_leave_state_untouched() {
    let (key, alice) = alice();
    let mut chain = MockChain::new(&[(alice, 5_000)]);
    let before = chain.state.clone();
    let stale = transfer(&key, &chain, 1, BOB, 1, 1_000);
    assert!(matches!(
        chain.execute(&[stale]),
        Err(BlockError::BadNonce {
            expected: 0,
            actual: 1,
            ..
        })
    ));
    let cheap = transfer(&key, &chain, 0, BOB, 1, 999);
    assert!(matches!(
        chain.execute(&[cheap]),
        Err(BlockError::FeeTooLow { .. })
    ));
    let unpaid = transfer(&key, &chain, 0, BOB, 1, 6_000);
    assert!(matches!(
        chain.execute(&[unpaid]),
        Err(BlockError::FeeUnpaid { .. })
    ));
    let mut foreign = chain.chain_id;
    foreign.0 = hash(&[b"other"]);
    let wrong_chain = TransactionPayload {
        chain_id: foreign,
        sender: key.public_key(),
        nonce: 0,
        fee: Amount(1_000),
        call: RuntimeCall::Balances(Call::Transfer {
            to: BOB,
            amount: Amount(1),
        }),
    }
    .sign(&key);
    assert!(matches!(
        chain.execute(&[wrong_chain]),
        Err(BlockError::WrongChainId { index: 0 })
    ));
    assert_eq!(chain.state, before);
}

#[test]
fn replayed_nonce_in_the_same_block_is_rejected() {
    let (key, alice) = alice();
    let mut chain = MockChain::new(&[(alice, 50_000)]);
    let first = transfer(&key, &chain, 0, BOB, 1, 1_000);
    assert!(matches!(
        chain.execute(&[first.clone(), first]),
        Err(BlockError::BadNonce {
            index: 1,
            expected: 1,
            actual: 0
        })
    ));
}

#[test]
fn block_with_too_many_transactions_is_rejected() {
    let (key, alice) = alice();
    let mut chain = MockChain::new(&[(alice, u128::MAX / 2)]);
    let max = Params::default().max_block_transactions as u64;
    let transactions: Vec<_> = (0..=max)
        .map(|nonce| transfer(&key, &chain, nonce, BOB, 1, 1_000))
        .collect();
    assert!(matches!(
        chain.execute(&transactions),
        Err(BlockError::TooManyTransactions { .. })
    ));
}

#[test]
fn many_blocks_conserve_issuance() {
    let (key, alice) = alice();
    let mut chain = MockChain::new(&[(alice, 10_000_000), (BOB, 7)]);
    for nonce in 0..50u64 {
        chain
            .execute(&[transfer(
                &key,
                &chain,
                nonce,
                Address([nonce as u8; 20]),
                100 + nonce as u128,
                1_000,
            )])
            .unwrap();
    }
    assert_eq!(chain.account(&alice).nonce, 50);
}

#[test]
fn reserve_and_unreserve_keep_issuance_and_refuse_overdrafts() {
    let (_, alice) = alice();
    let chain = MockChain::new(&[(alice, 1_000)]);
    let mut overlay = Overlay::new(&chain.state);
    block_on(async {
        assert_eq!(
            reserve(&mut overlay, &alice, Amount(600)).await.unwrap(),
            Ok(())
        );
        assert!(matches!(
            reserve(&mut overlay, &alice, Amount(600)).await.unwrap(),
            Err(Error::InsufficientBalance { .. })
        ));
        assert!(matches!(
            unreserve(&mut overlay, &alice, Amount(700)).await.unwrap(),
            Err(Error::InsufficientReserved { .. })
        ));
        let info = account(&overlay, &alice).await.unwrap();
        assert_eq!((info.balance, info.reserved), (Amount(400), Amount(600)));
    });
    overlay.commit_transaction();
    let mut state = chain.state.clone();
    for (key, value) in overlay.into_writes() {
        match value {
            Some(value) => state.insert(key, value),
            None => state.remove(&key),
        };
    }
    try_state(&state).expect("reserved tokens still count toward issuance");
}
