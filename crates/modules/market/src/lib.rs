//! `market` (module index 2): the price table and leases with escrow billed every block (seed
//! `003`: per-block pricing set by the DAO).
//!
//! Owns [`Prices`], [`Leases`], [`ActiveLeases`] and the community share; types, calls and
//! storage are declared in [`logos_types::market`].
//!
//! # Leases
//! `CreateLease` prices the template (`compute_units × price[class]` per block), reserves
//! `rate × blocks` from the tenant as escrow (through `balances`), and places the product with
//! the scheduler ([`schedule`]): among the active providers of the class in the region, those
//! with room outside the aggregate's backup buffer, most free vCPU first, ties broken by
//! `SHA-256(chain randomness ‖ provider id)`. It then has the environment created through
//! [`EnvironmentLifecycle`], the trait the runtime implements with `operations` and
//! `provisioning` (modules above this one).
//!
//! At the end of every block ([`Module::on_block_end`]) each active lease pays `rate` out of
//! its escrow: `share %` to the community pool, the rest to the provider's owner. A lease whose
//! escrow cannot pay the next block is closed in the block that spent it (it never runs free),
//! its placement is released and its environment destroyed. `CloseLease` ends it early and
//! refunds the unspent escrow; `ExtendLease` escrows more blocks.
//!
//! # Invariant ([`Market::try_state`])
//! The active list is ascending and holds exactly the open leases; closed leases hold no
//! escrow and open ones can pay their next block; each provider's allocation is the sum of
//! the resources of the open leases placed on it. (That escrows, bonds and stakes add up to the
//! reserved balances is a chain-wide invariant, checked by the runtime with
//! [`Market::total_escrow`].)

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
use logos_primitives::{hash, Address, Amount};
use logos_types::{
    balances::community_account,
    catalog::{Products, TemplateId, Templates},
    corruption,
    dvci::{ProviderId, Providers, RegionId, ResourceClass, Resources},
    market::{
        ActiveLeases, CallHandler, CloseReason, CommunityShare, Error, Event, Lease, LeaseId,
        Leases, NextLeaseId, Prices,
    },
    operations::Spec,
    DispatchError, Event as RuntimeEvent,
};
use std::{collections::BTreeMap, future::Future, marker::PhantomData};

/// The environment of a new lease, as `market` asks for it.
#[derive(Clone, Debug)]
pub struct NewEnvironment {
    /// The lease (the environment gets the same id).
    pub lease: LeaseId,
    /// Who pays and owns it.
    pub tenant: Address,
    /// Where it was placed.
    pub provider: ProviderId,
    /// What was leased.
    pub template: TemplateId,
    /// The product's resources and the template's workload.
    pub spec: Spec,
}

/// What `market` needs from the modules above it: an environment for every new lease, and
/// its end when the lease closes. The runtime implements it (with `operations` and
/// `provisioning`).
pub trait EnvironmentLifecycle: Send + Sync + 'static {
    /// Records the desired state of a new lease's environment and has it realized.
    fn create<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        environment: NewEnvironment,
    ) -> impl Future<Output = DispatchResult> + Send;

    /// The lease ended: its environment must go.
    fn destroy<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        lease: LeaseId,
    ) -> impl Future<Output = DispatchResult> + Send;
}

/// The `market` module, creating and destroying environments through `L`.
pub struct Market<L>(PhantomData<L>);

impl<L: EnvironmentLifecycle> Market<L> {
    /// Sum of the escrow of open leases in a full state (reserved through `balances`).
    pub fn total_escrow(state: &State) -> Result<Amount, String> {
        Leases::sum_from(state, |lease| lease.escrow)
    }

    async fn lease_of_tenant<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        sender: Address,
        id: LeaseId,
    ) -> Result<Lease, DispatchError> {
        let record = Leases::get(ctx.overlay, &id)
            .await?
            .ok_or(Error::UnknownLease(id))?;
        if record.tenant != sender {
            return Err(Error::NotTenant.into());
        }
        if record.closed.is_some() {
            return Err(Error::LeaseClosed(id).into());
        }
        Ok(record)
    }

    /// Ends a lease: refunds its escrow, releases its placement, drops it from the active list
    /// and has its environment destroyed.
    async fn close<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        id: LeaseId,
        mut record: Lease,
        reason: CloseReason,
    ) -> DispatchResult {
        let refund = record.escrow;
        Balances::unreserve(ctx.overlay, &record.tenant, refund).await?;
        Dvci::release(ctx.overlay, record.provider, &record.resources).await?;
        record.escrow = Amount::ZERO;
        record.closed = Some((ctx.height(), reason));
        Leases::insert(ctx.overlay, &id, &record)?;
        let mut active = ActiveLeases::get(ctx.overlay).await?;
        if !active.remove_sorted(&id) {
            return Err(corruption("an open lease is not in the active list"));
        }
        ActiveLeases::put(ctx.overlay, &active)?;
        let mut emitted = events([Event::LeaseClosed {
            lease: id,
            reason,
            refund,
        }]);
        emitted.extend(L::destroy(ctx, id).await?);
        Ok(emitted)
    }

    /// Bills one lease for this block; closes it if its escrow cannot pay the next one.
    async fn bill<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        id: LeaseId,
        share: u8,
    ) -> DispatchResult {
        let mut record = Leases::require(ctx.overlay, &id).await?;
        let owner = Providers::require(ctx.overlay, &record.provider)
            .await?
            .owner;
        let community_payout = record
            .rate
            .percent(share)
            .ok_or_else(|| corruption("community share above 100 %"))?;
        let provider_payout = record
            .rate
            .checked_sub(community_payout)
            .ok_or_else(|| corruption("community payout above the rate"))?;
        for (to, amount) in [
            (owner, provider_payout),
            (community_account(), community_payout),
        ] {
            Balances::pay_reserved(ctx.overlay, &record.tenant, &to, amount).await?;
        }
        record.escrow = record
            .escrow
            .checked_sub(record.rate)
            .ok_or_else(|| corruption("a lease's escrow does not cover its rate"))?;
        record.blocks_billed = record.blocks_billed.saturating_add(1);
        let mut emitted = events([Event::LeaseBilled {
            lease: id,
            provider_payout,
            community_payout,
        }]);
        if record.escrow < record.rate {
            emitted.extend(Self::close(ctx, id, record, CloseReason::EscrowExhausted).await?);
        } else {
            Leases::insert(ctx.overlay, &id, &record)?;
        }
        Ok(emitted)
    }
}

/// Places `request` in `region` (see the module docs) and returns the provider it went to.
pub async fn schedule<R: StateReader>(
    ctx: &mut Context<'_, '_, R>,
    region: RegionId,
    class: ResourceClass,
    request: &Resources,
) -> Result<Option<ProviderId>, DispatchError> {
    let group = Dvci::aggregate(ctx.overlay, region, class).await?;
    let mut ranked = Vec::with_capacity(group.providers.len());
    for id in group.providers {
        let record = Providers::require(ctx.overlay, &id).await?;
        let free_vcpu = record.inventory.vcpu.saturating_sub(record.allocated.vcpu);
        let tie = hash(&[ctx.block.randomness.as_ref(), &id.get().to_be_bytes()]);
        ranked.push((std::cmp::Reverse(free_vcpu), tie, id));
    }
    ranked.sort();
    for (_, _, id) in ranked {
        if Dvci::allocate(ctx.overlay, id, request).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

impl<R: StateReader, L: EnvironmentLifecycle> CallHandler<Context<'_, '_, R>> for Market<L> {
    async fn set_price(
        ctx: &mut Context<'_, '_, R>,
        class: &ResourceClass,
        price: &Amount,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        Prices::insert(ctx.overlay, class, price)?;
        Ok(events([Event::PriceSet {
            class: *class,
            price: *price,
        }]))
    }

    async fn create_lease(
        ctx: &mut Context<'_, '_, R>,
        template_id: &TemplateId,
        region: &RegionId,
        blocks: &u64,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let template = Templates::get(ctx.overlay, template_id)
            .await?
            .ok_or(Error::UnknownTemplate(*template_id))?;
        let product = Products::get(ctx.overlay, &template.product)
            .await?
            .ok_or(Error::UnknownProduct(*template_id))?;
        let price = Prices::get(ctx.overlay, &product.class)
            .await?
            .ok_or(Error::NoPrice(product.class))?;
        if *blocks == 0 {
            return Err(Error::EmptyLease.into());
        }
        let rate = price
            .0
            .checked_mul(product.compute_units as u128)
            .map(Amount)
            .ok_or(Error::AmountOverflow)?;
        let escrow = rate
            .0
            .checked_mul(*blocks as u128)
            .map(Amount)
            .ok_or(Error::AmountOverflow)?;
        let mut active = ActiveLeases::get(ctx.overlay).await?;
        if active.is_full() {
            return Err(Error::TooManyLeases.into());
        }
        Balances::reserve(ctx.overlay, &sender, escrow).await?;
        let provider = schedule(ctx, *region, product.class, &product.resources)
            .await?
            .ok_or(Error::NoCapacity(*region))?;
        let id = NextLeaseId::get(ctx.overlay).await?;
        NextLeaseId::put(ctx.overlay, &id.next().ok_or(Error::IdsExhausted)?)?;
        let record = Lease {
            tenant: sender,
            template: *template_id,
            provider,
            region: *region,
            resources: product.resources,
            rate,
            escrow,
            created_at: ctx.height(),
            blocks_billed: 0,
            closed: None,
        };
        Leases::insert(ctx.overlay, &id, &record)?;
        active.insert_sorted(id).map_err(|_| Error::TooManyLeases)?;
        ActiveLeases::put(ctx.overlay, &active)?;
        let mut emitted = events([Event::LeaseCreated {
            lease: id,
            tenant: sender,
            provider,
            rate,
        }]);
        let environment = NewEnvironment {
            lease: id,
            tenant: sender,
            provider,
            template: *template_id,
            spec: Spec {
                resources: product.resources,
                workload: template.workload,
            },
        };
        emitted.extend(L::create(ctx, environment).await?);
        Ok(emitted)
    }

    async fn extend_lease(
        ctx: &mut Context<'_, '_, R>,
        lease: &LeaseId,
        blocks: &u64,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let mut record = Self::lease_of_tenant(ctx, sender, *lease).await?;
        if *blocks == 0 {
            return Err(Error::EmptyLease.into());
        }
        let added = record
            .rate
            .0
            .checked_mul(*blocks as u128)
            .map(Amount)
            .ok_or(Error::AmountOverflow)?;
        record.escrow = record
            .escrow
            .checked_add(added)
            .ok_or(Error::AmountOverflow)?;
        Balances::reserve(ctx.overlay, &sender, added).await?;
        Leases::insert(ctx.overlay, lease, &record)?;
        Ok(events([Event::LeaseExtended {
            lease: *lease,
            added,
        }]))
    }

    async fn close_lease(ctx: &mut Context<'_, '_, R>, lease: &LeaseId) -> DispatchResult {
        let sender = ctx.sender()?;
        let record = Self::lease_of_tenant(ctx, sender, *lease).await?;
        Self::close(ctx, *lease, record, CloseReason::ClosedByTenant).await
    }

    async fn set_community_share(ctx: &mut Context<'_, '_, R>, percent: &u8) -> DispatchResult {
        ctx.ensure_privileged()?;
        if *percent > 100 {
            return Err(Error::ShareTooLarge(*percent).into());
        }
        CommunityShare::put(ctx.overlay, percent)?;
        Ok(events([Event::CommunityShareSet { percent: *percent }]))
    }
}

impl<L: EnvironmentLifecycle> Module for Market<L> {
    logos_framework::module_calls!(logos_types::market);

    /// Bills every active lease (see the module docs); events in lease order.
    async fn on_block_end<R: StateReader>(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let share = CommunityShare::get(ctx.overlay).await?.min(100);
        let mut emitted: Vec<RuntimeEvent> = Vec::new();
        for id in ActiveLeases::get(ctx.overlay).await? {
            emitted.extend(Self::bill(ctx, id, share).await?);
        }
        Ok(emitted)
    }

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        let text = |error: logos_types::StateError| error.to_string();
        let active = ActiveLeases::get_from(state).map_err(text)?;
        ensure_ascending(&active, "active leases")?;
        let mut open = Vec::new();
        let mut placed: BTreeMap<ProviderId, Resources> = BTreeMap::new();
        for entry in Leases::iter_from(state) {
            let (id, record) = entry.map_err(text)?;
            match record.closed {
                None if record.escrow < record.rate => {
                    return Err(format!("open lease {id} cannot pay its next block"))
                }
                None => {
                    open.push(id);
                    let sum = placed.entry(record.provider).or_default();
                    *sum = sum.checked_add(&record.resources).ok_or_else(|| {
                        format!("resources on provider {} overflow", record.provider)
                    })?;
                }
                Some(_) if record.escrow != Amount::ZERO => {
                    return Err(format!("closed lease {id} holds escrow"))
                }
                Some(_) => {}
            }
        }
        if open != *active {
            return Err(format!(
                "open leases {open:?} differ from the active list {active:?}"
            ));
        }
        for entry in Providers::iter_from(state) {
            let (id, provider) = entry.map_err(text)?;
            let leased = placed.remove(&id).unwrap_or_default();
            if provider.allocated != leased {
                return Err(format!(
                    "provider {id} has {:?} allocated but {leased:?} leased",
                    provider.allocated
                ));
            }
        }
        match placed.keys().next() {
            Some(id) => Err(format!("open leases on unknown provider {id}")),
            None => Ok(()),
        }
    }
}
