//! `balances` (module index 0): accounts, transfers, fees and reserved balances.
//!
//! Owns [`Accounts`] (nonce, free and reserved balance per address) and [`TotalIssuance`];
//! types, calls and storage are declared in [`logos_types::balances`].
//!
//! - **Transfer** ([`Call::Transfer`]) moves a non-zero amount of free balance.
//! - **Fees** are charged by the executor through [`Balances::charge_fee`] before the call runs.
//! - **Reserves** ([`Currency`], the interface other modules use): bonds, escrows and stakes are
//!   moved from an account's free to its reserved balance; they stay on the owner's account
//!   but cannot be spent, and only the module that reserved them releases or pays them out.
//! - An account that becomes empty (nonce 0, no balance) is deleted.
//!
//! # Invariant ([`Balances::try_state`])
//! The sum of all free and reserved balances equals `TotalIssuance`: fees, transfers, reserves
//! and payouts only move tokens.

#[cfg(test)]
mod tests;

use logos_framework::{
    events, Context, DispatchResult, MapExt, Module, Overlay, State, StateReader, TryStateResult,
    ValueExt, WriteSet,
};
use logos_primitives::{Address, Amount};
use logos_types::{
    balances::{AccountInfo, Accounts, Call, CallHandler, Error, Event, TotalIssuance, INDEX},
    codec::encode,
    DispatchError, Genesis, Origin, StateError, StorageMap, StorageValue,
};
use std::future::Future;

/// The `balances` module.
pub struct Balances;

/// Holding and releasing tokens: what other modules use of `balances` (FRAME's
/// `ReservableCurrency`). Every error leaves the overlay untouched.
pub trait Currency {
    /// Moves `amount` of `who`'s free balance to its reserved balance.
    fn reserve<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        who: &Address,
        amount: Amount,
    ) -> impl Future<Output = Result<(), DispatchError>> + Send;

    /// Moves `amount` of `who`'s reserved balance back to its free balance.
    fn unreserve<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        who: &Address,
        amount: Amount,
    ) -> impl Future<Output = Result<(), DispatchError>> + Send;

    /// Pays `amount` out of `from`'s reserved balance into `to`'s free balance (a lease's escrow
    /// paying its provider, a slashed stake going to the community pool).
    fn pay_reserved<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        from: &Address,
        to: &Address,
        amount: Amount,
    ) -> impl Future<Output = Result<(), DispatchError>> + Send;
}

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
        move_free(overlay, payer, author, fee).await?;
        Ok(Event::FeePaid {
            payer: *payer,
            author: *author,
            amount: fee,
        })
    }

    /// Sum of all reserved balances in a full state (the runtime checks it against the
    /// bonds, escrows and stakes that the other modules hold).
    pub fn total_reserved(state: &State) -> Result<Amount, String> {
        let mut total = Amount::ZERO;
        for entry in Accounts::iter_from(state) {
            let (_, account) = entry.map_err(|error| error.to_string())?;
            total = total
                .checked_add(account.reserved)
                .ok_or("reserved balances overflow")?;
        }
        Ok(total)
    }
}

impl Currency for Balances {
    async fn reserve<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        who: &Address,
        amount: Amount,
    ) -> Result<(), DispatchError> {
        let mut info = Self::account(overlay, who).await?;
        info.balance = info
            .balance
            .checked_sub(amount)
            .ok_or(Error::InsufficientBalance {
                available: info.balance,
                required: amount,
            })?;
        info.reserved = info
            .reserved
            .checked_add(amount)
            .ok_or(Error::BalanceOverflow)?;
        Ok(Self::set_account(overlay, who, info)?)
    }

    async fn unreserve<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        who: &Address,
        amount: Amount,
    ) -> Result<(), DispatchError> {
        let mut info = Self::account(overlay, who).await?;
        info.reserved = info
            .reserved
            .checked_sub(amount)
            .ok_or(Error::InsufficientReserved {
                reserved: info.reserved,
                required: amount,
            })?;
        info.balance = info
            .balance
            .checked_add(amount)
            .ok_or(Error::BalanceOverflow)?;
        Ok(Self::set_account(overlay, who, info)?)
    }

    async fn pay_reserved<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        from: &Address,
        to: &Address,
        amount: Amount,
    ) -> Result<(), DispatchError> {
        let mut payer = Self::account(overlay, from).await?;
        payer.reserved = payer
            .reserved
            .checked_sub(amount)
            .ok_or(Error::InsufficientReserved {
                reserved: payer.reserved,
                required: amount,
            })?;
        if from == to {
            payer.balance = payer
                .balance
                .checked_add(amount)
                .ok_or(Error::BalanceOverflow)?;
            return Ok(Self::set_account(overlay, from, payer)?);
        }
        let mut payee = Self::account(overlay, to).await?;
        payee.balance = payee
            .balance
            .checked_add(amount)
            .ok_or(Error::BalanceOverflow)?;
        Self::set_account(overlay, from, payer)?;
        Ok(Self::set_account(overlay, to, payee)?)
    }
}

/// Moves `amount` of free balance from `from` to `to`; errors leave the overlay untouched.
async fn move_free<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    from: &Address,
    to: &Address,
    amount: Amount,
) -> Result<(), DispatchError> {
    let mut source = Balances::account(overlay, from).await?;
    let remaining = source
        .balance
        .checked_sub(amount)
        .ok_or(Error::InsufficientBalance {
            available: source.balance,
            required: amount,
        })?;
    if from == to {
        return Ok(());
    }
    let mut destination = Balances::account(overlay, to).await?;
    destination.balance = destination
        .balance
        .checked_add(amount)
        .ok_or(Error::BalanceOverflow)?;
    source.balance = remaining;
    Balances::set_account(overlay, from, source)?;
    Ok(Balances::set_account(overlay, to, destination)?)
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for Balances {
    type Output = DispatchResult;

    async fn transfer(
        ctx: &mut Context<'_, '_, R>,
        origin: &Origin,
        to: &Address,
        amount: &Amount,
    ) -> DispatchResult {
        if *amount == Amount::ZERO {
            return Err(Error::ZeroAmount.into());
        }
        move_free(ctx.overlay, &origin.sender, to, *amount).await?;
        Ok(events([Event::Transferred {
            from: origin.sender,
            to: *to,
            amount: *amount,
        }]))
    }
}

impl Module for Balances {
    const INDEX: u8 = INDEX;
    const NAME: &'static str = "balances";
    type Call = Call;

    async fn dispatch<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        origin: &Origin,
        call: &Call,
    ) -> DispatchResult {
        call.dispatch::<_, Self>(ctx, origin).await
    }

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
