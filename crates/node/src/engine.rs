//! Wiring of one validator (p2p channels, marshal, one simplex engine per epoch, the
//! application and the relay), and of what a full node shares with it ([`start_base`]).
//!
//! Data flow:
//! ```text
//! orchestrator (crate::orchestrator): per epoch, from the chain's committee (crate::epochs)
//!   └─ simplex of the epoch (votes, certificates, resolver subchannels of that epoch), or,
//!      where this key is not a member, a certificate follower
//!        ├─ Inline(Application): propose / verify / certify ── marshal mailbox
//!        └─ reporter: Inline forwards notarizations and finalizations to marshal; faults
//!           also become evidence transactions (`crate::evidence`)
//! marshal (block broadcast via buffered, backfill via p2p resolver, finalized archives;
//!          certificates checked against their epoch's committee)
//!   └─ delivers finalized blocks in height order to the Finalizer ─ ChainState::finalize
//!        └─ a block that ends an epoch: the orchestrator enters the next
//! relay (transactions channel) ─ Mempool
//! ```
//! Channels: 0 votes, 1 certificates, 2 simplex resolver (these three multiplexed by epoch),
//! 3 marshal backfill, 4 block broadcast, 5 transaction relay, 6 the epochs' DKG (validators
//! only, `crate::dkg`), 7 partial signatures of the block seeds (validators only, to and from
//! the consensus peers, `crate::seeds`). Every validator must use the same channel numbers.
//!
//! A node's peers are the validators and the full nodes it lets connect (p2p secondary peers,
//! see [`crate::full`]). What goes "to all" on channels 0, 4 and 5 goes to the consensus peers
//! only (the recent committees, [`ToCommittees`]): votes are of no use to a full node, and
//! a leader uploading each block to every full node would compete with its upload to the
//! committee (full nodes fetch finalized blocks by backfill). Certificates (channel 1) reach
//! full nodes: they follow them.

use crate::{
    application::{Application, Finalizer},
    chain::{ChainError, ChainState},
    epochs::{read_epoch_state, Epochs},
    evidence::{self, EvidenceReporter},
    invariants::InvariantCheck,
    orchestrator::{EngineStart, Orchestrator, OrchestratorConfig, StartEngine},
    receipts::{ReceiptStore, ReceiptStoreError},
    relay::{self, Relay},
    shared::Shared,
};
use commonware_broadcast::buffered;
use commonware_codec::Decode as _;
use commonware_consensus::{
    marshal::{
        self,
        core::Mailbox as CoreMailbox,
        resolver::p2p as marshal_resolver,
        standard::{Inline, Standard},
    },
    simplex::{
        self,
        config::{ForwardPolicy, SkipBudget, SkipPolicy},
        elector::RoundRobin,
        types::Finalization,
    },
    types::ViewDelta,
};
use commonware_cryptography::{certificate::Verifier as _, Digested, Digestible, Sha256, Signer};
use commonware_p2p::{Blocker, LimitedSender, Provider, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{
    buffer::paged::CacheRef,
    telemetry::metrics::{Counter, MetricsExt as _},
    Clock, Handle, Metrics, Spawner, Storage, Supervisor,
};
use commonware_storage::{
    archive::{prunable, Archive as _},
    translator::EightCap,
};
use commonware_utils::{NZDuration, NZUsize, NZU16, NZU64};
use logos_api::{
    block::BlockCfg,
    consensus::{consensus_namespace, Scheme},
    Block,
};
use logos_mempool::Mempool;
use logos_primitives::{Hash, Height, PrivateKey, PublicKey};
use logos_types::Genesis;
use std::{
    num::{NonZeroU64, NonZeroUsize},
    sync::Arc,
    time::Duration,
};

/// Storage tuning of the engine's journals and archives (sizes in bytes unless named otherwise).
pub mod tuning {
    /// Page size of the page caches.
    pub const PAGE_BYTES: u16 = 4_096;
    /// Pages held by the shared page cache of marshal and simplex.
    pub const PAGE_CACHE_PAGES: usize = 8_192;
    /// Read buffer when replaying a journal or archive on start.
    pub const REPLAY_BUFFER_BYTES: usize = 1 << 20;
    /// Write buffer of journals and archives.
    pub const WRITE_BUFFER_BYTES: usize = 1 << 20;
    /// Items per section of the archives (blocks, certificates) by default (see
    /// `Config::archive_items_per_section`).
    pub const ARCHIVE_ITEMS_PER_SECTION: u64 = 4_096;
    /// Blocks marshal's broadcast buffer keeps per peer.
    pub const BROADCAST_DEQUE_BLOCKS: usize = 64;
    /// Delay before a failed fetch is retried, ms.
    pub const FETCH_RETRY_DELAY_MS: u64 = 100;
    /// Views marshal keeps notarizations for.
    pub const MARSHAL_VIEW_RETENTION: u64 = 10;
    /// Views simplex keeps its state for.
    pub const SIMPLEX_VIEW_RETENTION: u64 = 256;
    /// Most blocks marshal repairs at once.
    pub const MAX_REPAIR_BLOCKS: usize = 64;
    /// Most finalized blocks delivered and not yet acknowledged by the finalizer.
    pub const MAX_PENDING_ACKS: usize = 16;
    /// A skipped leader's timeout, in multiples of the leader timeout.
    pub const SKIP_TIMEOUT_LEADER_TIMEOUTS: u64 = 4;
    /// Headroom over a maximal block in a p2p message (certificates, framing).
    pub const MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;
}

use tuning::*;

/// The marshal mailbox of a Logos node.
pub type MarshalMailbox = CoreMailbox<Scheme, Standard<Block>>;

/// Engine settings (all durations in ms).
#[derive(Clone, Debug)]
pub struct Config {
    /// This validator's key (identity, votes, proposals).
    pub signer: PrivateKey,
    /// The network's genesis.
    pub genesis: Genesis,
    /// Prefix of every storage partition this node uses.
    pub partition_prefix: String,
    /// Mempool limits.
    pub mempool: logos_mempool::Config,
    /// Minimum time between a block and its child.
    pub block_time_ms: u64,
    /// How long to wait for a leader's proposal before voting to skip the view.
    pub leader_timeout_ms: u64,
    /// How long to wait for a notarization before voting to skip the view.
    pub certification_timeout_ms: u64,
    /// How often to retry after a timeout.
    pub timeout_retry_ms: u64,
    /// How long to wait for a peer's answer when fetching missing data.
    pub fetch_timeout_ms: u64,
    /// Capacity of internal actor mailboxes.
    pub mailbox_size: usize,
    /// Check every invariant of the runtime after every finalized block (see
    /// [`crate::invariants`]; it replays every block from genesis on start, so it keeps
    /// every block whatever `retention_blocks` says).
    pub check_invariants: bool,
    /// Finalized blocks (with their certificates) and state history kept behind the tip;
    /// `None` keeps everything (an archive node). At least [`RETENTION_BLOCKS_MIN`].
    pub retention_blocks: Option<u64>,
    /// Blocks (and certificates) per archive section: pruning drops whole sections, so a
    /// pruning node holds up to this many blocks beyond its retention. Fixed for the life of
    /// the data directory.
    pub archive_items_per_section: u64,
    /// Operations per section of the state database's log (its pruning granularity; see
    /// [`crate::chain::STATE_LOG_ITEMS_PER_SECTION`]). Fixed for the life of the data
    /// directory.
    pub state_log_items_per_section: u64,
    /// Where a state-synced node's history starts ([`crate::statesync`]): marshal starts
    /// from this finalization instead of genesis, with the floor block put in its archive
    /// while the state is at the floor (the tip is restored from it). `None`: from genesis.
    /// Not with `check_invariants` (which replays every block from genesis).
    pub floor: Option<crate::statesync::Floor>,
}

/// The partition of the chain state of a node whose partitions start with `prefix`.
pub fn state_partition(prefix: &str) -> String {
    format!("{prefix}-state")
}

/// Finalized blocks a pruning node keeps by default (about 7 hours at 25 ms blocks: a
/// validator offline that long, or a full node that far behind, still catches up from peers).
pub const RETENTION_BLOCKS_DEFAULT: u64 = 1_000_000;
/// Smallest retention: peers that fell behind fetch recent blocks from here, and simplex
/// keeps `SIMPLEX_VIEW_RETENTION` views.
pub const RETENTION_BLOCKS_MIN: u64 = 1_024;

impl Config {
    /// Defaults tuned for validators on one LAN or host.
    pub fn new(signer: PrivateKey, genesis: Genesis, partition_prefix: String) -> Self {
        Self {
            signer,
            genesis,
            partition_prefix,
            mempool: logos_mempool::Config::default(),
            block_time_ms: 25,
            leader_timeout_ms: 1_000,
            certification_timeout_ms: 2_000,
            timeout_retry_ms: 1_500,
            fetch_timeout_ms: 1_000,
            mailbox_size: 1_024,
            check_invariants: false,
            retention_blocks: Some(RETENTION_BLOCKS_DEFAULT),
            archive_items_per_section: ARCHIVE_ITEMS_PER_SECTION,
            state_log_items_per_section: crate::chain::STATE_LOG_ITEMS_PER_SECTION,
            floor: None,
        }
    }
}

/// The six p2p channels of a validator (see the module docs).
pub struct Networks<S, R> {
    /// Channel 0.
    pub votes: (S, R),
    /// Channel 1.
    pub certificates: (S, R),
    /// Channel 2.
    pub resolver: (S, R),
    /// Channel 3.
    pub backfill: (S, R),
    /// Channel 4.
    pub blocks: (S, R),
    /// Channel 5.
    pub transactions: (S, R),
    /// Channel 6.
    pub dkg: (S, R),
    /// Channel 7.
    pub seeds: (S, R),
}

/// p2p channel numbers.
pub mod channels {
    /// Votes.
    pub const VOTES: u64 = 0;
    /// Certificates.
    pub const CERTIFICATES: u64 = 1;
    /// Simplex resolver.
    pub const RESOLVER: u64 = 2;
    /// Marshal backfill.
    pub const BACKFILL: u64 = 3;
    /// Block broadcast.
    pub const BLOCKS: u64 = 4;
    /// Transaction relay.
    pub const TRANSACTIONS: u64 = 5;
    /// Dealings and acknowledgements of the epochs' DKG (`crate::dkg`).
    pub const DKG: u64 = 6;
    /// Partial signatures of the block seeds (`crate::seeds`).
    pub const SEEDS: u64 = 7;
}

/// A p2p sender whose [`Recipients::All`] means the consensus peers (other than this node;
/// see [`crate::epochs`]) rather than every connected peer (see the module docs), or, made
/// with [`ToCommittees::everyone`], every connected peer.
#[derive(Clone)]
pub struct ToCommittees<S> {
    inner: S,
    /// `None`: every connected peer.
    epochs: Option<(Epochs, PublicKey)>,
}

impl<S> ToCommittees<S> {
    /// Wraps `inner`; `me` is this node's key.
    pub fn new(inner: S, epochs: &Epochs, me: &PublicKey) -> Self {
        Self {
            inner,
            epochs: Some((epochs.clone(), me.clone())),
        }
    }

    /// Wraps `inner` and sends to whom it is asked (certificates reach full nodes).
    pub fn everyone(inner: S) -> Self {
        Self {
            inner,
            epochs: None,
        }
    }
}

impl<S: LimitedSender<PublicKey = PublicKey>> LimitedSender for ToCommittees<S> {
    type PublicKey = PublicKey;
    type Checked<'a>
        = S::Checked<'a>
    where
        Self: 'a;

    fn check(
        &mut self,
        recipients: Recipients<PublicKey>,
    ) -> Result<Self::Checked<'_>, std::time::SystemTime> {
        let recipients = match (recipients, &self.epochs) {
            (Recipients::All, Some((epochs, me))) => {
                let mut peers = epochs.peers();
                peers.retain(|peer| peer != me);
                Recipients::Some(peers)
            }
            (other, _) => other,
        };
        self.inner.check(recipients)
    }
}

/// A p2p receiver for a channel only consensus peers send on (votes, certificates, simplex
/// resolver, blocks): a message from anyone else is dropped unread. Full nodes never send on
/// these channels, and each registered full node is a peer of every validator: without this,
/// a few hundred registered keys could make a node decode their messages. The sender is not
/// blocked: a node behind the chain does not know the newest committee yet, and must still
/// take its members' backfill answers on other channels.
pub struct FromCommittees<R> {
    inner: R,
    epochs: Epochs,
    dropped: Counter,
}

impl<R> FromCommittees<R> {
    /// Wraps `inner`; messages from other than `epochs`' consensus peers are dropped and
    /// counted in `dropped`.
    pub fn new(inner: R, epochs: &Epochs, dropped: Counter) -> Self {
        Self {
            inner,
            epochs: epochs.clone(),
            dropped,
        }
    }
}

impl<R: std::fmt::Debug> std::fmt::Debug for FromCommittees<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromCommittees")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<R> Receiver for FromCommittees<R>
where
    R: Receiver<PublicKey = PublicKey>,
{
    type Error = R::Error;
    type PublicKey = PublicKey;

    async fn recv(&mut self) -> Result<commonware_p2p::Message<PublicKey>, Self::Error> {
        loop {
            let (peer, message) = self.inner.recv().await?;
            if self.epochs.is_peer(&peer) {
                return Ok((peer, message));
            }
            self.dropped.inc();
            tracing::debug!(%peer, "a non-member sent on a consensus channel; dropped");
        }
    }

    fn capacity(&self) -> NonZeroUsize {
        self.inner.capacity()
    }
}

/// Largest p2p message in bytes: a block at its bound, or a DKG dealing for the largest
/// committee (for networks whose blocks are small), plus framing.
pub fn max_message_size_bytes(genesis: &Genesis) -> u32 {
    let cfg = block_cfg(genesis);
    let largest = Block::max_size_bytes(&cfg).max(crate::dkg::MESSAGE_MAX_BYTES);
    u32::try_from(largest + MESSAGE_OVERHEAD_BYTES).unwrap_or(u32::MAX)
}

/// Decoding bounds of blocks on this network.
pub fn block_cfg(genesis: &Genesis) -> BlockCfg {
    BlockCfg {
        max_transactions: genesis.params.max_block_transactions as usize,
    }
}

/// A running validator.
pub struct Node<E: Storage + Clock + Metrics + Spawner> {
    /// Shared state (chain, mempool, notifications).
    pub shared: Arc<Shared<E>>,
    /// Marshal's mailbox (finalized blocks and certificates by height or digest).
    pub marshal: MarshalMailbox,
    /// Submits transactions to the relay.
    pub relay: relay::Mailbox,
    /// The genesis block.
    pub genesis_block: Block,
    /// The consensus task (the epoch orchestrator, see [`crate::orchestrator`]).
    pub consensus: Handle<()>,
}

/// Errors starting a validator.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A full node was given a validator's key (see [`crate::full::start_full`]).
    #[error("a full node's key must not be a validator's")]
    ValidatorKeyOnFullNode,
    /// The genesis is invalid.
    #[error(transparent)]
    Genesis(#[from] logos_types::GenesisError),
    /// The chain state could not be opened.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The receipt store could not be opened.
    #[error(transparent)]
    Receipts(#[from] ReceiptStoreError),
    /// Marshal does not have the block at the state's height (storage out of step).
    #[error("no finalized block at the state's height {0}")]
    MissingTipBlock(u64),
    /// A state-synced node's floor is unusable (see [`Config::floor`]).
    #[error("state-sync floor: {0}")]
    Floor(String),
    /// The retention window is below [`RETENTION_BLOCKS_MIN`].
    #[error("retention of {0} blocks is below the minimum of {RETENTION_BLOCKS_MIN}")]
    RetentionTooShort(u64),
    /// The leader timeout leaves no room for the allowed timestamp drift plus block time, so
    /// a leader stamping its block in the future could make honest proposals miss their view.
    #[error(
        "leader timeout {leader_timeout_ms} ms must exceed the block time plus the allowed \
         timestamp drift ({required_ms} ms)"
    )]
    LeaderTimeoutTooShort {
        /// Configured leader timeout, ms.
        leader_timeout_ms: u64,
        /// Block time plus `TIMESTAMP_DRIFT_MAX_MS`, ms.
        required_ms: u64,
    },
}

/// The genesis block of `genesis`.
pub fn genesis_block(genesis: &Genesis) -> Result<Block, EngineError> {
    let validators = genesis.validator_keys()?;
    Ok(Block::genesis(
        &genesis.chain_id(),
        genesis.timestamp_ms,
        validators[0].clone(),
    ))
}

/// Configuration of a prunable archive `name` (partitions `<prefix>-<name>-pruned-…`) with the
/// engine's buffer sizes.
pub(crate) fn archive_config<C>(
    prefix: &str,
    name: &str,
    items_per_section: u64,
    page_cache: &CacheRef,
    codec_config: C,
) -> prunable::Config<EightCap, C> {
    prunable::Config {
        translator: EightCap,
        metadata_partition: format!("{prefix}-{name}-pruned-metadata"),
        key_partition: format!("{prefix}-{name}-pruned-keys"),
        key_page_cache: page_cache.clone(),
        value_partition: format!("{prefix}-{name}-pruned-values"),
        compression: None,
        codec_config,
        items_per_section: NonZeroU64::new(items_per_section).unwrap_or(NonZeroU64::MIN),
        key_write_buffer: NZUsize!(WRITE_BUFFER_BYTES),
        value_write_buffer: NZUsize!(WRITE_BUFFER_BYTES),
        replay_buffer: NZUsize!(REPLAY_BUFFER_BYTES),
    }
}

/// Starts a validator on `networks`. `peers` provides the peer set, `blocker` blocks peers
/// that misbehave. It runs consensus in each epoch whose committee holds its key and follows
/// the others as a full node does (a staking candidate not yet elected).
pub async fn start<E, S, R, P, B>(
    context: E,
    config: Config,
    networks: Networks<S, R>,
    peers: P,
    blocker: B,
) -> Result<Node<E>, EngineError>
where
    E: Spawner + Storage + Clock + Metrics + Supervisor + rand::CryptoRng + Send + Sync + 'static,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
{
    start_wrapped(context, config, networks, peers, blocker, |application| {
        application
    })
    .await
}

/// [`start`], with the [`Application`] handed to consensus through `wrap` first.
///
/// Nodes run the application as it is ([`start`]); the deterministic simulations wrap it in
/// byzantine doubles (a leader that proposes a wrong state root, an invalid transaction or a
/// future timestamp) to show that honest validators refuse such blocks and keep finalizing.
pub async fn start_wrapped<E, S, R, P, B, A, W>(
    context: E,
    config: Config,
    networks: Networks<S, R>,
    peers: P,
    blocker: B,
    wrap: W,
) -> Result<Node<E>, EngineError>
where
    E: Spawner + Storage + Clock + Metrics + Supervisor + rand::CryptoRng + Send + Sync + 'static,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
    A: commonware_consensus::Application<
        E,
        SigningScheme = Scheme,
        Context = simplex::types::Context<Hash, PublicKey>,
        Block = Block,
        Input = (),
    >,
    W: FnOnce(Application<E>) -> A,
{
    config.genesis.validate()?;
    let required_ms = config
        .block_time_ms
        .saturating_add(crate::application::TIMESTAMP_DRIFT_MAX_MS);
    if config.leader_timeout_ms <= required_ms {
        return Err(EngineError::LeaderTimeoutTooShort {
            leader_timeout_ms: config.leader_timeout_ms,
            required_ms,
        });
    }
    let Networks {
        votes,
        certificates,
        resolver,
        backfill,
        blocks,
        transactions,
        dkg: dkg_channel,
        seeds,
    } = networks;
    let base = start_base(
        &context,
        &config,
        (backfill, blocks, transactions),
        peers,
        blocker.clone(),
    )
    .await?;
    let (shared, marshal, relay, epochs) = (
        base.shared.clone(),
        base.marshal.clone(),
        base.relay.clone(),
        base.epochs.clone(),
    );
    let (page_cache, mailbox_size) = (base.page_cache.clone(), base.mailbox_size);

    // Consensus: one simplex engine per epoch whose committee holds this key.
    let application = wrap(Application::new(
        shared.clone(),
        config.signer.public_key(),
        config.block_time_ms,
    ));
    let inline = Inline::new(
        context.child("inline"),
        application,
        marshal.clone(),
        epochs.clone(),
    );
    // Faults simplex attributes become evidence transactions from this validator's account.
    let (reporter, faults) = EvidenceReporter::new(inline.clone());
    // This node's own finalize votes, kept for the vote samples' records.
    let own_votes = crate::votes::OwnVoteLog::new(config.signer.public_key(), epochs.clone());
    let reporter = crate::votes::OwnVotes::new(reporter, own_votes.clone());
    context.child("evidence").spawn({
        let (shared, relay, key) = (shared.clone(), relay.clone(), config.signer.clone());
        let epochs = epochs.clone();
        move |context| evidence::submit(context, shared, relay, key, epochs, faults)
    });
    // Its finalize votes for the chain's vote samples, so that missed votes can be told.
    context.child("votes").spawn({
        let (shared, relay, key) = (shared.clone(), relay.clone(), config.signer.clone());
        let (marshal, own) = (marshal.clone(), own_votes);
        move |_| crate::votes::record(shared, relay, marshal, key, own)
    });
    // Its part in the DKG of each next epoch's group key.
    context.child("dkg").spawn({
        let (shared, relay, key) = (shared.clone(), relay.clone(), config.signer.clone());
        let (blocker, prefix) = (blocker.clone(), config.partition_prefix.clone());
        move |context| async move {
            let chain_id = shared.chain_id();
            let opened =
                crate::secrets::Secrets::open(context.child("secrets"), &prefix, &key, chain_id)
                    .await;
            let mut dkg = crate::dkg::Dkg::new(context, key);
            match opened {
                Ok(secrets) => dkg = dkg.with_secrets(secrets),
                Err(error) => {
                    tracing::warn!(%error, "DKG secrets cannot be opened; this node acknowledges no dealing (its dealers reveal its shares) and keeps no share across a restart")
                }
            }
            dkg.run(shared, relay, dkg_channel, blocker).await
        }
    });
    // Its partial signature of each height it knows, and the seeds it recovers for proposals.
    context.child("seeds").spawn({
        let (shared, blocker) = (shared.clone(), blocker.clone());
        let (sender, receiver) = seeds;
        let me = config.signer.public_key();
        let consensus_only = FromCommittees::new(
            receiver,
            &epochs,
            context.child("seed_channel").counter(
                "non_member_messages_dropped",
                "seed messages from keys of no recent committee",
            ),
        );
        let channel = (ToCommittees::new(sender, &epochs, &me), consensus_only);
        move |context| crate::seeds::run(context, shared, channel, blocker)
    });
    let start_engine = {
        let (context, blocker, prefix) = (
            context.child("simplex"),
            blocker.clone(),
            config.partition_prefix.clone(),
        );
        let config = config.clone();
        Box::new(move |start: EngineStart<_>| {
            let epoch = start.epoch;
            let engine = simplex::Engine::new(
                context.child("engine").with_attribute("epoch", epoch),
                simplex::config::Config {
                    scheme: start.scheme,
                    elector: RoundRobin::<Sha256>::default(),
                    blocker: blocker.clone(),
                    automaton: inline.clone(),
                    relay: inline.clone(),
                    reporter: reporter.clone(),
                    strategy: Sequential,
                    partition: simplex_partition(&prefix, epoch.get()),
                    mailbox_size,
                    epoch,
                    floor: simplex::config::Floor::Genesis(start.floor),
                    replay_buffer: NZUsize!(REPLAY_BUFFER_BYTES),
                    write_buffer: NZUsize!(WRITE_BUFFER_BYTES),
                    page_cache: page_cache.clone(),
                    leader_timeout: Duration::from_millis(config.leader_timeout_ms),
                    certification_timeout: Duration::from_millis(config.certification_timeout_ms),
                    timeout_retry: Duration::from_millis(config.timeout_retry_ms),
                    view_retention: ViewDelta::new(SIMPLEX_VIEW_RETENTION),
                    skip: SkipPolicy::Enabled {
                        timeout: Duration::from_millis(
                            config
                                .leader_timeout_ms
                                .saturating_mul(SKIP_TIMEOUT_LEADER_TIMEOUTS),
                        ),
                        budget: SkipBudget::Participants,
                    },
                    fetch_timeout: NZDuration!(Duration::from_millis(config.fetch_timeout_ms)),
                    fetch_retry_delay: Duration::from_millis(FETCH_RETRY_DELAY_MS),
                    forward: ForwardPolicy::Disabled,
                    // Votes are kept until their view is pruned, not dropped once a certificate
                    // forms: a conflicting vote arriving late is still attributable evidence.
                    track_historical_votes: true,
                },
            );
            let (votes, certificates, resolver) = start.channels;
            engine.start(votes, certificates, resolver)
        }) as StartEngine<_>
    };
    Ok(start_orchestrator(
        &context,
        &config,
        base,
        blocker,
        (votes, certificates, resolver),
        Some(start_engine),
    ))
}

/// Partition of epoch `epoch`'s simplex journal (epoch 0 keeps the name it had before epochs).
pub fn simplex_partition(prefix: &str, epoch: u64) -> String {
    match epoch {
        0 => format!("{prefix}-simplex"),
        epoch => format!("{prefix}-simplex-{epoch}"),
    }
}

/// Wraps the three consensus channels (votes to the consensus peers only, certificates and
/// resolver requests as asked; each taken only from consensus peers), spawns the
/// [`Orchestrator`] over `base` (with `start_engine` on a validator) and returns the node.
pub(crate) fn start_orchestrator<E, S, R, B>(
    context: &E,
    config: &Config,
    base: Base<E>,
    blocker: B,
    (votes, certificates, resolver): ((S, R), (S, R), (S, R)),
    start_engine: Option<StartEngine<ToCommittees<S>>>,
) -> Node<E>
where
    E: Spawner + Storage + Clock + Metrics + Supervisor + rand::CryptoRng + Send + Sync + 'static,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
{
    let me = config.signer.public_key();
    let dropped = context.child("consensus_channels").counter(
        "non_member_messages_dropped",
        "messages on consensus channels from keys of no recent committee",
    );
    let only = |receiver| FromCommittees::new(receiver, &base.epochs, dropped.clone());
    let channels = (
        (ToCommittees::new(votes.0, &base.epochs, &me), only(votes.1)),
        (ToCommittees::everyone(certificates.0), only(certificates.1)),
        (ToCommittees::everyone(resolver.0), only(resolver.1)),
    );
    let orchestrator = Orchestrator::new(
        context.child("orchestrator"),
        base.shared.clone(),
        base.epochs.clone(),
        base.marshal.clone(),
        blocker,
        channels,
        OrchestratorConfig {
            start_engine,
            partition: simplex_partition,
            prefix: config.partition_prefix.clone(),
            genesis: base.genesis_block.digest(),
        },
    );
    Node {
        shared: base.shared,
        marshal: base.marshal,
        relay: base.relay,
        genesis_block: base.genesis_block,
        consensus: context.child("epochs").spawn(move |_| orchestrator.run()),
    }
}

/// What a validator and a full node share (see [`start_base`]).
pub(crate) struct Base<E: Storage + Clock + Metrics + Spawner> {
    pub(crate) shared: Arc<Shared<E>>,
    pub(crate) marshal: MarshalMailbox,
    pub(crate) relay: relay::Mailbox,
    pub(crate) genesis_block: Block,
    pub(crate) epochs: Epochs,
    pub(crate) page_cache: CacheRef,
    pub(crate) mailbox_size: NonZeroUsize,
}

/// Opens the state, receipts and mempool, learns the tip's epoch ([`Epochs`]), starts marshal
/// (backfill resolver, block broadcast, finalized archives; certificates checked against each
/// epoch's committee), the
/// finalizer that executes finalized blocks (pruning and the invariant check as configured)
/// and the transaction relay: everything but consensus.
pub(crate) async fn start_base<E, S, R, P, B>(
    context: &E,
    config: &Config,
    (backfill, blocks, transactions): ((S, R), (S, R), (S, R)),
    peers: P,
    blocker: B,
) -> Result<Base<E>, EngineError>
where
    E: Spawner + Storage + Clock + Metrics + Supervisor + rand::CryptoRng + Send + Sync + 'static,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
{
    config.genesis.validate()?;
    // An invariant check replays every block from genesis: it keeps them all.
    let retention_blocks = config.retention_blocks.filter(|_| !config.check_invariants);
    if let Some(blocks) = retention_blocks.filter(|blocks| *blocks < RETENTION_BLOCKS_MIN) {
        return Err(EngineError::RetentionTooShort(blocks));
    }
    if config.floor.is_some() && config.check_invariants {
        return Err(EngineError::Floor(
            "the invariant check replays every block from genesis, which a state-synced node \
             does not hold"
                .into(),
        ));
    }
    let me = config.signer.public_key();
    let genesis_block = genesis_block(&config.genesis)?;
    let prefix = config.partition_prefix.clone();
    let mailbox_size = NonZeroUsize::new(config.mailbox_size).unwrap_or(NonZeroUsize::MIN);
    let page_cache = CacheRef::new(NZU16!(PAGE_BYTES), NZUsize!(PAGE_CACHE_PAGES));
    let block_cfg = block_cfg(&config.genesis);

    // Chain state.
    let mut chain = ChainState::open(
        context.child("state"),
        &state_partition(&prefix),
        config.state_log_items_per_section,
        &config.genesis,
        &genesis_block,
    )
    .await?;
    chain.keep_writes(config.check_invariants);
    chain.prune_history(retention_blocks.is_some());
    let mut receipts = ReceiptStore::open(
        context.child("receipt_store"),
        &format!("{prefix}-receipts"),
        config.archive_items_per_section,
        &page_cache,
    )
    .await?;
    // A crash between an epoch's last block and its committee proof: the tip is still that
    // block, so the proof can be taken now.
    if let Some((epoch, parts)) =
        crate::chain::epoch_proof(&chain, chain.tip().height.get()).await?
    {
        if receipts.epoch(epoch).await?.is_none() {
            receipts.put_epoch(epoch, parts).await?;
            for handle in receipts.take_syncs() {
                handle
                    .await
                    .map_err(|error| ChainError::Storage(error.to_string()))?;
            }
        }
    }
    let shared = Arc::new(Shared::new(
        chain,
        receipts,
        Mempool::new(config.mempool.clone()),
        config.genesis.clone(),
    ));
    // The tip's epoch is known before any channel is read (the consensus channels take
    // messages from its committees only).
    let epochs = Epochs::new(
        consensus_namespace(&config.genesis.chain_id()),
        config.signer.clone(),
    );
    epochs.learn(&read_epoch_state(&shared).await?);
    // Blocks are disseminated by their proposer, a committee member: a full node never sends
    // one, and each would be decoded and hashed before being dropped.
    let dropped = context.child("block_channel").counter(
        "non_member_messages_dropped",
        "blocks from keys of no recent committee",
    );
    let blocks = (
        ToCommittees::new(blocks.0, &epochs, &me),
        FromCommittees::new(blocks.1, &epochs, dropped),
    );
    let transactions = (
        ToCommittees::new(transactions.0, &epochs, &me),
        transactions.1,
    );

    // Marshal: backfill resolver, block broadcast, finalized archives.
    let resolver = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: me.clone(),
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            mailbox_size,
            fetch_timeout: NZDuration!(Duration::from_millis(config.fetch_timeout_ms)),
            fetch_retry_delay: Duration::from_millis(FETCH_RETRY_DELAY_MS),
            priority_requests: false,
            priority_responses: false,
        },
        backfill,
    );
    let (broadcast_engine, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size,
            deque_size: BROADCAST_DEQUE_BLOCKS,
            priority: false,
            codec_config: block_cfg,
            peer_provider: peers.clone(),
            strategy: Sequential,
        },
    );
    broadcast_engine.start(blocks);
    let finalizations_by_height = prunable::Archive::init(
        context.child("finalizations_by_height"),
        archive_config(
            &prefix,
            "finalizations",
            config.archive_items_per_section,
            &page_cache,
            Scheme::certificate_codec_config_unbounded(),
        ),
    )
    .await
    .expect("open finalizations archive");
    let finalized_blocks = prunable::Archive::init(
        context.child("finalized_blocks"),
        archive_config(
            &prefix,
            "blocks",
            config.archive_items_per_section,
            &page_cache,
            block_cfg,
        ),
    )
    .await
    .expect("open blocks archive");
    // A state-synced node's floor block is in the archive before marshal looks for it:
    // fetching it from peers would wait a fetch timeout for each one not connected yet. Only
    // while the state is still at the floor: later, marshal holds it or pruned it.
    let state_height = shared.tip().await.height;
    let floor = config
        .floor
        .as_ref()
        .filter(|floor| floor.block.height == state_height);
    let finalized_blocks = match floor {
        Some(floor) => finalized_blocks
            .put_sync(
                floor.block.height.get(),
                floor.block.digest(),
                &Arc::new(floor.block.clone()),
            )
            .await
            .map_err(|error| EngineError::Floor(format!("store its block: {error}")))?,
        None => finalized_blocks,
    };
    let (actor, marshal, _floor) = marshal::core::Actor::init(
        context.child("marshal"),
        finalizations_by_height,
        finalized_blocks,
        marshal::Config {
            provider: epochs.clone(),
            epocher: epochs.clone(),
            start: marshal_start(config.floor.as_ref(), &genesis_block)?,
            mailbox_size,
            view_retention: ViewDelta::new(MARSHAL_VIEW_RETENTION),
            max_repair: NZUsize!(MAX_REPAIR_BLOCKS),
            max_pending_acks: NZUsize!(MAX_PENDING_ACKS),
            block_codec_config: block_cfg,
            partition_prefix: format!("{prefix}-marshal"),
            prunable_items_per_section: NZU64!(ARCHIVE_ITEMS_PER_SECTION),
            replay_buffer: NZUsize!(REPLAY_BUFFER_BYTES),
            key_write_buffer: NZUsize!(WRITE_BUFFER_BYTES),
            value_write_buffer: NZUsize!(WRITE_BUFFER_BYTES),
            page_cache: page_cache.clone(),
            strategy: Sequential,
        },
    )
    .await;

    // Marshal runs before the finalizer: its deliveries queue in the finalizer's channel while
    // the tip is restored (after a restart the state database knows only its height; the
    // block at that height, from marshal's archive, gives the digest).
    let (mut finalizer, reporter) = Finalizer::new(shared.clone(), &context.child("chain"));
    actor.start(reporter, buffer, resolver);
    let tip = restore_tip(&shared, &marshal, &genesis_block, config.floor.as_ref()).await?;
    if let Some(blocks) = retention_blocks {
        finalizer = finalizer.retain(marshal.clone(), blocks, epochs.clone());
    }
    if config.check_invariants {
        let check = InvariantCheck::new(&config.genesis, &context.child("invariants"))?
            .replay(&shared, &marshal, tip)
            .await?;
        finalizer = finalizer.check_invariants(check);
    }
    context.child("finalizer").spawn(|_| finalizer.run());

    // Transaction relay.
    let relay = Relay::start(
        context.child("relay"),
        shared.clone(),
        transactions,
        blocker.clone(),
    );

    Ok(Base {
        shared,
        marshal,
        relay,
        genesis_block,
        epochs,
        page_cache,
        mailbox_size,
    })
}

/// Stores a state-synced node's committee links ([`crate::statesync::FloorLink`]) durably in
/// the receipt store of the node whose partitions are named after `prefix` (opened with the
/// `archive_items_per_section` the node runs with, then closed), before the node starts: what
/// it serves of the committee walk below its floor (`logos_getEpochProof`, and the boundary
/// headers and certificates marshal does not hold). Links already stored are left as they are.
pub async fn store_epoch_links<E>(
    context: E,
    prefix: &str,
    archive_items_per_section: u64,
    links: &[crate::statesync::FloorLink],
) -> Result<(), EngineError>
where
    E: Storage + Metrics + Clock + Supervisor,
{
    // Within the genesis epoch there is no link: the store is not opened for nothing.
    if links.is_empty() {
        return Ok(());
    }
    let page_cache = CacheRef::new(NZU16!(PAGE_BYTES), NZUsize!(PAGE_CACHE_PAGES));
    let mut receipts = ReceiptStore::open(
        context,
        &format!("{prefix}-receipts"),
        archive_items_per_section,
        &page_cache,
    )
    .await?;
    for link in links {
        receipts.put_epoch(link.epoch, link.proof.clone()).await?;
        let header = commonware_codec::Encode::encode(&link.header).to_vec();
        let (epoch, height) = (link.epoch, link.proof.height);
        receipts
            .put_boundary(epoch, height, header, link.certificate.clone())
            .await?;
    }
    for handle in receipts.take_syncs() {
        handle
            .await
            .map_err(|error| ChainError::Storage(error.to_string()))?;
    }
    Ok(())
}

/// Marshal's start: genesis, or a state-synced node's floor.
fn marshal_start(
    floor: Option<&crate::statesync::Floor>,
    genesis_block: &Block,
) -> Result<marshal::Start<Scheme, Hash, Digested<Block>>, EngineError> {
    let Some(floor) = floor else {
        return Ok(marshal::Start::Genesis(Digested::precomputed(
            genesis_block.clone(),
            genesis_block.digest(),
        )));
    };
    let finalization = Finalization::<Scheme, Hash>::decode_cfg(
        commonware_codec::Copying(floor.finalization.as_slice()),
        &logos_types::staking::COMMITTEE_MAX,
    )
    .map_err(|error| EngineError::Floor(error.to_string()))?;
    if finalization.proposal.payload != floor.block.digest() {
        return Err(EngineError::Floor(format!(
            "the certificate does not finalize block {}",
            floor.block.height.get()
        )));
    }
    Ok(marshal::Start::Floor(finalization))
}

/// Restores the tip's digest and root from marshal's archive (or, on a state-synced node
/// whose floor block marshal does not hold yet, from the floor); returns the tip's height.
async fn restore_tip<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
    marshal: &MarshalMailbox,
    genesis_block: &Block,
    floor: Option<&crate::statesync::Floor>,
) -> Result<Height, EngineError> {
    let mut chain = shared.chain_mut().await;
    let height = chain.tip().height;
    if height == Height::zero() {
        chain.restore_tip(genesis_block);
        return Ok(height);
    }
    match marshal.get_block(marshal::Identifier::Height(height)).await {
        Some(block) => chain.restore_tip(block.inner()),
        None => match floor.filter(|floor| floor.block.height == height) {
            Some(floor) => chain.restore_tip(&floor.block),
            None => return Err(EngineError::MissingTipBlock(height.get())),
        },
    }
    Ok(height)
}
