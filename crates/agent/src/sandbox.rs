//! The Linux sandbox driver: one environment = one bubblewrap sandbox in its own network
//! namespace, in its own cgroups, with its own filesystem.
//!
//! For environment `E` of an agent with network index `N` and name `A`:
//! - **Namespaces**: user, pid, ipc, uts and cgroup (bubblewrap) plus a named network namespace
//!   `lgN-E`; the root filesystem is the host's `/usr` read-only plus a private writable
//!   `/data` (`STATE/envs/E/data`), a private `/tmp`, `/proc` and `/dev`, and the read-only
//!   binds of [`SandboxConfig::binds`].
//! - **Limits** (cgroup v1, `/sys/fs/cgroup/{memory,pids,cpu}/logos/A/env-E`): memory and
//!   memory+swap = the product's memory, `cpu.cfs_quota_us` = vCPU × period, `pids.max` =
//!   [`PIDS_MAX`]. A workload over its memory is killed by the kernel and observed as
//!   `OomKilled` (the cgroup's `oom_kill` counter moved since the start).
//! - **Network**: a veth pair from the namespace (`eth0`, `10.88.N.H/24`) to the provider's
//!   bridge `lgbrN` (`10.88.N.1`), default route via the bridge. Inside the namespace iptables
//!   drops every inbound connection except to the template's declared ports. On the host,
//!   connections from the bridge are accepted only to the chain relay port (the gatekeeper's
//!   relay to the chain RPC) and as replies.
//! - **Workload**: the template's command, with `${CHAIN_RPC}` replaced by the relay's URL and
//!   `${ENVIRONMENT}` by `E`; its output goes to `STATE/envs/E/log`.
//!
//! State on disk (`STATE/envs/E/record.json`) makes every operation idempotent and lets a
//! restarted agent find its environments again.

use crate::driver::{Driver, DriverError};
use logos_api::agent::{Observation, WorkloadState};
use logos_state::modules::operations::Spec;
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::process::Command;

/// Most processes in one environment.
pub const PIDS_MAX: u32 = 512;
/// CFS period of the CPU limit, µs.
pub const CPU_PERIOD_US: u64 = 100_000;
/// Most environments per agent (hosts 2..=254 of its /24).
pub const ENVIRONMENTS_MAX: usize = 253;
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// Settings of a sandbox driver.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Directory for environment records, filesystems and logs.
    pub state_dir: PathBuf,
    /// Name of this agent's cgroup subtree (`logos/<name>`).
    pub name: String,
    /// Network index `N` (1..=250): bridge `lgbrN`, network `10.88.N.0/24`.
    pub network_index: u8,
    /// Port of the chain relay on the bridge address.
    pub chain_relay_port: u16,
    /// Read-only binds into every sandbox: (host path, path inside).
    pub binds: Vec<(PathBuf, String)>,
}

impl SandboxConfig {
    /// The bridge's name.
    pub fn bridge(&self) -> String {
        format!("lgbr{}", self.network_index)
    }

    /// The bridge's address (the environments' gateway).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, self.network_index, 1)
    }
}

/// What the driver remembers of an environment.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    generation: u64,
    spec: Spec,
    host: u8,
    restarts: u32,
    oom_kills_at_start: u64,
}

/// The sandbox driver (see the module docs).
#[derive(Clone)]
pub struct SandboxDriver {
    config: SandboxConfig,
    /// Exit statuses of workloads that ended, by environment.
    exits: Arc<Mutex<BTreeMap<u64, Option<i32>>>>,
    /// Serializes changes (create, restart, destroy).
    changes: Arc<tokio::sync::Mutex<()>>,
}

fn system(error: impl std::fmt::Display) -> DriverError {
    DriverError::System(error.to_string())
}

/// Runs `program args…`; fails with its stderr unless it exits 0.
async fn run(program: &str, args: &[&str]) -> Result<(), DriverError> {
    run_with_input(program, args, "").await
}

/// Like [`run`] with `input` on stdin.
async fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), DriverError> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| DriverError::System(format!("{program}: {error}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).await.map_err(system)?;
    drop(stdin);
    let output = child.wait_with_output().await.map_err(system)?;
    if !output.status.success() {
        return Err(DriverError::System(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

impl SandboxDriver {
    /// A driver; call [`Self::prepare_host`] once before use.
    pub fn new(config: SandboxConfig) -> Self {
        Self {
            config,
            exits: Arc::new(Mutex::new(BTreeMap::new())),
            changes: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The driver's settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Creates the bridge, its address and the host firewall for it (idempotent), and checks
    /// that bubblewrap and cgroup v1 controllers are present.
    pub async fn prepare_host(&self) -> Result<(), DriverError> {
        for controller in CONTROLLERS {
            let path = Path::new(CGROUP_ROOT).join(controller);
            if !path.join("tasks").exists() {
                return Err(DriverError::Unsupported(format!(
                    "cgroup v1 controller {controller} not mounted at {}",
                    path.display()
                )));
            }
        }
        run("bwrap", &["--version"]).await?;
        let bridge = self.config.bridge();
        if run("ip", &["link", "show", &bridge]).await.is_err() {
            run("ip", &["link", "add", &bridge, "type", "bridge"]).await?;
        }
        let address = format!("{}/24", self.config.gateway());
        run("ip", &["addr", "replace", &address, "dev", &bridge]).await?;
        run("ip", &["link", "set", &bridge, "up"]).await?;
        self.host_firewall(&bridge).await?;
        tokio::fs::create_dir_all(self.config.state_dir.join("envs"))
            .await
            .map_err(system)?;
        self.sweep_orphans().await
    }

    /// Removes cgroups and network namespaces of this agent that have no record (left by an
    /// agent that was killed with a different state directory).
    async fn sweep_orphans(&self) -> Result<(), DriverError> {
        let known = self.list().await?;
        let root = Path::new(CGROUP_ROOT)
            .join("memory")
            .join("logos")
            .join(&self.config.name);
        let mut orphans = BTreeSet::new();
        if let Ok(mut entries) = tokio::fs::read_dir(&root).await {
            while let Some(entry) = entries.next_entry().await.map_err(system)? {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_prefix("env-").and_then(|id| id.parse().ok()) {
                    orphans.insert(id);
                }
            }
        }
        let output = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .await
            .map_err(system)?;
        let prefix = format!("lg{}-", self.config.network_index);
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if let Some(id) = name.strip_prefix(&prefix).and_then(|id| id.parse().ok()) {
                orphans.insert(id);
            }
        }
        for id in orphans.into_iter().filter(|id| !known.contains(id)) {
            tracing::info!(environment = id, "removing orphaned sandbox");
            self.remove(id).await?;
        }
        Ok(())
    }

    /// Destroys every environment of this agent (for throwaway networks such as a devnet).
    pub async fn destroy_all(&self) -> Result<(), DriverError> {
        for id in self.list().await? {
            self.destroy(id).await?;
        }
        Ok(())
    }

    /// From the bridge, the host accepts only replies and connections to the chain relay.
    async fn host_firewall(&self, bridge: &str) -> Result<(), DriverError> {
        let chain = format!("LOGOS-{}", bridge.to_uppercase());
        let port = self.config.chain_relay_port.to_string();
        let _ = run("iptables", &["-N", &chain]).await;
        run("iptables", &["-F", &chain]).await?;
        let state = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"];
        run(
            "iptables",
            &[&["-A", &chain][..], &state[..], &["-j", "ACCEPT"]].concat(),
        )
        .await?;
        let relay = ["-A", &chain, "-p", "tcp", "--dport", &port, "-j", "ACCEPT"];
        run("iptables", &relay).await?;
        run("iptables", &["-A", &chain, "-j", "DROP"]).await?;
        let hook = ["INPUT", "-i", bridge, "-j", &chain];
        if run("iptables", &[&["-C"][..], &hook[..]].concat())
            .await
            .is_err()
        {
            run("iptables", &[&["-I"][..], &hook[..]].concat()).await?;
        }
        Ok(())
    }

    fn env_dir(&self, environment: u64) -> PathBuf {
        self.config
            .state_dir
            .join("envs")
            .join(environment.to_string())
    }

    fn namespace(&self, environment: u64) -> String {
        format!("lg{}-{environment}", self.config.network_index)
    }

    fn host_veth(&self, environment: u64) -> String {
        format!("lg{}h{}", self.config.network_index, environment % 100_000)
    }

    fn cgroup(&self, controller: &str, environment: u64) -> PathBuf {
        Path::new(CGROUP_ROOT)
            .join(controller)
            .join("logos")
            .join(&self.config.name)
            .join(format!("env-{environment}"))
    }

    fn address(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, self.config.network_index, host)
    }

    async fn read_record(&self, environment: u64) -> Result<Option<Record>, DriverError> {
        let path = self.env_dir(environment).join("record.json");
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(system)?)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(system(error)),
        }
    }

    async fn write_record(&self, environment: u64, record: &Record) -> Result<(), DriverError> {
        let path = self.env_dir(environment).join("record.json");
        let bytes = serde_json::to_vec_pretty(record).map_err(system)?;
        tokio::fs::write(path, bytes).await.map_err(system)
    }

    async fn cgroup_value(&self, controller: &str, environment: u64, file: &str) -> String {
        let path = self.cgroup(controller, environment).join(file);
        tokio::fs::read_to_string(path).await.unwrap_or_default()
    }

    async fn pids(&self, environment: u64) -> Vec<i32> {
        self.cgroup_value("memory", environment, "cgroup.procs")
            .await
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    async fn oom_kills(&self, environment: u64) -> u64 {
        self.cgroup_value("memory", environment, "memory.oom_control")
            .await
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn observe(&self, environment: u64, record: &Record) -> Observation {
        let workload = if !self.pids(environment).await.is_empty() {
            WorkloadState::Running
        } else if self.oom_kills(environment).await > record.oom_kills_at_start {
            WorkloadState::OomKilled {
                limit_mib: record.spec.resources.memory_mib,
            }
        } else {
            let code = self
                .exits
                .lock()
                .expect("exits lock")
                .get(&environment)
                .copied()
                .flatten();
            WorkloadState::Exited { code }
        };
        Observation {
            environment,
            generation: record.generation,
            workload,
            endpoint: format!(
                "{}:{}",
                self.address(record.host),
                record.spec.workload.health_port
            ),
            restarts: record.restarts,
        }
    }

    async fn free_host(&self) -> Result<u8, DriverError> {
        let mut used = Vec::new();
        for environment in self.list().await? {
            if let Some(record) = self.read_record(environment).await? {
                used.push(record.host);
            }
        }
        (2..=254u8)
            .find(|host| !used.contains(host))
            .ok_or_else(|| DriverError::Capacity("no free address on the service network".into()))
    }

    async fn create(&self, environment: u64, record: &Record) -> Result<(), DriverError> {
        let image = record.spec.workload.image.as_str();
        if !matches!(image, "" | "host") {
            return Err(DriverError::Unsupported(format!(
                "image {image:?}: the sandbox driver runs host-base workloads only"
            )));
        }
        if record.spec.workload.command.is_empty() {
            return Err(DriverError::Unsupported("empty command".into()));
        }
        let dir = self.env_dir(environment);
        tokio::fs::create_dir_all(dir.join("data"))
            .await
            .map_err(system)?;
        self.write_record(environment, record).await?;
        self.create_cgroups(environment, &record.spec).await?;
        self.create_network(environment, record).await
    }

    async fn create_cgroups(&self, environment: u64, spec: &Spec) -> Result<(), DriverError> {
        for controller in CONTROLLERS {
            tokio::fs::create_dir_all(self.cgroup(controller, environment))
                .await
                .map_err(system)?;
        }
        let memory_bytes = (spec.resources.memory_mib * 1024 * 1024).to_string();
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
            let path = self.cgroup(controller, environment).join(file);
            let optional = file.contains("memsw") || file.contains("swappiness");
            match tokio::fs::write(&path, &value).await {
                Ok(()) => {}
                Err(_) if optional && !path.exists() => {}
                Err(error) => return Err(system(format!("{}: {error}", path.display()))),
            }
        }
        Ok(())
    }

    async fn create_network(&self, environment: u64, record: &Record) -> Result<(), DriverError> {
        let namespace = self.namespace(environment);
        let host_veth = self.host_veth(environment);
        let inner = format!("lg{}c{}", self.config.network_index, environment % 100_000);
        let address = format!("{}/24", self.address(record.host));
        let gateway = self.config.gateway().to_string();
        run("ip", &["netns", "add", &namespace]).await?;
        let veth = [
            "link", "add", &host_veth, "type", "veth", "peer", "name", &inner,
        ];
        run("ip", &veth).await?;
        run("ip", &["link", "set", &inner, "netns", &namespace]).await?;
        let bridge = self.config.bridge();
        run("ip", &["link", "set", &host_veth, "master", &bridge, "up"]).await?;
        let n = ["-n", namespace.as_str()];
        for args in [
            &["link", "set", &inner, "name", "eth0"][..],
            &["addr", "add", &address, "dev", "eth0"],
            &["link", "set", "eth0", "up"],
            &["link", "set", "lo", "up"],
            &["route", "add", "default", "via", &gateway],
        ] {
            run("ip", &[&n[..], args].concat()).await?;
        }
        let mut rules = String::from(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             -A INPUT -i lo -j ACCEPT\n\
             -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
        );
        let mut ports = record.spec.workload.ports.clone();
        ports.push(record.spec.workload.health_port);
        ports.sort();
        ports.dedup();
        for port in ports {
            rules.push_str(&format!("-A INPUT -p tcp --dport {port} -j ACCEPT\n"));
        }
        rules.push_str("COMMIT\n");
        run_with_input(
            "ip",
            &["netns", "exec", &namespace, "iptables-restore"],
            &rules,
        )
        .await
    }

    /// The bubblewrap command line of the workload.
    fn sandbox_args(&self, environment: u64, record: &Record) -> Vec<String> {
        let data = self.env_dir(environment).join("data");
        let relay = format!(
            "http://{}:{}",
            self.config.gateway(),
            self.config.chain_relay_port
        );
        let mut args: Vec<String> = [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--new-session",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let hostname = format!("env-{environment}");
        let data = data.display().to_string();
        let environment_text = environment.to_string();
        for pair in [
            ["--hostname", &hostname, ""],
            ["--bind", &data, "/data"],
            ["--chdir", "/data", ""],
            ["--setenv", "HOME", "/data"],
            ["--setenv", "PATH", "/usr/bin:/usr/sbin:/bin:/sbin"],
            ["--setenv", "LOGOS_CHAIN_RPC", &relay],
            ["--setenv", "LOGOS_ENVIRONMENT", &environment_text],
        ] {
            args.extend(
                pair.iter()
                    .filter(|part| !part.is_empty())
                    .map(|part| part.to_string()),
            );
        }
        for (host, inside) in &self.config.binds {
            args.extend([
                "--ro-bind".into(),
                host.display().to_string(),
                inside.clone(),
            ]);
        }
        args.push("--".into());
        args.extend(record.spec.workload.command.iter().map(|part| {
            part.replace("${CHAIN_RPC}", &relay)
                .replace("${ENVIRONMENT}", &environment_text)
        }));
        args
    }

    /// Starts the workload: a shell joins the cgroups (outside the network namespace, where
    /// `/sys/fs/cgroup` is visible), then execs `ip netns exec … bwrap …`.
    async fn start(&self, environment: u64, record: &mut Record) -> Result<(), DriverError> {
        record.oom_kills_at_start = self.oom_kills(environment).await;
        self.write_record(environment, record).await?;
        let joins: Vec<String> = CONTROLLERS
            .iter()
            .map(|controller| {
                format!(
                    "echo $$ > {}/cgroup.procs",
                    self.cgroup(controller, environment).display()
                )
            })
            .collect();
        let script = format!("{} && exec \"$@\"", joins.join(" && "));
        let log_path = self.env_dir(environment).join("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(system)?;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(["ip", "netns", "exec", &self.namespace(environment), "bwrap"])
            .args(self.sandbox_args(environment, record))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(system)?)
            .stderr(log);
        let mut child = command.spawn().map_err(system)?;
        self.exits.lock().expect("exits lock").remove(&environment);
        let exits = self.exits.clone();
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|status| status.code());
            exits.lock().expect("exits lock").insert(environment, code);
        });
        // Running means its processes are in the cgroup; give the shell a moment to join.
        for _ in 0..50 {
            if !self.pids(environment).await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    async fn kill_all(&self, environment: u64) {
        for _ in 0..100 {
            let pids = self.pids(environment).await;
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = run("kill", &["-9", &pid.to_string()]).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Driver for SandboxDriver {
    async fn ensure(
        &self,
        environment: u64,
        generation: u64,
        spec: &Spec,
    ) -> Result<Observation, DriverError> {
        let _guard = self.changes.lock().await;
        let existing = self.read_record(environment).await?;
        let mut record = match existing {
            Some(record) if record.generation == generation => record,
            other => {
                if other.is_some() {
                    self.remove(environment).await?;
                }
                if self.list().await?.len() >= ENVIRONMENTS_MAX {
                    return Err(DriverError::Capacity("environment limit reached".into()));
                }
                let record = Record {
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
                let mut record = record;
                self.start(environment, &mut record).await?;
                return Ok(self.observe(environment, &record).await);
            }
        };
        if self.pids(environment).await.is_empty() {
            record.restarts += 1;
            self.start(environment, &mut record).await?;
        }
        Ok(self.observe(environment, &record).await)
    }

    async fn inspect(&self, environment: u64) -> Result<Option<Observation>, DriverError> {
        match self.read_record(environment).await? {
            Some(record) => Ok(Some(self.observe(environment, &record).await)),
            None => Ok(None),
        }
    }

    async fn destroy(&self, environment: u64) -> Result<(), DriverError> {
        let _guard = self.changes.lock().await;
        self.remove(environment).await
    }

    async fn list(&self) -> Result<Vec<u64>, DriverError> {
        let mut entries = match tokio::fs::read_dir(self.config.state_dir.join("envs")).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(system(error)),
        };
        let mut environments = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(system)? {
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                environments.push(id);
            }
        }
        environments.sort();
        Ok(environments)
    }

    async fn logs(&self, environment: u64, max_bytes: u64) -> Result<Option<String>, DriverError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.env_dir(environment).join("log");
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

impl SandboxDriver {
    /// Kills the workload and removes its cgroups, network namespace, veth and files.
    async fn remove(&self, environment: u64) -> Result<(), DriverError> {
        self.kill_all(environment).await;
        for controller in CONTROLLERS {
            let path = self.cgroup(controller, environment);
            if path.exists() {
                tokio::fs::remove_dir(&path)
                    .await
                    .map_err(|error| system(format!("{}: {error}", path.display())))?;
            }
        }
        // Anything still inside the network namespace (outside the cgroups) goes too, or it
        // would keep the namespace and its address alive after `netns del`.
        let namespace = self.namespace(environment);
        if let Ok(output) = Command::new("ip")
            .args(["netns", "pids", &namespace])
            .output()
            .await
        {
            for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                let _ = run("kill", &["-9", pid]).await;
            }
        }
        let _ = run("ip", &["netns", "del", &namespace]).await;
        let _ = run("ip", &["link", "del", &self.host_veth(environment)]).await;
        let dir = self.env_dir(environment);
        if dir.exists() {
            tokio::fs::remove_dir_all(&dir).await.map_err(system)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logos_state::modules::{dvci::Resources, market::Workload};

    fn driver() -> SandboxDriver {
        SandboxDriver::new(SandboxConfig {
            state_dir: PathBuf::from("/var/lib/agent"),
            name: "agent-3".into(),
            network_index: 3,
            chain_relay_port: 8545,
            binds: vec![(
                PathBuf::from("/usr/bin/logos"),
                "/opt/logos/bin/logos".into(),
            )],
        })
    }

    fn record(command: &[&str]) -> Record {
        Record {
            generation: 2,
            spec: Spec {
                resources: Resources {
                    vcpu: 1,
                    memory_mib: 64,
                    disk_gib: 1,
                    gpus: 0,
                },
                workload: Workload {
                    image: String::new(),
                    command: command.iter().map(|part| part.to_string()).collect(),
                    ports: vec![8080],
                    health_port: 8080,
                },
            },
            host: 7,
            restarts: 0,
            oom_kills_at_start: 0,
        }
    }

    #[test]
    fn sandbox_command_isolates_and_substitutes_the_chain_relay() {
        let args = driver().sandbox_args(
            42,
            &record(&["run", "--rpc", "${CHAIN_RPC}", "${ENVIRONMENT}"]),
        );
        let text = args.join(" ");
        for flag in [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
        ] {
            assert!(text.contains(flag), "{flag} missing from {text}");
        }
        assert!(text.contains("--ro-bind /usr /usr"));
        assert!(text.contains("--bind /var/lib/agent/envs/42/data /data"));
        assert!(text.contains("--ro-bind /usr/bin/logos /opt/logos/bin/logos"));
        assert!(text.contains("--hostname env-42"));
        let command = &args[args.iter().position(|arg| arg == "--").unwrap() + 1..];
        assert_eq!(command, ["run", "--rpc", "http://10.88.3.1:8545", "42"]);
    }

    #[test]
    fn names_and_addresses_follow_the_network_index() {
        let driver = driver();
        assert_eq!(driver.config().bridge(), "lgbr3");
        assert_eq!(driver.namespace(42), "lg3-42");
        assert_eq!(driver.host_veth(42), "lg3h42");
        assert!(
            driver.host_veth(u64::MAX).len() <= 15,
            "interface names fit IFNAMSIZ"
        );
        assert_eq!(driver.address(7).to_string(), "10.88.3.7");
        assert_eq!(
            driver.cgroup("memory", 42),
            PathBuf::from("/sys/fs/cgroup/memory/logos/agent-3/env-42")
        );
    }
}
