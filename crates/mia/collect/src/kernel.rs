//! What the running kernel says about itself: LKRG's settings and the loaded eBPF programs.
//!
//! - LKRG (Linux Kernel Runtime Guard) is a kernel module that checks the kernel's integrity
//!   at run time; loaded, it exposes its settings under `/proc/sys/lkrg/`. The component is
//!   SHA-256 over `name=value\n` for each setting in name order, so turning enforcement off
//!   changes it. Without the module: `unavailable`.
//! - eBPF: the programs loaded in the kernel, listed by `bpftool prog show --json` (which needs
//!   `CAP_SYS_ADMIN` and Debian's `bpftool`). The component is SHA-256 over `type tag name\n`
//!   for each program, sorted, so loading or replacing a program changes it; the count is
//!   reported beside it. Without bpftool or the privilege: `unavailable`.

use crate::CollectError;
use logos_mia::integrity::Status;
use sha2::{Digest as _, Sha256};
use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The largest LKRG setting read, bytes.
const SETTING_MAX_BYTES: usize = 256;
/// The most LKRG settings read.
const LKRG_SETTINGS_MAX: usize = 256;
/// The most eBPF programs summarized.
pub const EBPF_PROGRAMS_MAX: usize = 65_536;
/// The largest bpftool output read, bytes.
const BPFTOOL_OUTPUT_MAX_BYTES: usize = 64 << 20;

/// The eBPF summary: its component and how many programs it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EbpfSummary {
    /// The component.
    pub status: Status,
    /// Programs loaded (0 when unavailable).
    pub programs: usize,
}

/// What the kernel offers about its own integrity.
pub trait KernelProbe {
    /// The `lkrg` component.
    fn lkrg(&self) -> Result<Status, CollectError>;
    /// The `ebpf` component.
    fn ebpf(&self) -> Result<EbpfSummary, CollectError>;
}

/// The kernel this process runs on (`proc_root` is `/proc` but for tests).
#[derive(Clone, Debug)]
pub struct HostKernel {
    /// Where procfs is mounted.
    pub proc_root: PathBuf,
}

impl Default for HostKernel {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
        }
    }
}

impl KernelProbe for HostKernel {
    fn lkrg(&self) -> Result<Status, CollectError> {
        lkrg_settings(&self.proc_root.join("sys/lkrg"))
    }

    fn ebpf(&self) -> Result<EbpfSummary, CollectError> {
        let unavailable = EbpfSummary {
            status: Status::Unavailable,
            programs: 0,
        };
        let spawned = Command::new("bpftool")
            .args(["prog", "show", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        // Not installed: the kernel's programs cannot be listed here.
        let Ok(mut child) = spawned else {
            return Ok(unavailable);
        };
        let mut output = Vec::new();
        let limit = u64::try_from(BPFTOOL_OUTPUT_MAX_BYTES)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let read = child
            .stdout
            .take()
            .map(|stdout| stdout.take(limit).read_to_end(&mut output));
        if output.len() > BPFTOOL_OUTPUT_MAX_BYTES {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CollectError::TooLarge {
                what: "bpftool's output".into(),
                max: BPFTOOL_OUTPUT_MAX_BYTES,
            });
        }
        let status = child.wait().map_err(|e| CollectError::io("bpftool", e))?;
        // Not privileged (or failed): unavailable, not a guess.
        if !status.success() || !matches!(read, Some(Ok(_))) {
            return Ok(unavailable);
        }
        ebpf_summary(&output)
    }
}

/// The LKRG component from its sysctl directory.
pub fn lkrg_settings(dir: &Path) -> Result<Status, CollectError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Status::Unavailable)
        }
        Err(error) => return Err(CollectError::io(dir.display().to_string(), error)),
    };
    let mut settings = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CollectError::io(dir.display().to_string(), e))?;
        if settings.len() == LKRG_SETTINGS_MAX {
            return Err(CollectError::TooLarge {
                what: "LKRG's settings".into(),
                max: LKRG_SETTINGS_MAX,
            });
        }
        let path = entry.path();
        // Write-only controls (e.g. `trigger`) cannot be read and carry no state.
        if let Ok(Some(value)) = crate::logs::read_optional(&path, SETTING_MAX_BYTES) {
            settings.push((
                entry.file_name().to_string_lossy().into_owned(),
                String::from_utf8_lossy(&value).trim().to_owned(),
            ));
        }
    }
    settings.sort();
    let mut hasher = Sha256::new();
    for (name, value) in &settings {
        hasher.update(format!("{name}={value}\n"));
    }
    Ok(Status::Measured(hasher.finalize().into()))
}

/// The eBPF component from `bpftool prog show --json` output.
pub fn ebpf_summary(json: &[u8]) -> Result<EbpfSummary, CollectError> {
    let programs: Vec<serde_json::Value> = serde_json::from_slice(json)
        .map_err(|e| CollectError::Invalid(format!("bpftool's output: {e}")))?;
    if programs.len() > EBPF_PROGRAMS_MAX {
        return Err(CollectError::TooLarge {
            what: "the eBPF programs".into(),
            max: EBPF_PROGRAMS_MAX,
        });
    }
    let field = |program: &serde_json::Value, name: &str| {
        program[name].as_str().unwrap_or_default().to_owned()
    };
    let mut lines: Vec<String> = programs
        .iter()
        .map(|p| {
            format!(
                "{} {} {}\n",
                field(p, "type"),
                field(p, "tag"),
                field(p, "name")
            )
        })
        .collect();
    lines.sort();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line);
    }
    Ok(EbpfSummary {
        status: Status::Measured(hasher.finalize().into()),
        programs: lines.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lkrg_is_unavailable_without_its_module_and_measured_with_it() {
        let proc_root = tempfile::tempdir().unwrap();
        let kernel = HostKernel {
            proc_root: proc_root.path().to_owned(),
        };
        assert_eq!(kernel.lkrg().unwrap(), Status::Unavailable);
        let dir = proc_root.path().join("sys/lkrg");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kint_enforce"), "2\n").unwrap();
        std::fs::write(dir.join("pint_enforce"), "1\n").unwrap();
        let enforcing = kernel.lkrg().unwrap();
        assert!(matches!(enforcing, Status::Measured(_)));
        std::fs::write(dir.join("kint_enforce"), "0\n").unwrap();
        assert_ne!(
            kernel.lkrg().unwrap(),
            enforcing,
            "turning enforcement off shows"
        );
    }

    #[test]
    fn ebpf_programs_are_summarized_in_any_order() {
        let a = br#"[{"id":1,"type":"cgroup_skb","tag":"6deef7357e7b4530","name":"a"},
                     {"id":2,"type":"kprobe","tag":"0123456789abcdef","name":"b"}]"#;
        let b = br#"[{"id":9,"type":"kprobe","tag":"0123456789abcdef","name":"b"},
                     {"id":8,"type":"cgroup_skb","tag":"6deef7357e7b4530","name":"a"}]"#;
        let summary = ebpf_summary(a).unwrap();
        assert_eq!(summary.programs, 2);
        assert_eq!(
            ebpf_summary(b).unwrap(),
            summary,
            "ids and order do not matter"
        );
        let c = br#"[{"id":1,"type":"cgroup_skb","tag":"6deef7357e7b4530","name":"a"}]"#;
        assert_ne!(ebpf_summary(c).unwrap().status, summary.status);
        assert!(ebpf_summary(b"not json").is_err());
    }
}
