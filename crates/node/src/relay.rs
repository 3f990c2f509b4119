//! Transaction relay between validators (p2p channel 5).
//!
//! A transaction admitted through RPC is sent once to every other validator, batched: the
//! outbound task takes whatever is queued (up to [`RELAY_BATCH_MAX`]) and sends it as one
//! message. Receivers admit each transaction into their own mempool with the same checks as
//! RPC and do not forward it again (validators form a full mesh).

use crate::shared::Shared;
use commonware_codec::{Decode, Encode, RangeCfg};
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Metrics, Spawner, Storage, Supervisor};
use futures::{channel::mpsc, StreamExt};
use logos_types::Transaction;
use std::sync::Arc;
use tracing::debug;

/// Most transactions in one relay message.
pub const RELAY_BATCH_MAX: usize = 1_024;
/// Capacity of the outbound queue; when full, relaying is skipped (the transaction stays in
/// the local mempool and is still proposed by this validator).
pub const RELAY_QUEUE_MAX: usize = 65_536;

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
    /// Starts the outbound and inbound tasks on `network`.
    pub fn start<E, S, R>(context: E, shared: Arc<Shared<E>>, network: (S, R)) -> Mailbox
    where
        E: Spawner + Storage + Clock + Metrics + Supervisor,
        S: Sender,
        R: Receiver,
    {
        let (sender, receiver) = mpsc::channel(RELAY_QUEUE_MAX);
        let (network_sender, network_receiver) = network;
        context
            .child("outbound")
            .spawn(|_| outbound(receiver, network_sender));
        context
            .child("inbound")
            .spawn(|_| inbound(shared, network_receiver));
        Mailbox { sender }
    }
}

async fn outbound<S: Sender>(mut queue: mpsc::Receiver<Transaction>, mut network: S) {
    while let Some(first) = queue.next().await {
        let mut batch = vec![first];
        while batch.len() < RELAY_BATCH_MAX {
            match queue.try_recv() {
                Ok(transaction) => batch.push(transaction),
                Err(_) => break,
            }
        }
        network.send(Recipients::All, batch.encode(), false);
    }
}

async fn inbound<E, R>(shared: Arc<Shared<E>>, mut network: R)
where
    E: Storage + Clock + Metrics + Spawner,
    R: Receiver,
{
    let cfg = (RangeCfg::new(1..=RELAY_BATCH_MAX), ());
    while let Ok((peer, message)) = network.recv().await {
        let Ok(batch) = Vec::<Transaction>::decode_cfg(message, &cfg) else {
            debug!(?peer, "malformed relay message");
            continue;
        };
        for transaction in batch {
            if let Err(rejection) = shared.admit(transaction).await {
                debug!(?peer, %rejection, "relayed transaction rejected");
            }
        }
    }
}
