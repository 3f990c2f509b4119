//! The cache of unpacked root filesystems: one tree per image (by its pinned digest), so that
//! an environment whose image was unpacked before gets its root filesystem by a copy
//! (`cp -a`, about 50 ms for the 65 MB Logos node image) instead of a decompression
//! (`umoci raw unpack`, about 850 ms).
//!
//! - **Filled only from an environment's own unpack.** A tree enters the cache as a copy of an
//!   environment's freshly unpacked `rootfs/`, before its workload first runs. It was unpacked
//!   onto that environment's fixed-size disk, so a decompression bomb never reaches the host's
//!   disk. A tree over [`TREE_MAX_BYTES`] is not kept.
//! - **Ids.** The tree keeps that environment's host ids (an unprivileged range, recorded with
//!   the tree in `base`). A copy for an environment with another range has every uid and gid
//!   moved by the difference ([`shift_ids`]). An id outside the recorded range refuses the copy.
//! - **Bounds.** At most [`TREES_MAX`] trees (least recently used go first), and only trees of
//!   images the image cache still holds ([`RootfsCache::retain`]).
//! - **Access.** The directory is root's alone (mode 0700). A copy a crash interrupted
//!   (`*.partial`) is removed at start.
//!
//! Layout: `<state>/rootfs/<digest hex>/{base, rootfs/}`.
//!
//! Set-user/group-id bits and file capabilities (`security.capability`) do not survive a move
//! of ids: the kernel clears them on a change of owner. Workloads run with `no_new_privs`,
//! under which neither takes effect.

use super::command::system;
use crate::driver::DriverError;
use std::{
    collections::BTreeSet,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Most trees kept.
pub const TREES_MAX: usize = 8;
/// Largest tree kept (disk blocks used), bytes.
pub const TREE_MAX_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Suffix of a tree being written.
const PARTIAL_SUFFIX: &str = ".partial";

/// The cache (see the module docs).
#[derive(Clone, Debug)]
pub struct RootfsCache {
    root: PathBuf,
    /// Ids per environment (the size of every range).
    id_count: u32,
}

impl RootfsCache {
    /// The cache under `state_dir/rootfs`, for id ranges of `id_count` ids.
    pub fn new(state_dir: &Path, id_count: u32) -> Self {
        Self {
            root: state_dir.join("rootfs"),
            id_count,
        }
    }

    /// Creates the directory (mode 0700) and removes what an interrupted copy left.
    pub async fn prepare(&self) -> Result<(), DriverError> {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(system)?;
        tokio::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
            .await
            .map_err(system)?;
        for name in self.entries().await? {
            if name.ends_with(PARTIAL_SUFFIX) {
                remove(&self.root.join(name)).await;
            }
        }
        Ok(())
    }

    /// Copies the cached tree of image `hex` to `target` (which must not exist) with its ids
    /// moved to the range from `base`; `false` if no tree is cached. A failed copy removes
    /// what it wrote of `target`.
    pub async fn copy(&self, hex: &str, target: &Path, base: u32) -> Result<bool, DriverError> {
        let dir = self.root.join(hex);
        let Some(from) = read_base(&dir).await else {
            return Ok(false);
        };
        // Rewritten: its modification time orders the trees for eviction.
        tokio::fs::write(dir.join("base"), from.to_string())
            .await
            .map_err(system)?;
        let copied = async {
            cp_archive(&dir.join("rootfs"), target).await?;
            if from != base {
                let (target, count) = (target.to_path_buf(), self.id_count);
                tokio::task::spawn_blocking(move || shift_ids(&target, from, base, count))
                    .await
                    .map_err(system)??;
            }
            Ok(())
        }
        .await;
        if let Err(error) = copied {
            remove(target).await;
            return Err(error);
        }
        Ok(true)
    }

    /// Keeps a copy of `rootfs` (image `hex` just unpacked with ids from `base`) unless it is
    /// over [`TREE_MAX_BYTES`] or already kept; then evicts beyond [`TREES_MAX`].
    pub async fn keep(&self, hex: &str, rootfs: &Path, base: u32) -> Result<(), DriverError> {
        let dir = self.root.join(hex);
        if read_base(&dir).await.is_some() {
            return Ok(());
        }
        let measured = rootfs.to_path_buf();
        let bytes = tokio::task::spawn_blocking(move || tree_bytes(&measured, TREE_MAX_BYTES))
            .await
            .map_err(system)??;
        if bytes > TREE_MAX_BYTES {
            tracing::info!(
                image = hex,
                "unpacked image over the rootfs cache's bound: not kept"
            );
            return Ok(());
        }
        let partial = self.root.join(format!("{hex}{PARTIAL_SUFFIX}"));
        remove(&partial).await;
        let written = async {
            tokio::fs::create_dir(&partial).await.map_err(system)?;
            cp_archive(rootfs, &partial.join("rootfs")).await?;
            tokio::fs::write(partial.join("base"), base.to_string())
                .await
                .map_err(system)?;
            tokio::fs::rename(&partial, &dir).await.map_err(system)
        }
        .await;
        if let Err(error) = written {
            remove(&partial).await;
            return Err(error);
        }
        self.evict().await
    }

    /// Removes the trees of images not in `images` (digest hexes the image cache holds).
    pub async fn retain(&self, images: &[String]) -> Result<(), DriverError> {
        for name in self.entries().await? {
            if !name.ends_with(PARTIAL_SUFFIX) && !images.contains(&name) {
                remove(&self.root.join(name)).await;
            }
        }
        Ok(())
    }

    /// The images with a tree kept (digest hexes), in no particular order.
    pub async fn kept(&self) -> Result<Vec<String>, DriverError> {
        let mut kept = Vec::new();
        for name in self.entries().await? {
            if read_base(&self.root.join(&name)).await.is_some() {
                kept.push(name);
            }
        }
        Ok(kept)
    }

    /// Removes the least recently used trees beyond [`TREES_MAX`].
    async fn evict(&self) -> Result<(), DriverError> {
        let mut trees = Vec::new();
        for name in self.entries().await? {
            let base = self.root.join(&name).join("base");
            if let Ok(used) = tokio::fs::metadata(&base)
                .await
                .and_then(|meta| meta.modified())
            {
                trees.push((used, name));
            }
        }
        trees.sort();
        let excess = trees.len().saturating_sub(TREES_MAX);
        for (_, name) in trees.into_iter().take(excess) {
            remove(&self.root.join(name)).await;
        }
        Ok(())
    }

    /// The names in the cache's directory (none if it does not exist).
    async fn entries(&self) -> Result<Vec<String>, DriverError> {
        let mut names = Vec::new();
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(error) => return Err(system(error)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(system)? {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }
}

/// The id base recorded with a complete tree in `dir`.
async fn read_base(dir: &Path) -> Option<u32> {
    let text = tokio::fs::read_to_string(dir.join("base")).await.ok()?;
    let base = text.trim().parse().ok()?;
    dir.join("rootfs").is_dir().then_some(base)
}

/// `cp -a source target`: contents, modes, owners, times, hard links and extended attributes.
async fn cp_archive(source: &Path, target: &Path) -> Result<(), DriverError> {
    let output = tokio::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(source)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|error| system(format!("cp: {error}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or("").trim().to_string();
    Err(DriverError::System(last))
}

/// Removes `path` (a directory tree), ignoring that it is gone.
async fn remove(path: &Path) {
    if let Err(error) = tokio::fs::remove_dir_all(path).await {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), %error, "cannot remove");
        }
    }
}

/// Moves the owner and group of every entry under `root` (itself included, symbolic links
/// not followed, each inode once) from the range `from..from + count` to `to..to + count`.
/// An id outside the range is refused.
pub fn shift_ids(root: &Path, from: u32, to: u32, count: u32) -> Result<(), DriverError> {
    let shift = |id: u32| -> Result<u32, DriverError> {
        let offset = id
            .checked_sub(from)
            .filter(|offset| *offset < count)
            .ok_or_else(|| system(format!("id {id} outside the cached tree's range")))?;
        to.checked_add(offset)
            .ok_or_else(|| system(format!("id range from {to} overflows")))
    };
    let mut seen = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(system)?;
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        std::os::unix::fs::lchown(&path, Some(shift(meta.uid())?), Some(shift(meta.gid())?))
            .map_err(|error| system(format!("{}: {error}", path.display())))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(system)? {
                pending.push(entry.map_err(system)?.path());
            }
        }
    }
    Ok(())
}

/// Disk bytes the tree under `root` uses (blocks × 512, each inode once), counting stopped
/// past `max_bytes`.
pub fn tree_bytes(root: &Path, max_bytes: u64) -> Result<u64, DriverError> {
    let mut total: u64 = 0;
    let mut seen = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(system)?;
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total = total.saturating_add(meta.blocks().saturating_mul(512));
        if total > max_bytes {
            return Ok(total);
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(system)? {
                pending.push(entry.map_err(system)?.path());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    //! Run as root (the ids are changed for real), as the driver's tests are.
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    const FROM: u32 = 100 * 65_536;
    const TO: u32 = 300 * 65_536;
    const COUNT: u32 = 65_536;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("logos-rootfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A tree owned by the range from [`FROM`]: `bin/node` (hard-linked as `bin/alias`,
    /// uid offset 0), `bin/sh` → `node`, `srv/data` (uid and gid offset 1000).
    fn tree(root: &Path) -> PathBuf {
        let rootfs = root.join("unpacked");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("srv")).unwrap();
        std::fs::write(rootfs.join("bin/node"), b"binary").unwrap();
        std::fs::hard_link(rootfs.join("bin/node"), rootfs.join("bin/alias")).unwrap();
        symlink("node", rootfs.join("bin/sh")).unwrap();
        std::fs::write(rootfs.join("srv/data"), b"data").unwrap();
        for path in ["", "bin", "srv", "bin/node", "bin/sh"] {
            std::os::unix::fs::lchown(rootfs.join(path), Some(FROM), Some(FROM)).unwrap();
        }
        let data = rootfs.join("srv/data");
        std::os::unix::fs::lchown(&data, Some(FROM + 1000), Some(FROM + 1000)).unwrap();
        rootfs
    }

    fn owner(path: &Path) -> (u32, u32) {
        let meta = std::fs::symlink_metadata(path).unwrap();
        (meta.uid(), meta.gid())
    }

    #[tokio::test]
    async fn a_kept_tree_is_copied_with_the_ids_moved_to_the_new_range() {
        let dir = scratch("copy");
        let cache = RootfsCache::new(&dir.join("state"), COUNT);
        cache.prepare().await.unwrap();
        let target = dir.join("env-rootfs");
        assert!(
            !cache.copy("aa", &target, TO).await.unwrap(),
            "nothing cached yet"
        );
        assert!(!target.exists());
        cache.keep("aa", &tree(&dir), FROM).await.unwrap();
        assert_eq!(cache.kept().await.unwrap(), ["aa"]);

        assert!(cache.copy("aa", &target, TO).await.unwrap());
        assert_eq!(std::fs::read(target.join("bin/node")).unwrap(), b"binary");
        assert_eq!(
            std::fs::read_link(target.join("bin/sh")).unwrap(),
            Path::new("node")
        );
        for path in ["", "bin", "bin/node", "bin/sh"] {
            assert_eq!(owner(&target.join(path)), (TO, TO), "{path}");
        }
        // Each inode moved once: the hard link is not moved twice.
        let (node, alias) = (target.join("bin/node"), target.join("bin/alias"));
        assert_eq!(
            node.metadata().unwrap().ino(),
            alias.metadata().unwrap().ino()
        );
        assert_eq!(owner(&alias), (TO, TO));
        assert_eq!(owner(&target.join("srv/data")), (TO + 1000, TO + 1000));
        // The cached tree is unchanged; a copy for its own range moves nothing.
        let again = dir.join("same-range");
        assert!(cache.copy("aa", &again, FROM).await.unwrap());
        assert_eq!(owner(&again.join("srv/data")), (FROM + 1000, FROM + 1000));
        let cached = dir.join("state/rootfs/aa/rootfs/srv/data");
        assert_eq!(owner(&cached), (FROM + 1000, FROM + 1000));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_id_outside_the_cached_range_refuses_the_copy_and_leaves_nothing() {
        let dir = scratch("outside");
        let cache = RootfsCache::new(&dir.join("state"), COUNT);
        cache.prepare().await.unwrap();
        let rootfs = tree(&dir);
        // A host id of no environment's range (root's): never given to the copy's range.
        std::os::unix::fs::lchown(rootfs.join("srv/data"), Some(0), Some(0)).unwrap();
        cache.keep("bb", &rootfs, FROM).await.unwrap();
        let target = dir.join("env-rootfs");
        let error = cache.copy("bb", &target, TO).await.unwrap_err();
        assert!(error.to_string().contains("id 0 outside"), "{error}");
        assert!(!target.exists(), "a refused copy is removed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_cache_keeps_at_most_its_bound_of_trees_and_only_of_cached_images() {
        let dir = scratch("bounds");
        let state = dir.join("state");
        let cache = RootfsCache::new(&state, COUNT);
        cache.prepare().await.unwrap();
        let rootfs = tree(&dir);
        for index in 0..=TREES_MAX {
            cache
                .keep(&format!("{index:02}"), &rootfs, FROM)
                .await
                .unwrap();
        }
        let mut kept = cache.kept().await.unwrap();
        kept.sort();
        assert_eq!(kept.len(), TREES_MAX);
        assert!(
            !kept.contains(&"00".to_string()),
            "the least recently used went"
        );
        // Only trees of images the image cache still holds stay.
        cache.retain(&["03".to_string()]).await.unwrap();
        assert_eq!(cache.kept().await.unwrap(), ["03"]);
        // A copy a crash interrupted is removed at start; the directory is root's alone.
        std::fs::create_dir_all(state.join("rootfs/04.partial/rootfs")).unwrap();
        cache.prepare().await.unwrap();
        assert!(!state.join("rootfs/04.partial").exists());
        let mode = std::fs::metadata(state.join("rootfs")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_tree_is_measured_by_its_blocks_and_the_count_stops_past_the_bound() {
        let dir = scratch("measure");
        let rootfs = tree(&dir);
        std::fs::write(rootfs.join("srv/big"), vec![7u8; 1 << 20]).unwrap();
        let bytes = tree_bytes(&rootfs, u64::MAX).unwrap();
        assert!(bytes >= 1 << 20, "{bytes}");
        let stopped = tree_bytes(&rootfs, 4096).unwrap();
        assert!(stopped > 4096 && stopped <= bytes, "{stopped}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
