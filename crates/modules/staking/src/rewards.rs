//! Per-epoch rewards (see the protocol in `logos_types::staking`): the pure split of a budget
//! among a committee and, within a member's part, among its self-bond and nominators.

use logos_primitives::{Address, Amount};
use logos_types::staking::{Authored, Member, VoteTally};

/// One member's part of an epoch's rewards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberReward {
    /// The member.
    pub validator: Address,
    /// Its part (it and its nominators), smallest unit.
    pub amount: Amount,
    /// Blocks it proposed.
    pub produced: u64,
    /// Blocks it was expected to propose.
    pub expected: u64,
    /// Vote samples it signed.
    pub voted: u32,
    /// Vote samples counted in the epoch.
    pub samples: u32,
}

/// `value × numerator / denominator`, floor, in 128-bit integers; 0 for a zero denominator.
/// Exact unless `value mod denominator` and `numerator` are both beyond 2^64 (amounts of more
/// than 10^19 units), where numerator and denominator are scaled down together first: the
/// result is then within one part in 2^64 of the exact one. Never overflows or panics.
pub fn mul_div(value: u128, numerator: u128, denominator: u128) -> u128 {
    let (Some(whole), Some(rest)) = (
        value.checked_div(denominator),
        value.checked_rem(denominator),
    ) else {
        return 0;
    };
    let scaled_whole = whole.saturating_mul(numerator);
    for shift in 0..u128::BITS {
        let n = numerator.checked_shr(shift).unwrap_or(0);
        let d = denominator.checked_shr(shift).unwrap_or(0);
        if d == 0 {
            break;
        }
        if let Some(product) = rest.checked_mul(n) {
            return scaled_whole.saturating_add(product.checked_div(d).unwrap_or(0));
        }
    }
    scaled_whole
}

/// Splits `budget` among `members` by backing (equally when no member has backing), each part
/// reduced to `min(produced, expected) / expected` of itself with `expected = max(1,
/// length_blocks / members)`, then to `min(voted, samples) / samples` of that (`votes`, by
/// participant index: the members' rank by consensus key; nothing taken when no sample was
/// counted); a member's blocks are those authored by the address of its consensus key (the
/// key that proposes). The parts never sum above `budget`.
pub fn member_rewards(
    members: &[Member],
    produced: &[Authored],
    votes: &VoteTally,
    length_blocks: u64,
    budget: Amount,
) -> Vec<MemberReward> {
    let mut keys: Vec<_> = members.iter().map(|member| member.consensus_key).collect();
    keys.sort_by_key(|key| key.0);
    let count = u64::try_from(members.len()).unwrap_or(u64::MAX).max(1);
    let expected = length_blocks.checked_div(count).unwrap_or(0).max(1);
    let total_backing = members
        .iter()
        .fold(0u128, |sum, member| sum.saturating_add(member.backing.0));
    members
        .iter()
        .map(|member| {
            let (weight, weights) = match total_backing {
                0 => (1, u128::from(count)),
                total => (member.backing.0, total),
            };
            let base = mul_div(budget.0, weight, weights);
            let proposer = member
                .consensus_key
                .public_key()
                .map(|key| Address::from_public_key(&key))
                .ok();
            let blocks = produced
                .iter()
                .find(|authored| Some(authored.author) == proposer)
                .map_or(0, |authored| authored.blocks);
            let earned = mul_div(base, u128::from(blocks.min(expected)), u128::from(expected));
            let index = keys.iter().position(|key| *key == member.consensus_key);
            let voted = index
                .and_then(|index| votes.signed.get(index).copied())
                .unwrap_or(0)
                .min(votes.samples);
            let earned = match votes.samples {
                0 => earned,
                samples => mul_div(earned, u128::from(voted), u128::from(samples)),
            };
            MemberReward {
                validator: member.validator,
                amount: Amount(earned),
                produced: blocks,
                expected,
                voted,
                samples: votes.samples,
            }
        })
        .collect()
}

/// Splits a member's `amount` after its `commission_permille`: the commission and the rest's
/// share of `own` go to the member, the rest to `backers` (account, stake) pro rata of their
/// stake among `own + Σ stake` (floor; the remainder to the member).
pub fn split_member(
    validator: Address,
    amount: Amount,
    commission_permille: u16,
    own: Amount,
    backers: &[(Address, Amount)],
) -> Vec<(Address, Amount)> {
    let commission = mul_div(amount.0, u128::from(commission_permille.min(1_000)), 1_000);
    let rest = amount.0.saturating_sub(commission);
    let total = backers
        .iter()
        .fold(own.0, |sum, (_, stake)| sum.saturating_add(stake.0));
    let mut paid = Vec::new();
    let mut to_backers = 0u128;
    for (backer, stake) in backers {
        let share = mul_div(rest, stake.0, total);
        if share > 0 {
            paid.push((*backer, Amount(share)));
            to_backers = to_backers.saturating_add(share);
        }
    }
    paid.insert(0, (validator, Amount(amount.0.saturating_sub(to_backers))));
    paid
}
