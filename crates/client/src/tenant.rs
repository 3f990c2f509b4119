//! The tenant's side: lease a template, read a lease's full status, follow it until its
//! environment is verified and its workload healthy, and register a leased full node's p2p key
//! (the validators let only known keys connect; see `logos_types::peers`).

use crate::{
    find_event,
    http::{probe_health, read_bounded, untrusted, HEALTH_BODY_MAX_BYTES},
    Client, ClientError, Wallet,
};
use logos_api::rpc::{FullNodeRegistration, ValidatorIntent};
use logos_primitives::{Amount, ChainId, NodeKey};
use logos_types::{
    catalog::{NextTemplateId, Product, Products, Template, TemplateId, Templates},
    dvci::RegionId,
    market::{self, Lease, LeaseId, Leases, Payout, Prices},
    operations::{ConditionStatus, ConditionType, Environment, EnvironmentId, Environments},
    peers::{self, FullNodes, MinimumDeposit},
    provisioning::{Assignment, Assignments},
    staking, Call, Event,
};
use std::time::{Duration, Instant};

/// How often [`watch`] polls the chain, ms.
pub const WATCH_POLL_MS: u64 = 50;
/// Timeout of [`watch`]'s probe of the workload's health, ms.
pub const HEALTH_TIMEOUT_MS: u64 = 1_000;

/// Everything about one lease.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LeaseStatus {
    /// Lease id (= environment id).
    pub lease: LeaseId,
    /// The lease record.
    pub record: Lease,
    /// Its environment (desired state and reported status).
    pub environment: Option<Environment>,
    /// Who realizes and checks it (none once destroyed).
    pub assignment: Option<Assignment>,
    /// What was verified, charged and paid to whom.
    pub billing: Billing,
    /// Finalized height of the reads.
    pub height: u64,
}

/// A lease's billing: it is charged only for verified blocks (and grace blocks after one).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Billing {
    /// Blocks in which its environment was `Verified`.
    pub verified_blocks: u64,
    /// Blocks in which it was not.
    pub unverified_blocks: u64,
    /// Blocks charged.
    pub charged_blocks: u64,
    /// Total charged, smallest unit.
    pub charged: Amount,
    /// Who was paid what, by account and role (provider, community, assignee, checker).
    pub paid: Vec<Payout>,
    /// Paid to accounts beyond the listed ones, smallest unit.
    pub paid_unlisted: Amount,
}

impl Billing {
    /// The billing summary of `record`.
    pub fn of(record: &Lease) -> Self {
        let charged = Amount(
            record
                .rate
                .0
                .saturating_mul(u128::from(record.blocks_billed)),
        );
        Billing {
            verified_blocks: record.verified_blocks,
            unverified_blocks: record.unverified_blocks,
            charged_blocks: record.blocks_billed,
            charged,
            paid: record.payouts.to_vec(),
            paid_unlisted: record.paid_unlisted,
        }
    }
}

/// Reads a lease's full status, proven when the client is trusted ([`Client::map_checked`]:
/// callers decide what to pay for by it).
pub async fn lease_status(client: &Client, id: LeaseId) -> Result<LeaseStatus, ClientError> {
    let (record, height) = client.map_checked::<Leases>(&id).await?;
    let record = record.ok_or_else(|| ClientError::Missing(format!("no lease {id}")))?;
    let environment_id = EnvironmentId::from(id);
    let (environment, _) = client.map_checked::<Environments>(&environment_id).await?;
    let (assignment, _) = client.map_checked::<Assignments>(&environment_id).await?;
    Ok(LeaseStatus {
        lease: id,
        billing: Billing::of(&record),
        record,
        environment,
        assignment,
        height,
    })
}

/// Leases `template` in `region` for `blocks` blocks from `wallet`; returns the lease's id and
/// the height it was created at. The lease the receipt names is checked on chain (proven
/// when the client is trusted): the wallet's, of that template, created after submission.
/// When the transaction was submitted but its receipt could not be had (a timeout, a server
/// that stopped answering), the lease is looked for among the newest ([`ADOPT_SCAN`]) so a
/// paid lease is not lost; if none is found the error names the transaction.
pub async fn create_lease(
    client: &Client,
    wallet: &Wallet,
    template: TemplateId,
    region: RegionId,
    blocks: u64,
) -> Result<(LeaseId, u64), ClientError> {
    let call = Call::Market(market::Call::CreateLease {
        template,
        region,
        blocks,
    });
    let start = client.head_height().await?;
    let (hash, nonce) = client.submit(wallet, call).await?;
    let waited = client.wait(&wallet.address(), &hash, nonce, start).await;
    let (receipt, height) = match waited.and_then(|(receipt, height)| crate::check(receipt, height))
    {
        Ok(done) => done,
        Err(error @ ClientError::CallFailed { .. }) => return Err(error),
        Err(error) => {
            return match created_since(client, wallet, template, start).await? {
                Some(found) => Ok(found),
                None => Err(ClientError::Missing(format!(
                    "lease transaction {hash} was submitted but not seen finalized ({error}); \
                     if it finalizes, the lease is {}'s newest (`logos lease list --tenant \
                     {}`)",
                    wallet.address(),
                    wallet.address()
                ))),
            }
        }
    };
    let lease = find_event(&receipt, "LeaseCreated", |event| match event {
        Event::Market(market::Event::LeaseCreated { lease, .. }) => Some(*lease),
        _ => None,
    })?;
    let (record, _) = client.map_checked::<Leases>(&lease).await?;
    let ours = record.is_some_and(|record| {
        record.tenant == wallet.address()
            && record.template == template
            && record.created_at > start
    });
    if !ours {
        return Err(ClientError::Malformed(format!(
            "the receipt names lease {lease}, which is not the one just created"
        )));
    }
    Ok((lease, height))
}

/// Leases [`create_lease`] looks among (the newest) for one it submitted but did not see
/// finalized.
pub const ADOPT_SCAN: u64 = 32;

/// The only lease of `template` that `wallet` created after height `start`, among the newest
/// [`ADOPT_SCAN`] (none if there is none, or more than one).
async fn created_since(
    client: &Client,
    wallet: &Wallet,
    template: TemplateId,
    start: u64,
) -> Result<Option<(LeaseId, u64)>, ClientError> {
    let (next, _) = client.value_checked::<market::NextLeaseId>().await?;
    let mut found = Vec::new();
    for id in (next.get().saturating_sub(ADOPT_SCAN)..next.get()).map(LeaseId) {
        let (Some(record), _) = client.map_checked::<Leases>(&id).await? else {
            continue;
        };
        if record.tenant == wallet.address()
            && record.template == template
            && record.created_at > start
        {
            found.push((id, record.created_at));
        }
    }
    Ok(match found.as_slice() {
        [only] => Some(*only),
        _ => None,
    })
}

/// Templates [`catalog`] reads at most: ids `0..CATALOG_MAX` (3 reads each).
pub const CATALOG_MAX: u32 = 128;

/// Template names an error lists at most.
const NAMES_SHOWN_MAX: usize = 16;

/// One template of the catalog with its product and its price.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    /// Its id.
    pub id: TemplateId,
    /// The template record (name, product, workload).
    pub template: Template,
    /// Its product (none if the product was removed since).
    pub product: Option<Product>,
    /// Price of one block, smallest unit: the product's class price × its compute units (none
    /// if the product or its class price is missing, or the product overflows).
    pub price_per_block: Option<Amount>,
}

/// The catalog as finalized: every template with an id below both [`NextTemplateId`] and
/// [`CATALOG_MAX`], oldest first; proven when the client is trusted
/// ([`Client::map_checked`]), since a tenant chooses and pays by it.
pub async fn catalog(client: &Client) -> Result<Vec<CatalogEntry>, ClientError> {
    let (next, _) = client.value_checked::<NextTemplateId>().await?;
    let mut entries = Vec::new();
    for id in (0..next.0.min(CATALOG_MAX)).map(TemplateId) {
        let (Some(template), _) = client.map_checked::<Templates>(&id).await? else {
            continue;
        };
        let (product, _) = client.map_checked::<Products>(&template.product).await?;
        let price_per_block = match &product {
            Some(product) => client
                .map_checked::<Prices>(&product.class)
                .await?
                .0
                .and_then(|price| price.0.checked_mul(u128::from(product.compute_units)))
                .map(Amount),
            None => None,
        };
        entries.push(CatalogEntry {
            id,
            template,
            product,
            price_per_block,
        });
    }
    Ok(entries)
}

/// The template of `entries` named `name`; an error names the templates there are (cut to
/// their bounds), or the ids when more than one has that name.
pub fn template_named<'a>(
    entries: &'a [CatalogEntry],
    name: &str,
) -> Result<&'a CatalogEntry, ClientError> {
    let mut named = entries
        .iter()
        .filter(|entry| entry.template.name.as_str() == name);
    match (named.next(), named.next()) {
        (Some(entry), None) => Ok(entry),
        (Some(first), Some(second)) => Err(ClientError::Malformed(format!(
            "more than one template is named {name:?} (ids {}, {}, …): name one by id",
            first.id, second.id
        ))),
        (None, _) => {
            let names: Vec<&str> = entries
                .iter()
                .take(NAMES_SHOWN_MAX)
                .map(|entry| entry.template.name.as_str())
                .collect();
            Err(ClientError::Missing(format!(
                "no template named {name:?} in the catalog (there are: {})",
                names.join(", ")
            )))
        }
    }
}

/// What [`close_lease`] did.
#[derive(Clone, Debug)]
pub struct Closed {
    /// Height of the block that closed the lease.
    pub height: u64,
    /// Escrow given back to the tenant, smallest unit (none if the receipt did not say).
    pub refund: Option<Amount>,
    /// The full-node key deregistered with the lease (its deposit back).
    pub deregistered: Option<NodeKey>,
    /// Why the full-node key could not be deregistered (the lease is closed all the same;
    /// `logos node deregister` retries).
    pub deregistration_error: Option<String>,
    /// The consensus key of the tenant's validator candidacy dropped with the lease
    /// (`staking::Chill`): a leased validator's key goes with its volume, and a candidate
    /// nobody runs would be elected into committees it cannot serve.
    pub chilled: Option<NodeKey>,
    /// Why the candidacy could not be dropped (`logos stake chill` retries).
    pub chill_error: Option<String>,
}

/// Closes lease `id` from `wallet` (its tenant): the unspent escrow comes back. Then the
/// full-node key registered for it is deregistered, since the registry is bounded and the
/// deposit is the tenant's: `known`, the key the caller registered for this lease (exact), or
/// else the key the workload offers at `/health` (best effort: a provider could name another
/// of the tenant's nodes, so callers that registered the key should pass it). And when the
/// tenant's validator candidacy is at an address this lease publishes (a leased validator,
/// whose key goes with the volume), it is dropped (`staking::Chill`; the stake stays bonded,
/// and committees already elected keep the member until the next election). A failed
/// deregistration or chill is reported in [`Closed::deregistration_error`] or
/// [`Closed::chill_error`], not as an error.
pub async fn close_lease(
    client: &Client,
    wallet: &Wallet,
    id: LeaseId,
    known: Option<NodeKey>,
) -> Result<Closed, ClientError> {
    // Read before the workload goes.
    let registered = match known {
        Some(key) => owned_node(client, wallet, key).await,
        None => offered_node(client, wallet, id).await,
    };
    let published = published_addresses(client, id).await;
    let call = Call::Market(market::Call::CloseLease { lease: id });
    let (receipt, height) = client.execute(wallet, call).await?;
    let refund = receipt.events.iter().find_map(|event| match event {
        Event::Market(market::Event::LeaseClosed { refund, .. }) => Some(*refund),
        _ => None,
    });
    let mut closed = Closed {
        height,
        refund,
        deregistered: None,
        deregistration_error: None,
        chilled: None,
        chill_error: None,
    };
    if let Some(node) = registered {
        let call = Call::Peers(peers::Call::DeregisterFullNode { key: node });
        match client.execute(wallet, call).await {
            Ok(_) => closed.deregistered = Some(node),
            Err(error) => closed.deregistration_error = Some(format!("full node {node}: {error}")),
        }
    }
    // Read now, after the close: a candidacy declared meanwhile for another node is kept.
    if let Some(key) = candidacy_at(client, wallet, (&published, known)).await {
        let chill = Call::Staking(staking::Call::Chill);
        match client.execute(wallet, chill).await {
            Ok(_) => closed.chilled = Some(key),
            Err(error) => closed.chill_error = Some(format!("candidacy of {key}: {error}")),
        }
    }
    Ok(closed)
}

/// Where lease `id`'s declared ports are published (`host:port`, the host its provider's, as
/// `provisioning` checks the endpoint's), from its finalized environment record.
async fn published_addresses(client: &Client, id: LeaseId) -> Vec<std::net::SocketAddr> {
    let environment = client
        .map_checked::<Environments>(&EnvironmentId::from(id))
        .await
        .ok()
        .and_then(|(environment, _)| environment);
    let Some(environment) = environment else {
        return Vec::new();
    };
    let Ok(endpoint) = environment.endpoint.parse::<std::net::SocketAddr>() else {
        return Vec::new();
    };
    environment
        .ports
        .iter()
        .map(|mapping| std::net::SocketAddr::new(endpoint.ip(), mapping.published))
        .collect()
}

/// The consensus key of `wallet`'s validator candidacy if its p2p address is one of
/// `published` (a validator leased with this lease: an address only this lease publishes, so
/// what the workload says cannot make the tenant drop another node's candidacy), or if its key
/// is `known`, the caller's own record of this lease's node (a crashed workload's report
/// carries no ports).
async fn candidacy_at(
    client: &Client,
    wallet: &Wallet,
    (published, known): (&[std::net::SocketAddr], Option<NodeKey>),
) -> Option<NodeKey> {
    let (candidate, _) = client
        .map_checked::<staking::Validators>(&wallet.address())
        .await
        .ok()?;
    let candidate = candidate?;
    let address = peers::P2pAddress::from;
    let here = published
        .iter()
        .any(|published| address(*published) == candidate.p2p_address);
    (here || known == Some(candidate.consensus_key)).then_some(candidate.consensus_key)
}

/// `key` if the chain says `wallet` registered it.
async fn owned_node(client: &Client, wallet: &Wallet, key: NodeKey) -> Option<NodeKey> {
    let (record, _) = client.map_checked::<FullNodes>(&key).await.ok()?;
    (record?.owner == wallet.address()).then_some(key)
}

/// The full-node key registered by `wallet` that lease `id`'s workload offers at `/health`, if
/// any (best effort: an unreachable workload has none).
async fn offered_node(client: &Client, wallet: &Wallet, id: LeaseId) -> Option<NodeKey> {
    let offer: FullNodeRegistration = workload_offer(client, id, "registration").await?;
    owned_node(client, wallet, offer.key).await
}

/// Field `field` of what lease `id`'s workload answers at `/health` (best effort, untrusted).
async fn workload_offer<T: serde::de::DeserializeOwned>(
    client: &Client,
    id: LeaseId,
    field: &str,
) -> Option<T> {
    let (environment, _) = client
        .map_checked::<Environments>(&EnvironmentId::from(id))
        .await
        .ok()?;
    let endpoint = environment?.endpoint;
    let http = untrusted(Duration::from_millis(HEALTH_TIMEOUT_MS)).ok()?;
    offered(&http, &endpoint, field).await
}

/// Milestones of a lease, in the order they happen.
#[derive(Clone, Copy, Debug, Default)]
pub struct Milestones {
    /// First seen Ready=True.
    pub running: Option<Instant>,
    /// First seen Verified=True.
    pub verified: Option<Instant>,
    /// First seen the workload's own health saying it is healthy.
    pub synced: Option<Instant>,
    /// The full-node key [`watch`] registered for the workload with its wallet (none if it
    /// offered none, or the registration failed or was someone else's).
    pub registered: Option<NodeKey>,
}

/// The registration a workload's `GET http://{endpoint}/health` offers, whatever its status;
/// `None` if it is unreachable, its body is over [`HEALTH_BODY_MAX_BYTES`] or not JSON, or it
/// offers none. The offer is untrusted: check it with [`registration_verifies`].
pub async fn offered_registration(
    http: &reqwest::Client,
    endpoint: &str,
) -> Option<FullNodeRegistration> {
    offered(http, endpoint, "registration").await
}

/// The validator intent a workload's `GET http://{endpoint}/health` offers (a leased validator
/// started with `--validate-for`), whatever its status; `None` as for
/// [`offered_registration`]. The offer is untrusted: [`declare_validator`] checks it.
pub async fn offered_intent(http: &reqwest::Client, endpoint: &str) -> Option<ValidatorIntent> {
    offered(http, endpoint, "intent").await
}

/// Field `field` of the health answer at `endpoint`, bounded as [`bounded_json`] reads it.
async fn offered<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    endpoint: &str,
    field: &str,
) -> Option<T> {
    let response = http
        .get(format!("http://{endpoint}/health"))
        .send()
        .await
        .ok()?;
    let body = bounded_json(response).await?;
    serde_json::from_value(body.get(field)?.clone()).ok()
}

/// True if the consensus key signed `intent` for this chain, its owner and its p2p address
/// (what the chain checks; a forged offer is refused here instead of costing a fee).
pub fn intent_verifies(intent: &ValidatorIntent, chain_id: &ChainId) -> bool {
    let message = staking::intent_message(chain_id, &intent.owner, &intent.p2p_address);
    intent
        .consensus_key
        .verifies(staking::INTENT_NAMESPACE, &message, &intent.signature)
}

/// Declares `wallet`'s account a validator candidate with the consensus key and p2p address
/// of `intent` (a node's offer: the key never leaves it), at `commission_permille`, replacing
/// `evict` when the candidate list is full, and waits for finality; returns the receipt and
/// the height. Refused before submission if the intent names another account, does not
/// verify, or gives an address no connection can come from.
pub async fn declare_validator(
    client: &Client,
    wallet: &Wallet,
    intent: &ValidatorIntent,
    (commission_permille, evict): (u16, Option<logos_primitives::Address>),
) -> Result<(logos_types::Receipt, u64), ClientError> {
    if intent.owner != wallet.address() {
        return Err(ClientError::Malformed(format!(
            "the validator intent is for {}, not {}",
            intent.owner,
            wallet.address()
        )));
    }
    if !intent.p2p_address.is_source() || intent.p2p_address.port == 0 {
        return Err(ClientError::Malformed(format!(
            "the validator intent's p2p address {} accepts no connection",
            intent.p2p_address
        )));
    }
    if !intent_verifies(intent, &client.info().chain_id) {
        return Err(ClientError::Malformed(
            "the validator intent's signature does not verify for this chain".into(),
        ));
    }
    let call = Call::Staking(staking::Call::Validate {
        consensus_key: intent.consensus_key,
        p2p_address: intent.p2p_address,
        commission_permille,
        signature: intent.signature,
        evict,
    });
    client.execute(wallet, call).await
}

/// The JSON body of `response`, read at most [`HEALTH_BODY_MAX_BYTES`] (more is refused, as
/// is a body that is not JSON).
async fn bounded_json(response: reqwest::Response) -> Option<serde_json::Value> {
    let body = read_bounded(response, HEALTH_BODY_MAX_BYTES).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// True if the node key signed `registration` for this chain, its owner and its address (what
/// the chain checks; a forged offer is refused here instead of costing a fee).
pub fn registration_verifies(registration: &FullNodeRegistration, chain_id: &ChainId) -> bool {
    let message = peers::registration_message(chain_id, &registration.owner, &registration.address);
    registration.key.verifies(
        peers::REGISTRATION_NAMESPACE,
        &message,
        &registration.signature,
    )
}

/// Submits `registration` from `wallet` with the chain's minimum deposit (or `deposit`) and
/// waits for finality; returns the height and the deposit. Refused before submission if the
/// registration names another account or does not verify.
pub async fn register_full_node(
    client: &Client,
    wallet: &Wallet,
    registration: &FullNodeRegistration,
    deposit: Option<logos_primitives::Amount>,
) -> Result<(u64, logos_primitives::Amount), ClientError> {
    if registration.owner != wallet.address() {
        return Err(ClientError::Malformed(format!(
            "the registration is for {}, not {}",
            registration.owner,
            wallet.address()
        )));
    }
    if !registration_verifies(registration, &client.info().chain_id) {
        return Err(ClientError::Malformed(
            "the registration's signature does not verify for this chain".into(),
        ));
    }
    let deposit = match deposit {
        Some(deposit) => deposit,
        None => client.value::<MinimumDeposit>().await?.0,
    };
    let call = Call::Peers(peers::Call::RegisterFullNode {
        key: registration.key,
        address: registration.address,
        deposit,
        signature: registration.signature,
    });
    let (_, height) = client.execute(wallet, call).await?;
    Ok((height, deposit))
}

/// Follows lease `id` until it is Verified and its workload healthy (or `timeout`), calling
/// `say` with each new step. Fails if the lease closes. With `register`, a workload that
/// offers a full-node registration for that wallet (a leased full node) is registered once, so
/// that the validators let it connect.
pub async fn watch(
    client: &Client,
    id: LeaseId,
    timeout: Duration,
    register: Option<&Wallet>,
    say: &mut impl FnMut(String),
) -> Result<Milestones, ClientError> {
    let deadline = Instant::now() + timeout;
    let http = untrusted(Duration::from_millis(HEALTH_TIMEOUT_MS))
        .map_err(|error| ClientError::Malformed(error.to_string()))?;
    let mut seen = Vec::<String>::new();
    let mut milestones = Milestones::default();
    let mut offer_handled = false;
    while Instant::now() < deadline {
        let status = lease_status(client, id).await?;
        for step in steps(&status) {
            if !seen.contains(&step) {
                say(step.clone());
                seen.push(step);
            }
        }
        let environment = status
            .environment
            .as_ref()
            .ok_or_else(|| ClientError::Missing(format!("lease {id} has no environment")))?;
        if let Some((height, reason)) = status.record.closed {
            return Err(ClientError::Missing(format!(
                "lease {id} closed at height {height}: {reason:?}"
            )));
        }
        let now = Instant::now();
        if environment.condition(ConditionType::Ready).status == ConditionStatus::True {
            milestones.running.get_or_insert(now);
        }
        if environment.condition(ConditionType::Verified).status == ConditionStatus::True {
            milestones.verified.get_or_insert(now);
        }
        if let (Some(wallet), false, false) =
            (register, offer_handled, environment.endpoint.is_empty())
        {
            if let Some(registered) =
                register_offered(client, wallet, &http, &environment.endpoint, say).await?
            {
                offer_handled = true;
                milestones.registered = registered;
            }
        }
        if milestones.synced.is_none() && !environment.endpoint.is_empty() {
            let health = probe(&http, environment).await;
            if let Some(health) = health.filter(|health| caught_up(health, status.height)) {
                say(format!(
                    "workload healthy: {}",
                    summarize_health(&health, status.height)
                ));
                milestones.synced = Some(now);
            }
        }
        if milestones.verified.is_some() && milestones.synced.is_some() {
            return Ok(milestones);
        }
        tokio::time::sleep(Duration::from_millis(WATCH_POLL_MS)).await;
    }
    Err(ClientError::Missing(format!(
        "lease {id} not verified within {} s",
        timeout.as_secs()
    )))
}

/// Registers the full node at `endpoint` if it offers a registration for `wallet` and its key
/// is not registered yet. `None` while there is no offer for `wallet`; once handled, the key
/// if `wallet` registered it now, else nothing: registered already, refused or failed (said,
/// not retried: a retry every poll would spend a fee each time; `logos node register` retries
/// by hand).
async fn register_offered(
    client: &Client,
    wallet: &Wallet,
    http: &reqwest::Client,
    endpoint: &str,
    say: &mut impl FnMut(String),
) -> Result<Option<Option<NodeKey>>, ClientError> {
    let Some(registration) = offered_registration(http, endpoint).await else {
        return Ok(None);
    };
    if registration.owner != wallet.address() {
        return Ok(None);
    }
    if let (Some(existing), _) = client.map::<FullNodes>(&registration.key).await? {
        say(format!(
            "full node {} is registered already (by {})",
            registration.key, existing.owner
        ));
        return Ok(Some(None));
    }
    match register_full_node(client, wallet, &registration, None).await {
        Ok((height, deposit)) => {
            say(format!(
                "registered the leased full node's p2p key {} (connections from {}, deposit \
                 {deposit} reserved until `logos node deregister`) at height {height}",
                registration.key, registration.address
            ));
            Ok(Some(Some(registration.key)))
        }
        Err(error) => {
            say(format!(
                "could not register the leased full node's p2p key {}: {error}",
                registration.key
            ));
            Ok(Some(None))
        }
    }
}

/// Most blocks a workload reporting a `finalized_height` (a leased node) may lag the chain head
/// and count as synced (a node that is catching up answers 200 as soon as its tip is recent).
pub const SYNC_LAG_BLOCKS_MAX: u64 = 100;

/// True unless `health` reports a `finalized_height` more than [`SYNC_LAG_BLOCKS_MAX`] behind
/// `chain_height`.
fn caught_up(health: &serde_json::Value, chain_height: u64) -> bool {
    match health
        .get("finalized_height")
        .and_then(serde_json::Value::as_u64)
    {
        Some(height) => height.saturating_add(SYNC_LAG_BLOCKS_MAX) >= chain_height,
        None => true,
    }
}

/// The environment's health check as its template says (the body when it is JSON, else
/// `{}`), `None` while it fails.
async fn probe(http: &reqwest::Client, environment: &Environment) -> Option<serde_json::Value> {
    let health = &environment.spec.workload.health;
    let path = health.path.as_deref();
    let timeout = Duration::from_millis(HEALTH_TIMEOUT_MS);
    let body = probe_health(http, &environment.endpoint, path, timeout)
        .await
        .ok()?;
    Some(body.unwrap_or_default())
}

fn summarize_health(body: &serde_json::Value, chain_height: u64) -> String {
    match body.get("finalized_height") {
        Some(height) => format!(
            "leased full node synced to finalized height {height} (chain head {chain_height})"
        ),
        // A body that is not JSON (another chain's check) reads as `{}`.
        None if body.as_object().is_some_and(|fields| fields.is_empty()) => {
            "health check passing".into()
        }
        None => body.to_string(),
    }
}

/// Human-readable steps of a lease's status.
fn steps(status: &LeaseStatus) -> Vec<String> {
    let mut steps = vec![format!(
        "lease {} created at height {}: {} per block",
        status.lease, status.record.created_at, status.record.rate
    )];
    steps.push(format!("placed on provider {}", status.record.provider));
    if let Some(assigned) = status.assignment.as_ref().and_then(|task| task.assigned) {
        steps.push(format!("assigned to provisioner {assigned}"));
    }
    if let Some(environment) = &status.environment {
        for condition in &environment.conditions {
            let untouched = condition.status == ConditionStatus::Unknown
                && condition.reason == "AwaitingReport";
            if condition.kind == ConditionType::Scheduled || untouched {
                continue;
            }
            let separator = if condition.message.is_empty() {
                ""
            } else {
                ": "
            };
            steps.push(format!(
                "{:?}={:?} ({}{separator}{})",
                condition.kind, condition.status, condition.reason, condition.message
            ));
        }
        if !environment.endpoint.is_empty() {
            steps.push(format!("endpoint {}", environment.endpoint));
        }
    }
    if let Some(task) = &status.assignment {
        if !task.checkers.is_empty() {
            let checkers: Vec<String> = task.checkers.iter().map(|c| c.to_string()).collect();
            steps.push(format!(
                "cross-check round {} drawn: {}",
                task.round,
                checkers.join(", ")
            ));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer;
    use logos_primitives::{hash, KeySignature, PrivateKey};

    /// A node far behind the head is not synced yet, whatever its status code said.
    #[test]
    fn a_node_far_behind_the_head_is_not_caught_up() {
        let at = |height: u64| serde_json::json!({ "finalized_height": height });
        assert!(!caught_up(&at(7), 111 + SYNC_LAG_BLOCKS_MAX));
        assert!(caught_up(&at(111), 111 + SYNC_LAG_BLOCKS_MAX));
        assert!(caught_up(&at(500), 400));
        assert!(caught_up(&serde_json::json!({ "ok": true }), 1_000));
    }

    /// An offer is checked like the chain checks it: for this chain, this owner and address.
    #[test]
    fn only_an_offer_the_chain_would_accept_verifies() {
        let node = PrivateKey::from_seed(1);
        let owner = logos_primitives::Address([9; 20]);
        let chain = ChainId(hash(&[b"here"]));
        let address: peers::P2pAddress = "127.0.0.1:0".parse().unwrap();
        let (key, signature) = peers::sign_registration(&node, &chain, &owner, &address);
        let offer = FullNodeRegistration {
            key,
            owner,
            address,
            signature,
        };
        assert!(registration_verifies(&offer, &chain));
        assert!(!registration_verifies(
            &offer,
            &ChainId(hash(&[b"elsewhere"]))
        ));
        let moved = FullNodeRegistration {
            address: "10.0.0.1:0".parse().unwrap(),
            ..offer.clone()
        };
        assert!(!registration_verifies(&moved, &chain));
        let forged = FullNodeRegistration {
            signature: KeySignature([0; 64]),
            ..offer.clone()
        };
        assert!(!registration_verifies(&forged, &chain));
        let other = FullNodeRegistration {
            key: NodeKey::from_public_key(&PrivateKey::from_seed(2).public_key()),
            ..offer
        };
        assert!(!registration_verifies(&other, &chain));
    }
}
