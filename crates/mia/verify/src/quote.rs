//! TPM 2.0 quotes: the attestation key, the signed `TPMS_ATTEST`, and what a verifier checks.
//!
//! Source: TPM 2.0 Library Part 2 §10.12 (`TPMS_ATTEST`, `TPMS_QUOTE_INFO`), §12.2.4
//! (`TPMT_PUBLIC`), §11.3.4 (`TPMT_SIGNATURE`); Part 3 §18.4 (`TPM2_Quote`). The structures
//! are parsed with `tpm2-protocol` (no heap, bounded buffers); signatures are checked with
//! RustCrypto (`rsa`, `p256`).
//!
//! A quote is trusted only as far as its key: an attestation key (AK) must be a *restricted
//! signing* key that is *fixed to its TPM* and was *generated in it*. A restricted key signs
//! only digests the TPM itself produced, so it never signs a `TPMS_ATTEST` that does not start
//! with `TPM_GENERATED_VALUE`; without that attribute a machine could sign a made-up quote.
//! That the AK lives on the same TPM as a registered endorsement key is proved once, at
//! registration, with `TPM2_MakeCredential`/`TPM2_ActivateCredential`.
//!
//! ECDSA signatures are accepted in both the low-S and the high-S form, and a scalar with or
//! without leading zeros, so one quote has several valid signature encodings: freshness comes
//! from the nonce and the clock, never from the bytes of a signature or a report.
//!
//! [`verify`] checks, in this order, each with its own [`QuoteError`]: the structures parse;
//! the signature verifies with the AK; it is a quote; `extraData` is the expected nonce; the
//! TPM clock moved past the last accepted quote (a replay does not); the quote selects the
//! SHA-256 bank and exactly the PCRs the report carries; and those PCR values hash to the
//! quoted `pcrDigest`.

use crate::{
    limits::{ATTEST_MAX_BYTES, PUBLIC_KEY_MAX_BYTES, SIGNATURE_MAX_BYTES},
    pcr::{self, Digest},
};
use p256::ecdsa::{signature::hazmat::PrehashVerifier, Signature as EcdsaSignature, VerifyingKey};
use rsa::{pkcs1v15::Pkcs1v15Sign, BigUint, RsaPublicKey};
use std::collections::BTreeMap;
use tpm2_protocol::{
    data::{
        TpmAlgId, TpmEccCurve, TpmSt, TpmaObject, TpmsAttest, TpmtPublic, TpmtSignature,
        TpmuAsymScheme, TpmuAttest, TpmuPublicId, TpmuPublicParms, TpmuSignature,
    },
    TpmUnmarshal,
};

/// The default RSA public exponent, which `TPMT_PUBLIC` encodes as 0.
const RSA_DEFAULT_EXPONENT: u32 = 65_537;
/// The smallest RSA modulus accepted, bits.
const RSA_MIN_BITS: usize = 2_048;

/// An attestation key's public part, as a verifier uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AkPublic {
    /// RSA, RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa {
        /// The modulus, big-endian.
        modulus: Vec<u8>,
        /// The public exponent.
        exponent: u32,
    },
    /// ECDSA on NIST P-256 with SHA-256.
    EcdsaP256 {
        /// The point's x coordinate, big-endian.
        x: [u8; 32],
        /// The point's y coordinate, big-endian.
        y: [u8; 32],
    },
}

/// The TPM clock a quote carries (`TPMS_CLOCK_INFO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TpmClock {
    /// TPM resets (power cycles) so far.
    pub reset_count: u32,
    /// TPM restarts (resume from hibernation) since the last reset.
    pub restart_count: u32,
    /// Time the TPM has been powered, ms; never goes back while the TPM runs.
    pub clock_ms: u64,
}

/// What a verified quote says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// The TPM clock at the quote.
    pub clock: TpmClock,
    /// The quoted PCR indices (SHA-256 bank), ascending.
    pub pcrs: Vec<u32>,
    /// The quoted `pcrDigest`.
    pub pcr_digest: Digest,
    /// The TPM's firmware version.
    pub firmware_version: u64,
}

/// Why a quote, or an attestation key, was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// A structure is larger than its bound.
    #[error("the {what} is {size_bytes} bytes, the limit is {max}")]
    TooLarge {
        /// Which structure.
        what: &'static str,
        /// Its size, bytes.
        size_bytes: usize,
        /// The bound, bytes.
        max: usize,
    },
    /// A structure does not parse (or has trailing bytes).
    #[error("the {what} is malformed")]
    Malformed {
        /// Which structure.
        what: &'static str,
    },
    /// The key is not a usable attestation key (see [`AkPublic::from_tpmt_public`]).
    #[error("not an attestation key: {reason}")]
    NotAnAttestationKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature's scheme is not the key's, or not over SHA-256.
    #[error("the quote is signed with a scheme the attestation key does not use")]
    WrongScheme,
    /// The signature does not verify with the attestation key: another key signed, or the
    /// quote was altered.
    #[error("the quote's signature does not verify with the machine's attestation key")]
    BadSignature,
    /// The attestation is not a quote (`TPM_ST_ATTEST_QUOTE`).
    #[error("the attestation is not a quote")]
    NotAQuote,
    /// `extraData` is not the nonce the chain asked for.
    #[error("the quote's nonce is not the expected one")]
    NonceMismatch,
    /// The TPM clock did not move past the last accepted quote: an old quote sent again.
    #[error(
        "the quote was replayed: its TPM clock {quoted:?} is not after the last accepted {last:?}"
    )]
    Replayed {
        /// The quote's clock.
        quoted: TpmClock,
        /// The last accepted quote's clock.
        last: TpmClock,
    },
    /// The quote does not select exactly one SHA-256 bank.
    #[error("the quote must select the SHA-256 bank only")]
    WrongBank,
    /// The quote's PCR selection is not the set of PCRs the report carries.
    #[error("the quote selects PCRs {quoted:?}, the report carries {reported:?}")]
    PcrSetMismatch {
        /// PCRs the quote selects.
        quoted: Vec<u32>,
        /// PCRs the report carries.
        reported: Vec<u32>,
    },
    /// The reported PCR values do not hash to the quoted digest: a PCR changed after the quote,
    /// or the report lies about one.
    #[error("the reported PCR values do not match the quoted PCR digest")]
    PcrDigestMismatch,
}

impl AkPublic {
    /// Reads an attestation key from its `TPMT_PUBLIC` (the bytes tss-esapi's
    /// `Public::marshall` gives). Refused unless it is a restricted signing key, not a
    /// decryption key, fixed to its TPM and parent, generated in the TPM, with an RSA (≥ 2048
    /// bits, RSASSA) or ECDSA P-256 scheme over SHA-256.
    pub fn from_tpmt_public(bytes: &[u8]) -> Result<Self, QuoteError> {
        let public = parse_whole::<TpmtPublic>(bytes, "attestation key", PUBLIC_KEY_MAX_BYTES)?;
        let required = TpmaObject::FIXED_TPM
            | TpmaObject::FIXED_PARENT
            | TpmaObject::SENSITIVE_DATA_ORIGIN
            | TpmaObject::RESTRICTED
            | TpmaObject::SIGN_ENCRYPT;
        let not_an_ak = |reason| QuoteError::NotAnAttestationKey { reason };
        if !public.object_attributes.contains(required) {
            return Err(not_an_ak(
                "it must be restricted, signing, fixedTPM, fixedParent and generated in the TPM",
            ));
        }
        if public.object_attributes.contains(TpmaObject::DECRYPT) {
            return Err(not_an_ak("it must not be a decryption key"));
        }
        if public.name_alg != TpmAlgId::Sha256 {
            return Err(not_an_ak("its name algorithm must be SHA-256"));
        }
        match (&public.parameters, &public.unique) {
            (TpmuPublicParms::Rsa(params), TpmuPublicId::Rsa(modulus)) => {
                if params.scheme.scheme != TpmAlgId::Rsassa
                    || !hashes_with_sha256(&params.scheme.details)
                {
                    return Err(not_an_ak("its RSA scheme must be RSASSA with SHA-256"));
                }
                if BigUint::from_bytes_be(modulus).bits() < RSA_MIN_BITS {
                    return Err(not_an_ak("its RSA modulus is under 2048 bits"));
                }
                let exponent = rsa_exponent(params.exponent.value());
                Ok(Self::Rsa {
                    modulus: modulus.to_vec(),
                    exponent,
                })
            }
            (TpmuPublicParms::Ecc(params), TpmuPublicId::Ecc(point)) => {
                let ecdsa_sha256 = params.scheme.scheme == TpmAlgId::Ecdsa
                    && hashes_with_sha256(&params.scheme.details);
                if params.curve_id != TpmEccCurve::NistP256 || !ecdsa_sha256 {
                    return Err(not_an_ak(
                        "its ECC key must be ECDSA with SHA-256 on NIST P-256",
                    ));
                }
                let x = point
                    .x
                    .as_ref()
                    .try_into()
                    .map_err(|_| not_an_ak("P-256 x is not 32 bytes"))?;
                let y = point
                    .y
                    .as_ref()
                    .try_into()
                    .map_err(|_| not_an_ak("P-256 y is not 32 bytes"))?;
                Ok(Self::EcdsaP256 { x, y })
            }
            _ => Err(not_an_ak("it must be an RSA or ECC key")),
        }
    }

    /// Checks `signature` (a `TPMT_SIGNATURE`) over `message` with this key.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> Result<(), QuoteError> {
        let signature = parse_whole::<TpmtSignature>(signature, "signature", SIGNATURE_MAX_BYTES)?;
        let digest = pcr::sha256(message);
        match (self, &signature.signature) {
            (Self::Rsa { modulus, exponent }, TpmuSignature::Rsassa(sig)) => {
                if sig.hash != TpmAlgId::Sha256 {
                    return Err(QuoteError::WrongScheme);
                }
                let key =
                    RsaPublicKey::new(BigUint::from_bytes_be(modulus), BigUint::from(*exponent))
                        .map_err(|_| QuoteError::NotAnAttestationKey {
                            reason: "the RSA key is invalid",
                        })?;
                key.verify(Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig.sig)
                    .map_err(|_| QuoteError::BadSignature)
            }
            (Self::EcdsaP256 { x, y }, TpmuSignature::Ecdsa(sig)) => {
                if sig.hash != TpmAlgId::Sha256 {
                    return Err(QuoteError::WrongScheme);
                }
                let point = p256::EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
                let key = VerifyingKey::from_encoded_point(&point).map_err(|_| {
                    QuoteError::NotAnAttestationKey {
                        reason: "the P-256 point is not on the curve",
                    }
                })?;
                let r = left_pad_32(&sig.signature_r).ok_or(QuoteError::BadSignature)?;
                let s = left_pad_32(&sig.signature_s).ok_or(QuoteError::BadSignature)?;
                let sig =
                    EcdsaSignature::from_scalars(r, s).map_err(|_| QuoteError::BadSignature)?;
                key.verify_prehash(&digest, &sig)
                    .map_err(|_| QuoteError::BadSignature)
            }
            _ => Err(QuoteError::WrongScheme),
        }
    }
}

/// Whether a key's signing scheme names SHA-256.
fn hashes_with_sha256(details: &TpmuAsymScheme) -> bool {
    matches!(details, TpmuAsymScheme::Hash(scheme) if scheme.hash_alg == TpmAlgId::Sha256)
}

/// A P-256 scalar as the TPM gives it (big-endian, leading zeros possibly stripped), padded.
fn left_pad_32(bytes: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0; 32];
    let start = 32usize.checked_sub(bytes.len())?;
    out[start..].copy_from_slice(bytes);
    Some(out)
}

/// The RSA public exponent a `TPMT_PUBLIC` encodes (0 stands for the default, 65,537).
pub(crate) fn rsa_exponent(encoded: u32) -> u32 {
    match encoded {
        0 => RSA_DEFAULT_EXPONENT,
        other => other,
    }
}

/// Parses a whole `T` from `bytes`, at most `max` bytes, with no trailing bytes.
pub(crate) fn parse_whole<T: TpmUnmarshal>(
    bytes: &[u8],
    what: &'static str,
    max: usize,
) -> Result<T, QuoteError> {
    if bytes.len() > max {
        return Err(QuoteError::TooLarge {
            what,
            size_bytes: bytes.len(),
            max,
        });
    }
    match T::unmarshal(bytes) {
        Ok((value, [])) => Ok(value),
        _ => Err(QuoteError::Malformed { what }),
    }
}

/// The evidence of one quote as a machine sends it.
#[derive(Clone, Copy, Debug)]
pub struct Quote<'a> {
    /// The `TPMS_ATTEST` the TPM produced (`Attest::marshall` in tss-esapi).
    pub attest: &'a [u8],
    /// The `TPMT_SIGNATURE` over it (`Signature::marshall`).
    pub signature: &'a [u8],
}

/// Verifies a quote (see the module docs for the order of checks). `pcrs` are the SHA-256
/// PCR values the report carries; `last` is the clock of this machine's last accepted quote.
pub fn verify(
    ak: &AkPublic,
    quote: Quote<'_>,
    nonce: &[u8],
    pcrs: &BTreeMap<u32, Digest>,
    last: Option<TpmClock>,
) -> Result<VerifiedQuote, QuoteError> {
    let attest = parse_whole::<TpmsAttest>(quote.attest, "attestation", ATTEST_MAX_BYTES)?;
    ak.verify_signature(quote.attest, quote.signature)?;
    let TpmuAttest::Quote(info) = &attest.attested else {
        return Err(QuoteError::NotAQuote);
    };
    if attest.attest_type != TpmSt::AttestQuote {
        return Err(QuoteError::NotAQuote);
    }
    if attest.extra_data.as_ref() != nonce {
        return Err(QuoteError::NonceMismatch);
    }
    let clock = TpmClock {
        reset_count: attest.clock_info.reset_count.value(),
        restart_count: attest.clock_info.restart_count.value(),
        clock_ms: attest.clock_info.clock.value(),
    };
    if let Some(last) = last.filter(|last| !is_after(&clock, last)) {
        return Err(QuoteError::Replayed {
            quoted: clock,
            last,
        });
    }
    let selected = selected_pcrs(info.pcr_select.as_ref())?;
    let reported: Vec<u32> = pcrs.keys().copied().collect();
    if selected != reported {
        return Err(QuoteError::PcrSetMismatch {
            quoted: selected,
            reported,
        });
    }
    let pcr_digest: Digest = info
        .pcr_digest
        .as_ref()
        .try_into()
        .map_err(|_| QuoteError::PcrDigestMismatch)?;
    if pcr::quote_digest(pcrs) != pcr_digest {
        return Err(QuoteError::PcrDigestMismatch);
    }
    Ok(VerifiedQuote {
        clock,
        pcrs: selected,
        pcr_digest,
        firmware_version: attest.firmware_version.value(),
    })
}

/// Whether `quoted` comes after `last`: a later reset or restart, or the same ones and a
/// later clock. (The TPM's clock is saved to NV only now and then, so after a power loss it
/// may go back; the reset count then moves on.)
fn is_after(quoted: &TpmClock, last: &TpmClock) -> bool {
    quoted > last
}

/// The PCR indices a selection list picks, if it is the SHA-256 bank alone.
fn selected_pcrs(
    selections: &[tpm2_protocol::data::TpmsPcrSelection],
) -> Result<Vec<u32>, QuoteError> {
    let [selection] = selections else {
        return Err(QuoteError::WrongBank);
    };
    if selection.hash != TpmAlgId::Sha256 {
        return Err(QuoteError::WrongBank);
    }
    let mut pcrs = Vec::new();
    // At most TPM_PCR_SELECT_MAX (4) bytes: PCR indices stay below 32.
    for (byte_index, byte) in (0u32..).zip(selection.pcr_select.iter()) {
        for bit in 0..8u32 {
            if byte & (1 << bit) != 0 {
                pcrs.push(byte_index.saturating_mul(8).saturating_add(bit));
            }
        }
    }
    Ok(pcrs)
}

#[cfg(test)]
mod tests;
