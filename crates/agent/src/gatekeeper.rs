//! The agent's HTTP API (`logos_api::agent`), garbage collection and the chain relay: the I/O
//! around the decisions of [`crate::authorize`].
//!
//! Every request is checked against finalized chain state read with proofs
//! (`logos_client::Client::map_proven`): the environment must be placed on this provider, its
//! generation and desired state must match the request, and the request must be signed by the
//! environment's assigned provisioner. Anything else is refused with `403` (`400` when the
//! request contradicts itself) and the reason is logged. Requests are rate-limited ([`AgentConfig::requests_per_second`]) and bodies bounded
//! (`REQUEST_MAX_BYTES`).
//!
//! Every [`AgentConfig::gc_interval_ms`] the agent destroys local environments that finalized
//! state no longer wants here (gone, destroyed, or placed elsewhere).

use crate::{
    authorize::{self, ChainFacts, LogsRequest, Refusal},
    driver::{Driver, DriverError},
};
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use logos_api::agent::{Action, AgentRequest, LOGS_MAX_BYTES, REQUEST_MAX_BYTES};
use logos_client::{Client, ClientError};
use logos_types::{
    dvci::ProviderId,
    operations::{EnvironmentId, Environments},
    provisioning::Assignments,
};
use std::{net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The provider this agent runs.
    pub provider: ProviderId,
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

/// The rate limit in front of every route: 429 once the bucket is empty.
async fn rate_limit<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match inner.limiter.check() {
        Ok(()) => next.run(request).await,
        Err(_) => refuse(StatusCode::TOO_MANY_REQUESTS, "rate limit".into()),
    }
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
    let rate = NonZeroU32::new(config.requests_per_second).unwrap_or(NonZeroU32::MIN);
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
        .layer(axum::middleware::from_fn_with_state(
            inner.clone(),
            rate_limit::<D>,
        ))
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
    Path(id): Path<EnvironmentId>,
    Json(request): Json<AgentRequest>,
) -> Response {
    let provider = inner.config.provider;
    let signed = match authorize::verify(request, id, provider) {
        Ok(signed) => signed,
        Err(refusal) => return refused(id, &refusal),
    };
    let facts = match read_facts(&inner.client, id).await {
        Ok(facts) => facts,
        Err(error) => return refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    };
    let action = match authorize::authorize(&signed, provider, &facts) {
        Ok(action) => action,
        Err(refusal) => return refused(id, &refusal),
    };
    let generation = signed.request().generation;
    let result = match (action, facts.environment) {
        (Action::Ensure, Some(environment)) => inner
            .driver
            .ensure(id, generation, &environment.spec)
            .await
            .map(Some),
        (Action::Ensure, None) => return refused(id, &Refusal::UnknownEnvironment),
        (Action::Destroy, _) => inner.driver.destroy(id).await.map(|()| None),
    };
    match result {
        Ok(observation) => {
            tracing::info!(environment = %id, ?action, generation, "done");
            Json(observation).into_response()
        }
        Err(DriverError::Unsupported(reason)) => refuse(StatusCode::UNPROCESSABLE_ENTITY, reason),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// The answer to a refused request: 400 when malformed in itself, 403 otherwise.
fn refused(id: EnvironmentId, refusal: &Refusal) -> Response {
    let status = if refusal.is_malformed() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::FORBIDDEN
    };
    refuse(status, format!("environment {id}: {refusal}"))
}

/// What finalized state says about environment `id`, read with proofs.
async fn read_facts(client: &Client, id: EnvironmentId) -> Result<ChainFacts, ClientError> {
    let (environment, _) = client.map_proven::<Environments>(&id).await?;
    let (assignment, _) = client.map_proven::<Assignments>(&id).await?;
    Ok(ChainFacts {
        environment,
        assignment,
    })
}

async fn handle_inspect<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    Path(id): Path<EnvironmentId>,
) -> Response {
    match inner.driver.inspect(id).await {
        Ok(Some(observation)) => Json(observation).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn handle_logs<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    Path(id): Path<EnvironmentId>,
    Query(request): Query<LogsRequest>,
) -> Response {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    // A forged or stale request costs no chain read.
    let signer = match authorize::verify_logs(&request, id, now_s) {
        Ok(signer) => signer,
        Err(refusal) => return refused(id, &refusal),
    };
    let environment = match inner.client.map_proven::<Environments>(&id).await {
        Ok((Some(environment), _)) => environment,
        Ok((None, _)) => return refuse(StatusCode::NOT_FOUND, "no such environment".into()),
        Err(error) => return refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    };
    if let Err(refusal) = authorize::authorize_logs(signer, &environment) {
        return refused(id, &refusal);
    }
    let max = request.bytes.unwrap_or(LOGS_MAX_BYTES).min(LOGS_MAX_BYTES);
    match inner.driver.logs(id, max).await {
        Ok(Some(text)) => text.into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// Destroys local environments whose proven record does not want them on this provider
/// (desired `Destroyed`, or placed elsewhere); never on an absent record or an unproven answer.
async fn collect_garbage<D: Driver>(inner: Arc<Inner<D>>) {
    let interval = Duration::from_millis(inner.config.gc_interval_ms);
    loop {
        tokio::time::sleep(interval).await;
        let Ok(local) = inner.driver.list().await else {
            continue;
        };
        for id in local {
            // Only a proven record that does not want the environment here destroys it.
            // Records are never deleted, so a proven absence can only come from a server
            // answering from before the environment existed (an old height): keep it.
            let environment = match inner.client.map_proven::<Environments>(&id).await {
                Ok((Some(environment), _)) => environment,
                Ok((None, height)) => {
                    tracing::warn!(environment = %id, height, "garbage collection: no record at this height; kept");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "garbage collection: chain unreadable or unproven");
                    break;
                }
            };
            if authorize::wanted_here(Some(&environment), inner.config.provider) {
                continue;
            }
            tracing::info!(environment = %id, "garbage-collecting: not desired here");
            if let Err(error) = inner.driver.destroy(id).await {
                tracing::warn!(environment = %id, %error, "garbage collection failed");
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
