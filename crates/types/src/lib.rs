//! What clients, daemons and the runtime share about the Logos chain's state machine, and
//! nothing that executes it.
//!
//! For every on-chain module (one submodule each, named after it) this crate holds its records,
//! its `Call` enum, its `Event` and `Error` enums, its typed ids and its storage items:
//!
//! | index | module | owns |
//! |---|---|---|
//! | 0 | [`balances`] | accounts (nonce, free and reserved balance), total issuance, the community account |
//! | 1 | [`dvci`] | regions, bonded providers, host aggregates with a backup buffer |
//! | 2 | [`market`] | the price table, leases with escrow charged for verified blocks |
//! | 3 | [`operations`] | desired state of environments (spec, generation) and reported status |
//! | 4 | [`provisioning`] | staked provisioners, assignments, cross-check rounds, slashing |
//! | 5 | [`catalog`] | products and templates |
//! | 6 | [`peers`] | registered full nodes (p2p keys validators let connect) |
//! | 7 | [`staking`] | bonded stake, validator candidates, nominations, epochs and elected committees |
//! | 8 | [`governance`] | proposals, stake-weighted votes, enactment, the bootstrap authority |
//! | 9 | [`attestation`] | machines' TPMs, references, IMA allowlists, deployers, report deadlines |
//! | 10 | [`beacon`] | each epoch's threshold group key, from a DKG run on chain |
//!
//! Each module's shape, declared once on its types:
//! - calls: `#[derive(Codec, Dispatch)]` with a fixed `#[index(N)]` per call gives the wire
//!   format and a `CallHandler` trait whose methods the module implements (the one routing
//!   `match` is generated);
//! - errors: `#[derive(ModuleError)]` with a fixed `#[index(N)]` per error gives the
//!   [`DispatchError`] that receipts show as `{module, error, index, message}` ([`CallError`]);
//! - storage: [`storage!`] declares every item with its fixed index, key and value types
//!   (see [`storage`]), checked against the storage bounds at compile time;
//! - ids: newtypes ([`market::LeaseId`], [`dvci::ProviderId`], …), never bare integers.
//!
//! Also here: the runtime [`Call`] and [`Event`], signed [`Transaction`]s, [`Receipt`]s and the
//! [`Genesis`] file. The bounded codec ([`codec`]) is `commonware-codec` with bounded
//! containers, so every decoder's lengths are bounded by its type.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

#[macro_use]
mod ids;

pub mod attestation;
pub mod balances;
pub mod beacon;
pub mod catalog;
pub mod codec;
mod dispatch;
pub mod dvci;
pub mod genesis;
pub mod governance;
pub mod market;
pub mod operations;
pub mod peers;
pub mod provisioning;
mod runtime;
pub mod staking;
pub mod storage;
pub mod transaction;
pub mod workload;

pub use dispatch::{
    corruption, CallError, DispatchError, DispatchResult, ModuleError, Origin, StateError,
    BAD_ORIGIN_ERROR, CORRUPTION_MODULE,
};
pub use genesis::{Genesis, GenesisError, Params};
pub use logos_derive::{
    calls, errors, events, record, Codec, Dispatch, MaxEncodeSize, ModuleError,
};
pub use logos_primitives as primitives;
pub use runtime::{Call, Event, Receipt, RuntimeEvent};
pub use storage::{StorageItem, StorageKey, StorageMap, StorageValue};
pub use transaction::{
    transaction_size, Transaction, TransactionError, TransactionPayload, TRANSACTION_MAX_BYTES,
    TRANSACTION_NAMESPACE, TRANSACTION_OVERHEAD_BYTES,
};
