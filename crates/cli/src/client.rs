//! `logos tx …` and `logos query …`: clients of a node's JSON-RPC.

use crate::{output::Format, progress::Spinner};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use commonware_cryptography::Signer;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use logos_api::rpc::LogosApiClient;
use logos_client::keystore;
use logos_primitives::{Address, Amount};
use logos_types::{
    balances::{self, Accounts},
    codec::encode,
    Call, TransactionPayload,
};
use std::{path::PathBuf, time::Duration};

/// Default RPC endpoint.
pub const DEFAULT_RPC: &str = "http://127.0.0.1:8545";

/// `logos tx …`
#[derive(Subcommand)]
pub enum TxCommand {
    /// Transfer tokens.
    Transfer {
        /// Name of the sender's key in the keystore.
        #[arg(long, env = "LOGOS_FROM")]
        from: String,
        /// Recipient address (0x + 40 hex digits).
        #[arg(long)]
        to: Address,
        /// Amount in the smallest unit.
        #[arg(long)]
        amount: Amount,
        /// Fee in the smallest unit (default: the chain minimum).
        #[arg(long)]
        fee: Option<Amount>,
        /// Nonce (default: the sender's next nonce at the finalized head).
        #[arg(long)]
        nonce: Option<u64>,
        /// Wait until the transfer is finalized.
        #[arg(long)]
        wait: bool,
        /// Keystore directory.
        #[arg(long, env = "LOGOS_KEYSTORE")]
        keystore: Option<PathBuf>,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
    /// Where a transaction is: `finalized` (with its receipt: success, error, events, block),
    /// `pending` in the node's mempool, or `unknown` (never seen, dropped, or pruned). With a
    /// trusted genesis the receipt is proven against the finalized block (`"verified": true`).
    Status {
        /// The transaction hash (0x + 64 hex digits).
        hash: String,
        /// Genesis file whose chain id and validators are trusted to verify the receipt.
        #[arg(long, env = "LOGOS_GENESIS")]
        genesis: Option<PathBuf>,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
}

/// `logos query …`
#[derive(Subcommand)]
pub enum QueryCommand {
    /// An account's nonce and balance at the finalized head.
    Account {
        /// The address.
        address: Address,
        /// Verify the value with a Merkle proof against a finalized block header and its
        /// finalization certificate, signed by the validators of --genesis.
        #[arg(long)]
        prove: bool,
        /// Genesis file whose chain id and validators are trusted for --prove.
        #[arg(long, env = "LOGOS_GENESIS")]
        genesis: Option<PathBuf>,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
    /// A finalized block by height or hash.
    Block {
        /// Height (decimal) or hash (0x hex).
        id: String,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
    /// The finalized head.
    Head {
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
    /// The committee (validators, consensus keys, backing) of an epoch, the current one by
    /// default.
    Committee {
        /// The epoch.
        #[arg(long)]
        epoch: Option<u64>,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
    /// Network identity and parameters.
    Chain {
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
}

/// An HTTP JSON-RPC client for `url`.
pub fn connect(url: &str) -> Result<HttpClient> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .build(url)
        .with_context(|| format!("RPC endpoint {url}"))
}

/// Runs `logos tx …`.
pub fn run_tx(command: TxCommand) -> Result<()> {
    let (from, to, amount, fee, nonce, wait, keystore, rpc, format) = match command {
        TxCommand::Transfer {
            from,
            to,
            amount,
            fee,
            nonce,
            wait,
            keystore,
            rpc,
            format,
        } => (from, to, amount, fee, nonce, wait, keystore, rpc, format),
        TxCommand::Status {
            hash,
            genesis,
            rpc,
            format,
        } => {
            return logos_devnet::runtime()?.block_on(async move {
                format.print(&transaction_status(&rpc, &hash, genesis.as_deref()).await?)
            })
        }
    };
    let key = keystore::load(&keystore::directory(keystore), &from)?;
    logos_devnet::runtime()?.block_on(async move {
        let client = connect(&rpc)?;
        let info = client.chain_info().await.context("chain info")?;
        let sender = Address::from_public_key(&key.public_key());
        let nonce = match nonce {
            Some(nonce) => nonce,
            None => client.get_account(sender.to_string()).await?.nonce,
        };
        let transaction = TransactionPayload {
            chain_id: info.chain_id,
            sender: key.public_key(),
            nonce,
            fee: fee.unwrap_or(info.min_fee),
            call: Call::Balances(balances::Call::Transfer { to, amount }),
        }
        .sign(&key);
        let submitted = client
            .submit_transaction(format!("0x{}", hex::encode(encode(&transaction))))
            .await
            .context("submit transaction")?;
        if !wait {
            return format.print(&submitted);
        }
        let spinner = Spinner::start(format!(
            "{}: submitted, waiting for finality",
            submitted.hash
        ));
        for _ in 0..600 {
            let account = client.get_account(sender.to_string()).await?;
            if account.nonce > nonce {
                spinner.stop();
                return format.print(&serde_json::json!({
                    "hash": submitted.hash,
                    "finalized_at_or_before": account.height,
                    "sender_balance": account.balance,
                }));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("transaction {} not finalized within 60 s", submitted.hash)
    })
}

/// `logos tx status`: the receipt, proven when a genesis is trusted (see [`TxCommand::Status`]).
async fn transaction_status(
    rpc: &str,
    hash: &str,
    genesis: Option<&std::path::Path>,
) -> Result<serde_json::Value> {
    let parsed = logos_primitives::parse_hash(hash)
        .map_err(|error| anyhow::anyhow!("bad transaction hash {hash}: {error}"))?;
    let hash = logos_primitives::format_hash(&parsed);
    let trusted = match genesis {
        Some(path) => Some(trusted_client(rpc, Some(path)).await?),
        None => None,
    };
    let plain = logos_client::Client::connect(rpc).await?;
    // Twice at most: a transaction finalized between the receipt and the mempool lookups is
    // asked for again.
    for _ in 0..2 {
        let found = match &trusted {
            Some(client) => client.receipt_proven(&parsed).await?.map(|proven| {
                let block_hash = logos_primitives::format_hash(&proven.block_hash);
                (
                    proven.receipt,
                    proven.height,
                    block_hash,
                    proven.index,
                    true,
                )
            }),
            None => plain.receipt(&parsed).await?.map(|info| {
                (
                    info.receipt,
                    info.height,
                    info.block_hash,
                    info.index,
                    false,
                )
            }),
        };
        if let Some((receipt, height, block_hash, index, verified)) = found {
            return Ok(serde_json::json!({
                "hash": hash,
                "status": "finalized",
                "height": height,
                "block_hash": block_hash,
                "index": index,
                "success": receipt.success,
                "error": receipt.error,
                "events": receipt.events,
                "verified": verified,
            }));
        }
        let status = match plain.rpc().get_transaction(hash.clone()).await? {
            Some(found) if found.status == logos_api::rpc::TransactionStatus::Finalized => continue,
            Some(_) => "pending",
            None => "unknown",
        };
        return Ok(serde_json::json!({ "hash": hash, "status": status, "verified": false }));
    }
    bail!("the node reports {hash} finalized but serves no receipt for it")
}

/// Runs `logos query …`.
pub fn run_query(command: QueryCommand) -> Result<()> {
    logos_devnet::runtime()?.block_on(async move {
        match command {
            QueryCommand::Account {
                address,
                prove,
                genesis,
                rpc,
                format,
            } => {
                if prove {
                    return format.print(&prove_account(&rpc, &address, genesis).await?);
                }
                format.print(&connect(&rpc)?.get_account(address.to_string()).await?)
            }
            QueryCommand::Block { id, rpc, format } => {
                let client = connect(&rpc)?;
                let block = match id.parse::<u64>() {
                    Ok(height) => client.get_block_by_height(height).await?,
                    Err(_) => client.get_block_by_hash(id).await?,
                };
                format.print(&block)
            }
            QueryCommand::Head { rpc, format } => {
                format.print(&connect(&rpc)?.get_finalized_head().await?)
            }
            QueryCommand::Chain { rpc, format } => {
                format.print(&connect(&rpc)?.chain_info().await?)
            }
            QueryCommand::Committee { epoch, rpc, format } => {
                format.print(&crate::gov::query_committee(epoch, &rpc).await?)
            }
        }
    })
}

/// Fetches an account with its proof and checks it end to end (see `logos_client`): the value
/// against the state root, the root against the finalized block, the block against its
/// finalization certificate signed by a quorum of the trusted validators.
async fn prove_account(
    rpc: &str,
    address: &Address,
    genesis: Option<PathBuf>,
) -> Result<serde_json::Value> {
    let client = trusted_client(rpc, genesis.as_deref()).await?;
    let (account, height) = client.map_proven::<Accounts>(address).await?;
    let Some(account) = account else {
        return Ok(serde_json::json!({
            "address": address,
            "exists": false,
            "height": height,
            "verified": true,
        }));
    };
    Ok(serde_json::json!({
        "address": address,
        "nonce": account.nonce,
        "balance": account.balance,
        "height": height,
        "verified": true,
    }))
}

/// A client whose proven reads trust the chain id and validators of the genesis file at
/// `genesis` (`--genesis` or `LOGOS_GENESIS`), never the server's.
pub async fn trusted_client(
    rpc: &str,
    genesis: Option<&std::path::Path>,
) -> Result<logos_client::Client> {
    let path = genesis.ok_or(logos_client::ClientError::NoTrustAnchor)?;
    Ok(logos_client::Client::connect_with(rpc, Some(path)).await?)
}
