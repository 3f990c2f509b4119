//! `logos catalog`, `logos lease …` and `logos env logs`: the tenant side of the sub0layer.

use crate::{
    client::{print_json, DEFAULT_RPC},
    operator::{execute, runtime, KeyArgs},
};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use commonware_codec::Encode;
use logos_api::agent::{logs_message, LOGS_MAX_BYTES, LOGS_NAMESPACE};
use logos_client::{Client, Wallet};
use logos_primitives::{format_public_key, Address};
use logos_state::{
    modules::{
        market::{self, Lease, Product, Template},
        operations::{self, ConditionStatus, ConditionType, Environment},
        provisioning::{self, Assignment},
    },
    Call, Event,
};
use std::time::{Duration, Instant};

/// Templates `logos catalog` looks at (ids `0..CATALOG_SCAN`).
pub const CATALOG_SCAN: u32 = 32;
/// Leases `logos lease list` looks at (the newest).
pub const LIST_MAX: u64 = 256;

/// `logos lease …`
#[derive(Subcommand)]
pub enum LeaseCommand {
    /// Lease a template: escrow `blocks` blocks of its price and get an environment.
    Create {
        #[command(flatten)]
        key: KeyArgs,
        /// Template id (see `logos catalog`).
        #[arg(long)]
        template: u32,
        /// Blocks to pay for up front.
        #[arg(long, default_value_t = 36_000)]
        blocks: u64,
        /// Region id.
        #[arg(long, default_value_t = 1)]
        region: u16,
        /// Show progress until the environment is Verified (or fails).
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
    },
    /// A lease with its environment's desired state, status and assignment.
    Status {
        /// Lease id.
        id: u64,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
    },
    /// Leases, newest first (optionally only a tenant's).
    List {
        /// Only this tenant's leases.
        #[arg(long)]
        tenant: Option<Address>,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
    },
    /// Escrow `blocks` more blocks for a lease.
    Extend {
        #[command(flatten)]
        key: KeyArgs,
        /// Lease id.
        id: u64,
        /// Additional blocks.
        #[arg(long)]
        blocks: u64,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
    },
    /// Close a lease now and get the unspent escrow back; its environment is destroyed.
    Close {
        #[command(flatten)]
        key: KeyArgs,
        /// Lease id.
        id: u64,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
    },
}

/// `logos env …`
#[derive(Subcommand)]
pub enum EnvCommand {
    /// The tail of an environment's workload output, fetched from its provider's agent with a
    /// request signed by the tenant.
    Logs {
        #[command(flatten)]
        key: KeyArgs,
        /// Environment id (= lease id).
        id: u64,
        /// Most bytes to show.
        #[arg(long, default_value_t = 16_384)]
        bytes: u64,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
    },
}

/// Everything about one lease.
#[derive(serde::Serialize)]
pub struct LeaseStatus {
    /// Lease id (= environment id).
    pub lease: u64,
    /// The lease record.
    pub record: Lease,
    /// Its environment (desired state and reported status).
    pub environment: Option<Environment>,
    /// Who realizes and checks it (none once destroyed).
    pub assignment: Option<Assignment>,
    /// Finalized height of the reads.
    pub height: u64,
}

/// Reads a lease's full status.
pub async fn lease_status(client: &Client, id: u64) -> Result<LeaseStatus> {
    let (record, height) = client.read::<Lease>(&market::lease_key(id)).await?;
    let record = record.with_context(|| format!("no lease {id}"))?;
    let (environment, _) = client
        .read::<Environment>(&operations::environment_key(id))
        .await?;
    let (assignment, _) = client
        .read::<Assignment>(&provisioning::assignment_key(id))
        .await?;
    Ok(LeaseStatus {
        lease: id,
        record,
        environment,
        assignment,
        height,
    })
}

/// Creates a lease from `wallet`; returns its id and the height it was created at.
pub async fn create_lease(
    client: &Client,
    wallet: &Wallet,
    template: u32,
    region: u16,
    blocks: u64,
) -> Result<(u64, u64)> {
    let call = Call::Market(market::Call::CreateLease {
        template,
        region,
        blocks,
    });
    let (receipt, height) = execute(client, wallet, call).await?;
    let lease = receipt
        .events
        .iter()
        .find_map(|event| match event {
            Event::Market(market::Event::LeaseCreated { lease, .. }) => Some(*lease),
            _ => None,
        })
        .context("no LeaseCreated event")?;
    Ok((lease, height))
}

/// Milestones of a lease, in the order they happen.
#[derive(Clone, Copy, Debug, Default)]
pub struct Milestones {
    /// First seen Ready=True.
    pub running: Option<Instant>,
    /// First seen Verified=True.
    pub verified: Option<Instant>,
    /// First seen the workload's own health saying it is synced.
    pub synced: Option<Instant>,
}

/// Follows lease `id` until it is Verified and its workload healthy (or `timeout`), calling
/// `say` with each new step. Fails if the lease closes or the environment fails for good.
pub async fn watch(
    client: &Client,
    id: u64,
    timeout: Duration,
    say: &mut impl FnMut(String),
) -> Result<Milestones> {
    let deadline = Instant::now() + timeout;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    let mut seen = Vec::<String>::new();
    let mut milestones = Milestones::default();
    while Instant::now() < deadline {
        let status = lease_status(client, id).await?;
        for step in steps(&status) {
            if !seen.contains(&step) {
                say(step.clone());
                seen.push(step);
            }
        }
        let Some(environment) = &status.environment else {
            bail!("lease {id} has no environment");
        };
        if status.record.closed.is_some() {
            bail!("lease {id} closed: {:?}", status.record.closed);
        }
        let now = Instant::now();
        if environment.condition(ConditionType::Ready).status == ConditionStatus::True {
            milestones.running.get_or_insert(now);
        }
        if environment.condition(ConditionType::Verified).status == ConditionStatus::True {
            milestones.verified.get_or_insert(now);
        }
        if milestones.synced.is_none() && !environment.endpoint.is_empty() {
            let url = format!("http://{}/health", environment.endpoint);
            if let Ok(response) = http.get(&url).send().await {
                if response.status().is_success() {
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    say(format!(
                        "workload healthy: {}",
                        summarize_health(&body, status.height)
                    ));
                    milestones.synced = Some(now);
                }
            }
        }
        if milestones.verified.is_some() && milestones.synced.is_some() {
            return Ok(milestones);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("lease {id} not verified within {} s", timeout.as_secs())
}

fn summarize_health(body: &serde_json::Value, chain_height: u64) -> String {
    match body.get("finalized_height") {
        Some(height) => format!(
            "leased full node synced to finalized height {height} (chain head {chain_height})"
        ),
        None => body.to_string(),
    }
}

/// Human-readable steps of a lease's status.
fn steps(status: &LeaseStatus) -> Vec<String> {
    let mut steps = vec![format!(
        "lease {} created at height {}: {} per block",
        status.lease, status.record.created_at, status.record.rate
    )];
    steps.push(format!("placed on provider {}", status.record.provider));
    if let Some(assigned) = status.assignment.as_ref().and_then(|task| task.assigned) {
        steps.push(format!("assigned to provisioner {assigned}"));
    }
    if let Some(environment) = &status.environment {
        for condition in &environment.conditions {
            if condition.kind == ConditionType::Scheduled {
                continue;
            }
            if condition.status != ConditionStatus::Unknown || condition.reason != "AwaitingReport"
            {
                steps.push(format!(
                    "{:?}={:?} ({}{}{})",
                    condition.kind,
                    condition.status,
                    condition.reason,
                    if condition.message.is_empty() {
                        ""
                    } else {
                        ": "
                    },
                    condition.message
                ));
            }
        }
        if !environment.endpoint.is_empty() {
            steps.push(format!("endpoint {}", environment.endpoint));
        }
    }
    if let Some(task) = &status.assignment {
        if !task.checkers.is_empty() {
            let checkers: Vec<String> = task.checkers.iter().map(|c| c.to_string()).collect();
            steps.push(format!(
                "cross-check round {} drawn: {}",
                task.round,
                checkers.join(", ")
            ));
        }
    }
    steps
}

/// Runs `logos catalog`.
pub fn run_catalog(rpc: String) -> Result<()> {
    runtime()?.block_on(async move {
        let client = Client::connect(&rpc).await?;
        let mut entries = Vec::new();
        for id in 0..CATALOG_SCAN {
            let (template, _) = client.read::<Template>(&market::template_key(id)).await?;
            let Some(template) = template else { continue };
            let (product, _) = client
                .read::<Product>(&market::product_key(template.product))
                .await?;
            let price = match &product {
                Some(product) => client
                    .read::<logos_primitives::Amount>(&market::price_key(product.class))
                    .await?
                    .0
                    .map(|price| price.0 * product.compute_units as u128),
                None => None,
            };
            entries.push(serde_json::json!({
                "template": id,
                "name": template.name,
                "product": product,
                "workload": template.workload,
                "price_per_block": price.map(|price| price.to_string()),
            }));
        }
        print_json(&entries)
    })
}

/// Runs `logos lease …`.
pub fn run_lease(command: LeaseCommand) -> Result<()> {
    runtime()?.block_on(async move {
        match command {
            LeaseCommand::Create {
                key,
                template,
                blocks,
                region,
                wait,
                timeout_s,
                rpc,
            } => {
                let wallet = key.wallet()?;
                let client = Client::connect(&rpc).await?;
                let started = Instant::now();
                eprintln!("submitting the lease of template {template}; waiting for finality…");
                let (lease, height) =
                    create_lease(&client, &wallet, template, region, blocks).await?;
                eprintln!("lease {lease} created at height {height}");
                if !wait {
                    return print_json(&serde_json::json!({"lease": lease, "height": height}));
                }
                let mut say =
                    |step: String| eprintln!("[{:>6} ms] {step}", started.elapsed().as_millis());
                let milestones =
                    watch(&client, lease, Duration::from_secs(timeout_s), &mut say).await?;
                let ms = |at: Option<Instant>| at.map(|at| (at - started).as_millis() as u64);
                print_json(&serde_json::json!({
                    "lease": lease,
                    "height": height,
                    "running_ms": ms(milestones.running),
                    "verified_ms": ms(milestones.verified),
                }))
            }
            LeaseCommand::Status { id, rpc } => {
                let client = Client::connect(&rpc).await?;
                print_json(&lease_status(&client, id).await?)
            }
            LeaseCommand::List { tenant, rpc } => {
                let client = Client::connect(&rpc).await?;
                let (next, _) = client.read_raw(&market::next_lease_id_key()).await?;
                let next = match next {
                    Some(bytes) => u64::from_be_bytes(
                        bytes
                            .as_slice()
                            .try_into()
                            .context("malformed lease counter")?,
                    ),
                    None => 0,
                };
                let mut leases = Vec::new();
                for id in (next.saturating_sub(LIST_MAX)..next).rev() {
                    let (Some(record), _) = client.read::<Lease>(&market::lease_key(id)).await?
                    else {
                        continue;
                    };
                    if tenant.is_some_and(|tenant| tenant != record.tenant) {
                        continue;
                    }
                    let mut value = serde_json::to_value(&record)?;
                    value["lease"] = id.into();
                    leases.push(value);
                }
                print_json(&leases)
            }
            LeaseCommand::Extend {
                key,
                id,
                blocks,
                rpc,
            } => {
                let wallet = key.wallet()?;
                let client = Client::connect(&rpc).await?;
                let call = Call::Market(market::Call::ExtendLease { lease: id, blocks });
                let (_, height) = execute(&client, &wallet, call).await?;
                let status = lease_status(&client, id).await?;
                print_json(&serde_json::json!({
                    "lease": id,
                    "extended_at": height,
                    "escrow": status.record.escrow,
                }))
            }
            LeaseCommand::Close { key, id, rpc } => {
                let wallet = key.wallet()?;
                let client = Client::connect(&rpc).await?;
                let call = Call::Market(market::Call::CloseLease { lease: id });
                let (receipt, height) = execute(&client, &wallet, call).await?;
                let refund = receipt.events.iter().find_map(|event| match event {
                    Event::Market(market::Event::LeaseClosed { refund, .. }) => Some(*refund),
                    _ => None,
                });
                print_json(&serde_json::json!({"lease": id, "closed_at": height, "refund": refund}))
            }
        }
    })
}

/// Runs `logos env …`.
pub fn run_env(command: EnvCommand) -> Result<()> {
    let EnvCommand::Logs {
        key,
        id,
        bytes,
        rpc,
    } = command;
    let wallet = key.wallet()?;
    runtime()?.block_on(async move {
        let client = Client::connect(&rpc).await?;
        let (environment, _) = client
            .read_proven::<Environment>(&operations::environment_key(id))
            .await?;
        let environment = environment.with_context(|| format!("no environment {id}"))?;
        let (provider, _) = client
            .read_proven::<logos_state::modules::dvci::Provider>(
                &logos_state::modules::dvci::provider_key(environment.provider),
            )
            .await?;
        let provider = provider.context("provider gone")?;
        let timestamp_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let signature = wallet.sign(LOGS_NAMESPACE, &logs_message(id, timestamp_s));
        let url = format!("http://{}/v1/environments/{id}/logs", provider.endpoint);
        let response = reqwest::Client::new()
            .get(&url)
            .query(&[
                ("timestamp_s", timestamp_s.to_string()),
                ("public_key", format_public_key(&wallet.public_key())),
                (
                    "signature",
                    format!("0x{}", hex::encode(signature.encode())),
                ),
                ("bytes", bytes.min(LOGS_MAX_BYTES).to_string()),
            ])
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("agent answered {status}: {text}");
        }
        print!("{text}");
        Ok(())
    })
}
