//! Running the system commands environments are built with (`ip`, `iptables`, `runc`,
//! `mount`, …).

use crate::driver::DriverError;
use tokio::process::Command;

/// A driver error from any displayable failure.
pub fn system(error: impl std::fmt::Display) -> DriverError {
    DriverError::System(error.to_string())
}

/// Runs `program args…`; fails with its stderr unless it exits 0.
pub async fn run(program: &str, args: &[&str]) -> Result<(), DriverError> {
    run_with_input(program, args, "").await
}

/// Like [`run`] with `input` on stdin. `iptables` and `ip6tables` wait for the xtables lock
/// (`-w`) rather than fail when another program holds it.
pub async fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), DriverError> {
    use tokio::io::AsyncWriteExt;
    let wait: &[&str] = if matches!(program, "iptables" | "ip6tables") {
        &["-w"]
    } else {
        &[]
    };
    let mut child = Command::new(program)
        .args(wait)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| DriverError::System(format!("{program}: {error}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).await.map_err(system)?;
    }
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

/// The standard output of `program args…` (empty if it cannot run).
pub async fn output(program: &str, args: &[&str]) -> String {
    output_status(program, args).await.1
}

/// Whether `program args…` exited 0, and its standard output (`false` and empty if it cannot
/// run).
pub async fn output_status(program: &str, args: &[&str]) -> (bool, String) {
    match Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
    {
        Ok(output) => (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ),
        Err(_) => (false, String::new()),
    }
}

/// Sends SIGKILL to each of `pids` (errors ignored: a process may be gone already).
pub async fn kill(pids: Vec<String>) {
    for pid in pids {
        let _ = run("kill", &["-9", &pid]).await;
    }
}
