//! `balances` (module index 0): accounts, transfers, fees and reserved balances.
//!
//! Owns [`Accounts`] (nonce, free and reserved balance per address) and [`TotalIssuance`];
//! types, calls and storage are declared in [`logos_types::balances`].
//!
//! - **Transfer** ([`Call::Transfer`]) moves a non-zero amount of free balance.
//! - **Fees** are charged by the executor through [`Balances::charge_fee`] before the call runs.
//! - **Reserves** (`reserve`, `unreserve`, `pay_reserved`: what other modules use): bonds, escrows and stakes are
//!   moved from an account's free to its reserved balance; they stay on the owner's account
//!   but cannot be spent, and only the module that reserved them releases or pays them out.
//! - An account that becomes empty (nonce 0, no balance) is deleted.
//!
//! # Invariant ([`Balances::try_state`])
//! The sum of all free and reserved balances equals `TotalIssuance`: fees, transfers, reserves
//! and payouts only move tokens.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use logos_framework::{
    events, Context, DispatchResult, MapExt, Module, Overlay, State, StateReader, TryStateResult,
    ValueExt, WriteSet,
};
use logos_primitives::{Address, Amount};
use logos_types::{
    balances::{AccountInfo, Accounts, CallHandler, Error, Event, TotalIssuance},
    codec::encode,
    DispatchError, Genesis, StateError, StorageMap, StorageValue,
};

/// The `balances` module.
pub struct Balances;

impl Balances {
    /// `address`'s account (the empty account if none is stored).
    pub async fn account<R: StateReader>(
        overlay: &Overlay<'_, R>,
        address: &Address,
    ) -> Result<AccountInfo, StateError> {
        Ok(Accounts::get(overlay, address).await?.unwrap_or_default())
    }

    /// Writes `address`'s account; an empty account is deleted.
    pub fn set_account<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        address: &Address,
        info: AccountInfo,
    ) -> Result<(), StateError> {
        if info == AccountInfo::default() {
            Accounts::remove(overlay, address)
        } else {
            Accounts::insert(overlay, address, &info)
        }
    }

    /// Moves `fee` from `payer` to `author` (charged by the executor before the call runs).
    pub async fn charge_fee<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        payer: &Address,
        author: &Address,
        fee: Amount,
    ) -> Result<Event, DispatchError> {
        shift(overlay, (payer, Part::Free), (author, Part::Free), fee).await?;
        Ok(Event::FeePaid {
            payer: *payer,
            author: *author,
            amount: fee,
        })
    }

    /// Sum of all reserved balances in a full state (the runtime checks it against the
    /// bonds, escrows and stakes that the other modules hold).
    pub fn total_reserved(state: &State) -> Result<Amount, String> {
        Accounts::sum_from(state, |account| account.reserved)
    }
}

/// Holding and releasing tokens: what other modules use of `balances` (FRAME's `ReservableCurrency`). Every error leaves the overlay untouched.
impl Balances {
    /// Moves `amount` of `who`'s free balance to its reserved balance.
    pub async fn reserve<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        who: &Address,
        amount: Amount,
    ) -> Result<(), DispatchError> {
        shift(overlay, (who, Part::Free), (who, Part::Reserved), amount).await
    }

    /// Moves `amount` of `who`'s reserved balance back to its free balance.
    pub async fn unreserve<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        who: &Address,
        amount: Amount,
    ) -> Result<(), DispatchError> {
        shift(overlay, (who, Part::Reserved), (who, Part::Free), amount).await
    }

    /// Moves `amount` of `from`'s free balance to `to`'s free balance (a module paying out of
    /// an account it controls: the treasury's staking rewards).
    pub async fn pay_free<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        from: &Address,
        to: &Address,
        amount: Amount,
    ) -> Result<(), DispatchError> {
        shift(overlay, (from, Part::Free), (to, Part::Free), amount).await
    }

    /// Pays `amount` out of `from`'s reserved balance into `to`'s free balance (a lease's escrow
    /// paying its provider, a slashed stake going to the community pool).
    pub async fn pay_reserved<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        from: &Address,
        to: &Address,
        amount: Amount,
    ) -> Result<(), DispatchError> {
        shift(overlay, (from, Part::Reserved), (to, Part::Free), amount).await
    }
}

/// Where tokens sit on an account.
#[derive(Clone, Copy)]
enum Part {
    Free,
    Reserved,
}

impl Part {
    fn of(self, account: &mut AccountInfo) -> &mut Amount {
        match self {
            Part::Free => &mut account.balance,
            Part::Reserved => &mut account.reserved,
        }
    }

    fn shortfall(self, held: Amount, required: Amount) -> Error {
        match self {
            Part::Free => Error::InsufficientBalance {
                available: held,
                required,
            },
            Part::Reserved => Error::InsufficientReserved {
                reserved: held,
                required,
            },
        }
    }
}

/// Moves `amount` from one part of an account to a part of the same or another account; every
/// error leaves the overlay untouched.
async fn shift<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    (from, from_part): (&Address, Part),
    (to, to_part): (&Address, Part),
    amount: Amount,
) -> Result<(), DispatchError> {
    let mut source = Balances::account(overlay, from).await?;
    let held = *from_part.of(&mut source);
    *from_part.of(&mut source) = held
        .checked_sub(amount)
        .ok_or_else(|| from_part.shortfall(held, amount))?;
    let mut destination = match from == to {
        true => source,
        false => Balances::account(overlay, to).await?,
    };
    let credited = to_part.of(&mut destination);
    *credited = credited.checked_add(amount).ok_or(Error::BalanceOverflow)?;
    if from != to {
        Balances::set_account(overlay, from, source)?;
    }
    Ok(Balances::set_account(overlay, to, destination)?)
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for Balances {
    async fn transfer(
        ctx: &mut Context<'_, '_, R>,
        to: &Address,
        amount: &Amount,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        if *amount == Amount::ZERO {
            return Err(Error::ZeroAmount.into());
        }
        let from = (&sender, Part::Free);
        shift(ctx.overlay, from, (to, Part::Free), *amount).await?;
        Ok(events([Event::Transferred {
            from: sender,
            to: *to,
            amount: *amount,
        }]))
    }
}

impl Module for Balances {
    logos_framework::module_calls!(logos_types::balances);

    /// Free and reserved balances sum to the total issuance.
    fn try_state(state: &State) -> TryStateResult {
        let mut sum = Amount::ZERO;
        for entry in Accounts::iter_from(state) {
            let (_, info) = entry.map_err(|error| error.to_string())?;
            sum = sum
                .checked_add(info.balance)
                .and_then(|sum| sum.checked_add(info.reserved))
                .ok_or("sum of balances overflows")?;
        }
        let total = TotalIssuance::get_from(state).map_err(|error| error.to_string())?;
        if sum != total {
            return Err(format!("balances sum to {sum}, total issuance is {total}"));
        }
        Ok(())
    }

    /// The genesis accounts and their sum as total issuance.
    fn genesis(genesis: &Genesis) -> Result<WriteSet, String> {
        let mut writes = WriteSet::new();
        let mut total = Amount::ZERO;
        for (address, balance) in genesis.balances() {
            total = total
                .checked_add(balance)
                .ok_or("genesis issuance overflows")?;
            let info = AccountInfo {
                nonce: 0,
                balance,
                reserved: Amount::ZERO,
            };
            writes.insert(Accounts::key(&address), Some(encode(&info)));
        }
        writes.insert(TotalIssuance::key(), Some(encode(&total)));
        Ok(writes)
    }
}
