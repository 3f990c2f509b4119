//! The network of an environment: a named network namespace `lgN-E` joined to the provider's
//! bridge `lgbrN` (`10.88.N.1/24`) by a veth pair (`eth0`, `10.88.N.H/24`, default route via
//! the bridge), its declared ports published on the provider's public address.
//!
//! Firewall (iptables and ip6tables alike, so IPv6 is filtered as IPv4 is):
//! - **inside the namespace**: inbound only to the declared ports (at most
//!   [`CONNECTIONS_PER_SOURCE_MAX`] connections from one source to each), loopback and
//!   replies;
//! - **host input from the bridge** (`LOGOS-LGBRN`): only to the agent's relays on the
//!   bridge address (the chain RPC relay and one p2p relay per genesis validator: the
//!   environments' one path to the chain) and replies; nothing over IPv6;
//! - **forwarding to and from the bridge** (`LOGOS-FWD-N`): only replies, connections the
//!   provider's port mapping translated (`ctstate DNAT`) and traffic between environments on
//!   the bridge: an environment reaches no other host, validators included, and no host
//!   reaches an environment except through a published port;
//! - **port mapping** (`LOGOS-PUB-N` in the `nat` table, from `PREROUTING` and `OUTPUT`):
//!   declared port `p` (the `i`-th of the workload's ports) of the environment on host `H` is
//!   published at `public_ip:publish_port_base + (H − 2) × PORTS_MAX + i`, one rule per port,
//!   added when the environment is created and removed when it is destroyed. When the public
//!   address is not the bridge's own, connections to it are forwarded: if the host did not
//!   forward IPv4, the agent turns forwarding on with the `FORWARD` policy `DROP` (so only
//!   these rules forward) and turns it off again when it takes its network down.
//!
//! Environments on one bridge reach each other's declared ports only (each namespace's own
//! input filter).

use super::command::{kill, output, run, run_with_input};
use crate::driver::DriverError;
use logos_types::{
    operations::{EnvironmentId, PortMapping},
    workload::{published_placeholder, PORTS_MAX},
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Longest Linux interface name (IFNAMSIZ − 1), bytes.
pub const INTERFACE_NAME_MAX_BYTES: usize = 15;
/// First and last host number given to environments (1 is the gateway).
pub const HOSTS: std::ops::RangeInclusive<u8> = 2..=254;
/// The firewall rule's match and target accepting replies to allowed connections.
const REPLIES: [&str; 6] = [
    "-m",
    "conntrack",
    "--ctstate",
    "ESTABLISHED,RELATED",
    "-j",
    "ACCEPT",
];
/// ICMPv6 neighbour discovery (RFC 4861: router solicitation and advertisement, neighbour
/// solicitation and advertisement), let in over IPv6 where everything else is filtered.
const NEIGHBOUR_DISCOVERY: [&str; 4] = [
    "router-solicitation",
    "router-advertisement",
    "neighbour-solicitation",
    "neighbour-advertisement",
];
/// Connections one source (an IPv4 address, an IPv6 /64) may hold open to one declared port
/// of an environment; more are refused (see [`inbound_rules`]). Sources behind one address (a
/// NAT, or every process of the provider's own host on a single-host devnet) share it.
pub const CONNECTIONS_PER_SOURCE_MAX: u32 = 32;
/// Published ports one agent uses from its base: every host number times [`PORTS_MAX`].
pub const PUBLISHED_PORTS: u16 = 253 * PORTS_MAX as u16;

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
    /// The provider's address environments' ports are published on (the bridge address on a
    /// single-host devnet).
    pub public_ip: Ipv4Addr,
    /// First published port (see the module docs); at most `65535 − PUBLISHED_PORTS`.
    pub publish_port_base: u16,
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

    /// The host end of the veth pair of the environment on host `host` (host numbers are
    /// unique per agent, so no two environments share a name).
    pub fn host_veth(&self, host: u8) -> String {
        format!("lg{}h{host}", self.index)
    }

    fn inner_veth(&self, host: u8) -> String {
        format!("lg{}c{host}", self.index)
    }

    fn input_chain(&self) -> String {
        format!("LOGOS-{}", self.bridge().to_uppercase())
    }

    fn forward_chain(&self) -> String {
        format!("LOGOS-FWD-{}", self.index)
    }

    fn publish_chain(&self) -> String {
        format!("LOGOS-PUB-{}", self.index)
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

    /// Where `ports` of the environment on `host` are published (see the module docs), in
    /// their order; `None` if `host` is outside [`HOSTS`] or a port would pass 65535.
    pub fn published(&self, host: u8, ports: &[u16]) -> Option<Vec<PortMapping>> {
        if !HOSTS.contains(&host) {
            return None;
        }
        let first = u32::from(self.publish_port_base) + u32::from(host - 2) * PORTS_MAX as u32;
        ports
            .iter()
            .take(PORTS_MAX)
            .zip(0u32..)
            .map(|(port, offset)| {
                let published = u16::try_from(first + offset).ok()?;
                Some(PortMapping {
                    port: *port,
                    published,
                })
            })
            .collect()
    }

    /// `public_ip:port`.
    pub fn endpoint(&self, published: u16) -> String {
        SocketAddr::new(self.public_ip.into(), published).to_string()
    }

    /// `argument` with each `${PUBLISHED:<port>}` of a port in `ports` replaced by its
    /// [`Self::endpoint`] (others are left as they are: the chain refuses a template whose
    /// placeholder names a port it does not declare).
    pub fn with_published(&self, argument: String, ports: &[PortMapping]) -> String {
        ports.iter().fold(argument, |argument, mapping| {
            let placeholder = published_placeholder(mapping.port);
            match argument.contains(&placeholder) {
                true => argument.replace(&placeholder, &self.endpoint(mapping.published)),
                false => argument,
            }
        })
    }

    /// Creates the bridge, its address and the host firewall (idempotent; the port mappings
    /// are emptied, the driver publishes its environments' ports again). When the public
    /// address is not the bridge's and the host does not forward IPv4, forwarding is turned
    /// on with the `FORWARD` policy set to `DROP` (so only the agent's rules forward), and
    /// `marker` remembers it for [`Self::teardown_host`].
    pub async fn prepare_host(&self, marker: &std::path::Path) -> Result<(), DriverError> {
        let bridge = self.bridge();
        if run("ip", &["link", "show", &bridge]).await.is_err() {
            run("ip", &["link", "add", &bridge, "type", "bridge"]).await?;
        }
        let address = format!("{}/24", self.gateway());
        run("ip", &["addr", "replace", &address, "dev", &bridge]).await?;
        run("ip", &["link", "set", &bridge, "up"]).await?;
        self.input_firewall(&bridge).await?;
        self.forward_firewall(&bridge).await?;
        self.publish_firewall().await?;
        if self.public_ip != self.gateway() {
            self.enable_forwarding(marker).await?;
        }
        Ok(())
    }

    async fn enable_forwarding(&self, marker: &std::path::Path) -> Result<(), DriverError> {
        let setting = "/proc/sys/net/ipv4/ip_forward";
        let current = tokio::fs::read_to_string(setting).await.unwrap_or_default();
        if current.trim() == "1" {
            return Ok(());
        }
        run("iptables", &["-P", "FORWARD", "DROP"]).await?;
        tokio::fs::write(marker, "forwarding enabled by the agent\n")
            .await
            .map_err(|error| DriverError::System(format!("{}: {error}", marker.display())))?;
        tokio::fs::write(setting, "1")
            .await
            .map_err(|error| DriverError::System(format!("ip_forward: {error}")))
    }

    /// Creates (or empties) chain `chain` of `table` for `tool` and hooks it from `hooks`
    /// (each a builtin chain with its match), once.
    async fn chain(
        tool: &str,
        table: &str,
        chain: &str,
        hooks: &[(&str, Vec<&str>)],
    ) -> Result<(), DriverError> {
        let _ = run(tool, &["-t", table, "-N", chain]).await;
        run(tool, &["-t", table, "-F", chain]).await?;
        for (builtin, matches) in hooks {
            let rule = [&[*builtin][..], matches, &["-j", chain]].concat();
            let check = [&["-t", table, "-C"][..], &rule].concat();
            if run(tool, &check).await.is_err() {
                run(tool, &[&["-t", table, "-I"][..], &rule].concat()).await?;
            }
        }
        Ok(())
    }

    /// From the bridge, the host accepts only replies and connections to the relays.
    async fn input_firewall(&self, bridge: &str) -> Result<(), DriverError> {
        let chain = self.input_chain();
        let hook = [("INPUT", vec!["-i", bridge])];
        Self::chain("iptables", "filter", &chain, &hook).await?;
        Self::chain("ip6tables", "filter", &chain, &hook).await?;
        for tool in ["iptables", "ip6tables"] {
            run(tool, &[&["-A", &chain][..], &REPLIES].concat()).await?;
        }
        // Only to the relays' own address: not to whatever else listens on the host.
        let gateway = self.gateway().to_string();
        let relay = self.relay_port.to_string();
        let to_relay = ["-A", &chain, "-d", &gateway, "-p", "tcp", "--dport"];
        run(
            "iptables",
            &[&to_relay[..], &[&relay, "-j", "ACCEPT"]].concat(),
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
        for ndp in NEIGHBOUR_DISCOVERY {
            let rule = [
                "-A",
                &chain,
                "-p",
                "ipv6-icmp",
                "--icmpv6-type",
                ndp,
                "-j",
                "ACCEPT",
            ];
            run("ip6tables", &rule).await?;
        }
        for tool in ["iptables", "ip6tables"] {
            run(tool, &["-A", &chain, "-j", "DROP"]).await?;
        }
        Ok(())
    }

    /// Through the host, to and from the bridge: replies and published connections only.
    async fn forward_firewall(&self, bridge: &str) -> Result<(), DriverError> {
        let chain = self.forward_chain();
        let hooks = [
            ("FORWARD", vec!["-i", bridge]),
            ("FORWARD", vec!["-o", bridge]),
        ];
        Self::chain("iptables", "filter", &chain, &hooks).await?;
        Self::chain("ip6tables", "filter", &chain, &hooks).await?;
        run("iptables", &[&["-A", &chain][..], &REPLIES].concat()).await?;
        let published = [
            "-A",
            &chain,
            "-o",
            bridge,
            "-m",
            "conntrack",
            "--ctstate",
            "DNAT",
            "-j",
            "ACCEPT",
        ];
        run("iptables", &published).await?;
        // Between environments on the bridge (seen here when the kernel filters bridged
        // traffic, br_netfilter): each namespace's own input filter admits declared ports only.
        let within = ["-A", &chain, "-i", bridge, "-o", bridge, "-j", "ACCEPT"];
        run("iptables", &within).await?;
        for tool in ["iptables", "ip6tables"] {
            run(tool, &["-A", &chain, "-j", "DROP"]).await?;
        }
        Ok(())
    }

    /// The (empty) port mapping chain, hooked for connections to the public address.
    async fn publish_firewall(&self) -> Result<(), DriverError> {
        let public = self.public_ip.to_string();
        let to_public = vec!["-d", public.as_str()];
        let hooks = [("PREROUTING", to_public.clone()), ("OUTPUT", to_public)];
        Self::chain("iptables", "nat", &self.publish_chain(), &hooks).await
    }

    /// The `nat` rules publishing `mappings` of the environment on `host` (without `-A`/`-D`).
    fn mapping_rules(
        &self,
        environment: EnvironmentId,
        host: u8,
        mappings: &[PortMapping],
    ) -> Vec<Vec<String>> {
        let public = self.public_ip.to_string();
        mappings
            .iter()
            .map(|mapping| {
                let target = SocketAddr::new(self.address(host).into(), mapping.port).to_string();
                [
                    &self.publish_chain(),
                    "-d",
                    &public,
                    "-p",
                    "tcp",
                    "--dport",
                    &mapping.published.to_string(),
                    "-m",
                    "comment",
                    "--comment",
                    &format!("env-{environment}"),
                    "-j",
                    "DNAT",
                    "--to-destination",
                    &target,
                ]
                .iter()
                .map(|part| part.to_string())
                .collect()
            })
            .collect()
    }

    /// Publishes `ports` of the environment on `host`; returns where (idempotent).
    pub async fn publish(
        &self,
        environment: EnvironmentId,
        host: u8,
        ports: &[u16],
    ) -> Result<Vec<PortMapping>, DriverError> {
        let mappings = self
            .published(host, ports)
            .ok_or_else(|| DriverError::Capacity(format!("no published port for host {host}")))?;
        for rule in self.mapping_rules(environment, host, &mappings) {
            let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
            let check = [&["-t", "nat", "-C"][..], &rule].concat();
            if run("iptables", &check).await.is_err() {
                run("iptables", &[&["-t", "nat", "-A"][..], &rule].concat()).await?;
            }
        }
        Ok(mappings)
    }

    /// Removes what [`Self::publish`] added (nothing if absent).
    pub async fn unpublish(&self, environment: EnvironmentId, host: u8, ports: &[u16]) {
        let Some(mappings) = self.published(host, ports) else {
            return;
        };
        for rule in self.mapping_rules(environment, host, &mappings) {
            let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
            while run("iptables", &[&["-t", "nat", "-D"][..], &rule].concat())
                .await
                .is_ok()
            {}
        }
    }

    /// The rules of the `nat` chain naming `environment` (for tests and leak checks).
    pub async fn published_rules(&self, environment: EnvironmentId) -> Vec<String> {
        let marker = format!("env-{environment} ");
        output("iptables", &["-t", "nat", "-S", &self.publish_chain()])
            .await
            .lines()
            .filter(|line| line.contains(&marker) || line.ends_with(&format!("env-{environment}")))
            .map(String::from)
            .collect()
    }

    /// Whether `environment`'s namespace exists.
    pub async fn exists(&self, environment: EnvironmentId) -> bool {
        self.list().await.contains(&environment)
    }

    /// Creates `environment`'s namespace on host `host`, reachable only on `ports`; with
    /// `low_ports`, the workload may bind ports below 1024 in it (the template keeps
    /// `NET_BIND_SERVICE`: the namespace is not the workload's user namespace's, so the
    /// capability alone would not do).
    pub async fn create(
        &self,
        environment: EnvironmentId,
        host: u8,
        ports: &[u16],
        low_ports: bool,
    ) -> Result<(), DriverError> {
        let namespace = self.namespace(environment);
        let host_veth = self.host_veth(host);
        let inner = self.inner_veth(host);
        // Left by a creation that did not finish: the name is this environment's host's.
        let _ = run("ip", &["link", "del", &host_veth]).await;
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
        if low_ports {
            let sysctl = ["netns", "exec", &namespace, "sysctl", "-qw"];
            let setting = "net.ipv4.ip_unprivileged_port_start=0";
            run("ip", &[&sysctl[..], &[setting]].concat()).await?;
        }
        self.admit(environment, ports).await
    }

    /// Replaces the namespace's input filter (IPv4 and IPv6) to admit exactly `ports`.
    pub async fn admit(
        &self,
        environment: EnvironmentId,
        ports: &[u16],
    ) -> Result<(), DriverError> {
        let namespace = self.namespace(environment);
        for (restore, ipv6) in [("iptables-restore", false), ("ip6tables-restore", true)] {
            let args = ["netns", "exec", &namespace, restore, "-w"];
            run_with_input("ip", &args, &inbound_rules(ports, ipv6)).await?;
        }
        Ok(())
    }

    /// Kills whatever still runs in `environment`'s namespace (it would keep the namespace and
    /// its address alive) and removes the namespace (its veth pair goes with it), and the host
    /// end of a pair left outside by a creation that did not finish (with `host`, when known).
    pub async fn remove(&self, environment: EnvironmentId, host: Option<u8>) {
        let namespace = self.namespace(environment);
        let pids = output("ip", &["netns", "pids", &namespace]).await;
        kill(pids.split_whitespace().map(String::from).collect()).await;
        let _ = run("ip", &["netns", "del", &namespace]).await;
        if let Some(host) = host {
            let _ = run("ip", &["link", "del", &self.host_veth(host)]).await;
        }
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

    /// Removes the bridge, the firewall chains and their hooks (after every environment is
    /// gone) and turns forwarding off again if [`Self::prepare_host`] turned it on, leaving the
    /// host as before.
    pub async fn teardown_host(&self, marker: &std::path::Path) {
        if tokio::fs::remove_file(marker).await.is_ok() {
            let _ = tokio::fs::write("/proc/sys/net/ipv4/ip_forward", "0").await;
            let _ = run("iptables", &["-P", "FORWARD", "ACCEPT"]).await;
        }
        let bridge = self.bridge();
        let public = self.public_ip.to_string();
        let hooks: [(&str, &str, String, Vec<&str>); 5] = [
            ("filter", "INPUT", self.input_chain(), vec!["-i", &bridge]),
            (
                "filter",
                "FORWARD",
                self.forward_chain(),
                vec!["-i", &bridge],
            ),
            (
                "filter",
                "FORWARD",
                self.forward_chain(),
                vec!["-o", &bridge],
            ),
            (
                "nat",
                "PREROUTING",
                self.publish_chain(),
                vec!["-d", &public],
            ),
            ("nat", "OUTPUT", self.publish_chain(), vec!["-d", &public]),
        ];
        for tool in ["iptables", "ip6tables"] {
            for (table, builtin, chain, matches) in &hooks {
                let rule = [&["-t", table, "-D", builtin][..], matches, &["-j", chain]].concat();
                while run(tool, &rule).await.is_ok() {}
            }
            for chain in [self.input_chain(), self.forward_chain()] {
                let _ = run(tool, &["-F", &chain]).await;
                let _ = run(tool, &["-X", &chain]).await;
            }
        }
        let _ = run("iptables", &["-t", "nat", "-F", &self.publish_chain()]).await;
        let _ = run("iptables", &["-t", "nat", "-X", &self.publish_chain()]).await;
        let _ = run("ip", &["link", "del", &bridge]).await;
    }

    /// Every firewall rule of this agent's chains and hooks, and its bridge if present (for
    /// leak checks: empty after [`Self::teardown_host`]).
    pub async fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        let names = [
            self.input_chain(),
            self.forward_chain(),
            self.publish_chain(),
        ];
        for (tool, table) in [
            ("iptables", "filter"),
            ("ip6tables", "filter"),
            ("iptables", "nat"),
        ] {
            let rules = output(tool, &["-t", table, "-S"]).await;
            found.extend(
                rules
                    .lines()
                    .filter(|line| names.iter().any(|name| line.contains(name.as_str())))
                    .map(|line| format!("{tool} -t {table}: {line}")),
            );
        }
        if run("ip", &["link", "show", &self.bridge()]).await.is_ok() {
            found.push(format!("bridge {}", self.bridge()));
        }
        found
    }
}

/// The namespace's `iptables-restore` (or, with `ipv6`, `ip6tables-restore`) input: inbound
/// only to `ports`, loopback and replies (and IPv6 neighbour discovery, without which no IPv6
/// packet reaches anyone: IPv4's ARP is not filtered); nothing forwarded. A source (an IPv4
/// address, an IPv6 /64) opens at most [`CONNECTIONS_PER_SOURCE_MAX`] connections to each
/// port; more are reset at their SYN (`connlimit`), so one client cannot take every slot or
/// pid of a server that forks per connection.
pub fn inbound_rules(ports: &[u16], ipv6: bool) -> String {
    let mut rules = String::from(
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A INPUT -i lo -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
    );
    if ipv6 {
        for ndp in NEIGHBOUR_DISCOVERY {
            rules.push_str(&format!(
                "-A INPUT -p ipv6-icmp --icmpv6-type {ndp} -j ACCEPT\n"
            ));
        }
    }
    let mut ports = ports.to_vec();
    ports.sort();
    ports.dedup();
    let mask = if ipv6 { 64 } else { 32 };
    for port in ports {
        rules.push_str(&format!(
            "-A INPUT -p tcp --syn --dport {port} -m connlimit --connlimit-above \
             {CONNECTIONS_PER_SOURCE_MAX} --connlimit-mask {mask} -j REJECT --reject-with \
             tcp-reset\n-A INPUT -p tcp --dport {port} -j ACCEPT\n"
        ));
    }
    rules.push_str("COMMIT\n");
    rules
}
