//! The Logos chain's API: what clients, daemons and the node agree on.
//!
//! - [`block`]: the block format and its digest (what consensus orders).
//! - [`rpc`]: the JSON-RPC interface (jsonrpsee), its JSON types and error codes.
//! - [`proof`]: the authenticated state layout (QMDB `current`) and proof verification, so a
//!   client checks any storage value against a finalized block's state root.
//! - [`consensus`]: the simplex signing scheme and the check of a finalization certificate.
//! - [`agent`]: the provider agent's HTTP API and the signatures it checks.
//!
//! Off-chain programs (the CLI, provisioners, gatekeepers) depend on this crate and
//! `logos-types` for the chain's types, never on the node or the runtime that executes blocks.

pub mod agent;
pub mod block;
pub mod consensus;
pub mod proof;
pub mod receipt;
pub mod rpc;

pub use block::{Block, BlockCfg};
