//! The election at the lists' bounds: 256 candidates and 1,536 nominators backing 16 each,
//! electing a committee of 100 (what one block's end-of-epoch hook runs). `cargo bench -p
//! logos-staking --bench election`.

use criterion::{criterion_group, criterion_main, Criterion};
use logos_primitives::{Address, Amount, NodeKey};
use logos_staking::{elect, Candidate, Nominator};
use logos_types::{
    peers::P2pAddress,
    staking::{Validator, CANDIDATES_MAX, NOMINATIONS_MAX, NOMINATORS_MAX},
};

fn account(i: usize) -> Address {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Address(bytes)
}

fn inputs() -> (Vec<Candidate>, Vec<Nominator>) {
    let candidates = (0..CANDIDATES_MAX)
        .map(|i| Candidate {
            account: account(i),
            own: Amount(1_000_000_000 + (i as u128) * 7_919),
            validator: Validator {
                consensus_key: NodeKey([1; 32]),
                p2p_address: P2pAddress {
                    ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1],
                    port: 1,
                },
                commission_permille: 0,
            },
        })
        .collect();
    let nominators = (0..NOMINATORS_MAX)
        .map(|n| Nominator {
            account: account(10_000 + n),
            stake: Amount(1_000_000 + (n as u128) * 104_729),
            targets: (0..NOMINATIONS_MAX)
                .map(|t| account((n * 31 + t * 17) % CANDIDATES_MAX))
                .collect(),
        })
        .collect();
    (candidates, nominators)
}

fn election(c: &mut Criterion) {
    let (candidates, nominators) = inputs();
    c.bench_function("elect_256_candidates_1536_nominators_100_seats", |b| {
        b.iter(|| elect(&candidates, &nominators, 100))
    });
}

criterion_group!(benches, election);
criterion_main!(benches);
