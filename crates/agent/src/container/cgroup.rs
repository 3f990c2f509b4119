//! Reading an environment's cgroups, on either hierarchy.
//!
//! runc creates and limits the cgroups (`linux.cgroupsPath` = `/logos/<agent>/env-<id>`); the
//! agent only reads them: which processes run, how often the kernel OOM-killed, and what the
//! environment uses. The hierarchy is chosen at start ([`Hierarchy::detect`]), as runc chooses
//! it: the unified (v2) hierarchy when `/sys/fs/cgroup` is a cgroup2 mount (it then has
//! `cgroup.controllers`), otherwise the v1 controllers mounted under `/sys/fs/cgroup/<name>`
//! (this includes the "hybrid" layout, whose v2 tree holds no controllers).
//!
//! | what | v1 | v2 |
//! |---|---|---|
//! | processes | `memory/…/cgroup.procs` | `…/cgroup.procs` |
//! | memory used, limit | `memory.usage_in_bytes`, `memory.limit_in_bytes` | `memory.current`, `memory.max` |
//! | OOM kills | `memory.oom_control` `oom_kill` | `memory.events` `oom_kill` |
//! | CPU time | `cpuacct/…/cpuacct.usage` (ns) | `cpu.stat` `usage_usec` |
//! | processes counted | `pids/…/pids.current` | `pids.current` |

use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup hierarchy the machine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    /// Controllers each mounted at `/sys/fs/cgroup/<controller>`.
    V1,
    /// One unified tree at `/sys/fs/cgroup`.
    V2,
}

/// What an environment uses, read from its cgroups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupUsage {
    /// CPU time used since the workload started, µs.
    pub cpu_usage_us: u64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// The memory limit, bytes (0 if none is readable).
    pub memory_limit_bytes: u64,
    /// Processes alive.
    pub pids: u64,
    /// OOM kills since the cgroup was created.
    pub oom_kills: u64,
}

impl Hierarchy {
    /// The hierarchy of this machine (see the module docs); `None` when neither is usable.
    pub fn detect() -> Option<Self> {
        let root = Path::new(CGROUP_ROOT);
        if root.join("cgroup.controllers").exists() {
            Some(Self::V2)
        } else if root.join("memory/tasks").exists() && root.join("pids/tasks").exists() {
            Some(Self::V1)
        } else {
            None
        }
    }

    /// The cgroup of `path` (`/logos/…`) for `controller` (ignored on v2).
    pub fn directory(self, controller: &str, path: &str) -> PathBuf {
        let relative = path.trim_start_matches('/');
        match self {
            Self::V1 => Path::new(CGROUP_ROOT).join(controller).join(relative),
            Self::V2 => Path::new(CGROUP_ROOT).join(relative),
        }
    }

    /// The controllers whose directories hold an agent's cgroups.
    pub fn controllers(self) -> &'static [&'static str] {
        match self {
            // runc creates the environment's cgroup in every v1 hierarchy it finds.
            Self::V1 => &[
                "memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer",
                "systemd",
            ],
            Self::V2 => &[""],
        }
    }

    fn read(self, controller: &str, path: &str, file: &str) -> String {
        std::fs::read_to_string(self.directory(controller, path).join(file)).unwrap_or_default()
    }

    /// The processes in cgroup `path`.
    pub fn pids(self, path: &str) -> Vec<i32> {
        parse_procs(&self.read("memory", path, "cgroup.procs"))
    }

    /// OOM kills in cgroup `path`.
    pub fn oom_kills(self, path: &str) -> u64 {
        match self {
            Self::V1 => keyed(&self.read("memory", path, "memory.oom_control"), "oom_kill"),
            Self::V2 => keyed(&self.read("", path, "memory.events"), "oom_kill"),
        }
    }

    /// What cgroup `path` uses (zeros for what cannot be read).
    pub fn usage(self, path: &str) -> CgroupUsage {
        let number = |controller: &str, file: &str| -> u64 {
            self.read(controller, path, file)
                .trim()
                .parse()
                .unwrap_or(0)
        };
        match self {
            Self::V1 => CgroupUsage {
                cpu_usage_us: number("cpuacct", "cpuacct.usage") / 1_000,
                memory_bytes: number("memory", "memory.usage_in_bytes"),
                memory_limit_bytes: number("memory", "memory.limit_in_bytes"),
                pids: number("pids", "pids.current"),
                oom_kills: self.oom_kills(path),
            },
            Self::V2 => CgroupUsage {
                cpu_usage_us: keyed(&self.read("", path, "cpu.stat"), "usage_usec"),
                memory_bytes: number("", "memory.current"),
                // "max" (no limit) parses to 0.
                memory_limit_bytes: number("", "memory.max"),
                pids: number("", "pids.current"),
                oom_kills: self.oom_kills(path),
            },
        }
    }

    /// The environment ids with a cgroup under agent path `agent` (`/logos/<agent>`).
    pub fn environments(self, agent: &str) -> Vec<u64> {
        let directory = self.directory("memory", agent);
        let Ok(entries) = std::fs::read_dir(directory) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.strip_prefix("env-").and_then(|id| id.parse().ok())
            })
            .collect()
    }

    /// Removes the (empty) cgroup directories of `path` in every hierarchy, deepest first.
    pub fn remove(self, path: &str) {
        for controller in self.controllers() {
            let _ = std::fs::remove_dir(self.directory(controller, path));
        }
    }
}

/// PIDs listed one per line.
fn parse_procs(text: &str) -> Vec<i32> {
    text.lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// The value of `key` in a flat-keyed file (`key value` per line); 0 if absent.
fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == key).then(|| value.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_hierarchies_name_the_same_cgroup() {
        let path = "/logos/agent-3/env-42";
        assert_eq!(
            Hierarchy::V1.directory("memory", path),
            PathBuf::from("/sys/fs/cgroup/memory/logos/agent-3/env-42")
        );
        assert_eq!(
            Hierarchy::V2.directory("memory", path),
            PathBuf::from("/sys/fs/cgroup/logos/agent-3/env-42")
        );
    }

    #[test]
    fn flat_keyed_files_and_process_lists_parse() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(v1, "oom_kill"), 3);
        let v2 = "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed(v2, "oom_kill"), 2);
        assert_eq!(keyed(v2, "oom"), 2);
        let stat = "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n";
        assert_eq!(keyed(stat, "usage_usec"), 123_456);
        assert_eq!(keyed("", "oom_kill"), 0);
        assert_eq!(keyed("oom_kill many\n", "oom_kill"), 0);
        assert_eq!(parse_procs("12\n  13\n\nx\n"), vec![12, 13]);
    }

    #[test]
    fn this_machine_has_a_usable_hierarchy() {
        assert!(
            Hierarchy::detect().is_some(),
            "no cgroup hierarchy with memory and pids"
        );
    }
}
