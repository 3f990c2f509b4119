//! Types of `balances` (module index 0): accounts, transfers, fees and reserved balances.
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`Accounts`] | [`Address`] | [`AccountInfo`] (absent = the empty account) |
//! | 1 [`TotalIssuance`] | | [`Amount`]: sum of all free and reserved balances |
//!
//! # Calls
//! | index | call | effect |
//! |---|---|---|
//! | 0 | [`Call::Transfer`] | moves `amount` of the sender's free balance to `to` |

use crate::{calls, errors, events, record, storage};
use logos_primitives::{hash, Address, Amount};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "balances";
/// Module index of `balances`: storage prefix, call routing, error index.
pub const INDEX: u8 = 0;

/// The community pool's account: receives the community share of lease payments and slashed
/// stakes; spent only through governance.
pub fn community_account() -> Address {
    let digest = hash(&[b"logos-community-pool"]);
    let mut bytes = [0u8; Address::LENGTH];
    bytes.copy_from_slice(&digest.as_ref()[..Address::LENGTH]);
    Address(bytes)
}

/// An account: its next nonce, its free balance and its reserved balance (bonds, escrows,
/// stakes).
#[record]
#[derive(Copy, Default)]
pub struct AccountInfo {
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
    /// Free balance, smallest unit.
    pub balance: Amount,
    /// Reserved balance, smallest unit: held by modules (a provider's bond, a lease's escrow, a
    /// provisioner's stake), not spendable, released or slashed by the module that reserved it.
    #[serde(default)]
    pub reserved: Amount,
}

/// Calls of `balances`.
#[calls]
pub enum Call {
    /// Move `amount` from the sender to `to`.
    #[index(0)]
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount, smallest unit; must be non-zero.
        amount: Amount,
    },
}

/// Events of `balances`.
#[events]
pub enum Event {
    /// `amount` moved from `from` to `to`.
    Transferred {
        /// Sender.
        from: Address,
        /// Recipient.
        to: Address,
        /// Amount, smallest unit.
        amount: Amount,
    },
    /// `payer` paid a transaction fee of `amount` to the block's `author`.
    FeePaid {
        /// The transaction's sender.
        payer: Address,
        /// The block author credited with the fee.
        author: Address,
        /// Fee, smallest unit.
        amount: Amount,
    },
}

/// Errors of `balances`.
#[errors]
pub enum Error {
    /// The account's free balance is below what the operation needs.
    #[index(0)]
    #[error("insufficient balance: {available} available, {required} required")]
    InsufficientBalance {
        /// Free balance.
        available: Amount,
        /// What was needed.
        required: Amount,
    },
    /// A transfer of zero tokens.
    #[index(1)]
    #[error("zero amount")]
    ZeroAmount,
    /// A balance would exceed the largest representable amount.
    #[index(2)]
    #[error("balance overflow")]
    BalanceOverflow,
    /// Less is reserved than the operation releases (a module bug; never from user input).
    #[index(3)]
    #[error("insufficient reserved balance: {reserved} reserved, {required} required")]
    InsufficientReserved {
        /// Reserved balance.
        reserved: Amount,
        /// What was to be released.
        required: Amount,
    },
}

storage! {
    module = INDEX;
    /// Accounts by address; an empty account (nonce 0, no balance) is not stored.
    pub Accounts: map(0) Address => AccountInfo;
    /// Sum of all free and reserved balances, smallest unit.
    pub TotalIssuance: value(1) Amount;
}
