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
