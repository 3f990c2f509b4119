//! `logos stake …`, `logos gov …` and `logos query committee`: staking, the DAO and the
//! committees, through a node's RPC.

use crate::{
    client::DEFAULT_RPC,
    operator::KeyArgs,
    output::{print_json, Format},
    progress,
};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use logos_api::rpc::ValidatorIntent;
use logos_client::{keystore, Client};
use logos_devnet::runtime;
use logos_primitives::{Address, Amount};
use logos_types::{
    balances,
    codec::{decode, encode},
    dvci::ResourceClass,
    governance::{self, NextProposalId, Open, ProposalId, Proposals},
    market,
    peers::P2pAddress,
    staking::{self, Committees, CurrentEpoch, Epoch, Ledgers, Nominations, Validators},
    Call, Event,
};

/// Most proposals `logos gov list` shows (the newest).
const LIST_MAX: u64 = 100;

/// The RPC endpoint flag shared by these commands.
#[derive(Args, Clone, Debug)]
pub struct Rpc {
    /// Node RPC endpoint.
    #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
    rpc: String,
}

/// `logos stake …`
#[derive(Subcommand)]
pub enum StakeCommand {
    /// Bond free tokens as active stake.
    Bond {
        /// Tokens, smallest unit.
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        rpc: Rpc,
        #[command(flatten)]
        format: Format,
    },
    /// Start unbonding active stake (withdrawable after the unbonding period).
    Unbond {
        /// Tokens, smallest unit.
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        rpc: Rpc,
        #[command(flatten)]
        format: Format,
    },
    /// Make unbonding stake active again (newest first).
    Rebond {
        /// Tokens, smallest unit.
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        rpc: Rpc,
        #[command(flatten)]
        format: Format,
    },
    /// Release matured unbonded stake to the free balance.
    Withdraw {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        rpc: Rpc,
        #[command(flatten)]
        format: Format,
    },
    /// Back validator candidates with the account's active stake.
    Nominate {
        /// Candidate accounts (0x + 40 hex digits), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        targets: Vec<Address>,
        /// When the nominator list is full: a nominator with less active stake to replace.
        #[arg(long)]
        evict: Option<Address>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        rpc: Rpc,
        #[command(flatten)]
        format: Format,
    },
    /// Declare the account a validator candidate with a consensus key it proves it holds:
    /// a key of the keystore (`--consensus-key` and `--p2p-address`), or the intent a
    /// validator node signed for the account (`--node`, e.g. a leased "Logos validator":
    /// its key never leaves it).
    Validate {
        /// Keystore name of the consensus (node) key, e.g. validator-0.
        #[arg(long, required_unless_present = "node", requires = "p2p_address")]
        consensus_key: Option<String>,
        /// Where the validator accepts p2p connections (`ip:port`).
        #[arg(long, requires = "consensus_key")]
        p2p_address: Option<P2pAddress>,
        /// A validator node's RPC endpoint (`host:port`) whose `GET /health` offers an intent
        /// for this account (`logos node run --validate-for`; a leased validator's endpoint).
        #[arg(long, conflicts_with_all = ["consensus_key", "p2p_address"])]
        node: Option<String>,
        /// Commission, permille (0 to 1000).
        #[arg(long, default_value_t = 0)]
        commission_permille: u16,
        /// When the candidate list is full: a candidate to replace (less self-bond and serving
        /// in no committee, or below the minimum).
        #[arg(long)]
        evict: Option<Address>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        rpc: Rpc,
        #[command(flatten)]
        format: Format,
    },
    /// Drop the account's candidacy or nominations.
    Chill {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        rpc: Rpc,
        #[command(flatten)]
        format: Format,
    },
    /// An account's stake, intent and the current epoch.
    Status {
        /// The account.
        address: Address,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpc: Rpc,
    },
}

/// The signer, output and endpoint of `logos gov propose` (after the proposal's own flags).
#[derive(Args, Clone, Debug)]
pub struct ProposeArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// JSON output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    rpc: Rpc,
}

/// What a proposal proposes.
#[derive(Subcommand, Clone, Debug)]
pub enum Proposal {
    /// Set the price of a resource class per compute unit per block.
    SetPrice {
        /// The class (compute-hosted, compute-kvm, gpu, storage).
        #[arg(long)]
        class: ResourceClass,
        /// Smallest unit per compute unit per block.
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Pay tokens from the treasury.
    Spend {
        /// Recipient.
        #[arg(long)]
        to: Address,
        /// Smallest unit.
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// End the bootstrap authority for good.
    RemoveAuthority {
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Switch committee elections from stake on (proof of stake) or off (proof of authority),
    /// keeping the other staking settings.
    Elections {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[command(flatten)]
        args: ProposeArgs,
    },
    /// Any runtime call, as JSON (e.g. `{"module":"market","call":"set_community_share","percent":12}`).
    Call {
        /// The call's JSON.
        json_call: String,
        #[command(flatten)]
        args: ProposeArgs,
    },
}

impl Proposal {
    fn args(&self) -> &ProposeArgs {
        match self {
            Proposal::SetPrice { args, .. }
            | Proposal::Spend { args, .. }
            | Proposal::RemoveAuthority { args }
            | Proposal::Elections { args, .. }
            | Proposal::Call { args, .. } => args,
        }
    }
}

/// `logos gov …`
#[derive(Subcommand)]
pub enum GovCommand {
    /// Submit a proposal (reserves the governance deposit).
    Propose {
        #[command(subcommand)]
        proposal: Proposal,
    },
    /// Vote on a proposal with the account's active stake.
    Vote {
        /// The proposal's id.
        id: ProposalId,
        /// Vote aye.
        #[arg(long, conflicts_with = "nay", required_unless_present = "nay")]
        aye: bool,
        /// Vote nay.
        #[arg(long)]
        nay: bool,
        #[command(flatten)]
        key: KeyArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpc: Rpc,
    },
    /// The newest proposals (at most 100).
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpc: Rpc,
    },
    /// One proposal: status, tally, enactment height, call.
    Show {
        /// The proposal's id.
        id: ProposalId,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpc: Rpc,
    },
}

/// Runs `logos stake …`.
pub fn run_stake(command: StakeCommand) -> Result<()> {
    let (call, key, rpc, format) = match command {
        StakeCommand::Status { address, json, rpc } => {
            return runtime()?.block_on(stake_status(address, json, rpc.rpc))
        }
        StakeCommand::Bond {
            amount,
            key,
            rpc,
            format,
        } => (staking::Call::Bond { amount }, key, rpc, format),
        StakeCommand::Unbond {
            amount,
            key,
            rpc,
            format,
        } => (staking::Call::Unbond { amount }, key, rpc, format),
        StakeCommand::Rebond {
            amount,
            key,
            rpc,
            format,
        } => (staking::Call::Rebond { amount }, key, rpc, format),
        StakeCommand::Withdraw { key, rpc, format } => {
            (staking::Call::WithdrawUnbonded, key, rpc, format)
        }
        StakeCommand::Chill { key, rpc, format } => (staking::Call::Chill, key, rpc, format),
        StakeCommand::Nominate {
            targets,
            evict,
            key,
            rpc,
            format,
        } => {
            let targets = targets
                .try_into()
                .map_err(|_| anyhow::anyhow!("at most {} targets", staking::NOMINATIONS_MAX))?;
            (staking::Call::Nominate { targets, evict }, key, rpc, format)
        }
        StakeCommand::Validate {
            consensus_key,
            p2p_address,
            node,
            commission_permille,
            evict,
            key,
            rpc,
            format,
        } => {
            let intent = match (consensus_key, p2p_address, node) {
                (Some(consensus_key), Some(p2p_address), None) => IntentFrom::Keystore {
                    consensus_key,
                    p2p_address,
                },
                (None, None, Some(node)) => IntentFrom::Node(node),
                _ => bail!("give --consensus-key with --p2p-address, or --node"),
            };
            let intent = Intent {
                from: intent,
                commission_permille,
                evict,
            };
            return runtime()?.block_on(validate(intent, key, rpc.rpc, format));
        }
    };
    runtime()?.block_on(async move {
        let (wallet, client) = key.connect(&rpc.rpc).await?;
        let call = Call::Staking(call);
        let (receipt, height) = progress::execute(&client, &wallet, call, "staking").await?;
        format.print(&serde_json::json!({"height": height, "events": receipt.events}))
    })
}

/// What `logos stake validate` declares.
struct Intent {
    from: IntentFrom,
    commission_permille: u16,
    evict: Option<Address>,
}

/// Where the consensus key's signed intent comes from.
enum IntentFrom {
    /// A key of the keystore, signed here.
    Keystore {
        consensus_key: String,
        p2p_address: P2pAddress,
    },
    /// The offer of a validator node's `GET /health`, at this endpoint.
    Node(String),
}

async fn validate(intent: Intent, key: KeyArgs, rpc: String, format: Format) -> Result<()> {
    let (wallet, client) = key.connect(&rpc).await?;
    let offer = match intent.from {
        IntentFrom::Keystore {
            consensus_key,
            p2p_address,
        } => {
            let directory = keystore::directory(key.keystore.clone());
            let consensus = keystore::load(&directory, &consensus_key)?;
            let (consensus_key, signature) = staking::sign_intent(
                &consensus,
                &client.info().chain_id,
                &wallet.address(),
                &p2p_address,
            );
            ValidatorIntent {
                consensus_key,
                owner: wallet.address(),
                p2p_address,
                signature,
            }
        }
        IntentFrom::Node(node) => {
            let http = logos_client::http::untrusted(std::time::Duration::from_secs(5))?;
            let endpoint = node.trim_start_matches("http://").trim_end_matches('/');
            let offer = logos_client::tenant::offered_intent(&http, endpoint)
                .await
                .with_context(|| {
                    format!(
                        "{endpoint}/health offers no validator intent (unreachable, not JSON, \
                         over {} bytes, or no `intent` field: is it a validator started with \
                         --validate-for?)",
                        logos_client::http::HEALTH_BODY_MAX_BYTES
                    )
                })?;
            let host = endpoint.parse::<std::net::SocketAddr>().map(|a| a.ip());
            if host.is_ok_and(|host| host != offer.p2p_address.ip()) {
                eprintln!(
                    "warning: the node offers p2p address {} on another host than its endpoint \
                     {endpoint}: make sure its committee can reach it there",
                    offer.p2p_address
                );
            }
            offer
        }
    };
    let terms = (intent.commission_permille, intent.evict);
    let declared = logos_client::tenant::declare_validator(&client, &wallet, &offer, terms);
    let (receipt, height) = progress::wait("candidacy: submitted, waiting for finality", async {
        Ok(declared.await?)
    })
    .await?;
    format.print(&serde_json::json!({
        "height": height,
        "consensus_key": offer.consensus_key,
        "p2p_address": offer.p2p_address,
        "events": receipt.events,
    }))
}

async fn stake_status(address: Address, json: bool, rpc: String) -> Result<()> {
    let client = Client::connect(&rpc).await?;
    let (ledger, height) = client.map::<Ledgers>(&address).await?;
    let (validator, _) = client.map::<Validators>(&address).await?;
    let (nominations, _) = client.map::<Nominations>(&address).await?;
    let (epoch, _) = client.value::<CurrentEpoch>().await?;
    let ledger = ledger.unwrap_or_default();
    let status = serde_json::json!({
        "address": address,
        "height": height,
        "active": ledger.active,
        "unlocking": ledger.unlocking,
        "validator": validator,
        "nominations": nominations,
        "epoch": epoch,
    });
    if json {
        return print_json(&status);
    }
    println!("account      {address} (at height {height})");
    println!("active       {}", ledger.active);
    for chunk in ledger.unlocking.iter() {
        println!(
            "unlocking    {} at height {}",
            chunk.amount, chunk.unlocks_at
        );
    }
    match (validator, nominations) {
        (Some(v), _) => println!(
            "validates    key {} at {}, commission {}‰",
            v.consensus_key, v.p2p_address, v.commission_permille
        ),
        (None, Some(targets)) => println!("nominates    {}", join(targets.iter())),
        (None, None) => println!("intent       none"),
    }
    println!(
        "epoch        {} (from height {}, {} blocks)",
        epoch.epoch, epoch.start_height, epoch.length_blocks
    );
    Ok(())
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The runtime call a proposal carries.
fn proposal_call(proposal: Proposal) -> Result<Call> {
    Ok(match proposal {
        Proposal::SetPrice { class, amount, .. } => Call::Market(market::Call::SetPrice {
            class,
            price: amount,
        }),
        Proposal::Spend { to, amount, .. } => {
            Call::Balances(balances::Call::Transfer { to, amount })
        }
        Proposal::RemoveAuthority { .. } => Call::Governance(governance::Call::RemoveAuthority),
        Proposal::Elections { state, .. } => Call::Staking(staking::Call::SetElections {
            elections: state == "on",
        }),
        Proposal::Call { json_call, .. } => serde_json::from_str(&json_call)
            .with_context(|| format!("not a runtime call: {json_call}"))?,
    })
}

/// Runs `logos gov …`.
pub fn run_gov(command: GovCommand) -> Result<()> {
    runtime()?.block_on(async move {
        match command {
            GovCommand::Propose { proposal } => propose(proposal).await,
            GovCommand::Vote {
                id,
                aye,
                nay: _,
                key,
                json,
                rpc,
            } => {
                let (wallet, client) = key.connect(&rpc.rpc).await?;
                let call = governance::Call::Vote { proposal: id, aye };
                let call = Call::Governance(call);
                let (_, height) = progress::execute(&client, &wallet, call, "vote").await?;
                let vote = if aye { "aye" } else { "nay" };
                match json {
                    true => print_json(
                        &serde_json::json!({"proposal": id, "vote": vote, "height": height}),
                    ),
                    false => {
                        println!("voted {vote} on proposal {id} at height {height}");
                        Ok(())
                    }
                }
            }
            GovCommand::List { json, rpc } => list(json, &rpc.rpc).await,
            GovCommand::Show { id, json, rpc } => {
                let client = Client::connect(&rpc.rpc).await?;
                let (proposal, height) = client.map::<Proposals>(&id).await?;
                let Some(proposal) = proposal else {
                    bail!("no proposal {id} at height {height} (see logos gov list)");
                };
                let view = proposal_view(id, &proposal, height);
                match json {
                    true => print_json(&view),
                    false => {
                        print_proposal(&view);
                        Ok(())
                    }
                }
            }
        }
    })
}

async fn propose(proposal: Proposal) -> Result<()> {
    let ProposeArgs { key, json, rpc } = proposal.args().clone();
    let (wallet, client) = key.connect(&rpc.rpc).await?;
    let call = proposal_call(proposal)?;
    let encoded = encode(&call).try_into().map_err(|_| {
        anyhow::anyhow!(
            "the call is larger than a proposal carries ({} bytes)",
            governance::PROPOSAL_CALL_MAX_BYTES
        )
    })?;
    let propose = governance::Call::Propose { encoded };
    let propose = Call::Governance(propose);
    let (receipt, height) = progress::execute(&client, &wallet, propose, "proposal").await?;
    let found = receipt.events.iter().find_map(|event| match event {
        Event::Governance(governance::Event::Proposed {
            proposal,
            voting_ends_at,
            ..
        }) => Some((*proposal, *voting_ends_at)),
        _ => None,
    });
    let (id, voting_ends_at) = found.context("no Proposed event in the receipt")?;
    let out = serde_json::json!({"id": id, "height": height, "voting_ends_at": voting_ends_at, "call": call});
    match json {
        true => print_json(&out),
        false => {
            println!("proposal {id} submitted at height {height}; voting ends at height {voting_ends_at}");
            println!("vote with: logos gov vote {id} --aye --from KEY");
            Ok(())
        }
    }
}

/// A proposal as `gov show` and `gov list` give it.
fn proposal_view(
    id: ProposalId,
    proposal: &governance::Proposal,
    height: u64,
) -> serde_json::Value {
    let call = decode::<Call>(&proposal.call).ok();
    serde_json::json!({
        "id": id,
        "status": proposal.status,
        "proposer": proposal.proposer,
        "call": call,
        "submitted_at": proposal.submitted_at,
        "voting_ends_at": proposal.voting_ends_at,
        "enactment_height": proposal.enact_at,
        "tally": proposal.tally,
        "deposit": proposal.deposit,
        "failure": proposal.failure.as_ref().map(|failure| failure.as_str()),
        "height": height,
    })
}

fn print_proposal(view: &serde_json::Value) {
    let field = |name: &str| match &view[name] {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!("proposal {}  {}", field("id"), field("status"));
    println!("  call            {}", field("call"));
    println!("  voting ends at  {}", field("voting_ends_at"));
    println!("  enactment at    {}", field("enactment_height"));
    let tally = &view["tally"];
    println!(
        "  tally           ayes {} nays {} of {} active",
        tally["ayes"], tally["nays"], tally["total_active"]
    );
    if view["failure"] != serde_json::Value::Null {
        println!("  failure         {}", field("failure"));
    }
}

async fn list(json: bool, rpc: &str) -> Result<()> {
    let client = Client::connect(rpc).await?;
    let (next, height) = client.value::<NextProposalId>().await?;
    let (open, _) = client.value::<Open>().await?;
    let mut views = Vec::new();
    for id in (next.get().saturating_sub(LIST_MAX)..next.get()).rev() {
        if let (Some(proposal), _) = client.map::<Proposals>(&ProposalId(id)).await? {
            views.push(proposal_view(ProposalId(id), &proposal, height));
        }
    }
    if json {
        return print_json(
            &serde_json::json!({"height": height, "open": open, "proposals": views}),
        );
    }
    if views.is_empty() {
        println!("no proposals (propose one: logos gov propose --help)");
    }
    for view in &views {
        print_proposal(view);
    }
    Ok(())
}

/// Runs `logos query committee [--epoch N]`.
pub async fn query_committee(epoch: Option<u64>, rpc: &str) -> Result<serde_json::Value> {
    let client = Client::connect(rpc).await?;
    let (current, height) = client.value::<CurrentEpoch>().await?;
    let epoch = epoch.map(Epoch).unwrap_or(current.epoch);
    let (committee, _) = client.map::<Committees>(&epoch).await?;
    let Some(committee) = committee else {
        bail!(
            "no committee for epoch {epoch} at height {height}: committees are fixed one epoch \
             ahead (the current epoch is {})",
            current.epoch
        );
    };
    Ok(serde_json::json!({
        "epoch": epoch,
        "current_epoch": current,
        "height": height,
        "members": committee.members,
    }))
}
