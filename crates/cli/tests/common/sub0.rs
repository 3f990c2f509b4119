//! A `logos devnet` with its sub0layer, as the sub0layer and Terraform tests start it.

use super::{load_key, logos_command, stdout_lines};
use logos_client::Wallet;
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A `logos devnet` process with its sub0layer.
pub struct Devnet {
    /// The devnet directory (genesis, keys, images.toml).
    pub dir: PathBuf,
    /// validator-0's RPC endpoint.
    pub rpc: String,
    /// The devnet's `--network-base-index`.
    pub network_index: u8,
    /// The `logos devnet` process.
    pub child: Child,
    /// The daemons' pids as the devnet printed them (`agent-0` → pid).
    pub pids: std::collections::BTreeMap<String, u32>,
}

impl Devnet {
    /// Starts 4 validators, 2 agents and 4 provisioners. Ports: p2p `base + i`, RPC
    /// `base + 1000 + i`, metrics `base + 2000 + i`, agents `base + 3000 + k` (all below the
    /// ephemeral range).
    pub fn start(name: &str, base: u16, network_index: u8, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("logos-sub0-{name}-{}", std::process::id()));
        let mut child = logos_command()
            .args(["devnet", "--validators", "4", "--providers", "2"])
            .args(["--p2p-base-port", &base.to_string()])
            .args(["--rpc-base-port", &(base + 1_000).to_string()])
            .args(["--metrics-base-port", &(base + 2_000).to_string()])
            .args(["--agent-base-port", &(base + 3_000).to_string()])
            .args(["--network-base-index", &network_index.to_string()])
            .args(extra)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.with_extension("log")).unwrap())
            .spawn()
            .unwrap();
        let receiver = stdout_lines(&mut child);
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut rpc = None;
        let mut pids = std::collections::BTreeMap::new();
        loop {
            let line = receiver
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("devnet not ready; see {}.log", dir.display()));
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["validator-0", "rpc", url, ..] => rpc = Some(url.to_string()),
                [name, "pid", pid] => {
                    pids.insert(name.to_string(), pid.parse().unwrap());
                }
                _ => {}
            }
            if line.contains("press Ctrl-C") {
                break;
            }
        }
        Self {
            rpc: rpc.expect("validator-0's RPC printed"),
            dir,
            network_index,
            child,
            pids,
        }
    }

    /// The wallet of devnet key `name`.
    pub fn wallet(&self, name: &str) -> Wallet {
        Wallet::new(load_key(&self.dir.join(format!("keys/{name}.key"))))
    }

    /// Gives leases `blocks` blocks to be verified (`SetTerms` by the bootstrap authority
    /// `dev`): a chain node is verified only once synced, and these tests' nodes wait for the
    /// test's own network.
    pub fn give_leases_time(&self, blocks: u64) {
        use logos_types::{
            market::{self, LeaseTerms, Terms},
            Call,
        };
        let rt = super::runtime();
        let client = rt
            .block_on(logos_client::Client::connect(&self.rpc))
            .unwrap();
        let (terms, _) = rt.block_on(client.value::<LeaseTerms>()).unwrap();
        let terms = Terms {
            verify_deadline_blocks: blocks,
            ..terms
        };
        let call = Call::Market(market::Call::SetTerms { terms });
        let (receipt, _) = rt
            .block_on(client.execute(&self.wallet("dev"), call))
            .unwrap();
        assert!(receipt.success, "{receipt:?}");
    }
}

impl Devnet {
    /// Runs `logos <args> --rpc … --json` with the devnet's keystore, genesis and images: its
    /// parsed output, or its standard error if it failed.
    pub fn cli(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        // A validator's node records its votes from the validator's account: a call from that
        // account can lose its nonce to them (not included), and the client says so rather
        // than resubmit.
        let mut result = self.cli_once(args);
        for _ in 0..2 {
            match &result {
                Err(error) if error.contains("was used by another transaction") => {
                    result = self.cli_once(args);
                }
                _ => break,
            }
        }
        result
    }

    fn cli_once(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let output = logos_command()
            .args(args)
            .args(["--rpc", &self.rpc, "--json"])
            .env("LOGOS_KEYSTORE", self.dir.join("keys"))
            .env("LOGOS_GENESIS", self.dir.join("genesis.toml"))
            .env("LOGOS_IMAGES", self.dir.join("images.toml"))
            .output()
            .unwrap();
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    }

    /// The last `bytes` (at most 64 KiB) of lease `lease`'s workload output, as its tenant
    /// `dev` reads it (`logos env logs`).
    pub fn logs(&self, lease: u64, bytes: u64) -> String {
        let output = logos_command()
            .args([
                "env",
                "logs",
                &lease.to_string(),
                "--bytes",
                &bytes.to_string(),
            ])
            .args(["--rpc", &self.rpc, "--from", "dev"])
            .arg("--genesis")
            .arg(self.dir.join("genesis.toml"))
            .env("LOGOS_KEYSTORE", self.dir.join("keys"))
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

impl Devnet {
    /// Stops the devnet as Ctrl-C would (agents destroy their environments and take their
    /// bridges, firewall rules and cgroups down; a `--hosts` devnet removes its hosts).
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = std::fs::remove_file(self.dir.with_extension("log"));
        }
    }
}
