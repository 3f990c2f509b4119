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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::{Endorsement, QuoteBytes};
    use logos_mia::pcr::Digest;
    use std::{collections::BTreeMap, os::unix::fs::PermissionsExt as _};

    /// A TPM double that only creates one fixed key, counting how often.
    struct Creates(u32);

    impl Tpm for Creates {
        fn endorsement(&mut self) -> Result<Endorsement, CollectError> {
            unimplemented!("not used")
        }
        fn create_attestation_key(&mut self, _: AkKind) -> Result<AttestationKey, CollectError> {
            self.0 += 1;
            Ok(AttestationKey {
                public: vec![1, 2],
                private: vec![3],
            })
        }
        fn read_pcrs(&mut self, _: &[u32]) -> Result<BTreeMap<u32, Digest>, CollectError> {
            unimplemented!("not used")
        }
        fn quote(
            &mut self,
            _: &AttestationKey,
            _: &[u8],
            _: &[u32],
        ) -> Result<QuoteBytes, CollectError> {
            unimplemented!("not used")
        }
        fn extend(&mut self, _: u32, _: &Digest) -> Result<(), CollectError> {
            unimplemented!("not used")
        }
        fn activate_credential(
            &mut self,
            _: &AttestationKey,
            _: &[u8],
            _: &[u8],
        ) -> Result<Vec<u8>, CollectError> {
            unimplemented!("not used")
        }
    }

    #[test]
    fn a_key_is_created_once_owner_only_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/ak.json");
        let mut tpm = Creates(0);
        let created = load_or_create(&path, &mut tpm, AkKind::EcdsaP256).unwrap();
        let loaded = load_or_create(&path, &mut tpm, AkKind::EcdsaP256).unwrap();
        assert_eq!((created, tpm.0), (loaded, 1));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        for damaged in [
            "{",
            "{\"public\":\"zz\",\"private\":\"00\"}",
            &"0".repeat(KEY_FILE_MAX_BYTES + 1),
        ] {
            std::fs::write(&path, damaged).unwrap();
            assert!(load_or_create(&path, &mut tpm, AkKind::EcdsaP256).is_err());
        }
        assert_eq!(tpm.0, 1, "a damaged file is never replaced by a new key");
    }
}
