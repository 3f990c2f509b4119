//! `logos`: the command-line interface of the Logos chain.

mod bench;
mod client;
mod devnet;
mod keystore;
mod node;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The Logos chain command line.
#[derive(Parser)]
#[command(
    name = "logos",
    version,
    about = "Logos chain: node, local devnet, keys, transactions and queries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage ed25519 keys in a keystore directory.
    Keys {
        #[command(subcommand)]
        command: keystore::KeysCommand,
        /// Keystore directory (default: $LOGOS_KEYSTORE or ~/.logos/keys).
        #[arg(long, global = true, env = "LOGOS_KEYSTORE")]
        keystore: Option<PathBuf>,
    },
    /// Run a node.
    Node {
        #[command(subcommand)]
        command: node::NodeCommand,
    },
    /// Start a local network of validators as separate processes on loopback.
    Devnet(devnet::DevnetArgs),
    /// Build, sign and submit transactions.
    Tx {
        #[command(subcommand)]
        command: client::TxCommand,
    },
    /// Read chain state through a node's RPC.
    Query {
        #[command(subcommand)]
        command: client::QueryCommand,
    },
    /// Measure whole scenarios.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Keys { command, keystore } => keystore::run(command, keystore),
        Command::Node { command } => node::run(command),
        Command::Devnet(args) => devnet::run(args),
        Command::Tx { command } => client::run_tx(command),
        Command::Query { command } => client::run_query(command),
        Command::Bench { command } => bench::run(command),
    }
}
