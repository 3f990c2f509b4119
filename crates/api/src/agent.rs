//! The provider agent's HTTP API (what provisioners and tenants send to a gatekeeper).
//!
//! | method | path | body / answer |
//! |---|---|---|
//! | `POST` | `/v1/environments/{id}` | [`AgentRequest`] → [`Observation`] for `ensure` and `destroy`, [`SignedObservation`] for `observe` (of `null` if the environment is absent; a running workload's with the agent's attestation for the chain) (403 with a reason if the chain does not back it, 429 over a budget) |
//! | `GET` | `/v1/environments/{id}` | [`Observation`] (404 if absent), unsigned: served from a small budget of its own |
//! | `GET` | `/v1/environments/{id}/logs?timestamp_s=T&public_key=K&signature=S[&follow=true]` | the tail of the workload's output (text); with `follow`, then what it writes next, streamed at most [`FOLLOW_BYTES_PER_SECOND`] for at most [`FOLLOW_MAX_S`]; `K` is the tenant's key, `S` its signature of [`logs_message`] |
//! | `GET` | `/v1/environments/{id}/stats?timestamp_s=T&public_key=K&signature=S` | [`SignedStats`]: CPU, memory, disk and network use signed by the agent's key (the provider's `agent_key` on chain) |
//!
//! A refused ensure (an image that cannot be run, say) is answered `422` with
//! `{"error": why, "reason": CamelCaseWord}` ([`Refused`]).
//!
//! An agent acts on a request only if it is for its chain (`chain_id`), not expired (finalized
//! height at most `expires_at`, which is at most [`REQUEST_EXPIRY_MAX_BLOCKS`] ahead), not a
//! replay (`nonce` not seen before from the signer), and in finalized chain state the
//! environment is placed on its provider, its generation equals the request's, its desired
//! state matches the action, and the signer is the environment's assigned provisioner (for
//! `observe`: the assignee or a checker of the current cross-check round).
//!
//! Rate limits are per caller: requests signed by a caller the chain knows (an eligible
//! provisioner, the tenant of an environment here) draw on that caller's own budget; others,
//! and unsigned reads, share small budgets of their own, so that nobody's flood takes a
//! checker's answers away.

use logos_primitives::{parse_public_key, PublicKey, Signature};
use logos_types::{
    dvci::{ProviderId, Resources},
    operations::{EnvironmentId, PortMapping},
    provisioning::Attestation,
};
use serde::{Deserialize, Serialize};

/// Namespace of provisioner signatures on agent requests.
pub const AGENT_NAMESPACE: &[u8] = b"logos-agent-v1";
/// Namespace of tenant signatures on log requests.
pub const LOGS_NAMESPACE: &[u8] = b"logos-agent-logs-v1";
/// Largest request body an agent accepts, bytes.
pub const REQUEST_MAX_BYTES: usize = 4_096;
/// Largest log tail an agent returns, bytes.
pub const LOGS_MAX_BYTES: u64 = 64 * 1024;
/// How old a log request's timestamp may be, s.
pub const LOGS_MAX_AGE_S: u64 = 60;
/// Fastest a followed log is streamed, bytes per second.
pub const FOLLOW_BYTES_PER_SECOND: u64 = 64 * 1024;
/// Longest a followed log is streamed before the agent ends it (the client asks again), s.
pub const FOLLOW_MAX_S: u64 = 600;
/// Namespace of tenant signatures on stats requests (the message is [`logs_message`]'s).
pub const STATS_REQUEST_NAMESPACE: &[u8] = b"logos-agent-stats-request-v1";
/// Namespace of agent signatures on stats.
pub const STATS_NAMESPACE: &[u8] = b"logos-agent-stats-v1";
/// Namespace of agent signatures on observations answered to `observe`.
pub const OBSERVATION_NAMESPACE: &[u8] = b"logos-agent-observation-v1";
/// Furthest ahead of the finalized height a request's `expires_at` may be, blocks.
pub const REQUEST_EXPIRY_MAX_BLOCKS: u64 = 1_200;

/// What the provisioner wants done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Make the environment exist and run the current generation (create, recreate or restart).
    Ensure,
    /// Make the environment not exist.
    Destroy,
    /// Say what runs, signed by the agent's key (for the assignee and cross-checkers).
    Observe,
}

/// A signed request from a provisioner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRequest {
    /// The chain it is for (its id, hex).
    pub chain_id: String,
    /// The provider the request is for.
    pub provider: ProviderId,
    /// The environment.
    pub environment: EnvironmentId,
    /// The generation of desired state the request realizes (or observes).
    pub generation: u64,
    /// What to do.
    pub action: Action,
    /// The last finalized height at which the request may be acted on.
    pub expires_at: u64,
    /// Distinct for every request of a signer while it is valid (a replay is refused).
    pub nonce: u64,
    /// The provisioner's ed25519 public key (`0x` hex).
    pub provisioner: String,
    /// Its signature of [`AgentRequest::message`] in [`AGENT_NAMESPACE`] (`0x` hex).
    pub signature: String,
}

impl AgentRequest {
    /// The bytes a provisioner signs: every field but the key and the signature.
    pub fn message(&self) -> Vec<u8> {
        let mut message = Vec::with_capacity(128);
        let chain_id = self.chain_id.as_bytes();
        message.extend_from_slice(&(chain_id.len() as u64).to_be_bytes());
        message.extend_from_slice(chain_id);
        message.extend_from_slice(&self.provider.get().to_be_bytes());
        message.extend_from_slice(&self.environment.get().to_be_bytes());
        message.extend_from_slice(&self.generation.to_be_bytes());
        message.push(match self.action {
            Action::Ensure => 0,
            Action::Destroy => 1,
            Action::Observe => 2,
        });
        message.extend_from_slice(&self.expires_at.to_be_bytes());
        message.extend_from_slice(&self.nonce.to_be_bytes());
        message
    }
}

/// An observation answered to `observe`, signed by the agent's key so that what a checker
/// saw can be held against the provider. `observation` is `null` when the environment is not
/// on the agent (absence is signed too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedObservation {
    /// An `Option<`[`Observation`]`>` as JSON.
    pub observation: String,
    /// The agent's ed25519 key (`0x` hex).
    pub agent_key: String,
    /// Its signature of [`observation_message`] in [`OBSERVATION_NAMESPACE`] (`0x` hex).
    pub signature: String,
}

/// The bytes an agent signs for an observation answering the request with `nonce` (binding
/// the answer to the question).
pub fn observation_message(nonce: u64, observation: &str) -> Vec<u8> {
    let mut message = nonce.to_be_bytes().to_vec();
    message.extend_from_slice(observation.as_bytes());
    message
}

/// The bytes a tenant signs to read an environment's logs (or stats) at `timestamp_s` (Unix
/// seconds), following them or not (so that a seen request cannot be replayed as a
/// ten-minute stream).
pub fn logs_message(environment: EnvironmentId, timestamp_s: u64, follow: bool) -> Vec<u8> {
    let mut message = environment.get().to_be_bytes().to_vec();
    message.extend_from_slice(&timestamp_s.to_be_bytes());
    message.push(u8::from(follow));
    message
}

/// Decodes a `0x` hex public key and signature.
pub fn decode_signer(key: &str, signature: &str) -> Result<(PublicKey, Signature), String> {
    use commonware_codec::DecodeExt;
    let key = parse_public_key(key).map_err(|error| error.to_string())?;
    let bytes = logos_primitives::decode_hex(signature).map_err(|e| e.to_string())?;
    let signature = Signature::decode(commonware_codec::Copying(bytes.as_slice()))
        .map_err(|error| format!("signature: {error}"))?;
    Ok((key, signature))
}

/// What runs of an environment, as the driver sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WorkloadState {
    /// The workload's processes are alive.
    Running,
    /// The workload exited on its own (`code` is its exit status if known).
    Exited {
        /// Exit status.
        code: Option<i32>,
    },
    /// The kernel killed the workload for exceeding its memory limit.
    OomKilled {
        /// The limit, MiB.
        limit_mib: u64,
    },
}

/// An environment as the agent observed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The environment.
    pub environment: EnvironmentId,
    /// The generation it realizes.
    pub generation: u64,
    /// Its workload's state.
    pub workload: WorkloadState,
    /// `host:port` of its health port as published on the provider's address.
    pub endpoint: String,
    /// Every declared port and where it is published (at the endpoint's host).
    pub ports: Vec<PortMapping>,
    /// How many times it was restarted in this generation.
    pub restarts: u32,
    /// The image it runs (`sha256:<hex>`, the pinned digest).
    pub image: String,
    /// When its workload last started, by the agent's clock (Unix ms; 0 if never).
    #[serde(default)]
    pub started_at_ms: u64,
    /// The resource limits the agent applied (memory, CPU, pids from the product, disk): the
    /// agent's signed word, which a checker holds against the desired spec.
    #[serde(default)]
    pub limits: Resources,
    /// In an answer to `observe` of a running workload: the agent's attestation of its
    /// generation, endpoint and port mappings for the request's nonce, which the assignee
    /// puts in its `Running` report.
    #[serde(default)]
    pub attestation: Option<Attestation>,
}

/// Why an agent refused to realize an environment (the body of a `422`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// What went wrong, for humans.
    pub error: String,
    /// One CamelCase word: `ImageRefused` (the image cannot be pulled, verified or unpacked)
    /// or `Unsupported` (the spec asks for what this agent cannot give).
    pub reason: String,
}

/// What an environment uses, as its provider's agent measured it, for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentStats {
    /// The provider.
    pub provider: ProviderId,
    /// The environment.
    pub environment: EnvironmentId,
    /// The tenant's request timestamp this answers (Unix s).
    pub request_timestamp_s: u64,
    /// When measured, by the agent's clock (Unix ms).
    pub measured_at_ms: u64,
    /// What it uses.
    #[serde(flatten)]
    pub usage: Usage,
}

/// What an environment uses: CPU and memory from its cgroups, its disk, its network interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// The generation running.
    pub generation: u64,
    /// CPU time used since the workload started, µs.
    pub cpu_usage_us: u64,
    /// CPU allowed, vCPU.
    pub cpu_limit_vcpu: u32,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// Memory limit, bytes.
    pub memory_limit_bytes: u64,
    /// Disk in use (image and volume), bytes.
    pub disk_used_bytes: u64,
    /// Disk size, bytes.
    pub disk_size_bytes: u64,
    /// Bytes the environment received.
    pub network_rx_bytes: u64,
    /// Bytes the environment sent.
    pub network_tx_bytes: u64,
    /// Processes alive.
    pub pids: u64,
    /// Restarts in this generation.
    pub restarts: u32,
}

/// [`EnvironmentStats`] signed by the agent: `stats` is the JSON text signed, so a client
/// verifies the bytes it was served, then reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStats {
    /// [`EnvironmentStats`] as JSON.
    pub stats: String,
    /// The agent's ed25519 key (`0x` hex).
    pub agent_key: String,
    /// Its signature of `stats`'s bytes in [`STATS_NAMESPACE`] (`0x` hex).
    pub signature: String,
}
