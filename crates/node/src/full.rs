//! A full node: a non-voting peer that follows the chain over p2p, executes every finalized
//! block itself and serves the same JSON-RPC as a validator.
//!
//! It joins the validators' p2p network with its own key (it dials the validators; each
//! validator tracks it as a *secondary* peer, commonware p2p's tier for peers that follow
//! progress without driving it; of what validators send to all peers it receives the
//! certificates, see [`crate::engine::ValidatorsOnly`]). It runs
//! everything a validator runs but consensus ([`crate::engine::start_base`]):
//! - **finalizations**: every validator broadcasts each finalization certificate it forms
//!   on channel 1. The full node decodes each one, drops those not newer than the last it took,
//!   checks the rest against the genesis validators (a quorum of their signatures over the
//!   block digest) and hands them to marshal, which fetches the finalized block (from its
//!   broadcast buffer or by backfill) and, for a node behind, every missing ancestor: the
//!   lowest missing heights by finalization, in parallel, and by parent digest from the
//!   newest block down. A peer that sends a malformed or forged certificate is blocked (a
//!   full node whose genesis file differs from the validators' blocks them all: check the
//!   warning).
//! - **execution**: the finalizer executes each finalized block on the node's own state and
//!   refuses a block whose state root or receipts root differs from its execution (the node
//!   then stops advancing rather than serve state it did not compute), exactly as on a
//!   validator.
//! - **RPC and relay**: reads, proofs and subscriptions come from that state; transactions
//!   submitted to it are admitted into its own mempool and relayed to the validators
//!   (channel 5), which admit them with their own checks.
//!
//! Channels 0 (votes) and 2 (simplex's resolver) are registered and whatever arrives on them is
//! dropped: validators send neither to full nodes, and a message on an unregistered channel
//! would cost the connection.
//!
//! A full node starts from genesis: it catches up only while the validators still hold the
//! blocks it lacks (their `retention_blocks`, 1,000,000 by default; devnet validators archive).
//!
//! Trust: the genesis validators only. A validator that serves a wrong block fails the
//! certificate or execution check; a certificate is never taken from a peer without checking.

use crate::engine::{start_base, Base, Config, EngineError, Networks, Node};
use commonware_codec::Decode as _;
use commonware_consensus::{
    simplex::types::{Activity, Certificate},
    types::{Epoch, View},
};
use commonware_cryptography::{certificate::Verifier as _, Signer};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{
    telemetry::metrics::{Counter, MetricsExt as _},
    Clock, Metrics, Spawner, Storage, Supervisor,
};
use logos_api::consensus::{consensus_namespace, participants, Scheme};
use logos_primitives::{Hash, PublicKey};
use tracing::{debug, warn};

/// How long a full node waits by default for a validator's answer to a fetch before asking
/// another, ms (the node file's `fetch_timeout_ms` overrides it; validators wait 1,000). While
/// a node starts, the resolver also picks validators it is not connected to yet (or that have
/// not yet read its registration), whose requests are lost: each such loss stalls the catch-up
/// this long. A block of the default largest size (2,048 transactions of at most 1 KiB) arrives
/// within it on links of about 40 Mbit/s or more; slower links need a longer timeout.
pub const FETCH_TIMEOUT_MS: u64 = 500;

/// Starts a full node on `networks` (the validator's six channels; see [`crate::engine`]).
/// `config.signer` is the node's p2p identity, which must not be a validator's key (a validator
/// and a full node with one key would take each other's connections). The returned
/// [`Node`]'s `consensus` handle is the certificate follower's task.
pub async fn start_full<E, S, R, P, B>(
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
    let validators = config.genesis.validator_keys()?;
    if validators.contains(&config.signer.public_key()) {
        return Err(EngineError::ValidatorKeyOnFullNode);
    }
    let verifier = Scheme::verifier(
        &consensus_namespace(&config.genesis.chain_id()),
        participants(&validators),
    );
    let Networks {
        votes,
        certificates,
        resolver,
        backfill,
        blocks,
        transactions,
    } = networks;
    let Base {
        shared,
        marshal,
        relay,
        genesis_block,
        ..
    } = start_base(
        &context,
        &config,
        verifier.clone(),
        (backfill, blocks, transactions),
        peers,
        blocker.clone(),
    )
    .await?;
    context.child("votes").spawn(|_| drain(votes.1));
    context
        .child("simplex_resolver")
        .spawn(|_| drain(resolver.1));
    let follower_context = context.child("certificates");
    let follower = CertificateFollower::new(&follower_context, verifier, blocker);
    let reporter = marshal.clone();
    let consensus =
        follower_context.spawn(move |context| follower.run(context, certificates.1, reporter));
    Ok(Node {
        shared,
        marshal,
        relay,
        genesis_block,
        consensus,
    })
}

/// Reads and drops every message of a channel a full node has no use for.
async fn drain<R: Receiver>(mut network: R) {
    while network.recv().await.is_ok() {}
}

/// Takes finalization certificates from channel 1 (see the module docs).
struct CertificateFollower<B> {
    verifier: Scheme,
    blocker: B,
    /// The view of the newest finalization handed to marshal.
    last_view: View,
    taken: Counter,
    refused: Counter,
}

impl<B: Blocker<PublicKey = PublicKey>> CertificateFollower<B> {
    fn new(metrics: &impl Metrics, verifier: Scheme, blocker: B) -> Self {
        Self {
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

    async fn run<E, R, M>(mut self, mut rng: E, mut network: R, mut marshal: M)
    where
        E: rand::CryptoRng,
        R: Receiver<PublicKey = PublicKey>,
        M: commonware_consensus::Reporter<Activity = Activity<Scheme, Hash>>,
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
            if round.epoch() != Epoch::zero() || round.view() <= self.last_view {
                continue;
            }
            if !finalization.verify(&mut rng, &self.verifier, &Sequential) {
                self.refuse(peer, "forged finalization");
                continue;
            }
            self.last_view = round.view();
            self.taken.inc();
            debug!(view = %round.view(), "finalization taken");
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
