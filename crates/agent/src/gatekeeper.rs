//! The agent's HTTP API (`logos_api::agent`), garbage collection and the chain relay: the I/O
//! around the decisions of [`crate::authorize`].
//!
//! Every request is checked against finalized chain state read with proofs
//! (`logos_client::Client::map_proven`): the environment must be placed on this provider, its
//! generation and desired state must match the request, and the request must be signed by the
//! environment's assigned provisioner; it must be for this chain, unexpired and not a replay
//! ([`crate::authorize`]). Anything else is refused with `403` (`400` when the request
//! contradicts itself) and the reason is logged. Rate limits are per caller
//! ([`crate::admission`]: known callers have their own budgets, unknown ones and unsigned reads
//! share [`AgentConfig::requests_per_second`] each) and bodies are bounded
//! (`REQUEST_MAX_BYTES`). The known callers (eligible provisioners, tenants of the
//! environments here) are read from finalized state, with proofs, every
//! [`KNOWN_REFRESH_MS`].
//!
//! An `observe` request (from the assignee or a checker of the current round) is answered
//! with the observation signed by the agent's key: the workload's image digest, start time,
//! restart count and limits, which a checker compares with the desired spec.
//!
//! A tenant reads its environment's logs (the tail, or followed: streamed at most
//! `FOLLOW_BYTES_PER_SECOND` for at most `FOLLOW_MAX_S`, at most [`FOLLOW_STREAMS_MAX`] streams
//! at once and [`FOLLOW_STREAMS_PER_TENANT_MAX`] per tenant) and its stats, which the agent signs with its key (the provider's `agent_key` on
//! chain) so the tenant can hold the provider to them.
//!
//! Every [`AgentConfig::gc_interval_ms`] the agent destroys local environments that finalized
//! state no longer wants here (gone, destroyed, or placed elsewhere).

use crate::{
    admission::{Admission, Throttled},
    authorize::{self, ChainFacts, LogsRequest, Nonces, Refusal},
    container::shim::LogCursor,
    driver::{Driver, DriverError},
};
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use logos_api::agent::{
    observation_message, Action, AgentRequest, EnvironmentStats, Refused, SignedObservation,
    SignedStats, Usage, WorkloadState, FOLLOW_BYTES_PER_SECOND, FOLLOW_MAX_S, LOGS_MAX_BYTES,
    LOGS_NAMESPACE, OBSERVATION_NAMESPACE, REQUEST_MAX_BYTES, STATS_NAMESPACE,
    STATS_REQUEST_NAMESPACE,
};
use logos_client::{Client, ClientError};
use logos_limits::Slots;
use logos_primitives::{format_public_key, Address, KeySignature, PrivateKey};
use logos_types::{
    dvci::ProviderId,
    operations::{EnvironmentId, Environments, Spec},
    provisioning::{
        attestation_message, Assignments, Attestation, Attested, Eligible, ATTESTATION_NAMESPACE,
    },
};
use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The provider this agent runs.
    pub provider: ProviderId,
    /// Where the API listens (127.0.0.1 unless configured otherwise).
    pub listen: SocketAddr,
    /// Requests per second the API serves to callers the chain does not know, and (apart) to
    /// unsigned reads, before answering 429; each known caller has its own budget
    /// ([`crate::admission`]).
    pub requests_per_second: u32,
    /// Time between garbage collections, ms.
    pub gc_interval_ms: u64,
    /// Where environments' chain RPC connections are relayed from (bridge address and port).
    pub relay_listen: SocketAddr,
    /// The chain RPC they are relayed to (`host:port`).
    pub relay_target: SocketAddr,
    /// The p2p relays: (listen address on the bridge, a genesis validator's p2p address), in
    /// genesis order, so that a leased full node can follow the chain (its p2p sessions are
    /// end-to-end authenticated and encrypted; the relay only forwards bytes).
    pub p2p_relays: Vec<(SocketAddr, SocketAddr)>,
    /// Most relayed connections open at once (RPC and p2p together).
    pub relay_connections_max: u32,
    /// Most of them from one environment (its address on the bridge).
    pub relay_connections_per_environment_max: u32,
    /// The key the agent signs stats with (the provider's `agent_key`); without one, stats
    /// are refused.
    pub key: Option<PrivateKey>,
}

/// Most followed log streams served at once.
pub const FOLLOW_STREAMS_MAX: u32 = 64;
/// Most followed log streams of one tenant at once (no tenant takes them all).
pub const FOLLOW_STREAMS_PER_TENANT_MAX: u32 = 4;
/// Longest a followed stream waits for its client to take a chunk before it ends, ms.
pub const FOLLOW_SEND_TIMEOUT_MS: u64 = 30_000;
/// Time between reads of a followed log, ms.
const FOLLOW_POLL_MS: u64 = 250;
/// Time between reads of the known callers from finalized state, ms.
pub const KNOWN_REFRESH_MS: u64 = 2_000;

/// Placeholder in a workload command for the environment's tenant account (replaced here, from
/// the proven record, before the driver sees the spec).
pub const TENANT_PLACEHOLDER: &str = "${TENANT}";

/// `spec` with `${TENANT}` replaced by `tenant` in its command; `Unsupported` if an argument
/// would grow past its bound.
pub fn with_tenant(spec: &Spec, tenant: &Address) -> Result<Spec, DriverError> {
    let tenant = tenant.to_string();
    let mut spec = spec.clone();
    for argument in spec.workload.command.iter_mut() {
        if !argument.contains(TENANT_PLACEHOLDER) {
            continue;
        }
        let replaced = argument.replace(TENANT_PLACEHOLDER, &tenant);
        *argument = replaced.as_str().try_into().map_err(|_| {
            DriverError::Unsupported(format!(
                "argument too long once the tenant is in: {replaced}"
            ))
        })?;
    }
    Ok(spec)
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
    admission: Admission,
    nonces: Mutex<Nonces>,
    /// The chain's id, as requests name it.
    chain_id: String,
    follows: Arc<Slots<Address>>,
}

/// The budget of the request's source address, in front of every route (before the body is
/// even parsed).
async fn limit_source<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    axum::extract::ConnectInfo(source): axum::extract::ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match inner.admission.source(source.ip()) {
        Ok(()) => next.run(request).await,
        Err(limit) => throttled(limit),
    }
}

/// The answer to a request over its budget.
fn throttled(throttled: Throttled) -> Response {
    refuse(StatusCode::TOO_MANY_REQUESTS, throttled.to_string())
}

/// Spends the budget of the caller `public_key` claims to be, before its signature is checked
/// (an unknown key spends the strangers' budget).
fn admit_claimed<D>(inner: &Inner<D>, public_key: &str) -> Result<(), Throttled> {
    let claimed = logos_primitives::parse_public_key(public_key)
        .map(|key| Address::from_public_key(&key))
        .unwrap_or(Address([0; 20]));
    inner.admission.claimed(&claimed)
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
    let listen = config.listen;
    let inner = Arc::new(Inner {
        admission: Admission::new(config.requests_per_second),
        nonces: Mutex::new(Nonces::default()),
        chain_id: client.info().chain_id.to_string(),
        follows: Arc::new(Slots::new(
            FOLLOW_STREAMS_MAX,
            FOLLOW_STREAMS_PER_TENANT_MAX,
        )),
        config,
        client,
        driver,
    });
    let slots = Arc::new(Slots::new(
        inner.config.relay_connections_max,
        inner.config.relay_connections_per_environment_max,
    ));
    start_relay(inner.config.relay_listen, inner.config.relay_target, &slots).await?;
    for (listen, target) in &inner.config.p2p_relays {
        start_relay(*listen, *target, &slots).await?;
    }
    let app = axum::Router::new()
        .route(
            "/v1/environments/{id}",
            axum::routing::post(handle_request::<D>).get(handle_inspect::<D>),
        )
        .route(
            "/v1/environments/{id}/logs",
            axum::routing::get(handle_logs::<D>),
        )
        .route(
            "/v1/environments/{id}/stats",
            axum::routing::get(handle_stats::<D>),
        )
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_MAX_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            inner.clone(),
            limit_source::<D>,
        ))
        .with_state(inner.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| AgentError::Bind(listen, error))?;
    let address = listener
        .local_addr()
        .map_err(|e| AgentError::Bind(listen, e))?;
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    tokio::spawn(refresh_known(inner.clone()));
    tokio::spawn(collect_garbage(inner));
    Ok(address)
}

async fn handle_request<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    Path(id): Path<EnvironmentId>,
    Json(request): Json<AgentRequest>,
) -> Response {
    let provider = inner.config.provider;
    if let Err(limit) = admit_claimed(&inner, &request.provisioner) {
        return throttled(limit);
    }
    let signed = match authorize::verify(request, id, provider, &inner.chain_id) {
        Ok(signed) => signed,
        Err(refusal) => return refused(id, &refusal),
    };
    if let Err(limit) = inner.admission.verified(&signed.signer()) {
        return throttled(limit);
    }
    let (facts, height) = match read_facts(&inner.client, id).await {
        Ok(read) => read,
        Err(error) => return refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    };
    let action = match authorize::authorize(&signed, provider, &facts, height) {
        Ok(action) => action,
        Err(refusal) => return refused(id, &refusal),
    };
    let admitted = inner
        .nonces
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .admit(&signed, height);
    if let Err(refusal) = admitted {
        return refused(id, &refusal);
    }
    let generation = signed.request().generation;
    let spec = match (action, facts.environment) {
        (Action::Observe, _) => return observe(&inner, id, &signed).await,
        (Action::Ensure, Some(environment)) => {
            match with_tenant(&environment.spec, &environment.tenant) {
                Ok(spec) => Some(spec),
                Err(DriverError::Unsupported(error)) => return unprocessable(error, "Unsupported"),
                Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
            }
        }
        (Action::Ensure, None) => return refused(id, &Refusal::UnknownEnvironment),
        (Action::Destroy, _) => None,
    };
    // Carried out to its end even if the client gives up waiting (a half-made environment
    // would otherwise be left): a later request finds it done.
    let worker = inner.clone();
    let started = std::time::Instant::now();
    let task = tokio::spawn(async move {
        match spec {
            Some(spec) => worker.driver.ensure(id, generation, &spec).await.map(Some),
            None => worker.driver.destroy(id).await.map(|()| None),
        }
    });
    let result = match task.await {
        Ok(result) => result,
        Err(error) => Err(DriverError::System(format!("driver task: {error}"))),
    };
    match result {
        Ok(observation) => {
            let elapsed_ms = started.elapsed().as_millis();
            tracing::info!(environment = %id, ?action, generation, elapsed_ms, "done");
            Json(observation).into_response()
        }
        Err(DriverError::Image(error)) => unprocessable(error, "ImageRefused"),
        Err(DriverError::Unsupported(error)) => unprocessable(error, "Unsupported"),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// A `422` saying why the environment cannot be realized ([`Refused`]).
fn unprocessable(error: String, reason: &str) -> Response {
    tracing::warn!(%error, reason, "environment cannot be realized");
    let body = Refused {
        error,
        reason: reason.into(),
    };
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
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

/// What finalized state says about environment `id`, read with proofs, and the (lower)
/// height of the two reads.
async fn read_facts(client: &Client, id: EnvironmentId) -> Result<(ChainFacts, u64), ClientError> {
    let (environment, environment_height) = client.map_proven::<Environments>(&id).await?;
    let (assignment, assignment_height) = client.map_proven::<Assignments>(&id).await?;
    let facts = ChainFacts {
        environment,
        assignment,
    };
    Ok((facts, environment_height.min(assignment_height)))
}

/// The answer to `observe`: what runs (JSON `null` if nothing of the environment is here),
/// signed by the agent's key with the request's `nonce`, a running workload's generation,
/// endpoint and ports also attested for the chain (503 without a key).
async fn observe<D: Driver>(
    inner: &Inner<D>,
    id: EnvironmentId,
    signed: &authorize::SignedRequest,
) -> Response {
    let nonce = signed.request().nonce;
    let Some(key) = inner.config.key.as_ref() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "no agent key".into());
    };
    let mut observation = match inner.driver.inspect(id).await {
        Ok(Some(observation)) => Some(observation),
        Ok(None) => None,
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    use commonware_cryptography::Signer as _;
    if let Some(observation) = observation
        .as_mut()
        .filter(|o| o.workload == WorkloadState::Running && !o.endpoint.is_empty())
    {
        // For the asker only (the assignee reports it), until its request expires.
        let expires_at = signed.request().expires_at;
        let attested = Attested {
            provider: inner.config.provider,
            environment: id,
            generation: observation.generation,
            endpoint: &observation.endpoint,
            ports: &observation.ports,
            assignee: signed.signer(),
            expires_at,
        };
        let message = attestation_message(&inner.client.info().chain_id, &attested, nonce);
        observation.attestation = Some(Attestation {
            nonce,
            expires_at,
            signature: KeySignature::from_signature(&key.sign(ATTESTATION_NAMESPACE, &message)),
        });
    }
    // Absence is signed too (`null`): an unsigned 404 proves nothing against anyone.
    let observation = match serde_json::to_string(&observation) {
        Ok(json) => json,
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    let signature = key.sign(
        OBSERVATION_NAMESPACE,
        &observation_message(nonce, &observation),
    );
    Json(SignedObservation {
        observation,
        agent_key: format_public_key(&key.public_key()),
        signature: KeySignature::from_signature(&signature).to_string(),
    })
    .into_response()
}

async fn handle_inspect<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    Path(id): Path<EnvironmentId>,
) -> Response {
    if let Err(limit) = inner.admission.unsigned() {
        return throttled(limit);
    }
    match inner.driver.inspect(id).await {
        Ok(Some(observation)) => Json(observation).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Checks a tenant's read on its own, then against the proven record; the refusal as an
/// answer.
async fn tenant_read<D: Driver>(
    inner: &Inner<D>,
    id: EnvironmentId,
    request: &LogsRequest,
    namespace: &[u8],
) -> Result<Address, Response> {
    // A forged or stale request costs no chain read.
    admit_claimed(inner, &request.public_key).map_err(throttled)?;
    let signer = authorize::verify_read(request, id, now_s(), namespace)
        .map_err(|refusal| refused(id, &refusal))?;
    inner.admission.verified(&signer).map_err(throttled)?;
    let environment = match inner.client.map_proven::<Environments>(&id).await {
        Ok((Some(environment), _)) => environment,
        Ok((None, _)) => return Err(refuse(StatusCode::NOT_FOUND, "no such environment".into())),
        Err(error) => return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string())),
    };
    authorize::authorize_logs(signer, &environment).map_err(|refusal| refused(id, &refusal))?;
    Ok(signer)
}

async fn handle_logs<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    Path(id): Path<EnvironmentId>,
    Query(request): Query<LogsRequest>,
) -> Response {
    let tenant = match tenant_read(&inner, id, &request, LOGS_NAMESPACE).await {
        Ok(tenant) => tenant,
        Err(refusal) => return refusal,
    };
    let max = request.bytes.unwrap_or(LOGS_MAX_BYTES).min(LOGS_MAX_BYTES);
    if request.follow == Some(true) {
        return follow(inner, id, tenant, max);
    }
    match inner.driver.logs(id, max).await {
        Ok(Some(text)) => text.into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// Streams the tail of at most `first_bytes`, then what the workload writes, at most
/// `FOLLOW_BYTES_PER_SECOND`, until `FOLLOW_MAX_S` pass, the environment is gone, or the
/// client takes nothing for [`FOLLOW_SEND_TIMEOUT_MS`] (its slot is then given back).
fn follow<D: Driver>(
    inner: Arc<Inner<D>>,
    id: EnvironmentId,
    tenant: Address,
    first_bytes: u64,
) -> Response {
    let Some(permit) = Slots::acquire(&inner.follows, tenant) else {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many followed logs (of this tenant, or in all)".into(),
        );
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
    tokio::spawn(async move {
        let _permit = permit;
        let per_poll = FOLLOW_BYTES_PER_SECOND * FOLLOW_POLL_MS / 1_000;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(FOLLOW_MAX_S);
        let (mut cursor, mut budget) = (LogCursor::default(), first_bytes);
        while tokio::time::Instant::now() < deadline {
            let Ok(Some((bytes, next))) = inner.driver.read_logs(id, cursor, budget).await else {
                return;
            };
            (cursor, budget) = (next, per_poll);
            if !bytes.is_empty() {
                let timeout = Duration::from_millis(FOLLOW_SEND_TIMEOUT_MS);
                let sent = tokio::time::timeout(timeout, sender.send(bytes.into())).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(FOLLOW_POLL_MS)).await;
        }
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), receiver))
    });
    axum::body::Body::from_stream(stream).into_response()
}

async fn handle_stats<D: Driver>(
    State(inner): State<Arc<Inner<D>>>,
    Path(id): Path<EnvironmentId>,
    Query(request): Query<LogsRequest>,
) -> Response {
    let Some(key) = inner.config.key.as_ref() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this agent has no signing key".into(),
        );
    };
    if let Err(refusal) = tenant_read(&inner, id, &request, STATS_REQUEST_NAMESPACE).await {
        return refusal;
    }
    match inner.driver.usage(id).await {
        Ok(Some(usage)) => {
            let stats = stats(inner.config.provider, id, request.timestamp_s, usage);
            Json(sign_stats(key, &stats)).into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

fn stats(
    provider: ProviderId,
    id: EnvironmentId,
    request_timestamp_s: u64,
    usage: Usage,
) -> EnvironmentStats {
    EnvironmentStats {
        provider,
        environment: id,
        request_timestamp_s,
        measured_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        usage,
    }
}

/// `stats` as JSON, signed with `key` in [`STATS_NAMESPACE`].
pub fn sign_stats(key: &PrivateKey, stats: &EnvironmentStats) -> SignedStats {
    use commonware_cryptography::Signer as _;
    let text = serde_json::to_string(stats).unwrap_or_default();
    let signature = key.sign(STATS_NAMESPACE, text.as_bytes());
    SignedStats {
        stats: text,
        agent_key: format_public_key(&key.public_key()),
        signature: KeySignature::from_signature(&signature).to_string(),
    }
}

/// Destroys local environments whose proven record does not want them on this provider
/// (desired `Destroyed`, or placed elsewhere); never on an absent record or an unproven answer.
/// Reads the known callers (eligible provisioners; tenants, assignees and checkers of the
/// environments here) from
/// finalized state with proofs every [`KNOWN_REFRESH_MS`]; an unreadable or unproven read
/// keeps the previous set.
async fn refresh_known<D: Driver>(inner: Arc<Inner<D>>) {
    loop {
        if let Err(error) = read_known(&inner).await {
            tracing::debug!(%error, "known callers not refreshed");
        }
        inner.admission.forget_idle();
        tokio::time::sleep(Duration::from_millis(KNOWN_REFRESH_MS)).await;
    }
}

async fn read_known<D: Driver>(inner: &Inner<D>) -> Result<(), AgentError> {
    let (eligible, _) = inner.client.value_proven::<Eligible>().await?;
    let mut known: Vec<Address> = eligible.into_inner();
    for id in inner.driver.list().await? {
        if let (Some(environment), _) = inner.client.map_proven::<Environments>(&id).await? {
            known.push(environment.tenant);
        }
        // Whoever realizes or checks it (a checker just slashed below the minimum stake, or
        // drawn right after registering, is not eligible but still owes its verdict).
        if let (Some(task), _) = inner.client.map_proven::<Assignments>(&id).await? {
            known.extend(task.assigned);
            known.extend(task.checkers.iter().copied());
        }
    }
    inner.admission.set_known(known);
    Ok(())
}

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

/// Wait after a failed accept (out of descriptors, most likely) before trying again, ms.
const ACCEPT_RETRY_MS: u64 = 100;

/// Relays TCP connections from environments (on the bridge, at `listen`) to `target` (the
/// chain RPC, or a validator's p2p port), at most `slots` at once over all relays; returns
/// the address it listens on. A connection over the total or over its source's share is
/// closed at once.
async fn start_relay(
    listen: SocketAddr,
    target: SocketAddr,
    slots: &Arc<Slots<IpAddr>>,
) -> Result<SocketAddr, AgentError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| AgentError::Bind(listen, error))?;
    let local = listener
        .local_addr()
        .map_err(|error| AgentError::Bind(listen, error))?;
    let slots = slots.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, source)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                continue;
            };
            let Some(slot) = Slots::acquire(&slots, source.ip()) else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                drop(slot);
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logos_types::{catalog::Workload, dvci::Resources};

    fn spec(command: &[&str]) -> Spec {
        Spec {
            resources: Resources::default(),
            workload: Workload {
                command: command
                    .iter()
                    .map(|part| (*part).try_into().unwrap())
                    .collect::<Vec<_>>()
                    .try_into()
                    .unwrap(),
                ..Workload::default()
            },
        }
    }

    /// Connects to `relay` from the loopback address `source` and checks the connection is
    /// relayed (an echo comes back); false if the relay closed it.
    async fn relayed(relay: SocketAddr, source: IpAddr) -> Option<tokio::net::TcpStream> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let mut stream = socket.connect(relay).await.unwrap();
        stream.write_all(b"ping").await.ok()?;
        let mut echo = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echo))
            .await
            .ok()?;
        (read.is_ok() && &echo == b"ping").then_some(stream)
    }

    /// Attacker's side of the relays: one environment opening connections until refused
    /// holds exactly its share, another environment still connects meanwhile, the total
    /// holds over all relays together, and a closed connection gives its slot back.
    #[tokio::test]
    async fn one_environment_exhausting_its_relay_share_leaves_room_for_another() {
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        let slots = Arc::new(Slots::new(7, 4));
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let rpc = start_relay(any, target, &slots).await.unwrap();
        let p2p = start_relay(any, target, &slots).await.unwrap();
        let greedy: IpAddr = "127.0.0.2".parse().unwrap();
        let mut held = Vec::new();
        for relay in [rpc, p2p, rpc, p2p] {
            held.push(relayed(relay, greedy).await.expect("within its share"));
        }
        for relay in [rpc, p2p] {
            assert!(relayed(relay, greedy).await.is_none(), "over its share");
        }
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let mut others = Vec::new();
        for relay in [p2p, rpc, p2p] {
            others.push(relayed(relay, other).await.expect("another environment"));
        }
        let third: IpAddr = "127.0.0.4".parse().unwrap();
        assert!(relayed(rpc, third).await.is_none(), "over the total");
        assert_eq!(slots.open_total(), 7);
        drop(held.pop());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while slots.open_total() > 6 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            relayed(p2p, third).await.is_some(),
            "a closed slot is given back"
        );
    }

    /// The tenant comes from the proven record, never from the template's author, and an
    /// argument that would outgrow its bound is refused rather than cut.
    #[test]
    fn the_tenant_placeholder_takes_the_records_tenant_and_stays_bounded() {
        let tenant = Address([7; 20]);
        let replaced = with_tenant(
            &spec(&["run", "--register-for", "${TENANT}@1.2.3.4:1"]),
            &tenant,
        )
        .unwrap();
        assert_eq!(
            replaced.workload.command[2].as_str(),
            format!("{tenant}@1.2.3.4:1")
        );
        assert_eq!(replaced.workload.command[0].as_str(), "run");
        let long = format!("{}{TENANT_PLACEHOLDER}", "x".repeat(240));
        assert!(matches!(
            with_tenant(&spec(&[&long]), &tenant),
            Err(DriverError::Unsupported(_))
        ));
    }
}
