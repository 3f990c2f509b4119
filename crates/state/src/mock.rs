//! A mock chain for module tests: `BTreeMap` state, blocks applied through the real executor,
//! and every module's invariant checked after every block.

use crate::{
    execute_block,
    modules::{balances, dvci, market, operations, provisioning},
    storage::{decode_value, StorageKey, WriteSet},
    BlockContext, BlockError, Params, Receipt, Transaction, TransactionPayload,
};
use commonware_cryptography::Signer;
use futures::executor::block_on;
use logos_primitives::{hash, Address, Amount, ChainId, PrivateKey};
use std::collections::BTreeMap;

/// The mock chain.
pub struct MockChain {
    /// Full state.
    pub state: BTreeMap<StorageKey, Vec<u8>>,
    /// Chain id of transactions.
    pub chain_id: ChainId,
    /// Author of every block.
    pub author: Address,
    /// Height of the last block.
    pub height: u64,
    /// Chain parameters.
    pub params: Params,
    nonces: BTreeMap<Address, u64>,
}

impl MockChain {
    /// A chain whose genesis funds `balances`.
    pub fn new(balances: &[(Address, u128)]) -> Self {
        let balances = balances
            .iter()
            .map(|(address, amount)| (*address, Amount(*amount)))
            .collect();
        let mut chain = Self {
            state: BTreeMap::new(),
            chain_id: ChainId(hash(&[b"mock"])),
            author: Address([0xAA; 20]),
            height: 0,
            params: Params::default(),
            nonces: BTreeMap::new(),
        };
        chain.apply(balances::genesis_writes(&balances));
        chain
    }

    fn apply(&mut self, writes: WriteSet) {
        for (key, value) in writes {
            match value {
                Some(value) => self.state.insert(key, value),
                None => self.state.remove(&key),
            };
        }
        balances::try_state(&self.state).expect("balances invariant holds after every block");
        dvci::try_state(&self.state).expect("dvci invariant holds after every block");
        market::try_state(&self.state).expect("market invariant holds after every block");
        operations::try_state(&self.state).expect("operations invariant holds after every block");
        provisioning::try_state(&self.state)
            .expect("provisioning invariant holds after every block");
    }

    /// Executes one block of `transactions`; on error the state is untouched.
    pub fn execute(&mut self, transactions: &[Transaction]) -> Result<Vec<Receipt>, BlockError> {
        Ok(self.execute_with_events(transactions)?.0)
    }

    /// Like [`Self::execute`], also returning the end-of-block events.
    pub fn execute_with_events(
        &mut self,
        transactions: &[Transaction],
    ) -> Result<(Vec<Receipt>, Vec<crate::Event>), BlockError> {
        let context = BlockContext {
            chain_id: self.chain_id,
            height: self.height + 1,
            author: self.author,
            params: self.params.clone(),
            randomness: hash(&[&self.height.to_be_bytes()]),
        };
        let outcome = block_on(execute_block(&self.state, &context, transactions))?;
        self.height += 1;
        self.apply(outcome.writes);
        Ok((outcome.receipts, outcome.block_events))
    }

    /// Signs `call` from `key` with its next nonce and executes it alone in a block; returns
    /// its receipt.
    pub fn call(&mut self, key: &PrivateKey, call: crate::Call) -> Receipt {
        let sender = Address::from_public_key(&key.public_key());
        let nonce = self.nonces.entry(sender).or_default();
        let transaction = TransactionPayload {
            chain_id: self.chain_id,
            sender: key.public_key(),
            nonce: *nonce,
            fee: self.params.min_fee,
            call,
        }
        .sign(key);
        *nonce += 1;
        self.execute(&[transaction]).expect("valid block").remove(0)
    }

    /// Reads and decodes a stored value.
    pub fn get<T: commonware_codec::Read<Cfg = ()>>(&self, key: &StorageKey) -> Option<T> {
        self.state
            .get(key)
            .map(|bytes| decode_value(key, bytes).expect("stored values decode"))
    }

    /// `address`'s account.
    pub fn account(&self, address: &Address) -> balances::AccountInfo {
        self.get(&balances::account_key(address))
            .unwrap_or_default()
    }
}
