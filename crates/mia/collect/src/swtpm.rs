//! A software TPM 2.0 (swtpm, libtpms) on loopback, for machines without a TPM (the devnet's
//! providers) and for tests.
//!
//! [`Swtpm::start`] manufactures a TPM in a state directory once (`swtpm_setup --tpm2
//! --create-ek-cert --pcr-banks sha1,sha256`: an EK certificate signed by swtpm's local CA) and
//! serves it with `swtpm socket` on `127.0.0.1:<port>`, its control channel on `<port> + 1`
//! (where the TSS2 `swtpm` TCTI looks for it, to set the locality). The TPM starts with `TPM2_Startup(CLEAR)`, so PCRs are zero as after a
//! power-on. The process is killed when the [`Swtpm`] is dropped; the state directory (the
//! TPM's seeds) stays, so the same machine keeps the same EK across restarts.

use crate::CollectError;
use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long swtpm may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running swtpm.
pub struct Swtpm {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Swtpm {
    /// Whether swtpm and swtpm_setup are installed.
    pub fn installed() -> bool {
        ["swtpm", "swtpm_setup"].iter().all(|tool| {
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
    }

    /// Starts swtpm with its state in `dir` (manufactured on first use), serving on
    /// `127.0.0.1:port` and its control channel on `port + 1`; `port` 0 picks a free pair.
    pub fn start(dir: &Path, port: u16) -> Result<Self, CollectError> {
        std::fs::create_dir_all(dir).map_err(|e| CollectError::io(dir.display().to_string(), e))?;
        if !dir.join("tpm2-00.permall").exists() {
            manufacture(dir)?;
        }
        let port = if port == 0 { free_port_pair()? } else { port };
        let ctrl_port = port.checked_add(1).ok_or_else(|| {
            CollectError::Invalid("the swtpm port must leave room for its control port".into())
        })?;
        let log_path = dir.join("swtpm.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| CollectError::io(log_path.display().to_string(), e))?;
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl_port},bindaddr=127.0.0.1"))
            .arg("--flags")
            .arg("not-need-init,startup-clear")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| CollectError::io("starting swtpm", e))?;
        let mut swtpm = Self {
            child,
            port,
            dir: dir.to_owned(),
        };
        swtpm.wait_ready()?;
        Ok(swtpm)
    }

    fn wait_ready(&mut self) -> Result<(), CollectError> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("swtpm.log")).unwrap_or_default();
                return Err(CollectError::Invalid(format!(
                    "swtpm exited at start ({status}): {}",
                    log.trim()
                )));
            }
            if Instant::now() > deadline {
                return Err(CollectError::Invalid(
                    "swtpm did not start listening".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TSS2 TCTI configuration that reaches this TPM.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The TCP port it serves on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Manufactures a TPM 2.0 in `dir`: seeds, an EK and its certificate, SHA-1 and SHA-256 banks.
fn manufacture(dir: &Path) -> Result<(), CollectError> {
    let output = Command::new("swtpm_setup")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(dir)
        .args([
            "--create-ek-cert",
            "--create-platform-cert",
            "--pcr-banks",
            "sha1,sha256",
            "--overwrite",
        ])
        .output()
        .map_err(|e| CollectError::io("running swtpm_setup (is swtpm-tools installed?)", e))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    Err(CollectError::Invalid(format!(
        "swtpm_setup failed ({}): {}{}",
        output.status,
        stdout.trim(),
        stderr.trim()
    )))
}

/// A TCP port on loopback that, with the next one, nobody listens on right now.
fn free_port_pair() -> Result<u16, CollectError> {
    for _ in 0..32 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| CollectError::io("picking a port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| CollectError::io("picking a port", e))?
            .port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, next)).is_ok() {
            return Ok(port);
        }
    }
    Err(CollectError::Invalid(
        "no two adjacent free ports on loopback".into(),
    ))
}
