//! The catalog's "Logos validator" leased from a devnet whose committees are elected by stake:
//! the tenant's consensus key is made in the environment and never leaves it, the node offers
//! its tenant a signed validator intent, and once the tenant has bonded and submitted it, the
//! leased node is elected and votes: blocks of its epoch are proposed by it, through the
//! connections its committee opens to its published p2p port.
//!
//! A new generation stops it with SIGTERM (the node shuts down cleanly) and it comes back with
//! the same key; closing the lease drops the tenant's candidacy, and once the node is gone
//! finality goes on without it (one member of four).
//!
//! From the attacker's side: another account cannot use the offer (the chain refuses the
//! signature, and `logos stake validate --node` refuses it before spending a fee), an intent
//! moved to another address does not verify, and `logos node run` refuses flags that would
//! offer an unusable intent before it makes a key. Needs root, as the sub0layer tests do.

use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use logos_api::rpc::{LogosApiClient, ValidatorIntent};
use logos_client::{
    tenant::{catalog, create_lease},
    Client,
};
use logos_primitives::format_public_key;
use logos_types::{
    balances,
    dvci::RegionId,
    market::LeaseId,
    operations::{ConditionStatus, ConditionType, Environment, EnvironmentId, Environments, Phase},
    staking, Call,
};
use std::{
    process::{Command, Stdio},
    time::Duration,
};

mod common;

use common::{eventually, eventually_or, logos_command, runtime, sub0::Devnet};

/// Blocks per epoch: long enough for an election to be fixed one epoch ahead, short enough
/// for the test (about 10 s each on a devnet).
const EPOCH_BLOCKS: u64 = 300;
/// The template's p2p port (declared; published on the provider's address).
const P2P_PORT: u16 = 30333;
/// Longest wait for the node to start, sync, be elected or reach a height.
const WAIT: Duration = Duration::from_secs(300);
/// Stake each candidate bonds, smallest unit.
const BOND: u128 = 2_000_000_000;

/// The lease's environment as finalized.
fn environment(rt: &tokio::runtime::Runtime, client: &Client, lease: LeaseId) -> Environment {
    let id = EnvironmentId::from(lease);
    rt.block_on(client.map::<Environments>(&id))
        .unwrap()
        .0
        .expect("the lease's environment")
}

/// `GET http://{endpoint}/health`: (status, body), or `None` if nothing answered within 5 s.
fn health(endpoint: &str) -> Option<(u16, serde_json::Value)> {
    let output = Command::new("curl")
        .args(["-sS", "-m", "5", "-o", "-", "-w", "\n%{http_code}"])
        .arg(format!("http://{endpoint}/health"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n')?;
    Some((status.parse().ok()?, serde_json::from_str(body).ok()?))
}

/// The tail of the lease's workload output: what a failure shows.
fn logs(devnet: &Devnet, lease: LeaseId) -> String {
    devnet.logs(lease.get(), 4096)
}

/// The consensus keys of `epoch`'s committee, sorted (`None` before it is elected).
fn committee(devnet: &Devnet, epoch: u64) -> Option<Vec<String>> {
    let shown = devnet
        .cli(&["query", "committee", "--epoch", &epoch.to_string()])
        .ok()?;
    let mut keys: Vec<String> = shown["members"]
        .as_array()?
        .iter()
        .map(|member| member["consensus_key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    Some(keys)
}

/// Established TCP connections inside `namespace` whose local port is `port`: their peers.
fn inbound_peers(namespace: &str, port: u16) -> Vec<String> {
    let output = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{namespace}"))
        .args(["--", "ss", "-Htn", "state", "established"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let suffix = format!(":{port}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, peer) = (fields.get(2)?, fields.get(3)?);
            local.ends_with(&suffix).then(|| peer.to_string())
        })
        .collect()
}

fn rpc_client(url: &str) -> HttpClient {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(10))
        .build(url)
        .unwrap()
}

/// The node's offer seen by its tenant: 503 while it cannot follow the chain, role
/// validator, a registration and an intent for `dev` at the published p2p address.
fn offered_intent(devnet: &Devnet, record: &Environment, endpoint: &str) -> ValidatorIntent {
    let (status, body) = eventually("the node's health answer", WAIT, || health(endpoint));
    assert_eq!(status, 503, "not synced before registration: {body}");
    assert_eq!(body["role"], "validator", "{body}");
    let dev = devnet.wallet("dev").address().to_string();
    assert_eq!(body["registration"]["owner"], dev, "{body}");
    let intent: ValidatorIntent = serde_json::from_value(body["intent"].clone()).unwrap();
    assert_eq!(intent.owner.to_string(), dev);
    let (host, _) = endpoint.rsplit_once(':').unwrap();
    let published = record.ports.iter().find(|m| m.port == P2P_PORT).unwrap();
    assert_eq!(
        intent.p2p_address.to_string(),
        format!("{host}:{}", published.published),
        "the intent names where the p2p port is published"
    );
    assert_eq!(body["public_key"], intent.consensus_key.to_string());
    intent
}

/// From the attacker's side: the offer used by another account, or moved to another address.
fn attack_the_offer(
    rt: &tokio::runtime::Runtime,
    (devnet, client): (&Devnet, &Client),
    endpoint: &str,
    intent: &ValidatorIntent,
) {
    let thief = devnet.wallet("provider-1");
    let account = |wallet: &logos_client::Wallet| {
        rt.block_on(client.map::<balances::Accounts>(&wallet.address()))
            .unwrap()
            .0
    };
    let before = account(&thief);
    let refused = devnet
        .cli(&[
            "stake",
            "validate",
            "--node",
            endpoint,
            "--from",
            "provider-1",
        ])
        .unwrap_err();
    assert!(
        refused.contains(&format!("is for {}", intent.owner)),
        "{refused}"
    );
    assert_eq!(account(&thief), before, "refused before a fee was spent");
    let moved = "10.0.0.9:30333".parse().unwrap();
    for (sender, p2p_address) in [(&thief, intent.p2p_address), (&devnet.wallet("dev"), moved)] {
        let call = Call::Staking(staking::Call::Validate {
            consensus_key: intent.consensus_key,
            p2p_address,
            commission_permille: 0,
            signature: intent.signature,
            evict: None,
        });
        let (receipt, _) = rt.block_on(client.submit_and_wait(sender, call)).unwrap();
        assert!(!receipt.success, "{receipt:?}");
        assert_eq!(receipt.error.unwrap().error, "BadSignature");
    }
    let (owner, _) = rt
        .block_on(client.map::<staking::KeyOwners>(&intent.consensus_key))
        .unwrap();
    assert!(owner.is_none(), "nobody declared the key: {owner:?}");
}

/// `logos node run` refuses, before it makes a key or binds a port, an intent on a full node,
/// for an address no connection can come from or no port, from a node listening on a random
/// port, and a registration of a genesis validator's key.
fn refused_flags(devnet: &Devnet) {
    let dir = tempfile::tempdir().unwrap();
    let run = |role: &str, data_dir: &std::path::Path, flags: &[&str]| {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = logos_command()
            .args(["node", "run", "--role", role, "--genesis"])
            .arg(devnet.dir.join("genesis.toml"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--rpc-listen", "127.0.0.1:0"])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        // A node that took the flags would run on: killed, and the test fails.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let error = std::fs::read_to_string(stderr.path()).unwrap();
        assert!(
            exited.is_some_and(|status| !status.success()),
            "{role} {flags:?} accepted: {error}"
        );
        error
    };
    let dev = devnet.wallet("dev").address();
    for (role, flag, expected) in [
        ("full", format!("{dev}@127.0.0.1:1"), "only a validator"),
        ("validator", format!("{dev}@127.0.0.1:0"), "no port"),
        (
            "validator",
            format!("{dev}@0.0.0.0:1"),
            "cannot be a connection's source",
        ),
        ("validator", "0x12@127.0.0.1:1".to_string(), "account"),
        ("validator", format!("{dev}@host:1"), "not IP:PORT"),
        ("validator", format!("{dev}@127.0.0.1:1"), "random port"),
    ] {
        let listen = match expected {
            "random port" => "127.0.0.1:0",
            _ => "127.0.0.1:30999",
        };
        let flags = ["--p2p-listen", listen, "--validate-for", &flag];
        let error = run(role, dir.path(), &flags);
        assert!(
            error.contains("--validate-for") && error.contains(expected),
            "{flag}: {error}"
        );
    }
    assert!(
        !dir.path().join("p2p.key").exists(),
        "a refused flag made a key"
    );
    let genesis_key = tempfile::tempdir().unwrap();
    std::fs::copy(
        devnet.dir.join("keys/validator-0.key"),
        genesis_key.path().join("p2p.key"),
    )
    .unwrap();
    let error = run(
        "validator",
        genesis_key.path(),
        &["--register-for", &format!("{dev}@127.0.0.1:0")],
    );
    assert!(error.contains("genesis validator"), "{error}");
}

#[test]
fn a_leased_validator_is_elected_and_votes_through_its_published_port() {
    const BASE: u16 = 22_700;
    let epoch_length = EPOCH_BLOCKS.to_string();
    let devnet = Devnet::start(
        "validator",
        BASE,
        91,
        &[
            "--epoch-length-blocks",
            &epoch_length,
            "--committee-size",
            "4",
            "--elections",
        ],
    );
    refused_flags(&devnet);
    let rt = runtime();
    let client = rt.block_on(Client::connect(&devnet.rpc)).unwrap();
    let dev = devnet.wallet("dev");

    // Lease the validator; it cannot follow the chain before its tenant registers it.
    let entries = rt.block_on(catalog(&client)).unwrap();
    let entry = entries
        .iter()
        .find(|entry| entry.template.name.as_str() == "Logos validator")
        .expect("the validator template is in the devnet's catalog");
    let (lease, _) = rt
        .block_on(create_lease(&client, &dev, entry.id, RegionId(1), 20_000))
        .unwrap();
    let record = eventually("the leased validator's endpoint", WAIT, || {
        let record = environment(&rt, &client, lease);
        (!record.endpoint.is_empty()).then_some(record)
    });
    let endpoint = record.endpoint.to_string();
    let intent = offered_intent(&devnet, &record, &endpoint);
    let leased_key = intent.consensus_key.to_string();
    attack_the_offer(&rt, (&devnet, &client), &endpoint, &intent);

    // Registered, it follows the chain: Verified.
    devnet
        .cli(&["node", "register", "--node", &endpoint, "--from", "dev"])
        .unwrap();
    eventually_or(
        "the leased validator to be Verified",
        WAIT,
        || {
            let verified = environment(&rt, &client, lease)
                .condition(ConditionType::Verified)
                .status;
            (verified == ConditionStatus::True).then_some(())
        },
        || logs(&devnet, lease),
    );

    // Three genesis validators and the tenant bond and declare themselves candidates; the
    // tenant with its leased node's offer.
    let mut candidates = vec![leased_key.clone()];
    for i in 0..3u16 {
        let name = format!("validator-{i}");
        let amount = BOND.to_string();
        devnet
            .cli(&["stake", "bond", "--amount", &amount, "--from", &name])
            .unwrap();
        let address = format!("127.0.0.1:{}", BASE + i);
        devnet
            .cli(&[
                "stake",
                "validate",
                "--consensus-key",
                &name,
                "--p2p-address",
                &address,
                "--from",
                &name,
            ])
            .unwrap();
        let key = format_public_key(&devnet.wallet(&name).public_key());
        candidates.push(key);
    }
    candidates.sort();
    devnet
        .cli(&[
            "stake",
            "bond",
            "--amount",
            &BOND.to_string(),
            "--from",
            "dev",
        ])
        .unwrap();
    let declared = devnet
        .cli(&["stake", "validate", "--node", &endpoint, "--from", "dev"])
        .unwrap();
    assert_eq!(declared["consensus_key"], leased_key, "{declared}");
    assert_eq!(declared["p2p_address"], intent.p2p_address.to_string());

    // The first epoch the four serve.
    let elected = eventually_or(
        "the leased validator to be elected",
        WAIT,
        || {
            let current = devnet.cli(&["query", "committee"]).ok()?["epoch"].as_u64()?;
            (current..=current + 2)
                .find(|epoch| committee(&devnet, *epoch).as_ref() == Some(&candidates))
        },
        || logs(&devnet, lease),
    );
    let first = elected * EPOCH_BLOCKS + 1;
    let last = first + EPOCH_BLOCKS / 2;
    let rpc = rpc_client(&devnet.rpc);
    eventually_or(
        "the chain to pass the middle of the elected epoch",
        WAIT,
        || {
            let head = rt.block_on(client.head_height()).ok()?;
            (head >= last).then_some(())
        },
        || logs(&devnet, lease),
    );
    let mut proposed = 0;
    for height in first..=last {
        let block = rt
            .block_on(rpc.get_block_by_height(height))
            .unwrap()
            .unwrap();
        assert!(
            candidates.contains(&block.proposer),
            "block {height} of epoch {elected} proposed by {}",
            block.proposer
        );
        proposed += usize::from(block.proposer == leased_key);
    }
    assert!(
        proposed > 0,
        "the leased validator proposed none of blocks {first}..={last}\n{}",
        logs(&devnet, lease)
    );
    // Its committee dials it at its published p2p port (the environment has no other way in).
    let index = u64::from(devnet.network_index) + record.provider.0;
    let namespace = format!("lg{index}-{}", EnvironmentId::from(lease));
    let inbound = inbound_peers(&namespace, P2P_PORT);
    assert!(!inbound.is_empty(), "no connection to the p2p port");
    eprintln!(
        "epoch {elected}: the leased validator proposed {proposed} of blocks {first}..={last}; \
         connected to its p2p port: {inbound:?}"
    );
    let (status, body) = health(&endpoint).unwrap();
    assert_eq!(status, 200, "{body}");

    // A new generation restarts it on its volume: stopped by SIGTERM (the node shuts down
    // cleanly), the same key, voting again.
    let updated = devnet
        .cli(&["lease", "update", &lease.to_string(), "--from", "dev"])
        .unwrap();
    assert_eq!(updated["generation"], 2, "{updated}");
    eventually_or(
        "generation 2 running and synced",
        WAIT,
        || {
            let record = environment(&rt, &client, lease);
            let ready = record.observed_generation == 2
                && record.condition(ConditionType::Ready).status == ConditionStatus::True;
            let (status, body) = health(&endpoint)?;
            (ready && status == 200 && body["public_key"] == leased_key.as_str()).then_some(())
        },
        || logs(&devnet, lease),
    );
    let output = devnet.logs(lease.get(), logos_api::agent::LOGS_MAX_BYTES);
    assert!(
        output.contains("signalled; stopping"),
        "generation 1 was not stopped by a signal it handled:\n{output}"
    );
    // It exited on that signal, within the grace period (not killed after it).
    let agent_log = devnet
        .dir
        .join(format!("agent-{}", record.provider.0))
        .join("agent.log");
    let agent_log = std::fs::read_to_string(agent_log).unwrap();
    let field = format!("environment={}", EnvironmentId::from(lease));
    let mine = |line: &&str| line.split_whitespace().any(|word| word == field);
    assert!(
        agent_log
            .lines()
            .filter(mine)
            .any(|line| line.contains("workload exited on SIGTERM")),
        "no clean exit on SIGTERM in the agent's log"
    );
    assert!(
        !agent_log
            .lines()
            .filter(mine)
            .any(|l| l.contains("after SIGTERM; killing it")),
        "killed after the grace period"
    );

    // The tenant closes the lease: its candidacy is dropped with it (the key is gone with the
    // volume), and once the node is gone, finality goes on without the member.
    let closed = devnet
        .cli(&["lease", "close", &lease.to_string(), "--from", "dev"])
        .unwrap();
    assert_eq!(closed["chilled_validator"], leased_key, "{closed}");
    assert_eq!(closed["deregistered_full_node"], leased_key, "{closed}");
    let (candidate, _) = rt
        .block_on(client.map::<staking::Validators>(&dev.address()))
        .unwrap();
    assert!(candidate.is_none(), "still a candidate: {candidate:?}");
    eventually("the leased node to be gone", WAIT, || {
        let destroyed = environment(&rt, &client, lease).phase == Phase::Destroyed;
        (destroyed && health(&endpoint).is_none()).then_some(())
    });
    let gone_at = rt.block_on(client.head_height()).unwrap();
    // Still a member of the committee that serves now (with three candidates left, elections
    // fail and the committee is carried forward): the other three finalize without it.
    let serving = devnet.cli(&["query", "committee"]).unwrap();
    let serving = serving["members"].to_string();
    assert!(serving.contains(&leased_key), "{serving}");
    let after = gone_at + EPOCH_BLOCKS / 3;
    eventually("finality after the leased member left", WAIT, || {
        let head = rt.block_on(client.head_height()).ok()?;
        (head >= after).then_some(())
    });
    for height in gone_at + 1..=after {
        let block = rt
            .block_on(rpc.get_block_by_height(height))
            .unwrap()
            .unwrap();
        assert_ne!(
            block.proposer, leased_key,
            "block {height} after the node was gone"
        );
    }
}
