//! The mempool: transactions waiting for a block.
//!
//! Pure data structure; the node supplies each sender's finalized account state on admission.
//!
//! # Admission ([`Mempool::insert`])
//! A transaction is rejected ([`Rejection`]) when it is for another chain, its signature does
//! not verify, its fee is below the minimum, its nonce is below the sender's next nonce
//! (replayed), or it is neither a pooled nonce (a replacement) nor the next free one after the
//! sender's pooled run (no gaps: a nonce that cannot run yet would hold a slot, and evict
//! runnable transactions, without ever paying a fee), or it is more than `nonce_gap_max` above
//! the sender's next nonce, the sender's finalized balance cannot cover
//! its **pending spend** (the fees and moved amounts of all its pooled transactions) plus this
//! transaction's fee and the amount it moves or reserves (a transfer's amount, a provider's
//! bond, a provisioner's stake), it is already pooled, or the pool is full and it does not pay
//! more than the cheapest pooled transaction. A transaction with the same sender and nonce as a
//! pooled one replaces it only with a strictly higher fee (its cost replaces the old one's in
//! the pending spend).
//!
//! Pending spend is what stops a sender from queueing transactions that pass admission one by
//! one but cannot all be paid: a draining transfer followed by a next nonce that pays a fee
//! from the drained balance is refused here. Nothing queues behind a call whose cost the pool
//! cannot see (a lease's escrow, priced by the runtime from the catalog) until it is finalized
//! ([`Rejection::BehindUnpricedCall`]). Should a later transaction still turn out
//! unpayable (admission raced a block), the block builder skips it and [`Mempool::evict`]s it,
//! and [`Mempool::recheck_sender`] drops whatever a finalized block made unpayable.
//!
//! # Selection ([`Mempool::select`])
//! Per sender, transactions form a run of consecutive nonces starting at the sender's next
//! nonce in the parent state; across senders, the run heads are taken highest fee first.
//!
//! # Limits
//! `transactions_max` in total and `per_sender_max` per sender; when full, the cheapest
//! transaction and the sender's later nonces are evicted to admit a better-paying one. Whenever
//! a transaction leaves the pool other than by being finalized (evicted, displaced, made
//! unpayable), its sender's later nonces leave with it: they cannot run before it, and a
//! re-submission is admitted afresh against the sender's balance.

use logos_primitives::{Address, Amount, ChainId, Hash};
use logos_types::{
    balances, dvci, governance, market, peers, provisioning, staking, Call, Transaction,
    TransactionError,
};
use std::{
    collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap},
    sync::Arc,
};

/// Mempool limits.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most transactions held in total.
    pub transactions_max: usize,
    /// Most transactions held per sender.
    pub per_sender_max: usize,
    /// Largest accepted distance between a nonce and the sender's next nonce.
    pub nonce_gap_max: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            transactions_max: 100_000,
            per_sender_max: 256,
            nonce_gap_max: 256,
        }
    }
}

/// Why a transaction was not admitted. Each maps to one JSON-RPC error code.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Malformed, oversize, bad signature or wrong chain id.
    #[error(transparent)]
    Invalid(#[from] TransactionError),
    /// The nonce was already used.
    #[error("stale nonce: the sender's next nonce is {expected}, got {actual}")]
    StaleNonce {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's nonce.
        actual: u64,
    },
    /// The nonce is too far ahead.
    #[error("nonce {actual} is more than {gap_max} ahead of the next nonce {expected}")]
    NonceGap {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's nonce.
        actual: u64,
        /// The limit.
        gap_max: u64,
    },
    /// The fee is below the chain minimum.
    #[error("fee {fee} is below the minimum {min_fee}")]
    FeeTooLow {
        /// Offered fee.
        fee: Amount,
        /// Chain minimum.
        min_fee: Amount,
    },
    /// Balance below the pending spend plus this transaction's fee and moved amount.
    #[error(
        "insufficient balance: {available} available, {required} required \
         ({pending} of it by the sender's pooled transactions)"
    )]
    InsufficientBalance {
        /// The sender's finalized free balance.
        available: Amount,
        /// Pending spend plus this transaction's fee and moved amount.
        required: Amount,
        /// The pending spend: fees and moved amounts of the sender's pooled transactions
        /// (without the one this transaction replaces).
        pending: Amount,
    },
    /// Already pooled.
    #[error("transaction already known")]
    AlreadyKnown,
    /// A pooled transaction with the same sender and nonce pays at least as much.
    #[error("a transaction with this nonce is pooled with fee {pooled_fee}; replacement needs a higher fee")]
    ReplacementUnderpriced {
        /// Fee of the pooled transaction.
        pooled_fee: Amount,
    },
    /// Pool or sender share is full and the fee does not displace anything.
    #[error("mempool full")]
    PoolFull,
    /// An earlier pooled nonce of the sender is a call whose cost is known only when it runs
    /// (a lease's escrow): later nonces wait until it is finalized.
    #[error(
        "nonce {nonce} of this sender is a lease call whose escrow is known only when it runs; \
         send later nonces once it is finalized"
    )]
    BehindUnpricedCall {
        /// The pooled nonce with the unpriced call.
        nonce: u64,
    },
}

/// True for calls whose cost to the sender the pool cannot compute (a lease's escrow, a
/// proposal's deposit).
fn unpriced(call: &Call) -> bool {
    matches!(
        call,
        Call::Market(market::Call::CreateLease { .. } | market::Call::ExtendLease { .. })
            | Call::Governance(governance::Call::Propose { .. })
    )
}

impl Rejection {
    /// The rejection's name (its variant), as JSON-RPC errors carry it.
    pub fn name(&self) -> &'static str {
        match self {
            Rejection::Invalid(TransactionError::Malformed(_)) => "Malformed",
            Rejection::Invalid(TransactionError::Oversize { .. }) => "Oversize",
            Rejection::Invalid(TransactionError::BadSignature) => "BadSignature",
            Rejection::Invalid(TransactionError::WrongChainId { .. }) => "WrongChainId",
            Rejection::StaleNonce { .. } => "StaleNonce",
            Rejection::NonceGap { .. } => "NonceGap",
            Rejection::FeeTooLow { .. } => "FeeTooLow",
            Rejection::InsufficientBalance { .. } => "InsufficientBalance",
            Rejection::AlreadyKnown => "AlreadyKnown",
            Rejection::ReplacementUnderpriced { .. } => "ReplacementUnderpriced",
            Rejection::PoolFull => "PoolFull",
            Rejection::BehindUnpricedCall { .. } => "BehindUnpricedCall",
        }
    }
}

/// What the pool needs to know about the sender and the chain to admit a transaction.
#[derive(Clone, Debug)]
pub struct Admission {
    /// This network.
    pub chain_id: ChainId,
    /// Minimum fee.
    pub min_fee: Amount,
    /// The sender's account at the finalized head.
    pub account: balances::AccountInfo,
    /// Whether the signature was already verified (e.g. in a batch).
    pub signature_verified: bool,
}

struct Entry {
    transaction: Arc<Transaction>,
    sender: Address,
    /// Fee plus moved amount ([`cost`]), counted in the sender's pending spend.
    cost: Amount,
}

/// The pool. See the module docs.
pub struct Mempool {
    config: Config,
    by_hash: HashMap<Hash, Entry>,
    by_sender: BTreeMap<Address, BTreeMap<u64, Hash>>,
    by_fee: BTreeSet<(Amount, Hash)>,
    /// Per sender, the sum of its pooled transactions' costs (one entry per pooled sender).
    pending_spend: BTreeMap<Address, Amount>,
}

impl Mempool {
    /// An empty pool with `config` limits.
    pub fn new(config: Config) -> Self {
        assert!(config.transactions_max > 0 && config.per_sender_max > 0);
        Self {
            config,
            by_hash: HashMap::new(),
            by_sender: BTreeMap::new(),
            by_fee: BTreeSet::new(),
            pending_spend: BTreeMap::new(),
        }
    }

    /// Number of pooled transactions.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True if nothing is pooled.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// True if `hash` is pooled (its signature was verified on admission).
    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The pooled transaction with `hash`, if any.
    pub fn get(&self, hash: &Hash) -> Option<Arc<Transaction>> {
        self.by_hash
            .get(hash)
            .map(|entry| entry.transaction.clone())
    }

    /// Admits `transaction` or says why not (see the module docs). Failed admissions change
    /// nothing.
    pub fn insert(
        &mut self,
        transaction: Transaction,
        admission: &Admission,
    ) -> Result<Hash, Rejection> {
        let hash = transaction.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(Rejection::AlreadyKnown);
        }
        // A transaction built locally (a node's own evidence or vote records) never went
        // through the decoder's bound: one larger than the wire allows would be relayed and
        // every peer would refuse the message and block this node.
        let size_bytes = logos_types::transaction_size(&transaction.payload().call);
        if size_bytes > logos_types::TRANSACTION_MAX_BYTES {
            return Err(TransactionError::Oversize { size_bytes }.into());
        }
        transaction.check_chain_id(&admission.chain_id)?;
        let payload = transaction.payload();
        if payload.fee < admission.min_fee {
            return Err(Rejection::FeeTooLow {
                fee: payload.fee,
                min_fee: admission.min_fee,
            });
        }
        check_nonce(
            payload.nonce,
            admission.account.nonce,
            self.config.nonce_gap_max,
        )?;
        let sender = transaction.sender();
        let replaced = self.replaced_entry(&sender, payload.nonce, payload.fee)?;
        if replaced.is_none() {
            self.check_contiguous(&sender, payload.nonce, admission.account.nonce)?;
        }
        let pending = self
            .pending_spend(&sender)
            .saturating_sub(replaced.map_or(Amount::ZERO, |old| self.by_hash[&old].cost));
        let cost = check_balance(&transaction, pending, admission.account.balance)?;
        if !admission.signature_verified {
            transaction.verify_signature()?;
        }
        if replaced.is_none() {
            self.make_room(&sender, payload.fee)?;
        }
        if let Some(old) = replaced {
            self.remove(&old);
        }
        self.by_sender
            .entry(sender)
            .or_default()
            .insert(payload.nonce, hash);
        self.by_fee.insert((payload.fee, hash));
        let spend = self.pending_spend.entry(sender).or_insert(Amount::ZERO);
        *spend = spend.saturating_add(cost);
        self.by_hash.insert(
            hash,
            Entry {
                transaction: Arc::new(transaction),
                sender,
                cost,
            },
        );
        Ok(hash)
    }

    /// The nonce `sender`'s next transaction takes: after its highest pooled one, or
    /// `finalized` (its next nonce in the finalized state) when none is pooled.
    pub fn next_nonce(&self, sender: &Address, finalized: u64) -> u64 {
        self.by_sender
            .get(sender)
            .and_then(|nonces| nonces.keys().next_back())
            .map_or(finalized, |highest| {
                highest.saturating_add(1).max(finalized)
            })
    }

    /// The fees and moved amounts of `sender`'s pooled transactions.
    pub fn pending_spend(&self, sender: &Address) -> Amount {
        self.pending_spend
            .get(sender)
            .copied()
            .unwrap_or(Amount::ZERO)
    }

    /// A new nonce must be the next free one after the sender's pooled run (which starts at its
    /// next nonce and has no gaps).
    fn check_contiguous(&self, sender: &Address, nonce: u64, next: u64) -> Result<(), Rejection> {
        let pooled = self
            .by_sender
            .get(sender)
            .map_or(0, |nonces| nonces.range(next..).count() as u64);
        let expected = next.saturating_add(pooled);
        if nonce != expected {
            return Err(Rejection::NonceGap {
                expected,
                actual: nonce,
                gap_max: self.config.nonce_gap_max,
            });
        }
        let barrier = self.by_sender.get(sender).and_then(|nonces| {
            nonces
                .iter()
                .find(|(_, hash)| unpriced(&self.by_hash[*hash].transaction.payload().call))
                .map(|(nonce, _)| *nonce)
        });
        if let Some(nonce) = barrier {
            return Err(Rejection::BehindUnpricedCall { nonce });
        }
        Ok(())
    }

    fn replaced_entry(
        &self,
        sender: &Address,
        nonce: u64,
        fee: Amount,
    ) -> Result<Option<Hash>, Rejection> {
        let Some(existing) = self
            .by_sender
            .get(sender)
            .and_then(|nonces| nonces.get(&nonce))
        else {
            return Ok(None);
        };
        let pooled_fee = self.by_hash[existing].transaction.payload().fee;
        if fee <= pooled_fee {
            return Err(Rejection::ReplacementUnderpriced { pooled_fee });
        }
        Ok(Some(*existing))
    }

    fn make_room(&mut self, sender: &Address, fee: Amount) -> Result<(), Rejection> {
        let sender_count = self.by_sender.get(sender).map_or(0, BTreeMap::len);
        if sender_count >= self.config.per_sender_max {
            return Err(Rejection::PoolFull);
        }
        if self.by_hash.len() < self.config.transactions_max {
            return Ok(());
        }
        // The cheapest transaction of another sender: evicting one of the sender's own
        // earlier nonces would leave this one behind a gap.
        let victim = self
            .by_fee
            .iter()
            .take_while(|(pooled_fee, _)| *pooled_fee < fee)
            .find(|(_, hash)| self.by_hash[hash].sender != *sender)
            .map(|(_, hash)| *hash);
        let Some(cheapest) = victim else {
            return Err(Rejection::PoolFull);
        };
        // Evict the cheapest and its sender's later nonces so no sender is left with a gap.
        self.evict(&cheapest);
        Ok(())
    }

    /// Removes `hash` and its sender's later nonces (see the module docs); returns how many
    /// transactions left. The block builder calls this for a transaction that could not be
    /// included (its fee unpayable on the parent state, or otherwise invalid there).
    pub fn evict(&mut self, hash: &Hash) -> usize {
        let Some(entry) = self.by_hash.get(hash) else {
            return 0;
        };
        let sender = entry.sender;
        let nonce = entry.transaction.payload().nonce;
        self.remove_from(&sender, nonce)
    }

    /// Removes `sender`'s transactions from `nonce` on; returns how many.
    fn remove_from(&mut self, sender: &Address, nonce: u64) -> usize {
        let doomed: Vec<Hash> = self
            .by_sender
            .get(sender)
            .map(|nonces| nonces.range(nonce..).map(|(_, hash)| *hash).collect())
            .unwrap_or_default();
        for hash in &doomed {
            self.remove(hash);
        }
        doomed.len()
    }

    fn remove(&mut self, hash: &Hash) -> Option<Arc<Transaction>> {
        let entry = self.by_hash.remove(hash)?;
        let payload = entry.transaction.payload();
        self.by_fee.remove(&(payload.fee, *hash));
        if let Some(spend) = self.pending_spend.get_mut(&entry.sender) {
            *spend = spend.saturating_sub(entry.cost);
        }
        if let Some(nonces) = self.by_sender.get_mut(&entry.sender) {
            nonces.remove(&payload.nonce);
            if nonces.is_empty() {
                self.by_sender.remove(&entry.sender);
                self.pending_spend.remove(&entry.sender);
            }
        }
        Some(entry.transaction)
    }

    /// Brings `sender`'s transactions up to date with its account at the new finalized tip:
    /// drops nonces below `account.nonce` (included in a finalized block, or made stale by
    /// one), then walks the rest in nonce order and evicts, from the first whose running cost
    /// exceeds `account.balance`, that transaction and all later ones. Returns how many were
    /// evicted as unpayable.
    pub fn recheck_sender(&mut self, sender: &Address, account: &balances::AccountInfo) -> usize {
        let Some(nonces) = self.by_sender.get(sender) else {
            return 0;
        };
        let stale: Vec<Hash> = nonces
            .range(..account.nonce)
            .map(|(_, hash)| *hash)
            .collect();
        for hash in stale {
            self.remove(&hash);
        }
        let Some(nonces) = self.by_sender.get(sender) else {
            return 0;
        };
        let mut running = Amount::ZERO;
        let mut unpayable = None;
        for (nonce, hash) in nonces {
            running = running.saturating_add(self.by_hash[hash].cost);
            if running > account.balance {
                unpayable = Some(*nonce);
                break;
            }
        }
        unpayable.map_or(0, |nonce| self.remove_from(sender, nonce))
    }

    /// Each sender's pooled transactions in nonce order, for block building.
    pub fn runs(&self) -> Vec<(Address, Vec<Arc<Transaction>>)> {
        self.by_sender
            .iter()
            .map(|(sender, nonces)| {
                let run = nonces
                    .values()
                    .map(|hash| self.by_hash[hash].transaction.clone())
                    .collect();
                (*sender, run)
            })
            .collect()
    }

    /// Picks up to `max` transactions (see the module docs). `next_nonce` gives each sender's
    /// next nonce in the parent state.
    pub fn select(
        runs: Vec<(Address, Vec<Arc<Transaction>>)>,
        next_nonce: &BTreeMap<Address, u64>,
        max: usize,
    ) -> Vec<Arc<Transaction>> {
        let mut queues: Vec<std::collections::VecDeque<Arc<Transaction>>> = Vec::new();
        for (sender, run) in runs {
            let mut expected = next_nonce.get(&sender).copied().unwrap_or(0);
            let mut queue = std::collections::VecDeque::new();
            for transaction in run {
                let nonce = transaction.payload().nonce;
                if nonce < expected {
                    continue;
                }
                if nonce != expected {
                    break;
                }
                queue.push_back(transaction);
                expected += 1;
            }
            if !queue.is_empty() {
                queues.push(queue);
            }
        }
        let mut heap: BinaryHeap<(Amount, std::cmp::Reverse<usize>)> = queues
            .iter()
            .enumerate()
            .map(|(index, queue)| (queue[0].payload().fee, std::cmp::Reverse(index)))
            .collect();
        let mut selected = Vec::new();
        while selected.len() < max {
            let Some((_, std::cmp::Reverse(index))) = heap.pop() else {
                break;
            };
            let queue = &mut queues[index];
            selected.push(queue.pop_front().expect("queued run is not empty"));
            if let Some(next) = queue.front() {
                heap.push((next.payload().fee, std::cmp::Reverse(index)));
            }
        }
        selected
    }
}

fn check_nonce(nonce: u64, expected: u64, gap_max: u64) -> Result<(), Rejection> {
    if nonce < expected {
        return Err(Rejection::StaleNonce {
            expected,
            actual: nonce,
        });
    }
    if nonce - expected > gap_max {
        return Err(Rejection::NonceGap {
            expected,
            actual: nonce,
            gap_max,
        });
    }
    Ok(())
}

/// Checks that `available` covers `pending` plus the transaction's cost; returns the cost.
fn check_balance(
    transaction: &Transaction,
    pending: Amount,
    available: Amount,
) -> Result<Amount, Rejection> {
    let payload = transaction.payload();
    let moved = match &payload.call {
        Call::Balances(balances::Call::Transfer { amount, .. }) => *amount,
        Call::Dvci(dvci::Call::RegisterProvider { bond, .. }) => *bond,
        Call::Dvci(_) => Amount::ZERO,
        // A lease's escrow depends on the catalog and prices, which the pool does not read;
        // nothing is admitted behind such a call ([`Rejection::BehindUnpricedCall`]), and an
        // unpayable escrow fails the call in execution (the fee is still charged).
        Call::Market(_) | Call::Operations(_) | Call::Catalog(_) => Amount::ZERO,
        Call::Provisioning(provisioning::Call::RegisterProvisioner { stake }) => *stake,
        Call::Provisioning(_) => Amount::ZERO,
        Call::Peers(peers::Call::RegisterFullNode { deposit, .. }) => *deposit,
        Call::Peers(_) => Amount::ZERO,
        Call::Staking(staking::Call::Bond { amount }) => *amount,
        // Attestation calls move no tokens (their exclusions refund, never charge).
        Call::Staking(_) | Call::Governance(_) | Call::Attestation(_) | Call::Beacon(_) => {
            Amount::ZERO
        }
    };
    let unpayable = |required| Rejection::InsufficientBalance {
        available,
        required,
        pending,
    };
    let cost = payload
        .fee
        .checked_add(moved)
        .ok_or(unpayable(Amount(u128::MAX)))?;
    let required = cost
        .checked_add(pending)
        .ok_or(unpayable(Amount(u128::MAX)))?;
    if available < required {
        return Err(unpayable(required));
    }
    Ok(cost)
}

#[cfg(test)]
mod tests;
