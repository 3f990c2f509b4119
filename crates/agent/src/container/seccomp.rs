//! The default seccomp profile container engines use, as an OCI `linux.seccomp`.
//!
//! The profile is the one Debian ships for podman, buildah and CRI-O
//! (`/usr/share/containers/seccomp.json`, package `golang-github-containers-common`): an
//! allow-list of syscalls (everything else fails with `ENOSYS`), with rules that apply only on
//! some architectures (`includes.arches`/`excludes.arches`), only when the process holds some
//! capabilities (`includes.caps`/`excludes.caps`: the rules for `mount`, `bpf`,
//! `init_module`, `ptrace` helpers and the like), or only from a kernel version
//! (`minKernel`). [`for_container`] resolves those conditions for this machine and the
//! capabilities the workload keeps, the same way the engines do, and returns the filter runc
//! installs.
//!
//! That profile leaves `clone` with namespace flags, `unshare`, `setns`, mounting and the
//! kernel keyring to the kernel's capability checks, so a workload could still make itself a
//! user namespace of its own and reach code (nf_tables, overlayfs, …) that user namespaces
//! open to unprivileged processes, the usual path of kernel privilege escalations. As
//! Docker's default profile does, [`harden`] takes these away: `clone` only without
//! namespace flags ([`NAMESPACE_FLAGS`]), `clone3` fails with `ENOSYS` (so the C library falls
//! back to `clone`), and [`DENIED`] fail with `EPERM`.

use logos_types::workload::Capability;
use oci_spec::runtime::LinuxSeccomp;
use serde::Deserialize;
use std::path::Path;

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET`: `clone` with any of these is refused.
pub const NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// Syscalls refused outright (namespaces, mounts, the kernel keyring).
pub const DENIED: [&str; 17] = [
    "unshare",
    "setns",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "chroot",
];
/// `EPERM` and `ENOSYS`.
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Where Debian installs the engines' default profile.
pub const DEFAULT_PROFILE_PATH: &str = "/usr/share/containers/seccomp.json";
/// Largest profile read, bytes.
pub const PROFILE_MAX_BYTES: u64 = 1024 * 1024;

/// Why the profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The file could not be read.
    #[error("seccomp profile {path}: {reason} (Debian package golang-github-containers-common)")]
    Read {
        /// The profile's path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The profile is not what the engines' format says.
    #[error("seccomp profile: {0}")]
    Malformed(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    min_kernel: Option<String>,
}

/// The machine the filter is for.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Go's name of the architecture (`amd64`, `arm64`, …), as profiles name it.
    pub arch: String,
    /// The profile's name of it (`SCMP_ARCH_X86_64`, …).
    pub seccomp_arch: String,
    /// The running kernel's `major.minor`.
    pub kernel: (u32, u32),
}

impl Machine {
    /// This machine.
    pub fn current() -> Self {
        let (arch, seccomp_arch) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
            "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
            "x86" => ("386", "SCMP_ARCH_X86"),
            other => (other, other),
        };
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Self {
            arch: arch.into(),
            seccomp_arch: seccomp_arch.into(),
            kernel: kernel_version(&release).unwrap_or((0, 0)),
        }
    }
}

/// `major.minor` of a kernel release such as `6.1.0-18-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Reads the profile at `path` (at most [`PROFILE_MAX_BYTES`]).
pub fn read_profile(path: &Path) -> Result<String, SeccompError> {
    let error = |reason: String| SeccompError::Read {
        path: path.display().to_string(),
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| error(e.to_string()))?
        .len();
    if size > PROFILE_MAX_BYTES {
        return Err(error(format!("larger than {PROFILE_MAX_BYTES} bytes")));
    }
    std::fs::read_to_string(path).map_err(|e| error(e.to_string()))
}

/// The filter of `profile` (JSON text) for a workload on `machine` keeping `capabilities`.
pub fn for_container(
    profile: &str,
    machine: &Machine,
    capabilities: &[Capability],
) -> Result<LinuxSeccomp, SeccompError> {
    let profile: Profile = serde_json::from_str(profile)
        .map_err(|error| SeccompError::Malformed(error.to_string()))?;
    let held: Vec<&str> = capabilities.iter().map(|cap| cap.kernel_name()).collect();
    let architectures: Vec<String> = profile
        .arch_map
        .iter()
        .filter(|map| map.architecture == machine.seccomp_arch)
        .flat_map(|map| {
            std::iter::once(map.architecture.clone()).chain(map.sub_architectures.clone())
        })
        .collect();
    if architectures.is_empty() {
        return Err(SeccompError::Malformed(format!(
            "no entry for {} in archMap",
            machine.seccomp_arch
        )));
    }
    let syscalls: Vec<serde_json::Value> = profile
        .syscalls
        .iter()
        .filter(|rule| applies(rule, machine, &held))
        .filter_map(harden)
        .chain(hardening(machine))
        .map(|rule| {
            let mut syscall = serde_json::json!({"names": rule.names, "action": rule.action});
            if let Some(errno) = rule.errno_ret {
                syscall["errnoRet"] = errno.into();
            }
            if let Some(args) = rule.args.as_ref().filter(|args| !args.is_empty()) {
                syscall["args"] = args.clone().into();
            }
            syscall
        })
        .collect();
    let mut filter = serde_json::json!({
        "defaultAction": profile.default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(errno) = profile.default_errno_ret {
        filter["defaultErrnoRet"] = errno.into();
    }
    serde_json::from_value(filter).map_err(|error| SeccompError::Malformed(error.to_string()))
}

/// `rule` without the syscalls [`hardening`] rules on (`None` if none is left).
fn harden(rule: &Rule) -> Option<Rule> {
    let ruled =
        |name: &String| DENIED.contains(&name.as_str()) || name == "clone" || name == "clone3";
    let names: Vec<String> = rule
        .names
        .iter()
        .filter(|name| !ruled(name))
        .cloned()
        .collect();
    (!names.is_empty()).then(|| Rule {
        names,
        action: rule.action.clone(),
        errno_ret: rule.errno_ret,
        args: rule.args.clone(),
        includes: Condition::default(),
        excludes: Condition::default(),
    })
}

/// The rules replacing what [`harden`] took out (see the module docs).
fn hardening(machine: &Machine) -> Vec<Rule> {
    // s390 passes clone's flags second.
    let flags_index = if machine.arch.starts_with("s390") {
        1
    } else {
        0
    };
    let rule = |names: &[&str],
                action: &str,
                errno: Option<u32>,
                args: Option<Vec<serde_json::Value>>| Rule {
        names: names.iter().map(|name| name.to_string()).collect(),
        action: action.into(),
        errno_ret: errno,
        args,
        includes: Condition::default(),
        excludes: Condition::default(),
    };
    let no_namespace = serde_json::json!({
        "index": flags_index, "value": NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"
    });
    vec![
        rule(&["clone"], "SCMP_ACT_ALLOW", None, Some(vec![no_namespace])),
        rule(&["clone3"], "SCMP_ACT_ERRNO", Some(ENOSYS), None),
        rule(&DENIED, "SCMP_ACT_ERRNO", Some(EPERM), None),
    ]
}

/// Whether `rule` applies on `machine` to a process holding `held` capabilities.
fn applies(rule: &Rule, machine: &Machine, held: &[&str]) -> bool {
    let arch_ok = |arches: &[String]| arches.contains(&machine.arch);
    let caps_all = |caps: &[String]| caps.iter().all(|cap| held.contains(&cap.as_str()));
    let caps_any = |caps: &[String]| caps.iter().any(|cap| held.contains(&cap.as_str()));
    let kernel_at_least = |minimum: &Option<String>| {
        minimum.as_deref().is_none_or(|minimum| {
            kernel_version(minimum).is_some_and(|minimum| machine.kernel >= minimum)
        })
    };
    let include = &rule.includes;
    let exclude = &rule.excludes;
    let included = (include.arches.is_empty() || arch_ok(&include.arches))
        && caps_all(&include.caps)
        && kernel_at_least(&include.min_kernel);
    let excluded = arch_ok(&exclude.arches)
        || caps_any(&exclude.caps)
        || (exclude.min_kernel.is_some() && kernel_at_least(&exclude.min_kernel));
    included && !excluded
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
        ],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["arm_fadvise64_64"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
            {"names": ["mount", "umount2"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["mount", "umount2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["bind_low"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_NET_BIND_SERVICE"]}},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["future_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
            {"names": ["old_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}}
        ]}"#;

    fn machine() -> Machine {
        Machine {
            arch: "amd64".into(),
            seccomp_arch: "SCMP_ARCH_X86_64".into(),
            kernel: (6, 1),
        }
    }

    fn names(filter: &LinuxSeccomp) -> Vec<(String, String)> {
        let value = serde_json::to_value(filter).unwrap();
        value["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rule| {
                let action = rule["action"].as_str().unwrap().to_string();
                rule["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |name| (name.as_str().unwrap().to_string(), action.clone()))
            })
            .collect()
    }

    #[test]
    fn rules_resolve_for_the_arch_the_kernel_and_the_capabilities_kept() {
        let filter = for_container(PROFILE, &machine(), &[]).unwrap();
        let value = serde_json::to_value(&filter).unwrap();
        assert_eq!(value["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(value["defaultErrnoRet"], 38);
        assert_eq!(
            value["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let rules = names(&filter);
        let has = |name: &str, action: &str| rules.contains(&(name.into(), action.into()));
        assert!(has("read", "SCMP_ACT_ALLOW"));
        assert!(has("arch_prctl", "SCMP_ACT_ALLOW"));
        assert!(!rules.iter().any(|(name, _)| name == "arm_fadvise64_64"));
        // Without CAP_SYS_ADMIN mount fails with EPERM, never allowed.
        assert!(has("mount", "SCMP_ACT_ERRNO"));
        assert!(!has("mount", "SCMP_ACT_ALLOW"));
        assert!(!rules.iter().any(|(name, _)| name == "bind_low"));
        assert!(has("old_call", "SCMP_ACT_ALLOW"));
        assert!(!rules.iter().any(|(name, _)| name == "future_call"));
        let personality = value["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|rule| rule["names"][0] == "personality")
            .unwrap();
        assert_eq!(personality["args"][0]["value"], 8, "arguments kept");
        let kept = for_container(PROFILE, &machine(), &[Capability::NetBindService]).unwrap();
        assert!(names(&kept).contains(&("bind_low".into(), "SCMP_ACT_ALLOW".into())));
    }

    #[test]
    fn namespaces_mounts_and_the_keyring_are_taken_away() {
        let profile = r#"{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "SCMP_ARCH_X86_64"}],
            "syscalls": [{"names": ["read", "clone", "clone3", "unshare", "mount", "keyctl"], "action": "SCMP_ACT_ALLOW"}]}"#;
        let filter = for_container(profile, &machine(), &[]).unwrap();
        let value = serde_json::to_value(&filter).unwrap();
        let rules = value["syscalls"].as_array().unwrap();
        let rule_of = |name: &str| -> Vec<&serde_json::Value> {
            rules
                .iter()
                .filter(|rule| rule["names"].as_array().unwrap().contains(&name.into()))
                .collect()
        };
        assert_eq!(rule_of("read")[0]["action"], "SCMP_ACT_ALLOW");
        let clone = rule_of("clone");
        assert_eq!(clone.len(), 1, "only the conditional rule");
        assert_eq!(clone[0]["action"], "SCMP_ACT_ALLOW");
        assert_eq!(clone[0]["args"][0]["value"], NAMESPACE_FLAGS);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(rule_of("clone3")[0]["errnoRet"], 38);
        for denied in ["unshare", "mount", "keyctl"] {
            let rule = rule_of(denied);
            assert_eq!(rule.len(), 1, "{denied}");
            assert_eq!(rule[0]["action"], "SCMP_ACT_ERRNO", "{denied}");
            assert_eq!(rule[0]["errnoRet"], 1, "{denied}");
        }
    }

    #[test]
    fn malformed_or_foreign_profiles_are_refused() {
        assert!(matches!(
            for_container("{", &machine(), &[]),
            Err(SeccompError::Malformed(_))
        ));
        let mut riscv = machine();
        riscv.seccomp_arch = "SCMP_ARCH_RISCV64".into();
        assert!(matches!(
            for_container(PROFILE, &riscv, &[]),
            Err(SeccompError::Malformed(_))
        ));
        let bad_action = PROFILE.replace(
            "\"SCMP_ACT_ERRNO\", \"defaultErrnoRet\"",
            "\"SCMP_ACT_MAYBE\", \"defaultErrnoRet\"",
        );
        assert!(for_container(&bad_action, &machine(), &[]).is_err());
        assert_eq!(kernel_version("6.18.44-fc-v1098"), Some((6, 18)));
        assert_eq!(kernel_version("garbage"), None);
    }

    /// The profile Debian installs (`scripts/install-deps`) resolves on this machine.
    #[test]
    fn the_installed_engine_profile_resolves() {
        let profile = read_profile(Path::new(DEFAULT_PROFILE_PATH)).unwrap();
        let filter = for_container(&profile, &Machine::current(), &[]).unwrap();
        let rules = names(&filter);
        assert!(rules.contains(&("read".into(), "SCMP_ACT_ALLOW".into())));
        // Without CAP_SYS_MODULE no module is loaded, without CAP_SYS_ADMIN no bpf (mount,
        // unshare, setns and the like are left to the kernel's capability checks, as the
        // engines do: the workload holds no capability in its user namespace).
        for denied in [
            "init_module",
            "finit_module",
            "delete_module",
            "bpf",
            "kexec_load",
        ] {
            assert!(
                rules.contains(&(denied.into(), "SCMP_ACT_ERRNO".into())),
                "{denied}"
            );
            assert!(
                !rules.contains(&(denied.into(), "SCMP_ACT_ALLOW".into())),
                "{denied}"
            );
        }
    }
}
