//! A software TPM 2.0 (swtpm, libtpms) on loopback, for machines without a TPM (the devnet's
//! providers) and for tests.
//!
//! [`Swtpm::start`] manufactures a TPM in a state directory once (`swtpm_setup --tpm2
//! --create-ek-cert --pcr-banks sha1,sha256`: an EK certificate signed by swtpm's local CA,
//! the system's, or with [`Swtpm::start_certified`] a [`LocalCa`] of the caller's) and
//! serves it with `swtpm socket` on `127.0.0.1:<port>`, its control channel on `<port> + 1`
//! (where the TSS2 `swtpm` TCTI looks for it, to set the locality). The TPM starts with `TPM2_Startup(CLEAR)`, so PCRs are zero as after a
//! power-on. The process is killed when the [`Swtpm`] is dropped; the state directory (the
//! TPM's seeds, owner-only) stays, so the same machine keeps the same EK across restarts.
//!
//! swtpm's TCP channels have no authentication: any local user can send it commands (reset
//! it, extend PCRs, read its state through the control channel). It stands in for a TPM on a
//! devnet and in tests; a provider's production machine uses its hardware TPM.

use crate::CollectError;
use std::{
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Port pairs tried when the caller lets [`Swtpm::start`] pick.
const PORT_ATTEMPTS: usize = 4;
/// How long swtpm may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running swtpm.
pub struct Swtpm {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// Whether this process was seen serving its ports (only then is the TPM shut down).
    ready: bool,
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

    /// Starts swtpm with its state in `dir` (manufactured on first use, its EK certified by
    /// the system's swtpm local CA), serving on `127.0.0.1:port` and its control channel on
    /// `port + 1`; `port` 0 picks a free pair.
    pub fn start(dir: &Path, port: u16) -> Result<Self, CollectError> {
        Self::start_with(dir, port, None)
    }

    /// [`Swtpm::start`], a TPM manufactured here getting its EK certificate from `ca`.
    pub fn start_certified(dir: &Path, port: u16, ca: &LocalCa) -> Result<Self, CollectError> {
        Self::start_with(dir, port, Some(ca))
    }

    fn start_with(dir: &Path, port: u16, ca: Option<&LocalCa>) -> Result<Self, CollectError> {
        create_private_dir(dir)?;
        if !dir.join("tpm2-00.permall").exists() {
            manufacture(dir, ca)?;
        }
        stop_stale(dir);
        if port != 0 {
            return Self::serve(dir, port);
        }
        // A picked pair can be taken before swtpm binds it: pick again.
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match Self::serve(dir, free_port_pair()?) {
                Ok(swtpm) => return Ok(swtpm),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| CollectError::Invalid("swtpm did not start".into())))
    }

    fn serve(dir: &Path, port: u16) -> Result<Self, CollectError> {
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
            .arg("--pid")
            .arg(format!("file={}", dir.join(PID_FILE).display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| CollectError::io("starting swtpm", e))?;
        let mut swtpm = Self {
            child,
            port,
            dir: dir.to_owned(),
            ready: false,
        };
        swtpm.wait_ready()?;
        swtpm.ready = true;
        Ok(swtpm)
    }

    /// Waits until this swtpm process itself listens on its port and its control port: a
    /// connection alone could reach another process that took a port after it was picked.
    fn wait_ready(&mut self) -> Result<(), CollectError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("swtpm.log")).unwrap_or_default();
                return Err(CollectError::Invalid(format!(
                    "swtpm exited at start ({status}): {}",
                    log.trim()
                )));
            }
            let ctrl = self.port.saturating_add(1);
            if listens_on(self.child.id(), self.port) && listens_on(self.child.id(), ctrl) {
                return Ok(());
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

/// How long an orderly shutdown may take before swtpm is killed regardless.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

impl Drop for Swtpm {
    /// Shuts the TPM down in order (`TPM2_Shutdown(CLEAR)`), then stops swtpm. Without the
    /// shutdown, every start after a use of the AK counts as a failed authorization to the
    /// TPM's dictionary-attack protection, and a few restarts lock the AK out
    /// (`TPM_RC_LOCKOUT`). The shutdown runs on a thread of its own: a client that still
    /// holds the TPM's single connection would make it wait, and the kill ends that wait.
    fn drop(&mut self) {
        // Only a swtpm seen serving, and still running: its port could be another's otherwise.
        let running = self.ready && matches!(self.child.try_wait(), Ok(None));
        let shutdown = running.then(|| {
            let tcti = self.tcti();
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                if let Ok(mut tpm) = crate::tpm::TssTpm::open(&tcti) {
                    let _ = tpm.shutdown();
                }
                let _ = done.send(());
            });
            let _ = finished.recv_timeout(SHUTDOWN_TIMEOUT);
            finished
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Killed, swtpm closed its sockets: a shutdown still waiting ends now (waited for a
        // bounded time, never forever).
        if let Some(finished) = shutdown {
            let _ = finished.recv_timeout(SHUTDOWN_TIMEOUT);
        }
    }
}

/// The pid file swtpm writes in its state directory.
const PID_FILE: &str = "swtpm.pid";

/// Stops a swtpm still serving `dir` for a process that died without stopping it (killed with
/// SIGKILL: its child outlives it and holds the state's lock, so a new swtpm would be refused).
/// Only a live `swtpm` process whose command line names `dir` is stopped.
fn stop_stale(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join(PID_FILE)) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    let serves_dir = || {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        cmdline.starts_with("swtpm ") && cmdline.contains(&format!("dir={} ", dir.display()))
    };
    if !serves_dir() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
    // A dead process's command line is empty (a zombie's too): its lock is released.
    for _ in 0..STALE_WAIT_POLLS {
        if !serves_dir() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Polls of 20 ms waiting for a stale swtpm to die.
const STALE_WAIT_POLLS: u32 = 250;

/// Whether process `pid` holds a socket listening on `127.0.0.1:port` (from `/proc/net/tcp`
/// and the process's file descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    // Columns: sl, local_address, rem_address, st (0A = LISTEN), …, inode (the 10th).
    let inodes: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|columns| columns.get(1) == Some(&local.as_str()) && columns.get(3) == Some(&"0A"))
        .filter_map(|columns| columns.get(9).copied())
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| {
            let target = target.to_string_lossy();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
}

/// Creates `dir` (and parents) with the state directory itself owner-only: it holds the TPM's
/// seeds.
fn create_private_dir(dir: &Path) -> Result<(), CollectError> {
    use std::os::unix::fs::DirBuilderExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    let error = |e| CollectError::io(dir.display().to_string(), e);
    // Created owner-only (no window with default permissions); one that already exists is
    // tightened.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(error)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(error)
}

/// Manufactures a TPM 2.0 in `dir`: seeds, an EK and its certificate (from `ca`, or the
/// system's local CA), SHA-1 and SHA-256 banks.
fn manufacture(dir: &Path, ca: Option<&LocalCa>) -> Result<(), CollectError> {
    let mut command = Command::new("swtpm_setup");
    if let Some(ca) = ca {
        command.arg("--config").arg(ca.setup_config());
    }
    let output = command
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
    // Ports that failed stay bound until the end, so the system hands out a new one each time
    // (a port just closed is often given again).
    let mut tried = Vec::new();
    for _ in 0..32 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| CollectError::io("picking a port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| CollectError::io("picking a port", e))?
            .port();
        let next_free = port
            .checked_add(1)
            .is_some_and(|next| TcpListener::bind((Ipv4Addr::LOCALHOST, next)).is_ok());
        if next_free {
            return Ok(port);
        }
        tried.push(listener);
    }
    Err(CollectError::Invalid(
        "no two adjacent free ports on loopback".into(),
    ))
}

/// Writes `text` to `path` unless it holds it already, through a file renamed into place:
/// agents starting together must never read a half-written configuration.
fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// A certificate authority of swtpm's `swtpm_localca` in a directory of its own, so that the
/// TPMs of one devnet (or test) are certified by a root nobody else's are: a chain approves
/// that root alone. `swtpm_localca` creates the root and its intermediate ("swtpm-localca")
/// when it first certifies an EK.
pub struct LocalCa {
    dir: PathBuf,
}

/// The root's certificate, in `swtpm_localca`'s state directory.
const CA_ROOT_PEM: &str = "swtpm-localca-rootca-cert.pem";
/// The intermediate's certificate.
const CA_ISSUER_PEM: &str = "issuercert.pem";

impl LocalCa {
    /// The CA in `dir` (created, with its configuration, when absent).
    pub fn at(dir: &Path) -> Result<Self, CollectError> {
        create_private_dir(dir)?;
        let error = |e| CollectError::io(dir.display().to_string(), e);
        let path = |name: &str| dir.join(name).display().to_string();
        let localca = format!(
            "statedir = {}\nsigningkey = {}\nissuercert = {}\ncertserial = {}\n",
            dir.display(),
            path("signkey.pem"),
            path(CA_ISSUER_PEM),
            path("certserial"),
        );
        write_if_changed(&dir.join("swtpm-localca.conf"), &localca).map_err(error)?;
        let options = "--platform-manufacturer Logos\n--platform-version 2.1\n\
                       --platform-model swtpm\n";
        write_if_changed(&dir.join("swtpm-localca.options"), options).map_err(error)?;
        let setup = format!(
            "create_certs_tool = swtpm_localca\ncreate_certs_tool_config = {}\n\
             create_certs_tool_options = {}\nactive_pcr_banks = sha256\n",
            path("swtpm-localca.conf"),
            path("swtpm-localca.options"),
        );
        write_if_changed(&dir.join("swtpm_setup.conf"), &setup).map_err(error)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn setup_config(&self) -> PathBuf {
        self.dir.join("swtpm_setup.conf")
    }

    /// The DER certificates above an EK's: the intermediate's, then the root's (present once
    /// a TPM was manufactured with this CA).
    pub fn authorities(&self) -> Result<Vec<Vec<u8>>, CollectError> {
        let mut certificates = Vec::new();
        for name in [CA_ISSUER_PEM, CA_ROOT_PEM] {
            certificates.extend(crate::certs::read_bundle(&self.dir.join(name))?);
        }
        Ok(certificates)
    }

    /// Writes [`LocalCa::authorities`] as one PEM bundle file (what an agent's `--ek-chain`
    /// reads) and returns its path.
    pub fn bundle(&self) -> Result<PathBuf, CollectError> {
        let mut pem = String::new();
        for name in [CA_ISSUER_PEM, CA_ROOT_PEM] {
            let path = self.dir.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CollectError::io(path.display().to_string(), e))?;
            pem.push_str(text.trim_end());
            pem.push('\n');
        }
        let path = self.dir.join("ek-chain.pem");
        std::fs::write(&path, pem).map_err(|e| CollectError::io(path.display().to_string(), e))?;
        Ok(path)
    }

    /// The root's DER certificate.
    pub fn root(&self) -> Result<Vec<u8>, CollectError> {
        let mut root = crate::certs::read_bundle(&self.dir.join(CA_ROOT_PEM))?;
        root.pop()
            .ok_or_else(|| CollectError::Invalid("the CA has no root certificate".into()))
    }
}
