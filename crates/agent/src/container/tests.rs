//! Unit tests of the driver's names, rules, port mapping and parsing (the driver itself runs
//! in the agent's integration tests and the end-to-end tests, as root).

use super::{
    catches_sigterm, interface_traffic,
    network::{
        inbound_rules, Network, CONNECTIONS_PER_SOURCE_MAX, INTERFACE_NAME_MAX_BYTES,
        PUBLISHED_PORTS,
    },
};
use logos_types::operations::{EnvironmentId, PortMapping};
use std::net::Ipv4Addr;

const NETWORK: Network = Network {
    index: 3,
    relay_port: 8545,
    p2p_relay_port: 30300,
    p2p_relays: 3,
    p2p_egress_ip: std::net::IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    public_ip: Ipv4Addr::new(192, 0, 2, 7),
    publish_port_base: 24_000,
};

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
    assert_eq!(
        NETWORK.chain_p2p(),
        "10.88.3.1:30300,10.88.3.1:30301,10.88.3.1:30302"
    );
    assert_eq!(NETWORK.p2p_egress(), "192.0.2.7:0");
    assert_eq!(NETWORK.relay_url(), "http://10.88.3.1:8545");
}

#[test]
fn names_and_addresses_follow_the_network_index() {
    assert_eq!(NETWORK.bridge(), "lgbr3");
    assert_eq!(NETWORK.namespace(EnvironmentId(42)), "lg3-42");
    assert_eq!(NETWORK.host_veth(42), "lg3h42");
    let widest = Network {
        index: 250,
        ..NETWORK
    };
    assert!(
        widest.host_veth(254).len() <= INTERFACE_NAME_MAX_BYTES,
        "interface names fit IFNAMSIZ"
    );
    assert_eq!(NETWORK.address(7).to_string(), "10.88.3.7");
}

#[test]
fn published_placeholders_become_the_ports_public_addresses() {
    let ports = NETWORK.published(5, &[8545, 30333]).unwrap();
    let argument = "--validate-for=x@${PUBLISHED:30333} ${PUBLISHED:8545} ${PUBLISHED:9}";
    assert_eq!(
        NETWORK.with_published(argument.to_string(), &ports),
        "--validate-for=x@192.0.2.7:24049 192.0.2.7:24048 ${PUBLISHED:9}"
    );
    assert_eq!(
        NETWORK.with_published("${PUBLISHED:30333}".into(), &[]),
        "${PUBLISHED:30333}"
    );
}

#[test]
fn each_host_gets_its_own_block_of_published_ports() {
    let mapping = |port, published| PortMapping { port, published };
    assert_eq!(
        NETWORK.published(2, &[8545, 30400]),
        Some(vec![mapping(8545, 24_000), mapping(30400, 24_001)])
    );
    assert_eq!(
        NETWORK.published(3, &[8545]),
        Some(vec![mapping(8545, 24_016)])
    );
    let last = NETWORK.published(254, &[1; 16]).unwrap();
    assert_eq!(last[15].published, 24_000 + PUBLISHED_PORTS - 1);
    assert_eq!(NETWORK.published(1, &[8545]), None, "the gateway has none");
    assert_eq!(NETWORK.published(255, &[8545]), None);
    let high = Network {
        publish_port_base: u16::MAX - 10,
        ..NETWORK
    };
    assert_eq!(high.published(254, &[8545]), None, "never wraps past 65535");
    assert_eq!(NETWORK.endpoint(24_000), "192.0.2.7:24000");
}

#[test]
fn only_declared_ports_are_admitted_inbound() {
    let rules = inbound_rules(&[8080, 8645, 8080], false);
    assert!(!rules.contains("icmpv6"));
    let v6 = inbound_rules(&[8080], true);
    assert!(v6.contains("--icmpv6-type neighbour-solicitation -j ACCEPT"));
    assert!(v6.contains(":INPUT DROP") && v6.contains("--dport 8080 -j ACCEPT"));
    assert!(rules.contains(":INPUT DROP"));
    assert!(rules.contains(":FORWARD DROP"));
    assert_eq!(
        rules.matches("--dport 8080 -j ACCEPT").count(),
        1,
        "deduplicated"
    );
    let limit = format!(
        "-A INPUT -p tcp --syn --dport 8080 -m connlimit --connlimit-above \
         {CONNECTIONS_PER_SOURCE_MAX} --connlimit-mask 32 -j REJECT --reject-with tcp-reset\n\
         -A INPUT -p tcp --dport 8080 -j ACCEPT\n"
    );
    assert!(
        rules.contains(&limit),
        "each port's limit comes before its accept: {rules}"
    );
    assert!(v6.contains("--connlimit-mask 64"), "{v6}");
    assert!(rules.contains("--dport 8645 -j ACCEPT"));
    assert!(!rules.contains("--dport 9000"));
    assert!(rules.ends_with("COMMIT\n"));
}

#[test]
fn veth_counters_parse_from_proc_net_dev() {
    let text = "Inter-|   Receive                                                |  Transmit\n \
                face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n\
                lg3h42: 5000      50    0    0    0     0          0         0     7000      70    0    0    0     0       0          0\n";
    assert_eq!(interface_traffic(text, "lg3h42"), Some((5_000, 7_000)));
    assert_eq!(interface_traffic(text, "lg3h4"), None);
    assert_eq!(interface_traffic("lg3h42: 1 2\n", "lg3h42"), None);
}

#[test]
fn a_stop_waits_only_for_an_init_that_catches_sigterm() {
    let status =
        |caught: &str| format!("Name:\tlogos\nSigIgn:\t0000000000001000\nSigCgt:\t{caught}\n");
    assert!(
        catches_sigterm(&status("0000000180004002")),
        "TERM, INT and more"
    );
    assert!(catches_sigterm(&status("0000000000004000")));
    assert!(!catches_sigterm(&status("0000000000000002")), "INT only");
    assert!(!catches_sigterm(&status("0000000000000000")));
    assert!(!catches_sigterm(&status("not hex")));
    assert!(!catches_sigterm("Name:\tsh\n"), "no mask");
}
