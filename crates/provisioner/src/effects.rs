//! Carrying out the core's effects, and the observations it decides on: the provider agent's
//! HTTP API (`logos_api::agent`), health probes, and submissions to the chain.

use crate::{
    core::{AgentView, Effect},
    probe::probe_health,
    ProvisionerError,
};
use commonware_cryptography::Verifier as _;
use logos_api::agent::{
    decode_signer, observation_message, Action, AgentRequest, Observation, Refused,
    SignedObservation, AGENT_NAMESPACE, OBSERVATION_NAMESPACE,
};
use logos_client::{Client, Wallet};
use logos_primitives::{format_public_key, KeySignature, NodeKey};
use logos_types::{
    dvci::{Provider, ProviderId},
    operations::{Environment, EnvironmentId},
    provisioning,
    workload::HealthCheck,
    Call,
};
use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

/// Blocks after the finalized height read that an agent request stays valid.
pub const REQUEST_VALIDITY_BLOCKS: u64 = 600;

/// Where an effect on an environment goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// The environment.
    pub environment: EnvironmentId,
    /// Its provider.
    pub provider: ProviderId,
    /// The provider's agent (`host:port`).
    pub agent: String,
    /// The generation of desired state the effect realizes.
    pub generation: u64,
    /// The key the provider's agent signs observations with (none: it cannot be observed).
    pub agent_key: Option<NodeKey>,
    /// The finalized height the desired state was read at (requests expire
    /// [`REQUEST_VALIDITY_BLOCKS`] after it).
    pub height: u64,
}

impl Target {
    /// The target of `environment` (with desired state `record`, read at `height`) on
    /// `provider`.
    pub fn of(
        environment: EnvironmentId,
        record: &Environment,
        provider: &Provider,
        height: u64,
    ) -> Self {
        Self {
            environment,
            provider: record.provider,
            agent: provider.endpoint.to_string(),
            generation: record.generation,
            agent_key: provider.agent_key,
            height,
        }
    }
}

/// What a provisioner talks to: the chain (as its wallet) and, over HTTP, agents and
/// workloads.
pub struct Connection {
    /// The chain.
    pub client: Client,
    /// The provisioner's signing key.
    pub wallet: Wallet,
    /// HTTP client for agents and probes (bounded by the probe timeout).
    pub http: reqwest::Client,
    /// Timeout of agent requests and probes.
    pub timeout: Duration,
    /// The next request's nonce (starts at the wall clock in ns, so that a restart does not
    /// reuse the nonces of unexpired requests).
    nonce: AtomicU64,
}

/// Largest answer read from an agent, bytes: an observation is well under 1 KiB, and an agent
/// (the provider's) that sends more is treated as failing.
pub const AGENT_ANSWER_MAX_BYTES: usize = 64 * 1024;

impl Connection {
    /// A connection whose HTTP requests time out after `timeout_ms`.
    pub fn new(client: Client, wallet: Wallet, timeout_ms: u64) -> Result<Self, ProvisionerError> {
        // Agents run on providers' machines: an untrusted server.
        let timeout = Duration::from_millis(timeout_ms);
        let http = logos_client::http::untrusted(timeout)
            .map_err(|error| ProvisionerError::NotReady(error.to_string()))?;
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0);
        Ok(Self {
            client,
            wallet,
            http,
            timeout,
            nonce: AtomicU64::new(now_ns),
        })
    }

    /// `action` on `target`, signed for this chain, expiring [`REQUEST_VALIDITY_BLOCKS`] after
    /// the height `target` was read at, with a fresh nonce.
    pub fn signed_request(&self, target: &Target, action: Action) -> AgentRequest {
        let wallet = &self.wallet;
        let mut request = AgentRequest {
            chain_id: self.client.info().chain_id.to_string(),
            provider: target.provider,
            environment: target.environment,
            generation: target.generation,
            action,
            expires_at: target.height.saturating_add(REQUEST_VALIDITY_BLOCKS),
            nonce: self.nonce.fetch_add(1, Ordering::Relaxed),
            provisioner: format_public_key(&wallet.public_key()),
            signature: String::new(),
        };
        let signature = wallet.sign(AGENT_NAMESPACE, &request.message());
        request.signature = KeySignature::from_signature(&signature).to_string();
        request
    }

    /// What `target`'s agent says about its environment, signed by the agent's key (an
    /// `observe` request; only the assignee and the round's checkers are answered). An answer
    /// that is not signed by the provider's `agent_key` for this request counts as no answer.
    pub async fn inspect(&self, target: &Target) -> AgentView {
        let Some(agent_key) = target.agent_key else {
            return AgentView::Unreachable("the provider has no agent key".into());
        };
        let request = self.signed_request(target, Action::Observe);
        let sent = self
            .http
            .post(environment_url(target))
            .json(&request)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return AgentView::Unreachable(error.to_string()),
        };
        let status = response.status();
        let body = logos_client::http::read_bounded(response, AGENT_ANSWER_MAX_BYTES).await;
        let body = match (status.is_success(), body) {
            (true, Ok(body)) => body,
            (false, body) => {
                let text = body.map(|b| String::from_utf8_lossy(&b).to_string());
                return AgentView::Unreachable(format!(
                    "agent answered {status}: {}",
                    text.unwrap_or_default()
                ));
            }
            (true, Err(error)) => return AgentView::Unreachable(error.to_string()),
        };
        match verify_observation(&body, &agent_key, request.nonce) {
            Ok(Some(observation)) => AgentView::Present(observation),
            // Absence counts only when the agent signed it.
            Ok(None) => AgentView::Absent,
            Err(reason) => AgentView::Unreachable(reason),
        }
    }

    /// Probes the workload at `endpoint` with its health check.
    pub async fn probe(&self, endpoint: &str, check: &HealthCheck) -> Result<(), String> {
        probe_health(&self.http, endpoint, check, self.timeout).await
    }
}

/// The observation in `body` (none: the agent says the environment is absent) if it is a
/// [`SignedObservation`] by `agent_key` answering the request with `nonce`.
pub fn verify_observation(
    body: &[u8],
    agent_key: &NodeKey,
    nonce: u64,
) -> Result<Option<Observation>, String> {
    let signed: SignedObservation =
        serde_json::from_slice(body).map_err(|error| format!("unreadable answer: {error}"))?;
    let expected = agent_key
        .public_key()
        .map_err(|error| format!("the provider's agent key: {error}"))?;
    let (key, signature) = decode_signer(&signed.agent_key, &signed.signature)?;
    let message = observation_message(nonce, &signed.observation);
    if key != expected || !key.verify(OBSERVATION_NAMESPACE, &message, &signature) {
        return Err("observation not signed by the provider's agent key".into());
    }
    serde_json::from_str(&signed.observation)
        .map_err(|error| format!("unreadable observation: {error}"))
}

fn environment_url(target: &Target) -> String {
    format!(
        "http://{}/v1/environments/{}",
        target.agent, target.environment
    )
}

/// Carries out the core's effects. The daemon uses [`AgentEffects`]; tests inject
/// misbehaviour by wrapping it (a provisioner that lies in its reports, say), never in the
/// shipped binary.
pub trait Effects: Send + Sync + 'static {
    /// Carries out `effect` on `target`; for `Ensure` and `Destroy`, the agent's view after it.
    /// (`Retry` and `Recheck` are the shell's own and never reach the handler.)
    fn apply(
        &self,
        target: &Target,
        effect: &Effect,
    ) -> impl Future<Output = Result<Option<AgentView>, ProvisionerError>> + Send;
}

/// The real effects: signed agent requests and chain submissions.
#[derive(Clone)]
pub struct AgentEffects {
    connection: Arc<Connection>,
}

impl AgentEffects {
    /// Effects through `connection`.
    pub fn new(connection: Arc<Connection>) -> Self {
        Self { connection }
    }

    /// The connection the effects go through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Sends a signed `action` request for `target` to its agent; the agent's view after it
    /// (what it observes, or why it refused to realize the environment).
    async fn request(
        &self,
        target: &Target,
        action: Action,
    ) -> Result<AgentView, ProvisionerError> {
        let request = self.connection.signed_request(target, action);
        let agent_error = |reason: String| ProvisionerError::Agent {
            endpoint: target.agent.clone(),
            reason,
        };
        let response = self
            .connection
            .http
            .post(environment_url(target))
            .json(&request)
            .send()
            .await
            .map_err(|error| agent_error(error.to_string()))?;
        let status = response.status();
        let body = logos_client::http::read_bounded(response, AGENT_ANSWER_MAX_BYTES)
            .await
            .map_err(|error| agent_error(error.to_string()))?;
        if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            if let Ok(refused) = serde_json::from_slice::<Refused>(&body) {
                return Ok(AgentView::Refused(refused));
            }
        }
        let body = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(agent_error(format!("{status}: {body}")));
        }
        let observation: Option<Observation> =
            serde_json::from_str(&body).map_err(|error| agent_error(error.to_string()))?;
        Ok(observation.map_or(AgentView::Absent, AgentView::Present))
    }

    async fn submit(&self, call: provisioning::Call) -> Result<String, ProvisionerError> {
        let connection = &self.connection;
        let (hash, _) = connection
            .client
            .submit(&connection.wallet, Call::Provisioning(call))
            .await?;
        Ok(hash)
    }
}

impl Effects for AgentEffects {
    async fn apply(
        &self,
        target: &Target,
        effect: &Effect,
    ) -> Result<Option<AgentView>, ProvisionerError> {
        let environment = target.environment;
        let call = match effect {
            Effect::Ensure => {
                let view = match self.request(target, Action::Ensure).await {
                    Ok(view) => view,
                    Err(error) => AgentView::Unreachable(error.to_string()),
                };
                return Ok(Some(view));
            }
            Effect::Destroy => {
                self.request(target, Action::Destroy).await?;
                return Ok(Some(AgentView::Absent));
            }
            Effect::Retry(_) | Effect::Recheck(_) => return Ok(None),
            Effect::Report(report) => provisioning::Call::Report {
                environment,
                report: report.clone(),
            },
            Effect::Vote { round, verdict } => provisioning::Call::CrossCheck {
                environment,
                round: *round,
                verdict: *verdict,
            },
        };
        let name = call.name();
        let hash = self.submit(call).await?;
        tracing::info!(%environment, call = name, %hash, "submitted");
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;
    use logos_api::agent::WorkloadState;
    use logos_primitives::PrivateKey;

    fn observation() -> Observation {
        Observation {
            environment: EnvironmentId(3),
            generation: 2,
            workload: WorkloadState::Running,
            endpoint: "10.0.0.1:24000".into(),
            ports: Vec::new(),
            restarts: 0,
            image: "sha256:00".into(),
            started_at_ms: 1,
            limits: Default::default(),
            attestation: None,
        }
    }

    /// The agent's answer: `observation` as JSON, signed by `key` for `nonce`.
    fn answer(key: &PrivateKey, nonce: u64, observation: &Option<Observation>) -> Vec<u8> {
        let json = serde_json::to_string(observation).unwrap();
        let signature = key.sign(OBSERVATION_NAMESPACE, &observation_message(nonce, &json));
        let signed = SignedObservation {
            observation: json,
            agent_key: format_public_key(&key.public_key()),
            signature: KeySignature::from_signature(&signature).to_string(),
        };
        serde_json::to_vec(&signed).unwrap()
    }

    #[test]
    fn only_the_providers_agent_answering_this_request_is_believed() {
        let agent = PrivateKey::from_seed(1);
        let key = NodeKey::from_public_key(&agent.public_key());
        let present = Some(observation());
        let body = answer(&agent, 7, &present);
        assert_eq!(verify_observation(&body, &key, 7), Ok(present.clone()));
        // Signed absence is absence; it still needs the agent's signature.
        assert_eq!(
            verify_observation(&answer(&agent, 7, &None), &key, 7),
            Ok(None)
        );
        // An answer to another request (a replayed one).
        assert!(verify_observation(&body, &key, 8).is_err());
        // Signed by another key, whatever key it names.
        let impostor = PrivateKey::from_seed(2);
        assert!(verify_observation(&answer(&impostor, 7, &present), &key, 7).is_err());
        // Tampered after signing.
        let mut signed: SignedObservation = serde_json::from_slice(&body).unwrap();
        signed.observation = signed.observation.replace("24000", "24001");
        let tampered = serde_json::to_vec(&signed).unwrap();
        assert!(verify_observation(&tampered, &key, 7).is_err());
        // Malformed: not JSON, a bad signature, a bare observation without one.
        assert!(verify_observation(b"<html>", &key, 7).is_err());
        signed.signature = "0xzz".into();
        assert!(verify_observation(&serde_json::to_vec(&signed).unwrap(), &key, 7).is_err());
        let bare = serde_json::to_vec(&observation()).unwrap();
        assert!(verify_observation(&bare, &key, 7).is_err());
    }
}
