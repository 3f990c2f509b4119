//! The JSON-RPC interface of a Logos node (HTTP and WebSocket on one port).
//!
//! Method names are `logos_<name>`. Amounts are decimal strings in the smallest unit; hashes,
//! keys and byte strings are `0x` hex. Errors carry the codes in [`codes`].
//!
//! | method | params | result |
//! |---|---|---|
//! | `logos_chainInfo` | | [`ChainInfo`] |
//! | `logos_getGenesis` | | the genesis TOML (check its chain id) |
//! | `logos_getEpochProof` | epoch | [`EpochProof`] of its committee, or null |
//! | `logos_submitTransaction` | hex of the signed transaction | [`Submitted`] |
//! | `logos_getAccount` | address | [`AccountState`] at the finalized head |
//! | `logos_getBlockByHeight` | height | [`BlockInfo`] or null |
//! | `logos_getBlockByHash` | hash | [`BlockInfo`] or null |
//! | `logos_getFinalizedHead` | | [`Head`] |
//! | `logos_getStorage` | hex storage key | [`StorageValue`] with proof |
//! | `logos_getFinalization` | height | hex of the finalization certificate, or null |
//! | `logos_getRawBlock` | height | hex of the finalized block's codec form, or null |
//! | `logos_getBlockHeader` | height | hex of the finalized block's [`crate::block::BlockHeader`] (208 bytes), or null |
//! | `logos_getTransaction` | transaction hash | [`TransactionLookup`] (pooled or finalized), or null |
//! | `logos_getReceipt` | transaction hash | [`ReceiptInfo`] with its inclusion proof, or null |
//! | `logos_getStateTarget` | | [`StateTarget`] of the finalized tip (for state sync), or null |
//! | `logos_getStateOperations` | size, start, max_ops, boundary | hex of a QMDB sync response (see [`LogosApiServer::get_state_operations`]) |
//! | `logos_subscribeFinalizedHeads` | | notifications `logos_finalizedHead`: [`Head`] |
//! | `logos_subscribeEvents` | | notifications `logos_event`: [`EventRecord`] |

use crate::block::Block;
use jsonrpsee::{core::SubscriptionResult, proc_macros::rpc, types::ErrorObjectOwned};
use logos_primitives::{format_hash, format_public_key, Address, Amount, ChainId};
use logos_types::{Call, Event, Receipt, Transaction};
use serde::{Deserialize, Serialize};

/// JSON-RPC error codes of the Logos API (application range, -32000 and below).
pub mod codes {
    /// The transaction bytes are not hex, do not decode, or are too large.
    pub const MALFORMED_TRANSACTION: i32 = -32001;
    /// The transaction's signature does not verify.
    pub const BAD_SIGNATURE: i32 = -32002;
    /// The transaction is for another network.
    pub const WRONG_CHAIN_ID: i32 = -32003;
    /// The nonce is below the sender's next nonce (already used).
    pub const STALE_NONCE: i32 = -32004;
    /// The sender cannot pay the fee (plus the amount it moves).
    pub const INSUFFICIENT_BALANCE: i32 = -32005;
    /// The fee is below the chain minimum.
    pub const FEE_TOO_LOW: i32 = -32006;
    /// The mempool already holds this transaction.
    pub const ALREADY_KNOWN: i32 = -32007;
    /// The mempool (or the sender's share of it) is full and the fee does not displace anything.
    pub const POOL_FULL: i32 = -32008;
    /// The nonce is too far ahead of the sender's next nonce.
    pub const NONCE_GAP: i32 = -32009;
    /// An earlier pooled nonce of the sender is a lease call whose escrow is known only when
    /// it runs; later nonces wait until it is finalized.
    pub const BEHIND_UNPRICED_CALL: i32 = -32012;
    /// A parameter is malformed (bad hex, bad address, …).
    pub const INVALID_PARAMS: i32 = -32602;
    /// The node could not serve the request (storage error, not yet started).
    pub const UNAVAILABLE: i32 = -32020;
    /// A batch has more calls than the server's `batch_max` (jsonrpsee's own code).
    pub const BATCH_TOO_LARGE: i32 = jsonrpsee::types::error::TOO_BIG_BATCH_REQUEST_CODE;
    /// The server-wide rate limit is exhausted.
    pub const RATE_LIMITED: i32 = -32029;
    /// The client's IP address is over its rate limit.
    pub const RATE_LIMITED_IP: i32 = -32030;
    /// The connection is over its rate limit.
    pub const RATE_LIMITED_CONNECTION: i32 = -32031;
    /// The call ran longer than the server's request timeout.
    pub const TIMED_OUT: i32 = -32032;
    /// The server is serving as many `logos_getStateOperations` answers as it takes at once
    /// (each can be several MiB); ask again shortly.
    pub const BUSY: i32 = -32033;
}

/// Builds an error object with `code` and `message`.
pub fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

/// What an error's `data` names: the component that refused and its error
/// (`{"module":"mempool","error":"StaleNonce"}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorData {
    /// The refusing component (`mempool` for admission, a module name for a call).
    pub module: String,
    /// The error's name.
    pub error: String,
}

/// Builds an error object with `code`, `message` and [`ErrorData`].
pub fn error_with_data(
    code: i32,
    message: impl Into<String>,
    module: &str,
    name: &str,
) -> ErrorObjectOwned {
    let data = ErrorData {
        module: module.to_string(),
        error: name.to_string(),
    };
    ErrorObjectOwned::owned(code, message.into(), Some(data))
}

/// What the node serves and which network it belongs to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainInfo {
    /// The network's chain id (hash of genesis).
    pub chain_id: ChainId,
    /// The network's name.
    pub chain_name: String,
    /// Genesis validators, `0x` hex ed25519 keys.
    pub validators: Vec<String>,
    /// Minimum fee per transaction, smallest unit.
    pub min_fee: Amount,
    /// Maximum transactions per block.
    pub max_block_transactions: u32,
    /// Providers take leases without Machine Integrity Attestation (the genesis says
    /// `unattested`: a devnet without a TPM). False on a chain that requires attestation.
    #[serde(default)]
    pub unattested: bool,
    /// The parent network of a spin-off (absent for a network started from scratch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<logos_types::genesis::GenesisParent>,
}

/// The answer to an accepted transaction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Submitted {
    /// Transaction hash.
    pub hash: String,
}

/// An account at the finalized head.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountState {
    /// The account.
    pub address: Address,
    /// Next nonce.
    pub nonce: u64,
    /// Free balance, smallest unit.
    pub balance: Amount,
    /// Finalized height the values were read at.
    pub height: u64,
    /// The nonce after the account's transactions pooled on this server (its own node's
    /// records included): what a new transaction should carry. Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_nonce: Option<u64>,
}

/// Where a transaction is (`logos_getTransaction`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransactionLookup {
    /// `pending` (in this node's mempool) or `finalized`.
    pub status: TransactionStatus,
    /// Height of the finalized block that holds it.
    pub height: Option<u64>,
    /// Digest of that block.
    pub block_hash: Option<String>,
    /// Position in that block.
    pub index: Option<u32>,
    /// The transaction.
    pub transaction: TransactionInfo,
}

/// Whether a transaction waits or is final.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    /// In the mempool of the node asked.
    Pending,
    /// In a finalized block.
    Finalized,
}

/// A receipt with what proves it (`logos_getReceipt`): `receipt_bytes` hash to leaf `index`
/// of the block's receipts tree, `proof` is its inclusion proof, and the block header at
/// `height` (whose digest a finalization certificate signs) carries the root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptInfo {
    /// The transaction's hash.
    pub transaction: String,
    /// Height of the finalized block that holds it.
    pub height: u64,
    /// Digest of that block.
    pub block_hash: String,
    /// Position in the block.
    pub index: u32,
    /// The receipt (the parsed `receipt_bytes`, so its error message is empty; a verifying
    /// client uses the bytes).
    pub receipt: Receipt,
    /// Hex of the receipt's canonical bytes ([`crate::receipt::receipt_bytes`]).
    pub receipt_bytes: String,
    /// Hex of the codec form of the inclusion proof ([`crate::receipt::receipt_proof`]).
    pub proof: String,
}

/// A transaction as JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransactionInfo {
    /// Transaction hash.
    pub hash: String,
    /// Sender address.
    pub sender: Address,
    /// Sender's key.
    pub sender_key: String,
    /// Nonce.
    pub nonce: u64,
    /// Fee, smallest unit.
    pub fee: Amount,
    /// The call.
    pub call: Call,
}

impl From<&Transaction> for TransactionInfo {
    fn from(transaction: &Transaction) -> Self {
        let payload = transaction.payload();
        Self {
            hash: format_hash(&transaction.hash()),
            sender: transaction.sender(),
            sender_key: format_public_key(&payload.sender),
            nonce: payload.nonce,
            fee: payload.fee,
            call: payload.call.clone(),
        }
    }
}

/// A block as JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockInfo {
    /// Block digest.
    pub hash: String,
    /// Parent digest.
    pub parent: String,
    /// Height.
    pub height: u64,
    /// Proposer's timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Proposer's key.
    pub proposer: String,
    /// State root after the block.
    pub state_root: String,
    /// The block's randomness ([`Block::randomness`]: `SHA-256(seed)`, or the parent digest).
    #[serde(default)]
    pub randomness: String,
    /// The block's seed, `0x` and 96 hex digits (the group's threshold BLS signature of the
    /// parent's height, module `beacon`), or null where the epoch has no group key.
    #[serde(default)]
    pub seed: Option<String>,
    /// Transactions.
    pub transactions: Vec<TransactionInfo>,
    /// Receipts, when the node still holds them (its retention window; read from disk they
    /// carry no error message, which is not committed: see [`crate::receipt`]).
    pub receipts: Option<Vec<Receipt>>,
}

impl BlockInfo {
    /// JSON form of `block` with optional receipts.
    pub fn new(block: &Block, receipts: Option<Vec<Receipt>>) -> Self {
        use commonware_cryptography::Digestible;
        Self {
            hash: format_hash(&block.digest()),
            parent: format_hash(&block.parent),
            height: block.height.get(),
            timestamp_ms: block.timestamp_ms,
            proposer: format_public_key(&block.proposer),
            state_root: format_hash(&block.state_root),
            randomness: format_hash(&block.randomness()),
            seed: block
                .seed
                .as_ref()
                .map(|seed| format!("0x{}", hex::encode(seed.0))),
            transactions: block
                .transactions
                .iter()
                .map(TransactionInfo::from)
                .collect(),
            receipts,
        }
    }
}

/// A finalized head.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    /// Height.
    pub height: u64,
    /// Block digest.
    pub hash: String,
    /// State root after the block.
    pub state_root: String,
    /// Proposer's timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Hashes of the block's transactions.
    pub transactions: Vec<String>,
}

impl Head {
    /// The head summary of `block`.
    pub fn new(block: &Block) -> Self {
        use commonware_cryptography::Digestible;
        Self {
            height: block.height.get(),
            hash: format_hash(&block.digest()),
            state_root: format_hash(&block.state_root),
            timestamp_ms: block.timestamp_ms,
            transactions: block
                .transactions
                .iter()
                .map(|transaction| format_hash(&transaction.hash()))
                .collect(),
        }
    }
}

/// A storage value with its proof against a finalized state root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StorageValue {
    /// The storage key, hex.
    pub key: String,
    /// The value, hex; null if the key holds nothing.
    pub value: Option<String>,
    /// Hex of the [`crate::proof::StateProof`] of the value or, when `value` is null, of the
    /// [`crate::proof::AbsenceProof`].
    pub proof: Option<String>,
    /// The state root the proof verifies against.
    pub state_root: String,
    /// Finalized height of that root.
    pub height: u64,
    /// Digest of the finalized block with that root.
    pub block_hash: String,
}

/// How a client learns an epoch's committee without trusting the server: the state of the
/// previous epoch's last block (`height`) holds both the epoch that starts after it and its
/// committee, proven against that block's state root. The block's header is then certified by
/// the previous epoch's committee (`logos_getBlockHeader`, `logos_getFinalization`), and so on
/// back to the genesis validators. Stored by every node as it finalizes each epoch's last
/// block.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EpochProof {
    /// The epoch whose committee this proves.
    pub epoch: u64,
    /// Height of the previous epoch's last block.
    pub height: u64,
    /// Hex of `staking::CurrentEpoch` in that block's state (the epoch starting at
    /// `height + 1`).
    pub epoch_info: String,
    /// Hex of its [`crate::proof::StateProof`].
    pub epoch_info_proof: String,
    /// Hex of `staking::Committees[epoch]` in that block's state.
    pub committee: String,
    /// Hex of its [`crate::proof::StateProof`].
    pub committee_proof: String,
}

/// Where a node starting from an empty data directory can sync its state to instead of
/// executing every block from genesis (`logos node run --state-sync`): the state after the
/// finalized block `height`, as QMDB's sync engine names it (the root of the operations log at
/// `range_end` operations, whose operations from `range_start` define the state), and the
/// witness that ties that root to the block's `state_root` (QMDB `current`'s canonical root
/// combines the log's root with its activity bitmap's). The server is trusted for nothing: the
/// syncing node certifies the block header against the committee of its epoch, checks the
/// witness against the header's `state_root`, and every operation it fetches against `ops_root`
/// (`commonware_storage::qmdb::sync`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateTarget {
    /// Height of the finalized block whose state this is; the server holds the block's own
    /// finalization certificate (`logos_getFinalization`).
    pub height: u64,
    /// Digest of that block.
    pub block_hash: String,
    /// Root of the state's operations log at `range_end` operations, hex.
    pub ops_root: String,
    /// First operation the state needs (the log's sync boundary).
    pub range_start: u64,
    /// Operations in the log after the block (exclusive end).
    pub range_end: u64,
    /// Hex of the `qmdb::current::proof::OpsRootWitness` tying `ops_root` to the block's
    /// `state_root`.
    pub witness: String,
}

/// Most operations one `logos_getStateOperations` call returns: 64 operations of at most
/// 64 KiB (a storage value) and their proof stay below the server's 16 MiB response limit in
/// hex.
pub const STATE_OPERATIONS_MAX: u64 = 64;

/// Tokens one `logos_getStateOperations` call takes from each rate-limit bucket (connection,
/// IP, server; at most the bucket's size), where any other call takes 1: its answer can be
/// about 8 MiB. A sync of 2,000 operations (32 calls, 512 tokens) fits in the default per-IP
/// second (2,000 tokens); a flood from one address gets a sixteenth of the calls it would
/// otherwise.
pub const STATE_OPERATIONS_WEIGHT: u32 = 16;

/// An event with where it happened.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventRecord {
    /// Height of the finalized block.
    pub height: u64,
    /// Digest of that block.
    pub block_hash: String,
    /// Hash of the transaction that emitted it; null for end-of-block events (lease billing).
    pub transaction: Option<String>,
    /// The event.
    pub event: Event,
}

/// A node's `GET /health` answer becomes stale after this long without a newer finalized block
/// (its tip's timestamp older than this, ms): leaders propose at least an empty block every
/// few block times, so a following node is far below it.
pub const HEALTH_STALE_MS: u64 = 10_000;

/// What a full node signs so that one account can register it on chain
/// (`logos_types::peers::Call::RegisterFullNode`): served in its [`Health`] answer, harmless to
/// anyone else (the signature names the account and address).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FullNodeRegistration {
    /// The node's p2p key.
    pub key: logos_primitives::NodeKey,
    /// The account allowed to submit the registration.
    pub owner: Address,
    /// The IP (and any port) the node's connections come from, `IP:port`.
    pub address: logos_types::peers::P2pAddress,
    /// The node key's signature over `logos_types::peers::registration_message`.
    pub signature: logos_primitives::KeySignature,
}

/// What a validator node signs so that one account can declare it a candidate
/// (`logos_types::staking::Call::Validate`): served in its [`Health`] answer, harmless to anyone
/// else (the consensus key signed the account and the p2p address, so only that account can
/// submit it, and only for that address). The consensus key never leaves the node: this is how
/// a validator leased from the sub0layer becomes its tenant's candidate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ValidatorIntent {
    /// The node's consensus (and p2p) key.
    pub consensus_key: logos_primitives::NodeKey,
    /// The account allowed to submit the intent.
    pub owner: Address,
    /// Where the node accepts p2p connections, `IP:port` (on chain, also the IP its own
    /// connections are accepted from: a leased node's come through its provider's relays, so
    /// they are let in only where that IP is the provider's p2p egress address).
    pub p2p_address: logos_types::peers::P2pAddress,
    /// The consensus key's signature over `logos_types::staking::intent_message` in
    /// `logos_types::staking::INTENT_NAMESPACE`.
    pub signature: logos_primitives::KeySignature,
}

/// `GET /health` on a node's RPC port: HTTP 200 when synced, 503 otherwise, this body either way.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// The finalized tip is younger than [`HEALTH_STALE_MS`].
    pub synced: bool,
    /// `validator` or `full`.
    pub role: String,
    /// The node's p2p key, `0x` hex.
    pub public_key: String,
    /// Height of the finalized tip.
    pub finalized_height: u64,
    /// Age of the finalized tip by this node's clock, ms (absent when its block is not held).
    pub age_ms: Option<u64>,
    /// A registration the node asks an account to submit, if configured
    /// (`logos node run --register-for`).
    pub registration: Option<FullNodeRegistration>,
    /// A validator intent the node asks an account to submit, if configured
    /// (`logos node run --role validator --validate-for`; absent from older nodes' answers).
    pub intent: Option<ValidatorIntent>,
    /// On a node that synced its state instead of executing every block from genesis
    /// (`logos node run --state-sync`), the height of the block it synced to: it holds no
    /// block, receipt or certificate below it. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_synced_at: Option<u64>,
}

/// The Logos JSON-RPC API (server and client from one definition).
#[rpc(server, client, namespace = "logos")]
pub trait LogosApi {
    /// Network identity and parameters.
    #[method(name = "chainInfo")]
    async fn chain_info(&self) -> Result<ChainInfo, ErrorObjectOwned>;

    /// The proof of `epoch`'s committee (see [`EpochProof`]), or null for epoch 0 (the
    /// genesis validators), an epoch not started yet, or one this node did not record.
    #[method(name = "getEpochProof")]
    async fn get_epoch_proof(&self, epoch: u64) -> Result<Option<EpochProof>, ErrorObjectOwned>;

    /// The network's genesis file (TOML), whose chain id is [`ChainInfo::chain_id`]: what a
    /// follower or a spin-off starts from. Check it with `Genesis::chain_id` against a chain
    /// id you trust; the answer is bounded by the server's response limit (16 MiB).
    #[method(name = "getGenesis")]
    async fn get_genesis(&self) -> Result<String, ErrorObjectOwned>;

    /// Validates a signed transaction (hex of its wire form), adds it to the mempool and
    /// relays it to the other validators.
    #[method(name = "submitTransaction")]
    async fn submit_transaction(&self, transaction: String) -> Result<Submitted, ErrorObjectOwned>;

    /// An account's nonce and balance at the finalized head.
    #[method(name = "getAccount")]
    async fn get_account(&self, address: String) -> Result<AccountState, ErrorObjectOwned>;

    /// A finalized block by height; `null` above the tip or below a pruning node's retention
    /// window.
    #[method(name = "getBlockByHeight")]
    async fn get_block_by_height(&self, height: u64)
        -> Result<Option<BlockInfo>, ErrorObjectOwned>;

    /// A finalized block by digest.
    #[method(name = "getBlockByHash")]
    async fn get_block_by_hash(&self, hash: String) -> Result<Option<BlockInfo>, ErrorObjectOwned>;

    /// The latest finalized block executed by this node.
    #[method(name = "getFinalizedHead")]
    async fn get_finalized_head(&self) -> Result<Head, ErrorObjectOwned>;

    /// A storage value with a proof against the finalized state root.
    #[method(name = "getStorage")]
    async fn get_storage(&self, key: String) -> Result<StorageValue, ErrorObjectOwned>;

    /// The finalization certificate of the block at `height`, hex of its codec form (on a
    /// state-synced node, below its floor only for epochs' last blocks).
    #[method(name = "getFinalization")]
    async fn get_finalization(&self, height: u64) -> Result<Option<String>, ErrorObjectOwned>;

    /// The finalized block at `height` in its codec form (hex), for followers that execute
    /// blocks themselves.
    #[method(name = "getRawBlock")]
    async fn get_raw_block(&self, height: u64) -> Result<Option<String>, ErrorObjectOwned>;

    /// The header of the finalized block at `height` (hex of its 208-byte codec form), from
    /// which a client recomputes the block digest that the finalization certificate signs (on
    /// a state-synced node, below its floor only for epochs' last blocks).
    #[method(name = "getBlockHeader")]
    async fn get_block_header(&self, height: u64) -> Result<Option<String>, ErrorObjectOwned>;

    /// A transaction by hash: pooled here, or where a retained finalized block holds it;
    /// `null` if neither (unknown, dropped, or pruned).
    #[method(name = "getTransaction")]
    async fn get_transaction(
        &self,
        hash: String,
    ) -> Result<Option<TransactionLookup>, ErrorObjectOwned>;

    /// The receipt of a finalized transaction with its inclusion proof under the block's
    /// `receipts_root` (see [`crate::receipt`]); `null` if no retained finalized block holds it.
    #[method(name = "getReceipt")]
    async fn get_receipt(&self, hash: String) -> Result<Option<ReceiptInfo>, ErrorObjectOwned>;

    /// Where a node can sync its state to (see [`StateTarget`]): the state after this node's
    /// finalized tip, or null while the tip has no finalization certificate of its own (one
    /// finalized through a descendant's; ask again after the next block).
    #[method(name = "getStateTarget")]
    async fn get_state_target(&self) -> Result<Option<StateTarget>, ErrorObjectOwned>;

    /// Operations of the state's log with their proof, hex of the codec form of a
    /// `commonware_storage::qmdb::sync::Response` (tag 0: operations `[start, start + n)`,
    /// `n ≤ max_ops`, proven against the log's root at `size` operations; with `boundary`
    /// (tag 1): the one operation at `start` and the pinned nodes below it). `max_ops` is at
    /// most [`STATE_OPERATIONS_MAX`]; `start < size ≤` the log's size and `size` just after a
    /// commit; a pruned `start` is [`codes::UNAVAILABLE`], anything else out of range
    /// [`codes::INVALID_PARAMS`]. Charged [`STATE_OPERATIONS_WEIGHT`] calls to the rate limits;
    /// served over HTTP only and not in a batch (`-32600`); [`codes::BUSY`] while the server
    /// builds as many such answers as it takes, overall or for this client.
    #[method(name = "getStateOperations")]
    async fn get_state_operations(
        &self,
        size: u64,
        start: u64,
        max_ops: u64,
        boundary: bool,
    ) -> Result<String, ErrorObjectOwned>;

    /// Finalized heads as they are executed.
    #[subscription(name = "subscribeFinalizedHeads" => "finalizedHead", unsubscribe = "unsubscribeFinalizedHeads", item = Head)]
    async fn subscribe_finalized_heads(&self) -> SubscriptionResult;

    /// Events of finalized blocks as they are executed.
    #[subscription(name = "subscribeEvents" => "event", unsubscribe = "unsubscribeEvents", item = EventRecord)]
    async fn subscribe_events(&self) -> SubscriptionResult;
}
