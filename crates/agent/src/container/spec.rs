//! The OCI runtime spec of an environment (OCI runtime spec 1.0, built with `oci-spec`), pure:
//! what runc is told to enforce.
//!
//! - **User namespace**: ids `0..ID_RANGE` inside map to the environment's own unprivileged
//!   host range (`IdRange`); the workload runs as [`WORKLOAD_UID`]:[`WORKLOAD_GID`], never 0.
//! - **Capabilities**: none, unless the template lists an allowed one
//!   (`logos_types::workload::Capability`), which is then kept in every set (ambient too, so a
//!   non-root process holds it; for `NET_BIND_SERVICE` the network namespace, which the
//!   workload's user namespace does not own, also lets unprivileged ports start at 0).
//! - `noNewPrivileges`; the default seccomp profile container engines use, without namespaces,
//!   mounts or the kernel keyring ([`super::seccomp`]);
//!   the default masked and read-only `/proc` paths; a read-only root filesystem; `/sys` an
//!   empty read-only tmpfs (sysfs cannot be mounted for a network namespace the user namespace
//!   does not own) with the environment's own cgroups read-only under it.
//! - **Namespaces**: pid, ipc, uts, mount, cgroup, user, and the environment's network
//!   namespace (created by [`super::network`]).
//! - **Resources**: memory (= memory + swap) from the product, CPU quota = vCPU ×
//!   [`CPU_PERIOD_US`], [`PIDS_MAX`] processes, [`FILES_MAX`] open files, no device but the
//!   runtime's defaults.
//! - **Mounts**: the volume read-write at the workload's volume path, a private `/tmp` of
//!   [`TMP_MAX_MIB`], and the agent's read-only binds (the network's genesis).

use logos_types::{dvci::Resources, operations::EnvironmentId, workload::Capability};
use oci_spec::runtime::{
    Capability as OciCapability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxSeccomp, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};
use std::{collections::HashSet, path::PathBuf, str::FromStr};

/// Ids of one environment's user namespace (container ids `0..ID_RANGE`).
pub const ID_RANGE: u32 = 65_536;
/// The workload's uid inside its user namespace.
pub const WORKLOAD_UID: u32 = 1_000;
/// The workload's gid inside its user namespace.
pub const WORKLOAD_GID: u32 = 1_000;
/// Most processes in one environment.
pub const PIDS_MAX: i64 = 512;
/// Most open files per process.
pub const FILES_MAX: u64 = 8_192;
/// CFS period of the CPU limit, µs.
pub const CPU_PERIOD_US: u64 = 100_000;
/// Size of the private `/tmp` (counted against the environment's memory), MiB.
pub const TMP_MAX_MIB: u64 = 64;
/// Bytes per MiB.
const MIB_BYTES: u64 = 1024 * 1024;

/// The host ids an environment's user namespace maps to: `base..base + ID_RANGE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    /// First host id (container id 0).
    pub base: u32,
}

impl IdRange {
    /// The host uid of the workload.
    pub fn workload_uid(self) -> u32 {
        self.base.saturating_add(WORKLOAD_UID)
    }

    /// The host gid of the workload.
    pub fn workload_gid(self) -> u32 {
        self.base.saturating_add(WORKLOAD_GID)
    }
}

/// Everything a spec is built from.
#[derive(Clone, Debug)]
pub struct SpecInput {
    /// The environment (its hostname is `env-<id>`).
    pub environment: EnvironmentId,
    /// Its root filesystem (unpacked image) on the host.
    pub rootfs: PathBuf,
    /// The process's arguments (resolved and substituted).
    pub args: Vec<String>,
    /// The process's environment (`NAME=value`).
    pub env: Vec<String>,
    /// Its working directory.
    pub cwd: String,
    /// The user namespace's host range.
    pub ids: IdRange,
    /// Capabilities the workload keeps.
    pub capabilities: Vec<Capability>,
    /// Limits from the product.
    pub resources: Resources,
    /// The cgroup path (`/logos/<agent>/env-<id>`), relative to each hierarchy's root.
    pub cgroups_path: String,
    /// The environment's network namespace (`/run/netns/<name>`).
    pub network_namespace: PathBuf,
    /// The volume on the host and where it is mounted inside.
    pub volume: (PathBuf, String),
    /// Read-only binds: (host path, path inside).
    pub binds: Vec<(PathBuf, String)>,
    /// The seccomp filter.
    pub seccomp: LinuxSeccomp,
}

/// Why a spec could not be built.
#[derive(Debug, thiserror::Error)]
#[error("runtime spec: {0}")]
pub struct SpecError(String);

fn spec_error(error: impl std::fmt::Display) -> SpecError {
    SpecError(error.to_string())
}

/// Builds the spec (see the module docs).
pub fn build(input: &SpecInput) -> Result<Spec, SpecError> {
    let mut spec = Spec::default();
    spec.set_hostname(Some(format!("env-{}", input.environment)));
    spec.set_root(Some(
        RootBuilder::default()
            .path(input.rootfs.clone())
            .readonly(true)
            .build()
            .map_err(spec_error)?,
    ));
    spec.set_process(Some(process(input)?));
    spec.set_mounts(Some(mounts(input)?));
    spec.set_linux(Some(linux(input)?));
    Ok(spec)
}

fn process(input: &SpecInput) -> Result<oci_spec::runtime::Process, SpecError> {
    let kept: HashSet<OciCapability> = input
        .capabilities
        .iter()
        .map(|capability| {
            let name = capability.kernel_name().trim_start_matches("CAP_");
            OciCapability::from_str(name).map_err(spec_error)
        })
        .collect::<Result<_, _>>()?;
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(kept.clone())
        .effective(kept.clone())
        .inheritable(kept.clone())
        .permitted(kept.clone())
        .ambient(kept)
        .build()
        .map_err(spec_error)?;
    let user = UserBuilder::default()
        .uid(WORKLOAD_UID)
        .gid(WORKLOAD_GID)
        .additional_gids(Vec::<u32>::new())
        .build()
        .map_err(spec_error)?;
    let files = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(FILES_MAX)
        .hard(FILES_MAX)
        .build()
        .map_err(spec_error)?;
    ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(input.args.clone())
        .env(input.env.clone())
        .cwd(input.cwd.clone())
        .capabilities(capabilities)
        .no_new_privileges(true)
        .rlimits(vec![files])
        .build()
        .map_err(spec_error)
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(
            options
                .iter()
                .map(|option| option.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(spec_error)
}

/// The runtime's default mounts with `/sys` replaced, plus `/tmp`, the volume and the binds.
fn mounts(input: &SpecInput) -> Result<Vec<Mount>, SpecError> {
    let mut mounts: Vec<Mount> = oci_spec::runtime::get_default_mounts()
        .into_iter()
        .filter(|mount| mount.destination() != &PathBuf::from("/sys"))
        .collect();
    // Before the cgroup mount under it.
    let position = mounts
        .iter()
        .position(|mount| mount.destination() == &PathBuf::from("/sys/fs/cgroup"))
        .unwrap_or(mounts.len());
    let sys = mount(
        "/sys",
        "tmpfs",
        "tmpfs",
        &["nosuid", "noexec", "nodev", "ro", "size=4k"],
    )?;
    mounts.insert(position, sys);
    let tmp_size = format!("size={}k", TMP_MAX_MIB.saturating_mul(1024));
    mounts.push(mount(
        "/tmp",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "mode=1777", &tmp_size],
    )?);
    let (volume, inside) = &input.volume;
    mounts.push(mount(
        inside,
        "bind",
        &volume.display().to_string(),
        &["rbind", "rw", "nosuid", "nodev"],
    )?);
    for (host, inside) in &input.binds {
        mounts.push(mount(
            inside,
            "bind",
            &host.display().to_string(),
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        )?);
    }
    Ok(mounts)
}

fn linux(input: &SpecInput) -> Result<oci_spec::runtime::Linux, SpecError> {
    let namespace = |typ| LinuxNamespaceBuilder::default().typ(typ).build();
    let mut namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::User,
    ]
    .into_iter()
    .map(namespace)
    .collect::<Result<Vec<_>, _>>()
    .map_err(spec_error)?;
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(input.network_namespace.clone())
            .build()
            .map_err(spec_error)?,
    );
    let mapping = LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(input.ids.base)
        .size(ID_RANGE)
        .build()
        .map_err(spec_error)?;
    LinuxBuilder::default()
        .namespaces(namespaces)
        .uid_mappings(vec![mapping])
        .gid_mappings(vec![mapping])
        .resources(resources(&input.resources)?)
        .cgroups_path(PathBuf::from(&input.cgroups_path))
        .seccomp(input.seccomp.clone())
        .masked_paths(oci_spec::runtime::get_default_maskedpaths())
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths())
        .build()
        .map_err(spec_error)
}

fn resources(product: &Resources) -> Result<oci_spec::runtime::LinuxResources, SpecError> {
    let memory_bytes =
        i64::try_from(product.memory_mib.saturating_mul(MIB_BYTES)).unwrap_or(i64::MAX);
    let memory = LinuxMemoryBuilder::default()
        .limit(memory_bytes)
        .swap(memory_bytes)
        .build()
        .map_err(spec_error)?;
    let quota = i64::try_from(u64::from(product.vcpu.max(1)).saturating_mul(CPU_PERIOD_US))
        .unwrap_or(i64::MAX);
    let cpu = LinuxCpuBuilder::default()
        .quota(quota)
        .period(CPU_PERIOD_US)
        .build()
        .map_err(spec_error)?;
    let pids = LinuxPidsBuilder::default()
        .limit(PIDS_MAX)
        .build()
        .map_err(spec_error)?;
    // Deny every device; runc allows its defaults (null, zero, full, random, urandom, tty).
    let devices = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .map_err(spec_error)?;
    LinuxResourcesBuilder::default()
        .memory(memory)
        .cpu(cpu)
        .pids(pids)
        .devices(vec![devices])
        .build()
        .map_err(spec_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(capabilities: Vec<Capability>) -> SpecInput {
        SpecInput {
            environment: EnvironmentId(42),
            rootfs: "/state/envs/42/disk/rootfs".into(),
            args: vec!["/bin/node".into(), "--flag".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/data".into(),
            ids: IdRange { base: 300_000 },
            capabilities,
            resources: Resources {
                vcpu: 2,
                memory_mib: 64,
                disk_gib: 1,
                gpus: 0,
            },
            cgroups_path: "/logos/agent-3/env-42".into(),
            network_namespace: "/run/netns/lg3-42".into(),
            volume: ("/state/envs/42/disk/volume".into(), "/data".into()),
            binds: vec![(
                "/etc/logos/genesis.toml".into(),
                "/opt/logos/genesis.toml".into(),
            )],
            seccomp: oci_spec::runtime::LinuxSeccompBuilder::default()
                .default_action(oci_spec::runtime::LinuxSeccompAction::ScmpActErrno)
                .build()
                .unwrap(),
        }
    }

    fn json(spec: &Spec) -> serde_json::Value {
        serde_json::to_value(spec).unwrap()
    }

    #[test]
    fn the_workload_is_unprivileged_in_its_own_user_namespace() {
        let spec = json(&build(&input(Vec::new())).unwrap());
        let process = &spec["process"];
        assert_eq!(process["user"]["uid"], WORKLOAD_UID);
        assert_eq!(process["user"]["gid"], WORKLOAD_GID);
        assert_eq!(process["noNewPrivileges"], true);
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            assert_eq!(process["capabilities"][set], serde_json::json!([]), "{set}");
        }
        assert_eq!(process["rlimits"][0]["hard"], FILES_MAX);
        let mapping = serde_json::json!([{"containerID": 0, "hostID": 300_000, "size": 65_536}]);
        assert_eq!(spec["linux"]["uidMappings"], mapping);
        assert_eq!(spec["linux"]["gidMappings"], mapping);
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(spec["hostname"], "env-42");
        let namespaces: Vec<&str> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ns| ns["type"].as_str().unwrap())
            .collect();
        for kind in ["pid", "ipc", "uts", "mount", "cgroup", "user", "network"] {
            assert!(namespaces.contains(&kind), "{kind} namespace missing");
        }
        let network = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ns| ns["type"] == "network")
            .unwrap();
        assert_eq!(network["path"], "/run/netns/lg3-42");
        assert!(spec["linux"]["seccomp"].is_object());
        let masked = spec["linux"]["maskedPaths"].as_array().unwrap();
        assert!(masked.contains(&"/proc/kcore".into()));
        let readonly = spec["linux"]["readonlyPaths"].as_array().unwrap();
        assert!(readonly.contains(&"/proc/sys".into()));
    }

    #[test]
    fn an_allowed_capability_is_kept_in_every_set() {
        let spec = json(&build(&input(vec![Capability::NetBindService])).unwrap());
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            assert_eq!(
                spec["process"]["capabilities"][set],
                serde_json::json!(["CAP_NET_BIND_SERVICE"]),
                "{set}"
            );
        }
    }

    #[test]
    fn limits_and_mounts_follow_the_product_and_the_volume() {
        let spec = json(&build(&input(Vec::new())).unwrap());
        let resources = &spec["linux"]["resources"];
        assert_eq!(resources["memory"]["limit"], 64 * 1024 * 1024);
        assert_eq!(resources["memory"]["swap"], 64 * 1024 * 1024);
        assert_eq!(resources["cpu"]["quota"], 200_000);
        assert_eq!(resources["cpu"]["period"], CPU_PERIOD_US);
        assert_eq!(resources["pids"]["limit"], PIDS_MAX);
        assert_eq!(resources["devices"][0]["allow"], false);
        assert_eq!(spec["linux"]["cgroupsPath"], "/logos/agent-3/env-42");
        let mounts = spec["mounts"].as_array().unwrap();
        let at = |path: &str| {
            mounts
                .iter()
                .find(|mount| mount["destination"] == path)
                .unwrap_or_else(|| panic!("no mount at {path}"))
        };
        assert_eq!(at("/sys")["type"], "tmpfs");
        assert!(at("/sys")["options"]
            .as_array()
            .unwrap()
            .contains(&"ro".into()));
        let sys = mounts
            .iter()
            .position(|m| m["destination"] == "/sys")
            .unwrap();
        let cgroup = mounts
            .iter()
            .position(|m| m["destination"] == "/sys/fs/cgroup")
            .unwrap();
        assert!(sys < cgroup, "/sys is mounted before the cgroups under it");
        assert!(at("/sys/fs/cgroup")["options"]
            .as_array()
            .unwrap()
            .contains(&"ro".into()));
        assert_eq!(at("/data")["source"], "/state/envs/42/disk/volume");
        assert!(at("/data")["options"]
            .as_array()
            .unwrap()
            .contains(&"rw".into()));
        let genesis = at("/opt/logos/genesis.toml")["options"].as_array().unwrap();
        assert!(genesis.contains(&"ro".into()));
        assert!(at("/tmp")["options"]
            .as_array()
            .unwrap()
            .contains(&"size=65536k".into()));
    }
}
