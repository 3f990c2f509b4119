//! `logos devnet`: a local network of validators, each a separate `logos node run` process on
//! loopback, with generated keys, genesis and configuration.
//!
//! Layout of the devnet directory (default `$TMPDIR/logos-devnet`, recreated unless `--resume`):
//! ```text
//! genesis.toml
//! keys/validator-<i>.key, keys/dev.key, keys/account-<j>.key
//! validator-<i>/config.toml, validator-<i>/node.log, validator-<i>/storage/…
//! keys/full-node-<k>.key, full-node-<k>/config.toml, full-node-<k>/node.log, …  (--full-nodes)
//! ```
//! The `dev` key is funded and is the privileged account (provider admission, catalog,
//! prices) until governance exists. With `--check-invariants` every validator checks the
//! runtime's invariants after every finalized block.
//!
//! Validator `i` uses p2p port `p2p_base_port + i`, RPC `rpc_base_port + i` and metrics
//! `metrics_base_port + i`, all on 127.0.0.1; full node `k` (`--full-nodes`: non-voting p2p
//! peers listed in every validator's `full_nodes`, serving the same JSON-RPC) uses the ports
//! after the validators' (`+ validators + k`). Ctrl-C stops every validator (SIGTERM, then
//! SIGKILL after 5 s) and exits.

use crate::hosts::{Host, Hosts, Role};
use anyhow::{bail, Context, Result};
use clap::Args;
use commonware_cryptography::Signer;
use logos_client::keystore;
use logos_primitives::{format_public_key, parse_public_key, Address, Amount};
use logos_types::{
    genesis::{GenesisAccount, GenesisValidator},
    Genesis, Params,
};
use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Balance of the `dev` account, smallest unit.
pub const DEV_BALANCE: u128 = 1_000_000_000_000_000_000_000;
/// Balance of each validator and each extra account, smallest unit.
pub const ACCOUNT_BALANCE: u128 = 1_000_000_000_000_000_000;

/// `logos devnet` options.
#[derive(Args, Clone, Debug)]
pub struct DevnetArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Devnet directory (default: $TMPDIR/logos-devnet).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep an existing devnet directory (same keys, genesis and chain) instead of recreating it.
    #[arg(long)]
    pub resume: bool,
    /// Write keys, genesis and configurations, then exit without starting validators.
    #[arg(long)]
    pub init_only: bool,
    /// First p2p port.
    #[arg(long, default_value_t = 30300)]
    pub p2p_base_port: u16,
    /// First RPC port.
    #[arg(long, default_value_t = 8545)]
    pub rpc_base_port: u16,
    /// First metrics port.
    #[arg(long, default_value_t = 9100)]
    pub metrics_base_port: u16,
    /// Minimum time between blocks, ms.
    #[arg(long, default_value_t = 25)]
    pub block_time_ms: u64,
    /// Extra funded accounts (`account-<j>` keys), e.g. for load generation.
    #[arg(long, default_value_t = 0)]
    pub accounts: usize,
    /// Log level of the validators.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Provider agents (runc container driver) to start and register; 0 runs the chain only.
    #[arg(long, default_value_t = 2)]
    pub providers: usize,
    /// First agent API port.
    #[arg(long, default_value_t = 7100)]
    pub agent_base_port: u16,
    /// Network index of the first agent (bridge lgbrN, environments on 10.88.N.0/24).
    #[arg(long, default_value_t = 1)]
    pub network_base_index: u8,
    /// Also lease the "Logos full node" template and show each step until it is synced.
    #[arg(long)]
    pub demo: bool,
    /// Provisioners (by validator index) that are registered and funded but whose daemon the
    /// devnet does not start: their operator runs them (`logos provisioner run --key-file
    /// <dir>/keys/provisioner-<i>.key`).
    #[arg(long, value_delimiter = ',')]
    pub external_provisioners: Vec<usize>,
    /// Check every invariant of the runtime in every validator after every finalized block
    /// (violations are logged and counted in the `invariant_violations` metric).
    #[arg(long)]
    pub check_invariants: bool,
    /// Full nodes to run beside the validators (`logos node run --role full`: they follow
    /// the validators over p2p and serve the same JSON-RPC).
    #[arg(long, default_value_t = 0)]
    pub full_nodes: usize,
    /// Validators prune finalized blocks, certificates and state history older than this
    /// many blocks (default: they keep everything, so a full node leased at any time syncs
    /// from genesis through them).
    #[arg(long)]
    pub retention_blocks: Option<u64>,
    /// The images to run (`name = "registry/repository@sha256:…"` per line) instead of
    /// building them with `scripts/images`; written to `<dir>/images.toml` either way.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// The registry `scripts/images` pushes to and agents pull from (started by
    /// `scripts/registry` on loopback).
    #[arg(long, default_value = crate::sub0::DEFAULT_REGISTRY)]
    pub registry: String,
    /// Put every validator, full node and provider on a host of its own: a network namespace
    /// with its own address on a devnet bridge (`10.77.B.0/24`, B = --network-base-index),
    /// plus a tenant host (see `logos_devnet::hosts`). Agents listen and publish
    /// environments' ports on their host's address.
    #[arg(long)]
    pub hosts: bool,
    /// Epoch length at genesis, blocks (default: the staking default, 7,200).
    #[arg(long)]
    pub epoch_length_blocks: Option<u64>,
    /// Seats of an elected committee at genesis (default 16).
    #[arg(long)]
    pub committee_size: Option<u16>,
    /// Elect committees from stake from genesis on (default: the validators serve as a
    /// proof-of-authority committee until a governance proposal switches elections on).
    #[arg(long)]
    pub elections: bool,
    /// Let providers take leases without attesting (genesis `unattested`). By default each
    /// provider's agent attests with a software TPM of its own (swtpm); without swtpm
    /// installed the devnet is unattested anyway.
    #[arg(long)]
    pub unattested: bool,
}

/// A devnet on disk.
pub struct Layout {
    /// The devnet directory.
    pub dir: PathBuf,
    /// Keystore directory.
    pub keystore: PathBuf,
    /// Genesis file.
    pub genesis: PathBuf,
    /// One configuration file per validator.
    pub configs: Vec<PathBuf>,
    /// One RPC URL per validator.
    pub rpc_urls: Vec<String>,
    /// One configuration file per full node.
    pub full_node_configs: Vec<PathBuf>,
    /// Number of provider agents.
    pub providers: usize,
    /// First agent API port.
    pub agent_base_port: u16,
    /// The images the devnet runs (`images.toml`).
    pub images: PathBuf,
}

impl DevnetArgs {
    /// The hosts of a `--hosts` devnet.
    pub fn host_layout(&self) -> Option<Hosts> {
        self.hosts.then(|| Hosts::new(self.network_base_index))
    }

    /// The host `role` runs on (`None`: this machine's loopback).
    pub fn host(&self, role: Role) -> Option<Host> {
        self.host_layout().map(|hosts| hosts.host(role))
    }

    /// The address `role` listens on.
    pub fn address(&self, role: Role) -> IpAddr {
        self.host(role)
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |host| host.address.into())
    }

    fn directory(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("logos-devnet"))
    }
}

/// The directory layout `args` describe (nothing is written).
fn layout(args: &DevnetArgs) -> Result<Layout> {
    if args.validators == 0 {
        bail!("a devnet needs at least one validator");
    }
    let last_index = usize::from(args.network_base_index) + args.providers.max(1) - 1;
    if args.network_base_index == 0 || last_index > 250 {
        bail!("--network-base-index: agents take indices 1 to 250 (this devnet needs up to {last_index})");
    }
    let dir = args.directory();
    Ok(Layout {
        keystore: dir.join("keys"),
        genesis: dir.join("genesis.toml"),
        configs: (0..args.validators)
            .map(|i| dir.join(format!("validator-{i}")).join("config.toml"))
            .collect(),
        rpc_urls: (0..args.validators)
            .map(|i| {
                let address = args.address(Role::Validator(i));
                format!("http://{address}:{}", args.rpc_base_port as usize + i)
            })
            .collect(),
        full_node_configs: (0..args.full_nodes)
            .map(|k| dir.join(format!("full-node-{k}")).join("config.toml"))
            .collect(),
        dir: dir.clone(),
        providers: args.providers,
        agent_base_port: args.agent_base_port,
        images: dir.join("images.toml"),
    })
}

/// Writes (or, with `--resume`, reuses) the devnet directory.
pub fn init(args: &DevnetArgs) -> Result<Layout> {
    let layout = layout(args)?;
    if args.resume && layout.genesis.exists() {
        return Ok(layout);
    }
    // A spin-off's directory holds the only copy of its genesis and validator keys.
    if Genesis::load(&layout.genesis).is_ok_and(|genesis| genesis.parent.is_some()) {
        bail!(
            "{} holds a spin-off network: start it with --resume, or choose another --dir",
            layout.dir.display()
        );
    }
    if layout.dir.exists() {
        std::fs::remove_dir_all(&layout.dir)
            .with_context(|| format!("remove old devnet {}", layout.dir.display()))?;
    }
    std::fs::create_dir_all(&layout.dir)?;
    let keystore = &layout.keystore;
    warn_empty_passphrase(keystore);
    let validators = generate_validators(args, keystore)?;
    let mut accounts = Vec::new();
    for validator in &validators {
        accounts.push(GenesisAccount {
            address: Address::from_public_key(&parse_public_key(&validator.public_key)?),
            balance: Amount(ACCOUNT_BALANCE),
        });
    }
    let dev = keystore::generate()?;
    keystore::save(keystore, "dev", &dev, DEVNET_PASSPHRASE)?;
    accounts.push(GenesisAccount {
        address: Address::from_public_key(&dev.public_key()),
        balance: Amount(DEV_BALANCE),
    });
    let names = (0..args.accounts)
        .map(|j| format!("account-{j}"))
        .chain(crate::sub0::key_names(args.validators, args.providers));
    for name in names {
        let key = keystore::generate()?;
        keystore::save(keystore, &name, &key, DEVNET_PASSPHRASE)?;
        accounts.push(GenesisAccount {
            address: Address::from_public_key(&key.public_key()),
            balance: Amount(ACCOUNT_BALANCE),
        });
    }
    let genesis = Genesis {
        chain_name: "logos-devnet".into(),
        timestamp_ms: now_ms()?,
        params: Params {
            privileged_account: Some(Address::from_public_key(&dev.public_key())),
            epoch_length_blocks: args.epoch_length_blocks,
            committee_size: args.committee_size,
            elections: args.elections,
            // Agents attest with a software TPM each when swtpm is installed.
            unattested: args.unattested || !logos_mia_collect::swtpm::Swtpm::installed(),
            ..Params::default()
        },
        validators,
        accounts,
        parent: None,
    };
    genesis.validate()?;
    std::fs::write(&layout.genesis, genesis.to_toml()?)?;
    write_configs(args, &layout)?;
    Ok(layout)
}

/// Writes a new network directory in the devnet layout for a genesis made elsewhere (a
/// spin-off): validator keys and configurations as [`init`] writes them, the genesis from
/// `make_genesis` given the validators. Refuses a directory that exists and is not empty.
pub fn init_network(
    args: &DevnetArgs,
    make_genesis: impl FnOnce(Vec<GenesisValidator>) -> Result<Genesis>,
) -> Result<Layout> {
    let layout = layout(args)?;
    if std::fs::read_dir(&layout.dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} exists and is not empty: choose a new directory",
            layout.dir.display()
        );
    }
    std::fs::create_dir_all(&layout.dir)?;
    warn_empty_passphrase(&layout.keystore);
    let validators = generate_validators(args, &layout.keystore)?;
    let genesis = make_genesis(validators)?;
    genesis.validate()?;
    std::fs::write(&layout.genesis, genesis.to_toml()?)?;
    write_configs(args, &layout)?;
    Ok(layout)
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> Result<u64> {
    Ok(u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?)
}

fn warn_empty_passphrase(keystore: &Path) {
    eprintln!(
        "*** devnet keys in {} are encrypted with an EMPTY passphrase: for this throwaway \
         network only ***",
        keystore.display()
    );
}

/// Generates and saves `validator-<i>` keys; returns the genesis validators.
fn generate_validators(args: &DevnetArgs, keystore: &Path) -> Result<Vec<GenesisValidator>> {
    let mut validators = Vec::new();
    for i in 0..args.validators {
        let key = keystore::generate()?;
        keystore::save(keystore, &format!("validator-{i}"), &key, DEVNET_PASSPHRASE)?;
        validators.push(GenesisValidator {
            public_key: format_public_key(&key.public_key()),
            p2p_address: std::net::SocketAddr::new(
                args.address(Role::Validator(i)),
                u16::try_from(args.p2p_base_port as usize + i)?,
            ),
        });
    }
    Ok(validators)
}

/// Writes the validators' and full nodes' configurations and the recorded [`Shape`].
fn write_configs(args: &DevnetArgs, layout: &Layout) -> Result<()> {
    let full_nodes = write_full_nodes(args, layout)?;
    for (i, config) in layout.configs.iter().enumerate() {
        std::fs::create_dir_all(config.parent().expect("config has a directory"))?;
        let ip = args.address(Role::Validator(i));
        let text = format!(
            "{full_nodes}key_file = \"../keys/validator-{i}.key\"\ngenesis_file = \"../genesis.toml\"\ndata_dir = \".\"\n\
             p2p_listen = \"{ip}:{p2p}\"\nrpc_listen = \"{ip}:{rpc}\"\nmetrics_listen = \"{ip}:{metrics}\"\n\
             block_time_ms = {block_time}\nlog_level = \"{level}\"\ncheck_invariants = {check}\n\
             # every devnet client (daemons, CLI, benchmarks) shares 127.0.0.1\n\
             rpc_requests_per_second_per_ip = 20000\nrpc_requests_per_second_per_connection = 10000\n\
             rpc_connections_per_ip_max = 256\n{retention}",
            p2p = args.p2p_base_port as usize + i,
            rpc = args.rpc_base_port as usize + i,
            metrics = args.metrics_base_port as usize + i,
            block_time = args.block_time_ms,
            level = args.log_level,
            check = args.check_invariants,
            retention = match args.retention_blocks {
                Some(blocks) => format!("retention_blocks = {blocks}\n"),
                None => "# leased full nodes sync from genesis through the validators\narchive = true\n".into(),
            },
        );
        std::fs::write(config, text)?;
    }
    let shape = toml::to_string_pretty(&Shape::of(args))?;
    std::fs::write(layout.dir.join(SHAPE_FILE), shape)?;
    Ok(())
}

/// The file in a devnet directory that records its [`Shape`].
pub const SHAPE_FILE: &str = "devnet.toml";

/// What `--resume` takes from the directory rather than from its flags: the processes the
/// directory has keys and configurations for, and their ports and hosts
/// (`<dir>/devnet.toml`, written with the directory).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    /// Validators.
    pub validators: usize,
    /// Full nodes.
    pub full_nodes: usize,
    /// Provider agents (0: the chain alone).
    pub providers: usize,
    /// First p2p port.
    pub p2p_base_port: u16,
    /// First RPC port.
    pub rpc_base_port: u16,
    /// First metrics port.
    pub metrics_base_port: u16,
    /// First agent API port.
    pub agent_base_port: u16,
    /// Network index of the first agent.
    pub network_base_index: u8,
    /// A network namespace per process.
    pub hosts: bool,
}

impl Shape {
    /// The shape `args` describe.
    pub fn of(args: &DevnetArgs) -> Self {
        Self {
            validators: args.validators,
            full_nodes: args.full_nodes,
            providers: args.providers,
            p2p_base_port: args.p2p_base_port,
            rpc_base_port: args.rpc_base_port,
            metrics_base_port: args.metrics_base_port,
            agent_base_port: args.agent_base_port,
            network_base_index: args.network_base_index,
            hosts: args.hosts,
        }
    }

    /// `args` with this shape.
    pub fn apply(&self, mut args: DevnetArgs) -> DevnetArgs {
        args.validators = self.validators;
        args.full_nodes = self.full_nodes;
        args.providers = self.providers;
        args.p2p_base_port = self.p2p_base_port;
        args.rpc_base_port = self.rpc_base_port;
        args.metrics_base_port = self.metrics_base_port;
        args.agent_base_port = self.agent_base_port;
        args.network_base_index = self.network_base_index;
        args.hosts = self.hosts;
        args
    }
}

/// With `--resume` and a recorded shape, `args` with that shape (the directory's keys and
/// configurations were written for it); otherwise `args` as given.
pub fn resumed(args: DevnetArgs) -> Result<DevnetArgs> {
    let path = args.directory().join(SHAPE_FILE);
    if !args.resume || !path.exists() {
        return Ok(args);
    }
    let text = std::fs::read_to_string(&path)?;
    let shape: Shape =
        toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
    if shape != Shape::of(&args) {
        eprintln!(
            "resuming with the shape recorded in {} (validators {}, providers {}, full nodes {}, \
             rpc from port {})",
            path.display(),
            shape.validators,
            shape.providers,
            shape.full_nodes,
            shape.rpc_base_port
        );
    }
    Ok(shape.apply(args))
}

/// Writes the full nodes' keys and configurations; returns the validators' `full_nodes` line.
fn write_full_nodes(args: &DevnetArgs, layout: &Layout) -> Result<String> {
    let mut peers = Vec::new();
    for (k, config) in layout.full_node_configs.iter().enumerate() {
        let key = keystore::generate()?;
        let name = format!("full-node-{k}");
        keystore::save(&layout.keystore, &name, &key, DEVNET_PASSPHRASE)?;
        let offset = args.validators + k;
        let ip = args.address(Role::FullNode(k));
        let p2p = format!("{ip}:{}", args.p2p_base_port as usize + offset);
        peers.push(format!(
            "{{ public_key = \"{}\", p2p_address = \"{p2p}\" }}",
            format_public_key(&key.public_key())
        ));
        std::fs::create_dir_all(config.parent().expect("config has a directory"))?;
        let text = format!(
            "role = \"full\"\nkey_file = \"../keys/{name}.key\"\ngenesis_file = \"../genesis.toml\"\n\
             data_dir = \".\"\np2p_listen = \"{p2p}\"\nrpc_listen = \"{ip}:{rpc}\"\n\
             metrics_listen = \"{ip}:{metrics}\"\nlog_level = \"{level}\"\n\
             rpc_requests_per_second_per_ip = 20000\nrpc_requests_per_second_per_connection = 10000\n\
             rpc_connections_per_ip_max = 256\n{retention}",
            rpc = args.rpc_base_port as usize + offset,
            metrics = args.metrics_base_port as usize + offset,
            level = args.log_level,
            retention = match args.retention_blocks {
                Some(blocks) => format!("retention_blocks = {blocks}\n"),
                None => "archive = true\n".into(),
            },
        );
        std::fs::write(config, text)?;
    }
    Ok(match peers.is_empty() {
        true => String::new(),
        false => format!("full_nodes = [{}]\n", peers.join(", ")),
    })
}

/// A running validator process.
pub struct Validator {
    /// The process.
    pub child: Child,
    /// Its RPC URL (from its ready line).
    pub rpc: String,
}

/// Starts `logos node run --config <config>` (on `host`, if any), logging to `node.log` beside
/// the config, and waits up to `timeout` for its ready line.
pub fn spawn(config: &Path, host: Option<&Host>, timeout: Duration) -> Result<Validator> {
    let directory = config.parent().expect("config has a directory");
    let mut args = vec!["node".into(), "run".into(), "--config".into()];
    args.push(config.as_os_str().to_owned());
    let (child, ready) = spawn_logos(&args, host, &directory.join("node.log"), timeout)?;
    let rpc = ready["rpc"].as_str().unwrap_or_default().to_string();
    Ok(Validator { child, rpc })
}

/// Starts `logos <args>` (on `host`, if any) with stderr appended to `log` and waits up to
/// `timeout` for the JSON line it prints on stdout when ready (`{"ready": true, …}`); returns
/// the child and that line.
pub fn spawn_logos(
    args: &[std::ffi::OsString],
    host: Option<&Host>,
    log: &Path,
    timeout: Duration,
) -> Result<(Child, serde_json::Value)> {
    let directory = log.parent().expect("log has a directory");
    std::fs::create_dir_all(directory)?;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut child = crate::hosts::command_in(host, &std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .context("spawn logos")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(remaining) {
            Ok(line) => {
                if let Ok(ready) = serde_json::from_str::<serde_json::Value>(&line) {
                    if ready["ready"] == true {
                        return Ok((child, ready));
                    }
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "`logos {}` did not become ready; see {}",
                    args.join(std::ffi::OsStr::new(" ")).to_string_lossy(),
                    log.display()
                );
            }
        }
    }
}

/// Sends SIGTERM to each validator, waits up to 5 s, then SIGKILLs what is left.
pub fn stop(validators: &mut [Validator]) {
    let mut children: Vec<&mut Child> = validators.iter_mut().map(|v| &mut v.child).collect();
    stop_children(&mut children, Duration::from_secs(5));
}

/// Sends SIGTERM to each child, waits up to `grace`, then SIGKILLs what is left.
pub fn stop_children(children: &mut [&mut Child], grace: Duration) {
    for child in children.iter() {
        terminate(child.id());
    }
    let deadline = Instant::now() + grace;
    for child in children.iter_mut() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Sends SIGTERM through kill(1) (no unsafe code in this workspace).
fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// Runs `logos devnet`.
pub fn run(args: DevnetArgs) -> Result<()> {
    let args = resumed(args)?;
    if args.providers > 0 && !args.init_only && !args.unattested {
        // Before the genesis is written: it says whether providers attest, which needs swtpm
        // (installed here by the project's scripts when missing).
        if let Err(error) = crate::sub0::prepare_host() {
            eprintln!("preparing the host: {error:#}");
        }
    }
    let layout = init(&args)?;
    eprintln!("devnet directory: {}", layout.dir.display());
    if args.init_only {
        println!(
            "{}",
            serde_json::json!({"dir": layout.dir, "genesis": layout.genesis, "configs": layout.configs, "rpc": layout.rpc_urls, "full_nodes": layout.full_node_configs})
        );
        return Ok(());
    }
    let mut network = start(&args, &layout)?;
    print_summary(&args, &layout, &network);
    let runtime = crate::runtime()?;
    let outcome = runtime.block_on(async {
        if args.demo {
            if let Err(error) = crate::sub0::demo(&network.validators[0].rpc, &layout).await {
                eprintln!("demo failed: {error:#}");
            }
        }
        println!("press Ctrl-C to stop");
        supervise(&mut network).await
    });
    network.stop();
    match outcome {
        Some(exited) => bail!("{exited}; see the logs under {}", layout.dir.display()),
        None => {
            eprintln!("stopped the devnet");
            Ok(())
        }
    }
}

/// Most restarts of one daemon within [`RESTART_WINDOW`] before the devnet gives up on it.
pub const RESTARTS_MAX: usize = 5;
/// The window [`RESTARTS_MAX`] counts restarts in.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// A supervised daemon (agent, provisioner, full node): what started it, so that it can be
/// started again when it exits, as an operator's service manager would.
pub struct Daemon {
    /// Its name in messages.
    pub name: String,
    /// `logos` arguments.
    pub args: Vec<std::ffi::OsString>,
    /// The host it runs on.
    pub host: Option<Host>,
    /// Its log file.
    pub log: PathBuf,
    /// The running process.
    pub child: Child,
    /// When it was restarted, newest last (within [`RESTART_WINDOW`]).
    restarts: std::collections::VecDeque<Instant>,
}

impl Daemon {
    /// Starts `logos <args>` on `host` and waits for its ready line.
    pub fn start(
        name: String,
        args: Vec<std::ffi::OsString>,
        host: Option<Host>,
        log: PathBuf,
    ) -> Result<Self> {
        let (child, _) = spawn_logos(&args, host.as_ref(), &log, Duration::from_secs(30))?;
        Ok(Self {
            name,
            args,
            host,
            log,
            child,
            restarts: std::collections::VecDeque::new(),
        })
    }

    /// If the process exited, starts it again; an error once it exited more than
    /// [`RESTARTS_MAX`] times within [`RESTART_WINDOW`] or cannot start.
    fn keep_running(&mut self) -> Result<()> {
        let Ok(Some(status)) = self.child.try_wait() else {
            return Ok(());
        };
        let now = Instant::now();
        self.restarts
            .retain(|at| now.duration_since(*at) < RESTART_WINDOW);
        if self.restarts.len() >= RESTARTS_MAX {
            bail!(
                "{} exited ({status}) {RESTARTS_MAX} times within a minute",
                self.name
            );
        }
        eprintln!("{} exited ({status}); starting it again", self.name);
        self.restarts.push_back(now);
        let (child, _) = spawn_logos(
            &self.args,
            self.host.as_ref(),
            &self.log,
            Duration::from_secs(30),
        )
        .with_context(|| format!("restarting {}", self.name))?;
        self.child = child;
        eprintln!("{}  pid {}", self.name, self.child.id());
        Ok(())
    }
}

/// A running devnet: validators, and the sub0layer daemons.
pub struct Network {
    /// Validator processes, by index.
    pub validators: Vec<Validator>,
    /// Full nodes, agents and provisioners.
    pub daemons: Vec<Daemon>,
    /// The hosts of a `--hosts` devnet, and the roles placed on them.
    pub hosts: Option<(Hosts, Vec<Role>)>,
}

impl Network {
    /// Stops daemons first (agents destroy their environments), then validators, then takes
    /// the hosts down.
    pub fn stop(&mut self) {
        // Agents destroy their environments before they exit: give them time.
        let mut daemons: Vec<&mut Child> = self.daemons.iter_mut().map(|d| &mut d.child).collect();
        stop_children(&mut daemons, Duration::from_secs(15));
        stop(&mut self.validators);
        if let Some((hosts, roles)) = &self.hosts {
            hosts.destroy(roles);
            if let Some(script) = crate::sub0::project_script("registry") {
                let address = format!("{}:{}", hosts.gateway(), crate::sub0::REGISTRY_PORT);
                let _ = Command::new(script).args(["stop", &address]).status();
            }
        }
    }
}

/// The passphrase of every devnet key: empty, so devnet commands need none (said loudly when
/// the keys are written).
pub const DEVNET_PASSPHRASE: &str = "";

/// Starts the validators and, with providers, the sub0layer (agents, provisioners, catalog).
pub fn start(args: &DevnetArgs, layout: &Layout) -> Result<Network> {
    let mut network = Network {
        validators: Vec::new(),
        daemons: Vec::new(),
        hosts: None,
    };
    if let Some(hosts) = args.host_layout() {
        let roles = Hosts::roles(args.validators, args.full_nodes, args.providers)?;
        hosts.create(&roles)?;
        network.hosts = Some((hosts, roles));
    }
    if let Err(error) = start_processes(args, layout, &mut network) {
        network.stop();
        return Err(error);
    }
    Ok(network)
}

fn start_processes(args: &DevnetArgs, layout: &Layout, network: &mut Network) -> Result<()> {
    for (i, config) in layout.configs.iter().enumerate() {
        eprintln!("starting validator {i}…");
        let host = args.host(Role::Validator(i));
        network
            .validators
            .push(spawn(config, host.as_ref(), Duration::from_secs(60))?);
    }
    for (k, config) in layout.full_node_configs.iter().enumerate() {
        eprintln!("starting full node {k}…");
        let directory = config.parent().expect("config has a directory");
        let args_k = vec![
            "node".into(),
            "run".into(),
            "--config".into(),
            config.as_os_str().to_owned(),
        ];
        let daemon = Daemon::start(
            format!("full-node-{k}"),
            args_k,
            args.host(Role::FullNode(k)),
            directory.join("node.log"),
        )?;
        println!(
            "full-node-{k}  rpc http://{}:{}",
            args.address(Role::FullNode(k)),
            args.rpc_base_port as usize + args.validators + k
        );
        network.daemons.push(daemon);
    }
    let unready = if args.providers > 0 {
        crate::sub0::prepare_host().unwrap_or_else(|error| Some(format!("{error:#}")))
    } else {
        None
    };
    if let Some(reason) = &unready {
        eprintln!(
            "\n*** the sub0layer is NOT started: {reason}.\n*** The chain runs alone. To add \
             the sub0layer, stop this devnet and run, as root from the repository:\n***   \
             scripts/install-deps && cargo run --release -p logos-cli -- devnet\n"
        );
        if args.demo {
            bail!("--demo needs the sub0layer: {reason}");
        }
    }
    if args.providers > 0 && unready.is_none() {
        crate::sub0::start(args, layout, network)?;
    }
    Ok(())
}

fn print_summary(args: &DevnetArgs, layout: &Layout, network: &Network) {
    if let Ok(images) = std::fs::read_to_string(&layout.images) {
        println!(
            "images ({}):\n{}",
            layout.images.display(),
            images.trim_end()
        );
    }
    for (i, validator) in network.validators.iter().enumerate() {
        println!(
            "validator-{i}  rpc {}  ws {}",
            validator.rpc,
            validator.rpc.replace("http://", "ws://")
        );
    }
    for daemon in &network.daemons {
        println!("{}  pid {}", daemon.name, daemon.child.id());
    }
    if let Some(tenant) = args.host(Role::Tenant) {
        println!(
            "hosts: each validator, full node and provider on its own network namespace; the \
             tenant's host is {} ({}): run commands there with `nsenter --net=/run/netns/{} …`",
            tenant.namespace, tenant.address, tenant.namespace
        );
    }
    let rpc = &network.validators[0].rpc;
    if !layout.keystore.join("dev.key").exists() {
        // A spin-off: its accounts are the parent's, whose keys their owners hold.
        println!(
            "keystore {} (validator keys only: the accounts are the parent network's)\ntry: \
             logos query chain --rpc {rpc}",
            layout.keystore.display()
        );
        return;
    }
    println!(
        "keystore {}  (funded key: dev)\ntry: logos catalog --rpc {rpc}\n     logos lease create --keystore {ks} --from dev --template 0 --wait --rpc {rpc}",
        layout.keystore.display(),
        ks = layout.keystore.display(),
    );
}

/// Waits for Ctrl-C or SIGTERM (`None`), or for a validator to exit or a daemon to exit too
/// often to be restarted (a message saying which). Daemons that exit are started again.
async fn supervise(network: &mut Network) -> Option<String> {
    let watcher = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for (i, validator) in network.validators.iter_mut().enumerate() {
                if let Ok(Some(status)) = validator.child.try_wait() {
                    return format!("validator {i} exited ({status})");
                }
            }
            for daemon in network.daemons.iter_mut() {
                if let Err(error) = daemon.keep_running() {
                    return format!("{error:#}");
                }
            }
        }
    };
    tokio::select! {
        () = crate::wait_for_signal() => None,
        exited = watcher => Some(exited),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: DevnetArgs,
    }

    fn args(flags: &[&str]) -> DevnetArgs {
        Wrapper::parse_from(std::iter::once("devnet").chain(flags.iter().copied())).args
    }

    #[test]
    fn a_resumed_devnet_takes_the_shape_its_directory_was_written_for() {
        let dir = std::env::temp_dir().join(format!("logos-shape-{}", std::process::id()));
        let dir_text = dir.to_string_lossy().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let written = args(&["--dir", &dir_text, "--validators", "2", "--providers", "0"]);
        let shape = Shape {
            rpc_base_port: 9_999,
            ..Shape::of(&written)
        };
        std::fs::write(dir.join(SHAPE_FILE), toml::to_string(&shape).unwrap()).unwrap();
        // Default flags with --resume: the recorded shape wins.
        let resumed = resumed(args(&["--dir", &dir_text, "--resume"])).unwrap();
        assert_eq!(Shape::of(&resumed), shape);
        // Without --resume the flags are taken as given (the directory is rewritten).
        let fresh = resumed_or_given(&["--dir", &dir_text]);
        assert_eq!(fresh.validators, 4);
        // A corrupt record is an error, not a guess.
        std::fs::write(dir.join(SHAPE_FILE), "validators = \"many\"").unwrap();
        assert!(super::resumed(args(&["--dir", &dir_text, "--resume"])).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn resumed_or_given(flags: &[&str]) -> DevnetArgs {
        resumed(args(flags)).unwrap()
    }
}
