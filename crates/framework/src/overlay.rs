//! State reads and buffered writes.

use logos_types::{
    storage::{StorageKey, STORAGE_VALUE_MAX_BYTES},
    StateError,
};
use std::{collections::BTreeMap, future::Future};

/// A full state as a map (mock chains, invariant checks, genesis).
pub type State = BTreeMap<StorageKey, Vec<u8>>;

/// The writes of a block: `Some(value)` sets, `None` deletes. Ordered by key.
pub type WriteSet = BTreeMap<StorageKey, Option<Vec<u8>>>;

/// Read access to the state before a block (the node backs it with its authenticated store,
/// tests with a [`State`]).
pub trait StateReader: Sync {
    /// Reads the value stored under `key`, `None` if absent.
    fn get(
        &self,
        key: &StorageKey,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StateError>> + Send;
}

impl StateReader for State {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StateError> {
        Ok(BTreeMap::get(self, key).cloned())
    }
}

/// Buffered writes on top of a [`StateReader`], with one nested layer for the call (or hook)
/// being executed: its writes are kept with [`Overlay::commit`] or dropped with
/// [`Overlay::rollback`]. Reads see the layer's writes, then the block's, then the base state.
pub struct Overlay<'a, R: StateReader> {
    base: &'a R,
    block: WriteSet,
    layer: WriteSet,
}

impl<'a, R: StateReader> Overlay<'a, R> {
    /// An overlay with no writes over `base`.
    pub fn new(base: &'a R) -> Self {
        Self {
            base,
            block: WriteSet::new(),
            layer: WriteSet::new(),
        }
    }

    /// Reads `key` through the overlay.
    pub async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(value) = self.layer.get(key) {
            return Ok(value.clone());
        }
        if let Some(value) = self.block.get(key) {
            return Ok(value.clone());
        }
        self.base.get(key).await
    }

    /// Buffers a write (`None` deletes) in the current layer. A value over
    /// [`STORAGE_VALUE_MAX_BYTES`] is refused (typed items are bounded at compile time, so only
    /// a raw write can hit this).
    pub fn put(&mut self, key: StorageKey, value: Option<Vec<u8>>) -> Result<(), StateError> {
        if let Some(bytes) = &value {
            if bytes.len() > STORAGE_VALUE_MAX_BYTES {
                return Err(StateError::ValueTooLarge {
                    key: hex::encode(key.as_bytes()),
                    size_bytes: bytes.len(),
                });
            }
        }
        self.layer.insert(key, value);
        Ok(())
    }

    /// Keeps the current layer's writes.
    pub fn commit(&mut self) {
        let writes = std::mem::take(&mut self.layer);
        self.block.extend(writes);
    }

    /// Drops the current layer's writes.
    pub fn rollback(&mut self) {
        self.layer.clear();
    }

    /// The block's kept writes (an open layer is committed first).
    pub fn into_writes(mut self) -> WriteSet {
        self.commit();
        self.block
    }
}

/// Applies `writes` to `state`.
pub fn apply(state: &mut State, writes: WriteSet) {
    for (key, value) in writes {
        match value {
            Some(value) => state.insert(key, value),
            None => state.remove(&key),
        };
    }
}
