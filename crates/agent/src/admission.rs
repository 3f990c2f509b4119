//! Who may spend the agent's time: rate limits keyed per caller, so that one caller's flood
//! cannot take another's answers away (a checker that gets no answer would vote the provider
//! unreachable, and the provider would be slashed for someone else's flood).
//!
//! - A request signed by a caller the chain knows (an eligible provisioner, the tenant of an
//!   environment here: [`Admission::set_known`]) is verified first, then draws on that
//!   caller's own bucket ([`CALLER_REQUESTS_PER_SECOND`], bursts of [`CALLER_BURST`]). A
//!   forged request naming a known key fails verification and costs that caller nothing.
//! - A request signed by any other key draws on the strangers' bucket before its signature
//!   is even checked (keys cost nothing to make: one bucket for all of them).
//! - Unsigned reads draw on a bucket of their own.
//!
//! Memory: one bucket per known caller, at most [`KNOWN_CALLERS_MAX`] of them.

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use logos_primitives::Address;
use std::{
    collections::BTreeSet,
    num::NonZeroU32,
    sync::{RwLock, RwLockReadGuard},
};

/// Requests per second of one known caller.
pub const CALLER_REQUESTS_PER_SECOND: u32 = 20;
/// Requests one known caller may make at once after being idle.
pub const CALLER_BURST: u32 = 40;
/// Most known callers (eligible provisioners and local tenants).
pub const KNOWN_CALLERS_MAX: usize = 4_096;

/// Which budget ran out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Throttled {
    /// The unsigned reads' budget.
    #[error("rate limit of unsigned reads")]
    Unsigned,
    /// The budget of callers the chain does not know.
    #[error("rate limit of unknown callers")]
    Strangers,
    /// This caller's own budget.
    #[error("rate limit of {0}")]
    Caller(Address),
}

/// The agent's rate limits (see the module docs).
pub struct Admission {
    unsigned: DefaultDirectRateLimiter,
    strangers: DefaultDirectRateLimiter,
    callers: DefaultKeyedRateLimiter<Address>,
    known: RwLock<BTreeSet<Address>>,
}

fn per_second(rate: u32) -> NonZeroU32 {
    NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN)
}

impl Admission {
    /// Limits with `shared_per_second` requests per second for unsigned reads and for unknown
    /// callers each.
    pub fn new(shared_per_second: u32) -> Self {
        let caller = Quota::per_second(per_second(CALLER_REQUESTS_PER_SECOND))
            .allow_burst(per_second(CALLER_BURST));
        Self {
            unsigned: RateLimiter::direct(Quota::per_second(per_second(shared_per_second))),
            strangers: RateLimiter::direct(Quota::per_second(per_second(shared_per_second))),
            callers: RateLimiter::keyed(caller),
            known: RwLock::new(BTreeSet::new()),
        }
    }

    fn known(&self) -> RwLockReadGuard<'_, BTreeSet<Address>> {
        self.known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An unsigned read.
    pub fn unsigned(&self) -> Result<(), Throttled> {
        self.unsigned.check().map_err(|_| Throttled::Unsigned)
    }

    /// Before verifying a request that claims to be signed by `claimed`: an unknown key spends
    /// the strangers' budget.
    pub fn claimed(&self, claimed: &Address) -> Result<(), Throttled> {
        if self.known().contains(claimed) {
            return Ok(());
        }
        self.strangers.check().map_err(|_| Throttled::Strangers)
    }

    /// After the request of `signer` verified: a known caller spends its own budget.
    pub fn verified(&self, signer: &Address) -> Result<(), Throttled> {
        if !self.known().contains(signer) {
            return Ok(()); // paid from the strangers' budget already
        }
        self.callers
            .check_key(signer)
            .map_err(|_| Throttled::Caller(*signer))
    }

    /// Replaces the known callers (at most [`KNOWN_CALLERS_MAX`], the lowest addresses kept)
    /// and forgets idle buckets.
    pub fn set_known(&self, callers: impl IntoIterator<Item = Address>) {
        let known: BTreeSet<Address> = callers.into_iter().take(KNOWN_CALLERS_MAX).collect();
        *self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = known;
        self.callers.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HONEST: Address = Address([1; 20]);
    const FLOODER: Address = Address([2; 20]);

    #[test]
    fn a_flood_from_others_leaves_a_known_callers_budget_alone() {
        let admission = Admission::new(5);
        admission.set_known([HONEST, FLOODER]);
        // A known caller floods: it runs out of its own budget only.
        let admitted = (0..1_000)
            .filter(|_| admission.verified(&FLOODER).is_ok())
            .count();
        assert!(admitted <= CALLER_BURST as usize + 1, "{admitted}");
        assert_eq!(
            admission.verified(&FLOODER),
            Err(Throttled::Caller(FLOODER))
        );
        // Strangers flood with fresh keys: they share one small budget.
        let strangers = (0..1_000u32)
            .filter(|i| {
                let mut bytes = [9u8; 20];
                bytes[..4].copy_from_slice(&i.to_be_bytes());
                admission.claimed(&Address(bytes)).is_ok()
            })
            .count();
        assert!(strangers <= 6, "{strangers}");
        // Unsigned reads flood their own bucket.
        while admission.unsigned().is_ok() {}
        // The honest checker is answered, every time up to its own burst.
        for _ in 0..CALLER_BURST {
            assert_eq!(admission.claimed(&HONEST), Ok(()));
            assert_eq!(admission.verified(&HONEST), Ok(()));
        }
    }

    #[test]
    fn known_callers_are_bounded_and_replaced() {
        let admission = Admission::new(1);
        admission.set_known((0..KNOWN_CALLERS_MAX as u32 + 10).map(|i| {
            let mut bytes = [0u8; 20];
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            Address(bytes)
        }));
        assert_eq!(admission.known().len(), KNOWN_CALLERS_MAX);
        admission.set_known([HONEST]);
        assert_eq!(admission.known().len(), 1);
        assert_eq!(admission.claimed(&HONEST), Ok(()));
        assert_eq!(admission.claimed(&FLOODER), Ok(()), "one stranger a second");
        assert_eq!(admission.claimed(&FLOODER), Err(Throttled::Strangers));
    }
}
