//! The provider agent: the gatekeeper's executor on a provider's machine.
//!
//! - [`driver`]: the [`driver::Driver`] trait every way of running environments implements.
//! - [`sandbox`]: the Linux sandbox driver (bubblewrap in its own network namespace, cgroup v1
//!   limits, a veth pair on the provider's bridge, a per-environment filesystem).
//! - [`gatekeeper`]: the HTTP API of `logos_api::agent`; it acts only on requests that finalized
//!   chain state backs and that the assigned provisioner signed, garbage-collects what the chain
//!   no longer wants, and relays environments' chain RPC traffic (the only path from an
//!   environment to the chain).

pub mod driver;
pub mod gatekeeper;
pub mod sandbox;
