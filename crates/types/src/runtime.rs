//! The runtime's call and event enums (one variant per module) and receipts.
//!
//! Wire form of a call: `module index (1) | call index (1) | arguments (bounded)`. The module
//! index is each module's `INDEX`, the call index its `#[index]`, both declared once.

use crate::{
    balances, catalog, dvci, market, operations, provisioning, CallError, Codec, MaxEncodeSize,
};
use logos_primitives::Hash;
use serde::{Deserialize, Serialize};

/// A call into one on-chain module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Codec, MaxEncodeSize)]
#[serde(tag = "module", rename_all = "snake_case")]
pub enum Call {
    /// A call of `balances`.
    #[index(balances::INDEX)]
    Balances(balances::Call),
    /// A call of `dvci`.
    #[index(dvci::INDEX)]
    Dvci(dvci::Call),
    /// A call of `market`.
    #[index(market::INDEX)]
    Market(market::Call),
    /// A call of `operations`.
    #[index(operations::INDEX)]
    Operations(operations::Call),
    /// A call of `provisioning`.
    #[index(provisioning::INDEX)]
    Provisioning(provisioning::Call),
    /// A call of `catalog`.
    #[index(catalog::INDEX)]
    Catalog(catalog::Call),
}

impl Call {
    /// `[module index, call index]` of the call.
    pub fn index(&self) -> [u8; 2] {
        match self {
            Call::Balances(call) => [balances::INDEX, call.index()],
            Call::Dvci(call) => [dvci::INDEX, call.index()],
            Call::Market(call) => [market::INDEX, call.index()],
            Call::Operations(call) => [operations::INDEX, call.index()],
            Call::Provisioning(call) => [provisioning::INDEX, call.index()],
            Call::Catalog(call) => [catalog::INDEX, call.index()],
        }
    }
}

/// An event emitted during execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "module", rename_all = "snake_case")]
pub enum Event {
    /// An event of `balances`.
    Balances(balances::Event),
    /// An event of `dvci`.
    Dvci(dvci::Event),
    /// An event of `market`.
    Market(market::Event),
    /// An event of `operations`.
    Operations(operations::Event),
    /// An event of `provisioning`.
    Provisioning(provisioning::Event),
    /// An event of `catalog`.
    Catalog(catalog::Event),
    /// An event of the runtime itself.
    Runtime(RuntimeEvent),
}

macro_rules! from_module {
    ($($module:ident => $variant:ident),* $(,)?) => {
        $(
            impl From<$module::Event> for Event {
                fn from(event: $module::Event) -> Self {
                    Event::$variant(event)
                }
            }

            impl From<$module::Call> for Call {
                fn from(call: $module::Call) -> Self {
                    Call::$variant(call)
                }
            }
        )*
    };
}

from_module!(
    balances => Balances,
    dvci => Dvci,
    market => Market,
    operations => Operations,
    provisioning => Provisioning,
    catalog => Catalog,
);

/// Events of the runtime (not of a module).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RuntimeEvent {
    /// A module's end-of-block hook failed; its writes in this block were dropped.
    HookFailed {
        /// The module.
        module: String,
        /// Why.
        error: CallError,
    },
}

/// The result of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Hash of the transaction.
    #[serde(with = "hash_hex")]
    pub transaction: Hash,
    /// Whether the call succeeded (the fee is paid either way).
    pub success: bool,
    /// Which module refused the call, with what, when it failed.
    pub error: Option<CallError>,
    /// Events emitted, the fee payment first.
    pub events: Vec<Event>,
}

mod hash_hex {
    use logos_primitives::{format_hash, parse_hash, Hash};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_hash(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_hash(&text).map_err(serde::de::Error::custom)
    }
}
