//! The JSON-RPC server (HTTP and WebSocket on one port; interface in [`logos_api::rpc`]).
//!
//! Limits: request bodies above `body_max_bytes` are refused (HTTP 413), at most
//! `connections_max` connections, and a token bucket of `requests_per_second` over all clients:
//! a request beyond it is answered with error [`RATE_LIMITED`] without being executed.

use crate::{
    engine::MarshalMailbox,
    relay,
    shared::{FinalizedBlock, Shared},
};
use commonware_codec::Encode;
use commonware_consensus::marshal::Identifier;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jsonrpsee::{
    core::{
        middleware::{Batch, Notification, RpcServiceT},
        SubscriptionResult,
    },
    server::{
        middleware::rpc::RpcServiceBuilder, MethodResponse, PendingSubscriptionSink, ServerHandle,
        SubscriptionMessage,
    },
    types::{ErrorObjectOwned, Request},
};
use logos_api::rpc::{
    codes, error, error_with_data, AccountState, BlockInfo, ChainInfo, EventRecord, Head,
    LogosApiServer, StorageValue, Submitted,
};
use logos_mempool::Rejection;
use logos_primitives::{format_hash, format_public_key, parse_hash, Address, Height};
use logos_types::{StorageKey, Transaction, TransactionError};
use std::{net::SocketAddr, num::NonZeroU32, sync::Arc};

/// JSON-RPC error code for a request over the rate limit.
pub const RATE_LIMITED: i32 = -32029;
/// Most subscriptions per connection.
pub const SUBSCRIPTIONS_PER_CONNECTION_MAX: u32 = 64;

/// Limits of the RPC server.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Largest request body in bytes.
    pub body_max_bytes: u32,
    /// Most concurrent connections.
    pub connections_max: u32,
    /// Requests per second over all clients.
    pub requests_per_second: u32,
}

/// Serves the Logos API from one node.
pub struct RpcServer<E: Storage + Clock + Metrics + Spawner> {
    shared: Arc<Shared<E>>,
    marshal: MarshalMailbox,
    relay: relay::Mailbox,
}

/// Starts the server; it runs until the handle is stopped or dropped.
pub async fn start<E>(
    config: &RpcConfig,
    shared: Arc<Shared<E>>,
    marshal: MarshalMailbox,
    relay: relay::Mailbox,
) -> std::io::Result<(SocketAddr, ServerHandle)>
where
    E: Storage + Clock + Metrics + Spawner + Send + Sync + 'static,
{
    let quota =
        Quota::per_second(NonZeroU32::new(config.requests_per_second.max(1)).expect("positive"));
    let limiter = Arc::new(RateLimiter::direct(quota));
    let middleware = RpcServiceBuilder::new().layer_fn(move |service| RateLimit {
        service,
        limiter: limiter.clone(),
    });
    let server_config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(config.body_max_bytes)
        .max_response_body_size(16 * 1024 * 1024)
        .max_connections(config.connections_max)
        .max_subscriptions_per_connection(SUBSCRIPTIONS_PER_CONNECTION_MAX)
        .build();
    let server = jsonrpsee::server::Server::builder()
        .set_config(server_config)
        .set_rpc_middleware(middleware)
        .build(config.listen)
        .await?;
    let address = server.local_addr()?;
    let handle = server.start(
        RpcServer {
            shared,
            marshal,
            relay,
        }
        .into_rpc(),
    );
    Ok((address, handle))
}

/// Token-bucket rate limit in front of every method call.
#[derive(Clone)]
struct RateLimit<S> {
    service: S,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl<S> RpcServiceT for RateLimit<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        let allowed = self.limiter.check().is_ok();
        let service = self.service.clone();
        async move {
            if allowed {
                service.call(request).await
            } else {
                MethodResponse::error(request.id, error(RATE_LIMITED, "rate limit exceeded"))
            }
        }
    }

    fn batch<'a>(
        &self,
        requests: Batch<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        self.service.batch(requests)
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        self.service.notification(notification)
    }
}

/// The JSON-RPC error for a mempool rejection.
pub fn rejection_error(rejection: &Rejection) -> ErrorObjectOwned {
    let code = match rejection {
        Rejection::Invalid(TransactionError::Malformed(_) | TransactionError::Oversize { .. }) => {
            codes::MALFORMED_TRANSACTION
        }
        Rejection::Invalid(TransactionError::BadSignature) => codes::BAD_SIGNATURE,
        Rejection::Invalid(TransactionError::WrongChainId { .. }) => codes::WRONG_CHAIN_ID,
        Rejection::StaleNonce { .. } => codes::STALE_NONCE,
        Rejection::NonceGap { .. } => codes::NONCE_GAP,
        Rejection::FeeTooLow { .. } => codes::FEE_TOO_LOW,
        Rejection::InsufficientBalance { .. } => codes::INSUFFICIENT_BALANCE,
        Rejection::AlreadyKnown | Rejection::ReplacementUnderpriced { .. } => codes::ALREADY_KNOWN,
        Rejection::PoolFull => codes::POOL_FULL,
    };
    error_with_data(code, rejection.to_string(), "mempool", rejection.name())
}

fn unavailable(message: impl std::fmt::Display) -> ErrorObjectOwned {
    error(codes::UNAVAILABLE, message.to_string())
}

fn invalid_params(message: impl std::fmt::Display) -> ErrorObjectOwned {
    error(codes::INVALID_PARAMS, message.to_string())
}

impl<E: Storage + Clock + Metrics + Spawner> RpcServer<E> {
    async fn block_info(
        &self,
        identifier: Identifier<logos_primitives::Hash>,
    ) -> Option<BlockInfo> {
        let block = self.marshal.get_block(identifier).await?;
        let block = block.inner();
        let receipts = self
            .shared
            .recent(block.height.get())
            .filter(|finalized| finalized.block == *block)
            .map(|finalized| finalized.executed.receipts.clone());
        Some(BlockInfo::new(block, receipts))
    }
}

#[jsonrpsee::core::async_trait]
impl<E> LogosApiServer for RpcServer<E>
where
    E: Storage + Clock + Metrics + Spawner + Send + Sync + 'static,
{
    async fn chain_info(&self) -> Result<ChainInfo, ErrorObjectOwned> {
        let genesis = self.shared.genesis();
        let validators = genesis.validator_keys().map_err(unavailable)?;
        Ok(ChainInfo {
            chain_id: self.shared.chain_id(),
            chain_name: genesis.chain_name.clone(),
            validators: validators.iter().map(format_public_key).collect(),
            min_fee: genesis.params.min_fee,
            max_block_transactions: genesis.params.max_block_transactions,
        })
    }

    async fn submit_transaction(&self, transaction: String) -> Result<Submitted, ErrorObjectOwned> {
        let text = transaction.strip_prefix("0x").unwrap_or(&transaction);
        let bytes = hex::decode(text).map_err(|decode_error| {
            error(
                codes::MALFORMED_TRANSACTION,
                format!("transaction is not hex: {decode_error}"),
            )
        })?;
        let transaction = Transaction::decode_bytes(&bytes)
            .map_err(|invalid| rejection_error(&Rejection::Invalid(invalid)))?;
        let hash = self
            .shared
            .admit(transaction.clone())
            .await
            .map_err(|rejection| rejection_error(&rejection))?;
        self.relay.relay(transaction);
        Ok(Submitted {
            hash: format_hash(&hash),
        })
    }

    async fn get_account(&self, address: String) -> Result<AccountState, ErrorObjectOwned> {
        let address: Address = address.parse().map_err(invalid_params)?;
        let (account, tip) = self
            .shared
            .finalized_account(&address)
            .await
            .map_err(unavailable)?;
        Ok(AccountState {
            address,
            nonce: account.nonce,
            balance: account.balance,
            height: tip.height.get(),
        })
    }

    async fn get_block_by_height(
        &self,
        height: u64,
    ) -> Result<Option<BlockInfo>, ErrorObjectOwned> {
        Ok(self
            .block_info(Identifier::Height(Height::new(height)))
            .await)
    }

    async fn get_block_by_hash(&self, hash: String) -> Result<Option<BlockInfo>, ErrorObjectOwned> {
        let digest = parse_hash(&hash).map_err(invalid_params)?;
        Ok(self.block_info(Identifier::Digest(digest)).await)
    }

    async fn get_finalized_head(&self) -> Result<Head, ErrorObjectOwned> {
        let tip = self.shared.tip().await;
        if let Some(finalized) = self.shared.recent(tip.height.get()) {
            return Ok(Head::new(&finalized.block));
        }
        let block = self
            .marshal
            .get_block(Identifier::Height(tip.height))
            .await
            .ok_or_else(|| unavailable("finalized head not available yet"))?;
        Ok(Head::new(block.inner()))
    }

    async fn get_storage(&self, key: String) -> Result<StorageValue, ErrorObjectOwned> {
        let bytes = hex::decode(key.strip_prefix("0x").unwrap_or(&key)).map_err(invalid_params)?;
        let storage_key = StorageKey::from_bytes(bytes)
            .ok_or_else(|| invalid_params("storage key must be 2 to 128 bytes"))?;
        let chain = self.shared.chain().await;
        let tip = chain.tip().clone();
        let proven = chain.prove(&storage_key).await.map_err(unavailable)?;
        let (value, proof) = match proven {
            Some((value, proof)) => (
                Some(format!("0x{}", hex::encode(value))),
                Some(format!(
                    "0x{}",
                    hex::encode(logos_api::proof::encode_proof(&proof))
                )),
            ),
            None => (None, None),
        };
        Ok(StorageValue {
            key,
            value,
            proof,
            state_root: format_hash(&chain.db_root()),
            height: tip.height.get(),
            block_hash: format_hash(&tip.digest),
        })
    }

    async fn get_finalization(&self, height: u64) -> Result<Option<String>, ErrorObjectOwned> {
        let finalization = self.marshal.get_finalization(Height::new(height)).await;
        Ok(finalization.map(|certificate| format!("0x{}", hex::encode(certificate.encode()))))
    }

    async fn get_raw_block(&self, height: u64) -> Result<Option<String>, ErrorObjectOwned> {
        let block = self
            .marshal
            .get_block(Identifier::Height(Height::new(height)))
            .await;
        Ok(block.map(|block| format!("0x{}", hex::encode(block.inner().encode()))))
    }

    async fn subscribe_finalized_heads(
        &self,
        pending: PendingSubscriptionSink,
    ) -> SubscriptionResult {
        let sink = pending.accept().await?;
        forward(sink, self.shared.subscribe(), head_messages);
        Ok(())
    }

    async fn subscribe_events(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let sink = pending.accept().await?;
        forward(sink, self.shared.subscribe(), event_messages);
        Ok(())
    }
}

/// Sends `messages(block)` to `sink` for every finalized block until the client goes away.
/// A subscriber that falls behind the notification channel skips the blocks it missed.
fn forward(
    sink: jsonrpsee::SubscriptionSink,
    mut receiver: tokio::sync::broadcast::Receiver<Arc<FinalizedBlock>>,
    messages: fn(&FinalizedBlock) -> Vec<serde_json::Result<SubscriptionMessage>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    tokio::spawn(async move {
        loop {
            let finalized = match receiver.recv().await {
                Ok(finalized) => finalized,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            for message in messages(&finalized) {
                let Ok(message) = message else { return };
                if sink.send(message).await.is_err() {
                    return;
                }
            }
        }
    });
}

fn head_messages(finalized: &FinalizedBlock) -> Vec<serde_json::Result<SubscriptionMessage>> {
    vec![json_message(&Head::new(&finalized.block))]
}

fn event_messages(finalized: &FinalizedBlock) -> Vec<serde_json::Result<SubscriptionMessage>> {
    use commonware_cryptography::Digestible;
    let block_hash = format_hash(&finalized.block.digest());
    let executed = &finalized.executed;
    let transaction_events = executed.receipts.iter().flat_map(|receipt| {
        receipt
            .events
            .iter()
            .map(move |event| (Some(format_hash(&receipt.transaction)), event))
    });
    let block_events = executed.block_events.iter().map(|event| (None, event));
    transaction_events
        .chain(block_events)
        .map(|(transaction, event)| {
            json_message(&EventRecord {
                height: finalized.block.height.get(),
                block_hash: block_hash.clone(),
                transaction,
                event: event.clone(),
            })
        })
        .collect()
}

fn json_message(value: &impl serde::Serialize) -> Result<SubscriptionMessage, serde_json::Error> {
    Ok(SubscriptionMessage::from(serde_json::value::to_raw_value(
        value,
    )?))
}
