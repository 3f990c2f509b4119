//! Transaction relay between validators (p2p channel 5).
//!
//! A transaction admitted through RPC is sent once to every other validator, batched: the
//! outbound task sends at most one message per [`RELAY_BATCH_WINDOW_MS`], holding whatever is
//! queued meanwhile (up to [`RELAY_BATCH_MAX`]) for the next one. Receivers admit each
//! transaction into their own mempool with the same checks as RPC and do not forward it again (validators form a full mesh; a full node relays what it
//! is given to the validators).
//!
//! Peers are held to what an honest relay does: a peer that sends a malformed message, or a
//! transaction that fails the stateless checks (signature, size, chain id: an honest peer
//! admitted it first, and those checks give the same answer everywhere), is blocked. Each peer
//! has a budget of [`RELAY_TRANSACTIONS_PER_SECOND_PER_PEER`] transactions (token bucket,
//! `governor`); beyond it a batch is dropped unchecked, so one peer cannot spend a node's
//! signature checks.

use crate::shared::Shared;
use commonware_codec::{Decode, Encode, RangeCfg};
use commonware_p2p::{Blocker, Receiver, Recipients, Sender};
use commonware_runtime::{
    telemetry::metrics::{Counter, MetricsExt as _},
    Clock, Metrics, Spawner, Storage, Supervisor,
};
use futures::{channel::mpsc, StreamExt};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use logos_mempool::Rejection;
use logos_primitives::PublicKey;
use logos_types::Transaction;
use std::{num::NonZeroU32, sync::Arc, time::Duration};
use tracing::{debug, warn};

/// Most transactions in one relay message.
pub const RELAY_BATCH_MAX: usize = 1_024;
/// Least time between two relay messages, ms (so each peer gets at most 200 a second; a
/// transaction queued after a quiet window is sent at once).
pub const RELAY_BATCH_WINDOW_MS: u64 = 5;
/// Capacity of the outbound queue; when full, relaying is skipped (the transaction stays in
/// the local mempool and is still proposed by this validator).
pub const RELAY_QUEUE_MAX: usize = 65_536;
/// Relayed transactions one peer may have checked per second (above an RPC server's default
/// 20,000 calls per second, so an honest relay is never held back).
pub const RELAY_TRANSACTIONS_PER_SECOND_PER_PEER: u32 = 25_000;

/// Queues transactions for relay.
#[derive(Clone)]
pub struct Mailbox {
    sender: mpsc::Sender<Transaction>,
}

impl Mailbox {
    /// Queues `transaction` for relay; false if the queue is full.
    pub fn relay(&self, transaction: Transaction) -> bool {
        self.sender.clone().try_send(transaction).is_ok()
    }
}

/// The relay's tasks.
pub struct Relay;

impl Relay {
    /// Starts the outbound and inbound tasks on `network`; `blocker` blocks peers that relay
    /// what no honest peer would (see the module docs).
    pub fn start<E, S, R, B>(
        context: E,
        shared: Arc<Shared<E>>,
        network: (S, R),
        blocker: B,
    ) -> Mailbox
    where
        E: Spawner + Storage + Clock + Metrics + Supervisor,
        S: Sender,
        R: Receiver<PublicKey = PublicKey>,
        B: Blocker<PublicKey = PublicKey>,
    {
        let (sender, receiver) = mpsc::channel(RELAY_QUEUE_MAX);
        let (network_sender, network_receiver) = network;
        context
            .child("outbound")
            .spawn(|context| outbound(context, receiver, network_sender));
        let inbound_context = context.child("inbound");
        let checks = Checks::new(&inbound_context, blocker);
        inbound_context.spawn(|_| inbound(shared, network_receiver, checks));
        Mailbox { sender }
    }
}

async fn outbound<S: Sender>(
    clock: impl Clock,
    mut queue: mpsc::Receiver<Transaction>,
    mut network: S,
) {
    let window = Duration::from_millis(RELAY_BATCH_WINDOW_MS);
    let mut last_sent = None;
    while let Some(first) = queue.next().await {
        // At most one message per window to each peer whatever the load, well under the data
        // channel's per-peer quota (commonware-p2p skips a recipient over it, so a faster
        // relay would lose batches); after a quiet window a transaction goes at once. Measured
        // as elapsed time, so a clock stepped back does not stall the relay.
        let since = last_sent.map(|sent| clock.current().duration_since(sent).unwrap_or(window));
        if let Some(since) = since.filter(|since| *since < window) {
            clock.sleep(window - since).await;
        }
        let mut batch = vec![first];
        while batch.len() < RELAY_BATCH_MAX {
            match queue.try_recv() {
                Ok(transaction) => batch.push(transaction),
                Err(_) => break,
            }
        }
        network.send(Recipients::All, batch.encode(), false);
        last_sent = Some(clock.current());
    }
}

/// The inbound task's budget per peer and its blocker.
struct Checks<B> {
    budget: DefaultKeyedRateLimiter<PublicKey>,
    blocker: B,
    dropped: Counter,
    blocked: Counter,
}

impl<B: Blocker<PublicKey = PublicKey>> Checks<B> {
    fn new(metrics: &impl Metrics, blocker: B) -> Self {
        let rate =
            NonZeroU32::new(RELAY_TRANSACTIONS_PER_SECOND_PER_PEER).unwrap_or(NonZeroU32::MIN);
        Self {
            budget: RateLimiter::keyed(Quota::per_second(rate)),
            blocker,
            dropped: metrics.counter(
                "relay_dropped_transactions",
                "relayed transactions dropped over a peer's budget",
            ),
            blocked: metrics.counter(
                "relay_blocked_peers",
                "peers blocked for a malformed or invalid relay",
            ),
        }
    }

    /// True if `peer` may have `count` more transactions checked now.
    fn within_budget(&self, peer: &PublicKey, count: usize) -> bool {
        let count = NonZeroU32::new(count as u32).unwrap_or(NonZeroU32::MIN);
        let within = matches!(self.budget.check_key_n(peer, count), Ok(Ok(())));
        if !within {
            self.dropped.inc_by(count.get().into());
        }
        within
    }

    fn block(&mut self, peer: PublicKey, reason: &str) {
        warn!(?peer, reason, "relay peer blocked");
        self.blocked.inc();
        self.blocker.block(peer);
    }
}

async fn inbound<E, R, B>(shared: Arc<Shared<E>>, mut network: R, mut checks: Checks<B>)
where
    E: Storage + Clock + Metrics + Spawner,
    R: Receiver<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
{
    let cfg = (RangeCfg::new(1..=RELAY_BATCH_MAX), ());
    while let Ok((peer, message)) = network.recv().await {
        let Ok(batch) = Vec::<Transaction>::decode_cfg(message, &cfg) else {
            checks.block(peer, "malformed relay message");
            continue;
        };
        if !checks.within_budget(&peer, batch.len()) {
            debug!(
                ?peer,
                transactions = batch.len(),
                "relay batch over the peer's budget"
            );
            continue;
        }
        for transaction in batch {
            match shared.admit(transaction).await {
                Ok(_) => {}
                Err(Rejection::Invalid(error)) => {
                    checks.block(peer, &format!("invalid relayed transaction: {error}"));
                    break;
                }
                Err(rejection) => debug!(?peer, %rejection, "relayed transaction rejected"),
            }
        }
    }
}
