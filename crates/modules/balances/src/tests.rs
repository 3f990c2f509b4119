//! Tests of `balances` against the mock chain (blocks through the real executor, every
//! invariant checked after every block).

use crate::Balances;
use commonware_cryptography::Signer;
use futures::executor::block_on;
use logos_framework::{apply, Module, Overlay};
use logos_primitives::{hash, Address, Amount, PrivateKey};
use logos_runtime::{
    mock::{address, assert_failed, MockChain},
    BlockError,
};
use logos_types::{
    balances::{AccountInfo, Call, Event},
    Call as RuntimeCall, Params, Receipt, Transaction, TransactionPayload,
};

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
    let address = address(&key);
    (key, address)
}

const BOB: Address = Address([0xB0; 20]);

/// The receipt of `key`'s first transfer of `amount` to Bob with `fee`, alone in a block.
fn pay_bob(chain: &mut MockChain, key: &PrivateKey, amount: u128, fee: u128) -> Receipt {
    let transaction = transfer(key, chain, 0, BOB, amount, fee);
    chain.execute(&[transaction]).unwrap().remove(0)
}

#[test]
fn transfer_moves_balance_pays_fee_and_increments_nonce() {
    let (key, alice) = alice();
    let mut chain = MockChain::new(&[(alice, 100_000)]);
    let receipt = pay_bob(&mut chain, &key, 40_000, 1_000);
    assert!(receipt.success);
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
        receipt.events[1],
        logos_types::Event::Balances(Event::Transferred {
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
    let receipt = pay_bob(&mut chain, &key, 10_000, 1_000);
    let message = assert_failed(&receipt, "balances", "InsufficientBalance");
    assert!(message.contains("insufficient balance"), "{message}");
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
    let receipt = pay_bob(&mut chain, &key, 0, 1_000);
    assert_eq!(
        assert_failed(&receipt, "balances", "ZeroAmount"),
        "zero amount"
    );
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
        Balances::reserve(&mut overlay, &alice, Amount(600))
            .await
            .unwrap();
        let overdraft = Balances::reserve(&mut overlay, &alice, Amount(600)).await;
        assert!(
            overdraft
                .unwrap_err()
                .to_string()
                .contains("InsufficientBalance"),
            "a reserve beyond the free balance"
        );
        let overrelease = Balances::unreserve(&mut overlay, &alice, Amount(700)).await;
        assert!(overrelease
            .unwrap_err()
            .to_string()
            .contains("InsufficientReserved"));
        let community = logos_types::balances::community_account();
        Balances::pay_reserved(&mut overlay, &alice, &community, Amount(100))
            .await
            .unwrap();
        let info = Balances::account(&overlay, &alice).await.unwrap();
        assert_eq!((info.balance, info.reserved), (Amount(400), Amount(500)));
    });
    let mut state = chain.state.clone();
    apply(&mut state, overlay.into_writes());
    Balances::try_state(&state).expect("reserved tokens still count toward issuance");
}

#[test]
fn invariant_catches_issuance_out_of_thin_air() {
    let (_, alice) = alice();
    let chain = MockChain::new(&[(alice, 1_000)]);
    let mut overlay = Overlay::new(&chain.state);
    let minted = AccountInfo {
        nonce: 0,
        balance: Amount(1_001),
        reserved: Amount::ZERO,
    };
    Balances::set_account(&mut overlay, &alice, minted).unwrap();
    let mut state = chain.state.clone();
    apply(&mut state, overlay.into_writes());
    let violation = Balances::try_state(&state).unwrap_err();
    assert!(violation.contains("total issuance is 1000"), "{violation}");
}
