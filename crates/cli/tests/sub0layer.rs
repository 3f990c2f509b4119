//! End-to-end tests of the sub0layer with real processes: `logos devnet` with validators,
//! provider agents (runc container driver), provisioners and workloads from the project's OCI
//! images. They need root (namespaces, cgroups, loop devices, the firewall), as the agent does.

use commonware_codec::Encode;
use logos_api::agent::{request_message, Action, AgentRequest, AGENT_NAMESPACE};
use logos_client::{Client, Wallet};
use logos_primitives::{format_public_key, Address};
use logos_provisioner::{
    core::{AgentView, Effect},
    AgentEffects, Effects, Provisioner as Daemon, ProvisionerConfig, ProvisionerError, Target,
};
use logos_types::{
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
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{load_key, runtime, stdout_lines, LOGOS};

/// A `logos devnet` process with its sub0layer.
struct Devnet {
    dir: PathBuf,
    rpc: String,
    network_index: u8,
    child: Child,
}

impl Devnet {
    /// Starts 4 validators, 2 agents and 4 provisioners. Ports: p2p `base + i`, RPC
    /// `base + 1000 + i`, metrics `base + 2000 + i`, agents `base + 3000 + k` (all below the
    /// ephemeral range).
    fn start(name: &str, base: u16, network_index: u8, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("logos-sub0-{name}-{}", std::process::id()));
        let mut child = Command::new(LOGOS)
            .args(["devnet", "--validators", "4", "--providers", "2"])
            .args(["--p2p-base-port", &base.to_string()])
            .args(["--rpc-base-port", &(base + 1_000).to_string()])
            .args(["--metrics-base-port", &(base + 2_000).to_string()])
            .args(["--agent-base-port", &(base + 3_000).to_string()])
            .args(["--network-base-index", &network_index.to_string()])
            .args(extra)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let receiver = stdout_lines(&mut child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let line = receiver
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("devnet not ready; see {}", dir.display()));
            if line.contains("press Ctrl-C") {
                break;
            }
        }
        Self {
            rpc: format!("http://127.0.0.1:{}", base + 1_000),
            dir,
            network_index,
            child,
        }
    }

    fn wallet(&self, name: &str) -> Wallet {
        Wallet::new(load_key(&self.dir.join(format!("keys/{name}.key"))))
    }

    fn cgroup(&self, agent: usize, environment: EnvironmentId) -> PathBuf {
        let hierarchy = logos_agent::container::cgroup::Hierarchy::detect().unwrap();
        let path = format!("/logos/agent-{}/env-{environment}", self.network_index as usize + agent);
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
        let address = text.split_whitespace().nth(3).unwrap_or_else(|| panic!("no address: {text}"));
        address.split('/').next().unwrap().to_string()
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A client of the devnet whose proven reads trust the devnet's genesis file.
async fn trusted(devnet: &Devnet) -> Client {
    let genesis = logos_types::Genesis::load(&devnet.dir.join("genesis.toml")).unwrap();
    Client::connect_trusted(&devnet.rpc, &genesis)
        .await
        .unwrap()
}

/// Runs `logos <args> --rpc … --keystore …` and parses its JSON output.
fn cli(devnet: &Devnet, args: &[&str]) -> serde_json::Value {
    let output = Command::new(LOGOS)
        .args(args)
        .args(["--rpc", &devnet.rpc])
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

fn agent_request(
    wallet: &Wallet,
    provider: ProviderId,
    environment: EnvironmentId,
    generation: u64,
) -> AgentRequest {
    let message = request_message(provider, environment, generation, Action::Ensure);
    AgentRequest {
        provider,
        environment,
        generation,
        action: Action::Ensure,
        provisioner: format_public_key(&wallet.public_key()),
        signature: format!(
            "0x{}",
            hex::encode(wallet.sign(AGENT_NAMESPACE, &message).encode())
        ),
    }
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
        let height = client.head_height().await.unwrap();
        eventually(
            "leased node at the validators' height",
            Duration::from_secs(30),
            || async { (leased.head_height().await.ok()? >= height).then_some(()) },
        )
        .await;

        // The CLI shows the catalog and the lease, and extends it.
        let catalog = cli(&devnet, &["catalog"]);
        assert_eq!(catalog[0]["name"], "Logos full node");
        let status = cli(&devnet, &["lease", "status", &id.to_string()]);
        assert_eq!(status["environment"]["conditions"][2]["type"], "Verified");
        assert_eq!(status["environment"]["conditions"][2]["status"], "True");
        let listed = cli(&devnet, &["lease", "list"]);
        assert_eq!(listed[0]["lease"], id.get());
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

        // Billed every block.
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

        // The agent refuses what the chain does not back.
        let http = reqwest::Client::new();
        let stranger = agent_request(&dev, record.provider, id, record.generation);
        let refused = http.post(&url).json(&stranger).send().await.unwrap();
        assert_eq!(refused.status(), 403);
        assert!(refused
            .text()
            .await
            .unwrap()
            .contains("not the assigned provisioner"));
        let task = read::<Assignments>(&client, &id).await.unwrap();
        let assigned = (0..4)
            .map(|i| devnet.wallet(&format!("provisioner-{i}")))
            .find(|wallet| Some(wallet.address()) == task.assigned)
            .unwrap();
        let stale = agent_request(&assigned, record.provider, id, record.generation + 1);
        let refused = http.post(&url).json(&stale).send().await.unwrap();
        assert_eq!(refused.status(), 403);
        assert!(refused.text().await.unwrap().contains("generation"));

        // The tenant reads the workload's logs through the agent.
        let logs = Command::new(LOGOS)
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

        // Escrow exhaustion closes the lease at the right block and destroys the sandbox.
        let short = lease(&client, &dev, 1, 120).await;
        let closed = eventually("escrow exhausted", Duration::from_secs(60), || async {
            let record = read::<Leases>(&client, &LeaseId::from(short)).await?;
            record.closed.map(|closed| (record, closed))
        })
        .await;
        let (record, (height, reason)) = closed;
        assert_eq!(reason, CloseReason::EscrowExhausted);
        assert_eq!(record.blocks_billed, 120);
        assert_eq!(
            height,
            record.created_at + 119,
            "closed in the block that spent it"
        );
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
}

/// A lying provisioner (a test double, injected through the daemon's effect handler): it never
/// asks the agent for anything and reports every environment it must ensure as running at a
/// made-up endpoint. Its other effects (votes included) are honest.
struct Liar {
    honest: AgentEffects,
    lied: std::sync::Mutex<std::collections::BTreeSet<(EnvironmentId, u64)>>,
}

/// Where the liar says its environments run (unroutable, never probed successfully).
const MADE_UP_ENDPOINT: &str = "10.88.250.250:8080";

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
            let lie = Report {
                generation: target.generation,
                phase: Phase::Running,
                endpoint: MADE_UP_ENDPOINT.try_into().unwrap(),
                ports: Default::default(),
                message: "HealthCheckPassed".try_into().unwrap(),
            };
            let _ = self.honest.apply(target, &Effect::Report(lie)).await;
        }
        Ok(Some(AgentView::Unreachable("lying".into())))
    }
}

#[test]
fn lying_provisioner_is_slashed_and_memory_limit_is_enforced() {
    let devnet = Devnet::start("byzantine", 24_600, 13, &["--external-provisioners", "0"]);
    runtime().block_on(async {
        let client = trusted(&devnet).await;
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
        assert!(connect(record.endpoint.to_string()).is_ok(), "published port unreachable");
        assert_eq!(record.ports[0].port, 8080);
        let ip = devnet.environment_ip(record.provider.get() as usize, web);
        assert!(connect(format!("{ip}:8080")).is_ok(), "declared port unreachable");
        assert!(connect(format!("{ip}:9000")).is_err(), "undeclared port 9000 reachable");
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
