//! `market` (module index 2): the price table and leases with escrow charged for verified
//! blocks (seed `003`: per-block pricing set by the DAO).
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
//! # Billing follows verified service
//! At the end of every block ([`Module::on_block_end`]) each active lease asks
//! [`EnvironmentLifecycle::service`] whether its environment is `Verified` (a quorum of
//! staked cross-checkers confirmed it, see `provisioning`) and counts the block as verified
//! or not, for the lease and for the provider's service record (`dvci`, used by placement).
//! It is **charged** `rate` only in a verified block or within [`Terms::grace_blocks`] after
//! one (unless a quorum found a fault since: no grace then). The charge is split: the community share to the community pool, `assignee_share` to
//! the assignee of the last verifying round, `checkers_share` evenly to the checkers that
//! confirmed it, the rest (with any rounding remainder) to the provider's owner; every payout
//! is in the `LeaseBilled` event and summed on the lease.
//!
//! A lease that goes [`Terms::verify_deadline_blocks`] without verified service (from its
//! creation: never verified, a full refund; or from its last verified block) is closed with
//! its unspent escrow refunded. A lease whose escrow cannot pay the next block is closed in
//! the block that spent it (it never runs free), its placement released and its environment
//! destroyed. `CloseLease` ends it early and refunds the unspent escrow; `ExtendLease` escrows
//! more blocks. A price is never zero, so every lease ends.
//!
//! # Invariant ([`Market::try_state`])
//! The active list is ascending and holds exactly the open leases; closed leases hold no
//! escrow and open ones can pay their next block; every lease's payouts add up to its charged
//! blocks times its rate; each provider's allocation is the sum of
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
    dvci::{MinimumBond, ProviderId, Providers, RegionId, ResourceClass, Resources},
    market::{
        ActiveLeases, CallHandler, CloseReason, CommunityShare, Error, Event, Lease, LeaseId,
        LeaseTerms, Leases, NextLeaseId, Payout, Prices, Role, Terms,
    },
    operations::Spec,
    DispatchError, Event as RuntimeEvent,
};
use std::{cmp::Reverse, collections::BTreeMap, future::Future, marker::PhantomData};

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

    /// Whether the lease's environment is `Verified` now, and who verified it last.
    fn service<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        lease: LeaseId,
    ) -> impl Future<Output = Result<Service, DispatchError>> + Send;
}

/// The service of a lease's environment, as `market` bills it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// The environment is `Verified` in this block.
    pub verified: bool,
    /// The assignee of its last verifying round.
    pub assignee: Option<Address>,
    /// The checkers that confirmed that round.
    pub checkers: Vec<Address>,
    /// No round confirmed the current state since a quorum found a fault (or none ever did):
    /// no grace after the last verified block.
    pub disputed: bool,
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

    /// Closes every open lease placed on `provider` (its machine was excluded by
    /// `attestation`): unspent escrow refunded, environments destroyed. Events in lease order.
    pub async fn close_provider_leases<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
    ) -> DispatchResult {
        let mut emitted = Vec::new();
        for id in ActiveLeases::get(ctx.overlay).await? {
            let record = Leases::require(ctx.overlay, &id).await?;
            if record.provider == provider {
                emitted.extend(Self::close(ctx, id, record, CloseReason::ProviderExcluded).await?);
            }
        }
        Ok(emitted)
    }

    /// Counts one block of `id`'s service and charges it if verified (or in grace); closes
    /// the lease past the verification deadline or when its escrow cannot pay the next block.
    async fn bill<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        id: LeaseId,
        share: u8,
        terms: &Terms,
    ) -> DispatchResult {
        let height = ctx.height();
        let mut record = Leases::require(ctx.overlay, &id).await?;
        // A lease on a provider that is gone is a broken invariant, not an unverified block.
        let owner = Providers::require(ctx.overlay, &record.provider)
            .await?
            .owner;
        let service = L::service(ctx, id).await?;
        Dvci::record_service(ctx.overlay, record.provider, service.verified).await?;
        if service.verified {
            record.verified_blocks = record.verified_blocks.saturating_add(1);
            record.last_verified_at = Some(height);
        } else {
            record.unverified_blocks = record.unverified_blocks.saturating_add(1);
        }
        let in_grace = !service.disputed
            && record
                .last_verified_at
                .is_some_and(|at| height.saturating_sub(at) <= terms.grace_blocks);
        if !in_grace {
            let since = record.last_verified_at.unwrap_or(record.created_at);
            if height.saturating_sub(since) >= terms.verify_deadline_blocks {
                let reason = match record.last_verified_at {
                    None => CloseReason::NeverVerified,
                    Some(_) => CloseReason::ServiceLost,
                };
                return Self::close(ctx, id, record, reason).await;
            }
            Leases::insert(ctx.overlay, &id, &record)?;
            return Ok(Vec::new());
        }
        let payouts = Self::split(owner, &record, &service, (share, terms))?;
        for payout in &payouts {
            Balances::pay_reserved(ctx.overlay, &record.tenant, &payout.account, payout.amount)
                .await?;
            Self::add_payout(&mut record, payout);
        }
        record.escrow = record
            .escrow
            .checked_sub(record.rate)
            .ok_or_else(|| corruption("a lease's escrow does not cover its rate"))?;
        record.blocks_billed = record.blocks_billed.saturating_add(1);
        let mut emitted = events([Event::LeaseBilled {
            lease: id,
            charged: record.rate,
            payouts,
        }]);
        if record.escrow < record.rate {
            emitted.extend(Self::close(ctx, id, record, CloseReason::EscrowExhausted).await?);
        } else {
            Leases::insert(ctx.overlay, &id, &record)?;
        }
        Ok(emitted)
    }

    /// Splits one block's `rate` (see the module docs) between the provider's `owner`, the
    /// community (`share` %) and the verifiers; the payouts add up to the rate.
    fn split(
        owner: Address,
        record: &Lease,
        service: &Service,
        (share, terms): (u8, &Terms),
    ) -> Result<Vec<Payout>, DispatchError> {
        let part = |percent: u8| {
            record
                .rate
                .percent(percent)
                .ok_or_else(|| corruption("a share above 100 %"))
        };
        let mut payouts = vec![Payout {
            account: community_account(),
            role: Role::Community,
            amount: part(share)?,
        }];
        if let Some(assignee) = service.assignee {
            payouts.push(Payout {
                account: assignee,
                role: Role::Assignee,
                amount: part(terms.assignee_share)?,
            });
        }
        let checkers_part = part(terms.checkers_share)?;
        let each = checkers_part
            .0
            .checked_div(service.checkers.len() as u128)
            .unwrap_or(0);
        for checker in &service.checkers {
            payouts.push(Payout {
                account: *checker,
                role: Role::Checker,
                amount: Amount(each),
            });
        }
        let paid = payouts
            .iter()
            .try_fold(Amount::ZERO, |sum, payout| sum.checked_add(payout.amount))
            .ok_or_else(|| corruption("payouts overflow"))?;
        let rest = record
            .rate
            .checked_sub(paid)
            .ok_or_else(|| corruption("shares above the rate"))?;
        payouts.insert(
            0,
            Payout {
                account: owner,
                role: Role::Provider,
                amount: rest,
            },
        );
        payouts.retain(|payout| payout.amount != Amount::ZERO);
        Ok(payouts)
    }

    /// Sums `payout` into the lease's list (or its unlisted total when the list is full).
    fn add_payout(record: &mut Lease, payout: &Payout) {
        let listed = record
            .payouts
            .iter_mut()
            .find(|entry| entry.account == payout.account && entry.role == payout.role);
        let sum = |total: Amount| {
            total
                .checked_add(payout.amount)
                .unwrap_or(Amount(u128::MAX))
        };
        match listed {
            Some(entry) => entry.amount = sum(entry.amount),
            None => {
                if record.payouts.try_push(*payout).is_err() {
                    record.paid_unlisted = sum(record.paid_unlisted);
                }
            }
        }
    }
}

/// Width of the reliability bands placement ranks providers by, per mille: providers whose
/// scores differ by less count as equally reliable.
pub const RELIABILITY_BAND_PERMILLE: u64 = 50;

/// Places `request` in `region` (see the module docs) and returns the provider it went to.
pub async fn schedule<R: StateReader>(
    ctx: &mut Context<'_, '_, R>,
    region: RegionId,
    class: ResourceClass,
    request: &Resources,
) -> Result<Option<ProviderId>, DispatchError> {
    let group = Dvci::aggregate(ctx.overlay, region, class).await?;
    let minimum_bond = MinimumBond::get(ctx.overlay).await?;
    let mut ranked = Vec::with_capacity(group.providers.len());
    for id in group.providers {
        let record = Providers::require(ctx.overlay, &id).await?;
        // Under-bonded, without an agent key (nobody could check what it runs), or not
        // attested where the chain requires it.
        if record.bond < minimum_bond
            || record.agent_key.is_none()
            || !Dvci::attestation_allows(ctx.overlay, id, ctx.height()).await?
        {
            continue;
        }
        let score = Dvci::reliability(ctx.overlay, id).await?.score_permille();
        let band = score / RELIABILITY_BAND_PERMILLE;
        let free_vcpu = record.inventory.vcpu.saturating_sub(record.allocated.vcpu);
        let tie = hash(&[ctx.block.randomness.as_ref(), &id.get().to_be_bytes()]);
        ranked.push((Reverse(band), Reverse(free_vcpu), tie, id));
    }
    ranked.sort();
    for (_, _, _, id) in ranked {
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
        if *price == Amount::ZERO {
            return Err(Error::ZeroPrice.into());
        }
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
        if rate == Amount::ZERO {
            return Err(Error::ZeroPrice.into());
        }
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
            verified_blocks: 0,
            unverified_blocks: 0,
            last_verified_at: None,
            payouts: Default::default(),
            paid_unlisted: Amount::ZERO,
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
        if *percent > 100 || !LeaseTerms::get(ctx.overlay).await?.check(*percent) {
            return Err(Error::ShareTooLarge(*percent).into());
        }
        CommunityShare::put(ctx.overlay, percent)?;
        Ok(events([Event::CommunityShareSet { percent: *percent }]))
    }

    async fn set_terms(ctx: &mut Context<'_, '_, R>, terms: &Terms) -> DispatchResult {
        ctx.ensure_privileged()?;
        if !terms.check(CommunityShare::get(ctx.overlay).await?) {
            return Err(Error::InvalidTerms.into());
        }
        LeaseTerms::put(ctx.overlay, terms)?;
        Ok(events([Event::TermsSet { terms: *terms }]))
    }
}

impl<L: EnvironmentLifecycle> Module for Market<L> {
    logos_framework::module_calls!(logos_types::market);

    /// Bills every active lease (see the module docs); events in lease order.
    async fn on_block_end<R: StateReader>(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let share = CommunityShare::get(ctx.overlay).await?.min(100);
        let terms = LeaseTerms::get(ctx.overlay).await?;
        let mut emitted: Vec<RuntimeEvent> = Vec::new();
        for id in ActiveLeases::get(ctx.overlay).await? {
            emitted.extend(Self::bill(ctx, id, share, &terms).await?);
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
            let paid = record
                .payouts
                .iter()
                .try_fold(record.paid_unlisted, |sum, payout| {
                    sum.checked_add(payout.amount)
                });
            let charged = record.rate.0.checked_mul(u128::from(record.blocks_billed));
            if paid.map(|paid| paid.0) != charged {
                return Err(format!(
                    "lease {id}: payouts {paid:?} differ from {} charged blocks of {}",
                    record.blocks_billed, record.rate
                ));
            }
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
