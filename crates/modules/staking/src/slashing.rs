//! Consensus faults: the evidence check (pure, deterministic) and the slash.
//!
//! Evidence is what simplex itself reports as attributable faults (commonware-consensus
//! `ConflictingNotarize`, `ConflictingFinalize`, `NullifyFinalize` with the ed25519 scheme):
//! two votes signed by one participant in one view. The check decodes it (bounded: fixed-size
//! votes, `EVIDENCE_MAX_BYTES` in all), finds the committee of its epoch, and verifies both
//! signatures with the chain's consensus namespace against the committee's keys in simplex's
//! participant order (ascending keys). Single ed25519 verifications: no randomness involved.

use commonware_codec::Read;
use commonware_consensus::{
    simplex::{
        scheme::ed25519::Scheme,
        types::{Attributable, ConflictingFinalize, ConflictingNotarize, NullifyFinalize},
    },
    Epochable, Viewable,
};
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;
use logos_primitives::{Address, ChainId, Hash, NodeKey, PublicKey};
use logos_types::{
    codec::BoundedString,
    staking::{Committee, Epoch, Error, FaultKind},
};

/// A proven fault: the votes' epoch and view and the offending member's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Consensus epoch of the votes.
    pub epoch: Epoch,
    /// Their view.
    pub view: u64,
    /// The offending member's account in the committee.
    pub validator: Address,
    /// The key that signed the votes.
    pub consensus_key: NodeKey,
}

fn invalid(why: &str) -> Error {
    Error::InvalidEvidence(BoundedString::truncated(why))
}

/// Epoch, view and signer index of decoded evidence, and whether its signatures verify under
/// `scheme` (built lazily: the epoch must be known first).
trait Evidence: Read<Cfg = ()> + Attributable + Epochable + Viewable + Sized {
    fn verifies(&self, scheme: &Scheme) -> bool;
}

/// A fixed seed: ed25519 attestations are verified one by one, and the generator is unused.
fn rng() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(0)
}

impl Evidence for ConflictingNotarize<Scheme, Hash> {
    fn verifies(&self, scheme: &Scheme) -> bool {
        self.verify(&mut rng(), scheme, &Sequential)
    }
}

impl Evidence for ConflictingFinalize<Scheme, Hash> {
    fn verifies(&self, scheme: &Scheme) -> bool {
        self.verify(&mut rng(), scheme, &Sequential)
    }
}

impl Evidence for NullifyFinalize<Scheme, Hash> {
    fn verifies(&self, scheme: &Scheme) -> bool {
        self.verify(&mut rng(), scheme, &Sequential)
    }
}

/// The epoch of `bytes` as evidence of kind `kind` (to find its committee), or why not.
pub fn epoch_of(kind: FaultKind, bytes: &[u8]) -> Result<Epoch, Error> {
    let epoch = match kind {
        FaultKind::ConflictingNotarize => {
            decode::<ConflictingNotarize<Scheme, Hash>>(bytes)?.epoch()
        }
        FaultKind::ConflictingFinalize => {
            decode::<ConflictingFinalize<Scheme, Hash>>(bytes)?.epoch()
        }
        FaultKind::NullifyFinalize => decode::<NullifyFinalize<Scheme, Hash>>(bytes)?.epoch(),
    };
    Ok(Epoch(epoch.get()))
}

/// Verifies `bytes` as evidence of kind `kind` against `committee` (the committee of its
/// epoch) on `chain_id`; returns the fault.
pub fn verify(
    kind: FaultKind,
    bytes: &[u8],
    chain_id: &ChainId,
    committee: &Committee,
) -> Result<Fault, Error> {
    match kind {
        FaultKind::ConflictingNotarize => check(
            decode::<ConflictingNotarize<Scheme, Hash>>(bytes)?,
            chain_id,
            committee,
        ),
        FaultKind::ConflictingFinalize => check(
            decode::<ConflictingFinalize<Scheme, Hash>>(bytes)?,
            chain_id,
            committee,
        ),
        FaultKind::NullifyFinalize => check(
            decode::<NullifyFinalize<Scheme, Hash>>(bytes)?,
            chain_id,
            committee,
        ),
    }
}

/// Decodes exactly `bytes` (no trailing bytes).
fn decode<T: Read<Cfg = ()>>(bytes: &[u8]) -> Result<T, Error> {
    logos_types::codec::decode::<T>(bytes).map_err(|error| invalid(&error.to_string()))
}

/// The committee's members in simplex's participant order (ascending consensus keys; the
/// committee itself is ordered by account). Errors: a key that is not a point, a key twice.
pub(crate) fn sorted_members(
    committee: &Committee,
) -> Result<Vec<(PublicKey, Address, NodeKey)>, Error> {
    let mut members: Vec<(PublicKey, Address, NodeKey)> = Vec::new();
    for member in committee.members.iter() {
        let key = member
            .consensus_key
            .public_key()
            .map_err(|_| invalid("a committee key is not a point"))?;
        members.push((key, member.validator, member.consensus_key));
    }
    members.sort_by(|a, b| a.0.cmp(&b.0));
    if members.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(invalid("the committee repeats a key"));
    }
    Ok(members)
}

/// The committee's simplex participant set (see [`sorted_members`]).
pub(crate) fn participants(committee: &Committee) -> Result<Set<PublicKey>, Error> {
    let members = sorted_members(committee)?;
    Ok(Set::from_iter_dedup(
        members.into_iter().map(|(key, _, _)| key),
    ))
}

fn check<T: Evidence>(
    evidence: T,
    chain_id: &ChainId,
    committee: &Committee,
) -> Result<Fault, Error> {
    let members = sorted_members(committee)?;
    let participants = Set::from_iter_dedup(members.iter().map(|(key, _, _)| key.clone()));
    let signer = usize::try_from(evidence.signer().get()).unwrap_or(usize::MAX);
    let (_, validator, consensus_key) = members
        .get(signer)
        .ok_or_else(|| invalid("the signer is not a committee member"))?;
    let scheme = Scheme::verifier(&chain_id.consensus_namespace(), participants);
    if !evidence.verifies(&scheme) {
        return Err(invalid("a signature does not verify"));
    }
    Ok(Fault {
        epoch: Epoch(evidence.epoch().get()),
        view: evidence.view().get(),
        validator: *validator,
        consensus_key: *consensus_key,
    })
}
