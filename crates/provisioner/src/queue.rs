//! The de-duplicating work queue with per-item exponential backoff, taken round-robin so
//! that no item (a low environment id, say) is always served first.

use logos_types::operations::EnvironmentId;
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

/// First retry delay of a failed item, ms.
pub const BACKOFF_BASE_MS: u64 = 250;
/// Longest retry delay, ms.
pub const BACKOFF_MAX_MS: u64 = 8_000;
/// Retry delay of a workload that runs and is not healthy yet (it is starting: a node's
/// health check passes once it has synced), ms, while it has quick rechecks left: constant, so
/// a lease turns `Running` within this of its workload turning healthy.
pub const STARTING_RECHECK_MS: u64 = 250;
/// Quick rechecks (every [`STARTING_RECHECK_MS`]) an item gets per [`STARTING_WINDOW_MS`]
/// (10 s of them); after them it backs off normally. Counted apart from other failures and not
/// reset by a success, so a workload that never turns healthy, or flaps, gets at most this
/// many extra probes a minute.
pub const STARTING_RECHECKS_MAX: u32 = 40;
/// The window over which [`STARTING_RECHECKS_MAX`] counts, ms.
pub const STARTING_WINDOW_MS: u64 = 60_000;
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
    /// Failures in a row and when the item is due again.
    failures: BTreeMap<Item, (u32, Instant)>,
    /// Quick rechecks spent and when the current window began (at most [`QUEUE_MAX`]).
    rechecks: BTreeMap<Item, (u32, Instant)>,
    /// The last item taken: the next take starts after it.
    cursor: Option<Item>,
}

impl WorkQueue {
    /// Queues `item` (dropped if the queue is full; the next resync queues it again).
    pub fn add(&mut self, item: Item) {
        if self.ready.len() < QUEUE_MAX {
            self.ready.insert(item);
        }
    }

    /// Up to `count` items whose backoff has passed at `now`, starting after the last item
    /// taken (round-robin).
    pub fn take(&mut self, count: usize, now: Instant) -> Vec<Item> {
        let cursor = self.cursor;
        let after = self
            .ready
            .iter()
            .filter(|item| cursor.is_none_or(|c| **item > c));
        let before = self
            .ready
            .iter()
            .filter(|item| cursor.is_some_and(|c| **item <= c));
        let due: Vec<Item> = after
            .chain(before)
            .filter(|item| self.failures.get(item).is_none_or(|(_, at)| *at <= now))
            .take(count)
            .copied()
            .collect();
        for item in &due {
            self.ready.remove(item);
        }
        if let Some(last) = due.last() {
            self.cursor = Some(*last);
        }
        due
    }

    /// `item` succeeded: its backoff resets.
    pub fn succeeded(&mut self, item: Item) {
        self.failures.remove(&item);
    }

    /// `item` failed at `now`: it comes back after [`BACKOFF_BASE_MS`], doubled on each
    /// further failure in a row up to [`BACKOFF_MAX_MS`]; when `starting` (its workload runs
    /// and is not healthy yet) and a quick recheck is left, after [`STARTING_RECHECK_MS`].
    pub fn failed(&mut self, item: Item, now: Instant, starting: bool) {
        let failures = self
            .failures
            .get(&item)
            .map_or(0, |(count, _)| *count)
            .saturating_add(1);
        let doublings = (failures - 1).min(BACKOFF_DOUBLINGS_MAX);
        let delay_ms = if starting && self.spend_recheck(item, now) {
            STARTING_RECHECK_MS
        } else {
            (BACKOFF_BASE_MS << doublings).min(BACKOFF_MAX_MS)
        };
        if self.failures.len() < QUEUE_MAX || self.failures.contains_key(&item) {
            self.failures
                .insert(item, (failures, now + Duration::from_millis(delay_ms)));
        }
        self.add(item);
    }

    /// Spends one of `item`'s quick rechecks of the current window; false if none is left.
    fn spend_recheck(&mut self, item: Item, now: Instant) -> bool {
        let window = Duration::from_millis(STARTING_WINDOW_MS);
        let open = |since: &Instant| now.saturating_duration_since(*since) < window;
        let (spent, since) = match self.rechecks.get(&item) {
            Some((spent, since)) if open(since) => (*spent, *since),
            _ => (0, now),
        };
        if spent >= STARTING_RECHECKS_MAX {
            return false;
        }
        if self.rechecks.len() >= QUEUE_MAX && !self.rechecks.contains_key(&item) {
            self.rechecks.retain(|_, (_, since)| open(since));
            if self.rechecks.len() >= QUEUE_MAX {
                return false;
            }
        }
        self.rechecks.insert(item, (spent + 1, since));
        true
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
        queue.failed(ONE, start, false);
        assert!(queue.take(10, start).is_empty(), "backing off");
        let first = Duration::from_millis(BACKOFF_BASE_MS);
        assert_eq!(queue.take(10, start + first), vec![ONE]);
        queue.failed(ONE, start, false);
        assert!(queue.take(10, start + first).is_empty(), "doubled");
        assert_eq!(queue.take(10, start + first * 2), vec![ONE]);
        for _ in 0..20 {
            queue.failed(ONE, start, false);
            queue.take(10, start + Duration::from_millis(BACKOFF_MAX_MS));
        }
        queue.failed(ONE, start, false);
        let almost = Duration::from_millis(BACKOFF_MAX_MS - 1);
        assert!(
            queue.take(10, start + almost).is_empty(),
            "capped, not less"
        );
        assert_eq!(
            queue.take(10, start + Duration::from_millis(BACKOFF_MAX_MS)),
            vec![ONE],
            "capped"
        );
        queue.succeeded(ONE);
        queue.add(ONE);
        assert_eq!(queue.take(10, start), vec![ONE], "reset");
        queue.failed(ONE, start, false);
        assert!(queue
            .take(10, start + first - Duration::from_millis(1))
            .is_empty());
        assert_eq!(
            queue.take(10, start + first),
            vec![ONE],
            "back to the base delay"
        );
    }

    #[test]
    fn items_are_taken_round_robin() {
        const THREE: Item = Item::Reconcile(EnvironmentId(3));
        let mut queue = WorkQueue::default();
        let now = Instant::now();
        for item in [ONE, TWO, THREE] {
            queue.add(item);
        }
        assert_eq!(queue.take(1, now), vec![ONE]);
        queue.add(ONE);
        assert_eq!(queue.take(1, now), vec![TWO], "the low id waits its turn");
        queue.add(TWO);
        assert_eq!(queue.take(2, now), vec![THREE, ONE], "wraps around");
        assert_eq!(queue.take(2, now), vec![TWO]);
    }

    #[test]
    fn a_starting_workload_is_rechecked_soon_but_not_forever() {
        let mut queue = WorkQueue::default();
        let start = Instant::now();
        let soon = start + Duration::from_millis(STARTING_RECHECK_MS);
        for _ in 0..STARTING_RECHECKS_MAX {
            queue.failed(ONE, start, true);
            assert_eq!(
                queue.take(10, soon),
                vec![ONE],
                "rechecked within a quarter second"
            );
        }
        queue.failed(ONE, start, true);
        assert!(
            queue.take(10, soon).is_empty(),
            "never healthy: normal backoff"
        );
        let later = start + Duration::from_millis(BACKOFF_MAX_MS);
        assert_eq!(queue.take(10, later), vec![ONE]);
    }

    #[test]
    fn flapping_does_not_renew_quick_rechecks_until_the_window_ends() {
        let mut queue = WorkQueue::default();
        let start = Instant::now();
        let soon = |at: Instant| at + Duration::from_millis(STARTING_RECHECK_MS);
        for _ in 0..STARTING_RECHECKS_MAX {
            queue.failed(ONE, start, true);
            queue.take(10, soon(start));
            queue.succeeded(ONE);
        }
        for _ in 0..4 {
            queue.failed(ONE, start, true);
        }
        assert!(
            queue.take(10, soon(start)).is_empty(),
            "no quick recheck left"
        );
        queue.succeeded(ONE);
        let next_window = start + Duration::from_millis(STARTING_WINDOW_MS);
        for _ in 0..4 {
            queue.failed(ONE, next_window, true);
        }
        assert_eq!(queue.take(10, soon(next_window)), vec![ONE], "a new window");
    }

    #[test]
    fn other_failures_do_not_spend_quick_rechecks() {
        let mut queue = WorkQueue::default();
        let start = Instant::now();
        for _ in 0..STARTING_RECHECKS_MAX * 2 {
            queue.failed(ONE, start, false);
        }
        queue.failed(ONE, start, true);
        let soon = start + Duration::from_millis(STARTING_RECHECK_MS);
        assert_eq!(queue.take(10, soon), vec![ONE]);
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
