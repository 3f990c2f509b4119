//! The Logos runtime: the on-chain modules composed in their fixed order.
//!
//! Execution is a pure function of (state before, block context, transactions): no wall clock,
//! no floats, no randomness beyond the block's, no hash-map iteration. State is read through a
//! `StateReader` (the node backs it with its authenticated store, tests with a map) and changed
//! only through the write set that [`execute_block`] returns.
//!
//! # Block execution, step by step
//! 0. The governance proposals due at this height are enacted ([`on_block_start`]), each call
//!    in a layer of its own as the privileged origin with the treasury as sender.
//! 1. For each transaction, in block order:
//!    - its chain id must equal the network's, its nonce must equal the sender's next nonce, and
//!      its fee must be at least `min_fee` and covered by the sender's balance; otherwise the
//!      whole block is invalid ([`BlockError`]);
//!    - the fee moves from the sender to the block's author and the nonce increments;
//!    - the call runs in a layer of its own ([`dispatch`]): on success its writes and events
//!      are kept, on a [`DispatchError`] they are dropped and the receipt names the module and
//!      error (the fee stays paid).
//! 2. The end-of-block hooks run in module order ([`on_block_end`]): `market` bills leases,
//!    `provisioning` keeps assignments alive, `staking` starts epochs and fixes committees,
//!    `governance` tallies the votes that end, `beacon` forms the group key of the epoch
//!    `staking` just started. A failing hook's writes are dropped and a
//!    `HookFailed` event says why; the chain goes on.
//! 3. The block's write set is the union of all kept writes, in key order.
//!
//! A leader builds its block with [`build_block`]: the same steps, except that a transaction
//! that would make the block invalid is left out (with its sender's later ones) and reported,
//! so a block can always be built.
//!
//! Signatures are checked by the caller before execution (the node batches them); see
//! `Transaction::verify_signature`.
//!
//! # Module layering
//! ```text
//! provisioning (4) ──▶ operations (3) ──▶ catalog (5)
//!      │                                    ▲
//!      ▼                                    │
//! balances (0) ◀── dvci (1) ◀── market (2) ─┘
//!      ▲  ▲                       │
//!      │  └───────────────────────┘
//!      ├── peers (6)
//!      └── staking (7) ◀── governance (8)
//! attestation (9) ──▶ dvci (1), market (2), provisioning (4)
//! beacon (10) ──▶ staking (7)
//! ```
//! Arrows point to the module used. `market` needs an environment per lease from the modules
//! above it: it declares [`logos_market::EnvironmentLifecycle`], and [`Runtime`] implements it
//! with `operations` (desired state) and `provisioning` (assignment).
//!
//! # Chain-wide invariants ([`try_state_all`])
//! Every module's `try_state`, and the reserved-balance conservation: the sum of all reserved
//! balances equals the provider bonds plus the open leases' escrow plus the provisioner stakes
//! plus the full-node registration deposits (`peers`) plus the bonded stake (`staking`) plus
//! the deposits of proposals still voting (`governance`).

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

mod executor;
#[cfg(any(test, feature = "mock"))]
#[allow(clippy::arithmetic_side_effects)] // Test support (heights and clocks of a mock chain).
pub mod mock;

pub use executor::{build_block, execute_block, BlockError, BlockOutcome, BuiltBlock};
pub use logos_framework::{BlockContext, State, StateReader, WriteSet};
pub use logos_governance::Governance as GovernanceModule;
pub use logos_staking::Staking as StakingModule;

use executor::hook_failure;
use logos_attestation::Attestation;
use logos_balances::Balances;
use logos_beacon::Beacon;
use logos_catalog::CatalogModule;
use logos_dvci::Dvci;
use logos_framework::{Context, DispatchResult, MapExt, Module, Overlay, TryStateResult};
use logos_governance::Governance;
use logos_market::{EnvironmentLifecycle, Market, NewEnvironment, Service};
use logos_operations::Operations;
use logos_peers::Peers;
use logos_provisioning::Provisioning;
use logos_staking::Staking;
use logos_types::{
    market::LeaseId,
    operations::{
        ConditionStatus, ConditionType, Desired, Environment, EnvironmentId, Environments,
    },
    provisioning::Assignments,
    Call, DispatchError, Event, Genesis, Origin,
};

/// The runtime: wires the modules together (see the crate docs).
pub struct Runtime;

/// The market, creating environments through the runtime.
pub type MarketModule = Market<Runtime>;

/// Machine Integrity Attestation, closing excluded providers' leases through the market.
pub type AttestationModule = Attestation<Runtime>;

impl EnvironmentLifecycle for Runtime {
    async fn create<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: NewEnvironment,
    ) -> DispatchResult {
        let id = EnvironmentId::from(environment.lease);
        let record = Environment::new(
            environment.tenant,
            environment.provider,
            environment.template,
            environment.spec,
            ctx.height(),
        );
        let mut emitted = Operations::create(ctx, id, record).await?;
        emitted.extend(Provisioning::assign_new(ctx, id).await?);
        Ok(emitted)
    }

    async fn destroy<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        lease: LeaseId,
    ) -> DispatchResult {
        Operations::destroy(ctx, EnvironmentId::from(lease)).await
    }

    async fn service<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        lease: LeaseId,
    ) -> Result<Service, DispatchError> {
        let id = EnvironmentId::from(lease);
        let environment = Environments::require(ctx.overlay, &id).await?;
        let verified = environment.condition(ConditionType::Verified).status
            == ConditionStatus::True
            && environment.desired == Desired::Running;
        let task = Assignments::get(ctx.overlay, &id)
            .await?
            .unwrap_or_default();
        // A quorum's finding against the report clears the verifiers until a round confirms
        // it again: no grace meanwhile.
        let disputed = task.verifiers.assignee.is_none();
        Ok(Service {
            verified,
            assignee: task.verifiers.assignee,
            checkers: task.verifiers.checkers.into_inner(),
            disputed,
        })
    }
}

/// Routes `call` to its module.
pub async fn dispatch<R: StateReader>(
    ctx: &mut Context<'_, '_, R>,
    origin: &Origin,
    call: &Call,
) -> DispatchResult {
    match call {
        Call::Balances(call) => Balances::dispatch(ctx, origin, call).await,
        Call::Dvci(call) => Dvci::dispatch(ctx, origin, call).await,
        Call::Market(call) => MarketModule::dispatch(ctx, origin, call).await,
        Call::Operations(call) => Operations::dispatch(ctx, origin, call).await,
        Call::Provisioning(call) => Provisioning::dispatch(ctx, origin, call).await,
        Call::Catalog(call) => CatalogModule::dispatch(ctx, origin, call).await,
        Call::Peers(call) => Peers::dispatch(ctx, origin, call).await,
        Call::Staking(call) => Staking::dispatch(ctx, origin, call).await,
        Call::Governance(call) => Governance::dispatch(ctx, origin, call).await,
        Call::Attestation(call) => AttestationModule::dispatch(ctx, origin, call).await,
        Call::Beacon(call) => Beacon::dispatch(ctx, origin, call).await,
    }
}

/// Runs one module's end-of-block hook in a layer of its own (see the crate docs).
async fn hook<M: Module, R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    block: &BlockContext,
    emitted: &mut Vec<Event>,
) -> Result<(), BlockError> {
    let mut ctx = Context::new(&mut *overlay, block);
    match M::on_block_end(&mut ctx).await {
        Ok(events) => {
            overlay.commit();
            emitted.extend(events);
        }
        Err(error) => {
            overlay.rollback();
            emitted.push(hook_failure((M::INDEX, M::NAME), error)?);
        }
    }
    Ok(())
}

/// The start of a block, before its transactions: the governance proposals due at this height
/// are enacted: each proposal is concluded first (`Enacted`, so its call never runs twice),
/// then its call runs in a layer of its own as [`Governance::enactment_origin`]; a failing
/// call's writes are dropped and the proposal is marked `Failed`, with why.
pub async fn on_block_start<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    block: &BlockContext,
) -> Result<Vec<Event>, BlockError> {
    let mut ctx = Context::new(&mut *overlay, block);
    let (due, mut emitted) = match Governance::due(&mut ctx).await {
        Ok(found) => found,
        Err(error) => {
            overlay.rollback();
            return Ok(vec![hook_failure(
                (Governance::INDEX, Governance::NAME),
                error,
            )?]);
        }
    };
    overlay.commit();
    let origin = Governance::enactment_origin();
    for (id, call) in due {
        // Concluded first and on its own: the call never runs twice.
        let mut ctx = Context::new(&mut *overlay, block);
        let concluded = Governance::conclude(&mut ctx, id, None).await;
        if !settle(overlay, concluded, &mut emitted)? {
            continue;
        }
        let mut ctx = Context::new(&mut *overlay, block);
        let failure = match dispatch(&mut ctx, &origin, &call).await {
            Ok(events) => {
                overlay.commit();
                emitted.extend(Governance::enacted(id, true));
                emitted.extend(events);
                continue;
            }
            Err(DispatchError::Backend(reason)) => {
                return Err(BlockError::State(logos_types::StateError::Backend(reason)))
            }
            Err(error) => {
                overlay.rollback();
                error.to_string()
            }
        };
        let mut ctx = Context::new(&mut *overlay, block);
        let recorded = Governance::record_failure(&mut ctx, id, failure).await;
        settle(overlay, recorded, &mut emitted)?;
    }
    Ok(emitted)
}

/// Keeps a governance step's writes and events, or drops its writes and reports it as a
/// `HookFailed` event; true if it was kept.
fn settle<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    result: DispatchResult,
    emitted: &mut Vec<Event>,
) -> Result<bool, BlockError> {
    match result {
        Ok(events) => {
            overlay.commit();
            emitted.extend(events);
            Ok(true)
        }
        Err(error) => {
            overlay.rollback();
            emitted.push(hook_failure((Governance::INDEX, Governance::NAME), error)?);
            Ok(false)
        }
    }
}

/// The end-of-block hooks of every module, in module index order.
pub async fn on_block_end<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    block: &BlockContext,
) -> Result<Vec<Event>, BlockError> {
    let mut emitted = Vec::new();
    hook::<Balances, R>(overlay, block, &mut emitted).await?;
    hook::<Dvci, R>(overlay, block, &mut emitted).await?;
    hook::<MarketModule, R>(overlay, block, &mut emitted).await?;
    hook::<Operations, R>(overlay, block, &mut emitted).await?;
    hook::<Provisioning, R>(overlay, block, &mut emitted).await?;
    hook::<CatalogModule, R>(overlay, block, &mut emitted).await?;
    hook::<Peers, R>(overlay, block, &mut emitted).await?;
    hook::<Staking, R>(overlay, block, &mut emitted).await?;
    hook::<Governance, R>(overlay, block, &mut emitted).await?;
    hook::<AttestationModule, R>(overlay, block, &mut emitted).await?;
    hook::<Beacon, R>(overlay, block, &mut emitted).await?;
    Ok(emitted)
}

/// The state a network starts from: every module's genesis writes.
pub fn genesis_state(genesis: &Genesis) -> Result<WriteSet, String> {
    let mut writes = WriteSet::new();
    for module_writes in [
        Balances::genesis(genesis)?,
        Dvci::genesis(genesis)?,
        MarketModule::genesis(genesis)?,
        Operations::genesis(genesis)?,
        Provisioning::genesis(genesis)?,
        CatalogModule::genesis(genesis)?,
        Peers::genesis(genesis)?,
        Staking::genesis(genesis)?,
        Governance::genesis(genesis)?,
        AttestationModule::genesis(genesis)?,
        Beacon::genesis(genesis)?,
    ] {
        writes.extend(module_writes);
    }
    Ok(writes)
}

/// A module's name and its invariant check.
type Check = (&'static str, fn(&State) -> TryStateResult);

/// Every module's invariants and the chain-wide ones (see the crate docs) over a full state.
pub fn try_state_all(state: &State) -> TryStateResult {
    let checks: [Check; 11] = [
        (Balances::NAME, Balances::try_state),
        (Dvci::NAME, Dvci::try_state),
        (MarketModule::NAME, MarketModule::try_state),
        (Operations::NAME, Operations::try_state),
        (Provisioning::NAME, Provisioning::try_state),
        (CatalogModule::NAME, CatalogModule::try_state),
        (Peers::NAME, Peers::try_state),
        (Staking::NAME, Staking::try_state),
        (Governance::NAME, Governance::try_state),
        (AttestationModule::NAME, AttestationModule::try_state),
        (Beacon::NAME, Beacon::try_state),
    ];
    for (module, check) in checks {
        check(state).map_err(|violation| format!("{module}: {violation}"))?;
    }
    reserves_conserved(state).map_err(|violation| format!("runtime: {violation}"))
}

/// Reserved balances = provider bonds + open lease escrow + provisioner stakes + full-node
/// deposits + bonded stake + proposal deposits.
fn reserves_conserved(state: &State) -> Result<(), String> {
    let reserved = Balances::total_reserved(state)?;
    let bonds = Dvci::total_bonds(state)?;
    let escrow = MarketModule::total_escrow(state)?;
    let stakes = Provisioning::total_stake(state)?;
    let deposits = Peers::total_deposits(state)?;
    let bonded = Staking::total_bonded(state)?;
    let proposals = Governance::total_deposits(state)?;
    let held = [escrow, stakes, deposits, bonded, proposals]
        .into_iter()
        .try_fold(bonds, |held, amount| held.checked_add(amount))
        .ok_or("held tokens overflow")?;
    if reserved != held {
        return Err(format!(
            "reserved {reserved} != bonds {bonds} + escrow {escrow} + stakes {stakes} + \
             deposits {deposits} + bonded {bonded} + proposal deposits {proposals}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
