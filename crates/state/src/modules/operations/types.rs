//! Types of the `operations` module.

use crate::{
    codec_u8_enum,
    modules::{
        dvci::{ProviderId, Resources, ENDPOINT_MAX_BYTES},
        market::{LeaseId, TemplateId, Workload},
    },
    storage::{read_text, text_size, write_text},
};
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, FixedSize, Read, ReadExt, Write};
use logos_primitives::Address;

/// Identifies an environment: the id of the lease that created it.
pub type EnvironmentId = LeaseId;
/// Longest condition reason (a CamelCase word), bytes.
pub const REASON_MAX_BYTES: usize = 48;
/// Longest condition or report message, bytes.
pub const MESSAGE_MAX_BYTES: usize = 160;

/// What the chain wants to exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Desired {
    /// The environment must run its spec.
    Running,
    /// The environment must not exist.
    Destroyed,
}
codec_u8_enum!(Desired { Running = 0, Destroyed = 1 });

/// What a provisioner observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    /// Nothing observed yet, or being created.
    Pending,
    /// The workload runs and its health check passes.
    Running,
    /// The workload is not running or not healthy (see the Ready condition's reason).
    Failed,
    /// Nothing of the environment is left on the provider.
    Destroyed,
}
codec_u8_enum!(Phase {
    Pending = 0,
    Running = 1,
    Failed = 2,
    Destroyed = 3
});

/// Condition types, in the order an environment lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConditionType {
    /// Placed on a provider and assigned to a provisioner.
    Scheduled,
    /// The assigned provisioner reports the current generation running and healthy.
    Ready,
    /// A quorum of cross-checking provisioners agreed with that report.
    Verified,
}
codec_u8_enum!(ConditionType {
    Scheduled = 0,
    Ready = 1,
    Verified = 2
});

/// A condition's truth value (Kubernetes style).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConditionStatus {
    /// Not known yet.
    Unknown,
    /// Holds.
    True,
    /// Does not hold.
    False,
}
codec_u8_enum!(ConditionStatus {
    Unknown = 0,
    True = 1,
    False = 2
});

/// One condition of an environment's status.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Condition {
    /// Which condition.
    #[serde(rename = "type")]
    pub kind: ConditionType,
    /// Its value.
    pub status: ConditionStatus,
    /// Why, as one CamelCase word (e.g. `Placed`, `HealthCheckPassed`, `OOMKilled`).
    pub reason: String,
    /// Details for humans.
    pub message: String,
    /// Height of the block where `status` last changed.
    pub last_transition_height: u64,
}

impl Write for Condition {
    fn write(&self, buf: &mut impl BufMut) {
        self.kind.write(buf);
        self.status.write(buf);
        write_text(&self.reason, buf);
        write_text(&self.message, buf);
        self.last_transition_height.write(buf);
    }
}

impl EncodeSize for Condition {
    fn encode_size(&self) -> usize {
        2 + text_size(&self.reason) + text_size(&self.message) + 8
    }
}

impl Read for Condition {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            kind: ConditionType::read(buf)?,
            status: ConditionStatus::read(buf)?,
            reason: read_text(buf, REASON_MAX_BYTES)?,
            message: read_text(buf, MESSAGE_MAX_BYTES)?,
            last_transition_height: u64::read(buf)?,
        })
    }
}

/// What an environment must be: the product's resources and the template's workload.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Spec {
    /// Limits of the environment (vCPU, memory MiB, disk GiB, GPUs).
    pub resources: Resources,
    /// What runs in it.
    pub workload: Workload,
}

impl Write for Spec {
    fn write(&self, buf: &mut impl BufMut) {
        self.resources.write(buf);
        self.workload.write(buf);
    }
}

impl EncodeSize for Spec {
    fn encode_size(&self) -> usize {
        Resources::SIZE + self.workload.encode_size()
    }
}

impl Read for Spec {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            resources: Resources::read(buf)?,
            workload: Workload::read(buf)?,
        })
    }
}

/// An environment: desired state (spec, generation, desired) and the status reported back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Where the workload is reachable (`ip:port` of its health port), empty if unknown.
    pub endpoint: String,
    /// Scheduled, Ready and Verified, in that order.
    pub conditions: Vec<Condition>,
}

impl Environment {
    /// The condition of `kind`.
    pub fn condition(&self, kind: ConditionType) -> &Condition {
        self.conditions
            .iter()
            .find(|condition| condition.kind == kind)
            .expect("every environment lists every condition")
    }

    /// Sets a condition; its transition height moves only if the status changes.
    pub fn set_condition(
        &mut self,
        kind: ConditionType,
        status: ConditionStatus,
        reason: &str,
        message: &str,
        height: u64,
    ) {
        let condition = self
            .conditions
            .iter_mut()
            .find(|condition| condition.kind == kind)
            .expect("every environment lists every condition");
        if condition.status != status {
            condition.last_transition_height = height;
        }
        condition.status = status;
        condition.reason = truncate(reason, REASON_MAX_BYTES);
        condition.message = truncate(message, MESSAGE_MAX_BYTES);
    }
}

/// `text` cut to at most `max_bytes` bytes on a character boundary.
pub fn truncate(text: &str, max_bytes: usize) -> String {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl Write for Environment {
    fn write(&self, buf: &mut impl BufMut) {
        self.tenant.write(buf);
        self.provider.write(buf);
        self.template.write(buf);
        self.spec.write(buf);
        self.generation.write(buf);
        self.generation_height.write(buf);
        self.desired.write(buf);
        self.phase.write(buf);
        self.observed_generation.write(buf);
        write_text(&self.endpoint, buf);
        self.conditions.write(buf);
    }
}

impl EncodeSize for Environment {
    fn encode_size(&self) -> usize {
        Address::SIZE
            + 8
            + 4
            + self.spec.encode_size()
            + 8
            + 8
            + 2
            + 8
            + text_size(&self.endpoint)
            + self.conditions.encode_size()
    }
}

impl Read for Environment {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            tenant: Address::read(buf)?,
            provider: ProviderId::read(buf)?,
            template: TemplateId::read(buf)?,
            spec: Spec::read(buf)?,
            generation: u64::read(buf)?,
            generation_height: u64::read(buf)?,
            desired: Desired::read(buf)?,
            phase: Phase::read(buf)?,
            observed_generation: u64::read(buf)?,
            endpoint: read_text(buf, ENDPOINT_MAX_BYTES)?,
            conditions: Vec::<Condition>::read_cfg(
                buf,
                &(commonware_codec::RangeCfg::new(3..=3), ()),
            )?,
        })
    }
}

/// Calls of the `operations` module (call index first on the wire).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// 0 (tenant): re-apply the template's current spec and bump the generation, so the
    /// environment is recreated.
    UpdateEnvironment {
        /// The environment.
        environment: EnvironmentId,
    },
}

impl Write for Call {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Call::UpdateEnvironment { environment } => {
                0u8.write(buf);
                environment.write(buf);
            }
        }
    }
}

impl EncodeSize for Call {
    fn encode_size(&self) -> usize {
        1 + 8
    }
}

impl Read for Call {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(Call::UpdateEnvironment {
                environment: EnvironmentId::read(buf)?,
            }),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

/// Events of the `operations` module.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
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

/// Errors of the `operations` module.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No such environment.
    #[error("unknown environment {0}")]
    UnknownEnvironment(EnvironmentId),
    /// Only the tenant may change the environment.
    #[error("only the tenant may change this environment")]
    NotTenant,
    /// The environment is being or has been destroyed.
    #[error("environment {0} is being destroyed")]
    Destroying(EnvironmentId),
    /// The template is gone from the catalog.
    #[error("template {0} is no longer in the catalog")]
    UnknownTemplate(TemplateId),
    /// Too many environments are active.
    #[error("too many active environments")]
    TooManyEnvironments,
}
