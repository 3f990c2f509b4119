//! Debian's `runc` (the OCI reference runtime), driven through its command line with the
//! agent's own state directory (`runc --root <state>/runc`).
//!
//! A workload runs under `runc run --keep` started by the environment's shim
//! ([`super::shim`]); the agent asks runc for its state, kills and deletes it. `--keep` leaves
//! a stopped container (and its cgroups, whose OOM counter tells an OOM kill from an exit) for
//! the agent to inspect before it deletes it.

use super::command::{output_status, run};
use crate::driver::DriverError;
use std::path::{Path, PathBuf};

/// The state of a container, as `runc state` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct ContainerState {
    /// `creating`, `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// Its init process on the host (0 once stopped).
    #[serde(default)]
    pub pid: i32,
}

impl ContainerState {
    /// Whether the workload's processes may be alive.
    pub fn is_alive(&self) -> bool {
        matches!(
            self.status.as_str(),
            "creating" | "created" | "running" | "paused"
        )
    }
}

/// runc with a state directory.
#[derive(Clone, Debug)]
pub struct Runc {
    root: PathBuf,
}

impl Runc {
    /// runc keeping its state under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The arguments of `runc` that run container `id` from `bundle` in the foreground and
    /// keep it once it exits.
    pub fn run_args(&self, bundle: &Path, id: &str) -> Vec<String> {
        vec![
            "--root".into(),
            self.root.display().to_string(),
            "run".into(),
            "--keep".into(),
            "--bundle".into(),
            bundle.display().to_string(),
            id.into(),
        ]
    }

    /// The state of container `id`, `None` if runc does not know it.
    pub async fn state(&self, id: &str) -> Option<ContainerState> {
        let root = self.root.display().to_string();
        let (ok, text) = output_status("runc", &["--root", &root, "state", id]).await;
        if !ok {
            return None;
        }
        serde_json::from_str(&text).ok()
    }

    /// Sends SIGKILL to every process of container `id` (nothing if it is stopped or unknown).
    pub async fn kill(&self, id: &str) {
        let root = self.root.display().to_string();
        let _ = run("runc", &["--root", &root, "kill", "--all", id, "KILL"]).await;
    }

    /// Sends `signal` (e.g. `TERM`) to the init process of container `id` only (nothing if it
    /// is stopped or unknown): the init passes it on to what it started, as `docker stop` does.
    pub async fn signal(&self, id: &str, signal: &str) {
        let root = self.root.display().to_string();
        let _ = run("runc", &["--root", &root, "kill", id, signal]).await;
    }

    /// Removes container `id` (killing what still runs); nothing if unknown. A container runc
    /// cannot even report a state of (one whose start failed half-way) is deleted too: its
    /// state directory would otherwise block every later `run` of that id.
    pub async fn delete(&self, id: &str) -> Result<(), DriverError> {
        let root = self.root.display().to_string();
        let deleted = run("runc", &["--root", &root, "delete", "--force", id]).await;
        if deleted.is_err() && self.root.join(id).exists() {
            return deleted;
        }
        Ok(())
    }

    /// The ids of the containers runc knows.
    pub async fn list(&self) -> Vec<String> {
        let root = self.root.display().to_string();
        let (_, text) = output_status("runc", &["--root", &root, "list", "--format", "json"]).await;
        #[derive(serde::Deserialize)]
        struct Entry {
            id: String,
        }
        serde_json::from_str::<Option<Vec<Entry>>>(&text)
            .ok()
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .map(|entry| entry.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_and_the_run_command_keeps_the_container() {
        let state: ContainerState = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","id":"x","pid":42,"status":"running","bundle":"/b"}"#,
        )
        .unwrap();
        assert!(state.is_alive());
        let stopped: ContainerState =
            serde_json::from_str(r#"{"status":"stopped","pid":0}"#).unwrap();
        assert!(!stopped.is_alive());
        let args = Runc::new(Path::new("/s/runc"))
            .run_args(Path::new("/s/envs/1/bundle"), "agent-1-env-1");
        assert_eq!(
            args,
            [
                "--root",
                "/s/runc",
                "run",
                "--keep",
                "--bundle",
                "/s/envs/1/bundle",
                "agent-1-env-1"
            ]
        );
    }
}
