//! Other public chains' nodes leased from the devnet's catalog, each tested against a private
//! regtest network of its chain run on the test's host: the "Litecoin regtest node" (Debian's
//! litecoind) and the "Monero regtest node" (Debian's monerod), from the project's images.
//!
//! Each lease stays Pending, never Verified, while its node has not synced: its health check
//! answers 503 and says why. A host node of the same chain then mines blocks and dials the
//! lease's published p2p port; the lease turns Verified once the leased node holds the host's
//! chain, and its health check answers 200 with the host's height. From the attacker's side:
//! the node's RPC port is neither declared nor reachable at the environment's address, and the
//! health server serves only its check (no path traversal, no other script, a query string
//! changes nothing). Needs root, as the sub0layer tests do, and Debian's litecoind and monero
//! (scripts/install-deps).

use logos_client::{
    tenant::{catalog, create_lease},
    Client, Wallet,
};
use logos_types::{
    dvci::RegionId,
    market::LeaseId,
    operations::{ConditionStatus, ConditionType, Environment, EnvironmentId, Environments, Phase},
};
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

mod common;

use common::{eventually, eventually_or, runtime, sub0::Devnet};

/// The health check both images serve on their port 8080.
const HEALTH_PATH: &str = "/cgi-bin/synced";
/// Blocks the host litecoind mines: past coinbase maturity, as a regtest network starts.
const LITECOIN_BLOCKS: u32 = 101;
/// Blocks the host monerod mines.
const MONERO_BLOCKS: u32 = 5;
/// An output script of `OP_TRUE` (anyone can spend): mining needs no wallet.
const ANYONE_CAN_SPEND: &str = "raw(51)#8lvh9jxk";
/// A valid Monero address (the Monero project's donation address) to mine regtest blocks to.
const MONERO_ADDRESS: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";
/// Longest wait for a leased node to start, or to sync once its network is there.
const NODE_WAIT: Duration = Duration::from_secs(240);
/// Blocks each lease pays for.
const LEASE_BLOCKS: u64 = 20_000;

/// A chain node run on the test's host, killed when dropped.
struct HostNode {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for HostNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's regtest litecoind: RPC on loopback at `rpc_port`, no listening socket (it only
/// dials the leased node).
fn host_litecoind(rpc_port: u16) -> HostNode {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("/usr/lib/litecoin/litecoind")
        .arg("-regtest")
        .arg(format!("-datadir={}", dir.path().display()))
        .arg(format!("-rpcport={rpc_port}"))
        .args([
            "-listen=0",
            "-server",
            "-disablewallet",
            "-rpcbind=127.0.0.1",
        ])
        .args(["-rpcallowip=127.0.0.1"])
        .stdout(Stdio::null())
        .spawn()
        .expect("litecoind (scripts/install-deps installs it)");
    HostNode { child, dir }
}

/// `litecoin-cli <args>` against the host's litecoind: its standard output, or its error.
fn try_litecoin_cli(node: &HostNode, rpc_port: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new("litecoin-cli")
        .arg("-regtest")
        .arg(format!("-datadir={}", node.dir.path().display()))
        .arg(format!("-rpcport={rpc_port}"))
        .args(args)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// `litecoin-cli <args>`, which must succeed; its standard output.
fn litecoin_cli(node: &HostNode, rpc_port: u16, args: &[&str]) -> String {
    try_litecoin_cli(node, rpc_port, args).unwrap_or_else(|error| panic!("{args:?}: {error}"))
}

/// The host's regtest monerod (fixed difficulty 1, as the template's) in `dir`: p2p and RPC on
/// loopback; `offline` (it mines alone: a node with no peer is not synchronized and refuses
/// to), or with the leased node at `peer` as its only peer. The chain is kept across runs.
fn host_monerod(dir: &Path, ports: (u16, u16), peer: Option<&str>) -> Child {
    let mut command = Command::new("monerod");
    command
        .args(["--regtest", "--keep-fakechain", "--fixed-difficulty", "1"])
        .args(["--non-interactive", "--data-dir"])
        .arg(dir)
        .args(["--p2p-bind-ip", "127.0.0.1", "--p2p-bind-port"])
        .arg(ports.0.to_string())
        .args(["--rpc-bind-ip", "127.0.0.1", "--rpc-bind-port"])
        .arg(ports.1.to_string())
        .args(["--no-igd", "--no-zmq", "--check-updates", "disabled"])
        .arg("--log-file")
        .arg(dir.join("monerod.log"))
        .stdout(Stdio::null());
    match peer {
        Some(peer) => command.args(["--add-exclusive-node", peer]),
        None => command.arg("--offline"),
    };
    command
        .spawn()
        .expect("monerod (scripts/install-deps installs it)")
}

/// A host monerod that has mined `blocks` blocks alone and then joined the leased node at
/// `peer`; its height.
fn monero_network(ports: (u16, u16), peer: &str) -> (HostNode, u64) {
    let (dir, rpc_port) = (tempfile::tempdir().unwrap(), ports.1);
    let mut alone = host_monerod(dir.path(), ports, None);
    eventually("the host's monerod", NODE_WAIT, || {
        monero_rpc(rpc_port, "/get_info", "{}")
    });
    let generate = serde_json::json!({
        "jsonrpc": "2.0", "id": "0", "method": "generateblocks",
        "params": { "amount_of_blocks": MONERO_BLOCKS, "wallet_address": MONERO_ADDRESS },
    });
    let mined = monero_rpc(rpc_port, "/json_rpc", &generate.to_string()).unwrap();
    assert_eq!(mined["result"]["status"], "OK", "{mined}");
    // Stopped through its RPC, so that it writes its chain (a signal may lose it).
    monero_rpc(rpc_port, "/stop_daemon", "{}").unwrap();
    alone.wait().unwrap();
    let child = host_monerod(dir.path(), ports, Some(peer));
    let info = eventually("the host's monerod again", NODE_WAIT, || {
        monero_rpc(rpc_port, "/get_info", "{}")
    });
    let height = info["height"].as_u64().unwrap();
    (HostNode { child, dir }, height)
}

/// `POST http://127.0.0.1:{rpc_port}{path}` with a JSON body to the host's monerod; the parsed
/// answer, or `None` while it does not answer.
fn monero_rpc(rpc_port: u16, path: &str, body: &str) -> Option<serde_json::Value> {
    let output = Command::new("curl")
        .args(["-sS", "-f", "-m", "60", "-d", body])
        .arg(format!("http://127.0.0.1:{rpc_port}{path}"))
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

/// `GET http://{address}{path}`: (status, body), or `None` if nothing answered within 5 s.
fn get(address: &str, path: &str) -> Option<(u16, String)> {
    let output = Command::new("curl")
        .args([
            "-sS",
            "--path-as-is",
            "-m",
            "5",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("http://{address}{path}"))
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n')?;
    Some((status.parse().ok()?, body.to_string()))
}

/// The tail of `lease`'s workload output as its tenant reads it (`logos env logs`), and its
/// last health answer: what a failure shows.
fn diagnosis(devnet: &Devnet, node: &Leased) -> String {
    format!(
        "health: {:?}\nlogs:\n{}",
        get(&node.endpoint, HEALTH_PATH),
        devnet.logs(node.lease.get(), 4096)
    )
}

/// A leased chain node as the tenant sees it.
struct Leased {
    lease: LeaseId,
    /// The health port as published (`host:port`).
    endpoint: String,
    /// The node's p2p port as published (`host:port`).
    p2p: String,
}

/// The lease's environment as finalized.
fn environment(rt: &tokio::runtime::Runtime, client: &Client, lease: LeaseId) -> Environment {
    let id = EnvironmentId::from(lease);
    rt.block_on(client.map::<Environments>(&id))
        .unwrap()
        .0
        .expect("the lease's environment")
}

/// Leases the catalog's template named `name` from `tenant`.
fn lease(rt: &tokio::runtime::Runtime, client: &Client, tenant: &Wallet, name: &str) -> LeaseId {
    let entries = rt.block_on(catalog(client)).unwrap();
    let entry = entries
        .iter()
        .find(|entry| entry.template.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name:?} is in the devnet's catalog"));
    rt.block_on(create_lease(
        client,
        tenant,
        entry.id,
        RegionId(1),
        LEASE_BLOCKS,
    ))
    .unwrap()
    .0
}

/// Waits until `lease`'s environment reports its ports; checks only `ports` are declared.
fn reported(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    lease: LeaseId,
    p2p_port: u16,
) -> Leased {
    let record = eventually("the leased node's ports", NODE_WAIT, || {
        let record = environment(rt, client, lease);
        (!record.ports.is_empty() && !record.endpoint.is_empty()).then_some(record)
    });
    let declared: Vec<u16> = record.ports.iter().map(|mapping| mapping.port).collect();
    assert_eq!(declared, [p2p_port, 8080], "only p2p and health are open");
    let endpoint = record.endpoint.to_string();
    let (host, _) = endpoint.rsplit_once(':').unwrap();
    let published = record.ports.iter().find(|m| m.port == p2p_port).unwrap();
    Leased {
        lease,
        p2p: format!("{host}:{}", published.published),
        endpoint,
    }
}

/// Waits until the node's health check answers 503 with `unsynced` in its body, and checks
/// the lease is then neither Ready nor Verified.
fn refused_while_unsynced(
    rt: &tokio::runtime::Runtime,
    (devnet, client): (&Devnet, &Client),
    node: &Leased,
    unsynced: &str,
) {
    let body = eventually_or(
        "the node's health check to say why it is unsynced",
        NODE_WAIT,
        || {
            get(&node.endpoint, HEALTH_PATH)
                .filter(|(status, body)| *status == 503 && body.contains(unsynced))
        },
        || diagnosis(devnet, node),
    );
    let record = environment(rt, client, node.lease);
    assert_ne!(record.phase, Phase::Running, "{body:?}");
    for kind in [ConditionType::Ready, ConditionType::Verified] {
        assert_ne!(
            record.condition(kind).status,
            ConditionStatus::True,
            "{body:?}"
        );
    }
}

/// Waits until the lease is Verified; the health check's body then.
fn verified(
    rt: &tokio::runtime::Runtime,
    (devnet, client): (&Devnet, &Client),
    node: &Leased,
) -> String {
    eventually_or(
        "the synced node's lease to be Verified",
        NODE_WAIT,
        || {
            let record = environment(rt, client, node.lease);
            let verified = record.condition(ConditionType::Verified).status;
            (verified == ConditionStatus::True).then_some(())
        },
        || diagnosis(devnet, node),
    );
    let (status, body) = get(&node.endpoint, HEALTH_PATH).expect("health check answers");
    assert_eq!(status, 200, "{body}");
    body
}

/// The network namespace of `lease`'s environment (devnet provider `k` is agent `k`).
fn namespace(devnet: &Devnet, record: &Environment, lease: LeaseId) -> String {
    let index = u64::from(devnet.network_index) + record.provider.0;
    format!("lg{index}-{}", EnvironmentId::from(lease))
}

/// The local addresses TCP sockets listen on inside `namespace` (`ss`).
fn listeners(namespace: &str) -> Vec<String> {
    let output = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{namespace}"))
        .args(["--", "ss", "-Hltn"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.lines()
        .filter_map(|line| line.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

/// What an attacker tries against a node's health server, and where its RPC listens.
fn attack_health_server_and_rpc(devnet: &Devnet, record: &Environment, node: &Leased, rpc: u16) {
    for path in [
        "/../../etc/passwd",
        "/cgi-bin/../../etc/passwd",
        "/cgi-bin/%2e%2e/%2e%2e/etc/passwd",
        "/cgi-bin/entrypoint",
        "/usr/local/bin/litecoin-node",
    ] {
        let answer = get(&node.endpoint, path);
        assert!(
            answer
                .as_ref()
                .is_none_or(|(status, body)| *status != 200 && !body.contains("root:")),
            "{path}: {answer:?}"
        );
    }
    let plain = get(&node.endpoint, HEALTH_PATH).unwrap();
    let queried = get(
        &node.endpoint,
        &format!("{HEALTH_PATH}?$(id)&x=%0aStatus:%20200"),
    )
    .unwrap();
    assert_eq!(plain.0, queried.0, "{queried:?}");
    assert!(!queried.1.contains("uid="), "{queried:?}");
    // Not only filtered: the node's RPC listens on the environment's loopback alone, where
    // the health server listens on every address.
    let listening = listeners(&namespace(devnet, record, node.lease));
    let on_port = |port: u16| -> Vec<&String> {
        let suffix = format!(":{port}");
        listening.iter().filter(|a| a.ends_with(&suffix)).collect()
    };
    assert_eq!(on_port(rpc), [&format!("127.0.0.1:{rpc}")], "{listening:?}");
    assert!(
        on_port(8080)
            .iter()
            .any(|a| a.starts_with("0.0.0.0:") || a.starts_with("*:")),
        "{listening:?}"
    );
}

/// From the attacker's side: one source opens far more idle connections to the health port
/// than the agent's firewall lets one source hold (each would be a forked `httpd` waiting for a
/// request, and enough of them would exhaust the environment's pids and kill its PID 1). The
/// excess is reset at once; once the flood ends the check answers again and the lease stays
/// Verified.
fn flood_from_one_source(
    rt: &tokio::runtime::Runtime,
    (devnet, client): (&Devnet, &Client),
    node: &Leased,
) {
    const FLOOD: usize = 200;
    let address: std::net::SocketAddr = node.endpoint.parse().unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..FLOOD {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5)) {
            Ok(stream) => held.push(stream),
            Err(error) => {
                assert_eq!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionRefused,
                    "{error}"
                );
                refused += 1;
            }
        }
    }
    // This host is one source (the bridge address); a probe of the provisioners may hold a
    // slot meanwhile.
    assert!(
        (28..=32).contains(&held.len()) && refused == FLOOD - held.len(),
        "{} held, {refused} refused",
        held.len()
    );
    drop(held);
    let (status, body) = eventually("the check after the flood", NODE_WAIT, || {
        get(&node.endpoint, HEALTH_PATH).filter(|(status, _)| *status == 200)
    });
    assert!(body.contains("synced"), "{status} {body}");
    // A checker's probe from this host may have been refused during the flood: Verified
    // again (the workload lived through it).
    verified(rt, (devnet, client), node);
}

/// Leases the catalog's template `name` and waits until it is reported, then until its
/// health check says `unsynced` (the lease neither Ready nor Verified), and tries the
/// attacker's requests on it (its RPC on `rpc_port`).
fn unsynced_lease(
    rt: &tokio::runtime::Runtime,
    (devnet, client): (&Devnet, &Client),
    name: &str,
    (p2p_port, rpc_port): (u16, u16),
    unsynced: &str,
) -> Leased {
    let id = lease(rt, client, &devnet.wallet("dev"), name);
    let node = reported(rt, client, id, p2p_port);
    refused_while_unsynced(rt, (devnet, client), &node, unsynced);
    let record = environment(rt, client, node.lease);
    attack_health_server_and_rpc(devnet, &record, &node, rpc_port);
    node
}

#[test]
fn litecoin_and_monero_nodes_are_verified_only_once_synced_with_their_network() {
    let devnet = Devnet::start("chains", 25_100, 81, &[]);
    let rt = runtime();
    let client = rt.block_on(Client::connect(&devnet.rpc)).unwrap();
    // 10 minutes (24,000 blocks of 25 ms) to be verified, which waits for the test's network.
    devnet.give_leases_time(24_000);

    // Litecoin: in initial block download with no peer, so not Verified.
    let litecoin = unsynced_lease(
        &rt,
        (&devnet, &client),
        "Litecoin regtest node",
        (9333, 9332),
        "initial block download: chain regtest blocks 0 headers 0 peers 0",
    );
    // The host's regtest network mines, then dials the leased node.
    let rpc_port = 25_180;
    let host = host_litecoind(rpc_port);
    eventually("the host's litecoind", NODE_WAIT, || {
        try_litecoin_cli(&host, rpc_port, &["getblockcount"]).ok()
    });
    let mined = litecoin_cli(
        &host,
        rpc_port,
        &[
            "generatetodescriptor",
            &LITECOIN_BLOCKS.to_string(),
            ANYONE_CAN_SPEND,
        ],
    );
    assert_eq!(
        mined.matches('"').count(),
        2 * LITECOIN_BLOCKS as usize,
        "{mined}"
    );
    litecoin_cli(&host, rpc_port, &["addnode", &litecoin.p2p, "add"]);
    let body = verified(&rt, (&devnet, &client), &litecoin);
    let synced =
        format!("synced: chain regtest blocks {LITECOIN_BLOCKS} headers {LITECOIN_BLOCKS} peers 1");
    assert!(body.contains(&synced), "{body}");
    flood_from_one_source(&rt, (&devnet, &client), &litecoin);

    // Monero: no peer, so not synchronized and not Verified; then a host network that mined
    // alone joins it, and it is Verified at the network's height.
    let monero = unsynced_lease(
        &rt,
        (&devnet, &client),
        "Monero regtest node",
        (18080, 18081),
        "not synchronized: nettype fakechain height 1 target 0 peers 0",
    );
    let (_host, height) = monero_network((25_181, 25_182), &monero.p2p);
    assert_eq!(
        height,
        u64::from(MONERO_BLOCKS) + 1,
        "genesis and the mined blocks"
    );
    let body = verified(&rt, (&devnet, &client), &monero);
    let synced = format!("synced: nettype fakechain height {height} target");
    assert!(body.contains(&synced), "{body}");
}
