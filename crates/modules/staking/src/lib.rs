//! `staking` (module index 7): bonded stake, validator candidates, nominations, epochs and the
//! committee elected for each epoch.
//!
//! Owns the items of [`logos_types::staking`], which also states the protocol. Bonded tokens
//! are reserved through `balances`; [`Staking::active_stake`] is what governance weighs votes
//! with. The end-of-block hook starts the next epoch after an epoch's last block and fixes the
//! committee of the epoch after that, elected by [`elect`] (sequential Phragmén) or, under
//! proof of authority, carried forward.
//!
//! # Invariants ([`Staking::try_state`])
//! [`TotalActive`] is the sum of all ledgers' active stake; [`ValidatorList`] and
//! [`NominatorList`] list exactly the keys of [`Validators`] and [`Nominations`], ascending;
//! every candidate and nominator has a ledger; [`KeyOwners`] maps exactly the candidates'
//! consensus keys to them; nomination targets are ascending; the current and the next epoch
//! have non-empty committees, ascending by account.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

mod election;
pub mod rewards;
pub mod slashing;
#[cfg(test)]
mod tests;
pub mod votes;

pub use election::{elect, Candidate, Nominator, Seat};

use logos_balances::Balances;
use logos_framework::{
    ensure_ascending, events, Context, DispatchResult, MapExt, Module, Overlay, State, StateReader,
    TryStateResult, ValueExt, WriteSet,
};
use logos_primitives::{parse_public_key, Address, Amount, KeySignature, NodeKey};
use logos_types::{
    balances::community_account,
    codec::{encode, BoundedString, BoundedVec},
    corruption,
    peers::P2pAddress,
    staking::{
        intent_message, CallHandler, Committee, Committees, Config, CurrentEpoch, Disqualified,
        Epoch, EpochInfo, Error, Event, Exposure, ExposureKey, Exposures, FaultKind, KeyOwners,
        Ledger, Ledgers, Member, Nominations, NominatorList, Offence, Offences, OpenSamples,
        Produced, StakingConfig, TotalActive, Unlocking, ValidatorList, Validators, VoteKind,
        VoteTally, Votes, COMMISSION_MAX_PERMILLE, COMMITTEE_MIN, DISQUALIFIED_EPOCHS,
        EVIDENCE_MAX_BYTES, EXPOSURES_MAX, EXPOSURE_EPOCHS, INTENT_NAMESPACE, NOMINATIONS_MAX,
        VOTES_MAX_BYTES,
    },
    DispatchError, Genesis, StateError, StorageMap,
};

/// The `staking` module.
pub struct Staking;

impl Staking {
    /// `who`'s active stake (zero without a ledger).
    pub async fn active_stake<R: StateReader>(
        overlay: &Overlay<'_, R>,
        who: &Address,
    ) -> Result<Amount, StateError> {
        Ok(Ledgers::get(overlay, who)
            .await?
            .map_or(Amount::ZERO, |ledger| ledger.active))
    }

    /// Sum of all ledgers' active and unlocking stake in a full state (reserved through
    /// `balances`).
    pub fn total_bonded(state: &State) -> Result<Amount, String> {
        let mut total = Amount::ZERO;
        for entry in Ledgers::iter_from(state) {
            let (account, ledger) = entry.map_err(|error| error.to_string())?;
            let held = ledger
                .total()
                .ok_or_else(|| format!("ledger of {account} overflows"))?;
            total = total.checked_add(held).ok_or("bonded stake overflows")?;
        }
        Ok(total)
    }

    /// Locks `who`'s stake against unbonding up to height `until` (a governance vote); no
    /// effect without a ledger.
    pub async fn lock<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        who: &Address,
        until: u64,
    ) -> Result<(), DispatchError> {
        if let Some(mut ledger) = Ledgers::get(overlay, who).await? {
            ledger.locked_until = ledger.locked_until.max(until);
            Ledgers::insert(overlay, who, &ledger)?;
        }
        Ok(())
    }

    /// The committee serving `epoch`, if fixed.
    pub async fn committee<R: StateReader>(
        overlay: &Overlay<'_, R>,
        epoch: Epoch,
    ) -> Result<Option<Committee>, StateError> {
        Committees::get(overlay, &epoch).await
    }
}

/// Adds `delta` to [`TotalActive`] (`add`) or takes it away.
async fn adjust_total<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    delta: Amount,
    add: bool,
) -> Result<(), DispatchError> {
    let total = TotalActive::get(overlay).await?;
    let total = match add {
        true => total.checked_add(delta),
        false => total.checked_sub(delta),
    }
    .ok_or_else(|| corruption("total active stake out of range"))?;
    TotalActive::put(overlay, &total)?;
    Ok(())
}

/// The sender's ledger or [`Error::NotBonded`].
async fn ledger<R: StateReader>(
    ctx: &Context<'_, '_, R>,
    account: &Address,
) -> Result<Ledger, DispatchError> {
    Ok(Ledgers::get(ctx.overlay, account)
        .await?
        .ok_or(Error::NotBonded)?)
}

/// The least active stake `account` may keep (0 allowed only for non-candidates).
async fn minimum_for<R: StateReader>(
    ctx: &Context<'_, '_, R>,
    account: &Address,
    config: &StakingConfig,
) -> Result<Amount, DispatchError> {
    Ok(match Validators::contains(ctx.overlay, account).await? {
        true => config.min_validator_bond,
        false => config.min_bond,
    })
}

/// Removes `account`'s candidacy and nominations (nothing if it has none); true if it had one.
async fn chill<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    account: &Address,
) -> Result<bool, DispatchError> {
    let mut found = false;
    if let Some(validator) = Validators::get(overlay, account).await? {
        let mut list = ValidatorList::get(overlay).await?;
        if !list.remove_sorted(account) {
            return Err(corruption(format!("candidate {account} is not listed")));
        }
        ValidatorList::put(overlay, &list)?;
        Validators::remove(overlay, account)?;
        KeyOwners::remove(overlay, &validator.consensus_key)?;
        found = true;
    }
    if Nominations::contains(overlay, account).await? {
        let mut list = NominatorList::get(overlay).await?;
        if !list.remove_sorted(account) {
            return Err(corruption(format!("nominator {account} is not listed")));
        }
        NominatorList::put(overlay, &list)?;
        Nominations::remove(overlay, account)?;
        found = true;
    }
    Ok(found)
}

/// Writes `ledger` for `account`, or deletes it (and any intent) when it holds nothing.
async fn store_ledger<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    account: &Address,
    ledger: &Ledger,
) -> Result<(), DispatchError> {
    if ledger.active == Amount::ZERO && ledger.unlocking.is_empty() {
        chill(overlay, account).await?;
        Ledgers::remove(overlay, account)?;
    } else {
        Ledgers::insert(overlay, account, ledger)?;
    }
    Ok(())
}

/// Refuses the treasury (see [`Error::TreasuryCannotStake`]).
fn not_treasury(account: &Address) -> Result<(), DispatchError> {
    match *account == community_account() {
        true => Err(Error::TreasuryCannotStake.into()),
        false => Ok(()),
    }
}

/// Which list a newcomer joins.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listing {
    Candidates,
    Nominators,
}

/// Makes room in a full list for a newcomer holding `stake` by chilling `evict`, which must be
/// listed and replaceable (see `Call::Validate` and `Call::Nominate`): only the named entry is
/// read, so a full list costs no scan. Returns the `Chilled` event of the evicted.
async fn replace<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    listing: Listing,
    evict: Option<Address>,
    stake: Amount,
) -> Result<Event, DispatchError> {
    let evict = evict.ok_or(Error::RegistryFull)?;
    let listed = match listing {
        Listing::Candidates => Validators::contains(overlay, &evict).await?,
        Listing::Nominators => Nominations::contains(overlay, &evict).await?,
    };
    if !listed {
        return Err(Error::NotReplaceable(evict).into());
    }
    let held = Staking::active_stake(overlay, &evict).await?;
    let replaceable = match listing {
        Listing::Nominators => held < stake,
        Listing::Candidates => {
            let config = Config::get(overlay).await?;
            held < config.min_validator_bond || held < stake && !serves(overlay, &evict).await?
        }
    };
    if !replaceable {
        return Err(Error::NotReplaceable(evict).into());
    }
    chill(overlay, &evict).await?;
    Ok(Event::Chilled { account: evict })
}

/// True if `account` is in the committee of the current or the next epoch.
async fn serves<R: StateReader>(
    overlay: &Overlay<'_, R>,
    account: &Address,
) -> Result<bool, DispatchError> {
    let current = CurrentEpoch::get(overlay).await?.epoch;
    for epoch in [current, Epoch(current.get().saturating_add(1))] {
        if let Some(committee) = Committees::get(overlay, &epoch).await? {
            if committee.members.iter().any(|m| m.validator == *account) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn invalid_targets(why: &str) -> DispatchError {
    Error::InvalidTargets(BoundedString::truncated(why)).into()
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for Staking {
    async fn bond(ctx: &mut Context<'_, '_, R>, amount: &Amount) -> DispatchResult {
        let account = ctx.sender()?;
        not_treasury(&account)?;
        if *amount == Amount::ZERO {
            return Err(Error::ZeroAmount.into());
        }
        let config = Config::get(ctx.overlay).await?;
        let mut ledger = Ledgers::get(ctx.overlay, &account)
            .await?
            .unwrap_or_default();
        let active = ledger
            .active
            .checked_add(*amount)
            .ok_or(Error::InsufficientActive {
                active: ledger.active,
            })?;
        if active < config.min_bond {
            return Err(Error::BondTooLow {
                active,
                minimum: config.min_bond,
            }
            .into());
        }
        Balances::reserve(ctx.overlay, &account, *amount).await?;
        ledger.active = active;
        Ledgers::insert(ctx.overlay, &account, &ledger)?;
        adjust_total(ctx.overlay, *amount, true).await?;
        Ok(events([Event::Bonded {
            account,
            amount: *amount,
        }]))
    }

    async fn unbond(ctx: &mut Context<'_, '_, R>, amount: &Amount) -> DispatchResult {
        let account = ctx.sender()?;
        if *amount == Amount::ZERO {
            return Err(Error::ZeroAmount.into());
        }
        let config = Config::get(ctx.overlay).await?;
        let mut ledger = ledger(ctx, &account).await?;
        if ctx.height() <= ledger.locked_until {
            return Err(Error::StakeLocked(ledger.locked_until).into());
        }
        let remaining = ledger
            .active
            .checked_sub(*amount)
            .ok_or(Error::InsufficientActive {
                active: ledger.active,
            })?;
        let minimum = minimum_for(ctx, &account, &config).await?;
        if remaining != Amount::ZERO && remaining < minimum
            || remaining == Amount::ZERO && Validators::contains(ctx.overlay, &account).await?
        {
            return Err(Error::BondTooLow {
                active: remaining,
                minimum,
            }
            .into());
        }
        let unlocks_at = ctx.height().saturating_add(config.unbonding_blocks);
        ledger
            .unlocking
            .try_push(Unlocking {
                amount: *amount,
                unlocks_at,
            })
            .map_err(|_| Error::TooManyUnlocking)?;
        ledger.active = remaining;
        Ledgers::insert(ctx.overlay, &account, &ledger)?;
        adjust_total(ctx.overlay, *amount, false).await?;
        if remaining == Amount::ZERO {
            // A nomination without stake would hold a list slot for nothing.
            chill(ctx.overlay, &account).await?;
        }
        Ok(events([Event::Unbonded {
            account,
            amount: *amount,
            unlocks_at,
        }]))
    }

    async fn rebond(ctx: &mut Context<'_, '_, R>, amount: &Amount) -> DispatchResult {
        let account = ctx.sender()?;
        if *amount == Amount::ZERO {
            return Err(Error::ZeroAmount.into());
        }
        let mut ledger = ledger(ctx, &account).await?;
        let mut left = *amount;
        let mut moved = Amount::ZERO;
        while left > Amount::ZERO {
            let newest = ledger.unlocking.len().checked_sub(1);
            let Some(mut chunk) = newest.and_then(|last| ledger.unlocking.remove(last)) else {
                break;
            };
            let take = chunk.amount.min(left);
            chunk.amount = chunk.amount.saturating_sub(take);
            left = left.saturating_sub(take);
            moved = moved.saturating_add(take);
            if chunk.amount > Amount::ZERO {
                ledger
                    .unlocking
                    .try_push(chunk)
                    .map_err(|_| corruption("unlocking chunk lost"))?;
            }
        }
        if moved == Amount::ZERO {
            return Err(Error::NothingUnlocking.into());
        }
        ledger.active = ledger
            .active
            .checked_add(moved)
            .ok_or_else(|| corruption("active stake overflows"))?;
        let minimum = Config::get(ctx.overlay).await?.min_bond;
        if ledger.active < minimum {
            return Err(Error::BondTooLow {
                active: ledger.active,
                minimum,
            }
            .into());
        }
        Ledgers::insert(ctx.overlay, &account, &ledger)?;
        adjust_total(ctx.overlay, moved, true).await?;
        Ok(events([Event::Rebonded {
            account,
            amount: moved,
        }]))
    }

    async fn withdraw_unbonded(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let account = ctx.sender()?;
        let mut ledger = ledger(ctx, &account).await?;
        let height = ctx.height();
        let mut released = Amount::ZERO;
        for chunk in ledger.unlocking.iter().filter(|c| c.unlocks_at <= height) {
            released = released
                .checked_add(chunk.amount)
                .ok_or_else(|| corruption("unlocking stake overflows"))?;
        }
        if released == Amount::ZERO {
            return Err(Error::NothingUnlocking.into());
        }
        ledger.unlocking.retain(|chunk| chunk.unlocks_at > height);
        Balances::unreserve(ctx.overlay, &account, released).await?;
        store_ledger(ctx.overlay, &account, &ledger).await?;
        Ok(events([Event::Withdrawn {
            account,
            amount: released,
        }]))
    }

    async fn validate(
        ctx: &mut Context<'_, '_, R>,
        consensus_key: &NodeKey,
        p2p_address: &P2pAddress,
        commission_permille: &u16,
        signature: &KeySignature,
        evict: &Option<Address>,
    ) -> DispatchResult {
        let account = ctx.sender()?;
        not_treasury(&account)?;
        if consensus_key.public_key().is_err() {
            return Err(Error::InvalidKey.into());
        }
        let message = intent_message(&ctx.block.chain_id, &account, p2p_address);
        if !consensus_key.verifies(INTENT_NAMESPACE, &message, signature) {
            return Err(Error::BadSignature.into());
        }
        if !p2p_address.is_source() || p2p_address.port == 0 {
            return Err(Error::InvalidAddress(*p2p_address).into());
        }
        if *commission_permille > COMMISSION_MAX_PERMILLE {
            return Err(Error::InvalidCommission(*commission_permille).into());
        }
        if let Some(owner) = KeyOwners::get(ctx.overlay, consensus_key).await? {
            if owner != account {
                return Err(Error::KeyInUse(*consensus_key).into());
            }
        }
        if let Some(until) = Disqualified::get(ctx.overlay, &account).await? {
            if CurrentEpoch::get(ctx.overlay).await?.epoch < until {
                return Err(Error::Disqualified(until).into());
            }
            Disqualified::remove(ctx.overlay, &account)?;
        }
        let config = Config::get(ctx.overlay).await?;
        let active = ledger(ctx, &account).await?.active;
        if active < config.min_validator_bond {
            return Err(Error::BondTooLow {
                active,
                minimum: config.min_validator_bond,
            }
            .into());
        }
        chill(ctx.overlay, &account).await?;
        let mut emitted = Vec::new();
        if ValidatorList::get(ctx.overlay).await?.is_full() {
            emitted.push(replace(ctx.overlay, Listing::Candidates, *evict, active).await?);
        }
        let mut list = ValidatorList::get(ctx.overlay).await?;
        list.insert_sorted(account)
            .map_err(|_| Error::RegistryFull)?;
        ValidatorList::put(ctx.overlay, &list)?;
        let validator = logos_types::staking::Validator {
            consensus_key: *consensus_key,
            p2p_address: *p2p_address,
            commission_permille: *commission_permille,
        };
        Validators::insert(ctx.overlay, &account, &validator)?;
        KeyOwners::insert(ctx.overlay, consensus_key, &account)?;
        emitted.push(Event::ValidatorDeclared {
            account,
            consensus_key: *consensus_key,
        });
        Ok(events(emitted))
    }

    async fn nominate(
        ctx: &mut Context<'_, '_, R>,
        targets: &BoundedVec<Address, NOMINATIONS_MAX>,
        evict: &Option<Address>,
    ) -> DispatchResult {
        let account = ctx.sender()?;
        not_treasury(&account)?;
        if targets.is_empty() {
            return Err(invalid_targets("none given"));
        }
        let mut sorted = targets.clone();
        sorted.sort();
        if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(invalid_targets("a target appears twice"));
        }
        for target in sorted.iter() {
            if !Validators::contains(ctx.overlay, target).await? {
                return Err(invalid_targets(&format!("{target} is not a candidate")));
            }
        }
        let active = ledger(ctx, &account).await?.active;
        let minimum = Config::get(ctx.overlay).await?.min_bond;
        if active < minimum {
            return Err(Error::BondTooLow { active, minimum }.into());
        }
        chill(ctx.overlay, &account).await?;
        let mut emitted = Vec::new();
        if NominatorList::get(ctx.overlay).await?.is_full() {
            emitted.push(replace(ctx.overlay, Listing::Nominators, *evict, active).await?);
        }
        let mut list = NominatorList::get(ctx.overlay).await?;
        list.insert_sorted(account)
            .map_err(|_| Error::RegistryFull)?;
        NominatorList::put(ctx.overlay, &list)?;
        Nominations::insert(ctx.overlay, &account, &sorted)?;
        emitted.push(Event::Nominated {
            account,
            targets: u8::try_from(sorted.len()).unwrap_or(u8::MAX),
        });
        Ok(events(emitted))
    }

    async fn chill(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let account = ctx.sender()?;
        if !chill(ctx.overlay, &account).await? {
            return Err(Error::NotActive.into());
        }
        Ok(events([Event::Chilled { account }]))
    }

    async fn set_config(ctx: &mut Context<'_, '_, R>, config: &StakingConfig) -> DispatchResult {
        ctx.ensure_privileged()?;
        config.check()?;
        Config::put(ctx.overlay, config)?;
        Ok(events([Event::ConfigChanged { config: *config }]))
    }

    async fn set_elections(ctx: &mut Context<'_, '_, R>, elections: &bool) -> DispatchResult {
        ctx.ensure_privileged()?;
        let mut config = Config::get(ctx.overlay).await?;
        config.elections = *elections;
        Config::put(ctx.overlay, &config)?;
        Ok(events([Event::ConfigChanged { config }]))
    }

    async fn record_votes(
        ctx: &mut Context<'_, '_, R>,
        kind: &VoteKind,
        evidence: &BoundedVec<u8, VOTES_MAX_BYTES>,
    ) -> DispatchResult {
        ctx.sender()?;
        let current = CurrentEpoch::get(ctx.overlay).await?;
        let committee = Committees::get(ctx.overlay, &current.epoch)
            .await?
            .ok_or(Error::UnknownEpoch(current.epoch))?;
        let checked = votes::verify(*kind, evidence, &ctx.block.chain_id, &committee)?;
        let mut open = OpenSamples::get(ctx.overlay).await?;
        let sample = open
            .iter_mut()
            .find(|sample| sample.digest == checked.digest && checked.epoch == current.epoch.0)
            .ok_or_else(|| {
                Error::NoOpenSample(BoundedString::truncated(&logos_primitives::format_hash(
                    &checked.digest,
                )))
            })?;
        let added = votes::mark(sample, &checked.signers);
        if added == 0 {
            return Err(Error::NoNewVotes.into());
        }
        let height = sample.height;
        OpenSamples::put(ctx.overlay, &open)?;
        Ok(events([Event::VotesRecorded { height, added }]))
    }

    async fn report_equivocation(
        ctx: &mut Context<'_, '_, R>,
        kind: &FaultKind,
        evidence: &BoundedVec<u8, EVIDENCE_MAX_BYTES>,
    ) -> DispatchResult {
        let reporter = ctx.sender()?;
        let epoch = slashing::epoch_of(*kind, evidence)?;
        let committee = Committees::get(ctx.overlay, &epoch)
            .await?
            .ok_or(Error::UnknownEpoch(epoch))?;
        let mut fault = slashing::verify(*kind, evidence, &ctx.block.chain_id, &committee)?;
        // The account accountable for a key is the candidate that declared it (a genesis
        // validator may bond from another wallet).
        if let Some(owner) = KeyOwners::get(ctx.overlay, &fault.consensus_key).await? {
            fault.validator = owner;
        }
        let offence = Offence {
            epoch: fault.epoch,
            view: fault.view,
            validator: fault.validator,
        };
        if Offences::contains(ctx.overlay, &offence).await? {
            return Err(Error::AlreadyReported.into());
        }
        Offences::insert(ctx.overlay, &offence, &ctx.height())?;
        // Punished once per disqualification: a fault proven meanwhile is recorded, so that it
        // cannot be kept and reported once the disqualification ends.
        if let Some(until) = Disqualified::get(ctx.overlay, &fault.validator).await? {
            if CurrentEpoch::get(ctx.overlay).await?.epoch < until {
                return Ok(events([Event::OffenceNoted {
                    validator: fault.validator,
                    epoch: fault.epoch,
                    view: fault.view,
                }]));
            }
        }
        punish(ctx, *kind, fault, reporter).await
    }
}

/// Slashes, chills, disqualifies and unseats the validator of `fault` (see the types' docs).
async fn punish<R: StateReader>(
    ctx: &mut Context<'_, '_, R>,
    kind: FaultKind,
    fault: slashing::Fault,
    reporter: Address,
) -> DispatchResult {
    let config = Config::get(ctx.overlay).await?;
    let percent = config.equivocation_slash_percent;
    let offender = fault.validator;
    let own = match Ledgers::get(ctx.overlay, &offender).await? {
        Some(ledger) => {
            let total = ledger
                .total()
                .ok_or_else(|| corruption("ledger overflows"))?;
            let share = share_of(total, percent);
            take(
                ctx.overlay,
                &offender,
                ledger,
                (share, config.min_validator_bond),
            )
            .await?
        }
        None => Amount::ZERO,
    };
    // The reporter's reward comes out of the offender's own slash: reporting oneself never pays.
    let reward = own
        .percent(config.reporter_reward_percent)
        .unwrap_or(Amount::ZERO);
    let treasury = community_account();
    Balances::pay_free(ctx.overlay, &treasury, &reporter, reward).await?;
    let exposures = ExposureKey {
        epoch: fault.epoch,
        validator: offender,
    };
    let mut from_nominators = Amount::ZERO;
    for exposure in Exposures::get(ctx.overlay, &exposures)
        .await?
        .unwrap_or_default()
        .iter()
    {
        let Some(ledger) = Ledgers::get(ctx.overlay, &exposure.nominator).await? else {
            continue;
        };
        let share = share_of(exposure.stake, percent);
        let slash = (share, config.min_validator_bond);
        let taken = take(ctx.overlay, &exposure.nominator, ledger, slash).await?;
        from_nominators = from_nominators.saturating_add(taken);
    }
    chill(ctx.overlay, &offender).await?;
    drop_from_nominations(ctx.overlay, &offender).await?;
    let current = CurrentEpoch::get(ctx.overlay).await?.epoch;
    let until = Epoch(current.get().saturating_add(DISQUALIFIED_EPOCHS));
    Disqualified::insert(ctx.overlay, &offender, &until)?;
    let mut emitted = vec![Event::Slashed {
        validator: offender,
        kind,
        epoch: fault.epoch,
        view: fault.view,
        amount: own,
        nominators: from_nominators,
        reporter,
        reward,
    }];
    emitted.extend(
        unseat(
            ctx.overlay,
            &offender,
            Epoch(current.get().saturating_add(1)),
        )
        .await?,
    );
    Ok(events(emitted))
}

/// `percent` of `amount` as a slash takes it (at least one unit while anything is held, none
/// at 0 %).
fn share_of(amount: Amount, percent: u8) -> Amount {
    match percent {
        0 => Amount::ZERO,
        _ => amount.slash_share(percent).unwrap_or(Amount::ZERO),
    }
}

/// Removes `offender` from the committee of `epoch` if at least [`COMMITTEE_MIN`] remain.
async fn unseat<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    offender: &Address,
    epoch: Epoch,
) -> Result<Option<Event>, DispatchError> {
    let Some(mut committee) = Committees::get(overlay, &epoch).await? else {
        return Ok(None);
    };
    let before = committee.members.len();
    if before <= COMMITTEE_MIN {
        return Ok(None);
    }
    committee
        .members
        .retain(|member| member.validator != *offender);
    if committee.members.len() == before {
        return Ok(None);
    }
    Committees::insert(overlay, &epoch, &committee)?;
    Ok(Some(Event::RemovedFromCommittee {
        validator: *offender,
        epoch,
    }))
}

/// Takes `offender` out of every nomination (a nominator left with none is chilled).
async fn drop_from_nominations<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    offender: &Address,
) -> Result<(), DispatchError> {
    for nominator in NominatorList::get(overlay).await?.iter() {
        let mut targets = Nominations::require(overlay, nominator).await?;
        if !targets.remove_sorted(offender) {
            continue;
        }
        match targets.is_empty() {
            true => {
                chill(overlay, nominator).await?;
            }
            false => Nominations::insert(overlay, nominator, &targets)?,
        }
    }
    Ok(())
}

/// Takes up to `amount` from `account`'s `ledger` (active first, then unlocking, newest first)
/// into the treasury; returns what was taken. A candidate left below `validator_minimum`, or
/// a nominator left with nothing, is chilled.
async fn take<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    account: &Address,
    mut ledger: Ledger,
    (amount, validator_minimum): (Amount, Amount),
) -> Result<Amount, DispatchError> {
    let from_active = ledger.active.min(amount);
    ledger.active = ledger.active.saturating_sub(from_active);
    let mut left = amount.saturating_sub(from_active);
    for chunk in ledger.unlocking.iter_mut().rev() {
        let part = chunk.amount.min(left);
        chunk.amount = chunk.amount.saturating_sub(part);
        left = left.saturating_sub(part);
    }
    ledger.unlocking.retain(|chunk| chunk.amount > Amount::ZERO);
    let taken = amount.saturating_sub(left);
    Balances::pay_reserved(overlay, account, &community_account(), taken).await?;
    adjust_total(overlay, from_active, false).await?;
    let active = ledger.active;
    store_ledger(overlay, account, &ledger).await?;
    // No slot is kept below the minimum a slot needs.
    let below = match Validators::contains(overlay, account).await? {
        true => active < validator_minimum,
        false => active == Amount::ZERO,
    };
    if below {
        chill(overlay, account).await?;
    }
    Ok(taken)
}

/// The election's inputs from state: candidates with their self-bond and nominators with
/// their stake and candidate targets.
async fn election_inputs<R: StateReader>(
    overlay: &Overlay<'_, R>,
    config: &StakingConfig,
) -> Result<(Vec<Candidate>, Vec<Nominator>), DispatchError> {
    let mut candidates = Vec::new();
    for account in ValidatorList::get(overlay).await?.iter() {
        let validator = Validators::require(overlay, account).await?;
        let own = Staking::active_stake(overlay, account).await?;
        if own >= config.min_validator_bond {
            candidates.push(Candidate {
                account: *account,
                own,
                validator,
            });
        }
    }
    let mut nominators = Vec::new();
    for account in NominatorList::get(overlay).await?.iter() {
        let targets = Nominations::require(overlay, account).await?;
        let stake = Staking::active_stake(overlay, account).await?;
        nominators.push(Nominator {
            account: *account,
            stake,
            targets: targets.into_inner(),
        });
    }
    Ok((candidates, nominators))
}

/// A committee and its members' exposures.
type Elected = (Committee, Vec<(Address, Vec<Exposure>)>);

/// The committee of `epoch` and its exposures: elected (with elections on and enough
/// candidates) or the previous epoch's carried forward; and the event saying which.
async fn next_committee<R: StateReader>(
    overlay: &Overlay<'_, R>,
    epoch: Epoch,
    config: &StakingConfig,
) -> Result<(Elected, Event), DispatchError> {
    let previous_epoch = Epoch(epoch.get().saturating_sub(1));
    let previous = Committees::require(overlay, &previous_epoch).await?;
    // A carried committee carries no exposures: nobody's stake was elected into it.
    let carried = |previous: Committee, event| Ok(((previous, Vec::new()), event));
    if !config.elections {
        let event = committee_event(epoch, &previous, false);
        return carried(previous, event);
    }
    let (candidates, nominators) = election_inputs(overlay, config).await?;
    let seats = elect(&candidates, &nominators, usize::from(config.committee_size));
    if seats.len() < COMMITTEE_MIN {
        let found = u16::try_from(seats.len()).unwrap_or(u16::MAX);
        let event = Event::ElectionFailed {
            epoch,
            candidates: found,
        };
        return carried(previous, event);
    }
    let mut members = BoundedVec::default();
    let mut exposures = Vec::new();
    for seat in seats {
        let candidate = &candidates[seat.candidate];
        members
            .try_push(Member {
                validator: candidate.account,
                consensus_key: candidate.validator.consensus_key,
                p2p_address: candidate.validator.p2p_address,
                backing: seat.backing,
                commission_permille: candidate.validator.commission_permille,
            })
            .map_err(|_| corruption("election returned more seats than the committee bound"))?;
        exposures.push((candidate.account, seat.exposures));
    }
    members.sort_by_key(|member| member.validator);
    let committee = Committee { members };
    let event = committee_event(epoch, &committee, true);
    Ok(((committee, exposures), event))
}

fn committee_event(epoch: Epoch, committee: &Committee, elected: bool) -> Event {
    let backing = committee.members.iter().fold(Amount::ZERO, |sum, member| {
        sum.saturating_add(member.backing)
    });
    Event::CommitteeElected {
        epoch,
        members: u16::try_from(committee.members.len()).unwrap_or(u16::MAX),
        backing,
        elected,
    }
}

/// Drops the exposures of the epoch [`EXPOSURE_EPOCHS`] before `starting` (its nominators are
/// no longer slashable for it; at most one committee's worth of deletions per epoch).
async fn prune_exposures<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    starting: Epoch,
) -> Result<(), DispatchError> {
    let Some(old) = starting.get().checked_sub(EXPOSURE_EPOCHS).map(Epoch) else {
        return Ok(());
    };
    let Some(committee) = Committees::get(overlay, &old).await? else {
        return Ok(());
    };
    for member in committee.members.iter() {
        let key = ExposureKey {
            epoch: old,
            validator: member.validator,
        };
        Exposures::remove(overlay, &key)?;
    }
    Ok(())
}

/// Counts the block's author in [`Produced`] (a full list counts no newcomer).
async fn count_author<R: StateReader>(ctx: &mut Context<'_, '_, R>) -> Result<(), DispatchError> {
    let author = ctx.block.author;
    let mut produced = Produced::get(ctx.overlay).await?;
    match produced.iter_mut().find(|entry| entry.author == author) {
        Some(entry) => entry.blocks = entry.blocks.saturating_add(1),
        None => {
            // Beyond the bound an author earns nothing: no committee is that large.
            let _ = produced.try_push(logos_types::staking::Authored { author, blocks: 1 });
        }
    }
    Produced::put(ctx.overlay, &produced)?;
    Ok(())
}

/// Closes the vote samples due (all of them at the epoch's end) into [`Votes`], then opens
/// the one this block's parent is, if sampled (see the types' docs).
async fn sample_votes<R: StateReader>(
    ctx: &mut Context<'_, '_, R>,
    current: &EpochInfo,
    epoch_ends: bool,
) -> Result<(), DispatchError> {
    let mut open = OpenSamples::get(ctx.overlay).await?;
    let height = ctx.height();
    let due = open
        .iter()
        .filter(|sample| epoch_ends || sample.closes_at <= height)
        .count();
    if due > 0 {
        let members = Committees::get(ctx.overlay, &current.epoch)
            .await?
            .map_or(0, |committee| committee.members.len());
        let mut tally = Votes::get(ctx.overlay).await?;
        for sample in open.iter().take(due) {
            votes::count(&mut tally, sample, members);
        }
        Votes::put(ctx.overlay, &tally)?;
        let kept: Vec<_> = open.iter().skip(due).cloned().collect();
        open = BoundedVec::try_from(kept).map_err(|_| corruption("open samples"))?;
    }
    if !epoch_ends {
        if let Some(sample) = votes::opened_by(current, height, ctx.block.parent) {
            // The bound holds by construction (window over the smallest interval); a sample
            // that finds it full is skipped rather than failing the block.
            let _ = open.try_push(sample);
        }
    }
    OpenSamples::put(ctx.overlay, &open)?;
    Ok(())
}

/// Pays the committee of the epoch that ends (see the types' docs); clears [`Produced`] and
/// [`Votes`].
async fn pay_rewards<R: StateReader>(
    ctx: &mut Context<'_, '_, R>,
    ending: &EpochInfo,
    config: &StakingConfig,
) -> Result<Vec<Event>, DispatchError> {
    let produced = Produced::get(ctx.overlay).await?;
    Produced::put(ctx.overlay, &BoundedVec::default())?;
    let tally = Votes::get(ctx.overlay).await?;
    Votes::put(ctx.overlay, &VoteTally::default())?;
    let Some(committee) = Committees::get(ctx.overlay, &ending.epoch).await? else {
        return Ok(Vec::new());
    };
    let treasury = community_account();
    let held = Balances::account(ctx.overlay, &treasury).await?.balance;
    let budget = config.epoch_reward.min(held);
    let parts = rewards::member_rewards(
        &committee.members,
        &produced,
        &tally,
        ending.length_blocks,
        budget,
    );
    let mut remaining = budget;
    let mut emitted = Vec::new();
    for (member, mut part) in committee.members.iter().zip(parts) {
        // A slashed member is not paid; no part exceeds what is left of the budget.
        if Disqualified::get(ctx.overlay, &member.validator)
            .await?
            .is_some_and(|until| ending.epoch < until)
        {
            continue;
        }
        part.amount = part.amount.min(remaining);
        remaining = remaining.saturating_sub(part.amount);
        let key = ExposureKey {
            epoch: ending.epoch,
            validator: member.validator,
        };
        let backers: Vec<(Address, Amount)> = Exposures::get(ctx.overlay, &key)
            .await?
            .unwrap_or_default()
            .iter()
            .map(|exposure| (exposure.nominator, exposure.stake))
            .collect();
        let own = member.backing.saturating_sub(
            backers
                .iter()
                .fold(Amount::ZERO, |sum, (_, s)| sum.saturating_add(*s)),
        );
        let payouts = rewards::split_member(
            member.validator,
            part.amount,
            member.commission_permille,
            own,
            &backers,
        );
        for (payee, amount) in payouts {
            if amount > Amount::ZERO {
                Balances::pay_free(ctx.overlay, &treasury, &payee, amount).await?;
            }
        }
        emitted.push(Event::Rewarded {
            validator: member.validator,
            epoch: ending.epoch,
            amount: part.amount,
            produced: part.produced,
            expected: part.expected,
            voted: part.voted,
            samples: part.samples,
        });
    }
    Ok(emitted)
}

impl Module for Staking {
    logos_framework::module_calls!(logos_types::staking);

    /// Counts the block's author; after an epoch's last block: its committee is paid, the
    /// next epoch starts, and the committee of the one after it is fixed.
    async fn on_block_end<R: StateReader>(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        count_author(ctx).await?;
        let current = CurrentEpoch::get(ctx.overlay).await?;
        let last = current
            .last_height()
            .ok_or_else(|| corruption("epoch end overflows"))?;
        if ctx.height() < last {
            sample_votes(ctx, &current, false).await?;
            return Ok(Vec::new());
        }
        sample_votes(ctx, &current, true).await?;
        let config = Config::get(ctx.overlay).await?;
        let mut emitted = pay_rewards(ctx, &current, &config).await?;
        let next = EpochInfo {
            epoch: current
                .epoch
                .next()
                .ok_or_else(|| corruption("epochs exhausted"))?,
            start_height: ctx.height().saturating_add(1),
            length_blocks: config.epoch_length_blocks,
        };
        CurrentEpoch::put(ctx.overlay, &next)?;
        prune_exposures(ctx.overlay, next.epoch).await?;
        let elected_epoch = next
            .epoch
            .next()
            .ok_or_else(|| corruption("epochs exhausted"))?;
        let ((committee, exposures), outcome) =
            next_committee(ctx.overlay, elected_epoch, &config).await?;
        Committees::insert(ctx.overlay, &elected_epoch, &committee)?;
        for (validator, list) in exposures {
            let list = BoundedVec::<Exposure, EXPOSURES_MAX>::try_from(list)
                .map_err(|_| corruption("more exposures than the bound"))?;
            let key = ExposureKey {
                epoch: elected_epoch,
                validator,
            };
            Exposures::insert(ctx.overlay, &key, &list)?;
        }
        emitted.push(Event::EpochStarted {
            epoch: next.epoch,
            start_height: next.start_height,
            length_blocks: next.length_blocks,
        });
        emitted.push(outcome);
        Ok(events(emitted))
    }

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        let text = |error: StateError| error.to_string();
        let mut active = Amount::ZERO;
        let mut ledgers = std::collections::BTreeSet::new();
        for entry in Ledgers::iter_from(state) {
            let (account, ledger) = entry.map_err(text)?;
            active = active
                .checked_add(ledger.active)
                .ok_or("active overflows")?;
            ledger.total().ok_or("ledger overflows")?;
            ledgers.insert(account);
        }
        if TotalActive::get_from(state).map_err(text)? != active {
            return Err(format!(
                "total active differs from the ledgers' sum {active}"
            ));
        }
        let mut candidates = Vec::new();
        for entry in Validators::iter_from(state) {
            let (account, validator) = entry.map_err(text)?;
            if KeyOwners::get_from(state, &validator.consensus_key).map_err(text)? != Some(account)
            {
                return Err(format!("consensus key of {account} not owned by it"));
            }
            candidates.push(account);
        }
        if ValidatorList::get_from(state).map_err(text)?[..] != candidates[..] {
            return Err("candidate list differs from the candidates".into());
        }
        if KeyOwners::iter_from(state).count() != candidates.len() {
            return Err("consensus keys owned by non-candidates".into());
        }
        let mut nominators = Vec::new();
        for entry in Nominations::iter_from(state) {
            let (account, targets) = entry.map_err(text)?;
            ensure_ascending(&targets, "nomination targets")?;
            nominators.push(account);
        }
        if NominatorList::get_from(state).map_err(text)?[..] != nominators[..] {
            return Err("nominator list differs from the nominators".into());
        }
        if let Some(orphan) = candidates
            .iter()
            .chain(&nominators)
            .find(|account| !ledgers.contains(*account))
        {
            return Err(format!("{orphan} has an intent but no ledger"));
        }
        let epoch = CurrentEpoch::get_from(state).map_err(text)?.epoch;
        for epoch in [epoch, Epoch(epoch.get().saturating_add(1))] {
            let committee = Committees::get_from(state, &epoch)
                .map_err(text)?
                .ok_or_else(|| format!("no committee for epoch {epoch}"))?;
            if committee.members.is_empty() {
                return Err(format!("empty committee for epoch {epoch}"));
            }
            let accounts: Vec<_> = committee.members.iter().map(|m| m.validator).collect();
            ensure_ascending(&accounts, "committee members")?;
        }
        let members = Committees::get_from(state, &epoch)
            .map_err(text)?
            .map_or(0, |committee| committee.members.len());
        let open = OpenSamples::get_from(state).map_err(text)?;
        let heights: Vec<u64> = open.iter().map(|sample| sample.height).collect();
        ensure_ascending(&heights, "open vote samples")?;
        if open.iter().any(|sample| {
            (members..sample.signed.len().saturating_mul(8)).any(|index| sample.has(index))
        }) {
            return Err("a vote sample marks a signer outside the committee".into());
        }
        let tally = Votes::get_from(state).map_err(text)?;
        if tally.signed.len() > members || tally.signed.iter().any(|signed| *signed > tally.samples)
        {
            return Err("the vote tally counts more than its samples or members".into());
        }
        Ok(())
    }

    /// Epochs 0 and 1 are served by the genesis validators (proof of authority).
    fn genesis(genesis: &Genesis) -> Result<WriteSet, String> {
        let mut members = Vec::new();
        for validator in &genesis.validators {
            let key = parse_public_key(&validator.public_key)
                .map_err(|error| format!("validator key {}: {error}", validator.public_key))?;
            members.push(Member {
                validator: Address::from_public_key(&key),
                consensus_key: NodeKey::from_public_key(&key),
                p2p_address: P2pAddress::from(validator.p2p_address),
                backing: Amount::ZERO,
                commission_permille: 0,
            });
        }
        members.sort_by_key(|member| member.validator);
        let members = BoundedVec::try_from(members)
            .map_err(|_| "more genesis validators than a committee holds".to_string())?;
        let committee = Committee { members };
        let mut writes = WriteSet::new();
        for epoch in [Epoch(0), Epoch(1)] {
            writes.insert(Committees::key(&epoch), Some(encode(&committee)));
        }
        // A genesis that sets staking settings stores them, and the first epoch's length;
        // one that does not keeps the stored defaults (and its state root).
        if genesis.params.sets_staking() {
            let config = genesis.params.staking_config();
            config
                .check()
                .map_err(|_| "genesis staking settings out of bounds".to_string())?;
            let first = EpochInfo {
                epoch: Epoch(0),
                start_height: 1,
                length_blocks: config.epoch_length_blocks,
            };
            writes.insert(
                <Config as logos_types::StorageValue>::key(),
                Some(encode(&config)),
            );
            writes.insert(
                <CurrentEpoch as logos_types::StorageValue>::key(),
                Some(encode(&first)),
            );
        }
        Ok(writes)
    }
}
