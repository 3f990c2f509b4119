//! One consensus engine per epoch (commonware's pattern, see `commonware-glue`'s orchestrator).
//!
//! The vote, certificate and simplex-resolver channels are multiplexed by epoch (the epoch
//! number is the subchannel). When the node's finalized tip enters a new epoch (it executed the
//! previous epoch's last block, after which the chain names the epoch's span and committee;
//! see [`crate::epochs`]), the orchestrator stops what ran in the old epoch and:
//! - if the epoch's committee holds this node's key, starts a simplex engine for it (its own
//!   journal partition, the committee's signing scheme, and as floor the previous epoch's last
//!   block, which every member has finalized and executed);
//! - otherwise follows the epoch as a full node: it takes the finalization certificates the
//!   members broadcast on the epoch's certificate subchannel, checks each against the epoch's
//!   committee and hands it to marshal (a malformed or forged one blocks its sender).
//!
//! Messages of an epoch this node has not entered arrive on subchannels it has not opened (the
//! vote and certificate muxers' backup queues). Those of the next epoch are kept (at most
//! [`EARLY_MESSAGES_MAX`] per channel and [`EARLY_BYTES_MAX`] in all) and handed to that
//! epoch's engine first when it starts, so the new epoch's first leader is heard even by a node
//! that executes the boundary a little after the others. Any message of a later epoch also
//! tells the node it is behind: it asks that sender (at most every [`HINT_INTERVAL_MS`]) for
//! the finalization of its own epoch's last block, so it crosses the boundary even if it
//! missed that certificate and its peers have stopped the old engine.
//!
//! The old engine is stopped as soon as the boundary block is executed: the boundary's
//! finalization is already in marshal, which serves it (backfill) to a node still behind that
//! asks, as above. The journal of the epoch before the previous one is removed at each change
//! (its views are final).

use crate::{
    engine::MarshalMailbox,
    epochs::{read_epoch_state, EpochState, Epochs},
    shared::Shared,
};
use commonware_codec::Decode as _;
use commonware_consensus::{
    marshal,
    simplex::types::{Activity, Certificate},
    types::{Epoch, Epocher as _, Height, View},
    Reporter as _,
};
use commonware_cryptography::{
    certificate::{Provider as _, Scoped, Verifier as _},
    Digestible as _,
};
use commonware_p2p::{
    utils::mux::{Builder as _, MuxHandle, Muxer, SubReceiver, SubSender},
    Blocker, Channel, Message, Receiver, Sender,
};
use commonware_parallel::Sequential;
use commonware_runtime::{
    telemetry::metrics::{Counter, MetricsExt as _},
    Clock, Handle, Metrics, Spawner, Storage,
};
use commonware_utils::{channel::mpsc, vec::NonEmptyVec};
use futures::FutureExt as _;
use logos_api::consensus::Scheme;
use logos_primitives::{Hash, PublicKey};
use std::{collections::VecDeque, sync::Arc, time::Duration};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

/// Messages of the next epoch kept per channel before it is entered.
pub const EARLY_MESSAGES_MAX: usize = 1_024;
/// Bytes of messages of the next epoch kept in all before it is entered.
pub const EARLY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Shortest time between two requests for the boundary finalization, ms.
pub const HINT_INTERVAL_MS: u64 = 200;

/// A pair of subchannel ends of one epoch (the receiver first yields what arrived early).
pub type SubChannel<S> = (SubSender<S>, Replay<SubReceiver<PublicKey>>);

/// A receiver that yields messages kept from before it was opened, then its own.
pub struct Replay<R> {
    early: VecDeque<Message<PublicKey>>,
    inner: R,
}

impl<R> std::fmt::Debug for Replay<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("early", &self.early.len())
            .finish()
    }
}

impl<R: Receiver<PublicKey = PublicKey>> Receiver for Replay<R> {
    type Error = R::Error;
    type PublicKey = PublicKey;

    async fn recv(&mut self) -> Result<Message<PublicKey>, Self::Error> {
        match self.early.pop_front() {
            Some(message) => Ok(message),
            None => self.inner.recv().await,
        }
    }

    fn capacity(&self) -> std::num::NonZeroUsize {
        self.inner.capacity()
    }
}

/// What arrived for the next epoch before this node entered it (see the module docs).
#[derive(Default)]
struct Early {
    epoch: u64,
    votes: VecDeque<Message<PublicKey>>,
    certificates: VecDeque<Message<PublicKey>>,
    bytes: usize,
}

impl Early {
    /// Keeps `message` of `epoch`'s `votes` (else certificates) channel if it is the next
    /// epoch's and the bounds allow.
    fn keep(&mut self, next: u64, epoch: u64, votes: bool, message: Message<PublicKey>) {
        if epoch != next {
            return;
        }
        if self.epoch != next {
            *self = Self {
                epoch: next,
                ..Self::default()
            };
        }
        let size = message.1.len();
        let queue = match votes {
            true => &mut self.votes,
            false => &mut self.certificates,
        };
        if queue.len() < EARLY_MESSAGES_MAX && self.bytes.saturating_add(size) <= EARLY_BYTES_MAX {
            self.bytes += size;
            queue.push_back(message);
        }
    }

    /// The kept messages of `epoch` (votes, certificates), emptying the store.
    fn take(&mut self, epoch: u64) -> (VecDeque<Message<PublicKey>>, VecDeque<Message<PublicKey>>) {
        let early = std::mem::take(self);
        match early.epoch == epoch {
            true => (early.votes, early.certificates),
            false => Default::default(),
        }
    }
}

/// What an epoch's engine is started with.
pub struct EngineStart<S: Sender> {
    /// The epoch.
    pub epoch: Epoch,
    /// The committee's scheme, able to sign with this node's key.
    pub scheme: Scheme,
    /// Digest of the previous epoch's last block (the genesis block for epoch 0).
    pub floor: Hash,
    /// The epoch's vote, certificate and resolver subchannels.
    pub channels: (SubChannel<S>, SubChannel<S>, SubChannel<S>),
}

/// Starts an epoch's engine (see [`crate::engine`]).
pub type StartEngine<S> = Box<dyn FnMut(EngineStart<S>) -> Handle<()> + Send>;

/// The task that ran in an epoch; stopping it (dropping this) aborts it.
struct Active {
    epoch: u64,
    handle: Handle<()>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

type Backup = mpsc::Receiver<(Channel, Message<PublicKey>)>;

/// The orchestrator (see the module docs).
pub struct Orchestrator<E: Storage + Clock + Metrics + Spawner, S: Sender, B> {
    context: E,
    shared: Arc<Shared<E>>,
    epochs: Epochs,
    marshal: MarshalMailbox,
    blocker: B,
    /// `None` on a full node (it never runs consensus).
    start_engine: Option<StartEngine<S>>,
    /// Partition name of an epoch's simplex journal.
    partition: fn(&str, u64) -> String,
    prefix: String,
    votes: MuxHandle<S>,
    certificates: MuxHandle<S>,
    resolver: MuxHandle<S>,
    vote_backup: Backup,
    certificate_backup: Backup,
    genesis: Hash,
    /// Messages of the next epoch that came before it was entered.
    early: Early,
    /// When the boundary finalization was last asked for.
    hinted: Option<std::time::SystemTime>,
}

/// Settings of [`Orchestrator::new`].
pub struct OrchestratorConfig<S: Sender> {
    /// Starts an engine where this node is a member (`None`: a full node).
    pub start_engine: Option<StartEngine<S>>,
    /// Partition name of an epoch's simplex journal, from the prefix and the epoch.
    pub partition: fn(&str, u64) -> String,
    /// Prefix of this node's partitions.
    pub prefix: String,
    /// Digest of the genesis block.
    pub genesis: Hash,
}

impl<E, S, B> Orchestrator<E, S, B>
where
    E: Spawner + Storage + Clock + Metrics + rand::CryptoRng + Send + Sync + 'static,
    S: Sender<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
{
    /// Multiplexes the three consensus channels by epoch and builds the orchestrator.
    #[allow(clippy::too_many_arguments)]
    pub fn new<R: Receiver<PublicKey = PublicKey>>(
        context: E,
        shared: Arc<Shared<E>>,
        epochs: Epochs,
        marshal: MarshalMailbox,
        blocker: B,
        (votes, certificates, resolver): ((S, R), (S, R), (S, R)),
        config: OrchestratorConfig<S>,
    ) -> Self {
        let (mux, votes, vote_backup) = Muxer::builder(context.child("vote_mux"), votes.0, votes.1)
            .with_backup()
            .build();
        mux.start();
        let (mux, certificates, certificate_backup) = Muxer::builder(
            context.child("certificate_mux"),
            certificates.0,
            certificates.1,
        )
        .with_backup()
        .build();
        mux.start();
        let (mux, resolver) = Muxer::new(context.child("resolver_mux"), resolver.0, resolver.1);
        mux.start();
        Self {
            context,
            shared,
            epochs,
            marshal,
            blocker,
            start_engine: config.start_engine,
            partition: config.partition,
            prefix: config.prefix,
            votes,
            certificates,
            resolver,
            vote_backup,
            certificate_backup,
            genesis: config.genesis,
            early: Early::default(),
            hinted: None,
        }
    }

    /// Runs until the node stops: enters the tip's epoch, then each next one.
    pub async fn run(mut self) {
        // Subscribed before the first read, so no boundary between the two is missed.
        let mut blocks = self.shared.subscribe();
        let mut active: Option<Active> = None;
        let mut stale = true;
        loop {
            if stale {
                stale = false;
                match read_epoch_state(&self.shared).await {
                    Ok(state) => {
                        let changed = self.epochs.learn(&state);
                        if changed || active.is_none() {
                            // The old epoch's task stops before the new one opens subchannels.
                            drop(active.take());
                            active = self.enter(&state).await;
                        }
                    }
                    Err(error) => warn!(%error, "epoch unreadable at the finalized tip"),
                }
            }
            let current = active
                .as_ref()
                .map(|active| active.epoch)
                .or_else(|| self.epochs.current());
            futures::select_biased! {
                received = blocks.recv().fuse() => match received {
                    Ok(finalized) => {
                        let last = current.and_then(|epoch| self.epochs.last(Epoch::new(epoch)));
                        // A failed entry is retried at each block.
                        stale = active.is_none()
                            || last.is_none_or(|last| finalized.block.height >= last);
                    }
                    Err(RecvError::Lagged(_)) => stale = true,
                    Err(RecvError::Closed) => return,
                },
                backup = self.vote_backup.recv().fuse() => match backup {
                    Some((epoch, message)) => self.early(current, epoch, true, message),
                    None => return,
                },
                backup = self.certificate_backup.recv().fuse() => match backup {
                    Some((epoch, message)) => self.early(current, epoch, false, message),
                    None => return,
                },
            }
        }
    }

    /// A message of `their` epoch came on a subchannel this node has not opened: if that
    /// epoch is later than ours, ask its sender (at most every [`HINT_INTERVAL_MS`]) for our
    /// epoch's last finalization, and keep it if it is the next epoch's.
    fn early(
        &mut self,
        ours: Option<u64>,
        their: Channel,
        votes: bool,
        message: Message<PublicKey>,
    ) {
        let Some(ours) = ours.filter(|ours| their > *ours) else {
            return;
        };
        let now = self.context.current();
        let due = self.hinted.is_none_or(|at| {
            now.duration_since(at).unwrap_or_default() >= Duration::from_millis(HINT_INTERVAL_MS)
        });
        if let (true, Some(last)) = (due, self.epochs.last(Epoch::new(ours))) {
            debug!(ours, their, %last, "a peer is in a later epoch; fetching our boundary");
            self.marshal
                .hint_finalized(last, NonEmptyVec::new(message.0.clone()));
            self.hinted = Some(now);
        }
        self.early
            .keep(ours.saturating_add(1), their, votes, message);
    }

    /// Takes what waits in the backup queues (before `epoch`'s subchannels are opened, after
    /// which its messages no longer go there).
    fn drain_backups(&mut self, epoch: u64) {
        let ours = epoch.checked_sub(1);
        while let Ok((their, message)) = self.vote_backup.try_recv() {
            self.early(ours, their, true, message);
        }
        while let Ok((their, message)) = self.certificate_backup.try_recv() {
            self.early(ours, their, false, message);
        }
    }

    /// Opens `epoch`'s subchannels (certificates always, votes and resolver where this node is
    /// a member), their receivers yielding first what arrived early.
    async fn open(&mut self, epoch: u64, member: bool) -> Option<Opened<S>> {
        self.drain_backups(epoch);
        let (early_votes, early_certificates) = self.early.take(epoch);
        let (sender, receiver) = self.certificates.register(epoch).await.ok()?;
        let certificates = (sender, replay(early_certificates, receiver));
        let (votes, resolver) = match member {
            true => {
                let (sender, receiver) = self.votes.register(epoch).await.ok()?;
                let votes = (sender, replay(early_votes, receiver));
                let (sender, receiver) = self.resolver.register(epoch).await.ok()?;
                (
                    Some(votes),
                    Some((sender, replay(VecDeque::new(), receiver))),
                )
            }
            false => (None, None),
        };
        Some(Opened {
            votes,
            certificates,
            resolver,
        })
    }

    /// Starts what this node runs in `state`'s epoch.
    async fn enter(&mut self, state: &EpochState) -> Option<Active> {
        let epoch = state.current.epoch.get();
        if let Some(old) = epoch.checked_sub(2) {
            // Best effort: a journal left behind costs disk only.
            let _ = self
                .context
                .remove(&(self.partition)(&self.prefix, old), None)
                .await;
        }
        let scoped = self.epochs.scoped(Epoch::new(epoch))?;
        let member = self.epochs.is_member(epoch) && self.start_engine.is_some();
        info!(
            epoch,
            start_height = state.current.start_height,
            length_blocks = state.current.length_blocks,
            member,
            "entered epoch"
        );
        if member {
            // Only an engine builds on the floor (a follower takes certificates).
            let floor = floor(&self.marshal, self.genesis, state).await?;
            let opened = self.open(epoch, true).await?;
            let (Some(votes), Some(resolver), Some(start)) =
                (opened.votes, opened.resolver, self.start_engine.as_mut())
            else {
                return None;
            };
            let scheme = scoped.into_scheme()?.as_ref().clone();
            let handle = start(EngineStart {
                epoch: Epoch::new(epoch),
                scheme,
                floor,
                channels: (votes, opened.certificates, resolver),
            });
            return Some(Active { epoch, handle });
        }
        let opened = self.open(epoch, false).await?;
        let follower = CertificateFollower::new(
            &self.context.child("certificates"),
            Epoch::new(epoch),
            scoped,
            self.blocker.clone(),
        );
        let marshal = self.marshal.clone();
        let certificates = opened.certificates.1;
        let handle = self
            .context
            .child("follower")
            .spawn(move |context| follower.run(context, certificates, marshal));
        Some(Active { epoch, handle })
    }
}

fn replay<R>(early: VecDeque<Message<PublicKey>>, inner: R) -> Replay<R> {
    Replay { early, inner }
}

/// The subchannels of one epoch.
struct Opened<S: Sender> {
    votes: Option<SubChannel<S>>,
    certificates: SubChannel<S>,
    resolver: Option<SubChannel<S>>,
}

/// The block `state`'s epoch builds on: the genesis block, or the previous epoch's last.
async fn floor(marshal: &MarshalMailbox, genesis: Hash, state: &EpochState) -> Option<Hash> {
    let Some(height) = state.current.start_height.checked_sub(1).filter(|h| *h > 0) else {
        return Some(genesis);
    };
    match marshal
        .get_block(marshal::Identifier::Height(Height::new(height)))
        .await
    {
        Some(block) => Some(block.digest()),
        None => {
            warn!(
                height,
                "the previous epoch's last block is missing; not entering"
            );
            None
        }
    }
}

/// Takes an epoch's finalization certificates from its subchannel (a node that is not a
/// member of the epoch's committee; see the module docs).
pub(crate) struct CertificateFollower<B> {
    epoch: Epoch,
    verifier: Scoped<Scheme>,
    blocker: B,
    /// The view of the newest finalization handed to marshal.
    last_view: View,
    taken: Counter,
    refused: Counter,
}

impl<B: Blocker<PublicKey = PublicKey>> CertificateFollower<B> {
    pub(crate) fn new(
        metrics: &impl Metrics,
        epoch: Epoch,
        verifier: Scoped<Scheme>,
        blocker: B,
    ) -> Self {
        Self {
            epoch,
            verifier,
            blocker,
            last_view: View::zero(),
            taken: metrics.counter("finalizations_taken", "finalizations handed to marshal"),
            refused: metrics.counter(
                "certificates_refused",
                "malformed or forged certificates (their sender is blocked)",
            ),
        }
    }

    pub(crate) async fn run<E, R>(mut self, mut rng: E, mut network: R, mut marshal: MarshalMailbox)
    where
        E: rand::CryptoRng,
        R: Receiver<PublicKey = PublicKey>,
    {
        let cfg = self.verifier.certificate_codec_config();
        while let Ok((peer, message)) = network.recv().await {
            let Ok(certificate) = Certificate::<Scheme, Hash>::decode_cfg(message, &cfg) else {
                self.refuse(peer, "malformed certificate");
                continue;
            };
            let Certificate::Finalization(finalization) = certificate else {
                continue;
            };
            let round = finalization.proposal.round;
            if round.epoch() != self.epoch || round.view() <= self.last_view {
                continue;
            }
            if !finalization.verify(&mut rng, &self.verifier, &Sequential) {
                self.refuse(peer, "forged finalization");
                continue;
            }
            self.last_view = round.view();
            self.taken.inc();
            debug!(epoch = %round.epoch(), view = %round.view(), "finalization taken");
            marshal.report(Activity::Finalization(finalization));
        }
    }

    fn refuse(&mut self, peer: PublicKey, reason: &str) {
        warn!(
            ?peer,
            reason,
            "certificate refused; blocking the peer (if every validator is blocked, check that \
             this node's genesis file is the network's)"
        );
        self.refused.inc();
        self.blocker.block(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;

    fn message(size: usize) -> Message<PublicKey> {
        let key = logos_primitives::PrivateKey::from_seed(1).public_key();
        (key, vec![0u8; size].into())
    }

    /// A flood of early messages keeps at most the bounds, only the next epoch's, and a later
    /// epoch's store replaces the old one; what is kept is handed over once.
    #[test]
    fn early_messages_are_bounded_and_only_the_next_epochs() {
        let mut early = Early::default();
        for _ in 0..EARLY_MESSAGES_MAX + 10 {
            early.keep(3, 3, true, message(8));
        }
        early.keep(3, 7, true, message(8));
        early.keep(3, 2, false, message(8));
        assert_eq!(early.votes.len(), EARLY_MESSAGES_MAX);
        assert!(early.certificates.is_empty(), "other epochs are not kept");
        // Large certificates stop at the byte bound.
        for _ in 0..64 {
            early.keep(3, 3, false, message(1 << 20));
        }
        assert!(early.bytes <= EARLY_BYTES_MAX);
        assert!(early.certificates.len() < 4);
        assert_eq!(
            early.take(4).0.len(),
            0,
            "a store of epoch 3 is not epoch 4's"
        );
        assert!(early.votes.is_empty() && early.certificates.is_empty());
        early.keep(4, 4, true, message(8));
        early.keep(5, 5, true, message(8));
        let (votes, _) = early.take(5);
        assert_eq!(votes.len(), 1, "the newer epoch's store replaced the older");
    }
}
