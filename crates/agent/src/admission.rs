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
//! - In front of all of it, every source address (an IPv6 /64 counts as one) has a generous
//!   bucket ([`SOURCE_REQUESTS_PER_SECOND`]): what fails before a signature is checked (bad
//!   JSON, forged signatures naming a known key) still costs its sender.
//!
//! Memory: one bucket per known caller, at most [`KNOWN_CALLERS_MAX`] of them, and one per
//! source seen since the last [`Admission::forget_idle`] (every 2 s).

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use logos_primitives::Address;
use std::{
    collections::BTreeSet,
    net::IpAddr,
    num::NonZeroU32,
    sync::{RwLock, RwLockReadGuard},
};

/// Requests per second of one known caller.
pub const CALLER_REQUESTS_PER_SECOND: u32 = 20;
/// Requests one known caller may make at once after being idle.
pub const CALLER_BURST: u32 = 40;
/// Most known callers (eligible provisioners and local tenants).
pub const KNOWN_CALLERS_MAX: usize = 4_096;
/// Requests per second from one source address (loopback devnets put every provisioner
/// behind one).
pub const SOURCE_REQUESTS_PER_SECOND: u32 = 500;

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
    /// This source address's budget.
    #[error("rate limit of {0}")]
    Source(IpAddr),
}

/// The agent's rate limits (see the module docs).
pub struct Admission {
    unsigned: DefaultDirectRateLimiter,
    strangers: DefaultDirectRateLimiter,
    callers: DefaultKeyedRateLimiter<Address>,
    sources: DefaultKeyedRateLimiter<IpAddr>,
    known: RwLock<BTreeSet<Address>>,
}

/// The key of `source`'s budget: the address, or for IPv6 its /64.
fn source_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(_) => source,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
    }
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
            sources: RateLimiter::keyed(Quota::per_second(per_second(SOURCE_REQUESTS_PER_SECOND))),
            known: RwLock::new(BTreeSet::new()),
        }
    }

    fn known(&self) -> RwLockReadGuard<'_, BTreeSet<Address>> {
        self.known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Any request from `source`, before anything else.
    pub fn source(&self, source: IpAddr) -> Result<(), Throttled> {
        let key = source_key(source);
        self.sources
            .check_key(&key)
            .map_err(|_| Throttled::Source(key))
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

    /// Replaces the known callers (the first [`KNOWN_CALLERS_MAX`] given: eligible
    /// provisioners come first) and forgets idle buckets.
    pub fn set_known(&self, callers: impl IntoIterator<Item = Address>) {
        let known: BTreeSet<Address> = callers.into_iter().take(KNOWN_CALLERS_MAX).collect();
        *self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = known;
        self.forget_idle();
    }

    /// Forgets the buckets of callers and sources idle long enough to be full again (the
    /// gatekeeper calls it every refresh, whether or not the chain could be read).
    pub fn forget_idle(&self) {
        self.callers.retain_recent();
        self.sources.retain_recent();
        self.callers.shrink_to_fit();
        self.sources.shrink_to_fit();
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
    fn each_source_has_its_own_budget_and_an_ipv6_64_counts_as_one() {
        let admission = Admission::new(1);
        let flooder: IpAddr = "2001:db8::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8::ffff".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        while admission.source(flooder).is_ok() {}
        assert!(admission.source(neighbour).is_err(), "the same /64");
        assert_eq!(admission.source(other), Ok(()));
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
