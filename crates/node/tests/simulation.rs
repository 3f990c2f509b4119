//! Deterministic simulations of Logos validators (commonware deterministic runtime and
//! simulated p2p network): real engines, real state, simulated links, hostile peers.
//!
//! Every scenario asserts safety (at every height all honest validators finalized the same
//! block, and each validator's state root equals the root its finalized tip commits to) and
//! liveness (finalization reaches a target within a bound of simulated time).

use commonware_consensus::{
    marshal::Identifier,
    simplex::{elector::RoundRobin, mocks},
    types::Epoch,
};
use commonware_cryptography::{Digestible, Sha256, Signer};
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_runtime::{deterministic, Clock, Quota, Runner, Supervisor};
use commonware_utils::{probability, NZUsize, NZU32};
use logos_api::consensus::{consensus_namespace, participants, Scheme};
use logos_node::engine::{self, Networks, Node};
use logos_primitives::{format_public_key, Address, Amount, Hash, Height, PrivateKey, PublicKey};
use logos_types::{
    balances,
    genesis::{GenesisAccount, GenesisValidator},
    Call, Genesis, Params, TransactionPayload,
};
use std::{sync::Arc, time::Duration};

type Context = deterministic::Context;

const QUOTA: Quota = Quota::per_second(NZU32!(1_024));
const RECIPIENT: Address = Address([0x42; 20]);

fn link(latency_ms: u64) -> Link {
    Link {
        latency: Duration::from_millis(latency_ms),
        jitter: Duration::from_millis(latency_ms / 4),
        success_rate: probability!(1.0),
    }
}

struct Network_ {
    oracle: Oracle<PublicKey, Context>,
    keys: Vec<PrivateKey>,
    genesis: Genesis,
    funded: PrivateKey,
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
            max_peers_per_set: NZUsize!(n as usize),
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
    }
}

async fn channels(
    oracle: &Oracle<PublicKey, Context>,
    key: &PublicKey,
) -> Networks<simulated::Sender<PublicKey, Context>, simulated::Receiver<PublicKey>> {
    let control = oracle.control(key.clone());
    let mut registered = Vec::new();
    for channel in 0..6 {
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
    }
}

async fn start_validator(context: &Context, net: &Network_, index: usize) -> Node<Context> {
    let key = net.keys[index].clone();
    let networks = channels(&net.oracle, &key.public_key()).await;
    let config = engine::Config::new(
        key.clone(),
        net.genesis.clone(),
        format!("validator-{index}"),
    );
    engine::start(
        context.child(Box::leak(format!("validator_{index}").into_boxed_str())),
        config,
        networks,
        net.oracle.manager(),
        net.oracle.control(key.public_key()),
    )
    .await
    .expect("validator starts")
}

async fn connect(oracle: &Oracle<PublicKey, Context>, keys: &[PrivateKey], latency_ms: u64) {
    for a in keys {
        for b in keys {
            if a.public_key() != b.public_key() {
                oracle
                    .add_link(a.public_key(), b.public_key(), link(latency_ms))
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
    for height in 1..=lowest {
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
    for nonce in 0..count {
        let transaction = TransactionPayload {
            chain_id: node.shared.chain_id(),
            sender: net.funded.public_key(),
            nonce,
            fee: Amount(1_000),
            call: Call::Balances(balances::Call::Transfer {
                to: RECIPIENT,
                amount: Amount(10),
            }),
        }
        .sign(&net.funded);
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
    all_online(4, 10, 1);
}

#[test]
fn ten_validators_with_latency_finalize_and_agree() {
    all_online(10, 20, 2);
}

#[test]
fn one_validator_offline_is_skipped() {
    simulate(3, |context| async move {
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
    simulate(4, |context| async move {
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
    simulate(5, |context| async move {
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
        equivocator.start(networks.votes, networks.certificates);
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

/// Transactions that passed admission but cannot pay when their block is built (an admission
/// that raced a block, a cost the pool could not see) are left out and evicted by the leader:
/// twenty such senders in every validator's pool neither halt the chain nor stay pooled.
#[test]
fn unpayable_pooled_transactions_are_evicted_and_never_halt_the_chain() {
    for seed in [10, 11, 12] {
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
    }
}
