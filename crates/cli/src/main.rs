//! `logos`: the command-line interface of the Logos chain. Devnets and benchmarks live in
//! `logos-devnet`, which this binary calls.

mod attest;
mod client;
mod config;
mod gov;
mod hint;
mod keys;
mod lease;
mod node;
mod operator;
mod output;
mod progress;
mod spinoff;
mod views;

use clap::{CommandFactory, Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode};

/// The Logos chain command line.
#[derive(Parser)]
#[command(
    name = "logos",
    version,
    about = "Logos chain and sub0layer: node, devnet, keys, transactions, queries, staking, governance, providers, provisioners, catalog and leases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// File whose first line is the passphrase of encrypted key files (else
    /// $LOGOS_PASSPHRASE, else the empty passphrase, else a prompt on the terminal).
    #[arg(long, global = true, env = "LOGOS_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Write ~/.logos/config.toml (or $LOGOS_CONFIG): the RPC endpoint, keystore, key and
    /// genesis other commands use when their flags are left out.
    Init(config::InitArgs),
    /// Print a shell completion script: `logos completions bash > ~/.local/share/bash-completion/completions/logos`,
    /// `logos completions zsh > "${fpath[1]}/_logos"`, `logos completions fish > ~/.config/fish/completions/logos.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Manage ed25519 keys in a keystore directory.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
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
    Devnet(logos_devnet::DevnetArgs),
    /// Serve the web console on loopback: it holds your key, the browser never sees it.
    W3bi(logos_w3bi::W3biArgs),
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
    /// Register or inspect providers (machines offered to the network).
    Provider {
        #[command(subcommand)]
        command: operator::ProviderCommand,
    },
    /// Run the provider agent (gatekeeper executor with the runc container driver).
    Agent {
        #[command(subcommand)]
        command: operator::AgentCommand,
    },
    /// Register or run a provisioner.
    Provisioner {
        #[command(subcommand)]
        command: operator::ProvisionerCommand,
    },
    /// The catalog: templates with their product and price per block; `publish` adds one.
    Catalog {
        #[command(subcommand)]
        command: Option<lease::CatalogCommand>,
        /// Node RPC endpoint.
        #[arg(long, default_value = client::DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: output::Format,
    },
    /// Template files: check one before publishing it.
    Template {
        #[command(subcommand)]
        command: lease::TemplateCommand,
    },
    /// Lease environments from the catalog.
    Lease {
        #[command(subcommand)]
        command: lease::LeaseCommand,
    },
    /// Leased environments.
    Env {
        #[command(subcommand)]
        command: lease::EnvCommand,
    },
    /// Bond stake, declare a validator, nominate, and see an account's stake.
    Stake {
        #[command(subcommand)]
        command: gov::StakeCommand,
    },
    /// The DAO: propose, vote, list and show proposals.
    Gov {
        #[command(subcommand)]
        command: gov::GovCommand,
    },
    /// Start a new network from another one's finalized state at a height: every block up to
    /// it replayed and checked, balances kept, new validators and chain id (`logos devnet
    /// --resume --dir DIR` starts it).
    Spinoff(spinoff::SpinoffArgs),
    /// Machine Integrity Attestation tools: `replay` measurement logs into PCRs.
    Attest {
        #[command(subcommand)]
        command: attest::AttestCommand,
    },
    /// Measure whole scenarios.
    Bench {
        #[command(subcommand)]
        command: logos_devnet::bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    config::apply(&std::env::args().collect::<Vec<_>>());
    let outcome = run();
    let Err(error) = outcome else {
        return ExitCode::SUCCESS;
    };
    eprintln!("{}", output::error_report(&error));
    if let Some(hint) = hint::next_step(&error) {
        eprintln!("\nhint: {hint}");
    }
    ExitCode::FAILURE
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(path) = cli.passphrase_file {
        logos_client::keystore::set_passphrase_file(path);
    }
    match cli.command {
        Command::Init(args) => config::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "logos", &mut std::io::stdout());
            Ok(())
        }
        Command::Keys { command, keystore } => keys::run(command, keystore),
        Command::Node { command } => node::run(command),
        Command::Devnet(args) => logos_devnet::run(args),
        Command::W3bi(args) => Ok(logos_devnet::runtime()?.block_on(logos_w3bi::run(args))?),
        Command::Tx { command } => client::run_tx(command),
        Command::Query { command } => client::run_query(command),
        Command::Bench { command } => logos_devnet::bench::run(command),
        Command::Spinoff(args) => spinoff::run(args),
        Command::Attest { command } => attest::run(command),
        Command::Provider { command } => operator::run_provider(command),
        Command::Agent { command } => operator::run_agent(command),
        Command::Provisioner { command } => operator::run_provisioner(command),
        Command::Catalog {
            command: None,
            rpc,
            format,
        } => lease::run_catalog(rpc, format),
        Command::Catalog {
            command: Some(command),
            ..
        } => lease::run_catalog_publish(command),
        Command::Template { command } => lease::run_template(command),
        Command::Lease { command } => lease::run_lease(command),
        Command::Env { command } => lease::run_env(command),
        Command::Stake { command } => gov::run_stake(command),
        Command::Gov { command } => gov::run_gov(command),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // clap's own checks: no two arguments with one name or flag, defaults that parse, …
        super::Cli::command().debug_assert();
    }
}
