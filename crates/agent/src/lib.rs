//! The provider agent: the gatekeeper's executor on a provider's machine.
//!
//! - [`authorize`]: the gatekeeper's decisions, pure: what a request may do given the facts of
//!   finalized chain state (unit-tested case by case).
//! - [`gatekeeper`]: the HTTP API of `logos_api::agent` around those decisions (it reads the
//!   facts with proofs), garbage collection of what the chain no longer wants, and the relay of
//!   environments' chain RPC traffic (the only path from an environment to the chain).
//! - [`driver`]: the [`driver::Driver`] trait every way of running environments implements.
//! - [`sandbox`]: the Linux sandbox driver (bubblewrap in its own network namespace, cgroup v1
//!   limits, a veth pair on the provider's bridge, a per-environment filesystem).
//!
//! The agent verifies proofs; it never executes blocks (it depends on `logos-types`, not on the
//! runtime).

pub mod authorize;
pub mod driver;
pub mod gatekeeper;
pub mod sandbox;
