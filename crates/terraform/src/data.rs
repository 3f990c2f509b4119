//! `data "logos_catalog"` (every template with its product and price) and
//! `data "logos_prices"` (the DAO's price per compute unit and block, by resource class).

use crate::{
    attribute,
    connection::{Connection, Error, Shared},
};
use async_trait::async_trait;
use logos_client::tenant::catalog;
use logos_types::{dvci::ResourceClass, market::Prices};
use serde::{Deserialize, Serialize};
use std::{borrow::Cow, collections::BTreeMap, sync::Arc};
use tf_provider::{
    map,
    schema::{Attribute, AttributeConstraint, AttributeType, Block, Description, Schema},
    value::{Value, ValueEmpty, ValueList, ValueMap, ValueNumber, ValueString},
    DataSource, Diagnostics,
};

/// One template as `data.logos_catalog.NAME.templates[i]` shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CatalogTemplate<'a> {
    /// Template id.
    pub id: ValueNumber,
    /// Template name (what `logos_lease.template` takes).
    pub name: ValueString<'a>,
    /// Product name.
    pub product: ValueString<'a>,
    /// Virtual CPUs.
    pub vcpu: ValueNumber,
    /// Memory, MiB.
    pub memory_mib: ValueNumber,
    /// Disk, GiB.
    pub disk_gib: ValueNumber,
    /// Price of one block, smallest token unit, decimal (null without a price).
    pub price_per_block: ValueString<'a>,
}

/// `data "logos_catalog"`'s state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CatalogState<'a> {
    /// The templates, oldest first.
    pub templates: ValueList<Value<CatalogTemplate<'a>>>,
}

/// `data "logos_prices"`'s state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PricesState<'a> {
    /// Price per compute unit and block by resource class (`compute-hosted`, …), smallest
    /// token unit, decimal; classes without a price are left out.
    pub prices: ValueMap<'a, ValueString<'a>>,
}

/// Every resource class and its name in the configuration.
pub const CLASSES: [(ResourceClass, &str); 4] = [
    (ResourceClass::ComputeKvm, "compute-kvm"),
    (ResourceClass::ComputeHosted, "compute-hosted"),
    (ResourceClass::Gpu, "gpu"),
    (ResourceClass::Storage, "storage"),
];

fn computed(kind: AttributeType, text: &str) -> Attribute {
    attribute(kind, AttributeConstraint::Computed, text)
}

fn connection(shared: &Shared, diags: &mut Diagnostics) -> Option<Arc<Connection>> {
    shared
        .get()
        .map_err(|error| diags.root_error_short(error.to_string()))
        .ok()
}

/// The catalog as Terraform values.
async fn templates(connection: &Connection) -> Result<Vec<CatalogTemplate<'static>>, Error> {
    let number = |value: u64| Value::Value(i64::try_from(value).unwrap_or(i64::MAX));
    let entries = catalog(&connection.client).await?;
    Ok(entries
        .into_iter()
        .map(|entry| {
            let resources = entry.product.as_ref().map(|product| product.resources);
            CatalogTemplate {
                id: number(u64::from(entry.id.get())),
                name: entry.template.name.as_str().to_string().into(),
                product: entry
                    .product
                    .as_ref()
                    .map(|product| Cow::Owned(product.name.as_str().to_string()))
                    .into(),
                vcpu: resources
                    .map(|r| u64::from(r.vcpu))
                    .map_or(Value::Null, number),
                memory_mib: resources.map(|r| r.memory_mib).map_or(Value::Null, number),
                disk_gib: resources.map(|r| r.disk_gib).map_or(Value::Null, number),
                price_per_block: entry
                    .price_per_block
                    .map(|price| Cow::Owned(price.0.to_string()))
                    .into(),
            }
        })
        .collect())
}

/// `data "logos_catalog"`.
pub struct CatalogSource {
    shared: Shared,
}

impl CatalogSource {
    /// The data source, using the provider's connection.
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl DataSource for CatalogSource {
    type State<'a> = CatalogState<'a>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        use AttributeType::{Number, String};
        let template = map! {
            "id" => Number,
            "name" => String,
            "product" => String,
            "vcpu" => Number,
            "memory_mib" => Number,
            "disk_gib" => Number,
            "price_per_block" => String,
        };
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain("The sub0layer's catalog as finalized."),
                attributes: map! {
                    "templates" => computed(
                        AttributeType::List(Box::new(AttributeType::Object(template))),
                        "Templates, oldest first: id, name, product, vcpu, memory_mib, \
                         disk_gib, price_per_block (smallest token unit)."),
                },
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        _config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let connection = connection(&self.shared, diags)?;
        match templates(&connection).await {
            Ok(templates) => Some(CatalogState {
                templates: Value::Value(templates.into_iter().map(Value::Value).collect()),
            }),
            Err(error) => {
                diags.root_error("cannot read the catalog", error.to_string());
                None
            }
        }
    }
}

/// `data "logos_prices"`.
pub struct PricesSource {
    shared: Shared,
}

impl PricesSource {
    /// The data source, using the provider's connection.
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl DataSource for PricesSource {
    type State<'a> = PricesState<'a>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain("The prices the DAO set, as finalized."),
                attributes: map! {
                    "prices" => computed(
                        AttributeType::Map(Box::new(AttributeType::String)),
                        "Price per compute unit and block by resource class, smallest token \
                         unit."),
                },
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        _config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let connection = connection(&self.shared, diags)?;
        let mut prices = BTreeMap::new();
        for (class, name) in CLASSES {
            match connection.read::<Prices>(&class).await {
                Ok(Some(price)) => {
                    prices.insert(
                        Cow::Borrowed(name),
                        Value::Value(price.0.to_string().into()),
                    );
                }
                Ok(None) => {}
                Err(error) => {
                    diags.root_error("cannot read the prices", error.to_string());
                    return None;
                }
            }
        }
        Some(PricesState {
            prices: Value::Value(prices),
        })
    }
}
