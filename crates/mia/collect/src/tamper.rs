//! The physical tamper flag: a chassis-intrusion switch, read from a file or sysfs path.
//!
//! The source holds `0` (closed) or `1` (opened), like the kernel's hwmon `intrusion0_alarm`
//! attribute; any other content is an error, not a guess. No configured path, or a path that
//! does not exist, is `unavailable`.

use crate::CollectError;
use logos_mia::integrity::Tamper;
use std::path::PathBuf;

/// The largest tamper source read, bytes (it holds one digit and a newline).
const FLAG_MAX_BYTES: usize = 16;

/// Where the tamper flag comes from.
pub trait TamperSource {
    /// The flag now.
    fn read(&self) -> Result<Tamper, CollectError>;
}

/// A tamper flag read from a file or sysfs attribute (`None`: no source configured).
#[derive(Clone, Debug, Default)]
pub struct FileTamper {
    /// The path, e.g. `/sys/class/hwmon/hwmon0/intrusion0_alarm`.
    pub path: Option<PathBuf>,
}

impl TamperSource for FileTamper {
    fn read(&self) -> Result<Tamper, CollectError> {
        let Some(path) = &self.path else {
            return Ok(Tamper::Unavailable);
        };
        let Some(bytes) = crate::logs::read_optional(path, FLAG_MAX_BYTES)? else {
            return Ok(Tamper::Unavailable);
        };
        let text = String::from_utf8_lossy(&bytes);
        match text.trim() {
            "0" => Ok(Tamper::Clear),
            "1" => Ok(Tamper::Tripped),
            other => Err(CollectError::Invalid(format!(
                "{}: tamper flag {other:?}, expected 0 or 1",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_reads_clear_tripped_unavailable_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("intrusion0_alarm");
        let source = FileTamper {
            path: Some(path.clone()),
        };
        assert_eq!(source.read().unwrap(), Tamper::Unavailable);
        assert_eq!(FileTamper::default().read().unwrap(), Tamper::Unavailable);
        std::fs::write(&path, "0\n").unwrap();
        assert_eq!(source.read().unwrap(), Tamper::Clear);
        std::fs::write(&path, "1\n").unwrap();
        assert_eq!(source.read().unwrap(), Tamper::Tripped);
        std::fs::write(&path, "maybe").unwrap();
        assert!(matches!(source.read(), Err(CollectError::Invalid(_))));
    }
}
