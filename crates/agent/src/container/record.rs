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
    /// What the workload takes from that image's configuration (entrypoint, command,
    /// environment, working directory).
    pub image_config: crate::image::ImageConfig,
    /// Time the image pull took for this generation, ms (0 if it was cached).
    pub image_pull_ms: u64,
    /// Where its declared ports are published.
    pub ports: Vec<PortMapping>,
    /// When the workload last started (Unix ms).
    pub started_at_ms: u64,
    /// The pid of its shim (0 before the first start).
    pub shim_pid: u32,
    /// Whether its disk, root filesystem, volume and network were all made (a record without
    /// it is of a creation that did not finish, and is built again from scratch).
    pub built: bool,
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

    /// Creates the records directory: listed by root only, passed through by environments'
    /// user namespaces (to their root filesystems and volumes).
    pub async fn prepare(&self) -> Result<(), DriverError> {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(system)?;
        let pass_through = std::fs::Permissions::from_mode(0o711);
        tokio::fs::set_permissions(&self.root, pass_through)
            .await
            .map_err(system)
    }

    /// `environment`'s record, if it has one (an unreadable record is an error, never taken
    /// as absent: its environment's volume is kept).
    pub async fn read(&self, environment: EnvironmentId) -> Result<Option<Record>, DriverError> {
        let path = self.dir(environment).join("record.json");
        match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| system(format!("{}: {error}", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(system(error)),
        }
    }

    /// Writes `environment`'s record atomically (a temporary file synced, then renamed: a
    /// crash leaves the old record or the new one, never half of one).
    pub async fn write(
        &self,
        environment: EnvironmentId,
        record: &Record,
    ) -> Result<(), DriverError> {
        use tokio::io::AsyncWriteExt;
        let dir = self.dir(environment);
        let partial = dir.join("record.json.partial");
        let bytes = serde_json::to_vec_pretty(record).map_err(system)?;
        let mut file = tokio::fs::File::create(&partial).await.map_err(system)?;
        file.write_all(&bytes).await.map_err(system)?;
        file.sync_all().await.map_err(system)?;
        tokio::fs::rename(&partial, dir.join("record.json"))
            .await
            .map_err(system)
    }

    /// Creates `environment`'s directory: nobody but root lists it (it holds the tenant's
    /// disk, volume and logs, each closed to other users in turn); the environment's user
    /// namespace may only pass through it to its root filesystem and volume.
    pub async fn create_dir(&self, environment: EnvironmentId) -> Result<(), DriverError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.dir(environment);
        tokio::fs::create_dir_all(&dir).await.map_err(system)?;
        let pass_through = std::fs::Permissions::from_mode(0o711);
        tokio::fs::set_permissions(&dir, pass_through)
            .await
            .map_err(system)
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
