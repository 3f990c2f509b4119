//! Types of `operations` (module index 3): the desired state of every environment and the
//! status reported back (seed `002`: OSC, desired/actual state reconciled like a Kubernetes
//! controller).
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`Environments`] | [`EnvironmentId`] (= its lease's id) | [`Environment`] |
//! | 1 [`ActiveEnvironments`] | | ascending ids not yet reported destroyed, at most [`ACTIVE_ENVIRONMENTS_MAX`] |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::UpdateEnvironment`] | tenant |

use crate::{
    calls,
    catalog::{TemplateId, Workload, PORTS_MAX},
    codec::{BoundedString, BoundedVec},
    dvci::{Endpoint, ProviderId, Resources},
    errors, events,
    market::LeaseId,
    record, storage,
};
use logos_primitives::Address;

/// Name of the module (in receipts and logs).
pub const NAME: &str = "operations";
/// Module index of `operations`: storage prefix, call routing, error index.
pub const INDEX: u8 = 3;

/// Longest condition reason (a CamelCase word), bytes.
pub const REASON_MAX_BYTES: usize = 48;
/// Longest condition or report message, bytes.
pub const MESSAGE_MAX_BYTES: usize = 160;
/// Most environments not yet reported destroyed: the active leases
/// ([`crate::market::ACTIVE_LEASES_MAX`]) plus those being torn down, bounded so that the
/// list of their 8-byte ids fits one storage value.
pub const ACTIVE_ENVIRONMENTS_MAX: usize = 8_000;

/// A condition's reason: one CamelCase word.
pub type Reason = BoundedString<REASON_MAX_BYTES>;
/// Details for humans.
pub type Message = BoundedString<MESSAGE_MAX_BYTES>;

id_type!(
    /// Identifies an environment: the id of the lease that created it.
    EnvironmentId(u64)
);

impl From<LeaseId> for EnvironmentId {
    fn from(lease: LeaseId) -> Self {
        Self(lease.0)
    }
}

impl From<EnvironmentId> for LeaseId {
    fn from(environment: EnvironmentId) -> Self {
        Self(environment.0)
    }
}

/// A declared port of an environment and the port its provider publishes it on (at the
/// endpoint's host).
#[record]
#[derive(Copy)]
pub struct PortMapping {
    /// The port the workload listens on, as declared.
    pub port: u16,
    /// The port on the provider's public address.
    pub published: u16,
}

/// What the chain wants to exist.
#[record]
#[derive(Copy)]
pub enum Desired {
    /// The environment must run its spec.
    #[index(0)]
    Running,
    /// The environment must not exist.
    #[index(1)]
    Destroyed,
}

/// What a provisioner observed.
#[record]
#[derive(Copy)]
pub enum Phase {
    /// Nothing observed yet, or being created.
    #[index(0)]
    Pending,
    /// The workload runs and its health check passes.
    #[index(1)]
    Running,
    /// The workload is not running or not healthy (see the Ready condition's reason).
    #[index(2)]
    Failed,
    /// Nothing of the environment is left on the provider.
    #[index(3)]
    Destroyed,
}

/// Condition types, in the order an environment lists them.
#[record]
#[derive(Copy)]
pub enum ConditionType {
    /// Placed on a provider and assigned to a provisioner.
    #[index(0)]
    Scheduled,
    /// The assigned provisioner reports the current generation running and healthy.
    #[index(1)]
    Ready,
    /// A quorum of cross-checking provisioners agreed with that report.
    #[index(2)]
    Verified,
}

impl ConditionType {
    /// Every condition type, in listing order.
    pub const ALL: [ConditionType; 3] = [Self::Scheduled, Self::Ready, Self::Verified];

    /// Position of this condition in [`Environment::conditions`].
    pub const fn position(self) -> usize {
        match self {
            Self::Scheduled => 0,
            Self::Ready => 1,
            Self::Verified => 2,
        }
    }
}

/// A condition's truth value (Kubernetes style).
#[record]
#[derive(Copy)]
pub enum ConditionStatus {
    /// Not known yet.
    #[index(0)]
    Unknown,
    /// Holds.
    #[index(1)]
    True,
    /// Does not hold.
    #[index(2)]
    False,
}

/// One condition of an environment's status.
#[record]
pub struct Condition {
    /// Which condition.
    #[serde(rename = "type")]
    pub kind: ConditionType,
    /// Its value.
    pub status: ConditionStatus,
    /// Why, as one CamelCase word (e.g. `Placed`, `HealthCheckPassed`, `OOMKilled`).
    pub reason: Reason,
    /// Details for humans.
    pub message: Message,
    /// Height of the block where `status` last changed.
    pub last_transition_height: u64,
}

/// What an environment must be: the product's resources and the template's workload.
#[record]
#[derive(Default)]
pub struct Spec {
    /// Limits of the environment (vCPU, memory MiB, disk GiB, GPUs).
    pub resources: Resources,
    /// What runs in it.
    pub workload: Workload,
}

/// An environment: desired state (spec, generation, desired) and the status reported back.
#[record]
pub struct Environment {
    /// The tenant who owns it.
    pub tenant: Address,
    /// Where it is placed.
    pub provider: ProviderId,
    /// The template it was made from.
    pub template: TemplateId,
    /// The desired spec.
    pub spec: Spec,
    /// Incremented at every change of the desired state (starts at 1).
    pub generation: u64,
    /// Height of the block that set the current generation.
    pub generation_height: u64,
    /// Run or destroy.
    pub desired: Desired,
    /// The last reported phase.
    pub phase: Phase,
    /// The generation the last report was about (0: none yet).
    pub observed_generation: u64,
    /// Where the workload is reachable (`host:port`: its health port as published on the
    /// provider's address), empty if unknown.
    pub endpoint: Endpoint,
    /// Every declared port and where it is published (at the endpoint's host), as last
    /// reported.
    pub ports: BoundedVec<PortMapping, PORTS_MAX>,
    /// Scheduled, Ready and Verified, in that order ([`ConditionType::position`]).
    pub conditions: [Condition; 3],
}

impl Environment {
    /// The record of a new environment placed on `provider` at `height`: generation 1, desired
    /// `Running`, `Scheduled` true, `Ready` and `Verified` unknown until a report.
    pub fn new(
        tenant: Address,
        provider: ProviderId,
        template: TemplateId,
        spec: Spec,
        height: u64,
    ) -> Self {
        let condition = |kind, status, reason: &str, message: &str| Condition {
            kind,
            status,
            reason: Reason::truncated(reason),
            message: Message::truncated(message),
            last_transition_height: height,
        };
        let placed = format!("placed on provider {provider}");
        let unknown = ConditionStatus::Unknown;
        Self {
            tenant,
            provider,
            template,
            spec,
            generation: 1,
            generation_height: height,
            desired: Desired::Running,
            phase: Phase::Pending,
            observed_generation: 0,
            endpoint: Endpoint::new(),
            ports: BoundedVec::default(),
            conditions: [
                condition(
                    ConditionType::Scheduled,
                    ConditionStatus::True,
                    "Placed",
                    &placed,
                ),
                condition(ConditionType::Ready, unknown, "AwaitingReport", ""),
                condition(ConditionType::Verified, unknown, "AwaitingReport", ""),
            ],
        }
    }

    /// The condition of `kind`.
    pub fn condition(&self, kind: ConditionType) -> &Condition {
        &self.conditions[kind.position()]
    }

    /// Sets a condition; its transition height moves only if the status changes. Reason and
    /// message are cut to their bounds.
    pub fn set_condition(
        &mut self,
        kind: ConditionType,
        status: ConditionStatus,
        reason: &str,
        message: &str,
        height: u64,
    ) {
        let condition = &mut self.conditions[kind.position()];
        if condition.status != status {
            condition.last_transition_height = height;
        }
        condition.status = status;
        condition.reason = Reason::truncated(reason);
        condition.message = Message::truncated(message);
    }
}

/// Calls of `operations`.
#[calls]
pub enum Call {
    /// (tenant) Re-apply the template's current workload and bump the generation, so the
    /// environment is recreated.
    #[index(0)]
    UpdateEnvironment {
        /// The environment.
        environment: EnvironmentId,
    },
}

/// Events of `operations`.
#[events]
pub enum Event {
    /// An environment's desired state was recorded (generation 1).
    EnvironmentCreated {
        /// The environment.
        environment: EnvironmentId,
        /// Where it is placed.
        provider: ProviderId,
    },
    /// The desired spec changed.
    EnvironmentUpdated {
        /// The environment.
        environment: EnvironmentId,
        /// The new generation.
        generation: u64,
    },
    /// The chain now wants the environment gone.
    DestroyRequested {
        /// The environment.
        environment: EnvironmentId,
        /// The new generation.
        generation: u64,
    },
    /// The assigned provisioner reported a status.
    StatusReported {
        /// The environment.
        environment: EnvironmentId,
        /// The generation observed.
        observed_generation: u64,
        /// The phase observed.
        phase: Phase,
    },
    /// The environment was reported destroyed and left the active set.
    EnvironmentDestroyed {
        /// The environment.
        environment: EnvironmentId,
    },
}

/// Errors of `operations`.
#[errors]
pub enum Error {
    /// No such environment.
    #[index(0)]
    #[error("unknown environment {0}")]
    UnknownEnvironment(EnvironmentId),
    /// Only the tenant may change the environment.
    #[index(1)]
    #[error("only the tenant may change this environment")]
    NotTenant,
    /// The environment is being or has been destroyed.
    #[index(2)]
    #[error("environment {0} is being destroyed")]
    Destroying(EnvironmentId),
    /// The template is gone from the catalog.
    #[index(3)]
    #[error("template {0} is no longer in the catalog")]
    UnknownTemplate(TemplateId),
    /// Too many environments are active.
    #[index(4)]
    #[error("too many active environments")]
    TooManyEnvironments,
    /// The environment exists already (a lease id used twice).
    #[index(5)]
    #[error("environment {0} exists")]
    EnvironmentExists(EnvironmentId),
    /// The template now names a product with other resources than the environment holds (its
    /// lease pays for what it holds).
    #[index(6)]
    #[error("template {0} now needs other resources than this environment holds")]
    ProductChanged(TemplateId),
}

storage! {
    module = INDEX;
    /// Environments by id.
    pub Environments: map(0) EnvironmentId => Environment;
    /// Environments not yet reported destroyed, ascending.
    pub ActiveEnvironments: value(1) BoundedVec<EnvironmentId, ACTIVE_ENVIRONMENTS_MAX>;
}
