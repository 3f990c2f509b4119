//! `governance` (module index 8): the DAO. Proposals carrying one runtime call, votes weighed
//! by active stake (`staking`), enactment as the privileged origin with the treasury as sender,
//! and the bootstrap authority until it is removed.
//!
//! Owns the items of [`logos_types::governance`], which also states the protocol. The module
//! cannot run calls of other modules itself (it sits below the runtime): the runtime asks
//! [`Governance::due`] for the calls to enact at the start of a block, dispatches each with
//! [`Governance::enactment_origin`] in a layer of its own, and reports the result to
//! [`Governance::conclude`]. The executor asks [`Governance::is_authority`] whether a
//! transaction's sender is the privileged origin.
//!
//! # Invariants ([`Governance::try_state`])
//! [`Open`] lists exactly the proposals whose status is open, ascending; every proposal's id is
//! below [`NextProposalId`]; only proposals still voting hold a deposit; an approved one has an
//! enactment height and a closed one never a deposit.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use logos_balances::Balances;
use logos_framework::{
    events, Context, DispatchResult, MapExt, Module, Overlay, State, StateReader, TryStateResult,
    ValueExt, WriteSet,
};
use logos_primitives::{Address, Amount};
use logos_staking::Staking;
use logos_types::{
    balances::community_account,
    codec::{decode, encode, BoundedString, BoundedVec},
    corruption,
    governance::{
        Authority, CallHandler, Config, Error, Event, GovernanceConfig, NextProposalId, Open,
        OpenEntry, Proposal, ProposalId, ProposalStatus, Proposals, Tally, Vote, VoteKey, Votes,
        PROPOSAL_CALL_MAX_BYTES, PROPOSER_OPEN_MAX,
    },
    staking::TotalActive,
    Call, DispatchError, Genesis, Origin, StateError, StorageValue,
};

/// The `governance` module.
pub struct Governance;

impl Governance {
    /// True if `who` is the bootstrap authority (and so the privileged origin).
    pub async fn is_authority<R: StateReader>(
        overlay: &Overlay<'_, R>,
        who: &Address,
    ) -> Result<bool, StateError> {
        Ok(Authority::get(overlay).await? == Some(*who))
    }

    /// The origin enacted calls run with: privileged, the treasury as sender.
    pub fn enactment_origin() -> Origin {
        Origin {
            sender: community_account(),
            privileged: true,
        }
    }

    /// Sum of the deposits held by proposals in a full state (reserved through `balances`).
    pub fn total_deposits(state: &State) -> Result<Amount, String> {
        Proposals::sum_from(state, |proposal| proposal.deposit)
    }

    /// The approved proposals to enact at the start of the block at `height`, with their calls
    /// (ascending ids). A call that no longer decodes is concluded as failed right here.
    pub async fn due<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
    ) -> Result<(Vec<(ProposalId, Call)>, Vec<logos_types::Event>), DispatchError> {
        let mut due = Vec::new();
        let mut emitted = Vec::new();
        for id in due_now(ctx).await? {
            let proposal = Proposals::require(ctx.overlay, &id).await?;
            if proposal.status != ProposalStatus::Approved {
                continue;
            }
            match decode::<Call>(&proposal.call) {
                Ok(call) => due.push((id, call)),
                Err(error) => {
                    let failure = format!("the call no longer decodes: {error}");
                    emitted.extend(Self::conclude(ctx, id, Some(failure)).await?);
                }
            }
        }
        Ok((due, emitted))
    }

    /// Records the enactment of proposal `id` before its call runs (`Enacted`, out of
    /// [`Open`]: the call never runs twice, whatever happens next), or its failure to decode
    /// (`failure`).
    pub async fn conclude<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        id: ProposalId,
        failure: Option<String>,
    ) -> DispatchResult {
        let mut proposal = Proposals::require(ctx.overlay, &id).await?;
        if proposal.status.is_open() {
            close(ctx.overlay, id).await?;
        }
        proposal.status = match failure {
            None => ProposalStatus::Enacted,
            Some(_) => ProposalStatus::Failed,
        };
        proposal.failure = failure.as_deref().map(BoundedString::truncated);
        Proposals::insert(ctx.overlay, &id, &proposal)?;
        match failure {
            // The outcome is told once the call ran ([`Self::enacted`]).
            None => Ok(Vec::new()),
            Some(_) => Ok(Self::enacted(id, false)),
        }
    }

    /// The event of proposal `id`'s enactment: whether its call succeeded.
    pub fn enacted(id: ProposalId, success: bool) -> Vec<logos_types::Event> {
        events([Event::Enacted {
            proposal: id,
            success,
        }])
    }

    /// Marks a concluded proposal's call as failed, with why (its writes were dropped).
    pub async fn record_failure<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        id: ProposalId,
        failure: String,
    ) -> DispatchResult {
        let mut proposal = Proposals::require(ctx.overlay, &id).await?;
        proposal.status = ProposalStatus::Failed;
        proposal.failure = Some(BoundedString::truncated(&failure));
        Proposals::insert(ctx.overlay, &id, &proposal)?;
        Ok(Self::enacted(id, false))
    }
}

/// The open proposals due at or before this block (one small read; no proposal is read).
async fn due_now<R: StateReader>(
    ctx: &Context<'_, '_, R>,
) -> Result<Vec<ProposalId>, DispatchError> {
    let open = Open::get(ctx.overlay).await?;
    Ok(open
        .iter()
        .filter(|entry| entry.due_at <= ctx.height())
        .map(|entry| entry.proposal)
        .collect())
}

/// Removes `id` from [`Open`].
async fn close<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: ProposalId,
) -> Result<(), DispatchError> {
    let mut open = Open::get(overlay).await?;
    let before = open.len();
    open.retain(|entry| entry.proposal != id);
    if open.len() == before {
        return Err(corruption(format!("open proposal {id} is not listed")));
    }
    Open::put(overlay, &open)?;
    Ok(())
}

/// Makes `id` due again at `at` (its enactment).
async fn reschedule<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: ProposalId,
    at: u64,
) -> Result<(), DispatchError> {
    let mut open = Open::get(overlay).await?;
    let entry = open
        .iter_mut()
        .find(|entry| entry.proposal == id)
        .ok_or_else(|| corruption(format!("open proposal {id} is not listed")))?;
    entry.due_at = at;
    Open::put(overlay, &open)?;
    Ok(())
}

/// The status a closed vote gives under `config`.
fn verdict(tally: &Tally, config: &GovernanceConfig) -> ProposalStatus {
    let turnout = tally.ayes.0.saturating_add(tally.nays.0);
    let quorum = turnout.saturating_mul(100)
        >= tally
            .total_active
            .0
            .saturating_mul(u128::from(config.quorum_percent));
    if tally.total_active == Amount::ZERO || turnout == 0 || !quorum {
        return ProposalStatus::NoQuorum;
    }
    let approved = tally.ayes.0.saturating_mul(100)
        > turnout.saturating_mul(u128::from(config.threshold_percent));
    match approved {
        true => ProposalStatus::Approved,
        false => ProposalStatus::Rejected,
    }
}

/// True if more than two thirds of the turnout voted nay.
fn heavily_rejected(tally: &Tally) -> bool {
    let turnout = tally.ayes.0.saturating_add(tally.nays.0);
    tally.nays.0.saturating_mul(3) > turnout.saturating_mul(2)
}

/// Closes the vote on `id` at the current height, settles the deposit.
async fn tally<R: StateReader>(
    ctx: &mut Context<'_, '_, R>,
    id: ProposalId,
    mut proposal: Proposal,
) -> DispatchResult {
    let config = Config::get(ctx.overlay).await?;
    let mut tally = proposal.tally;
    tally.total_active = TotalActive::get(ctx.overlay).await?;
    let status = verdict(&tally, &config);
    let forfeit = status == ProposalStatus::NoQuorum
        || status == ProposalStatus::Rejected && heavily_rejected(&tally);
    match forfeit {
        true => {
            let treasury = community_account();
            Balances::pay_reserved(ctx.overlay, &proposal.proposer, &treasury, proposal.deposit)
                .await?
        }
        false => Balances::unreserve(ctx.overlay, &proposal.proposer, proposal.deposit).await?,
    }
    proposal.deposit = Amount::ZERO;
    proposal.tally = tally;
    proposal.status = status;
    if status == ProposalStatus::Approved {
        let at = proposal
            .voting_ends_at
            .saturating_add(config.enactment_delay_blocks)
            .max(ctx.height().saturating_add(1));
        proposal.enact_at = Some(at);
        reschedule(ctx.overlay, id, at).await?;
    } else {
        close(ctx.overlay, id).await?;
    }
    Proposals::insert(ctx.overlay, &id, &proposal)?;
    Ok(events([Event::Tallied {
        proposal: id,
        status,
        tally,
        enact_at: proposal.enact_at,
    }]))
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for Governance {
    async fn propose(
        ctx: &mut Context<'_, '_, R>,
        encoded: &BoundedVec<u8, PROPOSAL_CALL_MAX_BYTES>,
    ) -> DispatchResult {
        let proposer = ctx.sender()?;
        let call = decode::<Call>(encoded).map_err(|error| {
            Error::UndecodableCall(BoundedString::truncated(&error.to_string()))
        })?;
        if let Call::Governance(
            logos_types::governance::Call::Propose { .. }
            | logos_types::governance::Call::Vote { .. },
        ) = call
        {
            return Err(Error::NotGovernable.into());
        }
        let config = Config::get(ctx.overlay).await?;
        let mut open = Open::get(ctx.overlay).await?;
        if open.is_full() {
            return Err(Error::TooManyOpen.into());
        }
        let own = open
            .iter()
            .filter(|entry| entry.proposer == proposer)
            .count();
        if own >= PROPOSER_OPEN_MAX {
            return Err(Error::ProposerLimit.into());
        }
        let id = NextProposalId::get(ctx.overlay).await?;
        let next = id.next().ok_or(Error::IdsExhausted)?;
        Balances::reserve(ctx.overlay, &proposer, config.deposit).await?;
        let voting_ends_at = ctx.height().saturating_add(config.voting_period_blocks);
        let proposal = Proposal {
            proposer,
            call: encoded.clone(),
            deposit: config.deposit,
            submitted_at: ctx.height(),
            voting_ends_at,
            enact_at: None,
            status: ProposalStatus::Voting,
            tally: Tally::default(),
            failure: None,
        };
        // Ids only grow: appending keeps the list ascending.
        open.try_push(OpenEntry {
            proposal: id,
            due_at: voting_ends_at,
            proposer,
        })
        .map_err(|_| Error::TooManyOpen)?;
        Open::put(ctx.overlay, &open)?;
        NextProposalId::put(ctx.overlay, &next)?;
        Proposals::insert(ctx.overlay, &id, &proposal)?;
        Ok(events([Event::Proposed {
            proposal: id,
            proposer,
            call: call.index(),
            voting_ends_at,
        }]))
    }

    async fn vote(
        ctx: &mut Context<'_, '_, R>,
        proposal: &ProposalId,
        aye: &bool,
    ) -> DispatchResult {
        let voter = ctx.sender()?;
        let id = *proposal;
        let mut record = Proposals::get(ctx.overlay, &id)
            .await?
            .ok_or(Error::UnknownProposal(id))?;
        if record.status != ProposalStatus::Voting || ctx.height() > record.voting_ends_at {
            return Err(Error::VotingClosed(id).into());
        }
        let stake = Staking::active_stake(ctx.overlay, &voter).await?;
        if stake == Amount::ZERO {
            return Err(Error::NoStake.into());
        }
        let key = VoteKey {
            proposal: id,
            voter,
        };
        let tally = &mut record.tally;
        match Votes::get(ctx.overlay, &key).await? {
            Some(previous) => {
                let side = if previous.aye {
                    &mut tally.ayes
                } else {
                    &mut tally.nays
                };
                *side = side
                    .checked_sub(previous.stake)
                    .ok_or_else(|| corruption("tally below a vote it counts"))?;
            }
            None => tally.voters = tally.voters.saturating_add(1),
        }
        let side = if *aye {
            &mut tally.ayes
        } else {
            &mut tally.nays
        };
        *side = side
            .checked_add(stake)
            .ok_or_else(|| corruption("tally overflows"))?;
        Staking::lock(ctx.overlay, &voter, record.voting_ends_at).await?;
        Votes::insert(ctx.overlay, &key, &Vote { aye: *aye, stake })?;
        Proposals::insert(ctx.overlay, &id, &record)?;
        Ok(events([Event::Voted {
            proposal: id,
            voter,
            aye: *aye,
            stake,
        }]))
    }

    async fn remove_authority(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        ctx.ensure_privileged()?;
        let former = Authority::get(ctx.overlay)
            .await?
            .ok_or(Error::NoAuthority)?;
        Authority::put(ctx.overlay, &None)?;
        Ok(events([Event::AuthorityRemoved { former }]))
    }

    async fn set_config(ctx: &mut Context<'_, '_, R>, config: &GovernanceConfig) -> DispatchResult {
        ctx.ensure_privileged()?;
        config.check()?;
        Config::put(ctx.overlay, config)?;
        Ok(events([Event::ConfigChanged { config: *config }]))
    }
}

impl Module for Governance {
    logos_framework::module_calls!(logos_types::governance);

    /// Closes the votes that end at this block.
    async fn on_block_end<R: StateReader>(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let mut emitted = Vec::new();
        for id in due_now(ctx).await? {
            let proposal = Proposals::require(ctx.overlay, &id).await?;
            if proposal.status == ProposalStatus::Voting {
                emitted.extend(tally(ctx, id, proposal).await?);
            }
        }
        Ok(emitted)
    }

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        let text = |error: StateError| error.to_string();
        let next = NextProposalId::get_from(state).map_err(text)?;
        let mut open = Vec::new();
        for entry in Proposals::iter_from(state) {
            let (id, proposal) = entry.map_err(text)?;
            if id >= next {
                return Err(format!("proposal {id} at or above the next id {next}"));
            }
            if proposal.status.is_open() {
                let due_at = match proposal.status {
                    ProposalStatus::Voting => Some(proposal.voting_ends_at),
                    _ => proposal.enact_at,
                };
                open.push((id, due_at, proposal.proposer));
            }
            let voting = proposal.status == ProposalStatus::Voting;
            if !voting && proposal.deposit != Amount::ZERO {
                return Err(format!("closed proposal {id} holds a deposit"));
            }
            if (proposal.status == ProposalStatus::Approved) != proposal.enact_at.is_some()
                && proposal.status.is_open()
            {
                return Err(format!(
                    "proposal {id}: enactment height and status disagree"
                ));
            }
        }
        let listed: Vec<_> = Open::get_from(state)
            .map_err(text)?
            .iter()
            .map(|entry| (entry.proposal, Some(entry.due_at), entry.proposer))
            .collect();
        if listed != open {
            return Err(
                "open list differs from the open proposals (ids, due heights, proposers)".into(),
            );
        }
        Ok(())
    }

    /// The bootstrap authority is the genesis `privileged_account`.
    fn genesis(genesis: &Genesis) -> Result<WriteSet, String> {
        let mut writes = WriteSet::new();
        writes.insert(
            Authority::key(),
            Some(encode(&genesis.params.privileged_account)),
        );
        Ok(writes)
    }
}
