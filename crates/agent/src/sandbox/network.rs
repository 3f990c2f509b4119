//! The network of an environment: a named network namespace `lgN-E` joined to the provider's
//! bridge `lgbrN` (`10.88.N.1/24`) by a veth pair (`eth0`, `10.88.N.H/24`, default route via
//! the bridge).
//!
//! Inside the namespace iptables drops every inbound connection except to the template's
//! declared ports (and its health port). On the host, connections from the bridge are
//! accepted only to the chain relay port (the gatekeeper's relay to the chain RPC), to the
//! p2p relay ports (one per genesis validator, relayed to its p2p address, so a leased full
//! node can follow the chain) and as replies.

use super::command::{kill, output, run, run_with_input};
use crate::driver::DriverError;
use logos_types::operations::EnvironmentId;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Longest Linux interface name (IFNAMSIZ − 1), bytes.
pub const INTERFACE_NAME_MAX_BYTES: usize = 15;
/// Environment ids are folded into interface names modulo this.
const INTERFACE_ID_MODULUS: u64 = 100_000;

/// The service network of one agent: bridge `lgbrN`, environments on `10.88.N.0/24`.
#[derive(Clone, Copy, Debug)]
pub struct Network {
    /// Network index `N` (1..=250).
    pub index: u8,
    /// Port of the chain relay on the bridge address.
    pub relay_port: u16,
    /// First p2p relay port on the bridge address: validator `i` (genesis order) is relayed
    /// from `p2p_relay_port + i`.
    pub p2p_relay_port: u16,
    /// Number of p2p relay ports (the genesis validators).
    pub p2p_relays: u16,
    /// The IP validators see relayed p2p connections come from (the host's address towards
    /// them), which a leased full node registers.
    pub p2p_egress_ip: IpAddr,
}

impl Network {
    /// The bridge's name.
    pub fn bridge(&self) -> String {
        format!("lgbr{}", self.index)
    }

    /// The bridge's address (the environments' gateway).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, self.index, 1)
    }

    /// The address of host `host` on the network.
    pub fn address(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, self.index, host)
    }

    /// `environment`'s network namespace.
    pub fn namespace(&self, environment: EnvironmentId) -> String {
        format!("lg{}-{environment}", self.index)
    }

    /// The host end of `environment`'s veth pair.
    pub fn host_veth(&self, environment: EnvironmentId) -> String {
        format!(
            "lg{}h{}",
            self.index,
            environment.get() % INTERFACE_ID_MODULUS
        )
    }

    fn inner_veth(&self, environment: EnvironmentId) -> String {
        format!(
            "lg{}c{}",
            self.index,
            environment.get() % INTERFACE_ID_MODULUS
        )
    }

    /// The URL environments reach the chain RPC at (the relay on the gateway).
    pub fn relay_url(&self) -> String {
        format!("http://{}:{}", self.gateway(), self.relay_port)
    }

    /// The p2p relay addresses environments dial, one per genesis validator in order.
    pub fn p2p_relay_addresses(&self) -> Vec<SocketAddr> {
        (0..self.p2p_relays)
            .filter_map(|i| self.p2p_relay_port.checked_add(i))
            .map(|port| SocketAddr::new(self.gateway().into(), port))
            .collect()
    }

    /// `${CHAIN_P2P}`: the p2p relay addresses, comma-separated.
    pub fn chain_p2p(&self) -> String {
        let addresses: Vec<String> = self
            .p2p_relay_addresses()
            .iter()
            .map(|address| address.to_string())
            .collect();
        addresses.join(",")
    }

    /// `${P2P_EGRESS}`: where validators see relayed p2p connections come from, `IP:0`
    /// (validators check the IP of a full node's connections and never dial it: commonware
    /// dials primary peers only; port 0 says nothing listens there).
    pub fn p2p_egress(&self) -> String {
        SocketAddr::new(self.p2p_egress_ip, 0).to_string()
    }

    /// Creates the bridge, its address and the host firewall for it (idempotent).
    pub async fn prepare_host(&self) -> Result<(), DriverError> {
        let bridge = self.bridge();
        if run("ip", &["link", "show", &bridge]).await.is_err() {
            run("ip", &["link", "add", &bridge, "type", "bridge"]).await?;
        }
        let address = format!("{}/24", self.gateway());
        run("ip", &["addr", "replace", &address, "dev", &bridge]).await?;
        run("ip", &["link", "set", &bridge, "up"]).await?;
        self.host_firewall(&bridge).await
    }

    /// From the bridge, the host accepts only replies and connections to the chain relay and
    /// the p2p relays.
    async fn host_firewall(&self, bridge: &str) -> Result<(), DriverError> {
        let chain = format!("LOGOS-{}", bridge.to_uppercase());
        let port = self.relay_port.to_string();
        let _ = run("iptables", &["-N", &chain]).await;
        run("iptables", &["-F", &chain]).await?;
        let state = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"];
        run(
            "iptables",
            &[&["-A", &chain][..], &state[..], &["-j", "ACCEPT"]].concat(),
        )
        .await?;
        // Only to the relays' own address: not to whatever else listens on the host.
        let gateway = self.gateway().to_string();
        let to_relay = ["-A", &chain, "-d", &gateway, "-p", "tcp", "--dport"];
        run(
            "iptables",
            &[&to_relay[..], &[&port, "-j", "ACCEPT"]].concat(),
        )
        .await?;
        if let Some(last) = self.p2p_relay_addresses().last() {
            let ports = format!("{}:{}", self.p2p_relay_port, last.port());
            run(
                "iptables",
                &[&to_relay[..], &[&ports, "-j", "ACCEPT"]].concat(),
            )
            .await?;
        }
        run("iptables", &["-A", &chain, "-j", "DROP"]).await?;
        let hook = ["INPUT", "-i", bridge, "-j", &chain];
        if run("iptables", &[&["-C"][..], &hook[..]].concat())
            .await
            .is_err()
        {
            run("iptables", &[&["-I"][..], &hook[..]].concat()).await?;
        }
        Ok(())
    }

    /// Creates `environment`'s namespace on host `host`, reachable only on `ports`.
    pub async fn create(
        &self,
        environment: EnvironmentId,
        host: u8,
        ports: &[u16],
    ) -> Result<(), DriverError> {
        let namespace = self.namespace(environment);
        let host_veth = self.host_veth(environment);
        let inner = self.inner_veth(environment);
        let address = format!("{}/24", self.address(host));
        let gateway = self.gateway().to_string();
        run("ip", &["netns", "add", &namespace]).await?;
        let veth = [
            "link", "add", &host_veth, "type", "veth", "peer", "name", &inner,
        ];
        run("ip", &veth).await?;
        run("ip", &["link", "set", &inner, "netns", &namespace]).await?;
        let bridge = self.bridge();
        run("ip", &["link", "set", &host_veth, "master", &bridge, "up"]).await?;
        let n = ["-n", namespace.as_str()];
        for args in [
            &["link", "set", &inner, "name", "eth0"][..],
            &["addr", "add", &address, "dev", "eth0"],
            &["link", "set", "eth0", "up"],
            &["link", "set", "lo", "up"],
            &["route", "add", "default", "via", &gateway],
        ] {
            run("ip", &[&n[..], args].concat()).await?;
        }
        run_with_input(
            "ip",
            &["netns", "exec", &namespace, "iptables-restore"],
            &inbound_rules(ports),
        )
        .await
    }

    /// Kills whatever still runs in `environment`'s namespace (it would keep the namespace and
    /// its address alive) and removes the namespace and the veth pair.
    pub async fn remove(&self, environment: EnvironmentId) {
        let namespace = self.namespace(environment);
        let pids = output("ip", &["netns", "pids", &namespace]).await;
        kill(pids.split_whitespace().map(String::from).collect()).await;
        let _ = run("ip", &["netns", "del", &namespace]).await;
        let _ = run("ip", &["link", "del", &self.host_veth(environment)]).await;
    }

    /// The environments with a namespace of this agent.
    pub async fn list(&self) -> Vec<EnvironmentId> {
        let prefix = format!("lg{}-", self.index);
        output("ip", &["netns", "list"])
            .await
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter_map(|name| name.strip_prefix(&prefix).and_then(|id| id.parse().ok()))
            .collect()
    }
}

/// The namespace's `iptables-restore` input: inbound only to `ports`, loopback and replies.
pub fn inbound_rules(ports: &[u16]) -> String {
    let mut rules = String::from(
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A INPUT -i lo -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
    );
    let mut ports = ports.to_vec();
    ports.sort();
    ports.dedup();
    for port in ports {
        rules.push_str(&format!("-A INPUT -p tcp --dport {port} -j ACCEPT\n"));
    }
    rules.push_str("COMMIT\n");
    rules
}
