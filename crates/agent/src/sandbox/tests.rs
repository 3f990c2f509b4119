//! Unit tests of the sandbox's command lines, names and rules (the driver itself runs in the
//! end-to-end tests, as root).

use super::{
    bubblewrap::Sandbox,
    cgroup::Cgroups,
    network::{inbound_rules, Network, INTERFACE_NAME_MAX_BYTES},
};
use logos_types::operations::EnvironmentId;
use std::path::{Path, PathBuf};

const NETWORK: Network = Network {
    index: 3,
    relay_port: 8545,
};

#[test]
fn sandbox_command_isolates_and_substitutes_the_chain_relay() {
    let binds = vec![(
        PathBuf::from("/usr/bin/logos"),
        "/opt/logos/bin/logos".to_string(),
    )];
    let command: Vec<String> = ["run", "--rpc", "${CHAIN_RPC}", "${ENVIRONMENT}"]
        .iter()
        .map(|part| part.to_string())
        .collect();
    let relay = NETWORK.relay_url();
    let sandbox = Sandbox {
        environment: EnvironmentId(42),
        data: Path::new("/var/lib/agent/envs/42/data"),
        relay_url: &relay,
        binds: &binds,
        command: &command,
    };
    let args = sandbox.args();
    let text = args.join(" ");
    for flag in [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
    ] {
        assert!(text.contains(flag), "{flag} missing from {text}");
    }
    assert!(text.contains("--ro-bind /usr /usr"));
    assert!(text.contains("--bind /var/lib/agent/envs/42/data /data"));
    assert!(text.contains("--ro-bind /usr/bin/logos /opt/logos/bin/logos"));
    assert!(text.contains("--hostname env-42"));
    let workload = &args[args.iter().position(|arg| arg == "--").unwrap() + 1..];
    assert_eq!(workload, ["run", "--rpc", "http://10.88.3.1:8545", "42"]);
}

#[test]
fn names_and_addresses_follow_the_network_index() {
    assert_eq!(NETWORK.bridge(), "lgbr3");
    assert_eq!(NETWORK.namespace(EnvironmentId(42)), "lg3-42");
    assert_eq!(NETWORK.host_veth(EnvironmentId(42)), "lg3h42");
    assert!(
        NETWORK.host_veth(EnvironmentId(u64::MAX)).len() <= INTERFACE_NAME_MAX_BYTES,
        "interface names fit IFNAMSIZ"
    );
    assert_eq!(NETWORK.address(7).to_string(), "10.88.3.7");
    assert_eq!(
        Cgroups::new("agent-3").path("memory", EnvironmentId(42)),
        PathBuf::from("/sys/fs/cgroup/memory/logos/agent-3/env-42")
    );
}

#[test]
fn only_declared_ports_are_admitted_inbound() {
    let rules = inbound_rules(&[8080, 8645, 8080]);
    assert!(rules.contains(":INPUT DROP"));
    assert_eq!(rules.matches("--dport 8080").count(), 1, "deduplicated");
    assert!(rules.contains("--dport 8645 -j ACCEPT"));
    assert!(!rules.contains("--dport 9000"));
    assert!(rules.ends_with("COMMIT\n"));
}
