//! Deterministic simulations of Logos validators (commonware deterministic runtime and
//! simulated p2p network): real engines, real state, simulated links, hostile peers.
//!
//! Every scenario asserts safety (at every height all honest validators finalized the same
//! block, and each validator's state root equals the root its finalized tip commits to) and
//! liveness (finalization reaches a target within a bound of simulated time), and runs over
//! many seeds: [`SEEDS_DEFAULT`] each, or `LOGOS_SIMULATION_SEEDS` (a failing run prints its
//! seed on stderr).
//!
//! Hostile cases: a validator offline, partitions that heal, 10 % packet loss on every link,
//! an equivocating leader, a byzantine leader (wrong state or receipts root, forged signature, unpayable
//! transaction, timestamp beyond the drift bound, timestamp at the drift bound), an unclean
//! crash of every validator followed by a restart from what storage kept, and pooled
//! transactions that cannot pay.

use commonware_codec::Encode as _;
use commonware_consensus::{
    marshal::{ancestry::Ancestry, Identifier},
    simplex::{elector::RoundRobin, mocks, types::Context as RoundContext},
    types::Epoch,
};
use commonware_cryptography::{Digested, Digestible, Sha256, Signer};
use commonware_p2p::{
    simulated::{self, Link, Network, Oracle},
    utils::mux::{Muxer, SubReceiver, SubSender},
};
use commonware_runtime::{deterministic, Clock, Metrics as _, Quota, Runner, Spawner, Supervisor};
use commonware_storage::qmdb::sync::{self, Request, Response, Source};
use commonware_utils::{probability, NZUsize, NZU32};
use logos_api::{
    block::Seed,
    consensus::{consensus_namespace, participants, Scheme},
    Block,
};
use logos_api::{proof::StateFamily, rpc::STATE_OPERATIONS_MAX};
use logos_node::{
    application::{now_ms, Application, TIMESTAMP_DRIFT_MAX_MS},
    engine::{self, Networks, Node},
    full,
    statesync::{self, Floor, StateOperation, StateSyncError},
};
use logos_primitives::{format_public_key, Address, Amount, Hash, Height, PrivateKey, PublicKey};
use logos_types::{
    balances,
    genesis::{GenesisAccount, GenesisValidator},
    Call, Genesis, Params, TransactionPayload,
};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

type Context = deterministic::Context;

/// Seeds per scenario unless `LOGOS_SIMULATION_SEEDS` says otherwise.
const SEEDS_DEFAULT: u64 = 100;

/// Runs `scenario` once per seed from `base` (see the module docs); the seed is printed first,
/// so a failure names the seed that reproduces it.
fn over_seeds(base: u64, scenario: impl Fn(u64)) {
    over_seeds_n(base, SEEDS_DEFAULT, scenario);
}

/// [`over_seeds`] with `default` seeds (for long scenarios).
fn over_seeds_n(base: u64, default: u64, scenario: impl Fn(u64)) {
    let count = std::env::var("LOGOS_SIMULATION_SEEDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default);
    for seed in base..base + count {
        eprintln!("seed {seed}");
        scenario(seed);
    }
}

const QUOTA: Quota = Quota::per_second(NZU32!(1_024));
const RECIPIENT: Address = Address([0x42; 20]);

fn link(latency_ms: u64) -> Link {
    Link {
        latency: Duration::from_millis(latency_ms),
        jitter: Duration::from_millis(latency_ms / 4),
        success_rate: probability!(1.0),
    }
}

/// A link that drops one message in ten.
fn lossy_link(latency_ms: u64) -> Link {
    Link {
        success_rate: probability!(0.9),
        ..link(latency_ms)
    }
}

struct Network_ {
    oracle: Oracle<PublicKey, Context>,
    keys: Vec<PrivateKey>,
    genesis: Genesis,
    funded: PrivateKey,
    /// Adjusts each validator's engine configuration before it starts.
    configure: fn(&mut engine::Config),
}

fn genesis(keys: &[PrivateKey], funded: &PrivateKey) -> Genesis {
    Genesis {
        chain_name: "simulation".into(),
        timestamp_ms: 0,
        params: Params::default(),
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, key)| GenesisValidator {
                public_key: format_public_key(&key.public_key()),
                p2p_address: format!("127.0.0.1:{}", 10_000 + i).parse().unwrap(),
            })
            .collect(),
        accounts: vec![GenesisAccount {
            address: Address::from_public_key(&funded.public_key()),
            balance: Amount(1_000_000_000_000),
        }],
        parent: None,
    }
}

async fn network(context: &Context, n: u64) -> Network_ {
    let keys: Vec<PrivateKey> = (0..n).map(PrivateKey::from_seed).collect();
    let funded = PrivateKey::from_seed(1_000);
    let genesis = genesis(&keys, &funded);
    let (network, oracle) = Network::new_with_peers(
        context.child("network"),
        simulated::Config {
            max_size: engine::max_message_size_bytes(&genesis),
            // Room for one full node beside the validators.
            max_peers_per_set: NZUsize!(n as usize + 1),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
        keys.iter().map(|key| key.public_key()),
    )
    .await;
    network.start();
    Network_ {
        oracle,
        keys,
        genesis,
        funded,
        configure: |_| {},
    }
}

async fn channels(
    oracle: &Oracle<PublicKey, Context>,
    key: &PublicKey,
) -> Networks<simulated::Sender<PublicKey, Context>, simulated::Receiver<PublicKey>> {
    let control = oracle.control(key.clone());
    let mut registered = Vec::new();
    for channel in 0..8 {
        registered.push(control.register(channel, QUOTA).await.unwrap());
    }
    let mut registered = registered.into_iter();
    Networks {
        votes: registered.next().unwrap(),
        certificates: registered.next().unwrap(),
        resolver: registered.next().unwrap(),
        backfill: registered.next().unwrap(),
        blocks: registered.next().unwrap(),
        transactions: registered.next().unwrap(),
        dkg: registered.next().unwrap(),
        seeds: registered.next().unwrap(),
    }
}

/// The epoch-`epoch` subchannel of a consensus channel (votes, certificates and simplex's
/// resolver are multiplexed by epoch; see `logos_node::orchestrator`), for byzantine doubles
/// that speak simplex's wire format directly.
async fn subchannel<S, R>(
    context: &Context,
    (sender, receiver): (S, R),
    epoch: u64,
) -> (SubSender<S>, SubReceiver<PublicKey>)
where
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    let (mux, mut handle) = Muxer::new(context.child("mux"), sender, receiver);
    mux.start();
    handle.register(epoch).await.expect("subchannel")
}

async fn start_validator(context: &Context, net: &Network_, index: usize) -> Node<Context> {
    launch(context, net, index, |application| application).await
}

/// Starts validator `index` with its application wrapped by `wrap` (a byzantine double).
async fn launch<A, W>(context: &Context, net: &Network_, index: usize, wrap: W) -> Node<Context>
where
    A: commonware_consensus::Application<
        Context,
        SigningScheme = Scheme,
        Context = RoundContext<Hash, PublicKey>,
        Block = Block,
        Input = (),
    >,
    W: FnOnce(Application<Context>) -> A,
{
    let key = net.keys[index].clone();
    let networks = channels(&net.oracle, &key.public_key()).await;
    let mut config = engine::Config::new(
        key.clone(),
        net.genesis.clone(),
        format!("validator-{index}"),
    );
    (net.configure)(&mut config);
    engine::start_wrapped(
        context.child(Box::leak(format!("validator_{index}").into_boxed_str())),
        config,
        networks,
        net.oracle.manager(),
        net.oracle.control(key.public_key()),
        wrap,
    )
    .await
    .expect("validator starts")
}

/// What a byzantine leader does to the block its honest application built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Commits to a state root execution does not give.
    WrongStateRoot,
    /// Commits to a receipts root execution does not give.
    WrongReceiptsRoot,
    /// Adds a transfer from a funded account signed by another key.
    ForgedSignature,
    /// Adds a well-signed transaction from an account that cannot pay its fee.
    UnpayableTransaction,
    /// Stamps the block ten times the allowed drift ahead of its clock.
    FutureTimestamp,
    /// Stamps the block exactly the allowed drift ahead (valid: honest leaders after it must
    /// still make their views).
    TimestampAtDriftBound,
    /// Leaves out the seed its block must carry (valid only where the epoch has no group key).
    SeedDropped,
    /// Carries the seed of an earlier height: the group's signature, of another height.
    SeedReplayed,
    /// Carries 48 bytes of its own as the seed (where a seed is due and where none is).
    SeedForged,
}

impl Fault {
    /// Whether honest validators must refuse every block with this fault.
    fn refused(self) -> bool {
        !matches!(self, Fault::TimestampAtDriftBound)
    }
}

/// A validator's application that builds honestly, then applies its [`Fault`] to every block
/// it proposes (it verifies others' blocks honestly).
#[derive(Clone)]
struct Byzantine {
    inner: Application<Context>,
    fault: Fault,
    /// A funded account whose transfers it forges.
    victim: PublicKey,
    chain_id: logos_primitives::ChainId,
    /// Corrupted blocks proposed so far.
    proposed: Arc<AtomicUsize>,
    /// The last seed it saw in its own honest builds (for [`Fault::SeedReplayed`]).
    last_seed: Arc<std::sync::Mutex<Option<Seed>>>,
    /// Corrupted blocks proposed where a seed was due, and those carrying another height's.
    seeded: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Byzantine {
    fn corrupt(&self, honest: &Block, now_ms: u64) -> Block {
        let mut timestamp_ms = honest.timestamp_ms;
        let mut state_root = honest.state_root;
        let mut receipts_root = honest.receipts_root;
        let mut transactions = honest.transactions.clone();
        let mut seed = honest.seed;
        let forger = PrivateKey::from_seed(7_777);
        match self.fault {
            Fault::WrongStateRoot => state_root = Hash::from([0xab; 32]),
            Fault::WrongReceiptsRoot => receipts_root = Hash::from([0xcd; 32]),
            Fault::ForgedSignature => transactions.push(
                TransactionPayload {
                    chain_id: self.chain_id,
                    sender: self.victim.clone(),
                    nonce: 0,
                    fee: Amount(1_000),
                    call: Call::Balances(balances::Call::Transfer {
                        to: Address::from_public_key(&forger.public_key()),
                        amount: Amount(1_000_000),
                    }),
                }
                .sign(&forger),
            ),
            Fault::UnpayableTransaction => transactions.push(
                TransactionPayload {
                    chain_id: self.chain_id,
                    sender: forger.public_key(),
                    nonce: 0,
                    fee: Amount(1_000),
                    call: Call::Balances(balances::Call::Transfer {
                        to: RECIPIENT,
                        amount: Amount(1),
                    }),
                }
                .sign(&forger),
            ),
            Fault::FutureTimestamp => timestamp_ms = now_ms + 10 * TIMESTAMP_DRIFT_MAX_MS,
            Fault::TimestampAtDriftBound => timestamp_ms = now_ms + TIMESTAMP_DRIFT_MAX_MS,
            Fault::SeedDropped => seed = None,
            Fault::SeedReplayed => {
                let mut last = self.last_seed.lock().unwrap();
                if honest.seed.is_some() {
                    seed = *last;
                    *last = honest.seed;
                    if seed.is_some() {
                        self.seeded.1.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Fault::SeedForged => seed = Some(Seed([0x5a; 48])),
        }
        if honest.seed.is_some() {
            self.seeded.0.fetch_add(1, Ordering::Relaxed);
        }
        Block::new(
            honest.parent,
            honest.height,
            timestamp_ms,
            honest.proposer.clone(),
            state_root,
            receipts_root,
            seed,
            transactions,
        )
    }
}

impl commonware_consensus::Application<Context> for Byzantine {
    type SigningScheme = Scheme;
    type Context = RoundContext<Hash, PublicKey>;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        context: (Context, Self::Context),
        ancestry: impl Ancestry<Block>,
        input: (),
    ) -> Option<Digested<Block>> {
        // Read before building, which may wait: the stamp is then at most the drift ahead
        // of any later clock.
        let now_ms = now_ms(&context.0);
        let honest = self.inner.propose(context, ancestry, input).await?;
        let block = self.corrupt(honest.inner(), now_ms);
        self.proposed.fetch_add(1, Ordering::Relaxed);
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        context: (Context, Self::Context),
        ancestry: impl Ancestry<Block>,
    ) -> bool {
        self.inner.verify(context, ancestry).await
    }
}

/// Starts validator `index` as a [`Byzantine`] leader with `fault`; the counters give how
/// many corrupted blocks it proposed, and [`Byzantine::seeded`].
async fn start_byzantine(
    context: &Context,
    net: &Network_,
    index: usize,
    fault: Fault,
) -> (
    Node<Context>,
    Arc<AtomicUsize>,
    Arc<(AtomicUsize, AtomicUsize)>,
) {
    let victim = net.funded.public_key();
    let chain_id = net.genesis.chain_id();
    let proposed = Arc::new(AtomicUsize::new(0));
    let counter = proposed.clone();
    let seeded: Arc<(AtomicUsize, AtomicUsize)> = Arc::default();
    let seeded_counter = seeded.clone();
    let node = launch(context, net, index, move |inner| Byzantine {
        inner,
        fault,
        victim,
        chain_id,
        proposed: counter,
        last_seed: Arc::default(),
        seeded: seeded_counter,
    })
    .await;
    (node, proposed, seeded)
}

async fn connect(oracle: &Oracle<PublicKey, Context>, keys: &[PrivateKey], latency_ms: u64) {
    connect_with(oracle, keys, || link(latency_ms)).await;
}

async fn connect_with(
    oracle: &Oracle<PublicKey, Context>,
    keys: &[PrivateKey],
    link: impl Fn() -> Link,
) {
    for a in keys {
        for b in keys {
            if a.public_key() != b.public_key() {
                oracle
                    .add_link(a.public_key(), b.public_key(), link())
                    .await
                    .unwrap();
            }
        }
    }
}

/// A network of `n` validators of which the first `started` run, fully linked.
async fn start_network(
    context: &Context,
    n: u64,
    started: usize,
    latency_ms: u64,
) -> (Network_, Vec<Node<Context>>) {
    let net = network(context, n).await;
    let mut nodes = Vec::new();
    for index in 0..started {
        nodes.push(start_validator(context, &net, index).await);
    }
    connect(&net.oracle, &net.keys, latency_ms).await;
    (net, nodes)
}

async fn tip(node: &Node<Context>) -> Height {
    node.shared.tip().await.height
}

/// Waits until every node's finalized tip is at least `height`; panics after `bound`.
async fn wait_for_height(
    context: &Context,
    nodes: &[&Node<Context>],
    height: u64,
    bound: Duration,
) {
    let deadline = context.current() + bound;
    loop {
        let mut lowest = u64::MAX;
        for node in nodes {
            lowest = lowest.min(tip(node).await.get());
        }
        if lowest >= height {
            return;
        }
        assert!(
            context.current() < deadline,
            "liveness: height {height} not reached within {bound:?} (lowest tip {lowest})"
        );
        context.sleep(Duration::from_millis(50)).await;
    }
}

/// Safety: all nodes finalized the same block at every height up to the lowest tip, and each
/// node's state root is the one its tip block commits to.
async fn assert_safety(nodes: &[&Node<Context>]) {
    assert_safety_from(nodes, 1).await;
}

/// [`assert_safety`] for the heights from `from` (below it, pruning nodes dropped the blocks).
async fn assert_safety_from(nodes: &[&Node<Context>], from: u64) {
    let mut lowest = u64::MAX;
    for node in nodes {
        lowest = lowest.min(tip(node).await.get());
        let chain = node.shared.chain().await;
        assert_eq!(
            chain.db_root(),
            chain.tip().state_root,
            "state root diverged from the tip block"
        );
    }
    assert!(lowest > 0, "nothing finalized");
    for height in from..=lowest {
        let mut digest: Option<Hash> = None;
        for node in nodes {
            let block = node
                .marshal
                .get_block(Identifier::Height(Height::new(height)))
                .await
                .expect("finalized block stored");
            let block_digest = block.inner().digest();
            match digest {
                None => digest = Some(block_digest),
                Some(expected) => assert_eq!(
                    expected, block_digest,
                    "two different blocks finalized at height {height}"
                ),
            }
        }
    }
}

async fn submit_transfers(node: &Node<Context>, net: &Network_, count: u64) {
    resubmit_transfers(node, net, 0, count).await;
}

/// The funded account's transfer with `nonce` (10 units to [`RECIPIENT`]).
fn transfer_of(net: &Network_, nonce: u64) -> logos_types::Transaction {
    TransactionPayload {
        chain_id: net.genesis.chain_id(),
        sender: net.funded.public_key(),
        nonce,
        fee: Amount(1_000),
        call: Call::Balances(balances::Call::Transfer {
            to: RECIPIENT,
            amount: Amount(10),
        }),
    }
    .sign(&net.funded)
}

/// Submits the funded account's transfers of nonces `from..count` (10 units each).
async fn resubmit_transfers(node: &Node<Context>, net: &Network_, from: u64, count: u64) {
    for nonce in from..count {
        let transaction = transfer_of(net, nonce);
        node.shared
            .admit(transaction.clone())
            .await
            .expect("admitted");
        assert!(node.relay.relay(transaction));
    }
}

async fn recipient_balance(node: &Node<Context>) -> Amount {
    let (account, _) = node.shared.finalized_account(&RECIPIENT).await.unwrap();
    account.balance
}

fn simulate<F, Fut>(seed: u64, scenario: F)
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(Duration::from_secs(600)));
    deterministic::Runner::new(config).start(scenario);
}

fn all_online(n: u64, latency_ms: u64, seed: u64) {
    simulate(seed, move |context| async move {
        let (net, nodes) = start_network(&context, n, n as usize, latency_ms).await;
        let refs: Vec<&Node<Context>> = nodes.iter().collect();
        wait_for_height(&context, &refs, 3, Duration::from_secs(30)).await;
        submit_transfers(&nodes[0], &net, 20).await;
        wait_for_height(&context, &refs, 25, Duration::from_secs(60)).await;
        assert_safety(&refs).await;
        for node in &nodes {
            assert_eq!(
                recipient_balance(node).await,
                Amount(200),
                "every transfer applied on every validator"
            );
        }
    });
}

#[test]
fn four_validators_with_latency_finalize_and_agree() {
    over_seeds(1_000, |seed| all_online(4, 10, seed));
}

#[test]
fn ten_validators_with_latency_finalize_and_agree() {
    over_seeds(2_000, |seed| all_online(10, 20, seed));
}

#[test]
fn one_validator_offline_is_skipped() {
    over_seeds(3_000, one_validator_offline);
}

fn one_validator_offline(seed: u64) {
    simulate(seed, |context| async move {
        let (net, nodes) = start_network(&context, 4, 3, 10).await;
        let refs: Vec<&Node<Context>> = nodes.iter().collect();
        submit_transfers(&nodes[1], &net, 5).await;
        // Every fourth view has the offline leader; it must be skipped by timeout.
        wait_for_height(&context, &refs, 20, Duration::from_secs(120)).await;
        assert_safety(&refs).await;
        for node in &nodes {
            assert_eq!(recipient_balance(node).await, Amount(50));
        }
    });
}

#[test]
fn partition_halts_finality_and_heals() {
    over_seeds(4_000, partition_and_heal);
}

fn partition_and_heal(seed: u64) {
    simulate(seed, |context| async move {
        let (net, nodes) = start_network(&context, 4, 4, 10).await;
        let refs: Vec<&Node<Context>> = nodes.iter().collect();
        wait_for_height(&context, &refs, 10, Duration::from_secs(30)).await;

        // Split {0,1} from {2,3}: neither side has a quorum (3 of 4).
        for a in 0..2 {
            for b in 2..4 {
                net.oracle
                    .remove_link(net.keys[a].public_key(), net.keys[b].public_key())
                    .await
                    .unwrap();
                net.oracle
                    .remove_link(net.keys[b].public_key(), net.keys[a].public_key())
                    .await
                    .unwrap();
            }
        }
        context.sleep(Duration::from_secs(2)).await;
        let mut during = Vec::new();
        for node in &nodes {
            during.push(tip(node).await);
        }
        context.sleep(Duration::from_secs(10)).await;
        for (node, before) in nodes.iter().zip(&during) {
            assert_eq!(tip(node).await, *before, "no finality without a quorum");
        }
        let highest = during.iter().map(|height| height.get()).max().unwrap();

        // Heal: finalization must resume within a bound.
        for a in 0..2 {
            for b in 2..4 {
                net.oracle
                    .add_link(net.keys[a].public_key(), net.keys[b].public_key(), link(10))
                    .await
                    .unwrap();
                net.oracle
                    .add_link(net.keys[b].public_key(), net.keys[a].public_key(), link(10))
                    .await
                    .unwrap();
            }
        }
        wait_for_height(&context, &refs, highest + 10, Duration::from_secs(60)).await;
        assert_safety(&refs).await;
    });
}

#[test]
fn equivocating_validator_breaks_neither_safety_nor_liveness() {
    over_seeds(5_000, equivocating_validator);
}

fn equivocating_validator(seed: u64) {
    simulate(seed, |context| async move {
        let net = network(&context, 4).await;
        let mut nodes = Vec::new();
        for index in 0..3 {
            nodes.push(start_validator(&context, &net, index).await);
        }
        // Validator 3 is byzantine: as leader it sends different proposals to different peers.
        let byzantine = net.keys[3].clone();
        let validators: Vec<PublicKey> = net.keys.iter().map(|key| key.public_key()).collect();
        let scheme = Scheme::signer(
            &consensus_namespace(&net.genesis.chain_id()),
            participants(&validators),
            byzantine.clone(),
        )
        .unwrap();
        let networks = channels(&net.oracle, &byzantine.public_key()).await;
        let equivocator = mocks::equivocator::Equivocator::<_, _, _, Sha256>::new(
            context.child("equivocator"),
            mocks::equivocator::Config {
                scheme,
                elector: RoundRobin::<Sha256>::default(),
                epoch: Epoch::zero(),
                relay: Arc::new(mocks::relay::Relay::new()),
            },
        );
        let votes = subchannel(&context, networks.votes, 0).await;
        let certificates = subchannel(&context, networks.certificates, 0).await;
        equivocator.start(votes, certificates);
        connect(&net.oracle, &net.keys, 10).await;
        let refs: Vec<&Node<Context>> = nodes.iter().collect();
        submit_transfers(&nodes[2], &net, 5).await;
        wait_for_height(&context, &refs, 20, Duration::from_secs(120)).await;
        assert_safety(&refs).await;
        for node in &nodes {
            assert_eq!(recipient_balance(node).await, Amount(50));
        }
    });
}

/// A committee member that signs two conflicting notarize (and finalize) votes in every view it
/// sees: the honest validators' simplex attributes the fault, they report it on chain as
/// evidence, and the chain slashes its bond, unseats it from the next committee and
/// disqualifies it, while finality goes on.
#[test]
fn a_conflicting_voter_is_slashed_on_chain_and_leaves_the_next_committee() {
    over_seeds_n(5_500, 5, conflicting_voter);
}

/// A byzantine voter: for every notarize vote it receives, it signs the same proposal (which
/// honest validators accept) and then another one for the same view (which they can
/// attribute: commonware's own `Conflicter` signs the other one first, and a validator that
/// already knows the leader's proposal drops that vote without evidence).
async fn double_vote<S, R>(scheme: Scheme, (mut sender, mut receiver): (S, R))
where
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    use commonware_codec::{DecodeExt, Encode};
    use commonware_consensus::simplex::types::{Notarize, Proposal, Vote};
    let mut signed = std::collections::BTreeSet::new();
    while let Ok((_, message)) = receiver.recv().await {
        let Ok(Vote::Notarize(vote)) = Vote::<Scheme, Hash>::decode(message) else {
            continue;
        };
        if !signed.insert(vote.proposal.round) {
            continue;
        }

        let other = Proposal::new(
            vote.proposal.round,
            vote.proposal.parent,
            logos_primitives::hash(&[vote.proposal.payload.as_ref()]),
        );
        for proposal in [vote.proposal.clone(), other] {
            let notarize = Notarize::<Scheme, Hash>::sign(&scheme, proposal).unwrap();
            let _ = sender.send(
                commonware_p2p::Recipients::All,
                Vote::Notarize(notarize).encode(),
                true,
            );
        }
    }
}

/// The finalized value of map item `I` under `key` on `node`.
async fn finalized<I: logos_types::StorageMap>(
    node: &Node<Context>,
    key: &I::Key,
) -> Option<I::Value> {
    let chain = node.shared.chain().await;
    let tip = chain.tip().digest;
    let storage_key = I::key(key);
    let bytes = chain.read(&tip, &storage_key).await.unwrap()?;
    Some(I::decode_value(&storage_key, &bytes).unwrap())
}

fn conflicting_voter(seed: u64) {
    use logos_types::staking::{self, Committees, Disqualified, Epoch as StakingEpoch, Ledgers};
    simulate(seed, |context| async move {
        let mut net = network(&context, 5).await;
        // Every validator can pay fees (the reporters); the byzantine one bonds.
        for key in &net.keys {
            net.genesis.accounts.push(GenesisAccount {
                address: Address::from_public_key(&key.public_key()),
                balance: Amount(10_000_000_000),
            });
        }
        let byzantine = net.keys[4].clone();
        let offender = Address::from_public_key(&byzantine.public_key());
        let mut nodes = Vec::new();
        for index in 0..4 {
            nodes.push(start_validator(&context, &net, index).await);
        }
        let bond = TransactionPayload {
            chain_id: net.genesis.chain_id(),
            sender: byzantine.public_key(),
            nonce: 0,
            fee: Amount(1_000),
            call: Call::Staking(staking::Call::Bond {
                amount: Amount(1_000_000_000),
            }),
        }
        .sign(&byzantine);
        nodes[0].shared.admit(bond.clone()).await.expect("admitted");
        assert!(nodes[0].relay.relay(bond));
        let validators: Vec<PublicKey> = net.keys.iter().map(|key| key.public_key()).collect();
        let scheme = Scheme::signer(
            &consensus_namespace(&net.genesis.chain_id()),
            participants(&validators),
            byzantine.clone(),
        )
        .unwrap();
        let networks = channels(&net.oracle, &byzantine.public_key()).await;
        // The byzantine voter is close to everyone (1 ms), honest validators far from each
        // other (50 ms): its two votes reach them while the view is still open.
        for a in &net.keys {
            for b in &net.keys {
                if a.public_key() == b.public_key() {
                    continue;
                }
                let near = a.public_key() == byzantine.public_key()
                    || b.public_key() == byzantine.public_key();
                let latency = if near { 1 } else { 50 };
                net.oracle
                    .add_link(a.public_key(), b.public_key(), link(latency))
                    .await
                    .unwrap();
            }
        }
        let refs: Vec<&Node<Context>> = nodes.iter().collect();
        // Bonded first, so that the faults cost it stake.
        let deadline = context.current() + Duration::from_secs(60);
        while finalized::<Ledgers>(&nodes[0], &offender).await.is_none() {
            assert!(context.current() < deadline, "the bond was never finalized");
            context.sleep(Duration::from_millis(50)).await;
        }
        let votes = subchannel(&context, networks.votes, 0).await;
        context
            .child("double_voter")
            .spawn(move |_| double_vote(scheme, votes));
        let deadline = context.current() + Duration::from_secs(120);
        loop {
            let disqualified = finalized::<Disqualified>(&nodes[0], &offender).await;
            if disqualified.is_some() {
                break;
            }
            if context.current() >= deadline {
                let mut tips = Vec::new();
                for node in &nodes {
                    tips.push(tip(node).await.get());
                }
                panic!("the fault was never punished (tips {tips:?})");
            }
            context.sleep(Duration::from_millis(50)).await;
        }
        let start = tip(&nodes[0]).await.get();
        wait_for_height(&context, &refs, start + 10, Duration::from_secs(60)).await;
        assert_safety(&refs).await;
        for node in &nodes {
            let ledger = finalized::<Ledgers>(node, &offender).await.expect("ledger");
            assert!(ledger.active < Amount(1_000_000_000), "{ledger:?}");
            let next = finalized::<Committees>(node, &StakingEpoch(1))
                .await
                .expect("committee");
            assert_eq!(next.members.len(), 4);
            assert!(next
                .members
                .iter()
                .all(|member| member.validator != offender));
        }
    });
}

/// A validator cut off before an epoch change, while the others cross two changes (epochs of
/// 40 blocks), catches up once the links return although its peers have stopped the engines of
/// the epochs it missed: it fetches the finalized blocks (marshal's repair, hurried by the
/// orchestrator's requests for each boundary's finalization when later epochs' messages
/// arrive), enters each epoch in turn and votes again in the current one; all agree on every
/// block.
#[test]
fn a_validator_cut_off_across_epoch_changes_catches_up() {
    over_seeds_n(7_500, 5, |seed| {
        simulate(seed, |context| async move {
            let mut net = network(&context, 4).await;
            net.genesis.params.epoch_length_blocks = Some(40);
            let mut nodes = Vec::new();
            for index in 0..4 {
                nodes.push(start_validator(&context, &net, index).await);
            }
            connect(&net.oracle, &net.keys, 10).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            wait_for_height(&context, &refs, 12, Duration::from_secs(30)).await;
            let cut = net.keys[3].public_key();
            for other in &net.keys[..3] {
                for (a, b) in [
                    (cut.clone(), other.public_key()),
                    (other.public_key(), cut.clone()),
                ] {
                    net.oracle.remove_link(a, b).await.unwrap();
                }
            }
            wait_for_height(&context, &refs[..3], 45, Duration::from_secs(60)).await;
            assert!(
                tip(&nodes[3]).await.get() <= 20,
                "the cut-off validator was not cut off"
            );
            for other in &net.keys[..3] {
                for (a, b) in [
                    (cut.clone(), other.public_key()),
                    (other.public_key(), cut.clone()),
                ] {
                    net.oracle.add_link(a, b, link(10)).await.unwrap();
                }
            }
            wait_for_height(&context, &refs, 170, Duration::from_secs(120)).await;
            assert_safety(&refs).await;
            let state = logos_node::epochs::read_epoch_state(&nodes[3].shared)
                .await
                .unwrap();
            assert!(state.current.epoch.get() >= 4, "{:?}", state.current);
        });
    });
}

/// Each epoch's committee deals the next epoch's group key (module `beacon`) over the DKG
/// channel and on chain. Three of four validators run (the fourth never starts, so every
/// dealer reveals its share and closes its log at half the epoch); every epoch from 1 on gets
/// a key, with the running validators' logs, all four players and the absent one revealed, the
/// same on every node.
#[test]
fn each_epoch_gets_a_group_key_from_its_previous_committees_dkg() {
    use logos_types::{beacon::GroupKeys, staking::Epoch as StakingEpoch};
    over_seeds_n(8_100, 2, |seed| {
        simulate(seed, |context| async move {
            let net = keyed_network(&context, 4).await;
            let mut nodes = Vec::new();
            for index in 0..3 {
                nodes.push(start_validator(&context, &net, index).await);
            }
            connect(&net.oracle, &net.keys, 10).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            wait_for_height(&context, &refs, 20 * 3 + 2, Duration::from_secs(120)).await;
            assert_safety(&refs).await;
            let absent = net.keys[3].public_key();
            for epoch in 1..=3u64 {
                let key = finalized::<GroupKeys>(&nodes[0], &StakingEpoch(epoch))
                    .await
                    .unwrap_or_else(|| panic!("no group key for epoch {epoch}"));
                let output = logos_beacon::decode_output(&key).unwrap();
                assert_eq!(output.dealers().len(), 3, "epoch {epoch}");
                assert_eq!(output.players().len(), 4, "epoch {epoch}");
                assert!(
                    output.revealed().position(&absent).is_some(),
                    "epoch {epoch}"
                );
                for node in &refs[1..] {
                    let theirs = finalized::<GroupKeys>(node, &StakingEpoch(epoch)).await;
                    assert_eq!(theirs.as_ref(), Some(&key), "epoch {epoch}");
                }
            }
            // Each running player derived its share of epochs 1 to 3 and found the chain's
            // key from it.
            let metrics = context.encode();
            let derived: u64 = metrics
                .lines()
                .filter(|line| line.contains("dkg_shares_derived_total"))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            assert!(derived >= 9, "{derived} shares derived");
            assert_seeded(&nodes[0], &net).await;
            let recovered = metric_total(&metrics, "seeds_recovered_total");
            assert!(recovered > 0, "{recovered} seeds recovered");
        });
    });
}

/// A network of `n` validators with 20-block epochs whose consensus-key accounts can pay the
/// fees of their DKG logs: every epoch from 1 on gets a group key, and its blocks seeds.
async fn keyed_network(context: &Context, n: u64) -> Network_ {
    let mut net = network(context, n).await;
    net.genesis.params.epoch_length_blocks = Some(20);
    for key in &net.keys {
        net.genesis.accounts.push(GenesisAccount {
            address: Address::from_public_key(&key.public_key()),
            balance: Amount(100_000_000_000),
        });
    }
    net
}

/// Every validator crashes at once while the epochs have group keys (20-block epochs; by seed,
/// during the DKG of the next epoch or around its boundary), then restarts from its storage:
/// the shares and dealings each kept (encrypted) let the committee sign the seeds again, the
/// next epochs get keys, and every finalized block carries the seed the chain's rule asks for.
#[test]
fn every_validator_crashes_in_a_keyed_epoch_and_the_seeds_resume() {
    over_seeds_n(18_000, 2, |seed| {
        let config = deterministic::Config::new()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(600)));
        let (before, checkpoint) =
            deterministic::Runner::new(config).start_and_recover(move |context| async move {
                let net = keyed_network(&context, 4).await;
                let nodes = start_all(&context, &net).await;
                let refs: Vec<&Node<Context>> = nodes.iter().collect();
                let crash_at = 25 + (seed * 7) % 20;
                wait_for_height(&context, &refs, crash_at, Duration::from_secs(120)).await;
                context.sleep(Duration::from_millis(seed * 37 % 400)).await;
                let mut highest = 0;
                for node in &nodes {
                    highest = highest.max(tip(node).await.get());
                }
                highest
            });
        deterministic::Runner::from(checkpoint).start(move |context| async move {
            let net = keyed_network(&context, 4).await;
            let nodes = start_all(&context, &net).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            // Two more boundaries: keys dealt before and after the crash both sign.
            wait_for_height(&context, &refs, before + 45, Duration::from_secs(180)).await;
            assert_safety(&refs).await;
            for node in &nodes {
                assert_seeded(node, &net).await;
            }
        });
    });
}

/// Starts every validator of `net` and connects them (10 ms links).
async fn start_all(context: &Context, net: &Network_) -> Vec<Node<Context>> {
    let mut nodes = Vec::new();
    for index in 0..net.keys.len() {
        nodes.push(start_validator(context, net, index).await);
    }
    connect(&net.oracle, &net.keys, 10).await;
    nodes
}

/// The sum of the samples of metric `name` in an encoded registry.
fn metric_total(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.contains(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Every finalized block of `node` (20-block epochs) carries the seed the chain's rule asks
/// for: none while the parent's state has no group key for the block's epoch (epoch 0), from
/// height 21 on the group's signature of its parent's height under its epoch's key, with the
/// randomness its hash, not the parent's digest; the seeds all differ.
async fn assert_seeded(node: &Node<Context>, net: &Network_) {
    use logos_types::{beacon::GroupKeys, staking::Epoch as StakingEpoch};
    let chain_id = net.genesis.chain_id();
    let mut seen = std::collections::BTreeSet::new();
    for height in 1..=tip(node).await.get() {
        let block = node
            .marshal
            .get_block(Identifier::Height(Height::new(height)))
            .await
            .expect("finalized block stored");
        let block = block.inner();
        // Epoch 0 spans heights 1 to 20; epoch `e` from `20e + 1` to `20e + 20`.
        if height <= 20 {
            assert_eq!(block.seed, None, "height {height}");
            assert_eq!(block.randomness(), block.parent, "height {height}");
            continue;
        }
        let epoch = (height - 1) / 20;
        let key = finalized::<GroupKeys>(node, &StakingEpoch(epoch))
            .await
            .unwrap_or_else(|| panic!("no group key for epoch {epoch}"));
        let output = logos_beacon::decode_output(&key).unwrap();
        let seed = block.seed.unwrap_or_else(|| panic!("no seed at {height}"));
        let randomness = logos_beacon::verify_seed(&output, &chain_id, height - 1, &seed.0)
            .unwrap_or_else(|| panic!("seed at {height} does not verify"));
        assert_eq!(block.randomness(), randomness, "height {height}");
        assert_ne!(block.randomness(), block.parent, "height {height}");
        assert!(seen.insert(seed.0), "seed repeated at {height}");
    }
}

/// A byzantine leader (one of four) that drops, replays or forges the seed its blocks must
/// carry: no such block is finalized once the epoch has a group key (heights from 21 on; a
/// forged seed nowhere, epoch 0 included, where none is due), and the chain keeps finalizing
/// with seeds through three keyed epochs. The byzantine validator is checked to have led views
/// where a seed was due (and, replaying, to have carried another height's).
fn byzantine_seed(fault: Fault, seed: u64) {
    simulate(seed, move |context| async move {
        let net = keyed_network(&context, 4).await;
        let mut honest = Vec::new();
        for index in 0..3 {
            honest.push(start_validator(&context, &net, index).await);
        }
        let (_byzantine, proposed, seeded) = start_byzantine(&context, &net, 3, fault).await;
        connect(&net.oracle, &net.keys, 10).await;
        let refs: Vec<&Node<Context>> = honest.iter().collect();
        wait_for_height(&context, &refs, 20 * 4 + 2, Duration::from_secs(240)).await;
        assert_safety(&refs).await;
        assert!(
            proposed.load(Ordering::Relaxed) > 0,
            "the byzantine validator led a view"
        );
        assert!(
            seeded.0.load(Ordering::Relaxed) > 0,
            "the byzantine validator never led a view where a seed was due"
        );
        if fault == Fault::SeedReplayed {
            assert!(seeded.1.load(Ordering::Relaxed) > 0, "no seed was replayed");
        }
        if fault == Fault::SeedForged {
            let unkeyed = proposed.load(Ordering::Relaxed) - seeded.0.load(Ordering::Relaxed);
            assert!(unkeyed > 0, "never led a view where no seed was due");
        }
        // A forged seed is refused even where none is due.
        let refused_from = if fault == Fault::SeedForged { 1 } else { 21 };
        let byzantine_key = net.keys[3].public_key();
        for node in &honest {
            for height in refused_from..=tip(node).await.get() {
                let block = node
                    .marshal
                    .get_block(Identifier::Height(Height::new(height)))
                    .await
                    .expect("finalized block stored");
                assert_ne!(
                    block.inner().proposer,
                    byzantine_key,
                    "a block with {fault:?} was finalized at {height}"
                );
            }
            assert_seeded(node, &net).await;
        }
    });
}

#[test]
fn byzantine_leader_without_the_seed_is_refused() {
    over_seeds_n(16_000, 2, |seed| byzantine_seed(Fault::SeedDropped, seed));
}

#[test]
fn byzantine_leader_with_a_replayed_seed_is_refused() {
    over_seeds_n(17_000, 2, |seed| byzantine_seed(Fault::SeedReplayed, seed));
}

#[test]
fn byzantine_leader_with_a_forged_seed_is_refused() {
    over_seeds_n(19_000, 2, |seed| byzantine_seed(Fault::SeedForged, seed));
}

/// Blocks per epoch in [`elected_committees`].
const EPOCH_BLOCKS: u64 = 40;

/// Ten staked validators elect committees of seven (epochs of [`EPOCH_BLOCKS`] blocks) while
/// stake moves every epoch: each validator bonds a different amount, a nominator backs the
/// three weakest, then three others, and the strongest leaves. Each elected committee, and
/// only it, proposes and finalizes its epoch's blocks (the nodes out of it follow as full
/// nodes); finality never pauses longer than one leader timeout at an epoch change; all ten
/// agree on every block and state root; each epoch from 1 on has a group key dealt by the
/// committee before it to its own committee.
#[test]
fn ten_staked_validators_elect_committees_of_seven_over_five_epochs() {
    over_seeds_n(7_000, 3, elected_committees);
}

/// Signs and submits `call` from `key` through `node`, with the nonce after the account's
/// finalized and pooled ones (a validator's own node may pool records from its account).
async fn submit_call(node: &Node<Context>, net: &Network_, key: &PrivateKey, call: Call) {
    let sender = Address::from_public_key(&key.public_key());
    let (finalized, _) = node.shared.finalized_account(&sender).await.unwrap();
    let nonce = node
        .shared
        .with_mempool(|pool| pool.next_nonce(&sender, finalized.nonce));
    let transaction = TransactionPayload {
        chain_id: net.genesis.chain_id(),
        sender: key.public_key(),
        nonce,
        fee: Amount(1_000),
        call,
    }
    .sign(key);
    node.shared
        .admit(transaction.clone())
        .await
        .expect("admitted");
    assert!(node.relay.relay(transaction));
}

/// Waits until `node`'s finalized tip is in `epoch`.
async fn wait_for_epoch(context: &Context, node: &Node<Context>, epoch: u64) {
    let deadline = context.current() + Duration::from_secs(120);
    loop {
        let state = logos_node::epochs::read_epoch_state(&node.shared)
            .await
            .unwrap();
        if state.current.epoch.get() >= epoch {
            return;
        }
        assert!(context.current() < deadline, "epoch {epoch} never reached");
        context.sleep(Duration::from_millis(20)).await;
    }
}

fn elected_committees(seed: u64) {
    use logos_types::staking::{self, Committees, Epoch as StakingEpoch};
    simulate(seed, |context| async move {
        let mut net = network(&context, 10).await;
        net.genesis.params.epoch_length_blocks = Some(EPOCH_BLOCKS);
        net.genesis.params.committee_size = Some(7);
        net.genesis.params.elections = true;
        for key in &net.keys {
            net.genesis.accounts.push(GenesisAccount {
                address: Address::from_public_key(&key.public_key()),
                balance: Amount(100_000_000_000),
            });
        }
        let mut nodes = Vec::new();
        for index in 0..10 {
            nodes.push(start_validator(&context, &net, index).await);
        }
        connect(&net.oracle, &net.keys, 10).await;
        // When each height reached validator 0 (finalized and executed).
        let reached = Arc::new(std::sync::Mutex::new(Vec::<(u64, Duration)>::new()));
        let mut finalized_blocks = nodes[0].shared.subscribe();
        context.child("recorder").spawn({
            let reached = reached.clone();
            move |context| async move {
                let start = context.current();
                while let Ok(finalized) = finalized_blocks.recv().await {
                    let at = context.current().duration_since(start).unwrap();
                    reached
                        .lock()
                        .unwrap()
                        .push((finalized.block.height.get(), at));
                }
            }
        });
        // Epoch 0: validator i bonds i + 1 tokens and declares itself a candidate.
        let chain_id = net.genesis.chain_id();
        for (index, key) in net.keys.iter().enumerate() {
            let amount = Amount(1_000_000_000 * (index as u128 + 1));
            // Through the validator's own node, whose pool holds the DKG logs it submits from
            // the same account: the next nonce counts them.
            submit_call(
                &nodes[index],
                &net,
                key,
                Call::Staking(staking::Call::Bond { amount }),
            )
            .await;
            let account = Address::from_public_key(&key.public_key());
            let p2p_address = logos_types::peers::P2pAddress::from(
                format!("127.0.0.1:{}", 10_000 + index)
                    .parse::<std::net::SocketAddr>()
                    .unwrap(),
            );
            let (consensus_key, signature) =
                staking::sign_intent(key, &chain_id, &account, &p2p_address);
            let validate = staking::Call::Validate {
                consensus_key,
                p2p_address,
                commission_permille: 50,
                signature,
                evict: None,
            };
            submit_call(&nodes[index], &net, key, Call::Staking(validate)).await;
        }
        let accounts: Vec<Address> = net
            .keys
            .iter()
            .map(|key| Address::from_public_key(&key.public_key()))
            .collect();
        // Epoch 1: a nominator backs the three weakest (elected for epoch 3).
        wait_for_epoch(&context, &nodes[0], 1).await;
        let nominator = net.funded.clone();
        let stake = Amount(30_000_000_000);
        submit_call(
            &nodes[0],
            &net,
            &nominator,
            Call::Staking(staking::Call::Bond { amount: stake }),
        )
        .await;
        let nominate = |targets: &[usize]| {
            Call::Staking(staking::Call::Nominate {
                targets: targets
                    .iter()
                    .map(|i| accounts[*i])
                    .collect::<Vec<_>>()
                    .try_into()
                    .unwrap(),
                evict: None,
            })
        };
        submit_call(&nodes[0], &net, &nominator, nominate(&[0, 1, 2])).await;
        // Epoch 2: it moves to three middle candidates (elected for epoch 4).
        wait_for_epoch(&context, &nodes[0], 2).await;
        submit_call(&nodes[0], &net, &nominator, nominate(&[3, 4, 5])).await;
        // Epoch 3: the strongest candidate leaves (out of the committee of epoch 5).
        wait_for_epoch(&context, &nodes[0], 3).await;
        submit_call(
            &nodes[9],
            &net,
            &net.keys[9],
            Call::Staking(staking::Call::Chill),
        )
        .await;
        let end = EPOCH_BLOCKS * 6 + 5;
        let refs: Vec<&Node<Context>> = nodes.iter().collect();
        wait_for_height(&context, &refs, end, Duration::from_secs(300)).await;
        assert_safety(&refs).await;

        // The committees as elected.
        let mut committees = Vec::new();
        for epoch in 0..=6 {
            let committee = finalized::<Committees>(&nodes[0], &StakingEpoch(epoch))
                .await
                .expect("committee");
            let members: std::collections::BTreeSet<usize> = committee
                .members
                .iter()
                .map(|member| {
                    accounts
                        .iter()
                        .position(|a| *a == member.validator)
                        .unwrap()
                })
                .collect();
            committees.push(members);
        }
        eprintln!("committees by epoch: {committees:?}");
        let all: std::collections::BTreeSet<usize> = (0..10).collect();
        assert_eq!(
            committees[0], all,
            "proof of authority until the first election"
        );
        assert_eq!(committees[1], all);
        assert_eq!(committees[2], (3..10).collect(), "the seven largest bonds");
        assert!(
            committees[3].is_superset(&[0, 1, 2].into()),
            "{:?}",
            committees[3]
        );
        assert_eq!(committees[3].len(), 7);
        assert!(
            committees[4].is_disjoint(&[0, 1, 2].into()),
            "{:?}",
            committees[4]
        );
        assert!(!committees[5].contains(&9), "{:?}", committees[5]);
        // Each epoch's group key was dealt by the committee before it to its own committee.
        for epoch in 1..=5u64 {
            let key = finalized::<logos_types::beacon::GroupKeys>(&nodes[0], &StakingEpoch(epoch))
                .await
                .unwrap_or_else(|| panic!("no group key for epoch {epoch}"));
            let output = logos_beacon::decode_output(&key).unwrap();
            let players: std::collections::BTreeSet<usize> = output
                .players()
                .iter()
                .map(|player| {
                    net.keys
                        .iter()
                        .position(|key| key.public_key() == *player)
                        .unwrap()
                })
                .collect();
            assert_eq!(players, committees[epoch as usize], "epoch {epoch}");
        }
        // Each epoch's blocks are proposed by its committee only, and every member of an
        // elected committee proposed (it ran the epoch's engine).
        for epoch in 0..6u64 {
            let (first, last) = (epoch * EPOCH_BLOCKS + 1, (epoch + 1) * EPOCH_BLOCKS);
            let mut proposers = std::collections::BTreeSet::new();
            for height in first..=last {
                let block = nodes[0]
                    .marshal
                    .get_block(Identifier::Height(Height::new(height)))
                    .await
                    .expect("finalized block");
                let proposer = net
                    .keys
                    .iter()
                    .position(|key| key.public_key() == block.inner().proposer)
                    .unwrap();
                proposers.insert(proposer);
            }
            let committee = &committees[epoch as usize];
            assert!(
                proposers.is_subset(committee),
                "epoch {epoch}: {proposers:?} vs {committee:?}"
            );
            assert!(
                proposers.len() >= committee.len() - 2,
                "epoch {epoch}: {proposers:?}"
            );
        }
        // Finality across each epoch change: the first block of the new epoch reached
        // validator 0 within one leader timeout of the old epoch's last block.
        let reached = reached.lock().unwrap().clone();
        let at = |height: u64| {
            reached
                .iter()
                .find(|(h, _)| *h == height)
                .map(|(_, at)| *at)
        };
        let leader_timeout = Duration::from_millis(
            engine::Config::new(net.keys[0].clone(), net.genesis.clone(), String::new())
                .leader_timeout_ms,
        );
        for epoch in 0..6u64 {
            let last = (epoch + 1) * EPOCH_BLOCKS;
            let gap = at(last + 1).unwrap() - at(last).unwrap();
            eprintln!("epoch {epoch} -> {}: finality gap {gap:?}", epoch + 1);
            assert!(
                gap <= leader_timeout,
                "epoch change {epoch}: finality paused {gap:?}"
            );
        }
    });
}

/// Transactions that passed admission but cannot pay when their block is built (an admission
/// that raced a block, a cost the pool could not see) are left out and evicted by the leader:
/// twenty such senders in every validator's pool neither halt the chain nor stay pooled.
#[test]
fn unpayable_pooled_transactions_are_evicted_and_never_halt_the_chain() {
    over_seeds(6_000, |seed| {
        simulate(seed, |context| async move {
            let (net, nodes) = start_network(&context, 4, 4, 10).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            wait_for_height(&context, &refs, 3, Duration::from_secs(30)).await;
            // The test double of a raced admission: the pool is told each (unfunded) sender
            // holds plenty.
            let claimed = logos_mempool::Admission {
                chain_id: nodes[0].shared.chain_id(),
                min_fee: Amount(1_000),
                account: balances::AccountInfo {
                    nonce: 0,
                    balance: Amount(1_000_000),
                    reserved: Amount::ZERO,
                },
                signature_verified: false,
            };
            for seed in 0..20 {
                let key = PrivateKey::from_seed(5_000 + seed);
                let transaction = TransactionPayload {
                    chain_id: nodes[0].shared.chain_id(),
                    sender: key.public_key(),
                    nonce: 0,
                    fee: Amount(5_000),
                    call: Call::Balances(balances::Call::Transfer {
                        to: RECIPIENT,
                        amount: Amount(1),
                    }),
                }
                .sign(&key);
                for node in &nodes {
                    node.shared
                        .with_mempool(|pool| pool.insert(transaction.clone(), &claimed))
                        .expect("pooled past admission");
                }
            }
            submit_transfers(&nodes[2], &net, 5).await;
            let height = tip(&nodes[0]).await.get();
            wait_for_height(&context, &refs, height + 20, Duration::from_secs(60)).await;
            assert_safety(&refs).await;
            for node in &nodes {
                assert_eq!(
                    recipient_balance(node).await,
                    Amount(50),
                    "honest transfers final"
                );
                assert_eq!(node.shared.with_mempool(|pool| pool.len()), 0, "evicted");
            }
        });
    });
}

/// Every link drops one message in ten: finality slows but never stops, and every honest
/// transfer is applied on every validator.
#[test]
fn ten_percent_packet_loss_slows_but_never_stops_finality() {
    over_seeds(7_000, |seed| {
        simulate(seed, |context| async move {
            let net = network(&context, 4).await;
            let mut nodes = Vec::new();
            for index in 0..4 {
                nodes.push(start_validator(&context, &net, index).await);
            }
            connect_with(&net.oracle, &net.keys, || lossy_link(10)).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            wait_for_height(&context, &refs, 3, Duration::from_secs(60)).await;
            submit_transfers(&nodes[0], &net, 5).await;
            let height = tip(&nodes[0]).await.get();
            wait_for_height(&context, &refs, height + 20, Duration::from_secs(120)).await;
            assert_safety(&refs).await;
            for node in &nodes {
                assert_eq!(recipient_balance(node).await, Amount(50));
            }
        });
    });
}

/// How many finalized blocks up to `node`'s tip `proposer` proposed.
async fn finalized_by(node: &Node<Context>, proposer: &PublicKey) -> usize {
    let mut count = 0;
    for height in 1..=tip(node).await.get() {
        let block = node
            .marshal
            .get_block(Identifier::Height(Height::new(height)))
            .await
            .expect("finalized block stored");
        if &block.inner().proposer == proposer {
            count += 1;
        }
    }
    count
}

/// Three honest validators and one that corrupts every block it proposes with `fault`: honest
/// validators refuse every corrupted block (none is finalized), finalize without it within the
/// bound and apply every honest transfer; a leader stamping at the drift bound is accepted and
/// slows nobody down.
fn byzantine_leader(fault: Fault, seed: u64) {
    simulate(seed, move |context| async move {
        let net = network(&context, 4).await;
        let mut honest = Vec::new();
        for index in 0..3 {
            honest.push(start_validator(&context, &net, index).await);
        }
        let (_byzantine, proposed, _) = start_byzantine(&context, &net, 3, fault).await;
        connect(&net.oracle, &net.keys, 10).await;
        let refs: Vec<&Node<Context>> = honest.iter().collect();
        submit_transfers(&honest[0], &net, 5).await;
        let bound = if fault.refused() {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(10)
        };
        wait_for_height(&context, &refs, 20, bound).await;
        assert_safety(&refs).await;
        assert!(
            proposed.load(Ordering::Relaxed) > 0,
            "the byzantine validator led a view"
        );
        let byzantine_key = net.keys[3].public_key();
        for node in &honest {
            let finalized = finalized_by(node, &byzantine_key).await;
            if fault.refused() {
                assert_eq!(finalized, 0, "a block with {fault:?} was finalized");
            } else {
                assert!(
                    finalized > 0,
                    "the byzantine leader's valid blocks are finalized"
                );
            }
            assert_eq!(recipient_balance(node).await, Amount(50));
            let forger = Address::from_public_key(&PrivateKey::from_seed(7_777).public_key());
            let (account, _) = node.shared.finalized_account(&forger).await.unwrap();
            assert_eq!(account.balance, Amount::ZERO, "nothing forged was paid");
        }
    });
}

#[test]
fn byzantine_leader_with_a_wrong_state_root_is_refused() {
    over_seeds(8_000, |seed| byzantine_leader(Fault::WrongStateRoot, seed));
}

#[test]
fn byzantine_leader_with_a_wrong_receipts_root_is_refused() {
    over_seeds(15_000, |seed| {
        byzantine_leader(Fault::WrongReceiptsRoot, seed)
    });
}

#[test]
fn byzantine_leader_with_a_forged_signature_is_refused() {
    over_seeds(9_000, |seed| byzantine_leader(Fault::ForgedSignature, seed));
}

#[test]
fn byzantine_leader_with_an_unpayable_transaction_is_refused() {
    over_seeds(10_000, |seed| {
        byzantine_leader(Fault::UnpayableTransaction, seed)
    });
}

#[test]
fn byzantine_leader_with_a_future_timestamp_is_refused() {
    over_seeds(11_000, |seed| {
        byzantine_leader(Fault::FutureTimestamp, seed)
    });
}

#[test]
fn byzantine_leader_at_the_drift_bound_stalls_no_view() {
    over_seeds(12_000, |seed| {
        byzantine_leader(Fault::TimestampAtDriftBound, seed)
    });
}

/// Every validator crashes at once at a seed-dependent moment (the deterministic runtime drops
/// every task and resolves unsynced writes as a crash would), then restarts from what its
/// storage kept: each resumes from a consistent tip, they agree, finality resumes, and the
/// client resubmitting from the finalized nonce gets every transfer applied exactly once.
#[test]
fn every_validator_crashes_and_restarts_from_its_storage() {
    over_seeds(13_000, |seed| {
        let config = deterministic::Config::new()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(600)));
        let (before, checkpoint) =
            deterministic::Runner::new(config).start_and_recover(move |context| async move {
                let (net, nodes) = start_network(&context, 4, 4, 10).await;
                let refs: Vec<&Node<Context>> = nodes.iter().collect();
                wait_for_height(&context, &refs, 3, Duration::from_secs(30)).await;
                submit_transfers(&nodes[0], &net, 10).await;
                context.sleep(Duration::from_millis(seed * 37 % 400)).await;
                let mut tips = Vec::new();
                for node in &nodes {
                    tips.push(tip(node).await.get());
                }
                tips
            });
        deterministic::Runner::from(checkpoint).start(move |context| async move {
            let (net, nodes) = start_network(&context, 4, 4, 10).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            for node in &nodes {
                // Every finalized block was committed before it was acknowledged.
                assert!(
                    tip(node).await.get() >= 3,
                    "restarted from storage, not genesis"
                );
            }
            let highest = before.iter().copied().max().unwrap();
            wait_for_height(&context, &refs, highest + 10, Duration::from_secs(60)).await;
            let (account, _) = nodes[0]
                .shared
                .finalized_account(&Address::from_public_key(&net.funded.public_key()))
                .await
                .unwrap();
            resubmit_transfers(&nodes[0], &net, account.nonce, 10).await;
            let height = tip(&nodes[0]).await.get();
            wait_for_height(&context, &refs, height + 10, Duration::from_secs(60)).await;
            assert_safety(&refs).await;
            for node in &nodes {
                assert_eq!(
                    recipient_balance(node).await,
                    Amount(100),
                    "every transfer applied once"
                );
                // Every transfer's receipt survived the crash (or was written on replay).
                let receipts = node.shared.receipts().await;
                for nonce in 0..10 {
                    let hash = transfer_of(&net, nonce).hash();
                    let located = receipts.locate(&hash).await.unwrap().expect("receipt kept");
                    assert!(located.receipts.len() > located.index as usize);
                }
            }
        });
    });
}

/// Validators with the smallest retention window run far past it: each keeps the recent
/// blocks (and serves the tip's state), drops the blocks of whole archive sections behind the
/// window and prunes its state's operation log, and all keep agreeing (2,600 blocks, so
/// several seeds rather than a hundred; small sections so pruning starts early).
#[test]
fn pruning_validators_keep_a_bounded_window_and_agree() {
    over_seeds_n(14_000, 3, |seed| {
        simulate(seed, |context| async move {
            let mut net = network(&context, 4).await;
            net.configure = |config| {
                config.retention_blocks = Some(engine::RETENTION_BLOCKS_MIN);
                config.archive_items_per_section = 512;
                config.state_log_items_per_section = 1_024;
            };
            let mut nodes = Vec::new();
            for index in 0..4 {
                nodes.push(start_validator(&context, &net, index).await);
            }
            connect(&net.oracle, &net.keys, 5).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            submit_transfers(&nodes[0], &net, 5).await;
            // Heights below 1,024 go once a prune point (every 256) passes 1,024 + 1,024.
            wait_for_height(&context, &refs, 2_600, Duration::from_secs(600)).await;
            let window_start = tip(&nodes[0]).await.get() - engine::RETENTION_BLOCKS_MIN;
            for node in &nodes {
                for height in [1, 100, 1_000] {
                    assert!(
                        node.marshal
                            .get_block(Identifier::Height(Height::new(height)))
                            .await
                            .is_none(),
                        "block {height} pruned"
                    );
                }
                let chain = node.shared.chain().await;
                assert!(chain.oldest_retained_operation() > 0, "state log pruned");
                // State sync from a pruning node: the pruned operations are unavailable, the
                // ones from the sync boundary on are served.
                let target = statesync::serve_target(&chain).await.expect("target");
                let size = target.range_end;
                let pruned = statesync::serve_operations(&chain, (size, 0, 1), false).await;
                assert!(
                    matches!(pruned, Err(StateSyncError::Pruned(_))),
                    "operation 0 served after pruning"
                );
                let start = target.range_start;
                assert!(start >= chain.oldest_retained_operation());
                let served = statesync::serve_operations(&chain, (size, start, 64), false).await;
                assert!(served.is_ok(), "the boundary refused: {:?}", served.err());
                drop(chain);
                // The early transfers' receipts went with their blocks.
                let receipts = node.shared.receipts().await;
                let early = receipts.locate(&transfer_of(&net, 0).hash()).await.unwrap();
                assert!(early.is_none(), "receipt pruned with its block");
                assert!(receipts.block(1).await.unwrap().is_none());
                let recent = tip(node).await.get() - 10;
                assert!(
                    receipts.block(recent).await.unwrap().is_some(),
                    "recent receipts kept"
                );
                drop(receipts);
                assert_eq!(recipient_balance(node).await, Amount(50));
            }
            assert_safety_from(&refs, window_start).await;
        });
    });
}

/// A retention window below the minimum is refused at start (peers behind could not catch up,
/// simplex keeps more views than that).
#[test]
fn a_retention_below_the_minimum_is_refused() {
    simulate(16_000, |context| async move {
        let net = network(&context, 1).await;
        let key = net.keys[0].clone();
        let networks = channels(&net.oracle, &key.public_key()).await;
        let mut config = engine::Config::new(key.clone(), net.genesis.clone(), "short".into());
        config.retention_blocks = Some(engine::RETENTION_BLOCKS_MIN - 1);
        let refused = engine::start(
            context.child("short"),
            config,
            networks,
            net.oracle.manager(),
            net.oracle.control(key.public_key()),
        )
        .await;
        assert!(matches!(
            refused,
            Err(engine::EngineError::RetentionTooShort(blocks)) if blocks == engine::RETENTION_BLOCKS_MIN - 1
        ));
    });
}

/// Starts a full node with `key` (a secondary peer of the network, see
/// `track_full_node`), linked to every validator.
async fn start_full_node(context: &Context, net: &Network_, key: &PrivateKey) -> Node<Context> {
    start_full_node_from(context, net, key, None).await
}

/// [`start_full_node`] from a state-synced `floor` (see `logos_node::statesync`).
async fn start_full_node_from(
    context: &Context,
    net: &Network_,
    key: &PrivateKey,
    floor: Option<Floor>,
) -> Node<Context> {
    let networks = channels(&net.oracle, &key.public_key()).await;
    let mut config = engine::Config::new(key.clone(), net.genesis.clone(), "full-node".into());
    (net.configure)(&mut config);
    config.floor = floor;
    let node = full::start_full(
        context.child("full_node"),
        config,
        networks,
        net.oracle.manager(),
        net.oracle.control(key.public_key()),
    )
    .await
    .expect("full node starts");
    for validator in &net.keys {
        for (a, b) in [
            (key.public_key(), validator.public_key()),
            (validator.public_key(), key.public_key()),
        ] {
            net.oracle.add_link(a, b, link(5)).await.unwrap();
        }
    }
    node
}

/// Tracks the validators as primary peers and `full_node` as a secondary one (what a
/// validator's `full_nodes` configuration does).
async fn track_full_node(net: &Network_, full_node: &PrivateKey) {
    let primary = participants(&net.keys.iter().map(|k| k.public_key()).collect::<Vec<_>>());
    let secondary = participants(&[full_node.public_key()]);
    let mut manager = net.oracle.manager();
    let _ = commonware_p2p::Manager::track(
        &mut manager,
        1,
        commonware_p2p::TrackedPeers::new(primary, secondary),
    );
}

/// Four validators (5 ms blocks) that track the full node of key seed 2,000 as a secondary
/// peer, connected, with 10 transfers submitted: where the full-node tests start.
async fn validators_with_a_full_node(
    context: &Context,
) -> (Network_, PrivateKey, Vec<Node<Context>>) {
    let mut net = network(context, 4).await;
    net.configure = |config| config.block_time_ms = 5;
    let full_key = PrivateKey::from_seed(2_000);
    track_full_node(&net, &full_key).await;
    let mut nodes = Vec::new();
    for index in 0..4 {
        nodes.push(start_validator(context, &net, index).await);
    }
    connect(&net.oracle, &net.keys, 5).await;
    submit_transfers(&nodes[0], &net, 10).await;
    (net, full_key, nodes)
}

/// The must-show of full nodes: 10,000 blocks (with transfers early on) are finalized before a
/// full node starts; it catches up over p2p (finalizations from the validators' broadcasts,
/// every missing block by backfill), executes every block, agrees with the validators on every
/// block and state root, answers an account read (`logos_getAccount`'s source) like them, and
/// relays a transaction it is given to the validators, which finalize it.
#[test]
fn a_full_node_started_after_ten_thousand_blocks_catches_up_over_p2p() {
    over_seeds_n(17_000, 1, |seed| {
        let config = deterministic::Config::new()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(3_600)));
        deterministic::Runner::new(config).start(|context| async move {
            let (net, full_key, nodes) = validators_with_a_full_node(&context).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            wait_for_height(&context, &refs, 10_000, Duration::from_secs(3_000)).await;

            let full = start_full_node(&context, &net, &full_key).await;
            let head = tip(&nodes[0]).await.get();
            wait_for_height(&context, &[&full], head, Duration::from_secs(300)).await;
            let mut all = refs.clone();
            all.push(&full);
            assert_safety(&all).await;
            let (theirs, _) = nodes[1].shared.finalized_account(&RECIPIENT).await.unwrap();
            let (ours, _) = full.shared.finalized_account(&RECIPIENT).await.unwrap();
            assert_eq!(ours, theirs, "the full node answers like a validator");
            assert_eq!(ours.balance, Amount(100));

            // Transactions submitted to the full node reach the validators.
            let transaction = transfer_of(&net, 10);
            full.shared
                .admit(transaction.clone())
                .await
                .expect("admitted");
            assert!(full.relay.relay(transaction));
            let height = tip(&nodes[0]).await.get();
            wait_for_height(&context, &all, height + 20, Duration::from_secs(60)).await;
            for node in &all {
                assert_eq!(recipient_balance(node).await, Amount(110));
            }
            assert!(net.oracle.blocked().await.unwrap().is_empty());
        });
    });
}

/// A state source over a node's chain through the bytes `logos_getStateOperations` carries;
/// with `forge`, every answer of two or more operations has its first two swapped.
#[derive(Clone)]
struct ChainSource {
    shared: Arc<logos_node::shared::Shared<Context>>,
    forge: bool,
}

impl Source for ChainSource {
    type Family = StateFamily;
    type Digest = Hash;
    type Op = StateOperation;
    type Error = StateSyncError;

    async fn serve(&self, request: Request<StateFamily>) -> sync::source::Result<Self> {
        let (size, start, max_ops) = (*request.size(), *request.start(), request.max_ops().get());
        let boundary = matches!(request, Request::Boundary { .. });
        let bytes = {
            let chain = self.shared.chain().await;
            statesync::serve_operations(&chain, (size, start, max_ops), boundary).await?
        };
        let mut response = statesync::decode_response(&bytes, max_ops)?;
        if let (true, Response::Operations { operations, .. }) = (self.forge, &mut response) {
            if operations.len() >= 2 {
                operations.swap(0, 1);
            }
        }
        Ok((response, None))
    }
}

/// The must-show of state sync, from the attacker's side first: a serving node refuses a
/// request for no, too many, or out-of-range operations; an answer decodes only within the
/// operations asked for; a target that names another block, another height, a root the witness
/// does not tie to the block, or an empty range is refused, and so is a block that is not the
/// certified one; a source that forges operations fails the sync. Then a full node syncs the state after
/// a validator's tip (operations through the RPC's bytes), starts with marshal's floor there,
/// follows the chain without holding any block below it, and agrees with the validators on
/// every block above it and on an account read.
#[test]
fn a_state_synced_full_node_follows_from_its_floor_and_refuses_forgeries() {
    over_seeds_n(18_000, 1, |seed| {
        let config = deterministic::Config::new()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(1_800)));
        deterministic::Runner::new(config).start(|context| async move {
            let (net, full_key, nodes) = validators_with_a_full_node(&context).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            wait_for_height(&context, &refs, 300, Duration::from_secs(600)).await;

            // The serving side's bounds.
            let (target, block, finalization) = loop {
                let target = {
                    let chain = nodes[0].shared.chain().await;
                    statesync::serve_target(&chain).await.expect("target")
                };
                let certificate = nodes[0].marshal.get_finalization(target.height).await;
                let block = nodes[0]
                    .marshal
                    .get_block(Identifier::Height(target.height))
                    .await;
                if let (Some(certificate), Some(block)) = (certificate, block) {
                    let block = block.inner().clone();
                    break (target.to_rpc(), block, certificate.encode().to_vec());
                }
                context.sleep(Duration::from_millis(5)).await;
            };
            {
                let chain = nodes[0].shared.chain().await;
                let size = target.range_end;
                for (request, why) in [
                    ((size, 0, 0), "no operations"),
                    ((size, 0, STATE_OPERATIONS_MAX + 1), "too many operations"),
                    ((size, size, 1), "start at the end"),
                    ((size + 1_000_000, 0, 1), "a size the log never had"),
                ] {
                    let refused = statesync::serve_operations(&chain, request, false).await;
                    assert!(
                        matches!(refused, Err(StateSyncError::OutOfRange(_))),
                        "{why}: {:?}",
                        refused.map(|bytes| bytes.len())
                    );
                }
                let start = target.range_start;
                // A size just after an operation that is not a commit names no state the log
                // had: refused as the caller's mistake, not as the server's failure.
                let bytes = statesync::serve_operations(&chain, (size, start, 64), false)
                    .await
                    .expect("64 operations");
                let Response::Operations { operations, .. } =
                    statesync::decode_response(&bytes, 64).unwrap()
                else {
                    panic!("not an operations answer");
                };
                let inside = operations
                    .iter()
                    .position(|op| !matches!(op, StateOperation::CommitFloor(..)))
                    .expect("an update among 64 operations");
                let inside = start + u64::try_from(inside).unwrap() + 1;
                let refused = statesync::serve_operations(&chain, (inside, start, 1), false).await;
                assert!(
                    matches!(&refused, Err(StateSyncError::OutOfRange(why)) if why.contains("commit")),
                    "a size inside a commit: {:?}",
                    refused.map(|bytes| bytes.len())
                );
                let bytes = statesync::serve_operations(&chain, (size, start, 4), false)
                    .await
                    .expect("four operations");
                assert!(statesync::decode_response(&bytes, 4).is_ok());
                assert!(matches!(
                    statesync::decode_response(&bytes[..bytes.len() - 1], 4),
                    Err(StateSyncError::Malformed(_))
                ));
                assert!(matches!(
                    statesync::decode_response(&bytes, 2),
                    Err(StateSyncError::Malformed(_))
                ));
            }

            // Targets and blocks that do not match the certified block.
            let header = block.header();
            let verified = statesync::verify_target(&header, &target).expect("genuine target");
            let other = nodes[0]
                .marshal
                .get_block(Identifier::Height(Height::new(target.height - 1)))
                .await
                .expect("parent")
                .inner()
                .header();
            let mut flipped_root = target.clone();
            flipped_root.ops_root = logos_primitives::format_hash(&other.state_root);
            let mut empty = target.clone();
            empty.range_start = empty.range_end;
            let mut short_witness = target.clone();
            short_witness.witness.truncate(10);
            for (forged, header, why) in [
                (&target, &other, "another block's header"),
                (&flipped_root, &header, "a root the witness does not tie"),
                (&empty, &header, "an empty range"),
                (&short_witness, &header, "a truncated witness"),
            ] {
                assert!(
                    statesync::verify_target(header, forged).is_err(),
                    "{why} taken"
                );
            }
            let cfg = engine::block_cfg(&net.genesis);
            let hex = |block: &Block| format!("0x{}", hex::encode(block.encode()));
            let parent = nodes[0]
                .marshal
                .get_block(Identifier::Height(Height::new(target.height - 1)))
                .await
                .unwrap()
                .inner()
                .clone();
            assert!(matches!(
                Floor::new(&header, &hex(&parent), &cfg, finalization.clone()),
                Err(StateSyncError::Mismatch(_))
            ));
            assert!(matches!(
                Floor::new(&header, "0x00", &cfg, finalization.clone()),
                Err(StateSyncError::Malformed(_))
            ));
            let floor = Floor::new(&header, &hex(&block), &cfg, finalization.clone())
                .expect("the certified block");
            let bytes = floor.to_bytes();
            assert_eq!(Floor::from_bytes(&bytes, &cfg).unwrap(), floor);
            for (bytes, why) in [
                (&bytes[..3], "no length"),
                (&bytes[..bytes.len() - finalization.len()], "no certificate"),
                (&bytes[..20], "a block cut short"),
            ] {
                assert!(Floor::from_bytes(bytes, &cfg).is_err(), "{why} read");
            }

            // A source that forges operations fails the sync.
            let forging = ChainSource {
                shared: nodes[0].shared.clone(),
                forge: true,
            };
            let forged = statesync::sync_state(
                context.child("forged_sync"),
                &engine::state_partition("forged"),
                logos_node::chain::STATE_LOG_ITEMS_PER_SECTION,
                forging,
                &verified,
            )
            .await;
            assert!(
                matches!(forged, Err(StateSyncError::Sync(_))),
                "forged operations taken: {forged:?}"
            );

            // The genuine sync, and a full node from its floor.
            let honest = ChainSource {
                shared: nodes[0].shared.clone(),
                forge: false,
            };
            statesync::sync_state(
                context.child("state_sync"),
                &engine::state_partition("full-node"),
                logos_node::chain::STATE_LOG_ITEMS_PER_SECTION,
                honest,
                &verified,
            )
            .await
            .expect("state synced");
            let floor_height = header.height.get();
            let full = start_full_node_from(&context, &net, &full_key, Some(floor)).await;
            let head = tip(&nodes[0]).await.get();
            wait_for_height(&context, &[&full], head + 30, Duration::from_secs(300)).await;
            let mut all = refs.clone();
            all.push(&full);
            assert_safety_from(&all, floor_height + 1).await;
            assert!(
                full.marshal
                    .get_block(Identifier::Height(Height::new(1)))
                    .await
                    .is_none(),
                "the state-synced node fetched history below its floor"
            );
            let (theirs, _) = nodes[1].shared.finalized_account(&RECIPIENT).await.unwrap();
            let (ours, _) = full.shared.finalized_account(&RECIPIENT).await.unwrap();
            assert_eq!(
                ours, theirs,
                "the state-synced node answers like a validator"
            );
            assert_eq!(ours.balance, Amount(100));
            assert!(net.oracle.blocked().await.unwrap().is_empty());
        });
    });
}

/// A peer that sends a full node a malformed certificate, then a finalization whose signatures
/// do not cover it (a genuine one moved to a later view), is blocked by it; the full node
/// takes neither and keeps following the honest validators.
#[test]
fn a_full_node_blocks_a_peer_that_sends_forged_certificates() {
    over_seeds_n(18_000, 20, |seed| {
        simulate(seed, |context| async move {
            use commonware_codec::Encode as _;
            use commonware_consensus::{
                simplex::types::{Certificate, Finalization, Proposal},
                types::{Round, View},
            };
            use commonware_p2p::{Recipients, Sender as _};
            // Five genesis validators, four running: the fifth key is the liar.
            let net = network(&context, 5).await;
            let full_key = PrivateKey::from_seed(2_000);
            track_full_node(&net, &full_key).await;
            let mut nodes = Vec::new();
            for index in 0..4 {
                nodes.push(start_validator(&context, &net, index).await);
            }
            connect(&net.oracle, &net.keys[..4], 5).await;
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            wait_for_height(&context, &refs, 10, Duration::from_secs(60)).await;
            let full = start_full_node(&context, &net, &full_key).await;
            let liar = net.keys[4].public_key();
            let channel = net
                .oracle
                .control(liar.clone())
                .register(engine::channels::CERTIFICATES, QUOTA)
                .await
                .unwrap();
            // On the subchannel of epoch 0, where the full node follows certificates.
            let (mut sender, _receiver) = subchannel(&context, channel, 0).await;
            let head = tip(&nodes[0]).await;
            let genuine = nodes[0].marshal.get_finalization(head).await.unwrap();
            let forged = Finalization::<Scheme, Hash> {
                proposal: Proposal::new(
                    Round::new(Epoch::zero(), View::new(1 << 40)),
                    genuine.proposal.parent,
                    genuine.proposal.payload,
                ),
                certificate: genuine.certificate.clone(),
            };
            let to_full = || Recipients::One(full_key.public_key());
            sender.send(to_full(), vec![0xff_u8; 64], false);
            sender.send(to_full(), Certificate::Finalization(forged).encode(), false);
            let height = tip(&nodes[0]).await.get();
            let mut all = refs.clone();
            all.push(&full);
            wait_for_height(&context, &all, height + 20, Duration::from_secs(60)).await;
            assert_safety(&all).await;
            let blocked = net.oracle.blocked().await.unwrap();
            assert_eq!(
                blocked,
                vec![(full_key.public_key(), liar)],
                "only the liar blocked"
            );
        });
    });
}

/// A peer that relays a malformed message, or a transaction whose signature does not verify
/// (a funded account's transfer with one bit of its signature flipped), is blocked by the validator it sent them to; nothing it sent is pooled or paid,
/// and the chain goes on.
#[test]
fn a_peer_that_relays_garbage_or_forged_transactions_is_blocked() {
    over_seeds_n(19_000, 20, |seed| {
        simulate(seed, |context| async move {
            use commonware_codec::{Decode as _, Encode as _};
            use commonware_p2p::{Recipients, Sender as _};
            let net = network(&context, 5).await;
            let mut nodes = Vec::new();
            for index in 0..4 {
                nodes.push(start_validator(&context, &net, index).await);
            }
            connect(&net.oracle, &net.keys[..4], 5).await;
            let liar = net.keys[4].public_key();
            for validator in &net.keys[..2] {
                for (a, b) in [
                    (liar.clone(), validator.public_key()),
                    (validator.public_key(), liar.clone()),
                ] {
                    net.oracle.add_link(a, b, link(5)).await.unwrap();
                }
            }
            let (mut sender, _receiver) = net
                .oracle
                .control(liar.clone())
                .register(engine::channels::TRANSACTIONS, QUOTA)
                .await
                .unwrap();
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            wait_for_height(&context, &refs, 5, Duration::from_secs(60)).await;
            // A relay batch of the funded account's transfer with one bit of its signature (the
            // encoding's last 64 bytes) flipped: well-formed, so only the signature check can
            // refuse it.
            let mut forged = vec![transfer_of(&net, 0)].encode().to_vec();
            let bit = forged.len() - 40;
            forged[bit] ^= 1;
            let cfg = (commonware_codec::RangeCfg::new(1..=1), ());
            let decoded = Vec::<logos_types::Transaction>::decode_cfg(
                commonware_codec::Copying(forged.as_slice()),
                &cfg,
            )
            .expect("a well-formed batch");
            assert!(
                decoded[0].verify_signature().is_err(),
                "the signature is broken"
            );
            let (first, second) = (net.keys[0].public_key(), net.keys[1].public_key());
            sender.send(Recipients::One(first.clone()), vec![0xff_u8; 64], false);
            sender.send(Recipients::One(second.clone()), forged, false);
            let height = tip(&nodes[0]).await.get();
            wait_for_height(&context, &refs, height + 20, Duration::from_secs(60)).await;
            assert_safety(&refs).await;
            let mut blocked = net.oracle.blocked().await.unwrap();
            blocked.sort();
            let mut expected = vec![(first, liar.clone()), (second, liar)];
            expected.sort();
            assert_eq!(blocked, expected, "the liar, and only it, blocked by both");
            for node in &nodes {
                assert_eq!(
                    recipient_balance(node).await,
                    Amount(0),
                    "nothing forged paid"
                );
            }
        });
    });
}

/// A peer of no recent committee (a full node's slot) sending on a channel only committee
/// members use, votes or blocks, has its messages dropped unread (and counted) by the validator
/// it reached; it is not blocked (a node behind the chain cannot tell a newly elected member
/// from a stranger); finality goes on.
#[test]
fn a_non_member_sending_votes_or_blocks_is_dropped_unread() {
    over_seeds_n(21_000, 10, |seed| {
        simulate(seed, |context| async move {
            use commonware_p2p::{Recipients, Sender as _};
            // Four validators; the intruder holds a full node's slot (a registered key).
            let net = network(&context, 4).await;
            let intruder_key = PrivateKey::from_seed(3_000);
            track_full_node(&net, &intruder_key).await;
            let mut nodes = Vec::new();
            for index in 0..4 {
                nodes.push(start_validator(&context, &net, index).await);
            }
            connect(&net.oracle, &net.keys, 5).await;
            let intruder = intruder_key.public_key();
            for validator in &net.keys[..2] {
                for (a, b) in [
                    (intruder.clone(), validator.public_key()),
                    (validator.public_key(), intruder.clone()),
                ] {
                    net.oracle.add_link(a, b, link(5)).await.unwrap();
                }
            }
            let control = net.oracle.control(intruder.clone());
            let (mut votes, _votes) = control
                .clone()
                .register(engine::channels::VOTES, QUOTA)
                .await
                .unwrap();
            let (mut blocks, _blocks) = control
                .register(engine::channels::BLOCKS, QUOTA)
                .await
                .unwrap();
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            wait_for_height(&context, &refs, 5, Duration::from_secs(60)).await;
            let (first, second) = (net.keys[0].public_key(), net.keys[1].public_key());
            votes.send(Recipients::One(first.clone()), vec![0x01_u8; 64], false);
            blocks.send(Recipients::One(second.clone()), vec![0x02_u8; 64], false);
            let height = tip(&nodes[0]).await.get();
            wait_for_height(&context, &refs, height + 20, Duration::from_secs(60)).await;
            assert_safety(&refs).await;
            assert_eq!(net.oracle.blocked().await.unwrap(), vec![]);
            let dropped: u64 = context
                .encode()
                .lines()
                .filter(|line| line.contains("non_member_messages_dropped_total"))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            assert_eq!(dropped, 2, "the vote and the block dropped unread");
        });
    });
}

/// The finalized value of value item `I` on `node`.
async fn finalized_value<I: logos_types::StorageValue>(node: &Node<Context>) -> I::Value {
    let chain = node.shared.chain().await;
    let tip = chain.tip().digest;
    match chain.read(&tip, &I::key()).await.unwrap() {
        Some(bytes) => I::decode_value(&I::key(), &bytes).unwrap(),
        None => I::default_value(),
    }
}

/// Missed votes are told on chain: seven validators, one offline. Each of the six online
/// validators' nodes records its own finalize vote for every vote sample, the one its engine
/// sent (a certificate needs only five of them, so a node's vote is often missing from the
/// certificates it holds); the tally counts each closed sample for them and none for the
/// offline one, whose reward it will cut.
#[test]
fn validators_record_their_votes_and_an_offline_one_is_counted_missing() {
    over_seeds_n(8_500, 3, |seed| {
        simulate(seed, |context| async move {
            use logos_types::staking::Votes;
            let mut net = network(&context, 7).await;
            net.genesis.params.epoch_length_blocks = Some(400);
            // Validators pay the fees of their records.
            for key in &net.keys {
                net.genesis.accounts.push(GenesisAccount {
                    address: Address::from_public_key(&key.public_key()),
                    balance: Amount(10_000_000_000),
                });
            }
            connect(&net.oracle, &net.keys, 10).await;
            let mut nodes = Vec::new();
            for index in 0..6 {
                nodes.push(start_validator(&context, &net, index).await);
            }
            let refs: Vec<&Node<Context>> = nodes.iter().collect();
            // Samples every 12 blocks (400 / 32), each open for 32 blocks.
            let deadline = context.current() + Duration::from_secs(300);
            let tally = loop {
                let tally = finalized_value::<Votes>(&nodes[0]).await;
                if tally.samples >= 4 {
                    break tally;
                }
                assert!(
                    context.current() < deadline,
                    "no vote samples closed with votes (tally {tally:?}, tip {})",
                    tip(&nodes[0]).await
                );
                context.sleep(Duration::from_millis(100)).await;
            };
            let mut sorted: Vec<PublicKey> = net.keys.iter().map(|k| k.public_key()).collect();
            sorted.sort();
            let rank = |index: usize| {
                sorted
                    .iter()
                    .position(|key| *key == net.keys[index].public_key())
                    .unwrap()
            };
            for index in 0..6 {
                assert_eq!(
                    tally.signed.get(rank(index)).copied().unwrap_or(0),
                    tally.samples,
                    "validator {index} (tally {tally:?})"
                );
            }
            assert_eq!(tally.signed.get(rank(6)).copied().unwrap_or(0), 0);
            assert_safety(&refs).await;
        })
    });
}
