//! Property test of the whole state machine: random sequences of signed calls of every module,
//! from random accounts (privileged, provider owner, tenant, provisioners, an unfunded
//! stranger), with random and extreme arguments, built into blocks the way a leader builds
//! them ([`crate::build_block`]). After every block: no panic, the block re-executes to the
//! same writes as it was built with, and every invariant holds (`MockChain` runs
//! [`crate::try_state_all`] after each block and panics on a violation).

use crate::mock::{address, fixtures::provisioned, MockChain};
use commonware_cryptography::Signer;
use logos_primitives::{Address, Amount, NodeKey, PrivateKey};
use logos_types::{
    balances,
    catalog::{self, Product, ProductId, Template, TemplateId, Workload},
    dvci::{self, ProviderId, ProviderStatus, RegionId, ResourceClass, Resources},
    governance,
    market::{self, LeaseId},
    operations::{self, EnvironmentId, Phase, PortMapping},
    peers,
    provisioning::{self, Report},
    staking, Call, Transaction, TransactionPayload,
};
use proptest::prelude::*;

/// Amounts worth trying: nothing, dust, the fixtures' magnitudes, and the overflow edges.
const AMOUNTS: [u128; 8] = [
    0,
    1,
    10,
    1_000,
    1_000_000,
    2_000_000_000,
    u128::MAX / 2,
    u128::MAX,
];
/// Block counts worth trying.
const BLOCKS: [u64; 6] = [0, 1, 10, 1_000, u64::MAX / 2, u64::MAX];

/// One fuzz step: who sends, which call, and its raw arguments.
#[derive(Clone, Debug)]
struct Step {
    actor: usize,
    kind: u8,
    a: u64,
    b: u64,
    amount: usize,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0usize..9,
        0u8..41,
        any::<u64>(),
        any::<u64>(),
        0usize..AMOUNTS.len(),
    )
        .prop_map(|(actor, kind, a, b, amount)| Step {
            actor,
            kind,
            a,
            b,
            amount,
        })
}

fn class(n: u64) -> ResourceClass {
    [
        ResourceClass::ComputeKvm,
        ResourceClass::ComputeHosted,
        ResourceClass::Gpu,
    ][(n % 3) as usize]
}

fn resources(n: u64) -> Resources {
    match n % 3 {
        0 => Resources {
            vcpu: 2,
            memory_mib: 2_048,
            disk_gib: 20,
            gpus: 0,
        },
        1 => Resources {
            vcpu: 0,
            memory_mib: 0,
            disk_gib: 0,
            gpus: 0,
        },
        _ => Resources {
            vcpu: u32::MAX,
            memory_mib: u64::MAX,
            disk_gib: u64::MAX,
            gpus: u32::MAX,
        },
    }
}

/// A workload probed on a port from `b`: valid, or (one in four) with an unpinned image, or
/// (one in four) with its health port undeclared.
fn fuzz_workload(a: u64, b: u64) -> Option<Workload> {
    let mut workload = crate::mock::fixtures::workload(&["run"], (b % 65_536) as u16);
    match a % 4 {
        0 => workload.image = "127.0.0.1:5000/x:latest".try_into().ok()?,
        1 => workload.health.port = workload.health.port.wrapping_add(1),
        _ => {}
    }
    Some(workload)
}

/// The p2p key of fuzzed full node `id`.
fn fuzz_node(id: u64) -> PrivateKey {
    PrivateKey::from_seed(500 + id)
}

/// A `Running` report's attestation for `report` by provider 0's agent (the fixture's key,
/// seed 500) or (one in two) by a key that is not the agent's, for `assignee` until `expires_at`.
fn attestation(
    report: &Report,
    chain: (&logos_primitives::ChainId, u64),
    (environment, assignee): (EnvironmentId, Address),
    forged: bool,
) -> provisioning::Attestation {
    let (chain_id, expires_at) = chain;
    let agent = PrivateKey::from_seed(if forged { 501 } else { 500 });
    let attested = provisioning::Attested {
        provider: ProviderId(0),
        environment,
        generation: report.generation,
        endpoint: report.endpoint.as_str(),
        ports: &report.ports,
        assignee,
        expires_at,
    };
    let message = provisioning::attestation_message(chain_id, &attested, 7);
    provisioning::Attestation {
        nonce: 7,
        expires_at,
        signature: logos_primitives::KeySignature::from_signature(
            &agent.sign(provisioning::ATTESTATION_NAMESPACE, &message),
        ),
    }
}

fn call(
    step: &Step,
    actors: &[Address],
    (chain_id, height): (&logos_primitives::ChainId, u64),
) -> Option<Call> {
    let (a, b) = (step.a, step.b);
    let amount = Amount(AMOUNTS[step.amount]);
    let id = a % 4;
    let blocks = BLOCKS[(b % BLOCKS.len() as u64) as usize];
    Some(match step.kind {
        0 => balances::Call::Transfer {
            to: actors[(a % actors.len() as u64) as usize],
            amount,
        }
        .into(),
        1 => dvci::Call::RegisterProvider {
            endpoint: "127.0.0.1:7100".try_into().ok()?,
            inventory: resources(b),
            class: class(a),
            region: RegionId((b % 3) as u16),
            bond: amount,
        }
        .into(),
        2 => dvci::Call::DeregisterProvider {
            provider: ProviderId(id),
        }
        .into(),
        3 => dvci::Call::SetProviderStatus {
            provider: ProviderId(id),
            status: [
                ProviderStatus::Pending,
                ProviderStatus::Active,
                ProviderStatus::Excluded,
            ][(b % 3) as usize],
        }
        .into(),
        4 => dvci::Call::CreateRegion {
            region: RegionId(id as u16),
            name: "r".try_into().ok()?,
        }
        .into(),
        5 => dvci::Call::SetBufferPercent { percent: a as u8 }.into(),
        6 => dvci::Call::SetMinimumBond { bond: amount }.into(),
        7 => catalog::Call::SetProduct {
            id: ProductId(id as u32),
            product: Product {
                name: "p".try_into().ok()?,
                resources: resources(b),
                class: class(b / 3),
                compute_units: (b % 5) as u32,
            },
        }
        .into(),
        8 => catalog::Call::SetTemplate {
            id: TemplateId(id as u32),
            template: Template {
                name: "t".try_into().ok()?,
                product: ProductId((b % 3) as u32),
                workload: fuzz_workload(a, b)?,
            },
        }
        .into(),
        9 => catalog::Call::RemoveTemplate {
            id: TemplateId(id as u32),
        }
        .into(),
        10 => market::Call::SetPrice {
            class: class(a),
            price: amount,
        }
        .into(),
        11 => market::Call::CreateLease {
            template: TemplateId((a % 3) as u32),
            region: RegionId((b % 3) as u16),
            blocks,
        }
        .into(),
        12 => market::Call::ExtendLease {
            lease: LeaseId(id),
            blocks,
        }
        .into(),
        13 => market::Call::CloseLease { lease: LeaseId(id) }.into(),
        14 => market::Call::SetCommunityShare { percent: a as u8 }.into(),
        15 => operations::Call::UpdateEnvironment {
            environment: EnvironmentId(id),
        }
        .into(),
        16 => provisioning::Call::RegisterProvisioner { stake: amount }.into(),
        17 => provisioning::Call::DeregisterProvisioner.into(),
        18 => {
            let mut report = Report {
                generation: b % 4,
                phase: [
                    Phase::Pending,
                    Phase::Running,
                    Phase::Failed,
                    Phase::Destroyed,
                ][(a / 4 % 4) as usize],
                // The fixture provider's host, another host, or loopback.
                endpoint: ["10.77.1.100:24000", "10.77.9.9:24000", "127.0.0.1:24000"]
                    [(a / 48 % 3) as usize]
                    .try_into()
                    .ok()?,
                // Declared (8545 in the fixture's template), undeclared, or mapped twice.
                ports: vec![
                    PortMapping {
                        port: [8545, 8546, 0][(a / 16 % 3) as usize],
                        // Mostly where the endpoint says, so that rounds open.
                        published: if b % 3 == 0 {
                            (b % 65_536) as u16
                        } else {
                            24_000
                        },
                    };
                    (b / 65_536 % 3) as usize
                ]
                .try_into()
                .ok()?,
                message: "fuzz".try_into().ok()?,
                attestation: None,
            };
            // None, the agent's own for the sender (valid, or expired), or a forged one.
            let environment = EnvironmentId(id);
            let sender = actors[step.actor % actors.len()];
            let expires_at = [height + 50, height.saturating_sub(1)][(b / 7 % 2) as usize];
            let chain = (chain_id, expires_at);
            report.attestation = match a / 144 % 3 {
                0 => None,
                kind => Some(attestation(
                    &report,
                    chain,
                    (environment, sender),
                    kind == 2,
                )),
            };
            provisioning::Call::Report {
                environment,
                report,
            }
            .into()
        }
        19 => provisioning::Call::CrossCheck {
            environment: EnvironmentId(id),
            round: b % 4,
            verdict: [
                provisioning::Verdict::Confirmed,
                provisioning::Verdict::Contradicted,
                provisioning::Verdict::AgentUnreachable,
                provisioning::Verdict::EndpointDead,
                provisioning::Verdict::SpecMismatch,
                provisioning::Verdict::Stopped,
            ][(a % 6) as usize],
        }
        .into(),
        20 => provisioning::Call::SetMinimumStake { stake: amount }.into(),
        21 => {
            // Signed for the sender, or (one in three) for another account: a replay.
            let sender = actors[step.actor % actors.len()];
            let owner = if b.is_multiple_of(3) {
                actors[(b / 3 % actors.len() as u64) as usize]
            } else {
                sender
            };
            let address: peers::P2pAddress = ["127.0.0.1:30400", "[::1]:1", "0.0.0.0:1"]
                [(a / 4 % 3) as usize]
                .parse()
                .ok()?;
            let (key, signature) =
                peers::sign_registration(&fuzz_node(id), chain_id, &owner, &address);
            peers::Call::RegisterFullNode {
                key,
                address,
                deposit: amount,
                signature,
            }
            .into()
        }
        22 => peers::Call::DeregisterFullNode {
            key: NodeKey::from_public_key(&fuzz_node(id).public_key()),
        }
        .into(),
        23 => peers::Call::SetMinimumDeposit { deposit: amount }.into(),
        24 => catalog::Call::AddTemplate {
            template: Template {
                name: "added".try_into().ok()?,
                product: ProductId((b % 3) as u32),
                workload: fuzz_workload(a, b)?,
            },
        }
        .into(),
        25 => dvci::Call::SetAgentKey {
            provider: ProviderId(id),
            // A real key, or (one in two) bytes that are no usable key.
            key: if b.is_multiple_of(2) {
                NodeKey::from_public_key(&fuzz_node(id).public_key())
            } else {
                NodeKey([(b % 256) as u8; 32])
            },
        }
        .into(),
        26 => provisioning::Call::SetParameters {
            parameters: provisioning::Parameters {
                checkers: (a % 9) as u8,
                min_provisioners: (b % 9) as u8,
                draw_delay_blocks: a % 3,
                checker_slash_percent: (b % 120) as u8,
                provider_slash_percent: (a % 120) as u8,
            },
        }
        .into(),
        27 => market::Call::SetTerms {
            terms: market::Terms {
                grace_blocks: a % 5,
                verify_deadline_blocks: b % 40,
                assignee_share: (a % 60) as u8,
                checkers_share: (b % 60) as u8,
            },
        }
        .into(),
        28..=35 => staking_call(step, actors, chain_id)?,
        36..=38 => governance_call(step, actors)?,
        _ => return None, // an empty block
    })
}

/// A `staking` call from step kinds 28 to 35.
fn staking_call(
    step: &Step,
    actors: &[Address],
    chain_id: &logos_primitives::ChainId,
) -> Option<Call> {
    let (a, b) = (step.a, step.b);
    let amount = Amount(AMOUNTS[step.amount]);
    let sender = actors[step.actor % actors.len()];
    Some(match step.kind {
        28 => staking::Call::Bond { amount }.into(),
        29 => staking::Call::Unbond { amount }.into(),
        30 => staking::Call::Rebond { amount }.into(),
        31 => staking::Call::WithdrawUnbonded.into(),
        32 => {
            // Signed for the sender, or (one in three) replayed from another account.
            let signer = if b.is_multiple_of(3) {
                actors[(b / 3 % actors.len() as u64) as usize]
            } else {
                sender
            };
            let address: peers::P2pAddress = ["127.0.0.1:30500", "0.0.0.0:1", "127.0.0.1:0"]
                [(a / 4 % 3) as usize]
                .parse()
                .ok()?;
            let (consensus_key, signature) =
                staking::sign_intent(&fuzz_node(10 + a % 4), chain_id, &signer, &address);
            staking::Call::Validate {
                consensus_key,
                p2p_address: address,
                commission_permille: (b % 1_100) as u16,
                signature,
                evict: b
                    .is_multiple_of(4)
                    .then(|| actors[(a / 7 % actors.len() as u64) as usize]),
            }
            .into()
        }
        33 => staking::Call::Nominate {
            targets: (0..(a % 4))
                .map(|i| actors[((b + i) % actors.len() as u64) as usize])
                .collect::<Vec<_>>()
                .try_into()
                .ok()?,
            evict: a
                .is_multiple_of(3)
                .then(|| actors[(b / 5 % actors.len() as u64) as usize]),
        }
        .into(),
        34 if a.is_multiple_of(2) => staking::Call::Chill.into(),
        34 => staking::Call::SetElections {
            elections: b.is_multiple_of(2),
        }
        .into(),
        _ => staking::Call::SetConfig {
            config: staking::StakingConfig {
                committee_size: (a % 8) as u16,
                epoch_length_blocks: [10, 9, 1_000][(b % 3) as usize],
                unbonding_blocks: b % 30,
                min_validator_bond: Amount(AMOUNTS[(a % 6) as usize]),
                min_bond: amount,
                elections: a.is_multiple_of(2),
                equivocation_slash_percent: (b % 120) as u8,
                reporter_reward_percent: (a % 60) as u8,
                epoch_reward: Amount(AMOUNTS[(b % 8) as usize]),
            },
        }
        .into(),
    })
}

/// A `governance` call from step kinds 36 to 38.
fn governance_call(step: &Step, actors: &[Address]) -> Option<Call> {
    let (a, b) = (step.a, step.b);
    Some(match step.kind {
        36 => {
            let inner: Call = match a % 4 {
                0 => market::Call::SetPrice {
                    class: class(b),
                    price: Amount(AMOUNTS[step.amount]),
                }
                .into(),
                1 => governance::Call::RemoveAuthority.into(),
                2 => governance::Call::Vote {
                    proposal: governance::ProposalId(b % 3),
                    aye: true,
                }
                .into(),
                _ => balances::Call::Transfer {
                    to: actors[(b % actors.len() as u64) as usize],
                    amount: Amount(AMOUNTS[step.amount]),
                }
                .into(),
            };
            let mut encoded = logos_types::codec::encode(&inner);
            if b.is_multiple_of(5) {
                encoded.truncate(encoded.len() / 2);
            }
            governance::Call::Propose {
                encoded: encoded.try_into().ok()?,
            }
            .into()
        }
        37 => governance::Call::Vote {
            proposal: governance::ProposalId(a % 4),
            aye: b.is_multiple_of(2),
        }
        .into(),
        // Rarely the authority's own removal; mostly settings (short periods, or out of bounds).
        _ if a.is_multiple_of(16) => governance::Call::RemoveAuthority.into(),
        _ => governance::Call::SetConfig {
            config: governance::GovernanceConfig {
                deposit: Amount(AMOUNTS[step.amount]),
                voting_period_blocks: b % 12,
                enactment_delay_blocks: a % 6,
                quorum_percent: (a % 120) as u8,
                threshold_percent: (b % 120) as u8,
            },
        }
        .into(),
    })
}

/// `call` from `key` with the next nonce after `queued` transactions of this block, a fee
/// that varies with the step (the minimum, or more than anyone holds).
fn sign(chain: &MockChain, key: &PrivateKey, queued: u64, call: Call, step: &Step) -> Transaction {
    let fee = if step.b.is_multiple_of(17) {
        Amount(u128::MAX)
    } else {
        chain.params.min_fee
    };
    TransactionPayload {
        chain_id: chain.chain_id,
        sender: key.public_key(),
        nonce: chain.account(&address(key)).nonce.saturating_add(queued),
        fee,
        call,
    }
    .sign(key)
}

/// The step kinds from which on (in [`run`] with `skips`) a step runs hundreds of empty blocks
/// instead (otherwise they make empty blocks).
const SKIP: u8 = 39;

fn run(steps: Vec<Step>, per_block: usize, skips: bool) {
    let mut world = provisioned(3);
    let mut keys = vec![
        world.root.clone(),
        world.owner.clone(),
        world.tenant.clone(),
    ];
    keys.extend(world.provisioners.iter().cloned());
    keys.push(PrivateKey::from_seed(999)); // the stranger: no balance at all
    let actors: Vec<Address> = keys.iter().map(address).collect();
    for block in steps.chunks(per_block.max(1)) {
        let mut candidates = Vec::new();
        let mut queued = vec![0u64; keys.len()];
        for step in block {
            if skips && step.kind >= SKIP {
                // Past the round, report and recheck timeouts (600, 900, 3,000 blocks).
                world
                    .chain
                    .advance([601, 901, 3_001][(step.a % 3) as usize]);
                continue;
            }
            let chain = (&world.chain.chain_id, world.chain.height);
            let Some(call) = call(step, &actors, chain) else {
                continue;
            };
            let actor = step.actor % keys.len();
            candidates.push(sign(&world.chain, &keys[actor], queued[actor], call, step));
            queued[actor] += 1;
        }
        // Candidates in nonce order per sender, as the mempool hands them over.
        candidates.sort_by_key(|transaction| (transaction.sender(), transaction.payload().nonce));
        let built = world.chain.build(&candidates).expect("state readable");
        let replayed = world
            .chain
            .dry_run(&built.included)
            .expect("a built block is valid");
        assert_eq!(replayed.writes, built.outcome.writes);
        world
            .chain
            .execute(&built.included)
            .expect("a built block is valid");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_calls_of_every_module_keep_every_invariant(
        steps in prop::collection::vec(step(), 1..200),
        per_block in 1usize..6,
    ) {
        run(steps, per_block, false);
    }
}

proptest! {
    // Few cases: each skip runs up to 3,001 blocks with every invariant checked after each.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_calls_across_the_timeouts_keep_every_invariant(
        steps in prop::collection::vec(step(), 1..60),
        per_block in 1usize..4,
    ) {
        run(steps, per_block, true);
    }
}
