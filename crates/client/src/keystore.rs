//! The keystore: one file per key, readable by its owner only (mode 0600, directory 0700).
//!
//! File `<name>.key` (JSON): `{"name", "public_key", "address", "private_key"}` with `0x` hex.
//! Private keys are never printed or logged; only the public part is shown.

use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::Signer;
use logos_primitives::{format_public_key, Address, PrivateKey};
use serde::{Deserialize, Serialize};
use std::{
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Errors of the keystore.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key name with characters other than letters, digits, `-` and `_`.
    #[error("key names use letters, digits, '-' and '_' only")]
    BadName,
    /// A key file that does not parse or does not hold a valid key.
    #[error("key file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The operating system gave no randomness.
    #[error("no randomness: {0}")]
    Randomness(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    name: String,
    public_key: String,
    address: Address,
    private_key: String,
}

/// The public part of a key, as printed.
#[derive(Clone, Debug, Serialize)]
pub struct PublicInfo {
    /// Key name.
    pub name: String,
    /// ed25519 public key.
    pub public_key: String,
    /// Account address.
    pub address: Address,
}

impl PublicInfo {
    /// The public part of `key`, named `name`.
    pub fn of(name: &str, key: &PrivateKey) -> Self {
        let public_key = key.public_key();
        Self {
            name: name.to_string(),
            public_key: format_public_key(&public_key),
            address: Address::from_public_key(&public_key),
        }
    }
}

/// The keystore directory to use: `explicit`, or `~/.logos/keys`.
pub fn directory(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".logos").join("keys")
    })
}

/// A fresh key from the operating system's randomness.
pub fn generate() -> Result<PrivateKey, KeystoreError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| KeystoreError::Randomness(error.to_string()))?;
    PrivateKey::decode(commonware_codec::Copying(seed.as_slice()))
        .map_err(|error| KeystoreError::Randomness(error.to_string()))
}

/// Writes `key` as `<dir>/<name>.key` with owner-only permissions; refuses to overwrite.
pub fn save(dir: &Path, name: &str, key: &PrivateKey) -> Result<PathBuf, KeystoreError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || !name.chars().all(valid) {
        return Err(KeystoreError::BadName);
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let path = dir.join(format!("{name}.key"));
    let info = PublicInfo::of(name, key);
    let file = KeyFile {
        name: info.name,
        public_key: info.public_key,
        address: info.address,
        private_key: format!("0x{}", hex::encode(key.encode())),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|error| KeystoreError::Invalid {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    let mut handle = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    handle.write_all(text.as_bytes()).map_err(io(&path))?;
    Ok(path)
}

/// Reads a key file.
pub fn load_file(path: &Path) -> Result<PrivateKey, KeystoreError> {
    let invalid = |reason: String| KeystoreError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let text = fs::read_to_string(path).map_err(io(path))?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|error| invalid(error.to_string()))?;
    let bytes = hex::decode(file.private_key.trim_start_matches("0x"))
        .map_err(|_| invalid("private key is not hex".into()))?;
    let key = PrivateKey::decode(commonware_codec::Copying(bytes.as_slice()))
        .map_err(|_| invalid("invalid private key".into()))?;
    if format_public_key(&key.public_key()) != file.public_key {
        return Err(invalid("public key does not match the private key".into()));
    }
    Ok(key)
}

/// Reads key `name` from `dir`.
pub fn load(dir: &Path, name: &str) -> Result<PrivateKey, KeystoreError> {
    load_file(&dir.join(format!("{name}.key")))
}

/// The public parts of every key in `dir`, by name.
pub fn list(dir: &Path) -> Result<Vec<PublicInfo>, KeystoreError> {
    let mut keys = Vec::new();
    if !dir.exists() {
        return Ok(keys);
    }
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|extension| extension == "key") {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            keys.push(PublicInfo::of(&name, &load_file(&path)?));
        }
    }
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(keys)
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
        assert!(matches!(
            save(&dir, "../evil", &key),
            Err(KeystoreError::BadName)
        ));
        assert_eq!(list(&dir).unwrap().len(), 1);
        fs::write(dir.join("forged.key"), "{\"name\":1}").unwrap();
        assert!(matches!(
            load(&dir, "forged"),
            Err(KeystoreError::Invalid { .. })
        ));
        fs::remove_dir_all(dir).unwrap();
    }
}
