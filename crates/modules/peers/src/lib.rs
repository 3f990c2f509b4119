//! `peers` (module index 6): the registry of full nodes the validators let connect over p2p.
//!
//! Owns [`FullNodes`], [`FullNodeKeys`] and [`MinimumDeposit`]; types, calls and storage are
//! declared in [`logos_types::peers`] (which also states the protocol). A registration names a
//! valid ed25519 key not registered yet, an address whose IP can be a connection's source, a
//! deposit of at least the minimum (reserved through `balances` until deregistration) and
//! carries the node key's signature over (chain id, sender, address); at most
//! [`logos_types::peers::FULL_NODES_MAX`] are registered. Only the
//! registering account deregisters. Nodes read [`FullNodes`] from finalized state and track its
//! keys as p2p secondary peers (a validator's key there is ignored by them).
//!
//! Every write of [`FullNodes`] or [`FullNodeKeys`] emits `FullNodeRegistered` or
//! `FullNodeDeregistered` in the same call: validators re-read the registry only after a
//! block with one of those events (`logos_node::peers`), so a write without its event would
//! leave them tracking a stale set. A new writer (a hook, an expiry) must emit them too.
//!
//! # Invariant ([`Peers::try_state`])
//! [`FullNodeKeys`] lists exactly the keys of [`FullNodes`], ascending; every entry's key is a
//! valid point and its address a possible source.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use logos_balances::Balances;
use logos_framework::{
    events, Context, DispatchResult, MapExt, Module, State, StateReader, TryStateResult, ValueExt,
};
use logos_primitives::{Amount, KeySignature, NodeKey};
use logos_types::{
    corruption,
    peers::{
        registration_message, CallHandler, Error, Event, FullNode, FullNodeKeys, FullNodes,
        MinimumDeposit, P2pAddress, REGISTRATION_NAMESPACE,
    },
};

/// The `peers` module.
pub struct Peers;

impl Peers {
    /// Sum of all registration deposits in a full state (reserved through `balances`).
    pub fn total_deposits(state: &State) -> Result<Amount, String> {
        FullNodes::sum_from(state, |node| node.deposit)
    }
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for Peers {
    async fn register_full_node(
        ctx: &mut Context<'_, '_, R>,
        key: &NodeKey,
        address: &P2pAddress,
        deposit: &Amount,
        signature: &KeySignature,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        if key.public_key().is_err() {
            return Err(Error::InvalidKey.into());
        }
        if !address.is_source() {
            return Err(Error::InvalidAddress(*address).into());
        }
        let message = registration_message(&ctx.block.chain_id, &sender, address);
        if !key.verifies(REGISTRATION_NAMESPACE, &message, signature) {
            return Err(Error::BadSignature.into());
        }
        if FullNodes::contains(ctx.overlay, key).await? {
            return Err(Error::AlreadyRegistered(*key).into());
        }
        let mut keys = FullNodeKeys::get(ctx.overlay).await?;
        if keys.is_full() {
            return Err(Error::RegistryFull.into());
        }
        let minimum = MinimumDeposit::get(ctx.overlay).await?;
        if *deposit < minimum {
            return Err(Error::DepositTooLow {
                offered: *deposit,
                minimum,
            }
            .into());
        }
        Balances::reserve(ctx.overlay, &sender, *deposit).await?;
        let record = FullNode {
            owner: sender,
            address: *address,
            deposit: *deposit,
        };
        let unlisted = keys.insert_sorted(*key).map_err(|_| Error::RegistryFull)?;
        if !unlisted {
            return Err(corruption(format!(
                "unregistered full node {key} is listed"
            )));
        }
        FullNodes::insert(ctx.overlay, key, &record)?;
        FullNodeKeys::put(ctx.overlay, &keys)?;
        Ok(events([Event::FullNodeRegistered {
            key: *key,
            owner: sender,
        }]))
    }

    async fn deregister_full_node(ctx: &mut Context<'_, '_, R>, key: &NodeKey) -> DispatchResult {
        let sender = ctx.sender()?;
        let record = FullNodes::get(ctx.overlay, key)
            .await?
            .ok_or(Error::UnknownFullNode(*key))?;
        if record.owner != sender {
            return Err(Error::NotOwner.into());
        }
        Balances::unreserve(ctx.overlay, &record.owner, record.deposit).await?;
        let mut keys = FullNodeKeys::get(ctx.overlay).await?;
        if !keys.remove_sorted(key) {
            return Err(corruption(format!(
                "registered full node {key} is not listed"
            )));
        }
        FullNodes::remove(ctx.overlay, key)?;
        FullNodeKeys::put(ctx.overlay, &keys)?;
        Ok(events([Event::FullNodeDeregistered { key: *key }]))
    }

    async fn set_minimum_deposit(ctx: &mut Context<'_, '_, R>, deposit: &Amount) -> DispatchResult {
        ctx.ensure_privileged()?;
        MinimumDeposit::put(ctx.overlay, deposit)?;
        Ok(events([Event::MinimumDepositChanged { deposit: *deposit }]))
    }
}

impl Module for Peers {
    logos_framework::module_calls!(logos_types::peers);

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        let mut entries = Vec::new();
        for entry in FullNodes::iter_from(state) {
            let (key, node) = entry.map_err(|error| error.to_string())?;
            if key.public_key().is_err() {
                return Err(format!("full node {key} is not a valid key"));
            }
            if !node.address.is_source() {
                return Err(format!("full node {key} has address {}", node.address));
            }
            entries.push(key);
        }
        let listed = FullNodeKeys::get_from(state).map_err(|error| error.to_string())?;
        if listed[..] != entries[..] {
            return Err(format!(
                "{} keys listed but {} full nodes registered (or out of order)",
                listed.len(),
                entries.len()
            ));
        }
        Ok(())
    }
}
