//! `logos catalog [publish]`, `logos template validate`, `logos lease …` and `logos env
//! logs|stats`: the tenant (and catalog author) side of the sub0layer.

use crate::{
    client::DEFAULT_RPC,
    operator::KeyArgs,
    output::{printable, Format},
    progress::{self, Spinner},
    views,
};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use logos_client::{
    agent,
    template::{Images, ProductRef, TemplateFile},
    tenant::{catalog, close_lease, create_lease, lease_status, watch},
    Client, Wallet,
};
use logos_devnet::runtime;
use logos_primitives::Address;
use logos_types::{
    catalog::{self, ProductId, Products, TemplateId},
    dvci::RegionId,
    market::{self, LeaseId, Leases, NextLeaseId},
    operations::{self, EnvironmentId},
    Call, Event,
};
use std::time::{Duration, Instant};

/// Products a template file's product name is looked up among (ids `0..PRODUCT_SCAN`).
pub const PRODUCT_SCAN: u32 = 64;
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
        #[command(flatten)]
        format: Format,
    },
    /// A lease with its environment's desired state, status and assignment.
    Status {
        /// Lease id.
        id: LeaseId,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
    /// Leases, newest first (optionally only a tenant's).
    List {
        /// Only this tenant's leases.
        #[arg(long)]
        tenant: Option<Address>,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
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
        #[command(flatten)]
        format: Format,
    },
    /// Move a lease's environment to its template's current workload (a new generation): the
    /// provider restarts it with the new image and spec on the same volume. Prints
    /// `{"lease", "generation", "height"}`.
    Update {
        #[command(flatten)]
        key: KeyArgs,
        /// Lease id.
        id: LeaseId,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
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
        #[command(flatten)]
        format: Format,
    },
}

/// `logos env …`
#[derive(Subcommand)]
pub enum EnvCommand {
    /// The tail of an environment's workload output, fetched from its provider's agent with a
    /// request signed by the tenant; with `--follow`, then what it writes next (the agent
    /// streams at most 64 KiB/s and ends the stream after 10 minutes; run it again).
    Logs {
        #[command(flatten)]
        key: KeyArgs,
        /// Environment id (= lease id).
        id: EnvironmentId,
        /// Most bytes to show.
        #[arg(long, default_value_t = 16_384)]
        bytes: u64,
        /// Keep showing what the workload writes.
        #[arg(long)]
        follow: bool,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        /// Genesis file whose validators are trusted to prove the environment and provider.
        #[arg(long, env = "LOGOS_GENESIS")]
        genesis: Option<std::path::PathBuf>,
    },
    /// CPU, memory, disk and network use of an environment, measured by its provider's agent
    /// and signed with the provider's agent key (checked against the chain).
    Stats {
        #[command(flatten)]
        key: KeyArgs,
        /// Environment id (= lease id).
        id: EnvironmentId,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        /// Genesis file whose validators are trusted to prove the environment and provider.
        #[arg(long, env = "LOGOS_GENESIS")]
        genesis: Option<std::path::PathBuf>,
        #[command(flatten)]
        format: Format,
    },
}

/// `logos catalog …` (without a subcommand: the templates with their price).
#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Publish a template file (`logos template validate` first) under the next free id,
    /// from the privileged account (the bootstrap authority until governance owns the
    /// catalog). Prints `{"template": id, "height": h, "transaction_bytes": n}`.
    Publish {
        #[command(flatten)]
        key: KeyArgs,
        /// The template file (TOML).
        #[arg(long)]
        file: std::path::PathBuf,
        /// Image names the file may use (`name = "registry/repository@sha256:…"`; a devnet
        /// writes `<dir>/images.toml`).
        #[arg(long, env = "LOGOS_IMAGES")]
        images: Option<std::path::PathBuf>,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
}

/// `logos template …`
#[derive(Subcommand)]
pub enum TemplateCommand {
    /// Check a template file as the chain will (bounds, image pinned by digest, ports, health
    /// check, volume path, transaction size) without submitting it. With `--rpc`, its product
    /// must exist. Prints the template as the chain stores it; exits 1 with the reason if not
    /// valid.
    Validate {
        /// The template file (TOML).
        file: std::path::PathBuf,
        /// Image names the file may use.
        #[arg(long, env = "LOGOS_IMAGES")]
        images: Option<std::path::PathBuf>,
        /// Check the product against this node's catalog.
        #[arg(long)]
        rpc: Option<String>,
        #[command(flatten)]
        format: Format,
    },
}

/// Reads a file of at most `max_bytes`.
fn read_small(path: &std::path::Path, max_bytes: usize) -> Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| path.display().to_string())?
        .len();
    if size > max_bytes as u64 {
        bail!("{} is larger than {max_bytes} bytes", path.display());
    }
    std::fs::read_to_string(path).with_context(|| path.display().to_string())
}

/// A template file and the images it may name.
fn load_template(
    file: &std::path::Path,
    images: Option<&std::path::Path>,
) -> Result<(TemplateFile, Images)> {
    let bound = logos_client::template::TEMPLATE_FILE_MAX_BYTES;
    let parsed = TemplateFile::parse(&read_small(file, bound)?)
        .with_context(|| file.display().to_string())?;
    let images = match images {
        Some(path) => Images::parse(&read_small(path, bound)?)?,
        None => Images::default(),
    };
    Ok((parsed, images))
}

/// The id of `product` in the catalog of `client` (a name is looked up among the first
/// [`PRODUCT_SCAN`] ids).
async fn product_id(client: &Client, product: &ProductRef) -> Result<ProductId> {
    match product {
        ProductRef::Id(id) => {
            let id = ProductId(*id);
            client
                .map::<Products>(&id)
                .await?
                .0
                .with_context(|| format!("no product {id}"))?;
            Ok(id)
        }
        ProductRef::Name(name) => {
            for id in (0..PRODUCT_SCAN).map(ProductId) {
                if client
                    .map::<Products>(&id)
                    .await?
                    .0
                    .is_some_and(|product| product.name == name.as_str())
                {
                    return Ok(id);
                }
            }
            bail!("no product named {name:?} (see `logos catalog`)")
        }
    }
}

/// Runs `logos template …`.
pub fn run_template(command: TemplateCommand) -> Result<()> {
    let TemplateCommand::Validate {
        file,
        images: images_file,
        rpc,
        format,
    } = command;
    let (parsed, images) = load_template(&file, images_file.as_deref())?;
    let product = match &rpc {
        Some(rpc) => runtime()?.block_on(async {
            let client = Client::connect(rpc).await?;
            product_id(&client, &parsed.product).await
        })?,
        // Offline: only the form is checked (a name stands for some id).
        None => match parsed.product {
            ProductRef::Id(id) => ProductId(id),
            ProductRef::Name(_) => ProductId(0),
        },
    };
    let (template, size) = parsed
        .template(product, &images)
        .with_context(|| format!("{} is not a valid template", file.display()))?;
    format.print(&serde_json::json!({
        "valid": true,
        "template": template,
        "product_checked": rpc.is_some(),
        "transaction_bytes": size,
    }))
}

/// Runs `logos catalog publish`.
pub fn run_catalog_publish(command: CatalogCommand) -> Result<()> {
    let CatalogCommand::Publish {
        key,
        file,
        images: images_file,
        rpc,
        format,
    } = command;
    let (parsed, images) = load_template(&file, images_file.as_deref())?;
    runtime()?.block_on(async move {
        let (wallet, client) = key.connect(&rpc).await?;
        let product = product_id(&client, &parsed.product).await?;
        let (template, size) = parsed.template(product, &images)?;
        let call = Call::Catalog(catalog::Call::AddTemplate { template });
        let (receipt, height) = progress::execute(&client, &wallet, call, "template").await?;
        let id = receipt.events.iter().find_map(|event| match event {
            Event::Catalog(catalog::Event::TemplateSet { id }) => Some(*id),
            _ => None,
        });
        let id = id.context("no TemplateSet event in the receipt")?;
        format.print(
            &serde_json::json!({"template": id, "height": height, "transaction_bytes": size}),
        )
    })
}

/// Runs `logos catalog`.
pub fn run_catalog(rpc: String, format: Format) -> Result<()> {
    runtime()?.block_on(async move {
        let client = Client::connect(&rpc).await?;
        let entries: Vec<_> = catalog(&client)
            .await?
            .into_iter()
            .map(|entry| {
                serde_json::json!({
                    "template": entry.id,
                    "name": entry.template.name,
                    "product": entry.product,
                    "workload": entry.template.workload,
                    "price_per_block": entry.price_per_block.map(|price| price.0.to_string()),
                })
            })
            .collect();
        format.print_with(&entries, views::catalog)
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
                format,
            } => {
                let (wallet, client) = key.connect(&rpc).await?;
                let started = Instant::now();
                let spinner = Spinner::start(format!(
                    "lease of template {template}: submitted, waiting for finality"
                ));
                let created = create_lease(&client, &wallet, template, region, blocks).await;
                let (lease, height) = created?;
                spinner.say(&format!("lease {lease} created at height {height}"));
                if !wait {
                    spinner.stop();
                    return format.print(&serde_json::json!({"lease": lease, "height": height}));
                }
                spinner.set(format!(
                    "lease {lease}: waiting for its environment to be Verified"
                ));
                let mut say = |step: String| {
                    spinner.say(&format!("[{:>6} ms] {step}", started.elapsed().as_millis()))
                };
                let milestones = watch(
                    &client,
                    lease,
                    Duration::from_secs(timeout_s),
                    Some(&wallet),
                    &mut say,
                )
                .await;
                spinner.stop();
                let milestones = milestones?;
                let ms = |at: Option<Instant>| at.map(|at| (at - started).as_millis() as u64);
                format.print(&serde_json::json!({
                    "lease": lease,
                    "height": height,
                    "running_ms": ms(milestones.running),
                    "verified_ms": ms(milestones.verified),
                }))
            }
            LeaseCommand::Status { id, rpc, format } => {
                let client = Client::connect(&rpc).await?;
                format.print_with(&lease_status(&client, id).await?, views::lease)
            }
            LeaseCommand::List {
                tenant,
                rpc,
                format,
            } => list(tenant, &rpc, format).await,
            LeaseCommand::Extend {
                key,
                id,
                blocks,
                rpc,
                format,
            } => {
                let (wallet, client) = key.connect(&rpc).await?;
                let call = Call::Market(market::Call::ExtendLease { lease: id, blocks });
                let what = format!("extension of lease {id}");
                let (_, height) = progress::execute(&client, &wallet, call, &what).await?;
                let status = lease_status(&client, id).await?;
                format.print(&serde_json::json!({
                    "lease": id,
                    "extended_at": height,
                    "escrow": status.record.escrow,
                }))
            }
            LeaseCommand::Update {
                key,
                id,
                rpc,
                format,
            } => {
                let (wallet, client) = key.connect(&rpc).await?;
                let environment = EnvironmentId::from(id);
                let call = Call::Operations(operations::Call::UpdateEnvironment { environment });
                let what = format!("update of lease {id}");
                let (receipt, height) = progress::execute(&client, &wallet, call, &what).await?;
                let generation = receipt.events.iter().find_map(|event| match event {
                    Event::Operations(operations::Event::EnvironmentUpdated {
                        generation, ..
                    }) => Some(*generation),
                    _ => None,
                });
                format.print(&serde_json::json!({
                    "lease": id,
                    "generation": generation,
                    "height": height,
                }))
            }
            LeaseCommand::Close {
                key,
                id,
                rpc,
                format,
            } => {
                let (wallet, client) = key.connect(&rpc).await?;
                let what = format!("closing of lease {id}: submitted, waiting for finality");
                let closing = async { Ok(close_lease(&client, &wallet, id, None).await?) };
                let closed = progress::wait(what, closing).await?;
                if let Some(error) = &closed.deregistration_error {
                    eprintln!(
                        "warning: {}; retry with `logos node deregister`",
                        printable(error)
                    );
                }
                if let Some(error) = &closed.chill_error {
                    eprintln!(
                        "warning: {}; retry with `logos stake chill`",
                        printable(error)
                    );
                }
                format.print(&serde_json::json!({
                    "lease": id,
                    "closed_at": closed.height,
                    "refund": closed.refund,
                    "deregistered_full_node": closed.deregistered,
                    "chilled_validator": closed.chilled,
                }))
            }
        }
    })
}

/// `logos lease list`: the newest [`LIST_MAX`] leases, optionally only `tenant`'s.
async fn list(tenant: Option<Address>, rpc: &str, format: Format) -> Result<()> {
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
    format.print_with(&leases, views::leases)
}

/// Runs `logos env …`.
pub fn run_env(command: EnvCommand) -> Result<()> {
    match command {
        EnvCommand::Logs {
            key,
            id,
            bytes,
            follow,
            rpc,
            genesis,
        } => {
            let wallet = key.wallet()?;
            runtime()?.block_on(logs(wallet, id, bytes, follow, rpc, genesis))
        }
        EnvCommand::Stats {
            key,
            id,
            rpc,
            genesis,
            format,
        } => {
            let wallet = key.wallet()?;
            runtime()?.block_on(stats(wallet, id, rpc, genesis, format))
        }
    }
}

async fn logs(
    wallet: Wallet,
    id: EnvironmentId,
    bytes: u64,
    follow: bool,
    rpc: String,
    genesis: Option<std::path::PathBuf>,
) -> Result<()> {
    let client = crate::client::trusted_client(&rpc, genesis.as_deref()).await?;
    if !follow {
        return write_logs(&agent::logs_tail(&client, &wallet, id, bytes).await?);
    }
    let mut response = agent::logs_followed(&client, &wallet, id, bytes).await?;
    // A character split between chunks waits for its rest (at most 3 bytes carried).
    let mut carried = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        carried.extend_from_slice(&chunk);
        let whole = whole_characters(&carried);
        write_logs(&carried[..whole])?;
        carried.drain(..whole);
    }
    write_logs(&carried)
}

/// How many leading bytes of `bytes` to write now: all but a UTF-8 sequence cut short at the
/// end (its lead byte and up to 2 continuation bytes), which waits for the next chunk.
fn whole_characters(bytes: &[u8]) -> usize {
    let start = bytes.len().saturating_sub(3);
    for at in (start..bytes.len()).rev() {
        let byte = bytes[at];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let length = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return match bytes.len() - at < length {
            true => at,
            false => bytes.len(),
        };
    }
    bytes.len()
}

/// Writes workload output to standard output: the bytes as they are into a file or pipe, but
/// with control characters other than newline and tab escaped on a terminal, where the
/// provider (or the workload) could otherwise move the cursor, retitle the window or hide
/// lines with escape sequences.
fn write_logs(bytes: &[u8]) -> Result<()> {
    use std::io::{IsTerminal as _, Write as _};
    let mut stdout = std::io::stdout().lock();
    if !stdout.is_terminal() {
        stdout.write_all(bytes)?;
        return Ok(stdout.flush()?);
    }
    for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let safe: Vec<String> = body.split('\t').map(printable).collect();
        write!(stdout, "{}{newline}", safe.join("\t"))?;
    }
    Ok(stdout.flush()?)
}

/// `logos env stats`: asks the agent, then checks its signature against the provider's agent
/// key on chain, the environment, the provider and the freshness before printing
/// (`logos_client::agent::stats`).
async fn stats(
    wallet: Wallet,
    id: EnvironmentId,
    rpc: String,
    genesis: Option<std::path::PathBuf>,
    format: Format,
) -> Result<()> {
    let client = crate::client::trusted_client(&rpc, genesis.as_deref()).await?;
    let (stats, agent_key) = agent::stats(&client, &wallet, id).await?;
    let mut value = serde_json::to_value(&stats)?;
    value["signed_by"] = agent_key.to_string().into();
    format.print(&value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer;
    use logos_api::agent::{EnvironmentStats, SignedStats};
    use logos_client::agent::verify_stats;
    use logos_primitives::NodeKey;
    use logos_primitives::PrivateKey;

    fn signed(key: &PrivateKey, stats: &EnvironmentStats) -> SignedStats {
        logos_agent::gatekeeper::sign_stats(key, stats)
    }

    #[test]
    fn a_character_split_between_log_chunks_waits_for_its_rest() {
        let text = "a€b😀".as_bytes();
        assert_eq!(whole_characters(text), text.len());
        assert_eq!(whole_characters(&text[..2]), 1, "€'s first byte waits");
        assert_eq!(whole_characters(&text[..3]), 1, "€'s first two bytes wait");
        assert_eq!(whole_characters(&text[..5]), 5);
        assert_eq!(
            whole_characters(&text[..8]),
            5,
            "😀's first three bytes wait"
        );
        // Invalid bytes are not held back (they are shown as U+FFFD), nor is more than 3.
        assert_eq!(whole_characters(&[0x80, 0x80, 0x80, 0x80]), 4);
        assert_eq!(whole_characters(b""), 0);
    }

    /// A tenant holds the provider to what its agent signed, and only to that.
    #[test]
    fn only_fresh_stats_signed_by_the_providers_agent_key_for_this_request_are_shown() {
        let agent = PrivateKey::from_seed(5);
        let key = NodeKey::from_public_key(&agent.public_key());
        let (provider, id, now) = (
            logos_types::dvci::ProviderId(1),
            EnvironmentId(7),
            1_000_000,
        );
        let stats = EnvironmentStats {
            provider,
            environment: id,
            request_timestamp_s: now,
            measured_at_ms: now * 1_000,
            usage: logos_api::agent::Usage {
                memory_bytes: 5,
                ..Default::default()
            },
        };
        assert_eq!(
            verify_stats(&signed(&agent, &stats), &key, provider, id, now).unwrap(),
            stats
        );
        let impostor = PrivateKey::from_seed(6);
        assert!(verify_stats(&signed(&impostor, &stats), &key, provider, id, now).is_err());
        let mut tampered = signed(&agent, &stats);
        tampered.stats = tampered
            .stats
            .replace("\"memory_bytes\":5", "\"memory_bytes\":1");
        assert!(verify_stats(&tampered, &key, provider, id, now).is_err());
        assert!(verify_stats(
            &signed(&agent, &stats),
            &key,
            provider,
            EnvironmentId(8),
            now
        )
        .is_err());
        assert!(verify_stats(
            &signed(&agent, &stats),
            &key,
            logos_types::dvci::ProviderId(2),
            id,
            now
        )
        .is_err());
        assert!(
            verify_stats(&signed(&agent, &stats), &key, provider, id, now + 5).is_err(),
            "replayed"
        );
        let stale = EnvironmentStats {
            measured_at_ms: (now - 3_600) * 1_000,
            ..stats
        };
        assert!(verify_stats(&signed(&agent, &stale), &key, provider, id, now).is_err());
        let mut garbled = signed(&agent, &stats);
        garbled.signature = "0x12".into();
        assert!(verify_stats(&garbled, &key, provider, id, now).is_err());
    }
}
