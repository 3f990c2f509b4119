//! Block execution (see the crate docs for the steps).

use crate::{
    modules::{balances, dvci, market, operations, provisioning},
    storage::{Overlay, StateError, StateReader, WriteSet},
    transaction::{Call, Event, Transaction},
    Origin, Params,
};
use logos_primitives::{Address, Amount, ChainId, Hash};

/// What the executor needs to know about the block besides its transactions.
#[derive(Clone, Debug)]
pub struct BlockContext {
    /// The network's chain id.
    pub chain_id: ChainId,
    /// Height of the block being executed.
    pub height: u64,
    /// The block's author (the proposer), credited with fees.
    pub author: Address,
    /// Chain parameters from genesis.
    pub params: Params,
    /// Chain randomness for this block: the parent block's digest (known to every validator,
    /// fixed before the block's transactions are chosen). Breaks placement ties.
    pub randomness: Hash,
}

/// The result of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// Hash of the transaction.
    #[serde(with = "hash_hex")]
    pub transaction: Hash,
    /// Whether the call succeeded (the fee is paid either way).
    pub success: bool,
    /// The module error when the call failed.
    pub error: Option<String>,
    /// Events emitted, the fee payment first.
    pub events: Vec<Event>,
}

/// The result of executing a valid block.
#[derive(Clone, Debug, Default)]
pub struct BlockOutcome {
    /// Writes to apply to the state, ordered by key.
    pub writes: WriteSet,
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Events of the end-of-block hooks (lease metering), after all transactions.
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
        /// The balances error.
        reason: String,
    },
    /// State could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Executes `transactions` on top of `state` (see the crate docs for the steps).
pub async fn execute_block<R: StateReader>(
    state: &R,
    context: &BlockContext,
    transactions: &[Transaction],
) -> Result<BlockOutcome, BlockError> {
    let max = context.params.max_block_transactions;
    if transactions.len() > max as usize {
        return Err(BlockError::TooManyTransactions {
            count: transactions.len(),
            max,
        });
    }
    let mut overlay = Overlay::new(state);
    let mut receipts = Vec::with_capacity(transactions.len());
    for (index, transaction) in transactions.iter().enumerate() {
        receipts.push(apply_transaction(&mut overlay, context, index, transaction).await?);
    }
    let mut block_events = market::on_block_end(&mut overlay, context).await?;
    block_events.extend(provisioning::on_block_end(&mut overlay, context).await?);
    overlay.commit_transaction();
    Ok(BlockOutcome {
        writes: overlay.into_writes(),
        receipts,
        block_events,
    })
}

async fn apply_transaction<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    context: &BlockContext,
    index: usize,
    transaction: &Transaction,
) -> Result<Receipt, BlockError> {
    let payload = transaction.payload();
    if payload.chain_id != context.chain_id {
        return Err(BlockError::WrongChainId { index });
    }
    if payload.fee < context.params.min_fee {
        return Err(BlockError::FeeTooLow {
            index,
            fee: payload.fee,
            min_fee: context.params.min_fee,
        });
    }
    let sender = transaction.sender();
    let mut account = balances::account(overlay, &sender).await?;
    if account.nonce != payload.nonce {
        return Err(BlockError::BadNonce {
            index,
            expected: account.nonce,
            actual: payload.nonce,
        });
    }
    account.nonce += 1;
    balances::set_account(overlay, &sender, account);
    let fee_event =
        match balances::charge_fee(overlay, &sender, &context.author, payload.fee).await? {
            Ok(event) => Event::Balances(event),
            Err(error) => {
                overlay.rollback_transaction();
                return Err(BlockError::FeeUnpaid {
                    index,
                    reason: error.to_string(),
                });
            }
        };
    // Fee and nonce are kept whatever the call does.
    overlay.commit_transaction();
    let origin = Origin {
        sender,
        privileged: context.params.privileged_account == Some(sender),
    };
    let result = match &payload.call {
        Call::Balances(call) => lift(
            balances::dispatch(overlay, &sender, call).await?,
            Event::Balances,
        ),
        Call::Dvci(call) => lift(dvci::dispatch(overlay, &origin, call).await?, Event::Dvci),
        Call::Market(call) => lift(
            market::dispatch(overlay, &origin, context, call).await?,
            std::convert::identity,
        ),
        Call::Operations(call) => lift(
            operations::dispatch(overlay, &origin, context, call).await?,
            std::convert::identity,
        ),
        Call::Provisioning(call) => lift(
            provisioning::dispatch(overlay, &origin, context, call).await?,
            std::convert::identity,
        ),
    };
    let mut events = vec![fee_event];
    let receipt = match result {
        Ok(call_events) => {
            overlay.commit_transaction();
            events.extend(call_events);
            Receipt {
                transaction: transaction.hash(),
                success: true,
                error: None,
                events,
            }
        }
        Err(error) => {
            overlay.rollback_transaction();
            Receipt {
                transaction: transaction.hash(),
                success: false,
                error: Some(error),
                events,
            }
        }
    };
    Ok(receipt)
}

/// A module's call result as the executor records it: runtime events or the error's text.
fn lift<E, M: std::fmt::Display>(
    result: Result<Vec<E>, M>,
    wrap: fn(E) -> Event,
) -> Result<Vec<Event>, String> {
    result
        .map(|events| events.into_iter().map(wrap).collect())
        .map_err(|error| error.to_string())
}

mod hash_hex {
    use logos_primitives::{format_hash, parse_hash, Hash};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_hash(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_hash(&text).map_err(serde::de::Error::custom)
    }
}
