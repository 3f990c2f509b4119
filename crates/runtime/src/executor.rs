//! Block execution (see the crate docs for the steps).

use crate::{dispatch, on_block_end, on_block_start};
use logos_balances::Balances;
use logos_framework::{BlockContext, Context, Overlay, StateReader, WriteSet};
use logos_governance::Governance;
use logos_primitives::Amount;
use logos_types::{CallError, DispatchError, Event, Origin, Receipt, StateError, Transaction};
use std::collections::BTreeSet;

/// The result of executing a valid block.
#[derive(Clone, Debug, Default)]
pub struct BlockOutcome {
    /// Writes to apply to the state, ordered by key.
    pub writes: WriteSet,
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Events of the block itself: governance enactments at its start, then the end-of-block
    /// hooks (lease billing, liveness, epochs, tallies) after all transactions.
    pub block_events: Vec<Event>,
}

/// Why a block is invalid (the whole block is rejected), or state could not be read.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// More transactions than `max_block_transactions`.
    #[error("{count} transactions, the limit is {max}")]
    TooManyTransactions {
        /// Transactions in the block.
        count: usize,
        /// The limit.
        max: u32,
    },
    /// A transaction is for another network.
    #[error("transaction {index} has the wrong chain id")]
    WrongChainId {
        /// Position in the block.
        index: usize,
    },
    /// A transaction's nonce is not its sender's next nonce.
    #[error("transaction {index}: nonce {actual}, expected {expected}")]
    BadNonce {
        /// Position in the block.
        index: usize,
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's nonce.
        actual: u64,
    },
    /// A transaction's fee is below the minimum.
    #[error("transaction {index}: fee {fee} below the minimum {min_fee}")]
    FeeTooLow {
        /// Position in the block.
        index: usize,
        /// Offered fee.
        fee: Amount,
        /// Minimum fee.
        min_fee: Amount,
    },
    /// A transaction's sender cannot pay its fee.
    #[error("transaction {index}: sender cannot pay the fee: {reason}")]
    FeeUnpaid {
        /// Position in the block.
        index: usize,
        /// Why.
        reason: String,
    },
    /// State could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

impl BlockError {
    /// A failure that makes the block unexecutable: backend failures abort the block, anything
    /// else (corruption found outside a call) is reported as a state error too.
    fn from_dispatch(error: DispatchError) -> Self {
        match error {
            DispatchError::Backend(reason) => BlockError::State(StateError::Backend(reason)),
            other => BlockError::State(StateError::Corrupt {
                key: String::new(),
                reason: other.to_string(),
            }),
        }
    }
}

/// Executes `transactions` on top of `state` (see the crate docs for the steps).
pub async fn execute_block<R: StateReader>(
    state: &R,
    block: &BlockContext,
    transactions: &[Transaction],
) -> Result<BlockOutcome, BlockError> {
    let max = block.params.max_block_transactions;
    if transactions.len() > max as usize {
        return Err(BlockError::TooManyTransactions {
            count: transactions.len(),
            max,
        });
    }
    let mut overlay = Overlay::new(state);
    let mut block_events = on_block_start(&mut overlay, block).await?;
    let mut receipts = Vec::with_capacity(transactions.len());
    for (index, transaction) in transactions.iter().enumerate() {
        receipts.push(apply_transaction(&mut overlay, block, index, transaction).await?);
    }
    block_events.extend(on_block_end(&mut overlay, block).await?);
    Ok(BlockOutcome {
        writes: overlay.into_writes(),
        receipts,
        block_events,
    })
}

/// A block built from candidate transactions by [`build_block`].
#[derive(Clone, Debug, Default)]
pub struct BuiltBlock {
    /// The execution of exactly `included`: what [`execute_block`] gives for them.
    pub outcome: BlockOutcome,
    /// The candidates that made it into the block, in order.
    pub included: Vec<Transaction>,
    /// Candidates left out because they cannot be included on this state, each with the
    /// reason (its sender's later candidates are left out with it, without an entry).
    pub skipped: Vec<(Transaction, BlockError)>,
}

/// Builds a block on top of `state` from `candidates` (nonce order per sender): each is
/// applied in turn, and one that makes the block invalid (wrong chain, stale nonce, fee below
/// the minimum or unpayable) is skipped with its sender's later candidates instead of failing
/// the block, so no set of transactions can stop a leader from proposing. At most
/// `max_block_transactions` are included; an empty candidate list gives an empty block.
/// Errors: only [`StateError`] (the state could not be read).
pub async fn build_block<R: StateReader>(
    state: &R,
    block: &BlockContext,
    candidates: &[Transaction],
) -> Result<BuiltBlock, StateError> {
    let max = block.params.max_block_transactions as usize;
    let mut overlay = Overlay::new(state);
    let mut built = BuiltBlock::default();
    built.outcome.block_events = match on_block_start(&mut overlay, block).await {
        Ok(events) => events,
        Err(BlockError::State(error)) => return Err(error),
        Err(other) => return Err(StateError::Backend(other.to_string())),
    };
    let mut skipped_senders = BTreeSet::new();
    for transaction in candidates {
        if built.included.len() >= max {
            break;
        }
        let sender = transaction.sender();
        if skipped_senders.contains(&sender) {
            continue;
        }
        let index = built.included.len();
        match apply_transaction(&mut overlay, block, index, transaction).await {
            Ok(receipt) => {
                built.outcome.receipts.push(receipt);
                built.included.push(transaction.clone());
            }
            Err(BlockError::State(error)) => return Err(error),
            // A refused transaction wrote nothing: the checks come before any write, and an
            // unpayable fee rolls back the nonce bump.
            Err(error) => {
                skipped_senders.insert(sender);
                built.skipped.push((transaction.clone(), error));
            }
        }
    }
    match on_block_end(&mut overlay, block).await {
        Ok(events) => built.outcome.block_events.extend(events),
        Err(BlockError::State(error)) => return Err(error),
        Err(other) => return Err(StateError::Backend(other.to_string())),
    }
    built.outcome.writes = overlay.into_writes();
    Ok(built)
}

/// Checks and charges the transaction (nonce, fee), then runs its call in a layer of its own.
async fn apply_transaction<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    block: &BlockContext,
    index: usize,
    transaction: &Transaction,
) -> Result<Receipt, BlockError> {
    let payload = transaction.payload();
    if payload.chain_id != block.chain_id {
        return Err(BlockError::WrongChainId { index });
    }
    if payload.fee < block.params.min_fee {
        return Err(BlockError::FeeTooLow {
            index,
            fee: payload.fee,
            min_fee: block.params.min_fee,
        });
    }
    let sender = transaction.sender();
    let mut account = Balances::account(overlay, &sender).await?;
    if account.nonce != payload.nonce {
        return Err(BlockError::BadNonce {
            index,
            expected: account.nonce,
            actual: payload.nonce,
        });
    }
    account.nonce = account.nonce.saturating_add(1);
    Balances::set_account(overlay, &sender, account)?;
    let fee_event = match Balances::charge_fee(overlay, &sender, &block.author, payload.fee).await {
        Ok(event) => Event::Balances(event),
        Err(DispatchError::Backend(reason)) => return Err(StateError::Backend(reason).into()),
        Err(error) => {
            overlay.rollback();
            return Err(BlockError::FeeUnpaid {
                index,
                reason: error.to_string(),
            });
        }
    };
    // Fee and nonce are kept whatever the call does.
    overlay.commit();
    let origin = Origin {
        sender,
        privileged: Governance::is_authority(overlay, &sender).await?,
    };
    let mut ctx = Context::new(&mut *overlay, block);
    let result = dispatch(&mut ctx, &origin, &payload.call).await;
    let mut events = vec![fee_event];
    let error = match result {
        Ok(call_events) => {
            overlay.commit();
            events.extend(call_events);
            None
        }
        Err(DispatchError::Backend(reason)) => return Err(StateError::Backend(reason).into()),
        Err(error) => {
            overlay.rollback();
            CallError::from_dispatch(&error, payload.call.module()).map(Box::new)
        }
    };
    Ok(Receipt {
        transaction: transaction.hash(),
        success: error.is_none(),
        error,
        events,
    })
}

/// Turns a hook's failure into a block error (backend) or its error event (anything else).
pub(crate) fn hook_failure(module: (u8, &str), error: DispatchError) -> Result<Event, BlockError> {
    match CallError::from_dispatch(&error, module) {
        Some(error) => Ok(Event::Runtime(logos_types::RuntimeEvent::HookFailed {
            module: module.1.to_string(),
            error: Box::new(error),
        })),
        None => Err(BlockError::from_dispatch(error)),
    }
}
