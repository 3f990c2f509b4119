//! `provisioning` (module index 4): staked provisioners, who realizes each environment and who
//! cross-checks it (seed `002`: provisioners realize desired state off chain, cross-check each
//! other and are slashed for lying).
//!
//! # Storage (module index 4)
//! | item | key | value |
//! |---|---|---|
//! | 0 `Provisioner` | account (20 bytes) | [`Provisioner`] |
//! | 1 `Provisioners` | (none) | ascending accounts eligible for tasks, at most [`PROVISIONERS_MAX`] |
//! | 2 `Assignment` | environment id (u64) | [`Assignment`] |
//! | 3 `MinimumStake` | (none) | [`Amount`], default [`DEFAULT_MINIMUM_STAKE`] |
//!
//! # Protocol
//! 1. **Assignment.** A new environment gets one provisioner: the eligible account with the
//!    lowest `SHA-256(randomness ‖ environment ‖ round ‖ account)`, where `randomness` is the
//!    block's chain randomness (its parent's digest).
//! 2. **Report.** Only the assigned provisioner reports, and only about the current
//!    generation. A `Running` report opens a cross-check round: up to [`CHECKERS`] other
//!    eligible provisioners are drawn the same way (new draw every round: checkers rotate).
//! 3. **Cross-check.** Each drawn checker probes the reported endpoint and votes. With `c`
//!    checkers the quorum is `c / 2 + 1`. A quorum agreeing makes the environment `Verified`; a
//!    quorum disagreeing slashes [`SLASH_PERCENT`] of the assignee's stake to the community pool
//!    and reassigns the environment to another provisioner.
//! 4. **Liveness** (end of every block, [`on_block_end`]): an assignee that has not reported on
//!    the current generation [`REPORT_TIMEOUT_BLOCKS`] after it was assigned or the generation
//!    changed is replaced; an undecided round older than [`CHECK_TIMEOUT_BLOCKS`] is redrawn; a
//!    decided round is reopened with new checkers every [`RECHECK_INTERVAL_BLOCKS`].
//!
//! A provisioner whose stake falls below the minimum stops being eligible for new tasks.
//!
//! # Invariant ([`try_state`])
//! The eligible list is ascending and each entry has a record; exactly the active environments
//! have an assignment; checkers never include the assignee; votes come from distinct checkers.

#[cfg(test)]
pub(crate) mod tests;
mod types;

pub use types::*;

use crate::{
    modules::{balances, market, operations},
    storage::{
        decode_value, prefixed, read_list, read_value, state_list, Overlay, StateError,
        StateReader, StorageKey,
    },
    BlockContext, Origin,
};
use logos_primitives::{hash, Address, Amount};
use operations::{ConditionStatus, EnvironmentId, Phase};
use std::collections::BTreeMap;

/// Module index of `provisioning`.
pub const MODULE_INDEX: u8 = 4;
const ITEM_PROVISIONER: u8 = 0;
const ITEM_PROVISIONERS: u8 = 1;
const ITEM_ASSIGNMENT: u8 = 2;
const ITEM_MINIMUM_STAKE: u8 = 3;

/// Minimum stake unless changed, smallest unit.
pub const DEFAULT_MINIMUM_STAKE: Amount = Amount(1_000_000);
/// Share of the stake slashed for a contradicted report, percent.
pub const SLASH_PERCENT: u128 = 10;
/// Blocks an assignee has to report on a new generation before it is replaced.
pub const REPORT_TIMEOUT_BLOCKS: u64 = 900;
/// Blocks a round may stay undecided before new checkers are drawn.
pub const CHECK_TIMEOUT_BLOCKS: u64 = 600;
/// Blocks after which a decided round is reopened with new checkers.
pub const RECHECK_INTERVAL_BLOCKS: u64 = 3_000;

/// Storage key of a provisioner's record.
pub fn provisioner_key(account: &Address) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_PROVISIONER, account.as_bytes())
}

/// Storage key of the eligible provisioner list.
pub fn provisioners_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_PROVISIONERS, &[])
}

/// Storage key of an environment's assignment.
pub fn assignment_key(environment: EnvironmentId) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_ASSIGNMENT, &environment.to_be_bytes())
}

fn minimum_stake_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_MINIMUM_STAKE, &[])
}

/// The provisioners eligible for tasks, ascending.
pub async fn provisioners<R: StateReader>(
    overlay: &Overlay<'_, R>,
) -> Result<Vec<Address>, StateError> {
    read_list(overlay, &provisioners_key(), PROVISIONERS_MAX).await
}

/// Reads an environment's assignment.
pub async fn assignment<R: StateReader>(
    overlay: &Overlay<'_, R>,
    environment: EnvironmentId,
) -> Result<Option<Assignment>, StateError> {
    read_value(overlay, &assignment_key(environment)).await
}

async fn minimum_stake<R: StateReader>(overlay: &Overlay<'_, R>) -> Result<Amount, StateError> {
    Ok(read_value(overlay, &minimum_stake_key())
        .await?
        .unwrap_or(DEFAULT_MINIMUM_STAKE))
}

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
                &environment.to_be_bytes(),
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

fn wrap(event: Event) -> crate::Event {
    crate::Event::Provisioning(event)
}

/// Assigns a new environment (from `operations::create`).
pub async fn assign_new<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    context: &BlockContext,
    environment: EnvironmentId,
) -> Result<Vec<crate::Event>, StateError> {
    let mut record = Assignment::default();
    let events = assign(
        overlay,
        context,
        environment,
        &mut record,
        AssignReason::Created,
    )
    .await?;
    overlay.put_encoded(assignment_key(environment), &record);
    Ok(events)
}

/// Gives `record` a new assignee (not the current one, and not one replaced before while
/// others are eligible) and clears its report and round.
async fn assign<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    context: &BlockContext,
    environment: EnvironmentId,
    record: &mut Assignment,
    reason: AssignReason,
) -> Result<Vec<crate::Event>, StateError> {
    let eligible = provisioners(overlay).await?;
    if let Some(previous) = record.assigned {
        if !record.replaced.contains(&previous) {
            record.replaced.push(previous);
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
    let chosen = draw(
        &pool,
        context.randomness.as_ref(),
        environment,
        record.round,
        1,
    )
    .first()
    .copied();
    record.assigned = chosen;
    record.assigned_at = context.height;
    record.report = None;
    record.checkers.clear();
    record.votes.clear();
    Ok(chosen
        .map(|provisioner| {
            wrap(Event::TaskAssigned {
                environment,
                provisioner,
                reason,
            })
        })
        .into_iter()
        .collect())
}

/// Opens a new cross-check round on `record`'s report with freshly drawn checkers.
async fn open_round<R: StateReader>(
    overlay: &Overlay<'_, R>,
    context: &BlockContext,
    environment: EnvironmentId,
    record: &mut Assignment,
) -> Result<Vec<crate::Event>, StateError> {
    let others: Vec<_> = provisioners(overlay)
        .await?
        .into_iter()
        .filter(|account| Some(*account) != record.assigned)
        .collect();
    record.round += 1;
    record.round_opened_at = context.height;
    record.checkers = draw(
        &others,
        context.randomness.as_ref(),
        environment,
        record.round,
        CHECKERS,
    );
    record.votes.clear();
    if record.checkers.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![wrap(Event::CrossChecksDrawn {
        environment,
        round: record.round,
        checkers: record.checkers.clone(),
    })])
}

/// Runs `call` for `origin` in the block described by `context`.
pub async fn dispatch<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    context: &BlockContext,
    call: &Call,
) -> Result<Result<Vec<crate::Event>, Error>, StateError> {
    match call {
        Call::RegisterProvisioner { stake } => register(overlay, origin, context, *stake).await,
        Call::DeregisterProvisioner => deregister(overlay, origin).await,
        Call::Report {
            environment,
            report,
        } => record_report(overlay, origin, context, *environment, report).await,
        Call::CrossCheck {
            environment,
            round,
            agrees,
        } => cross_check(overlay, origin, context, *environment, *round, *agrees).await,
        Call::SetMinimumStake { stake } => {
            if !origin.privileged {
                return Ok(Err(Error::NotPrivileged));
            }
            overlay.put_encoded(minimum_stake_key(), stake);
            Ok(Ok(vec![wrap(Event::MinimumStakeSet { stake: *stake })]))
        }
    }
}

async fn register<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    context: &BlockContext,
    stake: Amount,
) -> Result<Result<Vec<crate::Event>, Error>, StateError> {
    let account = origin.sender;
    if read_value::<_, Provisioner>(overlay, &provisioner_key(&account))
        .await?
        .is_some()
    {
        return Ok(Err(Error::AlreadyRegistered));
    }
    let minimum = minimum_stake(overlay).await?;
    if stake < minimum {
        return Ok(Err(Error::StakeTooLow { minimum }));
    }
    let mut list = provisioners(overlay).await?;
    if list.len() >= PROVISIONERS_MAX {
        return Ok(Err(Error::TooManyProvisioners));
    }
    if let Err(error) = balances::reserve(overlay, &account, stake).await? {
        return Ok(Err(Error::StakeUnpaid(error.to_string())));
    }
    let record = Provisioner {
        stake,
        slashed: Amount::ZERO,
        registered_at: context.height,
    };
    overlay.put_encoded(provisioner_key(&account), &record);
    let position = list.binary_search(&account).expect_err("not registered");
    list.insert(position, account);
    overlay.put_encoded(provisioners_key(), &list);
    Ok(Ok(vec![wrap(Event::ProvisionerRegistered {
        provisioner: account,
        stake,
    })]))
}

async fn deregister<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
) -> Result<Result<Vec<crate::Event>, Error>, StateError> {
    let account = origin.sender;
    let Some(record) = read_value::<_, Provisioner>(overlay, &provisioner_key(&account)).await?
    else {
        return Ok(Err(Error::NotRegistered));
    };
    for environment in operations::active_environments(overlay).await? {
        let task = assignment(overlay, environment)
            .await?
            .expect("active environments are assigned");
        if task.assigned == Some(account) {
            return Ok(Err(Error::StillAssigned(environment)));
        }
    }
    balances::unreserve(overlay, &account, record.stake)
        .await?
        .expect("a provisioner's stake is reserved");
    overlay.put(provisioner_key(&account), None);
    let mut list = provisioners(overlay).await?;
    list.retain(|listed| *listed != account);
    overlay.put_encoded(provisioners_key(), &list);
    Ok(Ok(vec![wrap(Event::ProvisionerDeregistered {
        provisioner: account,
        refund: record.stake,
    })]))
}

async fn record_report<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    context: &BlockContext,
    environment: EnvironmentId,
    report: &Report,
) -> Result<Result<Vec<crate::Event>, Error>, StateError> {
    let Some(mut record) = assignment(overlay, environment).await? else {
        return Ok(Err(Error::UnknownEnvironment(environment)));
    };
    if record.assigned != Some(origin.sender) {
        return Ok(Err(Error::NotAssigned(environment)));
    }
    let current = operations::environment(overlay, environment)
        .await?
        .expect("assigned environments exist");
    if report.generation != current.generation {
        return Ok(Err(Error::WrongGeneration {
            reported: report.generation,
            current: current.generation,
        }));
    }
    if record.report.as_ref() == Some(report) {
        return Ok(Err(Error::UnchangedReport));
    }
    let mut events: Vec<_> =
        operations::record_report(overlay, environment, report, context.height)
            .await?
            .into_iter()
            .map(crate::Event::Operations)
            .collect();
    record.report = Some(report.clone());
    let finished =
        report.phase == Phase::Destroyed && current.desired == operations::Desired::Destroyed;
    if finished {
        overlay.put(assignment_key(environment), None);
        return Ok(Ok(events));
    }
    if report.phase == Phase::Running {
        events.extend(open_round(overlay, context, environment, &mut record).await?);
    } else {
        record.checkers.clear();
        record.votes.clear();
    }
    overlay.put_encoded(assignment_key(environment), &record);
    Ok(Ok(events))
}

async fn cross_check<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    context: &BlockContext,
    environment: EnvironmentId,
    round: u64,
    agrees: bool,
) -> Result<Result<Vec<crate::Event>, Error>, StateError> {
    let Some(mut record) = assignment(overlay, environment).await? else {
        return Ok(Err(Error::UnknownEnvironment(environment)));
    };
    let checker = origin.sender;
    if record.round != round || !record.checkers.contains(&checker) {
        return Ok(Err(Error::NotChecker(round)));
    }
    if record.decided() {
        return Ok(Err(Error::RoundDecided(round)));
    }
    if record.votes.iter().any(|(voter, _)| *voter == checker) {
        return Ok(Err(Error::AlreadyVoted));
    }
    record.votes.push((checker, agrees));
    let mut events = vec![wrap(Event::CrossChecked {
        environment,
        round,
        checker,
        agrees,
    })];
    let quorum = record.quorum();
    let (agreeing, disagreeing) = record.tally();
    let height = context.height;
    if agreeing >= quorum {
        let message = format!(
            "{agreeing} of {} cross-checks agreed",
            record.checkers.len()
        );
        operations::set_verified(
            overlay,
            environment,
            ConditionStatus::True,
            "QuorumAgreed",
            &message,
            height,
        )
        .await?;
        events.push(wrap(Event::EnvironmentVerified { environment, round }));
    } else if disagreeing >= quorum {
        let liar = record.assigned.expect("a round has an assignee");
        events.push(slash(overlay, liar, environment).await?);
        let message = format!(
            "{disagreeing} of {} cross-checks disagreed",
            record.checkers.len()
        );
        operations::set_verified(
            overlay,
            environment,
            ConditionStatus::False,
            "ReportContradicted",
            &message,
            height,
        )
        .await?;
        events.extend(
            assign(
                overlay,
                context,
                environment,
                &mut record,
                AssignReason::ReportContradicted,
            )
            .await?,
        );
    }
    overlay.put_encoded(assignment_key(environment), &record);
    Ok(Ok(events))
}

/// Takes [`SLASH_PERCENT`] of `account`'s stake to the community pool; below the minimum it
/// stops being eligible.
async fn slash<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    account: Address,
    environment: EnvironmentId,
) -> Result<crate::Event, StateError> {
    let key = provisioner_key(&account);
    let mut record: Provisioner = read_value(overlay, &key)
        .await?
        .expect("assignees are registered");
    let amount = Amount((record.stake.0 * SLASH_PERCENT / 100).max(record.stake.0.min(1)));
    balances::pay_reserved(overlay, &account, &market::community_account(), amount)
        .await?
        .expect("the stake is reserved");
    record.stake = Amount(record.stake.0 - amount.0);
    record.slashed = Amount(record.slashed.0 + amount.0);
    overlay.put_encoded(key, &record);
    if record.stake < minimum_stake(overlay).await? {
        let mut list = provisioners(overlay).await?;
        list.retain(|listed| *listed != account);
        overlay.put_encoded(provisioners_key(), &list);
    }
    Ok(wrap(Event::ProvisionerSlashed {
        provisioner: account,
        environment,
        amount,
    }))
}

/// End-of-block liveness duties (see the module docs). Returns the events in environment order.
pub async fn on_block_end<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    context: &BlockContext,
) -> Result<Vec<crate::Event>, StateError> {
    let height = context.height;
    let eligible = provisioners(overlay).await?.len();
    let mut events = Vec::new();
    for environment in operations::active_environments(overlay).await? {
        let mut record = assignment(overlay, environment)
            .await?
            .expect("active environments are assigned");
        let current = operations::environment(overlay, environment)
            .await?
            .expect("active environments exist");
        let before = events.len();
        let reported = record
            .report
            .as_ref()
            .filter(|report| report.generation == current.generation);
        match (record.assigned, reported) {
            (None, _) if eligible > 0 => {
                let reason = AssignReason::ProvisionerAvailable;
                events.extend(assign(overlay, context, environment, &mut record, reason).await?);
            }
            (None, _) => {}
            (Some(_), None) => {
                let since = record.assigned_at.max(current.generation_height);
                if height.saturating_sub(since) > REPORT_TIMEOUT_BLOCKS {
                    let reason = AssignReason::ReportMissing;
                    events
                        .extend(assign(overlay, context, environment, &mut record, reason).await?);
                }
            }
            (Some(_), Some(report)) if report.phase == Phase::Running => {
                let age = height.saturating_sub(record.round_opened_at);
                let stalled = !record.decided() && age > CHECK_TIMEOUT_BLOCKS;
                let unchecked = record.checkers.is_empty() && eligible > 1;
                let due = record.decided() && age > RECHECK_INTERVAL_BLOCKS;
                if stalled || unchecked || due {
                    events.extend(open_round(overlay, context, environment, &mut record).await?);
                    if record.checkers.is_empty() {
                        // Nobody else is eligible yet: try again next block without a new event.
                        record.round_opened_at = height;
                    }
                }
            }
            (Some(_), Some(_)) => {}
        }
        if events.len() > before || record.round_opened_at == height {
            overlay.put_encoded(assignment_key(environment), &record);
        }
    }
    Ok(events)
}

/// Sum of all provisioner stakes in a full state map (for the reserved-balance conservation
/// check in `market::try_state`).
pub fn total_stake(state: &BTreeMap<StorageKey, Vec<u8>>) -> Result<Amount, String> {
    let mut total = Amount::ZERO;
    for (key, value) in prefixed(state, MODULE_INDEX, ITEM_PROVISIONER) {
        let record: Provisioner = decode_value(key, value).map_err(|e| e.to_string())?;
        total = total.checked_add(record.stake).ok_or("stake overflow")?;
    }
    Ok(total)
}

/// The invariant over a full state map (see the module docs).
pub fn try_state(state: &BTreeMap<StorageKey, Vec<u8>>) -> Result<(), String> {
    let list: Vec<Address> = state_list(state, &provisioners_key(), PROVISIONERS_MAX)?;
    if list.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err("provisioner list not ascending".into());
    }
    if let Some(missing) = list
        .iter()
        .find(|account| !state.contains_key(&provisioner_key(account)))
    {
        return Err(format!("listed provisioner {missing} has no record"));
    }
    let active: Vec<EnvironmentId> = state_list(
        state,
        &operations::active_environments_key(),
        operations::ACTIVE_ENVIRONMENTS_MAX,
    )?;
    let mut assigned = Vec::new();
    for (key, value) in prefixed(state, MODULE_INDEX, ITEM_ASSIGNMENT) {
        let record: Assignment = decode_value(key, value).map_err(|e| e.to_string())?;
        let id = u64::from_be_bytes(key.as_bytes()[2..].try_into().map_err(|_| "bad key")?);
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
    if assigned != active {
        return Err(format!(
            "assignments {assigned:?} differ from active environments {active:?}"
        ));
    }
    Ok(())
}
