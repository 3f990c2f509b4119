//! The Logos node.
//!
//! - [`chain`]: authenticated state (QMDB) with speculative batches for unfinalized blocks.
//! - [`application`]: builds and verifies blocks for commonware's marshal/simplex, and applies
//!   finalized blocks.
//! - [`engine`]: wires p2p channels, marshal (dissemination, backfill, ordered delivery) and
//!   simplex (ordering and finality) for one validator.
//! - [`epochs`]: each epoch's heights, committee scheme and consensus peers, from the chain.
//! - [`orchestrator`]: one simplex engine per epoch where this key is a member, a certificate
//!   follower elsewhere.
//! - [`shared`]: the state the application, finalizer, relay and RPC server share, behind one
//!   small interface.
//! - [`invariants`]: the runtime's invariants checked after every finalized block (a
//!   debugging aid, `check_invariants`).
//! - [`receipts`]: receipts of finalized blocks on disk, found by transaction hash.
//! - [`peers`]: the full nodes a validator lets connect (configured and registered on chain).
//! - [`relay`]: transaction relay between validators.
//! - [`rpc`]: the JSON-RPC server.
//! - [`config`]: the node configuration file.
//! - [`full`]: a full node, a non-voting p2p peer that executes every finalized block and
//!   serves the validator's JSON-RPC.
//! - [`follower`]: a full node that follows the chain through another node's RPC.
//! - [`votes`]: a validator records its finalize votes for the chain's vote samples.
//! - [`dkg`]: a validator deals and plays each next epoch's group-key DKG.
//! - [`seeds`]: a validator signs each height with its share and recovers the seed the next
//!   block carries (the chain's randomness).
//! - [`secrets`]: this node's DKG secrets (received dealings, derived shares), encrypted at rest.
//! - [`spinoff`]: a parent network's state at a height, replayed and checked from its genesis,
//!   and the spin-off genesis derived from it.

pub mod application;
pub mod chain;
pub mod config;
pub mod dkg;
pub mod engine;
pub mod epochs;
pub mod evidence;
pub mod follower;
pub mod full;
pub mod invariants;
pub mod orchestrator;
pub mod peers;
pub mod receipts;
pub mod relay;
pub mod rpc;
pub mod secrets;
pub mod seeds;
pub mod shared;
pub mod spinoff;
pub mod statesync;
pub mod votes;
