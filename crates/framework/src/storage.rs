//! Typed access to storage items (declared with `logos_types::storage!`): through an
//! [`Overlay`] while executing, through a full [`State`] in invariant checks.
//!
//! ```ignore
//! let minimum = MinimumBond::get(ctx.overlay).await?;          // a value (or its default)
//! let provider = Providers::get(ctx.overlay, &id).await?;      // Option<Provider>
//! Providers::insert(ctx.overlay, &id, &provider)?;
//! for entry in Providers::iter_from(state) { let (id, provider) = entry?; }
//! ```

use crate::overlay::{Overlay, State, StateReader};
use logos_primitives::Amount;
use logos_types::{codec::encode, corruption, DispatchError, StateError, StorageMap, StorageValue};
use std::future::Future;

/// Reads and writes of a [`StorageValue`].
pub trait ValueExt: StorageValue {
    /// The value (its default while absent).
    fn get<R: StateReader>(
        overlay: &Overlay<'_, R>,
    ) -> impl Future<Output = Result<Self::Value, StateError>> + Send {
        async move {
            let key = Self::key();
            match overlay.get(&key).await? {
                Some(bytes) => Self::decode_value(&key, &bytes),
                None => Ok(Self::default_value()),
            }
        }
    }

    /// Stores `value`.
    fn put<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        value: &Self::Value,
    ) -> Result<(), StateError> {
        overlay.put(Self::key(), Some(encode(value)))
    }

    /// The value in a full state (its default while absent).
    fn get_from(state: &State) -> Result<Self::Value, StateError> {
        let key = Self::key();
        match state.get(&key) {
            Some(bytes) => Self::decode_value(&key, bytes),
            None => Ok(Self::default_value()),
        }
    }
}

impl<T: StorageValue> ValueExt for T {}

/// Reads and writes of a [`StorageMap`].
pub trait MapExt: StorageMap {
    /// The value under `key`, if any.
    fn get<R: StateReader>(
        overlay: &Overlay<'_, R>,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Option<Self::Value>, StateError>> + Send {
        async move {
            let key = Self::key(key);
            match overlay.get(&key).await? {
                Some(bytes) => Self::decode_value(&key, &bytes).map(Some),
                None => Ok(None),
            }
        }
    }

    /// The value under `key`, which other state refers to: its absence is corruption (a
    /// broken invariant), not a refusal.
    fn require<R: StateReader>(
        overlay: &Overlay<'_, R>,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Self::Value, DispatchError>> + Send {
        async move {
            Self::get(overlay, key).await?.ok_or_else(|| {
                corruption(format!(
                    "{} under key {key:?} is referenced but missing",
                    Self::NAME
                ))
            })
        }
    }

    /// True if `key` holds a value.
    fn contains<R: StateReader>(
        overlay: &Overlay<'_, R>,
        key: &Self::Key,
    ) -> impl Future<Output = Result<bool, StateError>> + Send {
        async move { Ok(overlay.get(&Self::key(key)).await?.is_some()) }
    }

    /// Stores `value` under `key`.
    fn insert<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        key: &Self::Key,
        value: &Self::Value,
    ) -> Result<(), StateError> {
        overlay.put(Self::key(key), Some(encode(value)))
    }

    /// Deletes `key`'s value.
    fn remove<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        key: &Self::Key,
    ) -> Result<(), StateError> {
        overlay.put(Self::key(key), None)
    }

    /// The value under `key` in a full state.
    fn get_from(state: &State, key: &Self::Key) -> Result<Option<Self::Value>, StateError> {
        let key = Self::key(key);
        state
            .get(&key)
            .map(|bytes| Self::decode_value(&key, bytes))
            .transpose()
    }

    /// The sum of `amount(value)` over every value of the map in a full state (the reserves
    /// the chain-wide invariant adds up).
    fn sum_from(state: &State, amount: impl Fn(&Self::Value) -> Amount) -> Result<Amount, String> {
        let mut total = Amount::ZERO;
        for entry in Self::iter_from(state) {
            let (_, value) = entry.map_err(|error| error.to_string())?;
            total = total
                .checked_add(amount(&value))
                .ok_or_else(|| format!("the amounts of {} overflow", Self::NAME))?;
        }
        Ok(total)
    }

    /// Every entry of the map in a full state, in key order.
    fn iter_from(
        state: &State,
    ) -> impl Iterator<Item = Result<(Self::Key, Self::Value), StateError>> + '_ {
        let start = logos_types::StorageKey::item_start(Self::MODULE, Self::ITEM);
        state
            .range(start..)
            .take_while(|(key, _)| key.prefix() == [Self::MODULE, Self::ITEM])
            .map(|(key, bytes)| Ok((Self::decode_key(key)?, Self::decode_value(key, bytes)?)))
    }
}

impl<T: StorageMap> MapExt for T {}
