//! Carrying out the core's effects, and the observations it decides on: the provider agent's
//! HTTP API (`logos_api::agent`), health probes, and submissions to the chain.

use crate::{
    core::{AgentView, Effect},
    probe::probe_health,
    ProvisionerError,
};
use logos_api::agent::{
    request_message, Action, AgentRequest, Observation, Refused, AGENT_NAMESPACE,
};
use logos_client::{Client, Wallet};
use logos_primitives::format_public_key;
use logos_types::{
    dvci::{Provider, ProviderId},
    operations::{Environment, EnvironmentId},
    provisioning,
    workload::HealthCheck,
    Call,
};
use std::{future::Future, sync::Arc, time::Duration};

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
}

impl Target {
    /// The target of `environment` (with desired state `record`) on `provider`.
    pub fn of(environment: EnvironmentId, record: &Environment, provider: &Provider) -> Self {
        Self {
            environment,
            provider: record.provider,
            agent: provider.endpoint.to_string(),
            generation: record.generation,
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
        Ok(Self {
            client,
            wallet,
            http,
            timeout,
        })
    }

    /// What `target`'s agent says about its environment.
    pub async fn inspect(&self, target: &Target) -> AgentView {
        let url = environment_url(target);
        let response = match self.http.get(&url).send().await {
            Ok(response) => response,
            Err(error) => return AgentView::Unreachable(error.to_string()),
        };
        match response.status() {
            status if status == reqwest::StatusCode::NOT_FOUND => AgentView::Absent,
            status if status.is_success() => match response.json::<Observation>().await {
                Ok(observation) => AgentView::Present(observation),
                Err(error) => AgentView::Unreachable(error.to_string()),
            },
            status => AgentView::Unreachable(format!("agent answered {status}")),
        }
    }

    /// Probes the workload at `endpoint` with its health check.
    pub async fn probe(&self, endpoint: &str, check: &HealthCheck) -> Result<(), String> {
        probe_health(&self.http, endpoint, check, self.timeout).await
    }
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
        let wallet = &self.connection.wallet;
        let message = request_message(
            target.provider,
            target.environment,
            target.generation,
            action,
        );
        let signature = wallet.sign(AGENT_NAMESPACE, &message);
        let request = AgentRequest {
            provider: target.provider,
            environment: target.environment,
            generation: target.generation,
            action,
            provisioner: format_public_key(&wallet.public_key()),
            signature: format!(
                "0x{}",
                hex::encode(commonware_codec::Encode::encode(&signature))
            ),
        };
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
