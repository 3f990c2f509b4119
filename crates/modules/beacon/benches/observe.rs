//! What the end-of-epoch hook of `beacon` costs: decoding and checking every dealer's signed
//! log against the round, then `observe` combining them (batch checks of every
//! acknowledgement, the commitments' sum), for committees of 16 (the default), 32 and 64
//! dealers and players. `cargo bench -p logos-beacon --bench observe`.

use commonware_codec::Encode as _;
use commonware_cryptography::{
    bls12381::dkg::feldman_desmedt::{observe, Dealer, Player},
    Signer as _,
};
use commonware_parallel::Sequential;
use commonware_utils::N3f1;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use logos_beacon::{round_info, round_logs, Bls};
use logos_primitives::{hash, ChainId, NodeKey, PrivateKey, PublicKey};
use logos_types::{
    beacon::{Dealing, Round},
    codec::BoundedVec,
    staking::Epoch,
};
use rand::SeedableRng as _;
use std::collections::BTreeMap;

/// A round of `n` dealers who are also its players, and every dealer's complete log.
fn dealings(chain_id: &ChainId, n: u64) -> (Round, Vec<Dealing>) {
    let keys: Vec<PrivateKey> = (0..n).map(PrivateKey::from_seed).collect();
    let mut members: Vec<NodeKey> = keys
        .iter()
        .map(|key| NodeKey::from_public_key(&key.public_key()))
        .collect();
    members.sort();
    let round = Round {
        dealers: BoundedVec::truncated(members.clone()),
        players: BoundedVec::truncated(members),
    };
    let info = round_info(chain_id, Epoch(1), &round).unwrap();
    let mut players: BTreeMap<PublicKey, Player<Bls, PrivateKey>> = keys
        .iter()
        .map(|key| {
            (
                key.public_key(),
                Player::new(info.clone(), key.clone()).unwrap(),
            )
        })
        .collect();
    let mut complete = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let rng = rand::rngs::StdRng::seed_from_u64(index as u64);
        let (mut dealer, public, shares) =
            Dealer::start::<N3f1>(rng, info.clone(), key.clone(), None).unwrap();
        for (player, share) in shares {
            let ack = players
                .get_mut(&player)
                .unwrap()
                .dealer_message::<N3f1>(key.public_key(), public.clone(), share)
                .unwrap()
                .unwrap();
            dealer.receive_player_ack(player, ack).unwrap();
        }
        let bytes = dealer.finalize::<N3f1>().encode().to_vec();
        complete.push(Dealing {
            bytes: BoundedVec::try_from(bytes).unwrap(),
            complete: true,
            rejected: false,
        });
    }
    (round, complete)
}

fn bench(c: &mut Criterion) {
    let chain_id = ChainId(hash(&[b"bench"]));
    let mut group = c.benchmark_group("beacon_epoch_change");
    group.sample_size(10);
    for n in [16u64, 32, 64] {
        let (round, complete) = dealings(&chain_id, n);
        group.bench_with_input(BenchmarkId::new("check_and_observe", n), &n, |b, _| {
            b.iter(|| {
                let logs = round_logs(&chain_id, Epoch(1), &round, &complete).unwrap();
                let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                observe::<Bls, PublicKey, N3f1>(&mut rng, logs, &Sequential).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
