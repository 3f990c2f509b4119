//! The driver interface: how an agent makes environments exist.

use crate::container::shim::LogCursor;
use logos_api::agent::{Observation, Usage};
use logos_types::operations::{EnvironmentId, Spec};
use std::future::Future;

/// Errors of a driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The spec asks for something this driver cannot provide (e.g. an unknown image).
    #[error("unsupported spec: {0}")]
    Unsupported(String),
    /// The driver has no room (e.g. no free address on the service network).
    #[error("out of capacity: {0}")]
    Capacity(String),
    /// The workload's image cannot be run: not pulled, not verified, too large, or not
    /// unpackable.
    #[error("image refused: {0}")]
    Image(String),
    /// A system command or file operation failed.
    #[error("{0}")]
    System(String),
}

/// Realizes environments on one machine. Every operation is idempotent.
pub trait Driver: Send + Sync + 'static {
    /// Makes `environment` run `spec` at `generation`: creates it if absent, recreates it if it
    /// realizes another generation, restarts its workload if it stopped.
    fn ensure(
        &self,
        environment: EnvironmentId,
        generation: u64,
        spec: &Spec,
    ) -> impl Future<Output = Result<Observation, DriverError>> + Send;

    /// What exists of `environment`, if anything.
    fn inspect(
        &self,
        environment: EnvironmentId,
    ) -> impl Future<Output = Result<Option<Observation>, DriverError>> + Send;

    /// Removes everything of `environment` (nothing to do if absent).
    fn destroy(
        &self,
        environment: EnvironmentId,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// The environments that exist on this machine, ascending.
    fn list(&self) -> impl Future<Output = Result<Vec<EnvironmentId>, DriverError>> + Send;

    /// The last `max_bytes` of the workload's output.
    fn logs(
        &self,
        environment: EnvironmentId,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Option<String>, DriverError>> + Send;

    /// Up to `max_bytes` of output written after `cursor` (a default cursor: the tail), and
    /// the cursor after it; `None` if the environment does not exist.
    fn read_logs(
        &self,
        environment: EnvironmentId,
        cursor: LogCursor,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Option<(Vec<u8>, LogCursor)>, DriverError>> + Send;

    /// What the environment uses (CPU, memory, disk, network), `None` if it does not exist.
    fn usage(
        &self,
        environment: EnvironmentId,
    ) -> impl Future<Output = Result<Option<Usage>, DriverError>> + Send;
}
