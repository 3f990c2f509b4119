//! Helpers shared by the end-to-end test binaries.
// Each test binary uses some of these helpers.
#![allow(dead_code)]

pub mod sub0;

use logos_primitives::PrivateKey;
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::Child,
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

/// The `logos` binary under test.
pub const LOGOS: &str = env!("CARGO_BIN_EXE_logos");

/// `logos` as a command that reads no configuration file (`logos init`'s, which a
/// developer's home may hold, must not steer the tests).
pub fn logos_command() -> std::process::Command {
    let mut command = std::process::Command::new(LOGOS);
    command.env("LOGOS_CONFIG", "/nonexistent/logos-config.toml");
    command
}

/// The lines `child` prints on stdout (piped), as they come.
pub fn stdout_lines(child: &mut Child) -> Receiver<String> {
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    receiver
}

/// Reads the private key of a keystore file written by `logos keys` / `logos devnet` (devnet
/// keys use the empty passphrase).
pub fn load_key(path: &Path) -> PrivateKey {
    logos_client::keystore::load_file(path).unwrap()
}

/// A two-thread tokio runtime for driving RPC clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Calls `check` every 500 ms until it returns `Some`, for at most `bound`.
pub fn eventually<T>(what: &str, bound: Duration, check: impl FnMut() -> Option<T>) -> T {
    eventually_or(what, bound, check, String::new)
}

/// [`eventually`], saying what `explain` returns if it times out.
pub fn eventually_or<T>(
    what: &str,
    bound: Duration,
    mut check: impl FnMut() -> Option<T>,
    explain: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", explain());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
