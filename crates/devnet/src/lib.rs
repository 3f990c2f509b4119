//! Local networks and whole-scenario benchmarks, run by the `logos` command.
//!
//! - [`network`]: `logos devnet`: validators as separate `logos node run` processes on
//!   loopback, with generated keys, genesis and configuration.
//! - [`sub0`]: the devnet's sub0layer: the project's images, the default catalog from the
//!   repository's template files, providers and provisioners registered on chain, `logos agent
//!   run` and `logos provisioner run` daemons (started again when they exit), `--demo`.
//! - [`hosts`]: `--hosts`, every validator, full node and provider on a network namespace of
//!   its own with its own address on a devnet bridge.
//! - [`bench`]: `logos bench consensus` and `logos bench lease`.
//!
//! Every node and daemon is a child process of the running `logos` binary
//! (`std::env::current_exe`), so a devnet runs exactly what an operator would.

pub mod bench;
pub mod hosts;
pub mod network;
pub mod sub0;

pub use network::{run, DevnetArgs};

/// Worker threads of the command-line tools' runtime.
const WORKER_THREADS: usize = 2;

/// The tokio runtime the command-line tools run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .context("start tokio")
}

/// Resolves on Ctrl-C or SIGTERM (never, if neither handler can be installed).
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
