//! `dvci` (module index 1): regions, providers and host aggregates of the Distributed Virtual
//! Computing Infrastructure (seed `002`: DVCI, DRN, host aggregates with a backup buffer).
//!
//! # Storage (module index 1)
//! | item | key | value |
//! |---|---|---|
//! | 0 `Region` | region id (u16) | [`Region`] |
//! | 1 `Provider` | provider id (u64) | [`Provider`] |
//! | 2 `NextProviderId` | (none) | u64 |
//! | 3 `Aggregate` | region id (u16), class (u8) | [`Aggregate`] |
//! | 4 `BufferPercent` | (none) | u8, default [`DEFAULT_BUFFER_PERCENT`] |
//! | 5 `MinimumBond` | (none) | [`Amount`], default [`DEFAULT_MINIMUM_BOND`] |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::RegisterProvider`] | anyone (becomes the owner; the bond is reserved) |
//! | 1 | [`Call::DeregisterProvider`] | owner; nothing placed on it |
//! | 2 | [`Call::SetProviderStatus`] | privileged |
//! | 3 | [`Call::CreateRegion`] | privileged |
//! | 4 | [`Call::SetBufferPercent`] | privileged |
//! | 5 | [`Call::SetMinimumBond`] | privileged |
//!
//! # Host aggregates and the buffer
//! Only active providers count: an aggregate's capacity is the sum of its active providers'
//! inventories. Placement ([`allocate`]) never hands out the backup buffer: after it, the
//! aggregate's allocation stays within `capacity × (100 − buffer) / 100` in every dimension,
//! and the provider's within its inventory. Raising the buffer does not evict what is placed.
//!
//! # Invariant ([`try_state`])
//! Each aggregate's capacity and allocation equal the sums over the active providers it lists;
//! every listed provider is active and of its region and class; every active provider is
//! listed; no provider's allocation exceeds its inventory.

#[cfg(test)]
mod tests;
mod types;

pub use types::*;

use crate::{
    modules::balances,
    storage::{decode_value, read_value, Overlay, StateError, StateReader, StorageKey},
    Origin,
};
use logos_primitives::Amount;
use std::collections::BTreeMap;

/// Module index of `dvci`.
pub const MODULE_INDEX: u8 = 1;
const ITEM_REGION: u8 = 0;
const ITEM_PROVIDER: u8 = 1;
const ITEM_NEXT_PROVIDER_ID: u8 = 2;
const ITEM_AGGREGATE: u8 = 3;
const ITEM_BUFFER_PERCENT: u8 = 4;
const ITEM_MINIMUM_BOND: u8 = 5;

/// Backup buffer of every host aggregate unless changed, percent.
pub const DEFAULT_BUFFER_PERCENT: u8 = 30;
/// Minimum provider bond unless changed, smallest unit.
pub const DEFAULT_MINIMUM_BOND: Amount = Amount(1_000_000);
/// Largest configurable buffer, percent.
pub const BUFFER_PERCENT_MAX: u8 = 90;

/// Storage key of a region.
pub fn region_key(region: RegionId) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_REGION, &region.to_be_bytes())
}

/// Storage key of a provider.
pub fn provider_key(provider: ProviderId) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_PROVIDER, &provider.to_be_bytes())
}

/// Storage key of a host aggregate.
pub fn aggregate_key(region: RegionId, class: ResourceClass) -> StorageKey {
    let mut key = region.to_be_bytes().to_vec();
    key.push(class.index());
    StorageKey::new(MODULE_INDEX, ITEM_AGGREGATE, &key)
}

fn next_provider_id_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_NEXT_PROVIDER_ID, &[])
}

fn buffer_percent_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_BUFFER_PERCENT, &[])
}

fn minimum_bond_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_MINIMUM_BOND, &[])
}

/// Reads a provider.
pub async fn provider<R: StateReader>(
    overlay: &Overlay<'_, R>,
    id: ProviderId,
) -> Result<Option<Provider>, StateError> {
    read_value(overlay, &provider_key(id)).await
}

/// Reads a host aggregate (empty if none).
pub async fn aggregate<R: StateReader>(
    overlay: &Overlay<'_, R>,
    region: RegionId,
    class: ResourceClass,
) -> Result<Aggregate, StateError> {
    Ok(read_value(overlay, &aggregate_key(region, class))
        .await?
        .unwrap_or_default())
}

/// The backup buffer, percent.
pub async fn buffer_percent<R: StateReader>(overlay: &Overlay<'_, R>) -> Result<u8, StateError> {
    Ok(read_value(overlay, &buffer_percent_key())
        .await?
        .unwrap_or(DEFAULT_BUFFER_PERCENT))
}

/// The minimum provider bond.
pub async fn minimum_bond<R: StateReader>(overlay: &Overlay<'_, R>) -> Result<Amount, StateError> {
    Ok(read_value(overlay, &minimum_bond_key())
        .await?
        .unwrap_or(DEFAULT_MINIMUM_BOND))
}

/// Runs `call` for `origin`. Module errors leave the overlay to be rolled back by the executor.
pub async fn dispatch<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    call: &Call,
) -> Result<Result<Vec<Event>, Error>, StateError> {
    match call {
        Call::RegisterProvider {
            endpoint,
            inventory,
            class,
            region,
            bond,
        } => {
            register(
                overlay, origin, endpoint, *inventory, *class, *region, *bond,
            )
            .await
        }
        Call::DeregisterProvider { provider } => deregister(overlay, origin, *provider).await,
        Call::SetProviderStatus { provider, status } => {
            if !origin.privileged {
                return Ok(Err(Error::NotPrivileged));
            }
            set_status(overlay, *provider, *status).await
        }
        Call::CreateRegion { region, name } => {
            if !origin.privileged {
                return Ok(Err(Error::NotPrivileged));
            }
            if name.is_empty() {
                return Ok(Err(Error::EmptyText));
            }
            if read_value::<_, Region>(overlay, &region_key(*region))
                .await?
                .is_some()
            {
                return Ok(Err(Error::RegionExists(*region)));
            }
            overlay.put_encoded(region_key(*region), &Region { name: name.clone() });
            Ok(Ok(vec![Event::RegionCreated { region: *region }]))
        }
        Call::SetBufferPercent { percent } => {
            if !origin.privileged {
                return Ok(Err(Error::NotPrivileged));
            }
            if *percent > BUFFER_PERCENT_MAX {
                return Ok(Err(Error::BufferTooLarge(*percent)));
            }
            overlay.put_encoded(buffer_percent_key(), percent);
            Ok(Ok(vec![Event::BufferChanged { percent: *percent }]))
        }
        Call::SetMinimumBond { bond } => {
            if !origin.privileged {
                return Ok(Err(Error::NotPrivileged));
            }
            overlay.put_encoded(minimum_bond_key(), bond);
            Ok(Ok(vec![Event::MinimumBondChanged { bond: *bond }]))
        }
    }
}

async fn register<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    endpoint: &str,
    inventory: Resources,
    class: ResourceClass,
    region: RegionId,
    bond: Amount,
) -> Result<Result<Vec<Event>, Error>, StateError> {
    if endpoint.is_empty() {
        return Ok(Err(Error::EmptyText));
    }
    if inventory.is_zero() {
        return Ok(Err(Error::EmptyInventory));
    }
    if read_value::<_, Region>(overlay, &region_key(region))
        .await?
        .is_none()
    {
        return Ok(Err(Error::UnknownRegion(region)));
    }
    let minimum = minimum_bond(overlay).await?;
    if bond < minimum {
        return Ok(Err(Error::BondTooLow {
            offered: bond,
            minimum,
        }));
    }
    if let Err(error) = balances::reserve(overlay, &origin.sender, bond).await? {
        return Ok(Err(Error::BondUnpaid(error.to_string())));
    }
    let id: ProviderId = read_value(overlay, &next_provider_id_key())
        .await?
        .unwrap_or(0);
    overlay.put_encoded(next_provider_id_key(), &(id + 1));
    let record = Provider {
        owner: origin.sender,
        endpoint: endpoint.to_string(),
        inventory,
        class,
        region,
        bond,
        status: ProviderStatus::Pending,
        allocated: Resources::default(),
    };
    overlay.put_encoded(provider_key(id), &record);
    Ok(Ok(vec![Event::ProviderRegistered {
        provider: id,
        owner: origin.sender,
        region,
        class,
    }]))
}

async fn deregister<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    id: ProviderId,
) -> Result<Result<Vec<Event>, Error>, StateError> {
    let Some(record) = provider(overlay, id).await? else {
        return Ok(Err(Error::UnknownProvider(id)));
    };
    if record.owner != origin.sender {
        return Ok(Err(Error::NotOwner));
    }
    if !record.allocated.is_zero() {
        return Ok(Err(Error::ProviderBusy(id)));
    }
    if record.status == ProviderStatus::Active {
        leave_aggregate(overlay, id, &record).await?;
    }
    // The bond was reserved at registration: failing to release it is a bug.
    balances::unreserve(overlay, &record.owner, record.bond)
        .await?
        .expect("a registered provider's bond is reserved");
    overlay.put(provider_key(id), None);
    Ok(Ok(vec![Event::ProviderDeregistered { provider: id }]))
}

async fn set_status<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: ProviderId,
    status: ProviderStatus,
) -> Result<Result<Vec<Event>, Error>, StateError> {
    let Some(mut record) = provider(overlay, id).await? else {
        return Ok(Err(Error::UnknownProvider(id)));
    };
    if record.status == ProviderStatus::Active && status != ProviderStatus::Active {
        leave_aggregate(overlay, id, &record).await?;
    }
    if record.status != ProviderStatus::Active && status == ProviderStatus::Active {
        if let Err(error) = join_aggregate(overlay, id, &record).await? {
            return Ok(Err(error));
        }
    }
    record.status = status;
    overlay.put_encoded(provider_key(id), &record);
    Ok(Ok(vec![Event::ProviderStatusChanged {
        provider: id,
        status,
    }]))
}

async fn join_aggregate<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: ProviderId,
    record: &Provider,
) -> Result<Result<(), Error>, StateError> {
    let mut group = aggregate(overlay, record.region, record.class).await?;
    if group.providers.len() >= AGGREGATE_PROVIDERS_MAX {
        return Ok(Err(Error::AggregateFull));
    }
    let (Some(capacity), Some(allocated)) = (
        group.capacity.checked_add(&record.inventory),
        group.allocated.checked_add(&record.allocated),
    ) else {
        return Ok(Err(Error::CapacityOverflow));
    };
    group.capacity = capacity;
    group.allocated = allocated;
    let position = group
        .providers
        .binary_search(&id)
        .expect_err("inactive provider is not listed");
    group.providers.insert(position, id);
    overlay.put_encoded(aggregate_key(record.region, record.class), &group);
    Ok(Ok(()))
}

async fn leave_aggregate<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: ProviderId,
    record: &Provider,
) -> Result<(), StateError> {
    let mut group = aggregate(overlay, record.region, record.class).await?;
    let position = group
        .providers
        .binary_search(&id)
        .expect("active provider is listed");
    group.providers.remove(position);
    group.capacity = group
        .capacity
        .checked_sub(&record.inventory)
        .expect("aggregate capacity covers its providers");
    group.allocated = group
        .allocated
        .checked_sub(&record.allocated)
        .expect("aggregate allocation covers its providers");
    overlay.put_encoded(aggregate_key(record.region, record.class), &group);
    Ok(())
}

/// What placement may still hand out in an aggregate: capacity less the buffer less what is
/// allocated (per dimension, floored at zero).
pub async fn allocatable<R: StateReader>(
    overlay: &Overlay<'_, R>,
    region: RegionId,
    class: ResourceClass,
) -> Result<Resources, StateError> {
    let group = aggregate(overlay, region, class).await?;
    let usable = group.capacity.percent(100 - buffer_percent(overlay).await?);
    Ok(Resources {
        vcpu: usable.vcpu.saturating_sub(group.allocated.vcpu),
        memory_mib: usable.memory_mib.saturating_sub(group.allocated.memory_mib),
        disk_gib: usable.disk_gib.saturating_sub(group.allocated.disk_gib),
        gpus: usable.gpus.saturating_sub(group.allocated.gpus),
    })
}

/// Why a placement was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// No such provider, or not active.
    #[error("provider {0} is not active")]
    ProviderInactive(ProviderId),
    /// The provider's free inventory is too small.
    #[error("provider {0} lacks free capacity")]
    ProviderFull(ProviderId),
    /// The aggregate would dip into its backup buffer.
    #[error("host aggregate would dip into its backup buffer")]
    BufferReached,
}

/// Places `request` on provider `id`, keeping the aggregate outside its buffer.
pub async fn allocate<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: ProviderId,
    request: &Resources,
) -> Result<Result<(), PlacementError>, StateError> {
    let Some(mut record) = provider(overlay, id)
        .await?
        .filter(|record| record.status == ProviderStatus::Active)
    else {
        return Ok(Err(PlacementError::ProviderInactive(id)));
    };
    let Some(allocated) = record
        .allocated
        .checked_add(request)
        .filter(|total| total.fits_in(&record.inventory))
    else {
        return Ok(Err(PlacementError::ProviderFull(id)));
    };
    if !request.fits_in(&allocatable(overlay, record.region, record.class).await?) {
        return Ok(Err(PlacementError::BufferReached));
    }
    let mut group = aggregate(overlay, record.region, record.class).await?;
    group.allocated = group
        .allocated
        .checked_add(request)
        .expect("fits in capacity");
    record.allocated = allocated;
    overlay.put_encoded(aggregate_key(record.region, record.class), &group);
    overlay.put_encoded(provider_key(id), &record);
    Ok(Ok(()))
}

/// Returns `released` from provider `id` (and its aggregate if the provider is active).
///
/// Panics if more is released than was placed (a bug in the caller's bookkeeping).
pub async fn release<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: ProviderId,
    released: &Resources,
) -> Result<(), StateError> {
    let mut record = provider(overlay, id)
        .await?
        .expect("released from a known provider");
    record.allocated = record
        .allocated
        .checked_sub(released)
        .expect("release covers a placement");
    if record.status == ProviderStatus::Active {
        let mut group = aggregate(overlay, record.region, record.class).await?;
        group.allocated = group
            .allocated
            .checked_sub(released)
            .expect("aggregate covers its placements");
        overlay.put_encoded(aggregate_key(record.region, record.class), &group);
    }
    overlay.put_encoded(provider_key(id), &record);
    Ok(())
}

/// Invariant check over a full state map (see the module docs).
pub fn try_state(state: &BTreeMap<StorageKey, Vec<u8>>) -> Result<(), String> {
    let providers: BTreeMap<ProviderId, Provider> = items(state, ITEM_PROVIDER)?
        .into_iter()
        .map(|(key, provider)| {
            (
                u64::from_be_bytes(key.try_into().expect("8-byte provider key")),
                provider,
            )
        })
        .collect();
    let aggregates: Vec<(Vec<u8>, Aggregate)> = items(state, ITEM_AGGREGATE)?;
    let mut listed = 0usize;
    for (key, group) in &aggregates {
        let mut capacity = Resources::default();
        let mut allocated = Resources::default();
        for id in &group.providers {
            let record = providers
                .get(id)
                .ok_or(format!("aggregate lists unknown provider {id}"))?;
            if record.status != ProviderStatus::Active
                || key[..2] != record.region.to_be_bytes()
                || key[2] != record.class.index()
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
            return Err(format!("aggregate {key:?} sums differ from its providers"));
        }
        listed += group.providers.len();
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

fn items<T: commonware_codec::Read<Cfg = ()>>(
    state: &BTreeMap<StorageKey, Vec<u8>>,
    item: u8,
) -> Result<Vec<(Vec<u8>, T)>, String> {
    crate::storage::prefixed(state, MODULE_INDEX, item)
        .map(|(key, value)| {
            Ok((
                key.as_bytes()[2..].to_vec(),
                decode_value(key, value).map_err(|error| error.to_string())?,
            ))
        })
        .collect()
}
