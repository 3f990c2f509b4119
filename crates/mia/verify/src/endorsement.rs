//! The endorsement key's certificate chain: is this EK a genuine TPM's?
//!
//! A TPM's manufacturer certifies its endorsement key (EK) with an X.509 certificate (TCG EK
//! Credential Profile for TPM Family 2.0, §3), stored in the TPM's NV (RSA EK: index
//! `0x01c00002`) or published by the manufacturer, and signed through one or more
//! intermediate CAs by the manufacturer's root. A key the manufacturer never certified
//! (a software TPM's, or an RSA key dressed as an EK) has no such chain; so a verifier that
//! trusts only manufacturers' roots admits only keys that live in TPMs those manufacturers
//! built.
//!
//! # The chain
//! Concatenated DER certificates, the EK's own first, each followed by its issuer's, up to and
//! including the certificate of an approved **anchor** (RFC 5280 §6.1.1 (d): a trust anchor is
//! a public key, here named by the SHA-256 of its DER `SubjectPublicKeyInfo`,
//! [`key_hash`]). [`Chain::parse`] reads at most [`CHAIN_CERTIFICATES_MAX`] certificates from at
//! most [`CHAIN_MAX_BYTES`], after checking no SET holds more than [`SET_ELEMENTS_MAX`]
//! elements and nothing nests deeper than [`NESTING_MAX`] (a decoder sorts each SET OF, in
//! time quadratic in its size); the caller finds which certificate's key is approved
//! ([`Chain::key_hashes`]) and [`Chain::verify`] checks, for every certificate below the
//! first approved one:
//! - its issuer name equals the next certificate's subject name (as decoded) and the signature
//!   algorithm inside and outside its `tbsCertificate` agree;
//! - the next certificate, unless it is the anchor's, is a CA (`basicConstraints` `cA` true,
//!   its `pathLenConstraint` respected), and its key signed this one: RSASSA-PKCS1-v1_5 with
//!   SHA-256/384/512 (a public exponent of at most 65,537), or ECDSA on P-256 or P-384 with
//!   SHA-256/384 (RFC 5758 §3.2; RustCrypto);
//! - the first certificate's key is the EK (same RSA modulus and exponent).
//!
//! The anchor's own certificate is not checked (its key is what is trusted, whatever the
//! certificate around it says), and certificates after it are ignored (a manufacturer's full
//! bundle works when governance approved an intermediate). Validity periods are not checked:
//! the state transition has no agreed clock, and manufacturers' EK certificates run for decades
//! (swtpm's until 9999). A compromised root or intermediate is handled by revoking its anchor,
//! which reaches every machine it endorsed. Nothing here requires the first certificate to
//! be an EK certificate (TCG's EKU or SAN): an approved root must be a CA that certifies only
//! EKs, as manufacturers' EK CAs are.
//!
//! Pure, bounded, no panics: the chain's state transition runs it.

use crate::{
    credential,
    pcr::{self, Digest},
};
use rsa::{pkcs8::DecodePublicKey as _, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::{
    der::{
        asn1::ObjectIdentifier as Oid, oid::db::rfc5912, Decode as _, Encode as _, Reader as _,
        SliceReader,
    },
    ext::pkix::BasicConstraints,
    spki::SubjectPublicKeyInfoOwned,
    Certificate,
};

/// The largest chain, bytes: an EK certificate and three CA certificates of RSA-4096 keys.
pub const CHAIN_MAX_BYTES: usize = 6_144;
/// The most certificates a chain may hold: the EK's and three CAs'.
pub const CHAIN_CERTIFICATES_MAX: usize = 4;
/// The most elements any SET in a chain may hold (a name's attributes per RDN are 1–3).
pub const SET_ELEMENTS_MAX: usize = 8;
/// The deepest nesting of constructed values in a chain (a certificate needs about 8).
pub const NESTING_MAX: usize = 16;
/// The largest RSA public exponent of a CA key (F4; a larger one only makes verifying slower).
const RSA_EXPONENT_MAX: u32 = 65_537;

/// Why a chain does not endorse an EK. Certificates are numbered from 0, the EK's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndorsementError {
    /// No certificate at all.
    #[error("no certificate chain")]
    Empty,
    /// More than [`CHAIN_MAX_BYTES`] or [`CHAIN_CERTIFICATES_MAX`] certificates.
    #[error("a chain is at most {CHAIN_CERTIFICATES_MAX} certificates, {CHAIN_MAX_BYTES} bytes")]
    TooLong,
    /// A SET of more than [`SET_ELEMENTS_MAX`] elements, nesting deeper than [`NESTING_MAX`],
    /// or a tag or length DER does not allow.
    #[error("the chain's encoding is not DER within its bounds")]
    Structure,
    /// Certificate `.0` is not DER X.509.
    #[error("certificate {0} is malformed")]
    Malformed(usize),
    /// The EK is not one [`credential`] can challenge.
    #[error("unsupported endorsement key")]
    UnsupportedEndorsementKey,
    /// The first certificate certifies another key.
    #[error("the first certificate is not the endorsement key's")]
    KeyMismatch,
    /// No certificate past the first has an approved key.
    #[error("no certificate in the chain has an approved anchor key")]
    NoApprovedAnchor,
    /// Certificate `.0`'s issuer is not the next certificate's subject.
    #[error("certificate {0} was not issued by the next one's subject")]
    IssuerMismatch(usize),
    /// Certificate `.0` signs others but is not a CA, or its path length forbids it.
    #[error("certificate {0} is not a CA for this chain")]
    NotACa(usize),
    /// Certificate `.0`'s signature or its issuer's key uses an algorithm not supported here,
    /// or its two signature algorithm fields differ.
    #[error("certificate {0}'s signature algorithm is not supported")]
    UnsupportedAlgorithm(usize),
    /// Certificate `.0`'s signature does not verify under its issuer's key.
    #[error("certificate {0}'s signature does not verify")]
    BadSignature(usize),
}

/// A parsed chain, the EK's certificate first.
#[derive(Clone, Debug)]
pub struct Chain {
    certificates: Vec<Certificate>,
}

/// The anchor id of a key: SHA-256 of its DER `SubjectPublicKeyInfo`.
pub fn key_hash(spki: &SubjectPublicKeyInfoOwned) -> Result<Digest, EndorsementError> {
    let der = spki.to_der().map_err(|_| EndorsementError::Malformed(0))?;
    Ok(pcr::sha256(&der))
}

/// The anchor id of the key a DER certificate certifies (what governance approves).
pub fn certificate_key_hash(der: &[u8]) -> Result<Digest, EndorsementError> {
    if der.len() > CHAIN_MAX_BYTES {
        return Err(EndorsementError::TooLong);
    }
    let certificate = Certificate::from_der(der).map_err(|_| EndorsementError::Malformed(0))?;
    key_hash(&certificate.tbs_certificate.subject_public_key_info)
}

impl Chain {
    /// Parses concatenated DER certificates (see the module docs for the bounds).
    pub fn parse(bytes: &[u8]) -> Result<Self, EndorsementError> {
        if bytes.len() > CHAIN_MAX_BYTES {
            return Err(EndorsementError::TooLong);
        }
        check_structure(bytes, 0).ok_or(EndorsementError::Structure)?;
        let mut reader = SliceReader::new(bytes).map_err(|_| EndorsementError::TooLong)?;
        let mut certificates = Vec::new();
        while !reader.is_finished() {
            if certificates.len() == CHAIN_CERTIFICATES_MAX {
                return Err(EndorsementError::TooLong);
            }
            let index = certificates.len();
            let certificate =
                Certificate::decode(&mut reader).map_err(|_| EndorsementError::Malformed(index))?;
            certificates.push(certificate);
        }
        match certificates.is_empty() {
            true => Err(EndorsementError::Empty),
            false => Ok(Self { certificates }),
        }
    }

    /// How many certificates the chain holds.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    /// Whether the chain is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// The anchor id of each certificate's key, in chain order.
    pub fn key_hashes(&self) -> Result<Vec<Digest>, EndorsementError> {
        self.certificates
            .iter()
            .enumerate()
            .map(|(index, certificate)| {
                key_hash(&certificate.tbs_certificate.subject_public_key_info)
                    .map_err(|_| EndorsementError::Malformed(index))
            })
            .collect()
    }

    /// The index of the first certificate past the EK's whose key `approved` accepts.
    pub fn anchor(&self, approved: &[bool]) -> Result<usize, EndorsementError> {
        approved
            .iter()
            .enumerate()
            .skip(1)
            .find_map(|(index, yes)| yes.then_some(index))
            .ok_or(EndorsementError::NoApprovedAnchor)
    }

    /// The whole check: the anchor is the first certificate past the EK's whose key
    /// `approved` accepts (given each key's [`key_hash`]), every link below it is verified
    /// for `ek_public`; returns the anchor's key hash (the endorsement root).
    pub fn endorse(
        &self,
        ek_public: &[u8],
        approved: impl Fn(&Digest) -> bool,
    ) -> Result<Digest, EndorsementError> {
        let hashes = self.key_hashes()?;
        let flags: Vec<bool> = hashes.iter().map(&approved).collect();
        let anchor = self.anchor(&flags)?;
        self.verify(ek_public, anchor)?;
        hashes
            .get(anchor)
            .copied()
            .ok_or(EndorsementError::NoApprovedAnchor)
    }

    /// Checks that the certificates below `anchor` endorse `ek_public` (the EK's
    /// `TPMT_PUBLIC`) up to the anchor's key (see the module docs).
    pub fn verify(&self, ek_public: &[u8], anchor: usize) -> Result<(), EndorsementError> {
        if anchor == 0 || anchor >= self.certificates.len() {
            return Err(EndorsementError::NoApprovedAnchor);
        }
        let ek = credential::endorsement_rsa(ek_public)
            .map_err(|_| EndorsementError::UnsupportedEndorsementKey)?;
        let leaf = &self.certificates[0].tbs_certificate.subject_public_key_info;
        let leaf_der = leaf.to_der().map_err(|_| EndorsementError::Malformed(0))?;
        match RsaPublicKey::from_public_key_der(&leaf_der) {
            Ok(key) if key == ek => {}
            _ => return Err(EndorsementError::KeyMismatch),
        }
        for index in 0..anchor {
            let issuer_index = index.saturating_add(1);
            let (subject, issuer) = (&self.certificates[index], &self.certificates[issuer_index]);
            if subject.tbs_certificate.issuer != issuer.tbs_certificate.subject {
                return Err(EndorsementError::IssuerMismatch(index));
            }
            // Certificates 1..=index are the intermediates below this issuer (RFC 5280
            // §4.2.1.9: `pathLenConstraint` counts them, not the EK's). The anchor's
            // certificate is whatever its sender wrote: only its key counts.
            if issuer_index != anchor && !is_ca_over(issuer, index) {
                return Err(EndorsementError::NotACa(issuer_index));
            }
            verify_signature(subject, issuer, index)?;
        }
        Ok(())
    }
}

/// Walks the DER values of `bytes` (at nesting `depth`): `Some` when every tag is a
/// single-byte one, every length definite and within its value, no SET holds more than
/// [`SET_ELEMENTS_MAX`] elements and nothing nests deeper than [`NESTING_MAX`].
fn check_structure(mut bytes: &[u8], depth: usize) -> Option<()> {
    if depth > NESTING_MAX {
        return None;
    }
    while let Some((&tag, rest)) = bytes.split_first() {
        // High-tag-number form: not used by X.509.
        if tag & 0x1F == 0x1F {
            return None;
        }
        let (length, rest) = der_length(rest)?;
        let (value, after) = (rest.get(..length)?, rest.get(length..)?);
        if tag & 0x20 != 0 {
            if tag == 0x31 && elements(value)? > SET_ELEMENTS_MAX {
                return None;
            }
            check_structure(value, depth.saturating_add(1))?;
        }
        bytes = after;
    }
    Some(())
}

/// How many values `bytes` holds, one after the other.
fn elements(mut bytes: &[u8]) -> Option<usize> {
    let mut count = 0usize;
    while let Some((_, rest)) = bytes.split_first() {
        let (length, rest) = der_length(rest)?;
        bytes = rest.get(length..)?;
        count = count.saturating_add(1);
    }
    Some(count)
}

/// A DER length (short form, or long form of 1 or 2 bytes: a chain is below 64 KiB) and what
/// follows it.
fn der_length(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    match first {
        0..=0x7F => Some((usize::from(first), rest)),
        0x81 => rest.split_first().map(|(&b, rest)| (usize::from(b), rest)),
        0x82 => {
            let (high, rest) = rest.split_first()?;
            let (low, rest) = rest.split_first()?;
            Some((usize::from(u16::from_be_bytes([*high, *low])), rest))
        }
        _ => None,
    }
}

/// Whether `certificate` is a CA whose path length allows `below` CAs under it.
fn is_ca_over(certificate: &Certificate, below: usize) -> bool {
    let Some(extensions) = &certificate.tbs_certificate.extensions else {
        return false;
    };
    let constraint = extensions
        .iter()
        .find(|e| e.extn_id == rfc5912::ID_CE_BASIC_CONSTRAINTS);
    let Some(extension) = constraint else {
        return false;
    };
    match BasicConstraints::from_der(extension.extn_value.as_bytes()) {
        Ok(constraints) => {
            constraints.ca
                && constraints
                    .path_len_constraint
                    .is_none_or(|most| below <= usize::from(most))
        }
        Err(_) => false,
    }
}

/// The hash a signature algorithm signs with, and whether it is ECDSA.
#[derive(Clone, Copy)]
enum Scheme {
    Rsa(HashAlg),
    Ecdsa(HashAlg),
}

#[derive(Clone, Copy)]
enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(message).to_vec(),
            Self::Sha384 => Sha384::digest(message).to_vec(),
            Self::Sha512 => Sha512::digest(message).to_vec(),
        }
    }

    fn pkcs1v15(self) -> Pkcs1v15Sign {
        match self {
            Self::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
            Self::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
            Self::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
        }
    }
}

fn scheme(oid: &Oid) -> Option<Scheme> {
    Some(match *oid {
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION => Scheme::Rsa(HashAlg::Sha256),
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION => Scheme::Rsa(HashAlg::Sha384),
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION => Scheme::Rsa(HashAlg::Sha512),
        rfc5912::ECDSA_WITH_SHA_256 => Scheme::Ecdsa(HashAlg::Sha256),
        rfc5912::ECDSA_WITH_SHA_384 => Scheme::Ecdsa(HashAlg::Sha384),
        _ => return None,
    })
}

/// Checks `issuer`'s key signed `subject` (certificate `index`).
fn verify_signature(
    subject: &Certificate,
    issuer: &Certificate,
    index: usize,
) -> Result<(), EndorsementError> {
    let unsupported = EndorsementError::UnsupportedAlgorithm(index);
    let bad = EndorsementError::BadSignature(index);
    if subject.signature_algorithm != subject.tbs_certificate.signature {
        return Err(unsupported);
    }
    let scheme = scheme(&subject.signature_algorithm.oid).ok_or(unsupported.clone())?;
    let signed = subject
        .tbs_certificate
        .to_der()
        .map_err(|_| EndorsementError::Malformed(index))?;
    let signature = subject.signature.as_bytes().ok_or(bad.clone())?;
    let key = &issuer.tbs_certificate.subject_public_key_info;
    match scheme {
        Scheme::Rsa(hash) => {
            let der = key.to_der().map_err(|_| unsupported.clone())?;
            let rsa = RsaPublicKey::from_public_key_der(&der).map_err(|_| unsupported.clone())?;
            if *rsa::traits::PublicKeyParts::e(&rsa) > rsa::BigUint::from(RSA_EXPONENT_MAX) {
                return Err(unsupported);
            }
            rsa.verify(hash.pkcs1v15(), &hash.digest(&signed), signature)
                .map_err(|_| bad)
        }
        Scheme::Ecdsa(hash) => verify_ecdsa(key, &hash.digest(&signed), signature, index),
    }
}

/// ECDSA over `prehash` with a P-256 or P-384 key.
fn verify_ecdsa(
    key: &SubjectPublicKeyInfoOwned,
    prehash: &[u8],
    signature: &[u8],
    index: usize,
) -> Result<(), EndorsementError> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
    let unsupported = EndorsementError::UnsupportedAlgorithm(index);
    let bad = EndorsementError::BadSignature(index);
    if key.algorithm.oid != rfc5912::ID_EC_PUBLIC_KEY {
        return Err(unsupported);
    }
    let curve = key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|any| any.decode_as::<Oid>().ok())
        .ok_or(unsupported.clone())?;
    let point = key
        .subject_public_key
        .as_bytes()
        .ok_or(unsupported.clone())?;
    match curve {
        rfc5912::SECP_256_R_1 => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| unsupported)?;
            let signature = p256::ecdsa::Signature::from_der(signature).map_err(|_| bad.clone())?;
            key.verify_prehash(prehash, &signature).map_err(|_| bad)
        }
        rfc5912::SECP_384_R_1 => {
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| unsupported)?;
            let signature = p384::ecdsa::Signature::from_der(signature).map_err(|_| bad.clone())?;
            key.verify_prehash(prehash, &signature).map_err(|_| bad)
        }
        _ => Err(unsupported),
    }
}

#[cfg(test)]
mod tests;
