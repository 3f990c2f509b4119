//! `provisioning` (module index 4): staked provisioners, who realizes each environment and who
//! cross-checks it (seed `002`: provisioners realize desired state off chain, cross-check each
//! other and are slashed for lying).
//!
//! Owns [`Provisioners`], [`Eligible`], [`Assignments`] and the minimum stake; types, calls and
//! storage are declared in [`logos_types::provisioning`]. Stakes are reserved and slashed
//! through `balances`; environments are read and their status written through `operations`.
//!
//! # Protocol
//! 1. **Assignment.** A new environment gets one provisioner ([`Provisioning::assign_new`]):
//!    the eligible account with the lowest `SHA-256(randomness ‖ environment ‖ round ‖
//!    account)`, where `randomness` is the block's chain randomness (its parent's digest).
//! 2. **Report.** Only the assigned provisioner reports, and only about the current generation.
//!    A `Running` report opens a cross-check round: up to [`CHECKERS`] other eligible
//!    provisioners are drawn the same way (a new draw every round: checkers rotate).
//! 3. **Cross-check.** Each drawn checker probes the reported endpoint and votes. With `c`
//!    checkers the quorum is `c / 2 + 1`. A quorum agreeing makes the environment `Verified`; a
//!    quorum disagreeing slashes [`SLASH_PERCENT`] of the assignee's stake to the community pool
//!    and reassigns the environment to another provisioner.
//! 4. **Liveness** (end of every block): an assignee that has not reported on the current
//!    generation [`REPORT_TIMEOUT_BLOCKS`] after it was assigned or the generation changed is
//!    replaced; an undecided round older than [`CHECK_TIMEOUT_BLOCKS`] is redrawn; a decided
//!    round is reopened with new checkers every [`RECHECK_INTERVAL_BLOCKS`].
//!
//! A provisioner whose stake falls below the minimum stops being eligible for new tasks.
//!
//! # Invariant ([`Provisioning::try_state`])
//! The eligible list is ascending and each entry has a record; exactly the active environments
//! have an assignment; checkers never include the assignee; votes come from distinct checkers.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use logos_balances::Balances;
use logos_framework::{
    ensure_ascending, events, Context, DispatchResult, MapExt, Module, State, StateReader,
    TryStateResult, ValueExt,
};
use logos_operations::Operations;
use logos_primitives::{hash, Address, Amount};
use logos_types::{
    balances::community_account,
    corruption,
    dvci::Providers,
    operations::{
        ActiveEnvironments, ConditionStatus, Desired, EnvironmentId, Environments, Phase,
    },
    provisioning::{
        AssignReason, Assignment, Assignments, CallHandler, Eligible, Error, Event, MinimumStake,
        Provisioner, Provisioners, Report, CHECKERS, CHECK_TIMEOUT_BLOCKS, RECHECK_INTERVAL_BLOCKS,
        REPORT_TIMEOUT_BLOCKS, SLASH_PERCENT,
    },
    DispatchError, Event as RuntimeEvent, StateError,
};

/// The `provisioning` module.
pub struct Provisioning;

/// Up to `count` of `candidates`, ordered by `SHA-256(randomness ‖ environment ‖ round ‖
/// account)` (see the module docs).
pub fn draw(
    candidates: &[Address],
    randomness: &[u8],
    environment: EnvironmentId,
    round: u64,
    count: usize,
) -> Vec<Address> {
    let mut ranked: Vec<_> = candidates
        .iter()
        .map(|account| {
            let rank = hash(&[
                randomness,
                &environment.get().to_be_bytes(),
                &round.to_be_bytes(),
                account.as_bytes(),
            ]);
            (rank, *account)
        })
        .collect();
    ranked.sort();
    ranked
        .into_iter()
        .take(count)
        .map(|(_, account)| account)
        .collect()
}

impl Provisioning {
    /// Assigns a new environment (when it is created, through the runtime).
    pub async fn assign_new<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
    ) -> DispatchResult {
        let mut record = Assignment::default();
        let emitted = Self::assign(ctx, environment, &mut record, AssignReason::Created).await?;
        Assignments::insert(ctx.overlay, &environment, &record)?;
        Ok(emitted)
    }

    /// Sum of all provisioner stakes in a full state (reserved through `balances`).
    pub fn total_stake(state: &State) -> Result<Amount, String> {
        Provisioners::sum_from(state, |record| record.stake)
    }

    /// Gives `record` a new assignee (not the current one, and not one replaced before while
    /// others are eligible) and clears its report and round.
    async fn assign<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
        reason: AssignReason,
    ) -> DispatchResult {
        let eligible = Eligible::get(ctx.overlay).await?.into_inner();
        if let Some(previous) = record.assigned {
            if !record.replaced.contains(&previous) {
                // A full list forgets nobody important: every provisioner fits in it.
                let _ = record.replaced.try_push(previous);
            }
        }
        let fresh: Vec<_> = eligible
            .iter()
            .filter(|account| !record.replaced.contains(account))
            .copied()
            .collect();
        let others: Vec<_> = eligible
            .iter()
            .filter(|account| Some(**account) != record.assigned)
            .copied()
            .collect();
        let pool = [fresh, others, eligible]
            .into_iter()
            .find(|pool| !pool.is_empty())
            .unwrap_or_default();
        let randomness = ctx.block.randomness;
        let chosen = draw(&pool, randomness.as_ref(), environment, record.round, 1)
            .first()
            .copied();
        record.assigned = chosen;
        record.assigned_at = ctx.height();
        record.report = None;
        record.checkers.clear();
        record.votes.clear();
        Ok(events(chosen.map(|provisioner| Event::TaskAssigned {
            environment,
            provisioner,
            reason,
        })))
    }

    /// Opens a new cross-check round on `record`'s report with freshly drawn checkers.
    async fn open_round<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
    ) -> DispatchResult {
        let others: Vec<_> = Eligible::get(ctx.overlay)
            .await?
            .into_iter()
            .filter(|account| Some(*account) != record.assigned)
            .collect();
        record.round = record.round.saturating_add(1);
        record.round_opened_at = ctx.height();
        let checkers = draw(
            &others,
            ctx.block.randomness.as_ref(),
            environment,
            record.round,
            CHECKERS,
        );
        record.checkers = checkers
            .clone()
            .try_into()
            .map_err(|_| corruption("more checkers drawn than a round holds"))?;
        record.votes.clear();
        if checkers.is_empty() {
            return Ok(Vec::new());
        }
        Ok(events([Event::CrossChecksDrawn {
            environment,
            round: record.round,
            checkers,
        }]))
    }

    /// Takes [`SLASH_PERCENT`] of `account`'s stake to the community pool; below the minimum it
    /// stops being eligible.
    async fn slash<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        account: Address,
        environment: EnvironmentId,
    ) -> Result<RuntimeEvent, DispatchError> {
        let mut record = Provisioners::require(ctx.overlay, &account).await?;
        let stake = record.stake;
        // SLASH_PERCENT of the stake, at least one unit while any is left.
        let amount = stake
            .percent(SLASH_PERCENT)
            .ok_or_else(|| corruption("slash above 100 %"))?
            .max(stake.min(Amount(1)));
        Balances::pay_reserved(ctx.overlay, &account, &community_account(), amount).await?;
        record.stake = stake
            .checked_sub(amount)
            .ok_or_else(|| corruption("slash above the stake"))?;
        record.slashed = record
            .slashed
            .checked_add(amount)
            .unwrap_or(Amount(u128::MAX));
        Provisioners::insert(ctx.overlay, &account, &record)?;
        if record.stake < MinimumStake::get(ctx.overlay).await? {
            let mut eligible = Eligible::get(ctx.overlay).await?;
            eligible.remove_sorted(&account);
            Eligible::put(ctx.overlay, &eligible)?;
        }
        Ok(Event::ProvisionerSlashed {
            provisioner: account,
            environment,
            amount,
        }
        .into())
    }

    /// The liveness duties of one active environment (see the module docs).
    async fn keep_alive<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
        eligible: usize,
    ) -> DispatchResult {
        let height = ctx.height();
        let mut record = Assignments::require(ctx.overlay, &environment).await?;
        let current = Environments::require(ctx.overlay, &environment).await?;
        let reported = record
            .report
            .as_ref()
            .filter(|report| report.generation == current.generation);
        let mut emitted = Vec::new();
        match (record.assigned, reported) {
            (None, _) if eligible > 0 => {
                let reason = AssignReason::ProvisionerAvailable;
                emitted = Self::assign(ctx, environment, &mut record, reason).await?;
            }
            (None, _) => {}
            (Some(_), None) => {
                let since = record.assigned_at.max(current.generation_height);
                if height.saturating_sub(since) > REPORT_TIMEOUT_BLOCKS {
                    let reason = AssignReason::ReportMissing;
                    emitted = Self::assign(ctx, environment, &mut record, reason).await?;
                }
            }
            (Some(_), Some(report)) if report.phase == Phase::Running => {
                let age = height.saturating_sub(record.round_opened_at);
                let stalled = !record.decided() && age > CHECK_TIMEOUT_BLOCKS;
                let unchecked = record.checkers.is_empty() && eligible > 1;
                let due = record.decided() && age > RECHECK_INTERVAL_BLOCKS;
                if stalled || unchecked || due {
                    emitted = Self::open_round(ctx, environment, &mut record).await?;
                    if record.checkers.is_empty() {
                        // Nobody else is eligible yet: try again next block without a new event.
                        record.round_opened_at = height;
                    }
                }
            }
            (Some(_), Some(_)) => {}
        }
        if !emitted.is_empty() || record.round_opened_at == height {
            Assignments::insert(ctx.overlay, &environment, &record)?;
        }
        Ok(emitted)
    }
}

/// Every mapped port is declared, and mapped once.
fn check_ports(report: &Report, declared: &[u16]) -> Result<(), Error> {
    for (position, mapping) in report.ports.iter().enumerate() {
        let earlier = report.ports.iter().take(position);
        let repeated = earlier.clone().any(|other| other.port == mapping.port);
        if repeated || !declared.contains(&mapping.port) {
            return Err(Error::UndeclaredPort(mapping.port));
        }
    }
    Ok(())
}

/// An endpoint, when reported, is the provider's host (its agent's, as registered; never a
/// loopback or unspecified address, which would send checkers' probes to their own machine)
/// and the port the health port is published on.
fn check_endpoint(report: &Report, provider: &str, health_port: u16) -> Result<(), Error> {
    if report.endpoint.is_empty() {
        return Ok(());
    }
    let host_of = |endpoint: &str| {
        endpoint
            .rsplit_once(':')
            .map(|(host, port)| (host.to_string(), port.to_string()))
    };
    let (Some((host, port)), Some((provider_host, _))) =
        (host_of(&report.endpoint), host_of(provider))
    else {
        return Err(Error::EndpointMismatch);
    };
    let local = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    let published = report
        .ports
        .iter()
        .find(|mapping| mapping.port == health_port)
        .map(|mapping| mapping.published.to_string());
    if host != provider_host || local || published.as_deref() != Some(port.as_str()) {
        return Err(Error::EndpointMismatch);
    }
    Ok(())
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for Provisioning {
    async fn register_provisioner(ctx: &mut Context<'_, '_, R>, stake: &Amount) -> DispatchResult {
        let sender = ctx.sender()?;
        let account = sender;
        if Provisioners::contains(ctx.overlay, &account).await? {
            return Err(Error::AlreadyRegistered.into());
        }
        let minimum = MinimumStake::get(ctx.overlay).await?;
        if *stake < minimum {
            return Err(Error::StakeTooLow { minimum }.into());
        }
        let mut eligible = Eligible::get(ctx.overlay).await?;
        if !eligible
            .insert_sorted(account)
            .map_err(|_| Error::TooManyProvisioners)?
        {
            return Err(corruption(format!("unregistered {account} is eligible")));
        }
        Balances::reserve(ctx.overlay, &account, *stake).await?;
        let record = Provisioner {
            stake: *stake,
            slashed: Amount::ZERO,
            registered_at: ctx.height(),
        };
        Provisioners::insert(ctx.overlay, &account, &record)?;
        Eligible::put(ctx.overlay, &eligible)?;
        Ok(events([Event::ProvisionerRegistered {
            provisioner: account,
            stake: *stake,
        }]))
    }

    async fn deregister_provisioner(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let sender = ctx.sender()?;
        let account = sender;
        let record = Provisioners::get(ctx.overlay, &account)
            .await?
            .ok_or(Error::NotRegistered)?;
        for environment in ActiveEnvironments::get(ctx.overlay).await? {
            if Assignments::require(ctx.overlay, &environment)
                .await?
                .assigned
                == Some(account)
            {
                return Err(Error::StillAssigned(environment).into());
            }
        }
        Balances::unreserve(ctx.overlay, &account, record.stake).await?;
        Provisioners::remove(ctx.overlay, &account)?;
        let mut eligible = Eligible::get(ctx.overlay).await?;
        eligible.remove_sorted(&account);
        Eligible::put(ctx.overlay, &eligible)?;
        Ok(events([Event::ProvisionerDeregistered {
            provisioner: account,
            refund: record.stake,
        }]))
    }

    async fn report(
        ctx: &mut Context<'_, '_, R>,
        environment: &EnvironmentId,
        report: &Report,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let id = *environment;
        let mut record = Assignments::get(ctx.overlay, &id)
            .await?
            .ok_or(Error::UnknownEnvironment(id))?;
        if record.assigned != Some(sender) {
            return Err(Error::NotAssigned(id).into());
        }
        let current = Environments::require(ctx.overlay, &id).await?;
        if report.generation != current.generation {
            return Err(Error::WrongGeneration {
                reported: report.generation,
                current: current.generation,
            }
            .into());
        }
        if record.report.as_ref() == Some(report) {
            return Err(Error::UnchangedReport.into());
        }
        check_ports(report, &current.spec.workload.ports)?;
        let provider = Providers::get(ctx.overlay, &current.provider)
            .await?
            .ok_or_else(|| {
                corruption(format!(
                    "provider {} of environment {id} gone",
                    current.provider
                ))
            })?;
        check_endpoint(
            report,
            &provider.endpoint,
            current.spec.workload.health.port,
        )?;
        let mut emitted = Operations::record_report(ctx, id, report).await?;
        record.report = Some(report.clone());
        if report.phase == Phase::Destroyed && current.desired == Desired::Destroyed {
            Assignments::remove(ctx.overlay, &id)?;
            return Ok(emitted);
        }
        if report.phase == Phase::Running {
            emitted.extend(Provisioning::open_round(ctx, id, &mut record).await?);
        } else {
            record.checkers.clear();
            record.votes.clear();
        }
        Assignments::insert(ctx.overlay, &id, &record)?;
        Ok(emitted)
    }

    async fn cross_check(
        ctx: &mut Context<'_, '_, R>,
        environment: &EnvironmentId,
        round: &u64,
        agrees: &bool,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let (id, round, agrees) = (*environment, *round, *agrees);
        let mut record = Assignments::get(ctx.overlay, &id)
            .await?
            .ok_or(Error::UnknownEnvironment(id))?;
        let checker = sender;
        if record.round != round || !record.checkers.contains(&checker) {
            return Err(Error::NotChecker(round).into());
        }
        if record.decided() {
            return Err(Error::RoundDecided(round).into());
        }
        if record.voted(&checker) {
            return Err(Error::AlreadyVoted.into());
        }
        record
            .votes
            .try_push((checker, agrees))
            .map_err(|_| corruption("more votes than checkers"))?;
        let mut emitted = events([Event::CrossChecked {
            environment: id,
            round,
            checker,
            agrees,
        }]);
        let quorum = record.quorum();
        let (agreeing, disagreeing) = record.tally();
        let checkers = record.checkers.len();
        if agreeing >= quorum {
            let message = format!("{agreeing} of {checkers} cross-checks agreed");
            Operations::set_verified(ctx, id, ConditionStatus::True, "QuorumAgreed", &message)
                .await?;
            emitted.push(
                Event::EnvironmentVerified {
                    environment: id,
                    round,
                }
                .into(),
            );
        } else if disagreeing >= quorum {
            let liar = record
                .assigned
                .ok_or_else(|| corruption("a round without an assignee"))?;
            emitted.push(Provisioning::slash(ctx, liar, id).await?);
            let message = format!("{disagreeing} of {checkers} cross-checks disagreed");
            Operations::set_verified(
                ctx,
                id,
                ConditionStatus::False,
                "ReportContradicted",
                &message,
            )
            .await?;
            let reason = AssignReason::ReportContradicted;
            emitted.extend(Provisioning::assign(ctx, id, &mut record, reason).await?);
        }
        Assignments::insert(ctx.overlay, &id, &record)?;
        Ok(emitted)
    }

    async fn set_minimum_stake(ctx: &mut Context<'_, '_, R>, stake: &Amount) -> DispatchResult {
        ctx.ensure_privileged()?;
        MinimumStake::put(ctx.overlay, stake)?;
        Ok(events([Event::MinimumStakeSet { stake: *stake }]))
    }
}

impl Module for Provisioning {
    logos_framework::module_calls!(logos_types::provisioning);

    /// Liveness duties for every active environment (see the module docs); events in
    /// environment order.
    async fn on_block_end<R: StateReader>(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let eligible = Eligible::get(ctx.overlay).await?.len();
        let mut emitted = Vec::new();
        for environment in ActiveEnvironments::get(ctx.overlay).await? {
            emitted.extend(Self::keep_alive(ctx, environment, eligible).await?);
        }
        Ok(emitted)
    }

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        let text = |error: StateError| error.to_string();
        let eligible = Eligible::get_from(state).map_err(text)?;
        ensure_ascending(&eligible, "eligible provisioners")?;
        for account in &eligible {
            if Provisioners::get_from(state, account)
                .map_err(text)?
                .is_none()
            {
                return Err(format!("eligible provisioner {account} has no record"));
            }
        }
        let active = ActiveEnvironments::get_from(state).map_err(text)?;
        let mut assigned = Vec::new();
        for entry in Assignments::iter_from(state) {
            let (id, record) = entry.map_err(text)?;
            if record
                .assigned
                .is_some_and(|a| record.checkers.contains(&a))
            {
                return Err(format!("environment {id}: the assignee checks itself"));
            }
            for (index, (voter, _)) in record.votes.iter().enumerate() {
                let repeated = record.votes[..index].iter().any(|(v, _)| v == voter);
                if repeated || !record.checkers.contains(voter) {
                    return Err(format!(
                        "environment {id}: vote from a non-checker or twice"
                    ));
                }
            }
            assigned.push(id);
        }
        if assigned != *active {
            return Err(format!(
                "assignments {assigned:?} differ from active environments {active:?}"
            ));
        }
        Ok(())
    }
}
