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
    p2p_relay_port: 30300,
    p2p_relays: 3,
    p2p_egress_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
};

#[test]
fn sandbox_command_isolates_and_substitutes_the_chain_relay() {
    let binds = vec![(
        PathBuf::from("/usr/bin/logos"),
        "/opt/logos/bin/logos".to_string(),
    )];
    let command: Vec<String> = [
        "run",
        "--rpc",
        "${CHAIN_RPC}",
        "${ENVIRONMENT}",
        "--peers=${CHAIN_P2P}",
        "x@${P2P_EGRESS}",
    ]
    .iter()
    .map(|part| part.to_string())
    .collect();
    let relay = NETWORK.relay_url();
    let (chain_p2p, p2p_egress) = (NETWORK.chain_p2p(), NETWORK.p2p_egress());
    let sandbox = Sandbox {
        environment: EnvironmentId(42),
        data: Path::new("/var/lib/agent/envs/42/data"),
        relay_url: &relay,
        chain_p2p: &chain_p2p,
        p2p_egress: &p2p_egress,
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
    assert_eq!(
        workload,
        [
            "run",
            "--rpc",
            "http://10.88.3.1:8545",
            "42",
            "--peers=10.88.3.1:30300,10.88.3.1:30301,10.88.3.1:30302",
            "x@192.0.2.7:0",
        ]
    );
    assert!(text.contains("--setenv LOGOS_CHAIN_P2P 10.88.3.1:30300,10.88.3.1:30301"));
}

#[test]
fn p2p_relay_ports_never_wrap_past_the_last_port() {
    let edge = Network {
        p2p_relay_port: u16::MAX - 1,
        ..NETWORK
    };
    assert_eq!(edge.p2p_relay_addresses().len(), 2, "65534 and 65535 only");
    let none = Network {
        p2p_relays: 0,
        ..NETWORK
    };
    assert_eq!(none.chain_p2p(), "");
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
