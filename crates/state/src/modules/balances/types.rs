//! Types of the `balances` module.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{EncodeSize, Error as CodecError, FixedSize, Read, ReadExt, Write};
use logos_primitives::{Address, Amount};

/// An account: its next nonce, its free balance and its reserved balance (bonds, escrows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountInfo {
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
    /// Free balance in the smallest unit.
    pub balance: Amount,
    /// Reserved balance in the smallest unit: held by modules (a provider's bond, …), not
    /// spendable, returned or slashed by the module that reserved it.
    #[serde(default)]
    pub reserved: Amount,
}

impl Write for AccountInfo {
    fn write(&self, buf: &mut impl BufMut) {
        self.nonce.write(buf);
        self.balance.write(buf);
        self.reserved.write(buf);
    }
}

impl Read for AccountInfo {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            nonce: u64::read(buf)?,
            balance: Amount::read(buf)?,
            reserved: Amount::read(buf)?,
        })
    }
}

impl FixedSize for AccountInfo {
    const SIZE: usize = u64::SIZE + Amount::SIZE + Amount::SIZE;
}

/// Calls of the `balances` module. The byte after the module index is the call index.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// Call index 0: move `amount` from the sender to `to`.
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount in the smallest unit; must be non-zero.
        amount: Amount,
    },
}

impl Call {
    const TRANSFER: u8 = 0;
}

impl Write for Call {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Call::Transfer { to, amount } => {
                Self::TRANSFER.write(buf);
                to.write(buf);
                amount.write(buf);
            }
        }
    }
}

impl EncodeSize for Call {
    fn encode_size(&self) -> usize {
        match self {
            Call::Transfer { .. } => 1 + Address::SIZE + Amount::SIZE,
        }
    }
}

impl Read for Call {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            Self::TRANSFER => Ok(Call::Transfer {
                to: Address::read(buf)?,
                amount: Amount::read(buf)?,
            }),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

/// Events of the `balances` module (past tense).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `amount` moved from `from` to `to`.
    Transferred {
        /// Sender.
        from: Address,
        /// Recipient.
        to: Address,
        /// Amount in the smallest unit.
        amount: Amount,
    },
    /// `payer` paid a transaction fee of `amount` to the block's `author`.
    FeePaid {
        /// The transaction's sender.
        payer: Address,
        /// The block author credited with the fee.
        author: Address,
        /// Fee in the smallest unit.
        amount: Amount,
    },
}

/// Errors of the `balances` module (nouns).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// The account's free balance is below what the operation needs.
    #[error("insufficient balance: {available} available, {required} required")]
    InsufficientBalance {
        /// Free balance.
        available: Amount,
        /// What was needed.
        required: Amount,
    },
    /// A transfer of zero tokens.
    #[error("zero amount")]
    ZeroAmount,
    /// A balance would exceed the largest representable amount.
    #[error("balance overflow")]
    BalanceOverflow,
    /// Less is reserved than the operation releases (a module bug; never from user input).
    #[error("insufficient reserved balance: {reserved} reserved, {required} required")]
    InsufficientReserved {
        /// Reserved balance.
        reserved: Amount,
        /// What was to be released.
        required: Amount,
    },
}
