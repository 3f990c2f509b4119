//! Block building, verification and finalization for commonware's marshal.
//!
//! The [`Application`] is wrapped by marshal's `Inline` adapter, which hands it the ancestry of
//! the block to build or verify (newest first: `[parent, …]` for propose, `[block, parent, …]`
//! for verify). Every block is executed on its parent's speculative state ([`crate::chain`]).
//!
//! - **propose**: wait until `block_time_ms` after the parent's timestamp (at most
//!   `block_time_ms`), pick transactions from the mempool (nonce order per sender, highest fee
//!   first), execute them, leave out and evict from the mempool any that are invalid on the
//!   parent's state (`logos_runtime::build_block`), and commit to the resulting state root and
//!   receipts root. Where the parent's state holds a group key for the block's epoch, the
//!   block carries the seed (the parent's height signed by the committee, [`crate::seeds`]):
//!   the leader waits for it at most [`SEED_WAIT_MAX_MS`] and proposes nothing without it.
//!   Otherwise a leader always proposes, an empty block if nothing is includable.
//! - **verify**: the proposer must be the round's leader, the timestamp must not go backwards
//!   nor run more than [`TIMESTAMP_DRIFT_MAX_MS`] ahead of the local clock, every signature must
//!   verify (batched; transactions already in the local mempool were verified on admission),
//!   the seed must follow the chain's rule (`logos_beacon::check_seed`), and re-execution must
//!   give the block's state root and receipts root. A verified block's height is noted for this
//!   node to sign.
//! - **finalize** ([`Finalizer`]): marshal delivers finalized blocks in height order, at least
//!   once; each block's receipts are written to the receipt store, then its state is applied
//!   (readers and subscribers see it at once); the blocks marshal has ready are then made
//!   durable together (receipts and state, one fsync each: one block at the tip, up to
//!   `MAX_PENDING_ACKS` while catching up) and only then acknowledged, so marshal's processed
//!   height never runs ahead of the durable state; a pruning node prunes blocks, certificates and receipts behind its
//!   retention window every `PRUNE_INTERVAL_BLOCKS`.

use crate::{
    chain::{ChainError, PRUNE_INTERVAL_BLOCKS},
    engine::MarshalMailbox,
    epochs::Epochs,
    invariants::InvariantCheck,
    shared::{FinalizedBlock, Shared},
};
use commonware_consensus::{
    marshal::{ancestry::Ancestry, Update},
    simplex::types::Context,
    types::{Epoch, Epocher as _},
    Reporter,
};
use commonware_cryptography::{BatchEntry, BatchVerifier, Digested, Digestible};
use commonware_parallel::Sequential;
use commonware_runtime::{
    telemetry::metrics::{Counter, Gauge, MetricsExt as _},
    Clock, Metrics, Spawner, Storage,
};
use commonware_utils::Acknowledgement;
use futures::{channel::mpsc, StreamExt};
use logos_api::{block::Seed, consensus::Scheme, receipt::receipt_bytes, Block};
use logos_mempool::Mempool;
use logos_primitives::{Address, Hash, Height, PublicKey};
use logos_types::{codec::encode, Transaction, TRANSACTION_NAMESPACE};
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};
use tracing::{debug, info, warn};

/// How far ahead of the local clock a block's timestamp may be, in ms. Well below the leader
/// timeout (1,000 ms by default; the engine refuses a configuration where drift plus block
/// time reaches it): a leader that stamps its block this far ahead cannot make the next
/// leader's proposal miss its view, because a proposer waits at most `block_time_ms` for its
/// parent's timestamp to pass (see [`Application`]'s `propose`).
pub const TIMESTAMP_DRIFT_MAX_MS: u64 = 500;

/// Longest a proposer waits for the seed its block must carry (its parent's height signed by a
/// quorum of the epoch's committee, [`crate::seeds`]), in ms: the default leader timeout. If it
/// does not come, the leader proposes nothing and the view times out.
pub const SEED_WAIT_MAX_MS: u64 = 1_000;

/// Builds and verifies blocks (see the module docs).
pub struct Application<E: Storage + Clock + Metrics + Spawner> {
    shared: Arc<Shared<E>>,
    me: PublicKey,
    block_time_ms: u64,
}

impl<E: Storage + Clock + Metrics + Spawner> Clone for Application<E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            me: self.me.clone(),
            block_time_ms: self.block_time_ms,
        }
    }
}

/// `clock`'s time in ms since the Unix epoch (0 before it): the unit of block timestamps.
pub fn now_ms(clock: &impl Clock) -> u64 {
    clock
        .current()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

impl<E: Storage + Clock + Metrics + Spawner> Application<E> {
    /// An application for the validator `me`, proposing at most one block per `block_time_ms`.
    pub fn new(shared: Arc<Shared<E>>, me: PublicKey, block_time_ms: u64) -> Self {
        Self {
            shared,
            me,
            block_time_ms,
        }
    }

    /// Makes sure the state after `parent` is known, executing unfinalized ancestors taken
    /// from `ancestry` if needed. False if the parent conflicts with the finalized chain.
    async fn ensure_parent_state(
        &self,
        parent: &Digested<Block>,
        mut ancestry: impl Ancestry<Block>,
    ) -> bool {
        let mut missing = Vec::new();
        let mut cursor = parent.clone();
        {
            let chain = self.shared.chain().await;
            while !chain.knows(&cursor.digest()) {
                if cursor.inner().height <= chain.tip().height
                    || missing.len() >= crate::chain::PENDING_BLOCKS_MAX
                {
                    return false;
                }
                missing.push(cursor);
                match ancestry.next().await {
                    Some(block) => cursor = block,
                    None => return false,
                }
            }
        }
        for block in missing.into_iter().rev() {
            let context = self.shared.block_context(block.inner());
            let mut chain = self.shared.chain_mut().await;
            if let Err(error) = chain.verify(block.inner(), &context).await {
                warn!(height = block.inner().height.get(), %error, "ancestor failed to execute");
                return false;
            }
            drop(chain);
            // Known here now: its height may be this node's to sign.
            self.shared
                .note_block(block.inner().height.get(), block.digest());
        }
        true
    }

    /// Builds the child of `parent`. Candidates that cannot be included on the parent's state
    /// are left out and evicted from the mempool (with their senders' later nonces), so a
    /// block is always built unless the state cannot be read or too many blocks are pending.
    async fn build(&self, parent: &Block, timestamp_ms: u64, seed: Option<Seed>) -> Option<Block> {
        let parent_digest = parent.digest();
        let height = Height::new(parent.height.get().saturating_add(1));
        let candidates = self.candidates(&parent_digest).await;
        let author = Address::from_public_key(&self.me);
        let randomness = seed.map_or(parent_digest, |seed| seed.randomness());
        let context = self
            .shared
            .context(height.get(), author, parent_digest, randomness);
        let chain = self.shared.chain().await;
        let built = match chain
            .build(&parent_digest, height, &context, &candidates)
            .await
        {
            Ok(built) => built,
            Err(error) => {
                warn!(%error, "cannot build block");
                return None;
            }
        };
        drop(chain);
        if !built.skipped.is_empty() {
            let evicted = self.shared.with_mempool(|pool| {
                built
                    .skipped
                    .iter()
                    .map(|(transaction, _)| pool.evict(&transaction.hash()))
                    .sum::<usize>()
            });
            debug!(
                height = height.get(),
                skipped = built.skipped.len(),
                evicted,
                first_reason = %built.skipped[0].1,
                "left transactions out of the block"
            );
        }
        let block = Block::new(
            parent_digest,
            height,
            timestamp_ms,
            self.me.clone(),
            built.batch.root(),
            built.executed.receipts_root,
            seed,
            built.included,
        );
        let mut chain = self.shared.chain_mut().await;
        chain
            .insert_pending(&block, built.batch, built.executed)
            .ok()?;
        Some(block)
    }

    /// The mempool's candidates for a child of `parent`: per sender a run of nonces from its
    /// next nonce in the parent's state, highest fee first, at most `max_block_transactions`.
    /// Accounts are read only for senders taken in head-fee order until the block could be
    /// full, and for at most twice `max_block_transactions` senders; a sender whose account
    /// cannot be read is left out.
    async fn candidates(&self, parent: &Hash) -> Vec<Transaction> {
        let max = self.shared.genesis().params.max_block_transactions as usize;
        let mut runs = self.shared.with_mempool(|pool| pool.runs());
        runs.sort_by_key(|(_, run)| {
            std::cmp::Reverse(run.first().map(|first| first.payload().fee))
        });
        let chain = self.shared.chain().await;
        let mut next_nonce = BTreeMap::new();
        let mut taken = Vec::new();
        let mut runnable = 0usize;
        // At most this many account reads per proposal, whatever the pool holds.
        let reads_max = max.saturating_mul(2);
        for (sender, run) in runs.into_iter().take(reads_max) {
            if runnable >= max {
                break;
            }
            match chain.account_at(parent, &sender).await {
                Ok(account) => {
                    runnable = runnable.saturating_add(
                        run.iter()
                            .filter(|transaction| transaction.payload().nonce >= account.nonce)
                            .count(),
                    );
                    next_nonce.insert(sender, account.nonce);
                    taken.push((sender, run));
                }
                Err(error) => debug!(%error, "sender's account unreadable; left out"),
            }
        }
        Mempool::select(taken, &next_nonce, max)
            .into_iter()
            .map(|transaction| (*transaction).clone())
            .collect()
    }

    /// The seed a child of `parent` must carry: `Some(None)` if `parent`'s state holds no group
    /// key for the child's epoch, `Some(Some(seed))` once a quorum's partials recovered it
    /// (waiting at most [`SEED_WAIT_MAX_MS`]), `None` if it did not come (no proposal).
    async fn parent_seed(&self, runtime: &E, parent: &Block) -> Option<Option<Seed>> {
        let known = self.shared.chain().await.seed_key(&parent.digest()).await;
        let (epoch, key) = match known {
            Ok(known) => known,
            Err(error) => {
                warn!(%error, "parent's group key unreadable; no proposal");
                return None;
            }
        };
        if key.is_none() {
            return Some(None);
        }
        let height = parent.height.get();
        let wait = Duration::from_millis(SEED_WAIT_MAX_MS);
        let seed = crate::seeds::wait_for(runtime, &self.shared, height, epoch, wait).await;
        let Some(seed) = seed else {
            warn!(
                height,
                epoch, "no seed recovered for the parent; no proposal"
            );
            return None;
        };
        // Recovered against the key this node holds for the epoch: checked against the
        // parent's own (a fork's key could differ), so this node never proposes a block the
        // chain's rule refuses.
        let chain_id = self.shared.chain_id();
        let checked =
            logos_beacon::check_seed(key.as_deref(), epoch, &chain_id, height, Some(&seed.0));
        if let Err(error) = checked {
            warn!(height, %error, "recovered seed does not fit the parent; no proposal");
            return None;
        }
        Some(Some(seed))
    }

    fn signatures_valid(&self, rng: &mut impl rand::CryptoRng, block: &Block) -> bool {
        let unverified: Vec<&Transaction> = self.shared.with_mempool(|pool| {
            block
                .transactions
                .iter()
                .filter(|transaction| !pool.contains(&transaction.hash()))
                .collect()
        });
        if unverified.is_empty() {
            return true;
        }
        let messages: Vec<Vec<u8>> = unverified
            .iter()
            .map(|transaction| encode(transaction.payload()))
            .collect();
        PublicKey::verify_batch(
            rng,
            &unverified,
            |index, transaction| BatchEntry {
                namespace: TRANSACTION_NAMESPACE,
                message: &messages[index],
                public_key: &transaction.payload().sender,
                signature: transaction.signature(),
            },
            &Sequential,
        )
    }
}

impl<E> commonware_consensus::Application<E> for Application<E>
where
    E: Storage + Clock + Metrics + Spawner + rand::CryptoRng,
{
    type SigningScheme = Scheme;
    type Context = Context<Hash, PublicKey>;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (runtime, _context): (E, Self::Context),
        mut ancestry: impl Ancestry<Block>,
        _input: (),
    ) -> Option<Digested<Block>> {
        let parent_digested = ancestry.next().await?;
        if !self.ensure_parent_state(&parent_digested, ancestry).await {
            return None;
        }
        let parent = parent_digested.inner();
        // Pace blocks at `block_time_ms`, but never wait longer than that: a parent stamped
        // in the future (by at most the allowed drift) must not stall this view.
        let earliest_ms = parent.timestamp_ms.saturating_add(self.block_time_ms);
        let now = now_ms(&runtime);
        let wait_ms = earliest_ms.saturating_sub(now).min(self.block_time_ms);
        if wait_ms > 0 {
            runtime.sleep(Duration::from_millis(wait_ms)).await;
        }
        // The parent's height is this node's to sign too (a parent verified before a restart
        // was not noted since).
        self.shared.note_block(parent.height.get(), parent.digest());
        let seed = self.parent_seed(&runtime, parent).await?;
        let timestamp_ms = now_ms(&runtime).max(parent.timestamp_ms);
        let block = self.build(parent, timestamp_ms, seed).await?;
        self.shared.note_block(block.height.get(), block.digest());
        debug!(
            height = block.height.get(),
            transactions = block.transactions.len(),
            "proposed block"
        );
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (mut runtime, context): (E, Self::Context),
        mut ancestry: impl Ancestry<Block>,
    ) -> bool {
        let (Some(block), Some(parent_digested)) = (ancestry.next().await, ancestry.next().await)
        else {
            return false;
        };
        let block = block.inner();
        let parent = parent_digested.inner();
        if block.proposer != context.leader {
            warn!(
                height = block.height.get(),
                "block not proposed by the round's leader"
            );
            return false;
        }
        // Ahead of this clock by more than the drift is refused, unless the block only
        // repeats its parent's (already accepted) timestamp: an honest child of a
        // future-stamped parent must not be refused by a validator with a slower clock.
        let ahead = block.timestamp_ms > now_ms(&runtime).saturating_add(TIMESTAMP_DRIFT_MAX_MS)
            && block.timestamp_ms > parent.timestamp_ms;
        if block.timestamp_ms < parent.timestamp_ms || ahead {
            warn!(height = block.height.get(), "block timestamp out of bounds");
            return false;
        }
        if !self.signatures_valid(&mut runtime, block) {
            warn!(
                height = block.height.get(),
                "block carries an invalid signature"
            );
            return false;
        }
        if !self.ensure_parent_state(&parent_digested, ancestry).await {
            return false;
        }
        let block_context = self.shared.block_context(block);
        let executed = {
            let chain = self.shared.chain().await;
            chain.execute_block(block, &block_context).await
        };
        let (batch, executed) = match executed {
            Ok(executed) => executed,
            Err(error) => {
                warn!(height = block.height.get(), %error, "block invalid");
                return false;
            }
        };
        let mut chain = self.shared.chain_mut().await;
        let kept = chain.insert_pending(block, batch, executed).is_ok();
        drop(chain);
        if kept {
            // This node may sign the block's height: the next block's seed.
            self.shared.note_block(block.height.get(), block.digest());
        }
        kept
    }
}

/// Receives marshal's finalized-block updates (the marshal [`Reporter`]).
///
/// The channel is unbounded, but marshal holds at most `max_pending_acks` unacknowledged
/// blocks, which bounds it; tips are not forwarded.
#[derive(Clone)]
pub struct FinalizedReporter {
    sender: mpsc::UnboundedSender<Update<Block>>,
}

impl Reporter for FinalizedReporter {
    type Activity = Update<Block>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        if matches!(activity, Update::Tip(..)) {
            return commonware_actor::Feedback::Ok;
        }
        match self.sender.unbounded_send(activity) {
            Ok(()) => commonware_actor::Feedback::Ok,
            Err(_) => commonware_actor::Feedback::Closed,
        }
    }
}

/// Prometheus metrics of finalization (names prefixed by the runtime label).
struct FinalizerMetrics {
    height: Gauge,
    transactions: Counter,
    failed_calls: Counter,
    mempool: Gauge,
}

/// Applies finalized blocks in order (see the module docs).
pub struct Finalizer<E: Storage + Clock + Metrics + Spawner> {
    shared: Arc<Shared<E>>,
    receiver: mpsc::UnboundedReceiver<Update<Block>>,
    metrics: FinalizerMetrics,
    invariants: Option<InvariantCheck>,
    retention: Option<(MarshalMailbox, u64, Epochs)>,
}

impl<E: Storage + Clock + Metrics + Spawner> Finalizer<E> {
    /// Also checks every invariant after every finalized block (see [`InvariantCheck`]).
    pub fn check_invariants(mut self, check: InvariantCheck) -> Self {
        self.invariants = Some(check);
        self
    }

    /// Also asks marshal to prune finalized blocks and certificates more than `blocks` below
    /// the tip, every [`PRUNE_INTERVAL_BLOCKS`] blocks (marshal drops whole archive sections,
    /// so up to a section more is kept), never the current epoch's floor (the previous
    /// epoch's last block, which `epochs` names and a restarted engine builds on).
    pub fn retain(mut self, marshal: MarshalMailbox, blocks: u64, epochs: Epochs) -> Self {
        self.retention = Some((marshal, blocks, epochs));
        self
    }

    /// A finalizer and the reporter to give marshal; registers its metrics on `metrics`.
    pub fn new(shared: Arc<Shared<E>>, metrics: &impl Metrics) -> (Self, FinalizedReporter) {
        let (sender, receiver) = mpsc::unbounded();
        let metrics = FinalizerMetrics {
            height: metrics.gauge(
                "finalized_height",
                "height of the latest finalized and executed block",
            ),
            transactions: metrics
                .counter("finalized_transactions", "transactions in finalized blocks"),
            failed_calls: metrics.counter(
                "failed_calls",
                "finalized transactions whose call failed (fee still paid)",
            ),
            mempool: metrics.gauge(
                "mempool_transactions",
                "transactions waiting in the mempool",
            ),
        };
        (
            Self {
                shared,
                receiver,
                metrics,
                invariants: None,
                retention: None,
            },
            FinalizedReporter { sender },
        )
    }

    /// Runs until marshal stops.
    pub async fn run(mut self) {
        let mut invariants = self.invariants.take();
        // Applied, not yet durable: acknowledged by the next commit.
        let mut uncommitted = Vec::new();
        loop {
            let update = if uncommitted.is_empty() {
                self.receiver.next().await
            } else {
                match self.receiver.try_recv() {
                    Ok(update) => Some(update),
                    Err(mpsc::TryRecvError::Closed) => None,
                    // Nothing more ready: the group ends here.
                    Err(mpsc::TryRecvError::Empty) => {
                        self.commit(&mut uncommitted).await;
                        continue;
                    }
                }
            };
            let Some(update) = update else { break };
            let Update::Block(block, acknowledgement) = update else {
                continue;
            };
            match self.apply(block.inner()).await {
                Ok(Some(finalized)) => {
                    if let Some(check) = invariants.as_mut() {
                        check.after(&finalized);
                    }
                }
                Ok(None) => {}
                // Without acknowledgement marshal redelivers after a restart; the state is intact.
                Err(error) => panic!(
                    "cannot apply finalized block {}: {error}",
                    block.inner().height.get()
                ),
            }
            uncommitted.push(acknowledgement);
            if uncommitted.len() >= crate::engine::tuning::MAX_PENDING_ACKS {
                self.commit(&mut uncommitted).await;
            }
        }
        self.commit(&mut uncommitted).await;
    }

    /// Makes the applied blocks' receipts durable, then their state (one fsync for the
    /// group), then acknowledges the blocks: the state never holds a block whose receipts a
    /// crash could lose.
    async fn commit<A: Acknowledgement>(&self, acknowledgements: &mut Vec<A>) {
        let result = async {
            let syncing = self.shared.receipts_mut().await.take_syncs();
            for handle in syncing {
                handle
                    .await
                    .map_err(|error| ChainError::Storage(error.to_string()))?;
            }
            self.shared.chain_mut().await.commit().await
        }
        .await;
        // Without acknowledgement marshal redelivers after a restart; the state is intact.
        if let Err(error) = result {
            panic!("cannot commit finalized blocks: {error}");
        }
        for acknowledgement in acknowledgements.drain(..) {
            acknowledgement.acknowledge();
        }
    }

    /// Applies `block`; the finalized block, or `None` for a redelivery of an applied one.
    async fn apply(&self, block: &Block) -> Result<Option<Arc<FinalizedBlock>>, ChainError> {
        let context = self.shared.block_context(block);
        let prepared = {
            let mut chain = self.shared.chain_mut().await;
            if block.height <= chain.tip().height {
                return Ok(None); // redelivery after a restart
            }
            chain.prepare_finalize(block, &context).await?
        };
        // Receipts reach the operating system before the state moves past the block and are
        // synced before its commit (see `crate::receipts`), written without the chain lock (only this finalizer finalizes, so the prepared
        // block stays pending meanwhile).
        let hashes: Vec<Hash> = block.transactions.iter().map(|tx| tx.hash()).collect();
        let bytes: Vec<Vec<u8>> = prepared.receipts.iter().map(receipt_bytes).collect();
        self.shared
            .receipts_mut()
            .await
            .put(block.height.get(), block.digest(), &hashes, &bytes)
            .await
            .map_err(|error| ChainError::Storage(error.to_string()))?;
        let mut chain = self.shared.chain_mut().await;
        let executed = chain.finalize(block, &context).await?;
        let tip = chain.tip().digest;
        let mut senders = BTreeMap::new();
        for transaction in &block.transactions {
            let sender = transaction.sender();
            let account = chain.account_at(&tip, &sender).await?;
            senders.insert(sender, account);
        }
        // Proofs against this block's state exist only while it is the tip.
        let epoch_proof = crate::chain::epoch_proof(&chain, block.height.get()).await?;
        drop(chain);
        if let Some((epoch, parts)) = epoch_proof {
            self.shared
                .receipts_mut()
                .await
                .put_epoch(epoch, parts)
                .await
                .map_err(|error| ChainError::Storage(error.to_string()))?;
        }
        // Included nonces leave the pool; what the block made unpayable (an escrow the pool
        // could not see) leaves with them.
        let pooled = self.shared.with_mempool(|pool| {
            for (sender, account) in &senders {
                pool.recheck_sender(sender, account);
            }
            pool.len()
        });
        self.metrics.mempool.set(pooled as i64);
        self.metrics.height.set(block.height.get() as i64);
        self.metrics
            .transactions
            .inc_by(block.transactions.len() as u64);
        let failed = executed
            .receipts
            .iter()
            .filter(|receipt| !receipt.success)
            .count();
        self.metrics.failed_calls.inc_by(failed as u64);
        if block.height.get().is_multiple_of(100) || !block.transactions.is_empty() {
            info!(
                height = block.height.get(),
                transactions = block.transactions.len(),
                "finalized"
            );
        }
        if let Some((marshal, blocks, epochs)) = &self.retention {
            let height = block.height.get();
            if height.is_multiple_of(PRUNE_INTERVAL_BLOCKS) && height > *blocks {
                // The block the current epoch's engine builds on stays (a restart needs it);
                // epoch 0 builds on the genesis block, which is not archived.
                let floor = epochs
                    .current()
                    .filter(|epoch| *epoch > 0)
                    .and_then(|epoch| epochs.first(Epoch::new(epoch)))
                    .map_or(u64::MAX, |first| first.get().saturating_sub(1));
                marshal.prune(Height::new((height - blocks).min(floor)));
                self.shared
                    .receipts_mut()
                    .await
                    .prune(height - blocks)
                    .await
                    .map_err(|error| ChainError::Storage(error.to_string()))?;
            }
        }
        let finalized = Arc::new(FinalizedBlock {
            block: block.clone(),
            executed,
        });
        self.shared.publish(finalized.clone());
        Ok(Some(finalized))
    }
}
