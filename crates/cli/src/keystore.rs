//! The keystore: one file per key, readable by its owner only (mode 0600, directory 0700).
//!
//! File `<name>.key` (JSON): `{"name", "public_key", "address", "private_key"}` with `0x` hex.
//! Private keys are never printed or logged; `keys show` prints the public part.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::Signer;
use logos_primitives::{format_public_key, Address, PrivateKey};
use serde::{Deserialize, Serialize};
use std::{
    fs,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// `logos keys …`
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a new key.
    New {
        /// Name of the key.
        name: String,
    },
    /// List keys.
    List,
    /// Show a key's public key and address.
    Show {
        /// Name of the key.
        name: String,
    },
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    name: String,
    public_key: String,
    address: Address,
    private_key: String,
}

/// The public part of a key, as printed.
#[derive(Serialize)]
pub struct PublicInfo {
    /// Key name.
    pub name: String,
    /// ed25519 public key.
    pub public_key: String,
    /// Account address.
    pub address: Address,
}

/// The keystore directory to use.
pub fn directory(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".logos").join("keys")
    })
}

/// A fresh key from the operating system's randomness.
pub fn generate() -> Result<PrivateKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    PrivateKey::decode(commonware_codec::Copying(seed.as_slice())).context("derive key from seed")
}

/// Writes `key` as `<dir>/<name>.key` with owner-only permissions; refuses to overwrite.
pub fn save(dir: &Path, name: &str, key: &PrivateKey) -> Result<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("key names use letters, digits, '-' and '_' only");
    }
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let path = dir.join(format!("{name}.key"));
    let public_key = key.public_key();
    let file = KeyFile {
        name: name.to_string(),
        public_key: format_public_key(&public_key),
        address: Address::from_public_key(&public_key),
        private_key: format!("0x{}", hex::encode(key.encode())),
    };
    let mut handle = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("create {} (does the key exist already?)", path.display()))?;
    use std::io::Write;
    handle.write_all(serde_json::to_string_pretty(&file)?.as_bytes())?;
    Ok(path)
}

/// Reads a key file.
pub fn load_file(path: &Path) -> Result<PrivateKey> {
    let text = fs::read_to_string(path).with_context(|| format!("read key {}", path.display()))?;
    let file: KeyFile =
        serde_json::from_str(&text).with_context(|| format!("parse key {}", path.display()))?;
    let bytes =
        hex::decode(file.private_key.trim_start_matches("0x")).context("private key is not hex")?;
    let key = PrivateKey::decode(commonware_codec::Copying(bytes.as_slice()))
        .context("invalid private key")?;
    if format_public_key(&key.public_key()) != file.public_key {
        bail!(
            "key file {} is inconsistent: public key does not match",
            path.display()
        );
    }
    Ok(key)
}

/// Reads key `name` from `dir`.
pub fn load(dir: &Path, name: &str) -> Result<PrivateKey> {
    load_file(&dir.join(format!("{name}.key")))
}

fn info(name: &str, key: &PrivateKey) -> PublicInfo {
    let public_key = key.public_key();
    PublicInfo {
        name: name.to_string(),
        public_key: format_public_key(&public_key),
        address: Address::from_public_key(&public_key),
    }
}

/// Runs `logos keys …`.
pub fn run(command: KeysCommand, keystore: Option<PathBuf>) -> Result<()> {
    let dir = directory(keystore);
    match command {
        KeysCommand::New { name } => {
            let key = generate()?;
            let path = save(&dir, &name, &key)?;
            println!("{}", serde_json::to_string_pretty(&info(&name, &key))?);
            eprintln!("saved to {}", path.display());
        }
        KeysCommand::List => {
            let mut keys = Vec::new();
            if dir.exists() {
                for entry in fs::read_dir(&dir)? {
                    let path = entry?.path();
                    if path.extension().is_some_and(|extension| extension == "key") {
                        let name = path
                            .file_stem()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .to_string();
                        keys.push(info(&name, &load_file(&path)?));
                    }
                }
            }
            keys.sort_by(|a, b| a.name.cmp(&b.name));
            println!("{}", serde_json::to_string_pretty(&keys)?);
        }
        KeysCommand::Show { name } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&info(&name, &load(&dir, &name)?))?
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_key_loads_back_and_is_owner_only() {
        let dir = std::env::temp_dir().join(format!("logos-keystore-test-{}", std::process::id()));
        let key = generate().unwrap();
        let path = save(&dir, "alice", &key).unwrap();
        assert_eq!(load(&dir, "alice").unwrap().public_key(), key.public_key());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(save(&dir, "alice", &key).is_err(), "no overwrite");
        assert!(save(&dir, "../evil", &key).is_err(), "no path tricks");
        fs::remove_dir_all(dir).unwrap();
    }
}
