//! The Logos chain's state machine.
//!
//! Execution is a pure function of (state before, block context, transactions): no wall clock,
//! no floats, no randomness, no hash-map iteration. State is a key-value map read through
//! [`StateReader`] (the node backs it with its authenticated store, tests with a `BTreeMap`) and
//! changed only through the write set that [`execute_block`] returns.
//!
//! # Block execution, step by step
//! 1. For each transaction, in block order:
//!    - its chain id must equal the network's, its nonce must equal the sender's next nonce, and
//!      its fee must be at least `min_fee` and covered by the sender's balance; otherwise the
//!      whole block is invalid ([`BlockError`]);
//!    - the fee moves from the sender to the block's author and the nonce increments;
//!    - the call runs on a transaction-level overlay: on success its writes and events are kept,
//!      on error they are dropped and the receipt records the error (the fee stays paid).
//! 2. The block's write set is the union of all kept writes, in key order.
//!
//! Signatures are checked by the caller before execution (the node batches them); see
//! [`transaction::Transaction::verify_signature`].
//!
//! # Modules
//! Each on-chain module is one folder under [`modules`], shaped like a FRAME pallet: calls with
//! fixed indices, storage items with fixed prefixes, events in the past tense, errors as nouns,
//! an invariant check (`try_state`) and tests against a mock chain.

pub mod executor;
pub mod genesis;
#[cfg(test)]
mod mock;
pub mod modules;
pub mod storage;
pub mod transaction;

pub use executor::{execute_block, BlockContext, BlockError, BlockOutcome, Receipt};
pub use genesis::{Genesis, GenesisError, Params};
pub use storage::{Overlay, StateError, StateReader, StorageKey, WriteSet};
pub use transaction::{Call, Event, Transaction, TransactionError, TransactionPayload};

/// Who is calling a module: the transaction's sender, and whether it is the privileged origin
/// (the genesis `privileged_account` until governance owns privileged calls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The sender's address.
    pub sender: logos_primitives::Address,
    /// True for the privileged origin.
    pub privileged: bool,
}

/// Namespace of transaction signatures (prepended to the signed payload by ed25519 signing).
pub const TRANSACTION_NAMESPACE: &[u8] = b"logos-transaction-v1";

/// The wire bytes of any codec value (helper for clients and tests).
pub fn codec_bytes<T: commonware_codec::Encode>(value: &T) -> Vec<u8> {
    value.encode().to_vec()
}
