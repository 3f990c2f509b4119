//! `TPM2_MakeCredential` in software: a challenge only the TPM that holds an endorsement key
//! can answer, and only for an attestation key loaded on that same TPM.
//!
//! Source: TPM 2.0 Library Part 1 §24 ("Credential Protection"), §11.4.10.2 (`KDFa`), Part 2
//! §10.6 (names). A verifier who knows the EK's public key and the AK's name:
//! 1. draws a random `seed` (32 bytes, the EK's name algorithm SHA-256) and encrypts it to
//!    the EK with RSA-OAEP-SHA-256, label `"IDENTITY\0"`: the `secret`;
//! 2. derives `symKey = KDFa(SHA-256, seed, "STORAGE", AK name, -, 128)` and encrypts the
//!    credential (as a `TPM2B_DIGEST`) with AES-128-CFB, IV zero: `encIdentity`;
//! 3. derives `hmacKey = KDFa(SHA-256, seed, "INTEGRITY", -, -, 256)` and computes
//!    `outerHMAC = HMAC-SHA-256(hmacKey, encIdentity || AK name)`;
//! 4. sends `credentialBlob = TPM2B(outerHMAC) || encIdentity` and `secret`.
//!
//! `TPM2_ActivateCredential` on the machine decrypts `seed` with the EK (so it needs that
//! TPM) and checks the HMAC over the name of the key it is given (so the AK must be loaded on
//! that TPM, and be the one named). Whoever returns the credential therefore has both keys
//! in one TPM. The AK's name binds its attributes, so a key named here is the restricted,
//! fixedTPM key [`crate::quote::AkPublic`] accepted.

use crate::{
    limits::PUBLIC_KEY_MAX_BYTES,
    pcr::{self, Digest},
    quote::{parse_whole, rsa_exponent},
};
use aes::cipher::{AsyncStreamCipher as _, KeyIvInit as _};
use hmac::{Hmac, Mac as _};
use rsa::{rand_core::CryptoRngCore, BigUint, Oaep, RsaPublicKey};
use sha2::Sha256;
use tpm2_protocol::data::{
    TpmAlgId, TpmaObject, TpmtPublic, TpmuPublicId, TpmuPublicParms, TpmuSymKeyBits,
};

/// The largest credential, bytes (a `TPM2B_DIGEST` of the EK's name algorithm).
pub const CREDENTIAL_MAX_BYTES: usize = 32;
/// The smallest credential, bytes: a shorter one could be guessed.
pub const CREDENTIAL_MIN_BYTES: usize = 16;
/// The most key bits [`kdfa`] derives here.
const KDFA_MAX_BITS: u32 = 512;
/// `TPM_ALG_SHA256`, the name algorithm of every name here.
const NAME_ALG_SHA256: [u8; 2] = [0x00, 0x0B];

/// A challenge for `TPM2_ActivateCredential`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The `TPM2B_ID_OBJECT` contents: `TPM2B(outerHMAC) || encIdentity`.
    pub credential_blob: Vec<u8>,
    /// The `TPM2B_ENCRYPTED_SECRET` contents: the seed, encrypted to the EK.
    pub secret: Vec<u8>,
}

/// Why a challenge could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The endorsement key is not an RSA-2048 storage key with SHA-256 names and AES-128.
    #[error("unsupported endorsement key: {0}")]
    UnsupportedEndorsementKey(&'static str),
    /// The credential is shorter than [`CREDENTIAL_MIN_BYTES`] or longer than
    /// [`CREDENTIAL_MAX_BYTES`].
    #[error("a credential is {CREDENTIAL_MIN_BYTES} to {CREDENTIAL_MAX_BYTES} bytes")]
    CredentialSize,
    /// The named key is not an attestation key (see [`crate::quote::AkPublic::from_tpmt_public`]).
    #[error("the named key is not an attestation key: {0}")]
    NotAnAttestationKey(String),
    /// RSA-OAEP, AES or HMAC refused its input.
    #[error("encrypting the credential to the endorsement key failed")]
    Encryption,
}

/// The name of an attestation key: `nameAlg || SHA-256(TPMT_PUBLIC)` (Part 1 §16), after
/// checking the bytes are an attestation key with SHA-256 names (the TPM names the key it
/// loads from exactly these bytes).
pub fn ak_name(tpmt_public: &[u8]) -> Result<Vec<u8>, CredentialError> {
    crate::quote::AkPublic::from_tpmt_public(tpmt_public)
        .map_err(|e| CredentialError::NotAnAttestationKey(e.to_string()))?;
    let mut name = NAME_ALG_SHA256.to_vec();
    name.extend_from_slice(&pcr::sha256(tpmt_public));
    Ok(name)
}

/// `KDFa` with HMAC-SHA-256 (SP 800-108 counter mode): `bits` (at most 512) of key from
/// `key`, `label` (NUL appended), `context_u` and `context_v`.
fn kdfa(
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Result<Vec<u8>, CredentialError> {
    let bytes = bits.min(KDFA_MAX_BITS).div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes);
    let mut counter: u32 = 0;
    while out.len() < bytes {
        counter = counter.saturating_add(1);
        let mut mac =
            <Hmac<Sha256>>::new_from_slice(key).map_err(|_| CredentialError::Encryption)?;
        mac.update(&counter.to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
    }
    out.truncate(bytes);
    Ok(out)
}

/// The EK's RSA public key, if it is an RSA-2048 restricted decryption key with SHA-256 names
/// and AES-128-CFB as its symmetric algorithm (the TCG default EK template, L-1).
pub(crate) fn endorsement_rsa(ek_public: &[u8]) -> Result<RsaPublicKey, CredentialError> {
    let unsupported = CredentialError::UnsupportedEndorsementKey;
    let public = parse_whole::<TpmtPublic>(ek_public, "endorsement key", PUBLIC_KEY_MAX_BYTES)
        .map_err(|_| unsupported("malformed or oversize TPMT_PUBLIC"))?;
    if public.name_alg != TpmAlgId::Sha256 {
        return Err(unsupported("its name algorithm is not SHA-256"));
    }
    let storage = TpmaObject::RESTRICTED
        | TpmaObject::DECRYPT
        | TpmaObject::FIXED_TPM
        | TpmaObject::FIXED_PARENT;
    let attributes = public.object_attributes;
    if !attributes.contains(storage) || attributes.contains(TpmaObject::SIGN_ENCRYPT) {
        return Err(unsupported(
            "not a restricted decryption key fixed to its TPM",
        ));
    }
    let (TpmuPublicParms::Rsa(params), TpmuPublicId::Rsa(modulus)) =
        (&public.parameters, &public.unique)
    else {
        return Err(unsupported("not an RSA key"));
    };
    let aes_128 =
        matches!(params.symmetric.key_bits, TpmuSymKeyBits::Aes(bits) if bits.value() == 128);
    if params.symmetric.algorithm != TpmAlgId::Aes || !aes_128 {
        return Err(unsupported("its symmetric algorithm is not AES-128"));
    }
    if modulus.len() != 256 {
        return Err(unsupported("not 2048 bits"));
    }
    let exponent = rsa_exponent(params.exponent.value());
    RsaPublicKey::new(BigUint::from_bytes_be(modulus), BigUint::from(exponent))
        .map_err(|_| unsupported("invalid RSA key"))
}

/// The id of an endorsement key [`make_credential`] can encrypt to (RSA-2048, a restricted
/// decryption key with SHA-256 names and AES-128-CFB): SHA-256 of its modulus, big-endian.
/// Keyed on the key itself, not its encoding: the same EK written with another exponent
/// encoding, policy or attribute bits has the same id.
pub fn endorsement_key_id(ek_public: &[u8]) -> Result<Digest, CredentialError> {
    let key = endorsement_rsa(ek_public)?;
    Ok(pcr::sha256(
        &rsa::traits::PublicKeyParts::n(&key).to_bytes_be(),
    ))
}

/// Makes a challenge that returns `credential` only to the TPM holding `ek_public` (its
/// `TPMT_PUBLIC`) with the attestation key `ak_public` (its `TPMT_PUBLIC`) loaded.
///
/// Run it off the chain, by whoever admits the machine: the seed and the credential must stay
/// secret until the machine answers, and everything in the state transition is public (the
/// chain keeps only a hash of the credential).
pub fn make_credential(
    ek_public: &[u8],
    ak_public: &[u8],
    credential: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Challenge, CredentialError> {
    if credential.len() < CREDENTIAL_MIN_BYTES || credential.len() > CREDENTIAL_MAX_BYTES {
        return Err(CredentialError::CredentialSize);
    }
    let ek = endorsement_rsa(ek_public)?;
    let ak_name = ak_name(ak_public)?;
    let ak_name = ak_name.as_slice();
    let mut seed: Digest = [0; 32];
    rng.fill_bytes(&mut seed);
    let secret = ek
        .encrypt(rng, Oaep::new_with_label::<Sha256, _>("IDENTITY\0"), &seed)
        .map_err(|_| CredentialError::Encryption)?;
    let sym_key = kdfa(&seed, "STORAGE", ak_name, &[], 128)?;
    let mut enc_identity = (credential.len() as u16).to_be_bytes().to_vec();
    enc_identity.extend_from_slice(credential);
    let cipher = cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(&sym_key, &[0; 16])
        .map_err(|_| CredentialError::Encryption)?;
    cipher.encrypt(&mut enc_identity);
    let hmac_key = kdfa(&seed, "INTEGRITY", &[], &[], 256)?;
    let mut mac =
        <Hmac<Sha256>>::new_from_slice(&hmac_key).map_err(|_| CredentialError::Encryption)?;
    mac.update(&enc_identity);
    mac.update(ak_name);
    let outer_hmac = mac.finalize().into_bytes();
    let mut credential_blob = 32u16.to_be_bytes().to_vec();
    credential_blob.extend_from_slice(&outer_hmac);
    credential_blob.extend_from_slice(&enc_identity);
    Ok(Challenge {
        credential_blob,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_matches_a_known_answer() {
        // KDFa's definition (Part 1 §11.4.10.2), one block written out by hand:
        // HMAC-SHA-256(key, 00000001 || "STORAGE\0" || 00000080), first 16 bytes. That the
        // whole challenge is what a TPM expects is tested against swtpm.
        let key: Vec<u8> = (0u8..32).collect();
        let mut mac = <Hmac<Sha256>>::new_from_slice(&key).unwrap();
        mac.update(&[0, 0, 0, 1]);
        mac.update(b"STORAGE\0");
        mac.update(&[0, 0, 0, 0x80]);
        let expected = mac.finalize().into_bytes()[..16].to_vec();
        assert_eq!(kdfa(&key, "STORAGE", &[], &[], 128).unwrap(), expected);
        assert_eq!(kdfa(&key, "INTEGRITY", &[], &[], 512).unwrap().len(), 64);
    }

    #[test]
    fn short_and_oversize_credentials_and_bad_keys_are_refused() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for size in [0, 1, CREDENTIAL_MIN_BYTES - 1, CREDENTIAL_MAX_BYTES + 1] {
            assert_eq!(
                make_credential(&[], &[], &vec![7; size], &mut rng),
                Err(CredentialError::CredentialSize),
                "{size}"
            );
        }
        assert!(matches!(
            make_credential(&[0; 10], &[], &[1; 16], &mut rng),
            Err(CredentialError::UnsupportedEndorsementKey(_))
        ));
        assert!(matches!(
            ak_name(&[0; 10]),
            Err(CredentialError::NotAnAttestationKey(_))
        ));
        assert_eq!(
            kdfa(&[1], "X", &[], &[], u32::MAX).unwrap().len(),
            64,
            "capped"
        );
    }

    use rand_chacha::rand_core::SeedableRng as _;
}
