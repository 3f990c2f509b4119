//! The runtime's call and event enums (one variant per module) and receipts.
//!
//! Wire form of a call: `module index (1) | call index (1) | arguments (bounded)`. The module
//! index is each module's `INDEX`, the call index its `#[index]`, both declared once.

use crate::{
    attestation, balances, beacon, catalog, dvci, governance, market, operations, peers,
    provisioning, staking, CallError, Codec, MaxEncodeSize,
};
use logos_primitives::Hash;
use serde::{Deserialize, Serialize};

/// Declares the runtime's `Call` and `Event` enums from the list of modules, once: each
/// module's calls and events under its variant, the module's `INDEX` as the call's first byte.
macro_rules! runtime_enums {
    ($($module:ident => $variant:ident),* $(,)?) => {
        /// A call into one on-chain module.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Codec, MaxEncodeSize)]
        #[serde(tag = "module", rename_all = "snake_case")]
        pub enum Call {
            $(
                #[doc = concat!("A call of `", stringify!($module), "`.")]
                #[index($module::INDEX)]
                $variant($module::Call),
            )*
        }

        impl Call {
            /// Index and name of the module the call is for.
            pub fn module(&self) -> (u8, &'static str) {
                match self {
                    $(Call::$variant(_) => ($module::INDEX, $module::NAME),)*
                }
            }

            /// `[module index, call index]` of the call.
            pub fn index(&self) -> [u8; 2] {
                match self {
                    $(Call::$variant(call) => [$module::INDEX, call.index()],)*
                }
            }
        }

        /// An event emitted during execution.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "module", rename_all = "snake_case")]
        pub enum Event {
            $(
                #[doc = concat!("An event of `", stringify!($module), "`.")]
                $variant($module::Event),
            )*
            /// An event of the runtime itself.
            Runtime(RuntimeEvent),
        }

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

runtime_enums!(
    balances => Balances,
    dvci => Dvci,
    market => Market,
    operations => Operations,
    provisioning => Provisioning,
    catalog => Catalog,
    peers => Peers,
    staking => Staking,
    governance => Governance,
    attestation => Attestation,
    beacon => Beacon,
);

/// Events of the runtime (not of a module).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RuntimeEvent {
    /// A module's end-of-block hook failed; its writes in this block were dropped.
    HookFailed {
        /// The module.
        module: String,
        /// Why (boxed: events sit in every receipt, and this variant is the largest).
        error: Box<CallError>,
    },
}

/// The result of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Hash of the transaction.
    #[serde(with = "crate::runtime::hash_hex")]
    pub transaction: Hash,
    /// Whether the call succeeded (the fee is paid either way).
    pub success: bool,
    /// Which module refused the call, with what, when it failed (boxed: receipts of the recent
    /// blocks are kept in memory, and most succeed).
    pub error: Option<Box<CallError>>,
    /// Events emitted, the fee payment first.
    pub events: Vec<Event>,
}

/// A [`Hash`] as `0x` hex text in JSON and TOML (`#[serde(with = "crate::runtime::hash_hex")]`).
pub(crate) mod hash_hex {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        catalog::TemplateId,
        codec::{decode, encode, Error, MaxEncodeSize},
    };

    #[test]
    fn wire_form_is_module_call_arguments_and_nothing_else() {
        let call = Call::Catalog(catalog::Call::RemoveTemplate { id: TemplateId(7) });
        let bytes = encode(&call);
        assert_eq!(bytes, [catalog::INDEX, 2, 0, 0, 0, 7]);
        assert_eq!(call.index(), [5, 2]);
        assert_eq!(decode::<Call>(&bytes).unwrap(), call);
        // A trailing byte, a missing one, an unknown module, an unknown call of a known module.
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode::<Call>(&trailing).is_err());
        assert!(decode::<Call>(&bytes[..bytes.len() - 1]).is_err());
        assert!(matches!(
            decode::<Call>(&[11, 0]),
            Err(Error::InvalidEnum(11))
        ));
        // `peers` (6): a registration whose address is cut short does not decode.
        let register = Call::Peers(peers::Call::RegisterFullNode {
            key: logos_primitives::NodeKey([1; 32]),
            address: "127.0.0.1:1".parse().unwrap(),
            deposit: logos_primitives::Amount(1),
            signature: logos_primitives::KeySignature([2; 64]),
        });
        let bytes = encode(&register);
        assert_eq!(&bytes[..2], [peers::INDEX, 0]);
        assert_eq!(decode::<Call>(&bytes).unwrap(), register);
        assert!(decode::<Call>(&bytes[..2 + 32 + 10]).is_err());
        assert!(matches!(
            decode::<Call>(&[catalog::INDEX, 4, 0, 0, 0, 7]),
            Err(Error::InvalidEnum(4))
        ));
        // Retired market call indices 0 and 1 (products and templates moved to catalog).
        assert!(decode::<Call>(&[market::INDEX, 0]).is_err());
        assert!(bytes.len() <= <Call as MaxEncodeSize>::MAX_ENCODE_SIZE);
    }
}
