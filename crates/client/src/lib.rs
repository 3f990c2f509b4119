//! A client of a Logos node's JSON-RPC for daemons and the CLI.
//!
//! - [`Client::submit`] signs a call with a [`Wallet`] (which tracks its next nonce),
//!   [`Client::submit_and_wait`] waits for the finalized receipt and [`Client::execute`] also
//!   fails when the call failed (with the module and error the receipt names).
//! - [`Client::map`] and [`Client::value`] read typed storage items (declared in
//!   `logos-types`) at the finalized head, on the server's word.
//! - [`Client::map_proven`] takes nothing on the server's word. Its [`TrustAnchor`] (chain id
//!   and validator set) comes from the network's genesis file, never from the server. For a
//!   present value it checks the QMDB proof against a state root, then fetches that height's
//!   [`BlockHeader`] (`logos_getBlockHeader`), recomputes the block digest from it, checks the
//!   simplex finalization certificate over that digest with a quorum of the committee of the
//!   certificate's epoch, and requires the header's own `state_root` to be the proof's root.
//!   The genesis validators are epoch 0's committee; each later committee is learned by
//!   following the changes from genesis ([`Client::committee`]): the previous epoch's last
//!   block, certified by the previous committee, holds the next epoch and its committee in its
//!   state, proven against its state root (`logos_getEpochProof`). The JSON
//!   `state_root` and `block_hash` the server attaches are only hints. Absence is proven the
//!   same way, with the ordered QMDB's exclusion proof (`logos_api::proof::AbsenceProof`). A
//!   client never accepts an answer from a lower height than one it already proved (a server
//!   replaying an older state).
//! - [`tenant`]: leasing and following a lease until its environment is verified.
//! - [`keystore`]: key files on disk, owner-only.

pub mod agent;
pub mod http;
pub mod keystore;
pub mod template;
pub mod tenant;
pub mod text;

use commonware_codec::DecodeExt;
use commonware_cryptography::Signer;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use logos_api::{
    block::BlockHeader,
    consensus::{decode_finalization, finalization_epoch, verify_finalization},
    proof::{decode_absence_proof, decode_proof, verify_absence, verify_value},
    receipt::verify_receipt,
    rpc::{ChainInfo, EpochProof, LogosApiClient, ReceiptInfo, StorageValue as StoredValue},
};
use logos_primitives::{format_hash, parse_hash, Address, ChainId, Hash, PrivateKey, PublicKey};
use logos_types::{
    codec::encode, Call, CallError, Genesis, Receipt, StorageItem, StorageKey, StorageMap,
    StorageValue, TransactionPayload,
};
use std::{collections::BTreeMap, sync::Mutex, time::Duration};

/// How long [`Client::submit_and_wait`] waits for finality, ms.
pub const WAIT_TIMEOUT_MS: u64 = 60_000;
/// Blocks above a block stored without its own finalization certificate searched for one
/// that covers it through parent links ([`Client::receipt_proven`], proven reads).
pub const CERTIFIED_SEARCH_BLOCKS: u64 = 256;
/// Finalized roots remembered by [`Client::read_proven`] (oldest dropped first).
const VERIFIED_ROOTS_MAX: usize = 64;
/// How far past the finalized nonce a server's `pending_nonce` is taken.
pub const PENDING_NONCES_MAX: u64 = 256;
/// Verified committees remembered (the lowest epochs dropped first; epoch 0 is the anchor's).
pub const COMMITTEES_CACHED_MAX: usize = 64;
/// Most epochs [`Client::committee`] walks in one call (each costs four RPC calls).
pub const EPOCHS_WALKED_MAX: u64 = 100_000;
/// Most epoch links a client records ([`Client::record_epoch_links`]).
pub const EPOCH_LINKS_RECORDED_MAX: usize = 16_384;
/// Most bytes of epoch links a client records (hex as served; a link of a small committee is
/// a few KiB).
pub const EPOCH_LINKS_RECORDED_MAX_BYTES: usize = 64 * 1024 * 1024;

/// One verified step of the committee chain ([`Client::committee`]): epoch `proof.epoch`'s
/// committee proven against the state of the previous epoch's last block, that block's header
/// and its finalization certificate (codec bytes) by the previous committee. What a node that
/// did not execute those blocks (a state-synced one) keeps to serve the same walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochLink {
    /// The committee's proof, as served.
    pub proof: EpochProof,
    /// The previous epoch's last block's header.
    pub header: BlockHeader,
    /// Its finalization certificate.
    pub certificate: Vec<u8>,
}

impl EpochLink {
    fn size_bytes(&self) -> usize {
        let proof = &self.proof;
        [
            proof.epoch_info.len(),
            proof.epoch_info_proof.len(),
            proof.committee.len(),
            proof.committee_proof.len(),
            self.certificate.len(),
            std::mem::size_of::<Self>(),
        ]
        .iter()
        .fold(0, |total, part| total.saturating_add(*part))
    }
}

/// The epoch links a client walked, while asked to record them.
#[derive(Default)]
struct LinkRecorder {
    recording: bool,
    /// By epoch: a walk asked again (past the committee cache) records an epoch once.
    links: BTreeMap<u64, EpochLink>,
    size_bytes: usize,
    overflowed: bool,
}

impl LinkRecorder {
    /// Keeps `link` while recording and within [`EPOCH_LINKS_RECORDED_MAX`] and
    /// [`EPOCH_LINKS_RECORDED_MAX_BYTES`]; past them, drops every link (a partial walk is of
    /// no use to serve).
    fn push(&mut self, link: EpochLink) {
        if !self.recording || self.overflowed || self.links.contains_key(&link.proof.epoch) {
            return;
        }
        let size_bytes = self.size_bytes.saturating_add(link.size_bytes());
        if self.links.len() >= EPOCH_LINKS_RECORDED_MAX
            || size_bytes > EPOCH_LINKS_RECORDED_MAX_BYTES
        {
            self.overflowed = true;
            self.links = BTreeMap::new();
            return;
        }
        self.size_bytes = size_bytes;
        self.links.insert(link.proof.epoch, link);
    }
}

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The RPC call failed (transport, server error or rejection).
    #[error("RPC: {0}")]
    Rpc(#[from] jsonrpsee::core::ClientError),
    /// The server answered something malformed.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// A proof or certificate did not verify.
    #[error("not proven: {0}")]
    NotProven(String),
    /// The transaction was not finalized in time.
    #[error("transaction {0} not finalized within {WAIT_TIMEOUT_MS} ms")]
    Timeout(String),
    /// The transaction was finalized but its call failed.
    #[error("call failed at height {height}: {error}")]
    CallFailed {
        /// Height of its block.
        height: u64,
        /// The module and error that refused it.
        error: CallError,
    },
    /// A proven read was asked of a client without a trust anchor.
    #[error(
        "proven reads need the network's genesis file (pass --genesis FILE or set \
         LOGOS_GENESIS; a devnet writes <dir>/genesis.toml)"
    )]
    NoTrustAnchor,
    /// The server serves another network than the trusted genesis defines.
    #[error("the node serves chain {served}, the trusted genesis defines {trusted}")]
    WrongChain {
        /// Chain id the server reports.
        served: String,
        /// Chain id of the trusted genesis.
        trusted: String,
    },
    /// The chain does not hold what was expected (e.g. an event of a successful call).
    #[error("{0}")]
    Missing(String),
    /// The genesis file to trust could not be read.
    #[error("genesis file {path}: {reason}")]
    Genesis {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// Another transaction from the same account took the nonce: this one was not included
    /// and never will be. The client does not resubmit by itself (it cannot prove the
    /// transaction absent, and a lying server would have it execute twice).
    #[error(
        "nonce {nonce} of this account was used by another transaction; {hash} was not \
         included: another process signs with this key (a validator's node records its votes \
         from its account), check the account and submit again"
    )]
    Displaced {
        /// The nonce.
        nonce: u64,
        /// The displaced transaction.
        hash: String,
    },
}

/// The first event of `receipt` that `pick` recognizes (named `name` in the error).
pub fn find_event<T>(
    receipt: &Receipt,
    name: &str,
    pick: impl Fn(&logos_types::Event) -> Option<T>,
) -> Result<T, ClientError> {
    receipt
        .events
        .iter()
        .find_map(pick)
        .ok_or_else(|| ClientError::Missing(format!("no {name} event")))
}

/// `receipt` if its call succeeded.
fn check(receipt: Receipt, height: u64) -> Result<(Receipt, u64), ClientError> {
    match receipt.error {
        None if receipt.success => Ok((receipt, height)),
        error => Err(ClientError::CallFailed {
            height,
            error: error.map(|error| *error).unwrap_or_else(|| CallError {
                module: "runtime".into(),
                error: "Unknown".into(),
                index: [u8::MAX, u8::MAX],
                message: "failed without an error".into(),
            }),
        }),
    }
}

fn malformed(error: impl std::fmt::Display) -> ClientError {
    ClientError::Malformed(error.to_string())
}

fn unhex(text: &str) -> Result<Vec<u8>, ClientError> {
    logos_primitives::decode_hex(text).map_err(malformed)
}

fn unlinked(height: u64) -> ClientError {
    ClientError::NotProven(format!(
        "block {height} is not an ancestor of the certified block above it"
    ))
}

/// A receipt proven against a finalized block ([`Client::receipt_proven`]).
#[derive(Clone, Debug)]
pub struct ProvenReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// Height of the finalized block that holds it.
    pub height: u64,
    /// That block's digest.
    pub block_hash: Hash,
    /// Position in the block.
    pub index: u32,
}

/// A signing key and its next nonce (learned from the chain on first use).
pub struct Wallet {
    key: PrivateKey,
    next_nonce: Mutex<Option<u64>>,
}

impl Wallet {
    /// A wallet for `key`.
    pub fn new(key: PrivateKey) -> Self {
        Self {
            key,
            next_nonce: Mutex::new(None),
        }
    }

    /// The account address.
    pub fn address(&self) -> Address {
        Address::from_public_key(&self.key.public_key())
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// Signs `message` under `namespace`.
    pub fn sign(&self, namespace: &[u8], message: &[u8]) -> logos_primitives::Signature {
        self.key.sign(namespace, message)
    }

    /// Forgets the nonce, so the next submission reads it from the chain again.
    pub fn reset_nonce(&self) {
        *self.next_nonce.lock().expect("nonce lock") = None;
    }
}

/// What a client trusts instead of the server for proven reads: the network's chain id (the
/// namespace of its certificates) and its validator set, taken from the genesis file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustAnchor {
    /// The network's chain id (hash of its genesis).
    pub chain_id: ChainId,
    /// The validators whose quorum signs finalizations (epoch 0's committee).
    pub validators: Vec<PublicKey>,
    /// Length of epoch 0 (heights 1 to this), blocks.
    pub first_epoch_length_blocks: u64,
}

impl TrustAnchor {
    /// The anchor of the network `genesis` defines. Errors: a malformed validator key.
    pub fn from_genesis(genesis: &Genesis) -> Result<Self, ClientError> {
        Ok(Self {
            chain_id: genesis.chain_id(),
            validators: genesis.validator_keys().map_err(malformed)?,
            first_epoch_length_blocks: genesis.params.staking_config().epoch_length_blocks,
        })
    }
}

/// A verified epoch: its committee's consensus keys and the heights it spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownEpoch {
    /// The committee's consensus keys.
    pub committee: Vec<PublicKey>,
    /// Its first height.
    pub start_height: u64,
    /// Its length, blocks.
    pub length_blocks: u64,
}

impl KnownEpoch {
    /// Its last height (`u64::MAX` on overflow).
    pub fn last_height(&self) -> u64 {
        self.start_height
            .saturating_add(self.length_blocks)
            .saturating_sub(1)
    }

    /// True if `height` is one of its blocks.
    pub fn spans(&self, height: u64) -> bool {
        (self.start_height..=self.last_height()).contains(&height)
    }
}

/// A connection to one node.
pub struct Client {
    rpc: HttpClient,
    info: ChainInfo,
    anchor: Option<TrustAnchor>,
    /// State roots already checked against a finalization, by height.
    verified: Mutex<BTreeMap<u64, Hash>>,
    /// The highest height a proven read was answered at: an answer from a lower height (a
    /// server replaying an older state) is refused.
    highest: Mutex<u64>,
    /// Committees verified by following the changes from genesis, by epoch (epoch 0 is the
    /// anchor's validators, never stored).
    committees: Mutex<BTreeMap<u64, KnownEpoch>>,
    /// Links walked while recording ([`Self::record_epoch_links`]).
    links: Mutex<LinkRecorder>,
}

impl Client {
    /// Connects to `url` for submissions and reads on the server's word; proven reads fail
    /// with [`ClientError::NoTrustAnchor`] until [`Self::trust`] gives an anchor.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        let rpc = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(url)?;
        let info = rpc.chain_info().await?;
        Ok(Self {
            rpc,
            info,
            anchor: None,
            verified: Mutex::new(BTreeMap::new()),
            highest: Mutex::new(0),
            committees: Mutex::new(BTreeMap::new()),
            links: Mutex::new(LinkRecorder::default()),
        })
    }

    /// From now on, every committee link this client verifies while walking
    /// ([`Self::committee`]) is kept, up to [`EPOCH_LINKS_RECORDED_MAX`] links and
    /// [`EPOCH_LINKS_RECORDED_MAX_BYTES`].
    pub fn record_epoch_links(&self) {
        let mut recorder = self.links.lock().expect("links lock");
        *recorder = LinkRecorder {
            recording: true,
            ..LinkRecorder::default()
        };
    }

    /// The links recorded since [`Self::record_epoch_links`], by epoch, and stops recording;
    /// `None` if they went past the bounds (none are kept then) or nothing was recording.
    pub fn take_epoch_links(&self) -> Option<Vec<EpochLink>> {
        let recorder = std::mem::take(&mut *self.links.lock().expect("links lock"));
        (recorder.recording && !recorder.overflowed).then(|| recorder.links.into_values().collect())
    }

    fn record_link(&self, link: EpochLink) {
        self.links.lock().expect("links lock").push(link);
    }

    /// Connects to `url` and trusts `genesis` for proven reads (see [`Self::trust`]).
    pub async fn connect_trusted(url: &str, genesis: &Genesis) -> Result<Self, ClientError> {
        Self::connect(url)
            .await?
            .trust(TrustAnchor::from_genesis(genesis)?)
    }

    /// Connects to `url`, trusting the genesis file at `genesis` for proven reads when one is
    /// given ([`Self::connect_trusted`]), else trusting nothing ([`Self::connect`]).
    pub async fn connect_with(
        url: &str,
        genesis: Option<&std::path::Path>,
    ) -> Result<Self, ClientError> {
        let Some(path) = genesis else {
            return Self::connect(url).await;
        };
        let genesis = Genesis::load(path).map_err(|error| ClientError::Genesis {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        Self::connect_trusted(url, &genesis).await
    }

    /// Uses `anchor` for proven reads. Errors: the server reports another chain id
    /// ([`ClientError::WrongChain`]).
    pub fn trust(mut self, anchor: TrustAnchor) -> Result<Self, ClientError> {
        if anchor.chain_id != self.info.chain_id {
            return Err(ClientError::WrongChain {
                served: self.info.chain_id.to_string(),
                trusted: anchor.chain_id.to_string(),
            });
        }
        self.anchor = Some(anchor);
        Ok(self)
    }

    /// The raw RPC client.
    pub fn rpc(&self) -> &HttpClient {
        &self.rpc
    }

    /// Network identity and parameters.
    pub fn info(&self) -> &ChainInfo {
        &self.info
    }

    /// Signs `call` from `wallet` with its next nonce and the minimum fee and submits it;
    /// returns the transaction hash. A stale nonce is refreshed once.
    pub async fn submit(&self, wallet: &Wallet, call: Call) -> Result<(String, u64), ClientError> {
        for attempt in 0..2 {
            let nonce = self.next_nonce(wallet).await?;
            let transaction = TransactionPayload {
                chain_id: self.info.chain_id,
                sender: wallet.key.public_key(),
                nonce,
                fee: self.info.min_fee,
                call: call.clone(),
            }
            .sign(&wallet.key);
            let hex = format!("0x{}", hex::encode(encode(&transaction)));
            match self.rpc.submit_transaction(hex).await {
                Ok(submitted) => {
                    *wallet.next_nonce.lock().expect("nonce lock") = Some(nonce + 1);
                    return Ok((submitted.hash, nonce));
                }
                Err(error) if attempt == 0 && error.to_string().contains("nonce") => {
                    wallet.reset_nonce();
                }
                Err(error) => return Err(error.into()),
            }
        }
        unreachable!("the loop returns")
    }

    async fn next_nonce(&self, wallet: &Wallet) -> Result<u64, ClientError> {
        if let Some(nonce) = *wallet.next_nonce.lock().expect("nonce lock") {
            return Ok(nonce);
        }
        let account = self.rpc.get_account(wallet.address().to_string()).await?;
        // After what the server already pools for the account (a validator's node records its
        // votes from the validator's account); a server cannot push it far ahead.
        Ok(account.pending_nonce.unwrap_or(account.nonce).clamp(
            account.nonce,
            account.nonce.saturating_add(PENDING_NONCES_MAX),
        ))
    }

    /// Submits `call` and waits until it is finalized; returns its receipt (which says whether
    /// the call succeeded) and the height of its block.
    pub async fn submit_and_wait(
        &self,
        wallet: &Wallet,
        call: Call,
    ) -> Result<(Receipt, u64), ClientError> {
        let start = self.rpc.get_finalized_head().await?.height;
        let (hash, nonce) = self.submit(wallet, call).await?;
        self.wait(&wallet.address(), &hash, nonce, start).await
    }

    /// Waits until transaction `hash` (nonce `nonce` of `sender`, submitted when the head was
    /// at `start`) is finalized, and finds its receipt.
    pub async fn wait(
        &self,
        sender: &Address,
        hash: &str,
        nonce: u64,
        start: u64,
    ) -> Result<(Receipt, u64), ClientError> {
        let mut scanned = start;
        for _ in 0..WAIT_TIMEOUT_MS / 50 {
            let account = self.rpc.get_account(sender.to_string()).await?;
            while scanned < account.height {
                scanned += 1;
                if let Some(found) = self.receipt_in(scanned, hash).await? {
                    return Ok((found, scanned));
                }
            }
            if account.nonce > nonce && scanned >= account.height {
                return Err(ClientError::Displaced {
                    nonce,
                    hash: hash.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ClientError::Timeout(hash.to_string()))
    }

    async fn receipt_in(&self, height: u64, hash: &str) -> Result<Option<Receipt>, ClientError> {
        // Heights up to the account's are finalized: a block the server does not serve is not
        // evidence that the transaction is absent (it could be displaced only in a block seen).
        let Some(block) = self.rpc.get_block_by_height(height).await? else {
            return Err(malformed(format!("finalized block {height} not served")));
        };
        if !block.transactions.iter().any(|tx| tx.hash == hash) {
            return Ok(None);
        }
        let receipts = block
            .receipts
            .ok_or_else(|| malformed(format!("block {height} served without receipts")))?;
        let receipt = receipts
            .into_iter()
            .find(|receipt| logos_primitives::format_hash(&receipt.transaction) == hash)
            .ok_or_else(|| malformed(format!("no receipt for {hash} in block {height}")))?;
        Ok(Some(receipt))
    }

    /// Submits `call` from `wallet`, waits for finality and fails if the call failed.
    pub async fn execute(
        &self,
        wallet: &Wallet,
        call: Call,
    ) -> Result<(Receipt, u64), ClientError> {
        let (receipt, height) = self.submit_and_wait(wallet, call).await?;
        check(receipt, height)
    }

    /// Registers `owner`'s machine as a provider with `call` (a `RegisterProvider`); returns
    /// the new provider's id and the height.
    pub async fn register_provider(
        &self,
        owner: &Wallet,
        call: logos_types::dvci::Call,
    ) -> Result<(logos_types::dvci::ProviderId, u64), ClientError> {
        use logos_types::{dvci, Event};
        let (receipt, height) = self.execute(owner, Call::Dvci(call)).await?;
        let provider = find_event(&receipt, "ProviderRegistered", |event| match event {
            Event::Dvci(dvci::Event::ProviderRegistered { provider, .. }) => Some(*provider),
            _ => None,
        })?;
        Ok((provider, height))
    }

    /// Submits `calls` from `wallet` back to back (consecutive nonces), then waits until each
    /// is finalized; fails if any call failed.
    pub async fn execute_all(
        &self,
        wallet: &Wallet,
        calls: Vec<Call>,
    ) -> Result<Vec<(Receipt, u64)>, ClientError> {
        let start = self.head_height().await?;
        let mut submitted = Vec::with_capacity(calls.len());
        for call in calls {
            submitted.push(self.submit(wallet, call).await?);
        }
        let mut receipts = Vec::with_capacity(submitted.len());
        for (hash, nonce) in submitted {
            let (receipt, height) = self.wait(&wallet.address(), &hash, nonce, start).await?;
            receipts.push(check(receipt, height)?);
        }
        Ok(receipts)
    }

    /// The finalized head's height.
    pub async fn head_height(&self) -> Result<u64, ClientError> {
        Ok(self.rpc.get_finalized_head().await?.height)
    }

    async fn storage(&self, key: &StorageKey) -> Result<StoredValue, ClientError> {
        let key = format!("0x{}", hex::encode(key.as_bytes()));
        Ok(self.rpc.get_storage(key).await?)
    }

    /// The raw bytes at `key` in the finalized state (not proven) and its height.
    pub async fn read_raw(&self, key: &StorageKey) -> Result<(Option<Vec<u8>>, u64), ClientError> {
        let storage = self.storage(key).await?;
        let value = storage.value.as_deref().map(unhex).transpose()?;
        Ok((value, storage.height))
    }

    async fn read_item<I: StorageItem>(
        &self,
        key: &StorageKey,
    ) -> Result<(Option<I::Value>, u64), ClientError> {
        let (bytes, height) = self.read_raw(key).await?;
        let value = bytes
            .map(|bytes| I::decode_value(key, &bytes).map_err(malformed))
            .transpose()?;
        Ok((value, height))
    }

    /// The value of map item `I` under `key` in the finalized state (not proven), and the
    /// height read at.
    pub async fn map<I: StorageMap>(
        &self,
        key: &I::Key,
    ) -> Result<(Option<I::Value>, u64), ClientError> {
        self.read_item::<I>(&I::key(key)).await
    }

    /// The value of item `I` in the finalized state (its default while absent; not proven),
    /// and the height read at.
    pub async fn value<I: StorageValue>(&self) -> Result<(I::Value, u64), ClientError> {
        let (value, height) = self.read_item::<I>(&I::key()).await?;
        Ok((value.unwrap_or_else(I::default_value), height))
    }

    /// Like [`Self::map`], with the value, or its absence (`None`), proven (see the crate
    /// docs). Errors: [`ClientError::NoTrustAnchor`], [`ClientError::NotProven`] (with what
    /// failed: the value or absence proof, the certificate, the header's root, a stale height).
    pub async fn map_proven<I: StorageMap>(
        &self,
        key: &I::Key,
    ) -> Result<(Option<I::Value>, u64), ClientError> {
        let key = I::key(key);
        let (value, height) = self.proven_bytes(&key).await?;
        let decoded = value
            .map(|value| I::decode_value(&key, &value).map_err(malformed))
            .transpose()?;
        Ok((decoded, height))
    }

    /// True if this client proves what it reads against a trust anchor (a genesis).
    pub fn is_trusted(&self) -> bool {
        self.anchor.is_some()
    }

    /// [`Self::map_proven`] when this client is trusted, else [`Self::map`]: what a caller
    /// decides on (what to pay for, what to close) is proven whenever it can be.
    pub async fn map_checked<I: StorageMap>(
        &self,
        key: &I::Key,
    ) -> Result<(Option<I::Value>, u64), ClientError> {
        match self.is_trusted() {
            true => self.map_proven::<I>(key).await,
            false => self.map::<I>(key).await,
        }
    }

    /// [`Self::value_proven`] when this client is trusted, else [`Self::value`].
    pub async fn value_checked<I: StorageValue>(&self) -> Result<(I::Value, u64), ClientError> {
        match self.is_trusted() {
            true => self.value_proven::<I>().await,
            false => self.value::<I>().await,
        }
    }

    /// Like [`Self::value`], proven (its default when proven absent). Errors: those of
    /// [`Self::map_proven`].
    pub async fn value_proven<I: StorageValue>(&self) -> Result<(I::Value, u64), ClientError> {
        let key = I::key();
        let (value, height) = self.proven_bytes(&key).await?;
        let decoded = value
            .map(|value| I::decode_value(&key, &value).map_err(malformed))
            .transpose()?;
        Ok((decoded.unwrap_or_else(I::default_value), height))
    }

    /// The bytes at `key`, checked against a finalized block (see the crate docs), `None` when
    /// it is proven to hold nothing; and the height read at.
    async fn proven_bytes(&self, key: &StorageKey) -> Result<(Option<Vec<u8>>, u64), ClientError> {
        if self.anchor.is_none() {
            return Err(ClientError::NoTrustAnchor);
        }
        let storage = self.storage(key).await?;
        let highest = *self.highest.lock().expect("height lock");
        if storage.height < highest {
            return Err(ClientError::NotProven(format!(
                "stale answer: height {} is below height {highest} already proven",
                storage.height
            )));
        }
        let root = parse_hash(&storage.state_root).map_err(malformed)?;
        let proof = unhex(storage.proof.as_deref().ok_or_else(|| {
            ClientError::NotProven(format!("no proof of {}", hex::encode(key.as_bytes())))
        })?)?;
        let value = match &storage.value {
            Some(value) => {
                let value = unhex(value)?;
                let proof = decode_proof(&proof).map_err(malformed)?;
                if !verify_value(key, &value, &proof, &root) {
                    return Err(ClientError::NotProven(format!(
                        "value of {} against root {}",
                        hex::encode(key.as_bytes()),
                        storage.state_root
                    )));
                }
                Some(value)
            }
            None => {
                let proof = decode_absence_proof(&proof).map_err(malformed)?;
                if !verify_absence(key, &proof, &root) {
                    return Err(ClientError::NotProven(format!(
                        "absence of {} against root {}",
                        hex::encode(key.as_bytes()),
                        storage.state_root
                    )));
                }
                None
            }
        };
        self.verify_root(storage.height, &root).await?;
        let mut highest = self.highest.lock().expect("height lock");
        *highest = (*highest).max(storage.height);
        Ok((value, storage.height))
    }

    /// Checks that `root` is the state root of the block finalized at `height`: the header
    /// is fetched and its digest recomputed here, the certificate must sign that digest with
    /// a quorum of the anchor's validators, and the header must carry `root`.
    async fn verify_root(&self, height: u64, root: &Hash) -> Result<(), ClientError> {
        if self.anchor.is_none() {
            return Err(ClientError::NoTrustAnchor);
        }
        if self.verified.lock().expect("roots lock").get(&height) == Some(root) {
            return Ok(());
        }
        let header = self.verified_header(height).await?;
        if header.state_root != *root {
            return Err(ClientError::NotProven(format!(
                "the proof is against state root {}, but finalized block {height} carries {}",
                format_hash(root),
                format_hash(&header.state_root)
            )));
        }
        let mut verified = self.verified.lock().expect("roots lock");
        verified.insert(height, *root);
        while verified.len() > VERIFIED_ROOTS_MAX {
            verified.pop_first();
        }
        Ok(())
    }

    /// The header of the block finalized at `height`: its digest is recomputed here and a
    /// quorum of the anchor's validators must sign it in a finalization certificate, either
    /// its own or, for a block stored without one (marshal keeps some repaired blocks so), the
    /// certificate of the nearest of the [`CERTIFIED_SEARCH_BLOCKS`] blocks above it, linked
    /// back to it by the headers' parent digests.
    async fn verified_header(&self, height: u64) -> Result<BlockHeader, ClientError> {
        let header = self.header(height).await?;
        for certified in height..=height.saturating_add(CERTIFIED_SEARCH_BLOCKS) {
            let above = match certified == height {
                true => header.clone(),
                false => self.header(certified).await?,
            };
            if self.certify(&above).await? {
                return self.link_down(header, above).await;
            }
        }
        Err(ClientError::NotProven(format!(
            "no finalization for {height} or the {CERTIFIED_SEARCH_BLOCKS} blocks above it"
        )))
    }

    /// `header` if the chain of parent digests from `certified` down reaches it.
    async fn link_down(
        &self,
        header: BlockHeader,
        certified: BlockHeader,
    ) -> Result<BlockHeader, ClientError> {
        let mut expected_parent = certified.parent;
        let mut below = certified.height.get();
        while below > header.height.get() + 1 {
            below -= 1;
            let step = self.header(below).await?;
            if step.digest() != expected_parent {
                return Err(unlinked(below));
            }
            expected_parent = step.parent;
        }
        if certified.height != header.height && header.digest() != expected_parent {
            return Err(unlinked(header.height.get()));
        }
        Ok(header)
    }

    /// The header of the block at `height` as served (not yet verified).
    async fn header(&self, height: u64) -> Result<BlockHeader, ClientError> {
        let header = self
            .rpc
            .get_block_header(height)
            .await?
            .ok_or_else(|| ClientError::NotProven(format!("block {height} not served")))?;
        let header = BlockHeader::decode(commonware_codec::Copying(unhex(&header)?.as_slice()))
            .map_err(malformed)?;
        if header.height.get() != height {
            return Err(ClientError::NotProven(format!(
                "asked for block {height}, the server sent block {}",
                header.height.get()
            )));
        }
        Ok(header)
    }

    /// The header of the block finalized at `height` with its own finalization certificate
    /// (codec bytes), signed by a quorum of the committee of the certificate's epoch, which
    /// must span `height` (committees followed from the trust anchor, see [`Self::committee`]);
    /// `None` if the server has no certificate of that height (a block finalized through a
    /// descendant's). What a state-syncing node takes as its floor
    /// (`logos_node::statesync`). Errors: the server lacks the header, or the certificate does
    /// not sign it ([`ClientError::NotProven`]).
    pub async fn certified_header(
        &self,
        height: u64,
    ) -> Result<Option<(BlockHeader, Vec<u8>)>, ClientError> {
        let header = self.header(height).await?;
        let Some(certificate) = self.rpc.get_finalization(height).await? else {
            return Ok(None);
        };
        let bytes = unhex(&certificate)?;
        self.check_own_certificate(&header, &bytes).await?;
        Ok(Some((header, bytes)))
    }

    /// True if a finalization certificate signed by a quorum of the anchor's validators covers
    /// `header`'s digest; false if the server has no certificate at its height; an error if the
    /// certificate it serves does not sign that digest.
    async fn certify(&self, header: &BlockHeader) -> Result<bool, ClientError> {
        let height = header.height.get();
        let Some(certificate) = self.rpc.get_finalization(height).await? else {
            return Ok(false);
        };
        self.check_own_certificate(header, &unhex(&certificate)?)
            .await?;
        Ok(true)
    }

    /// Checks that `bytes` is a finalization certificate of an epoch spanning `header`'s
    /// height, signing its digest with a quorum of that epoch's committee.
    async fn check_own_certificate(
        &self,
        header: &BlockHeader,
        bytes: &[u8],
    ) -> Result<(), ClientError> {
        let height = header.height.get();
        let epoch = finalization_epoch(bytes)
            .map_err(|error| ClientError::NotProven(format!("certificate: {error}")))?;
        let known = self.committee(epoch).await?;
        // A committee signs only its own epoch's blocks: a retired one (with nothing left to
        // slash) cannot vouch for a later height.
        if !known.spans(height) {
            return Err(ClientError::NotProven(format!(
                "the certificate of height {height} is of epoch {epoch}, which spans heights \
                 {} to {}",
                known.start_height,
                known.last_height()
            )));
        }
        self.check_certificate(header, bytes, epoch, &known.committee)
    }

    /// Checks that `bytes` is a finalization certificate of `epoch` signing `header`'s digest
    /// with a quorum of `committee`.
    fn check_certificate(
        &self,
        header: &BlockHeader,
        bytes: &[u8],
        epoch: u64,
        committee: &[PublicKey],
    ) -> Result<(), ClientError> {
        let anchor = self.anchor.as_ref().ok_or(ClientError::NoTrustAnchor)?;
        let height = header.height.get();
        let certificate = decode_finalization(&anchor.chain_id, committee, bytes)
            .map_err(|error| ClientError::NotProven(error.to_string()))?;
        let digest = header.digest();
        if certificate.proposal.round.epoch().get() != epoch
            || !verify_finalization(&anchor.chain_id, committee, &certificate, &digest)
        {
            return Err(ClientError::NotProven(format!(
                "the finalization certificate of height {height} does not sign block {} \
                 with a quorum of epoch {epoch}'s committee",
                format_hash(&digest)
            )));
        }
        Ok(())
    }

    /// The consensus keys of `epoch`'s committee, verified from the trust anchor: epoch 0's
    /// are the genesis validators; each later one is learned from the previous epoch's last
    /// block, whose header a quorum of the previous committee finalized and whose state holds
    /// the next epoch (starting right after it) and that epoch's committee, both proven
    /// against its state root (`logos_getEpochProof`). Verified committees are remembered
    /// (at most [`COMMITTEES_CACHED_MAX`]); at most [`EPOCHS_WALKED_MAX`] epochs are walked
    /// per call. Errors: the server lacks or falsifies a step ([`ClientError::NotProven`]).
    pub async fn committee(&self, epoch: u64) -> Result<KnownEpoch, ClientError> {
        let anchor = self.anchor.as_ref().ok_or(ClientError::NoTrustAnchor)?;
        let genesis_epoch = KnownEpoch {
            committee: anchor.validators.clone(),
            start_height: 1,
            length_blocks: anchor.first_epoch_length_blocks,
        };
        let (mut known, mut keys) = self
            .committees
            .lock()
            .expect("committees lock")
            .range(..=epoch)
            .next_back()
            .map(|(known, keys)| (*known, keys.clone()))
            .unwrap_or((0, genesis_epoch));
        if epoch - known > EPOCHS_WALKED_MAX {
            return Err(ClientError::NotProven(format!(
                "epoch {epoch} is more than {EPOCHS_WALKED_MAX} epochs past epoch {known}, \
                 the last committee this client verified"
            )));
        }
        while known < epoch {
            let next = known + 1;
            keys = self.next_committee(next, &keys).await?;
            let mut committees = self.committees.lock().expect("committees lock");
            committees.insert(next, keys.clone());
            while committees.len() > COMMITTEES_CACHED_MAX {
                committees.pop_first();
            }
            known = next;
        }
        Ok(keys)
    }

    /// `epoch`'s committee from its proof, given the previous epoch's `previous` committee.
    async fn next_committee(
        &self,
        epoch: u64,
        previous: &KnownEpoch,
    ) -> Result<KnownEpoch, ClientError> {
        use logos_types::staking::{Committees, CurrentEpoch, Epoch};
        let not_proven = |what: String| ClientError::NotProven(format!("epoch {epoch}: {what}"));
        let proof = self
            .rpc
            .get_epoch_proof(epoch)
            .await?
            .ok_or_else(|| not_proven("the server has no proof of its committee".into()))?;
        if proof.epoch != epoch {
            return Err(not_proven(format!("the server sent epoch {}", proof.epoch)));
        }
        if proof.height != previous.last_height() {
            return Err(not_proven(format!(
                "block {} is not the last block before it ({})",
                proof.height,
                previous.last_height()
            )));
        }
        // The previous epoch's last block, certified by the previous committee itself.
        let header = self.header(proof.height).await?;
        let certificate = self
            .rpc
            .get_finalization(proof.height)
            .await?
            .ok_or_else(|| not_proven(format!("no certificate of block {}", proof.height)))?;
        let certificate = unhex(&certificate)?;
        self.check_certificate(&header, &certificate, epoch - 1, &previous.committee)?;
        let root = header.state_root;
        let info_bytes = unhex(&proof.epoch_info)?;
        let info_key = CurrentEpoch::key();
        let info_proof = decode_proof(&unhex(&proof.epoch_info_proof)?).map_err(malformed)?;
        if !verify_value(&info_key, &info_bytes, &info_proof, &root) {
            return Err(not_proven(
                "the epoch record's proof does not verify".into(),
            ));
        }
        let info = CurrentEpoch::decode_value(&info_key, &info_bytes).map_err(malformed)?;
        if info.epoch != Epoch(epoch) || Some(info.start_height) != proof.height.checked_add(1) {
            return Err(not_proven(format!(
                "block {} is not the last block before it",
                proof.height
            )));
        }
        let committee_key = Committees::key(&Epoch(epoch));
        let committee_bytes = unhex(&proof.committee)?;
        let committee_proof = decode_proof(&unhex(&proof.committee_proof)?).map_err(malformed)?;
        if !verify_value(&committee_key, &committee_bytes, &committee_proof, &root) {
            return Err(not_proven("the committee's proof does not verify".into()));
        }
        let committee = Committees::decode_value(&committee_key, &committee_bytes)
            .map_err(malformed)?
            .consensus_keys()
            .map_err(malformed)?;
        if committee.is_empty() {
            return Err(not_proven("an empty committee".into()));
        }
        self.record_link(EpochLink {
            proof,
            header,
            certificate,
        });
        Ok(KnownEpoch {
            committee,
            start_height: info.start_height,
            length_blocks: info.length_blocks,
        })
    }

    /// The receipt of transaction `hash` as the server reports it, unverified; `None` if no
    /// retained finalized block holds it on that server.
    pub async fn receipt(&self, hash: &Hash) -> Result<Option<ReceiptInfo>, ClientError> {
        Ok(self.rpc.get_receipt(format_hash(hash)).await?)
    }

    /// The receipt of transaction `hash`, proven: the receipt's bytes must be the leaf at its
    /// position under the `receipts_root` of a block header whose digest a quorum of the
    /// trusted validators finalized (see [`logos_api::receipt`]). `None` when the server
    /// says no retained finalized block holds it, which a server can always claim: absence is
    /// not proven.
    pub async fn receipt_proven(&self, hash: &Hash) -> Result<Option<ProvenReceipt>, ClientError> {
        if self.anchor.is_none() {
            return Err(ClientError::NoTrustAnchor);
        }
        let Some(info) = self.receipt(hash).await? else {
            return Ok(None);
        };
        let header = self.verified_header(info.height).await?;
        let block_hash = header.digest();
        if format_hash(&block_hash) != info.block_hash {
            return Err(ClientError::NotProven(format!(
                "the receipt names block {}, finalized block {} is {}",
                info.block_hash,
                info.height,
                format_hash(&block_hash)
            )));
        }
        let bytes = unhex(&info.receipt_bytes)?;
        let proof = unhex(&info.proof)?;
        let receipt = verify_receipt(&bytes, info.index, &proof, &header.receipts_root, hash)
            .map_err(|error| ClientError::NotProven(error.to_string()))?;
        Ok(Some(ProvenReceipt {
            receipt,
            height: info.height,
            block_hash,
            index: info.index,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(epoch: u64, certificate_bytes: usize) -> EpochLink {
        let hash = logos_primitives::hash(&[b"test"]);
        EpochLink {
            proof: EpochProof {
                epoch,
                height: epoch * 20,
                epoch_info: "0x00".into(),
                epoch_info_proof: "0x00".into(),
                committee: "0x00".into(),
                committee_proof: "0x00".into(),
            },
            header: BlockHeader {
                parent: hash,
                height: logos_primitives::Height::new(epoch * 20),
                timestamp_ms: 0,
                proposer: PrivateKey::from_seed(1).public_key(),
                state_root: hash,
                transactions_root: hash,
                receipts_root: hash,
                randomness: hash,
            },
            certificate: vec![0; certificate_bytes],
        }
    }

    #[test]
    fn epoch_links_are_kept_only_while_recording_and_within_bounds() {
        let mut idle = LinkRecorder::default();
        idle.push(link(1, 10));
        assert!(idle.links.is_empty(), "kept without being asked");

        let mut recorder = LinkRecorder {
            recording: true,
            ..LinkRecorder::default()
        };
        for epoch in 1..=3 {
            recorder.push(link(epoch, 100));
        }
        recorder.push(link(2, 50));
        let epochs: Vec<u64> = recorder.links.keys().copied().collect();
        assert_eq!(epochs, vec![1, 2, 3]);
        assert_eq!(
            recorder.links[&2].certificate.len(),
            100,
            "an epoch recorded twice"
        );

        // Past the byte bound every link goes: a walk with a hole serves nobody.
        recorder.push(link(4, EPOCH_LINKS_RECORDED_MAX_BYTES));
        assert!(recorder.overflowed && recorder.links.is_empty());
        recorder.push(link(5, 10));
        assert!(recorder.links.is_empty(), "kept after overflowing");

        let mut counted = LinkRecorder {
            recording: true,
            ..LinkRecorder::default()
        };
        for epoch in 0..=EPOCH_LINKS_RECORDED_MAX as u64 {
            counted.push(link(epoch, 0));
        }
        assert!(counted.overflowed && counted.links.is_empty());
    }
}
