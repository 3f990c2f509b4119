//! The kernel's measurement logs, read from securityfs.
//!
//! - `/sys/kernel/security/tpm0/binary_bios_measurements`: the firmware's event log (crypto-
//!   agile on a TPM 2.0 machine);
//! - `/sys/kernel/security/ima/binary_runtime_measurements` and `ascii_runtime_measurements`:
//!   the IMA list.
//!
//! A missing file means the kernel does not offer that log (no TPM, IMA off, securityfs not
//! mounted): [`read_optional`] says `None`, never an empty log that would look measured.

use crate::CollectError;
use std::{io::Read, path::Path};

/// Where Linux exposes the firmware event log.
pub const EVENT_LOG_PATH: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";
/// Where Linux exposes the binary IMA list.
pub const IMA_BINARY_PATH: &str = "/sys/kernel/security/ima/binary_runtime_measurements";

/// Reads at most `max_bytes` of `path`; `None` when the file does not exist.
pub fn read_optional(path: &Path, max_bytes: usize) -> Result<Option<Vec<u8>>, CollectError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(CollectError::io(path.display().to_string(), error)),
    };
    let mut bytes = Vec::new();
    // securityfs files report size 0, so read to the bound rather than trusting metadata.
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| CollectError::io(path.display().to_string(), e))?;
    if bytes.len() > max_bytes {
        return Err(CollectError::TooLarge {
            what: path.display().to_string(),
            max: max_bytes,
        });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_log_is_none_and_an_oversize_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_optional(&dir.path().join("absent"), 10)
            .unwrap()
            .is_none());
        let path = dir.path().join("log");
        std::fs::write(&path, [7u8; 11]).unwrap();
        assert!(matches!(
            read_optional(&path, 10),
            Err(CollectError::TooLarge { max: 10, .. })
        ));
        assert_eq!(read_optional(&path, 11).unwrap(), Some(vec![7; 11]));
    }
}
