//! State sync: a node whose data directory is empty takes the state after a recent finalized
//! block from another node instead of executing every block from genesis
//! (`logos node run --state-sync`).
//!
//! # Protocol
//! 1. The syncing node asks a serving node's RPC for a [`StateTarget`]
//!    (`logos_getStateTarget`, [`serve_target`]): the server's finalized tip `T`, the root of its
//!    state's operations log after `T` (`ops_root`, over `range_end` operations), the first
//!    operation that state needs (`range_start`, the log's sync boundary) and the QMDB
//!    `OpsRootWitness` that combines `ops_root` into `current`'s canonical root.
//! 2. It certifies the header of `T` with `T`'s own finalization certificate, against the
//!    committee of `T`'s epoch followed from the genesis validators
//!    (`logos_client::Client::certified_header`). That certificate becomes marshal's floor.
//! 3. [`verify_target`]: the target names that block, and the witness turns `ops_root` into
//!    the header's `state_root`.
//! 4. [`sync_state`]: QMDB's sync engine (`commonware_storage::qmdb::sync`) fetches the
//!    operations `[range_start, range_end)` in batches of at most [`STATE_OPERATIONS_MAX`]
//!    (`logos_getStateOperations`: [`serve_operations`] on the server, [`RpcSource`] on the
//!    syncing node) and checks each batch's range proof against `ops_root`. The database then
//!    rebuilds its activity bitmap and grafted tree from the operations; its canonical root
//!    must equal the header's `state_root` and its last commit must name height `T`.
//! 5. The node starts with marshal's floor at `T` (`marshal::Start::Floor`, see
//!    [`crate::engine::Config::floor`]): marshal delivers every block from `T` on, which the
//!    finalizer skips (`T` is already its tip) and then executes. The [`Floor`] (block `T`,
//!    fetched with `logos_getRawBlock` and checked against the certified header, and its
//!    certificate) is kept in the data directory, and block `T` is put in marshal's finalized
//!    archive before marshal starts, so marshal need not fetch it from peers the node may not
//!    be connected to yet.
//!
//! Trust: the genesis validators and the committees the chain elects after them, as for a node
//! that executes every block. A server can withhold or delay its answers (the caller bounds the
//! time, then starts from genesis) but cannot make the node take a state the chain did not
//! finalize: a forged operation fails its range proof, a forged root fails the witness or the
//! certificate.
//!
//! A state-synced node lacks the blocks, receipts and certificates below its floor (and `T`'s
//! receipts): it serves them from its floor on. What certified `T` (the committee walk from
//! genesis: each epoch's proof, the previous epoch's last header and its certificate, all
//! verified by the client) is kept ([`FloorLink`], stored in the receipt store by
//! `engine::store_epoch_links` before the floor is written), so clients and other syncing
//! nodes can walk the committees through it.
//! Validators do not state-sync: simplex starts an epoch from its first block.

use crate::{
    chain::{db_config, operation_cfg, ChainState, StateDb},
    receipts::EpochProofParts,
};
use commonware_codec::{Copying, Decode as _, DecodeExt as _, Encode as _};
use commonware_cryptography::Digestible as _;
use commonware_cryptography::Sha256;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use commonware_storage::{
    merkle::Location,
    qmdb::{
        any::ordered::variable::Operation,
        current::proof::OpsRootWitness,
        sync::{self, engine, Request, Response, Source, Target},
    },
};
use commonware_utils::{range::NonEmptyRange, NZUsize, NZU64};
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use logos_api::{
    block::{BlockCfg, BlockHeader},
    proof::StateFamily,
    rpc::{EpochProof, LogosApiClient, StateTarget, STATE_OPERATIONS_MAX},
    Block,
};
use logos_primitives::{decode_hex, format_hash, parse_hash, Hash, Height};
use std::{num::NonZeroU64, time::Duration};

/// One operation of the state's log (a key's update, deletion or a block's commit).
pub type StateOperation = Operation<StateFamily, Hash, Vec<u8>>;

/// What ties the log's root to the state root a block header carries.
pub type StateWitness = OpsRootWitness<StateFamily, Hash>;

/// One answer of `logos_getStateOperations`.
pub type StateResponse = Response<StateFamily, StateOperation, Hash>;

/// Requests [`sync_state`] keeps in flight at once: each is an HTTP connection, and a
/// provider's relay lets one environment hold 8 RPC connections
/// (`logos agent run`), one of which the caller's client keeps.
pub const OUTSTANDING_REQUESTS: usize = 4;

/// Times [`RpcSource`] asks again after a transport error (a refused or dropped connection),
/// a rate limit, a busy server or a call cut at the server's time limit, before the sync
/// fails.
pub const REQUEST_RETRIES: u32 = 5;

/// Time before the first of those attempts, ms; it doubles for each next one (100 ms to
/// 1.6 s, 3.1 s in all).
const REQUEST_RETRY_MS: u64 = 100;

/// Operations applied to the syncing log per batch.
const APPLY_BATCH_OPERATIONS: u64 = 1_024;

/// Longest [`RpcSource`] waits for one answer, ms.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Largest answer [`RpcSource`] reads, bytes: the server's response limit.
pub const RESPONSE_MAX_BYTES: u32 = 16 * 1024 * 1024;

/// Largest finalization certificate a [`Floor`] holds, bytes (a committee of 100 signatures
/// is about 6.5 KiB).
pub const FINALIZATION_MAX_BYTES: usize = 64 * 1024;

/// Errors of state sync.
#[derive(Debug, thiserror::Error)]
pub enum StateSyncError {
    /// The serving node could not be asked, or refused.
    #[error("rpc: {0}")]
    Rpc(String),
    /// An answer does not decode within its bounds.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The target does not match the certified block.
    #[error("the target does not match the certified block: {0}")]
    Mismatch(String),
    /// A request outside what the log holds (serving side).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// The operations asked for were pruned (serving side).
    #[error("pruned: {0}")]
    Pruned(String),
    /// QMDB's sync engine refused an answer or failed.
    #[error("sync: {0}")]
    Sync(String),
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(String),
}

/// The parts of a [`StateTarget`] the serving node reads from its state, under one read of it.
pub struct ServedTarget {
    /// Height of the finalized tip.
    pub height: Height,
    /// Its digest.
    pub digest: Hash,
    /// Root of the log.
    pub ops_root: Hash,
    /// The log's sync boundary.
    pub range_start: u64,
    /// The log's size.
    pub range_end: u64,
    /// Codec bytes of the [`StateWitness`].
    pub witness: Vec<u8>,
}

impl ServedTarget {
    /// The RPC form.
    pub fn to_rpc(&self) -> StateTarget {
        StateTarget {
            height: self.height.get(),
            block_hash: format_hash(&self.digest),
            ops_root: format_hash(&self.ops_root),
            range_start: self.range_start,
            range_end: self.range_end,
            witness: format!("0x{}", hex::encode(&self.witness)),
        }
    }
}

/// The state after `chain`'s finalized tip as a sync target. Errors: the database's root is
/// not the tip's (never, unless storage failed).
pub async fn serve_target<E>(chain: &ChainState<E>) -> Result<ServedTarget, StateSyncError>
where
    E: Storage + Clock + Metrics + Spawner,
{
    let db = chain.db();
    let tip = chain.tip();
    if db.root() != tip.state_root {
        return Err(StateSyncError::Storage(format!(
            "the state root {} is not the tip's {}",
            format_hash(&db.root()),
            format_hash(&tip.state_root)
        )));
    }
    let witness = db
        .ops_root_witness()
        .await
        .map_err(|error| StateSyncError::Storage(error.to_string()))?;
    Ok(ServedTarget {
        height: tip.height,
        digest: tip.digest,
        ops_root: db.ops_root(),
        range_start: *db.sync_boundary(),
        range_end: *db.bounds().end,
        witness: witness.encode().to_vec(),
    })
}

/// Operations of `chain`'s log with their proof against the log's root at `size` operations,
/// as codec bytes of a [`StateResponse`] (see `logos_getStateOperations`). Errors:
/// `max_ops` is 0 or above [`STATE_OPERATIONS_MAX`], `start ≥ size`, `size` above the log or
/// not just after a commit ([`StateSyncError::OutOfRange`]); `start` below what the log still
/// holds ([`StateSyncError::Pruned`]).
pub async fn serve_operations<E>(
    chain: &ChainState<E>,
    (size, start, max_ops): (u64, u64, u64),
    boundary: bool,
) -> Result<Vec<u8>, StateSyncError>
where
    E: Storage + Clock + Metrics + Spawner,
{
    let Some(max_ops) = NonZeroU64::new(max_ops).filter(|n| n.get() <= STATE_OPERATIONS_MAX) else {
        return Err(StateSyncError::OutOfRange(format!(
            "max_ops {max_ops} is not within 1 to {STATE_OPERATIONS_MAX}"
        )));
    };
    let db = chain.db();
    let bounds = db.bounds();
    if start >= size || size > *bounds.end {
        return Err(StateSyncError::OutOfRange(format!(
            "operations from {start} of a log of {size}: the log holds {}",
            *bounds.end
        )));
    }
    if start < *bounds.start {
        return Err(StateSyncError::Pruned(format!(
            "operation {start} is below the oldest held, {}",
            *bounds.start
        )));
    }
    let request = match boundary {
        true => Request::Boundary {
            size: Location::new(size),
            start: Location::new(start),
        },
        false => Request::Operations {
            size: Location::new(size),
            start: Location::new(start),
            max_ops,
        },
    };
    let (response, _) = db.serve(request).await.map_err(|error| match error {
        // `size − 1` is held (`start` is), so it is not a commit: the caller's mistake.
        commonware_storage::qmdb::Error::HistoricalFloorPruned(_) => {
            StateSyncError::OutOfRange(format!("size {size} is not a commit boundary of the log"))
        }
        error => StateSyncError::Storage(error.to_string()),
    })?;
    Ok(response.encode().to_vec())
}

/// Decodes the bytes of a [`StateResponse`] to a request for at most `max_ops` operations.
pub fn decode_response(bytes: &[u8], max_ops: u64) -> Result<StateResponse, StateSyncError> {
    let max_ops = usize::try_from(max_ops.min(STATE_OPERATIONS_MAX)).unwrap_or(1);
    StateResponse::decode_cfg(Copying(bytes), &(max_ops, operation_cfg()))
        .map_err(|error| StateSyncError::Malformed(error.to_string()))
}

/// A target checked against a certified header (see [`verify_target`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTarget {
    /// The header it is the state of.
    pub header: BlockHeader,
    /// Root of the log.
    pub ops_root: Hash,
    /// Operations to fetch.
    pub range: std::ops::Range<u64>,
}

/// Checks `target` against `header`, which the caller certified (a finalization certificate
/// of its epoch's committee): same height and digest, a non-empty valid range, and a witness
/// that combines `ops_root` into the header's `state_root`.
pub fn verify_target(
    header: &BlockHeader,
    target: &StateTarget,
) -> Result<VerifiedTarget, StateSyncError> {
    let mismatch = |what: String| Err(StateSyncError::Mismatch(what));
    if target.height != header.height.get() {
        return mismatch(format!(
            "height {} for block {}",
            target.height,
            header.height.get()
        ));
    }
    let digest = parse_hash(&target.block_hash)
        .map_err(|error| StateSyncError::Malformed(format!("block_hash: {error}")))?;
    if digest != header.digest() {
        return mismatch(format!(
            "block {} is not the certified one",
            target.block_hash
        ));
    }
    let ops_root = parse_hash(&target.ops_root)
        .map_err(|error| StateSyncError::Malformed(format!("ops_root: {error}")))?;
    let (start, end) = (target.range_start, target.range_end);
    if start >= end || !Location::<StateFamily>::new(end).is_valid() {
        return mismatch(format!("operations {start} to {end}"));
    }
    let witness = unhex(&target.witness)?;
    let witness = StateWitness::decode(Copying(witness.as_slice()))
        .map_err(|error| StateSyncError::Malformed(format!("witness: {error}")))?;
    if !witness.verify::<Sha256>(&ops_root, &header.state_root) {
        return mismatch(format!(
            "the witness does not combine {} into state root {}",
            target.ops_root,
            format_hash(&header.state_root)
        ));
    }
    Ok(VerifiedTarget {
        header: header.clone(),
        ops_root,
        range: start..end,
    })
}

/// Syncs the state database under `partition` (logs in sections of `log_items_per_section`,
/// as [`ChainState::open`] will open it) to `target` from `source`, then checks that its
/// canonical root is the header's `state_root` and its last commit names the header's
/// height, and makes it durable. The partition must hold no state; after an error, the caller
/// removes what the sync wrote (`logos node run` removes the state's partitions).
pub async fn sync_state<E, S>(
    context: E,
    partition: &str,
    log_items_per_section: u64,
    source: S,
    target: &VerifiedTarget,
) -> Result<(), StateSyncError>
where
    E: Storage + Clock + Metrics + Spawner,
    S: Source<Family = StateFamily, Digest = Hash, Op = StateOperation> + 'static,
{
    let range =
        NonEmptyRange::new(Location::new(target.range.start)..Location::new(target.range.end))
            .map_err(|_| StateSyncError::Mismatch("an empty range".into()))?;
    let db: StateDb<E> = sync::sync(engine::Config {
        context,
        source,
        target: Target::new(target.ops_root, range),
        max_outstanding_requests: NZUsize!(OUTSTANDING_REQUESTS),
        fetch_batch_size: NZU64!(STATE_OPERATIONS_MAX),
        apply_batch_size: NZU64!(APPLY_BATCH_OPERATIONS),
        db_config: db_config(partition, log_items_per_section),
        update_rx: None,
        finish_rx: None,
        reached_target_tx: None,
    })
    .await
    .map_err(|error| StateSyncError::Sync(error.to_string()))?;
    let header = &target.header;
    if db.root() != header.state_root {
        return Err(StateSyncError::Mismatch(format!(
            "the synced state's root {} is not {}",
            format_hash(&db.root()),
            format_hash(&header.state_root)
        )));
    }
    let metadata = db
        .get_metadata()
        .await
        .map_err(|error| StateSyncError::Storage(error.to_string()))?;
    let height = metadata.and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok());
    if height.map(u64::from_be_bytes) != Some(header.height.get()) {
        return Err(StateSyncError::Mismatch(format!(
            "the synced state is not of height {}",
            header.height.get()
        )));
    }
    db.sync()
        .await
        .map_err(|error| StateSyncError::Storage(error.to_string()))?;
    Ok(())
}

/// A [`Source`] over a node's RPC (`logos_getStateOperations`): answers are bounded by
/// [`RESPONSE_MAX_BYTES`] and [`REQUEST_TIMEOUT_MS`], decoded within the request's
/// `max_ops`, and proven by the sync engine.
pub struct RpcSource {
    rpc: HttpClient,
}

impl RpcSource {
    /// A source asking the node at `url`.
    pub fn new(url: &str) -> Result<Self, StateSyncError> {
        let rpc = HttpClientBuilder::default()
            .request_timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .max_response_size(RESPONSE_MAX_BYTES)
            .build(url)
            .map_err(|error| StateSyncError::Rpc(error.to_string()))?;
        Ok(Self { rpc })
    }
}

impl Source for RpcSource {
    type Family = StateFamily;
    type Digest = Hash;
    type Op = StateOperation;
    type Error = StateSyncError;

    async fn serve(&self, request: Request<StateFamily>) -> sync::source::Result<Self> {
        let (size, start) = (*request.size(), *request.start());
        let max_ops = request.max_ops().get();
        let boundary = matches!(request, Request::Boundary { .. });
        let mut attempt = 0;
        let hex = loop {
            match self
                .rpc
                .get_state_operations(size, start, max_ops, boundary)
                .await
            {
                Ok(hex) => break hex,
                // A lost connection, a rate limit, a busy server or a slow call is worth asking
                // again, later each time; any other answer is the server's word.
                Err(error) if retryable(&error) && attempt < REQUEST_RETRIES => {
                    let backoff_ms = REQUEST_RETRY_MS << attempt;
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                }
                Err(error) => return Err(StateSyncError::Rpc(error.to_string())),
            }
        };
        Ok((decode_response(&unhex(&hex)?, max_ops)?, None))
    }
}

/// True for the failures of a call that another try may not meet: a transport error, a rate
/// limit, a busy server, a call cut at the server's time limit.
fn retryable(error: &jsonrpsee::core::client::Error) -> bool {
    use logos_api::rpc::codes;
    match error {
        jsonrpsee::core::client::Error::Transport(_) => true,
        jsonrpsee::core::client::Error::Call(object) => matches!(
            object.code(),
            codes::RATE_LIMITED
                | codes::RATE_LIMITED_IP
                | codes::RATE_LIMITED_CONNECTION
                | codes::TIMED_OUT
                | codes::BUSY
        ),
        _ => false,
    }
}

/// Where a state-synced node's history starts: the block the state was synced to and its
/// finalization certificate (codec bytes), kept in the data directory (file [`Floor::FILE`])
/// as `block length (u32, big endian) | block | certificate`. The block is put in marshal's
/// finalized archive before marshal starts, so marshal need not fetch it from peers the node
/// may not be connected to yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Floor {
    /// The block the state was synced to.
    pub block: Block,
    /// Its finalization certificate.
    pub finalization: Vec<u8>,
}

/// One step of the committee walk below a floor: `epoch`'s committee proof and the header and
/// finalization certificate (codec bytes) of the previous epoch's last block, as the syncing
/// client verified them (`logos_client::EpochLink`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloorLink {
    /// The epoch whose committee is proven.
    pub epoch: u64,
    /// The proof, as `logos_getEpochProof` serves it from the receipt store.
    pub proof: EpochProofParts,
    /// The previous epoch's last block's header.
    pub header: BlockHeader,
    /// Its finalization certificate.
    pub certificate: Vec<u8>,
}

impl FloorLink {
    /// The link of `proof` (hex parts as served), `header` and `certificate`. Errors: a part
    /// that is not hex, a certificate of more than [`FINALIZATION_MAX_BYTES`].
    pub fn new(
        proof: &EpochProof,
        header: BlockHeader,
        certificate: Vec<u8>,
    ) -> Result<Self, StateSyncError> {
        check_certificate_len(&certificate)?;
        Ok(Self {
            epoch: proof.epoch,
            proof: EpochProofParts {
                height: proof.height,
                epoch_info: unhex(&proof.epoch_info)?,
                epoch_info_proof: unhex(&proof.epoch_info_proof)?,
                committee: unhex(&proof.committee)?,
                committee_proof: unhex(&proof.committee_proof)?,
            },
            header,
            certificate,
        })
    }
}

impl Floor {
    /// Its file name in a node's data directory.
    pub const FILE: &'static str = "state-sync-floor";

    /// The floor of `header` (which the caller certified) with `certificate`: `block` (hex of
    /// its codec form, as `logos_getRawBlock` serves it) must decode within `cfg` and have the
    /// header's digest (which commits to its transactions).
    pub fn new(
        header: &BlockHeader,
        block: &str,
        cfg: &BlockCfg,
        certificate: Vec<u8>,
    ) -> Result<Self, StateSyncError> {
        check_certificate_len(&certificate)?;
        let block = Block::decode_cfg(Copying(&unhex(block)?), cfg)
            .map_err(|error| StateSyncError::Malformed(format!("block: {error}")))?;
        if block.digest() != header.digest() {
            return Err(StateSyncError::Mismatch(format!(
                "block {} is not the certified one",
                block.height.get()
            )));
        }
        Ok(Self {
            block,
            finalization: certificate,
        })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let block = self.block.encode();
        let length = u32::try_from(block.len()).unwrap_or(u32::MAX);
        let mut bytes = length.to_be_bytes().to_vec();
        bytes.extend_from_slice(&block);
        bytes.extend_from_slice(&self.finalization);
        bytes
    }

    /// Reads the file's bytes (blocks bounded by `cfg`). Errors: a block that does not decode,
    /// a certificate missing or above [`FINALIZATION_MAX_BYTES`].
    pub fn from_bytes(bytes: &[u8], cfg: &BlockCfg) -> Result<Self, StateSyncError> {
        let malformed = |what: String| StateSyncError::Malformed(format!("floor {what}"));
        let (length, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("of fewer than 4 bytes".into()))?;
        let length = usize::try_from(u32::from_be_bytes(*length)).unwrap_or(usize::MAX);
        if length > rest.len() {
            return Err(malformed(format!(
                "block of {length} bytes, {} left",
                rest.len()
            )));
        }
        let (block, certificate) = rest.split_at(length);
        let block = Block::decode_cfg(Copying(block), cfg)
            .map_err(|error| malformed(format!("block: {error}")))?;
        check_certificate_len(certificate).map_err(|error| malformed(error.to_string()))?;
        Ok(Self {
            block,
            finalization: certificate.to_vec(),
        })
    }
}

/// A floor's certificate holds 1 to [`FINALIZATION_MAX_BYTES`] bytes.
fn check_certificate_len(certificate: &[u8]) -> Result<(), StateSyncError> {
    match certificate.len() {
        1..=FINALIZATION_MAX_BYTES => Ok(()),
        length => Err(StateSyncError::Malformed(format!(
            "certificate of {length} bytes (1 to {FINALIZATION_MAX_BYTES})"
        ))),
    }
}

fn unhex(text: &str) -> Result<Vec<u8>, StateSyncError> {
    decode_hex(text).map_err(|error| StateSyncError::Malformed(error.to_string()))
}
