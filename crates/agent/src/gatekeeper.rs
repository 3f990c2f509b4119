//! The agent's HTTP API (`logos_api::agent`), its chain checks, garbage collection and the
//! chain relay.
//!
//! Every request is checked against finalized chain state read with proofs
//! (`logos_client::Client::read_proven`): the environment must be placed on this provider, its
//! generation and desired state must match the request, and the request must be signed by the
//! environment's assigned provisioner. Anything else is refused with `403` and the reason is
//! logged. Requests are rate-limited ([`AgentConfig::requests_per_second`]) and bodies bounded
//! (`REQUEST_MAX_BYTES`).
//!
//! Every [`AgentConfig::gc_interval_ms`] the agent destroys local environments that finalized
//! state no longer wants here (gone, destroyed, or placed elsewhere).

use crate::driver::{Driver, DriverError};
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use commonware_cryptography::Verifier as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use logos_api::agent::{
    decode_signer, logs_message, request_message, Action, AgentRequest, AGENT_NAMESPACE,
    LOGS_MAX_AGE_S, LOGS_MAX_BYTES, LOGS_NAMESPACE, REQUEST_MAX_BYTES,
};
use logos_client::{Client, ClientError};
use logos_primitives::Address;
use logos_state::modules::{
    operations::{self, Desired, Environment},
    provisioning::{self, Assignment},
};
use std::{net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The provider this agent runs.
    pub provider: u64,
    /// Where the API listens (127.0.0.1 unless configured otherwise).
    pub listen: SocketAddr,
    /// Requests per second the API serves before answering 429.
    pub requests_per_second: u32,
    /// Time between garbage collections, ms.
    pub gc_interval_ms: u64,
    /// Where environments' chain RPC connections are relayed from (bridge address and port).
    pub relay_listen: SocketAddr,
    /// The chain RPC they are relayed to (`host:port`).
    pub relay_target: SocketAddr,
    /// Most relayed connections open at once.
    pub relay_connections_max: usize,
}

/// Errors of the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The chain could not be read.
    #[error("chain: {0}")]
    Chain(#[from] ClientError),
    /// The driver failed.
    #[error("driver: {0}")]
    Driver(#[from] DriverError),
    /// A listener could not be bound.
    #[error("bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

struct Inner<D> {
    config: AgentConfig,
    client: Client,
    driver: D,
    limiter: DefaultDirectRateLimiter,
}

/// Why a request is refused.
fn refuse(status: StatusCode, reason: String) -> Response {
    tracing::warn!(%reason, "request refused");
    (status, Json(serde_json::json!({ "error": reason }))).into_response()
}

/// Starts the API, the relay and garbage collection; returns the bound API address.
pub async fn start<D: Driver>(
    config: AgentConfig,
    client: Client,
    driver: D,
) -> Result<SocketAddr, AgentError> {
    let rate = NonZeroU32::new(config.requests_per_second.max(1)).expect("non-zero");
    let listen = config.listen;
    let inner = Arc::new(Inner {
        limiter: RateLimiter::direct(Quota::per_second(rate)),
        config,
        client,
        driver,
    });
    start_relay(&inner.config).await?;
    let app = axum::Router::new()
        .route(
            "/v1/environments/{id}",
            axum::routing::post(handle_request::<D>).get(handle_inspect::<D>),
        )
        .route(
            "/v1/environments/{id}/logs",
            axum::routing::get(handle_logs::<D>),
        )
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_MAX_BYTES))
        .with_state(inner.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| AgentError::Bind(listen, error))?;
    let address = listener
        .local_addr()
        .map_err(|e| AgentError::Bind(listen, e))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    tokio::spawn(collect_garbage(inner));
    Ok(address)
}

async fn handle_request<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    Path(id): Path<u64>,
    Json(request): Json<AgentRequest>,
) -> Response {
    if inner.limiter.check().is_err() {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "rate limit".into());
    }
    if request.environment != id {
        return refuse(StatusCode::BAD_REQUEST, "path and body disagree".into());
    }
    let environment = match authorize(&inner, &request).await {
        Ok(environment) => environment,
        Err(response) => return response,
    };
    let result = match request.action {
        Action::Ensure => {
            let spec = &environment.spec;
            inner
                .driver
                .ensure(id, request.generation, spec)
                .await
                .map(Some)
        }
        Action::Destroy => inner.driver.destroy(id).await.map(|()| None),
    };
    match result {
        Ok(observation) => {
            tracing::info!(environment = id, action = ?request.action, generation = request.generation, "done");
            Json(observation).into_response()
        }
        Err(DriverError::Unsupported(reason)) => refuse(StatusCode::UNPROCESSABLE_ENTITY, reason),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// Checks `request` against finalized chain state (see the module docs).
async fn authorize<D: Driver>(
    inner: &Inner<D>,
    request: &AgentRequest,
) -> Result<Environment, Response> {
    let id = request.environment;
    let forbidden =
        |reason: String| refuse(StatusCode::FORBIDDEN, format!("environment {id}: {reason}"));
    if request.provider != inner.config.provider {
        return Err(forbidden(format!(
            "addressed to provider {}",
            request.provider
        )));
    }
    let (public_key, signature) =
        decode_signer(&request.provisioner, &request.signature).map_err(&forbidden)?;
    let message = request_message(request.provider, id, request.generation, request.action);
    if !public_key.verify(AGENT_NAMESPACE, &message, &signature) {
        return Err(forbidden("bad signature".into()));
    }
    let unavailable =
        |error: ClientError| refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
    let (environment, _) = inner
        .client
        .read_proven::<Environment>(&operations::environment_key(id))
        .await
        .map_err(unavailable)?;
    let environment = environment.ok_or_else(|| forbidden("not in finalized state".into()))?;
    if environment.provider != inner.config.provider {
        return Err(forbidden(format!(
            "placed on provider {}",
            environment.provider
        )));
    }
    if environment.generation != request.generation {
        return Err(forbidden(format!(
            "generation {} requested, finalized state has {}",
            request.generation, environment.generation
        )));
    }
    let wanted = match environment.desired {
        Desired::Running => Action::Ensure,
        Desired::Destroyed => Action::Destroy,
    };
    if request.action != wanted {
        return Err(forbidden(format!("finalized state wants {wanted:?}")));
    }
    let (assignment, _) = inner
        .client
        .read_proven::<Assignment>(&provisioning::assignment_key(id))
        .await
        .map_err(unavailable)?;
    let signer = Address::from_public_key(&public_key);
    if assignment.and_then(|task| task.assigned) != Some(signer) {
        return Err(forbidden(format!(
            "{signer} is not the assigned provisioner"
        )));
    }
    Ok(environment)
}

async fn handle_inspect<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    Path(id): Path<u64>,
) -> Response {
    if inner.limiter.check().is_err() {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "rate limit".into());
    }
    match inner.driver.inspect(id).await {
        Ok(Some(observation)) => Json(observation).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// Query of a log request.
#[derive(serde::Deserialize)]
struct LogsQuery {
    timestamp_s: u64,
    public_key: String,
    signature: String,
    bytes: Option<u64>,
}

async fn handle_logs<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    Path(id): Path<u64>,
    Query(query): Query<LogsQuery>,
) -> Response {
    if inner.limiter.check().is_err() {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "rate limit".into());
    }
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    if now_s.abs_diff(query.timestamp_s) > LOGS_MAX_AGE_S {
        return refuse(StatusCode::FORBIDDEN, "log request expired".into());
    }
    let environment = match inner
        .client
        .read_proven::<Environment>(&operations::environment_key(id))
        .await
    {
        Ok((Some(environment), _)) => environment,
        Ok((None, _)) => return refuse(StatusCode::NOT_FOUND, "no such environment".into()),
        Err(error) => return refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    };
    let authorized =
        decode_signer(&query.public_key, &query.signature).is_ok_and(|(key, signature)| {
            Address::from_public_key(&key) == environment.tenant
                && key.verify(
                    LOGS_NAMESPACE,
                    &logs_message(id, query.timestamp_s),
                    &signature,
                )
        });
    if !authorized {
        return refuse(StatusCode::FORBIDDEN, "not signed by the tenant".into());
    }
    let max = query.bytes.unwrap_or(LOGS_MAX_BYTES).min(LOGS_MAX_BYTES);
    match inner.driver.logs(id, max).await {
        Ok(Some(text)) => text.into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// Destroys local environments that finalized state does not want on this provider.
async fn collect_garbage<D: Driver>(inner: Arc<Inner<D>>) {
    let interval = Duration::from_millis(inner.config.gc_interval_ms);
    loop {
        tokio::time::sleep(interval).await;
        let Ok(local) = inner.driver.list().await else {
            continue;
        };
        for id in local {
            let wanted = match inner
                .client
                .read_proven::<Environment>(&operations::environment_key(id))
                .await
            {
                Ok((Some(environment), _)) => {
                    environment.desired == Desired::Running
                        && environment.provider == inner.config.provider
                }
                Ok((None, _)) => false,
                Err(error) => {
                    tracing::warn!(%error, "garbage collection: chain unreadable");
                    break;
                }
            };
            if !wanted {
                tracing::info!(environment = id, "garbage-collecting: not desired here");
                if let Err(error) = inner.driver.destroy(id).await {
                    tracing::warn!(environment = id, %error, "garbage collection failed");
                }
            }
        }
    }
}

/// Relays TCP connections from environments (on the bridge) to the chain RPC.
async fn start_relay(config: &AgentConfig) -> Result<(), AgentError> {
    let listener = tokio::net::TcpListener::bind(config.relay_listen)
        .await
        .map_err(|error| AgentError::Bind(config.relay_listen, error))?;
    let target = config.relay_target;
    let slots = Arc::new(tokio::sync::Semaphore::new(config.relay_connections_max));
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                drop(permit);
            });
        }
    });
    Ok(())
}
