//! The container driver against hostile workloads, on this machine (root: namespaces, cgroups,
//! loop devices, the firewall). Each workload runs in a real environment from the
//! `escape-probe` image (`scripts/images --test`) and tries to get out; the test reads what it
//! reports and checks the host side itself.

use logos_agent::{
    container::{
        network::Network, seccomp, spec::WORKLOAD_UID, ContainerConfig, ContainerDriver,
        DEFAULT_IMAGE_CACHE_MAX_BYTES,
    },
    driver::{Driver, DriverError},
    image::ImageLimits,
};
use logos_api::agent::WorkloadState;
use logos_client::template::Images;
use logos_types::{
    catalog::{HealthCheck, Workload},
    dvci::Resources,
    operations::{EnvironmentId, Spec},
};
use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

mod common;
use common::{runtime, LOGOS};

/// Log bound of the test agents: a file is rotated at this size, two are kept.
const LOG_FILE_MAX_BYTES: u64 = 64 * 1024;

/// The project's images, built and pushed to the loopback registry.
fn images() -> Images {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/images");
    let output = std::process::Command::new(script)
        .args(["--logos", LOGOS, "--test"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Images::parse(&String::from_utf8(output.stdout).unwrap()).unwrap()
}

/// An agent's driver with its own state directory, network index and cgroups.
struct Host {
    driver: ContainerDriver,
    state: PathBuf,
    images: Images,
}

impl Host {
    fn new(name: &str, index: u8) -> Self {
        let state =
            std::env::temp_dir().join(format!("logos-escape-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let mut network = Network {
            index,
            relay_port: 18_545,
            p2p_relay_port: 18_600,
            p2p_relays: 0,
            p2p_egress_ip: Ipv4Addr::LOCALHOST.into(),
            public_ip: Ipv4Addr::UNSPECIFIED,
            publish_port_base: 24_000,
        };
        network.public_ip = network.gateway();
        let config = ContainerConfig {
            state_dir: state.clone(),
            name: format!("agent-{index}"),
            network,
            binds: Vec::new(),
            shim_command: vec![LOGOS.into(), "agent".into(), "shim".into()],
            seccomp_profile: seccomp::DEFAULT_PROFILE_PATH.into(),
            insecure_registries: vec!["127.0.0.1:5000".into()],
            image_limits: ImageLimits::default(),
            image_cache_max_bytes: DEFAULT_IMAGE_CACHE_MAX_BYTES,
            log_file_max_bytes: LOG_FILE_MAX_BYTES,
            log_bytes_per_second: 4 * LOG_FILE_MAX_BYTES,
        };
        let driver = ContainerDriver::new(config).unwrap();
        runtime().block_on(driver.prepare_host()).unwrap();
        Self {
            driver,
            state,
            images: images(),
        }
    }

    fn network(&self) -> &Network {
        &self.driver.config().network
    }

    fn image(&self, name: &str) -> String {
        self.images.0[name].clone()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the environments said, for the failure's report.
            for id in runtime().block_on(self.driver.list()).unwrap_or_default() {
                let dir = self.driver.environment_dir(id);
                let shim = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
                let log = runtime()
                    .block_on(self.driver.logs(id, 4_096))
                    .ok()
                    .flatten();
                eprintln!(
                    "environment {id}: shim: {shim}\nlog: {}",
                    log.unwrap_or_default()
                );
            }
        }
        let _ = runtime().block_on(self.driver.destroy_all());
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn spec(image: &str, script: &str, ports: &[u16], disk_gib: u64) -> Spec {
    let health = ports.first().copied().unwrap_or(1);
    Spec {
        resources: Resources {
            vcpu: 1,
            memory_mib: 128,
            disk_gib,
            gpus: 0,
        },
        workload: Workload {
            image: image.try_into().unwrap(),
            command: vec![
                "/bin/sh".try_into().unwrap(),
                "-c".try_into().unwrap(),
                script.try_into().unwrap(),
            ]
            .try_into()
            .unwrap(),
            ports: if ports.is_empty() {
                vec![1]
            } else {
                ports.to_vec()
            }
            .try_into()
            .unwrap(),
            health: HealthCheck {
                port: health,
                path: None,
            },
            ..Workload::default()
        },
    }
}

/// Waits until the environment's log holds `marker`; returns the log.
fn log_until(host: &Host, id: EnvironmentId, marker: &str, bound: Duration) -> String {
    let deadline = Instant::now() + bound;
    loop {
        let log = runtime()
            .block_on(host.driver.logs(id, 1 << 20))
            .unwrap()
            .unwrap_or_default();
        if log.contains(marker) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The probe's verdicts: name → `allowed` or the errno name.
fn verdicts(log: &str) -> std::collections::BTreeMap<String, String> {
    log.lines()
        .filter_map(|line| line.strip_prefix("PROBE "))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace();
            let name = parts.next()?.to_string();
            let verdict = match parts.next()? {
                "denied" => parts.next().unwrap_or("?").to_string(),
                other => other.to_string(),
            };
            Some((name, verdict))
        })
        .collect()
}

fn connects(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok()
}

#[test]
fn a_hostile_workload_cannot_touch_the_host_or_reach_what_it_was_not_given() {
    let host = Host::new("hostile", 201);
    let image = host.image("escape-probe");
    // Things it must not reach: a "validator" listening on every address of the host (reached
    // at the host's own address), a service on the host's bridge address, and another
    // environment's undeclared port.
    let validator = TcpListener::bind("0.0.0.0:0").unwrap();
    let host_ip = host_address();
    let gateway = host.network().gateway();
    let on_bridge = TcpListener::bind((gateway, 0)).unwrap();
    let neighbour = EnvironmentId(2);
    let web = "mkdir -p /data/www && echo ok > /data/www/index.html && (httpd -p 9000 -h /data/www) && exec httpd -f -p 8080 -h /data/www";
    runtime()
        .block_on(
            host.driver
                .ensure(neighbour, 1, &spec(&host.image("busybox"), web, &[8080], 1)),
        )
        .unwrap();
    let neighbour_ip = host.network().address(2);

    let host_pid = std::process::id();
    let script = format!(
        "escape-probe syscalls {host_pid}; \
         escape-probe connect {host_ip}:{validator} {gateway}:{bridge} {neighbour_ip}:9000 {neighbour_ip}:8080; \
         echo PROBE_DONE; sleep 600",
        validator = validator.local_addr().unwrap().port(),
        bridge = on_bridge.local_addr().unwrap().port(),
    );
    let id = EnvironmentId(1);
    let observation = runtime()
        .block_on(host.driver.ensure(id, 1, &spec(&image, &script, &[], 1)))
        .unwrap();
    assert_eq!(observation.workload, WorkloadState::Running);
    let log = log_until(&host, id, "PROBE_DONE", Duration::from_secs(60));
    let seen = verdicts(&log);
    for (probe, expected) in [
        ("mount_tmpfs", "EPERM"),
        ("remount_root_rw", "EPERM"),
        ("mount_proc", "EPERM"),
        ("mknod_char_device", "EPERM"),
        ("raw_socket", "EPERM"),
        ("packet_socket", "EPERM"),
        ("init_module", "EPERM"),
        ("finit_module", "EPERM"),
        ("ptrace_host_process", "ESRCH"),
        ("kill_host_process", "ESRCH"),
        ("setuid_root", "EPERM"),
        ("write_root_filesystem", "EROFS"),
        ("write_usr", "EROFS"),
        ("write_cgroup_v1_memory_limit", "EROFS"),
        ("write_cgroup_v1_pids_limit", "EROFS"),
        ("write_proc_sys", "EROFS"),
        ("unshare_user_namespace", "EPERM"),
        ("unshare_network_namespace", "EPERM"),
        // No rule lets it through: the profile's default answer.
        ("clone_user_namespace", "ENOSYS"),
        ("keyctl", "EPERM"),
        ("chroot", "EPERM"),
        ("fork", "allowed"),
    ] {
        assert_eq!(
            seen.get(probe).map(String::as_str),
            Some(expected),
            "{probe}: {log}"
        );
    }
    // Read-only or absent (kernels without magic SysRq have no such file).
    let sysrq = seen.get("write_proc_sysrq").map(String::as_str);
    assert!(
        matches!(sysrq, Some("EROFS" | "ENOENT" | "EACCES")),
        "{sysrq:?}"
    );
    assert_ne!(
        seen.get("write_cgroup_v2_memory_limit").map(String::as_str),
        Some("allowed")
    );
    let neighbour_declared = format!("connect_{neighbour_ip}:8080");
    assert_eq!(
        seen[&neighbour_declared], "allowed",
        "a declared port of another environment is reachable"
    );
    // Refused (nothing listens on its own loopback) or timed out (dropped by a firewall).
    for target in [
        format!(
            "connect_{host_ip}:{}",
            validator.local_addr().unwrap().port()
        ),
        format!(
            "connect_{gateway}:{}",
            on_bridge.local_addr().unwrap().port()
        ),
        format!("connect_{neighbour_ip}:9000"),
    ] {
        let verdict = seen.get(&target).map(String::as_str);
        assert!(
            matches!(verdict, Some("ECONNREFUSED" | "ETIMEDOUT")),
            "{target}: {verdict:?}\n{log}"
        );
    }

    // The host side: nothing written, no limit changed, no process of the workload is root.
    assert!(!Path::new("/probe-was-here").exists());
    assert!(!Path::new("/usr/local/bin/probe-was-here").exists());
    let limit = std::fs::read_to_string(host_memory_limit(&host, id)).unwrap();
    assert_eq!(
        limit.trim(),
        (128u64 << 20).to_string(),
        "the product's 128 MiB, still"
    );
    let pids = host.driver.hierarchy().pids(&host.driver.cgroup(id));
    assert!(!pids.is_empty());
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let uid = status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .unwrap_or_default()
            .to_string();
        assert!(
            !uid.split_whitespace().skip(1).any(|id| id == "0"),
            "a workload process runs as host root: {uid}"
        );
        let capabilities = status
            .lines()
            .find(|line| line.starts_with("CapEff:"))
            .unwrap_or_default()
            .to_string();
        assert!(capabilities.ends_with("0000000000000000"), "{capabilities}");
    }
    // From this host only the declared port is published; the environment's own address
    // answers on declared ports only.
    let mapping = runtime()
        .block_on(host.driver.inspect(neighbour))
        .unwrap()
        .unwrap()
        .ports;
    assert!(connects(SocketAddr::new(
        host.network().public_ip.into(),
        mapping[0].published
    )));
    assert!(connects(SocketAddr::new(neighbour_ip.into(), 8080)));
    assert!(!connects(SocketAddr::new(neighbour_ip.into(), 9000)));
    // IPv6 is filtered as IPv4 is: at the neighbour's link-local address only the declared
    // port answers (busybox httpd listens on both families).
    let (link_local, scope) = link_local(&host, neighbour);
    let v6 = |port| SocketAddr::V6(std::net::SocketAddrV6::new(link_local, port, 0, scope));
    assert!(connects(v6(8080)), "declared port unreachable over IPv6");
    assert!(!connects(v6(9000)), "undeclared port reachable over IPv6");
}

/// The IPv6 link-local address of an environment and the scope (the bridge) to reach it by.
fn link_local(host: &Host, id: EnvironmentId) -> (std::net::Ipv6Addr, u32) {
    let namespace = host.network().namespace(id);
    let output = std::process::Command::new("ip")
        .args([
            "-n", &namespace, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let address = text
        .split_whitespace()
        .nth(3)
        .and_then(|address| address.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no IPv6 link-local address in {namespace}: {text}"));
    let index = std::fs::read_to_string(format!(
        "/sys/class/net/{}/ifindex",
        host.network().bridge()
    ))
    .unwrap();
    (address, index.trim().parse().unwrap())
}

/// An address of this machine other than loopback and the test bridges (its own network's,
/// where services bound to every address answer), or the loopback address if it has none.
fn host_address() -> Ipv4Addr {
    let output = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.contains(" lg"))
        .find_map(|line| {
            line.split_whitespace()
                .nth(3)?
                .split('/')
                .next()?
                .parse()
                .ok()
        })
        .expect("a global IPv4 address on this machine")
}

/// The memory limit file of an environment's cgroup on the host.
fn host_memory_limit(host: &Host, id: EnvironmentId) -> PathBuf {
    let hierarchy = host.driver.hierarchy();
    let file = match hierarchy {
        logos_agent::container::cgroup::Hierarchy::V1 => "memory.limit_in_bytes",
        logos_agent::container::cgroup::Hierarchy::V2 => "memory.max",
    };
    hierarchy
        .directory("memory", &host.driver.cgroup(id))
        .join(file)
}

#[test]
fn the_disk_quota_and_the_log_bound_hold_and_nothing_is_left_behind() {
    let host = Host::new("quota", 202);
    let image = host.image("escape-probe");
    let id = EnvironmentId(7);
    // The fill's result goes to the volume (the log is rotated away by the flood after it).
    let script = "escape-probe fill /data/big > /tmp/fill; rm /data/big; cp /tmp/fill /data/fill; \
                  escape-probe flood 2000000; echo PROBE_DONE; sleep 600";
    runtime()
        .block_on(host.driver.ensure(id, 1, &spec(&image, script, &[], 1)))
        .unwrap();
    let log = log_until(&host, id, "PROBE_DONE", Duration::from_secs(180));
    let fill =
        std::fs::read_to_string(host.driver.environment_dir(id).join("disk/volume/fill")).unwrap();
    let filled: u64 = fill
        .lines()
        .find_map(|line| line.strip_prefix("PROBE fill_bytes "))
        .and_then(|bytes| bytes.trim().parse().ok())
        .unwrap_or_else(|| panic!("no fill_bytes in {fill}"));
    assert!(filled < 1 << 30, "wrote {filled} bytes on a 1 GiB disk");
    assert!(filled > 500 << 20, "only {filled} bytes written");
    assert_eq!(verdicts(&fill)["fill_past_quota"], "ENOSPC", "{fill}");
    assert!(
        log.contains("PROBE flood_done 2000000"),
        "the flood ran to its end"
    );
    // The host lost at most the disk's size (the sparse image filled up), not more: what the
    // agent's state directory holds on the host's filesystem (the environment's own mounted
    // disk not counted twice), the image's tree in the rootfs cache included. Counted there,
    // not as the filesystem's free space, which tests running alongside also use.
    let used = host_bytes(&host.state);
    assert!(used < (1 << 30) + (64 << 20), "the host lost {used} bytes");
    // 20 MB of output left at most two log files of the bound.
    let logs = host.driver.environment_dir(id).join("logs");
    let total: u64 = std::fs::read_dir(&logs)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total <= 2 * LOG_FILE_MAX_BYTES, "logs hold {total} bytes");

    // Destroyed: no container, cgroup, namespace, mount, port mapping or directory is left.
    runtime().block_on(host.driver.destroy(id)).unwrap();
    assert_leaves_nothing(&host, id);
}

/// Bytes the tree under `path` takes on its own filesystem (`du -x`: mounts under it, like an
/// environment's disk, are not entered).
fn host_bytes(path: &Path) -> u64 {
    let output = std::process::Command::new("du")
        .args(["-x", "-s", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .and_then(|bytes| bytes.parse().ok())
        .unwrap()
}

fn assert_leaves_nothing(host: &Host, id: EnvironmentId) {
    let driver = &host.driver;
    assert!(
        runtime()
            .block_on(driver.runc().state(&driver.container_id(id)))
            .is_none(),
        "container left"
    );
    let cgroup = driver.hierarchy().directory("memory", &driver.cgroup(id));
    assert!(!cgroup.exists(), "cgroup {} left", cgroup.display());
    let namespace = host.network().namespace(id);
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&namespace),
        "namespace left"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = driver.environment_dir(id);
    assert!(!mounts.contains(&dir.display().to_string()), "mount left");
    assert!(!dir.exists(), "directory left");
    assert!(
        runtime()
            .block_on(host.network().published_rules(id))
            .is_empty(),
        "port mapping left"
    );
}

#[test]
fn an_update_keeps_the_volume_a_restarted_agent_adopts_and_a_wrong_digest_is_refused() {
    let mut host = Host::new("lifecycle", 203);
    let busybox = host.image("busybox");
    let id = EnvironmentId(3);
    let write = "echo kept > /data/marker; id -u > /data/uid; exec httpd -f -p 8080 -h /data";
    let first = runtime()
        .block_on(
            host.driver
                .ensure(id, 1, &spec(&busybox, write, &[8080], 1)),
        )
        .unwrap();
    assert_eq!(first.workload, WorkloadState::Running);
    assert_eq!(
        first.image,
        format!("sha256:{}", busybox.rsplit(':').next().unwrap())
    );
    let endpoint: SocketAddr = first.endpoint.parse().unwrap();
    assert!(connects(endpoint));
    let volume = host.driver.environment_dir(id).join("disk/volume");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !volume.join("uid").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(volume.join("uid")).unwrap().trim(),
        WORKLOAD_UID.to_string()
    );

    // A new generation restarts the workload with the new spec on the same volume.
    let read = "cat /data/marker > /data/seen; exec httpd -f -p 8080 -h /data";
    let second = runtime()
        .block_on(host.driver.ensure(id, 2, &spec(&busybox, read, &[8080], 1)))
        .unwrap();
    assert_eq!(second.generation, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !volume.join("seen").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(volume.join("seen")).unwrap().trim(),
        "kept"
    );
    assert_eq!(second.endpoint, first.endpoint, "the same published port");

    // The first unpack left the image's tree in the rootfs cache; another environment of the
    // image gets a copy with the ids moved to its own range: inside, the image's files are
    // root's (an id left in the first range would show as the overflow id 65534). A file
    // added to the cached tree (in its range) shows that the copy, not an unpack, made it.
    let digest = busybox.rsplit(':').next().unwrap();
    let kept = host.state.join("rootfs").join(digest).join("rootfs");
    assert!(
        kept.join("bin/busybox").exists(),
        "no cached tree at {kept:?}"
    );
    let marker = kept.join("from-cache");
    std::fs::write(&marker, b"").unwrap();
    let cache_root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&kept).unwrap().uid()
    };
    std::os::unix::fs::lchown(&marker, Some(cache_root), Some(cache_root)).unwrap();
    let other = EnvironmentId(5);
    let owners = "stat -c %u:%g / /bin /bin/busybox /from-cache > /data/owners.tmp; \
                  mv /data/owners.tmp /data/owners; exec httpd -f -p 8080 -h /data";
    runtime()
        .block_on(
            host.driver
                .ensure(other, 1, &spec(&busybox, owners, &[8080], 1)),
        )
        .unwrap();
    let seen = host
        .driver
        .environment_dir(other)
        .join("disk/volume/owners");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "0:0\n0:0\n0:0\n0:0\n",
        "the copy's ids are its own range's root"
    );
    let host_owner = |id: EnvironmentId| {
        use std::os::unix::fs::MetadataExt;
        let bin = host
            .driver
            .environment_dir(id)
            .join("disk/rootfs/bin/busybox");
        std::fs::symlink_metadata(bin).unwrap().uid()
    };
    assert_ne!(
        host_owner(other),
        host_owner(id),
        "each environment its own range"
    );
    assert!(host_owner(other) >= 65_536 && host_owner(id) >= 65_536);
    runtime().block_on(host.driver.destroy(other)).unwrap();
    assert_leaves_nothing(&host, other);

    // The agent goes away without a word (as after kill -9) and a new one starts: the
    // workload kept running under its shim and is adopted, its port published again.
    let pids = host.driver.hierarchy().pids(&host.driver.cgroup(id));
    let config = host.driver.config().clone();
    let restarted = ContainerDriver::new(config).unwrap();
    runtime().block_on(restarted.prepare_host()).unwrap();
    host.driver = restarted;
    let adopted = runtime()
        .block_on(host.driver.inspect(id))
        .unwrap()
        .unwrap();
    assert_eq!(adopted.workload, WorkloadState::Running);
    assert_eq!(adopted.generation, 2);
    assert_eq!(
        host.driver.hierarchy().pids(&host.driver.cgroup(id)),
        pids,
        "the same processes"
    );
    assert!(connects(endpoint));

    // An image whose digest the registry does not hold is refused with the reason; nothing
    // of the environment is created.
    let wrong = format!("127.0.0.1:5000/logos/busybox@sha256:{}", "0".repeat(64));
    let refused = runtime().block_on(host.driver.ensure(
        EnvironmentId(4),
        1,
        &spec(&wrong, "true", &[8080], 1),
    ));
    match refused {
        Err(DriverError::Image(reason)) => assert!(reason.contains("404"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_leaves_nothing(&host, EnvironmentId(4));

    runtime().block_on(host.driver.destroy(id)).unwrap();
    assert_leaves_nothing(&host, id);
    runtime().block_on(host.driver.destroy_all()).unwrap();
    assert!(
        runtime().block_on(host.network().leftovers()).is_empty(),
        "bridge or firewall rules left"
    );
}

#[test]
fn only_a_kept_capability_lets_a_workload_bind_a_low_port() {
    let host = Host::new("capability", 204);
    let busybox = host.image("busybox");
    let serve = "mkdir -p /data/w && echo ok > /data/w/health && exec httpd -f -p 80 -h /data/w";
    let mut kept = spec(&busybox, serve, &[80], 1);
    kept.workload.capabilities = vec![logos_types::workload::Capability::NetBindService]
        .try_into()
        .unwrap();
    let plain = spec(&busybox, serve, &[80], 1);
    let (with, without) = (EnvironmentId(1), EnvironmentId(2));
    runtime()
        .block_on(host.driver.ensure(with, 1, &kept))
        .unwrap();
    runtime()
        .block_on(host.driver.ensure(without, 1, &plain))
        .unwrap();
    let address = |id| {
        let observation = runtime()
            .block_on(host.driver.inspect(id))
            .unwrap()
            .unwrap();
        observation.endpoint.parse::<SocketAddr>().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !connects(address(with)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        connects(address(with)),
        "port 80 not served with NET_BIND_SERVICE"
    );
    let exited = runtime()
        .block_on(host.driver.inspect(without))
        .unwrap()
        .unwrap();
    assert!(
        !matches!(exited.workload, WorkloadState::Running) || !connects(address(without)),
        "port 80 bound without the capability"
    );
    let log = log_until(&host, without, "httpd", Duration::from_secs(20));
    assert!(log.contains("ermission denied"), "{log}");
}
