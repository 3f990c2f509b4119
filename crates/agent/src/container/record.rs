//! What the driver remembers of each environment, on disk, so that every operation is
//! idempotent and a restarted agent finds its environments again:
//! `STATE/envs/E/record.json`, beside the environment's disk image, its mount point, its
//! runtime bundle, its logs and its shim's exit file.

use super::command::system;
use crate::driver::DriverError;
use logos_types::operations::{EnvironmentId, PortMapping, Spec};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// An environment's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The generation it realizes.
    pub generation: u64,
    /// The spec it runs.
    pub spec: Spec,
    /// Its host number on the service network (also picks its id range and ports).
    pub host: u8,
    /// Restarts of its workload in this generation.
    pub restarts: u32,
    /// The image's pinned digest (hex) its root filesystem was unpacked from; empty until
    /// unpacked.
    pub image_digest_hex: String,
    /// Time the image pull took for this generation, ms (0 if it was cached).
    pub image_pull_ms: u64,
    /// Where its declared ports are published.
    pub ports: Vec<PortMapping>,
    /// When the workload last started (Unix ms).
    pub started_at_ms: u64,
    /// The pid of its shim (0 before the first start).
    pub shim_pid: u32,
}

/// The environment directories under a state directory.
#[derive(Clone, Debug)]
pub struct Records {
    root: PathBuf,
}

impl Records {
    /// The records under `state_dir/envs`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.join("envs"),
        }
    }

    /// The directory of `environment`.
    pub fn dir(&self, environment: EnvironmentId) -> PathBuf {
        self.root.join(environment.to_string())
    }

    /// Creates the records directory.
    pub async fn prepare(&self) -> Result<(), DriverError> {
        tokio::fs::create_dir_all(&self.root).await.map_err(system)
    }

    /// `environment`'s record, if it has one.
    pub async fn read(&self, environment: EnvironmentId) -> Result<Option<Record>, DriverError> {
        let path = self.dir(environment).join("record.json");
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(system)?)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(system(error)),
        }
    }

    /// Writes `environment`'s record.
    pub async fn write(
        &self,
        environment: EnvironmentId,
        record: &Record,
    ) -> Result<(), DriverError> {
        let path = self.dir(environment).join("record.json");
        let bytes = serde_json::to_vec_pretty(record).map_err(system)?;
        tokio::fs::write(path, bytes).await.map_err(system)
    }

    /// The environments with a directory, ascending.
    pub async fn list(&self) -> Result<Vec<EnvironmentId>, DriverError> {
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(system(error)),
        };
        let mut environments = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(system)? {
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse().ok())
            {
                environments.push(id);
            }
        }
        environments.sort();
        Ok(environments)
    }

    /// Removes `environment`'s directory (its record, disk image, bundle and logs). It never
    /// crosses into another filesystem: a disk still mounted there fails the removal rather
    /// than being emptied.
    pub async fn remove(&self, environment: EnvironmentId) -> Result<(), DriverError> {
        let dir = self.dir(environment);
        if dir.exists() {
            let path = dir.display().to_string();
            super::command::run("rm", &["-rf", "--one-file-system", &path]).await?;
        }
        Ok(())
    }
}
