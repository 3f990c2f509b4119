//! A full node that follows the chain through another node's RPC and executes every block
//! itself (the workload of the catalog's "Logos full node" template).
//!
//! Every poll ([`FollowerConfig::poll_ms`]) it fetches the finalized blocks above its tip (at
//! most [`BATCH_BLOCKS_MAX`] at a time, and none past the end of its state's current epoch),
//! checks that they link by parent digest to its tip, checks the simplex finalization
//! certificate of the batch's last block against the epoch's committee as its own state names
//! it (the genesis validators, then each elected committee, fixed on chain two epochs ahead
//! and only shrunk meanwhile, by a slash; this finalizes every ancestor), then executes each block on its own QMDB state
//! and refuses any whose state root differs from its own execution. The serving node is
//! trusted for nothing: a wrong block fails the link, certificate or state-root check and the
//! follower stops advancing until a correct answer comes.
//!
//! `GET /health` on [`FollowerConfig::listen`] answers `200` with
//! `{"finalized_height", "state_root", "head_seen", "synced": true}` when the follower is
//! within [`SYNC_SLACK_BLOCKS`] of the head it last saw and that poll succeeded, `503` (same
//! body, `synced: false`) otherwise.

use crate::{
    chain::{ChainError, ChainState, Executed},
    engine::{block_cfg, genesis_block},
    epochs::{epoch_state, EpochState},
};
use commonware_codec::Decode as _;
use commonware_cryptography::Digestible;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use logos_api::{
    consensus::{decode_finalization, verify_finalization},
    rpc::LogosApiClient,
    Block,
};
use logos_primitives::{format_hash, Address};
use logos_runtime::BlockContext;
use logos_types::Genesis;
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Most blocks fetched and checked per poll.
pub const BATCH_BLOCKS_MAX: u64 = 256;
/// How many blocks from a batch's end are asked for a finalization certificate (a block
/// finalized through a descendant has none of its own).
pub const CERTIFICATE_SEARCH_BLOCKS: u64 = 16;
/// How far behind the seen head the follower may be and still call itself synced, blocks.
pub const SYNC_SLACK_BLOCKS: u64 = 64;

/// Follower settings.
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// The network's genesis (its validators are the only trust anchor).
    pub genesis: Genesis,
    /// RPC endpoint of any node of the network (e.g. `http://10.88.1.1:8545`).
    pub rpc: String,
    /// Where `/health` is served.
    pub listen: SocketAddr,
    /// Time between polls, ms.
    pub poll_ms: u64,
}

/// Errors of the follower.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// RPC transport or server error.
    #[error("RPC: {0}")]
    Rpc(#[from] jsonrpsee::core::ClientError),
    /// The serving node sent something that does not check out.
    #[error("rejected from the serving node: {0}")]
    Rejected(String),
    /// The local state failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The genesis is unusable.
    #[error("genesis: {0}")]
    Genesis(String),
    /// The health endpoint could not be bound.
    #[error("bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// What `/health` reports.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Status {
    /// Height of the last executed finalized block.
    pub finalized_height: u64,
    /// State root after it.
    pub state_root: String,
    /// The serving node's finalized height at the last poll.
    pub head_seen: u64,
    /// True when within [`SYNC_SLACK_BLOCKS`] of `head_seen` and the last poll succeeded.
    pub synced: bool,
    /// The last poll's error, if it failed.
    pub last_error: Option<String>,
}

/// Runs the follower until the process ends.
pub async fn run<E: Storage + Clock + Metrics + Spawner>(
    context: E,
    config: FollowerConfig,
) -> Result<(), FollowError> {
    let genesis = &config.genesis;
    let first = genesis_block(genesis).map_err(|e| FollowError::Genesis(e.to_string()))?;
    let mut chain = ChainState::open(
        context,
        "follower-state",
        crate::chain::STATE_LOG_ITEMS_PER_SECTION,
        genesis,
        &first,
    )
    .await?;
    let rpc = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(10))
        .build(&config.rpc)?;
    let status = Arc::new(Mutex::new(Status::default()));
    serve_health(config.listen, status.clone()).await?;
    let mut restored = chain.tip().height.get() == 0;
    loop {
        let result = match restored {
            true => poll(&rpc, genesis, &mut chain, u64::MAX, &mut |_| ()).await,
            false => restore(&rpc, genesis, &mut chain).await.map(|()| {
                restored = true;
                0
            }),
        };
        update(&status, &chain, result);
        tokio::time::sleep(Duration::from_millis(config.poll_ms)).await;
    }
}

fn update<E: Storage + Clock + Metrics + Spawner>(
    status: &Mutex<Status>,
    chain: &ChainState<E>,
    result: Result<u64, FollowError>,
) {
    let mut status = status.lock().expect("status lock");
    status.finalized_height = chain.tip().height.get();
    status.state_root = format_hash(&chain.tip().state_root);
    match result {
        Ok(head) => {
            status.head_seen = status.head_seen.max(head);
            status.last_error = None;
        }
        Err(error) => {
            tracing::warn!(%error, "follow");
            status.last_error = Some(error.to_string());
        }
    }
    status.synced = status.last_error.is_none()
        && status.finalized_height + SYNC_SLACK_BLOCKS >= status.head_seen;
}

/// After a restart the store knows only its height: fetch that block and check it matches.
async fn restore<E: Storage + Clock + Metrics + Spawner>(
    rpc: &HttpClient,
    genesis: &Genesis,
    chain: &mut ChainState<E>,
) -> Result<(), FollowError> {
    let height = chain.tip().height.get();
    let block = fetch(rpc, genesis, height).await?;
    if block.state_root != chain.db_root() {
        return Err(FollowError::Rejected(format!(
            "block {height} does not carry the stored state root"
        )));
    }
    chain.restore_tip(&block);
    Ok(())
}

pub(crate) async fn fetch(
    rpc: &HttpClient,
    genesis: &Genesis,
    height: u64,
) -> Result<Block, FollowError> {
    let hex = rpc
        .get_raw_block(height)
        .await?
        .ok_or_else(|| FollowError::Rejected(format!("block {height} not served")))?;
    let bytes =
        logos_primitives::decode_hex(&hex).map_err(|e| FollowError::Rejected(e.to_string()))?;
    let block = Block::decode_cfg(
        commonware_codec::Copying(bytes.as_slice()),
        &block_cfg(genesis),
    )
    .map_err(|e| FollowError::Rejected(format!("block {height}: {e}")))?;
    if block.height.get() != height {
        return Err(FollowError::Rejected(format!(
            "asked {height}, got another height"
        )));
    }
    Ok(block)
}

/// One poll: fetch, check and execute the next batch, executing no block above `stop_at` and
/// handing each executed block's [`Executed`] to `on_executed`. Returns the head seen.
pub(crate) async fn poll<E: Storage + Clock + Metrics + Spawner>(
    rpc: &HttpClient,
    genesis: &Genesis,
    chain: &mut ChainState<E>,
    stop_at: u64,
    on_executed: &mut dyn FnMut(&Executed),
) -> Result<u64, FollowError> {
    let head = rpc.get_finalized_head().await?.height;
    let tip = chain.tip().height.get();
    if head <= tip || tip >= stop_at {
        return Ok(head);
    }
    // A batch stays within the current epoch: the next one's committee signs past its end.
    // Past `stop_at` it takes the few blocks that may carry the certificate finalizing it.
    let epochs = epoch_state(chain).await?;
    let epoch_end = epochs.current.last_height().unwrap_or(u64::MAX);
    let last = head
        .min(tip + BATCH_BLOCKS_MAX)
        .min(epoch_end)
        .min(stop_at.saturating_add(CERTIFICATE_SEARCH_BLOCKS));
    let mut blocks = Vec::with_capacity((last - tip) as usize);
    let mut parent = chain.tip().digest;
    for height in tip + 1..=last {
        let block = fetch(rpc, genesis, height).await?;
        if block.parent != parent {
            return Err(FollowError::Rejected(format!(
                "block {height} does not extend {}",
                format_hash(&parent)
            )));
        }
        parent = block.digest();
        blocks.push(block);
    }
    let certified = certified_prefix(rpc, genesis, &epochs, &blocks).await?;
    let chain_id = genesis.chain_id();
    for block in blocks[..certified]
        .iter()
        .take_while(|block| block.height.get() <= stop_at)
    {
        let context = BlockContext {
            chain_id,
            height: block.height.get(),
            author: Address::from_public_key(&block.proposer),
            params: genesis.params.clone(),
            randomness: block.randomness(),
            parent: block.parent,
        };
        // Verify first: a wrong state root is an error here, not a panic as in `finalize`.
        chain.verify(block, &context).await?;
        let executed = chain.finalize(block, &context).await?;
        on_executed(&executed);
    }
    // One fsync for the whole batch (a batch cut short by an error above stays applied in
    // memory and is committed with the next one).
    chain.commit().await?;
    Ok(head)
}

/// The length of the longest prefix of `blocks` whose last block carries a valid finalization
/// certificate of the current epoch's committee (its ancestors are final with it).
async fn certified_prefix(
    rpc: &HttpClient,
    genesis: &Genesis,
    epochs: &EpochState,
    blocks: &[Block],
) -> Result<usize, FollowError> {
    let chain_id = genesis.chain_id();
    let epoch = epochs.current.epoch.get();
    let committee = epochs
        .committee(epoch)
        .ok_or_else(|| FollowError::Genesis(format!("no committee for epoch {epoch}")))?;
    for (index, block) in blocks
        .iter()
        .enumerate()
        .rev()
        .take(CERTIFICATE_SEARCH_BLOCKS as usize)
    {
        let Some(hex) = rpc.get_finalization(block.height.get()).await? else {
            continue;
        };
        let bytes =
            logos_primitives::decode_hex(&hex).map_err(|e| FollowError::Rejected(e.to_string()))?;
        let certificate = decode_finalization(&chain_id, committee, &bytes)
            .map_err(|e| FollowError::Rejected(format!("certificate: {e}")))?;
        if certificate.proposal.round.epoch().get() != epoch
            || !verify_finalization(&chain_id, committee, &certificate, &block.digest())
        {
            return Err(FollowError::Rejected(format!(
                "finalization of block {} does not verify for epoch {epoch}",
                block.height
            )));
        }
        return Ok(index + 1);
    }
    Ok(0)
}

async fn serve_health(listen: SocketAddr, status: Arc<Mutex<Status>>) -> Result<(), FollowError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| FollowError::Bind(listen, e))?;
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let status = status.lock().expect("status lock").clone();
            async move {
                let code = match status.synced {
                    true => axum::http::StatusCode::OK,
                    false => axum::http::StatusCode::SERVICE_UNAVAILABLE,
                };
                (code, axum::Json(status))
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}
