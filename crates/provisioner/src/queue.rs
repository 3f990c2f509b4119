//! The de-duplicating work queue with per-item exponential backoff.

use logos_types::operations::EnvironmentId;
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

/// First retry delay of a failed item, ms.
pub const BACKOFF_BASE_MS: u64 = 250;
/// Longest retry delay, ms.
pub const BACKOFF_MAX_MS: u64 = 8_000;
/// Most items in the work queue.
pub const QUEUE_MAX: usize = 4_096;
/// Doublings of the backoff before it is capped.
const BACKOFF_DOUBLINGS_MAX: u32 = 10;

/// A unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    /// Make an assigned environment match its desired state and report it.
    Reconcile(EnvironmentId),
    /// Vote in a cross-check round.
    CrossCheck {
        /// The environment.
        environment: EnvironmentId,
        /// The round.
        round: u64,
    },
}

/// The queue (bounded by [`QUEUE_MAX`]; an item already queued is not queued twice).
#[derive(Default)]
pub struct WorkQueue {
    ready: BTreeSet<Item>,
    failures: BTreeMap<Item, (u32, Instant)>,
}

impl WorkQueue {
    /// Queues `item` (dropped if the queue is full; the next resync queues it again).
    pub fn add(&mut self, item: Item) {
        if self.ready.len() < QUEUE_MAX {
            self.ready.insert(item);
        }
    }

    /// Up to `count` items whose backoff has passed at `now`.
    pub fn take(&mut self, count: usize, now: Instant) -> Vec<Item> {
        let due: Vec<Item> = self
            .ready
            .iter()
            .filter(|item| self.failures.get(item).is_none_or(|(_, at)| *at <= now))
            .take(count)
            .copied()
            .collect();
        for item in &due {
            self.ready.remove(item);
        }
        due
    }

    /// `item` succeeded: its backoff resets.
    pub fn succeeded(&mut self, item: Item) {
        self.failures.remove(&item);
    }

    /// `item` failed at `now`: it comes back after a doubled backoff.
    pub fn failed(&mut self, item: Item, now: Instant) {
        let failures = self.failures.get(&item).map_or(0, |(count, _)| *count) + 1;
        let delay_ms = (BACKOFF_BASE_MS << failures.min(BACKOFF_DOUBLINGS_MAX)).min(BACKOFF_MAX_MS);
        if self.failures.len() < QUEUE_MAX || self.failures.contains_key(&item) {
            self.failures
                .insert(item, (failures, now + Duration::from_millis(delay_ms)));
        }
        self.add(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Item = Item::Reconcile(EnvironmentId(1));
    const TWO: Item = Item::Reconcile(EnvironmentId(2));

    #[test]
    fn queue_deduplicates_and_backs_off_exponentially() {
        let mut queue = WorkQueue::default();
        let start = Instant::now();
        queue.add(ONE);
        queue.add(ONE);
        queue.add(TWO);
        assert_eq!(queue.take(10, start), vec![ONE, TWO]);
        assert!(queue.take(10, start).is_empty());
        queue.failed(ONE, start);
        assert!(queue.take(10, start).is_empty(), "backing off");
        let first = Duration::from_millis(BACKOFF_BASE_MS << 1);
        assert_eq!(queue.take(10, start + first), vec![ONE]);
        queue.failed(ONE, start);
        assert!(queue.take(10, start + first).is_empty(), "doubled");
        assert_eq!(queue.take(10, start + first * 2), vec![ONE]);
        for _ in 0..20 {
            queue.failed(ONE, start);
            queue.take(10, start + Duration::from_millis(BACKOFF_MAX_MS));
        }
        queue.failed(ONE, start);
        assert_eq!(
            queue.take(10, start + Duration::from_millis(BACKOFF_MAX_MS)),
            vec![ONE],
            "capped"
        );
        queue.succeeded(ONE);
        queue.add(ONE);
        assert_eq!(queue.take(10, start), vec![ONE], "reset");
    }

    #[test]
    fn a_flood_of_items_is_bounded() {
        let mut queue = WorkQueue::default();
        for id in 0..(QUEUE_MAX as u64 * 2) {
            queue.add(Item::Reconcile(EnvironmentId(id)));
        }
        assert_eq!(queue.take(usize::MAX, Instant::now()).len(), QUEUE_MAX);
    }
}
