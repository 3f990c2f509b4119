//! An environment's disk: a fixed-size ext4 filesystem in a sparse file, loop-mounted
//! `nosuid,nodev` at `<env>/disk`. It holds the unpacked image (`rootfs/`, replaced at every
//! generation) and the persistent volume (`volume/`, kept across generations, wiped with the
//! environment). Its size is the product's `disk_gib`, so neither a large image nor a workload
//! writing without end can take more of the host's disk (writes past it fail with `ENOSPC`);
//! an unpacked image that fits may also be kept in the bounded rootfs cache
//! ([`super::rootfs`]).
//!
//! Uses Debian's `e2fsprogs` (`mkfs.ext4`) and util-linux (`mount -o loop`, `umount`, `df`).

use super::command::{output, run};
use crate::driver::DriverError;
use std::path::Path;

/// Bytes per GiB.
const GIB_BYTES: u64 = 1024 * 1024 * 1024;

/// Disk space of a mounted disk, bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskUsage {
    /// Bytes in use.
    pub used_bytes: u64,
    /// The filesystem's size.
    pub size_bytes: u64,
}

/// Creates `image` of `size_gib` GiB (readable by root only) holding an empty ext4 filesystem
/// whose root directory belongs to host `owner` (uid, gid). Fails if `image` exists.
pub async fn create(image: &Path, size_gib: u64, owner: (u32, u32)) -> Result<(), DriverError> {
    use std::os::unix::fs::OpenOptionsExt;
    let size = size_gib.max(1).saturating_mul(GIB_BYTES);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(image)
        .map_err(|error| DriverError::System(format!("{}: {error}", image.display())))?;
    file.set_len(size)
        .map_err(|error| DriverError::System(format!("{}: {error}", image.display())))?;
    let root_owner = format!("root_owner={}:{}", owner.0, owner.1);
    let options = format!("lazy_itable_init=1,lazy_journal_init=1,{root_owner}");
    let image = image.display().to_string();
    run(
        "mkfs.ext4",
        &["-q", "-F", "-m", "0", "-E", &options, &image],
    )
    .await
}

/// Mounts `image` at `target` (created if missing) unless something is mounted there
/// already; its root directory is open to its owner only (the environment's user namespace's
/// root, which reaches its root filesystem and volume through it).
pub async fn mount(image: &Path, target: &Path) -> Result<(), DriverError> {
    use std::os::unix::fs::PermissionsExt;
    if !is_mounted(target).await {
        tokio::fs::create_dir_all(target)
            .await
            .map_err(|error| DriverError::System(format!("{}: {error}", target.display())))?;
        let (image, point) = (image.display().to_string(), target.display().to_string());
        run(
            "mount",
            &["-o", "loop,nosuid,nodev,noatime", &image, &point],
        )
        .await?;
    }
    let owner_only = std::fs::Permissions::from_mode(0o700);
    tokio::fs::set_permissions(target, owner_only)
        .await
        .map_err(|error| DriverError::System(format!("{}: {error}", target.display())))
}

/// Unmounts `target` if mounted (the loop device goes with it).
pub async fn unmount(target: &Path) -> Result<(), DriverError> {
    if !is_mounted(target).await {
        return Ok(());
    }
    run("umount", &[&target.display().to_string()]).await
}

/// Whether something is mounted at `target`.
pub async fn is_mounted(target: &Path) -> bool {
    let Ok(canonical) = tokio::fs::canonicalize(target).await else {
        return false;
    };
    let mounts = tokio::fs::read_to_string("/proc/self/mountinfo")
        .await
        .unwrap_or_default();
    mounted_at(&mounts, &canonical.display().to_string())
}

/// Whether `mountinfo` (proc(5)) lists a mount at `target`.
fn mounted_at(mountinfo: &str, target: &str) -> bool {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| point == target)
}

/// The space used on the filesystem mounted at `target`.
pub async fn usage(target: &Path) -> DiskUsage {
    let text = output(
        "df",
        &["-B1", "--output=used,size", &target.display().to_string()],
    )
    .await;
    parse_df(&text).unwrap_or_default()
}

/// Bytes available on the filesystem holding `path` (0 if unknown).
pub async fn free_bytes(path: &Path) -> u64 {
    let text = output(
        "df",
        &["-B1", "--output=avail", &path.display().to_string()],
    )
    .await;
    text.lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or(0)
}

fn parse_df(text: &str) -> Option<DiskUsage> {
    let mut numbers = text.lines().nth(1)?.split_whitespace();
    Some(DiskUsage {
        used_bytes: numbers.next()?.parse().ok()?,
        size_bytes: numbers.next()?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_and_df_parse() {
        let mountinfo = "36 35 98:0 / /mnt/disk rw,noatime master:1 - ext4 /dev/loop0 rw\n\
                         37 35 98:0 / /mnt/disk2 rw - ext4 /dev/loop1 rw\n";
        assert!(mounted_at(mountinfo, "/mnt/disk"));
        assert!(!mounted_at(mountinfo, "/mnt"));
        assert!(!mounted_at(mountinfo, "/mnt/disk3"));
        let df = "     Used       1B-blocks\n  24576 1023303680\n";
        assert_eq!(
            parse_df(df),
            Some(DiskUsage {
                used_bytes: 24_576,
                size_bytes: 1_023_303_680
            })
        );
        assert_eq!(parse_df("Used 1B-blocks\n"), None);
    }
}
