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
};
use logos_primitives::{format_public_key, parse_public_key, PublicKey};
use logos_types::Genesis;
use std::{path::PathBuf, time::Duration};

/// `logos node …`
#[derive(Subcommand)]
pub enum NodeCommand {
    /// Run a validator, or a full node that follows the validators over p2p.
    Run {
        /// Node configuration file (TOML; see `logos_node::config`).
        #[arg(long)]
        config: PathBuf,
        /// `validator` (votes; its key must be a genesis validator's) or `full` (a non-voting
        /// peer that executes every finalized block and serves the same JSON-RPC; every
        /// validator must list its key in `full_nodes`). Overrides the file's `role`.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Finalized blocks (with certificates) and state history to keep behind the tip
        /// (overrides the file's `retention_blocks`; default 1,000,000, at least 1,024).
        #[arg(long, conflicts_with = "archive")]
        retention_blocks: Option<u64>,
        /// Keep every block, certificate and state operation (overrides the file's `archive`).
        #[arg(long)]
        archive: bool,
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
    let (config, role, retention_blocks, archive) = match command {
        NodeCommand::Run {
            config,
            role,
            retention_blocks,
            archive,
        } => (config, role, retention_blocks, archive),
        NodeCommand::Follow {
            genesis,
            rpc,
            listen,
            data_dir,
            poll_ms,
        } => return follow(genesis, rpc, listen, data_dir, poll_ms),
    };
    let mut config = NodeConfig::load(&config)?;
    if let Some(blocks) = retention_blocks {
        config.retention_blocks = blocks;
        config.archive = false;
    }
    config.archive |= archive;
    if let Some(role) = role {
        config.role = role.into();
    }
    let genesis = Genesis::load(&config.genesis_file)?;
    let signer = keystore::load_file(&config.key_file)?;
    // Before anything binds a port: a wrong key for the role is the likelier mistake.
    let is_validator = genesis.validator_keys()?.contains(&signer.public_key());
    match (config.role, is_validator) {
        (Role::Full, true) => anyhow::bail!(
            "{}: a full node's key must not be a validator's (it would take the validator's \
             connections)",
            config.key_file.display()
        ),
        (Role::Validator, false) => anyhow::bail!(
            "{}: this key is not a validator of the genesis (run a full node with --role full)",
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
    runner.start(|context| async move { serve(context, config, genesis, signer).await })
}

async fn serve(
    context: runtime::Context,
    config: NodeConfig,
    genesis: Genesis,
    signer: logos_primitives::PrivateKey,
) -> Result<()> {
    init_logging(&config.log_level);
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
        // The set counts this node too when it is not among them (a full node).
        NZUsize!(validators.len() + full_nodes.len() + 1),
        engine::max_message_size_bytes(&genesis),
        NZUsize!(1_024),
    );
    p2p_config.dial_frequency = Duration::from_millis(200);
    let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p_config);
    let peers: Vec<(logos_primitives::PublicKey, commonware_p2p::Address)> = genesis
        .validators
        .iter()
        .zip(&validators)
        .map(|(validator, key)| (key.clone(), validator.p2p_address.into()))
        .collect();
    let peers: Map<_, _> = peers
        .try_into()
        .map_err(|_| anyhow::anyhow!("duplicate validator in genesis"))?;
    let _ = oracle.track(0, AddressableTrackedPeers::new(peers, full_nodes));
    let consensus_quota = Quota::per_second(NZU32!(1_000));
    let data_quota = Quota::per_second(NZU32!(500));
    let networks = Networks {
        votes: network.register(channels::VOTES, consensus_quota),
        certificates: network.register(channels::CERTIFICATES, consensus_quota),
        resolver: network.register(channels::RESOLVER, data_quota),
        backfill: network.register(channels::BACKFILL, data_quota),
        blocks: network.register(channels::BLOCKS, consensus_quota),
        transactions: network.register(channels::TRANSACTIONS, data_quota),
    };
    network.start();

    let mut engine_config = engine::Config::new(signer.clone(), genesis, "logos".into());
    engine_config.block_time_ms = config.block_time_ms;
    engine_config.check_invariants = config.check_invariants;
    engine_config.mempool = config.mempool();
    engine_config.retention_blocks = config.retention();
    let role = config.role;
    let node = match role {
        Role::Validator => {
            engine::start(
                context.child("node"),
                engine_config,
                networks,
                oracle.clone(),
                oracle,
            )
            .await?
        }
        Role::Full => {
            full::start_full(
                context.child("node"),
                engine_config,
                networks,
                oracle.clone(),
                oracle,
            )
            .await?
        }
    };

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
    let (address, _rpc) = rpc::start(
        &rpc_config,
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
