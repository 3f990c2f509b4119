//! `operations` (module index 3): the desired state of every environment and the status
//! reported back (seed `002`: OSC, desired/actual state reconciled like a Kubernetes controller).
//!
//! # Storage (module index 3)
//! | item | key | value |
//! |---|---|---|
//! | 0 `Environment` | environment id (u64, = its lease id) | [`Environment`] |
//! | 1 `ActiveEnvironments` | (none) | ascending ids, at most [`ACTIVE_ENVIRONMENTS_MAX`] |
//!
//! # Transitions
//! - **create** (from `market` when a lease is created): generation 1, desired `Running`, the
//!   product's resources and the template's workload as the spec; `provisioning` assigns it.
//! - **update** ([`Call::UpdateEnvironment`], tenant): the template's current workload becomes
//!   the spec, generation + 1.
//! - **destroy** (from `market` when a lease closes): desired `Destroyed`, generation + 1. The
//!   environment leaves the active set once its provisioner reports it `Destroyed`.
//!
//! Status (`phase`, `observed_generation`, `endpoint`, conditions `Scheduled`, `Ready`,
//! `Verified`) is written only through [`record_report`] and [`set_verified`], which the
//! `provisioning` module calls after checking who reports.
//!
//! # Invariant ([`try_state`])
//! The active list is ascending and holds exactly the environments not yet reported destroyed;
//! every environment lists its three conditions in order; `observed_generation ≤ generation`.

#[cfg(test)]
mod tests;
mod types;

pub use types::*;

use crate::{
    modules::{dvci::ProviderId, market, provisioning},
    storage::{
        decode_list, decode_value, prefixed, read_list, read_value, state_list, Overlay,
        StateError, StateReader, StorageKey,
    },
    BlockContext, Origin,
};
use logos_primitives::Address;
use std::collections::BTreeMap;

/// Module index of `operations`.
pub const MODULE_INDEX: u8 = 3;
const ITEM_ENVIRONMENT: u8 = 0;
const ITEM_ACTIVE: u8 = 1;

/// Most environments not yet reported destroyed (active leases plus those being torn down).
pub const ACTIVE_ENVIRONMENTS_MAX: usize = 2 * market::ACTIVE_LEASES_MAX;

/// Storage key of an environment.
pub fn environment_key(id: EnvironmentId) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_ENVIRONMENT, &id.to_be_bytes())
}

/// Storage key of the active environment list.
pub fn active_environments_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_ACTIVE, &[])
}

/// Decodes the active environment list (bytes stored at [`active_environments_key`]).
pub fn decode_active(bytes: &[u8]) -> Result<Vec<EnvironmentId>, StateError> {
    decode_list(&active_environments_key(), bytes, ACTIVE_ENVIRONMENTS_MAX)
}

/// Ids of the environments not yet reported destroyed, ascending.
pub async fn active_environments<R: StateReader>(
    overlay: &Overlay<'_, R>,
) -> Result<Vec<EnvironmentId>, StateError> {
    read_list(overlay, &active_environments_key(), ACTIVE_ENVIRONMENTS_MAX).await
}

/// Reads an environment.
pub async fn environment<R: StateReader>(
    overlay: &Overlay<'_, R>,
    id: EnvironmentId,
) -> Result<Option<Environment>, StateError> {
    read_value(overlay, &environment_key(id)).await
}

fn condition(kind: ConditionType, reason: &str, height: u64) -> Condition {
    Condition {
        kind,
        status: ConditionStatus::Unknown,
        reason: reason.into(),
        message: String::new(),
        last_transition_height: height,
    }
}

/// Records the desired state of a new environment for lease `id` (see the module docs) and
/// has it assigned. Fails with [`Error::TooManyEnvironments`] when the active set is full.
pub async fn create<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    context: &BlockContext,
    id: EnvironmentId,
    tenant: Address,
    provider: ProviderId,
    template: market::TemplateId,
    spec: Spec,
) -> Result<Result<Vec<crate::Event>, Error>, StateError> {
    let mut active = active_environments(overlay).await?;
    if active.len() >= ACTIVE_ENVIRONMENTS_MAX {
        return Ok(Err(Error::TooManyEnvironments));
    }
    let height = context.height;
    let mut record = Environment {
        tenant,
        provider,
        template,
        spec,
        generation: 1,
        generation_height: height,
        desired: Desired::Running,
        phase: Phase::Pending,
        observed_generation: 0,
        endpoint: String::new(),
        conditions: vec![
            condition(ConditionType::Scheduled, "Placed", height),
            condition(ConditionType::Ready, "AwaitingReport", height),
            condition(ConditionType::Verified, "AwaitingReport", height),
        ],
    };
    record.set_condition(
        ConditionType::Scheduled,
        ConditionStatus::True,
        "Placed",
        &format!("placed on provider {provider}"),
        height,
    );
    overlay.put_encoded(environment_key(id), &record);
    let position = active
        .binary_search(&id)
        .expect_err("environment ids are fresh");
    active.insert(position, id);
    overlay.put_encoded(active_environments_key(), &active);
    let mut events = vec![crate::Event::Operations(Event::EnvironmentCreated {
        environment: id,
        provider,
    })];
    events.extend(provisioning::assign_new(overlay, context, id).await?);
    Ok(Ok(events))
}

/// Bumps the generation and records the change of desired state in `record`.
fn bump(record: &mut Environment, height: u64) {
    record.generation += 1;
    record.generation_height = height;
    record.set_condition(
        ConditionType::Ready,
        ConditionStatus::Unknown,
        "AwaitingReport",
        "",
        height,
    );
    record.set_condition(
        ConditionType::Verified,
        ConditionStatus::Unknown,
        "AwaitingReport",
        "",
        height,
    );
}

/// Wants environment `id` gone (lease closed): desired `Destroyed`, generation + 1.
pub async fn destroy<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: EnvironmentId,
    height: u64,
) -> Result<Event, StateError> {
    let mut record = environment(overlay, id)
        .await?
        .expect("every lease has an environment");
    assert_eq!(record.desired, Desired::Running, "a lease closes once");
    record.desired = Desired::Destroyed;
    bump(&mut record, height);
    let generation = record.generation;
    overlay.put_encoded(environment_key(id), &record);
    Ok(Event::DestroyRequested {
        environment: id,
        generation,
    })
}

/// Records the assigned provisioner's report (already checked by `provisioning`). A `Destroyed`
/// report of a `Destroyed` desired state removes the environment from the active set.
pub async fn record_report<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: EnvironmentId,
    report: &provisioning::Report,
    height: u64,
) -> Result<Vec<Event>, StateError> {
    let mut record = environment(overlay, id)
        .await?
        .expect("reports are about known environments");
    record.phase = report.phase;
    record.observed_generation = report.generation;
    record.endpoint = report.endpoint.clone();
    let (reason, message) = split_message(&report.message);
    let ready = match report.phase {
        Phase::Running => ConditionStatus::True,
        Phase::Pending => ConditionStatus::Unknown,
        Phase::Failed | Phase::Destroyed => ConditionStatus::False,
    };
    record.set_condition(ConditionType::Ready, ready, reason, message, height);
    let verified_reason = if report.phase == Phase::Running {
        "AwaitingCrossChecks"
    } else {
        "NotRunning"
    };
    record.set_condition(
        ConditionType::Verified,
        ConditionStatus::Unknown,
        verified_reason,
        "",
        height,
    );
    let mut events = vec![Event::StatusReported {
        environment: id,
        observed_generation: report.generation,
        phase: report.phase,
    }];
    if report.phase == Phase::Destroyed && record.desired == Desired::Destroyed {
        let mut active = active_environments(overlay).await?;
        active.retain(|active_id| *active_id != id);
        overlay.put_encoded(active_environments_key(), &active);
        events.push(Event::EnvironmentDestroyed { environment: id });
    }
    overlay.put_encoded(environment_key(id), &record);
    Ok(events)
}

/// `"Reason: details"` → (`Reason`, `details`); a message without a colon is all reason.
fn split_message(message: &str) -> (&str, &str) {
    match message.split_once(':') {
        Some((reason, details)) => (reason.trim(), details.trim()),
        None => (message.trim(), ""),
    }
}

/// Sets the `Verified` condition (from `provisioning` when a round is decided or reopened).
pub async fn set_verified<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: EnvironmentId,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    height: u64,
) -> Result<(), StateError> {
    let mut record = environment(overlay, id)
        .await?
        .expect("verdicts are about known environments");
    record.set_condition(ConditionType::Verified, status, reason, message, height);
    if status == ConditionStatus::False {
        record.set_condition(
            ConditionType::Ready,
            ConditionStatus::False,
            "ReportContradicted",
            "a quorum of cross-checks disagreed with the report",
            height,
        );
        record.phase = Phase::Pending;
    }
    overlay.put_encoded(environment_key(id), &record);
    Ok(())
}

/// Runs `call` for `origin` in the block described by `context`.
pub async fn dispatch<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    context: &BlockContext,
    call: &Call,
) -> Result<Result<Vec<crate::Event>, Error>, StateError> {
    let Call::UpdateEnvironment { environment: id } = call;
    let Some(mut record) = environment(overlay, *id).await? else {
        return Ok(Err(Error::UnknownEnvironment(*id)));
    };
    if record.tenant != origin.sender {
        return Ok(Err(Error::NotTenant));
    }
    if record.desired == Desired::Destroyed {
        return Ok(Err(Error::Destroying(*id)));
    }
    let Some(template) =
        read_value::<_, market::Template>(overlay, &market::template_key(record.template)).await?
    else {
        return Ok(Err(Error::UnknownTemplate(record.template)));
    };
    record.spec.workload = template.workload;
    bump(&mut record, context.height);
    let generation = record.generation;
    overlay.put_encoded(environment_key(*id), &record);
    Ok(Ok(vec![crate::Event::Operations(
        Event::EnvironmentUpdated {
            environment: *id,
            generation,
        },
    )]))
}

/// The invariant over a full state map (see the module docs).
pub fn try_state(state: &BTreeMap<StorageKey, Vec<u8>>) -> Result<(), String> {
    let active: Vec<EnvironmentId> =
        state_list(state, &active_environments_key(), ACTIVE_ENVIRONMENTS_MAX)?;
    if active.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err("active environments not ascending".into());
    }
    let mut live = Vec::new();
    for (key, value) in prefixed(state, MODULE_INDEX, ITEM_ENVIRONMENT) {
        let record: Environment = decode_value(key, value).map_err(|e| e.to_string())?;
        let id = u64::from_be_bytes(key.as_bytes()[2..].try_into().map_err(|_| "bad key")?);
        let kinds: Vec<_> = record.conditions.iter().map(|c| c.kind).collect();
        if kinds
            != [
                ConditionType::Scheduled,
                ConditionType::Ready,
                ConditionType::Verified,
            ]
        {
            return Err(format!("environment {id} conditions out of order"));
        }
        if record.observed_generation > record.generation {
            return Err(format!("environment {id} observed a future generation"));
        }
        let finished = record.desired == Desired::Destroyed
            && record.phase == Phase::Destroyed
            && record.observed_generation == record.generation;
        if !finished {
            live.push(id);
        }
    }
    if live != active {
        return Err(format!(
            "active list {active:?} differs from live environments {live:?}"
        ));
    }
    Ok(())
}
