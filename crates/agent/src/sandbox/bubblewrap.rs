//! The workload's process sandbox: bubblewrap with user, pid, ipc, uts and cgroup namespaces,
//! the host's `/usr` read-only, a private writable `/data`, a private `/tmp`, `/proc` and
//! `/dev`, and the read-only binds of the driver's configuration. The workload is the
//! template's command with `${CHAIN_RPC}` replaced by the relay's URL, `${CHAIN_P2P}` by the
//! p2p relay addresses (comma-separated, genesis order), `${P2P_EGRESS}` by the address
//! validators see relayed connections come from, and `${ENVIRONMENT}` by the environment's id
//! (the gatekeeper has replaced `${TENANT}` by the tenant's account before).

use logos_types::operations::EnvironmentId;
use std::path::{Path, PathBuf};

/// Placeholder in a command for the URL of the chain relay.
pub const CHAIN_RPC_PLACEHOLDER: &str = "${CHAIN_RPC}";
/// Placeholder in a command for the environment's id.
pub const ENVIRONMENT_PLACEHOLDER: &str = "${ENVIRONMENT}";
/// Placeholder in a command for the p2p relay addresses.
pub const CHAIN_P2P_PLACEHOLDER: &str = "${CHAIN_P2P}";
/// Placeholder in a command for the relayed p2p connections' source address.
pub const P2P_EGRESS_PLACEHOLDER: &str = "${P2P_EGRESS}";

/// Flags that isolate the workload and build its filesystem from the host's `/usr`.
const ISOLATION: [&str; 27] = [
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
];

/// What the command line of one workload is built from.
pub struct Sandbox<'a> {
    /// The environment.
    pub environment: EnvironmentId,
    /// Its private data directory on the host (mounted at `/data`).
    pub data: &'a Path,
    /// The URL of the chain relay.
    pub relay_url: &'a str,
    /// The p2p relay addresses, comma-separated.
    pub chain_p2p: &'a str,
    /// The relayed p2p connections' source address.
    pub p2p_egress: &'a str,
    /// Read-only binds: (host path, path inside).
    pub binds: &'a [(PathBuf, String)],
    /// The template's command.
    pub command: &'a [String],
}

impl Sandbox<'_> {
    /// The bubblewrap arguments (everything after `bwrap`).
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ISOLATION.iter().map(|arg| arg.to_string()).collect();
        let id = self.environment.to_string();
        let data = self.data.display().to_string();
        let hostname = format!("env-{id}");
        let pairs: [(&str, &str, Option<&str>); 8] = [
            ("--hostname", &hostname, None),
            ("--bind", &data, Some("/data")),
            ("--chdir", "/data", None),
            ("--setenv", "HOME", Some("/data")),
            ("--setenv", "PATH", Some("/usr/bin:/usr/sbin:/bin:/sbin")),
            ("--setenv", "LOGOS_CHAIN_RPC", Some(self.relay_url)),
            ("--setenv", "LOGOS_CHAIN_P2P", Some(self.chain_p2p)),
            ("--setenv", "LOGOS_ENVIRONMENT", Some(&id)),
        ];
        for (flag, first, second) in pairs {
            args.push(flag.into());
            args.push(first.into());
            args.extend(second.map(String::from));
        }
        for (host, inside) in self.binds {
            args.extend([
                "--ro-bind".into(),
                host.display().to_string(),
                inside.clone(),
            ]);
        }
        args.push("--".into());
        args.extend(self.command.iter().map(|part| {
            part.replace(CHAIN_RPC_PLACEHOLDER, self.relay_url)
                .replace(CHAIN_P2P_PLACEHOLDER, self.chain_p2p)
                .replace(P2P_EGRESS_PLACEHOLDER, self.p2p_egress)
                .replace(ENVIRONMENT_PLACEHOLDER, &id)
        }));
        args
    }
}
