//! The Linux sandbox driver: one environment = one bubblewrap sandbox in its own network
//! namespace, in its own cgroups, with its own filesystem.
//!
//! For environment `E` of an agent with network index `N` and name `A`:
//! - [`bubblewrap`]: the process sandbox (namespaces, read-only `/usr`, private `/data`);
//! - [`cgroup`]: memory, CPU and pids limits under `logos/A/env-E`, OOM detection;
//! - [`network`]: namespace `lgN-E` on bridge `lgbrN`, inbound only to declared ports;
//! - [`record`]: `STATE/envs/E/record.json`, which makes every operation idempotent and lets a
//!   restarted agent find its environments again.
//!
//! The workload's output goes to `STATE/envs/E/log`. A workload is started by a shell that
//! joins the cgroups (outside the network namespace, where `/sys/fs/cgroup` is visible) and
//! then execs `ip netns exec lgN-E bwrap …`.

pub mod bubblewrap;
pub mod cgroup;
mod command;
pub mod network;
pub mod record;

use crate::driver::{Driver, DriverError};
use bubblewrap::Sandbox;
use cgroup::Cgroups;
use command::{kill, run, system};
use logos_api::agent::{Observation, WorkloadState};
use logos_types::operations::{EnvironmentId, Spec};
use network::Network;
use record::{Record, Records};
use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::process::Command;

/// Most environments per agent (hosts 2..=254 of its /24).
pub const ENVIRONMENTS_MAX: usize = 253;
/// First and last host number given to environments (1 is the gateway).
const HOSTS: std::ops::RangeInclusive<u8> = 2..=254;
/// How long a start waits for the workload to appear in its cgroup: polls × interval.
const START_POLLS: u32 = 50;
const START_POLL_MS: u64 = 10;
/// How long a removal keeps killing what is left in the cgroup: rounds × interval.
const KILL_ROUNDS: u32 = 100;
const KILL_ROUND_MS: u64 = 20;

/// Settings of a sandbox driver.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Directory for environment records, filesystems and logs.
    pub state_dir: PathBuf,
    /// Name of this agent's cgroup subtree (`logos/<name>`).
    pub name: String,
    /// The agent's service network.
    pub network: Network,
    /// Read-only binds into every sandbox: (host path, path inside).
    pub binds: Vec<(PathBuf, String)>,
}

/// The sandbox driver (see the module docs).
#[derive(Clone)]
pub struct SandboxDriver {
    config: SandboxConfig,
    records: Records,
    cgroups: Cgroups,
    /// Exit statuses of workloads that ended, by environment.
    exits: Arc<Mutex<BTreeMap<EnvironmentId, Option<i32>>>>,
    /// Serializes changes (create, restart, destroy).
    changes: Arc<tokio::sync::Mutex<()>>,
}

impl SandboxDriver {
    /// A driver; call [`Self::prepare_host`] once before use.
    pub fn new(config: SandboxConfig) -> Self {
        Self {
            records: Records::new(&config.state_dir),
            cgroups: Cgroups::new(&config.name),
            config,
            exits: Arc::new(Mutex::new(BTreeMap::new())),
            changes: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The driver's settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Checks for cgroup v1 and bubblewrap, sets up the bridge and its firewall (idempotent)
    /// and removes what an earlier agent left behind without a record.
    pub async fn prepare_host(&self) -> Result<(), DriverError> {
        Cgroups::check_host()?;
        run("bwrap", &["--version"]).await?;
        self.config.network.prepare_host().await?;
        self.records.prepare().await?;
        self.sweep_orphans().await
    }

    /// Removes cgroups and network namespaces of this agent that have no record.
    async fn sweep_orphans(&self) -> Result<(), DriverError> {
        let known = self.records.list().await?;
        let mut orphans: BTreeSet<EnvironmentId> = self.cgroups.list().await?.into_iter().collect();
        orphans.extend(self.config.network.list().await);
        for id in orphans.into_iter().filter(|id| !known.contains(id)) {
            tracing::info!(environment = %id, "removing orphaned sandbox");
            self.remove(id).await?;
        }
        Ok(())
    }

    /// Destroys every environment of this agent (for throwaway networks such as a devnet).
    pub async fn destroy_all(&self) -> Result<(), DriverError> {
        for id in self.records.list().await? {
            self.destroy(id).await?;
        }
        Ok(())
    }

    fn exit_code(&self, environment: EnvironmentId) -> Option<i32> {
        self.exits
            .lock()
            .map(|exits| exits.get(&environment).copied().flatten())
            .unwrap_or(None)
    }

    async fn observe(&self, environment: EnvironmentId, record: &Record) -> Observation {
        let workload = if !self.cgroups.pids(environment).await.is_empty() {
            WorkloadState::Running
        } else if self.cgroups.oom_kills(environment).await > record.oom_kills_at_start {
            WorkloadState::OomKilled {
                limit_mib: record.spec.resources.memory_mib,
            }
        } else {
            WorkloadState::Exited {
                code: self.exit_code(environment),
            }
        };
        Observation {
            environment,
            generation: record.generation,
            workload,
            endpoint: format!(
                "{}:{}",
                self.config.network.address(record.host),
                record.spec.workload.health_port
            ),
            restarts: record.restarts,
        }
    }

    async fn free_host(&self) -> Result<u8, DriverError> {
        let mut used = Vec::new();
        for environment in self.records.list().await? {
            if let Some(record) = self.records.read(environment).await? {
                used.push(record.host);
            }
        }
        HOSTS
            .into_iter()
            .find(|host| !used.contains(host))
            .ok_or_else(|| DriverError::Capacity("no free address on the service network".into()))
    }

    async fn create(&self, environment: EnvironmentId, record: &Record) -> Result<(), DriverError> {
        let workload = &record.spec.workload;
        if !matches!(workload.image.as_str(), "" | "host") {
            return Err(DriverError::Unsupported(format!(
                "image {:?}: the sandbox driver runs host-base workloads only",
                workload.image
            )));
        }
        if workload.command.is_empty() {
            return Err(DriverError::Unsupported("empty command".into()));
        }
        let dir = self.records.dir(environment);
        tokio::fs::create_dir_all(dir.join("data"))
            .await
            .map_err(system)?;
        self.records.write(environment, record).await?;
        self.cgroups.create(environment, &record.spec).await?;
        let mut ports = workload.ports.to_vec();
        ports.push(workload.health_port);
        self.config
            .network
            .create(environment, record.host, &ports)
            .await
    }

    /// Starts the workload (see the module docs) and waits briefly for it to join its cgroup.
    async fn start(
        &self,
        environment: EnvironmentId,
        record: &mut Record,
    ) -> Result<(), DriverError> {
        record.oom_kills_at_start = self.cgroups.oom_kills(environment).await;
        self.records.write(environment, record).await?;
        let script = format!("{} && exec \"$@\"", self.cgroups.join_script(environment));
        let dir = self.records.dir(environment);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log"))
            .map_err(system)?;
        let relay_url = self.config.network.relay_url();
        let chain_p2p = self.config.network.chain_p2p();
        let p2p_egress = self.config.network.p2p_egress();
        let command: Vec<String> = record
            .spec
            .workload
            .command
            .iter()
            .map(|part| part.to_string())
            .collect();
        let sandbox = Sandbox {
            environment,
            data: &dir.join("data"),
            relay_url: &relay_url,
            chain_p2p: &chain_p2p,
            p2p_egress: &p2p_egress,
            binds: &self.config.binds,
            command: &command,
        };
        let namespace = self.config.network.namespace(environment);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(["ip", "netns", "exec", &namespace, "bwrap"])
            .args(sandbox.args())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(system)?)
            .stderr(log)
            .spawn()
            .map_err(system)?;
        if let Ok(mut exits) = self.exits.lock() {
            exits.remove(&environment);
        }
        let exits = self.exits.clone();
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|status| status.code());
            if let Ok(mut exits) = exits.lock() {
                exits.insert(environment, code);
            }
        });
        for _ in 0..START_POLLS {
            if !self.cgroups.pids(environment).await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(START_POLL_MS)).await;
        }
        Ok(())
    }

    async fn kill_all(&self, environment: EnvironmentId) {
        for _ in 0..KILL_ROUNDS {
            let pids = self.cgroups.pids(environment).await;
            if pids.is_empty() {
                return;
            }
            kill(pids.iter().map(i32::to_string).collect()).await;
            tokio::time::sleep(Duration::from_millis(KILL_ROUND_MS)).await;
        }
    }

    /// Kills the workload and removes its cgroups, network namespace, veth and files.
    async fn remove(&self, environment: EnvironmentId) -> Result<(), DriverError> {
        self.kill_all(environment).await;
        self.cgroups.remove(environment).await?;
        self.config.network.remove(environment).await;
        self.records.remove(environment).await
    }

    async fn recreate(
        &self,
        environment: EnvironmentId,
        generation: u64,
        spec: &Spec,
        existed: bool,
    ) -> Result<Observation, DriverError> {
        if existed {
            self.remove(environment).await?;
        }
        if self.records.list().await?.len() >= ENVIRONMENTS_MAX {
            return Err(DriverError::Capacity("environment limit reached".into()));
        }
        let mut record = Record {
            generation,
            spec: spec.clone(),
            host: self.free_host().await?,
            restarts: 0,
            oom_kills_at_start: 0,
        };
        if let Err(error) = self.create(environment, &record).await {
            let _ = self.remove(environment).await;
            return Err(error);
        }
        self.start(environment, &mut record).await?;
        Ok(self.observe(environment, &record).await)
    }
}

impl Driver for SandboxDriver {
    async fn ensure(
        &self,
        environment: EnvironmentId,
        generation: u64,
        spec: &Spec,
    ) -> Result<Observation, DriverError> {
        let _guard = self.changes.lock().await;
        let mut record = match self.records.read(environment).await? {
            Some(record) if record.generation == generation => record,
            other => {
                return self
                    .recreate(environment, generation, spec, other.is_some())
                    .await
            }
        };
        if self.cgroups.pids(environment).await.is_empty() {
            record.restarts = record.restarts.saturating_add(1);
            self.start(environment, &mut record).await?;
        }
        Ok(self.observe(environment, &record).await)
    }

    async fn inspect(
        &self,
        environment: EnvironmentId,
    ) -> Result<Option<Observation>, DriverError> {
        match self.records.read(environment).await? {
            Some(record) => Ok(Some(self.observe(environment, &record).await)),
            None => Ok(None),
        }
    }

    async fn destroy(&self, environment: EnvironmentId) -> Result<(), DriverError> {
        let _guard = self.changes.lock().await;
        self.remove(environment).await
    }

    async fn list(&self) -> Result<Vec<EnvironmentId>, DriverError> {
        self.records.list().await
    }

    async fn logs(
        &self,
        environment: EnvironmentId,
        max_bytes: u64,
    ) -> Result<Option<String>, DriverError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.records.dir(environment).join("log");
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(system(error)),
        };
        let length = file.metadata().await.map_err(system)?.len();
        let start = length.saturating_sub(max_bytes);
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(system)?;
        let mut bytes = Vec::with_capacity((length - start) as usize);
        file.take(max_bytes)
            .read_to_end(&mut bytes)
            .await
            .map_err(system)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

#[cfg(test)]
mod tests;
