//! The command line as people meet it, through the real binary and without a network: shell
//! completions, `logos init` and its configuration file (and what beats it), tables by default
//! and JSON with `--json`, and errors that say what to do next.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const LOGOS: &str = env!("CARGO_BIN_EXE_logos");
/// A loopback port nothing listens on.
const DEAD_RPC: &str = "http://127.0.0.1:9";

/// `logos <args>` with the configuration file at `config` and none of the `LOGOS_*` variables
/// a developer's shell may hold.
fn logos(config: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(LOGOS);
    for variable in ["LOGOS_RPC", "LOGOS_KEYSTORE", "LOGOS_FROM", "LOGOS_GENESIS"] {
        command.env_remove(variable);
    }
    command
        .args(args)
        .env("LOGOS_CONFIG", config)
        .env("LOGOS_PASSPHRASE", "ux passphrase")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("logos runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

fn failed(output: Output) -> String {
    assert!(!output.status.success(), "succeeded: {}", stdout(&output));
    assert_eq!(output.status.code(), Some(1));
    stderr(&output)
}

/// A directory with a keystore holding `alice` and no configuration file yet.
fn home() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("logos").join("config.toml");
    let keys = dir.path().join("keys");
    let keystore = keys.to_str().unwrap();
    ok(logos(
        &config,
        &["keys", "new", "alice", "--keystore", keystore],
    ));
    (dir, config, keys)
}

#[test]
fn completions_are_valid_scripts_for_bash_zsh_and_fish() {
    let none = Path::new("/nonexistent/config.toml");
    let bash = ok(logos(none, &["completions", "bash"]));
    assert!(bash.contains("lease") && bash.contains("completions"));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("logos.bash");
    std::fs::write(&script, &bash).unwrap();
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert!(ok(logos(none, &["completions", "zsh"])).starts_with("#compdef logos"));
    assert!(ok(logos(none, &["completions", "fish"])).contains("complete -c logos"));
    let refused = stderr(&logos(none, &["completions", "tcsh"]));
    assert!(
        refused.contains("bash") && refused.contains("fish"),
        "{refused}"
    );
}

#[test]
fn init_writes_a_private_config_that_fills_left_out_flags_and_flags_beat_it() {
    let (dir, config, keys) = home();
    let keystore = keys.to_str().unwrap();
    let genesis = dir.path().join("genesis.toml");
    // Init warns of what does not exist yet but writes anyway (the node may come later).
    let genesis_flag = genesis.to_str().unwrap();
    let written = logos(
        &config,
        &[
            "init",
            "--rpc",
            DEAD_RPC,
            "--keystore",
            keystore,
            "--from",
            "alice",
            "--genesis",
            genesis_flag,
            "--json",
        ],
    );
    let warnings = stderr(&written);
    let shown: serde_json::Value = serde_json::from_str(&ok(written)).unwrap();
    assert_eq!(shown["from"], "alice");
    assert!(warnings.contains("no genesis file"), "{warnings}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Again without --force: refused, and the file kept.
    let refused = failed(logos(&config, &["init", "--rpc", "http://127.0.0.1:1"]));
    assert!(refused.contains("--force"), "{refused}");
    assert!(std::fs::read_to_string(&config).unwrap().contains(DEAD_RPC));

    // The keystore comes from the file: a table by default, JSON with --json.
    let table = ok(logos(&config, &["keys", "list"]));
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("NAME") && header.contains("ADDRESS"),
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().contains("alice"), "{table}");
    let listed: serde_json::Value =
        serde_json::from_str(&ok(logos(&config, &["keys", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["name"], "alice");
    // A flag beats the file.
    let other = dir.path().join("empty");
    let empty = ok(logos(
        &config,
        &["keys", "list", "--keystore", other.to_str().unwrap()],
    ));
    assert_eq!(empty.trim(), "(none)");

    // The key and the endpoint come from the file: the key loads, the dead endpoint is the
    // failure, and the hint says how to reach a node.
    let error = failed(logos(&config, &["lease", "create", "--template", "0"]));
    assert!(
        error.contains("hint:") && error.contains("logos devnet"),
        "{error}"
    );
    // The environment beats the file: LOGOS_FROM names a key that does not exist.
    let output = Command::new(LOGOS)
        .args(["lease", "create", "--template", "0"])
        .env("LOGOS_CONFIG", &config)
        .env("LOGOS_FROM", "nobody")
        .env("LOGOS_PASSPHRASE", "ux passphrase")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let error = failed(output);
    assert!(error.contains("nobody.key"), "{error}");
    assert!(error.contains("logos keys new"), "{error}");

    // A damaged file is named with the way to fix it, and ignored: the command still runs
    // (here without the file's keystore, so it finds no keys).
    std::fs::write(&config, "rpc = [1, 2]\n\u{1b}]0;owned\u{7}").unwrap();
    let listed = logos(&config, &["keys", "list"]);
    let warning = stderr(&listed);
    assert!(
        warning.contains("ignoring the configuration file"),
        "{warning}"
    );
    assert!(warning.contains("logos init --force"), "{warning}");
    assert!(!warning.contains('\u{1b}'), "{warning:?}");
    assert!(!ok(listed).contains("alice"));
    // Commands that configure themselves never read it (the devnet's children among them).
    for command in [
        &["node", "run", "--help"][..],
        &["provisioner", "run", "--help"],
    ] {
        let help = logos(&config, command);
        assert!(help.status.success(), "{}", stderr(&help));
        assert!(stderr(&help).is_empty(), "{}", stderr(&help));
    }
    // Without HOME or LOGOS_CONFIG there is no file: the current directory is not searched.
    let planted = dir.path().join("cwd");
    std::fs::create_dir_all(planted.join(".logos")).unwrap();
    std::fs::write(planted.join(".logos/config.toml"), "from = \"planted\"\n").unwrap();
    let output = Command::new(LOGOS)
        .args(["lease", "close", "0", "--rpc", DEAD_RPC])
        .current_dir(&planted)
        .env_clear()
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let error = failed(output);
    assert!(error.contains("no signing key chosen"), "{error}");
}

#[test]
fn errors_say_what_to_do_next() {
    let none = Path::new("/nonexistent/config.toml");
    let error = failed(logos(none, &["query", "head", "--rpc", DEAD_RPC]));
    assert!(error.contains("Connection refused"), "{error}");
    assert!(
        error.contains("hint:") && error.contains("--rpc URL"),
        "{error}"
    );
    let error = failed(logos(none, &["lease", "close", "0", "--rpc", DEAD_RPC]));
    assert!(
        error.contains("--from NAME") && error.contains("logos init --from"),
        "{error}"
    );
    let error = failed(logos(none, &["provider", "status", "0", "--rpc", DEAD_RPC]));
    assert!(error.contains("logos init --genesis"), "{error}");
    // A mistyped flag is clap's error with its suggestion, exit code 2.
    let output = logos(none, &["lease", "list", "--jsn"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--json"), "{}", stderr(&output));
}
