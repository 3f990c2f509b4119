//! `logos devnet`: a local network of validators, each a separate `logos node run` process on
//! loopback, with generated keys, genesis and configuration.
//!
//! Layout of the devnet directory (default `$TMPDIR/logos-devnet`, recreated unless `--resume`):
//! ```text
//! genesis.toml
//! keys/validator-<i>.key, keys/dev.key, keys/account-<j>.key
//! validator-<i>/config.toml, validator-<i>/node.log, validator-<i>/storage/…
//! ```
//! The `dev` key is funded and is the privileged account (provider admission, catalog,
//! prices) until governance exists.
//!
//! Validator `i` uses p2p port `p2p_base_port + i`, RPC `rpc_base_port + i` and metrics
//! `metrics_base_port + i`, all on 127.0.0.1. Ctrl-C stops every validator (SIGTERM, then
//! SIGKILL after 5 s) and exits.

use crate::keystore;
use anyhow::{bail, Context, Result};
use clap::Args;
use commonware_cryptography::Signer;
use logos_primitives::{format_public_key, Address, Amount};
use logos_state::{
    genesis::{GenesisAccount, GenesisValidator},
    Genesis, Params,
};
use std::{
    io::{BufRead, BufReader},
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
}

impl DevnetArgs {
    fn directory(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("logos-devnet"))
    }
}

/// Writes (or, with `--resume`, reuses) the devnet directory.
pub fn init(args: &DevnetArgs) -> Result<Layout> {
    if args.validators == 0 {
        bail!("a devnet needs at least one validator");
    }
    let dir = args.directory();
    let keystore = dir.join("keys");
    let layout = Layout {
        keystore: keystore.clone(),
        genesis: dir.join("genesis.toml"),
        configs: (0..args.validators)
            .map(|i| dir.join(format!("validator-{i}")).join("config.toml"))
            .collect(),
        rpc_urls: (0..args.validators)
            .map(|i| format!("http://127.0.0.1:{}", args.rpc_base_port as usize + i))
            .collect(),
        dir: dir.clone(),
    };
    if args.resume && layout.genesis.exists() {
        return Ok(layout);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("remove old devnet {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let mut validators = Vec::new();
    let mut accounts = Vec::new();
    for i in 0..args.validators {
        let key = keystore::generate()?;
        keystore::save(&keystore, &format!("validator-{i}"), &key)?;
        validators.push(GenesisValidator {
            public_key: format_public_key(&key.public_key()),
            p2p_address: format!("127.0.0.1:{}", args.p2p_base_port as usize + i).parse()?,
        });
        accounts.push(GenesisAccount {
            address: Address::from_public_key(&key.public_key()),
            balance: Amount(ACCOUNT_BALANCE),
        });
    }
    let dev = keystore::generate()?;
    keystore::save(&keystore, "dev", &dev)?;
    accounts.push(GenesisAccount {
        address: Address::from_public_key(&dev.public_key()),
        balance: Amount(DEV_BALANCE),
    });
    for j in 0..args.accounts {
        let key = keystore::generate()?;
        keystore::save(&keystore, &format!("account-{j}"), &key)?;
        accounts.push(GenesisAccount {
            address: Address::from_public_key(&key.public_key()),
            balance: Amount(ACCOUNT_BALANCE),
        });
    }
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let genesis = Genesis {
        chain_name: "logos-devnet".into(),
        timestamp_ms,
        params: Params {
            privileged_account: Some(Address::from_public_key(&dev.public_key())),
            ..Params::default()
        },
        validators,
        accounts,
    };
    genesis.validate()?;
    std::fs::write(&layout.genesis, genesis.to_toml())?;
    for (i, config) in layout.configs.iter().enumerate() {
        std::fs::create_dir_all(config.parent().expect("config has a directory"))?;
        let text = format!(
            "key_file = \"../keys/validator-{i}.key\"\ngenesis_file = \"../genesis.toml\"\ndata_dir = \".\"\n\
             p2p_listen = \"127.0.0.1:{p2p}\"\nrpc_listen = \"127.0.0.1:{rpc}\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\n\
             block_time_ms = {block_time}\nlog_level = \"{level}\"\n",
            p2p = args.p2p_base_port as usize + i,
            rpc = args.rpc_base_port as usize + i,
            metrics = args.metrics_base_port as usize + i,
            block_time = args.block_time_ms,
            level = args.log_level,
        );
        std::fs::write(config, text)?;
    }
    Ok(layout)
}

/// A running validator process.
pub struct Validator {
    /// The process.
    pub child: Child,
    /// Its RPC URL (from its ready line).
    pub rpc: String,
}

/// Starts `logos node run --config <config>`, logging to `node.log` beside the config, and
/// waits up to `timeout` for its ready line.
pub fn spawn(config: &Path, timeout: Duration) -> Result<Validator> {
    let directory = config.parent().expect("config has a directory");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(directory.join("node.log"))?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["node", "run", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("spawn validator")?;
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
                    if let Some(rpc) = ready.get("rpc").and_then(|rpc| rpc.as_str()) {
                        return Ok(Validator {
                            child,
                            rpc: rpc.to_string(),
                        });
                    }
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "validator {} did not become ready; see {}",
                    config.display(),
                    directory.join("node.log").display()
                );
            }
        }
    }
}

/// Sends SIGTERM to each validator, waits up to 5 s, then SIGKILLs what is left.
pub fn stop(validators: &mut [Validator]) {
    for validator in validators.iter() {
        terminate(validator.child.id());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for validator in validators.iter_mut() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = validator.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = validator.child.try_wait() {
            let _ = validator.child.kill();
        }
        let _ = validator.child.wait();
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
    let layout = init(&args)?;
    eprintln!("devnet directory: {}", layout.dir.display());
    if args.init_only {
        println!(
            "{}",
            serde_json::json!({"dir": layout.dir, "genesis": layout.genesis, "configs": layout.configs, "rpc": layout.rpc_urls})
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut validators = Vec::new();
    for (i, config) in layout.configs.iter().enumerate() {
        eprintln!("starting validator {i}…");
        match spawn(config, Duration::from_secs(60)) {
            Ok(validator) => validators.push(validator),
            Err(error) => {
                stop(&mut validators);
                return Err(error);
            }
        }
    }
    for (i, validator) in validators.iter().enumerate() {
        println!(
            "validator-{i}  rpc {}  ws {}",
            validator.rpc,
            validator.rpc.replace("http://", "ws://")
        );
    }
    println!(
        "keystore {}  (funded key: dev)\ntry: logos tx transfer --keystore {} --from dev --to 0x{} --amount 1000 --wait --rpc {}",
        layout.keystore.display(),
        layout.keystore.display(),
        "00".repeat(20),
        validators[0].rpc
    );
    println!("press Ctrl-C to stop");
    let exited = runtime.block_on(async {
        let watcher = async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                for (i, validator) in validators.iter_mut().enumerate() {
                    if let Ok(Some(status)) = validator.child.try_wait() {
                        return (i, status);
                    }
                }
            }
        };
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => None,
            _ = terminate.recv() => None,
            exited = watcher => Some(exited),
        }
    });
    stop(&mut validators);
    match exited {
        Some((i, status)) => bail!(
            "validator {i} exited ({status}); see {}",
            layout.dir.join(format!("validator-{i}/node.log")).display()
        ),
        None => {
            eprintln!("stopped {} validators", validators.len());
            Ok(())
        }
    }
}
