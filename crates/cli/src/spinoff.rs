//! `logos spinoff`: a new network from another network's finalized state at a height (see
//! `logos_node::spinoff` for what is verified and what the child keeps).

use anyhow::{bail, Context, Result};
use clap::{Args, Parser};
use commonware_runtime::{tokio as runtime, Runner};
use logos_primitives::{Address, Amount, ChainId};
use logos_types::genesis::GenesisValidator;
use std::path::PathBuf;

/// `logos spinoff` options.
#[derive(Args, Clone, Debug)]
pub struct SpinoffArgs {
    /// RPC endpoint of any node of the parent network (an archive node: blocks 1..=H are
    /// replayed).
    #[arg(long)]
    from: String,
    /// The parent's finalized height whose state the child starts from.
    #[arg(long)]
    height: u64,
    /// The child network's name (its `chain_name`).
    #[arg(long)]
    name: String,
    /// Validators of the child (new keys, written to DIR/keys).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    validators: u64,
    /// The child network's directory (must not exist or be empty); `logos devnet --resume
    /// --dir DIR` starts it.
    #[arg(long)]
    dir: PathBuf,
    /// The parent's chain id, pinned (recommended): its genesis, served by --from, must hash
    /// to it. Without it, the id the server announces is taken and printed.
    #[arg(long)]
    parent_chain_id: Option<ChainId>,
    /// The child's bootstrap authority: an address, or `none` (default: the parent's at H).
    #[arg(long)]
    authority: Option<String>,
    /// First p2p port of the child's validators.
    #[arg(long, default_value_t = 30_400)]
    p2p_base_port: u16,
    /// First RPC port of the child's validators.
    #[arg(long, default_value_t = 8_645)]
    rpc_base_port: u16,
    /// First metrics port of the child's validators.
    #[arg(long, default_value_t = 9_200)]
    metrics_base_port: u16,
}

/// The devnet options the child's directory is written with (defaults from `logos devnet`).
#[derive(Parser)]
struct ChildDevnet {
    #[command(flatten)]
    args: logos_devnet::DevnetArgs,
}

/// Runs `logos spinoff`.
pub fn run(args: SpinoffArgs) -> Result<()> {
    if std::fs::read_dir(&args.dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} exists and is not empty: choose a new directory",
            args.dir.display()
        );
    }
    let authority = parse_authority(args.authority.as_deref())?;
    let devnet = ChildDevnet::try_parse_from([
        "devnet".to_string(),
        format!("--validators={}", args.validators),
        format!("--dir={}", args.dir.display()),
        "--providers=0".into(),
        format!("--p2p-base-port={}", args.p2p_base_port),
        format!("--rpc-base-port={}", args.rpc_base_port),
        format!("--metrics-base-port={}", args.metrics_base_port),
    ])?
    .args;
    // A fresh directory of this process (created here: one that exists, or a link planted
    // under the name, is refused), removed once the replay ends.
    let replay_dir = std::env::temp_dir().join(format!(
        "logos-spinoff-{}-{}",
        std::process::id(),
        logos_devnet::network::now_ms()?
    ));
    std::fs::create_dir(&replay_dir)
        .with_context(|| format!("create the replay directory {}", replay_dir.display()))?;
    let config = runtime::Config::new()
        .with_storage_directory(replay_dir.join("storage"))
        .with_worker_threads(1)
        .with_catch_panics(false);
    let from = args.from.clone();
    let height = args.height;
    let pinned = args.parent_chain_id;
    let replayed = runtime::Runner::new(config).start(|context| async move {
        let chain_id = match pinned {
            Some(chain_id) => chain_id,
            None => {
                let info = logos_client::Client::connect(&from).await?.info().clone();
                eprintln!(
                    "parent chain id {} as the server announces it (pin it with \
                     --parent-chain-id)",
                    info.chain_id
                );
                info.chain_id
            }
        };
        let genesis = logos_node::spinoff::fetch_genesis(&from, chain_id).await?;
        eprintln!("replaying the parent's blocks 1..={height} from {from}…");
        let snapshot =
            logos_node::spinoff::snapshot(context, "spinoff-state", &genesis, &from, height)
                .await?;
        anyhow::Ok((genesis, snapshot))
    });
    let _ = std::fs::remove_dir_all(&replay_dir);
    let (parent_genesis, snapshot) = replayed.context("replaying the parent")?;
    let name = args.name.clone();
    let layout =
        logos_devnet::network::init_network(&devnet, |validators: Vec<GenesisValidator>| {
            let mut genesis = logos_node::spinoff::child_genesis(
                &parent_genesis,
                &snapshot,
                name,
                logos_devnet::network::now_ms()?,
                validators,
            )?;
            if let Some(authority) = authority {
                genesis.params.privileged_account = authority;
            }
            Ok(genesis)
        })?;
    let genesis = logos_types::Genesis::load(&layout.genesis)?;
    let total = genesis.accounts.iter().fold(Amount::ZERO, |sum, account| {
        sum.saturating_add(account.balance)
    });
    println!(
        "{}",
        serde_json::json!({
            "dir": layout.dir,
            "genesis": layout.genesis,
            "chain_id": genesis.chain_id(),
            "chain_name": genesis.chain_name,
            "parent": genesis.parent,
            "accounts": genesis.accounts.len(),
            "total_balance": total,
            "validators": genesis.validators.len(),
            "rpc": layout.rpc_urls,
            "start": format!("logos devnet --resume --dir {}", layout.dir.display()),
        })
    );
    Ok(())
}

/// `--authority`: `None` keeps the parent's, `Some(None)` removes it.
fn parse_authority(text: Option<&str>) -> Result<Option<Option<Address>>> {
    match text {
        None => Ok(None),
        Some("none") => Ok(Some(None)),
        Some(address) => {
            Ok(Some(Some(address.parse().map_err(|error| {
                anyhow::anyhow!("--authority {address}: {error}")
            })?)))
        }
    }
}
