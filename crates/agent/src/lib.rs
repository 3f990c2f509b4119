//! The provider agent: the gatekeeper's executor on a provider's machine.
//!
//! - [`authorize`]: the gatekeeper's decisions, pure: what a request may do given the facts of
//!   finalized chain state (unit-tested case by case).
//! - [`gatekeeper`]: the HTTP API of `logos_api::agent` around those decisions (it reads the
//!   facts with proofs), garbage collection of what the chain no longer wants, and the relay of
//!   environments' chain traffic (the only path from an environment to the chain).
//! - [`attest`]: the machine's side of Machine Integrity Attestation: registers the TPM,
//!   answers the challenger's credential, stages IMA entries and reports quotes on schedule.
//! - [`driver`]: the [`driver::Driver`] trait every way of running environments implements.
//! - [`image`]: OCI images pinned by digest: pulled, verified blob by blob, cached, unpacked.
//! - [`container`]: the container driver: runc with a user namespace, no capabilities, the
//!   engines' seccomp profile, cgroup limits, a fixed-size disk with a persistent volume, a
//!   network namespace with published ports, and a shim per workload that keeps its logs.
//!
//! The agent verifies proofs; it never executes blocks (it depends on `logos-types`, not on the
//! runtime).

pub mod admission;
pub mod attest;
pub mod authorize;
pub mod container;
pub mod driver;
pub mod gatekeeper;
pub mod image;
