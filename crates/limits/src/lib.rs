//! Connection slots: at most `total_max` open in all and `per_source_max` from one source.
//!
//! A server that accepts connections from many sources (the node's RPC server keyed by client
//! IP, the provider agent's p2p relays keyed by environment address) takes a [`Slot`] before
//! serving a connection and drops it when the connection ends. No source holds more than
//! `per_source_max` and all sources together never more than `total_max`, so a flood of
//! connections from one source leaves `total_max - per_source_max` for the others; with
//! `total_max` ≥ `per_source_max` × the number of sources, every source can hold its share
//! at once.
//!
//! The map holds only sources with an open connection, so it has at most `total_max` entries.
//! Counting is exact under concurrency (one mutex; a poisoned lock is taken over, since the
//! counts stay consistent: every update is a single insert or remove).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

/// Open connections per source, bounded in all and per source (see the crate docs).
pub struct Slots<K: Ord + Copy> {
    open: Mutex<BTreeMap<K, u32>>,
    total_max: u32,
    per_source_max: u32,
}

/// One open connection's place in [`Slots`]; given back on drop.
pub struct Slot<K: Ord + Copy> {
    slots: Arc<Slots<K>>,
    source: K,
}

impl<K: Ord + Copy> Slots<K> {
    /// Room for `total_max` connections in all, `per_source_max` from one source.
    pub fn new(total_max: u32, per_source_max: u32) -> Self {
        Self {
            open: Mutex::new(BTreeMap::new()),
            total_max,
            per_source_max,
        }
    }

    fn open(&self) -> MutexGuard<'_, BTreeMap<K, u32>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for a connection from `source`, or `None` if the source holds its
    /// `per_source_max` or all sources hold `total_max`.
    pub fn acquire(slots: &Arc<Self>, source: K) -> Option<Slot<K>> {
        let mut open = slots.open();
        let total = open.values().fold(0u32, |sum, n| sum.saturating_add(*n));
        let mine = open.get(&source).copied().unwrap_or(0);
        if total >= slots.total_max || mine >= slots.per_source_max {
            return None;
        }
        open.insert(source, mine.saturating_add(1));
        Some(Slot {
            slots: slots.clone(),
            source,
        })
    }

    /// Connections open now, in all.
    pub fn open_total(&self) -> u32 {
        self.open()
            .values()
            .fold(0u32, |sum, n| sum.saturating_add(*n))
    }

    /// Sources with at least one open connection.
    pub fn sources(&self) -> usize {
        self.open().len()
    }
}

impl<K: Ord + Copy> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self.slots.open();
        if let Some(count) = open.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One source cannot hold more than its share, nor all sources together more than the
    /// total; closed connections give their slots back and leave no entry behind.
    #[test]
    fn slots_are_bounded_per_source_and_in_all() {
        let slots = Arc::new(Slots::new(40, 32));
        let held: Vec<Slot<u8>> = (0..32)
            .map(|_| Slots::acquire(&slots, 1).unwrap())
            .collect();
        assert!(Slots::acquire(&slots, 1).is_none(), "over its share");
        let other: Vec<Slot<u8>> = (2..10)
            .map(|source| Slots::acquire(&slots, source).unwrap())
            .collect();
        assert_eq!(slots.open_total(), 40);
        assert!(Slots::acquire(&slots, 99).is_none(), "over the total");
        drop(held);
        assert!(Slots::acquire(&slots, 99).is_some());
        drop(other);
        assert_eq!(slots.open_total(), 0, "every slot given back");
        assert_eq!(slots.sources(), 0, "no entry left behind");
    }

    /// Concurrent acquire/drop never lets the total exceed its bound and counts stay exact.
    #[test]
    fn concurrent_connections_never_exceed_the_total() {
        let slots = Arc::new(Slots::new(8, 3));
        let threads: Vec<_> = (0..6u8)
            .map(|source| {
                let slots = slots.clone();
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        if let Some(slot) = Slots::acquire(&slots, source % 4) {
                            assert!(slots.open_total() <= 8);
                            drop(slot);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(slots.open_total(), 0);
    }
}
