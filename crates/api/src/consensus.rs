//! The consensus signing scheme and finality checks a client can do on its own.
//!
//! Validators vote with ed25519 (simplex, [`Scheme`]); a finalization certificate carries a
//! quorum (2f+1 of n) of finalize votes. A client that knows the validator set (from genesis)
//! verifies a certificate and the block digest it names without trusting any RPC server.

use commonware_consensus::simplex::{scheme::ed25519, types::Finalization};
use commonware_cryptography::certificate::Verifier as _;
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;
use logos_primitives::{Hash, PublicKey};

/// The simplex signing scheme of the Logos chain: ed25519 votes, attributable certificates.
pub type Scheme = ed25519::Scheme;

/// A finalization certificate over a block digest.
pub type FinalizationCertificate = Finalization<Scheme, Hash>;

/// Namespace of consensus messages (votes and certificates): see
/// [`logos_primitives::ChainId::consensus_namespace`].
pub fn consensus_namespace(chain_id: &logos_primitives::ChainId) -> Vec<u8> {
    chain_id.consensus_namespace()
}

/// The ordered participant set for `validators`.
pub fn participants(validators: &[PublicKey]) -> Set<PublicKey> {
    Set::from_iter_dedup(validators.iter().cloned())
}

/// True if `certificate` finalizes `digest` with a quorum of `validators`.
pub fn verify_finalization(
    chain_id: &logos_primitives::ChainId,
    validators: &[PublicKey],
    certificate: &FinalizationCertificate,
    digest: &Hash,
) -> bool {
    if &certificate.proposal.payload != digest {
        return false;
    }
    let verifier = Scheme::verifier(&consensus_namespace(chain_id), participants(validators));
    // Batch verification needs unpredictable randomness, else forged signatures can cancel.
    let mut rng = rand::rng();
    certificate.verify(&mut rng, &verifier, &Sequential)
}

/// Decodes a finalization certificate (hex of its codec form, as `logos_getFinalization`
/// returns it), bounded by the size of the validator set.
pub fn decode_finalization(
    chain_id: &logos_primitives::ChainId,
    validators: &[PublicKey],
    bytes: &[u8],
) -> Result<FinalizationCertificate, commonware_codec::Error> {
    use commonware_codec::Decode;
    let verifier = Scheme::verifier(&consensus_namespace(chain_id), participants(validators));
    FinalizationCertificate::decode_cfg(
        commonware_codec::Copying(bytes),
        &verifier.certificate_codec_config(),
    )
}

/// The epoch a finalization certificate (its codec form) claims, read from its proposal
/// without the signatures: which committee to decode and verify the rest with. Unverified.
pub fn finalization_epoch(bytes: &[u8]) -> Result<u64, commonware_codec::Error> {
    use commonware_codec::ReadExt as _;
    let mut reader = commonware_codec::Copying(bytes);
    let proposal = commonware_consensus::simplex::types::Proposal::<Hash>::read(&mut reader)?;
    Ok(proposal.round.epoch().get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_too_short_for_its_proposal_has_no_epoch() {
        assert!(finalization_epoch(&[]).is_err());
        // An epoch varint that never ends.
        assert!(finalization_epoch(&[0xff; 9]).is_err());
        // A round and parent view, but the payload digest is cut short.
        assert!(finalization_epoch(&[3, 7, 6, 1, 2, 3]).is_err());
        // The proposal alone is enough: what follows is checked when decoding with a committee.
        let mut bytes = vec![3, 7, 6];
        bytes.extend_from_slice(&[0xab; 32]);
        bytes.extend_from_slice(b"anything");
        assert_eq!(finalization_epoch(&bytes).unwrap(), 3);
    }
}
