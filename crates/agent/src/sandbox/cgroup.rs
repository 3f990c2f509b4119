//! cgroup v1 limits of an environment: `/sys/fs/cgroup/{memory,pids,cpu}/logos/A/env-E`.
//!
//! Memory and memory+swap = the product's memory (swappiness 0), `cpu.cfs_quota_us` =
//! vCPU × [`CPU_PERIOD_US`], `pids.max` = [`PIDS_MAX`]. A workload over its memory is killed by
//! the kernel; the cgroup's `oom_kill` counter moving since the start tells it apart from an
//! exit.

use super::command::system;
use crate::driver::DriverError;
use logos_types::operations::{EnvironmentId, Spec};
use std::path::{Path, PathBuf};

/// Most processes in one environment.
pub const PIDS_MAX: u32 = 512;
/// CFS period of the CPU limit, µs.
pub const CPU_PERIOD_US: u64 = 100_000;
/// Where the cgroup v1 controllers are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The controllers every environment is limited by.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// Bytes per MiB.
const MIB_BYTES: u64 = 1024 * 1024;

/// The cgroups of one agent (`logos/<name>`).
#[derive(Clone, Debug)]
pub struct Cgroups {
    name: String,
}

impl Cgroups {
    /// The cgroups of agent `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
        }
    }

    /// Fails unless every controller of [`CONTROLLERS`] is a mounted v1 hierarchy.
    pub fn check_host() -> Result<(), DriverError> {
        for controller in CONTROLLERS {
            let path = Path::new(CGROUP_ROOT).join(controller);
            if !path.join("tasks").exists() {
                return Err(DriverError::Unsupported(format!(
                    "cgroup v1 controller {controller} not mounted at {}",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// The agent's subtree of `controller`.
    pub fn root(&self, controller: &str) -> PathBuf {
        Path::new(CGROUP_ROOT)
            .join(controller)
            .join("logos")
            .join(&self.name)
    }

    /// `environment`'s cgroup of `controller`.
    pub fn path(&self, controller: &str, environment: EnvironmentId) -> PathBuf {
        self.root(controller).join(format!("env-{environment}"))
    }

    /// Creates `environment`'s cgroups with the limits of `spec`.
    pub async fn create(&self, environment: EnvironmentId, spec: &Spec) -> Result<(), DriverError> {
        for controller in CONTROLLERS {
            tokio::fs::create_dir_all(self.path(controller, environment))
                .await
                .map_err(system)?;
        }
        let memory_bytes = spec
            .resources
            .memory_mib
            .saturating_mul(MIB_BYTES)
            .to_string();
        let quota_us = (spec.resources.vcpu.max(1) as u64 * CPU_PERIOD_US).to_string();
        let settings = [
            ("memory", "memory.limit_in_bytes", memory_bytes.clone()),
            ("memory", "memory.memsw.limit_in_bytes", memory_bytes),
            ("memory", "memory.swappiness", "0".to_string()),
            ("pids", "pids.max", PIDS_MAX.to_string()),
            ("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
            ("cpu", "cpu.cfs_quota_us", quota_us),
        ];
        for (controller, file, value) in settings {
            let path = self.path(controller, environment).join(file);
            // Kernels without swap accounting have no memsw or swappiness files.
            let optional = file.contains("memsw") || file.contains("swappiness");
            match tokio::fs::write(&path, &value).await {
                Ok(()) => {}
                Err(_) if optional && !path.exists() => {}
                Err(error) => return Err(system(format!("{}: {error}", path.display()))),
            }
        }
        Ok(())
    }

    async fn value(&self, controller: &str, environment: EnvironmentId, file: &str) -> String {
        let path = self.path(controller, environment).join(file);
        tokio::fs::read_to_string(path).await.unwrap_or_default()
    }

    /// The processes in `environment`'s memory cgroup.
    pub async fn pids(&self, environment: EnvironmentId) -> Vec<i32> {
        self.value("memory", environment, "cgroup.procs")
            .await
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// How often the kernel OOM-killed in `environment`'s memory cgroup.
    pub async fn oom_kills(&self, environment: EnvironmentId) -> u64 {
        self.value("memory", environment, "memory.oom_control")
            .await
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }

    /// A shell fragment that moves the shell running it into `environment`'s cgroups.
    pub fn join_script(&self, environment: EnvironmentId) -> String {
        CONTROLLERS
            .iter()
            .map(|controller| {
                format!(
                    "echo $$ > {}/cgroup.procs",
                    self.path(controller, environment).display()
                )
            })
            .collect::<Vec<_>>()
            .join(" && ")
    }

    /// Removes `environment`'s (empty) cgroups.
    pub async fn remove(&self, environment: EnvironmentId) -> Result<(), DriverError> {
        for controller in CONTROLLERS {
            let path = self.path(controller, environment);
            if path.exists() {
                tokio::fs::remove_dir(&path)
                    .await
                    .map_err(|error| system(format!("{}: {error}", path.display())))?;
            }
        }
        Ok(())
    }

    /// The environments with a memory cgroup of this agent.
    pub async fn list(&self) -> Result<Vec<EnvironmentId>, DriverError> {
        let mut found = Vec::new();
        if let Ok(mut entries) = tokio::fs::read_dir(self.root("memory")).await {
            while let Some(entry) = entries.next_entry().await.map_err(system)? {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_prefix("env-").and_then(|id| id.parse().ok()) {
                    found.push(id);
                }
            }
        }
        Ok(found)
    }
}
