//! Vote samples (see "Missed votes" in `logos_types::staking`): which blocks are sampled, the
//! check of recorded finalize votes (pure, deterministic), and the tally they feed.
//!
//! A record is a simplex `Finalization` (a certificate) or a `Finalize` (one vote) of the
//! ed25519 scheme. Every signature in it is verified on its own with the chain's consensus
//! namespace against the current committee in simplex's participant order (ascending keys):
//! batch verification would draw its coefficients from randomness everyone here knows, which
//! lets forged signatures cancel out.

use crate::slashing::participants;
use commonware_codec::{Decode as _, Read};
use commonware_consensus::{
    simplex::{
        scheme::ed25519::Scheme,
        types::{Attributable, Finalization, Finalize},
    },
    Epochable as _,
};
use commonware_cryptography::certificate::{Attestation, Verifier as _};
use commonware_parallel::Sequential;
use logos_primitives::{ChainId, Hash};
use logos_types::{
    codec::{BoundedString, BoundedVec},
    staking::{
        Committee, EpochInfo, Error, VoteKind, VoteSample, VoteTally, SIGNER_BITMAP_BYTES,
        VOTE_SAMPLES_PER_EPOCH, VOTE_SAMPLE_INTERVAL_MIN_BLOCKS, VOTE_SAMPLE_WINDOW_BLOCKS,
    },
};

fn invalid(why: &str) -> Error {
    Error::InvalidVotes(BoundedString::truncated(why))
}

/// The sampling interval of `epoch`, blocks.
pub fn interval(epoch: &EpochInfo) -> u64 {
    (epoch.length_blocks / VOTE_SAMPLES_PER_EPOCH).max(VOTE_SAMPLE_INTERVAL_MIN_BLOCKS)
}

/// The sample a block at `height` (whose parent is `parent`) opens, if its parent is sampled:
/// a block of `epoch` at a multiple of the interval from the epoch's start.
pub fn opened_by(epoch: &EpochInfo, height: u64, parent: Hash) -> Option<VoteSample> {
    let sampled = height.checked_sub(1)?;
    let offset = sampled.checked_sub(epoch.start_height)?;
    if offset == 0 || !offset.is_multiple_of(interval(epoch)) {
        return None;
    }
    Some(VoteSample {
        height: sampled,
        digest: parent,
        closes_at: height.saturating_add(VOTE_SAMPLE_WINDOW_BLOCKS),
        signed: BoundedVec::default(),
    })
}

/// Adds the closed `sample` to `tally` (a sample nobody recorded a vote for is not counted:
/// it says nothing about who voted).
pub fn count(tally: &mut VoteTally, sample: &VoteSample, members: usize) {
    if sample.signed.iter().all(|byte| *byte == 0) {
        return;
    }
    tally.samples = tally.samples.saturating_add(1);
    for index in 0..members {
        if tally.signed.len() <= index && tally.signed.try_push(0).is_err() {
            return;
        }
        if sample.has(index) {
            if let Some(signed) = tally.signed.get_mut(index) {
                *signed = signed.saturating_add(1);
            }
        }
    }
}

/// Sets the bits of `signers` in `sample`; returns how many were new.
pub fn mark(sample: &mut VoteSample, signers: &[usize]) -> u16 {
    let mut bitmap = sample.signed.to_vec();
    let mut added = 0u16;
    for signer in signers {
        let byte = signer / 8;
        if byte >= SIGNER_BITMAP_BYTES {
            continue;
        }
        if bitmap.len() <= byte {
            bitmap.resize(byte.saturating_add(1), 0);
        }
        let bit = 1u8 << (signer % 8);
        if let Some(slot) = bitmap.get_mut(byte) {
            if *slot & bit == 0 {
                *slot |= bit;
                added = added.saturating_add(1);
            }
        }
    }
    // At most SIGNER_BITMAP_BYTES bytes by construction.
    if let Ok(bitmap) = BoundedVec::try_from(bitmap) {
        sample.signed = bitmap;
    }
    added
}

/// Checked votes: their epoch, the block digest they sign and the signers' participant
/// indices.
#[derive(Debug, PartialEq, Eq)]
pub struct Votes {
    /// Consensus epoch of the votes.
    pub epoch: u64,
    /// The block they finalize.
    pub digest: Hash,
    /// Participant indices (simplex's order) of the signers, each verified.
    pub signers: Vec<usize>,
}

/// Decodes `bytes` as `kind` and verifies every signature against `committee` on
/// `chain_id`. Errors: undecodable bytes, a signer outside the committee, a signature that
/// does not verify.
pub fn verify(
    kind: VoteKind,
    bytes: &[u8],
    chain_id: &ChainId,
    committee: &Committee,
) -> Result<Votes, Error> {
    let participants = participants(committee)?;
    let scheme = Scheme::verifier(&chain_id.consensus_namespace(), participants.clone());
    let finalizes: Vec<Finalize<Scheme, Hash>> = match kind {
        VoteKind::Vote => vec![decode::<Finalize<Scheme, Hash>>(bytes, ())?],
        VoteKind::Certificate => {
            let certificate =
                decode::<Finalization<Scheme, Hash>>(bytes, scheme.certificate_codec_config())?;
            let signers: Vec<_> = certificate.certificate.signers.iter().collect();
            if signers.len() != certificate.certificate.signatures.len() {
                return Err(invalid("signers and signatures differ in number"));
            }
            signers
                .into_iter()
                .zip(certificate.certificate.signatures)
                .map(|(signer, signature)| Finalize {
                    proposal: certificate.proposal.clone(),
                    attestation: Attestation { signer, signature },
                })
                .collect()
        }
    };
    let mut signers = Vec::with_capacity(finalizes.len());
    let mut epoch = None;
    let mut digest = None;
    for finalize in &finalizes {
        let index = usize::try_from(finalize.signer().get()).unwrap_or(usize::MAX);
        if index >= participants.len() {
            return Err(invalid("a signer is not a committee member"));
        }
        if !finalize.verify(&mut rng(), &scheme, &Sequential) {
            return Err(invalid("a signature does not verify"));
        }
        epoch = Some(finalize.epoch().get());
        digest = Some(finalize.proposal.payload);
        signers.push(index);
    }
    match (epoch, digest) {
        (Some(epoch), Some(digest)) => Ok(Votes {
            epoch,
            digest,
            signers,
        }),
        _ => Err(invalid("no vote")),
    }
}

/// A fixed seed: each attestation is verified on its own, and the generator is unused.
fn rng() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(0)
}

/// Decodes exactly `bytes` (no trailing bytes) with `cfg`.
fn decode<T: Read>(bytes: &[u8], cfg: T::Cfg) -> Result<T, Error> {
    T::decode_cfg(commonware_codec::Copying(bytes), &cfg)
        .map_err(|error| invalid(&error.to_string()))
}
