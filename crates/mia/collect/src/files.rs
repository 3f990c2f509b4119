//! File integrity (the AIDE role): one hash over the state of a configured set of paths.
//!
//! [`FileSnapshot::Paths`] walks each configured path (directories recursively, symlinks not
//! followed) and hashes, for every entry in byte order of its path: the path, its kind, mode,
//! owner, group, and for a regular file its size and SHA-256, for a symlink its target. Each
//! field is length-prefixed, so no two different trees encode alike. [`FileSnapshot::Aide`]
//! uses AIDE's database instead, when the machine runs AIDE: its SHA-256 is the snapshot.
//!
//! A walk stops with an error past [`FILES_MAX`] entries, so a directory an attacker fills
//! cannot make the collector run without end.

use crate::CollectError;
use logos_mia::{integrity::Status, pcr::Digest};
use sha2::{Digest as _, Sha256};
use std::{
    io::Read,
    os::unix::{
        ffi::OsStrExt,
        fs::{MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

/// The most entries one snapshot walks.
pub const FILES_MAX: usize = 200_000;
/// The domain separator of a snapshot hash.
const DOMAIN: &[u8] = b"logos/mia/file-snapshot/v1\0";

/// Where the file snapshot comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSnapshot {
    /// No paths configured: the component is unavailable.
    None,
    /// A walk over these paths.
    Paths(Vec<PathBuf>),
    /// AIDE's database at this path.
    Aide(PathBuf),
}

impl FileSnapshot {
    /// The `files` component.
    pub fn collect(&self) -> Result<Status, CollectError> {
        match self {
            Self::None => Ok(Status::Unavailable),
            Self::Paths(paths) => snapshot(paths).map(Status::Measured),
            Self::Aide(database) => hash_file(database).map(Status::Measured),
        }
    }
}

/// The snapshot hash over `paths` (module docs).
pub fn snapshot(paths: &[PathBuf]) -> Result<Digest, CollectError> {
    let mut entries = Vec::new();
    for path in paths {
        walk(path, &mut entries)?;
    }
    entries.sort();
    entries.dedup();
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    for path in &entries {
        hash_entry(path, &mut hasher)?;
    }
    Ok(hasher.finalize().into())
}

fn walk(path: &Path, entries: &mut Vec<PathBuf>) -> Result<(), CollectError> {
    if entries.len() >= FILES_MAX {
        return Err(CollectError::TooLarge {
            what: "the file snapshot".into(),
            max: FILES_MAX,
        });
    }
    entries.push(path.to_owned());
    let metadata = std::fs::symlink_metadata(path)
        .map_err(|e| CollectError::io(path.display().to_string(), e))?;
    if metadata.is_dir() {
        let children =
            std::fs::read_dir(path).map_err(|e| CollectError::io(path.display().to_string(), e))?;
        for child in children {
            let child = child.map_err(|e| CollectError::io(path.display().to_string(), e))?;
            walk(&child.path(), entries)?;
        }
    }
    Ok(())
}

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn hash_entry(path: &Path, hasher: &mut Sha256) -> Result<(), CollectError> {
    let metadata = std::fs::symlink_metadata(path)
        .map_err(|e| CollectError::io(path.display().to_string(), e))?;
    field(hasher, path.as_os_str().as_bytes());
    let kind: &[u8] = if metadata.is_file() {
        b"file"
    } else if metadata.is_dir() {
        b"dir"
    } else if metadata.file_type().is_symlink() {
        b"symlink"
    } else {
        b"other"
    };
    field(hasher, kind);
    field(hasher, &metadata.mode().to_le_bytes());
    field(hasher, &metadata.uid().to_le_bytes());
    field(hasher, &metadata.gid().to_le_bytes());
    if metadata.is_file() {
        field(hasher, &metadata.len().to_le_bytes());
        field(hasher, &hash_regular_file(path, &metadata)?);
    } else if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(path)
            .map_err(|e| CollectError::io(path.display().to_string(), e))?;
        field(hasher, target.as_os_str().as_bytes());
    }
    Ok(())
}

/// SHA-256 of the regular file `path` that `lstat` described as `metadata`: opened without
/// following a symlink and without blocking (a FIFO swapped in does not hang the walk), and
/// refused unless it is still the same regular file; at most its size is read.
fn hash_regular_file(path: &Path, metadata: &std::fs::Metadata) -> Result<Digest, CollectError> {
    let error = |e| CollectError::io(path.display().to_string(), e);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(error)?;
    let opened = file.metadata().map_err(error)?;
    if !opened.is_file() || opened.dev() != metadata.dev() || opened.ino() != metadata.ino() {
        return Err(CollectError::Invalid(format!(
            "{} changed while the snapshot was taken",
            path.display()
        )));
    }
    hash_stream(file.take(opened.len()), path)
}

/// SHA-256 of a file's contents, streamed.
pub fn hash_file(path: &Path) -> Result<Digest, CollectError> {
    let file =
        std::fs::File::open(path).map_err(|e| CollectError::io(path.display().to_string(), e))?;
    hash_stream(file, path)
}

/// SHA-256 of everything `reader` (the file at `path`) gives.
fn hash_stream(mut reader: impl Read, path: &Path) -> Result<Digest, CollectError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 << 10];
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|e| CollectError::io(path.display().to_string(), e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/config"), b"a = 1").unwrap();
        std::fs::write(dir.path().join("binary"), b"\x7fELF").unwrap();
        std::os::unix::fs::symlink("binary", dir.path().join("link")).unwrap();
        dir
    }

    #[test]
    fn any_change_to_content_mode_or_links_changes_the_snapshot() {
        let dir = tree();
        let paths = vec![dir.path().to_owned()];
        let base = snapshot(&paths).unwrap();
        assert_eq!(snapshot(&paths).unwrap(), base, "deterministic");

        std::fs::write(dir.path().join("etc/config"), b"a = 2").unwrap();
        let content = snapshot(&paths).unwrap();
        assert_ne!(content, base);

        let binary = dir.path().join("binary");
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let mode = snapshot(&paths).unwrap();
        assert_ne!(mode, content);

        std::fs::remove_file(dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/bin/sh", dir.path().join("link")).unwrap();
        let link = snapshot(&paths).unwrap();
        assert_ne!(link, mode);

        std::fs::write(dir.path().join("etc/new"), b"").unwrap();
        assert_ne!(snapshot(&paths).unwrap(), link);
    }

    #[test]
    fn no_paths_is_unavailable_and_a_missing_path_an_error() {
        assert_eq!(FileSnapshot::None.collect().unwrap(), Status::Unavailable);
        let missing = FileSnapshot::Paths(vec!["/nonexistent/logos".into()]);
        assert!(matches!(missing.collect(), Err(CollectError::Io { .. })));
    }

    #[test]
    fn an_aide_database_is_hashed_as_is() {
        let dir = tree();
        let database = dir.path().join("etc/config");
        assert_eq!(
            FileSnapshot::Aide(database.clone()).collect().unwrap(),
            Status::Measured(logos_mia::pcr::sha256(b"a = 1"))
        );
    }
}
