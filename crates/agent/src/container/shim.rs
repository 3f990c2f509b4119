//! The shim: one small process per running environment (`logos agent shim`, in its own process
//! group), the parent of `runc run` for as long as the workload lives, in the role
//! containerd's shim and conmon play for other engines:
//! - it holds the workload's standard output and error (runc passes them through) and writes
//!   them to `logs/log`, renaming it to `logs/log.1` when it reaches
//!   [`ShimConfig::log_file_max_bytes`] (so the two files hold at most twice that), at most
//!   [`ShimConfig::log_bytes_per_second`]: a workload that writes faster blocks on its full
//!   pipe, so a flood of output costs the host neither disk nor unbounded CPU;
//! - when runc exits it writes the workload's exit status to `exit` (`128 + n` for signal
//!   `n`), then exits itself.
//!
//! Because the shim, not the agent, is the workload's parent and log reader, an agent can stop
//! (`kill -9` included) and start again without touching running workloads: the restarted
//! agent finds them by their records and runc's state.

use std::{
    fs::File,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Name of the current log file in the log directory.
pub const LOG_FILE: &str = "log";
/// Name of the previous (rotated) log file.
pub const ROTATED_LOG_FILE: &str = "log.1";
/// Largest read from the workload's pipes at once, bytes.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// What a shim runs and where it writes.
#[derive(Clone, Debug)]
pub struct ShimConfig {
    /// runc's arguments (from [`super::runc::Runc::run_args`]).
    pub runc_args: Vec<String>,
    /// Directory of `log` and `log.1`.
    pub log_dir: PathBuf,
    /// Size at which `log` is rotated, bytes.
    pub log_file_max_bytes: u64,
    /// Most output written per second, bytes.
    pub log_bytes_per_second: u64,
    /// Where the exit status is written.
    pub exit_file: PathBuf,
}

impl ShimConfig {
    /// The arguments of `logos agent shim` for this configuration (after the subcommand).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--log-dir".into(),
            self.log_dir.display().to_string(),
            "--log-file-max-bytes".into(),
            self.log_file_max_bytes.to_string(),
            "--log-bytes-per-second".into(),
            self.log_bytes_per_second.to_string(),
            "--exit-file".into(),
            self.exit_file.display().to_string(),
            "--".into(),
        ];
        args.extend(self.runc_args.iter().cloned());
        args
    }
}

/// The rotating, rate-bounded log (see the module docs).
pub struct LogWriter {
    dir: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
    per_second: u64,
    window_start: Instant,
    window_bytes: u64,
}

impl LogWriter {
    /// Appends to `dir/log` (created if missing; the directory open to root only).
    pub fn open(dir: &Path, max_bytes: u64, per_second: u64) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        // Open to root only: a tenant's output is not other users'.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let path = dir.join(LOG_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            written,
            max_bytes: max_bytes.max(1),
            per_second: per_second.max(1),
            window_start: Instant::now(),
            window_bytes: 0,
        })
    }

    /// How long to wait before writing `bytes` more, to stay within the rate.
    fn delay(&mut self, bytes: u64) -> Duration {
        let elapsed = self.window_start.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        self.window_bytes = self.window_bytes.saturating_add(bytes);
        if self.window_bytes > self.per_second {
            Duration::from_secs(1).saturating_sub(elapsed)
        } else {
            Duration::ZERO
        }
    }

    /// Writes `bytes`, rotating first if they would take `log` past its size.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let length = bytes.len() as u64;
        let bytes = if length > self.max_bytes {
            &bytes[bytes.len().saturating_sub(self.max_bytes as usize)..]
        } else {
            bytes
        };
        if self.written.saturating_add(bytes.len() as u64) > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.written = self.written.saturating_add(bytes.len() as u64);
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        std::fs::rename(self.dir.join(LOG_FILE), self.dir.join(ROTATED_LOG_FILE))?;
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        self.written = 0;
        Ok(())
    }
}

/// Copies `source` into `log` until it closes, pausing to keep the rate.
fn pump(mut source: impl Read, log: Arc<Mutex<LogWriter>>) {
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let delay = {
            let Ok(mut log) = log.lock() else { return };
            if log.write(&buffer[..read]).is_err() {
                return;
            }
            log.delay(read as u64)
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
}

/// Runs the shim (see the module docs) and returns the workload's exit status.
pub fn run(config: &ShimConfig) -> std::io::Result<i32> {
    let log = Arc::new(Mutex::new(LogWriter::open(
        &config.log_dir,
        config.log_file_max_bytes,
        config.log_bytes_per_second,
    )?));
    let mut child = Command::new("runc")
        .args(&config.runc_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut pumps = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let log = log.clone();
        pumps.push(std::thread::spawn(move || pump(stdout, log)));
    }
    if let Some(stderr) = child.stderr.take() {
        let log = log.clone();
        pumps.push(std::thread::spawn(move || pump(stderr, log)));
    }
    let status = child.wait()?;
    for pump in pumps {
        let _ = pump.join();
    }
    let code = exit_code(status);
    write_exit(&config.exit_file, code)?;
    Ok(code)
}

/// The status as a shell reports it: the exit code, or 128 + the signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

fn write_exit(path: &Path, code: i32) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{code}\n"))?;
    std::fs::rename(partial, path)
}

/// The exit status a shim wrote, if any.
pub fn read_exit(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The last `max_bytes` of the logs in `dir` (`log.1` then `log`).
pub fn tail(dir: &Path, max_bytes: u64) -> std::io::Result<Option<Vec<u8>>> {
    let current = match std::fs::read(dir.join(LOG_FILE)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut bytes = std::fs::read(dir.join(ROTATED_LOG_FILE)).unwrap_or_default();
    bytes.extend_from_slice(&current);
    let start = bytes.len().saturating_sub(max_bytes as usize);
    Ok(Some(bytes.split_off(start)))
}

/// Where a reader of a growing, rotating log stands: the current file (by inode) and the
/// offset read up to in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogCursor {
    /// Inode of the `log` file the offset is in (0: none yet).
    pub inode: u64,
    /// Bytes of it already read.
    pub offset: u64,
}

/// Up to `max_bytes` written after `cursor`, and the cursor after them. When `log` was rotated
/// since, the rest of the old file (now `log.1`) comes first; output rotated away twice is
/// skipped.
pub fn read_after(
    dir: &Path,
    cursor: LogCursor,
    max_bytes: u64,
) -> std::io::Result<(Vec<u8>, LogCursor)> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let mut current = File::open(dir.join(LOG_FILE))?;
    let inode = current.metadata()?.ino();
    if cursor.inode != 0 && cursor.inode != inode {
        if let Ok(mut rotated) = File::open(dir.join(ROTATED_LOG_FILE)) {
            if rotated.metadata()?.ino() == cursor.inode {
                let mut bytes = Vec::new();
                rotated.seek(SeekFrom::Start(cursor.offset))?;
                rotated.take(max_bytes).read_to_end(&mut bytes)?;
                if !bytes.is_empty() {
                    let offset = cursor.offset.saturating_add(bytes.len() as u64);
                    return Ok((
                        bytes,
                        LogCursor {
                            inode: cursor.inode,
                            offset,
                        },
                    ));
                }
            }
        }
        return read_after(dir, LogCursor { inode, offset: 0 }, max_bytes);
    }
    let length = current.metadata()?.len();
    let offset = if cursor.inode == 0 {
        length.saturating_sub(max_bytes)
    } else {
        cursor.offset.min(length)
    };
    current.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    current.take(max_bytes).read_to_end(&mut bytes)?;
    let offset = offset.saturating_add(bytes.len() as u64);
    Ok((bytes, LogCursor { inode, offset }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("logos-shim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_log_rotates_and_never_holds_more_than_two_files() {
        let dir = dir("rotate");
        let mut log = LogWriter::open(&dir, 100, u64::MAX).unwrap();
        for i in 0..1_000u32 {
            log.write(format!("line {i:04}\n").as_bytes()).unwrap();
        }
        let current = std::fs::metadata(dir.join(LOG_FILE)).unwrap().len();
        let rotated = std::fs::metadata(dir.join(ROTATED_LOG_FILE)).unwrap().len();
        assert!(current <= 100 && rotated <= 100, "{current} {rotated}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        let tail = String::from_utf8(tail(&dir, 30).unwrap().unwrap()).unwrap();
        assert!(tail.ends_with("line 0999\n"), "{tail}");
        assert_eq!(tail.len(), 30);
        // One write larger than a file keeps only its end.
        log.write(&[b'x'; 500]).unwrap();
        assert_eq!(std::fs::metadata(dir.join(LOG_FILE)).unwrap().len(), 100);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writing_faster_than_the_rate_is_told_to_wait() {
        let dir = dir("rate");
        let mut log = LogWriter::open(&dir, 1_000_000, 1_000).unwrap();
        assert_eq!(log.delay(600), Duration::ZERO);
        let wait = log.delay(600);
        assert!(wait > Duration::from_millis(500), "{wait:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_follower_reads_on_across_a_rotation() {
        let dir = dir("follow");
        let mut log = LogWriter::open(&dir, 20, u64::MAX).unwrap();
        log.write(b"0123456789").unwrap();
        let (first, cursor) = read_after(&dir, LogCursor::default(), 1_000).unwrap();
        assert_eq!(first, b"0123456789");
        log.write(b"abcdefghij").unwrap();
        log.write(b"KLMNO").unwrap(); // rotates: log.1 = 0…9a…j, log = KLMNO
        let (rest, cursor) = read_after(&dir, cursor, 1_000).unwrap();
        assert_eq!(rest, b"abcdefghij");
        let (next, cursor) = read_after(&dir, cursor, 1_000).unwrap();
        assert_eq!(next, b"KLMNO");
        let (nothing, _) = read_after(&dir, cursor, 1_000).unwrap();
        assert!(nothing.is_empty());
        // A new reader starts at the tail.
        let (fresh, _) = read_after(&dir, LogCursor::default(), 3).unwrap();
        assert_eq!(fresh, b"MNO");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn exit_statuses_round_trip() {
        let dir = dir("exit");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("exit");
        assert_eq!(read_exit(&path), None);
        write_exit(&path, 137).unwrap();
        assert_eq!(read_exit(&path), Some(137));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
