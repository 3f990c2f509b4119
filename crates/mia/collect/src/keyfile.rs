//! The attestation key file: the AK's `TPMT_PUBLIC` and its private blob, as JSON
//! `{"public": hex, "private": hex}`.
//!
//! The private blob is wrapped by the TPM under its endorsement key, so it is useless on any
//! other TPM: it needs no passphrase, but the file is still written owner-only (`0600`), all or
//! nothing (a temporary file renamed into place, so a crash never leaves half a key behind).

use crate::{
    tpm::{AkKind, AttestationKey, Tpm},
    CollectError,
};
use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path};

/// Largest key file read, bytes (two hex `TPMT_PUBLIC`/`TPM2B_PRIVATE` of a few hundred bytes).
pub const KEY_FILE_MAX_BYTES: usize = 8 * 1024;

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    public: String,
    private: String,
}

/// The attestation key at `path`, or, when there is none, a new one of `kind` created under
/// `tpm`'s EK and written there.
pub fn load_or_create(
    path: &Path,
    tpm: &mut dyn Tpm,
    kind: AkKind,
) -> Result<AttestationKey, CollectError> {
    if let Some(bytes) = crate::logs::read_optional(path, KEY_FILE_MAX_BYTES)? {
        let file: KeyFile = serde_json::from_slice(&bytes)
            .map_err(|e| CollectError::Invalid(format!("{}: {e}", path.display())))?;
        let decode = |text: &str| {
            hex::decode(text).map_err(|e| CollectError::Invalid(format!("{}: {e}", path.display())))
        };
        return Ok(AttestationKey {
            public: decode(&file.public)?,
            private: decode(&file.private)?,
        });
    }
    let key = tpm.create_attestation_key(kind)?;
    let file = KeyFile {
        public: hex::encode(&key.public),
        private: hex::encode(&key.private),
    };
    let bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| CollectError::Invalid(format!("encoding the key file: {e}")))?;
    write_owner_only(path, &bytes)?;
    Ok(key)
}

/// Writes `bytes` to `path` owner-only, all or nothing.
fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), CollectError> {
    let io = |what: &Path, error| CollectError::io(what.display().to_string(), error);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let temporary = path.with_extension("partial");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| io(&temporary, e))?;
    file.write_all(bytes).map_err(|e| io(&temporary, e))?;
    file.sync_all().map_err(|e| io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| io(path, e))
}
