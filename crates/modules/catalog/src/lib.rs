//! `catalog` (module index 5): the products (machine types) and templates (a product plus a
//! workload, e.g. "Logos full node") that tenants lease (seed `003`: the W3bI catalog).
//!
//! Owns [`Products`] and [`Templates`]; types, calls and storage are declared in
//! [`logos_types::catalog`]. Only the privileged origin (governance, later) sets them and
//! removes templates. A product needs resources and compute units; a template's product must
//! exist when it is set. Removing a template stops new leases of it; environments already made
//! from it keep their copy of its workload (`operations` stores the spec).
//! `market` prices and leases templates and `operations` re-applies a template's current
//! workload on an update; both read its storage items ([`Products`], [`Templates`]) directly,
//! and only this module writes them.
//!
//! Every template's workload passes `Workload::validate` (an image pinned by digest, declared
//! ports, a health check on one of them) when it is set; `AddTemplate` stores a template under
//! the next free id ([`NextTemplateId`], kept above every id set so far).
//!
//! # Invariant ([`CatalogModule::try_state`])
//! Every product has resources and compute units; every template's id is below
//! [`NextTemplateId`].

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use logos_framework::{
    events, Context, DispatchResult, MapExt, Module, State, StateReader, TryStateResult, ValueExt,
};
use logos_types::catalog::{
    CallHandler, Error, Event, NextTemplateId, Product, ProductId, Products, Template, TemplateId,
    Templates,
};

/// The `catalog` module.
pub struct CatalogModule;

fn is_empty(product: &Product) -> bool {
    product.resources.is_zero() || product.compute_units == 0
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for CatalogModule {
    async fn set_product(
        ctx: &mut Context<'_, '_, R>,
        id: &ProductId,
        product: &Product,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        if is_empty(product) {
            return Err(Error::EmptyProduct.into());
        }
        Products::insert(ctx.overlay, id, product)?;
        Ok(events([Event::ProductSet { id: *id }]))
    }

    async fn set_template(
        ctx: &mut Context<'_, '_, R>,
        id: &TemplateId,
        template: &Template,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        store_template(ctx, *id, template).await
    }

    async fn add_template(ctx: &mut Context<'_, '_, R>, template: &Template) -> DispatchResult {
        ctx.ensure_privileged()?;
        let id = NextTemplateId::get(ctx.overlay).await?;
        store_template(ctx, id, template).await
    }

    async fn remove_template(ctx: &mut Context<'_, '_, R>, id: &TemplateId) -> DispatchResult {
        ctx.ensure_privileged()?;
        if !Templates::contains(ctx.overlay, id).await? {
            return Err(Error::UnknownTemplate(*id).into());
        }
        Templates::remove(ctx.overlay, id)?;
        Ok(events([Event::TemplateRemoved { id: *id }]))
    }
}

/// Checks `template` and stores it under `id`, moving [`NextTemplateId`] above `id`.
async fn store_template<R: StateReader>(
    ctx: &mut Context<'_, '_, R>,
    id: TemplateId,
    template: &Template,
) -> DispatchResult {
    template
        .workload
        .validate()
        .map_err(Error::InvalidWorkload)?;
    if !Products::contains(ctx.overlay, &template.product).await? {
        return Err(Error::UnknownProduct(template.product).into());
    }
    let next = NextTemplateId::get(ctx.overlay).await?;
    if id >= next {
        let after = id.get().checked_add(1).ok_or(Error::TemplateIdsExhausted)?;
        NextTemplateId::put(ctx.overlay, &TemplateId(after))?;
    }
    Templates::insert(ctx.overlay, &id, template)?;
    Ok(events([Event::TemplateSet { id }]))
}

impl Module for CatalogModule {
    logos_framework::module_calls!(logos_types::catalog);

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        for entry in Products::iter_from(state) {
            let (id, product) = entry.map_err(|error| error.to_string())?;
            if is_empty(&product) {
                return Err(format!("product {id} has no resources or compute units"));
            }
        }
        let next = NextTemplateId::get_from(state).map_err(|error| error.to_string())?;
        for entry in Templates::iter_from(state) {
            let (id, _) = entry.map_err(|error| error.to_string())?;
            if id >= next {
                return Err(format!("template {id} is not below the next id {next}"));
            }
        }
        Ok(())
    }
}
