//! The node configuration file (TOML).
//!
//! ```toml
//! key_file = "validator-0.key"      # keystore file of this validator (see `logos keys`)
//! genesis_file = "genesis.toml"
//! data_dir = "data/validator-0"
//! p2p_listen = "127.0.0.1:30300"
//! rpc_listen = "127.0.0.1:8545"     # JSON-RPC over HTTP and WebSocket
//! metrics_listen = "127.0.0.1:9100" # Prometheus text format at /metrics
//! block_time_ms = 25
//! fetch_timeout_ms = 1000           # default 1000 (validator) or 500 (full node)
//! rpc_requests_per_second = 20000   # calls per second, whole server (error -32029)
//! rpc_requests_per_second_per_ip = 2000          # per client IP address (error -32030)
//! rpc_requests_per_second_per_connection = 1000  # per connection (error -32031)
//! rpc_connections_per_ip_max = 32   # open connections per IP address (IPv6: per /64)
//! rpc_batch_max = 100               # calls per batch (error -32010)
//! rpc_request_timeout_ms = 10000    # longest call (error -32032)
//! rpc_body_max_bytes = 1048576      # larger bodies get HTTP 413
//! mempool_transactions_max = 100000   # pooled transactions in total
//! mempool_per_sender_max = 256         # pooled transactions per sender
//! mempool_nonce_gap_max = 256          # how far ahead of the next nonce a nonce may be
//! retention_blocks = 1000000       # finalized blocks, certificates, receipts and state history kept
//! archive = false                   # true: keep everything (retention_blocks is ignored)
//! check_invariants = false          # check the runtime's invariants after every block (debug)
//! role = "validator"                # or "full": a non-voting peer (see `logos_node::full`)
//! # full nodes this validator serves (tracked as secondary p2p peers), at most 256
//! full_nodes = [{ public_key = "0x…", p2p_address = "127.0.0.1:30400" }]
//! # where to dial the validators, in genesis order (e.g. a provider's relay); default: genesis
//! validator_addresses = ["10.88.1.1:30300", "10.88.1.1:30301"]
//! ```
//!
//! A full node's file has the same keys: `key_file` is its p2p identity (any key but a
//! validator's), and every validator it follows must list it in `full_nodes` or find it
//! registered on chain (`logos_types::peers`). [`NodeConfig::full_node`] builds a full node's
//! configuration without a file (`logos node run --role full --genesis … --data-dir …`).

use std::{net::SocketAddr, path::PathBuf};

/// A node's configuration.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NodeConfig {
    /// Keystore file with this validator's ed25519 key.
    pub key_file: PathBuf,
    /// Genesis file of the network.
    pub genesis_file: PathBuf,
    /// Directory for all storage.
    pub data_dir: PathBuf,
    /// p2p listen address.
    pub p2p_listen: SocketAddr,
    /// JSON-RPC listen address (binds 127.0.0.1 unless configured otherwise).
    #[serde(default = "default_rpc_listen")]
    pub rpc_listen: SocketAddr,
    /// Prometheus metrics listen address.
    pub metrics_listen: Option<SocketAddr>,
    /// Minimum time between a block and its child, ms.
    #[serde(default = "default_block_time_ms")]
    pub block_time_ms: u64,
    /// How long to wait for a peer's answer to a fetch (a missing block or certificate)
    /// before asking another, ms; default 1,000 for a validator and
    /// [`crate::full::FETCH_TIMEOUT_MS`] for a full node. A largest block must arrive within
    /// it: raise it on slow links.
    #[serde(default)]
    pub fetch_timeout_ms: Option<u64>,
    /// Rate limit of the RPC server, calls per second over all clients.
    #[serde(default = "default_rpc_requests_per_second")]
    pub rpc_requests_per_second: u32,
    /// Rate limit per client IP address, calls per second.
    #[serde(default = "default_rpc_requests_per_second_per_ip")]
    pub rpc_requests_per_second_per_ip: u32,
    /// Rate limit per connection, calls per second.
    #[serde(default = "default_rpc_requests_per_second_per_connection")]
    pub rpc_requests_per_second_per_connection: u32,
    /// Most calls in one JSON-RPC batch.
    #[serde(default = "default_rpc_batch_max")]
    pub rpc_batch_max: u32,
    /// Longest an RPC call may run, ms.
    #[serde(default = "default_rpc_request_timeout_ms")]
    pub rpc_request_timeout_ms: u64,
    /// Largest RPC request body, bytes.
    #[serde(default = "default_rpc_body_max_bytes")]
    pub rpc_body_max_bytes: u32,
    /// Largest number of concurrent RPC connections.
    #[serde(default = "default_rpc_connections_max")]
    pub rpc_connections_max: u32,
    /// Largest number of concurrent RPC connections from one IP address (IPv6: one /64).
    #[serde(default = "default_rpc_connections_per_ip_max")]
    pub rpc_connections_per_ip_max: u32,
    /// Most transactions in the mempool.
    #[serde(default = "default_mempool_transactions_max")]
    pub mempool_transactions_max: usize,
    /// Most mempool transactions per sender.
    #[serde(default = "default_mempool_per_sender_max")]
    pub mempool_per_sender_max: usize,
    /// Largest distance between an admitted nonce and the sender's next nonce.
    #[serde(default = "default_mempool_nonce_gap_max")]
    pub mempool_nonce_gap_max: u64,
    /// Log level (error, warn, info, debug, trace).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Check every invariant of the runtime after every finalized block (a debugging aid that
    /// keeps a copy of the state in memory and every block; see `logos_node::invariants`).
    #[serde(default)]
    pub check_invariants: bool,
    /// Finalized blocks (with their certificates) and state history kept behind the tip, at
    /// least `logos_node::engine::RETENTION_BLOCKS_MIN`; older ones are pruned.
    #[serde(default = "default_retention_blocks")]
    pub retention_blocks: u64,
    /// Keep every block, certificate and state operation (`retention_blocks` is ignored).
    #[serde(default)]
    pub archive: bool,
    /// What this node is.
    #[serde(default)]
    pub role: Role,
    /// Full nodes allowed to connect (commonware p2p secondary peers), at most
    /// [`FULL_NODES_MAX`].
    #[serde(default)]
    pub full_nodes: Vec<FullNodePeer>,
    /// Where to dial the genesis validators, in genesis order (as many as there are
    /// validators); empty: their genesis `p2p_address`. A full node behind a provider's relay
    /// dials the relay's ports.
    #[serde(default)]
    pub validator_addresses: Vec<SocketAddr>,
}

/// Most full nodes one node's configuration may list (each is a p2p peer slot).
pub const FULL_NODES_MAX: usize = 256;

/// What a node is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A genesis validator: votes, proposes, finalizes.
    #[default]
    Validator,
    /// A non-voting peer that follows the validators (see `logos_node::full`).
    Full,
}

/// A full node a validator lets connect.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FullNodePeer {
    /// Its p2p public key (`0x` + 64 hex digits).
    pub public_key: String,
    /// Its p2p address; inbound connections must come from this IP (the port is not dialed:
    /// full nodes dial validators).
    pub p2p_address: SocketAddr,
}

fn default_retention_blocks() -> u64 {
    crate::engine::RETENTION_BLOCKS_DEFAULT
}

fn default_rpc_listen() -> SocketAddr {
    "127.0.0.1:8545".parse().expect("valid address")
}

fn default_block_time_ms() -> u64 {
    25
}

fn default_rpc_requests_per_second() -> u32 {
    20_000
}

fn default_rpc_requests_per_second_per_ip() -> u32 {
    2_000
}

fn default_rpc_requests_per_second_per_connection() -> u32 {
    1_000
}

fn default_rpc_batch_max() -> u32 {
    100
}

fn default_rpc_request_timeout_ms() -> u64 {
    10_000
}

fn default_rpc_body_max_bytes() -> u32 {
    1 << 20
}

fn default_rpc_connections_max() -> u32 {
    256
}

fn default_rpc_connections_per_ip_max() -> u32 {
    32
}

fn default_mempool_transactions_max() -> usize {
    logos_mempool::Config::default().transactions_max
}

fn default_mempool_per_sender_max() -> usize {
    logos_mempool::Config::default().per_sender_max
}

fn default_mempool_nonce_gap_max() -> u64 {
    logos_mempool::Config::default().nonce_gap_max
}

impl NodeConfig {
    /// The retention window the engine uses: `None` for an archive node.
    pub fn retention(&self) -> Option<u64> {
        (!self.archive).then_some(self.retention_blocks)
    }

    /// The mempool limits of this configuration (at least one transaction, one per sender).
    pub fn mempool(&self) -> logos_mempool::Config {
        logos_mempool::Config {
            transactions_max: self.mempool_transactions_max.max(1),
            per_sender_max: self.mempool_per_sender_max.max(1),
            nonce_gap_max: self.mempool_nonce_gap_max,
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}

/// Errors reading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid configuration TOML.
    #[error("invalid configuration: {0}")]
    Toml(String),
    /// More than [`FULL_NODES_MAX`] full nodes are listed.
    #[error("{0} full nodes listed; at most {FULL_NODES_MAX}")]
    TooManyFullNodes(usize),
    /// `validator_addresses` is neither empty nor one address per genesis validator.
    #[error("{given} validator addresses for {validators} validators")]
    ValidatorAddresses {
        /// Addresses given.
        given: usize,
        /// Genesis validators.
        validators: usize,
    },
}

/// The keys a configuration cannot do without.
#[derive(serde::Serialize)]
struct Required<'a> {
    key_file: &'a std::path::Path,
    genesis_file: &'a std::path::Path,
    data_dir: &'a std::path::Path,
    p2p_listen: SocketAddr,
    role: Role,
}

impl NodeConfig {
    /// A full node's configuration: the given paths and listen address, everything else at
    /// the file format's defaults.
    pub fn full_node(
        key_file: &std::path::Path,
        genesis_file: &std::path::Path,
        data_dir: &std::path::Path,
        p2p_listen: SocketAddr,
    ) -> Result<Self, ConfigError> {
        let required = Required {
            key_file,
            genesis_file,
            data_dir,
            p2p_listen,
            role: Role::Full,
        };
        let text =
            toml::to_string(&required).map_err(|error| ConfigError::Toml(error.to_string()))?;
        toml::from_str(&text).map_err(|error| ConfigError::Toml(error.to_string()))
    }

    /// Where to dial each of `validators` genesis validators: `validator_addresses`, or the
    /// genesis addresses (`genesis`) when it is empty.
    pub fn dial_addresses(&self, genesis: &[SocketAddr]) -> Result<Vec<SocketAddr>, ConfigError> {
        match self.validator_addresses.len() {
            0 => Ok(genesis.to_vec()),
            given if given == genesis.len() => Ok(self.validator_addresses.clone()),
            given => Err(ConfigError::ValidatorAddresses {
                given,
                validators: genesis.len(),
            }),
        }
    }

    /// Reads a configuration file; relative paths in it are resolved against its directory.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut config: NodeConfig =
            toml::from_str(&text).map_err(|error| ConfigError::Toml(error.to_string()))?;
        if config.full_nodes.len() > FULL_NODES_MAX {
            return Err(ConfigError::TooManyFullNodes(config.full_nodes.len()));
        }
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        for field in [
            &mut config.key_file,
            &mut config.genesis_file,
            &mut config.data_dir,
        ] {
            if field.is_relative() {
                *field = base.join(&*field);
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("logos-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        path
    }

    const BASE: &str =
        "key_file = \"k\"\ngenesis_file = \"g\"\ndata_dir = \".\"\np2p_listen = \"127.0.0.1:1\"\n";

    #[test]
    fn role_defaults_to_validator_and_parses_full() {
        assert_eq!(
            NodeConfig::load(&write(BASE)).unwrap().role,
            Role::Validator
        );
        let full = format!("{BASE}role = \"full\"\n");
        assert_eq!(NodeConfig::load(&write(&full)).unwrap().role, Role::Full);
        let unknown = format!("{BASE}role = \"observer\"\n");
        assert!(matches!(
            NodeConfig::load(&write(&unknown)),
            Err(ConfigError::Toml(_))
        ));
    }

    #[test]
    fn a_full_node_needs_no_file_and_validator_addresses_match_the_genesis() {
        let config = NodeConfig::full_node(
            "d/p2p.key".as_ref(),
            "g.toml".as_ref(),
            "d".as_ref(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(config.role, Role::Full);
        assert_eq!(config.rpc_listen, default_rpc_listen());
        assert_eq!(config.retention_blocks, default_retention_blocks());
        let genesis: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap(); 2];
        assert_eq!(config.dial_addresses(&genesis).unwrap(), genesis);
        let relay = format!("{BASE}validator_addresses = [\"10.88.1.1:1\", \"10.88.1.1:2\"]\n");
        let config = NodeConfig::load(&write(&relay)).unwrap();
        assert_eq!(
            config.dial_addresses(&genesis).unwrap()[1],
            "10.88.1.1:2".parse().unwrap()
        );
        assert!(matches!(
            config.dial_addresses(&genesis[..1]),
            Err(ConfigError::ValidatorAddresses {
                given: 2,
                validators: 1
            })
        ));
    }

    #[test]
    fn more_full_nodes_than_the_bound_are_refused() {
        let peer = "{ public_key = \"0x00\", p2p_address = \"127.0.0.1:2\" }";
        let list = |n: usize| format!("{BASE}full_nodes = [{}]\n", vec![peer; n].join(", "));
        assert_eq!(
            NodeConfig::load(&write(&list(FULL_NODES_MAX)))
                .unwrap()
                .full_nodes
                .len(),
            FULL_NODES_MAX
        );
        assert!(matches!(
            NodeConfig::load(&write(&list(FULL_NODES_MAX + 1))),
            Err(ConfigError::TooManyFullNodes(n)) if n == FULL_NODES_MAX + 1
        ));
    }
}
