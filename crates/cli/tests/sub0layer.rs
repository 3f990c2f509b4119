//! End-to-end tests of the sub0layer with real processes: `logos devnet` with validators,
//! provider agents (runc container driver), provisioners and workloads from the project's OCI
//! images. They need root (namespaces, cgroups, loop devices, the firewall), as the agent does.

use commonware_codec::Encode;
use logos_api::agent::{Action, AgentRequest, AGENT_NAMESPACE};
use logos_client::{Client, Wallet};
use logos_primitives::{format_public_key, Address};
use logos_provisioner::{
    core::{AgentView, Effect},
    AgentEffects, Effects, Provisioner as Daemon, ProvisionerConfig, ProvisionerError, Target,
};
use logos_types::{
    attestation,
    balances::{community_account, Accounts, TotalIssuance},
    catalog::{self, ProductId, Template, TemplateId, Workload},
    dvci::{ProviderId, Providers, RegionId},
    market::{self, CloseReason, LeaseId, Leases},
    operations::{ConditionStatus, ConditionType, Environment, EnvironmentId, Environments, Phase},
    peers,
    provisioning::{Assignments, Provisioners, Report},
    Call, Event, StorageMap,
};
use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

mod common;

use common::{logos_command, runtime, sub0::Devnet, LOGOS};

impl Devnet {
    fn cgroup(&self, agent: usize, environment: EnvironmentId) -> PathBuf {
        let hierarchy = logos_agent::container::cgroup::Hierarchy::detect().unwrap();
        let path = format!(
            "/logos/agent-{}/env-{environment}",
            self.network_index as usize + agent
        );
        hierarchy.directory("memory", &path)
    }

    /// The image the devnet named `name` (its `images.toml`).
    fn image(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join("images.toml")).unwrap();
        logos_client::template::Images::parse(&text).unwrap().0[name].clone()
    }

    /// The address of environment `environment` of agent `agent` on its bridge.
    fn environment_ip(&self, agent: usize, environment: EnvironmentId) -> String {
        let namespace = format!("lg{}-{environment}", self.network_index as usize + agent);
        let output = Command::new("ip")
            .args(["-n", &namespace, "-4", "-o", "addr", "show", "eth0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let address = text
            .split_whitespace()
            .nth(3)
            .unwrap_or_else(|| panic!("no address: {text}"));
        address.split('/').next().unwrap().to_string()
    }
}

/// A client of the devnet whose proven reads trust the devnet's genesis file.
async fn trusted(devnet: &Devnet) -> Client {
    let genesis = logos_types::Genesis::load(&devnet.dir.join("genesis.toml")).unwrap();
    Client::connect_trusted(&devnet.rpc, &genesis)
        .await
        .unwrap()
}

/// Runs `logos <args> --rpc … --keystore … --json` and parses its JSON output.
fn cli(devnet: &Devnet, args: &[&str]) -> serde_json::Value {
    devnet
        .cli(args)
        .unwrap_or_else(|error| panic!("logos {args:?}: {error}"))
}

/// Runs `logos <args> --rpc …` expecting it to fail; its standard error.
fn cli_error(devnet: &Devnet, args: &[&str]) -> String {
    let output = logos_command()
        .args(args)
        .args(["--rpc", &devnet.rpc])
        .env("LOGOS_KEYSTORE", devnet.dir.join("keys"))
        .env("LOGOS_IMAGES", devnet.dir.join("images.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success(), "logos {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// As a person uses the CLI: `logos init` once, then commands without flags print tables.
fn people_see_tables_with_flags_from_init(devnet: &Devnet, id: EnvironmentId) {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    let person = |args: &[&str]| {
        let mut command = logos_command();
        for variable in ["LOGOS_RPC", "LOGOS_KEYSTORE", "LOGOS_FROM", "LOGOS_GENESIS"] {
            command.env_remove(variable);
        }
        let output = command
            .args(args)
            .env("LOGOS_CONFIG", &config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "logos {args:?}: {stderr}");
        String::from_utf8(output.stdout).unwrap()
    };
    let keystore = devnet.dir.join("keys");
    let genesis = devnet.dir.join("genesis.toml");
    person(&[
        "init",
        "--rpc",
        &devnet.rpc,
        "--keystore",
        keystore.to_str().unwrap(),
        "--from",
        "dev",
        "--genesis",
        genesis.to_str().unwrap(),
    ]);
    let catalog = person(&["catalog"]);
    let mut lines = catalog.lines();
    let header = lines.next().unwrap();
    assert!(
        header.contains("TEMPLATE") && header.contains("PRICE/BLOCK"),
        "{catalog}"
    );
    assert!(
        lines.next().unwrap().contains("Logos full node"),
        "{catalog}"
    );
    let status = person(&["lease", "status", &id.to_string()]);
    assert!(status.contains("CONDITIONS"), "{status}");
    let verified = status.lines().find(|line| line.contains("Verified"));
    assert!(
        verified.is_some_and(|line| line.contains("True")),
        "{status}"
    );
    let listed = person(&["lease", "list"]);
    let row = listed.lines().nth(1).unwrap();
    assert!(
        row.trim_start().starts_with(&id.get().to_string()),
        "{listed}"
    );
    assert!(row.contains("open"), "{listed}");
    // On a terminal (`script` gives the command a pseudo-terminal) a wait shows a spinner.
    let extend = format!("{LOGOS} lease extend {id} --blocks 1");
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &extend, "/dev/null"])
        .env("LOGOS_CONFIG", &config)
        .output()
        .unwrap();
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{terminal}");
    assert!(terminal.contains("waiting for finality"), "{terminal}");
}

/// A template file of a busybox web server on 8080 running `image`.
fn template_file(image: &str) -> String {
    format!(
        "name = \"web\"\nproduct = \"micro\"\nimage = \"{image}\"\n\
         command = [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/data\"]\n\
         ports = [8080]\nhealth = {{ port = 8080, path = \"/health\" }}\n"
    )
}

async fn execute(client: &Client, wallet: &Wallet, call: Call) -> (logos_types::Receipt, u64) {
    let (receipt, height) = client.submit_and_wait(wallet, call).await.unwrap();
    assert!(receipt.success, "{receipt:?}");
    (receipt, height)
}

async fn lease(client: &Client, tenant: &Wallet, template: u32, blocks: u64) -> EnvironmentId {
    let call = Call::Market(market::Call::CreateLease {
        template: TemplateId(template),
        region: RegionId(1),
        blocks,
    });
    let (receipt, _) = execute(client, tenant, call).await;
    receipt
        .events
        .iter()
        .find_map(|event| match event {
            Event::Market(market::Event::LeaseCreated { lease, .. }) => {
                Some(EnvironmentId::from(*lease))
            }
            _ => None,
        })
        .unwrap()
}

async fn read<I: StorageMap>(client: &Client, key: &I::Key) -> Option<I::Value> {
    client.map::<I>(key).await.unwrap().0
}

async fn environment(client: &Client, id: EnvironmentId) -> Environment {
    read::<Environments>(client, &id).await.unwrap()
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `bound`.
async fn eventually<T, F, Fut>(what: &str, bound: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// True if condition `kind` is `True`, or, with a reason, `False` for that reason.
async fn condition_is(
    client: &Client,
    id: EnvironmentId,
    kind: ConditionType,
    reason: Option<&str>,
) -> bool {
    let record = environment(client, id).await;
    let condition = record.condition(kind);
    match reason {
        Some(reason) => condition.status == ConditionStatus::False && condition.reason == reason,
        None => condition.status == ConditionStatus::True,
    }
}

/// Sum of free and reserved balances of `accounts` (reserved holds escrows, bonds, stakes).
/// The sum of `accounts`' balances and reserves, and the total issuance, read at one height
/// (each read is at the head when served, and billing and fees move funds every block: reads
/// at different heights would not add up). Retries until all reads were served at one height.
async fn holdings(client: &Client, accounts: &[Address]) -> (u128, u128) {
    eventually(
        "holdings read at one height",
        Duration::from_secs(30),
        || async {
            let (issuance, height) = client.value::<TotalIssuance>().await.unwrap();
            let mut total = 0;
            for account in accounts {
                let (info, at) = client.map::<Accounts>(account).await.unwrap();
                if at != height {
                    return None;
                }
                let info = info.unwrap_or_default();
                total += info.balance.0 + info.reserved.0;
            }
            Some((total, issuance.0))
        },
    )
    .await
}

/// A leased full node cannot follow the chain until its key is registered: it offers a
/// registration for its tenant at `/health` (503 meanwhile); another account cannot use that
/// offer; the tenant submits it with `logos node register`.
async fn register_leased_full_node(
    devnet: &Devnet,
    client: &Client,
    tenant: &Wallet,
    id: EnvironmentId,
) -> logos_primitives::NodeKey {
    let endpoint = eventually("endpoint reported", Duration::from_secs(60), || async {
        let endpoint = environment(client, id).await.endpoint;
        (!endpoint.is_empty()).then(|| endpoint.to_string())
    })
    .await;
    let http = reqwest::Client::new();
    let (status, health) = eventually("registration offered", Duration::from_secs(60), || async {
        let response = http
            .get(format!("http://{endpoint}/health"))
            .send()
            .await
            .ok()?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.ok()?;
        Some((status, body))
    })
    .await;
    assert_eq!(status, 503, "not synced before registration: {health}");
    assert_eq!(health["synced"], false);
    assert_eq!(health["role"], "full");
    assert_eq!(
        health["registration"]["owner"],
        tenant.address().to_string()
    );
    let offered: logos_api::rpc::FullNodeRegistration =
        serde_json::from_value(health["registration"].clone()).unwrap();

    // Someone else submitting the tenant's offer (to squat the key, or hold it at another
    // address) is refused by the chain: the node key signed the tenant's account.
    let thief = devnet.wallet("provider-1");
    let stolen = Call::Peers(peers::Call::RegisterFullNode {
        key: offered.key,
        address: offered.address,
        deposit: peers::DEFAULT_MINIMUM_DEPOSIT,
        signature: offered.signature,
    });
    let (receipt, _) = client.submit_and_wait(&thief, stolen).await.unwrap();
    assert!(!receipt.success);
    assert_eq!(receipt.error.unwrap().error, "BadSignature");
    assert!(read::<peers::FullNodes>(client, &offered.key)
        .await
        .is_none());

    let registered = cli(
        devnet,
        &["node", "register", "--node", &endpoint, "--from", "dev"],
    );
    assert_eq!(registered["key"], offered.key.to_string());
    let record = read::<peers::FullNodes>(client, &offered.key)
        .await
        .unwrap();
    assert_eq!(record.owner, tenant.address());
    assert_eq!(record.deposit, peers::DEFAULT_MINIMUM_DEPOSIT);
    offered.key
}

fn all_accounts(devnet: &Devnet) -> Vec<Address> {
    let genesis = std::fs::read_to_string(devnet.dir.join("genesis.toml")).unwrap();
    let genesis = logos_types::Genesis::from_toml(&genesis).unwrap();
    let mut accounts: Vec<_> = genesis.accounts.iter().map(|a| a.address).collect();
    accounts.push(community_account());
    accounts
}

/// A request signed by `wallet` for this chain, valid for 100 blocks, with `nonce`.
async fn agent_request(
    client: &Client,
    wallet: &Wallet,
    what: (ProviderId, EnvironmentId, u64),
    action: Action,
    nonce: u64,
) -> AgentRequest {
    let height = client.head_height().await.unwrap();
    let chain_id = client.info().chain_id.to_string();
    signed_request(wallet, (chain_id, height + 100), what, action, nonce)
}

/// `action` on `what` (provider, environment, generation) signed by `wallet` for `chain_id`,
/// expiring at `expires_at`, with `nonce`.
fn signed_request(
    wallet: &Wallet,
    (chain_id, expires_at): (String, u64),
    (provider, environment, generation): (ProviderId, EnvironmentId, u64),
    action: Action,
    nonce: u64,
) -> AgentRequest {
    let mut request = AgentRequest {
        chain_id,
        provider,
        environment,
        generation,
        action,
        expires_at,
        nonce,
        provisioner: format_public_key(&wallet.public_key()),
        signature: String::new(),
    };
    resign(wallet, &mut request);
    request
}

/// Posts `observe` requests signed by a fresh key each (strangers to the agent) to `url`, one
/// every 2.5 ms (at most 32 awaiting their answers, so a slow agent on a loaded machine still
/// sees the rate), until aborted; counts the 429 answers in `throttled`.
async fn flood(
    url: String,
    (provider, chain_id): (ProviderId, String),
    throttled: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let http = reqwest::Client::new();
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut tick = tokio::time::interval(Duration::from_micros(2_500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        tick.tick().await;
        let key = <logos_primitives::PrivateKey as commonware_cryptography::Signer>::from_seed(
            1_000_000 + n,
        );
        let stranger = Wallet::new(key);
        let what = (provider, EnvironmentId(0), 1);
        let chain = (chain_id.clone(), 1_000);
        let request = signed_request(&stranger, chain, what, Action::Observe, n);
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        let (http, url, throttled) = (http.clone(), url.clone(), throttled.clone());
        tokio::spawn(async move {
            if let Ok(response) = http.post(&url).json(&request).send().await {
                if response.status() == 429 {
                    throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            drop(permit);
        });
    }
}

fn resign(wallet: &Wallet, request: &mut AgentRequest) {
    request.signature = format!(
        "0x{}",
        hex::encode(wallet.sign(AGENT_NAMESPACE, &request.message()).encode())
    );
}

#[test]
fn leased_full_node_runs_verified_billed_restored_and_destroyed() {
    let devnet = Devnet::start("lifecycle", 20_600, 11, &[]);
    runtime().block_on(async {
        let client = trusted(&devnet).await;
        let dev = devnet.wallet("dev");
        let accounts = all_accounts(&devnet);
        let (total, issuance) = holdings(&client, &accounts).await;
        assert_eq!(total, issuance, "balances add up at genesis");
        // The devnet's agents attest with a software TPM each: the genesis requires it, and
        // the devnet waited for every machine's first accepted report.
        assert!(!client.info().unattested);
        let provider = cli(&devnet, &["provider", "status", "0"]);
        assert_eq!(provider["attestation"]["state"], "attested", "{provider}");

        // Lease → Running → Verified, with the full node inside synced.
        let id = lease(&client, &dev, 0, 36_000).await;
        let node_key = register_leased_full_node(&devnet, &client, &dev, id).await;
        eventually("Ready", Duration::from_secs(60), || async {
            condition_is(&client, id, ConditionType::Ready, None)
                .await
                .then_some(())
        })
        .await;
        eventually("Verified", Duration::from_secs(60), || async {
            condition_is(&client, id, ConditionType::Verified, None)
                .await
                .then_some(())
        })
        .await;
        let (total, now) = holdings(&client, &accounts).await;
        assert_eq!((total, now), (issuance, issuance), "conserved while leased");
        let record = environment(&client, id).await;
        let health: serde_json::Value = reqwest::get(format!("http://{}/health", record.endpoint))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["synced"], true, "{health}");
        assert!(health["finalized_height"].as_u64().unwrap() > 0);

        // The leased full node serves the chain's JSON-RPC (through the tenant's reach of its
        // port), with proofs that verify against the genesis validators, and the same answers.
        let genesis = logos_types::Genesis::load(&devnet.dir.join("genesis.toml")).unwrap();
        let leased = Client::connect_trusted(&format!("http://{}", record.endpoint), &genesis)
            .await
            .unwrap();
        assert_eq!(leased.info().chain_id, client.info().chain_id);
        // Compared once the leased node has caught up with the validators: it may still be a
        // few blocks behind, before the lease allocated the provider's resources.
        let height = client.head_height().await.unwrap();
        eventually(
            "leased node at the validators' height",
            Duration::from_secs(30),
            || async { (leased.head_height().await.ok()? >= height).then_some(()) },
        )
        .await;
        let (provider, _) = leased
            .map_proven::<Providers>(&ProviderId(0))
            .await
            .unwrap();
        let (expected, _) = client
            .map_proven::<Providers>(&ProviderId(0))
            .await
            .unwrap();
        assert_eq!(provider, expected);
        assert!(provider.is_some());

        // The CLI shows the catalog and the lease, and extends it.
        let catalog = cli(&devnet, &["catalog"]);
        assert_eq!(catalog[0]["name"], "Logos full node");
        let status = cli(&devnet, &["lease", "status", &id.to_string()]);
        assert_eq!(status["environment"]["conditions"][2]["type"], "Verified");
        assert_eq!(status["environment"]["conditions"][2]["status"], "True");
        let listed = cli(&devnet, &["lease", "list"]);
        assert_eq!(listed[0]["lease"], id.get());
        people_see_tables_with_flags_from_init(&devnet, id);
        let before = read::<Leases>(&client, &LeaseId::from(id)).await.unwrap();
        let extended = cli(
            &devnet,
            &[
                "lease",
                "extend",
                &id.to_string(),
                "--blocks",
                "100",
                "--from",
                "dev",
            ],
        );
        assert_eq!(extended["lease"], id.get());
        let after = read::<Leases>(&client, &LeaseId::from(id)).await.unwrap();
        let billed = after.blocks_billed - before.blocks_billed;
        assert_eq!(
            after.escrow.0 + billed as u128 * after.rate.0,
            before.escrow.0 + 100 * after.rate.0
        );

        // Charged every verified block.
        let first = read::<Leases>(&client, &LeaseId::from(id)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let later = read::<Leases>(&client, &LeaseId::from(id)).await.unwrap();
        let billed = later.blocks_billed - first.blocks_billed;
        assert!(billed > 10, "only {billed} blocks billed in 2 s");
        assert_eq!(
            first.escrow.0 - later.escrow.0,
            billed as u128 * first.rate.0
        );

        // Killing the workload makes the provisioner restore it.
        let provider = read::<Providers>(&client, &record.provider).await.unwrap();
        let agent = record.provider.get() as usize;
        let procs = devnet.cgroup(agent, id).join("cgroup.procs");
        for pid in std::fs::read_to_string(&procs).unwrap().lines() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        let url = format!("http://{}/v1/environments/{id}", provider.endpoint);
        eventually("restart", Duration::from_secs(60), || async {
            let observed: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            (observed["restarts"].as_u64()? >= 1 && observed["workload"]["state"] == "running")
                .then_some(())
        })
        .await;
        eventually("Ready again", Duration::from_secs(60), || async {
            condition_is(&client, id, ConditionType::Ready, None)
                .await
                .then_some(())
        })
        .await;

        // kill -9 of the provider's agent: the devnet starts it again, and the new agent adopts
        // the running workload (the same processes) and reconciles; the environment stays
        // Ready and Verified.
        let procs_before = std::fs::read_to_string(&procs).unwrap();
        let agent_pid = devnet.pids[&format!("agent-{agent}")];
        let _ = Command::new("kill")
            .args(["-9", &agent_pid.to_string()])
            .status();
        eventually("agent restarted", Duration::from_secs(60), || async {
            let restarted = Command::new("pgrep")
                .args(["-f", &format!("agent run --provider {agent} ")])
                .output()
                .ok()?;
            let pid = String::from_utf8_lossy(&restarted.stdout)
                .trim()
                .to_string();
            let observed: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            (!pid.is_empty()
                && pid != agent_pid.to_string()
                && observed["workload"]["state"] == "running")
                .then_some(())
        })
        .await;
        assert_eq!(
            std::fs::read_to_string(&procs).unwrap(),
            procs_before,
            "the workload was adopted, not restarted"
        );
        let status = std::fs::read_to_string(format!("/proc/{}/status", devnet.child.id()));
        let devnet_alive = status.is_ok_and(|status| !status.contains("State:\tZ"));
        assert!(devnet_alive, "the devnet keeps running");
        // The node's relayed p2p connections went with the old agent: it dials again.
        eventually(
            "Ready after the agent's restart",
            Duration::from_secs(60),
            || async {
                condition_is(&client, id, ConditionType::Ready, None)
                    .await
                    .then_some(())
            },
        )
        .await;

        // The agent refuses what the chain does not back.
        let http = reqwest::Client::new();
        let what = (record.provider, id, record.generation);
        let stranger = agent_request(&client, &dev, what, Action::Ensure, 1).await;
        let refused = http.post(&url).json(&stranger).send().await.unwrap();
        assert_eq!(refused.status(), 403);
        assert!(refused
            .text()
            .await
            .unwrap()
            .contains("not the assigned provisioner"));
        let observe = agent_request(&client, &dev, what, Action::Observe, 2).await;
        let refused = http.post(&url).json(&observe).send().await.unwrap();
        assert_eq!(
            refused.status(),
            403,
            "only the assignee and checkers observe"
        );
        let task = read::<Assignments>(&client, &id).await.unwrap();
        let assigned = (0..4)
            .map(|i| devnet.wallet(&format!("provisioner-{i}")))
            .find(|wallet| Some(wallet.address()) == task.assigned)
            .unwrap();
        let next = (record.provider, id, record.generation + 1);
        let stale = agent_request(&client, &assigned, next, Action::Ensure, 3).await;
        let refused = http.post(&url).json(&stale).send().await.unwrap();
        assert_eq!(refused.status(), 403);
        assert!(refused.text().await.unwrap().contains("generation"));
        // The assignee's signed observation: answered once, refused when replayed; a request
        // for another chain or past its expiry is refused.
        let mut observe = agent_request(&client, &assigned, what, Action::Observe, 4).await;
        let answer = http.post(&url).json(&observe).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        let body = answer.bytes().await.unwrap();
        let key = provider.agent_key.expect("the devnet sets agent keys");
        let observed = logos_provisioner::verify_observation(&body, &key, observe.nonce)
            .unwrap()
            .expect("it runs here");
        let desired = environment(&client, id).await;
        assert_eq!(observed.limits, desired.spec.resources);
        assert!(desired.spec.workload.image.ends_with(&observed.image));
        assert!(observed.started_at_ms > 0);
        assert!(
            observed.attestation.is_some(),
            "a running workload is attested"
        );
        assert!(
            logos_provisioner::verify_observation(&body, &key, observe.nonce + 1).is_err(),
            "an answer to another request"
        );
        let replayed = http.post(&url).json(&observe).send().await.unwrap();
        assert_eq!(replayed.status(), 403);
        assert!(replayed.text().await.unwrap().contains("already used"));
        observe.chain_id = "0x00".into();
        observe.nonce = 5;
        resign(&assigned, &mut observe);
        let refused = http.post(&url).json(&observe).send().await.unwrap();
        assert!(refused.text().await.unwrap().contains("for chain 0x00"));
        let mut expired = agent_request(&client, &assigned, what, Action::Observe, 6).await;
        expired.expires_at = 1;
        resign(&assigned, &mut expired);
        let refused = http.post(&url).json(&expired).send().await.unwrap();
        assert_eq!(refused.status(), 403);
        assert!(refused
            .text()
            .await
            .unwrap()
            .contains("expired at height 1"));

        // The tenant reads the workload's logs through the agent.
        let logs = logos_command()
            .args([
                "env",
                "logs",
                &id.to_string(),
                "--from",
                "dev",
                "--rpc",
                &devnet.rpc,
            ])
            .arg("--keystore")
            .arg(devnet.dir.join("keys"))
            .arg("--genesis")
            .arg(devnet.dir.join("genesis.toml"))
            .output()
            .unwrap();
        assert!(
            logs.status.success(),
            "{}",
            String::from_utf8_lossy(&logs.stderr)
        );
        assert!(!logs.stdout.is_empty());

        // Close: refund, the node's registration given back, and the sandbox is destroyed.
        let closed = cli(
            &devnet,
            &["lease", "close", &id.to_string(), "--from", "dev"],
        );
        assert_eq!(closed["deregistered_full_node"], node_key.to_string());
        assert!(read::<peers::FullNodes>(&client, &node_key).await.is_none());
        let cgroup = devnet.cgroup(agent, id);
        eventually("sandbox destroyed", Duration::from_secs(30), || async {
            let gone = !cgroup.exists();
            let finished = environment(&client, id).await.phase == Phase::Destroyed;
            (gone && finished).then_some(())
        })
        .await;

        // Meanwhile strangers flood both agents (a fresh key per request) at twice the budget
        // they share: the provisioners, each with a budget of its own, are still answered,
        // and nobody honest is slashed.
        let mut providers = Vec::new();
        for k in 0..2 {
            providers.push(read::<Providers>(&client, &ProviderId(k)).await.unwrap());
        }
        let throttled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let chain_id = client.info().chain_id.to_string();
        let floods: Vec<_> = providers
            .iter()
            .enumerate()
            .map(|(k, provider)| {
                let url = format!("http://{}/v1/environments/0", provider.endpoint);
                let target = (ProviderId(k as u64), chain_id.clone());
                tokio::spawn(flood(url, target, throttled.clone()))
            })
            .collect();

        // Escrow exhaustion closes the lease at the right block and destroys the sandbox.
        let short = lease(&client, &dev, 1, 120).await;
        let closed = eventually("escrow exhausted", Duration::from_secs(60), || async {
            let record = read::<Leases>(&client, &LeaseId::from(short)).await?;
            record.closed.map(|closed| (record, closed))
        })
        .await;
        let (record, (height, reason)) = closed;
        assert_eq!(reason, CloseReason::EscrowExhausted);
        // Charged for 120 blocks of verified service (none while it started), each block
        // counted once as verified or not, and the charge split as the terms say.
        assert_eq!(record.blocks_billed, 120);
        assert_eq!(
            record.verified_blocks, 120,
            "charged exactly for its verified blocks"
        );
        assert!(record.unverified_blocks > 0, "starting is not charged");
        assert_eq!(
            record.verified_blocks + record.unverified_blocks,
            height - record.created_at + 1,
            "closed in the block that spent it"
        );
        let status = cli(&devnet, &["lease", "status", &short.to_string()]);
        let billing = &status["billing"];
        assert_eq!(billing["charged_blocks"], 120);
        assert_eq!(billing["verified_blocks"], record.verified_blocks);
        let paid = billing["paid"].as_array().unwrap();
        // Amounts are decimal strings (u128 does not fit a JSON number).
        let amount = |payout: &serde_json::Value| -> u128 {
            payout["amount"].as_str().unwrap().parse().unwrap()
        };
        let total: u128 = paid.iter().map(amount).sum();
        assert_eq!(total, 120 * record.rate.0, "{billing}");
        let terms = logos_types::market::Terms::default();
        for (role, share) in [("community", 10), ("assignee", terms.assignee_share)] {
            let paid_as: u128 = paid
                .iter()
                .filter(|payout| payout["role"] == role)
                .map(amount)
                .sum();
            assert_eq!(
                paid_as,
                120 * record.rate.0 * share as u128 / 100,
                "{role}: {billing}"
            );
        }
        assert!(
            paid.iter()
                .any(|payout| payout["role"] == "checker" && amount(payout) > 0),
            "the confirming checkers are paid: {billing}"
        );
        for flood in floods {
            flood.abort();
        }
        assert!(
            throttled.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "the flood went over the strangers' budget"
        );
        for (k, before) in providers.iter().enumerate() {
            let after = read::<Providers>(&client, &ProviderId(k as u64))
                .await
                .unwrap();
            assert_eq!(after.bond, before.bond, "provider {k} not slashed");
        }
        for i in 0..4 {
            let wallet = devnet.wallet(&format!("provisioner-{i}"));
            let record = read::<Provisioners>(&client, &wallet.address())
                .await
                .unwrap();
            assert_eq!(record.slashed.0, 0, "provisioner {i} not slashed");
        }
        let short_agent = record.provider.get() as usize;
        let cgroup = devnet.cgroup(short_agent, short);
        eventually(
            "exhausted sandbox destroyed",
            Duration::from_secs(30),
            || async { (!cgroup.exists()).then_some(()) },
        )
        .await;

        // Balances conserved: every account plus escrows, bonds and stakes (fees went to
        // validators, payouts to the provider owners and the community pool).
        let (total, after) = holdings(&client, &accounts).await;
        assert_eq!(total, after, "balances add up");
        assert_eq!(after, issuance, "nothing minted or burnt");
    });

    // A clean stop leaves neither bridge nor firewall rule nor cgroup of the agents.
    let mut devnet = devnet;
    devnet.stop();
    let rules = Command::new("iptables-save").output().unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    let hierarchy = logos_agent::container::cgroup::Hierarchy::detect().unwrap();
    for agent in [11, 12] {
        for name in [
            format!("LGBR{agent} "),
            format!("FWD-{agent} "),
            format!("PUB-{agent} "),
        ] {
            assert!(!rules.contains(&name), "firewall rules left: {name}");
        }
        assert!(
            !links.contains(&format!("lgbr{agent}:")),
            "bridge lgbr{agent} left"
        );
        assert!(!hierarchy
            .directory("memory", &format!("/logos/agent-{agent}"))
            .exists());
    }
}

/// A lying provisioner (a test double, injected through the daemon's effect handler): it never
/// asks the agent for anything and reports every environment it must ensure as running at a
/// made-up endpoint. Its other effects (votes included) are honest.
struct Liar {
    honest: AgentEffects,
    lied: std::sync::Mutex<std::collections::BTreeSet<(EnvironmentId, u64)>>,
}

/// The port the liar says the health port is published on (nothing is: it never asked).
const MADE_UP_PORT: u16 = 24_999;

impl Effects for Liar {
    async fn apply(
        &self,
        target: &Target,
        effect: &Effect,
    ) -> Result<Option<AgentView>, ProvisionerError> {
        if *effect != Effect::Ensure {
            return self.honest.apply(target, effect).await;
        }
        let fresh = self
            .lied
            .lock()
            .unwrap()
            .insert((target.environment, target.generation));
        if fresh {
            // A lie the chain cannot tell from the truth: the provider's host, a mapping of the
            // declared health port (the micro template's 8080); only checkers asking the agent
            // and probing it find nothing there.
            let host = target.agent.rsplit_once(':').unwrap().0;
            let lie = Report {
                generation: target.generation,
                phase: Phase::Running,
                endpoint: format!("{host}:{MADE_UP_PORT}")
                    .as_str()
                    .try_into()
                    .unwrap(),
                ports: vec![logos_types::operations::PortMapping {
                    port: 8080,
                    published: MADE_UP_PORT,
                }]
                .try_into()
                .unwrap(),
                message: "HealthCheckPassed".try_into().unwrap(),
                attestation: None,
            };
            let _ = self.honest.apply(target, &Effect::Report(lie)).await;
        }
        Ok(Some(AgentView::Unreachable("lying".into())))
    }
}

#[test]
fn lying_provisioner_is_slashed_and_memory_limit_is_enforced() {
    // Unattested (the devnet's opt-out): providers take leases without a TPM, as the genesis
    // says and the CLI shows.
    let devnet = Devnet::start(
        "byzantine",
        24_600,
        13,
        &["--external-provisioners", "0", "--unattested"],
    );
    runtime().block_on(async {
        let client = trusted(&devnet).await;
        assert!(client.info().unattested);
        let provider = cli(&devnet, &["provider", "status", "0"]);
        assert_eq!(provider["attestation"]["state"], "unattested", "{provider}");
        let dev = devnet.wallet("dev");
        let liar_wallet = devnet.wallet("provisioner-0");
        let liar = liar_wallet.address();
        let config = ProvisionerConfig {
            poll_ms: 100,
            resync_ms: 2_000,
            probe_timeout_ms: 2_000,
        };
        let daemon =
            Daemon::with_effects(config, trusted(&devnet).await, liar_wallet, |honest| Liar {
                honest,
                lied: Default::default(),
            })
            .unwrap();
        let liar_task = tokio::spawn(daemon.run());

        // Lease until the liar is assigned (each lease draws from chain randomness).
        let mut target = None;
        for _ in 0..30 {
            let id = lease(&client, &dev, 1, 36_000).await;
            let task = read::<Assignments>(&client, &id).await.unwrap();
            if task.assigned == Some(liar) {
                target = Some(id);
                break;
            }
            let close = Call::Market(market::Call::CloseLease { lease: id.into() });
            execute(&client, &dev, close).await;
        }
        let id = target.expect("the liar was never assigned in 30 leases");
        let slashed = eventually("slash", Duration::from_secs(60), || async {
            let record = read::<Provisioners>(&client, &liar).await?;
            (record.slashed.0 > 0).then_some(record)
        })
        .await;
        assert_eq!(slashed.slashed.0, 100_000_000 / 10);
        let task = read::<Assignments>(&client, &id).await.unwrap();
        assert_ne!(task.assigned, Some(liar));
        assert!(task.replaced.contains(&liar));
        eventually(
            "Verified by an honest provisioner",
            Duration::from_secs(60),
            || async {
                condition_is(&client, id, ConditionType::Verified, None)
                    .await
                    .then_some(())
            },
        )
        .await;

        // A workload over its memory limit is killed by the kernel and reported.
        let busybox = devnet.image("busybox");
        let template = Template {
            name: "memory hog".try_into().unwrap(),
            product: ProductId(1),
            workload: workload(&busybox, &["tail", "/dev/zero"], &[8080], 8080),
        };
        execute(
            &client,
            &dev,
            Call::Catalog(catalog::Call::SetTemplate {
                id: TemplateId(9),
                template,
            }),
        )
        .await;
        let hog = lease(&client, &dev, 9, 36_000).await;
        eventually("OOMKilled reported", Duration::from_secs(60), || async {
            condition_is(&client, hog, ConditionType::Ready, Some("OOMKilled"))
                .await
                .then_some(())
        })
        .await;

        // Only declared ports are reachable from outside the sandbox: 8080 is, 9000 is not,
        // although something listens on both.
        let script = "mkdir -p /data/w && echo ok > /data/w/health && \
                      httpd -p 9000 -h /data/w && exec httpd -f -p 8080 -h /data/w";
        let template = Template {
            name: "two listeners".try_into().unwrap(),
            product: ProductId(1),
            workload: workload(&busybox, &["sh", "-c", script], &[8080], 8080),
        };
        execute(
            &client,
            &dev,
            Call::Catalog(catalog::Call::SetTemplate {
                id: TemplateId(10),
                template,
            }),
        )
        .await;
        let web = lease(&client, &dev, 10, 36_000).await;
        // Verified, not just Ready: the lying provisioner may be assigned and report Ready at
        // a made-up endpoint until it is outvoted.
        eventually("web server Verified", Duration::from_secs(60), || async {
            condition_is(&client, web, ConditionType::Verified, None)
                .await
                .then_some(())
        })
        .await;
        // The endpoint is the declared port as published on the provider's address; on the
        // environment's own address only the declared port answers.
        let record = environment(&client, web).await;
        let connect = |address: String| {
            let address = address.parse().unwrap();
            std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))
        };
        assert!(
            connect(record.endpoint.to_string()).is_ok(),
            "published port unreachable"
        );
        assert_eq!(record.ports[0].port, 8080);
        let ip = devnet.environment_ip(record.provider.get() as usize, web);
        assert!(
            connect(format!("{ip}:8080")).is_ok(),
            "declared port unreachable"
        );
        assert!(
            connect(format!("{ip}:9000")).is_err(),
            "undeclared port 9000 reachable"
        );

        // Templates as files: a broken one is refused before any fee; one whose image digest
        // the registry does not hold is published, but the agent refuses its image and the
        // lease says why.
        let broken = devnet.dir.join("broken.toml");
        std::fs::write(
            &broken,
            template_file("127.0.0.1:5000/logos/busybox:latest"),
        )
        .unwrap();
        let refused = cli_error(&devnet, &["template", "validate", broken.to_str().unwrap()]);
        assert!(
            refused.contains("is not registry/repository@sha256"),
            "{refused}"
        );
        let refused = cli_error(
            &devnet,
            &[
                "catalog",
                "publish",
                "--file",
                broken.to_str().unwrap(),
                "--from",
                "dev",
            ],
        );
        assert!(
            refused.contains("is not registry/repository@sha256"),
            "{refused}"
        );
        let wrong = format!(
            "{}@sha256:{}",
            busybox.split('@').next().unwrap(),
            "ab".repeat(32)
        );
        let file = devnet.dir.join("wrong-digest.toml");
        std::fs::write(&file, template_file(&wrong)).unwrap();
        let validated = cli(&devnet, &["template", "validate", file.to_str().unwrap()]);
        assert_eq!(validated["valid"], true);
        assert_eq!(validated["product_checked"], true);
        let published = cli(
            &devnet,
            &[
                "catalog",
                "publish",
                "--file",
                file.to_str().unwrap(),
                "--from",
                "dev",
            ],
        );
        let template = published["template"].as_u64().unwrap() as u32;
        let stored = read::<catalog::Templates>(&client, &TemplateId(template))
            .await
            .unwrap();
        assert_eq!(stored.workload.image, wrong.as_str());
        let refused_lease = lease(&client, &dev, template, 36_000).await;
        eventually("ImageRefused reported", Duration::from_secs(60), || async {
            condition_is(
                &client,
                refused_lease,
                ConditionType::Ready,
                Some("ImageRefused"),
            )
            .await
            .then_some(())
        })
        .await;
        let status = cli(&devnet, &["lease", "status", &refused_lease.to_string()]);
        let ready = &status["environment"]["conditions"][1];
        assert_eq!(ready["reason"], "ImageRefused");
        assert!(
            ready["message"].as_str().unwrap().contains("404"),
            "{ready}"
        );

        // A workload that never becomes healthy is never verified: nothing is charged, and at
        // the deadline the lease closes with everything refunded.
        let deadline = 200;
        let terms = logos_types::market::Terms {
            verify_deadline_blocks: deadline,
            ..Default::default()
        };
        execute(
            &client,
            &dev,
            Call::Market(market::Call::SetTerms { terms }),
        )
        .await;
        let template = Template {
            name: "never healthy".try_into().unwrap(),
            product: ProductId(1),
            workload: workload(&busybox, &["sleep", "100000"], &[8080], 8080),
        };
        execute(
            &client,
            &dev,
            Call::Catalog(catalog::Call::SetTemplate {
                id: TemplateId(11),
                template,
            }),
        )
        .await;
        // A tenant of its own, so that nothing else moves its balance.
        let tenant = Wallet::new(
            <logos_primitives::PrivateKey as commonware_cryptography::Signer>::from_seed(4_242),
        );
        let funding = logos_types::balances::Call::Transfer {
            to: tenant.address(),
            amount: logos_primitives::Amount(1_000_000_000),
        };
        execute(&client, &dev, Call::Balances(funding)).await;
        let (before, _) = client.map::<Accounts>(&tenant.address()).await.unwrap();
        let before = before.unwrap();
        let call = Call::Market(market::Call::CreateLease {
            template: TemplateId(11),
            region: RegionId(1),
            blocks: 36_000,
        });
        let (receipt, _) = execute(&client, &tenant, call).await;
        let fee = receipt
            .events
            .iter()
            .find_map(|event| match event {
                Event::Balances(logos_types::balances::Event::FeePaid { amount, .. }) => {
                    Some(amount.0)
                }
                _ => None,
            })
            .unwrap();
        let (sick, escrow) = receipt
            .events
            .iter()
            .find_map(|event| match event {
                Event::Market(market::Event::LeaseCreated { lease, rate, .. }) => {
                    Some((*lease, rate.0 * 36_000))
                }
                _ => None,
            })
            .unwrap();
        let closed = eventually("closed unverified", Duration::from_secs(60), || async {
            let record = read::<Leases>(&client, &sick).await?;
            record.closed.map(|closed| (record, closed))
        })
        .await;
        let (record, (height, reason)) = closed;
        assert_eq!(reason, CloseReason::NeverVerified);
        assert_eq!(height, record.created_at + deadline);
        assert_eq!((record.blocks_billed, record.verified_blocks), (0, 0));
        assert!(record.payouts.is_empty());
        let (after, _) = client.map::<Accounts>(&tenant.address()).await.unwrap();
        let after = after.unwrap();
        assert_eq!(
            after.reserved, before.reserved,
            "escrow of {escrow} released"
        );
        assert_eq!(
            after.balance.0 + fee,
            before.balance.0,
            "charged nothing but the fee of its transaction"
        );
        liar_task.abort();
    });
}

fn workload(image: &str, command: &[&str], ports: &[u16], health_port: u16) -> Workload {
    Workload {
        image: image.try_into().unwrap(),
        command: command
            .iter()
            .map(|part| (*part).try_into().unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap(),
        ports: ports.to_vec().try_into().unwrap(),
        health: logos_types::catalog::HealthCheck {
            port: health_port,
            path: Some("/health".try_into().unwrap()),
        },
        ..Workload::default()
    }
}

/// Runs `logos <args> --rpc …` on the tenant's host of a `--hosts` devnet and parses its JSON.
fn tenant_cli(devnet: &Devnet, args: &[&str]) -> serde_json::Value {
    let mut command = in_host(&format!("lgd{}t", devnet.network_index), LOGOS);
    command.args(args).arg("--json");
    if !args.contains(&"--rpc") {
        command.args(["--rpc", &devnet.rpc]);
    }
    let output = command
        .env("LOGOS_CONFIG", "/nonexistent/logos-config.toml")
        .env("LOGOS_KEYSTORE", devnet.dir.join("keys"))
        .env("LOGOS_GENESIS", devnet.dir.join("genesis.toml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "logos {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `program` run in the network namespace `namespace`.
fn in_host(namespace: &str, program: &str) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{namespace}"))
        .arg("--")
        .arg(program);
    command
}

/// `GET http://{endpoint}{path}` from host `namespace`: (status, body), or `None` if nothing
/// answered within 3 s.
fn get_from(namespace: &str, endpoint: &str, path: &str) -> Option<(u16, String)> {
    let output = in_host(namespace, "curl")
        .args([
            "-sS",
            "-m",
            "3",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            &format!("http://{endpoint}{path}"),
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n')?;
    Some((status.parse().ok()?, body.to_string()))
}

#[test]
fn a_leased_node_on_its_providers_host_is_reached_from_the_tenants_updated_and_leaves_nothing() {
    let mut devnet = Devnet::start("hosts", 28_600, 41, &["--hosts"]);
    let tenant = "lgd41t";
    let (id, provider) = runtime().block_on(async {
        let client = trusted(&devnet).await;
        // The tenant leases the Logos full node (an OCI image) from its own host; the CLI
        // registers the node's key and waits until it is verified and synced.
        let created = tenant_cli(
            &devnet,
            &[
                "lease",
                "create",
                "--template",
                "0",
                "--wait",
                "--from",
                "dev",
            ],
        );
        let id = EnvironmentId(created["lease"].as_u64().unwrap());
        let record = environment(&client, id).await;
        let provider = record.provider.get() as usize;
        let provider_ip = format!("10.77.41.{}", 100 + provider);
        assert!(
            record.endpoint.starts_with(&format!("{provider_ip}:")),
            "{}",
            record.endpoint
        );
        let endpoint = record.endpoint.to_string();

        // Reached from the tenant's host, with proofs, and from a validator's host.
        let (status, health) =
            get_from(tenant, &endpoint, "/health").expect("endpoint unreachable");
        assert_eq!(status, 200, "{health}");
        let health: serde_json::Value = serde_json::from_str(&health).unwrap();
        assert_eq!(health["synced"], true);
        let proven = tenant_cli(
            &devnet,
            &[
                "query",
                "account",
                &logos_primitives::Address([1; 20]).to_string(),
                "--prove",
                "--rpc",
                &format!("http://{endpoint}"),
            ],
        );
        assert_eq!(proven["verified"], true);
        assert!(
            get_from("lgd41v2", &endpoint, "/health").is_some(),
            "unreachable from a validator's host"
        );
        // Undeclared: the next published port is closed from the tenant's host.
        let next = format!("{provider_ip}:{}", record.ports[0].published + 1);
        assert!(get_from(tenant, &next, "/").is_none(), "{next} answers");

        // A new generation restarts the node on the same volume: same key, data kept.
        let before_height = health["finalized_height"].as_u64().unwrap();
        let updated = tenant_cli(
            &devnet,
            &["lease", "update", &id.to_string(), "--from", "dev"],
        );
        assert_eq!(updated["generation"], 2);
        let after = eventually(
            "generation 2 running and synced",
            Duration::from_secs(120),
            || async {
                let record = environment(&client, id).await;
                let ready = record.observed_generation == 2
                    && record.condition(ConditionType::Ready).status == ConditionStatus::True;
                let (status, body) = get_from(tenant, &endpoint, "/health")?;
                let body: serde_json::Value = serde_json::from_str(&body).ok()?;
                (ready && status == 200).then_some(body)
            },
        )
        .await;
        assert_eq!(
            after["public_key"], health["public_key"],
            "the node's key survived the update"
        );
        assert!(after["finalized_height"].as_u64().unwrap() >= before_height);

        // Closed: nothing of the environment is left on the provider's host.
        tenant_cli(
            &devnet,
            &["lease", "close", &id.to_string(), "--from", "dev"],
        );
        eventually("destroyed", Duration::from_secs(60), || async {
            (environment(&client, id).await.phase == Phase::Destroyed).then_some(())
        })
        .await;
        (id, provider)
    });
    let agent = 41 + provider;
    let namespaces = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        !namespaces.contains(&format!("lg{agent}-{id} "))
            && !namespaces.contains(&format!("lg{agent}-{id}\n")),
        "{namespaces}"
    );
    assert!(!devnet.cgroup(provider, id).exists(), "cgroup left");
    let rules = in_host(&format!("lgd41p{provider}"), "iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&rules.stdout).contains(&format!("env-{id}")),
        "port mapping left"
    );
    let state = devnet.dir.join(format!("agent-{provider}/state/envs/{id}"));
    assert!(
        !state.exists(),
        "rootfs or volume left at {}",
        state.display()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&state.display().to_string()),
        "disk still mounted"
    );

    // A clean stop leaves no host, bridge, namespace or cgroup behind.
    devnet.stop();
    let links = String::from_utf8(
        Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!links.contains("lgdv41"), "devnet bridge left");
    let namespaces = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        !namespaces.contains("lgd41"),
        "host namespaces left: {namespaces}"
    );
    for agent in [41, 42] {
        assert!(
            !namespaces.contains(&format!("lg{agent}-")),
            "environment namespaces left: {namespaces}"
        );
        let hierarchy = logos_agent::container::cgroup::Hierarchy::detect().unwrap();
        assert!(
            !hierarchy
                .directory("memory", &format!("/logos/agent-{agent}"))
                .exists(),
            "agent cgroups left"
        );
    }
}

/// The TPM of provider `k`'s machine (its agent's swtpm), as root on that machine would reach
/// it.
fn machine_tpm(devnet: &Devnet, k: usize) -> logos_mia_collect::tpm::TssTpm {
    let tcti = std::fs::read_to_string(devnet.dir.join(format!("agent-{k}/tpm/tcti"))).unwrap();
    logos_mia_collect::tpm::TssTpm::open(tcti.trim()).unwrap()
}

async fn machine(client: &Client, provider: ProviderId) -> attestation::Machine {
    read::<attestation::Machines>(client, &provider)
        .await
        .unwrap()
}

#[test]
fn a_machine_whose_pcr_moves_is_excluded_and_a_signed_update_is_adopted() {
    use logos_mia_collect::tpm::Tpm as _;
    use logos_types::attestation::{Call as Attestation, Exclusion, MachineStatus};
    let devnet = Devnet::start("attest", 25_600, 17, &[]);
    runtime().block_on(async {
        let client = trusted(&devnet).await;
        let dev = devnet.wallet("dev");
        let (params, _) = client.value::<attestation::Params>().await.unwrap();
        // Both machines attest (registered, challenged by a drawn provisioner, reporting).
        for k in 0..2 {
            let record = machine(&client, ProviderId(k)).await;
            assert_eq!(record.status, MachineStatus::Attesting);
            assert!(record.last.is_some());
        }
        // A tenant of its own: its reserved balance is its lease's escrow alone.
        let tenant = Wallet::new(logos_client::keystore::generate().unwrap());
        let fund = Call::Balances(logos_types::balances::Call::Transfer {
            to: tenant.address(),
            amount: logos_primitives::Amount(1_000_000_000_000),
        });
        execute(&client, &dev, fund).await;
        let id = lease(&client, &tenant, 1, 36_000).await;
        let leased = environment(&client, id).await.provider;
        let other = ProviderId(1 - leased.get());
        let (account, _) = client.map::<Accounts>(&tenant.address()).await.unwrap();
        assert!(
            account.unwrap().reserved.0 > 0,
            "the lease's escrow is reserved"
        );

        // A signed update: governance approves the updated machine's reference (PCR 14 moved
        // by a new measured component), the deployer deploys it to `other`, then the machine
        // changes. Its next report adopts the reference and it stays in.
        let update = logos_mia::pcr::sha256(b"a signed kernel module update");
        let current = machine(&client, other).await.reference;
        let mut updated = read::<attestation::References>(&client, &current)
            .await
            .unwrap();
        let slot = 13; // PCR 14 is the 14th boot PCR.
        updated.boot_pcrs[slot] =
            attestation::Digest(logos_mia::pcr::extend(&updated.boot_pcrs[slot].0, &update));
        let reference = updated.id();
        execute(
            &client,
            &dev,
            Call::Attestation(Attestation::ApproveReference { reference: updated }),
        )
        .await;
        execute(
            &client,
            &dev,
            Call::Attestation(Attestation::Deploy {
                provider: other,
                reference,
            }),
        )
        .await;
        machine_tpm(&devnet, other.get() as usize)
            .extend(14, &update)
            .unwrap();
        eventually(
            "the deployment adopted",
            Duration::from_secs(120),
            || async {
                let record = machine(&client, other).await;
                assert_eq!(record.status, MachineStatus::Attesting, "{record:?}");
                (record.reference == reference).then_some(())
            },
        )
        .await;

        // The same change without a deployment, on the leased machine: its next report
        // excludes it within one period; placement stops and the lease is refunded.
        let changed_at = client.head_height().await.unwrap();
        machine_tpm(&devnet, leased.get() as usize)
            .extend(14, &update)
            .unwrap();
        let excluded_at = eventually("the exclusion", Duration::from_secs(120), || async {
            match machine(&client, leased).await.status {
                MachineStatus::Excluded { at, reason } => Some((at, reason)),
                _ => None,
            }
        })
        .await;
        assert_eq!(excluded_at.1, Exclusion::PcrMismatch);
        eprintln!(
            "PCR 14 moved at {changed_at}, excluded at {} (period {} blocks)",
            excluded_at.0, params.period_blocks
        );
        assert!(
            excluded_at.0 <= changed_at + params.period_blocks,
            "excluded at {} for a change at {changed_at}",
            excluded_at.0
        );
        let provider = cli(&devnet, &["provider", "status", &leased.to_string()]);
        let excluded = serde_json::to_value(logos_types::dvci::ProviderStatus::Excluded).unwrap();
        assert_eq!(provider["status"], excluded, "{provider}");
        assert_eq!(provider["attestation"]["state"], "excluded", "{provider}");
        let reason = serde_json::to_value(Exclusion::PcrMismatch).unwrap();
        assert_eq!(provider["attestation"]["reason"], reason, "{provider}");
        let (lease, _) = client.map::<Leases>(&LeaseId(id.get())).await.unwrap();
        assert!(
            matches!(
                lease.unwrap().closed,
                Some((_, CloseReason::ProviderExcluded))
            ),
            "the lease is closed for the exclusion"
        );
        let (account, _) = client.map::<Accounts>(&tenant.address()).await.unwrap();
        assert_eq!(
            account.unwrap().reserved.0,
            0,
            "the unspent escrow is refunded"
        );
        // The updated machine is still attested, its reports accepted.
        let record = machine(&client, other).await;
        assert_eq!(record.status, MachineStatus::Attesting);
        assert_eq!(record.reference, reference);

        // IMA turned on by a signed deployment: governance allows the update's file, approves
        // the reference with that allowlist, the deployer deploys it; the machine's kernel
        // measures the file. The agent stages the entry and the report adopts the reference.
        let mut ima = Ima::new(&devnet, other);
        let file = logos_mia::pcr::sha256(b"logos-update 2.0");
        let allowed = std::collections::BTreeSet::from([file]);
        let policy = attestation::ImaPolicy {
            policy: 1,
            digest: attestation::Digest(logos_mia::integrity::allowlist_digest(&allowed)),
            violations_max: 0,
        };
        let mut with_ima = read::<attestation::References>(&client, &reference)
            .await
            .unwrap();
        with_ima.ima = Some(policy);
        let with_ima_id = with_ima.id();
        let calls = [
            Attestation::AllowFiles {
                policy: 1,
                files: vec![attestation::Digest(file)].try_into().unwrap(),
                allowed: true,
            },
            Attestation::ApproveReference {
                reference: with_ima,
            },
            Attestation::Deploy {
                provider: other,
                reference: with_ima_id,
            },
        ];
        for call in calls {
            execute(&client, &dev, Call::Attestation(call)).await;
        }
        ima.measure(&devnet, &file, "/usr/bin/logos-update");
        eventually(
            "the IMA deployment adopted",
            Duration::from_secs(120),
            || async {
                let record = machine(&client, other).await;
                assert_eq!(record.status, MachineStatus::Attesting, "{record:?}");
                (record.reference == with_ima_id).then_some(())
            },
        )
        .await;
        // A file outside the allowlist measured: excluded for it.
        ima.measure(&devnet, &logos_mia::pcr::sha256(b"a tool"), "/tmp/tool");
        let reason = eventually("the IMA exclusion", Duration::from_secs(120), || async {
            match machine(&client, other).await.status {
                MachineStatus::Excluded { reason, .. } => Some(reason),
                _ => None,
            }
        })
        .await;
        assert_eq!(reason, Exclusion::FileNotAllowed);
    });
}

/// The IMA list of a devnet machine, played by the test as its kernel would: each measured
/// file appended to `<dir>/agent-<k>/ima.log` (ascii form) and extended into PCR 10.
struct Ima {
    path: PathBuf,
    provider: ProviderId,
    lines: String,
}

impl Ima {
    /// An empty list (IMA running, nothing measured yet).
    fn new(devnet: &Devnet, provider: ProviderId) -> Self {
        let path = devnet.dir.join(format!("agent-{provider}/ima.log"));
        std::fs::write(&path, "").unwrap();
        Self {
            path,
            provider,
            lines: String::new(),
        }
    }

    fn measure(&mut self, devnet: &Devnet, digest: &[u8; 32], path: &str) {
        use logos_mia_collect::tpm::Tpm as _;
        let entry = logos_mia::ima::Entry::measured(1, digest, path);
        self.lines += &format!(
            "10 {} ima-ng sha256:{} {path}\n",
            hex::encode(entry.template_hash),
            hex::encode(digest)
        );
        // Whole, as the kernel's list only grows: never a half-written list to the agent.
        let partial = self.path.with_extension("partial");
        std::fs::write(&partial, &self.lines).unwrap();
        std::fs::rename(&partial, &self.path).unwrap();
        let mut tpm = machine_tpm(devnet, self.provider.get() as usize);
        tpm.extend(10, &entry.sha256_extend()).unwrap();
    }
}
