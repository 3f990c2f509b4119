//! Tests of `beacon` against the mock chain (every invariant checked after every block): a DKG
//! run by the mock's five genesis validators with commonware's dealers and players, submitted
//! in parts; from the attacker's side: outsiders, forged and foreign logs, replays, parts out
//! of order, oversize logs, dealings too late, too few dealers.

use super::*;
use commonware_codec::Encode as _;
use commonware_cryptography::{
    bls12381::{
        dkg::feldman_desmedt::{Dealer, Player},
        primitives::{ops::threshold, variant::PartialSignature},
    },
    Signer as _,
};
use logos_primitives::{Amount, PrivateKey};
use logos_runtime::mock::{address, assert_failed, MockChain};
use logos_types::{
    beacon::{Call, DEALER_LOG_MAX_BYTES},
    staking::Committees,
    transaction_size, Event as RuntimeEvent, Params, TRANSACTION_MAX_BYTES,
};
use rand::SeedableRng as _;
use std::collections::BTreeMap;

const EPOCH_LENGTH_BLOCKS: u64 = 10;

/// A chain with 10-block epochs whose genesis validators can pay fees.
fn chain() -> MockChain {
    let balances: Vec<_> = MockChain::genesis_validators()
        .iter()
        .map(|key| (address(key), 1_000_000_000u128))
        .chain([(address(&outsider()), 1_000_000_000)])
        .collect();
    let params = Params {
        epoch_length_blocks: Some(EPOCH_LENGTH_BLOCKS),
        unattested: true,
        ..Params::default()
    };
    MockChain::with_params(&balances, params)
}

fn outsider() -> PrivateKey {
    PrivateKey::from_seed(77)
}

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// The round the chain will open for `epoch` with the genesis validators.
fn genesis_round() -> Round {
    let mut keys: Vec<NodeKey> = MockChain::genesis_validators()
        .iter()
        .map(|key| NodeKey::from_public_key(&key.public_key()))
        .collect();
    keys.sort();
    Round {
        dealers: BoundedVec::truncated(keys.clone()),
        players: BoundedVec::truncated(keys),
    }
}

/// An off-chain DKG among the genesis validators (dealers and players): each dealer's signed
/// log, and the players to finalize. `silent` player does not acknowledge dealer 0 (who must
/// reveal its share instead).
struct Ceremony {
    logs: Vec<(PrivateKey, SignedLog)>,
    players: BTreeMap<PublicKey, Player<Bls, PrivateKey>>,
}

fn ceremony(chain_id: &ChainId, epoch: Epoch, silent: Option<usize>) -> Ceremony {
    let info = round_info(chain_id, epoch, &genesis_round()).unwrap();
    let keys = MockChain::genesis_validators();
    let mut players: BTreeMap<_, _> = keys
        .iter()
        .map(|key| {
            let player = Player::<Bls, PrivateKey>::new(info.clone(), key.clone()).unwrap();
            (key.public_key(), player)
        })
        .collect();
    let mut logs = Vec::new();
    for (index, dealer_key) in keys.iter().enumerate() {
        let (mut dealer, public, private) =
            Dealer::start::<N3f1>(rng(index as u64), info.clone(), dealer_key.clone(), None)
                .unwrap();
        for (player_key, message) in private {
            if index == 0 && silent.is_some_and(|s| keys[s].public_key() == player_key) {
                continue;
            }
            let player = players.get_mut(&player_key).unwrap();
            let ack = player
                .dealer_message::<N3f1>(dealer_key.public_key(), public.clone(), message)
                .unwrap()
                .unwrap();
            dealer.receive_player_ack(player_key, ack).unwrap();
        }
        logs.push((dealer_key.clone(), dealer.finalize::<N3f1>()));
    }
    Ceremony { logs, players }
}

/// Submits `bytes` from `key` in parts, all in one block; true if every part was taken.
fn submit(chain: &mut MockChain, key: &PrivateKey, epoch: Epoch, bytes: &[u8]) -> bool {
    let transactions = parts(chain, key, epoch, 0, bytes);
    let receipts = chain.execute(&transactions).expect("a valid block");
    receipts.iter().all(|receipt| receipt.success)
}

/// `bytes` from `offset` on as signed part calls from `key`.
fn parts(
    chain: &mut MockChain,
    key: &PrivateKey,
    epoch: Epoch,
    offset: usize,
    bytes: &[u8],
) -> Vec<logos_types::Transaction> {
    let chunks: Vec<_> = bytes.chunks(DEALING_PART_MAX_BYTES).collect();
    let mut transactions = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        let at = offset + index * DEALING_PART_MAX_BYTES;
        let call = part(epoch, at as u32, chunk, index + 1 == chunks.len());
        transactions.push(chain.sign(key, call.into()));
    }
    transactions
}

/// One part call.
fn part(epoch: Epoch, offset: u32, bytes: &[u8], last: bool) -> Call {
    Call::SubmitDealing {
        epoch,
        offset,
        part: BoundedVec::try_from(bytes.to_vec()).unwrap(),
        last,
    }
}

/// Runs empty blocks up to and including the block that ends epoch 0 (height 10); returns that
/// block's events.
fn finish_epoch(chain: &mut MockChain) -> Vec<RuntimeEvent> {
    let last = EPOCH_LENGTH_BLOCKS * (chain.height / EPOCH_LENGTH_BLOCKS + 1);
    chain.advance(last - chain.height - 1);
    chain.execute_with_events(&[]).unwrap().1
}

fn beacon_events(events: &[RuntimeEvent]) -> Vec<Event> {
    events
        .iter()
        .filter_map(|event| match event {
            RuntimeEvent::Beacon(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn assert_clean(chain: &MockChain, epoch: Epoch) {
    assert!(chain.map::<Rounds>(&epoch).is_none());
    for dealer in genesis_round().dealers.iter() {
        let key = DealingKey {
            epoch,
            dealer: *dealer,
        };
        assert!(chain.map::<Dealings>(&key).is_none());
    }
}

#[test]
fn the_bounds_hold_for_the_largest_committee_and_a_part_fits_a_transaction() {
    let max = NonZeroU32::new(COMMITTEE_MAX as u32).unwrap();
    assert!(SignedLog::max_encode_size(max) <= DEALER_LOG_MAX_BYTES);
    assert!(GroupOutput::max_encode_size(max) <= logos_types::beacon::GROUP_KEY_MAX_BYTES);
    let call = part(
        Epoch(u64::MAX),
        u32::MAX,
        &[0xFF; DEALING_PART_MAX_BYTES],
        true,
    );
    let size = transaction_size(&call.into());
    assert!(size <= TRANSACTION_MAX_BYTES, "{size} bytes");
}

#[test]
fn a_quorum_of_dealings_forms_the_group_key_the_players_sign_heights_with() {
    let mut chain = chain();
    let epoch = Epoch(1);
    // Player 4 does not acknowledge dealer 0, whose log reveals that share instead.
    let Ceremony { logs, players, .. } = ceremony(&chain.chain_id, epoch, Some(4));
    for (key, log) in &logs {
        assert!(submit(&mut chain, key, epoch, &log.encode()));
    }
    assert!(chain.map::<Rounds>(&epoch).is_some());
    let events = beacon_events(&finish_epoch(&mut chain));
    assert_eq!(
        events,
        vec![Event::GroupKeyFormed {
            epoch,
            dealers: 4,
            players: 5
        }]
    );
    let stored = chain.map::<GroupKeys>(&epoch).unwrap();
    let output = decode_output(&stored).unwrap();

    // Every player derives its share from the logs the chain keeps through the epoch, and the
    // same public output.
    let round = chain.map::<Rounds>(&epoch).unwrap();
    let kept: Vec<Dealing> = round
        .dealers
        .iter()
        .map(|dealer| {
            let key = DealingKey {
                epoch,
                dealer: *dealer,
            };
            chain.map::<Dealings>(&key).unwrap()
        })
        .collect();
    assert_eq!(kept.len(), logs.len());
    let recorded = round_logs(&chain.chain_id, epoch, &round, &kept).unwrap();
    let height = 11;
    let message = seed_message(&chain.chain_id, height);
    let mut partials = Vec::new();
    for (index, (_, player)) in players.into_iter().enumerate() {
        let (theirs, share) = player
            .finalize::<N3f1>(&mut rng(index as u64), recorded.clone(), &Sequential)
            .unwrap();
        assert_eq!(theirs, output);
        partials.push(threshold::sign_message::<Bls>(
            &share,
            SEED_NAMESPACE,
            &message,
        ));
    }
    // Any quorum (4 of 5) recovers the same signature: the seed has one value.
    let recover = |partials: &[PartialSignature<Bls>]| {
        threshold::recover::<Bls, _>(output.public(), partials, &Sequential)
            .unwrap()
            .encode()
            .to_vec()
    };
    let first = recover(&partials[..4]);
    let second = recover(&partials[1..]);
    assert_eq!(first, second);
    let seed = verify_seed(&output, &chain.chain_id, height, &first).unwrap();
    assert_eq!(seed, hash(&[&first]));
    // Not for another height, another chain, or from three shares.
    assert!(verify_seed(&output, &chain.chain_id, height + 1, &first).is_none());
    assert!(verify_seed(&output, &ChainId(hash(&[b"other"])), height, &first).is_none());
    let short = threshold::recover::<Bls, _>(output.public(), &partials[..3], &Sequential);
    assert!(short.is_err());
    assert!(verify_seed(&output, &chain.chain_id, height, &first[1..]).is_none());
    // The block rule: the seed of the parent's height where the epoch has a key, none elsewhere.
    let id = chain.chain_id;
    assert_eq!(
        check_seed(Some(&output), 1, &id, height, Some(&first)),
        Ok(())
    );
    assert_eq!(
        check_seed(Some(&output), 1, &id, height, None),
        Err(SeedError::Missing { epoch: 1, height })
    );
    assert_eq!(
        check_seed(Some(&output), 1, &id, height + 1, Some(&first)),
        Err(SeedError::Invalid {
            epoch: 1,
            height: height + 1
        })
    );
    let other = ChainId(hash(&[b"other"]));
    assert!(check_seed(Some(&output), 1, &other, height, Some(&first)).is_err());
    assert!(check_seed(Some(&output), 1, &id, height, Some(&[0u8; 48])).is_err());
    assert_eq!(
        check_seed(None, 0, &id, height, Some(&first)),
        Err(SeedError::Unexpected { epoch: 0 })
    );
    assert_eq!(check_seed(None, 0, &id, height, None), Ok(()));
    // The signature of the same height by another group (another epoch's key) is refused.
    let mut others: Vec<PublicKey> = (20..24)
        .map(|seed| PrivateKey::from_seed(seed).public_key())
        .collect();
    others.sort();
    let (other, shares) =
        commonware_cryptography::bls12381::dkg::feldman_desmedt::deal::<Bls, PublicKey, N3f1>(
            rng(99),
            Mode::NonZeroCounter,
            Set::try_from(others).unwrap(),
        )
        .unwrap();
    let theirs: Vec<PartialSignature<Bls>> = shares
        .values()
        .iter()
        .map(|share| threshold::sign_message::<Bls>(share, SEED_NAMESPACE, &message))
        .collect();
    let foreign = threshold::recover::<Bls, _>(other.public(), &theirs, &Sequential)
        .unwrap()
        .encode()
        .to_vec();
    assert!(verify_seed(&other, &id, height, &foreign).is_some());
    assert_eq!(
        check_seed(Some(&output), 1, &id, height, Some(&foreign)),
        Err(SeedError::Invalid { epoch: 1, height })
    );
    // The round and its logs go when the next epoch starts.
    finish_epoch(&mut chain);
    assert_clean(&chain, epoch);
    assert!(chain.map::<GroupKeys>(&epoch).is_some());
}

#[test]
fn too_few_dealings_leave_the_epoch_without_a_key() {
    let mut chain = chain();
    let epoch = Epoch(1);
    let Ceremony { logs, .. } = ceremony(&chain.chain_id, epoch, None);
    // Three complete logs of the four needed; the fourth stops one part short.
    for (key, log) in &logs[..3] {
        assert!(submit(&mut chain, key, epoch, &log.encode()));
    }
    let (key, log) = &logs[3];
    let bytes = log.encode();
    assert!(
        chain
            .call(key, part(epoch, 0, &bytes[..DEALING_PART_MAX_BYTES], false))
            .success
    );
    let events = beacon_events(&finish_epoch(&mut chain));
    assert_eq!(
        events,
        vec![Event::DkgFailed {
            epoch,
            required: 4,
            found: 3
        }]
    );
    assert!(chain.map::<GroupKeys>(&epoch).is_none());
    // The incomplete log is gone at once, the complete ones at the next epoch's start.
    let dealer = NodeKey::from_public_key(&key.public_key());
    assert!(chain
        .map::<Dealings>(&DealingKey { epoch, dealer })
        .is_none());
    assert!(chain.map::<Rounds>(&epoch).is_some());
    finish_epoch(&mut chain);
    assert_clean(&chain, epoch);
}

#[test]
fn an_epoch_nobody_dealt_for_is_reported_and_keys_age_out() {
    let mut chain = chain();
    let events = beacon_events(&finish_epoch(&mut chain));
    assert_eq!(
        events,
        vec![Event::DkgFailed {
            epoch: Epoch(1),
            required: 4,
            found: 0
        }]
    );
    // A key formed for epoch 2 is kept 16 epochs, then removed.
    let epoch = Epoch(2);
    let Ceremony { logs, .. } = ceremony(&chain.chain_id, epoch, None);
    for (key, log) in &logs {
        assert!(submit(&mut chain, key, epoch, &log.encode()));
    }
    finish_epoch(&mut chain);
    assert!(chain.map::<GroupKeys>(&epoch).is_some());
    chain.advance(EPOCH_LENGTH_BLOCKS * (GROUP_KEYS_KEPT_EPOCHS - 1));
    assert!(chain.map::<GroupKeys>(&epoch).is_some());
    chain.advance(EPOCH_LENGTH_BLOCKS);
    assert!(chain.map::<GroupKeys>(&epoch).is_none());
}

#[test]
fn outsiders_other_epochs_and_the_last_block_are_refused() {
    let mut chain = chain();
    let Ceremony { logs, .. } = ceremony(&chain.chain_id, Epoch(1), None);
    let bytes = logs[0].1.encode();
    let first = &bytes[..DEALING_PART_MAX_BYTES];
    // Not a dealer: an account that is not a dealer's consensus key.
    let receipt = chain.call(&outsider(), part(Epoch(1), 0, first, false));
    assert_failed(&receipt, "beacon", "NotADealer");
    // The current epoch, or one too far ahead.
    for epoch in [Epoch(0), Epoch(2)] {
        let receipt = chain.call(&logs[0].0, part(epoch, 0, first, false));
        assert_failed(&receipt, "beacon", "DealingClosed");
    }
    // Nothing stored for anyone; the round is genesis' own.
    assert_eq!(chain.map::<Rounds>(&Epoch(1)), Some(genesis_round()));
    assert!(chain.map::<Rounds>(&Epoch(2)).is_none());
    // The block before the epoch's last (height 9) still takes a dealing; the last (height
    // 10) takes none: its randomness seeds the check.
    chain.advance(EPOCH_LENGTH_BLOCKS - 2 - chain.height);
    assert!(
        chain
            .call(&logs[1].0, part(Epoch(1), 0, first, false))
            .success
    );
    assert_eq!(chain.height, EPOCH_LENGTH_BLOCKS - 1);
    let receipt = chain.call(&logs[0].0, part(Epoch(1), 0, first, false));
    assert_eq!(chain.height, EPOCH_LENGTH_BLOCKS);
    assert_failed(&receipt, "beacon", "DealingClosed");
    // A log for epoch 1 is too late once epoch 1 runs.
    let receipt = chain.call(&logs[0].0, part(Epoch(1), 0, first, false));
    assert_failed(&receipt, "beacon", "DealingClosed");
}

#[test]
fn parts_out_of_order_and_oversize_logs_are_refused_and_a_complete_one_is_kept() {
    let mut chain = chain();
    let epoch = Epoch(1);
    let Ceremony { logs, .. } = ceremony(&chain.chain_id, epoch, None);
    let (key, log) = &logs[0];
    let bytes = log.encode();
    let dealer = NodeKey::from_public_key(&key.public_key());
    let stored = |chain: &MockChain| chain.map::<Dealings>(&DealingKey { epoch, dealer });
    let first = &bytes[..DEALING_PART_MAX_BYTES];
    assert!(chain.call(key, part(epoch, 0, first, false)).success);
    // A gap, a part from before, one far past the end.
    for offset in [2 * DEALING_PART_MAX_BYTES as u32, 1, 1_000_000] {
        let receipt = chain.call(key, part(epoch, offset, first, false));
        assert_failed(&receipt, "beacon", "WrongOffset");
    }
    assert_eq!(stored(&chain).unwrap().bytes.len(), DEALING_PART_MAX_BYTES);
    // Past the size bound (from offset 0, which starts over): every part up to the bound is
    // taken, the one beyond is refused.
    let full = vec![0u8; DEALER_LOG_MAX_BYTES + 1];
    let transactions = parts(&mut chain, key, epoch, 0, &full);
    let receipts = chain.execute(&transactions).unwrap();
    let refused = receipts.last().unwrap();
    assert_failed(refused, "beacon", "DealingTooLarge");
    assert!(receipts[..receipts.len() - 1]
        .iter()
        .all(|receipt| receipt.success));
    assert!(stored(&chain).unwrap().bytes.len() <= DEALER_LOG_MAX_BYTES);
    // Offset 0 starts over; the real log completes; sending it again is refused.
    assert!(submit(&mut chain, key, epoch, &bytes));
    assert!(stored(&chain).unwrap().complete);
    let receipt = chain.call(key, part(epoch, 0, first, false));
    assert_failed(&receipt, "beacon", "DealingComplete");
    assert_eq!(stored(&chain).unwrap().bytes.to_vec(), bytes.to_vec());
}

/// Completes a log of `bytes` from `key`: the event of its last part.
fn complete(chain: &mut MockChain, key: &PrivateKey, epoch: Epoch, bytes: &[u8]) -> Event {
    let transactions = parts(chain, key, epoch, 0, bytes);
    let (receipts, _) = chain.execute_with_events(&transactions).unwrap();
    assert!(receipts.iter().all(|receipt| receipt.success));
    let events = beacon_events(&receipts.last().unwrap().events);
    events.last().unwrap().clone()
}

#[test]
fn garbage_and_logs_signed_by_another_dealer_for_another_chain_or_epoch_are_rejected_once() {
    let mut chain = chain();
    let epoch = Epoch(1);
    let Ceremony { logs, .. } = ceremony(&chain.chain_id, epoch, None);
    let foreign = ceremony(&ChainId(hash(&[b"parent"])), epoch, None);
    let later = ceremony(&chain.chain_id, Epoch(2), None);
    // Dealer 0 sends dealer 1's log; dealer 1 one signed for a spin-off's parent; dealer 2
    // one signed for epoch 2's round; dealer 3 bytes that are no log.
    let forged = [
        (0, logs[1].1.encode().to_vec(), "signed by another dealer"),
        (1, foreign.logs[1].1.encode().to_vec(), "does not verify"),
        (2, later.logs[2].1.encode().to_vec(), "does not verify"),
        (3, vec![7u8; 10], ""),
    ];
    for (dealer, bytes, why) in forged {
        let key = &logs[dealer].0;
        match complete(&mut chain, key, epoch, &bytes) {
            Event::DealingRejected { reason, .. } => assert!(reason.contains(why), "{reason}"),
            other => panic!("dealer {dealer}: {other:?}"),
        }
        let node = NodeKey::from_public_key(&key.public_key());
        let stored = chain.map::<Dealings>(&DealingKey {
            epoch,
            dealer: node,
        });
        assert!(stored.is_some_and(|dealing| dealing.rejected && dealing.bytes.is_empty()));
        // Rejected for the round: not even its own log is taken now.
        let own = logs[dealer].1.encode();
        let receipt = chain.call(key, part(epoch, 0, &own[..DEALING_PART_MAX_BYTES], false));
        assert_failed(&receipt, "beacon", "DealingRejected");
    }
    // The honest dealer left is taken; one log of five is no quorum.
    assert!(submit(&mut chain, &logs[4].0, epoch, &logs[4].1.encode()));
    let events = beacon_events(&finish_epoch(&mut chain));
    assert_eq!(
        events,
        vec![Event::DkgFailed {
            epoch,
            required: 4,
            found: 1
        }]
    );
}

#[test]
fn a_player_removed_from_the_committee_after_the_round_was_fixed_stays_a_player() {
    let mut chain = chain();
    // Epoch 2's round is fixed when epoch 1 starts (height 10).
    finish_epoch(&mut chain);
    let round = chain.map::<Rounds>(&Epoch(2)).unwrap();
    assert_eq!(round, genesis_round());
    // Staking then drops a member of epoch 2's committee (as a slash does).
    let mut committee = chain.map::<Committees>(&Epoch(2)).unwrap();
    let removed = committee.members.to_vec().remove(0);
    let kept: Vec<_> = committee.members.iter().copied().skip(1).collect();
    committee.members = BoundedVec::try_from(kept).unwrap();
    chain.corrupt::<Committees>(&Epoch(2), &committee);
    // The dealers' logs, signed over the five players, still count.
    let epoch = Epoch(2);
    let Ceremony { logs, .. } = ceremony(&chain.chain_id, epoch, None);
    for (key, log) in &logs {
        assert!(submit(&mut chain, key, epoch, &log.encode()));
    }
    let events = beacon_events(&finish_epoch(&mut chain));
    assert_eq!(
        events,
        vec![Event::GroupKeyFormed {
            epoch,
            dealers: 4,
            players: 5
        }]
    );
    let output = decode_output(&chain.map::<GroupKeys>(&epoch).unwrap()).unwrap();
    let removed = removed.consensus_key.public_key().unwrap();
    assert!(output.players().position(&removed).is_some());
}

#[test]
fn the_invariants_catch_a_stray_dealing_and_a_wrong_group_key() {
    let mut chain = chain();
    let stray = DealingKey {
        epoch: Epoch(5),
        dealer: genesis_round().dealers[0],
    };
    chain.corrupt::<Dealings>(&stray, &Dealing::default());
    let error = Beacon::try_state(&chain.state).unwrap_err();
    assert!(error.contains("outside the rounds kept"), "{error}");

    let mut chain = self::chain();
    let epoch = Epoch(1);
    let Ceremony { logs, .. } = ceremony(&chain.chain_id, epoch, None);
    for (key, log) in &logs {
        assert!(submit(&mut chain, key, epoch, &log.encode()));
    }
    finish_epoch(&mut chain);
    let mut key = chain.map::<GroupKeys>(&epoch).unwrap();
    key.public_key = BoundedVec::try_from(vec![0u8; 96]).unwrap();
    chain.corrupt::<GroupKeys>(&epoch, &key);
    let error = Beacon::try_state(&chain.state).unwrap_err();
    assert!(error.contains("not its polynomial's"), "{error}");
    // A key outside the kept window (a failed hook's leftover, say).
    let mut chain = self::chain();
    let good = {
        let Ceremony { logs, .. } = ceremony(&chain.chain_id, epoch, None);
        for (key, log) in &logs {
            assert!(submit(&mut chain, key, epoch, &log.encode()));
        }
        finish_epoch(&mut chain);
        chain.map::<GroupKeys>(&epoch).unwrap()
    };
    chain.corrupt::<GroupKeys>(&Epoch(40), &good);
    let error = Beacon::try_state(&chain.state).unwrap_err();
    assert!(error.contains("kept in epoch"), "{error}");
}

#[test]
fn fees_are_paid_by_the_dealers_account() {
    let mut chain = chain();
    let epoch = Epoch(1);
    let Ceremony { logs, .. } = ceremony(&chain.chain_id, epoch, None);
    let (key, log) = &logs[0];
    let before = chain.account(&address(key)).balance;
    let bytes = log.encode();
    assert!(submit(&mut chain, key, epoch, &bytes));
    let parts = bytes.len().div_ceil(DEALING_PART_MAX_BYTES) as u128;
    let after = chain.account(&address(key)).balance;
    assert_eq!(
        before,
        Amount(after.0 + parts * chain.params.min_fee.0),
        "one minimum fee per part"
    );
}
