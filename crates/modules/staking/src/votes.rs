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
/// a block of `epoch` at a multiple of the interval from the epoch's start, late enough that
/// its whole window ends before the epoch does (a window cut short at the epoch's end would
/// let that block's leader record its own vote alone and count everyone else missing).
pub fn opened_by(epoch: &EpochInfo, height: u64, parent: Hash) -> Option<VoteSample> {
    let sampled = height.checked_sub(1)?;
    let offset = sampled.checked_sub(epoch.start_height)?;
    if offset == 0 || !offset.is_multiple_of(interval(epoch)) {
        return None;
    }
    let closes_at = height.checked_add(VOTE_SAMPLE_WINDOW_BLOCKS)?;
    if closes_at > epoch.last_height()? {
        return None;
    }
    Some(VoteSample {
        height: sampled,
        digest: parent,
        closes_at,
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

#[cfg(test)]
mod tests {
    use super::*;
    use logos_types::staking::Epoch;

    fn epoch(start_height: u64, length_blocks: u64) -> EpochInfo {
        EpochInfo {
            epoch: Epoch(3),
            start_height,
            length_blocks,
        }
    }

    #[test]
    fn samples_fall_on_the_interval_and_close_within_their_epoch() {
        let digest = logos_primitives::hash(&[b"parent"]);
        // 400 blocks from height 101: an interval of 12; the block at 113 is sampled by 114.
        let long = epoch(101, 400);
        assert_eq!(interval(&long), 12);
        let opened: Vec<u64> = (101..=500)
            .filter_map(|height| opened_by(&long, height, digest))
            .map(|sample| sample.height)
            .collect();
        assert_eq!(opened.first(), Some(&113));
        assert!(opened.iter().all(|height| (height - 101) % 12 == 0));
        // Every window ends by the epoch's last block (500).
        assert!((101..=500)
            .filter_map(|height| opened_by(&long, height, digest))
            .all(|sample| sample.closes_at <= 500));
        assert_eq!(opened.last(), Some(&461));
        // The epoch's first block (whose parent is the previous epoch's) opens nothing, and a
        // short epoch (at least the 8-block interval, no room for a window) opens none.
        assert!(opened_by(&long, 101, digest).is_none());
        let short = epoch(1, 30);
        assert!((1..=30).all(|height| opened_by(&short, height, digest).is_none()));
        // Heights near the end of the range never overflow.
        assert!(opened_by(&epoch(u64::MAX - 10, 10), u64::MAX, digest).is_none());
    }

    #[test]
    fn marks_count_once_and_stay_within_the_bitmap() {
        let mut sample = VoteSample {
            height: 1,
            digest: logos_primitives::hash(&[b"d"]),
            closes_at: 40,
            signed: BoundedVec::default(),
        };
        assert_eq!(mark(&mut sample, &[0, 3, 3, 9]), 3);
        assert_eq!(mark(&mut sample, &[3, 9]), 0);
        // Past the largest committee: ignored.
        assert_eq!(mark(&mut sample, &[SIGNER_BITMAP_BYTES * 8]), 0);
        assert!(sample.has(0) && sample.has(3) && sample.has(9) && !sample.has(1));
        let mut tally = VoteTally::default();
        count(&mut tally, &sample, 10);
        count(
            &mut tally,
            &VoteSample {
                signed: BoundedVec::default(),
                ..sample.clone()
            },
            10,
        );
        assert_eq!(tally.samples, 1);
        assert_eq!(tally.signed.to_vec(), vec![1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    }
}
