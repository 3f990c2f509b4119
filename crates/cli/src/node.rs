//! `logos node run --config FILE [--role validator|full]`: one validator or full node process.
//!
//! Opens storage under `data_dir`, connects to the genesis validators over authenticated,
//! encrypted TCP (commonware-p2p `lookup`; the configured `full_nodes` are tracked as
//! secondary peers), runs consensus (a validator) or follows it (a full node, see
//! `logos_node::full`), and serves JSON-RPC. When ready it prints one JSON line to stdout:
//! `{"ready": true, "role": "validator"|"full", "rpc": "http://…", "public_key": "0x…", "chain_id": "…"}`.

use anyhow::{Context, Result};
use clap::Subcommand;
use commonware_cryptography::{ChaCha20Poly1305, Signer};
use commonware_p2p::{authenticated::lookup, AddressableManager, AddressableTrackedPeers};
use commonware_runtime::{tokio as runtime, Quota, Runner, Supervisor};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{ordered::Map, NZUsize, NZU32};
use logos_api::consensus::consensus_namespace;
use logos_client::keystore;
use logos_node::{
    config::{NodeConfig, Role},
    engine::{self, channels, Networks},
    full,
    rpc::{self, RpcConfig},
    statesync::{self, Floor},
};
use logos_primitives::{format_public_key, parse_public_key, PublicKey};
use logos_types::{peers::FULL_NODES_MAX, Genesis};
use std::{path::PathBuf, time::Duration};

/// `logos node …`
#[derive(Subcommand)]
pub enum NodeCommand {
    /// Run a validator, or a full node that follows the validators over p2p.
    Run {
        /// Node configuration file (TOML; see `logos_node::config`). Without it, a full node
        /// is configured from `--genesis` and `--data-dir` (and the flags below).
        #[arg(long, required_unless_present = "genesis")]
        config: Option<PathBuf>,
        #[command(flatten)]
        full: FullNodeFlags,
        /// `validator` (votes in every epoch whose committee holds its key: a genesis
        /// validator's, or a candidate's elected by stake, `logos stake validate`; follows the
        /// chain meanwhile) or `full` (a non-voting peer that executes every finalized block
        /// and serves the same JSON-RPC; validators let it connect if they list its key in
        /// `full_nodes` or it is registered on chain, `logos node register`). Overrides the
        /// file's `role`.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Finalized blocks (with certificates) and state history to keep behind the tip
        /// (overrides the file's `retention_blocks`; default 1,000,000, at least 1,024).
        #[arg(long, conflicts_with = "archive")]
        retention_blocks: Option<u64>,
        /// Keep every block, certificate and state operation (overrides the file's `archive`).
        #[arg(long)]
        archive: bool,
        /// On a first start (no state in the data directory yet), take the state after a
        /// recent finalized block from the node at `--state-sync-rpc` instead of executing
        /// every block from genesis (`logos_node::statesync`): the block is certified by its
        /// epoch's committee, followed from the genesis validators, and every operation of
        /// the state is proven against it. After a refusal or `--state-sync-timeout-ms`,
        /// the node starts from genesis. Ignored on later starts.
        #[arg(long, requires = "state_sync_rpc")]
        state_sync: bool,
        /// The RPC endpoint state sync asks (a provider's environments get theirs in
        /// `LOGOS_CHAIN_RPC`).
        #[arg(long, env = "LOGOS_CHAIN_RPC")]
        state_sync_rpc: Option<String>,
        /// Longest state sync may take before the node starts from genesis, ms.
        #[arg(long, default_value_t = STATE_SYNC_TIMEOUT_MS)]
        state_sync_timeout_ms: u64,
    },
    /// Run a full node that follows the chain through another node's RPC, executing and
    /// checking every block itself (no validator key); serves `GET /health`.
    Follow {
        /// Genesis file of the network (its validators are the trust anchor).
        #[arg(long)]
        genesis: PathBuf,
        /// RPC endpoint of a node to fetch finalized blocks and certificates from.
        #[arg(long, env = "LOGOS_CHAIN_RPC")]
        rpc: String,
        /// Where to serve `/health`.
        #[arg(long, default_value = "127.0.0.1:8645")]
        listen: std::net::SocketAddr,
        /// Directory for the follower's state.
        #[arg(long, default_value = "follower-data")]
        data_dir: PathBuf,
        /// Time between polls, ms.
        #[arg(long, default_value_t = 200)]
        poll_ms: u64,
    },
    /// Register a full node's p2p key on chain (so every validator lets it connect), from the
    /// registration it offers at `GET /health` (`--register-for`), reserving a deposit until
    /// `logos node deregister`. Prints `{"key", "address", "deposit", "height"}`.
    Register {
        #[command(flatten)]
        key: crate::operator::KeyArgs,
        /// The full node's RPC address (`IP:PORT` or `http://IP:PORT`) serving `/health`.
        #[arg(long)]
        node: String,
        /// Deposit, smallest unit (default: the chain's minimum).
        #[arg(long)]
        deposit: Option<logos_primitives::Amount>,
        /// Chain RPC endpoint.
        #[arg(long, default_value = crate::client::DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: crate::output::Format,
    },
    /// Deregister a full node registered by the signing account and release its deposit.
    /// Prints `{"key", "height"}`.
    Deregister {
        #[command(flatten)]
        key: crate::operator::KeyArgs,
        /// The node's p2p key (`0x` + 64 hex digits).
        #[arg(long)]
        node_key: logos_primitives::NodeKey,
        /// Chain RPC endpoint.
        #[arg(long, default_value = crate::client::DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: crate::output::Format,
    },
}

/// `--role`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum RoleArg {
    /// A genesis validator.
    Validator,
    /// A full node.
    Full,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Validator => Role::Validator,
            RoleArg::Full => Role::Full,
        }
    }
}

/// Logs go to stderr (stdout carries only the ready line); `RUST_LOG` overrides the level.
pub(crate) fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Serves the runtime's Prometheus registry as text at `http://<address>/metrics`.
async fn serve_metrics(context: runtime::Context, address: std::net::SocketAddr) -> Result<()> {
    use commonware_runtime::{Metrics, Spawner};
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("bind metrics on {address}"))?;
    let registry = std::sync::Arc::new(context.child("registry"));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    registry.encode(),
                )
            }
        }),
    );
    context.spawn(|_| async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

/// Runs `logos node …`.
pub fn run(command: NodeCommand) -> Result<()> {
    let (file, role, retention_blocks, archive, flags, state_sync) = match command {
        NodeCommand::Run {
            config,
            full,
            role,
            retention_blocks,
            archive,
            state_sync,
            state_sync_rpc,
            state_sync_timeout_ms,
        } => {
            let state_sync = state_sync_rpc
                .filter(|_| state_sync)
                .map(|rpc| (rpc, Duration::from_millis(state_sync_timeout_ms)));
            (config, role, retention_blocks, archive, full, state_sync)
        }
        NodeCommand::Follow {
            genesis,
            rpc,
            listen,
            data_dir,
            poll_ms,
        } => return follow(genesis, rpc, listen, data_dir, poll_ms),
        NodeCommand::Register {
            key,
            node,
            deposit,
            rpc,
            format,
        } => return register(key, node, (deposit, rpc), format),
        NodeCommand::Deregister {
            key,
            node_key,
            rpc,
            format,
        } => return deregister(key, node_key, rpc, format),
    };
    let mut config = match &file {
        Some(file) => NodeConfig::load(file)?,
        None => flags.config()?,
    };
    if !flags.validator_addresses.is_empty() {
        config.validator_addresses = flags.validator_addresses.clone();
    }
    if let Some(blocks) = retention_blocks {
        config.retention_blocks = blocks;
        config.archive = false;
    }
    config.archive |= archive;
    if let Some(role) = role {
        config.role = role.into();
    }
    let genesis = Genesis::load(&config.genesis_file)?;
    if flags.validate_for.is_some() && config.role != Role::Validator {
        anyhow::bail!(
            "--validate-for: only a validator declares itself a candidate (run with --role \
             validator)"
        );
    }
    if flags.validate_for.is_some() && config.p2p_listen.port() == 0 {
        anyhow::bail!(
            "--validate-for: the node would listen for p2p on a random port; give --p2p-listen \
             IP:PORT (the port its committee reaches at the intent's address)"
        );
    }
    // Checked before the key exists: a mistyped flag creates nothing.
    let offer = flags
        .register_for
        .as_deref()
        .map(|text| parse_offer(text, "--register-for"))
        .transpose()?;
    let intent_offer = flags
        .validate_for
        .as_deref()
        .map(|text| parse_offer(text, "--validate-for"))
        .transpose()?;
    if let Some((_, address)) = &intent_offer {
        if address.port == 0 {
            anyhow::bail!("--validate-for: {address} has no port to accept connections on");
        }
    }
    // A key made now is used as made: reading it back would derive its encryption key again.
    let signer = if file.is_none() && !config.key_file.exists() {
        create_node_key(&config.key_file)?
    } else {
        keystore::load_file(&config.key_file)?
    };
    let registration = offer.map(|(owner, address)| {
        let (key, signature) =
            logos_types::peers::sign_registration(&signer, &genesis.chain_id(), &owner, &address);
        logos_api::rpc::FullNodeRegistration {
            key,
            owner,
            address,
            signature,
        }
    });
    let intent = intent_offer.map(|(owner, p2p_address)| {
        let (consensus_key, signature) =
            logos_types::staking::sign_intent(&signer, &genesis.chain_id(), &owner, &p2p_address);
        logos_api::rpc::ValidatorIntent {
            consensus_key,
            owner,
            p2p_address,
            signature,
        }
    });
    // Before anything binds a port: a wrong key for the role is the likelier mistake.
    let is_validator = genesis.validator_keys()?.contains(&signer.public_key());
    if is_validator && registration.is_some() {
        anyhow::bail!(
            "--register-for: {} is a genesis validator's key, which validators never take as a \
             registered full node",
            config.key_file.display()
        );
    }
    match (config.role, is_validator) {
        (Role::Full, true) => anyhow::bail!(
            "{}: a full node's key must not be a validator's (it would take the validator's \
             connections)",
            config.key_file.display()
        ),
        (Role::Validator, false) => eprintln!(
            "{}: this key is not a genesis validator: the node follows the chain as a full node \
             until a committee holds its key (logos stake validate), then votes",
            config.key_file.display()
        ),
        _ => {}
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create {}", config.data_dir.display()))?;
    let runtime_config = runtime::Config::new()
        .with_storage_directory(config.data_dir.join("storage"))
        .with_worker_threads(2)
        .with_tcp_nodelay(Some(true))
        .with_catch_panics(false);
    let runner = runtime::Runner::new(runtime_config);
    if state_sync.is_some() && config.role == Role::Validator {
        anyhow::bail!(
            "--state-sync: a validator runs consensus from its epoch's first block, which a \
             state-synced node does not hold; sync a full node"
        );
    }
    if state_sync.is_some() && config.check_invariants {
        anyhow::bail!(
            "--state-sync: the invariant check (check_invariants) replays every block from \
             genesis, which a state-synced node does not hold"
        );
    }
    runner.start(|context| async move {
        init_logging(&config.log_level);
        let floor = state_floor(&context, &config.data_dir, &genesis, state_sync).await?;
        let offers = (registration, intent);
        serve(context, config, genesis, signer, offers, floor).await
    })
}

/// Longest a state sync may take by default, ms: a devnet's state syncs in well under a
/// second; a server that answers slower than this is not worth waiting for.
const STATE_SYNC_TIMEOUT_MS: u64 = 60_000;
/// How often a state sync asks for a target whose block has its own certificate.
const STATE_TARGET_ATTEMPTS: u32 = 20;
/// Time between those attempts, ms (about a block time).
const STATE_TARGET_RETRY_MS: u64 = 100;
/// Prefix of every storage partition of a node run by this command.
const PARTITION_PREFIX: &str = "logos";
/// What a state sync leaves in the data directory while it runs: found at a start without a
/// floor, the state partitions are incomplete and are removed.
const STATE_SYNC_MARKER: &str = "state-sync-partial";
/// Oldest block whose state a state sync takes, by its timestamp and this machine's clock, ms:
/// far below what peers keep of the blocks after it (`retention_blocks`), so the node catches
/// up from it.
const STATE_TARGET_AGE_MAX_MS: u64 = 120_000;

/// The node's floor (`logos_node::statesync::Floor`): the one kept in `data_dir` by an earlier
/// state sync, else, with `state_sync` on a data directory without state, a new one (or none
/// if the sync fails or times out: the node starts from genesis).
async fn state_floor(
    context: &runtime::Context,
    data_dir: &std::path::Path,
    genesis: &Genesis,
    state_sync: Option<(String, Duration)>,
) -> Result<Option<Floor>> {
    let marker = data_dir.join(STATE_SYNC_MARKER);
    let floor_file = data_dir.join(Floor::FILE);
    // The floor is written (durably) only once the state is complete: with it, a marker left
    // by a crash before the marker's removal says nothing.
    if floor_file.exists() {
        remove_synced(&marker)?;
        let bytes =
            std::fs::read(&floor_file).with_context(|| format!("read {}", floor_file.display()))?;
        let cfg = engine::block_cfg(genesis);
        return Ok(Some(Floor::from_bytes(&bytes, &cfg).with_context(
            || {
                format!(
                    "{} (remove the data directory to start again)",
                    floor_file.display()
                )
            },
        )?));
    }
    if marker.exists() {
        tracing::warn!("an earlier state sync was cut short: removing its partial state");
        remove_state(data_dir)?;
        remove_synced(&marker)?;
    }
    let Some((rpc, timeout)) = state_sync else {
        return Ok(None);
    };
    if !state_entries(data_dir)?.is_empty() {
        return Ok(None);
    }
    write_synced(&marker, b"")?;
    let started = std::time::Instant::now();
    let partition = engine::state_partition(PARTITION_PREFIX);
    let synced = tokio::time::timeout(timeout, sync_state(context, genesis, &rpc, &partition));
    let floor = match synced.await {
        Ok(Ok(floor)) => Some(floor),
        Ok(Err(error)) => {
            tracing::warn!(%rpc, "state sync failed, starting from genesis: {error:#}");
            None
        }
        Err(_) => {
            tracing::warn!(%rpc, ?timeout, "state sync timed out, starting from genesis");
            None
        }
    };
    match &floor {
        Some(floor) => {
            write_synced(&floor_file, &floor.to_bytes())?;
            tracing::info!(
                height = floor.block.height.get(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "state synced"
            );
        }
        None => remove_state(data_dir)?,
    }
    remove_synced(&marker)?;
    Ok(floor)
}

/// One state sync from `rpc` into `partition`: a recent target whose block has its own
/// certificate (asked again while the server's tip has none), the block certified from
/// `genesis`, the target checked against it, the operations fetched and proven.
async fn sync_state(
    context: &runtime::Context,
    genesis: &Genesis,
    rpc: &str,
    partition: &str,
) -> Result<Floor> {
    use logos_api::rpc::LogosApiClient as _;
    let client = logos_client::Client::connect_trusted(rpc, genesis).await?;
    // The committee walk that certifies the target is kept: the node serves it on.
    client.record_epoch_links();
    for _ in 0..STATE_TARGET_ATTEMPTS {
        let target = client.rpc().get_state_target().await?;
        let certified = match &target {
            Some(target) => client.certified_header(target.height).await?,
            None => None,
        };
        let (Some(target), Some((header, finalization))) = (target, certified) else {
            tokio::time::sleep(Duration::from_millis(STATE_TARGET_RETRY_MS)).await;
            continue;
        };
        // An old state, however well certified, may lie below what peers still keep of the
        // blocks after it: the node would never catch up.
        let age_ms = now_ms().saturating_sub(header.timestamp_ms);
        if age_ms > STATE_TARGET_AGE_MAX_MS {
            anyhow::bail!(
                "{rpc} offers the state of block {}, {age_ms} ms old (at most \
                 {STATE_TARGET_AGE_MAX_MS})",
                target.height
            );
        }
        let verified = statesync::verify_target(&header, &target)?;
        let block = client
            .rpc()
            .get_raw_block(target.height)
            .await?
            .with_context(|| format!("{rpc} does not serve block {}", target.height))?;
        let floor = Floor::new(&header, &block, &engine::block_cfg(genesis), finalization)?;
        let source = statesync::RpcSource::new(rpc)?;
        statesync::sync_state(
            context.child("state_sync"),
            partition,
            logos_node::chain::STATE_LOG_ITEMS_PER_SECTION,
            source,
            &verified,
        )
        .await?;
        // Before the floor is written: a crash in between starts from genesis, and the links
        // already stored are verified ones all the same.
        engine::store_epoch_links(
            context.child("epoch_links"),
            PARTITION_PREFIX,
            engine::tuning::ARCHIVE_ITEMS_PER_SECTION,
            &floor_links(&client)?,
        )
        .await?;
        return Ok(floor);
    }
    anyhow::bail!("{rpc} offered no state target with its own certificate")
}

/// The committee links `client` verified, for the floor; none (with a warning) past the
/// client's recording bounds: the node then cannot serve the walk below its floor.
fn floor_links(client: &logos_client::Client) -> Result<Vec<statesync::FloorLink>> {
    let Some(links) = client.take_epoch_links() else {
        tracing::warn!("the committee walk was too long to keep: clients must walk it elsewhere");
        return Ok(Vec::new());
    };
    let links = links
        .into_iter()
        .map(|link| statesync::FloorLink::new(&link.proof, link.header, link.certificate));
    Ok(links.collect::<Result<Vec<_>, _>>()?)
}

/// Milliseconds since the Unix epoch by this machine's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The chain state's partitions in `data_dir` (entries of the runtime's storage directory
/// named after the state partition; QMDB derives several names from it).
fn state_entries(data_dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let storage = data_dir.join("storage");
    let prefix = format!("{}-", engine::state_partition(PARTITION_PREFIX));
    let entries = match std::fs::read_dir(&storage) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("list {}", storage.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("list {}", storage.display()))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// Removes every partition of the chain state in `data_dir` (what a state sync cut short or
/// refused left), durably.
fn remove_state(data_dir: &std::path::Path) -> Result<()> {
    for path in state_entries(data_dir)? {
        let removed = match path.is_dir() {
            true => std::fs::remove_dir_all(&path),
            false => std::fs::remove_file(&path),
        };
        removed.with_context(|| format!("remove {}", path.display()))?;
    }
    sync_dir(&data_dir.join("storage"))
}

/// Writes `bytes` to `path` durably: a temporary file, synced, renamed over it, the directory
/// synced.
fn write_synced(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let partial = path.with_extension("partial");
    let mut file =
        std::fs::File::create(&partial).with_context(|| format!("create {}", partial.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path).with_context(|| format!("write {}", path.display()))?;
    sync_dir(path.parent().unwrap_or(std::path::Path::new(".")))
}

/// Removes `path` if it exists, durably.
fn remove_synced(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(std::path::Path::new("."))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("remove {}", path.display())),
    }
}

/// Makes the entries of directory `dir` durable (nothing to do if it does not exist).
fn sync_dir(dir: &std::path::Path) -> Result<()> {
    match std::fs::File::open(dir) {
        Ok(directory) => directory
            .sync_all()
            .with_context(|| format!("sync {}", dir.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("open {}", dir.display())),
    }
}

/// The flags that configure a node without a file (a full node, or a validator with `--role
/// validator`), and the registration and validator intent it offers.
#[derive(clap::Args)]
pub struct FullNodeFlags {
    /// (without `--config`) Genesis file of the network.
    #[arg(long, conflicts_with = "config", requires = "data_dir")]
    genesis: Option<PathBuf>,
    /// (without `--config`) Directory for all storage. The p2p key (a validator's consensus
    /// key too) is `<dir>/p2p.key`, created on first start (encrypted with
    /// `LOGOS_PASSPHRASE`, else with the empty passphrase, said on stderr).
    #[arg(long, conflicts_with = "config")]
    data_dir: Option<PathBuf>,
    /// (without `--config`) JSON-RPC listen address (`GET /health` too).
    #[arg(long, conflicts_with = "config")]
    rpc_listen: Option<std::net::SocketAddr>,
    /// (without `--config`) p2p listen address (a full node dials out; it may stay on
    /// loopback; a validator accepts its committee's connections there).
    #[arg(long, conflicts_with = "config", default_value = "127.0.0.1:0")]
    p2p_listen: std::net::SocketAddr,
    /// Where to dial the genesis validators, comma-separated in genesis order (e.g. a
    /// provider's relay); overrides the file's `validator_addresses`.
    #[arg(long, value_delimiter = ',')]
    validator_addresses: Vec<std::net::SocketAddr>,
    /// `ACCOUNT@IP:PORT`: sign a registration of this node's p2p key for ACCOUNT, with
    /// connections from IP, and serve it at `GET /health` for ACCOUNT to submit
    /// (`logos node register`): how a node that is not a genesis validator follows the chain
    /// over p2p.
    #[arg(long)]
    register_for: Option<String>,
    /// `ACCOUNT@IP:PORT` (a validator): sign a validator intent of this node's consensus key
    /// for ACCOUNT, reached at IP:PORT (where its `--p2p-listen` port is published; validators
    /// also take its own connections only from IP), and serve it at `GET /health` for ACCOUNT
    /// to submit (`logos stake validate --node`). The key never leaves the node.
    #[arg(long)]
    validate_for: Option<String>,
}

impl FullNodeFlags {
    /// A node's configuration from the flags: a full node, or with `--role validator` a
    /// validator whose key (`<data-dir>/p2p.key`) a committee may hold once elected.
    fn config(&self) -> Result<NodeConfig> {
        let (Some(genesis), Some(data_dir)) = (&self.genesis, &self.data_dir) else {
            anyhow::bail!("without --config, give --genesis and --data-dir");
        };
        let key_file = data_dir.join("p2p.key");
        let mut config = NodeConfig::full_node(&key_file, genesis, data_dir, self.p2p_listen)?;
        if let Some(listen) = self.rpc_listen {
            config.rpc_listen = listen;
        }
        Ok(config)
    }
}

/// `logos node register`.
fn register(
    key: crate::operator::KeyArgs,
    node: String,
    (deposit, rpc): (Option<logos_primitives::Amount>, String),
    format: crate::output::Format,
) -> Result<()> {
    logos_devnet::runtime()?.block_on(async move {
        let (wallet, client) = key.connect(&rpc).await?;
        let http = logos_client::http::untrusted(Duration::from_secs(5))?;
        let endpoint = node.trim_start_matches("http://").trim_end_matches('/');
        let registration = logos_client::tenant::offered_registration(&http, endpoint)
            .await
            .with_context(|| {
                format!(
                    "{endpoint}/health offers no registration (unreachable, not JSON, over {} \
                     bytes, or no `registration` field)",
                    logos_client::http::HEALTH_BODY_MAX_BYTES
                )
            })?;
        let registered =
            logos_client::tenant::register_full_node(&client, &wallet, &registration, deposit);
        let (height, deposit) = crate::progress::wait(
            "full node registration: submitted, waiting for finality",
            async { Ok(registered.await?) },
        )
        .await?;
        format.print(&serde_json::json!({
            "key": registration.key,
            "address": registration.address,
            "deposit": deposit,
            "height": height,
        }))
    })
}

/// `logos node deregister`.
fn deregister(
    key: crate::operator::KeyArgs,
    node_key: logos_primitives::NodeKey,
    rpc: String,
    format: crate::output::Format,
) -> Result<()> {
    logos_devnet::runtime()?.block_on(async move {
        let (wallet, client) = key.connect(&rpc).await?;
        let call = logos_types::Call::Peers(logos_types::peers::Call::DeregisterFullNode {
            key: node_key,
        });
        let what = "full node deregistration";
        let (_, height) = crate::progress::execute(&client, &wallet, call, what).await?;
        format.print(&serde_json::json!({ "key": node_key, "height": height }))
    })
}

/// Creates a full node's p2p key at `path` (see `--data-dir`) and returns it.
fn create_node_key(path: &std::path::Path) -> Result<logos_primitives::PrivateKey> {
    let passphrase = std::env::var("LOGOS_PASSPHRASE").unwrap_or_default();
    if passphrase.is_empty() {
        eprintln!(
            "WARNING: {} is encrypted with the EMPTY passphrase (set LOGOS_PASSPHRASE to choose \
             one): whoever reads the file holds this node's p2p identity",
            path.display()
        );
    }
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .context("key file name")?;
    let key = keystore::generate()?;
    keystore::save(dir, name, &key, &passphrase)?;
    Ok(key)
}

/// The account and address of `flag ACCOUNT@IP:PORT` (`--register-for`, `--validate-for`).
fn parse_offer(
    text: &str,
    flag: &str,
) -> Result<(logos_primitives::Address, logos_types::peers::P2pAddress)> {
    let (owner, address) = text
        .split_once('@')
        .with_context(|| format!("{flag} {text}: expected ACCOUNT@IP:PORT"))?;
    let owner: logos_primitives::Address = owner
        .parse()
        .with_context(|| format!("{flag}: account {owner}"))?;
    let p2p_address: logos_types::peers::P2pAddress = address
        .parse()
        .with_context(|| format!("{flag}: address {address} is not IP:PORT"))?;
    if !p2p_address.is_source() {
        anyhow::bail!("{flag}: {address} cannot be a connection's source");
    }
    Ok((owner, p2p_address))
}

/// Messages per second one peer may send on each consensus channel (votes, certificates,
/// blocks). Every node holds itself to the same quota per recipient: commonware-p2p skips a
/// recipient that is over it (the message is lost for that peer, not delayed), and a receiver
/// reads a peer that exceeds it more slowly, every channel of that connection at once. All
/// nodes of a network must use the same quotas.
const CONSENSUS_MESSAGES_PER_SECOND: u32 = 1_000;
/// Messages per second one peer may send on each data channel (resolver, backfill, relayed
/// transactions).
const DATA_MESSAGES_PER_SECOND: u32 = 500;
/// Messages one peer may send at once on a consensus channel above its rate. commonware-p2p
/// preallocates each channel's inbound mailbox, and the router's, for one burst from every
/// peer a set may hold (validators + 256 registrable full nodes + configured ones), about 220
/// bytes a slot: bursts equal to the rates held about 600 MiB per node, these about 110 MiB
/// (measured peak RSS of a loaded validator: 766 MB before, about 255 MB with these).
/// Honest validators send a few votes, one certificate of each kind and one block per view.
const CONSENSUS_BURST_MESSAGES: u32 = 128;
/// Messages one peer may send at once on a data channel: twice marshal's 64 repairs in
/// flight, room for a resolver's answers when a lagging peer asks for many views at once; the
/// relay sends one batch per 5 ms.
const DATA_BURST_MESSAGES: u32 = 128;

async fn serve(
    context: runtime::Context,
    config: NodeConfig,
    genesis: Genesis,
    signer: logos_primitives::PrivateKey,
    (registration, intent): (
        Option<logos_api::rpc::FullNodeRegistration>,
        Option<logos_api::rpc::ValidatorIntent>,
    ),
    floor: Option<Floor>,
) -> Result<()> {
    if let Some(address) = config.metrics_listen {
        serve_metrics(context.child("metrics"), address).await?;
    }
    let chain_id = genesis.chain_id();
    let validators = genesis.validator_keys()?;
    let handshake = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer: signer.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let full_nodes = full_node_peers(&config, &validators)?;
    let mut p2p_config = lookup::Config::local(
        handshake,
        &consensus_namespace(&chain_id),
        config.p2p_listen,
        // The set counts this node too when it is not among them (a full node), every full
        // node the registry may hold and the members of three committees
        // (`logos_node::peers`).
        NZUsize!(
            validators.len()
                + full_nodes.len()
                + FULL_NODES_MAX
                + 3 * logos_types::staking::COMMITTEE_MAX
                + 1
        ),
        engine::max_message_size_bytes(&genesis),
        NZUsize!(1_024),
    );
    p2p_config.dial_frequency = Duration::from_millis(200);
    // One peer set: a full node deregistered on chain, or a validator out of the recent
    // committees, loses its slot as soon as the next set is tracked (`logos_node::peers`).
    p2p_config.tracked_peer_sets = NZUsize!(1);
    let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p_config);
    let genesis_addresses: Vec<std::net::SocketAddr> = genesis
        .validators
        .iter()
        .map(|validator| validator.p2p_address)
        .collect();
    let peers: Vec<(logos_primitives::PublicKey, commonware_p2p::Address)> = config
        .dial_addresses(&genesis_addresses)?
        .into_iter()
        .zip(&validators)
        .map(|(address, key)| (key.clone(), address.into()))
        .collect();
    let peers: Map<_, _> = peers
        .try_into()
        .map_err(|_| anyhow::anyhow!("duplicate validator in genesis"))?;
    let _ = oracle.track(
        0,
        AddressableTrackedPeers::new(peers.clone(), full_nodes.clone()),
    );
    let registry_manager = oracle.clone();
    let consensus_quota = Quota::per_second(NZU32!(CONSENSUS_MESSAGES_PER_SECOND))
        .allow_burst(NZU32!(CONSENSUS_BURST_MESSAGES));
    let data_quota = Quota::per_second(NZU32!(DATA_MESSAGES_PER_SECOND))
        .allow_burst(NZU32!(DATA_BURST_MESSAGES));
    let dkg_quota = Quota::per_second(NZU32!(logos_node::dkg::MESSAGES_PER_SECOND))
        .allow_burst(NZU32!(logos_node::dkg::BURST_MESSAGES));
    let seeds_quota = Quota::per_second(NZU32!(logos_node::seeds::MESSAGES_PER_SECOND))
        .allow_burst(NZU32!(logos_node::seeds::BURST_MESSAGES));
    let networks = Networks {
        votes: network.register(channels::VOTES, consensus_quota),
        certificates: network.register(channels::CERTIFICATES, consensus_quota),
        resolver: network.register(channels::RESOLVER, data_quota),
        backfill: network.register(channels::BACKFILL, data_quota),
        blocks: network.register(channels::BLOCKS, consensus_quota),
        transactions: network.register(channels::TRANSACTIONS, data_quota),
        dkg: network.register(channels::DKG, dkg_quota),
        seeds: network.register(channels::SEEDS, seeds_quota),
    };
    network.start();

    let state_synced_at = floor.as_ref().map(|floor| floor.block.height.get());
    let mut engine_config = engine::Config::new(signer.clone(), genesis, PARTITION_PREFIX.into());
    engine_config.floor = floor;
    engine_config.block_time_ms = config.block_time_ms;
    engine_config.fetch_timeout_ms = config.fetch_timeout_ms.unwrap_or(match config.role {
        Role::Validator => engine_config.fetch_timeout_ms,
        Role::Full => full::FETCH_TIMEOUT_MS,
    });
    engine_config.check_invariants = config.check_invariants;
    engine_config.mempool = config.mempool();
    engine_config.retention_blocks = config.retention();
    let role = config.role;
    let (node, serves_full_nodes) = match role {
        Role::Validator => {
            let node = engine::start(
                context.child("node"),
                engine_config,
                networks,
                oracle.clone(),
                oracle,
            );
            (node.await?, true)
        }
        Role::Full => {
            let node = full::start_full(
                context.child("node"),
                engine_config,
                networks,
                oracle.clone(),
                oracle,
            );
            (node.await?, false)
        }
    };
    // Elected committees get a slot, and full nodes registered on chain on a validator (full
    // nodes serve no other full node).
    logos_node::peers::track_registered(
        context.child("peers"),
        node.shared.clone(),
        registry_manager,
        peers,
        full_nodes,
        serves_full_nodes,
    );

    let rpc_config = RpcConfig {
        listen: config.rpc_listen,
        body_max_bytes: config.rpc_body_max_bytes,
        connections_max: config.rpc_connections_max,
        connections_per_ip_max: config.rpc_connections_per_ip_max,
        requests_per_second: config.rpc_requests_per_second,
        requests_per_second_per_ip: config.rpc_requests_per_second_per_ip,
        requests_per_second_per_connection: config.rpc_requests_per_second_per_connection,
        batch_max: config.rpc_batch_max,
        request_timeout_ms: config.rpc_request_timeout_ms,
    };
    let identity = rpc::Identity {
        role: serde_json::to_value(role)?
            .as_str()
            .unwrap_or("validator")
            .to_string(),
        public_key: format_public_key(&signer.public_key()),
        registration,
        intent,
        state_synced_at,
    };
    let (address, _rpc) = rpc::start(
        &rpc_config,
        identity,
        node.shared.clone(),
        node.marshal.clone(),
        node.relay.clone(),
    )
    .await
    .with_context(|| format!("bind RPC on {}", config.rpc_listen))?;
    let ready = serde_json::json!({
        "ready": true,
        "role": role,
        "rpc": format!("http://{address}"),
        "public_key": format_public_key(&signer.public_key()),
        "chain_id": chain_id.to_string(),
    });
    println!("{ready}");
    tokio::select! {
        result = node.consensus => {
            result.context("consensus (or, on a full node, the certificate follower) stopped")?;
        }
        () = logos_devnet::wait_for_signal() => tracing::info!("signalled; stopping"),
    }
    Ok(())
}

/// The configured full nodes as secondary p2p peers (none may be a validator).
fn full_node_peers(
    config: &NodeConfig,
    validators: &[PublicKey],
) -> Result<Map<PublicKey, commonware_p2p::Address>> {
    let peers = config
        .full_nodes
        .iter()
        .map(|peer| {
            let key = parse_public_key(&peer.public_key)
                .with_context(|| format!("full node key {}", peer.public_key))?;
            if validators.contains(&key) {
                anyhow::bail!("full_nodes lists validator key {}", peer.public_key);
            }
            Ok((key, peer.p2p_address.into()))
        })
        .collect::<Result<Vec<_>>>()?;
    peers
        .try_into()
        .map_err(|_| anyhow::anyhow!("a full node is listed twice in full_nodes"))
}

fn follow(
    genesis: PathBuf,
    rpc: String,
    listen: std::net::SocketAddr,
    data_dir: PathBuf,
    poll_ms: u64,
) -> Result<()> {
    let genesis = Genesis::load(&genesis)?;
    std::fs::create_dir_all(&data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let runtime_config = runtime::Config::new()
        .with_storage_directory(data_dir.join("storage"))
        .with_worker_threads(1)
        .with_catch_panics(false);
    runtime::Runner::new(runtime_config).start(|context| async move {
        init_logging("info");
        let config = logos_node::follower::FollowerConfig {
            genesis,
            rpc,
            listen,
            poll_ms,
        };
        println!("{}", serde_json::json!({"following": config.rpc, "health": format!("http://{listen}/health")}));
        logos_node::follower::run(context.child("follower"), config).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use logos_node::config::FullNodePeer;

    /// What a state sync cut short or refused leaves is found and removed: every partition QMDB
    /// derives from the state's name, and nothing else of the data directory.
    #[test]
    fn removing_the_state_removes_every_state_partition_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            state_entries(dir.path()).unwrap().is_empty(),
            "no storage yet"
        );
        remove_state(dir.path()).unwrap();
        let storage = dir.path().join("storage");
        let state = [
            "logos-state-ordered-log_data",
            "logos-state-ordered-log_offsets-blobs",
            "logos-state-ordered-merkle-journal-blobs",
        ];
        for name in state {
            std::fs::create_dir_all(storage.join(name)).unwrap();
            std::fs::write(storage.join(name).join("0"), b"ops").unwrap();
        }
        std::fs::write(storage.join("logos-state-ordered-merkle-metadata"), b"m").unwrap();
        let kept = [
            "logos-blocks-pruned-keys",
            "logos-statesync-other",
            "other-state-x",
        ];
        for name in kept {
            std::fs::create_dir_all(storage.join(name)).unwrap();
        }
        std::fs::write(dir.path().join(Floor::FILE), b"floor").unwrap();
        assert_eq!(state_entries(dir.path()).unwrap().len(), 4);
        remove_state(dir.path()).unwrap();
        assert!(state_entries(dir.path()).unwrap().is_empty());
        for name in kept {
            assert!(storage.join(name).exists(), "{name} removed");
        }
        assert!(dir.path().join(Floor::FILE).exists());
        write_synced(&dir.path().join(STATE_SYNC_MARKER), b"").unwrap();
        remove_synced(&dir.path().join(STATE_SYNC_MARKER)).unwrap();
        remove_synced(&dir.path().join(STATE_SYNC_MARKER)).unwrap();
        assert!(!dir.path().join(STATE_SYNC_MARKER).exists());
    }

    fn config_with(full_nodes: Vec<FullNodePeer>) -> NodeConfig {
        let text = "key_file = \"k\"\ngenesis_file = \"g\"\ndata_dir = \".\"\np2p_listen = \"127.0.0.1:1\"\n";
        let mut config: NodeConfig = toml::from_str(text).unwrap();
        config.full_nodes = full_nodes;
        config
    }

    fn peer(key: &PublicKey) -> FullNodePeer {
        FullNodePeer {
            public_key: format_public_key(key),
            p2p_address: "127.0.0.1:2".parse().unwrap(),
        }
    }

    /// The `full_nodes` list is operator input: a validator's key, a key listed twice and a
    /// malformed key are refused; distinct full nodes are tracked.
    #[test]
    fn full_nodes_refuse_validator_keys_duplicates_and_malformed_keys() {
        let validator = logos_primitives::PrivateKey::from_seed(1).public_key();
        let full = logos_primitives::PrivateKey::from_seed(2).public_key();
        let other = logos_primitives::PrivateKey::from_seed(3).public_key();
        let validators = [validator.clone()];
        let ok = full_node_peers(&config_with(vec![peer(&full), peer(&other)]), &validators);
        assert_eq!(ok.unwrap().len(), 2);
        let error = full_node_peers(&config_with(vec![peer(&validator)]), &validators)
            .unwrap_err()
            .to_string();
        assert!(error.contains("validator key"), "{error}");
        let error = full_node_peers(&config_with(vec![peer(&full), peer(&full)]), &validators)
            .unwrap_err()
            .to_string();
        assert!(error.contains("listed twice"), "{error}");
        let mut malformed = peer(&full);
        malformed.public_key = "0x1234".into();
        assert!(full_node_peers(&config_with(vec![malformed]), &validators).is_err());
    }
}
