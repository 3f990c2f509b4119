//! Challenging machine registrations (`attestation` module, protocol step 2): a provisioner
//! drawn as a machine's challenger runs `TPM2_MakeCredential` in software
//! (`logos_mia::credential`) with a fresh random credential and posts the challenge with the
//! credential's SHA-256. Only the TPM holding the registered EK, with the registered AK loaded,
//! can open it, so the machine's answer proves the AK lives on that TPM. The credential is not
//! kept: the chain compares the answer with the hash.
//!
//! Machines are found by scanning `Machines` for provider ids round-robin,
//! [`SCAN_PROVIDERS_PER_HEAD`] per new finalized head (the listing is a hint; a challenge is
//! made only from the record re-read with a proof, before its deadline). A challenge timeout of
//! `T` blocks covers `64 × T` provider ids (16,384 at the shortest, 256); past that, a drawn
//! challenger may miss its turn (counted silent): finding draws from `ChallengerDrawn` events
//! would lift the bound.

use logos_mia::credential::{self, CredentialError};
use logos_primitives::Address;
use logos_types::{
    attestation::{Call, Digest, Machine, MachineStatus, CREDENTIAL_MAX_BYTES},
    dvci::ProviderId,
};
use rand_chacha::rand_core::CryptoRngCore;
use std::ops::Range;

/// Provider ids whose machine is read per new finalized head.
pub const SCAN_PROVIDERS_PER_HEAD: u64 = 64;

/// Whether `me` is drawn to challenge `machine` and has not posted yet.
pub fn must_challenge(me: &Address, machine: &Machine) -> bool {
    matches!(machine.status, MachineStatus::AwaitingChallenge { challenger } if challenger == *me)
}

/// The `Challenge` call for `provider`'s `machine`: a fresh [`CREDENTIAL_MAX_BYTES`]-byte
/// credential from `rng` made into a `TPM2_MakeCredential` blob for its EK and AK.
pub fn challenge_call(
    provider: ProviderId,
    machine: &Machine,
    rng: &mut impl CryptoRngCore,
) -> Result<Call, CredentialError> {
    let mut secret = [0u8; CREDENTIAL_MAX_BYTES];
    rng.fill_bytes(&mut secret);
    let challenge =
        credential::make_credential(&machine.ek_public, &machine.ak_public, &secret, rng)?;
    let too_large = |_| CredentialError::CredentialSize;
    Ok(Call::Challenge {
        provider,
        credential_blob: challenge.credential_blob.try_into().map_err(too_large)?,
        encrypted_secret: challenge.secret.try_into().map_err(too_large)?,
        credential_hash: Digest(logos_mia::pcr::sha256(&secret)),
    })
}

/// The provider ids to scan after `cursor` when ids below `next` exist: at most `batch`,
/// wrapping to 0 at `next`. Returns the range and the next cursor.
pub fn scan_range(cursor: u64, next: u64, batch: u64) -> (Range<u64>, u64) {
    let start = if cursor >= next { 0 } else { cursor };
    let end = start.saturating_add(batch).min(next);
    let cursor = if end >= next { 0 } else { end };
    (start..end, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logos_types::codec::BoundedVec;
    use rand_chacha::{rand_core::SeedableRng as _, ChaCha20Rng};

    fn machine(status: MachineStatus, ek: Vec<u8>) -> Machine {
        Machine {
            ek_id: Digest::ZERO,
            ek_public: ek.try_into().unwrap(),
            ak_public: BoundedVec::default(),
            reference: Digest::ZERO,
            status,
            due: 10,
            last: None,
            staged: None,
            pending: None,
            challenge: None,
            rounds: 0,
            excluded: BoundedVec::default(),
            bound_ek: None,
            endorsed_by: None,
            answered: Default::default(),
        }
    }

    #[test]
    fn only_the_drawn_challenger_challenges_and_only_before_it_posted() {
        let me = Address([1; Address::LENGTH]);
        let other = Address([2; Address::LENGTH]);
        let drawn = |challenger| MachineStatus::AwaitingChallenge { challenger };
        assert!(must_challenge(&me, &machine(drawn(me), vec![])));
        assert!(!must_challenge(&me, &machine(drawn(other), vec![])));
        let posted = MachineStatus::Challenged {
            challenger: me,
            credential_hash: Digest::ZERO,
        };
        assert!(!must_challenge(&me, &machine(posted, vec![])));
        assert!(!must_challenge(
            &me,
            &machine(MachineStatus::Attesting, vec![])
        ));
    }

    #[test]
    fn a_malformed_key_in_a_record_is_an_error_not_a_panic() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let me = Address([1; Address::LENGTH]);
        let status = MachineStatus::AwaitingChallenge { challenger: me };
        for ek in [vec![], vec![0xFF; 300], vec![0; 1]] {
            assert!(challenge_call(ProviderId(0), &machine(status, ek), &mut rng).is_err());
        }
    }

    #[test]
    fn the_scan_visits_every_provider_in_bounded_batches() {
        assert_eq!(scan_range(0, 0, 64), (0..0, 0));
        assert_eq!(scan_range(0, 10, 64), (0..10, 0));
        assert_eq!(scan_range(0, 100, 64), (0..64, 64));
        assert_eq!(scan_range(64, 100, 64), (64..100, 0));
        // Providers were removed below the cursor's old place: start over.
        assert_eq!(scan_range(500, 100, 64), (0..64, 64));
    }
}
