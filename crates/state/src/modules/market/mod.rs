//! `market` (module index 2): the catalog, the price table and leases (seed `003`: W3bI,
//! products, templates, per-block pricing set by the DAO).
//!
//! # Storage (module index 2)
//! | item | key | value |
//! |---|---|---|
//! | 0 `Product` | product id (u32) | [`Product`] |
//! | 1 `Template` | template id (u32) | [`Template`] |
//! | 2 `Price` | class (u8) | [`Amount`] per compute unit per block |
//! | 3 `Lease` | lease id (u64) | [`Lease`] |
//! | 4 `NextLeaseId` | (none) | u64 |
//! | 5 `ActiveLeases` | (none) | ascending lease ids, at most [`ACTIVE_LEASES_MAX`] |
//! | 6 `CommunityShare` | (none) | u8 percent, default [`DEFAULT_COMMUNITY_SHARE`] |
//!
//! # Leases
//! `CreateLease` prices the template (`compute_units × price[class]` per block), reserves
//! `rate × blocks` from the tenant as escrow, and places the product with the [scheduler]
//! (`schedule`): among the active providers of the class in the region, those with room
//! outside the aggregate's backup buffer, most free vCPU first, ties broken by
//! `SHA-256(chain randomness ‖ provider id)`. At the end of every block ([`on_block_end`]) each
//! active lease pays `rate` out of its escrow: `share %` to the community pool, the rest to the
//! provider's owner. A lease whose escrow cannot pay the next block is closed in the block that
//! spent it (it never runs free) and its placement is released. `CloseLease` ends it early and
//! refunds the unspent escrow; `ExtendLease` escrows more blocks.
//!
//! # Invariant ([`try_state`]): escrow conservation
//! The sum of all reserved balances equals the sum of provider bonds, the escrow of active
//! leases and the provisioner stakes; closed leases hold no escrow; every active lease is listed and vice versa.

#[cfg(test)]
pub(crate) mod tests;
mod types;

pub use types::*;

use crate::{
    modules::{balances, dvci, operations, provisioning},
    storage::{
        decode_value, prefixed, read_list, read_value, state_list, Overlay, StateError,
        StateReader, StorageKey,
    },
    BlockContext, Origin,
};
use logos_primitives::{hash, Address, Amount};
use std::collections::BTreeMap;

/// Module index of `market`.
pub const MODULE_INDEX: u8 = 2;
const ITEM_PRODUCT: u8 = 0;
const ITEM_TEMPLATE: u8 = 1;
const ITEM_PRICE: u8 = 2;
const ITEM_LEASE: u8 = 3;
const ITEM_NEXT_LEASE_ID: u8 = 4;
const ITEM_ACTIVE_LEASES: u8 = 5;
const ITEM_COMMUNITY_SHARE: u8 = 6;

/// Most leases active at once.
pub const ACTIVE_LEASES_MAX: usize = 4_096;
/// Share of lease payments to the community pool unless changed, percent.
pub const DEFAULT_COMMUNITY_SHARE: u8 = 10;

/// The community pool's account: receives the community share of lease payments.
pub fn community_account() -> Address {
    let digest = hash(&[b"logos-community-pool"]);
    let mut bytes = [0u8; Address::LENGTH];
    bytes.copy_from_slice(&digest.as_ref()[..Address::LENGTH]);
    Address(bytes)
}

/// Storage key of a product.
pub fn product_key(id: ProductId) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_PRODUCT, &id.to_be_bytes())
}

/// Storage key of a template.
pub fn template_key(id: TemplateId) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_TEMPLATE, &id.to_be_bytes())
}

/// Storage key of a class's price.
pub fn price_key(class: dvci::ResourceClass) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_PRICE, &[class.index()])
}

/// Storage key of a lease.
pub fn lease_key(id: LeaseId) -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_LEASE, &id.to_be_bytes())
}

/// Storage key of the next lease id (u64).
pub fn next_lease_id_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_NEXT_LEASE_ID, &[])
}

/// Storage key of the active lease list.
pub fn active_leases_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_ACTIVE_LEASES, &[])
}

fn community_share_key() -> StorageKey {
    StorageKey::new(MODULE_INDEX, ITEM_COMMUNITY_SHARE, &[])
}

/// The ids of the active leases, ascending.
pub async fn active_leases<R: StateReader>(
    overlay: &Overlay<'_, R>,
) -> Result<Vec<LeaseId>, StateError> {
    read_list(overlay, &active_leases_key(), ACTIVE_LEASES_MAX).await
}

/// Reads a lease.
pub async fn lease<R: StateReader>(
    overlay: &Overlay<'_, R>,
    id: LeaseId,
) -> Result<Option<Lease>, StateError> {
    read_value(overlay, &lease_key(id)).await
}

/// Market calls return their own events, each followed by the events of other modules it
/// caused (environment created or destroyed, task assigned).
type Emitted = Vec<crate::Event>;

fn own(event: Event) -> Emitted {
    vec![crate::Event::Market(event)]
}

/// Runs `call` for `origin` in the block described by `context`.
pub async fn dispatch<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    context: &BlockContext,
    call: &Call,
) -> Result<Result<Emitted, Error>, StateError> {
    let privileged = matches!(
        call,
        Call::SetProduct { .. }
            | Call::SetTemplate { .. }
            | Call::SetPrice { .. }
            | Call::SetCommunityShare { .. }
    );
    if privileged && !origin.privileged {
        return Ok(Err(Error::NotPrivileged));
    }
    match call {
        Call::SetProduct { id, product } => {
            if product.resources.is_zero() || product.compute_units == 0 {
                return Ok(Err(Error::EmptyLease));
            }
            overlay.put_encoded(product_key(*id), product);
            Ok(Ok(own(Event::ProductSet { id: *id })))
        }
        Call::SetTemplate { id, template } => {
            if read_value::<_, Product>(overlay, &product_key(template.product))
                .await?
                .is_none()
            {
                return Ok(Err(Error::UnknownProduct(template.product)));
            }
            overlay.put_encoded(template_key(*id), template);
            Ok(Ok(own(Event::TemplateSet { id: *id })))
        }
        Call::SetPrice { class, price } => {
            overlay.put_encoded(price_key(*class), price);
            Ok(Ok(own(Event::PriceSet {
                class: *class,
                price: *price,
            })))
        }
        Call::SetCommunityShare { percent } => {
            if *percent > 100 {
                return Ok(Err(Error::ShareTooLarge(*percent)));
            }
            overlay.put_encoded(community_share_key(), percent);
            Ok(Ok(own(Event::CommunityShareSet { percent: *percent })))
        }
        Call::CreateLease {
            template,
            region,
            blocks,
        } => create_lease(overlay, origin, context, *template, *region, *blocks).await,
        Call::ExtendLease { lease: id, blocks } => {
            extend_lease(overlay, origin, *id, *blocks).await
        }
        Call::CloseLease { lease: id } => {
            let Some(record) = lease(overlay, *id).await? else {
                return Ok(Err(Error::UnknownLease(*id)));
            };
            if record.tenant != origin.sender {
                return Ok(Err(Error::NotTenant));
            }
            if record.closed.is_some() {
                return Ok(Err(Error::LeaseClosed(*id)));
            }
            let reason = CloseReason::ClosedByTenant;
            Ok(Ok(
                close(overlay, *id, record, context.height, reason).await?
            ))
        }
    }
}

async fn create_lease<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    context: &BlockContext,
    template_id: TemplateId,
    region: dvci::RegionId,
    blocks: u64,
) -> Result<Result<Emitted, Error>, StateError> {
    let Some(template) = read_value::<_, Template>(overlay, &template_key(template_id)).await?
    else {
        return Ok(Err(Error::UnknownTemplate(template_id)));
    };
    let Some(product) = read_value::<_, Product>(overlay, &product_key(template.product)).await?
    else {
        return Ok(Err(Error::UnknownProduct(template.product)));
    };
    let Some(price) = read_value::<_, Amount>(overlay, &price_key(product.class)).await? else {
        return Ok(Err(Error::NoPrice(product.class)));
    };
    if blocks == 0 {
        return Ok(Err(Error::EmptyLease));
    }
    let rate = price
        .0
        .checked_mul(product.compute_units as u128)
        .map(Amount);
    let escrow = rate
        .and_then(|rate| rate.0.checked_mul(blocks as u128))
        .map(Amount);
    let (Some(rate), Some(escrow)) = (rate, escrow) else {
        return Ok(Err(Error::AmountOverflow));
    };
    let mut active = active_leases(overlay).await?;
    if active.len() >= ACTIVE_LEASES_MAX {
        return Ok(Err(Error::TooManyLeases));
    }
    if let Err(error) = balances::reserve(overlay, &origin.sender, escrow).await? {
        return Ok(Err(Error::EscrowUnpaid(error.to_string())));
    }
    let Some(provider) =
        schedule(overlay, context, region, product.class, &product.resources).await?
    else {
        return Ok(Err(Error::NoCapacity(region)));
    };
    let id: LeaseId = read_value(overlay, &next_lease_id_key())
        .await?
        .unwrap_or(0);
    overlay.put_encoded(next_lease_id_key(), &(id + 1));
    let record = Lease {
        tenant: origin.sender,
        template: template_id,
        provider,
        region,
        resources: product.resources,
        rate,
        escrow,
        created_at: context.height,
        blocks_billed: 0,
        closed: None,
    };
    overlay.put_encoded(lease_key(id), &record);
    active.push(id);
    overlay.put_encoded(active_leases_key(), &active);
    let spec = operations::Spec {
        resources: product.resources,
        workload: template.workload,
    };
    let created = operations::create(
        overlay,
        context,
        id,
        origin.sender,
        provider,
        template_id,
        spec,
    )
    .await?;
    let caused = match created {
        Ok(events) => events,
        Err(error) => return Ok(Err(Error::Environment(error.to_string()))),
    };
    let mut events = own(Event::LeaseCreated {
        lease: id,
        tenant: origin.sender,
        provider,
        rate,
    });
    events.extend(caused);
    Ok(Ok(events))
}

/// Places `request` in `region` (see the module docs) and returns the provider it went to.
async fn schedule<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    context: &BlockContext,
    region: dvci::RegionId,
    class: dvci::ResourceClass,
    request: &dvci::Resources,
) -> Result<Option<dvci::ProviderId>, StateError> {
    let group = dvci::aggregate(overlay, region, class).await?;
    let mut ranked = Vec::with_capacity(group.providers.len());
    for id in group.providers {
        let record = dvci::provider(overlay, id)
            .await?
            .expect("aggregates list known providers");
        let free_vcpu = record.inventory.vcpu.saturating_sub(record.allocated.vcpu);
        let tie = hash(&[context.randomness.as_ref(), &id.to_be_bytes()]);
        ranked.push((std::cmp::Reverse(free_vcpu), tie, id));
    }
    ranked.sort();
    for (_, _, id) in ranked {
        if dvci::allocate(overlay, id, request).await?.is_ok() {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

async fn extend_lease<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    origin: &Origin,
    id: LeaseId,
    blocks: u64,
) -> Result<Result<Emitted, Error>, StateError> {
    let Some(mut record) = lease(overlay, id).await? else {
        return Ok(Err(Error::UnknownLease(id)));
    };
    if record.tenant != origin.sender {
        return Ok(Err(Error::NotTenant));
    }
    if record.closed.is_some() {
        return Ok(Err(Error::LeaseClosed(id)));
    }
    if blocks == 0 {
        return Ok(Err(Error::EmptyLease));
    }
    let added = record.rate.0.checked_mul(blocks as u128).map(Amount);
    let Some((added, escrow)) =
        added.and_then(|added| Some((added, record.escrow.checked_add(added)?)))
    else {
        return Ok(Err(Error::AmountOverflow));
    };
    if let Err(error) = balances::reserve(overlay, &origin.sender, added).await? {
        return Ok(Err(Error::EscrowUnpaid(error.to_string())));
    }
    record.escrow = escrow;
    overlay.put_encoded(lease_key(id), &record);
    Ok(Ok(own(Event::LeaseExtended { lease: id, added })))
}

/// Ends a lease: refunds its escrow, releases its placement, drops it from the active list and
/// asks for its environment to be destroyed.
async fn close<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    id: LeaseId,
    mut record: Lease,
    height: u64,
    reason: CloseReason,
) -> Result<Vec<crate::Event>, StateError> {
    let refund = record.escrow;
    balances::unreserve(overlay, &record.tenant, refund)
        .await?
        .expect("a lease's escrow is reserved");
    dvci::release(overlay, record.provider, &record.resources).await?;
    record.escrow = Amount::ZERO;
    record.closed = Some((height, reason));
    overlay.put_encoded(lease_key(id), &record);
    let mut active = active_leases(overlay).await?;
    active.retain(|active_id| *active_id != id);
    overlay.put_encoded(active_leases_key(), &active);
    let destroyed = operations::destroy(overlay, id, height).await?;
    Ok(vec![
        crate::Event::Market(Event::LeaseClosed {
            lease: id,
            reason,
            refund,
        }),
        crate::Event::Operations(destroyed),
    ])
}

/// End-of-block metering (see the module docs). Returns the events, in lease order.
pub async fn on_block_end<R: StateReader>(
    overlay: &mut Overlay<'_, R>,
    context: &BlockContext,
) -> Result<Vec<crate::Event>, StateError> {
    let share: u8 = read_value(overlay, &community_share_key())
        .await?
        .unwrap_or(DEFAULT_COMMUNITY_SHARE);
    let community = community_account();
    let mut events = Vec::new();
    for id in active_leases(overlay).await? {
        let mut record = lease(overlay, id).await?.expect("active leases exist");
        let owner = dvci::provider(overlay, record.provider)
            .await?
            .expect("placed on a known provider")
            .owner;
        let community_payout = Amount(record.rate.0 * share as u128 / 100);
        let provider_payout = Amount(record.rate.0 - community_payout.0);
        for (to, amount) in [(owner, provider_payout), (community, community_payout)] {
            balances::pay_reserved(overlay, &record.tenant, &to, amount)
                .await?
                .expect("escrow covers the rate");
        }
        record.escrow = record
            .escrow
            .checked_sub(record.rate)
            .expect("escrow covers the rate");
        record.blocks_billed += 1;
        events.push(crate::Event::Market(Event::LeaseBilled {
            lease: id,
            provider_payout,
            community_payout,
        }));
        if record.escrow < record.rate {
            let reason = CloseReason::EscrowExhausted;
            events.extend(close(overlay, id, record, context.height, reason).await?);
        } else {
            overlay.put_encoded(lease_key(id), &record);
        }
    }
    Ok(events)
}

/// Escrow conservation over a full state map (see the module docs).
pub fn try_state(state: &BTreeMap<StorageKey, Vec<u8>>) -> Result<(), String> {
    let decode_error = |error: StateError| error.to_string();
    let active: Vec<LeaseId> = state_list(state, &active_leases_key(), ACTIVE_LEASES_MAX)?;
    let mut escrow = Amount::ZERO;
    let mut open = 0usize;
    for (key, value) in prefixed(state, MODULE_INDEX, ITEM_LEASE) {
        let record: Lease = decode_value(key, value).map_err(decode_error)?;
        let id = u64::from_be_bytes(
            key.as_bytes()[2..]
                .try_into()
                .map_err(|_| "bad lease key")?,
        );
        match record.closed {
            None => {
                open += 1;
                if active.binary_search(&id).is_err() {
                    return Err(format!("open lease {id} is not in the active list"));
                }
                escrow = escrow.checked_add(record.escrow).ok_or("escrow overflow")?;
            }
            Some(_) if record.escrow != Amount::ZERO => {
                return Err(format!("closed lease {id} holds escrow"))
            }
            Some(_) => {}
        }
    }
    if open != active.len() {
        return Err(format!(
            "{open} open leases, {} listed active",
            active.len()
        ));
    }
    let mut bonds = Amount::ZERO;
    for (key, value) in prefixed(state, dvci::MODULE_INDEX, 1) {
        let provider: dvci::Provider = decode_value(key, value).map_err(decode_error)?;
        bonds = bonds.checked_add(provider.bond).ok_or("bond overflow")?;
    }
    let mut reserved = Amount::ZERO;
    for (key, value) in prefixed(state, balances::MODULE_INDEX, 0) {
        let account: balances::AccountInfo = decode_value(key, value).map_err(decode_error)?;
        reserved = reserved
            .checked_add(account.reserved)
            .ok_or("reserved overflow")?;
    }
    let stakes = provisioning::total_stake(state)?;
    let held = bonds
        .checked_add(escrow)
        .and_then(|held| held.checked_add(stakes))
        .ok_or("overflow")?;
    if reserved != held {
        return Err(format!(
            "reserved {reserved} != bonds {bonds} + escrow {escrow} + stakes {stakes}"
        ));
    }
    Ok(())
}
