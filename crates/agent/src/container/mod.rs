//! The container driver: one environment = one OCI container run by Debian's `runc` from its
//! pinned image, in its own user namespace, network namespace, cgroups and fixed-size disk.
//!
//! For environment `E` of agent `A` (network index `N`), under the state directory:
//! - `envs/E/record.json` ([`record`]): what it realizes; makes every operation idempotent
//!   and lets a restarted agent adopt what runs;
//! - `envs/E/disk.img`, mounted at `envs/E/disk` ([`disk`]): `rootfs/` (the image unpacked by
//!   [`crate::image`] with the environment's id range, or copied from the tree an earlier
//!   unpack of the same image left in [`rootfs`]) and `volume/` (kept across generations,
//!   mounted at the workload's volume path);
//! - `envs/E/bundle/config.json` ([`spec`]): the runtime spec; `envs/E/logs/` and
//!   `envs/E/exit`: the shim's output ([`shim`]);
//! - network namespace `lgN-E` on bridge `lgbrN`, ports published on the provider's address
//!   ([`network`]); cgroups `/logos/A/env-E` (created by runc, read by [`cgroup`]); container
//!   `A-env-E` in runc's state under `runc/` ([`runc`]).
//!
//! Ids: the user namespace of the environment on host number `H` maps container ids
//! `0..65536` to host ids from `(256 × N + H) × 65536`, a range no other environment of any
//! agent on the machine shares.
//!
//! Lifecycle: a new generation of a running environment stops its workload, unpacks the new
//! image over a fresh `rootfs/`, keeps `volume/`, re-publishes its ports and starts again;
//! destroy removes the container, cgroups, namespace, port mappings, disk and directory. A
//! record is written before anything is made and marked `built` once all is: a creation
//! that did not finish (an agent killed half-way) is removed and made again. A starting agent
//! adopts every built environment it has a record of (mounting its disk, making its network
//! namespace again if it is gone, publishing its ports again: running workloads keep running
//! under their shims); one it cannot adopt now is kept, volume included, for the next
//! ensure (only the chain says that an environment goes); everything of its own that has no
//! record is removed.
//!
//! The state directory's `envs/` and each environment's directory are listed by root only
//! (mode 0711: the environment's user namespace passes through to its root filesystem and
//! volume), its disk image, disk root and logs are open to root (and the disk to its own
//! namespace's root) only.

pub mod cgroup;
mod command;
pub mod disk;
pub mod network;
pub mod record;
pub mod rootfs;
pub mod runc;
pub mod seccomp;
pub mod shim;
pub mod spec;

use crate::{
    driver::{Driver, DriverError},
    image::{Image, ImageConfig, ImageLimits, ImageStore, Pin},
};
use cgroup::Hierarchy;
use command::system;
use logos_api::agent::{Observation, Usage, WorkloadState};
use logos_types::operations::{EnvironmentId, PortMapping, Spec};
use network::{Network, HOSTS};
use record::{Record, Records};
use rootfs::RootfsCache;
use runc::Runc;
use shim::{LogCursor, ShimConfig};
use spec::{IdRange, SpecInput, ID_RANGE};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

/// Most environments per agent (hosts 2..=254 of its /24).
pub const ENVIRONMENTS_MAX: usize = 253;
/// How long a start waits for the workload to run: polls × interval.
const START_POLLS: u32 = 100;
const START_POLL_MS: u64 = 20;
/// How long a stop waits for the workload to die: polls × interval.
const STOP_POLLS: u32 = 250;
const STOP_POLL_MS: u64 = 20;
/// Longest a stop waits for a workload whose init catches SIGTERM to exit on it before
/// killing it, ms (Docker's default grace period): a chain node gets to close its database.
pub const STOP_GRACE_MS: u64 = 10_000;
/// SIGTERM (signal 15) in a `/proc/PID/status` signal mask (bit 14).
const SIGTERM_MASK: u64 = 1 << 14;
/// Largest log file before the shim rotates it, bytes (two files are kept).
pub const DEFAULT_LOG_FILE_MAX_BYTES: u64 = 1024 * 1024;
/// Most output a workload writes per second before it blocks, bytes.
pub const DEFAULT_LOG_BYTES_PER_SECOND: u64 = 256 * 1024;
/// Cached images beyond this are evicted (oldest unused first), bytes.
pub const DEFAULT_IMAGE_CACHE_MAX_BYTES: u64 = 20 * 1024 * 1024 * 1024;
/// Placeholder in a command for the URL of the chain relay.
pub const CHAIN_RPC_PLACEHOLDER: &str = "${CHAIN_RPC}";
/// Placeholder in a command for the environment's id.
pub const ENVIRONMENT_PLACEHOLDER: &str = "${ENVIRONMENT}";
/// Placeholder in a command for the p2p relay addresses.
pub const CHAIN_P2P_PLACEHOLDER: &str = "${CHAIN_P2P}";
/// Placeholder in a command for the relayed p2p connections' source address.
pub const P2P_EGRESS_PLACEHOLDER: &str = "${P2P_EGRESS}";
/// Commands the driver runs, and the Debian package of each.
pub const HOST_COMMANDS: [(&str, &str); 8] = [
    ("runc", "runc"),
    ("umoci", "umoci"),
    ("mkfs.ext4", "e2fsprogs"),
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("ip6tables", "iptables"),
    ("mount", "mount"),
    ("df", "coreutils"),
];

/// Settings of a container driver.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    /// Directory for records, disks, bundles, logs, runc's state and the image cache.
    pub state_dir: PathBuf,
    /// The agent's name: its cgroups are `/logos/<name>`, its containers `<name>-env-<id>`.
    pub name: String,
    /// The agent's service network.
    pub network: Network,
    /// Read-only binds into every environment: (host path, path inside).
    pub binds: Vec<(PathBuf, String)>,
    /// The command that runs a shim (`logos agent shim`), program first; the shim's own
    /// arguments follow.
    pub shim_command: Vec<String>,
    /// The engines' default seccomp profile ([`seccomp::DEFAULT_PROFILE_PATH`]).
    pub seccomp_profile: PathBuf,
    /// Registries (`host:port`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Bounds of an image.
    pub image_limits: ImageLimits,
    /// Cached images beyond this are evicted, bytes.
    pub image_cache_max_bytes: u64,
    /// Size at which a workload's log is rotated, bytes.
    pub log_file_max_bytes: u64,
    /// Most output a workload writes per second, bytes.
    pub log_bytes_per_second: u64,
}

/// The container driver (see the module docs).
#[derive(Clone)]
pub struct ContainerDriver {
    config: Arc<ContainerConfig>,
    records: Records,
    images: Arc<ImageStore>,
    /// Unpacked images, copied into environments with a warm cache.
    rootfs: RootfsCache,
    runc: Runc,
    hierarchy: Hierarchy,
    seccomp: Arc<String>,
    /// Serializes changes (create, update, restart, destroy).
    changes: Arc<tokio::sync::Mutex<()>>,
    /// Serializes the changes of each environment, taken before [`Self::changes`] and held
    /// through it, so that a stop's SIGTERM grace (outside `changes`) is never overtaken by
    /// another change of the same environment (one entry per environment with a change under
    /// way or done, at most one per record: [`HOSTS`] per agent).
    environment_changes: EnvironmentLocks,
}

/// One lock per environment (see [`ContainerDriver::environment_changes`]).
type EnvironmentLocks =
    Arc<std::sync::Mutex<std::collections::BTreeMap<EnvironmentId, Arc<tokio::sync::Mutex<()>>>>>;

/// Milliseconds since the Unix epoch by this machine's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl ContainerDriver {
    /// A driver; call [`Self::prepare_host`] once before use. Fails if the machine has no
    /// usable cgroup hierarchy or the seccomp profile cannot be read.
    pub fn new(config: ContainerConfig) -> Result<Self, DriverError> {
        let hierarchy = Hierarchy::detect().ok_or_else(|| {
            DriverError::Unsupported(
                "no cgroup hierarchy with the memory and pids controllers".into(),
            )
        })?;
        let profile = seccomp::read_profile(&config.seccomp_profile).map_err(system)?;
        seccomp::for_container(&profile, &seccomp::Machine::current(), &[]).map_err(system)?;
        let images = ImageStore::new(
            &config.state_dir.join("images"),
            config.insecure_registries.clone(),
            config.image_limits,
        )
        .map_err(system)?;
        Ok(Self {
            records: Records::new(&config.state_dir),
            rootfs: RootfsCache::new(&config.state_dir, ID_RANGE),
            runc: Runc::new(&config.state_dir.join("runc")),
            images: Arc::new(images),
            hierarchy,
            seccomp: Arc::new(profile),
            config: Arc::new(config),
            changes: Arc::new(tokio::sync::Mutex::new(())),
            environment_changes: Arc::default(),
        })
    }

    /// What [`Driver::ensure`] does under the changes lock: create, update or restart.
    async fn ensure_locked(
        &self,
        environment: EnvironmentId,
        (generation, spec): (u64, &Spec),
        image: &Image,
    ) -> Result<Observation, DriverError> {
        let existing = match self.records.read(environment).await? {
            // A creation that did not finish (an agent killed, say) starts over.
            Some(record) if !record.built => {
                self.remove(environment).await?;
                None
            }
            other => other,
        };
        let record = match existing {
            None => {
                let record = self.create(environment, generation, spec, image).await?;
                self.evict_images().await;
                record
            }
            Some(record) if record.generation != generation => {
                let record = self
                    .update(environment, record, generation, spec, image)
                    .await?;
                self.evict_images().await;
                record
            }
            Some(record) => self.restart(environment, record).await?,
        };
        Ok(self.observe(environment, &record).await)
    }

    /// Takes `environment`'s own change lock (see [`Self::environment_changes`]).
    async fn environment_lock(
        &self,
        environment: EnvironmentId,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .environment_changes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            locks.entry(environment).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Forgets `environment`'s lock once no change of it waits (after a destroy).
    fn forget_lock(&self, environment: EnvironmentId) {
        let mut locks = self
            .environment_changes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Held by the map alone: no other change has it or waits for it.
        if locks
            .get(&environment)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&environment);
        }
    }

    /// The driver's settings.
    pub fn config(&self) -> &ContainerConfig {
        &self.config
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The directory of `environment` (record, disk, bundle, logs).
    pub fn environment_dir(&self, environment: EnvironmentId) -> PathBuf {
        self.records.dir(environment)
    }

    /// runc, with the driver's state directory.
    pub fn runc(&self) -> &Runc {
        &self.runc
    }

    /// The cgroup hierarchy in use.
    pub fn hierarchy(&self) -> Hierarchy {
        self.hierarchy
    }

    /// Checks the host commands, sets up the bridge and firewall, adopts the environments it
    /// has records of and removes what an earlier agent left without one.
    pub async fn prepare_host(&self) -> Result<(), DriverError> {
        for (command, package) in HOST_COMMANDS {
            if command::output_status("sh", &["-c", &format!("command -v {command}")])
                .await
                .0
            {
                continue;
            }
            return Err(DriverError::Unsupported(format!(
                "{command} is missing (Debian package {package}; scripts/install-deps installs it)"
            )));
        }
        self.images.prepare().await.map_err(system)?;
        self.rootfs.prepare().await?;
        self.config
            .network
            .prepare_host(&self.forwarding_marker())
            .await?;
        self.records.prepare().await?;
        tokio::fs::create_dir_all(self.runc.root())
            .await
            .map_err(system)?;
        self.adopt().await?;
        self.sweep_orphans().await
    }

    /// Takes over every recorded environment: one whose creation did not finish is removed
    /// (nothing of its tenant's is on it yet); a built one gets its disk mounted, its network
    /// namespace made again if it is gone (after a reboot) and its ports published again. One
    /// that cannot be adopted now is left as it is, volume included, and tried again by the
    /// next ensure: only the chain decides that an environment goes.
    async fn adopt(&self) -> Result<(), DriverError> {
        for environment in self.records.list().await? {
            let record = match self.records.read(environment).await {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%environment, %error, "unreadable record: left as it is");
                    continue;
                }
            };
            if !record.built {
                tracing::info!(%environment, "removing an environment whose creation did not finish");
                self.remove(environment).await?;
                continue;
            }
            match self.attach(environment, &record).await {
                Ok(()) => tracing::info!(%environment, "adopted"),
                Err(error) => tracing::warn!(%environment, %error, "cannot adopt now; kept"),
            }
        }
        Ok(())
    }

    /// Makes a built environment's disk, network namespace and published ports present
    /// (idempotent).
    async fn attach(&self, environment: EnvironmentId, record: &Record) -> Result<(), DriverError> {
        let dir = self.records.dir(environment);
        let network = &self.config.network;
        let ports = record.spec.workload.ports.to_vec();
        disk::mount(&dir.join("disk.img"), &dir.join("disk")).await?;
        if network.exists(environment).await {
            network.admit(environment, &ports).await?;
        } else {
            network
                .create(environment, record.host, &ports, low_ports(&record.spec))
                .await?;
        }
        network.publish(environment, record.host, &ports).await?;
        Ok(())
    }

    /// Removes containers, cgroups and network namespaces of this agent that have no record.
    async fn sweep_orphans(&self) -> Result<(), DriverError> {
        let known = self.records.list().await?;
        let mut orphans: Vec<EnvironmentId> = self
            .hierarchy
            .environments(&self.agent_cgroup())
            .into_iter()
            .map(EnvironmentId)
            .collect();
        orphans.extend(self.config.network.list().await);
        let prefix = format!("{}-env-", self.config.name);
        orphans.extend(self.runc.list().await.iter().filter_map(|id| {
            id.strip_prefix(&prefix)
                .and_then(|id| id.parse::<EnvironmentId>().ok())
        }));
        orphans.sort();
        orphans.dedup();
        for id in orphans.into_iter().filter(|id| !known.contains(id)) {
            tracing::info!(environment = %id, "removing an orphaned environment");
            self.remove(id).await?;
        }
        Ok(())
    }

    /// Where the network remembers that it turned IPv4 forwarding on.
    fn forwarding_marker(&self) -> PathBuf {
        self.config.state_dir.join("ip-forward-enabled")
    }

    /// Destroys every environment of this agent and takes down its bridge, firewall rules
    /// and cgroup directory (for throwaway networks such as a devnet).
    pub async fn destroy_all(&self) -> Result<(), DriverError> {
        for id in self.records.list().await? {
            self.destroy(id).await?;
        }
        self.config
            .network
            .teardown_host(&self.forwarding_marker())
            .await;
        self.hierarchy.remove(&self.agent_cgroup());
        Ok(())
    }

    fn agent_cgroup(&self) -> String {
        format!("/logos/{}", self.config.name)
    }

    /// The cgroup path of `environment` (`/logos/<agent>/env-<id>`).
    pub fn cgroup(&self, environment: EnvironmentId) -> String {
        format!("{}/env-{environment}", self.agent_cgroup())
    }

    /// runc's id of `environment`'s container.
    pub fn container_id(&self, environment: EnvironmentId) -> String {
        format!("{}-env-{environment}", self.config.name)
    }

    /// The host id range of the environment on `host`.
    fn ids(&self, host: u8) -> IdRange {
        let slot = u32::from(self.config.network.index) * 256 + u32::from(host);
        IdRange {
            base: slot.saturating_mul(ID_RANGE),
        }
    }

    /// Whether the workload of `record` may be alive: runc says so, or its shim still runs
    /// and has written no exit status (runc has not created the container yet).
    async fn alive(&self, environment: EnvironmentId, record: &Record) -> bool {
        let state = self.runc.state(&self.container_id(environment)).await;
        if state.as_ref().is_some_and(|state| state.is_alive()) {
            return true;
        }
        let exit = self.records.dir(environment).join("exit");
        !exit.exists() && shim_running(record.shim_pid, &exit)
    }

    async fn observe(&self, environment: EnvironmentId, record: &Record) -> Observation {
        let workload = match self.alive(environment, record).await {
            true => WorkloadState::Running,
            // A stopped container's cgroups stay until the next start deletes them.
            _ if self.hierarchy.oom_kills(&self.cgroup(environment)) > 0 => {
                WorkloadState::OomKilled {
                    limit_mib: record.spec.resources.memory_mib,
                }
            }
            _ => WorkloadState::Exited {
                code: shim::read_exit(&self.records.dir(environment).join("exit")),
            },
        };
        let network = &self.config.network;
        let health = record.spec.workload.health.port;
        let endpoint = record
            .ports
            .iter()
            .find(|mapping| mapping.port == health)
            .map(|mapping| network.endpoint(mapping.published))
            .unwrap_or_default();
        Observation {
            environment,
            generation: record.generation,
            workload,
            endpoint,
            ports: record.ports.clone(),
            restarts: record.restarts,
            image: format!("sha256:{}", record.image_digest_hex),
            started_at_ms: record.started_at_ms,
            limits: record.spec.resources,
            attestation: None,
        }
    }

    /// Refuses a disk of `disk_gib` when the state directory's filesystem has less room than
    /// it (disks are sparse: this stops a create that could never fill its disk, it does not
    /// reserve the space).
    async fn check_free_space(&self, disk_gib: u64) -> Result<(), DriverError> {
        let free = disk::free_bytes(&self.config.state_dir).await;
        let wanted = disk_gib.max(1).saturating_mul(1 << 30);
        if free < wanted {
            return Err(DriverError::Capacity(format!(
                "{free} bytes free for a disk of {wanted} bytes"
            )));
        }
        Ok(())
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

    /// Makes `image` present (pinned against eviction), as an image refusal.
    async fn image(&self, reference: &str) -> Result<(Image, Pin), DriverError> {
        self.images
            .ensure(reference)
            .await
            .map_err(|error| DriverError::Image(error.to_string()))
    }

    /// Allocates and builds a new environment (disk, rootfs, volume, network) and starts it.
    async fn create(
        &self,
        environment: EnvironmentId,
        generation: u64,
        spec: &Spec,
        image: &Image,
    ) -> Result<Record, DriverError> {
        if self.records.list().await?.len() >= ENVIRONMENTS_MAX {
            return Err(DriverError::Capacity("environment limit reached".into()));
        }
        self.check_free_space(spec.resources.disk_gib).await?;
        let mut record = Record {
            generation,
            spec: spec.clone(),
            host: self.free_host().await?,
            restarts: 0,
            image_digest_hex: String::new(),
            image_config: ImageConfig::default(),
            image_pull_ms: image.pull_ms,
            ports: Vec::new(),
            started_at_ms: 0,
            shim_pid: 0,
            built: false,
        };
        self.records.create_dir(environment).await?;
        // Written first: whatever a crash leaves half-built is found (not `built`) and removed.
        self.records.write(environment, &record).await?;
        let built = self.build(environment, &mut record, image).await;
        if let Err(error) = built {
            let _ = self.remove(environment).await;
            return Err(error);
        }
        record.built = true;
        self.records.write(environment, &record).await?;
        self.start(environment, &mut record).await?;
        Ok(record)
    }

    async fn build(
        &self,
        environment: EnvironmentId,
        record: &mut Record,
        image: &Image,
    ) -> Result<(), DriverError> {
        let dir = self.records.dir(environment);
        let ids = self.ids(record.host);
        let started = std::time::Instant::now();
        disk::create(
            &dir.join("disk.img"),
            record.spec.resources.disk_gib,
            (ids.base, ids.base),
        )
        .await?;
        disk::mount(&dir.join("disk.img"), &dir.join("disk")).await?;
        let volume = dir.join("disk/volume");
        tokio::fs::create_dir(&volume).await.map_err(system)?;
        std::os::unix::fs::chown(&volume, Some(ids.workload_uid()), Some(ids.workload_gid()))
            .map_err(system)?;
        let disk_ms = started.elapsed().as_millis();
        self.unpack(environment, record, image).await?;
        let unpack_ms = started.elapsed().as_millis() - disk_ms;
        let ports = record.spec.workload.ports.to_vec();
        let low = low_ports(&record.spec);
        self.config
            .network
            .create(environment, record.host, &ports, low)
            .await?;
        record.ports = self
            .config
            .network
            .publish(environment, record.host, &ports)
            .await?;
        let network_ms = started.elapsed().as_millis() - disk_ms - unpack_ms;
        tracing::info!(%environment, disk_ms, unpack_ms, network_ms, "built");
        self.records.write(environment, record).await
    }

    /// Makes a fresh `rootfs/` of `image` on the environment's disk: a copy of the image's
    /// cached tree ([`rootfs`]), else unpacked (and then kept in that cache).
    async fn unpack(
        &self,
        environment: EnvironmentId,
        record: &mut Record,
        image: &Image,
    ) -> Result<(), DriverError> {
        let rootfs = self.records.dir(environment).join("disk/rootfs");
        if rootfs.exists() {
            tokio::fs::remove_dir_all(&rootfs).await.map_err(system)?;
        }
        let ids = self.ids(record.host);
        let copied = self
            .rootfs
            .copy(&image.digest_hex, &rootfs, ids.base)
            .await
            // Unpacked instead: a disk too small for the image fails there, with its reason.
            .inspect_err(|error| tracing::warn!(%environment, %error, "rootfs copy failed"));
        if !matches!(copied, Ok(true)) {
            let unpacked = self.images.unpack(image, &rootfs, ids.base, ID_RANGE).await;
            if let Err(error) = unpacked {
                let _ = tokio::fs::remove_dir_all(&rootfs).await;
                return Err(DriverError::Image(format!(
                    "{error} (the environment's disk holds {} GiB)",
                    record.spec.resources.disk_gib
                )));
            }
            let kept = self.rootfs.keep(&image.digest_hex, &rootfs, ids.base).await;
            if let Err(error) = kept {
                tracing::warn!(%environment, %error, "cannot keep the unpacked rootfs");
            }
        }
        record.image_digest_hex = image.digest_hex.clone();
        record.image_config = image.config.clone();
        Ok(())
    }

    /// Moves an environment to a new generation: stops it, unpacks the new image over its
    /// rootfs, keeps its volume, re-publishes changed ports and starts it.
    async fn update(
        &self,
        environment: EnvironmentId,
        mut record: Record,
        generation: u64,
        spec: &Spec,
        image: &Image,
    ) -> Result<Record, DriverError> {
        self.stop(environment).await?;
        let network = &self.config.network;
        let (old, new) = (
            record.spec.workload.ports.to_vec(),
            spec.workload.ports.to_vec(),
        );
        record.generation = generation;
        record.spec = spec.clone();
        record.restarts = 0;
        record.image_pull_ms = image.pull_ms;
        self.unpack(environment, &mut record, image).await?;
        if old != new {
            network.unpublish(environment, record.host, &old).await;
            network.admit(environment, &new).await?;
            record.ports = network.publish(environment, record.host, &new).await?;
        }
        self.records.write(environment, &record).await?;
        self.start(environment, &mut record).await?;
        Ok(record)
    }

    /// The process's arguments: the template's command (or the image's entrypoint and
    /// command) with the placeholders replaced, `${PUBLISHED:<port>}` by where `ports`
    /// publishes that declared port (the chain refuses a template naming another port).
    fn arguments(
        &self,
        environment: EnvironmentId,
        (spec, ports): (&Spec, &[PortMapping]),
        image: &ImageConfig,
    ) -> Result<Vec<String>, DriverError> {
        let network = &self.config.network;
        let (relay, p2p, egress) = (
            network.relay_url(),
            network.chain_p2p(),
            network.p2p_egress(),
        );
        let id = environment.to_string();
        let template: Vec<String> = spec
            .workload
            .command
            .iter()
            .map(|part| part.to_string())
            .collect();
        let args = if template.is_empty() {
            [image.entrypoint.clone(), image.cmd.clone()].concat()
        } else {
            template
        };
        if args.is_empty() {
            return Err(DriverError::Image(
                "the image has no entrypoint or command and the template names none".into(),
            ));
        }
        Ok(args
            .iter()
            .map(|part| {
                part.replace(CHAIN_RPC_PLACEHOLDER, &relay)
                    .replace(CHAIN_P2P_PLACEHOLDER, &p2p)
                    .replace(P2P_EGRESS_PLACEHOLDER, &egress)
                    .replace(ENVIRONMENT_PLACEHOLDER, &id)
            })
            .map(|part| network.with_published(part, ports))
            .collect())
    }

    /// The process's environment: the image's, then the template's, then the agent's
    /// `LOGOS_*` variables (a later name replaces an earlier one).
    fn variables(
        &self,
        environment: EnvironmentId,
        spec: &Spec,
        image: &ImageConfig,
    ) -> Vec<String> {
        let network = &self.config.network;
        let volume = spec.workload.volume_path();
        let mut variables: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("HOME".into(), volume.into()),
        ];
        let image_env = image.env.iter().filter_map(|entry| {
            entry
                .split_once('=')
                .map(|(name, value)| (name.to_string(), value.to_string()))
        });
        let template_env = spec
            .workload
            .env
            .iter()
            .map(|variable| (variable.name.to_string(), variable.value.to_string()));
        let agent_env = [
            ("LOGOS_CHAIN_RPC".to_string(), network.relay_url()),
            ("LOGOS_CHAIN_P2P".to_string(), network.chain_p2p()),
            ("LOGOS_ENVIRONMENT".to_string(), environment.to_string()),
        ];
        for (name, value) in image_env.chain(template_env).chain(agent_env) {
            variables.retain(|(other, _)| *other != name);
            variables.push((name, value));
        }
        variables
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect()
    }

    /// Writes the runtime spec of `record` into `envs/E/bundle/config.json`.
    async fn write_bundle(
        &self,
        environment: EnvironmentId,
        record: &Record,
    ) -> Result<(), DriverError> {
        let image = &record.image_config;
        let dir = self.records.dir(environment);
        let spec = &record.spec;
        let seccomp = seccomp::for_container(
            &self.seccomp,
            &seccomp::Machine::current(),
            &spec.workload.capabilities,
        )
        .map_err(system)?;
        let volume_path = spec.workload.volume_path().to_string();
        let input = SpecInput {
            environment,
            rootfs: dir.join("disk/rootfs"),
            args: self.arguments(environment, (spec, &record.ports), image)?,
            env: self.variables(environment, spec, image),
            cwd: working_dir(image).unwrap_or_else(|| volume_path.clone()),
            ids: self.ids(record.host),
            capabilities: spec.workload.capabilities.to_vec(),
            resources: spec.resources,
            cgroups_path: self.cgroup(environment),
            network_namespace: Path::new("/run/netns")
                .join(self.config.network.namespace(environment)),
            volume: (dir.join("disk/volume"), volume_path),
            binds: self.config.binds.clone(),
            seccomp,
        };
        let runtime_spec = spec::build(&input).map_err(system)?;
        let bundle = dir.join("bundle");
        tokio::fs::create_dir_all(&bundle).await.map_err(system)?;
        let json = serde_json::to_vec_pretty(&runtime_spec).map_err(system)?;
        tokio::fs::write(bundle.join("config.json"), json)
            .await
            .map_err(system)
    }

    /// Starts the workload under a new shim and waits briefly for it to run.
    async fn start(
        &self,
        environment: EnvironmentId,
        record: &mut Record,
    ) -> Result<(), DriverError> {
        let id = self.container_id(environment);
        self.runc.delete(&id).await?;
        let dir = self.records.dir(environment);
        let _ = tokio::fs::remove_file(dir.join("exit")).await;
        self.write_bundle(environment, record).await?;
        let shim = ShimConfig {
            runc_args: self.runc.run_args(&dir.join("bundle"), &id),
            log_dir: dir.join("logs"),
            log_file_max_bytes: self.config.log_file_max_bytes,
            log_bytes_per_second: self.config.log_bytes_per_second,
            exit_file: dir.join("exit"),
        };
        let shim_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("shim.log"))
            .map_err(system)?;
        let (program, prefix) = self
            .config
            .shim_command
            .split_first()
            .ok_or_else(|| DriverError::System("no shim command configured".into()))?;
        // Its own process group: a Ctrl-C meant for the agent's terminal does not reach it.
        let shim = tokio::process::Command::new(program)
            .args(prefix)
            .args(shim.to_args())
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(shim_log)
            .spawn()
            .map_err(|error| DriverError::System(format!("shim: {error}")))?;
        record.started_at_ms = now_ms();
        record.shim_pid = shim.id().unwrap_or(0);
        self.records.write(environment, record).await?;
        for _ in 0..START_POLLS {
            let state = self.runc.state(&id).await;
            if state
                .as_ref()
                .is_some_and(|state| state.status == "running")
                || dir.join("exit").exists()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(START_POLL_MS)).await;
        }
        Ok(())
    }

    /// Kills the workload (SIGKILL to every process; an update or a destroy asked it to stop
    /// first, see [`Self::terminate`]) and waits for it and its shim to be gone; deletes the
    /// container.
    async fn stop(&self, environment: EnvironmentId) -> Result<(), DriverError> {
        let id = self.container_id(environment);
        let shim = match self.records.read(environment).await {
            Ok(Some(record)) => record.shim_pid,
            _ => 0,
        };
        let exit = self.records.dir(environment).join("exit");
        for _ in 0..STOP_POLLS {
            let alive = self
                .runc
                .state(&id)
                .await
                .is_some_and(|state| state.is_alive());
            // A starting workload: its shim runs, runc may not know the container yet.
            if !alive && !shim_running(shim, &exit) {
                break;
            }
            self.runc.kill(&id).await;
            tokio::time::sleep(Duration::from_millis(STOP_POLL_MS)).await;
        }
        if shim_running(shim, &exit) {
            let _ = command::run("kill", &["-9", &shim.to_string()]).await;
        }
        self.runc.delete(&id).await
    }

    /// Sends SIGTERM to the running workload's init and waits up to [`STOP_GRACE_MS`] for it
    /// to exit, if the init catches SIGTERM: an init without a handler ignores it (the kernel
    /// drops it, pid_namespaces(7)), so waiting would only delay the kill. Called before the
    /// changes lock is taken, so a workload that lingers delays only its own update or
    /// destroy; the stop under the lock kills whatever is left.
    async fn terminate(&self, environment: EnvironmentId) {
        let id = self.container_id(environment);
        let Some(state) = self.runc.state(&id).await else {
            return;
        };
        let status = std::fs::read_to_string(format!("/proc/{}/status", state.pid));
        let catches = status.is_ok_and(|status| catches_sigterm(&status));
        if state.status != "running" || state.pid <= 0 || !catches {
            return;
        }
        self.runc.signal(&id, "TERM").await;
        let started = std::time::Instant::now();
        for _ in 0..STOP_GRACE_MS / STOP_POLL_MS {
            let alive = self
                .runc
                .state(&id)
                .await
                .is_some_and(|state| state.is_alive());
            if !alive {
                let elapsed_ms = started.elapsed().as_millis();
                tracing::info!(%environment, elapsed_ms, "workload exited on SIGTERM");
                return;
            }
            tokio::time::sleep(Duration::from_millis(STOP_POLL_MS)).await;
        }
        tracing::warn!(%environment, "still running {STOP_GRACE_MS} ms after SIGTERM; killing it");
    }

    /// Removes everything of `environment`: container, port mappings, namespace, disk,
    /// cgroups and directory.
    async fn remove(&self, environment: EnvironmentId) -> Result<(), DriverError> {
        self.stop(environment).await?;
        let network = &self.config.network;
        let record = self.records.read(environment).await.ok().flatten();
        if let Some(record) = &record {
            network
                .unpublish(environment, record.host, &record.spec.workload.ports)
                .await;
        }
        network
            .remove(environment, record.as_ref().map(|record| record.host))
            .await;
        let dir = self.records.dir(environment);
        disk::unmount(&dir.join("disk")).await?;
        self.hierarchy.remove(&self.cgroup(environment));
        self.records.remove(environment).await
    }

    /// Restarts the workload of the current generation if it stopped (one still starting is
    /// left alone).
    async fn restart(
        &self,
        environment: EnvironmentId,
        mut record: Record,
    ) -> Result<Record, DriverError> {
        if !self.alive(environment, &record).await {
            record.restarts = record.restarts.saturating_add(1);
            self.start(environment, &mut record).await?;
        }
        Ok(record)
    }

    /// Evicts cached images no environment uses beyond the cache's bound.
    async fn evict_images(&self) {
        let mut keep = Vec::new();
        for environment in self.records.list().await.unwrap_or_default() {
            if let Ok(Some(record)) = self.records.read(environment).await {
                keep.push(record.image_digest_hex);
            }
        }
        if let Err(error) = self
            .images
            .evict(&keep, self.config.image_cache_max_bytes)
            .await
        {
            tracing::warn!(%error, "image cache eviction failed");
        }
        // An unreadable image index keeps every tree (it would otherwise name no image).
        let retained = match self.images.names().await {
            Ok(cached) => self.rootfs.retain(&cached).await,
            Err(error) => Err(system(error)),
        };
        if let Err(error) = retained {
            tracing::warn!(%error, "rootfs cache eviction failed");
        }
    }

    /// Bytes the environment's veth moved: (received by it, sent by it), from the host end's
    /// counters in `/proc/net/dev` (the agent's network namespace).
    async fn traffic(&self, record: &Record) -> (u64, u64) {
        let text = tokio::fs::read_to_string("/proc/net/dev")
            .await
            .unwrap_or_default();
        let veth = self.config.network.host_veth(record.host);
        interface_traffic(&text, &veth)
            // The host end sends what the environment receives.
            .map(|(host_rx, host_tx)| (host_tx, host_rx))
            .unwrap_or((0, 0))
    }
}

/// Whether a `/proc/PID/status` text says the process catches SIGTERM (its `SigCgt` mask).
pub fn catches_sigterm(status: &str) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & SIGTERM_MASK != 0)
}

/// Whether `pid` is the running shim writing `exit` (`… agent shim … --exit-file <exit> …`):
/// a reused pid is some other process, another environment's shim included.
fn shim_running(pid: u32, exit: &Path) -> bool {
    if pid == 0 {
        return false;
    }
    let command_line = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let arguments: Vec<&[u8]> = command_line.split(|byte| *byte == 0).collect();
    let exit = exit.as_os_str().as_encoded_bytes();
    let is_shim = arguments
        .windows(2)
        .any(|pair| pair == [b"agent".as_slice(), b"shim".as_slice()]);
    let ours = arguments
        .windows(2)
        .any(|pair| pair == [b"--exit-file".as_slice(), exit]);
    is_shim && ours
}

/// Whether the spec's workload may bind ports below 1024 (it keeps `NET_BIND_SERVICE`).
fn low_ports(spec: &Spec) -> bool {
    spec.workload
        .capabilities
        .contains(&logos_types::workload::Capability::NetBindService)
}

/// The image's working directory if it is a plain absolute path off the runtime's own mounts
/// (an image's `WorkingDir` is untrusted: `/proc/self/fd/…` once let workloads out).
fn working_dir(image: &ImageConfig) -> Option<String> {
    let dir = image.working_dir.as_deref()?;
    let plain = dir.starts_with('/')
        && dir
            .split('/')
            .skip(1)
            .all(|part| !part.is_empty() && part != "." && part != "..");
    let runtime = ["/proc", "/sys", "/dev"]
        .iter()
        .any(|reserved| dir == *reserved || dir.starts_with(&format!("{reserved}/")));
    (dir == "/" || (plain && !runtime)).then(|| dir.to_string())
}

/// (received, sent) bytes of `interface` in `/proc/net/dev`'s format.
fn interface_traffic(text: &str, interface: &str) -> Option<(u64, u64)> {
    let line = text.lines().find_map(|line| {
        let (name, counters) = line.split_once(':')?;
        (name.trim() == interface).then_some(counters)
    })?;
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    Some((*numbers.first()?, *numbers.get(8)?))
}

impl Driver for ContainerDriver {
    async fn ensure(
        &self,
        environment: EnvironmentId,
        generation: u64,
        spec: &Spec,
    ) -> Result<Observation, DriverError> {
        // Pulled before the changes lock (a pull takes only its image's lock), pinned until
        // the environment records it.
        let (image, _pin) = self.image(&spec.workload.image).await?;
        let own = self.environment_lock(environment).await;
        // An update to a newer generation stops the old one: asked first, outside the lock.
        let updating = self.records.read(environment).await.ok().flatten();
        if updating.is_some_and(|record| record.built && record.generation < generation) {
            self.terminate(environment).await;
        }
        let ensured = {
            let _guard = self.changes.lock().await;
            self.ensure_locked(environment, (generation, spec), &image)
                .await
        };
        drop(own);
        // A creation that failed left no record: its lock goes too.
        if !matches!(self.records.read(environment).await, Ok(Some(_))) {
            self.forget_lock(environment);
        }
        ensured
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
        let own = self.environment_lock(environment).await;
        self.terminate(environment).await;
        let removed = {
            let _guard = self.changes.lock().await;
            self.remove(environment).await
        };
        drop(own);
        self.forget_lock(environment);
        removed
    }

    async fn list(&self) -> Result<Vec<EnvironmentId>, DriverError> {
        self.records.list().await
    }

    async fn logs(
        &self,
        environment: EnvironmentId,
        max_bytes: u64,
    ) -> Result<Option<String>, DriverError> {
        let dir = self.records.dir(environment).join("logs");
        let bytes = tokio::task::spawn_blocking(move || shim::tail(&dir, max_bytes))
            .await
            .map_err(system)?
            .map_err(system)?;
        Ok(bytes.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn read_logs(
        &self,
        environment: EnvironmentId,
        cursor: LogCursor,
        max_bytes: u64,
    ) -> Result<Option<(Vec<u8>, LogCursor)>, DriverError> {
        let dir = self.records.dir(environment).join("logs");
        if !dir.join(shim::LOG_FILE).exists() {
            return Ok(None);
        }
        let read = tokio::task::spawn_blocking(move || shim::read_after(&dir, cursor, max_bytes))
            .await
            .map_err(system)?;
        match read {
            Ok(read) => Ok(Some(read)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(system(error)),
        }
    }

    async fn usage(&self, environment: EnvironmentId) -> Result<Option<Usage>, DriverError> {
        let Some(record) = self.records.read(environment).await? else {
            return Ok(None);
        };
        let cgroups = self.hierarchy.usage(&self.cgroup(environment));
        let disk = disk::usage(&self.records.dir(environment).join("disk")).await;
        let (received, sent) = self.traffic(&record).await;
        Ok(Some(Usage {
            generation: record.generation,
            cpu_usage_us: cgroups.cpu_usage_us,
            cpu_limit_vcpu: record.spec.resources.vcpu,
            memory_bytes: cgroups.memory_bytes,
            memory_limit_bytes: cgroups.memory_limit_bytes,
            disk_used_bytes: disk.used_bytes,
            disk_size_bytes: disk.size_bytes,
            network_rx_bytes: received,
            network_tx_bytes: sent,
            pids: cgroups.pids,
            restarts: record.restarts,
        }))
    }
}

#[cfg(test)]
mod tests;
