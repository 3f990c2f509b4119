//! Sequential Phragmén in integer arithmetic (Phragmén 1895; Brill, Freeman, Janson, Lackner,
//! "Phragmén's voting methods and justified representation", AAAI 2017).
//!
//! Every voter (a candidate's self-bond, or a nominator) has a budget (its stake) and a load,
//! initially 0. Each round elects the unelected candidate with the least score
//! `(1 + Σ budget·load of its supporters) / Σ budget of its supporters`, then sets the load of
//! every supporter to that score: a candidate backed by voters who already carry elected
//! members costs more, which spreads seats in proportion to stake instead of giving the largest
//! faction every seat.
//!
//! Integers only: stakes are scaled to weights of at most 2^41 (`stake / max(1, total >> 40)`,
//! a stake below the divisor weighs nothing), the constant 1 is [`SCALE`] = 2^48, and scores
//! are floor-divided. Then a score stays below 2^56 for 256 rounds and `Σ weight·load` below
//! 2^110 for the 34,816 voters the lists allow, far inside `u128`. Ties go to the candidate
//! earlier in the input (ascending accounts). Deterministic and panic-free for any input.

use logos_primitives::{Address, Amount};
use logos_types::staking::{Exposure, Validator, EXPOSURES_MAX};
use std::collections::BTreeMap;

/// The constant 1 of a score, fixed point.
pub const SCALE: u128 = 1 << 48;
/// Bits a voter's weight may have above the total's scale.
const WEIGHT_BITS: u32 = 40;

/// A candidate: its account (ascending in the input), self-bond and intent.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its account.
    pub account: Address,
    /// Its active stake, smallest unit.
    pub own: Amount,
    /// Its intent.
    pub validator: Validator,
}

/// A nominator: its account, active stake and the candidates it backs.
#[derive(Clone, Debug)]
pub struct Nominator {
    /// Its account.
    pub account: Address,
    /// Active stake, smallest unit.
    pub stake: Amount,
    /// Backed accounts (those that are not candidates are ignored).
    pub targets: Vec<Address>,
}

/// One elected member: the index of its candidate, the stake behind it and whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seat {
    /// Index into the candidates given to [`elect`].
    pub candidate: usize,
    /// Its self-bond plus its exposures, smallest unit.
    pub backing: Amount,
    /// Its nominators' stake: each one's stake split equally among its elected targets
    /// (floor), the [`EXPOSURES_MAX`] largest (ties: lower account first), largest first.
    pub exposures: Vec<Exposure>,
}

/// A voter of the election: its stake, weight and candidates.
struct Voter {
    stake: u128,
    weight: u128,
    targets: Vec<usize>,
    /// The nominator's account; `None` for a candidate's self-vote.
    nominator: Option<Address>,
}

fn voters(candidates: &[Candidate], nominators: &[Nominator]) -> Vec<Voter> {
    let index: BTreeMap<Address, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, candidate)| (candidate.account, i))
        .collect();
    let own = candidates.iter().enumerate().map(|(i, candidate)| Voter {
        stake: candidate.own.0,
        weight: 0,
        targets: vec![i],
        nominator: None,
    });
    let nominated = nominators.iter().map(|nominator| {
        let mut targets: Vec<usize> = nominator
            .targets
            .iter()
            .filter_map(|target| index.get(target).copied())
            .collect();
        targets.sort_unstable();
        targets.dedup();
        Voter {
            stake: nominator.stake.0,
            weight: 0,
            targets,
            nominator: Some(nominator.account),
        }
    });
    let mut voters: Vec<Voter> = own
        .chain(nominated)
        .filter(|voter| voter.stake > 0 && !voter.targets.is_empty())
        .collect();
    let total = voters
        .iter()
        .fold(0u128, |sum, voter| sum.saturating_add(voter.stake));
    let divisor = (total >> WEIGHT_BITS).max(1);
    for voter in &mut voters {
        voter.weight = voter.stake.checked_div(divisor).unwrap_or(0);
    }
    voters
}

/// Elects up to `seats` of `candidates` by sequential Phragmén (see the module docs); returns
/// them in election order. Candidates nobody backs with weight are never elected.
pub fn elect(candidates: &[Candidate], nominators: &[Nominator], seats: usize) -> Vec<Seat> {
    let voters = voters(candidates, nominators);
    let mut supporters = vec![Vec::new(); candidates.len()];
    let mut approval = vec![0u128; candidates.len()];
    for (v, voter) in voters.iter().enumerate() {
        for &c in &voter.targets {
            supporters[c].push(v);
            approval[c] = approval[c].saturating_add(voter.weight);
        }
    }
    let mut loads = vec![0u128; voters.len()];
    let mut elected = vec![false; candidates.len()];
    let mut order = Vec::new();
    while order.len() < seats {
        let mut best: Option<(u128, usize)> = None;
        for c in 0..candidates.len() {
            if elected[c] || approval[c] == 0 {
                continue;
            }
            let carried = supporters[c].iter().fold(0u128, |sum, &v| {
                sum.saturating_add(voters[v].weight.saturating_mul(loads[v]))
            });
            let score = SCALE
                .saturating_add(carried)
                .checked_div(approval[c])
                .unwrap_or(u128::MAX);
            if best.is_none_or(|(least, _)| score < least) {
                best = Some((score, c));
            }
        }
        let Some((score, c)) = best else {
            break;
        };
        elected[c] = true;
        order.push(c);
        for &v in &supporters[c] {
            loads[v] = score;
        }
    }
    order
        .into_iter()
        .map(|c| seat(c, &voters, &elected))
        .collect()
}

/// Candidate `c`'s seat: its self-bond and its nominators' exposures (see [`Seat`]).
fn seat(c: usize, voters: &[Voter], elected: &[bool]) -> Seat {
    let mut own = 0u128;
    let mut exposures = Vec::new();
    for voter in voters.iter().filter(|voter| voter.targets.contains(&c)) {
        match voter.nominator {
            None => own = own.saturating_add(voter.stake),
            Some(nominator) => {
                let count = voter.targets.iter().filter(|&&t| elected[t]).count();
                let stake = voter.stake.checked_div(count as u128).unwrap_or(0);
                if stake > 0 {
                    exposures.push(Exposure {
                        nominator,
                        stake: Amount(stake),
                    });
                }
            }
        }
    }
    exposures.sort_by(|a, b| b.stake.cmp(&a.stake).then(a.nominator.cmp(&b.nominator)));
    exposures.truncate(EXPOSURES_MAX);
    let backing = exposures
        .iter()
        .fold(own, |sum, exposure| sum.saturating_add(exposure.stake.0));
    Seat {
        candidate: c,
        backing: Amount(backing),
        exposures,
    }
}
