//! Tests of `governance` against the mock chain (every invariant checked after every block),
//! from the attacker's side: proposals that nest, do not decode or flood; votes without stake,
//! after the close, twice, or with stake that leaves before the tally; the removed authority.

use commonware_cryptography::Signer;
use logos_primitives::{Amount, PrivateKey};
use logos_runtime::mock::{address, assert_failed, fixtures::bare, fixtures::World};
use logos_types::{
    balances::{self, community_account},
    codec::encode,
    dvci::ResourceClass,
    governance::{
        Authority, Call, Config, GovernanceConfig, Open, ProposalId, ProposalStatus, Proposals,
        VoteKey, Votes, OPEN_MAX, PROPOSER_OPEN_MAX,
    },
    market::{self, Prices},
    staking, Call as RuntimeCall, Event as RuntimeEvent,
};

const DEPOSIT: Amount = Amount(10_000);
const VOTING: u64 = 10;
const DELAY: u64 = 5;

fn config() -> GovernanceConfig {
    GovernanceConfig {
        deposit: DEPOSIT,
        voting_period_blocks: VOTING,
        enactment_delay_blocks: DELAY,
        quorum_percent: 30,
        threshold_percent: 50,
    }
}

/// The bare fixture with short periods and three bonded voters holding 50 %, 30 % and 20 % of
/// the active stake.
fn world() -> (World, Vec<PrivateKey>) {
    let mut world = bare(0);
    world.privileged(Call::SetConfig { config: config() });
    let voters: Vec<_> = [5_000_000u128, 3_000_000, 2_000_000]
        .iter()
        .enumerate()
        .map(|(i, stake)| {
            let key = PrivateKey::from_seed(300 + i as u64);
            world.privileged(balances::Call::Transfer {
                to: address(&key),
                amount: Amount(stake + 1_000_000),
            });
            let bonded = world.chain.call(
                &key,
                staking::Call::Bond {
                    amount: Amount(*stake),
                },
            );
            assert!(bonded.success, "{bonded:?}");
            key
        })
        .collect();
    (world, voters)
}

fn set_price(price: u128) -> RuntimeCall {
    RuntimeCall::Market(market::Call::SetPrice {
        class: ResourceClass::ComputeHosted,
        price: Amount(price),
    })
}

fn propose(world: &mut World, key: &PrivateKey, call: RuntimeCall) -> ProposalId {
    let id = world
        .chain
        .value::<logos_types::governance::NextProposalId>();
    let receipt = world.chain.call(
        key,
        Call::Propose {
            encoded: encode(&call).try_into().unwrap(),
        },
    );
    assert!(receipt.success, "{receipt:?}");
    id
}

fn vote(world: &mut World, key: &PrivateKey, id: ProposalId, aye: bool) -> bool {
    world
        .chain
        .call(key, Call::Vote { proposal: id, aye })
        .success
}

fn price(world: &World) -> Amount {
    world
        .chain
        .map::<Prices>(&ResourceClass::ComputeHosted)
        .unwrap()
}

fn status(world: &World, id: ProposalId) -> ProposalStatus {
    world.chain.map::<Proposals>(&id).unwrap().status
}

/// A proposal changes a price: in force from the start of its enactment block, not a block
/// before; the deposit comes back.
#[test]
fn an_approved_price_change_takes_effect_exactly_at_its_enactment_block() {
    let (mut world, voters) = world();
    let proposer = voters[2].clone();
    let free = world.chain.account(&address(&proposer)).balance;
    let old = price(&world);
    let id = propose(&mut world, &proposer, set_price(5_000));
    let submitted = world.chain.height;
    assert_eq!(
        world.chain.account(&address(&proposer)).reserved,
        Amount(2_000_000 + DEPOSIT.0)
    );
    assert!(vote(&mut world, &voters[0], id, true));
    assert!(vote(&mut world, &voters[1], id, false));
    let ends = submitted + VOTING;
    world.chain.advance(ends - world.chain.height);
    let proposal = world.chain.map::<Proposals>(&id).unwrap();
    assert_eq!(proposal.status, ProposalStatus::Approved);
    assert_eq!(proposal.tally.ayes, Amount(5_000_000));
    assert_eq!(proposal.tally.nays, Amount(3_000_000));
    let enact_at = ends + DELAY;
    assert_eq!(proposal.enact_at, Some(enact_at));
    world.chain.advance(enact_at - 1 - world.chain.height);
    assert_eq!(price(&world), old);
    let (_, events) = world.chain.execute_with_events(&[]).unwrap();
    assert_eq!(world.chain.height, enact_at);
    assert_eq!(price(&world), Amount(5_000));
    assert!(events.iter().any(|event| matches!(
        event,
        RuntimeEvent::Governance(logos_types::governance::Event::Enacted { success: true, .. })
    )));
    assert_eq!(status(&world, id), ProposalStatus::Enacted);
    assert!(world.chain.value::<Open>().is_empty());
    let fee = world.chain.params.min_fee.0;
    assert_eq!(
        world.chain.account(&address(&proposer)).balance.0,
        free.0 - fee
    );
}

#[test]
fn a_proposal_without_quorum_fails_and_its_deposit_goes_to_the_treasury() {
    let (mut world, voters) = world();
    let treasury = world.chain.account(&community_account()).balance;
    let old = price(&world);
    let id = propose(&mut world, &voters[0], set_price(7_000));
    // 20 % of the stake votes aye: below the 30 % quorum.
    assert!(vote(&mut world, &voters[2], id, true));
    world.chain.advance(VOTING + DELAY + 2);
    assert_eq!(status(&world, id), ProposalStatus::NoQuorum);
    assert_eq!(price(&world), old);
    assert_eq!(
        world.chain.account(&community_account()).balance.0,
        treasury.0 + DEPOSIT.0
    );
    assert_eq!(
        world.chain.account(&address(&voters[0])).reserved,
        Amount(5_000_000)
    );
}

#[test]
fn a_majority_of_nays_rejects_and_returns_the_deposit() {
    let (mut world, voters) = world();
    let id = propose(&mut world, &voters[2], set_price(7_000));
    assert!(vote(&mut world, &voters[0], id, false));
    assert!(vote(&mut world, &voters[1], id, true));
    world.chain.advance(VOTING + DELAY);
    assert_eq!(status(&world, id), ProposalStatus::Rejected);
    assert_eq!(
        world.chain.account(&address(&voters[2])).reserved,
        Amount(2_000_000)
    );
}

/// More than two thirds against: the deposit goes to the treasury (spam costs it).
#[test]
fn a_heavily_rejected_proposal_forfeits_its_deposit() {
    let (mut world, voters) = world();
    let treasury = world.chain.account(&community_account()).balance;
    let id = propose(&mut world, &voters[2], set_price(7_000));
    assert!(vote(&mut world, &voters[0], id, false));
    assert!(vote(&mut world, &voters[1], id, false));
    world.chain.advance(VOTING + DELAY);
    assert_eq!(status(&world, id), ProposalStatus::Rejected);
    assert_eq!(
        world.chain.account(&community_account()).balance.0,
        treasury.0 + DEPOSIT.0
    );
}

/// Enacted calls run with the treasury as sender, but the treasury cannot stake: a proposal
/// cannot make it a voter or a validator.
#[test]
fn the_treasury_cannot_be_made_to_stake() {
    let (mut world, voters) = world();
    world.privileged(balances::Call::Transfer {
        to: community_account(),
        amount: Amount(100_000_000),
    });
    let bond = RuntimeCall::Staking(staking::Call::Bond {
        amount: Amount(50_000_000),
    });
    let id = propose(&mut world, &voters[0], bond);
    assert!(vote(&mut world, &voters[0], id, true));
    world.chain.advance(VOTING + DELAY);
    let proposal = world.chain.map::<Proposals>(&id).unwrap();
    assert_eq!(proposal.status, ProposalStatus::Failed);
    assert!(proposal.failure.unwrap().contains("TreasuryCannotStake"));
    assert!(world
        .chain
        .map::<logos_types::staking::Ledgers>(&community_account())
        .is_none());
}

/// A vote weighs the voter's stake, locked until the vote ends; a second vote replaces the
/// first instead of adding to it.
#[test]
fn votes_weigh_locked_stake_once() {
    let (mut world, voters) = world();
    let id = propose(&mut world, &voters[2], set_price(9_000));
    assert!(vote(&mut world, &voters[0], id, true));
    assert!(vote(&mut world, &voters[0], id, true));
    assert!(vote(&mut world, &voters[1], id, false));
    let tally = world.chain.map::<Proposals>(&id).unwrap().tally;
    assert_eq!(
        (tally.voters, tally.ayes, tally.nays),
        (2, Amount(5_000_000), Amount(3_000_000))
    );
    // A changed vote moves its weight, it does not add it.
    assert!(vote(&mut world, &voters[0], id, false));
    let tally = world.chain.map::<Proposals>(&id).unwrap().tally;
    assert_eq!(
        (tally.voters, tally.ayes, tally.nays),
        (2, Amount::ZERO, Amount(8_000_000))
    );
    assert!(vote(&mut world, &voters[0], id, true));
    // The voter cannot leave with the stake that voted, to vote again from another account.
    let left = world.chain.call(
        &voters[0],
        staking::Call::Unbond {
            amount: Amount(5_000_000),
        },
    );
    let message = assert_failed(&left, "staking", "StakeLocked");
    assert!(message.contains("locked"), "{message}");
    let ends = world.chain.map::<Proposals>(&id).unwrap().voting_ends_at;
    world.chain.advance(ends - world.chain.height);
    let proposal = world.chain.map::<Proposals>(&id).unwrap();
    assert_eq!(proposal.tally.ayes, Amount(5_000_000));
    assert_eq!(proposal.tally.nays, Amount(3_000_000));
    assert_eq!(proposal.status, ProposalStatus::Approved);
    // After the vote the stake is free to go.
    let left = world.chain.call(
        &voters[0],
        staking::Call::Unbond {
            amount: Amount(5_000_000),
        },
    );
    assert!(left.success, "{left:?}");
}

#[test]
fn votes_need_stake_an_open_proposal_and_a_known_id() {
    let (mut world, voters) = world();
    let id = propose(&mut world, &voters[0], set_price(9_000));
    let tenant = world.tenant.clone();
    let unstaked = world.chain.call(
        &tenant,
        Call::Vote {
            proposal: id,
            aye: true,
        },
    );
    let message = assert_failed(&unstaked, "governance", "NoStake");
    assert!(message.contains("logos stake bond"), "{message}");
    let unknown = world.chain.call(
        &voters[0],
        Call::Vote {
            proposal: ProposalId(99),
            aye: true,
        },
    );
    assert_failed(&unknown, "governance", "UnknownProposal");
    world.chain.advance(VOTING);
    let late = world.chain.call(
        &voters[1],
        Call::Vote {
            proposal: id,
            aye: true,
        },
    );
    assert_failed(&late, "governance", "VotingClosed");
    let key = VoteKey {
        proposal: id,
        voter: address(&voters[1]),
    };
    assert!(world.chain.map::<Votes>(&key).is_none());
}

#[test]
fn proposals_must_decode_must_not_nest_and_are_bounded() {
    let (mut world, voters) = world();
    let garbage = world.chain.call(
        &voters[0],
        Call::Propose {
            encoded: vec![2, 2, 0xFF].try_into().unwrap(),
        },
    );
    assert_failed(&garbage, "governance", "UndecodableCall");
    let inner = RuntimeCall::Governance(Call::Vote {
        proposal: ProposalId(0),
        aye: true,
    });
    let nested = world.chain.call(
        &voters[0],
        Call::Propose {
            encoded: encode(&inner).try_into().unwrap(),
        },
    );
    assert_failed(&nested, "governance", "NotGovernable");
    // A proposer who cannot pay the deposit.
    let poor = PrivateKey::from_seed(399);
    world.privileged(balances::Call::Transfer {
        to: address(&poor),
        amount: Amount(5_000),
    });
    let unpaid = world.chain.call(
        &poor,
        Call::Propose {
            encoded: encode(&set_price(1)).try_into().unwrap(),
        },
    );
    assert_failed(&unpaid, "balances", "InsufficientBalance");
    assert_eq!(world.chain.value::<Open>().len(), 0);
    // A flood of proposals stops at the bound (a voting period long enough to keep them open).
    world.privileged(Call::SetConfig {
        config: GovernanceConfig {
            voting_period_blocks: 1_000,
            ..config()
        },
    });
    // One account holds at most four open proposals.
    for _ in 0..PROPOSER_OPEN_MAX {
        propose(&mut world, &voters[0], set_price(1));
    }
    let fifth = world.chain.call(
        &voters[0],
        Call::Propose {
            encoded: encode(&set_price(1)).try_into().unwrap(),
        },
    );
    assert_failed(&fifth, "governance", "ProposerLimit");
    // Many accounts together stop at the bound.
    for seed in 0..(OPEN_MAX / PROPOSER_OPEN_MAX - 1) as u64 {
        let proposer = PrivateKey::from_seed(500 + seed);
        world.privileged(balances::Call::Transfer {
            to: address(&proposer),
            amount: Amount(1_000_000),
        });
        for _ in 0..PROPOSER_OPEN_MAX {
            propose(&mut world, &proposer, set_price(1));
        }
    }
    assert_eq!(world.chain.value::<Open>().len(), OPEN_MAX);
    let flood = world.chain.call(
        &voters[1],
        Call::Propose {
            encoded: encode(&set_price(1)).try_into().unwrap(),
        },
    );
    assert_failed(&flood, "governance", "TooManyOpen");
}

/// An approved call that fails when enacted leaves its writes out and says why.
#[test]
fn an_enacted_call_that_fails_is_recorded_with_its_reason() {
    let (mut world, voters) = world();
    let old = price(&world);
    let id = propose(&mut world, &voters[0], set_price(0));
    assert!(vote(&mut world, &voters[0], id, true));
    world.chain.advance(VOTING + DELAY);
    let proposal = world.chain.map::<Proposals>(&id).unwrap();
    assert_eq!(proposal.status, ProposalStatus::Failed);
    assert!(proposal.failure.unwrap().contains("ZeroPrice"));
    assert_eq!(price(&world), old);
}

/// A treasury spend is a transfer from the community account, enacted by a proposal.
#[test]
fn a_proposal_spends_from_the_treasury() {
    let (mut world, voters) = world();
    let grantee = PrivateKey::from_seed(398);
    world.privileged(balances::Call::Transfer {
        to: community_account(),
        amount: Amount(1_000_000),
    });
    let spend = RuntimeCall::Balances(balances::Call::Transfer {
        to: address(&grantee),
        amount: Amount(400_000),
    });
    let id = propose(&mut world, &voters[0], spend);
    assert!(vote(&mut world, &voters[0], id, true));
    world.chain.advance(VOTING + DELAY);
    assert_eq!(status(&world, id), ProposalStatus::Enacted);
    assert_eq!(
        world.chain.account(&address(&grantee)).balance,
        Amount(400_000)
    );
}

/// The bootstrap authority gives its power away; its privileged calls then fail with a clear
/// error, while proposals still enact them.
#[test]
fn after_the_authority_is_removed_only_proposals_make_privileged_calls() {
    let (mut world, voters) = world();
    let root = world.root.clone();
    let removed = world.chain.call(&root, Call::RemoveAuthority);
    assert!(removed.success, "{removed:?}");
    assert_eq!(world.chain.value::<Authority>(), None);
    let refused = world.chain.call(&root, set_price(3_000));
    let message = assert_failed(&refused, "market", "BadOrigin");
    assert!(message.contains("governance proposal"), "{message}");
    let again = world.chain.call(&root, Call::RemoveAuthority);
    assert_failed(&again, "governance", "BadOrigin");
    let id = propose(&mut world, &voters[1], set_price(3_000));
    assert!(vote(&mut world, &voters[0], id, true));
    world.chain.advance(VOTING + DELAY);
    assert_eq!(price(&world), Amount(3_000));
}

#[test]
fn a_proposal_removes_the_authority() {
    let (mut world, voters) = world();
    let id = propose(
        &mut world,
        &voters[0],
        RuntimeCall::Governance(Call::RemoveAuthority),
    );
    assert!(vote(&mut world, &voters[0], id, true));
    world.chain.advance(VOTING + DELAY);
    assert_eq!(status(&world, id), ProposalStatus::Enacted);
    assert_eq!(world.chain.value::<Authority>(), None);
    let root = world.root.clone();
    let refused = world.chain.call(&root, set_price(3_000));
    assert_failed(&refused, "market", "BadOrigin");
}

#[test]
fn settings_are_privileged_and_bounded() {
    let (mut world, voters) = world();
    let refused = world
        .chain
        .call(&voters[0], Call::SetConfig { config: config() });
    assert_failed(&refused, "governance", "BadOrigin");
    let root = world.root.clone();
    for bad in [
        GovernanceConfig {
            voting_period_blocks: 0,
            ..config()
        },
        GovernanceConfig {
            enactment_delay_blocks: 0,
            ..config()
        },
        GovernanceConfig {
            quorum_percent: 0,
            ..config()
        },
        GovernanceConfig {
            threshold_percent: 49,
            ..config()
        },
        GovernanceConfig {
            threshold_percent: 100,
            ..config()
        },
        GovernanceConfig {
            deposit: Amount::ZERO,
            ..config()
        },
    ] {
        let receipt = world.chain.call(&root, Call::SetConfig { config: bad });
        assert_failed(&receipt, "governance", "InvalidConfig");
    }
    assert_eq!(world.chain.value::<Config>(), config());
}
