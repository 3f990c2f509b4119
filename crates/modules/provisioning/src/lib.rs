//! `provisioning` (module index 4): staked provisioners, who realizes each environment and who
//! cross-checks it (seed `002`: provisioners realize desired state off chain, cross-check each
//! other and are slashed for lying).
//!
//! Owns [`Provisioners`], [`Eligible`], [`Assignments`], the minimum stake, the
//! [`Parameters`] and [`Departures`] (who left lately, still counted by a draw whose
//! randomness was known before they left); types, calls and storage are declared in
//! [`logos_types::provisioning`].
//! Stakes are reserved and slashed through `balances`, provider bonds through `dvci`;
//! environments are read and their status written through `operations`.
//!
//! # Protocol
//! 1. **Assignment.** A new environment gets one provisioner ([`Provisioning::assign_new`]),
//!    drawn by stake ([`draw`]) from the eligible provisioners other than the provider's owner.
//!    Fewer than [`Parameters::min_provisioners`] of them and the lease is refused
//!    ([`Error::TooFewProvisioners`]): nobody could check it.
//! 2. **Report.** Only the assignee reports, and only about the current generation. A
//!    `Running` report opens a cross-check **round bound to that report**: while it is open no
//!    other report on the same generation is accepted ([`Error::RoundOpen`]), so a reporter
//!    cannot restart a round that is going against it (nor re-roll its checkers). A `Running`
//!    report may carry the provider's agent's [`Attestation`] (its signature over the
//!    generation, endpoint and port mappings for this assignee until an expiry, checked against
//!    the provider's `agent_key`).
//! 3. **Draw.** The round's checkers are drawn at the end of block `draw_at = inclusion +
//!    draw_delay_blocks` with that block's randomness, fixed only after the report was
//!    included: [`Parameters::checkers`] of the eligible provisioners other than the assignee
//!    and the provider's owner, each pick weighted by stake ([`draw`]). Fewer candidates and
//!    the draw waits.
//! 4. **Cross-check.** Each checker observes and sends a [`Verdict`]. A round ends when a
//!    quorum (a majority of `checkers`) gives one [`Outcome`]:
//!    - `Confirmed`: the environment is `Verified`; the assignee and the confirming checkers
//!      are its [`Verifiers`], paid by `market` for every verified block;
//!    - `AssigneeFault` (contradicted): [`SLASH_PERCENT`] of the assignee's stake goes to the
//!      community pool, the environment is reassigned; but if the report carried the agent's
//!      attestation, the provider contradicted its own signed word: a provider fault instead;
//!    - `ProviderFault` (agent unreachable, endpoint dead, or a signed observation of another
//!      image or other limits than the spec): `provider_slash_percent` of the provider's bond
//!      goes to the community pool and `dvci` counts a fault against it.
//!
//!    - `Stopped` (the agent says the reported generation's workload stopped): on an attested
//!      report nobody is blamed (a workload may stop, a tenant may stop it); on an unattested
//!      one it contradicts the assignee's word alone (`AssigneeFault`).
//!
//!    A fault ends the verifiers' pay for the environment until a round confirms it again; after
//!    a provider fault or a stopped workload, a new `Running` report on the same generation
//!    waits for the recheck ([`Error::RecheckPending`]), so rounds cannot be re-rolled.
//!
//!    Every checker whose verdict went against the quorum loses `checker_slash_percent` of its
//!    stake. Every slash is an event carrying the quorum's verdicts (the evidence).
//! 5. **Liveness** (end of every block): an assignee that has not reported on the current
//!    generation [`REPORT_TIMEOUT_BLOCKS`] after it was assigned or the generation changed, or
//!    whose last report says the workload is not running for as long, is replaced; a round undecided [`CHECK_TIMEOUT_BLOCKS`] after its draw expires: checkers
//!    that did not answer lose `checker_slash_percent` of their stake and a new round (new
//!    draw) checks the same report; so does a round whose verdicts split with no quorum. A
//!    confirmed report is rechecked by a new round every [`RECHECK_INTERVAL_BLOCKS`], a
//!    provider fault every [`CHECK_TIMEOUT_BLOCKS`].
//!
//! A provisioner whose stake falls below the minimum stops being eligible for new tasks; one
//! that is assigned, or is a checker of an undecided round, cannot leave.
//!
//! # What the draw still lets one party steer
//! The randomness of block `h` is the hash of its seed, the epoch committee's threshold
//! signature of height `h − 1` (module `beacon`), unknown until a block at `h − 1` exists and
//! unique, so no proposer can grind it. A reporter cannot pick its checkers: the randomness
//! that draws them is known only once a block `draw_delay_blocks − 1` blocks after the report's
//! exists, and a report cannot be withdrawn or replaced while its round is open. In an epoch
//! without a group key (epoch 0, a failed DKG) the randomness of `h` is the digest of block
//! `h − 1`: a proposer of that block who colludes with the reporter can try `k` variants of its
//! block (transaction order, inclusion) and keep the one whose draw suits it; if a quorum of
//! Sybil checkers is drawn with probability `p` per draw, that proposer gets it with probability
//! at most `1 − (1 − p)^k ≤ k·p`, once per round and only in the views it leads.
//!
//! # Invariant ([`Provisioning::try_state`])
//! The eligible list is ascending and each entry has a record; exactly the active environments
//! have an assignment; checkers never include the assignee; votes come from distinct checkers;
//! a round waiting for its draw has no checkers; only a `Running` report has an outcome.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use logos_balances::Balances;
use logos_dvci::Dvci;
use logos_framework::{
    ensure_ascending, events, Context, DispatchResult, MapExt, Module, State, StateReader,
    TryStateResult, ValueExt,
};
use logos_operations::Operations;
use logos_primitives::{hash, Address, Amount};
use logos_types::{
    balances::community_account,
    corruption,
    dvci::{Provider, ProviderId, Providers},
    operations::{
        ActiveEnvironments, ConditionStatus, Desired, EnvironmentId, Environments, Phase,
    },
    provisioning::{
        attestation_message, AssignReason, Assignment, Assignments, Attested, CallHandler,
        Departed, Departures, Eligible, Error, Event, MinimumStake, Outcome, Parameters, Params,
        Provisioner, Provisioners, Report, Verdict, Verifiers, ATTESTATION_EXPIRY_MAX_BLOCKS,
        ATTESTATION_NAMESPACE, CHECK_TIMEOUT_BLOCKS, DEPARTURES_KEPT_BLOCKS,
        RECHECK_INTERVAL_BLOCKS, REPORT_TIMEOUT_BLOCKS, SLASH_PERCENT,
    },
    DispatchError, Event as RuntimeEvent, StateError,
};

/// The `provisioning` module.
pub struct Provisioning;

/// Up to `count` distinct accounts of `candidates` (account, stake), each pick weighted by
/// stake among those not yet picked: pick `i` takes the first 16 bytes of
/// `SHA-256(randomness ‖ environment ‖ round ‖ i)` as a number `r`, and walks the remaining
/// candidates in the given order until their cumulative stake exceeds `r mod total`. A
/// candidate with no stake is never picked. Integer arithmetic only; the modulo bias is below
/// `total / 2^128`.
pub fn draw(
    candidates: &[(Address, Amount)],
    randomness: &[u8],
    environment: EnvironmentId,
    round: u64,
    count: usize,
) -> Vec<Address> {
    let mut remaining: Vec<(Address, u128)> = candidates
        .iter()
        .filter(|(_, stake)| stake.0 > 0)
        .map(|(account, stake)| (*account, stake.0))
        .collect();
    let mut picked = Vec::with_capacity(count.min(remaining.len()));
    for pick in 0..count as u64 {
        let total = remaining
            .iter()
            .fold(0u128, |sum, (_, stake)| sum.saturating_add(*stake));
        if total == 0 {
            break;
        }
        let digest = hash(&[
            randomness,
            &environment.get().to_be_bytes(),
            &round.to_be_bytes(),
            &pick.to_be_bytes(),
        ]);
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest.as_ref()[..16]);
        let mut target = u128::from_be_bytes(first).checked_rem(total).unwrap_or(0);
        let position = remaining
            .iter()
            .position(|(_, stake)| match target.checked_sub(*stake) {
                Some(rest) => {
                    target = rest;
                    false
                }
                None => true,
            })
            .unwrap_or(remaining.len().saturating_sub(1));
        picked.push(remaining.remove(position).0);
    }
    picked
}

impl Provisioning {
    /// Assigns a new environment (when it is created, through the runtime); refuses it when
    /// fewer than [`Parameters::min_provisioners`] eligible provisioners other than the
    /// provider's owner could assign and check it.
    pub async fn assign_new<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
    ) -> DispatchResult {
        let params = Params::get(ctx.overlay).await?;
        let owner = Self::provider_owner(ctx, environment).await?;
        let eligible = Self::candidates(ctx, &owner).await?;
        if eligible.len() < usize::from(params.min_provisioners) {
            return Err(Error::TooFewProvisioners {
                eligible: eligible.len() as u64,
                needed: u64::from(params.min_provisioners),
            }
            .into());
        }
        let mut record = Assignment::default();
        let reason = AssignReason::Created;
        let emitted = Self::assign_among(ctx, environment, &mut record, reason, eligible);
        Assignments::insert(ctx.overlay, &environment, &record)?;
        Ok(emitted)
    }

    /// Sum of all provisioner stakes in a full state (reserved through `balances`).
    pub fn total_stake(state: &State) -> Result<Amount, String> {
        Provisioners::sum_from(state, |record| record.stake)
    }

    /// The owner of the provider `environment` is placed on (excluded from realizing and
    /// checking it), as a list: empty once the provider deregistered, which it may do while an
    /// environment it no longer hosts is still being destroyed (its allocation is freed at the
    /// lease's close, the record goes at the destruction's confirmation).
    async fn provider_owner<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        environment: EnvironmentId,
    ) -> Result<Vec<Address>, DispatchError> {
        let provider = Environments::require(ctx.overlay, &environment)
            .await?
            .provider;
        let record = Providers::get(ctx.overlay, &provider).await?;
        Ok(record.map(|record| record.owner).into_iter().collect())
    }

    /// The eligible provisioners other than `excluded`, with their stakes, ascending.
    pub async fn candidates<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        excluded: &[Address],
    ) -> Result<Vec<(Address, Amount)>, DispatchError> {
        Self::candidates_registered_by(ctx, excluded, u64::MAX).await
    }

    /// The candidates as they stood at height `registered_by` (a draw whose randomness is
    /// known before its block, once its parent exists, must not let anyone steer it once it is
    /// known): [`Self::candidates`] registered by then, and those that left since (from
    /// [`Departures`], at most [`DEPARTURES_KEPT_BLOCKS`] blocks back), ascending.
    pub async fn candidates_registered_by<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        excluded: &[Address],
        registered_by: u64,
    ) -> Result<Vec<(Address, Amount)>, DispatchError> {
        let mut candidates = Vec::new();
        for account in Eligible::get(ctx.overlay).await? {
            if !excluded.contains(&account) {
                let record = Provisioners::require(ctx.overlay, &account).await?;
                // Nothing at stake, nothing to lose: never drawn (see `draw`).
                if record.stake > Amount::ZERO && record.registered_at <= registered_by {
                    candidates.push((account, record.stake));
                }
            }
        }
        if registered_by != u64::MAX {
            for departed in Departures::get(ctx.overlay).await? {
                // Left since, but had joined by then: joining and leaving at once counts
                // no more than joining.
                let counted = departed.left_at > registered_by
                    && departed.registered_at <= registered_by
                    && departed.stake > Amount::ZERO
                    && !excluded.contains(&departed.account)
                    && !candidates.iter().any(|(a, _)| *a == departed.account);
                if counted {
                    candidates.push((departed.account, departed.stake));
                }
            }
            candidates.sort_by_key(|(account, _)| *account);
        }
        Ok(candidates)
    }

    /// Gives `record` a new assignee, drawn by stake (not the provider's owner nor the current
    /// assignee, and not one replaced before while others are eligible), and clears its report
    /// and round.
    async fn assign<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
        reason: AssignReason,
    ) -> DispatchResult {
        let owner = Self::provider_owner(ctx, environment).await?;
        let eligible = Self::candidates(ctx, &owner).await?;
        Ok(Self::assign_among(
            ctx,
            environment,
            record,
            reason,
            eligible,
        ))
    }

    /// [`Self::assign`] with the eligible provisioners (stake > 0, not the provider's owner)
    /// already read.
    fn assign_among<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
        reason: AssignReason,
        eligible: Vec<(Address, Amount)>,
    ) -> Vec<RuntimeEvent> {
        if let Some(previous) = record.assigned {
            if !record.replaced.contains(&previous) {
                // A full list forgets nobody important: every provisioner fits in it.
                let _ = record.replaced.try_push(previous);
            }
        }
        let fresh: Vec<_> = eligible
            .iter()
            .filter(|(account, _)| !record.replaced.contains(account))
            .copied()
            .collect();
        let others: Vec<_> = eligible
            .iter()
            .filter(|(account, _)| Some(*account) != record.assigned)
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
        Self::clear_round(record);
        events(chosen.map(|provisioner| Event::TaskAssigned {
            environment,
            provisioner,
            reason,
        }))
    }

    /// Forgets the current round's draw, checkers, votes and outcome.
    fn clear_round(record: &mut Assignment) {
        record.draw_at = None;
        record.checkers.clear();
        record.votes.clear();
        record.outcome = None;
    }

    /// Opens a new round on `record`'s report; its checkers are drawn at `draw_at`.
    fn open_round<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
        params: &Parameters,
    ) -> Vec<RuntimeEvent> {
        Self::clear_round(record);
        record.round = record.round.saturating_add(1);
        record.round_opened_at = ctx.height();
        let draw_at = ctx.height().saturating_add(params.draw_delay_blocks);
        record.draw_at = Some(draw_at);
        events([Event::RoundOpened {
            environment,
            round: record.round,
            draw_at,
        }])
    }

    /// Draws the round's checkers with this block's randomness, if enough are eligible (else
    /// the draw waits: nothing changes).
    async fn draw_checkers<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
        params: &Parameters,
    ) -> DispatchResult {
        let assignee = record
            .assigned
            .ok_or_else(|| corruption("a round without an assignee"))?;
        let mut excluded = Self::provider_owner(ctx, environment).await?;
        excluded.push(assignee);
        let candidates = Self::candidates(ctx, &excluded).await?;
        let count = usize::from(params.checkers);
        if candidates.len() < count {
            return Ok(Vec::new());
        }
        let randomness = ctx.block.randomness;
        let checkers = draw(
            &candidates,
            randomness.as_ref(),
            environment,
            record.round,
            count,
        );
        record.checkers = checkers
            .clone()
            .try_into()
            .map_err(|_| corruption("more checkers drawn than a round holds"))?;
        record.draw_at = None;
        record.round_opened_at = ctx.height();
        Ok(events([Event::CrossChecksDrawn {
            environment,
            round: record.round,
            checkers,
        }]))
    }

    /// Takes `percent` of `account`'s stake (at least one unit while any is left) to the
    /// community pool; below the minimum it stops being eligible. Returns the amount.
    async fn slash_stake<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        account: Address,
        percent: u8,
    ) -> Result<Amount, DispatchError> {
        let mut record = Provisioners::require(ctx.overlay, &account).await?;
        let stake = record.stake;
        let amount = stake
            .slash_share(percent)
            .ok_or_else(|| corruption("slash above 100 %"))?;
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
        Ok(amount)
    }

    /// Slashes each of `checkers` for `verdict` (none: silence) against `outcome` (none: a
    /// timeout).
    async fn slash_checkers<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
        round: u64,
        checkers: &[(Address, Option<Verdict>)],
        outcome: Option<Outcome>,
        params: &Parameters,
    ) -> DispatchResult {
        let mut emitted = Vec::new();
        for (checker, verdict) in checkers {
            let amount = Self::slash_stake(ctx, *checker, params.checker_slash_percent).await?;
            emitted.push(
                Event::CheckerSlashed {
                    checker: *checker,
                    environment,
                    round,
                    verdict: *verdict,
                    outcome,
                    amount,
                }
                .into(),
            );
        }
        Ok(emitted)
    }

    /// Ends the round if its votes decide it (a quorum for one outcome) or can no longer
    /// decide it (everyone voted, no quorum: a new round opens).
    async fn tally<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
        params: &Parameters,
    ) -> DispatchResult {
        let quorum = record.quorum();
        let outcomes = [
            Outcome::Confirmed,
            Outcome::AssigneeFault,
            Outcome::ProviderFault,
            Outcome::Stopped,
        ];
        if let Some(outcome) = outcomes
            .into_iter()
            .find(|outcome| record.tally(*outcome) >= quorum)
        {
            return Self::conclude(ctx, environment, record, outcome, params).await;
        }
        if record.votes.len() < record.checkers.len() {
            return Ok(Vec::new());
        }
        let mut emitted = events([Event::RoundExpired {
            environment,
            round: record.round,
            silent: Vec::new(),
        }]);
        emitted.extend(Self::open_round(ctx, environment, record, params));
        Ok(emitted)
    }

    /// Applies a quorum's `outcome` (see the module docs).
    async fn conclude<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
        outcome: Outcome,
        params: &Parameters,
    ) -> DispatchResult {
        let round = record.round;
        let (quorum, against): (Vec<_>, Vec<_>) = record
            .votes
            .iter()
            .copied()
            .partition(|(_, verdict)| verdict.outcome() == outcome);
        let against: Vec<_> = against
            .into_iter()
            .map(|(checker, verdict)| (checker, Some(verdict)))
            .collect();
        let mut emitted =
            Self::slash_checkers(ctx, environment, round, &against, Some(outcome), params).await?;
        let attested = record
            .report
            .as_ref()
            .is_some_and(|report| report.attestation.is_some());
        // A report the agent itself attested and then denied: the provider broke its own
        // word. A stopped workload the agent attested running: nobody lied. Unattested, a
        // stopped workload contradicts the assignee's word alone.
        let blamed = match (outcome, attested) {
            (Outcome::AssigneeFault, true) => Outcome::ProviderFault,
            (Outcome::Stopped, false) => Outcome::AssigneeFault,
            (other, _) => other,
        };
        record.outcome = Some(blamed);
        if matches!(blamed, Outcome::ProviderFault | Outcome::Stopped) {
            // Whatever is reported meanwhile, the next round on this generation waits.
            let generation = record.report.as_ref().map_or(0, |report| report.generation);
            let until = ctx.height().saturating_add(CHECK_TIMEOUT_BLOCKS);
            record.quiet_until = Some((generation, until));
        }
        let evidence = quorum.clone();
        let message = format!("{} of {} cross-checks", quorum.len(), record.checkers.len());
        if blamed != Outcome::Confirmed {
            // Nobody is paid for what a quorum found wrong.
            record.verifiers = Verifiers::default();
        }
        match blamed {
            Outcome::Confirmed => {
                Operations::set_verified(
                    ctx,
                    environment,
                    ConditionStatus::True,
                    "QuorumConfirmed",
                    &message,
                )
                .await?;
                record.verifiers = Verifiers {
                    round,
                    assignee: record.assigned,
                    checkers: quorum
                        .iter()
                        .map(|(checker, _)| *checker)
                        .collect::<Vec<_>>()
                        .try_into()
                        .map_err(|_| corruption("more confirmations than checkers"))?,
                };
                emitted.push(Event::EnvironmentVerified { environment, round }.into());
            }
            Outcome::AssigneeFault => {
                let liar = record
                    .assigned
                    .ok_or_else(|| corruption("a round without an assignee"))?;
                let amount = Self::slash_stake(ctx, liar, SLASH_PERCENT).await?;
                emitted.push(
                    Event::ProvisionerSlashed {
                        provisioner: liar,
                        environment,
                        round,
                        evidence,
                        amount,
                    }
                    .into(),
                );
                let why = format!("{message} contradicted the report");
                Operations::set_verified(
                    ctx,
                    environment,
                    ConditionStatus::False,
                    "ReportContradicted",
                    &why,
                )
                .await?;
                let reason = AssignReason::ReportContradicted;
                emitted.extend(Self::assign(ctx, environment, record, reason).await?);
            }
            Outcome::Stopped => {
                let why = format!("{message} found the attested workload stopped");
                Operations::set_verified(
                    ctx,
                    environment,
                    ConditionStatus::False,
                    "WorkloadStopped",
                    &why,
                )
                .await?;
            }
            Outcome::ProviderFault => {
                let provider = Environments::require(ctx.overlay, &environment)
                    .await?
                    .provider;
                let percent = params.provider_slash_percent;
                let amount =
                    Dvci::slash_bond(ctx.overlay, provider, percent, &community_account()).await?;
                emitted.push(
                    Event::ProviderSlashed {
                        provider,
                        environment,
                        round,
                        evidence,
                        amount,
                    }
                    .into(),
                );
                let why = match outcome {
                    Outcome::AssigneeFault => {
                        format!("{message} contradicted what the provider's agent attested")
                    }
                    _ => format!(
                        "{message} found the agent unreachable, the endpoint dead or another spec"
                    ),
                };
                Operations::set_verified(
                    ctx,
                    environment,
                    ConditionStatus::False,
                    "ProviderFault",
                    &why,
                )
                .await?;
            }
        }
        Ok(emitted)
    }

    /// Ends a round undecided after [`CHECK_TIMEOUT_BLOCKS`]: slashes its silent checkers and
    /// opens a new one on the same report.
    async fn expire<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
        params: &Parameters,
    ) -> DispatchResult {
        let round = record.round;
        let silent: Vec<_> = record
            .checkers
            .iter()
            .filter(|checker| !record.voted(checker))
            .map(|checker| (*checker, None))
            .collect();
        let mut emitted =
            Self::slash_checkers(ctx, environment, round, &silent, None, params).await?;
        emitted.extend(events([Event::RoundExpired {
            environment,
            round,
            silent: silent.iter().map(|(checker, _)| *checker).collect(),
        }]));
        emitted.extend(Self::open_round(ctx, environment, record, params));
        Ok(emitted)
    }

    /// The round duties of an environment whose current report is `Running`.
    async fn keep_round<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
        record: &mut Assignment,
        params: &Parameters,
    ) -> DispatchResult {
        let height = ctx.height();
        let age = height.saturating_sub(record.round_opened_at);
        match (record.draw_at, record.outcome) {
            (Some(draw_at), _) if height >= draw_at => {
                Self::draw_checkers(ctx, environment, record, params).await
            }
            (Some(_), _) => Ok(Vec::new()),
            (None, None) if age > CHECK_TIMEOUT_BLOCKS => {
                Self::expire(ctx, environment, record, params).await
            }
            (None, Some(Outcome::Confirmed)) if age > RECHECK_INTERVAL_BLOCKS => {
                Ok(Self::open_round(ctx, environment, record, params))
            }
            (None, Some(Outcome::ProviderFault | Outcome::Stopped))
                if age > CHECK_TIMEOUT_BLOCKS =>
            {
                Ok(Self::open_round(ctx, environment, record, params))
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The liveness duties of one active environment (see the module docs).
    async fn keep_alive<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: EnvironmentId,
        eligible: usize,
        params: &Parameters,
    ) -> DispatchResult {
        let height = ctx.height();
        let mut record = Assignments::require(ctx.overlay, &environment).await?;
        let before = record.clone();
        let current = Environments::require(ctx.overlay, &environment).await?;
        let reported = record
            .report
            .as_ref()
            .filter(|report| report.generation == current.generation)
            .map(|report| report.phase);
        let emitted = match (record.assigned, reported) {
            (None, _) if eligible > 0 => {
                let reason = AssignReason::ProvisionerAvailable;
                Self::assign(ctx, environment, &mut record, reason).await?
            }
            (Some(_), None) => {
                let since = record.assigned_at.max(current.generation_height);
                if height.saturating_sub(since) > REPORT_TIMEOUT_BLOCKS {
                    let reason = AssignReason::ReportMissing;
                    Self::assign(ctx, environment, &mut record, reason).await?
                } else {
                    Vec::new()
                }
            }
            (Some(_), Some(Phase::Running)) => {
                Self::keep_round(ctx, environment, &mut record, params).await?
            }
            (Some(_), Some(Phase::Pending | Phase::Failed | Phase::Destroyed)) => {
                let since = record
                    .stuck_since
                    .unwrap_or(height)
                    .max(current.generation_height);
                if height.saturating_sub(since) > REPORT_TIMEOUT_BLOCKS {
                    let reason = AssignReason::NotRunning;
                    Self::assign(ctx, environment, &mut record, reason).await?
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        };
        if record != before {
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

/// An attestation, when a report carries one, is the provider's agent's signature (its
/// `agent_key`) over the report's generation, endpoint and port mappings for the sender (the
/// assignee) and an expiry this block has not passed (and not too far ahead); only a `Running`
/// report has one.
fn check_attestation<R: StateReader>(
    ctx: &Context<'_, '_, R>,
    (environment, provider_id): (EnvironmentId, ProviderId),
    report: &Report,
    provider: &Provider,
) -> Result<(), DispatchError> {
    let Some(attestation) = &report.attestation else {
        return Ok(());
    };
    let (Some(key), Phase::Running) = (provider.agent_key, report.phase) else {
        return Err(Error::BadAttestation.into());
    };
    let height = ctx.height();
    let horizon = height.saturating_add(ATTESTATION_EXPIRY_MAX_BLOCKS);
    if attestation.expires_at < height || attestation.expires_at > horizon {
        return Err(Error::BadAttestation.into());
    }
    let attested = Attested {
        provider: provider_id,
        environment,
        generation: report.generation,
        endpoint: report.endpoint.as_str(),
        ports: &report.ports,
        assignee: ctx.sender()?,
        expires_at: attestation.expires_at,
    };
    let message = attestation_message(&ctx.block.chain_id, &attested, attestation.nonce);
    if !key.verifies(ATTESTATION_NAMESPACE, &message, &attestation.signature) {
        return Err(Error::BadAttestation.into());
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
            let task = Assignments::require(ctx.overlay, &environment).await?;
            let checking = task.checkers.contains(&account) && !task.decided();
            if task.assigned == Some(account) || checking {
                return Err(Error::StillAssigned(environment).into());
            }
        }
        // Remembered for a few blocks: a draw whose randomness was known before it left still
        // counts it.
        let height = ctx.height();
        let mut departures = Departures::get(ctx.overlay).await?;
        departures.retain(|d| d.left_at.saturating_add(DEPARTURES_KEPT_BLOCKS) >= height);
        let departed = Departed {
            account,
            stake: record.stake,
            registered_at: record.registered_at,
            left_at: height,
        };
        departures
            .try_push(departed)
            .map_err(|_| Error::TooManyDepartures)?;
        Departures::put(ctx.overlay, &departures)?;
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
        if record
            .report
            .as_ref()
            .is_some_and(|last| last.same_as(report))
        {
            return Err(Error::UnchangedReport.into());
        }
        let same_generation = record
            .report
            .as_ref()
            .is_some_and(|last| last.generation == report.generation);
        if same_generation && record.round_open() {
            return Err(Error::RoundOpen(record.round).into());
        }
        let quiet = record.quiet_until.filter(|(generation, until)| {
            *generation == report.generation && ctx.height() <= *until
        });
        if quiet.is_some() && report.phase == Phase::Running {
            return Err(Error::RecheckPending(record.round).into());
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
        check_attestation(ctx, (id, current.provider), report, &provider)?;
        let mut emitted = Operations::record_report(ctx, id, report).await?;
        record.stuck_since = match (report.phase, record.stuck_since) {
            (Phase::Running, _) => None,
            (_, Some(since)) if same_generation => Some(since),
            _ => Some(ctx.height()),
        };
        record.report = Some(report.clone());
        Provisioning::clear_round(&mut record);
        if report.phase == Phase::Destroyed && current.desired == Desired::Destroyed {
            Assignments::remove(ctx.overlay, &id)?;
            return Ok(emitted);
        }
        if report.phase == Phase::Running {
            let params = Params::get(ctx.overlay).await?;
            emitted.extend(Provisioning::open_round(ctx, id, &mut record, &params));
        }
        Assignments::insert(ctx.overlay, &id, &record)?;
        Ok(emitted)
    }

    async fn cross_check(
        ctx: &mut Context<'_, '_, R>,
        environment: &EnvironmentId,
        round: &u64,
        verdict: &Verdict,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let (id, round, verdict) = (*environment, *round, *verdict);
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
        let current = Environments::require(ctx.overlay, &id).await?;
        let reported = record.report.as_ref().map_or(0, |report| report.generation);
        if reported != current.generation {
            // The tenant changed the environment: the round's report is about the past.
            return Err(Error::WrongGeneration {
                reported,
                current: current.generation,
            }
            .into());
        }
        record
            .votes
            .try_push((checker, verdict))
            .map_err(|_| corruption("more votes than checkers"))?;
        let mut emitted = events([Event::CrossChecked {
            environment: id,
            round,
            checker,
            verdict,
        }]);
        let params = Params::get(ctx.overlay).await?;
        emitted.extend(Provisioning::tally(ctx, id, &mut record, &params).await?);
        Assignments::insert(ctx.overlay, &id, &record)?;
        Ok(emitted)
    }

    async fn set_minimum_stake(ctx: &mut Context<'_, '_, R>, stake: &Amount) -> DispatchResult {
        ctx.ensure_privileged()?;
        MinimumStake::put(ctx.overlay, stake)?;
        Ok(events([Event::MinimumStakeSet { stake: *stake }]))
    }

    async fn set_parameters(
        ctx: &mut Context<'_, '_, R>,
        parameters: &Parameters,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        parameters.check()?;
        Params::put(ctx.overlay, parameters)?;
        Ok(events([Event::ParametersSet {
            parameters: *parameters,
        }]))
    }
}

impl Module for Provisioning {
    logos_framework::module_calls!(logos_types::provisioning);

    /// Liveness duties for every active environment (see the module docs); events in
    /// environment order.
    async fn on_block_end<R: StateReader>(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let eligible = Eligible::get(ctx.overlay).await?.len();
        let params = Params::get(ctx.overlay).await?;
        let mut emitted = Vec::new();
        for environment in ActiveEnvironments::get(ctx.overlay).await? {
            emitted.extend(Self::keep_alive(ctx, environment, eligible, &params).await?);
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
            if record.draw_at.is_some() && !record.checkers.is_empty() {
                return Err(format!("environment {id}: checkers drawn before the draw"));
            }
            let running = record
                .report
                .as_ref()
                .is_some_and(|report| report.phase == Phase::Running);
            if record.outcome.is_some() && !running {
                return Err(format!("environment {id}: an outcome without a round"));
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
