//! A full node: a non-voting peer that follows the chain over p2p, executes every finalized
//! block itself and serves the same JSON-RPC as a validator.
//!
//! It joins the validators' p2p network with its own key (it dials the validators; each
//! validator tracks it as a *secondary* peer, commonware p2p's tier for peers that follow
//! progress without driving it; of what validators send to all peers it receives the
//! certificates, see [`crate::engine::ToCommittees`]). It runs
//! everything a validator runs but consensus ([`crate::engine::start_base`]):
//! - **finalizations**: every committee member broadcasts each finalization certificate it
//!   forms on channel 1 (the subchannel of its epoch). The full node decodes each one, drops
//!   those not newer than the last it took, checks the rest against the epoch's committee (a
//!   quorum of their signatures over the block digest; the committee as the node's own
//!   execution of the chain names it, see [`crate::epochs`]) and hands them to marshal, which fetches the finalized block (from its
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
//! Channels 0 (votes) and 2 (simplex's resolver) are multiplexed by epoch like a validator's
//! and no subchannel of theirs is opened: whatever arrives on them is dropped (a certificate
//! of a later epoch tells the node it is behind, see [`crate::orchestrator`]).
//!
//! A full node starts from genesis: it catches up only while the validators still hold the
//! blocks it lacks (their `retention_blocks`, 1,000,000 by default; devnet validators archive).
//!
//! Trust: the genesis validators, and each committee the chain elects after them. A validator that serves a wrong block fails the
//! certificate or execution check; a certificate is never taken from a peer without checking.

use crate::engine::{start_base, start_orchestrator, Config, EngineError, Networks, Node};
use commonware_cryptography::Signer;
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_runtime::{Clock, Metrics, Spawner, Storage, Supervisor};
use logos_primitives::PublicKey;

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
/// [`Node`]'s `consensus` handle is the epoch orchestrator's task (it only follows).
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
    let Networks {
        votes,
        certificates,
        resolver,
        backfill,
        blocks,
        transactions,
        // Full nodes neither deal nor play, nor sign seeds.
        dkg: _,
        seeds: _,
    } = networks;
    let base = start_base(
        &context,
        &config,
        (backfill, blocks, transactions),
        peers,
        blocker.clone(),
    )
    .await?;
    Ok(start_orchestrator(
        &context,
        &config,
        base,
        blocker,
        (votes, certificates, resolver),
        None,
    ))
}
