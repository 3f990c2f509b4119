//! The state the application, the finalizer, the relay and the RPC server share, behind one
//! small interface: the chain (finalized and speculative state), the mempool, and what the
//! finalizer publishes (recent finalized blocks with their receipts, and a notification per
//! finalized block), and the receipts kept on disk. Its locks are private: each method takes
//! what it needs and no caller holds two of them (the finalizer writes receipts between two
//! holds of the chain lock, never inside one).

use crate::seeds::SeedBook;
use crate::{
    chain::{ChainError, ChainState, Executed, FinalizedTip},
    receipts::ReceiptStore,
};
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use logos_api::Block;
use logos_mempool::{Admission, Mempool, Rejection};
use logos_primitives::{Address, ChainId, Hash};
use logos_runtime::BlockContext;
use logos_types::{balances::AccountInfo, Genesis, Transaction};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};
use tokio::sync::{broadcast, Notify, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Finalized blocks kept in memory with their receipts (for RPC); the oldest is dropped first.
pub const RECENT_BLOCKS_MAX: usize = 1_024;
/// Capacity of the finalized-block notification channel (RPC subscriptions, the full-node
/// registry follower of `crate::peers`).
pub const NOTIFICATIONS_MAX: usize = 4_096;

/// A finalized, executed block with its receipts and end-of-block events.
#[derive(Debug)]
pub struct FinalizedBlock {
    /// The block.
    pub block: Block,
    /// What executing it produced.
    pub executed: Arc<Executed>,
}

/// The shared state (see the module docs).
pub struct Shared<E: Storage + Clock + Metrics + Spawner> {
    chain: RwLock<ChainState<E>>,
    mempool: Mutex<Mempool>,
    genesis: Genesis,
    chain_id: ChainId,
    finalized: broadcast::Sender<Arc<FinalizedBlock>>,
    recent: Mutex<BTreeMap<u64, Arc<FinalizedBlock>>>,
    receipts: RwLock<ReceiptStore<E>>,
    seeds: Mutex<SeedBook>,
    seed_work: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<E: Storage + Clock + Metrics + Spawner> Shared<E> {
    /// Shared state over an opened chain and receipt store.
    pub fn new(
        chain: ChainState<E>,
        receipts: ReceiptStore<E>,
        mempool: Mempool,
        genesis: Genesis,
    ) -> Self {
        let chain_id = genesis.chain_id();
        let (finalized, _) = broadcast::channel(NOTIFICATIONS_MAX);
        let mut seeds = SeedBook::new(chain_id);
        seeds.set_tip(chain.tip().height.get());
        Self {
            chain: RwLock::new(chain),
            mempool: Mutex::new(mempool),
            genesis,
            chain_id,
            finalized,
            recent: Mutex::new(BTreeMap::new()),
            receipts: RwLock::new(receipts),
            seeds: Mutex::new(seeds),
            seed_work: Notify::new(),
        }
    }

    /// Runs `f` on the block seeds this node collects ([`crate::seeds`]).
    pub fn with_seeds<T>(&self, f: impl FnOnce(&mut SeedBook) -> T) -> T {
        f(&mut lock(&self.seeds))
    }

    /// Notes that this node knows the block `digest` at `height` (verified or proposed): the
    /// seed task signs its height if this node holds a share of its child's epoch key.
    pub fn note_block(&self, height: u64, digest: Hash) {
        self.with_seeds(|book| book.note_block(height, digest));
        self.seed_work.notify_one();
    }

    /// Wakes the seed task (a block was noted, or a share derived).
    pub fn seed_work(&self) -> &Notify {
        &self.seed_work
    }

    /// The network's genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The network's chain id.
    pub fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    /// The execution context of a block at `height` by `author` on `parent` with
    /// `randomness` ([`Block::randomness`]: its seed's hash, or `parent`).
    pub fn context(
        &self,
        height: u64,
        author: Address,
        parent: Hash,
        randomness: Hash,
    ) -> BlockContext {
        BlockContext {
            chain_id: self.chain_id,
            height,
            author,
            params: self.genesis.params.clone(),
            randomness,
            parent,
        }
    }

    /// The execution context of `block`.
    pub fn block_context(&self, block: &Block) -> BlockContext {
        let author = Address::from_public_key(&block.proposer);
        self.context(block.height.get(), author, block.parent, block.randomness())
    }

    /// Reads the chain state.
    pub async fn chain(&self) -> RwLockReadGuard<'_, ChainState<E>> {
        self.chain.read().await
    }

    /// Changes the chain state (verify, finalize).
    pub async fn chain_mut(&self) -> RwLockWriteGuard<'_, ChainState<E>> {
        self.chain.write().await
    }

    /// The latest finalized block.
    pub async fn tip(&self) -> FinalizedTip {
        self.chain.read().await.tip().clone()
    }

    /// `address`'s account at the finalized tip, and the tip.
    pub async fn finalized_account(
        &self,
        address: &Address,
    ) -> Result<(AccountInfo, FinalizedTip), ChainError> {
        let chain = self.chain.read().await;
        let tip = chain.tip().clone();
        Ok((chain.account_at(&tip.digest, address).await?, tip))
    }

    /// Reads the receipt store.
    pub async fn receipts(&self) -> RwLockReadGuard<'_, ReceiptStore<E>> {
        self.receipts.read().await
    }

    /// Writes the receipt store (the finalizer).
    pub async fn receipts_mut(&self) -> RwLockWriteGuard<'_, ReceiptStore<E>> {
        self.receipts.write().await
    }

    /// Runs `f` on the mempool.
    pub fn with_mempool<T>(&self, f: impl FnOnce(&mut Mempool) -> T) -> T {
        f(&mut lock(&self.mempool))
    }

    /// Admits `transaction` into the mempool after checking it against the finalized state.
    ///
    /// The chain's read lock is held from the account read to the insert, so no block is
    /// finalized (and the sender rechecked) in between: a transaction is never pooled against
    /// an account older than the pool's last recheck.
    pub async fn admit(&self, transaction: Transaction) -> Result<Hash, Rejection> {
        let chain = self.chain.read().await;
        let tip = chain.tip().digest;
        let account = chain
            .account_at(&tip, &transaction.sender())
            .await
            .unwrap_or_default();
        let admission = Admission {
            chain_id: self.chain_id,
            min_fee: self.genesis.params.min_fee,
            account,
            signature_verified: false,
        };
        let admitted = self.with_mempool(|pool| pool.insert(transaction, &admission));
        drop(chain);
        admitted
    }

    /// Publishes a finalized block: kept among the recent ones, and sent to subscribers.
    pub fn publish(&self, finalized: Arc<FinalizedBlock>) {
        {
            let mut recent = lock(&self.recent);
            recent.insert(finalized.block.height.get(), finalized.clone());
            while recent.len() > RECENT_BLOCKS_MAX {
                recent.pop_first();
            }
        }
        // No subscriber is not an error.
        let _ = self.finalized.send(finalized);
    }

    /// The recent finalized block at `height`, if still held.
    pub fn recent(&self, height: u64) -> Option<Arc<FinalizedBlock>> {
        lock(&self.recent).get(&height).cloned()
    }

    /// Finalized blocks from now on (a slow subscriber lags and skips).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FinalizedBlock>> {
        self.finalized.subscribe()
    }
}
