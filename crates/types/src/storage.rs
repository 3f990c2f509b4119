//! Storage keys and typed storage items.
//!
//! Every piece of state is an item of one module, declared once with [`storage!`]: a
//! [`StorageValue`] (one value) or a [`StorageMap`] (values by key). Its storage key is
//! `[module index, item index, codec bytes of the key…]`; both indices are fixed forever once a
//! module ships (like FRAME storage prefixes), so a key never changes meaning across upgrades.
//! Clients and daemons compute keys and decode values through the same declarations the
//! runtime writes with; nothing computes a key by hand.
//!
//! [`storage!`] checks at compile time that every key fits [`STORAGE_KEY_MAX_BYTES`] and every
//! value's largest encoding fits [`STORAGE_VALUE_MAX_BYTES`], and that a module's item indices
//! are distinct.

use crate::{
    codec::{self, Encode, IsUnit, MaxEncodeSize, Read},
    StateError,
};

/// Maximum length of a storage key in bytes.
pub const STORAGE_KEY_MAX_BYTES: usize = 128;

/// Maximum length of a stored value in bytes.
pub const STORAGE_VALUE_MAX_BYTES: usize = 64 * 1024;

/// A storage key: `[module index, item index, item key bytes…]` (2 to
/// [`STORAGE_KEY_MAX_BYTES`] bytes).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct StorageKey(Vec<u8>);

impl StorageKey {
    /// The key of item `I` under `key` (only through typed items, whose key sizes
    /// [`storage!`] bounds at compile time).
    fn of<K: Encode>(module: u8, item: u8, key: &K) -> Self {
        let mut bytes = Vec::with_capacity(key.encode_size().saturating_add(2));
        bytes.push(module);
        bytes.push(item);
        key.write(&mut bytes);
        Self(bytes)
    }

    /// The raw bytes of the key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses raw key bytes (as sent by an RPC client); `None` if shorter than 2 or longer than
    /// [`STORAGE_KEY_MAX_BYTES`].
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= 2 && bytes.len() <= STORAGE_KEY_MAX_BYTES).then_some(Self(bytes))
    }

    /// The module and item indices (the key's first two bytes).
    pub fn prefix(&self) -> [u8; 2] {
        [self.0[0], self.0[1]]
    }

    /// The first key of item (`module`, `item`) in key order (for range scans of a full state).
    pub fn item_start(module: u8, item: u8) -> Self {
        Self(vec![module, item])
    }

    fn hex(&self) -> String {
        hex::encode(&self.0)
    }
}

/// A value every storage item stores: decodes with no configuration (its type bounds every
/// length in it), bounded in size.
pub trait StorageCodec: Encode + Read<Cfg: IsUnit> + MaxEncodeSize + Send + Sync {}

impl<T: Encode + Read<Cfg: IsUnit> + MaxEncodeSize + Send + Sync> StorageCodec for T {}

/// What every storage item declares (see [`storage!`]).
pub trait StorageItem {
    /// Index of the module that owns the item.
    const MODULE: u8;
    /// Index of the item within its module.
    const ITEM: u8;
    /// The item's name, for messages.
    const NAME: &'static str;
    /// What it stores.
    type Value: StorageCodec;

    /// Decodes a stored value of this item, reporting corruption with `key`.
    fn decode_value(key: &StorageKey, bytes: &[u8]) -> Result<Self::Value, StateError> {
        codec::decode(bytes).map_err(|error| StateError::Corrupt {
            key: key.hex(),
            reason: error.to_string(),
        })
    }
}

/// One value (FRAME's `StorageValue`), read as its default while absent.
pub trait StorageValue: StorageItem {
    /// The value while none is stored.
    fn default_value() -> Self::Value;

    /// The item's storage key.
    fn key() -> StorageKey {
        StorageKey::of(Self::MODULE, Self::ITEM, &[0u8; 0])
    }
}

/// Values by key (FRAME's `StorageMap`); absent keys hold nothing.
pub trait StorageMap: StorageItem {
    /// What the values are keyed by (fixed-size keys only: ids, addresses, tuples of them).
    type Key: StorageCodec + Clone + std::fmt::Debug;

    /// The storage key of `key`'s value.
    fn key(key: &Self::Key) -> StorageKey {
        StorageKey::of(Self::MODULE, Self::ITEM, key)
    }

    /// The map key of a storage key of this item (for scans of a full state).
    fn decode_key(key: &StorageKey) -> Result<Self::Key, StateError> {
        let bytes = key.as_bytes();
        if bytes.len() < 2 || bytes[..2] != [Self::MODULE, Self::ITEM] {
            return Err(StateError::Corrupt {
                key: key.hex(),
                reason: format!("not a key of {}", Self::NAME),
            });
        }
        codec::decode(&bytes[2..]).map_err(|error| StateError::Corrupt {
            key: key.hex(),
            reason: error.to_string(),
        })
    }
}

/// Declares a module's storage items, each once: its index, its kind, its key and value types
/// (and a value's default, `Default::default()` unless given).
///
/// ```ignore
/// storage! {
///     module = INDEX;
///     /// Providers by id.
///     pub Providers: map(1) ProviderId => Provider;
///     /// The backup buffer, percent.
///     pub BufferPercent: value(4) u8 = DEFAULT_BUFFER_PERCENT;
/// }
/// ```
/// Each item becomes a unit struct implementing [`StorageItem`] and [`StorageValue`] or
/// [`StorageMap`]; compile-time checks bound its key and value sizes and keep item indices
/// distinct.
#[macro_export]
macro_rules! storage {
    (module = $module:expr; $($items:tt)*) => {
        $crate::__storage_items!(@items $module; []; $($items)*);
    };
}

/// The item muncher behind [`storage!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __storage_items {
    (@items $module:expr; [$($index:literal)*];) => {
        const _: () = {
            let indices: &[u8] = &[$($index),*];
            let mut i = 0;
            while i < indices.len() {
                let mut j = i + 1;
                while j < indices.len() {
                    assert!(indices[i] != indices[j], "two storage items share an index");
                    j += 1;
                }
                i += 1;
            }
        };
    };
    (@items $module:expr; [$($index:literal)*];
        $(#[$meta:meta])* $vis:vis $name:ident: map($item:literal) $key:ty => $value:ty;
        $($rest:tt)*
    ) => {
        $crate::__storage_items!(@item $module, $item, $(#[$meta])* $vis $name, $value);

        impl $crate::storage::StorageMap for $name {
            type Key = $key;
        }

        const _: () = assert!(
            2 + <$key as $crate::codec::MaxEncodeSize>::MAX_ENCODE_SIZE
                <= $crate::storage::STORAGE_KEY_MAX_BYTES,
            concat!("the key of ", stringify!($name), " can exceed a storage key")
        );

        $crate::__storage_items!(@items $module; [$($index)* $item]; $($rest)*);
    };
    (@items $module:expr; [$($index:literal)*];
        $(#[$meta:meta])* $vis:vis $name:ident: value($item:literal) $value:ty $(= $default:expr)?;
        $($rest:tt)*
    ) => {
        $crate::__storage_items!(@item $module, $item, $(#[$meta])* $vis $name, $value);

        impl $crate::storage::StorageValue for $name {
            fn default_value() -> $value {
                $crate::__storage_default!($value $(, $default)?)
            }
        }

        $crate::__storage_items!(@items $module; [$($index)* $item]; $($rest)*);
    };
    (@item $module:expr, $item:literal, $(#[$meta:meta])* $vis:vis $name:ident, $value:ty) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        $vis struct $name;

        impl $crate::storage::StorageItem for $name {
            const MODULE: u8 = $module;
            const ITEM: u8 = $item;
            const NAME: &'static str = stringify!($name);
            type Value = $value;
        }

        const _: () = assert!(
            <$value as $crate::codec::MaxEncodeSize>::MAX_ENCODE_SIZE
                <= $crate::storage::STORAGE_VALUE_MAX_BYTES,
            concat!("a value of ", stringify!($name), " can exceed a storage value")
        );
    };
}

/// A storage value's default: the given expression, or `Default::default()`.
#[doc(hidden)]
#[macro_export]
macro_rules! __storage_default {
    ($value:ty) => {
        <$value as ::core::default::Default>::default()
    };
    ($value:ty, $default:expr) => {
        $default
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dvci, market};

    #[test]
    fn keys_are_module_item_and_key_bytes() {
        let key = <market::Leases as StorageMap>::key(&market::LeaseId(7));
        assert_eq!(key.as_bytes(), &[2, 3, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(
            <market::Leases as StorageMap>::decode_key(&key).unwrap(),
            market::LeaseId(7)
        );
        let aggregate = <dvci::Aggregates as StorageMap>::key(&(
            dvci::RegionId(1),
            dvci::ResourceClass::ComputeHosted,
        ));
        assert_eq!(aggregate.as_bytes(), &[1, 3, 0, 1, 1]);
        assert_eq!(
            <market::ActiveLeases as StorageValue>::key().as_bytes(),
            &[2, 5]
        );
        assert!(<dvci::Providers as StorageMap>::decode_key(&key).is_err());
    }

    #[test]
    fn raw_keys_from_clients_are_bounded() {
        assert!(StorageKey::from_bytes(vec![1]).is_none());
        assert!(StorageKey::from_bytes(vec![0; STORAGE_KEY_MAX_BYTES + 1]).is_none());
        assert!(StorageKey::from_bytes(vec![0; STORAGE_KEY_MAX_BYTES]).is_some());
    }
}
