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
//! # Invariant ([`CatalogModule::try_state`])
//! Every product has resources and compute units.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[cfg(test)]
mod tests;

use logos_framework::{
    events, Context, DispatchResult, MapExt, Module, State, StateReader, TryStateResult,
};
use logos_types::catalog::{
    CallHandler, Error, Event, Product, ProductId, Products, Template, TemplateId, Templates,
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
        if !Products::contains(ctx.overlay, &template.product).await? {
            return Err(Error::UnknownProduct(template.product).into());
        }
        Templates::insert(ctx.overlay, id, template)?;
        Ok(events([Event::TemplateSet { id: *id }]))
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
        Ok(())
    }
}
