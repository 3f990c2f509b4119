//! Types of `catalog` (module index 5): the products (machine types) and templates (a product
//! plus a workload, e.g. "Logos full node") tenants lease from (seed `003`: W3bI catalog).
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`Products`] | [`ProductId`] | [`Product`] |
//! | 1 [`Templates`] | [`TemplateId`] | [`Template`] |
//! | 2 [`NextTemplateId`] | | the id [`Call::AddTemplate`] gives next |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::SetProduct`] | privileged |
//! | 1 | [`Call::SetTemplate`] | privileged; its product must exist |
//! | 2 | [`Call::RemoveTemplate`] | privileged; leases already made keep their copy of it |
//! | 3 | [`Call::AddTemplate`] | privileged; its product must exist; takes the next free id |
//!
//! A template's workload must pass [`Workload::validate`] (an image pinned by digest, declared
//! ports, a health check on one of them; see [`crate::workload`]).

pub use crate::workload::{
    Argument, Capability, EnvVar, HealthCheck, Workload, WorkloadError, ARGUMENTS_MAX,
    ARGUMENT_MAX_BYTES, PORTS_MAX,
};
use crate::{
    calls,
    codec::BoundedString,
    dvci::{ResourceClass, Resources},
    errors, events, record, storage,
};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "catalog";
/// Module index of `catalog`: storage prefix, call routing, error index.
pub const INDEX: u8 = 5;

/// Longest product or template name, bytes.
pub const NAME_MAX_BYTES: usize = 64;

/// A product or template name.
pub type Name = BoundedString<NAME_MAX_BYTES>;

id_type!(
    /// Identifies a product (machine type).
    ProductId(u32)
);
id_type!(
    /// Identifies a template.
    TemplateId(u32)
);

/// A machine type of the catalog.
#[record]
pub struct Product {
    /// Name, e.g. `small`.
    pub name: Name,
    /// What an environment of this product gets.
    pub resources: Resources,
    /// Where it runs.
    pub class: ResourceClass,
    /// Compute units it is billed for per block.
    pub compute_units: u32,
}

/// A product plus a workload, e.g. "Logos full node".
#[record]
pub struct Template {
    /// Name.
    pub name: Name,
    /// The machine type.
    pub product: ProductId,
    /// What runs.
    pub workload: Workload,
}

/// Calls of `catalog`.
#[calls]
pub enum Call {
    /// (privileged) Create or replace a product.
    #[index(0)]
    SetProduct {
        /// Its id.
        id: ProductId,
        /// The product.
        product: Product,
    },
    /// (privileged) Create or replace a template.
    #[index(1)]
    SetTemplate {
        /// Its id.
        id: TemplateId,
        /// The template.
        template: Template,
    },
    /// (privileged) Withdraw a template from the catalog: no new lease can name it and
    /// `operations::Call::UpdateEnvironment` on an environment made from it then fails with
    /// `UnknownTemplate`; running environments keep the workload they were given.
    #[index(2)]
    RemoveTemplate {
        /// Its id.
        id: TemplateId,
    },
    /// (privileged) Publish a new template under the next free id ([`NextTemplateId`]);
    /// `TemplateSet` names the id.
    #[index(3)]
    AddTemplate {
        /// The template.
        template: Template,
    },
}

/// Events of `catalog`.
#[events]
pub enum Event {
    /// A product was created or replaced.
    ProductSet {
        /// Its id.
        id: ProductId,
    },
    /// A template was created or replaced.
    TemplateSet {
        /// Its id.
        id: TemplateId,
    },
    /// A template was withdrawn from the catalog.
    TemplateRemoved {
        /// Its id.
        id: TemplateId,
    },
}

/// Errors of `catalog`.
#[errors]
pub enum Error {
    /// No such product.
    #[index(0)]
    #[error("unknown product {0}")]
    UnknownProduct(ProductId),
    /// A product with no resources or no compute units.
    #[index(1)]
    #[error("a product needs resources and compute units")]
    EmptyProduct,
    /// No such template.
    #[index(2)]
    #[error("unknown template {0}")]
    UnknownTemplate(TemplateId),
    /// The template's workload breaks a rule of [`Workload::validate`].
    #[index(3)]
    #[error("invalid workload: {0}")]
    InvalidWorkload(WorkloadError),
    /// Every template id is taken.
    #[index(4)]
    #[error("no template id is left")]
    TemplateIdsExhausted,
}

storage! {
    module = INDEX;
    /// Products by id.
    pub Products: map(0) ProductId => Product;
    /// Templates by id.
    pub Templates: map(1) TemplateId => Template;
    /// The id the next [`Call::AddTemplate`] takes (above every id set so far).
    pub NextTemplateId: value(2) TemplateId = TemplateId(0);
}
