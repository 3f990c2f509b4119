//! `logos devnet --hosts`: a test network of hosts on one machine. Every validator, full node
//! and provider runs in a network namespace of its own ("host") with its own address on a
//! devnet bridge, as separate machines on one LAN would; a tenant host is there for the
//! tenant's commands.
//!
//! For network base index `B` (`--network-base-index`):
//!
//! | host | namespace | address |
//! |---|---|---|
//! | this machine (the devnet, the registry) | the initial one | `10.77.B.1` on bridge `lgdvB` |
//! | validator `i` | `lgdBv<i>` | `10.77.B.(10 + i)` |
//! | full node `k` | `lgdBf<k>` | `10.77.B.(50 + k)` |
//! | provider `k` | `lgdBp<k>` | `10.77.B.(100 + k)` |
//! | tenant | `lgdBt` | `10.77.B.200` |
//!
//! Each host's interface is one end of a veth pair whose other end is on the bridge. Nothing
//! is routed between hosts but this /24; a provider's environments sit behind its own bridge
//! and are reached only at the ports it publishes on its address. Processes enter their host
//! with `nsenter --net` (only the network namespace: cgroups and mounts stay the machine's, as
//! a provider agent needs them).

use anyhow::{bail, Context, Result};
use std::{
    net::Ipv4Addr,
    process::{Command, Stdio},
};

/// Most validators, full nodes or providers a `--hosts` devnet places (address blocks).
pub const HOSTS_PER_ROLE_MAX: usize = 40;

/// The roles hosts play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Validator `i`.
    Validator(usize),
    /// Full node `k`.
    FullNode(usize),
    /// Provider `k`.
    Provider(usize),
    /// The tenant's host.
    Tenant,
}

/// One host (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Its network namespace.
    pub namespace: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// Its veth end on the bridge.
    veth: String,
}

/// The hosts of a devnet with base index `index`.
#[derive(Clone, Copy, Debug)]
pub struct Hosts {
    index: u8,
}

impl Hosts {
    /// The layout of base index `index`.
    pub fn new(index: u8) -> Self {
        Self { index }
    }

    /// The bridge's name.
    pub fn bridge(&self) -> String {
        format!("lgdv{}", self.index)
    }

    /// This machine's address on the bridge (the registry listens there).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.index, 1)
    }

    /// The host playing `role`.
    pub fn host(&self, role: Role) -> Host {
        let (tag, last) = match role {
            Role::Validator(i) => (format!("v{i}"), 10 + i),
            Role::FullNode(k) => (format!("f{k}"), 50 + k),
            Role::Provider(k) => (format!("p{k}"), 100 + k),
            Role::Tenant => ("t".to_string(), 200),
        };
        let last = u8::try_from(last).unwrap_or(u8::MAX);
        Host {
            namespace: format!("lgd{}{tag}", self.index),
            address: Ipv4Addr::new(10, 77, self.index, last),
            veth: format!("lgd{}{tag}h", self.index),
        }
    }

    /// Creates the bridge and the hosts of `roles` (after removing any left by an earlier run).
    pub fn create(&self, roles: &[Role]) -> Result<()> {
        self.destroy(roles);
        let bridge = self.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", self.gateway()),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for role in roles {
            let host = self.host(*role);
            run("ip", &["netns", "add", &host.namespace])?;
            run(
                "ip",
                &[
                    "link",
                    "add",
                    &host.veth,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &host.namespace,
                ],
            )?;
            run("ip", &["link", "set", &host.veth, "master", &bridge, "up"])?;
            let inside = ["-n", host.namespace.as_str()];
            run(
                "ip",
                &[
                    &inside[..],
                    &[
                        "addr",
                        "add",
                        &format!("{}/24", host.address),
                        "dev",
                        "eth0",
                    ],
                ]
                .concat(),
            )?;
            run(
                "ip",
                &[&inside[..], &["link", "set", "eth0", "up"]].concat(),
            )?;
            run("ip", &[&inside[..], &["link", "set", "lo", "up"]].concat())?;
        }
        Ok(())
    }

    /// Removes the hosts of `roles` (killing what still runs in them) and the bridge.
    pub fn destroy(&self, roles: &[Role]) {
        for role in roles {
            let host = self.host(*role);
            let pids = Command::new("ip")
                .args(["netns", "pids", &host.namespace])
                .output();
            if let Ok(pids) = pids {
                for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = run("ip", &["netns", "del", &host.namespace]);
            let _ = run("ip", &["link", "del", &host.veth]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }

    /// The roles of a devnet of `validators`, `full_nodes` and `providers`.
    pub fn roles(validators: usize, full_nodes: usize, providers: usize) -> Result<Vec<Role>> {
        if [validators, full_nodes, providers]
            .iter()
            .any(|count| *count > HOSTS_PER_ROLE_MAX)
        {
            bail!("--hosts places at most {HOSTS_PER_ROLE_MAX} validators, full nodes and providers each");
        }
        Ok((0..validators)
            .map(Role::Validator)
            .chain((0..full_nodes).map(Role::FullNode))
            .chain((0..providers).map(Role::Provider))
            .chain([Role::Tenant])
            .collect())
    }
}

/// `program args…` run inside `host` (its network namespace only).
pub fn command_in(host: Option<&Host>, program: &std::path::Path) -> Command {
    match host {
        Some(host) => {
            let mut command = Command::new("nsenter");
            command
                .arg(format!("--net=/run/netns/{}", host.namespace))
                .arg("--")
                .arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{program}: not installed?"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_its_own_namespace_address_and_short_interface_name() {
        let hosts = Hosts::new(201);
        let roles = Hosts::roles(40, 40, 40).unwrap();
        let placed: Vec<Host> = roles.iter().map(|role| hosts.host(*role)).collect();
        for (i, host) in placed.iter().enumerate() {
            assert!(host.veth.len() <= 15, "{}", host.veth);
            assert!(placed[..i]
                .iter()
                .all(|other| other.address != host.address && other.namespace != host.namespace));
            assert_ne!(host.address, hosts.gateway());
        }
        assert_eq!(
            hosts.host(Role::Provider(1)).address,
            Ipv4Addr::new(10, 77, 201, 101)
        );
        assert!(Hosts::roles(41, 0, 0).is_err());
    }
}
