//! `logos init` and the configuration file it writes, so that `--rpc`, `--keystore`, `--from`
//! and `--genesis` can be left out.
//!
//! The file is TOML at `$LOGOS_CONFIG`, else `~/.logos/config.toml`:
//! ```toml
//! rpc = "http://127.0.0.1:8545"
//! keystore = "/tmp/logos-devnet/keys"
//! from = "dev"
//! genesis = "/tmp/logos-devnet/genesis.toml"
//! ```
//! Precedence: a flag, then the environment (`LOGOS_RPC`, `LOGOS_KEYSTORE`, `LOGOS_FROM`,
//! `LOGOS_GENESIS`), then the file, then the built-in default. The file only fills environment
//! variables that are unset, before the command line is parsed, and only for the commands a
//! user runs against a network (never for `devnet`, `node run|follow`, `agent`,
//! `provisioner run`, `bench` or `spinoff`, which configure themselves, nor for the devnet's
//! children, which are among those). A file that cannot be used (damaged, oversize, writable by
//! others) is ignored with a warning: every command still runs, with flags and defaults. Without
//! `HOME` (and `LOGOS_CONFIG`) there is no file: the current directory is never searched.

use crate::{client::DEFAULT_RPC, output::Format};
use anyhow::{bail, Context, Result};
use logos_client::keystore;
use serde::{Deserialize, Serialize};
use std::{
    io::{Read as _, Write as _},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// Largest configuration file read, bytes.
const CONFIG_MAX_BYTES: u64 = 64 * 1024;
/// Commands that start processes of their own (or write the file): it never applies to them.
const SELF_CONFIGURED: &[&[&str]] = &[
    &["devnet"],
    &["bench"],
    &["spinoff"],
    &["agent"],
    &["init"],
    &["node", "run"],
    &["node", "follow"],
    &["provisioner", "run"],
    &["completions"],
];

/// What `logos init` records.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Node RPC endpoint (`LOGOS_RPC`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc: Option<String>,
    /// Keystore directory (`LOGOS_KEYSTORE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystore: Option<PathBuf>,
    /// Name of the signing key in the keystore (`LOGOS_FROM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Genesis file trusted for proven reads (`LOGOS_GENESIS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genesis: Option<PathBuf>,
}

impl Config {
    /// The environment variable each field fills, with its value.
    fn variables(&self) -> [(&'static str, Option<String>); 4] {
        let path = |path: &Option<PathBuf>| path.as_ref().map(|path| path.display().to_string());
        [
            ("LOGOS_RPC", self.rpc.clone()),
            ("LOGOS_KEYSTORE", path(&self.keystore)),
            ("LOGOS_FROM", self.from.clone()),
            ("LOGOS_GENESIS", path(&self.genesis)),
        ]
    }
}

/// `logos init`: write the configuration file.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Node RPC endpoint to use by default.
    #[arg(long, default_value = DEFAULT_RPC)]
    rpc: String,
    /// Keystore directory to use by default (`logos keys new NAME --keystore DIR` makes a key).
    #[arg(long)]
    keystore: Option<PathBuf>,
    /// Key to sign with by default.
    #[arg(long)]
    from: Option<String>,
    /// Genesis file to trust for proven reads by default.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Replace an existing configuration file.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    format: Format,
}

/// The configuration file's path: `$LOGOS_CONFIG`, else `$HOME/.logos/config.toml`; none
/// without either.
pub fn path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LOGOS_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").filter(|home| !home.is_empty())?;
    Some(PathBuf::from(home).join(".logos").join("config.toml"))
}

/// Reads the configuration file at `path`; `None` when there is none.
pub fn read(path: &Path) -> Result<Option<Config>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("{}", path.display())),
    };
    // Someone else who can write it could point the endpoint and the key elsewhere.
    let mode = std::os::unix::fs::PermissionsExt::mode(&file.metadata()?.permissions());
    if mode & 0o022 != 0 {
        bail!(
            "{} is writable by other users (mode {:o}): `chmod 600` it",
            path.display(),
            mode & 0o777
        );
    }
    let mut text = String::new();
    file.take(CONFIG_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{}", path.display()))?;
    if text.len() as u64 > CONFIG_MAX_BYTES {
        bail!("{} is over {CONFIG_MAX_BYTES} bytes", path.display());
    }
    let config = toml::from_str(&text).with_context(|| {
        format!(
            "{} is not a logos configuration (fields: rpc, keystore, from, genesis); fix it or \
             write it again with `logos init --force`",
            path.display()
        )
    })?;
    Ok(Some(config))
}

/// Fills the unset `LOGOS_*` variables from the configuration file, unless `args`' command
/// configures itself (see the module docs); a file that cannot be used is ignored with a
/// warning on standard error. Called first thing, while the process has one thread.
pub fn apply(args: &[String]) {
    let words = subcommands(args);
    if SELF_CONFIGURED
        .iter()
        .any(|command| words.starts_with(command))
    {
        return;
    }
    let Some(path) = path() else {
        return;
    };
    let config = match read(&path) {
        Ok(Some(config)) => config,
        Ok(None) => return,
        Err(error) => {
            let report = crate::output::error_report(&error);
            let report = report.trim_start_matches("Error: ");
            eprintln!("warning: ignoring the configuration file: {report}");
            return;
        }
    };
    for (variable, value) in config.variables() {
        if let (Some(value), None) = (value, std::env::var_os(variable)) {
            std::env::set_var(variable, value);
        }
    }
}

/// The first two words of `args` (after the program) that are not options or the global
/// option's value: the command and its subcommand.
fn subcommands(args: &[String]) -> Vec<&str> {
    let mut found = Vec::with_capacity(2);
    let mut words = args.iter().skip(1);
    while let (Some(word), true) = (words.next(), found.len() < 2) {
        match word.as_str() {
            // The only global option with a separate value.
            "--passphrase-file" => {
                words.next();
            }
            option if option.starts_with('-') => {}
            command => found.push(command),
        }
    }
    found
}

/// Runs `logos init`.
pub fn run(args: InitArgs) -> Result<()> {
    let Some(path) = path() else {
        bail!("no place for the configuration file: set HOME or LOGOS_CONFIG");
    };
    if !args.force && path.exists() {
        bail!("{} exists: pass --force to replace it", path.display());
    }
    let config = Config {
        rpc: Some(args.rpc),
        keystore: args.keystore.map(absolute).transpose()?,
        from: args.from,
        genesis: args.genesis.map(absolute).transpose()?,
    };
    let warnings = check(&config);
    write(&path, &config, args.force)?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    args.format.print(&serde_json::json!({
        "config": path,
        "rpc": config.rpc,
        "keystore": config.keystore,
        "from": config.from,
        "genesis": config.genesis,
        "warnings": warnings,
    }))
}

/// `path` made absolute against the current directory, so the file works from anywhere.
fn absolute(path: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&path).with_context(|| format!("{}", path.display()))
}

/// What looks wrong in `config` (written anyway: the node or key may come later).
fn check(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(rpc) = &config.rpc {
        if !(rpc.starts_with("http://") || rpc.starts_with("https://")) {
            warnings.push(format!("rpc {rpc} is not an http:// or https:// URL"));
        }
    }
    if let Some(name) = &config.from {
        let directory = keystore::directory(config.keystore.clone());
        if !directory.join(format!("{name}.key")).exists() {
            warnings.push(format!(
                "no key {name} in {}: make it with `logos keys new {name}` (add --keystore DIR \
                 for another keystore)",
                directory.display()
            ));
        }
    }
    if let Some(genesis) = &config.genesis {
        if !genesis.is_file() {
            warnings.push(format!("no genesis file at {}", genesis.display()));
        }
    }
    warnings
}

/// Writes `config` to `path` atomically: a private file (0600) in a private directory (0700,
/// when created). Without `replace`, an existing file is kept (even one made meanwhile).
fn write(path: &Path, config: &Config, replace: bool) -> Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
        .with_context(|| format!("{}", directory.display()))?;
    let text = toml::to_string(config)?;
    let temporary = path.with_extension(format!("toml.{}.tmp", std::process::id()));
    let written = (|| -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("{}", temporary.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        match replace {
            true => std::fs::rename(&temporary, path),
            // A link fails if the file exists: no check-then-write window.
            false => std::fs::hard_link(&temporary, path),
        }
        .with_context(|| format!("{}", path.display()))
    })();
    let _ = std::fs::remove_file(&temporary);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_subcommand_is_found_past_global_options() {
        assert_eq!(
            subcommands(&words("logos lease list --json")),
            ["lease", "list"]
        );
        assert_eq!(
            subcommands(&words("logos --passphrase-file devnet catalog")),
            ["catalog"]
        );
        assert!(subcommands(&words("logos --help")).is_empty());
        let own = |line: &str| {
            let args = words(line);
            let words = subcommands(&args);
            SELF_CONFIGURED
                .iter()
                .any(|command| words.starts_with(command))
        };
        assert!(own("logos node run --config c.toml"));
        assert!(!own("logos node register --node 1.2.3.4:8545"));
        assert!(own("logos devnet"));
        assert!(own("logos provisioner run --config p.toml"));
        assert!(!own("logos provisioner register"));
        assert!(!own("logos catalog"));
    }

    #[test]
    fn a_written_config_reads_back_and_a_foreign_or_huge_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.toml");
        assert_eq!(read(&path).unwrap(), None);
        let config = Config {
            rpc: Some("http://127.0.0.1:1".into()),
            from: Some("alice".into()),
            ..Config::default()
        };
        write(&path, &config, false).unwrap();
        assert_eq!(read(&path).unwrap(), Some(config.clone()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Not replaced unless asked, and no temporary file is left either way.
        let other = Config::default();
        assert!(write(&path, &other, false).is_err());
        assert_eq!(read(&path).unwrap(), Some(config));
        write(&path, &other, true).unwrap();
        assert_eq!(read(&path).unwrap(), Some(other));
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
        // Writable by others: refused (they could point the endpoint and the key elsewhere).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(format!("{:#}", read(&path).unwrap_err()).contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "rpc = 3").unwrap();
        assert!(format!("{:#}", read(&path).unwrap_err()).contains("logos init --force"));
        std::fs::write(&path, "unknown = \"x\"").unwrap();
        assert!(read(&path).is_err());
        std::fs::write(&path, format!("rpc = \"{}\"", "x".repeat(70_000))).unwrap();
        assert!(format!("{:#}", read(&path).unwrap_err()).contains("over"));
    }

    #[test]
    fn check_warns_of_a_missing_key_and_a_bad_url() {
        let dir = tempfile::tempdir().unwrap();
        let warnings = check(&Config {
            rpc: Some("127.0.0.1:8545".into()),
            keystore: Some(dir.path().into()),
            from: Some("nobody".into()),
            genesis: Some(dir.path().join("genesis.toml")),
        });
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[1].contains("logos keys new nobody"));
    }
}
