//! The keystore: one file per key, readable by its owner only (mode 0600, directory 0700),
//! the private key encrypted at rest.
//!
//! File `<name>.key` (JSON): `{"name", "public_key", "address", "crypto"}` with `0x` hex, where
//! `crypto` is `{"kdf": "scrypt", "log_n", "r", "p", "salt", "cipher": "xchacha20poly1305",
//! "nonce", "ciphertext"}`: the 32-byte encryption key is scrypt (RFC 7914) of the passphrase
//! with a random 32-byte salt, the cipher is XChaCha20-Poly1305 (RustCrypto) with a random
//! 24-byte nonce and the public key as associated data, so a ciphertext cannot be moved under
//! another public key. Defaults: `log_n` [`SCRYPT_LOG_N`], `r` 8, `p` 1 (32 MiB, well under a
//! second); a file asking for more than [`SCRYPT_LOG_N_MAX`] is refused rather than run.
//!
//! The passphrase ([`passphrase`]) comes from `LOGOS_PASSPHRASE`, else from the file set by
//! [`set_passphrase_file`] (`--passphrase-file`) or `LOGOS_PASSPHRASE_FILE`, else the empty
//! passphrase is tried, else it is asked on the terminal; with no terminal loading fails with
//! [`KeystoreError::Locked`] and never waits on stdin. Devnet keys use the empty passphrase.
//! Files of the older plaintext form (`"private_key"`) still load, with a warning on stderr.
//! Private keys are never printed or logged; only the public part is shown.

use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::Signer;
use logos_primitives::{format_public_key, parse_public_key, Address, PrivateKey};
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
    /// The passphrase does not decrypt the key (or the file was tampered with).
    #[error("key file {0}: wrong passphrase (or a tampered file)")]
    WrongPassphrase(PathBuf),
    /// The key is encrypted and no passphrase source is available.
    #[error(
        "key file {0} is encrypted: set LOGOS_PASSPHRASE or pass --passphrase-file \
         (there is no terminal to ask on)"
    )]
    Locked(PathBuf),
}

/// scrypt cost of new key files: 2^15 iterations (32 MiB with r = 8).
pub const SCRYPT_LOG_N: u8 = 15;
/// Largest scrypt cost a key file may ask for (2^20 with r ≤ 8, p ≤ 4: 1 GiB of memory).
pub const SCRYPT_LOG_N_MAX: u8 = 20;
const SCRYPT_R: u32 = 8;
const SCRYPT_R_MAX: u32 = 8;
const SCRYPT_P: u32 = 1;
const SCRYPT_P_MAX: u32 = 4;

static PASSPHRASE_FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes [`passphrase`] read the passphrase from `path` (`--passphrase-file`); first call wins.
pub fn set_passphrase_file(path: PathBuf) {
    let _ = PASSPHRASE_FILE.set(path);
}

/// The passphrase given to this process without asking: `LOGOS_PASSPHRASE`, or the first
/// line of the passphrase file (see the module docs); `None` if neither is set.
pub fn passphrase() -> Result<Option<zeroize::Zeroizing<String>>, KeystoreError> {
    if let Ok(text) = std::env::var("LOGOS_PASSPHRASE") {
        return Ok(Some(zeroize::Zeroizing::new(text)));
    }
    let file = PASSPHRASE_FILE
        .get()
        .cloned()
        .or_else(|| std::env::var_os("LOGOS_PASSPHRASE_FILE").map(PathBuf::from));
    let Some(path) = file else {
        return Ok(None);
    };
    let text =
        zeroize::Zeroizing::new(read_bounded(&path, KEY_FILE_MAX_BYTES)?.ok_or_else(|| {
            KeystoreError::Invalid {
                path: path.clone(),
                reason: "passphrase file is not a small regular file".into(),
            }
        })?);
    let line = text.lines().next().unwrap_or_default();
    Ok(Some(zeroize::Zeroizing::new(line.to_string())))
}

/// The passphrase for a new key: [`passphrase`], else asked twice on the terminal. Errors
/// without a terminal ([`KeystoreError::Locked`] naming `path`).
pub fn new_passphrase(path: &Path) -> Result<zeroize::Zeroizing<String>, KeystoreError> {
    if let Some(given) = passphrase()? {
        if given.is_empty() {
            return Err(KeystoreError::Invalid {
                path: path.to_path_buf(),
                reason: "an empty passphrase encrypts nothing".into(),
            });
        }
        return Ok(given);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(KeystoreError::Locked(path.to_path_buf()));
    }
    let first = zeroize::Zeroizing::new(
        rpassword::prompt_password("New key passphrase: ").map_err(io(path))?,
    );
    let again = zeroize::Zeroizing::new(
        rpassword::prompt_password("Repeat the passphrase: ").map_err(io(path))?,
    );
    if *first != *again || first.is_empty() {
        return Err(KeystoreError::Invalid {
            path: path.to_path_buf(),
            reason: "the passphrases differ or are empty (an empty passphrase encrypts nothing)"
                .into(),
        });
    }
    Ok(first)
}

#[derive(Serialize, Deserialize)]
struct Crypto {
    kdf: String,
    log_n: u8,
    r: u32,
    p: u32,
    salt: String,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

fn derive_key(
    passphrase: &str,
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<zeroize::Zeroizing<[u8; 32]>, String> {
    if log_n > SCRYPT_LOG_N_MAX || r > SCRYPT_R_MAX || p > SCRYPT_P_MAX {
        return Err(format!(
            "scrypt cost (log_n {log_n}, r {r}, p {p}) above the limit"
        ));
    }
    let params = scrypt::Params::new(log_n, r, p, 32).map_err(|error| error.to_string())?;
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase.as_bytes(), salt, &params, key.as_mut())
        .map_err(|error| error.to_string())?;
    Ok(key)
}

fn random<const N: usize>() -> Result<[u8; N], KeystoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| KeystoreError::Randomness(error.to_string()))?;
    Ok(bytes)
}

fn encrypt(key: &PrivateKey, passphrase: &str, aad: &[u8]) -> Result<Crypto, KeystoreError> {
    use chacha20poly1305::{
        aead::{Aead, KeyInit, Payload},
        XChaCha20Poly1305, XNonce,
    };
    let salt: [u8; 32] = random()?;
    let nonce: [u8; 24] = random()?;
    let secret = derive_key(passphrase, &salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
        .map_err(KeystoreError::Randomness)?;
    let cipher = XChaCha20Poly1305::new(secret.as_ref().into());
    let plaintext = zeroize::Zeroizing::new(key.encode().to_vec());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad,
            },
        )
        .map_err(|_| KeystoreError::Randomness("encryption failed".into()))?;
    Ok(Crypto {
        kdf: "scrypt".into(),
        log_n: SCRYPT_LOG_N,
        r: SCRYPT_R,
        p: SCRYPT_P,
        salt: format!("0x{}", hex::encode(salt)),
        cipher: "xchacha20poly1305".into(),
        nonce: format!("0x{}", hex::encode(nonce)),
        ciphertext: format!("0x{}", hex::encode(ciphertext)),
    })
}

/// Decrypts `crypto` with `passphrase`: the key bytes, `Ok(None)` for a wrong passphrase.
fn decrypt(
    crypto: &Crypto,
    passphrase: &str,
    aad: &[u8],
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, String> {
    use chacha20poly1305::{
        aead::{Aead, KeyInit, Payload},
        XChaCha20Poly1305, XNonce,
    };
    if crypto.kdf != "scrypt" || crypto.cipher != "xchacha20poly1305" {
        return Err(format!(
            "unknown kdf {} or cipher {}",
            crypto.kdf, crypto.cipher
        ));
    }
    let hex_field =
        |text: &str| logos_primitives::decode_hex(text).map_err(|_| "not hex".to_string());
    let salt = hex_field(&crypto.salt)?;
    let nonce = hex_field(&crypto.nonce)?;
    let ciphertext = hex_field(&crypto.ciphertext)?;
    if !(16..=64).contains(&salt.len()) || nonce.len() != 24 || ciphertext.len() > 256 {
        return Err("salt, nonce or ciphertext of the wrong size".into());
    }
    let secret = derive_key(passphrase, &salt, crypto.log_n, crypto.r, crypto.p)?;
    let cipher = XChaCha20Poly1305::new(secret.as_ref().into());
    Ok(cipher
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad,
            },
        )
        .ok()
        .map(zeroize::Zeroizing::new))
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crypto: Option<Crypto>,
    /// The older plaintext form (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
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

/// Writes `key` as `<dir>/<name>.key`, encrypted with `passphrase` (see the module docs), with
/// owner-only permissions; refuses to overwrite.
pub fn save(
    dir: &Path,
    name: &str,
    key: &PrivateKey,
    passphrase: &str,
) -> Result<PathBuf, KeystoreError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || !name.chars().all(valid) {
        return Err(KeystoreError::BadName);
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let path = dir.join(format!("{name}.key"));
    let info = PublicInfo::of(name, key);
    let crypto = encrypt(key, passphrase, key.public_key().as_ref())?;
    let file = KeyFile {
        name: info.name,
        public_key: info.public_key,
        address: info.address,
        crypto: Some(crypto),
        private_key: None,
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

/// Largest key file read, bytes.
const KEY_FILE_MAX_BYTES: u64 = 4_096;

fn read_key_file(path: &Path) -> Result<KeyFile, KeystoreError> {
    let invalid = |reason: &str| KeystoreError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let text = read_bounded(path, KEY_FILE_MAX_BYTES)?
        .ok_or_else(|| invalid("not a regular file of a key file's size"))?;
    serde_json::from_str(&text).map_err(|error| invalid(&error.to_string()))
}

/// Reads `path` if it is a regular file of at most `max` bytes (checked on the opened
/// handle, and the read itself bounded, so a swapped-in FIFO or a growing file cannot hang
/// or exhaust memory); `None` otherwise.
fn read_bounded(path: &Path, max: u64) -> Result<Option<String>, KeystoreError> {
    use std::io::Read as _;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nonblock())
        .open(path)
        .map_err(io(path))?;
    let metadata = file.metadata().map_err(io(path))?;
    if !metadata.is_file() || metadata.len() > max {
        return Ok(None);
    }
    let mut text = String::new();
    file.take(max.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(io(path))?;
    if text.len() as u64 > max {
        return Ok(None);
    }
    Ok(Some(text))
}

/// `O_NONBLOCK`, so opening a FIFO does not wait for a writer (Linux value).
fn libc_o_nonblock() -> i32 {
    0o4000
}

/// Reads and decrypts a key file, with the passphrase from [`passphrase`], the empty one, or
/// the terminal (see the module docs). Errors: [`KeystoreError::WrongPassphrase`],
/// [`KeystoreError::Locked`], [`KeystoreError::Invalid`].
pub fn load_file(path: &Path) -> Result<PrivateKey, KeystoreError> {
    let file = read_key_file(path)?;
    let invalid = |reason: String| KeystoreError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let public_key = parse_public_key(&file.public_key)
        .map_err(|_| invalid("public key is not an ed25519 key".into()))?;
    let bytes = match (&file.crypto, &file.private_key) {
        (Some(crypto), _) => unlock(path, crypto, public_key.as_ref())?,
        (None, Some(plaintext)) => {
            eprintln!(
                "warning: key file {} is NOT encrypted (older format); re-create it with `logos keys new`",
                path.display()
            );
            zeroize::Zeroizing::new(
                logos_primitives::decode_hex(plaintext)
                    .map_err(|_| invalid("private key is not hex".into()))?,
            )
        }
        (None, None) => return Err(invalid("no key material".into())),
    };
    let key = PrivateKey::decode(commonware_codec::Copying(bytes.as_slice()))
        .map_err(|_| invalid("invalid private key".into()))?;
    if key.public_key() != public_key {
        return Err(invalid("public key does not match the private key".into()));
    }
    Ok(key)
}

/// Decrypts with the given passphrase, else the empty one, else one asked on the terminal.
fn unlock(
    path: &Path,
    crypto: &Crypto,
    aad: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, KeystoreError> {
    let invalid = |reason: String| KeystoreError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let given = passphrase()?;
    if let Some(given) = &given {
        if let Some(bytes) = decrypt(crypto, given, aad).map_err(invalid)? {
            return Ok(bytes);
        }
    }
    // Devnet keys use the empty passphrase, whatever the environment says.
    if let Some(bytes) = decrypt(crypto, "", aad).map_err(invalid)? {
        return Ok(bytes);
    }
    if given.is_some() {
        return Err(KeystoreError::WrongPassphrase(path.to_path_buf()));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(KeystoreError::Locked(path.to_path_buf()));
    }
    let asked = zeroize::Zeroizing::new(
        rpassword::prompt_password(format!("Passphrase of {}: ", path.display()))
            .map_err(io(path))?,
    );
    decrypt(crypto, &asked, aad)
        .map_err(invalid)?
        .ok_or_else(|| KeystoreError::WrongPassphrase(path.to_path_buf()))
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
            // The public part is in the clear: listing decrypts nothing.
            let file = read_key_file(&path)?;
            keys.push(PublicInfo {
                name,
                public_key: file.public_key,
                address: file.address,
            });
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
        let path = save(&dir, "alice", &key, "").unwrap();
        assert_eq!(load(&dir, "alice").unwrap().public_key(), key.public_key());
        let text = fs::read_to_string(&path).unwrap();
        let secret = hex::encode(key.encode());
        assert!(
            !text.contains(&secret),
            "the private key is on disk in the clear"
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(save(&dir, "alice", &key, "").is_err(), "no overwrite");
        assert!(matches!(
            save(&dir, "../evil", &key, ""),
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

    #[test]
    fn a_key_with_a_passphrase_needs_it_and_resists_tampering() {
        let key = generate().unwrap();
        let aad = key.public_key();
        let crypto = encrypt(&key, "correct horse", aad.as_ref()).unwrap();
        let opened = decrypt(&crypto, "correct horse", aad.as_ref())
            .unwrap()
            .unwrap();
        assert_eq!(opened.as_slice(), key.encode().as_ref());
        assert!(
            decrypt(&crypto, "", aad.as_ref()).unwrap().is_none(),
            "empty passphrase"
        );
        assert!(decrypt(&crypto, "wrong", aad.as_ref()).unwrap().is_none());
        // Moved under another public key: the associated data no longer matches.
        let other = generate().unwrap().public_key();
        assert!(decrypt(&crypto, "correct horse", other.as_ref())
            .unwrap()
            .is_none());
        // A flipped ciphertext byte fails authentication.
        let mut tampered = hex::decode(crypto.ciphertext.trim_start_matches("0x")).unwrap();
        tampered[0] ^= 1;
        let tampered = Crypto {
            ciphertext: format!("0x{}", hex::encode(tampered)),
            ..crypto
        };
        assert!(decrypt(&tampered, "correct horse", aad.as_ref())
            .unwrap()
            .is_none());
        // A file asking for an absurd scrypt cost is refused before any work.
        let greedy = Crypto {
            log_n: 40,
            ..tampered
        };
        assert!(decrypt(&greedy, "correct horse", aad.as_ref()).is_err());
    }
}
