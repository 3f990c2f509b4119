//! `dvci` (module index 1): regions, providers and host aggregates of the Distributed Virtual
//! Computing Infrastructure (seed `002`: DVCI, DRN, host aggregates with a backup buffer).
//!
//! Owns [`Regions`], [`Providers`], [`Aggregates`] and the buffer and bond settings; types,
//! calls and storage are declared in [`logos_types::dvci`].
//!
//! - A provider registers with a bond (reserved through `balances`), starts `Pending`, and only
//!   the privileged origin admits (`Active`) or excludes it. Its owner deregisters it once
//!   nothing is placed on it, and gets the bond back.
//! - **Host aggregates and the buffer.** Only active providers count: an aggregate's capacity
//!   is the sum of its active providers' inventories. Placement ([`Dvci::allocate`]) never
//!   hands out the backup buffer: after it, the aggregate's allocation stays within
//!   `capacity × (100 − buffer) / 100` in every dimension, and the provider's within its
//!   inventory. Raising the buffer does not evict what is placed.
//! - **Attestation.** Unless the genesis said `unattested` ([`Unattested`]), placement takes
//!   only providers listed in [`Attested`], which `attestation` keeps through
//!   [`Dvci::set_attested`] and [`Dvci::exclude`] (status `Excluded`).
//!
//! # Invariant ([`Dvci::try_state`])
//! Each aggregate's capacity and allocation equal the sums over the active providers it lists;
//! every listed provider is active and of its region and class; every active provider is
//! listed; no provider's allocation exceeds its inventory; every attested provider exists.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use logos_balances::Balances;
use logos_framework::{
    ensure_ascending, events, Context, DispatchResult, MapExt, Module, Overlay, State, StateReader,
    TryStateResult, ValueExt, WriteSet,
};
use logos_primitives::{Amount, NodeKey};
use logos_types::{
    codec::BoundedString,
    corruption,
    dvci::{
        Aggregate, Aggregates, Attested, BufferPercent, CallHandler, Endpoint, Error, Event,
        MinimumBond, NextProviderId, Provider, ProviderId, ProviderStatus, Providers, Region,
        RegionId, Regions, Reliabilities, Reliability, ResourceClass, Resources, Unattested,
        BUFFER_PERCENT_MAX, REGION_NAME_MAX_BYTES,
    },
    DispatchError, Genesis, StateError,
};
use std::collections::BTreeMap;

/// The `dvci` module.
pub struct Dvci;

fn aggregate_key(provider: &Provider) -> (RegionId, ResourceClass) {
    (provider.region, provider.class)
}

/// The key and record of `provider`'s host aggregate.
async fn aggregate_of<R: StateReader>(
    overlay: &Overlay<'_, R>,
    provider: &Provider,
) -> Result<((RegionId, ResourceClass), Aggregate), StateError> {
    let key = aggregate_key(provider);
    let group = Dvci::aggregate(overlay, key.0, key.1).await?;
    Ok((key, group))
}

impl Dvci {
    /// Sum of all provider bonds in a full state (reserved through `balances`).
    pub fn total_bonds(state: &State) -> Result<Amount, String> {
        Providers::sum_from(state, |provider| provider.bond)
    }

    /// What placement may still hand out in an aggregate: capacity less the buffer less what is
    /// allocated (per dimension, floored at zero).
    pub async fn allocatable<R: StateReader>(
        overlay: &Overlay<'_, R>,
        region: RegionId,
        class: ResourceClass,
    ) -> Result<Resources, StateError> {
        let group = Self::aggregate(overlay, region, class).await?;
        let buffer = BufferPercent::get(overlay).await?;
        let usable = group.capacity.percent(100u8.saturating_sub(buffer));
        Ok(usable.saturating_sub(&group.allocated))
    }

    async fn join_aggregate<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        id: ProviderId,
        record: &Provider,
    ) -> Result<(), DispatchError> {
        let (key, mut group) = aggregate_of(overlay, record).await?;
        group.capacity = group
            .capacity
            .checked_add(&record.inventory)
            .ok_or(Error::CapacityOverflow)?;
        group.allocated = group
            .allocated
            .checked_add(&record.allocated)
            .ok_or(Error::CapacityOverflow)?;
        if !group
            .providers
            .insert_sorted(id)
            .map_err(|_| Error::AggregateFull)?
        {
            return Err(corruption(format!("inactive provider {id} is listed")));
        }
        Ok(Aggregates::insert(overlay, &key, &group)?)
    }

    async fn leave_aggregate<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        id: ProviderId,
        record: &Provider,
    ) -> Result<(), DispatchError> {
        let (key, mut group) = aggregate_of(overlay, record).await?;
        let unlisted = || corruption(format!("active provider {id} is not in its aggregate"));
        if !group.providers.remove_sorted(&id) {
            return Err(unlisted());
        }
        group.capacity = group
            .capacity
            .checked_sub(&record.inventory)
            .ok_or_else(unlisted)?;
        group.allocated = group
            .allocated
            .checked_sub(&record.allocated)
            .ok_or_else(unlisted)?;
        Ok(Aggregates::insert(overlay, &key, &group)?)
    }

    async fn set_status<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        id: ProviderId,
        status: ProviderStatus,
    ) -> DispatchResult {
        let mut record = Providers::get(overlay, &id)
            .await?
            .ok_or(Error::UnknownProvider(id))?;
        let was_active = record.status == ProviderStatus::Active;
        let active = status == ProviderStatus::Active;
        if was_active && !active {
            Self::leave_aggregate(overlay, id, &record).await?;
        }
        if !was_active && active {
            Self::join_aggregate(overlay, id, &record).await?;
        }
        record.status = status;
        Providers::insert(overlay, &id, &record)?;
        Ok(events([Event::ProviderStatusChanged {
            provider: id,
            status,
        }]))
    }
}

/// What `market` and `provisioning` use of `dvci`: service records and bond slashes.
impl Dvci {
    /// Provider `id`'s service record (default for a provider with none).
    pub async fn reliability<R: StateReader>(
        overlay: &Overlay<'_, R>,
        id: ProviderId,
    ) -> Result<Reliability, StateError> {
        Ok(Reliabilities::get(overlay, &id).await?.unwrap_or_default())
    }

    /// Counts one lease-block of provider `id`: verified or not.
    pub async fn record_service<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        id: ProviderId,
        verified: bool,
    ) -> Result<(), StateError> {
        let mut record = Self::reliability(overlay, id).await?;
        let counter = match verified {
            true => &mut record.verified_blocks,
            false => &mut record.unverified_blocks,
        };
        *counter = counter.saturating_add(1);
        Reliabilities::insert(overlay, &id, &record)
    }

    /// Takes `percent` of provider `id`'s bond (at least one unit while any is left) and pays
    /// it to `to`; counts a fault on its service record. Returns the amount taken.
    pub async fn slash_bond<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        id: ProviderId,
        percent: u8,
        to: &logos_primitives::Address,
    ) -> Result<Amount, DispatchError> {
        let mut record = Providers::require(overlay, &id).await?;
        let amount = record
            .bond
            .slash_share(percent)
            .ok_or_else(|| corruption("bond slash above 100 %"))?;
        Balances::pay_reserved(overlay, &record.owner, to, amount).await?;
        record.bond = record
            .bond
            .checked_sub(amount)
            .ok_or_else(|| corruption("slash above the bond"))?;
        Providers::insert(overlay, &id, &record)?;
        let mut service = Self::reliability(overlay, id).await?;
        service.faults = service.faults.saturating_add(1);
        Reliabilities::insert(overlay, &id, &service)?;
        Ok(amount)
    }
}

/// What `attestation` uses of `dvci`: whether a provider's machine is attested, and its
/// exclusion.
impl Dvci {
    /// Records whether provider `id`'s machine is attested ([`Attested`]): `Some(height)`, the
    /// last height its last verified report covers (its next deadline), or `None`.
    pub async fn set_attested<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        id: ProviderId,
        attested: Option<u64>,
    ) -> Result<(), StateError> {
        match attested {
            Some(height) => Attested::insert(overlay, &id, &height),
            None => Attested::remove(overlay, &id),
        }
    }

    /// Excludes provider `id` (status `Excluded`, out of its aggregate, not attested); nothing
    /// if it is excluded already.
    pub async fn exclude<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        id: ProviderId,
    ) -> DispatchResult {
        Self::set_attested(overlay, id, None).await?;
        let record = Providers::require(overlay, &id).await?;
        if record.status == ProviderStatus::Excluded {
            return Ok(Vec::new());
        }
        Self::set_status(overlay, id, ProviderStatus::Excluded).await
    }

    /// Whether placement may use provider `id` at `height` as far as attestation goes: the
    /// genesis said `unattested`, or its last verified report covers `height`.
    pub async fn attestation_allows<R: StateReader>(
        overlay: &Overlay<'_, R>,
        id: ProviderId,
        height: u64,
    ) -> Result<bool, StateError> {
        if Unattested::get(overlay).await? {
            return Ok(true);
        }
        Ok(Attested::get(overlay, &id)
            .await?
            .is_some_and(|until| until >= height))
    }
}

/// What `market` uses of `dvci`: the providers of an aggregate, and placing resources on them.
impl Dvci {
    /// The host aggregate of `class` in `region` (empty if none).
    pub async fn aggregate<R: StateReader>(
        overlay: &Overlay<'_, R>,
        region: RegionId,
        class: ResourceClass,
    ) -> Result<Aggregate, StateError> {
        Ok(Aggregates::get(overlay, &(region, class))
            .await?
            .unwrap_or_default())
    }

    /// Places `request` on provider `id` if it is active, has room, and the aggregate stays
    /// outside its buffer; `Ok(false)` (nothing written) otherwise.
    pub async fn allocate<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        id: ProviderId,
        request: &Resources,
    ) -> Result<bool, DispatchError> {
        let Some(mut record) = Providers::get(overlay, &id)
            .await?
            .filter(|record| record.status == ProviderStatus::Active)
        else {
            return Ok(false);
        };
        let Some(allocated) = record
            .allocated
            .checked_add(request)
            .filter(|total| total.fits_in(&record.inventory))
        else {
            return Ok(false);
        };
        if !request.fits_in(&Self::allocatable(overlay, record.region, record.class).await?) {
            return Ok(false);
        }
        let (key, mut group) = aggregate_of(overlay, &record).await?;
        group.allocated = group
            .allocated
            .checked_add(request)
            .ok_or_else(|| corruption("aggregate allocation overflows its capacity"))?;
        record.allocated = allocated;
        Aggregates::insert(overlay, &key, &group)?;
        Providers::insert(overlay, &id, &record)?;
        Ok(true)
    }

    /// Returns `released` from provider `id` (and its aggregate while the provider is active).
    pub async fn release<R: StateReader>(
        overlay: &mut Overlay<'_, R>,
        id: ProviderId,
        released: &Resources,
    ) -> Result<(), DispatchError> {
        let uncovered = || corruption(format!("release on provider {id} exceeds its placements"));
        let mut record = Providers::get(overlay, &id)
            .await?
            .ok_or_else(|| corruption(format!("release on unknown provider {id}")))?;
        record.allocated = record
            .allocated
            .checked_sub(released)
            .ok_or_else(uncovered)?;
        if record.status == ProviderStatus::Active {
            let (key, mut group) = aggregate_of(overlay, &record).await?;
            group.allocated = group
                .allocated
                .checked_sub(released)
                .ok_or_else(uncovered)?;
            Aggregates::insert(overlay, &key, &group)?;
        }
        Ok(Providers::insert(overlay, &id, &record)?)
    }
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for Dvci {
    async fn register_provider(
        ctx: &mut Context<'_, '_, R>,
        endpoint: &Endpoint,
        inventory: &Resources,
        class: &ResourceClass,
        region: &RegionId,
        bond: &Amount,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        if endpoint.is_empty() {
            return Err(Error::EmptyText.into());
        }
        if inventory.is_zero() {
            return Err(Error::EmptyInventory.into());
        }
        if !Regions::contains(ctx.overlay, region).await? {
            return Err(Error::UnknownRegion(*region).into());
        }
        let minimum = MinimumBond::get(ctx.overlay).await?;
        if *bond < minimum {
            return Err(Error::BondTooLow {
                offered: *bond,
                minimum,
            }
            .into());
        }
        Balances::reserve(ctx.overlay, &sender, *bond).await?;
        let id = NextProviderId::get(ctx.overlay).await?;
        NextProviderId::put(ctx.overlay, &id.next().ok_or(Error::IdsExhausted)?)?;
        let record = Provider {
            owner: sender,
            endpoint: endpoint.clone(),
            inventory: *inventory,
            class: *class,
            region: *region,
            bond: *bond,
            status: ProviderStatus::Pending,
            allocated: Resources::default(),
            agent_key: None,
        };
        Providers::insert(ctx.overlay, &id, &record)?;
        Ok(events([Event::ProviderRegistered {
            provider: id,
            owner: sender,
            region: *region,
            class: *class,
        }]))
    }

    async fn deregister_provider(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let id = *provider;
        let record = Providers::get(ctx.overlay, &id)
            .await?
            .ok_or(Error::UnknownProvider(id))?;
        if record.owner != sender {
            return Err(Error::NotOwner.into());
        }
        if !record.allocated.is_zero() {
            return Err(Error::ProviderBusy(id).into());
        }
        if record.status == ProviderStatus::Active {
            Dvci::leave_aggregate(ctx.overlay, id, &record).await?;
        }
        Balances::unreserve(ctx.overlay, &record.owner, record.bond).await?;
        Providers::remove(ctx.overlay, &id)?;
        // Its machine (module `attestation`) is removed at the machine's next deadline.
        Attested::remove(ctx.overlay, &id)?;
        Ok(events([Event::ProviderDeregistered { provider: id }]))
    }

    async fn set_agent_key(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        key: &NodeKey,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let id = *provider;
        let mut record = Providers::get(ctx.overlay, &id)
            .await?
            .ok_or(Error::UnknownProvider(id))?;
        if record.owner != sender {
            return Err(Error::NotOwner.into());
        }
        if key.public_key().is_err() {
            return Err(Error::InvalidAgentKey(*key).into());
        }
        record.agent_key = Some(*key);
        Providers::insert(ctx.overlay, &id, &record)?;
        Ok(events([Event::AgentKeySet {
            provider: id,
            key: *key,
        }]))
    }

    async fn set_provider_status(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        status: &ProviderStatus,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        Dvci::set_status(ctx.overlay, *provider, *status).await
    }

    async fn create_region(
        ctx: &mut Context<'_, '_, R>,
        region: &RegionId,
        name: &BoundedString<REGION_NAME_MAX_BYTES>,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        if name.is_empty() {
            return Err(Error::EmptyText.into());
        }
        if Regions::contains(ctx.overlay, region).await? {
            return Err(Error::RegionExists(*region).into());
        }
        Regions::insert(ctx.overlay, region, &Region { name: name.clone() })?;
        Ok(events([Event::RegionCreated { region: *region }]))
    }

    async fn set_buffer_percent(ctx: &mut Context<'_, '_, R>, percent: &u8) -> DispatchResult {
        ctx.ensure_privileged()?;
        if *percent > BUFFER_PERCENT_MAX {
            return Err(Error::BufferTooLarge(*percent).into());
        }
        BufferPercent::put(ctx.overlay, percent)?;
        Ok(events([Event::BufferChanged { percent: *percent }]))
    }

    async fn set_minimum_bond(ctx: &mut Context<'_, '_, R>, bond: &Amount) -> DispatchResult {
        ctx.ensure_privileged()?;
        MinimumBond::put(ctx.overlay, bond)?;
        Ok(events([Event::MinimumBondChanged { bond: *bond }]))
    }
}

impl Module for Dvci {
    logos_framework::module_calls!(logos_types::dvci);

    /// A genesis `unattested` stores [`Unattested`]; otherwise nothing (attestation required).
    fn genesis(genesis: &Genesis) -> Result<WriteSet, String> {
        let mut writes = WriteSet::new();
        if genesis.params.unattested {
            writes.insert(
                <Unattested as logos_types::StorageValue>::key(),
                Some(logos_types::codec::encode(&true)),
            );
        }
        Ok(writes)
    }

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        let text = |error: StateError| error.to_string();
        let providers: BTreeMap<ProviderId, Provider> = Providers::iter_from(state)
            .collect::<Result<_, _>>()
            .map_err(text)?;
        for entry in Attested::iter_from(state) {
            let (id, _) = entry.map_err(text)?;
            if !providers.contains_key(&id) {
                return Err(format!("unknown provider {id} is attested"));
            }
        }
        let mut listed = 0usize;
        for entry in Aggregates::iter_from(state) {
            let ((region, class), group) = entry.map_err(text)?;
            let mut capacity = Resources::default();
            let mut allocated = Resources::default();
            for id in &group.providers {
                let record = providers
                    .get(id)
                    .ok_or(format!("aggregate lists unknown provider {id}"))?;
                if record.status != ProviderStatus::Active
                    || record.region != region
                    || record.class != class
                {
                    return Err(format!(
                        "aggregate lists provider {id} that is inactive or elsewhere"
                    ));
                }
                capacity = capacity
                    .checked_add(&record.inventory)
                    .ok_or("capacity overflow")?;
                allocated = allocated
                    .checked_add(&record.allocated)
                    .ok_or("allocation overflow")?;
            }
            if capacity != group.capacity || allocated != group.allocated {
                return Err(format!(
                    "aggregate {region}/{class:?} sums differ from its providers"
                ));
            }
            ensure_ascending(&group.providers, "an aggregate's providers")?;
            listed = listed.saturating_add(group.providers.len());
        }
        for (id, record) in &providers {
            if !record.allocated.fits_in(&record.inventory) {
                return Err(format!("provider {id} over-allocated"));
            }
        }
        let active = providers
            .values()
            .filter(|record| record.status == ProviderStatus::Active)
            .count();
        if active != listed {
            return Err(format!(
                "{active} active providers, {listed} listed in aggregates"
            ));
        }
        Ok(())
    }
}
