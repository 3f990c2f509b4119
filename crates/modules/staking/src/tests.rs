//! Tests of `staking` against the mock chain (every invariant checked after every block), from
//! the attacker's side: forged intents, stolen keys, stake that leaves early, floods; and the
//! election's proportionality and robustness.

use crate::{elect, Candidate, Nominator};
use commonware_cryptography::Signer;
use logos_primitives::{Address, Amount, NodeKey, PrivateKey};
use logos_runtime::mock::{address, assert_failed, fixtures::bare, fixtures::World, MockChain};
use logos_types::{
    balances,
    peers::P2pAddress,
    staking::{
        sign_intent, Call, Committees, Config, CurrentEpoch, Epoch, Ledgers, StakingConfig,
        TotalActive, Validator, ValidatorList, UNLOCKING_MAX,
    },
    Event as RuntimeEvent,
};

const MIN_BOND: Amount = Amount(1_000);
const MIN_VALIDATOR_BOND: Amount = Amount(10_000);

fn config(elections: bool) -> StakingConfig {
    StakingConfig {
        committee_size: 5,
        epoch_length_blocks: 10,
        unbonding_blocks: 30,
        min_validator_bond: MIN_VALIDATOR_BOND,
        min_bond: MIN_BOND,
        elections,
        equivocation_slash_percent: 10,
        reporter_reward_percent: 10,
        epoch_reward: Amount(1_000_000_000),
    }
}

/// The bare fixture with short epochs and small minimums.
fn world(elections: bool) -> World {
    let mut world = bare(0);
    world.privileged(Call::SetConfig {
        config: config(elections),
    });
    world
}

/// A funded account (seed `seed`).
fn funded(world: &mut World, seed: u64, amount: u128) -> PrivateKey {
    let key = PrivateKey::from_seed(seed);
    world.privileged(balances::Call::Transfer {
        to: address(&key),
        amount: Amount(amount),
    });
    key
}

fn at(port: u16) -> P2pAddress {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// `account` declares itself a candidate with consensus key `consensus`.
fn validate(world: &mut World, account: &PrivateKey, consensus: &PrivateKey, port: u16) -> bool {
    let (key, signature) = sign_intent(
        consensus,
        &world.chain.chain_id,
        &address(account),
        &at(port),
    );
    let receipt = world.chain.call(
        account,
        Call::Validate {
            consensus_key: key,
            p2p_address: at(port),
            commission_permille: 50,
            signature,
            evict: None,
        },
    );
    receipt.success
}

/// A bonded candidate (seed `seed`, consensus key seed `seed + 10_000`).
fn candidate(world: &mut World, seed: u64, stake: u128) -> PrivateKey {
    let key = funded(world, seed, stake + 1_000_000);
    assert!(
        world
            .chain
            .call(
                &key,
                Call::Bond {
                    amount: Amount(stake)
                }
            )
            .success
    );
    let consensus = PrivateKey::from_seed(seed + 10_000);
    assert!(validate(world, &key, &consensus, 30_000 + seed as u16));
    key
}

/// `key` bonds `amount`; true if it succeeded.
fn bond(world: &mut World, key: &PrivateKey, amount: Amount) -> bool {
    world.chain.call(key, Call::Bond { amount }).success
}

fn committee(world: &World, epoch: u64) -> Vec<Address> {
    world
        .chain
        .map::<Committees>(&Epoch(epoch))
        .expect("committee fixed")
        .members
        .iter()
        .map(|member| member.validator)
        .collect()
}

#[test]
fn bond_unbond_rebond_withdraw_move_exactly_the_stake() {
    let mut world = world(false);
    let alice = funded(&mut world, 40, 1_000_000);
    let who = address(&alice);
    let free = world.chain.account(&who).balance;
    assert!(bond(&mut world, &alice, Amount(50_000)));
    let fee = world.chain.params.min_fee;
    assert_eq!(world.chain.account(&who).reserved, Amount(50_000));
    assert_eq!(world.chain.value::<TotalActive>(), Amount(50_000));
    let unbond = world.chain.call(
        &alice,
        Call::Unbond {
            amount: Amount(20_000),
        },
    );
    assert!(unbond.success);
    let unlocks_at = world.chain.height + 30;
    assert_eq!(world.chain.value::<TotalActive>(), Amount(30_000));
    // Not matured: nothing to withdraw, and the reserve stays.
    let early = world.chain.call(&alice, Call::WithdrawUnbonded);
    assert_failed(&early, "staking", "NothingUnlocking");
    // Rebond part of it (newest chunk first), then let the rest mature.
    assert!(
        world
            .chain
            .call(
                &alice,
                Call::Rebond {
                    amount: Amount(5_000)
                }
            )
            .success
    );
    assert_eq!(world.chain.value::<TotalActive>(), Amount(35_000));
    let ledger = world.chain.map::<Ledgers>(&who).unwrap();
    assert_eq!(ledger.unlocking[0].amount, Amount(15_000));
    assert_eq!(ledger.unlocking[0].unlocks_at, unlocks_at);
    world.chain.advance(unlocks_at - world.chain.height - 1);
    assert!(world.chain.call(&alice, Call::WithdrawUnbonded).success);
    let account = world.chain.account(&who);
    assert_eq!(account.reserved, Amount(35_000));
    assert_eq!(account.balance.0, free.0 - 35_000 - 5 * fee.0);
    // Unbond everything and withdraw: the ledger goes.
    assert!(
        world
            .chain
            .call(
                &alice,
                Call::Unbond {
                    amount: Amount(35_000)
                }
            )
            .success
    );
    world.chain.advance(30);
    assert!(world.chain.call(&alice, Call::WithdrawUnbonded).success);
    assert!(world.chain.map::<Ledgers>(&who).is_none());
    assert_eq!(world.chain.account(&who).reserved, Amount::ZERO);
}

#[test]
fn bonds_below_the_minimum_over_the_balance_or_zero_are_refused_and_change_nothing() {
    let mut world = world(false);
    let alice = funded(&mut world, 41, 5_000);
    let before = world.chain.account(&address(&alice)).reserved;
    for (amount, module, error) in [
        (0, "staking", "ZeroAmount"),
        (999, "staking", "BondTooLow"),
        (1_000_000, "balances", "InsufficientBalance"),
    ] {
        let receipt = world.chain.call(
            &alice,
            Call::Bond {
                amount: Amount(amount),
            },
        );
        assert_failed(&receipt, module, error);
    }
    assert_eq!(world.chain.account(&address(&alice)).reserved, before);
    assert!(world.chain.map::<Ledgers>(&address(&alice)).is_none());
    // Unbonding what is not there, or leaving dust below the minimum.
    let bob = funded(&mut world, 42, 100_000);
    assert!(bond(&mut world, &bob, Amount(5_000)));
    let over = world.chain.call(
        &bob,
        Call::Unbond {
            amount: Amount(5_001),
        },
    );
    assert_failed(&over, "staking", "InsufficientActive");
    let dust = world.chain.call(
        &bob,
        Call::Unbond {
            amount: Amount(4_500),
        },
    );
    assert_failed(&dust, "staking", "BondTooLow");
    let nobody = world.chain.call(&alice, Call::Unbond { amount: Amount(1) });
    assert_failed(&nobody, "staking", "NotBonded");
    let nothing = world.chain.call(&bob, Call::Rebond { amount: Amount(1) });
    assert_failed(&nothing, "staking", "NothingUnlocking");
}

#[test]
fn unlocking_chunks_are_bounded() {
    let mut world = world(false);
    let alice = funded(&mut world, 43, 1_000_000);
    assert!(bond(&mut world, &alice, Amount(100_000)));
    for _ in 0..UNLOCKING_MAX {
        assert!(
            world
                .chain
                .call(&alice, Call::Unbond { amount: Amount(10) })
                .success
        );
    }
    let flood = world
        .chain
        .call(&alice, Call::Unbond { amount: Amount(10) });
    assert_failed(&flood, "staking", "TooManyUnlocking");
    // Rebonding frees a slot.
    assert!(
        world
            .chain
            .call(&alice, Call::Rebond { amount: Amount(10) })
            .success
    );
    assert!(
        world
            .chain
            .call(&alice, Call::Unbond { amount: Amount(10) })
            .success
    );
}

#[test]
fn intents_need_the_consensus_keys_own_signature_for_this_account_and_chain() {
    let mut world = world(false);
    let alice = funded(&mut world, 44, 1_000_000);
    let mallory = funded(&mut world, 45, 1_000_000);
    for key in [&alice, &mallory] {
        assert!(
            world
                .chain
                .call(
                    key,
                    Call::Bond {
                        amount: MIN_VALIDATOR_BOND
                    }
                )
                .success
        );
    }
    let consensus = PrivateKey::from_seed(77);
    // Mallory replays Alice's signed intent as her own.
    let (key, signature) = sign_intent(
        &consensus,
        &world.chain.chain_id,
        &address(&alice),
        &at(30_001),
    );
    let replayed = world.chain.call(
        &mallory,
        Call::Validate {
            consensus_key: key,
            p2p_address: at(30_001),
            commission_permille: 0,
            signature,
            evict: None,
        },
    );
    assert_failed(&replayed, "staking", "BadSignature");
    // Signed for another chain, or for another address.
    let (key, foreign) = sign_intent(
        &consensus,
        &logos_primitives::ChainId(logos_primitives::hash(&[b"another chain"])),
        &address(&alice),
        &at(30_001),
    );
    let other_chain = world.chain.call(
        &alice,
        Call::Validate {
            consensus_key: key,
            p2p_address: at(30_001),
            commission_permille: 0,
            signature: foreign,
            evict: None,
        },
    );
    assert_failed(&other_chain, "staking", "BadSignature");
    let (key, signature) = sign_intent(
        &consensus,
        &world.chain.chain_id,
        &address(&alice),
        &at(30_001),
    );
    let moved = world.chain.call(
        &alice,
        Call::Validate {
            consensus_key: key,
            p2p_address: at(30_002),
            commission_permille: 0,
            signature,
            evict: None,
        },
    );
    assert_failed(&moved, "staking", "BadSignature");
    // A key that is not a point.
    let garbage = world.chain.call(
        &alice,
        Call::Validate {
            consensus_key: NodeKey([0xFF; 32]),
            p2p_address: at(30_001),
            commission_permille: 0,
            signature,
            evict: None,
        },
    );
    assert!(!garbage.success);
    // Alice declares it; Mallory, holding the key too, cannot take it over.
    assert!(validate(&mut world, &alice, &consensus, 30_001));
    let stolen = world.chain.call(&mallory, {
        let (key, signature) = sign_intent(
            &consensus,
            &world.chain.chain_id,
            &address(&mallory),
            &at(30_003),
        );
        Call::Validate {
            consensus_key: key,
            p2p_address: at(30_003),
            commission_permille: 0,
            signature,
            evict: None,
        }
    });
    assert_failed(&stolen, "staking", "KeyInUse");
    assert_eq!(world.chain.value::<ValidatorList>().len(), 1);
}

#[test]
fn intents_out_of_bounds_are_refused() {
    let mut world = world(false);
    let alice = funded(&mut world, 46, 1_000_000);
    assert!(bond(&mut world, &alice, Amount(9_999)));
    let consensus = PrivateKey::from_seed(78);
    let sign = |world: &World, address_text: &str| {
        sign_intent(
            &consensus,
            &world.chain.chain_id,
            &address(&alice),
            &address_text.parse().unwrap(),
        )
    };
    let (key, signature) = sign(&world, "127.0.0.1:30001");
    let poor = world.chain.call(
        &alice,
        Call::Validate {
            consensus_key: key,
            p2p_address: at(30_001),
            commission_permille: 0,
            signature,
            evict: None,
        },
    );
    assert_failed(&poor, "staking", "BondTooLow");
    assert!(
        world
            .chain
            .call(&alice, Call::Bond { amount: Amount(1) })
            .success
    );
    let greedy = world.chain.call(
        &alice,
        Call::Validate {
            consensus_key: key,
            p2p_address: at(30_001),
            commission_permille: 1_001,
            signature,
            evict: None,
        },
    );
    assert_failed(&greedy, "staking", "InvalidCommission");
    for text in ["0.0.0.0:30001", "224.0.0.1:30001", "127.0.0.1:0"] {
        let (key, signature) = sign(&world, text);
        let unreachable = world.chain.call(
            &alice,
            Call::Validate {
                consensus_key: key,
                p2p_address: text.parse().unwrap(),
                commission_permille: 0,
                signature,
                evict: None,
            },
        );
        assert_failed(&unreachable, "staking", "InvalidAddress");
    }
    // A candidate keeps the validator minimum until it chills.
    assert!(validate(&mut world, &alice, &consensus, 30_001));
    let leaving = world.chain.call(
        &alice,
        Call::Unbond {
            amount: Amount(10_000),
        },
    );
    assert_failed(&leaving, "staking", "BondTooLow");
    assert!(world.chain.call(&alice, Call::Chill).success);
    assert!(
        world
            .chain
            .call(
                &alice,
                Call::Unbond {
                    amount: Amount(10_000)
                }
            )
            .success
    );
    let again = world.chain.call(&alice, Call::Chill);
    assert_failed(&again, "staking", "NotActive");
}

#[test]
fn nominations_name_distinct_candidates() {
    let mut world = world(false);
    let a = candidate(&mut world, 50, 20_000);
    let nominator = funded(&mut world, 51, 1_000_000);
    assert!(bond(&mut world, &nominator, Amount(5_000)));
    let cases = [
        (vec![], "none given"),
        (vec![address(&a), address(&a)], "twice"),
        (vec![address(&nominator)], "not a candidate"),
    ];
    for (targets, why) in cases {
        let receipt = world.chain.call(
            &nominator,
            Call::Nominate {
                targets: targets.try_into().unwrap(),
                evict: None,
            },
        );
        let message = assert_failed(&receipt, "staking", "InvalidTargets");
        assert!(message.contains(why), "{message}");
    }
    let ok = world.chain.call(
        &nominator,
        Call::Nominate {
            targets: vec![address(&a)].try_into().unwrap(),
            evict: None,
        },
    );
    assert!(ok.success);
    // An unbonded account cannot nominate.
    let stranger = funded(&mut world, 52, 1_000_000);
    let unbonded = world.chain.call(
        &stranger,
        Call::Nominate {
            targets: vec![address(&a)].try_into().unwrap(),
            evict: None,
        },
    );
    assert_failed(&unbonded, "staking", "NotBonded");
}

#[test]
fn settings_are_privileged_and_bounded() {
    let mut world = world(false);
    let refused = world.tenant_call(Call::SetConfig {
        config: config(true),
    });
    assert_failed(&refused, "staking", "BadOrigin");
    for bad in [
        StakingConfig {
            committee_size: 3,
            ..config(true)
        },
        StakingConfig {
            epoch_length_blocks: 9,
            ..config(true)
        },
        StakingConfig {
            unbonding_blocks: 0,
            ..config(true)
        },
        StakingConfig {
            min_validator_bond: Amount(1),
            ..config(true)
        },
    ] {
        let receipt = world
            .chain
            .call(&world.root.clone(), Call::SetConfig { config: bad });
        assert_failed(&receipt, "staking", "InvalidConfig");
    }
    assert_eq!(world.chain.value::<Config>(), config(false));
}

/// Under proof of authority the genesis validators serve every epoch; with elections on the
/// committee two epochs ahead follows stake, elected exactly as `elect` says.
#[test]
fn epochs_carry_the_genesis_committee_then_elect_from_stake() {
    let mut world = world(false);
    let genesis: Vec<Address> = {
        let mut accounts: Vec<_> = MockChain::genesis_validators()
            .iter()
            .map(address)
            .collect();
        accounts.sort();
        accounts
    };
    assert_eq!(committee(&world, 0), genesis);
    assert_eq!(committee(&world, 1), genesis);
    let stakes = [60_000u128, 50_000, 40_000, 30_000, 20_000, 10_000];
    let candidates: Vec<_> = stakes
        .iter()
        .enumerate()
        .map(|(i, stake)| candidate(&mut world, 60 + i as u64, *stake))
        .collect();
    // The first epoch (default length) ends; PoA carries the genesis committee.
    let first = world.chain.value::<CurrentEpoch>();
    world
        .chain
        .advance(first.last_height().unwrap() - world.chain.height);
    assert_eq!(world.chain.value::<CurrentEpoch>().epoch, Epoch(1));
    assert_eq!(world.chain.value::<CurrentEpoch>().length_blocks, 10);
    assert_eq!(committee(&world, 2), genesis);
    // Elections on: the next boundary elects epoch 3's committee of five.
    world.privileged(Call::SetConfig {
        config: config(true),
    });
    let nominator = funded(&mut world, 70, 1_000_000);
    assert!(bond(&mut world, &nominator, Amount(100_000)));
    let backed = address(&candidates[5]);
    assert!(
        world
            .chain
            .call(
                &nominator,
                Call::Nominate {
                    targets: vec![backed].try_into().unwrap(),
                    evict: None,
                }
            )
            .success
    );
    let current = world.chain.value::<CurrentEpoch>();
    world
        .chain
        .advance(current.last_height().unwrap() - world.chain.height);
    let elected = committee(&world, 3);
    assert_eq!(elected.len(), 5);
    // The weakest self-bond, backed by the nominator, is in; the 20,000 one is out.
    assert!(elected.contains(&backed));
    assert!(!elected.contains(&address(&candidates[4])));
    let members = world.chain.map::<Committees>(&Epoch(3)).unwrap().members;
    let seat = members.iter().find(|m| m.validator == backed).unwrap();
    assert_eq!(seat.backing, Amount(110_000));
    assert_eq!(seat.commission_permille, 50);
    // Epoch 2 still has the genesis committee: known a full epoch ahead, never rewritten.
    assert_eq!(committee(&world, 2), genesis);
}

#[test]
fn an_election_with_too_few_candidates_keeps_the_committee() {
    let mut world = world(true);
    for i in 0..3 {
        candidate(&mut world, 80 + i, 50_000);
    }
    let first = world.chain.value::<CurrentEpoch>();
    let (_, events) = {
        world
            .chain
            .advance(first.last_height().unwrap() - world.chain.height - 1);
        world.chain.execute_with_events(&[]).unwrap()
    };
    assert!(events.iter().any(|event| matches!(
        event,
        RuntimeEvent::Staking(logos_types::staking::Event::ElectionFailed { candidates: 3, .. })
    )));
    assert_eq!(committee(&world, 2), committee(&world, 1));
}

fn intent() -> Validator {
    Validator {
        consensus_key: NodeKey([1; 32]),
        p2p_address: at(1),
        commission_permille: 0,
    }
}

fn candidates(count: u8, own: u128) -> Vec<Candidate> {
    (0..count)
        .map(|i| Candidate {
            account: Address([i; 20]),
            own: Amount(own),
            validator: intent(),
        })
        .collect()
}

/// Two factions with 60 % and 40 % of the stake, each backing five candidates: Phragmén gives
/// them three and two of five seats, where electing by approval stake would give the larger
/// faction all five.
#[test]
fn phragmen_seats_factions_in_proportion_to_stake() {
    let all = candidates(10, 0);
    let faction = |stake: u128, range: std::ops::Range<u8>| Nominator {
        account: Address([200 + range.start; 20]),
        stake: Amount(stake),
        targets: range.map(|i| Address([i; 20])).collect(),
    };
    let nominators = [faction(600, 0..5), faction(400, 5..10)];
    let seats = elect(&all, &nominators, 5);
    let first = seats.iter().filter(|seat| seat.candidate < 5).count();
    assert_eq!((first, seats.len() - first), (3, 2));
    // Each faction's stake is split among its elected members, and recorded as exposure.
    assert_eq!(seats[0].backing, Amount(200));
    assert_eq!(seats[0].exposures.len(), 1);
    assert_eq!(seats[0].exposures[0].stake, Amount(200));
    let second = seats.iter().find(|seat| seat.candidate >= 5).unwrap();
    assert_eq!(second.backing, Amount(200));
}

#[test]
fn phragmen_is_total_on_hostile_inputs() {
    // Enormous stakes, zero stakes, unknown and repeated targets, more seats than candidates.
    let mut all = candidates(4, u128::MAX / 3);
    all[3].own = Amount::ZERO;
    let nominators = [
        Nominator {
            account: Address([100; 20]),
            stake: Amount(u128::MAX / 3),
            targets: vec![Address([0; 20]), Address([0; 20]), Address([99; 20])],
        },
        Nominator {
            account: Address([101; 20]),
            stake: Amount::ZERO,
            targets: vec![Address([3; 20])],
        },
        Nominator {
            account: Address([102; 20]),
            stake: Amount(5),
            targets: vec![],
        },
    ];
    let seats = elect(&all, &nominators, 100);
    // Candidate 3 has no weight behind it: never elected.
    assert_eq!(seats.len(), 3);
    assert!(seats.iter().all(|seat| seat.candidate != 3));
    assert_eq!(seats[0].candidate, 0);
    assert!(elect(&[], &nominators, 5).is_empty());
    assert!(elect(&all, &[], 0).is_empty());
    // Equal stakes: ties go to the earlier (lower) account, the same every time.
    let tied = candidates(6, 1_000);
    let seats: Vec<_> = elect(&tied, &[], 4).iter().map(|s| s.candidate).collect();
    assert_eq!(seats, vec![0, 1, 2, 3]);
}

mod equivocation {
    //! Consensus faults reported with real simplex votes (commonware's ed25519 scheme, the
    //! chain's namespace): the offender and its nominators pay, the reporter earns, the
    //! offender leaves the next committee; forged, foreign, replayed and malformed evidence
    //! changes nothing.

    use super::*;
    use commonware_codec::Encode;
    use commonware_consensus::{
        simplex::{
            scheme::ed25519::Scheme,
            types::{ConflictingNotarize, Finalize, Notarize, Nullify, NullifyFinalize, Proposal},
        },
        types::{Epoch as SimplexEpoch, Round, View},
    };
    use commonware_utils::ordered::Set;
    use logos_primitives::{hash, ChainId, Hash, PublicKey};
    use logos_types::{
        balances::community_account,
        staking::{CurrentEpoch, Disqualified, Event, FaultKind, Nominations, Validators},
    };

    /// The signing scheme of genesis validator `index` on `chain_id`.
    fn signer(index: usize, chain_id: &ChainId) -> Scheme {
        let keys = MockChain::genesis_validators();
        let participants: Set<PublicKey> =
            Set::from_iter_dedup(keys.iter().map(|k| k.public_key()));
        Scheme::signer(
            &chain_id.consensus_namespace(),
            participants,
            keys[index].clone(),
        )
        .expect("a participant")
    }

    fn proposal(epoch: u64, view: u64, payload: &[u8]) -> Proposal<Hash> {
        Proposal::new(
            Round::new(SimplexEpoch::new(epoch), View::new(view)),
            View::new(view - 1),
            hash(&[payload]),
        )
    }

    /// Two notarize votes of genesis validator `index` for different blocks in one view.
    fn conflicting(index: usize, chain_id: &ChainId, epoch: u64, view: u64) -> Vec<u8> {
        let scheme = signer(index, chain_id);
        let first = Notarize::sign(&scheme, proposal(epoch, view, b"a")).unwrap();
        let second = Notarize::sign(&scheme, proposal(epoch, view, b"b")).unwrap();
        ConflictingNotarize::new(first, second).encode().to_vec()
    }

    fn report(
        world: &mut World,
        reporter: &PrivateKey,
        kind: FaultKind,
        bytes: Vec<u8>,
    ) -> logos_types::Receipt {
        world.chain.call(
            reporter,
            Call::ReportEquivocation {
                kind,
                evidence: bytes.try_into().unwrap(),
            },
        )
    }

    /// Genesis validator 0 bonds 100,000 and declares itself; a nominator backs it and
    /// another candidate with 40,000.
    fn staked() -> (World, PrivateKey, PrivateKey) {
        let mut world = world(false);
        let validator = MockChain::genesis_validators()[0].clone();
        world.privileged(balances::Call::Transfer {
            to: address(&validator),
            amount: Amount(1_000_000),
        });
        assert!(bond(&mut world, &validator, Amount(100_000)));
        assert!(validate(&mut world, &validator, &validator, 30_300));
        let other = candidate(&mut world, 90, 20_000);
        let nominator = funded(&mut world, 91, 1_000_000);
        assert!(bond(&mut world, &nominator, Amount(40_000)));
        let targets = vec![address(&validator), address(&other)];
        assert!(
            world
                .chain
                .call(
                    &nominator,
                    Call::Nominate {
                        targets: targets.try_into().unwrap(),
                        evict: None,
                    }
                )
                .success
        );
        (world, validator, nominator)
    }

    #[test]
    fn a_proven_equivocation_slashes_bond_and_exposure_pays_the_reporter_and_unseats() {
        let (mut world, validator, nominator) = staked();
        let reporter = funded(&mut world, 92, 10_000);
        let treasury = world.chain.account(&community_account()).balance;
        let reporter_before = world.chain.account(&address(&reporter)).balance;
        let evidence = conflicting(0, &world.chain.chain_id, 0, 7);
        let receipt = report(
            &mut world,
            &reporter,
            FaultKind::ConflictingNotarize,
            evidence.clone(),
        );
        assert!(receipt.success, "{receipt:?}");
        // 10 % of 100,000; nothing of the nominator: under proof of authority nobody's
        // stake backed the seat (no exposure was fixed); the reporter earns 10 % of the
        // offender's own slash.
        let slashed = receipt.events.iter().find_map(|event| match event {
            RuntimeEvent::Staking(Event::Slashed {
                amount,
                nominators,
                reward,
                validator: v,
                view,
                ..
            }) => {
                assert_eq!(*v, address(&validator));
                assert_eq!(*view, 7);
                Some((*amount, *nominators, *reward))
            }
            _ => None,
        });
        assert_eq!(slashed, Some((Amount(10_000), Amount::ZERO, Amount(1_000))));
        assert_eq!(
            world
                .chain
                .map::<Ledgers>(&address(&validator))
                .unwrap()
                .active,
            Amount(90_000)
        );
        assert_eq!(
            world
                .chain
                .map::<Ledgers>(&address(&nominator))
                .unwrap()
                .active,
            Amount(40_000)
        );
        let fee = world.chain.params.min_fee.0;
        assert_eq!(
            world.chain.account(&address(&reporter)).balance.0,
            reporter_before.0 + 1_000 - fee
        );
        assert_eq!(
            world.chain.account(&community_account()).balance.0,
            treasury.0 + 9_000
        );
        // Chilled, disqualified, out of the next committee (5 members: one may go).
        assert!(world
            .chain
            .map::<Validators>(&address(&validator))
            .is_none());
        assert_eq!(
            world.chain.map::<Disqualified>(&address(&validator)),
            Some(Epoch(2))
        );
        assert!(!committee(&world, 1).contains(&address(&validator)));
        assert_eq!(committee(&world, 1).len(), 4);
        let redeclare = world.chain.call(&validator, {
            let (key, signature) = sign_intent(
                &validator,
                &world.chain.chain_id,
                &address(&validator),
                &at(30_300),
            );
            Call::Validate {
                consensus_key: key,
                p2p_address: at(30_300),
                commission_permille: 0,
                signature,
                evict: None,
            }
        });
        assert_failed(&redeclare, "staking", "Disqualified");
        // The nominator still backs the other candidate; its nomination stays.
        assert!(world
            .chain
            .map::<Nominations>(&address(&nominator))
            .is_some());
        // The same offence again, even with other votes, pays nothing more.
        let again = report(
            &mut world,
            &reporter,
            FaultKind::ConflictingNotarize,
            evidence,
        );
        assert_failed(&again, "staking", "AlreadyReported");
        let scheme = signer(0, &world.chain.chain_id);
        let other = ConflictingNotarize::new(
            Notarize::sign(&scheme, proposal(0, 7, b"c")).unwrap(),
            Notarize::sign(&scheme, proposal(0, 7, b"d")).unwrap(),
        );
        let replay = report(
            &mut world,
            &reporter,
            FaultKind::ConflictingNotarize,
            other.encode().to_vec(),
        );
        assert_failed(&replay, "staking", "AlreadyReported");
        // Another view while disqualified: punished once per disqualification, not per view.
        let later = conflicting(0, &world.chain.chain_id, 0, 8);
        let noted = report(
            &mut world,
            &reporter,
            FaultKind::ConflictingNotarize,
            later.clone(),
        );
        assert!(noted.success, "{noted:?}");
        assert!(noted.events.iter().any(|event| matches!(
            event,
            RuntimeEvent::Staking(Event::OffenceNoted { view: 8, .. })
        )));
        assert_eq!(
            world
                .chain
                .map::<Ledgers>(&address(&validator))
                .unwrap()
                .active,
            Amount(90_000)
        );
        // Recorded: it cannot be kept and reported again once the disqualification ends.
        let kept = report(&mut world, &reporter, FaultKind::ConflictingNotarize, later);
        assert_failed(&kept, "staking", "AlreadyReported");
        // The offender is out of every nomination.
        let targets = world
            .chain
            .map::<Nominations>(&address(&nominator))
            .unwrap();
        assert!(!targets.contains(&address(&validator)));
    }

    /// Under elections the nominators behind a member at the election pay their exposure:
    /// chilling afterwards does not escape it, nominating afterwards does not pay for it, and
    /// the reporter (here: an account of the offender's own) earns only from the offender.
    #[test]
    fn nominators_pay_the_exposure_fixed_at_the_election() {
        let mut world = world(true);
        let members: Vec<PrivateKey> = (0..5)
            .map(|i| candidate(&mut world, 110 + i, 100_000))
            .collect();
        let early = funded(&mut world, 120, 1_000_000);
        assert!(bond(&mut world, &early, Amount(60_000)));
        let targets = vec![address(&members[0]), address(&members[1])];
        assert!(
            world
                .chain
                .call(
                    &early,
                    Call::Nominate {
                        targets: targets.try_into().unwrap(),
                        evict: None,
                    }
                )
                .success
        );
        // The end of epoch 0 elects epoch 2's committee, with the exposures.
        let first = world.chain.value::<CurrentEpoch>();
        world
            .chain
            .advance(first.last_height().unwrap() - world.chain.height);
        assert_eq!(committee(&world, 2).len(), 5);
        // The early nominator tries to escape; a late one joins.
        assert!(world.chain.call(&early, Call::Chill).success);
        let late = funded(&mut world, 121, 1_000_000);
        assert!(bond(&mut world, &late, Amount(60_000)));
        let targets = vec![address(&members[0])];
        assert!(
            world
                .chain
                .call(
                    &late,
                    Call::Nominate {
                        targets: targets.try_into().unwrap(),
                        evict: None,
                    }
                )
                .success
        );
        // Member 0 double-votes in epoch 2 and reports itself from another account.
        let keys: Vec<PrivateKey> = (0..5)
            .map(|i| PrivateKey::from_seed(110 + i + 10_000))
            .collect();
        let participants: Set<PublicKey> =
            Set::from_iter_dedup(keys.iter().map(|k| k.public_key()));
        let scheme = Scheme::signer(
            &world.chain.chain_id.consensus_namespace(),
            participants,
            keys[0].clone(),
        )
        .unwrap();
        let evidence = ConflictingNotarize::new(
            Notarize::sign(&scheme, proposal(2, 3, b"a")).unwrap(),
            Notarize::sign(&scheme, proposal(2, 3, b"b")).unwrap(),
        );
        let accomplice = funded(&mut world, 122, 10_000);
        let before = world.chain.account(&address(&accomplice)).balance;
        let receipt = report(
            &mut world,
            &accomplice,
            FaultKind::ConflictingNotarize,
            evidence.encode().to_vec(),
        );
        assert!(receipt.success, "{receipt:?}");
        // Own: 10 % of 100,000. Early nominator: 10 % of its exposure 60,000 / 2.
        assert_eq!(
            world
                .chain
                .map::<Ledgers>(&address(&members[0]))
                .unwrap()
                .active,
            Amount(90_000)
        );
        assert_eq!(
            world.chain.map::<Ledgers>(&address(&early)).unwrap().active,
            Amount(57_000)
        );
        assert_eq!(
            world.chain.map::<Ledgers>(&address(&late)).unwrap().active,
            Amount(60_000)
        );
        // The accomplice earns 10 % of the offender's own 10,000 (minus its fee): less than
        // the offender lost, and nothing of the nominators'.
        let fee = world.chain.params.min_fee.0;
        assert_eq!(
            world.chain.account(&address(&accomplice)).balance.0,
            before.0 + 1_000 - fee
        );
    }

    #[test]
    fn a_nullify_and_a_finalize_in_one_view_is_a_fault_too() {
        let (mut world, validator, _) = staked();
        let scheme = signer(0, &world.chain.chain_id);
        let round = Round::new(SimplexEpoch::new(0), View::new(9));
        let nullify = Nullify::sign::<Hash>(&scheme, round).unwrap();
        let finalize = Finalize::sign(&scheme, proposal(0, 9, b"a")).unwrap();
        let evidence = NullifyFinalize::new(nullify, finalize).encode().to_vec();
        let reporter = funded(&mut world, 93, 10_000);
        let receipt = report(&mut world, &reporter, FaultKind::NullifyFinalize, evidence);
        assert!(receipt.success, "{receipt:?}");
        assert_eq!(
            world
                .chain
                .map::<Ledgers>(&address(&validator))
                .unwrap()
                .active,
            Amount(90_000)
        );
    }

    #[test]
    fn forged_foreign_unknown_and_malformed_evidence_changes_nothing() {
        let (mut world, validator, _) = staked();
        let reporter = funded(&mut world, 94, 10_000);
        let chain_id = world.chain.chain_id;
        let mut forged = conflicting(0, &chain_id, 0, 7);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let foreign = conflicting(0, &ChainId(hash(&[b"another chain"])), 0, 7);
        let cases = [
            (FaultKind::ConflictingNotarize, forged, "InvalidEvidence"),
            (FaultKind::ConflictingNotarize, foreign, "InvalidEvidence"),
            // Notarize votes offered as finalize votes: other signed messages.
            (
                FaultKind::ConflictingFinalize,
                conflicting(0, &chain_id, 0, 7),
                "InvalidEvidence",
            ),
            (
                FaultKind::ConflictingNotarize,
                conflicting(0, &chain_id, 99, 7),
                "UnknownEpoch",
            ),
            (
                FaultKind::ConflictingNotarize,
                vec![0xFF; 40],
                "InvalidEvidence",
            ),
            (
                FaultKind::ConflictingNotarize,
                Vec::new(),
                "InvalidEvidence",
            ),
        ];
        let before = world.chain.map::<Ledgers>(&address(&validator)).unwrap();
        for (kind, bytes, error) in cases {
            let receipt = report(&mut world, &reporter, kind, bytes);
            assert_failed(&receipt, "staking", error);
        }
        // One vote twice is no conflict: the decoder refuses it.
        let scheme = signer(0, &chain_id);
        let vote = Notarize::sign(&scheme, proposal(0, 7, b"a")).unwrap();
        let mut same = vote.encode().to_vec();
        same.extend(vote.encode().to_vec());
        let receipt = report(&mut world, &reporter, FaultKind::ConflictingNotarize, same);
        assert_failed(&receipt, "staking", "InvalidEvidence");
        assert_eq!(
            world.chain.map::<Ledgers>(&address(&validator)).unwrap(),
            before
        );
        assert!(world
            .chain
            .map::<Validators>(&address(&validator))
            .is_some());
    }
}

mod lists_and_rewards {
    //! Full lists never lock out more stake than they hold; stake below the minimum never
    //! keeps a slot; the settings' elections switch; rewards by backing and produced blocks.

    use super::*;
    use crate::rewards::{member_rewards, mul_div, split_member};
    use logos_types::{
        balances::community_account,
        staking::{Authored, Member, Nominations, Validators, CANDIDATES_MAX},
    };

    #[test]
    fn a_full_candidate_list_takes_a_stronger_newcomer_and_refuses_a_weaker_one() {
        let mut world = world(false);
        for i in 0..CANDIDATES_MAX as u64 {
            candidate(&mut world, 1_000 + i, 10_000 + u128::from(i));
        }
        assert_eq!(world.chain.value::<ValidatorList>().len(), CANDIDATES_MAX);
        // Weaker than everyone listed: refused.
        let weak = funded(&mut world, 5_000, 1_000_000);
        assert!(bond(&mut world, &weak, Amount(10_000)));
        let (key, signature) = sign_intent(
            &PrivateKey::from_seed(5_001),
            &world.chain.chain_id,
            &address(&weak),
            &at(40_000),
        );
        let refused = world.chain.call(
            &weak,
            Call::Validate {
                consensus_key: key,
                p2p_address: at(40_000),
                commission_permille: 0,
                signature,
                evict: None,
            },
        );
        let message = assert_failed(&refused, "staking", "RegistryFull");
        assert!(message.contains("evict"), "{message}");
        // Naming a stronger entry, or one not listed, replaces nothing.
        let weakest = PrivateKey::from_seed(1_000);
        let strongest = PrivateKey::from_seed(1_000 + CANDIDATES_MAX as u64 - 1);
        for named in [&strongest, &weak] {
            let receipt = world.chain.call(
                &weak,
                Call::Validate {
                    consensus_key: key,
                    p2p_address: at(40_000),
                    commission_permille: 0,
                    signature,
                    evict: Some(address(named)),
                },
            );
            assert_failed(&receipt, "staking", "NotReplaceable");
        }
        // Stronger, naming the weakest listed (10,000, seed 1,000): it is chilled, with an
        // event, to make room; only the named entry is read.
        let strong = funded(&mut world, 5_002, 1_000_000);
        assert!(bond(&mut world, &strong, Amount(50_000)));
        let consensus = PrivateKey::from_seed(5_003);
        let (key, signature) = sign_intent(
            &consensus,
            &world.chain.chain_id,
            &address(&strong),
            &at(40_001),
        );
        let receipt = world.chain.call(
            &strong,
            Call::Validate {
                consensus_key: key,
                p2p_address: at(40_001),
                commission_permille: 0,
                signature,
                evict: Some(address(&weakest)),
            },
        );
        assert!(receipt.success, "{receipt:?}");
        assert!(receipt.events.iter().any(|event| matches!(
            event,
            RuntimeEvent::Staking(logos_types::staking::Event::Chilled { account })
                if *account == address(&weakest)
        )));
        assert!(world.chain.map::<Validators>(&address(&strong)).is_some());
        assert!(world.chain.map::<Validators>(&address(&weakest)).is_none());
        assert_eq!(world.chain.value::<ValidatorList>().len(), CANDIDATES_MAX);
    }

    #[test]
    fn stake_below_the_minimum_keeps_no_slot() {
        let mut world = world(false);
        let target = candidate(&mut world, 130, 20_000);
        let nominator = funded(&mut world, 131, 1_000_000);
        assert!(bond(&mut world, &nominator, Amount(5_000)));
        let targets = vec![address(&target)];
        assert!(
            world
                .chain
                .call(
                    &nominator,
                    Call::Nominate {
                        targets: targets.try_into().unwrap(),
                        evict: None,
                    }
                )
                .success
        );
        // Unbonding everything ends the nomination.
        assert!(
            world
                .chain
                .call(
                    &nominator,
                    Call::Unbond {
                        amount: Amount(5_000)
                    }
                )
                .success
        );
        assert!(world
            .chain
            .map::<Nominations>(&address(&nominator))
            .is_none());
        // Rebonding dust is refused: a ledger holds at least the minimum.
        let dust = world
            .chain
            .call(&nominator, Call::Rebond { amount: Amount(1) });
        assert_failed(&dust, "staking", "BondTooLow");
    }

    #[test]
    fn elections_switch_through_the_privileged_origin_only() {
        let mut world = world(false);
        let refused = world.tenant_call(Call::SetElections { elections: true });
        assert_failed(&refused, "staking", "BadOrigin");
        world.privileged(Call::SetElections { elections: true });
        let config = world.chain.value::<Config>();
        assert!(config.elections);
        assert_eq!(config.epoch_length_blocks, 10);
    }

    /// The address a member's consensus key proposes blocks as.
    fn proposer(seed: u8) -> Address {
        address(&PrivateKey::from_seed(u64::from(seed)))
    }

    fn member(seed: u8, backing: u128, commission_permille: u16) -> Member {
        Member {
            validator: Address([seed; 20]),
            consensus_key: NodeKey::from_public_key(
                &PrivateKey::from_seed(u64::from(seed)).public_key(),
            ),
            p2p_address: at(1),
            backing: Amount(backing),
            commission_permille,
        }
    }

    /// Parts follow backing and are cut by missed leader turns; the withheld rest stays.
    #[test]
    fn rewards_follow_backing_and_produced_blocks() {
        let members = [member(1, 300, 0), member(2, 100, 0)];
        // Blocks count for the key that proposed them, not for the staking account.
        let produced = [
            Authored {
                author: proposer(1),
                blocks: 50,
            },
            Authored {
                author: proposer(2),
                blocks: 25,
            },
            Authored {
                author: Address([1; 20]),
                blocks: 1_000,
            },
        ];
        // 100 blocks, 2 members: 50 expected each.
        let parts = member_rewards(
            &members,
            &produced,
            &logos_types::staking::VoteTally::default(),
            100,
            Amount(1_000),
        );
        assert_eq!(parts[0].amount, Amount(750));
        assert_eq!(parts[1].amount, Amount(125));
        assert_eq!((parts[1].produced, parts[1].expected), (25, 50));
        // Nobody backed (proof of authority): equal parts.
        let poa = [member(1, 0, 0), member(2, 0, 0)];
        let parts = member_rewards(
            &poa,
            &produced,
            &logos_types::staking::VoteTally::default(),
            100,
            Amount(1_000),
        );
        assert_eq!(parts[0].amount, Amount(500));
        // Overflow-free on extremes.
        assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX), u128::MAX);
        assert_eq!(mul_div(u128::MAX - 1, 3, 0), 0);
        assert!(mul_div(u128::MAX / 2, u128::MAX / 3, u128::MAX) <= u128::MAX / 6 + 1);
    }

    #[test]
    fn a_members_part_pays_commission_then_stake_pro_rata() {
        let validator = Address([1; 20]);
        let backers = [
            (Address([2; 20]), Amount(600)),
            (Address([3; 20]), Amount(300)),
        ];
        let paid = split_member(validator, Amount(1_000), 100, Amount(100), &backers);
        // 100 commission; 900 split 100:600:300 → 90, 540, 270.
        assert_eq!(paid[0], (validator, Amount(190)));
        assert_eq!(paid[1], (Address([2; 20]), Amount(540)));
        assert_eq!(paid[2], (Address([3; 20]), Amount(270)));
        let total: u128 = paid.iter().map(|(_, amount)| amount.0).sum();
        assert_eq!(total, 1_000);
    }

    /// At an epoch's end its committee is paid from the treasury for the blocks it proposed.
    #[test]
    fn an_epoch_pays_its_committee_from_the_treasury() {
        let mut world = world(false);
        world.privileged(balances::Call::Transfer {
            to: community_account(),
            amount: Amount(500_000_000),
        });
        let genesis = MockChain::genesis_validators();
        let author = address(&genesis[0]);
        world.chain.author = author;
        let before = world.chain.account(&author).balance;
        let treasury = world.chain.account(&community_account()).balance;
        let first = world.chain.value::<CurrentEpoch>();
        world
            .chain
            .advance(first.last_height().unwrap() - world.chain.height);
        // Five equal members (no backing), the 1e9 reward capped by the treasury's 5e8: 1e8
        // each; only validator 0 proposed (every block of the epoch it saw, more than its
        // 1,440 expected), the others' parts stay in the treasury.
        // Empty blocks: no fees, only the reward.
        let paid = world.chain.account(&author).balance.0 - before.0;
        assert_eq!(paid, 100_000_000);
        assert_eq!(
            world.chain.account(&community_account()).balance.0,
            treasury.0 - 100_000_000
        );
        assert_eq!(
            world.chain.account(&address(&genesis[1])).balance,
            Amount::ZERO
        );
    }
}

/// Missed votes: vote samples recorded from the attacker's side too, and rewards cut by them.
mod missed_votes {
    use super::*;
    use commonware_codec::Encode;
    use commonware_consensus::{
        simplex::{
            scheme::ed25519::Scheme,
            types::{Finalization, Finalize, Proposal},
        },
        types::{Epoch as SimplexEpoch, Round, View},
    };
    use commonware_parallel::Sequential;
    use commonware_utils::ordered::Set;
    use logos_primitives::{ChainId, PublicKey};
    use logos_types::{
        balances::community_account,
        staking::{Event, OpenSamples, VoteKind, VoteSample, Votes},
    };

    /// Genesis validator `index`'s signing scheme over `participants` on `chain_id`.
    fn scheme(index: usize, chain_id: &ChainId, participants: &[PrivateKey]) -> Scheme {
        let set: Set<PublicKey> = Set::from_iter_dedup(participants.iter().map(|k| k.public_key()));
        let keys = MockChain::genesis_validators();
        Scheme::signer(&chain_id.consensus_namespace(), set, keys[index].clone()).unwrap()
    }

    fn finalize(
        index: usize,
        chain_id: &ChainId,
        epoch: u64,
        height: u64,
    ) -> Finalize<Scheme, logos_primitives::Hash> {
        let genesis = MockChain::genesis_validators();
        let proposal = Proposal::new(
            Round::new(SimplexEpoch::new(epoch), View::new(height + 1)),
            View::new(height),
            MockChain::block_digest(height),
        );
        Finalize::sign(&scheme(index, chain_id, &genesis), proposal).unwrap()
    }

    /// A finalization certificate of genesis validators `signers` for the block at `height`.
    fn certificate(chain_id: ChainId, signers: &[usize], height: u64) -> Vec<u8> {
        let votes: Vec<_> = signers
            .iter()
            .map(|index| finalize(*index, &chain_id, 0, height))
            .collect();
        let genesis = MockChain::genesis_validators();
        let scheme = scheme(signers[0], &chain_id, &genesis);
        let votes = commonware_utils::iter::NonEmpty::try_new(votes.into_iter()).unwrap();
        Finalization::from_owned_finalizes(&scheme, votes, &Sequential)
            .unwrap()
            .encode()
            .to_vec()
    }

    fn record(world: &mut World, kind: VoteKind, bytes: Vec<u8>) -> logos_types::Receipt {
        // Anyone may record (funded in the test's first lines).
        let sender = PrivateKey::from_seed(55);
        world.chain.call(
            &sender,
            Call::RecordVotes {
                kind,
                evidence: bytes.try_into().unwrap(),
            },
        )
    }

    /// Advances to the next open sample; returns it.
    fn next_sample(world: &mut World, after: u64) -> VoteSample {
        loop {
            world.chain.advance(1);
            let open = world.chain.value::<OpenSamples>();
            if let Some(sample) = open.iter().find(|sample| sample.height > after) {
                return sample.clone();
            }
        }
    }

    /// Validator `index`'s participant rank (simplex orders by key).
    fn rank(index: usize) -> usize {
        let keys = MockChain::genesis_validators();
        let mut sorted: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        sorted.sort();
        sorted
            .iter()
            .position(|key| *key == keys[index].public_key())
            .unwrap()
    }

    #[test]
    fn recorded_votes_count_and_forged_replayed_or_late_ones_change_nothing() {
        let mut world = world(false);
        world.privileged(balances::Call::Transfer {
            to: community_account(),
            amount: Amount(500_000_000),
        });
        funded(&mut world, 55, 1_000_000);
        let genesis = MockChain::genesis_validators();
        let author = address(&genesis[0]);
        world.chain.author = author;
        let chain_id = world.chain.chain_id;
        let first = next_sample(&mut world, 0);
        assert_eq!(first.digest, MockChain::block_digest(first.height));
        // A quorum's certificate: four new votes.
        let receipt = record(
            &mut world,
            VoteKind::Certificate,
            certificate(chain_id, &[0, 1, 2, 3], first.height),
        );
        assert!(receipt.success, "{receipt:?}");
        assert!(receipt.events.iter().any(|event| matches!(
            event,
            RuntimeEvent::Staking(Event::VotesRecorded { added: 4, .. })
        )));
        // Replayed: nothing new.
        assert_failed(
            &record(
                &mut world,
                VoteKind::Certificate,
                certificate(chain_id, &[0, 1, 2, 3], first.height),
            ),
            "staking",
            "NoNewVotes",
        );
        let before = world.chain.value::<OpenSamples>();
        // Forged: a vote for another network, a flipped signature byte, garbage, a block
        // that is not sampled, a vote of another epoch, a non-member's vote.
        let foreign = ChainId(logos_primitives::hash(&[b"another chain"]));
        let attacks: Vec<(VoteKind, Vec<u8>)> = vec![
            (
                VoteKind::Vote,
                finalize(4, &foreign, 0, first.height).encode().to_vec(),
            ),
            (VoteKind::Vote, {
                let mut bytes = finalize(4, &chain_id, 0, first.height).encode().to_vec();
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                bytes
            }),
            (VoteKind::Certificate, vec![0xff; 64]),
            (VoteKind::Vote, Vec::new()),
            (
                VoteKind::Vote,
                finalize(4, &chain_id, 0, first.height - 1)
                    .encode()
                    .to_vec(),
            ),
            (
                VoteKind::Vote,
                finalize(4, &chain_id, 1, first.height).encode().to_vec(),
            ),
            (VoteKind::Vote, {
                // Signed by a key outside the committee (the scheme of 6 participants).
                let mut six = genesis.clone();
                six.push(PrivateKey::from_seed(77));
                let outsider = Scheme::signer(
                    &chain_id.consensus_namespace(),
                    Set::from_iter_dedup(six.iter().map(|k| k.public_key())),
                    PrivateKey::from_seed(77),
                )
                .unwrap();
                let proposal = Proposal::new(
                    Round::new(SimplexEpoch::new(0), View::new(first.height + 1)),
                    View::new(first.height),
                    first.digest,
                );
                Finalize::sign(&outsider, proposal)
                    .unwrap()
                    .encode()
                    .to_vec()
            }),
        ];
        let expected = [
            "InvalidVotes", // another network's namespace
            "InvalidVotes", // a flipped signature byte
            "InvalidVotes", // garbage
            "InvalidVotes", // nothing
            "NoOpenSample", // a block that is not sampled
            "NoOpenSample", // another epoch
            "InvalidVotes", // a key outside the committee
        ];
        assert_eq!(attacks.len(), expected.len());
        for ((kind, bytes), error) in attacks.into_iter().zip(expected) {
            assert_failed(&record(&mut world, kind, bytes), "staking", error);
        }
        assert_eq!(world.chain.value::<OpenSamples>(), before);
        // The member the certificate left out adds its own vote.
        let receipt = record(
            &mut world,
            VoteKind::Vote,
            finalize(4, &chain_id, 0, first.height).encode().to_vec(),
        );
        assert!(receipt.success, "{receipt:?}");
        // A second sample: validator 0 (the author) misses it.
        let second = next_sample(&mut world, first.height);
        assert!(
            record(
                &mut world,
                VoteKind::Certificate,
                certificate(chain_id, &[1, 2, 3, 4], second.height)
            )
            .success
        );
        // Closed: a late vote is refused.
        let closes_at = second.closes_at;
        world.chain.advance(closes_at - world.chain.height);
        assert_failed(
            &record(
                &mut world,
                VoteKind::Vote,
                finalize(0, &chain_id, 0, second.height).encode().to_vec(),
            ),
            "staking",
            "NoOpenSample",
        );
        let tally = world.chain.value::<Votes>();
        assert_eq!(tally.samples, 2);
        assert_eq!(tally.signed[rank(0)], 1);
        assert_eq!(tally.signed[rank(4)], 2);
        // At the epoch's end validator 0, the only proposer (100,000,000 for its blocks), is
        // paid for half: it signed one sample of two.
        let before = world.chain.account(&author).balance;
        let epoch = world.chain.value::<CurrentEpoch>();
        world
            .chain
            .advance(epoch.last_height().unwrap() - world.chain.height);
        assert_eq!(
            world.chain.account(&author).balance.0 - before.0,
            50_000_000
        );
        assert_eq!(world.chain.value::<Votes>().samples, 0);
    }
}
