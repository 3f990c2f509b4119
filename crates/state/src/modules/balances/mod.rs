//! `balances` (module index 0): accounts, transfers and fees.
//!
//! # Storage (module index 0)
//! | item | key | value |
//! |---|---|---|
//! | 0 `Account` | address (20 bytes) | [`AccountInfo`] |
//! | 1 `TotalIssuance` | (none) | [`Amount`]: sum of all free and reserved balances |
//!
//! # Calls
//! | index | call | effect |
//! |---|---|---|
//! | 0 | [`Call::Transfer`] | moves `amount` from the sender to `to` |
//!
//! Fees are charged by the executor through [`charge_fee`] before the call runs. Other modules
//! hold tokens with [`reserve`] / [`unreserve`] (bonds, escrows): reserved tokens stay on the
//! owner's account but cannot be spent.
//!
//! # Invariant ([`try_state`])
//! The sum of all free and reserved balances equals `TotalIssuance`; fees, transfers, reserves
//! and releases only move tokens.

#[cfg(test)]
mod tests;
mod types;

pub use types::{AccountInfo, Call, Error, Event};

use crate::storage::{read_value, Overlay, StateError, StateReader, StorageKey, WriteSet};
use commonware_codec::Encode;
use logos_primitives::{Address, Amount};
use std::collections::BTreeMap;

/// Module index of `balances` in storage keys and calls.
pub const MODULE_INDEX: u8 = 0;
const ITEM_ACCOUNT: u8 = 0;
const ITEM_TOTAL_ISSUANCE: u8 = 1;

/// Storage key of `address`'s [`AccountInfo`].
pub fn account_key(address: &Address) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_ACCOUNT, address.as_bytes())
}

/// Storage key of the total issuance.
pub fn total_issuance_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_TOTAL_ISSUANCE, &[])
}

/// Reads `address`'s account (the default, empty account if none is stored).
pub async fn account<R: StateReader>(
    overlay: &Overlay<'_, R>,
    address: &Address,
) -> Result<AccountInfo, StateError> {
    Ok(read_value(overlay, &account_key(address))
        .await?
        .unwrap_or_default())
}

/// Writes `address`'s account; an empty account (nonce 0, balance 0) is deleted.
pub fn set_account<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    address: &Address,
    info: AccountInfo,
) {
    let value = (info != AccountInfo::default()).then(|| info.encode().to_vec());
    overlay.put(account_key(address), value);
}

/// Moves `fee` from `payer` to `author`. Errors leave the overlay untouched.
pub async fn charge_fee<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    payer: &Address,
    author: &Address,
    fee: Amount,
) -> Result<Result<Event, Error>, StateError> {
    Ok(move_balance(overlay, payer, author, fee)
        .await?
        .map(|()| Event::FeePaid {
            payer: *payer,
            author: *author,
            amount: fee,
        }))
}

/// Runs `call` for `sender`. Returns the events, or the module error (the executor then drops
/// the call's writes).
pub async fn dispatch<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    sender: &Address,
    call: &Call,
) -> Result<Result<Vec<Event>, Error>, StateError> {
    match call {
        Call::Transfer { to, amount } => {
            if *amount == Amount::ZERO {
                return Ok(Err(Error::ZeroAmount));
            }
            Ok(move_balance(overlay, sender, to, *amount).await?.map(|()| {
                vec![Event::Transferred {
                    from: *sender,
                    to: *to,
                    amount: *amount,
                }]
            }))
        }
    }
}

/// Moves `amount` of `who`'s free balance to its reserved balance.
pub async fn reserve<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    who: &Address,
    amount: Amount,
) -> Result<Result<(), Error>, StateError> {
    let mut info = account(overlay, who).await?;
    let Some(free) = info.balance.checked_sub(amount) else {
        return Ok(Err(Error::InsufficientBalance {
            available: info.balance,
            required: amount,
        }));
    };
    let Some(reserved) = info.reserved.checked_add(amount) else {
        return Ok(Err(Error::BalanceOverflow));
    };
    info.balance = free;
    info.reserved = reserved;
    set_account(overlay, who, info);
    Ok(Ok(()))
}

/// Moves `amount` of `who`'s reserved balance back to its free balance.
pub async fn unreserve<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    who: &Address,
    amount: Amount,
) -> Result<Result<(), Error>, StateError> {
    let mut info = account(overlay, who).await?;
    let Some(reserved) = info.reserved.checked_sub(amount) else {
        return Ok(Err(Error::InsufficientReserved {
            reserved: info.reserved,
            required: amount,
        }));
    };
    let Some(free) = info.balance.checked_add(amount) else {
        return Ok(Err(Error::BalanceOverflow));
    };
    info.balance = free;
    info.reserved = reserved;
    set_account(overlay, who, info);
    Ok(Ok(()))
}

/// Pays `amount` out of `from`'s reserved balance into `to`'s free balance (e.g. a lease's
/// escrow paying its provider). Errors leave the overlay untouched.
pub async fn pay_reserved<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    from: &Address,
    to: &Address,
    amount: Amount,
) -> Result<Result<(), Error>, StateError> {
    if let Err(error) = unreserve(overlay, from, amount).await? {
        return Ok(Err(error));
    }
    if let Err(error) = move_balance(overlay, from, to, amount).await? {
        // Undo the release so the error changes nothing.
        reserve(overlay, from, amount)
            .await?
            .expect("just released");
        return Ok(Err(error));
    }
    Ok(Ok(()))
}

async fn move_balance<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    from: &Address,
    to: &Address,
    amount: Amount,
) -> Result<Result<(), Error>, StateError> {
    let mut source = account(overlay, from).await?;
    let Some(remaining) = source.balance.checked_sub(amount) else {
        return Ok(Err(Error::InsufficientBalance {
            available: source.balance,
            required: amount,
        }));
    };
    if from == to {
        return Ok(Ok(()));
    }
    let mut destination = account(overlay, to).await?;
    let Some(credited) = destination.balance.checked_add(amount) else {
        return Ok(Err(Error::BalanceOverflow));
    };
    source.balance = remaining;
    destination.balance = credited;
    set_account(overlay, from, source);
    set_account(overlay, to, destination);
    Ok(Ok(()))
}

/// Genesis writes: the given balances and their sum as total issuance.
///
/// Panics if the balances overflow (a malformed genesis is rejected earlier by validation).
pub fn genesis_writes(balances: &BTreeMap<Address, Amount>) -> WriteSet {
    let mut writes = WriteSet::new();
    let mut total = Amount::ZERO;
    for (address, balance) in balances {
        total = total
            .checked_add(*balance)
            .expect("genesis issuance overflows");
        let info = AccountInfo {
            nonce: 0,
            balance: *balance,
            reserved: Amount::ZERO,
        };
        writes.insert(account_key(address), Some(info.encode().to_vec()));
    }
    writes.insert(total_issuance_key(), Some(total.encode().to_vec()));
    writes
}

/// Invariant check over a full state map: balances sum to the total issuance.
///
/// Returns a description of the violation, if any. Tests run it after every block.
pub fn try_state(state: &BTreeMap<StorageKey, Vec<u8>>) -> Result<(), String> {
    let prefix = [MODULE_INDEX, ITEM_ACCOUNT];
    let mut sum = Amount::ZERO;
    for (key, value) in state.range(StorageKey::new(MODULE_INDEX, ITEM_ACCOUNT, &[])..) {
        if !key.as_bytes().starts_with(&prefix) {
            break;
        }
        let info: AccountInfo =
            crate::storage::decode_value(key, value).map_err(|error| error.to_string())?;
        sum = sum
            .checked_add(info.balance)
            .and_then(|sum| sum.checked_add(info.reserved))
            .ok_or("sum of balances overflows")?;
    }
    let total: Amount = match state.get(&total_issuance_key()) {
        Some(bytes) => crate::storage::decode_value(&total_issuance_key(), bytes)
            .map_err(|error| error.to_string())?,
        None => Amount::ZERO,
    };
    if sum != total {
        return Err(format!("balances sum to {sum}, total issuance is {total}"));
    }
    Ok(())
}
