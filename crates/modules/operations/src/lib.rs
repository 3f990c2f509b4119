//! `operations` (module index 3): the desired state of every environment and the status
//! reported back (seed `002`: the OSC; desired and actual state reconciled like a Kubernetes
//! controller).
//!
//! Owns [`Environments`] and [`ActiveEnvironments`]; types, calls and storage are declared in
//! [`logos_types::operations`].
//!
//! # Transitions
//! - **create** (when a lease is created, through the runtime): generation 1, desired
//!   `Running`, the product's resources and the template's workload as the spec.
//! - **update** ([`Call::UpdateEnvironment`], tenant): the template's current workload becomes
//!   the spec, generation + 1; refused if the template now names a product with other resources
//!   than the environment holds (its lease pays for those).
//! - **destroy** (when its lease closes): desired `Destroyed`, generation + 1. The environment
//!   leaves the active set once its provisioner reports it `Destroyed`.
//!
//! Status (`phase`, `observed_generation`, `endpoint`, conditions `Scheduled`, `Ready`,
//! `Verified`) is written only through [`Operations::record_report`] and
//! [`Operations::set_verified`], which `provisioning` calls after checking who reports.
//!
//! # Invariant ([`Operations::try_state`])
//! The active list is ascending and holds exactly the environments not yet reported destroyed;
//! every environment lists its three conditions in order; `observed_generation ≤ generation`.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use logos_framework::{
    ensure_ascending, events, Context, DispatchResult, MapExt, Module, State, StateReader,
    TryStateResult, ValueExt,
};
use logos_types::{
    catalog::{Products, Templates},
    codec::BoundedVec,
    corruption,
    operations::{
        ActiveEnvironments, CallHandler, ConditionStatus, ConditionType, Desired, Environment,
        EnvironmentId, Environments, Error, Event, Phase, ACTIVE_ENVIRONMENTS_MAX,
    },
    provisioning::Report,
    DispatchError, StateError,
};

/// The `operations` module.
pub struct Operations;

/// The ids of the environments not yet reported destroyed, ascending.
pub type ActiveList = BoundedVec<EnvironmentId, ACTIVE_ENVIRONMENTS_MAX>;

/// Bumps the generation and records the change of desired state in `record`.
fn bump(record: &mut Environment, height: u64) {
    record.generation = record.generation.saturating_add(1);
    record.generation_height = height;
    for kind in [ConditionType::Ready, ConditionType::Verified] {
        record.set_condition(kind, ConditionStatus::Unknown, "AwaitingReport", "", height);
    }
}

/// `"Reason: details"` → (`Reason`, `details`); a message without a colon is all reason.
fn split_message(message: &str) -> (&str, &str) {
    match message.split_once(':') {
        Some((reason, details)) => (reason.trim(), details.trim()),
        None => (message.trim(), ""),
    }
}

/// What the modules above use of `operations`: environments' desired state and status.
impl Operations {
    /// Records the desired state of a new environment (`Environment::new`, see the module
    /// docs). Fails with [`Error::TooManyEnvironments`] when the active set is full.
    pub async fn create<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        id: EnvironmentId,
        record: Environment,
    ) -> DispatchResult {
        let mut active = ActiveEnvironments::get(ctx.overlay).await?;
        if Environments::contains(ctx.overlay, &id).await? {
            return Err(Error::EnvironmentExists(id).into());
        }
        if !active
            .insert_sorted(id)
            .map_err(|_| Error::TooManyEnvironments)?
        {
            return Err(Error::EnvironmentExists(id).into());
        }
        Environments::insert(ctx.overlay, &id, &record)?;
        ActiveEnvironments::put(ctx.overlay, &active)?;
        Ok(events([Event::EnvironmentCreated {
            environment: id,
            provider: record.provider,
        }]))
    }

    /// Wants environment `id` gone (its lease closed): desired `Destroyed`, generation + 1.
    pub async fn destroy<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        id: EnvironmentId,
    ) -> DispatchResult {
        let mut record = Environments::require(ctx.overlay, &id).await?;
        if record.desired == Desired::Destroyed {
            return Err(corruption(format!("environment {id} destroyed twice")));
        }
        record.desired = Desired::Destroyed;
        bump(&mut record, ctx.height());
        Environments::insert(ctx.overlay, &id, &record)?;
        Ok(events([Event::DestroyRequested {
            environment: id,
            generation: record.generation,
        }]))
    }

    /// Records the assigned provisioner's report (already checked by `provisioning`). A
    /// `Destroyed` report of a `Destroyed` desired state removes the environment from the
    /// active set.
    pub async fn record_report<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        id: EnvironmentId,
        report: &Report,
    ) -> DispatchResult {
        let height = ctx.height();
        let mut record = Environments::require(ctx.overlay, &id).await?;
        record.phase = report.phase;
        record.observed_generation = report.generation;
        record.endpoint = report.endpoint.clone();
        record.ports = report.ports.clone();
        let (reason, message) = split_message(&report.message);
        let ready = match report.phase {
            Phase::Running => ConditionStatus::True,
            Phase::Pending => ConditionStatus::Unknown,
            Phase::Failed | Phase::Destroyed => ConditionStatus::False,
        };
        record.set_condition(ConditionType::Ready, ready, reason, message, height);
        let verified_reason = match report.phase {
            Phase::Running => "AwaitingCrossChecks",
            _ => "NotRunning",
        };
        record.set_condition(
            ConditionType::Verified,
            ConditionStatus::Unknown,
            verified_reason,
            "",
            height,
        );
        let mut emitted = vec![Event::StatusReported {
            environment: id,
            observed_generation: report.generation,
            phase: report.phase,
        }];
        if report.phase == Phase::Destroyed && record.desired == Desired::Destroyed {
            let mut active = ActiveEnvironments::get(ctx.overlay).await?;
            active.remove_sorted(&id);
            ActiveEnvironments::put(ctx.overlay, &active)?;
            emitted.push(Event::EnvironmentDestroyed { environment: id });
        }
        Environments::insert(ctx.overlay, &id, &record)?;
        Ok(events(emitted))
    }

    /// Sets the `Verified` condition (a quorum decided, or a round reopened); `False` also
    /// makes `Ready` false and the phase `Pending`.
    pub async fn set_verified<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        id: EnvironmentId,
        status: ConditionStatus,
        reason: &str,
        message: &str,
    ) -> Result<(), DispatchError> {
        let height = ctx.height();
        let mut record = Environments::require(ctx.overlay, &id).await?;
        record.set_condition(ConditionType::Verified, status, reason, message, height);
        if status == ConditionStatus::False {
            record.set_condition(
                ConditionType::Ready,
                ConditionStatus::False,
                reason,
                message,
                height,
            );
            record.phase = Phase::Pending;
        }
        Ok(Environments::insert(ctx.overlay, &id, &record)?)
    }
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for Operations {
    async fn update_environment(
        ctx: &mut Context<'_, '_, R>,
        environment: &EnvironmentId,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let id = *environment;
        let mut record = Environments::get(ctx.overlay, &id)
            .await?
            .ok_or(Error::UnknownEnvironment(id))?;
        if record.tenant != sender {
            return Err(Error::NotTenant.into());
        }
        if record.desired == Desired::Destroyed {
            return Err(Error::Destroying(id).into());
        }
        let template = Templates::get(ctx.overlay, &record.template)
            .await?
            .ok_or(Error::UnknownTemplate(record.template))?;
        let product = Products::get(ctx.overlay, &template.product).await?;
        if product.map(|product| product.resources) != Some(record.spec.resources) {
            return Err(Error::ProductChanged(record.template).into());
        }
        record.spec.workload = template.workload;
        bump(&mut record, ctx.height());
        Environments::insert(ctx.overlay, &id, &record)?;
        Ok(events([Event::EnvironmentUpdated {
            environment: id,
            generation: record.generation,
        }]))
    }
}

impl Module for Operations {
    logos_framework::module_calls!(logos_types::operations);

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        let text = |error: StateError| error.to_string();
        let active = ActiveEnvironments::get_from(state).map_err(text)?;
        ensure_ascending(&active, "active environments")?;
        let mut live = Vec::new();
        for entry in Environments::iter_from(state) {
            let (id, record) = entry.map_err(text)?;
            let kinds = record.conditions.each_ref().map(|condition| condition.kind);
            if kinds != ConditionType::ALL {
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
        if live != *active {
            return Err(format!(
                "active list {active:?} differs from live environments {live:?}"
            ));
        }
        Ok(())
    }
}
