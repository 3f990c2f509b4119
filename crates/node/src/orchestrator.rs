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
//! Entering an epoch also opens the next epoch's subchannels: what its members send before this
//! node has executed the boundary waits there (bounded by the channel's capacity) rather than
//! being dropped, so the new epoch's first leader is heard by everyone. A node further behind
//! sees votes or certificates of a later epoch on a subchannel it has not opened (the muxers'
//! backup queues): it asks that sender for the finalization of its own epoch's last block, so
//! it crosses the boundary without waiting for its backfill.
//!
//! The old engine is stopped as soon as the boundary block is executed: the boundary's
//! finalization is already in marshal, which serves it to any member still behind. The journal
//! of the epoch before the previous one is removed at each change (its views are final).

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
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

/// A pair of subchannel ends of one epoch.
pub type SubChannel<S> = (SubSender<S>, SubReceiver<PublicKey>);

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
    /// The next epoch's subchannels, opened when this one was entered.
    opened: Option<(u64, Opened<S>)>,
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
            opened: None,
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
            let current = active.as_ref().map(|active| active.epoch);
            futures::select_biased! {
                received = blocks.recv().fuse() => match received {
                    Ok(finalized) => {
                        let last = current.and_then(|epoch| self.epochs.last(Epoch::new(epoch)));
                        stale = last.is_none_or(|last| finalized.block.height >= last);
                    }
                    Err(RecvError::Lagged(_)) => stale = true,
                    Err(RecvError::Closed) => return,
                },
                backup = self.vote_backup.recv().fuse() => match backup {
                    Some((epoch, (from, _))) => self.behind(current, epoch, from),
                    None => return,
                },
                backup = self.certificate_backup.recv().fuse() => match backup {
                    Some((epoch, (from, _))) => self.behind(current, epoch, from),
                    None => return,
                },
            }
        }
    }

    /// A message of `their` epoch came on a subchannel this node has not opened: if that
    /// epoch is later than ours, ask its sender for our epoch's last finalization.
    fn behind(&self, ours: Option<u64>, their: Channel, from: PublicKey) {
        let Some(ours) = ours.filter(|ours| their > *ours) else {
            return;
        };
        if let Some(last) = self.epochs.last(Epoch::new(ours)) {
            debug!(ours, their, %last, "a peer is in a later epoch; fetching our boundary");
            self.marshal.hint_finalized(last, NonEmptyVec::new(from));
        }
    }

    /// Opens `epoch`'s subchannels: certificates always, votes and resolver where this node
    /// is a member.
    async fn open(&mut self, epoch: u64) -> Option<Opened<S>> {
        let member = self.epochs.is_member(epoch) && self.start_engine.is_some();
        let certificates = self.certificates.register(epoch).await.ok()?;
        let (votes, resolver) = match member {
            true => (
                Some(self.votes.register(epoch).await.ok()?),
                Some(self.resolver.register(epoch).await.ok()?),
            ),
            false => (None, None),
        };
        Some(Opened {
            votes,
            certificates,
            resolver,
        })
    }

    /// Starts what this node runs in `state`'s epoch, and opens the next epoch's subchannels
    /// (what its members send before this node crosses the boundary waits there, bounded by
    /// the channel's capacity, instead of being lost: a leader's proposal of the new epoch's
    /// first view would otherwise cost a leader timeout).
    async fn enter(&mut self, state: &EpochState) -> Option<Active> {
        let epoch = state.current.epoch.get();
        let floor = floor(&self.marshal, self.genesis, state).await?;
        if let Some(old) = epoch.checked_sub(2) {
            // Best effort: a journal left behind costs disk only.
            let _ = self
                .context
                .remove(&(self.partition)(&self.prefix, old), None)
                .await;
        }
        let scoped = self.epochs.scoped(Epoch::new(epoch))?;
        let member = self.epochs.is_member(epoch);
        info!(
            epoch,
            start_height = state.current.start_height,
            length_blocks = state.current.length_blocks,
            member,
            "entered epoch"
        );
        let opened = match self.opened.take().filter(|(at, _)| *at == epoch) {
            Some((_, opened)) => opened,
            None => self.open(epoch).await?,
        };
        if state.committee(epoch + 1).is_some() {
            self.opened = self.open(epoch + 1).await.map(|next| (epoch + 1, next));
        }
        if let (true, Some(start)) = (member, self.start_engine.as_mut()) {
            let (Some(votes), Some(resolver)) = (opened.votes, opened.resolver) else {
                warn!(epoch, "member subchannels missing; not entering");
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

/// Subchannels of one epoch opened ahead of it.
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
