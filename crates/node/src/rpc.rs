//! The JSON-RPC server (HTTP and WebSocket on one port; interface in [`logos_api::rpc`]).
//!
//! # Limits
//! Every refusal has its own JSON-RPC error code (in [`codes`]) and leaves nothing executed:
//! - a request body above `body_max_bytes` is refused with HTTP 413;
//! - at most `connections_max` TCP connections are open at once, and `connections_per_ip_max`
//!   from one client (an IPv4 address or an IPv6 /64); further ones are closed on accept. A
//!   connection's slot is held by its socket, so a WebSocket keeps it until it closes;
//! - a batch of more than `batch_max` calls is refused whole
//!   ([`codes::BATCH_TOO_LARGE`], jsonrpsee's `BatchRequestConfig`);
//! - three token buckets ([`governor`]), each refilled per second, charge one token per call
//!   and one per call of a batch: per connection ([`codes::RATE_LIMITED_CONNECTION`]), per
//!   client IP address ([`codes::RATE_LIMITED_IP`]), and for the whole server
//!   ([`codes::RATE_LIMITED`]), so one client's flood exhausts its own buckets, not the
//!   server's, as long as the per-IP rate is below the server's;
//! - a call running longer than `request_timeout_ms` is answered with
//!   [`codes::TIMED_OUT`];
//! - `logos_getStateOperations` (answers of up to ~8 MiB) is charged
//!   [`logos_api::rpc::STATE_OPERATIONS_WEIGHT`] tokens (at most the smallest bucket's size),
//!   served over HTTP/1.1 only (a WebSocket's or HTTP/2 connection's unread answers would pile
//!   up in its send buffers) and
//!   never in a batch (`-32600`); at most [`STATE_SERVES_MAX`] answers are built at once and
//!   [`STATE_SERVES_PER_IP_MAX`] per client (built or waiting); a call waits, first come first
//!   served, up to [`STATE_SERVE_WAIT_MS`], else [`codes::BUSY`], as does a client over its
//!   share.
//!
//! The per-IP buckets forget idle clients every [`LIMITER_SWEEP_MS`]; beyond
//! [`LIMITER_KEYS_MAX`] keys new clients share one overflow bucket of the per-IP size until the
//! next sweep. Each connection's bucket lives and dies with the connection, and a connection
//! silent both ways for [`IDLE_TIMEOUT_MS`] is closed (its slot given back).
//!
//! # Health
//! `GET /health` answers [`logos_api::rpc::Health`] (HTTP 200 when the finalized tip is younger
//! than [`logos_api::rpc::HEALTH_STALE_MS`], 503 otherwise): the node's role, p2p key, tip and,
//! on a node started with `--register-for`, its signed registration, and on a validator started
//! with `--validate-for`, its signed validator intent. It is charged like
//! one call to the connection's, the IP's and the server's buckets (HTTP 429 once one is
//! empty, the body naming which).

use crate::{
    chain::Proven,
    engine::MarshalMailbox,
    receipts::Located,
    relay,
    shared::{FinalizedBlock, Shared},
};
use commonware_codec::Encode;
use commonware_consensus::marshal::Identifier;
use commonware_cryptography::Digestible;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonrpsee::{
    core::{
        middleware::{Batch, Notification, RpcServiceT},
        SubscriptionResult,
    },
    server::{
        middleware::rpc::RpcServiceBuilder, serve_with_graceful_shutdown, stop_channel,
        BatchRequestConfig, HttpBody, HttpResponse, MethodResponse, Methods,
        PendingSubscriptionSink, ServerHandle, SubscriptionMessage,
    },
    types::{ErrorObjectOwned, Id, Request},
};
use logos_api::receipt::receipt_proof;
pub use logos_api::rpc::codes;
use logos_api::rpc::{
    error, error_with_data, AccountState, BlockInfo, ChainInfo, EpochProof, EventRecord,
    FullNodeRegistration, Head, Health, LogosApiServer, ReceiptInfo, StateTarget, StorageValue,
    Submitted, TransactionInfo, TransactionLookup, TransactionStatus, ValidatorIntent,
    HEALTH_STALE_MS, STATE_OPERATIONS_WEIGHT,
};
use logos_limits::{Slot, Slots};
use logos_mempool::Rejection;
use logos_primitives::{format_hash, format_public_key, parse_hash, Address, Height};
use logos_types::{Receipt, StorageKey, Transaction, TransactionError};
use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

/// Most subscriptions per connection.
pub const SUBSCRIPTIONS_PER_CONNECTION_MAX: u32 = 64;
/// How often the per-IP and per-connection buckets forget idle clients, ms.
pub const LIMITER_SWEEP_MS: u64 = 10_000;
/// Most client keys the per-IP buckets track at once.
pub const LIMITER_KEYS_MAX: usize = 65_536;
/// Most `logos_getStateOperations` answers built at once, server wide (each up to about 8 MiB
/// of bytes and as much again of hex, built under a read of the chain state the finalizer
/// waits behind, and held until serialised): about 130 MiB at most.
pub const STATE_SERVES_MAX: usize = 8;
/// Most of those one client (IPv4 address or IPv6 /64) has built or waiting at once: a
/// syncing node keeps 4 calls in flight.
pub const STATE_SERVES_PER_IP_MAX: usize = 4;
/// Longest a state call waits (first come, first served) for one of the
/// [`STATE_SERVES_MAX`], ms, before [`codes::BUSY`].
pub const STATE_SERVE_WAIT_MS: u64 = 2_000;

/// Limits of the RPC server (see the module docs).
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Largest request body in bytes.
    pub body_max_bytes: u32,
    /// Most concurrent connections.
    pub connections_max: u32,
    /// Most concurrent connections from one IP address (IPv6: one /64).
    pub connections_per_ip_max: u32,
    /// Calls per second over all clients.
    pub requests_per_second: u32,
    /// Calls per second from one IP address.
    pub requests_per_second_per_ip: u32,
    /// Calls per second on one connection.
    pub requests_per_second_per_connection: u32,
    /// Most calls in one batch.
    pub batch_max: u32,
    /// Longest a call may run, ms.
    pub request_timeout_ms: u64,
}

/// Serves the Logos API from one node.
pub struct RpcServer<E: Storage + Clock + Metrics + Spawner> {
    shared: Arc<Shared<E>>,
    marshal: MarshalMailbox,
    relay: relay::Mailbox,
    /// The genesis TOML, written once (a large genesis is not re-serialised per request).
    genesis_toml: Arc<std::sync::OnceLock<String>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The client's IP address, put into every HTTP request's extensions by the accept loop.
#[derive(Clone, Copy, Debug)]
struct ClientIp(IpAddr);

/// Who this node is, as `GET /health` says.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `validator` or `full`.
    pub role: String,
    /// The node's p2p key, `0x` hex.
    pub public_key: String,
    /// The registration it asks an account to submit, if any.
    pub registration: Option<FullNodeRegistration>,
    /// The validator intent it asks an account to submit, if any.
    pub intent: Option<ValidatorIntent>,
    /// The height it synced its state to, if it did ([`crate::statesync`]).
    pub state_synced_at: Option<u64>,
}

/// The `GET /health` answer: status and body (see the module docs).
async fn health<E>(shared: &Shared<E>, identity: &Identity) -> (hyper::StatusCode, Health)
where
    E: Storage + Clock + Metrics + Spawner,
{
    let height = shared.tip().await.height.get();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    let age_ms = shared
        .recent(height)
        .map(|finalized| now_ms.saturating_sub(finalized.block.timestamp_ms));
    let synced = height > 0 && age_ms.is_some_and(|age| age <= HEALTH_STALE_MS);
    let status = if synced {
        hyper::StatusCode::OK
    } else {
        hyper::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        synced,
        role: identity.role.clone(),
        public_key: identity.public_key.clone(),
        finalized_height: height,
        age_ms,
        registration: identity.registration.clone(),
        intent: identity.intent.clone(),
        state_synced_at: identity.state_synced_at,
    };
    (status, body)
}

/// `request` comes over a connection whose answers can wait unread in a send buffer while
/// the client keeps asking: a WebSocket (the server's own upgrade test) or HTTP/2 (streams).
fn is_multiplexed<B>(request: &jsonrpsee::server::HttpRequest<B>) -> bool {
    jsonrpsee::server::ws::is_upgrade_request(request)
        || request.version() >= hyper::Version::HTTP_2
}

/// `request` asks for `GET /health`.
fn is_health<B>(request: &jsonrpsee::server::HttpRequest<B>) -> bool {
    request.method() == hyper::Method::GET && request.uri().path() == "/health"
}

/// A JSON HTTP answer outside JSON-RPC (health, its rate limit).
fn http_json(status: hyper::StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    let text = serde_json::to_string(body).unwrap_or_default();
    let mut response = HttpResponse::new(HttpBody::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Starts the server; it runs until the handle is stopped or dropped.
pub async fn start<E>(
    config: &RpcConfig,
    identity: Identity,
    shared: Arc<Shared<E>>,
    marshal: MarshalMailbox,
    relay: relay::Mailbox,
) -> std::io::Result<(SocketAddr, ServerHandle)>
where
    E: Storage + Clock + Metrics + Spawner + Send + Sync + 'static,
{
    let limits = Arc::new(Limits::new(config));
    let sweeper = limits.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(LIMITER_SWEEP_MS));
        loop {
            interval.tick().await;
            sweeper.sweep();
            if Arc::strong_count(&sweeper) == 1 {
                break; // the server is gone
            }
        }
    });
    let health_limits = limits.clone();
    let middleware = RpcServiceBuilder::new().layer_fn(move |service| RateLimit {
        service,
        limits: limits.clone(),
    });
    let server_config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(config.body_max_bytes)
        .max_response_body_size(16 * 1024 * 1024)
        .max_connections(config.connections_max)
        .max_subscriptions_per_connection(SUBSCRIPTIONS_PER_CONNECTION_MAX)
        .set_batch_request_config(BatchRequestConfig::Limit(config.batch_max))
        .build();
    let builder = jsonrpsee::server::Server::builder()
        .set_config(server_config)
        .set_rpc_middleware(middleware)
        .to_service_builder();
    let identity = Arc::new(identity);
    let health_shared = shared.clone();
    let methods: Methods = RpcServer {
        shared,
        marshal,
        relay,
        genesis_toml: Arc::default(),
    }
    .into_rpc()
    .into();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    let (stop, handle) = stop_channel();
    let slots = Arc::new(Slots::new(
        config.connections_max,
        config.connections_per_ip_max,
    ));
    let connection_quota = per_second(config.requests_per_second_per_connection);
    tokio::spawn(async move {
        loop {
            let (socket, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        // Out of descriptors, most likely: do not spin.
                        tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                        continue;
                    }
                },
                _ = stop.clone().shutdown() => break,
            };
            let key = ip_key(remote.ip());
            let Some(slot) = Slots::acquire(&slots, key) else {
                continue; // over `connections_max` or the per-IP cap: the socket is closed
            };
            let client = ClientIp(key);
            let bucket = ConnectionBucket(Arc::new(RateLimiter::direct(connection_quota)));
            // One jsonrpsee service per TCP connection, so its connection id is the same for
            // every request on a kept-alive HTTP connection.
            let connection = builder.clone().build(methods.clone(), stop.clone());
            let (shared, identity) = (health_shared.clone(), identity.clone());
            let limits = health_limits.clone();
            let service = tower::service_fn(
                move |mut request: jsonrpsee::server::HttpRequest<hyper::body::Incoming>| {
                    request.extensions_mut().insert(client);
                    request.extensions_mut().insert(bucket.clone());
                    if is_multiplexed(&request) {
                        request.extensions_mut().insert(Multiplexed);
                    }
                    // `/health` pays like one call: connection, IP and server buckets.
                    let health_asked = is_health(&request).then(|| {
                        limits
                            .charge(request.extensions(), 1)
                            .map_err(|e| e.message().to_string())
                    });
                    let mut service = connection.clone();
                    let (shared, identity) = (shared.clone(), identity.clone());
                    async move {
                        match health_asked {
                            Some(Ok(())) => {
                                let (status, body) = health(&shared, &identity).await;
                                return Ok(http_json(status, &body));
                            }
                            Some(Err(refusal)) => {
                                let refusal = serde_json::json!({ "error": refusal });
                                let status = hyper::StatusCode::TOO_MANY_REQUESTS;
                                return Ok(http_json(status, &refusal));
                            }
                            None => {}
                        }
                        let response: Result<_, BoxError> =
                            tower::Service::call(&mut service, request).await;
                        response
                    }
                },
            );
            // The slot travels with the socket, into a WebSocket upgrade too, and is given back
            // when the socket closes.
            let socket = Slotted::new(socket, slot);
            tokio::spawn(serve_with_graceful_shutdown(
                socket,
                service,
                stop.clone().shutdown(),
            ));
        }
    });
    Ok((address, handle))
}

/// Delay before accepting again after an accept error, ms.
const ACCEPT_RETRY_MS: u64 = 10;

/// The client key of an address: an IPv4 address, or the /64 prefix of an IPv6 one (one
/// subscriber usually holds a whole /64).
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
    }
}

/// A socket that holds its connection slot and closes after [`IDLE_TIMEOUT_MS`] without a
/// byte read or written (a kept-alive or WebSocket connection that idles gives its slot back;
/// a subscription's notifications count as traffic).
struct Slotted {
    io: tokio::net::TcpStream,
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
    _slot: Slot<IpAddr>,
}

/// Longest a connection may stay silent both ways, ms.
pub const IDLE_TIMEOUT_MS: u64 = 60_000;

impl Slotted {
    fn new(io: tokio::net::TcpStream, slot: Slot<IpAddr>) -> Self {
        Self {
            io,
            idle: Box::pin(tokio::time::sleep(Duration::from_millis(IDLE_TIMEOUT_MS))),
            _slot: slot,
        }
    }

    fn active(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(IDLE_TIMEOUT_MS);
        self.idle.as_mut().reset(deadline);
    }

    /// With the socket not ready: an error once the idle deadline has passed.
    fn idle_expired<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<T>> {
        match std::future::Future::poll(self.idle.as_mut(), cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "idle connection",
            ))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl tokio::io::AsyncRead for Slotted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.io).poll_read(cx, buf) {
            std::task::Poll::Pending => self.idle_expired(cx),
            ready => {
                if buf.filled().len() > before {
                    self.active();
                }
                ready
            }
        }
    }
}

impl tokio::io::AsyncWrite for Slotted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match std::pin::Pin::new(&mut self.io).poll_write(cx, buf) {
            std::task::Poll::Pending => self.idle_expired(cx),
            ready => {
                if matches!(ready, std::task::Poll::Ready(Ok(written)) if written > 0) {
                    self.active();
                }
                ready
            }
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The connection's own token bucket, put into every request's extensions.
#[derive(Clone)]
struct ConnectionBucket(Arc<DefaultDirectRateLimiter>);

/// The server's and the per-IP token buckets and the call timeout (see the module docs;
/// each connection's bucket travels in its requests).
struct Limits {
    server: DefaultDirectRateLimiter,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// One per-IP-sized bucket shared by the clients beyond [`LIMITER_KEYS_MAX`].
    overflow: DefaultDirectRateLimiter,
    timeout: Duration,
    /// The smallest bucket's size: no single call weighs more (a heavier one could never
    /// be paid).
    weight_cap: u32,
    state_serves: StateServes,
}

fn per_second(rate: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
}

impl Limits {
    fn new(config: &RpcConfig) -> Self {
        Self {
            server: RateLimiter::direct(per_second(config.requests_per_second)),
            per_ip: RateLimiter::keyed(per_second(config.requests_per_second_per_ip)),
            overflow: RateLimiter::direct(per_second(config.requests_per_second_per_ip)),
            timeout: Duration::from_millis(config.request_timeout_ms.max(1)),
            weight_cap: config
                .requests_per_second
                .min(config.requests_per_second_per_ip)
                .min(config.requests_per_second_per_connection)
                .max(1),
            state_serves: StateServes::new(
                STATE_SERVES_MAX,
                STATE_SERVES_PER_IP_MAX,
                Duration::from_millis(STATE_SERVE_WAIT_MS),
            ),
        }
    }

    /// Tokens a call of `method` takes from each bucket: [`call_weight`], at most the
    /// smallest bucket.
    fn weigh(&self, method: &str) -> u32 {
        call_weight(method).min(self.weight_cap)
    }

    fn sweep(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
    }

    /// Charges `tokens` (calls, weighed by [`call_weight`]) to the connection, the IP and the
    /// server, in that order; the error of the first bucket that cannot pay. When the per-IP map is full, clients share
    /// one overflow bucket of the per-IP size until the next sweep.
    fn charge(
        &self,
        extensions: &jsonrpsee::types::Extensions,
        tokens: u32,
    ) -> Result<(), ErrorObjectOwned> {
        let tokens = NonZeroU32::new(tokens).unwrap_or(NonZeroU32::MIN);
        if let Some(ConnectionBucket(bucket)) = extensions.get::<ConnectionBucket>() {
            if !matches!(bucket.check_n(tokens), Ok(Ok(()))) {
                return Err(error(
                    codes::RATE_LIMITED_CONNECTION,
                    "rate limit of this connection exceeded",
                ));
            }
        }
        if let Some(ClientIp(ip)) = extensions.get::<ClientIp>() {
            let paid = if self.per_ip.len() < LIMITER_KEYS_MAX {
                self.per_ip.check_key_n(ip, tokens)
            } else {
                self.overflow.check_n(tokens)
            };
            if !matches!(paid, Ok(Ok(()))) {
                return Err(error(
                    codes::RATE_LIMITED_IP,
                    format!("rate limit of {ip} exceeded"),
                ));
            }
        }
        if !matches!(self.server.check_n(tokens), Ok(Ok(()))) {
            return Err(error(codes::RATE_LIMITED, "rate limit exceeded"));
        }
        Ok(())
    }
}

/// The rate limits and timeout in front of every method call.
#[derive(Clone)]
struct RateLimit<S> {
    service: S,
    limits: Arc<Limits>,
}

fn timed_out() -> ErrorObjectOwned {
    error(codes::TIMED_OUT, "request timed out")
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
        let weight = self.limits.weigh(request.method_name());
        let charged = self.limits.charge(request.extensions(), weight);
        let state_call = request.method_name() == STATE_OPERATIONS_METHOD;
        let multiplexed = request.extensions().get::<Multiplexed>().is_some();
        let ip = request
            .extensions()
            .get::<ClientIp>()
            .map(|client| client.0);
        let limits = self.limits.clone();
        let service = self.service.clone();
        async move {
            if let Err(refusal) = charged {
                return MethodResponse::error(request.id, refusal);
            }
            // Held until the answer is serialised: what bounds the memory of state answers.
            let _serve = match (state_call, multiplexed) {
                (false, _) => None,
                (true, true) => {
                    let refusal = error(
                        jsonrpsee::types::error::INVALID_REQUEST_CODE,
                        format!("{STATE_OPERATIONS_METHOD} is served over HTTP/1.1 only"),
                    );
                    return MethodResponse::error(request.id, refusal);
                }
                (true, false) => match limits.state_serves.acquire(ip).await {
                    Ok(serve) => Some(serve),
                    Err(refusal) => return MethodResponse::error(request.id, refusal),
                },
            };
            let id = request.id.clone();
            match tokio::time::timeout(limits.timeout, service.call(request)).await {
                Ok(response) => response,
                Err(_) => MethodResponse::error(id, timed_out()),
            }
        }
    }

    fn batch<'a>(
        &self,
        mut requests: Batch<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        let calls = u32::try_from(requests.len()).unwrap_or(u32::MAX);
        let charged = match batch_has_state_call(&requests) {
            true => Err(error(
                jsonrpsee::types::error::INVALID_REQUEST_CODE,
                format!("{STATE_OPERATIONS_METHOD} is not served in a batch"),
            )),
            false => self.limits.charge(requests.extensions(), calls),
        };
        let timeout = self.limits.timeout;
        let service = self.service.clone();
        async move {
            if let Err(refusal) = charged {
                return MethodResponse::error(Id::Null, refusal);
            }
            match tokio::time::timeout(timeout, service.batch(requests)).await {
                Ok(response) => response,
                Err(_) => MethodResponse::error(Id::Null, timed_out()),
            }
        }
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        let charged = self.limits.charge(notification.extensions(), 1);
        let service = self.service.clone();
        async move {
            match charged {
                Ok(()) => service.notification(notification).await,
                // Notifications get no answer; a refused one is dropped.
                Err(_) => MethodResponse::notification(),
            }
        }
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
        Rejection::BehindUnpricedCall { .. } => codes::BEHIND_UNPRICED_CALL,
    };
    error_with_data(code, rejection.to_string(), "mempool", rejection.name())
}

fn unavailable(message: impl std::fmt::Display) -> ErrorObjectOwned {
    error(codes::UNAVAILABLE, message.to_string())
}

fn invalid_params(message: impl std::fmt::Display) -> ErrorObjectOwned {
    error(codes::INVALID_PARAMS, message.to_string())
}

/// The method whose answers are large (state sync): weighed, served one by one over HTTP,
/// never in a batch, within [`StateServes`].
const STATE_OPERATIONS_METHOD: &str = "logos_getStateOperations";

/// Tokens a call of `method` takes from each rate-limit bucket (before [`Limits::weigh`]'s
/// cap).
fn call_weight(method: &str) -> u32 {
    match method {
        STATE_OPERATIONS_METHOD => STATE_OPERATIONS_WEIGHT,
        _ => 1,
    }
}

/// A batch holds a state-operations call.
fn batch_has_state_call(batch: &Batch<'_>) -> bool {
    batch.iter().any(|entry| {
        entry
            .as_ref()
            .is_ok_and(|entry| entry.method_name() == STATE_OPERATIONS_METHOD)
    })
}

/// Counts of state answers in progress per client.
type ClientCounts = Arc<std::sync::Mutex<std::collections::BTreeMap<IpAddr, usize>>>;

/// Who builds state answers now: at most `total` at once, `per_ip_max` of them for one client
/// (an IPv4 address or IPv6 /64); a call waits up to `wait` for one of the `total`, a client
/// at its `per_ip_max` is refused at once. The counts hold only clients with a call in
/// progress (each needs one of the server's `connections_max` connections).
struct StateServes {
    total: Arc<tokio::sync::Semaphore>,
    per_ip: ClientCounts,
    per_ip_max: usize,
    wait: Duration,
}

/// One state answer's share of [`StateServes`], given back when dropped.
struct StateServe {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _client: Option<ClientShare>,
}

/// One call counted against a client in [`StateServes`].
struct ClientShare {
    per_ip: ClientCounts,
    ip: IpAddr,
}

impl Drop for ClientShare {
    fn drop(&mut self) {
        let mut counts = self
            .per_ip
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl StateServes {
    fn new(total: usize, per_ip_max: usize, wait: Duration) -> Self {
        Self {
            total: Arc::new(tokio::sync::Semaphore::new(total)),
            per_ip: Arc::default(),
            per_ip_max,
            wait,
        }
    }

    /// A share for one state answer of client `ip`, or [`codes::BUSY`].
    async fn acquire(&self, ip: Option<IpAddr>) -> Result<StateServe, ErrorObjectOwned> {
        let busy = |why: String| error(codes::BUSY, format!("{why}; ask again"));
        let client = match ip {
            Some(ip) => Some(self.count(ip).ok_or_else(|| {
                busy(format!(
                    "{} state answers are being built for {ip}",
                    self.per_ip_max
                ))
            })?),
            None => None,
        };
        let permit = tokio::time::timeout(self.wait, self.total.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| busy("as many state answers as the server builds at once".into()))?;
        Ok(StateServe {
            _permit: permit,
            _client: client,
        })
    }

    fn count(&self, ip: IpAddr) -> Option<ClientShare> {
        let mut counts = self
            .per_ip
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.per_ip_max {
            return None;
        }
        *count += 1;
        Some(ClientShare {
            per_ip: self.per_ip.clone(),
            ip,
        })
    }
}

/// Put into the extensions of the requests of a WebSocket or HTTP/2 connection
/// ([`is_multiplexed`]): its answers may wait in the connection's send buffers, so no large
/// ones are built for it. (Over HTTP/1.1 a connection holds at most one answer unread.)
#[derive(Clone, Copy, Debug)]
struct Multiplexed;

impl<E: Storage + Clock + Metrics + Spawner> RpcServer<E> {
    /// On a state-synced node, the header and certificate (codec bytes) of an epoch's last
    /// block below its floor, kept from the sync's committee walk (marshal has no block there).
    async fn epoch_boundary(
        &self,
        height: u64,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, ErrorObjectOwned> {
        let receipts = self.shared.receipts().await;
        receipts.boundary(height).await.map_err(unavailable)
    }

    async fn block_info(
        &self,
        identifier: Identifier<logos_primitives::Hash>,
    ) -> Option<BlockInfo> {
        let block = self.marshal.get_block(identifier).await?;
        let block = block.inner();
        let recent = self
            .shared
            .recent(block.height.get())
            .filter(|finalized| finalized.block == *block)
            .map(|finalized| finalized.executed.receipts.clone());
        let receipts = match recent {
            Some(receipts) => Some(receipts),
            None => self.stored_receipts(block.height.get()).await,
        };
        Some(BlockInfo::new(block, receipts))
    }

    /// Where a retained finalized block holds transaction `hash`, with that block; `None` if
    /// none does (or it was pruned between the two reads).
    async fn located(
        &self,
        hash: &logos_primitives::Hash,
    ) -> Result<Option<(Located, logos_api::Block)>, ErrorObjectOwned> {
        let located = self
            .shared
            .receipts()
            .await
            .locate(hash)
            .await
            .map_err(unavailable)?;
        let Some(located) = located else {
            return Ok(None);
        };
        let block = self
            .marshal
            .get_block(Identifier::Height(Height::new(located.height)))
            .await;
        Ok(block.map(|block| (located, block.inner().clone())))
    }

    /// The stored receipts of the block at `height`, parsed (none if pruned or unreadable).
    async fn stored_receipts(&self, height: u64) -> Option<Vec<Receipt>> {
        let bytes = self.shared.receipts().await.block(height).await.ok()??;
        bytes
            .iter()
            .map(|receipt| serde_json::from_slice(receipt).ok())
            .collect()
    }
}

fn parse_transaction_hash(hash: &str) -> Result<logos_primitives::Hash, ErrorObjectOwned> {
    parse_hash(hash).map_err(invalid_params)
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
            unattested: genesis.params.unattested,
            parent: genesis.parent.clone(),
        })
    }

    async fn get_genesis(&self) -> Result<String, ErrorObjectOwned> {
        if let Some(text) = self.genesis_toml.get() {
            return Ok(text.clone());
        }
        let text = self.shared.genesis().to_toml().map_err(unavailable)?;
        Ok(self.genesis_toml.get_or_init(|| text).clone())
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
        let pending_nonce = self
            .shared
            .with_mempool(|pool| pool.next_nonce(&address, account.nonce));
        Ok(AccountState {
            address,
            nonce: account.nonce,
            balance: account.balance,
            height: tip.height.get(),
            pending_nonce: Some(pending_nonce),
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
            Proven::Value(value, proof) => (
                Some(format!("0x{}", hex::encode(value))),
                logos_api::proof::encode_proof(&proof),
            ),
            Proven::Absent(proof) => (None, logos_api::proof::encode_absence_proof(&proof)),
        };
        let proof = Some(format!("0x{}", hex::encode(proof)));
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
        if let Some(certificate) = finalization {
            return Ok(Some(format!("0x{}", hex::encode(certificate.encode()))));
        }
        let boundary = self.epoch_boundary(height).await?;
        Ok(boundary.map(|(_, certificate)| format!("0x{}", hex::encode(certificate))))
    }

    async fn get_epoch_proof(&self, epoch: u64) -> Result<Option<EpochProof>, ErrorObjectOwned> {
        let parts = self
            .shared
            .receipts()
            .await
            .epoch(epoch)
            .await
            .map_err(unavailable)?;
        let hex = |bytes: &[u8]| format!("0x{}", hex::encode(bytes));
        Ok(parts.map(|parts| EpochProof {
            epoch,
            height: parts.height,
            epoch_info: hex(&parts.epoch_info),
            epoch_info_proof: hex(&parts.epoch_info_proof),
            committee: hex(&parts.committee),
            committee_proof: hex(&parts.committee_proof),
        }))
    }

    async fn get_state_target(&self) -> Result<Option<StateTarget>, ErrorObjectOwned> {
        let target = {
            let chain = self.shared.chain().await;
            crate::statesync::serve_target(&chain)
                .await
                .map_err(unavailable)?
        };
        // A tip finalized through a descendant's certificate has none of its own: a syncing
        // node needs one of exactly this height for marshal's floor.
        if self.marshal.get_finalization(target.height).await.is_none() {
            return Ok(None);
        }
        Ok(Some(target.to_rpc()))
    }

    async fn get_state_operations(
        &self,
        size: u64,
        start: u64,
        max_ops: u64,
        boundary: bool,
    ) -> Result<String, ErrorObjectOwned> {
        use crate::statesync::StateSyncError;
        let chain = self.shared.chain().await;
        let bytes = crate::statesync::serve_operations(&chain, (size, start, max_ops), boundary)
            .await
            .map_err(|refused| match refused {
                StateSyncError::OutOfRange(_) => invalid_params(refused),
                _ => unavailable(refused),
            })?;
        drop(chain);
        Ok(format!("0x{}", hex::encode(bytes)))
    }

    async fn get_raw_block(&self, height: u64) -> Result<Option<String>, ErrorObjectOwned> {
        let block = self
            .marshal
            .get_block(Identifier::Height(Height::new(height)))
            .await;
        Ok(block.map(|block| format!("0x{}", hex::encode(block.inner().encode()))))
    }

    async fn get_block_header(&self, height: u64) -> Result<Option<String>, ErrorObjectOwned> {
        let block = self
            .marshal
            .get_block(Identifier::Height(Height::new(height)))
            .await;
        if let Some(block) = block {
            return Ok(Some(format!(
                "0x{}",
                hex::encode(block.inner().header().encode())
            )));
        }
        let boundary = self.epoch_boundary(height).await?;
        Ok(boundary.map(|(header, _)| format!("0x{}", hex::encode(header))))
    }

    async fn get_transaction(
        &self,
        hash: String,
    ) -> Result<Option<TransactionLookup>, ErrorObjectOwned> {
        let hash = parse_transaction_hash(&hash)?;
        if let Some(transaction) = self.shared.with_mempool(|pool| pool.get(&hash)) {
            return Ok(Some(TransactionLookup {
                status: TransactionStatus::Pending,
                height: None,
                block_hash: None,
                index: None,
                transaction: TransactionInfo::from(transaction.as_ref()),
            }));
        }
        let Some((located, block)) = self.located(&hash).await? else {
            return Ok(None);
        };
        let transaction = block
            .transactions
            .get(located.index as usize)
            .filter(|transaction| transaction.hash() == hash)
            .ok_or_else(|| unavailable("transaction index out of step with the block"))?;
        Ok(Some(TransactionLookup {
            status: TransactionStatus::Finalized,
            height: Some(located.height),
            block_hash: Some(format_hash(&block.digest())),
            index: Some(located.index),
            transaction: TransactionInfo::from(transaction),
        }))
    }

    async fn get_receipt(&self, hash: String) -> Result<Option<ReceiptInfo>, ErrorObjectOwned> {
        let hash = parse_transaction_hash(&hash)?;
        let Some((located, block)) = self.located(&hash).await? else {
            return Ok(None);
        };
        let bytes = located
            .receipts
            .get(located.index as usize)
            .ok_or_else(|| unavailable("receipt index out of step with the block"))?;
        let proof = receipt_proof(&located.receipts, located.index)
            .ok_or_else(|| unavailable("no proof for the receipt"))?;
        let receipt: Receipt = serde_json::from_slice(bytes).map_err(unavailable)?;
        Ok(Some(ReceiptInfo {
            transaction: format_hash(&hash),
            height: located.height,
            block_hash: format_hash(&block.digest()),
            index: located.index,
            receipt,
            receipt_bytes: format!("0x{}", hex::encode(bytes)),
            proof: format!("0x{}", hex::encode(proof)),
        }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(total: u32, per_ip: u32) -> RpcConfig {
        RpcConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            body_max_bytes: 1 << 20,
            connections_max: total,
            connections_per_ip_max: per_ip,
            requests_per_second: 100,
            requests_per_second_per_ip: 10,
            requests_per_second_per_connection: 5,
            batch_max: 10,
            request_timeout_ms: 1_000,
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_by_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn buckets_charge_the_connection_then_the_client_then_the_server() {
        let limits = Limits::new(&config(10, 10));
        let mut extensions = jsonrpsee::types::Extensions::new();
        extensions.insert(ClientIp("10.0.0.1".parse().unwrap()));
        extensions.insert(ConnectionBucket(Arc::new(RateLimiter::direct(per_second(
            5,
        )))));
        let code = |result: Result<(), ErrorObjectOwned>| result.err().map(|error| error.code());
        assert_eq!(code(limits.charge(&extensions, 5)), None);
        assert_eq!(
            code(limits.charge(&extensions, 1)),
            Some(codes::RATE_LIMITED_CONNECTION)
        );
        // A second connection of the same client: its own bucket, the client's is shared.
        extensions.insert(ConnectionBucket(Arc::new(RateLimiter::direct(per_second(
            5,
        )))));
        assert_eq!(code(limits.charge(&extensions, 5)), None);
        extensions.insert(ConnectionBucket(Arc::new(RateLimiter::direct(per_second(
            5,
        )))));
        assert_eq!(
            code(limits.charge(&extensions, 1)),
            Some(codes::RATE_LIMITED_IP)
        );
        // A batch larger than any bucket is refused whole.
        let mut other = jsonrpsee::types::Extensions::new();
        other.insert(ClientIp("10.0.0.2".parse().unwrap()));
        assert_eq!(
            code(limits.charge(&other, 11)),
            Some(codes::RATE_LIMITED_IP)
        );
        assert_eq!(code(limits.charge(&other, 10)), None);
    }

    #[test]
    fn a_state_operations_call_weighs_sixteen_calls_and_never_rides_in_a_batch() {
        let call = |method: &'static str| {
            Ok(jsonrpsee::core::middleware::BatchEntry::Call(
                Request::borrowed(method, None, Id::Number(1)),
            ))
        };
        assert_eq!(
            call_weight(STATE_OPERATIONS_METHOD),
            STATE_OPERATIONS_WEIGHT
        );
        assert_eq!(call_weight("logos_getStateTarget"), 1);
        assert_eq!(call_weight("logos_getstateoperations"), 1);
        let mut rates = config(1_000, 10);
        rates.requests_per_second_per_ip = 40;
        rates.requests_per_second_per_connection = 1_000;
        let limits = Limits::new(&rates);
        let mut extensions = jsonrpsee::types::Extensions::new();
        extensions.insert(ClientIp("10.0.0.1".parse().unwrap()));
        let code = |result: Result<(), ErrorObjectOwned>| result.err().map(|error| error.code());
        let state = limits.weigh(STATE_OPERATIONS_METHOD);
        assert_eq!(state, STATE_OPERATIONS_WEIGHT);
        assert_eq!(code(limits.charge(&extensions, state)), None);
        assert_eq!(code(limits.charge(&extensions, state)), None);
        assert_eq!(
            code(limits.charge(&extensions, state)),
            Some(codes::RATE_LIMITED_IP),
            "a third state call in the second"
        );
        let plain = limits.weigh("logos_chainInfo");
        assert_eq!(code(limits.charge(&extensions, plain)), None);
        // Buckets smaller than the weight: a state call costs a whole bucket, not forever.
        let small = Limits::new(&config(1_000, 10));
        assert_eq!(small.weigh(STATE_OPERATIONS_METHOD), 5);
        assert_eq!(code(small.charge(&extensions, 5)), None);
        // A batch holding a state call is refused whole (checked before it is charged).
        let with_state = Batch::from(vec![call("logos_chainInfo"), call(STATE_OPERATIONS_METHOD)]);
        assert!(batch_has_state_call(&with_state));
        let without = Batch::from(vec![call("logos_chainInfo"), call("logos_getStateTarget")]);
        assert!(!batch_has_state_call(&without));
    }

    #[tokio::test]
    async fn state_answers_are_shared_out_per_client_and_waited_for_in_turn() {
        let wait = Duration::from_millis(200);
        let serves = StateServes::new(8, 4, wait);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "10.0.0.3".parse().unwrap(),
        );
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(serves.acquire(Some(a)).await.expect("a's share"));
        }
        // A client over its share is refused at once, not queued.
        let started = std::time::Instant::now();
        let refused = serves.acquire(Some(a)).await.map(|_| ()).unwrap_err();
        assert_eq!(refused.code(), codes::BUSY);
        assert!(started.elapsed() < wait);
        for _ in 0..4 {
            held.push(serves.acquire(Some(b)).await.expect("b's share"));
        }
        // The server is full: another client waits its turn, then is refused.
        let started = std::time::Instant::now();
        let refused = serves.acquire(Some(c)).await.map(|_| ()).unwrap_err();
        assert_eq!(refused.code(), codes::BUSY);
        assert!(started.elapsed() >= wait);
        // One answer done while c waits: c is served.
        let waiting = serves.acquire(Some(c));
        let release = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            held.pop();
        };
        let (served, ()) = tokio::join!(waiting, release);
        let served = served.expect("c served once a share is free");
        drop(served);
        drop(held);
        let counts = serves.per_ip.lock().unwrap();
        assert!(counts.is_empty(), "counts left behind: {counts:?}");
    }
}
