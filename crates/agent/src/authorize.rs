//! The gatekeeper's decisions, pure: what the agent does with a request given the facts of
//! finalized chain state. No I/O here; [`crate::gatekeeper`] reads the facts (with proofs) and
//! acts on the answer.
//!
//! A provisioner's request is handled in three steps, the cheap ones first so that a forged,
//! misaddressed or replayed request costs no chain reads:
//! 1. [`verify`]: the request is for this chain, this provider and this path, and its
//!    signature verifies;
//! 2. [`authorize`]: at the finalized height it has not expired (nor does it expire further
//!    ahead than `REQUEST_EXPIRY_MAX_BLOCKS`), and finalized state places the environment on
//!    this provider at the requested generation, wants the requested action, and names the
//!    signer as the assigned provisioner (`observe`: the assignee or a checker of the current
//!    round);
//! 3. [`Nonces::admit`]: its nonce was not used by the signer before (remembered until the
//!    request expires, at most [`NONCES_PER_SIGNER_MAX`] per signer).
//!
//! A tenant's log request must be fresh ([`LOGS_MAX_AGE_S`]) and signed by the environment's
//! tenant ([`authorize_logs`]). Garbage collection destroys what [`wanted_here`] says finalized
//! state does not want on this provider.

use commonware_cryptography::Verifier as _;
use logos_api::agent::{
    decode_signer, logs_message, Action, AgentRequest, AGENT_NAMESPACE, LOGS_MAX_AGE_S,
    REQUEST_EXPIRY_MAX_BLOCKS,
};
use logos_primitives::Address;
use logos_types::{
    dvci::ProviderId,
    operations::{Desired, Environment, EnvironmentId},
    provisioning::Assignment,
};
use std::collections::BTreeMap;

/// Why the agent refuses a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body names another environment than the path.
    #[error("path names environment {path}, the body {body}")]
    PathMismatch {
        /// Environment of the path.
        path: EnvironmentId,
        /// Environment of the body.
        body: EnvironmentId,
    },
    /// The request is for another provider.
    #[error("addressed to provider {0}")]
    WrongProvider(ProviderId),
    /// The key or signature does not decode.
    #[error("malformed signer: {0}")]
    MalformedSigner(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Finalized state has no such environment.
    #[error("not in finalized state")]
    UnknownEnvironment,
    /// Finalized state places the environment on another provider.
    #[error("placed on provider {0}")]
    PlacedElsewhere(ProviderId),
    /// The request realizes another generation than finalized state's.
    #[error("generation {requested} requested, finalized state has {finalized}")]
    WrongGeneration {
        /// The request's.
        requested: u64,
        /// Finalized state's.
        finalized: u64,
    },
    /// Finalized state wants the other action.
    #[error("finalized state wants {0:?}")]
    WrongAction(Action),
    /// The signer is not the environment's assigned provisioner.
    #[error("{0} is not the assigned provisioner")]
    NotAssigned(Address),
    /// A log request older (or newer) than [`LOGS_MAX_AGE_S`].
    #[error("log request expired")]
    Expired,
    /// A log request not signed by the environment's tenant.
    #[error("not signed by the tenant")]
    NotTenant,
    /// The request is for another chain.
    #[error("for chain {0}")]
    WrongChain(String),
    /// Finalized state is past the request's `expires_at`.
    #[error("expired at height {expires_at}, finalized height is {height}")]
    RequestExpired {
        /// The request's.
        expires_at: u64,
        /// Finalized.
        height: u64,
    },
    /// The request expires further ahead than an agent remembers nonces.
    #[error(
        "expires at {expires_at}, more than {REQUEST_EXPIRY_MAX_BLOCKS} blocks after {height}"
    )]
    ExpiryTooFar {
        /// The request's.
        expires_at: u64,
        /// Finalized.
        height: u64,
    },
    /// The signer used this nonce before.
    #[error("nonce {0} already used")]
    Replayed(u64),
    /// The signer has too many unexpired requests remembered.
    #[error("too many requests in flight from {0}")]
    TooManyInFlight(Address),
    /// `observe` from a provisioner that neither realizes nor checks the environment.
    #[error("{0} neither realizes nor checks this environment")]
    NotObserver(Address),
}

impl Refusal {
    /// True for requests that are malformed in themselves (answered 400, not 403).
    pub fn is_malformed(&self) -> bool {
        matches!(self, Refusal::PathMismatch { .. })
    }
}

/// A request whose address and signature checked out (only [`verify`] makes one).
#[derive(Clone, Debug)]
pub struct SignedRequest {
    request: AgentRequest,
    signer: Address,
}

impl SignedRequest {
    /// The request.
    pub fn request(&self) -> &AgentRequest {
        &self.request
    }

    /// The signer's address.
    pub fn signer(&self) -> Address {
        self.signer
    }
}

/// Step 1: `request`, posted to the path of environment `path`, is for `chain_id` and
/// `provider`, and signed.
pub fn verify(
    request: AgentRequest,
    path: EnvironmentId,
    provider: ProviderId,
    chain_id: &str,
) -> Result<SignedRequest, Refusal> {
    if request.environment != path {
        return Err(Refusal::PathMismatch {
            path,
            body: request.environment,
        });
    }
    if request.chain_id != chain_id {
        return Err(Refusal::WrongChain(request.chain_id));
    }
    if request.provider != provider {
        return Err(Refusal::WrongProvider(request.provider));
    }
    let (key, signature) = decode_signer(&request.provisioner, &request.signature)
        .map_err(Refusal::MalformedSigner)?;
    if !key.verify(AGENT_NAMESPACE, &request.message(), &signature) {
        return Err(Refusal::BadSignature);
    }
    Ok(SignedRequest {
        request,
        signer: Address::from_public_key(&key),
    })
}

/// What finalized state says about one environment (read with proofs by the shell).
#[derive(Clone, Debug, Default)]
pub struct ChainFacts {
    /// The environment, if it exists.
    pub environment: Option<Environment>,
    /// Its assignment, if it is active.
    pub assignment: Option<Assignment>,
}

/// The action finalized state wants for `environment`.
pub fn wanted_action(environment: &Environment) -> Action {
    match environment.desired {
        Desired::Running => Action::Ensure,
        Desired::Destroyed => Action::Destroy,
    }
}

/// Step 2: whether finalized state at `height` backs `signed` on `provider` (see the module
/// docs). On success the request's action is the one to take.
pub fn authorize(
    signed: &SignedRequest,
    provider: ProviderId,
    facts: &ChainFacts,
    height: u64,
) -> Result<Action, Refusal> {
    let request = &signed.request;
    if height > request.expires_at {
        return Err(Refusal::RequestExpired {
            expires_at: request.expires_at,
            height,
        });
    }
    if request.expires_at > height.saturating_add(REQUEST_EXPIRY_MAX_BLOCKS) {
        return Err(Refusal::ExpiryTooFar {
            expires_at: request.expires_at,
            height,
        });
    }
    let environment = facts
        .environment
        .as_ref()
        .ok_or(Refusal::UnknownEnvironment)?;
    if environment.provider != provider {
        return Err(Refusal::PlacedElsewhere(environment.provider));
    }
    if environment.generation != request.generation {
        return Err(Refusal::WrongGeneration {
            requested: request.generation,
            finalized: environment.generation,
        });
    }
    let task = facts.assignment.as_ref();
    let assigned = task.and_then(|task| task.assigned);
    if request.action == Action::Observe {
        let checks = task.is_some_and(|task| task.checkers.contains(&signed.signer));
        if assigned != Some(signed.signer) && !checks {
            return Err(Refusal::NotObserver(signed.signer));
        }
        return Ok(Action::Observe);
    }
    let wanted = wanted_action(environment);
    if request.action != wanted {
        return Err(Refusal::WrongAction(wanted));
    }
    if assigned != Some(signed.signer) {
        return Err(Refusal::NotAssigned(signed.signer));
    }
    Ok(request.action)
}

/// Most unexpired nonces remembered per signer.
pub const NONCES_PER_SIGNER_MAX: usize = 1_024;
/// Most signers whose nonces are remembered (each an authorized provisioner).
pub const NONCE_SIGNERS_MAX: usize = 512;

/// The nonces of authorized requests until they expire (step 3).
#[derive(Debug, Default)]
pub struct Nonces {
    /// signer → (nonce → expires_at).
    seen: BTreeMap<Address, BTreeMap<u64, u64>>,
}

impl Nonces {
    /// Remembers `signed`'s nonce at finalized `height`; refuses a nonce seen before, and a
    /// signer with [`NONCES_PER_SIGNER_MAX`] unexpired ones (or a new signer beyond
    /// [`NONCE_SIGNERS_MAX`]).
    pub fn admit(&mut self, signed: &SignedRequest, height: u64) -> Result<(), Refusal> {
        let request = &signed.request;
        self.seen.retain(|_, nonces| {
            nonces.retain(|_, expires_at| *expires_at >= height);
            !nonces.is_empty()
        });
        if !self.seen.contains_key(&signed.signer) && self.seen.len() >= NONCE_SIGNERS_MAX {
            return Err(Refusal::TooManyInFlight(signed.signer));
        }
        let nonces = self.seen.entry(signed.signer).or_default();
        if nonces.contains_key(&request.nonce) {
            return Err(Refusal::Replayed(request.nonce));
        }
        if nonces.len() >= NONCES_PER_SIGNER_MAX {
            return Err(Refusal::TooManyInFlight(signed.signer));
        }
        nonces.insert(request.nonce, request.expires_at);
        Ok(())
    }
}

/// A tenant's request for an environment's logs.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct LogsRequest {
    /// When it was signed, Unix seconds.
    pub timestamp_s: u64,
    /// The tenant's key, `0x` hex.
    pub public_key: String,
    /// Its signature of `logs_message`, `0x` hex.
    pub signature: String,
    /// Most bytes wanted.
    pub bytes: Option<u64>,
    /// Keep streaming what the workload writes next (logs only).
    pub follow: Option<bool>,
}

/// Checks a tenant's read of environment `id` (logs: `LOGS_NAMESPACE`, stats:
/// `STATS_REQUEST_NAMESPACE`) received at `now_s` on its own (fresh, well formed, signed in
/// that namespace), before any chain read; returns the signer.
pub fn verify_read(
    request: &LogsRequest,
    id: EnvironmentId,
    now_s: u64,
    namespace: &[u8],
) -> Result<Address, Refusal> {
    if now_s.abs_diff(request.timestamp_s) > LOGS_MAX_AGE_S {
        return Err(Refusal::Expired);
    }
    let (key, signature) =
        decode_signer(&request.public_key, &request.signature).map_err(Refusal::MalformedSigner)?;
    if !key.verify(
        namespace,
        &logs_message(id, request.timestamp_s, request.follow == Some(true)),
        &signature,
    ) {
        return Err(Refusal::BadSignature);
    }
    Ok(Address::from_public_key(&key))
}

/// Whether `signer` (from [`verify_read`]) may read the logs or stats of `environment`: only its
/// tenant.
pub fn authorize_logs(signer: Address, environment: &Environment) -> Result<(), Refusal> {
    if signer != environment.tenant {
        return Err(Refusal::NotTenant);
    }
    Ok(())
}

/// True if finalized state wants `environment` to run on `provider` (garbage collection
/// destroys the rest).
pub fn wanted_here(environment: Option<&Environment>, provider: ProviderId) -> bool {
    environment.is_some_and(|environment| {
        environment.desired == Desired::Running && environment.provider == provider
    })
}

#[cfg(test)]
mod tests;
