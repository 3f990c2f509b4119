//! `catalog` (module index 5): the products (machine types) and templates (a product plus a
//! workload, e.g. "Logos full node") that tenants lease (seed `003`: the W3bI catalog).
//!
//! Owns [`Products`] and [`Templates`]; types, calls and storage are declared in
//! [`logos_types::catalog`]. Only the privileged origin (governance, later) sets them. A
//! product needs resources and compute units; a template's product must exist when it is set.
//! `market` prices and leases templates and `operations` re-applies a template's current
//! workload on an update, both through [`Catalog`].
//!
//! # Invariant ([`CatalogModule::try_state`])
//! Every product has resources and compute units.

#[cfg(test)]
mod tests;

use logos_framework::{
    ensure_privileged, events, Context, DispatchResult, MapExt, Module, Overlay, State,
    StateReader, TryStateResult,
};
use logos_types::{
    catalog::{
        Call, CallHandler, Error, Event, Product, ProductId, Products, Template, TemplateId,
        Templates, INDEX,
    },
    Origin, StateError,
};
use std::future::Future;

/// The `catalog` module.
pub struct CatalogModule;

/// What other modules read of the catalog.
pub trait Catalog {
    /// A product.
    fn product<R: StateReader>(
        overlay: &Overlay<'_, R>,
        id: ProductId,
    ) -> impl Future<Output = Result<Option<Product>, StateError>> + Send;

    /// A template.
    fn template<R: StateReader>(
        overlay: &Overlay<'_, R>,
        id: TemplateId,
    ) -> impl Future<Output = Result<Option<Template>, StateError>> + Send;
}

impl Catalog for CatalogModule {
    async fn product<R: StateReader>(
        overlay: &Overlay<'_, R>,
        id: ProductId,
    ) -> Result<Option<Product>, StateError> {
        Products::get(overlay, &id).await
    }

    async fn template<R: StateReader>(
        overlay: &Overlay<'_, R>,
        id: TemplateId,
    ) -> Result<Option<Template>, StateError> {
        Templates::get(overlay, &id).await
    }
}

fn is_empty(product: &Product) -> bool {
    product.resources.is_zero() || product.compute_units == 0
}

impl<R: StateReader> CallHandler<Context<'_, '_, R>> for CatalogModule {
    type Output = DispatchResult;

    async fn set_product(
        ctx: &mut Context<'_, '_, R>,
        origin: &Origin,
        id: &ProductId,
        product: &Product,
    ) -> DispatchResult {
        ensure_privileged(origin, Error::NotPrivileged)?;
        if is_empty(product) {
            return Err(Error::EmptyProduct.into());
        }
        Products::insert(ctx.overlay, id, product)?;
        Ok(events([Event::ProductSet { id: *id }]))
    }

    async fn set_template(
        ctx: &mut Context<'_, '_, R>,
        origin: &Origin,
        id: &TemplateId,
        template: &Template,
    ) -> DispatchResult {
        ensure_privileged(origin, Error::NotPrivileged)?;
        if !Products::contains(ctx.overlay, &template.product).await? {
            return Err(Error::UnknownProduct(template.product).into());
        }
        Templates::insert(ctx.overlay, id, template)?;
        Ok(events([Event::TemplateSet { id: *id }]))
    }
}

impl Module for CatalogModule {
    const INDEX: u8 = INDEX;
    const NAME: &'static str = "catalog";
    type Call = Call;

    async fn dispatch<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        origin: &Origin,
        call: &Call,
    ) -> DispatchResult {
        call.dispatch::<_, Self>(ctx, origin).await
    }

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
