//! The cache of unpacked root filesystems: one tree per image (by its pinned digest), so that
//! an environment whose image was unpacked before gets its root filesystem by a copy
//! (`cp -a`, about 80 ms for the 65 MB Logos node image) instead of a decompression
//! (`umoci raw unpack`, about 850 ms).
//!
//! - **Filled only from an environment's own unpack.** A tree enters the cache as a copy of an
//!   environment's freshly unpacked `rootfs/`, before its workload first runs, so no workload
//!   ever wrote to it. It was unpacked onto that environment's fixed-size disk, so a
//!   decompression bomb fills only that disk; a tree over [`TREE_MAX_BYTES`], with more than
//!   [`TREE_MAX_ENTRIES`] entries or deeper than [`TREE_DEPTH_MAX`] is not kept, nor one that
//!   would leave less than [`FREE_RESERVE_BYTES`] free on the state directory's filesystem.
//!   The cache takes at most [`TREES_MAX`] × [`TREE_MAX_BYTES`] (2 GiB) of the host's disk.
//! - **Ids.** The tree keeps that environment's host ids (an unprivileged range, recorded with
//!   the tree in `base`). A copy for an environment with another range has every uid and gid
//!   moved by the difference ([`shift_ids`]); an id outside the recorded range refuses that
//!   copy, and the tree is removed (the next unpack of the image replaces it). POSIX ACL
//!   entries are not moved (images rarely carry them).
//! - **Bounds.** At most [`TREES_MAX`] trees (least recently used go first), and only trees of
//!   images the image cache still holds ([`RootfsCache::retain`]).
//! - **Crashes.** A tree is written as `<hex>.partial` and renamed when complete; one is
//!   removed by renaming it back to `.partial` first; `.partial` entries are removed at start.
//!   Trees are not synced to the disk: `base` records the boot they were written in
//!   (`/proc/sys/kernel/random/boot_id`), and a tree of an earlier boot (a power loss may have
//!   cut it short) is never copied and is removed at start.
//! - **Access.** The directory is root's alone (mode 0700).
//!
//! Layout: `<state>/rootfs/<digest hex>/{base, rootfs/}`; `base` holds the id base and the
//! boot id, one per line.
//!
//! Set-user/group-id bits and file capabilities (`security.capability`) do not survive a move
//! of ids: the kernel clears them on a change of owner. Workloads run with `no_new_privs`,
//! under which neither takes effect.

use super::command::{run, system};
use crate::driver::DriverError;
use std::{
    collections::BTreeSet,
    fs::Metadata,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Most trees kept.
pub const TREES_MAX: usize = 4;
/// Largest tree kept (disk blocks used), bytes.
pub const TREE_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// Most entries (files, directories, links) of a tree kept.
pub const TREE_MAX_ENTRIES: u64 = 65_536;
/// Deepest directory nesting of a tree kept (one open directory per level while walking).
pub const TREE_DEPTH_MAX: usize = 64;
/// Free space a kept tree must leave on the state directory's filesystem, bytes (the
/// environments' sparse disks grow there).
pub const FREE_RESERVE_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Suffix of a tree being written or removed.
const PARTIAL_SUFFIX: &str = ".partial";
/// Where the kernel tells this boot's id.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The cache (see the module docs).
#[derive(Clone, Debug)]
pub struct RootfsCache {
    root: PathBuf,
    /// Ids per environment (the size of every range).
    id_count: u32,
    /// Free space a kept tree must leave, bytes ([`FREE_RESERVE_BYTES`] unless set).
    free_reserve_bytes: u64,
}

impl RootfsCache {
    /// The cache under `state_dir/rootfs`, for id ranges of `id_count` ids.
    pub fn new(state_dir: &Path, id_count: u32) -> Self {
        Self {
            root: state_dir.join("rootfs"),
            id_count,
            free_reserve_bytes: FREE_RESERVE_BYTES,
        }
    }

    /// The same cache with another free-space reserve, bytes.
    pub fn with_free_reserve_bytes(mut self, bytes: u64) -> Self {
        self.free_reserve_bytes = bytes;
        self
    }

    /// Creates the directory (mode 0700) and removes what an interrupted write or removal
    /// left, and every tree it would not copy (an earlier boot's, a damaged one).
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
                remove_tree(&self.root.join(name)).await;
            } else if read_base(&self.root.join(&name)).await.is_none() {
                // An earlier boot's tree, or a damaged one.
                self.remove(&name).await;
            }
        }
        Ok(())
    }

    /// Copies the cached tree of image `hex` to `target` (which must not exist) with its ids
    /// moved to the range from `base`; `false` if no usable tree is cached. A failed copy
    /// removes what it wrote of `target`; a tree whose ids refuse the move is removed too.
    pub async fn copy(&self, hex: &str, target: &Path, base: u32) -> Result<bool, DriverError> {
        let dir = self.root.join(hex);
        let Some(from) = read_base(&dir).await else {
            return Ok(false);
        };
        // Its modification time orders the trees for eviction.
        touch(&dir.join("base")).await;
        if let Err(error) = cp_archive(&dir.join("rootfs"), target).await {
            remove_tree(target).await;
            return Err(error);
        }
        let (copy, count) = (target.to_path_buf(), self.id_count);
        let shifted = tokio::task::spawn_blocking(move || shift_ids(&copy, from, base, count))
            .await
            .map_err(system)
            .and_then(|shifted| shifted);
        if let Err(error) = shifted {
            // The tree itself is unusable: the next unpack of the image replaces it.
            remove_tree(target).await;
            self.remove(hex).await;
            return Err(error);
        }
        Ok(true)
    }

    /// Keeps a copy of `rootfs` (image `hex` just unpacked with ids from `base`) unless it is
    /// over a bound (see the module docs) or already kept; the least recently used trees make
    /// room for it beyond [`TREES_MAX`] - 1.
    pub async fn keep(&self, hex: &str, rootfs: &Path, base: u32) -> Result<(), DriverError> {
        let dir = self.root.join(hex);
        if read_base(&dir).await.is_some() {
            return Ok(());
        }
        // An unusable entry (an earlier boot's, a damaged one) makes room for this one.
        if tokio::fs::symlink_metadata(&dir).await.is_ok() {
            self.remove(hex).await;
        }
        let measured = rootfs.to_path_buf();
        let bytes = tokio::task::spawn_blocking(move || measure(&measured))
            .await
            .map_err(system)??;
        let free = super::disk::free_bytes(&self.root).await;
        let reserve = self.free_reserve_bytes;
        let Some(bytes) = bytes.filter(|bytes| bytes.saturating_add(reserve) <= free) else {
            tracing::info!(
                image = hex,
                "unpacked image not kept in the rootfs cache (bounds)"
            );
            return Ok(());
        };
        // Room first: the cache never holds more than its bound of trees.
        self.evict(TREES_MAX.saturating_sub(1)).await?;
        let partial = self.root.join(format!("{hex}{PARTIAL_SUFFIX}"));
        remove_tree(&partial).await;
        let written = async {
            tokio::fs::create_dir(&partial).await.map_err(system)?;
            cp_archive(rootfs, &partial.join("rootfs")).await?;
            let stamp = format!("{base}\n{}\n", boot_id().await?);
            tokio::fs::write(partial.join("base"), stamp)
                .await
                .map_err(system)?;
            tokio::fs::rename(&partial, &dir).await.map_err(system)
        }
        .await;
        if let Err(error) = written {
            remove_tree(&partial).await;
            return Err(error);
        }
        tracing::debug!(
            image = hex,
            bytes,
            "unpacked image kept in the rootfs cache"
        );
        Ok(())
    }

    /// Removes the trees of images not in `images` (digest hexes the image cache holds).
    pub async fn retain(&self, images: &[String]) -> Result<(), DriverError> {
        for name in self.entries().await? {
            if !name.ends_with(PARTIAL_SUFFIX) && !images.contains(&name) {
                self.remove(&name).await;
            }
        }
        Ok(())
    }

    /// The images with a usable tree kept (digest hexes), in no particular order.
    pub async fn kept(&self) -> Result<Vec<String>, DriverError> {
        let mut kept = Vec::new();
        for name in self.entries().await? {
            let usable = read_base(&self.root.join(&name)).await.is_some();
            if usable && !name.ends_with(PARTIAL_SUFFIX) {
                kept.push(name);
            }
        }
        Ok(kept)
    }

    /// Removes the least recently used trees beyond `keep`.
    async fn evict(&self, keep: usize) -> Result<(), DriverError> {
        let mut trees = Vec::new();
        for name in self.entries().await? {
            if name.ends_with(PARTIAL_SUFFIX) {
                continue;
            }
            let base = self.root.join(&name).join("base");
            if let Ok(used) = tokio::fs::metadata(&base)
                .await
                .and_then(|meta| meta.modified())
            {
                trees.push((used, name));
            }
        }
        trees.sort();
        let excess = trees.len().saturating_sub(keep);
        for (_, name) in trees.into_iter().take(excess) {
            self.remove(&name).await;
        }
        Ok(())
    }

    /// Removes the tree named `name`: renamed to `.partial` first, so that a removal a crash
    /// cuts short is never taken for a tree.
    async fn remove(&self, name: &str) {
        let partial = self.root.join(format!("{name}{PARTIAL_SUFFIX}"));
        remove_tree(&partial).await;
        match tokio::fs::rename(self.root.join(name), &partial).await {
            Ok(()) => remove_tree(&partial).await,
            Err(error) => tracing::warn!(name, %error, "cannot remove a cached rootfs"),
        }
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

/// The id base recorded with a complete tree of this boot in `dir`.
async fn read_base(dir: &Path) -> Option<u32> {
    let text = tokio::fs::read_to_string(dir.join("base")).await.ok()?;
    let mut lines = text.lines();
    let base = lines.next()?.trim().parse().ok()?;
    let boot = lines.next()?.trim();
    let current = boot_id().await.ok()?;
    (boot == current && dir.join("rootfs").is_dir()).then_some(base)
}

/// This boot's id.
async fn boot_id() -> Result<String, DriverError> {
    let text = tokio::fs::read_to_string(BOOT_ID_PATH)
        .await
        .map_err(|error| system(format!("{BOOT_ID_PATH}: {error}")))?;
    Ok(text.trim().to_string())
}

/// Sets `path`'s modification time to now (best effort: only eviction order depends on it).
async fn touch(path: &Path) {
    let path = path.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || {
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(std::time::SystemTime::now()))
    })
    .await;
}

/// `cp -a source target`: contents, modes, owners, times, hard links and extended attributes.
async fn cp_archive(source: &Path, target: &Path) -> Result<(), DriverError> {
    let (source, target) = (source.display().to_string(), target.display().to_string());
    run("cp", &["-a", "--", &source, &target]).await
}

/// Removes `path` (a directory tree), ignoring that it is gone.
async fn remove_tree(path: &Path) {
    if let Err(error) = tokio::fs::remove_dir_all(path).await {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), %error, "cannot remove");
        }
    }
}

/// Visits `root` and every entry under it, depth first, symbolic links not followed, with at
/// most one open directory per level; stops (`Ok(false)`) when `visit` says so or the tree is
/// deeper than [`TREE_DEPTH_MAX`].
fn walk(
    root: &Path,
    mut visit: impl FnMut(&Path, &Metadata) -> Result<bool, DriverError>,
) -> Result<bool, DriverError> {
    let meta = std::fs::symlink_metadata(root).map_err(system)?;
    if !visit(root, &meta)? {
        return Ok(false);
    }
    if !meta.is_dir() {
        return Ok(true);
    }
    let mut open = vec![std::fs::read_dir(root).map_err(system)?];
    while let Some(entries) = open.last_mut() {
        let Some(entry) = entries.next() else {
            open.pop();
            continue;
        };
        let path = entry.map_err(system)?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(system)?;
        if !visit(&path, &meta)? {
            return Ok(false);
        }
        if meta.is_dir() {
            // `open` holds this directory's ancestors: it is that deep.
            if open.len() > TREE_DEPTH_MAX {
                return Ok(false);
            }
            open.push(std::fs::read_dir(&path).map_err(system)?);
        }
    }
    Ok(true)
}

/// Moves the owner and group of every entry under `root` (itself included, each inode once)
/// from the range `from..from + count` to `to..to + count`; refuses an id outside the first
/// range, and a tree over the walk's bounds.
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
    let mut entries: u64 = 0;
    let complete = walk(root, |path, meta| {
        entries += 1;
        if entries > TREE_MAX_ENTRIES {
            return Ok(false);
        }
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            return Ok(true);
        }
        let (uid, gid) = (shift(meta.uid())?, shift(meta.gid())?);
        if from != to {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .map_err(|error| system(format!("{}: {error}", path.display())))?;
        }
        Ok(true)
    })?;
    if !complete {
        return Err(system("the cached tree is over the walk's bounds"));
    }
    Ok(())
}

/// Disk bytes the tree under `root` uses (blocks × 512, each inode once), or `None` if it is
/// over [`TREE_MAX_BYTES`], [`TREE_MAX_ENTRIES`] or [`TREE_DEPTH_MAX`] (counting stops there).
pub fn measure(root: &Path) -> Result<Option<u64>, DriverError> {
    let (mut bytes, mut entries) = (0u64, 0u64);
    let mut seen = BTreeSet::new();
    let complete = walk(root, |_, meta| {
        entries += 1;
        if seen.insert((meta.dev(), meta.ino())) {
            bytes = bytes.saturating_add(meta.blocks().saturating_mul(512));
        }
        Ok(entries <= TREE_MAX_ENTRIES && bytes <= TREE_MAX_BYTES)
    })?;
    Ok(complete.then_some(bytes))
}

#[cfg(test)]
mod tests {
    //! Run as root: the ids are changed for real.
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

    async fn prepared(dir: &Path) -> RootfsCache {
        // Kept whatever the free space of the test machine's temporary directory.
        let cache = RootfsCache::new(&dir.join("state"), COUNT).with_free_reserve_bytes(0);
        cache.prepare().await.unwrap();
        cache
    }

    #[tokio::test]
    async fn a_kept_tree_is_copied_with_the_ids_moved_to_the_new_range() {
        let dir = scratch("copy");
        let cache = prepared(&dir).await;
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
    async fn an_id_outside_the_cached_range_refuses_every_copy_and_the_tree_goes() {
        let dir = scratch("outside");
        let cache = prepared(&dir).await;
        let rootfs = tree(&dir);
        // A host id of no environment's range (root's): never given to a copy.
        std::os::unix::fs::lchown(rootfs.join("srv/data"), Some(0), Some(0)).unwrap();
        for base in [TO, FROM] {
            cache.keep("bb", &rootfs, FROM).await.unwrap();
            let target = dir.join("env-rootfs");
            let error = cache.copy("bb", &target, base).await.unwrap_err();
            assert!(error.to_string().contains("id 0 outside"), "{error}");
            assert!(!target.exists(), "a refused copy is removed");
            // So is the tree: the next unpack of the image keeps a fresh one.
            assert!(cache.kept().await.unwrap().is_empty());
            assert!(!cache.copy("bb", &target, base).await.unwrap());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_tree_of_an_earlier_boot_or_a_damaged_one_is_never_copied_and_is_replaced() {
        let dir = scratch("boot");
        let cache = prepared(&dir).await;
        let rootfs = tree(&dir);
        cache.keep("cc", &rootfs, FROM).await.unwrap();
        let base = dir.join("state/rootfs/cc/base");
        // Written before a power loss: its files may be cut short.
        std::fs::write(
            &base,
            format!("{FROM}\n00000000-0000-0000-0000-000000000000\n"),
        )
        .unwrap();
        let target = dir.join("env-rootfs");
        assert!(!cache.copy("cc", &target, TO).await.unwrap());
        assert!(cache.kept().await.unwrap().is_empty());
        // The next unpack of the image replaces it; an empty stamp is no tree either.
        cache.keep("cc", &rootfs, FROM).await.unwrap();
        assert_eq!(cache.kept().await.unwrap(), ["cc"]);
        std::fs::write(&base, "").unwrap();
        assert!(!cache.copy("cc", &target, TO).await.unwrap());
        cache.keep("cc", &rootfs, FROM).await.unwrap();
        assert!(cache.copy("cc", &target, TO).await.unwrap());
        // A restarted agent removes what it would not copy.
        std::fs::write(&base, "").unwrap();
        cache.prepare().await.unwrap();
        assert!(!dir.join("state/rootfs/cc").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_cache_keeps_at_most_its_bound_of_trees_and_only_of_cached_images() {
        let dir = scratch("bounds");
        let state = dir.join("state");
        let cache = prepared(&dir).await;
        let rootfs = tree(&dir);
        for index in 0..TREES_MAX {
            cache
                .keep(&format!("{index:02}"), &rootfs, FROM)
                .await
                .unwrap();
        }
        // A copy makes a tree the most recently used: the oldest unused one goes.
        let target = dir.join("env-rootfs");
        assert!(cache.copy("00", &target, TO).await.unwrap());
        cache.keep("99", &rootfs, FROM).await.unwrap();
        let mut kept = cache.kept().await.unwrap();
        kept.sort();
        assert_eq!(kept.len(), TREES_MAX);
        assert!(kept.contains(&"00".to_string()) && !kept.contains(&"01".to_string()));
        // Only trees of images the image cache still holds stay.
        cache.retain(&["03".to_string()]).await.unwrap();
        assert_eq!(cache.kept().await.unwrap(), ["03"]);
        // What a crash left half-written or half-removed goes at start; the directory is
        // root's alone.
        std::fs::create_dir_all(state.join("rootfs/04.partial/rootfs")).unwrap();
        cache.prepare().await.unwrap();
        assert!(!state.join("rootfs/04.partial").exists());
        let mode = std::fs::metadata(state.join("rootfs")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_tree_too_deep_or_with_too_many_entries_is_not_kept() {
        let dir = scratch("measure");
        let cache = prepared(&dir).await;
        let rootfs = tree(&dir);
        std::fs::write(rootfs.join("srv/big"), vec![7u8; 1 << 20]).unwrap();
        let bytes = measure(&rootfs).unwrap().unwrap();
        assert!(bytes >= 1 << 20, "{bytes}");
        let deep = dir.join("deep");
        let mut path = deep.clone();
        for _ in 0..TREE_DEPTH_MAX {
            path.push("d");
        }
        std::fs::create_dir_all(&path).unwrap();
        assert!(
            measure(&deep).unwrap().is_some(),
            "{TREE_DEPTH_MAX} levels are kept"
        );
        std::fs::create_dir(path.join("d")).unwrap();
        assert_eq!(measure(&deep).unwrap(), None, "one more is not");
        cache.keep("dd", &deep, 0).await.unwrap();
        let wide = dir.join("wide");
        std::fs::create_dir_all(&wide).unwrap();
        for index in 0..TREE_MAX_ENTRIES {
            std::fs::File::create(wide.join(index.to_string())).unwrap();
        }
        assert_eq!(
            measure(&wide).unwrap(),
            None,
            "the directory itself is one more"
        );
        cache.keep("ee", &wide, 0).await.unwrap();
        assert!(cache.kept().await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
