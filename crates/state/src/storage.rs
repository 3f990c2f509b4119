//! Storage keys, the read interface, and write overlays.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{EncodeSize, Error as CodecError, RangeCfg, Read, Write};
use std::{collections::BTreeMap, future::Future};

/// Maximum length of a storage key in bytes.
pub const STORAGE_KEY_MAX_BYTES: usize = 128;

/// Maximum length of a stored value in bytes.
pub const STORAGE_VALUE_MAX_BYTES: usize = 64 * 1024;

/// A storage key: `[module index, item index, item key bytes…]`.
///
/// The module and item indices are fixed forever once a module ships (like FRAME storage
/// prefixes), so a key never changes meaning across upgrades.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct StorageKey(Vec<u8>);

impl StorageKey {
    /// Builds the key of `item` in `module` for `key`.
    ///
    /// Panics if the key would exceed [`STORAGE_KEY_MAX_BYTES`] (a bug in a module's key layout).
    pub fn new(module: u8, item: u8, key: &[u8]) -> Self {
        assert!(
            key.len() + 2 <= STORAGE_KEY_MAX_BYTES,
            "storage key too long"
        );
        let mut bytes = Vec::with_capacity(key.len() + 2);
        bytes.push(module);
        bytes.push(item);
        bytes.extend_from_slice(key);
        Self(bytes)
    }

    /// The raw bytes of the key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses raw key bytes (as sent by an RPC client); `None` if empty or too long.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= 2 && bytes.len() <= STORAGE_KEY_MAX_BYTES).then_some(Self(bytes))
    }
}

impl Write for StorageKey {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl EncodeSize for StorageKey {
    fn encode_size(&self) -> usize {
        self.0.encode_size()
    }
}

impl Read for StorageKey {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let bytes = Vec::<u8>::read_cfg(buf, &(RangeCfg::new(2..=STORAGE_KEY_MAX_BYTES), ()))?;
        Ok(Self(bytes))
    }
}

/// Errors reading state.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The backing store failed (I/O, a stale speculative batch, …).
    #[error("state backend: {0}")]
    Backend(String),
    /// A stored value did not decode: the state is corrupt (never produced by this code).
    #[error("corrupt value under key {key}: {reason}")]
    Corrupt {
        /// Hex of the key.
        key: String,
        /// Decoder message.
        reason: String,
    },
}

/// Read access to the state before a block.
pub trait StateReader: Sync {
    /// Reads the value stored under `key`, `None` if absent.
    fn get(
        &self,
        key: &StorageKey,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StateError>> + Send;
}

impl StateReader for BTreeMap<StorageKey, Vec<u8>> {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StateError> {
        Ok(BTreeMap::get(self, key).cloned())
    }
}

/// The writes of a block: `Some(value)` sets, `None` deletes. Ordered by key.
pub type WriteSet = BTreeMap<StorageKey, Option<Vec<u8>>>;

/// Buffered writes on top of a [`StateReader`], with one level of nesting for transactions.
///
/// Reads see the transaction's writes, then the block's, then the base state.
pub struct Overlay<'a, R: StateReader> {
    base: &'a R,
    block: WriteSet,
    transaction: WriteSet,
}

impl<'a, R: StateReader> Overlay<'a, R> {
    /// An overlay with no writes over `base`.
    pub fn new(base: &'a R) -> Self {
        Self {
            base,
            block: WriteSet::new(),
            transaction: WriteSet::new(),
        }
    }

    /// Reads `key` through the overlay.
    pub async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(value) = self.transaction.get(key) {
            return Ok(value.clone());
        }
        if let Some(value) = self.block.get(key) {
            return Ok(value.clone());
        }
        self.base.get(key).await
    }

    /// Buffers a write in the current transaction.
    pub fn put(&mut self, key: StorageKey, value: Option<Vec<u8>>) {
        if let Some(bytes) = &value {
            assert!(
                bytes.len() <= STORAGE_VALUE_MAX_BYTES,
                "storage value too large"
            );
        }
        self.transaction.insert(key, value);
    }

    /// Buffers the codec encoding of `value` under `key` in the current transaction.
    pub fn put_encoded(&mut self, key: StorageKey, value: &impl commonware_codec::Encode) {
        self.put(key, Some(value.encode().to_vec()));
    }

    /// Keeps the current transaction's writes.
    pub fn commit_transaction(&mut self) {
        let writes = std::mem::take(&mut self.transaction);
        self.block.extend(writes);
    }

    /// Drops the current transaction's writes.
    pub fn rollback_transaction(&mut self) {
        self.transaction.clear();
    }

    /// The block's kept writes. Panics if a transaction is still open (an executor bug).
    pub fn into_writes(self) -> WriteSet {
        assert!(self.transaction.is_empty(), "transaction left open");
        self.block
    }
}

/// Reads and decodes a value through an overlay.
pub async fn read_value<R, T>(
    overlay: &Overlay<'_, R>,
    key: &StorageKey,
) -> Result<Option<T>, StateError>
where
    R: StateReader,
    T: Read<Cfg = ()>,
{
    let Some(bytes) = overlay.get(key).await? else {
        return Ok(None);
    };
    decode_value(key, &bytes).map(Some)
}

/// Decodes a stored value, reporting corruption with the key.
pub fn decode_value<T: Read<Cfg = ()>>(key: &StorageKey, bytes: &[u8]) -> Result<T, StateError> {
    use commonware_codec::Decode;
    T::decode_cfg(commonware_codec::Copying(bytes), &()).map_err(|error| StateError::Corrupt {
        key: hex::encode(key.as_bytes()),
        reason: error.to_string(),
    })
}

/// Decodes a stored list of at most `max` items (a bounded storage value such as an id list).
pub fn decode_list<T: Read<Cfg = ()>>(
    key: &StorageKey,
    bytes: &[u8],
    max: usize,
) -> Result<Vec<T>, StateError> {
    let cfg = (RangeCfg::new(0..=max), ());
    Vec::<T>::read_cfg(&mut commonware_codec::Copying(bytes), &cfg).map_err(|error| {
        StateError::Corrupt {
            key: hex::encode(key.as_bytes()),
            reason: error.to_string(),
        }
    })
}

/// Reads a list stored at `key` (empty if absent), at most `max` items.
pub async fn read_list<R: StateReader, T: Read<Cfg = ()>>(
    overlay: &Overlay<'_, R>,
    key: &StorageKey,
    max: usize,
) -> Result<Vec<T>, StateError> {
    match overlay.get(key).await? {
        Some(bytes) => decode_list(key, &bytes, max),
        None => Ok(Vec::new()),
    }
}

/// Like [`read_list`] over a full state map (for invariant checks).
pub fn state_list<T: Read<Cfg = ()>>(
    state: &BTreeMap<StorageKey, Vec<u8>>,
    key: &StorageKey,
    max: usize,
) -> Result<Vec<T>, String> {
    match state.get(key) {
        Some(bytes) => decode_list(key, bytes, max).map_err(|error| error.to_string()),
        None => Ok(Vec::new()),
    }
}

/// Writes `text` as length-prefixed UTF-8 bytes.
pub fn write_text(text: &str, buf: &mut impl BufMut) {
    text.as_bytes().to_vec().write(buf);
}

/// Encoded size of `text` written by [`write_text`].
pub fn text_size(text: &str) -> usize {
    text.as_bytes().to_vec().encode_size()
}

/// Reads text written by [`write_text`], refusing more than `max_bytes` bytes or invalid UTF-8.
pub fn read_text(buf: &mut impl Buf, max_bytes: usize) -> Result<String, CodecError> {
    let bytes = Vec::<u8>::read_cfg(buf, &(RangeCfg::new(0..=max_bytes), ()))?;
    String::from_utf8(bytes).map_err(|_| CodecError::Invalid("text", "not UTF-8"))
}

/// The entries of one storage item (`module`, `item`) in a full state map, in key order
/// (for invariant checks over a whole state).
pub fn prefixed(
    state: &BTreeMap<StorageKey, Vec<u8>>,
    module: u8,
    item: u8,
) -> impl Iterator<Item = (&StorageKey, &Vec<u8>)> {
    state
        .range(StorageKey::new(module, item, &[])..)
        .take_while(move |(key, _)| key.as_bytes()[..2] == [module, item])
}

/// Implements the codec for a field-less enum as one byte, its discriminant (`0..`).
/// Decoding an unknown byte fails with `InvalidEnum`.
#[macro_export]
macro_rules! codec_u8_enum {
    ($name:ident { $($variant:ident = $index:literal),+ $(,)? }) => {
        impl commonware_codec::Write for $name {
            fn write(&self, buf: &mut impl bytes::BufMut) {
                let index: u8 = match self { $($name::$variant => $index),+ };
                commonware_codec::Write::write(&index, buf);
            }
        }
        impl commonware_codec::FixedSize for $name {
            const SIZE: usize = 1;
        }
        impl commonware_codec::Read for $name {
            type Cfg = ();
            fn read_cfg(
                buf: &mut impl commonware_codec::Buf,
                _: &(),
            ) -> Result<Self, commonware_codec::Error> {
                match <u8 as commonware_codec::ReadExt>::read(buf)? {
                    $($index => Ok($name::$variant),)+
                    other => Err(commonware_codec::Error::InvalidEnum(other)),
                }
            }
        }
    };
}
