//! The chain's state: finalized state in QMDB plus speculative batches for unfinalized blocks.
//!
//! Simplex lets a leader build on a parent that is notarized but not yet finalized, so a block
//! is executed on its parent's *speculative* state: a QMDB batch chained on the parent's batch
//! (see `commonware_storage::qmdb` "Batch validity"). Each verified block keeps its merkleized
//! batch here until its height is finalized; finalization applies the batch (with the block
//! height as its metadata) and [`ChainState::commit`] makes every applied batch durable with
//! one fsync, so after a crash the database says which block its state belongs to. The
//! finalizer commits once per group of blocks marshal has ready (one block at the tip, up to
//! `MAX_PENDING_ACKS` while catching up) and acknowledges them only then.

use commonware_codec::RangeCfg;
use commonware_cryptography::{Digestible, Sha256};
use commonware_parallel::Sequential;
use commonware_runtime::{buffer::paged::CacheRef, Clock, Metrics, Spawner, Storage};
use commonware_storage::{
    journal::contiguous::variable::Config as JournalConfig,
    merkle::full::Config as MerkleConfig,
    qmdb::{
        any::{ordered::Update, value::VariableEncoding},
        current::{self, batch::MerkleizedBatch, ordered::variable::Db},
        floor::Proportional,
    },
    translator::EightCap,
};
use commonware_utils::{NZUsize, NZU16, NZU64};
use logos_api::{
    proof::{state_key, AbsenceProof, StateFamily, StateProof, BITMAP_CHUNK_BYTES},
    receipt::receipts_root,
    Block,
};
use logos_framework::{StateReader, WriteSet};
use logos_primitives::Address;
use logos_primitives::{Hash, Height};
use logos_runtime::{
    build_block, execute_block, genesis_state, BlockContext, BlockError, BlockOutcome,
};
use logos_types::{
    balances::{AccountInfo, Accounts},
    beacon::GroupKeys,
    staking::CurrentEpoch,
    storage::STORAGE_VALUE_MAX_BYTES,
    Event, Genesis, Receipt, StateError, StorageItem, StorageKey, StorageMap, StorageValue,
    Transaction,
};
use std::{collections::BTreeMap, num::NonZeroU64, sync::Arc};

/// The QMDB database holding the state.
pub type StateDb<E> =
    Db<StateFamily, E, Hash, Vec<u8>, Sha256, EightCap, BITMAP_CHUNK_BYTES, Sequential>;

/// A merkleized speculative batch (the state after one unfinalized block).
pub type StateBatch = Arc<
    MerkleizedBatch<
        StateFamily,
        Hash,
        Update<Hash, VariableEncoding<Vec<u8>>>,
        BITMAP_CHUNK_BYTES,
        Sequential,
    >,
>;

/// Most unfinalized blocks whose batches are kept (forks included).
pub const PENDING_BLOCKS_MAX: usize = 1_024;

/// Operations per section of the state database's log by default: the granularity of its
/// pruning (about 2 operations per empty block, 3 more per transfer).
pub const STATE_LOG_ITEMS_PER_SECTION: u64 = 16_384;

/// How often (in finalized blocks) the state's operation log is pruned when history is not
/// kept (see [`ChainState::prune_history`]).
pub const PRUNE_INTERVAL_BLOCKS: u64 = 256;

/// Errors of the chain state.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The block is invalid on its parent's state.
    #[error("invalid block: {0}")]
    InvalidBlock(#[from] BlockError),
    /// The block's state root differs from the one execution produced.
    #[error("state root mismatch: block says {claimed}, execution gives {computed}")]
    StateRootMismatch {
        /// Root in the block.
        claimed: String,
        /// Root computed here.
        computed: String,
    },
    /// The block's receipts root differs from the receipts execution produced.
    #[error("receipts root mismatch: block says {claimed}, execution gives {computed}")]
    ReceiptsRootMismatch {
        /// Root in the block.
        claimed: String,
        /// Root computed here.
        computed: String,
    },
    /// The parent's state is not known here (not finalized, not verified).
    #[error("unknown parent state")]
    UnknownParent,
    /// Too many unfinalized blocks are held.
    #[error("too many unfinalized blocks ({PENDING_BLOCKS_MAX})")]
    TooManyPending,
    /// The genesis state could not be built.
    #[error("genesis: {0}")]
    Genesis(String),
    /// The block's seed breaks the chain's rule ([`logos_beacon::check_seed`]).
    #[error("seed: {0}")]
    Seed(#[from] logos_beacon::SeedError),
}

/// Most decoded group keys kept by [`ChainState::seed_key`] (the current epoch's, the next
/// one's, and forks' at a boundary).
const SEED_KEYS_CACHED: usize = 4;

/// The epoch a child of some block is in and that epoch's group key, if the state holds one.
pub type SeedKey = (u64, Option<Arc<logos_beacon::GroupOutput>>);

fn storage_error(error: impl std::fmt::Display) -> ChainError {
    ChainError::Storage(error.to_string())
}

/// A key's finalized value with its proof, or the proof that it has none.
pub enum Proven {
    /// The value and its proof.
    Value(Vec<u8>, StateProof),
    /// The key holds nothing.
    Absent(AbsenceProof),
}

/// A block built by [`ChainState::build`].
pub struct Built {
    /// The state after the block.
    pub batch: StateBatch,
    /// Receipts and events of the included transactions.
    pub executed: Executed,
    /// The transactions in the block, in order.
    pub included: Vec<Transaction>,
    /// Candidates left out, with why (see [`logos_runtime::BuiltBlock::skipped`]).
    pub skipped: Vec<(Transaction, BlockError)>,
}

/// What executing a block produced besides its state.
#[derive(Debug)]
pub struct Executed {
    /// One receipt per transaction.
    pub receipts: Vec<Receipt>,
    /// Root of their canonical bytes ([`logos_api::receipt`]): the block's `receipts_root`.
    pub receipts_root: Hash,
    /// Events of the end-of-block hooks.
    pub block_events: Vec<Event>,
    /// The block's writes, kept only when the node checks invariants (see
    /// [`ChainState::keep_writes`]).
    pub writes: Option<WriteSet>,
}

/// An executed, unfinalized block.
pub struct Pending {
    /// Its height.
    pub height: Height,
    /// Its state.
    pub batch: StateBatch,
    /// Its receipts and events.
    pub executed: Arc<Executed>,
}

/// The latest finalized and executed block.
#[derive(Clone, Debug)]
pub struct FinalizedTip {
    /// Height.
    pub height: Height,
    /// Digest.
    pub digest: Hash,
    /// State root after it (the genesis block carries the chain id; see [`logos_api::block`]).
    pub state_root: Hash,
}

/// Finalized state plus speculative batches. See the module docs.
pub struct ChainState<E: Storage + Clock + Metrics + Spawner> {
    db: Option<StateDb<E>>,
    tip: FinalizedTip,
    pending: BTreeMap<Hash, Pending>,
    keep_writes: bool,
    prune_history: bool,
    /// Finalized blocks applied since the last [`ChainState::commit`] (1 after a restart: the
    /// reopened state may have been written but not synced before the crash).
    uncommitted_blocks: u64,
    /// A pruning height was applied since the last commit.
    prune_due: bool,
    /// Decoded group keys by the hash of their stored bytes (at most [`SEED_KEYS_CACHED`]):
    /// every block's seed is checked against one, decoding it once per epoch.
    seed_keys: std::sync::Mutex<BTreeMap<Hash, Arc<logos_beacon::GroupOutput>>>,
}

struct Reader<'a, E: Storage + Clock + Metrics + Spawner> {
    db: &'a StateDb<E>,
    parent: Option<&'a StateBatch>,
}

impl<E: Storage + Clock + Metrics + Spawner> StateReader for Reader<'_, E> {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StateError> {
        let key = state_key(key);
        let result = match self.parent {
            Some(batch) => batch.get(&key, self.db).await,
            None => self.db.get(&key).await,
        };
        result.map_err(|error| StateError::Backend(error.to_string()))
    }
}

/// Codec bounds of a state operation: the key needs none, values are at most
/// [`STORAGE_VALUE_MAX_BYTES`].
/// Decoding bounds of one state operation (a value is at most a storage value).
pub(crate) type OperationCfg = ((), (RangeCfg<usize>, ()));

/// The decoding bounds of one operation of the state's log.
pub(crate) fn operation_cfg() -> OperationCfg {
    ((), (RangeCfg::from(0..=STORAGE_VALUE_MAX_BYTES), ()))
}

/// Configuration of the state database's storage.
pub(crate) fn db_config(
    partition: &str,
    log_items_per_section: u64,
) -> current::VariableConfig<EightCap, OperationCfg, Sequential> {
    // The ordered database's own partitions: a data directory of the earlier unordered
    // database is never read as this one.
    let partition = &format!("{partition}-ordered");
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(4096));
    current::VariableConfig {
        merkle_config: MerkleConfig {
            journal_partition: format!("{partition}-merkle-journal"),
            metadata_partition: format!("{partition}-merkle-metadata"),
            items_per_blob: NZU64!(65_536),
            write_buffer: NZUsize!(1 << 20),
            replay_buffer: NZUsize!(1 << 20),
            strategy: Sequential,
            page_cache: page_cache.clone(),
        },
        journal_config: JournalConfig {
            partition: format!("{partition}-log"),
            items_per_section: NonZeroU64::new(log_items_per_section).unwrap_or(NonZeroU64::MIN),
            compression: None,
            codec_config: operation_cfg(),
            page_cache,
            write_buffer: NZUsize!(1 << 20),
            replay_buffer: NZUsize!(1 << 20),
        },
        grafted_metadata_partition: format!("{partition}-grafted-metadata"),
        translator: EightCap,
        init_cache: Some(NZUsize!(65_536)),
        init_buffer: NZUsize!(1 << 21),
        init_concurrency: (),
    }
}

impl<E: Storage + Clock + Metrics + Spawner> ChainState<E> {
    /// Opens the state in `partition` (its log in sections of `log_items_per_section`
    /// operations, see [`STATE_LOG_ITEMS_PER_SECTION`]); on first start, writes the genesis
    /// state.
    pub async fn open(
        context: E,
        partition: &str,
        log_items_per_section: u64,
        genesis: &Genesis,
        genesis_block: &Block,
    ) -> Result<Self, ChainError> {
        let db = StateDb::init(context, db_config(partition, log_items_per_section), None)
            .await
            .map_err(storage_error)?;
        let metadata = db.get_metadata().await.map_err(storage_error)?;
        let mut state = Self {
            db: Some(db),
            tip: FinalizedTip {
                height: Height::zero(),
                digest: genesis_block.digest(),
                state_root: genesis_block.state_root,
            },
            pending: BTreeMap::new(),
            seed_keys: std::sync::Mutex::new(BTreeMap::new()),
            keep_writes: false,
            prune_history: false,
            uncommitted_blocks: 0,
            prune_due: false,
        };
        match metadata {
            None => state.write_genesis(genesis).await?,
            Some(bytes) => {
                state.tip.height = decode_height(&bytes)?;
                // What the crash left may be written and not synced: the first commit syncs
                // it before marshal hears of anything above it.
                state.uncommitted_blocks = 1;
            }
        }
        Ok(state)
    }

    async fn write_genesis(&mut self, genesis: &Genesis) -> Result<(), ChainError> {
        let writes = genesis_state(genesis).map_err(ChainError::Genesis)?;
        let batch = stage(self.db(), None, writes, Height::zero()).await?;
        self.apply(batch).await?;
        self.uncommitted_blocks = 1;
        self.commit().await
    }

    /// Keeps every executed block's write set in its [`Executed`] (for the invariant check of
    /// `check_invariants`; off by default, it costs memory per unfinalized block).
    pub fn keep_writes(&mut self, keep: bool) {
        self.keep_writes = keep;
    }

    /// Prunes the state database's operation log below its sync boundary every
    /// [`PRUNE_INTERVAL_BLOCKS`] finalized blocks (off by default: archive nodes keep every
    /// operation). QMDB keeps every operation it ever applied; those below the inactivity floor
    /// no longer define the current state or its root, so pruning them bounds the log to about
    /// the live state's size without changing any root or proof the node serves.
    pub fn prune_history(&mut self, prune: bool) {
        self.prune_history = prune;
    }

    /// First operation location the state database still holds (0 until it is pruned).
    pub fn oldest_retained_operation(&self) -> u64 {
        *self.db().bounds().start
    }

    /// Restores the tip's digest and root once the block at the persisted height is known
    /// (after a restart the database only records the height).
    pub fn restore_tip(&mut self, block: &Block) {
        assert_eq!(
            block.height, self.tip.height,
            "restored tip at the wrong height"
        );
        self.tip.digest = block.digest();
        self.tip.state_root = block.state_root;
    }

    /// The latest finalized and executed block.
    pub fn tip(&self) -> &FinalizedTip {
        &self.tip
    }

    /// The state database (finalized state).
    pub fn db(&self) -> &StateDb<E> {
        self.db.as_ref().expect("db present")
    }

    /// A block at `height` whose state is known here (the finalized tip or a verified pending
    /// block; the first by digest if forks hold several).
    pub fn block_at(&self, height: u64) -> Option<Hash> {
        if self.tip.height.get() == height {
            return Some(self.tip.digest);
        }
        self.pending
            .iter()
            .find(|(_, pending)| pending.height.get() == height)
            .map(|(digest, _)| *digest)
    }

    /// True if the state after `digest` is known (finalized tip or verified pending block).
    pub fn knows(&self, digest: &Hash) -> bool {
        *digest == self.tip.digest || self.pending.contains_key(digest)
    }

    /// Reads `key` in the state after block `at` (tip or pending).
    pub async fn read(&self, at: &Hash, key: &StorageKey) -> Result<Option<Vec<u8>>, ChainError> {
        let parent = self.parent_batch(at)?;
        Reader {
            db: self.db(),
            parent,
        }
        .get(key)
        .await
        .map_err(storage_error)
    }

    fn parent_batch(&self, parent: &Hash) -> Result<Option<&StateBatch>, ChainError> {
        if *parent == self.tip.digest {
            return Ok(None);
        }
        self.pending
            .get(parent)
            .map(|pending| Some(&pending.batch))
            .ok_or(ChainError::UnknownParent)
    }

    /// Executes `transactions` as a block at `height` on the state after `parent`, returning
    /// the state batch (with its root) and receipts. Nothing is stored.
    pub async fn execute(
        &self,
        parent: &Hash,
        height: Height,
        context: &BlockContext,
        transactions: &[Transaction],
    ) -> Result<(StateBatch, Executed), ChainError> {
        let parent_batch = self.parent_batch(parent)?;
        let reader = Reader {
            db: self.db(),
            parent: parent_batch,
        };
        let outcome = execute_block(&reader, context, transactions).await?;
        self.stage_outcome(parent_batch, height, outcome).await
    }

    /// Builds a block at `height` on the state after `parent` from `candidates`, leaving out
    /// those that cannot be included ([`build_block`]): the state batch, receipts, the included
    /// transactions and the skipped ones with their reasons. Nothing is stored.
    pub async fn build(
        &self,
        parent: &Hash,
        height: Height,
        context: &BlockContext,
        candidates: &[Transaction],
    ) -> Result<Built, ChainError> {
        let parent_batch = self.parent_batch(parent)?;
        let reader = Reader {
            db: self.db(),
            parent: parent_batch,
        };
        let built = build_block(&reader, context, candidates)
            .await
            .map_err(BlockError::from)?;
        let (batch, executed) = self
            .stage_outcome(parent_batch, height, built.outcome)
            .await?;
        Ok(Built {
            batch,
            executed,
            included: built.included,
            skipped: built.skipped,
        })
    }

    async fn stage_outcome(
        &self,
        parent_batch: Option<&StateBatch>,
        height: Height,
        outcome: BlockOutcome,
    ) -> Result<(StateBatch, Executed), ChainError> {
        let writes = self.keep_writes.then(|| outcome.writes.clone());
        let batch = stage(self.db(), parent_batch, outcome.writes, height).await?;
        let executed = Executed {
            receipts_root: receipts_root(&outcome.receipts),
            receipts: outcome.receipts,
            block_events: outcome.block_events,
            writes,
        };
        Ok((batch, executed))
    }

    /// Executes and checks `block` against its state root, then keeps its batch as pending.
    pub async fn verify(
        &mut self,
        block: &Block,
        context: &BlockContext,
    ) -> Result<(), ChainError> {
        if self.pending.contains_key(&block.digest()) {
            return Ok(());
        }
        let (batch, executed) = self.execute_block(block, context).await?;
        self.insert_pending(block, batch, executed)
    }

    /// The epoch of a child of `parent` (the [`CurrentEpoch`] after it) and its group key, if
    /// the state after `parent` holds one: what the child's seed must verify against.
    pub async fn seed_key(&self, parent: &Hash) -> Result<SeedKey, ChainError> {
        let epoch = match self.read(parent, &CurrentEpoch::key()).await? {
            Some(bytes) => {
                CurrentEpoch::decode_value(&CurrentEpoch::key(), &bytes)
                    .map_err(storage_error)?
                    .epoch
            }
            None => CurrentEpoch::default_value().epoch,
        };
        let key = GroupKeys::key(&epoch);
        let Some(bytes) = self.read(parent, &key).await? else {
            return Ok((epoch.get(), None));
        };
        let digest = logos_primitives::hash(&[&bytes]);
        let mut cache = self
            .seed_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(output) = cache.get(&digest) {
            return Ok((epoch.get(), Some(output.clone())));
        }
        let stored = GroupKeys::decode_value(&key, &bytes).map_err(storage_error)?;
        // `try_state` holds every stored key decodable: a failure is a corrupt state.
        let output = Arc::new(logos_beacon::decode_output(&stored).map_err(ChainError::Storage)?);
        if cache.len() >= SEED_KEYS_CACHED {
            cache.clear();
        }
        cache.insert(digest, output.clone());
        Ok((epoch.get(), Some(output)))
    }

    /// Checks `block`'s seed against the group key of its epoch in its parent's state
    /// ([`logos_beacon::check_seed`]).
    pub async fn check_seed(
        &self,
        block: &Block,
        context: &BlockContext,
    ) -> Result<(), ChainError> {
        let (epoch, key) = self.seed_key(&block.parent).await?;
        let parent_height = block.height.get().saturating_sub(1);
        let seed = block.seed.as_ref().map(|seed| &seed.0[..]);
        logos_beacon::check_seed(
            key.as_deref(),
            epoch,
            &context.chain_id,
            parent_height,
            seed,
        )?;
        Ok(())
    }

    /// Checks `block`'s seed, executes it on its parent's state and checks its state root;
    /// nothing is stored.
    pub async fn execute_block(
        &self,
        block: &Block,
        context: &BlockContext,
    ) -> Result<(StateBatch, Executed), ChainError> {
        self.check_seed(block, context).await?;
        let (batch, executed) = self
            .execute(&block.parent, block.height, context, &block.transactions)
            .await?;
        if batch.root() != block.state_root {
            return Err(ChainError::StateRootMismatch {
                claimed: logos_primitives::format_hash(&block.state_root),
                computed: logos_primitives::format_hash(&batch.root()),
            });
        }
        if executed.receipts_root != block.receipts_root {
            return Err(ChainError::ReceiptsRootMismatch {
                claimed: logos_primitives::format_hash(&block.receipts_root),
                computed: logos_primitives::format_hash(&executed.receipts_root),
            });
        }
        Ok((batch, executed))
    }

    /// Keeps an executed block's batch.
    pub fn insert_pending(
        &mut self,
        block: &Block,
        batch: StateBatch,
        executed: Executed,
    ) -> Result<(), ChainError> {
        if self.pending.len() >= PENDING_BLOCKS_MAX {
            return Err(ChainError::TooManyPending);
        }
        self.pending.insert(
            block.digest(),
            Pending {
                height: block.height,
                batch,
                executed: Arc::new(executed),
            },
        );
        Ok(())
    }

    /// Applies the finalized `block` (the tip's child): readers see it at once, it is durable
    /// after the next [`Self::commit`].
    ///
    /// Returns its receipts and events. Panics if the block does not extend the tip or its state
    /// root or receipts root differs from execution: a finalized block is final, so either this node's state is
    /// corrupt or a quorum finalized an invalid block; continuing would serve a wrong state.
    pub async fn finalize(
        &mut self,
        block: &Block,
        context: &BlockContext,
    ) -> Result<Arc<Executed>, ChainError> {
        self.prepare_finalize(block, context).await?;
        self.apply_finalized(block).await
    }

    /// Makes sure `block` (the tip's child) is executed and checked, and returns what
    /// executing it produced, without applying it (see [`Self::finalize`], same panics).
    pub async fn prepare_finalize(
        &mut self,
        block: &Block,
        context: &BlockContext,
    ) -> Result<Arc<Executed>, ChainError> {
        assert_eq!(
            block.parent, self.tip.digest,
            "finalized block does not extend the tip"
        );
        if !self.pending.contains_key(&block.digest()) {
            match self.verify(block, context).await {
                Err(
                    ChainError::StateRootMismatch { claimed, computed }
                    | ChainError::ReceiptsRootMismatch { claimed, computed },
                ) => {
                    panic!(
                        "finalized block {} commits to {claimed}, execution gives {computed}",
                        block.height
                    )
                }
                other => other?,
            }
        }
        Ok(self
            .pending
            .get(&block.digest())
            .expect("verified above")
            .executed
            .clone())
    }

    async fn apply_finalized(&mut self, block: &Block) -> Result<Arc<Executed>, ChainError> {
        let pending = self
            .pending
            .remove(&block.digest())
            .expect("prepared by prepare_finalize");
        self.apply(pending.batch).await?;
        self.uncommitted_blocks += 1;
        self.tip = FinalizedTip {
            height: block.height,
            digest: block.digest(),
            state_root: block.state_root,
        };
        // Batches at or below the finalized height are applied or on dead forks.
        self.pending
            .retain(|_, pending| pending.height > block.height);
        if self.prune_history && block.height.get().is_multiple_of(PRUNE_INTERVAL_BLOCKS) {
            // By the next commit, which the finalizer makes after the receipts are durable.
            self.prune_due = true;
        }
        Ok(pending.executed)
    }

    /// Prunes the operation log up to the database's sync boundary (see
    /// [`Self::prune_history`]); pending batches stay valid, pruning changes no root.
    async fn prune(&mut self) -> Result<(), ChainError> {
        let db = self.db.take().expect("db present");
        let boundary = db.sync_boundary();
        let db = db.prune(boundary).await.map_err(storage_error)?;
        self.db = Some(db);
        Ok(())
    }

    async fn apply(&mut self, batch: StateBatch) -> Result<(), ChainError> {
        let db = self.db.take().expect("db present");
        let db = db.apply_batch(batch).await.map_err(storage_error)?;
        self.db = Some(db);
        Ok(())
    }

    /// Makes every finalized block applied so far durable (one fsync however many there
    /// are; nothing to do if none). After a crash the state reopens at the last commit.
    /// Prunes the operation log too when a block applied since the last commit was at a
    /// multiple of [`PRUNE_INTERVAL_BLOCKS`] (pruning works on durable state only).
    pub async fn commit(&mut self) -> Result<(), ChainError> {
        if self.uncommitted_blocks == 0 {
            return Ok(());
        }
        let db = self.db.take().expect("db present");
        let db = db.commit().await.map_err(storage_error)?;
        self.db = Some(db);
        self.uncommitted_blocks = 0;
        if std::mem::take(&mut self.prune_due) {
            self.prune().await?;
        }
        Ok(())
    }

    /// Finalized blocks applied but not yet committed (see [`Self::commit`]).
    pub fn uncommitted_blocks(&self) -> u64 {
        self.uncommitted_blocks
    }

    /// A proof of `key`'s current value in the finalized state, or of its absence.
    pub async fn prove(&self, key: &StorageKey) -> Result<Proven, ChainError> {
        let db = self.db();
        let hashed = state_key(key);
        let Some(value) = db.get(&hashed).await.map_err(storage_error)? else {
            let proof = db.exclusion_proof(&hashed).await.map_err(storage_error)?;
            return Ok(Proven::Absent(proof));
        };
        let proof = db.key_value_proof(hashed).await.map_err(storage_error)?;
        Ok(Proven::Value(value, proof))
    }

    /// Root of the finalized state database.
    pub fn db_root(&self) -> Hash {
        self.db().root()
    }

    /// `address`'s account in the state after block `at` (tip or pending).
    pub async fn account_at(
        &self,
        at: &Hash,
        address: &Address,
    ) -> Result<AccountInfo, ChainError> {
        let key = Accounts::key(address);
        match self.read(at, &key).await? {
            Some(bytes) => Accounts::decode_value(&key, &bytes)
                .map_err(|error| ChainError::Storage(error.to_string())),
            None => Ok(AccountInfo::default()),
        }
    }
}

/// If the finalized tip (at `height`) is an epoch's last block: the epoch that starts after it
/// and the proof of that epoch's committee against the tip's state (see
/// `logos_api::rpc::EpochProof`).
pub async fn epoch_proof<E: Storage + Clock + Metrics + Spawner>(
    chain: &ChainState<E>,
    height: u64,
) -> Result<Option<(u64, crate::receipts::EpochProofParts)>, ChainError> {
    use logos_types::{
        staking::{Committees, CurrentEpoch},
        StorageValue as _,
    };
    let info_key = CurrentEpoch::key();
    // Read first: a proof is built only at an epoch's last block.
    let tip = chain.tip().digest;
    let Some(bytes) = chain.read(&tip, &info_key).await? else {
        return Ok(None);
    };
    let info = CurrentEpoch::decode_value(&info_key, &bytes)
        .map_err(|error| ChainError::Storage(error.to_string()))?;
    if info.start_height != height.saturating_add(1) || info.epoch.0 == 0 {
        return Ok(None);
    }
    let Proven::Value(epoch_info, info_proof) = chain.prove(&info_key).await? else {
        return Ok(None);
    };
    let committee_key = Committees::key(&info.epoch);
    let Proven::Value(committee, committee_proof) = chain.prove(&committee_key).await? else {
        return Err(ChainError::Storage(format!(
            "epoch {} started without a committee",
            info.epoch.0
        )));
    };
    Ok(Some((
        info.epoch.0,
        crate::receipts::EpochProofParts {
            height,
            epoch_info,
            epoch_info_proof: logos_api::proof::encode_proof(&info_proof),
            committee,
            committee_proof: logos_api::proof::encode_proof(&committee_proof),
        },
    )))
}

async fn stage<E: Storage + Clock + Metrics + Spawner>(
    db: &StateDb<E>,
    parent: Option<&StateBatch>,
    writes: WriteSet,
    height: Height,
) -> Result<StateBatch, ChainError> {
    let mut batch = match parent {
        Some(parent) => parent.new_batch::<Sha256>(),
        None => db.new_batch(),
    };
    for (key, value) in writes {
        batch = batch.write(state_key(&key), value);
    }
    let metadata = height.get().to_be_bytes().to_vec();
    batch
        .merkleize(db, Some(metadata), &mut Proportional)
        .await
        .map_err(storage_error)
}

fn decode_height(bytes: &[u8]) -> Result<Height, ChainError> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        ChainError::Storage(format!(
            "state metadata is {} bytes, expected 8",
            bytes.len()
        ))
    })?;
    Ok(Height::new(u64::from_be_bytes(bytes)))
}
