//! `logos catalog`, `logos lease …` and `logos env logs`: the tenant side of the sub0layer.

use crate::{
    client::{print_json, DEFAULT_RPC},
    operator::KeyArgs,
};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use commonware_codec::Encode;
use logos_api::agent::{logs_message, LOGS_MAX_BYTES, LOGS_NAMESPACE};
use logos_client::{
    http::{read_bounded, untrusted},
    tenant::{create_lease, lease_status, offered_registration, watch, HEALTH_TIMEOUT_MS},
    Client, Wallet,
};
use logos_devnet::runtime;
use logos_primitives::{format_public_key, Address, NodeKey};
use logos_types::{
    catalog::{Products, TemplateId, Templates},
    dvci::{Providers, RegionId},
    market::{self, LeaseId, Leases, NextLeaseId, Prices},
    operations::{EnvironmentId, Environments},
    peers, Call, Event,
};
use std::time::{Duration, Instant};

/// Timeout of `env logs`' request to the provider's agent, ms.
const LOGS_TIMEOUT_MS: u64 = 10_000;
/// Room for an agent's error message beyond the logs asked for, bytes.
const LOGS_ERROR_MAX_BYTES: usize = 4_096;

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
        template: TemplateId,
        /// Blocks to pay for up front.
        #[arg(long, default_value_t = 36_000)]
        blocks: u64,
        /// Region id.
        #[arg(long, default_value = "1")]
        region: RegionId,
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
        id: LeaseId,
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
        id: LeaseId,
        /// Additional blocks.
        #[arg(long)]
        blocks: u64,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
    },
    /// Close a lease now and get the unspent escrow back; its environment is destroyed. A
    /// full-node key its workload offered and the signer registered is deregistered too (the
    /// deposit comes back). Prints `{"lease", "closed_at", "refund", "deregistered_full_node"}`.
    Close {
        #[command(flatten)]
        key: KeyArgs,
        /// Lease id.
        id: LeaseId,
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
        id: EnvironmentId,
        /// Most bytes to show.
        #[arg(long, default_value_t = 16_384)]
        bytes: u64,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        /// Genesis file whose validators are trusted to prove the environment and provider.
        #[arg(long, env = "LOGOS_GENESIS")]
        genesis: Option<std::path::PathBuf>,
    },
}

/// Runs `logos catalog`.
pub fn run_catalog(rpc: String) -> Result<()> {
    runtime()?.block_on(async move {
        let client = Client::connect(&rpc).await?;
        let mut entries = Vec::new();
        for id in (0..CATALOG_SCAN).map(TemplateId) {
            let (Some(template), _) = client.map::<Templates>(&id).await? else {
                continue;
            };
            let (product, _) = client.map::<Products>(&template.product).await?;
            let price = match &product {
                Some(product) => client
                    .map::<Prices>(&product.class)
                    .await?
                    .0
                    .and_then(|price| price.0.checked_mul(product.compute_units as u128)),
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
                let (wallet, client) = key.connect(&rpc).await?;
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
                let milestones = watch(
                    &client,
                    lease,
                    Duration::from_secs(timeout_s),
                    Some(&wallet),
                    &mut say,
                )
                .await?;
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
            LeaseCommand::List { tenant, rpc } => list(tenant, &rpc).await,
            LeaseCommand::Extend {
                key,
                id,
                blocks,
                rpc,
            } => {
                let (wallet, client) = key.connect(&rpc).await?;
                let call = Call::Market(market::Call::ExtendLease { lease: id, blocks });
                let (_, height) = client.execute(&wallet, call).await?;
                let status = lease_status(&client, id).await?;
                print_json(&serde_json::json!({
                    "lease": id,
                    "extended_at": height,
                    "escrow": status.record.escrow,
                }))
            }
            LeaseCommand::Close { key, id, rpc } => {
                let (wallet, client) = key.connect(&rpc).await?;
                // Before the workload goes: the full-node key it may have had registered.
                let registered = registered_node(&client, &wallet, id).await;
                let call = Call::Market(market::Call::CloseLease { lease: id });
                let (receipt, height) = client.execute(&wallet, call).await?;
                let refund = receipt.events.iter().find_map(|event| match event {
                    Event::Market(market::Event::LeaseClosed { refund, .. }) => Some(*refund),
                    _ => None,
                });
                let mut deregistered = None;
                if let Some(node) = registered {
                    // The registry is bounded: the slot and the deposit come back with the lease.
                    let call = Call::Peers(peers::Call::DeregisterFullNode { key: node });
                    client.execute(&wallet, call).await?;
                    deregistered = Some(node);
                }
                print_json(&serde_json::json!({
                    "lease": id,
                    "closed_at": height,
                    "refund": refund,
                    "deregistered_full_node": deregistered,
                }))
            }
        }
    })
}

/// The full-node key registered by `wallet` that lease `id`'s workload offers at `/health`, if
/// any (best effort: an unreachable workload has none).
async fn registered_node(client: &Client, wallet: &Wallet, id: LeaseId) -> Option<NodeKey> {
    let (environment, _) = client
        .map::<Environments>(&EnvironmentId::from(id))
        .await
        .ok()?;
    let endpoint = environment?.endpoint;
    let http = untrusted(Duration::from_millis(HEALTH_TIMEOUT_MS)).ok()?;
    let offer = offered_registration(&http, &endpoint).await?;
    let (record, _) = client.map::<peers::FullNodes>(&offer.key).await.ok()?;
    (record?.owner == wallet.address()).then_some(offer.key)
}

/// `logos lease list`: the newest [`LIST_MAX`] leases, optionally only `tenant`'s.
async fn list(tenant: Option<Address>, rpc: &str) -> Result<()> {
    let client = Client::connect(rpc).await?;
    let (next, _) = client.value::<NextLeaseId>().await?;
    let mut leases = Vec::new();
    for id in (next.get().saturating_sub(LIST_MAX)..next.get()).rev() {
        let (Some(record), _) = client.map::<Leases>(&LeaseId(id)).await? else {
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

/// Runs `logos env …`.
pub fn run_env(command: EnvCommand) -> Result<()> {
    let EnvCommand::Logs {
        key,
        id,
        bytes,
        rpc,
        genesis,
    } = command;
    let wallet = key.wallet()?;
    runtime()?.block_on(async move {
        let client = crate::client::trusted_client(&rpc, genesis.as_deref()).await?;
        let (environment, _) = client.map_proven::<Environments>(&id).await?;
        let environment = environment.with_context(|| format!("no environment {id}"))?;
        let (provider, _) = client
            .map_proven::<Providers>(&environment.provider)
            .await?;
        let provider = provider.context("provider gone")?;
        let timestamp_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let signature = wallet.sign(LOGS_NAMESPACE, &logs_message(id, timestamp_s));
        let url = format!("http://{}/v1/environments/{id}/logs", provider.endpoint);
        let response = untrusted(Duration::from_millis(LOGS_TIMEOUT_MS))?
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
        // The agent is the provider's: at most the asked bytes plus room for an error.
        let bound = usize::try_from(LOGS_MAX_BYTES).unwrap_or(usize::MAX) + LOGS_ERROR_MAX_BYTES;
        let text = String::from_utf8_lossy(&read_bounded(response, bound).await?).into_owned();
        if !status.is_success() {
            bail!("agent answered {status}: {text}");
        }
        print!("{text}");
        Ok(())
    })
}
