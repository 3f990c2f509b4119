//! Deadlines: every machine not excluded is listed once in `DueAt` at its `due` height; at a
//! block's end the deadlines up to that height are handled in height order, within a budget of
//! [`DUE_HANDLED_PER_BLOCK_MAX`] per block, a registration's first deadline (its chain check)
//! costing [`CHAIN_CHECK_COST`] (the rest wait for the next blocks; `DueCursor` remembers
//! where), and each handler takes its machine off the list, so every deadline is
//! handled exactly once. Each deadline runs in a layer of its own: one that fails on a
//! corrupted state is rolled back alone and dropped (`DeadlineDropped`), its machine excluded
//! for `DeadlineFailed`.

use crate::{report::text, Attestation};
use logos_dvci::Dvci;
use logos_framework::{events, Context, DispatchResult, MapExt, StateReader, ValueExt};
use logos_market::EnvironmentLifecycle;
use logos_primitives::{hash, Address};
use logos_provisioning::{draw, Provisioning};
use logos_types::{
    attestation::{
        Draws, DueAt, DueCursor, Endorsements, Error, Event, Exclusion, Machine, MachineCount,
        MachineStatus, Machines, Params, StagedEndorsements, CHALLENGE_ROUNDS_MAX,
        DRAWS_MAX_PER_PROVIDER, DRAW_DELAY_BLOCKS, DRAW_WINDOW_BLOCKS, DUE_HANDLED_PER_BLOCK_MAX,
        DUE_SPREAD_MAX_BLOCKS,
    },
    corruption,
    dvci::{ProviderId, Providers},
    operations::EnvironmentId,
    DispatchError, Event as RuntimeEvent, StateError,
};

/// The share of a block's deadline budget ([`DUE_HANDLED_PER_BLOCK_MAX`]) one certificate
/// chain check takes: at most 4 per block (about 0.6 ms each for RSA-3072 CA keys,
/// `logos bench attest`'s `endorsement_us_p50`).
const CHAIN_CHECK_COST: u32 = 4;

/// Domain of the challenger draw's randomness.
const CHALLENGER_DOMAIN: &[u8] = b"logos/attestation/challenger/v1";

impl<L: EnvironmentLifecycle> Attestation<L> {
    /// Lists `provider` as due at the first height from `at` with room; returns it.
    pub(crate) async fn schedule<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        at: u64,
    ) -> Result<u64, DispatchError> {
        for offset in 0..DUE_SPREAD_MAX_BLOCKS {
            let height = at.saturating_add(offset);
            let mut due = DueAt::get(ctx.overlay, &height).await?.unwrap_or_default();
            if due.try_push(provider).is_ok() {
                DueAt::insert(ctx.overlay, &height, &due)?;
                return Ok(height);
            }
        }
        Err(Error::TooManyMachines.into())
    }

    /// Takes `provider` off the list of height `at`.
    pub(crate) async fn unschedule<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        at: u64,
    ) -> Result<(), DispatchError> {
        let mut due = DueAt::get(ctx.overlay, &at).await?.unwrap_or_default();
        let before = due.len();
        due.retain(|listed| *listed != provider);
        if due.len() == before {
            return Err(corruption("a machine's deadline is not listed"));
        }
        match due.is_empty() {
            true => DueAt::remove(ctx.overlay, &at)?,
            false => DueAt::insert(ctx.overlay, &at, &due)?,
        }
        Ok(())
    }

    /// Moves `machine`'s deadline to `at` (or the next height with room).
    pub(crate) async fn reschedule<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        machine: &mut Machine,
        at: u64,
    ) -> Result<(), DispatchError> {
        Self::unschedule(ctx, provider, machine.due).await?;
        machine.due = Self::schedule(ctx, provider, at).await?;
        Ok(())
    }

    /// Handles the deadlines up to this height (module docs). What the hook wrote so far is
    /// kept first, then each deadline in a layer of its own: one that fails (a corrupted
    /// state) is rolled back alone and dropped, its machine set aside, and the others go on.
    pub(crate) async fn handle_deadlines<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
    ) -> DispatchResult {
        ctx.overlay.commit();
        let height = ctx.height();
        let mut cursor = DueCursor::get(ctx.overlay).await?;
        let mut emitted: Vec<RuntimeEvent> = Vec::new();
        let mut budget = DUE_HANDLED_PER_BLOCK_MAX;
        while budget > 0 && cursor <= height {
            let first = match DueAt::get(ctx.overlay, &cursor).await {
                Ok(due) => due.and_then(|due| due.first().copied()),
                Err(StateError::Backend(reason)) => return Err(DispatchError::Backend(reason)),
                // A list that does not decode is dropped; its machines are set aside by the
                // invariant check's report, not here (their ids are unreadable).
                Err(_) => {
                    DueAt::remove(ctx.overlay, &cursor)?;
                    None
                }
            };
            let Some(provider) = first else {
                match cursor.checked_add(1) {
                    Some(next) => cursor = next,
                    None => break,
                }
                continue;
            };
            // A registration's first deadline checks its certificate chain: it costs more of
            // the block's budget, and waits for the next block when too little is left.
            let cost = Self::deadline_cost(ctx, provider).await?;
            if cost > budget && budget < DUE_HANDLED_PER_BLOCK_MAX {
                break;
            }
            budget = budget.saturating_sub(cost);
            match Self::due(ctx, provider, cursor).await {
                Ok(handled) => {
                    ctx.overlay.commit();
                    emitted.extend(handled);
                }
                Err(DispatchError::Backend(reason)) => return Err(DispatchError::Backend(reason)),
                Err(_) => {
                    ctx.overlay.rollback();
                    emitted.extend(Self::drop_deadline(ctx, provider, cursor).await?);
                    ctx.overlay.commit();
                }
            }
        }
        DueCursor::put(ctx.overlay, &cursor)?;
        Ok(emitted)
    }

    /// What handling `provider`'s deadline costs of a block's budget: [`CHAIN_CHECK_COST`] for
    /// a registration whose chain is still to check, 1 otherwise (or for an unreadable record).
    async fn deadline_cost<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        provider: ProviderId,
    ) -> Result<u32, DispatchError> {
        match Machines::get(ctx.overlay, &provider).await {
            Ok(Some(machine)) if machine.endorsed_by.is_none() => Ok(CHAIN_CHECK_COST),
            Err(StateError::Backend(reason)) => Err(DispatchError::Backend(reason)),
            _ => Ok(1),
        }
    }

    /// Drops `provider`'s deadline at `at` that could not be handled: off the list, and its
    /// machine (if it reads) excluded for `DeadlineFailed`, not attested, so that its owner or
    /// anyone can remove it.
    async fn drop_deadline<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        at: u64,
    ) -> DispatchResult {
        Self::unschedule(ctx, provider, at).await?;
        if let Ok(Some(mut machine)) = Machines::get(ctx.overlay, &provider).await {
            machine.status = MachineStatus::Excluded {
                at: ctx.height(),
                reason: Exclusion::DeadlineFailed,
            };
            machine.staged = None;
            machine.pending = None;
            machine.challenge = None;
            Machines::insert(ctx.overlay, &provider, &machine)?;
        }
        if Providers::contains(ctx.overlay, &provider).await? {
            Dvci::set_attested(ctx.overlay, provider, None).await?;
        }
        Ok(events([Event::DeadlineDropped { provider }]))
    }

    /// Handles one machine due at `at`; takes it off that list.
    async fn due<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        at: u64,
    ) -> DispatchResult {
        let Some(mut machine) = Machines::get(ctx.overlay, &provider).await? else {
            return Err(corruption("a deadline of an unknown machine"));
        };
        if machine.due != at {
            return Err(corruption(
                "a machine listed at another height than its deadline",
            ));
        }
        if !Providers::contains(ctx.overlay, &provider).await? {
            // Its provider left `dvci`: the machine goes too.
            return Self::remove(ctx, provider, machine).await;
        }
        if machine.status == MachineStatus::Attesting {
            return Self::exclude(ctx, provider, machine, Exclusion::ReportMissing).await;
        }
        if let MachineStatus::Excluded { .. } = machine.status {
            return Err(corruption("an excluded machine is listed"));
        }
        if machine.endorsed_by.is_none() {
            // The registration's first deadline: its staged chain is checked (and consumed).
            let checked = Self::check_endorsement(ctx, provider, &machine.ek_public).await?;
            StagedEndorsements::remove(ctx.overlay, &provider)?;
            match checked {
                Ok(root) => machine.endorsed_by = Some(root),
                Err(error) => {
                    let reason = text(error);
                    let mut emitted = events([Event::EndorsementRefused { provider, reason }]);
                    emitted.extend(Self::remove(ctx, provider, machine).await?);
                    return Ok(emitted);
                }
            }
        } else if !Self::root_approved(ctx, &machine).await? {
            // Its root was revoked while it waited for its challengers.
            let reason = text("its endorsement root was revoked");
            let mut emitted = events([Event::EndorsementRefused { provider, reason }]);
            emitted.extend(Self::remove(ctx, provider, machine).await?);
            return Ok(emitted);
        }
        // A registration's round ends: silent challenger, unanswered challenge, or no draw.
        match machine.status {
            MachineStatus::AwaitingChallenge { challenger } => {
                Self::remember_silent(ctx, provider, challenger).await?;
            }
            // A challenge left unanswered starts the count over: the answers must come from
            // challengers in a row, so that skipping honest ones gains nothing.
            MachineStatus::Challenged { .. } => machine.answered.clear(),
            _ => {}
        }
        if machine.status != MachineStatus::AwaitingDraw {
            machine.rounds = machine.rounds.saturating_add(1);
        }
        if machine.rounds >= CHALLENGE_ROUNDS_MAX {
            return Self::remove(ctx, provider, machine).await;
        }
        Self::next_round(ctx, provider, machine).await
    }

    /// Gives `provider` one draw back (a silent challenger's, or an answered one's: only
    /// draws that end in a failed round use the budget).
    pub(crate) async fn give_draw_back<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
    ) -> Result<(), DispatchError> {
        if let Some(mut history) = Draws::get(ctx.overlay, &provider).await? {
            history.draws = history.draws.saturating_sub(1);
            Draws::insert(ctx.overlay, &provider, &history)?;
        }
        Ok(())
    }

    /// Remembers a challenger that stayed silent for `provider` (not drawn again while others
    /// are eligible; the oldest is forgotten when the list is full) and gives its draw back.
    async fn remember_silent<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        challenger: Address,
    ) -> Result<(), DispatchError> {
        let mut history = Draws::get(ctx.overlay, &provider)
            .await?
            .unwrap_or_default();
        if history.silent.is_full() {
            history.silent.remove(0);
        }
        if history.silent.try_push(challenger).is_err() {
            return Err(corruption("no room in a list just made room in"));
        }
        history.draws = history.draws.saturating_sub(1);
        Ok(Draws::insert(ctx.overlay, &provider, &history)?)
    }

    /// Draws the next challenger, or waits another timeout (counting a round) when nobody is
    /// eligible or the provider has no draws left.
    async fn next_round<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        mut machine: Machine,
    ) -> DispatchResult {
        let params = Params::get(ctx.overlay).await?;
        let next = ctx.height().saturating_add(params.challenge_timeout_blocks);
        machine.challenge = None;
        let emitted = match Self::draw_challenger(ctx, provider, &machine).await? {
            Some(challenger) => {
                machine.status = MachineStatus::AwaitingChallenge { challenger };
                events([Event::ChallengerDrawn {
                    provider,
                    challenger,
                }])
            }
            None => {
                machine.status = MachineStatus::AwaitingDraw;
                machine.rounds = machine.rounds.saturating_add(1);
                events([Event::NoChallengerDrawn { provider }])
            }
        };
        Self::reschedule(ctx, provider, &mut machine, next).await?;
        Machines::insert(ctx.overlay, &provider, &machine)?;
        Ok(emitted)
    }

    /// A challenger for `provider`'s machine, if the provider has draws left in the window: by
    /// stake among the provisioners other than the machine's excluded accounts and the
    /// challengers it answered and, while
    /// others are eligible, those that stayed silent for this provider. Counts the draw.
    async fn draw_challenger<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        machine: &Machine,
    ) -> Result<Option<Address>, DispatchError> {
        let mut history = Draws::get(ctx.overlay, &provider)
            .await?
            .unwrap_or_default();
        let window_end = history.window_start.saturating_add(DRAW_WINDOW_BLOCKS);
        if ctx.height() >= window_end {
            history.draws = 0;
            history.window_start = ctx.height();
        }
        if history.draws >= DRAWS_MAX_PER_PROVIDER {
            return Ok(None);
        }
        // Never the owner or agent, nor a challenger this registration answered already, nor
        // an account that registered once this block's randomness (known once its parent
        // exists) was known.
        let mut excluded = machine.excluded.to_vec();
        excluded.extend(machine.answered.iter().copied());
        let settled = ctx.height().saturating_sub(DRAW_DELAY_BLOCKS);
        let candidates = Provisioning::candidates_registered_by(ctx, &excluded, settled).await?;
        let fresh: Vec<_> = candidates
            .iter()
            .filter(|(account, _)| !history.silent.contains(account))
            .copied()
            .collect();
        let pool = match fresh.is_empty() {
            true => candidates,
            false => fresh,
        };
        let randomness = hash(&[
            CHALLENGER_DOMAIN,
            ctx.block.randomness.as_ref(),
            &provider.get().to_be_bytes(),
        ]);
        let round = u64::from(history.draws);
        let picked = draw(
            &pool,
            randomness.as_ref(),
            EnvironmentId(provider.get()),
            round,
            1,
        );
        let challenger = picked.first().copied();
        if challenger.is_some() {
            history.draws = history.draws.saturating_add(1);
            Draws::insert(ctx.overlay, &provider, &history)?;
        }
        Ok(challenger)
    }

    /// Removes `provider`'s machine: off the deadline list, its EK released, uncounted.
    pub(crate) async fn remove<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        machine: Machine,
    ) -> DispatchResult {
        if !matches!(machine.status, MachineStatus::Excluded { .. }) {
            Self::unschedule(ctx, provider, machine.due).await?;
        }
        if let Some(bound) = machine.bound_ek {
            Endorsements::remove(ctx.overlay, &bound)?;
        }
        Machines::remove(ctx.overlay, &provider)?;
        let count = MachineCount::get(ctx.overlay).await?;
        MachineCount::put(ctx.overlay, &count.saturating_sub(1))?;
        match Providers::contains(ctx.overlay, &provider).await? {
            true => Dvci::set_attested(ctx.overlay, provider, None).await?,
            // A chain staged for it goes with a provider that left.
            false => StagedEndorsements::remove(ctx.overlay, &provider)?,
        }
        Ok(events([Event::MachineRemoved { provider }]))
    }
}
