//! The tenant's reads from its provider's agent: an environment's logs (a tail, or followed)
//! and its resource use, signed by the agent's key. Each request is signed by the tenant's
//! wallet for that environment and time (`logos_api::agent::logs_message`); the agent's
//! address and key come from proven chain state, never from the RPC server's word; stats are
//! accepted only when the agent's key on chain signed them, for this provider, environment
//! and request, measured near the request's time.

use crate::{
    http::{read_bounded, untrusted},
    Client, ClientError, Wallet,
};
use commonware_codec::Encode;
use logos_api::agent::{
    logs_message, EnvironmentStats, SignedStats, LOGS_MAX_BYTES, LOGS_NAMESPACE, STATS_NAMESPACE,
    STATS_REQUEST_NAMESPACE,
};
use logos_primitives::{format_public_key, NodeKey};
use logos_types::{
    dvci::{Provider, ProviderId, Providers},
    operations::{Environment, EnvironmentId, Environments},
};
use std::time::Duration;

/// Timeout of a request to an agent (connecting, and reading a tail or stats), ms.
pub const AGENT_TIMEOUT_MS: u64 = 10_000;
/// Room for an agent's error message beyond the logs asked for, bytes.
pub const AGENT_ERROR_MAX_BYTES: usize = 4_096;
/// Largest stats answer read from an agent, bytes.
pub const STATS_MAX_BYTES: usize = 16 * 1024;
/// Agent stats measured further than this from the request's time (agent's clock) are
/// refused, s.
pub const STATS_MAX_AGE_S: u64 = 60;

/// The environment's record and its provider's, proven (needs a trust anchor).
pub async fn environment_and_provider(
    client: &Client,
    id: EnvironmentId,
) -> Result<(Environment, Provider), ClientError> {
    let (environment, _) = client.map_proven::<Environments>(&id).await?;
    let environment =
        environment.ok_or_else(|| ClientError::Missing(format!("no environment {id}")))?;
    let (provider, _) = client
        .map_proven::<Providers>(&environment.provider)
        .await?;
    let provider = provider.ok_or_else(|| {
        ClientError::Missing(format!("provider {} is gone", environment.provider))
    })?;
    Ok((environment, provider))
}

/// The query of the tenant's signed read of `id` in `namespace` at `timestamp_s` (UNIX s).
pub fn signed_query(
    wallet: &Wallet,
    id: EnvironmentId,
    namespace: &[u8],
    follow: bool,
    timestamp_s: u64,
) -> Vec<(&'static str, String)> {
    let signature = wallet.sign(namespace, &logs_message(id, timestamp_s, follow));
    vec![
        ("timestamp_s", timestamp_s.to_string()),
        ("public_key", format_public_key(&wallet.public_key())),
        (
            "signature",
            format!("0x{}", hex::encode(signature.encode())),
        ),
    ]
}

/// Now, UNIX seconds.
fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn agent_error(status: reqwest::StatusCode, body: &[u8]) -> ClientError {
    ClientError::Malformed(format!(
        "agent answered {status}: {}",
        String::from_utf8_lossy(body)
    ))
}

fn transport(error: impl std::fmt::Display) -> ClientError {
    ClientError::Malformed(format!("agent: {error}"))
}

/// `GET url?query` from an agent, the whole exchange bounded by [`AGENT_TIMEOUT_MS`].
async fn get(url: &str, query: &[(&str, String)]) -> Result<reqwest::Response, ClientError> {
    untrusted(Duration::from_millis(AGENT_TIMEOUT_MS))
        .map_err(transport)?
        .get(url)
        .query(query)
        .send()
        .await
        .map_err(transport)
}

/// The last `bytes` (at most [`LOGS_MAX_BYTES`]) of environment `id`'s logs.
pub async fn logs_tail(
    client: &Client,
    wallet: &Wallet,
    id: EnvironmentId,
    bytes: u64,
) -> Result<Vec<u8>, ClientError> {
    let (_, provider) = environment_and_provider(client, id).await?;
    let mut query = signed_query(wallet, id, LOGS_NAMESPACE, false, now_s());
    query.push(("bytes", bytes.min(LOGS_MAX_BYTES).to_string()));
    let url = format!("http://{}/v1/environments/{id}/logs", provider.endpoint);
    let response = get(&url, &query).await?;
    let status = response.status();
    // The agent is the provider's: at most the asked bytes plus room for an error.
    let bound = usize::try_from(LOGS_MAX_BYTES).unwrap_or(usize::MAX) + AGENT_ERROR_MAX_BYTES;
    let body = read_bounded(response, bound).await.map_err(transport)?;
    match status.is_success() {
        true => Ok(body),
        false => Err(agent_error(status, &body)),
    }
}

/// Environment `id`'s logs from the last `bytes` on, followed: the agent's streaming answer
/// (it ends the stream; the caller bounds what it keeps). Connecting is bounded by
/// [`AGENT_TIMEOUT_MS`], the stream is not.
pub async fn logs_followed(
    client: &Client,
    wallet: &Wallet,
    id: EnvironmentId,
    bytes: u64,
) -> Result<reqwest::Response, ClientError> {
    let (_, provider) = environment_and_provider(client, id).await?;
    let mut query = signed_query(wallet, id, LOGS_NAMESPACE, true, now_s());
    query.push(("bytes", bytes.min(LOGS_MAX_BYTES).to_string()));
    query.push(("follow", "true".into()));
    let url = format!("http://{}/v1/environments/{id}/logs", provider.endpoint);
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_millis(AGENT_TIMEOUT_MS))
        .build()
        .map_err(transport)?
        .get(&url)
        .query(&query)
        .send();
    // Bounded until the answer starts (an agent that accepts and never answers would hold the
    // caller), unbounded after: the agent ends the stream.
    let response = tokio::time::timeout(Duration::from_millis(AGENT_TIMEOUT_MS), response)
        .await
        .map_err(|_| transport("no answer in time"))?
        .map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        let body = read_bounded(response, AGENT_ERROR_MAX_BYTES)
            .await
            .map_err(transport)?;
        return Err(agent_error(status, &body));
    }
    Ok(response)
}

/// Environment `id`'s resource use, verified ([`verify_stats`]), with the agent key that
/// signed it.
pub async fn stats(
    client: &Client,
    wallet: &Wallet,
    id: EnvironmentId,
) -> Result<(EnvironmentStats, NodeKey), ClientError> {
    let (environment, provider) = environment_and_provider(client, id).await?;
    let agent_key = provider.agent_key.ok_or_else(|| {
        ClientError::Missing(format!(
            "provider {} has no agent key on chain: its stats cannot be checked",
            environment.provider
        ))
    })?;
    let timestamp_s = now_s();
    let query = signed_query(wallet, id, STATS_REQUEST_NAMESPACE, false, timestamp_s);
    let url = format!("http://{}/v1/environments/{id}/stats", provider.endpoint);
    let response = get(&url, &query).await?;
    let status = response.status();
    let body = read_bounded(response, STATS_MAX_BYTES)
        .await
        .map_err(transport)?;
    if !status.is_success() {
        return Err(agent_error(status, &body));
    }
    let signed: SignedStats = serde_json::from_slice(&body)
        .map_err(|_| ClientError::Malformed("the agent's answer is not signed stats".into()))?;
    let stats = verify_stats(&signed, &agent_key, environment.provider, id, timestamp_s)?;
    Ok((stats, agent_key))
}

/// The stats in `signed` if the provider's agent key signed exactly those bytes, for this
/// provider, environment and request (a replayed or foreign answer is refused), measured
/// within [`STATS_MAX_AGE_S`] of the request.
pub fn verify_stats(
    signed: &SignedStats,
    agent_key: &NodeKey,
    provider: ProviderId,
    id: EnvironmentId,
    request_timestamp_s: u64,
) -> Result<EnvironmentStats, ClientError> {
    let refuse = |reason: String| Err(ClientError::Malformed(reason));
    let Ok(signature) = signed.signature.parse::<logos_primitives::KeySignature>() else {
        return refuse("the stats' signature is malformed".into());
    };
    if !agent_key.verifies(STATS_NAMESPACE, signed.stats.as_bytes(), &signature) {
        return refuse(format!(
            "the stats are not signed by provider {provider}'s agent key {agent_key}"
        ));
    }
    let Ok(stats) = serde_json::from_str::<EnvironmentStats>(&signed.stats) else {
        return refuse("the signed stats are malformed".into());
    };
    if stats.provider != provider || stats.environment != id {
        return refuse(format!(
            "the signed stats are about provider {} environment {}",
            stats.provider, stats.environment
        ));
    }
    if stats.request_timestamp_s != request_timestamp_s {
        return refuse("the signed stats answer another request (a replay)".into());
    }
    let measured_s = stats.measured_at_ms / 1_000;
    if measured_s.abs_diff(request_timestamp_s) > STATS_MAX_AGE_S {
        return refuse(format!(
            "the signed stats were measured at {measured_s}, not near the request \
             ({request_timestamp_s})"
        ));
    }
    Ok(stats)
}
