//! A certificate authority for tests (feature `test-ca`, never in a shipped binary): an ECDSA
//! P-256 root and intermediate that certify any EK, so tests can build genuine chains and
//! the forged ones an attacker would send.

use crate::{endorsement, pcr::Digest};
use p256::ecdsa::{DerSignature, SigningKey};
use rsa::pkcs8::EncodePublicKey as _;
use std::{str::FromStr as _, time::Duration};
use x509_cert::{
    builder::{Builder as _, CertificateBuilder, Profile},
    der::{Decode as _, Encode as _},
    name::Name,
    serial_number::SerialNumber,
    spki::SubjectPublicKeyInfoOwned,
    time::Validity,
    Certificate,
};

/// A root and an intermediate CA, keys from a seed.
pub struct TestCa {
    /// The intermediate's key (it signs EK certificates).
    pub issuer_key: SigningKey,
    /// The root's certificate (self-signed).
    pub root: Certificate,
    /// The intermediate's certificate (signed by the root).
    pub issuer: Certificate,
}

/// A P-256 key from `seed` (any byte but 0).
pub fn key(seed: u8) -> SigningKey {
    let mut bytes = [seed; 32];
    bytes[0] = 1;
    SigningKey::from_bytes(&bytes.into()).expect("a valid scalar")
}

fn spki_of(key: &SigningKey) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).expect("a P-256 key encodes")
}

fn validity() -> Validity {
    Validity::from_now(Duration::from_secs(3_600 * 24 * 365)).expect("a year from now")
}

/// A certificate for `spki` named `subject`, under `profile`, signed by `signer`.
pub fn certificate(
    profile: Profile,
    serial: u32,
    subject: &str,
    spki: SubjectPublicKeyInfoOwned,
    signer: &SigningKey,
) -> Certificate {
    CertificateBuilder::new(
        profile,
        SerialNumber::from(serial),
        validity(),
        Name::from_str(subject).expect("a name"),
        spki,
        signer,
    )
    .expect("a builder")
    .build::<DerSignature>()
    .expect("a certificate")
}

/// The `SubjectPublicKeyInfo` of an EK's `TPMT_PUBLIC`.
pub fn ek_spki(ek_public: &[u8]) -> SubjectPublicKeyInfoOwned {
    let key = crate::credential::endorsement_rsa(ek_public).expect("an EK");
    let der = key.to_public_key_der().expect("an RSA key encodes");
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("an SPKI")
}

/// Concatenated DER of `certificates`.
pub fn der(certificates: &[&Certificate]) -> Vec<u8> {
    certificates
        .iter()
        .flat_map(|c| c.to_der().expect("a certificate encodes"))
        .collect()
}

impl TestCa {
    /// A CA "Test TPM Root `seed`" with an intermediate "Test TPM Issuer `seed`".
    pub fn new(seed: u8) -> Self {
        let root_key = key(seed);
        let issuer_key = key(seed.wrapping_add(100));
        let root_name = format!("CN=Test TPM Root {seed}");
        let root = certificate(Profile::Root, 1, &root_name, spki_of(&root_key), &root_key);
        let issuer = certificate(
            Profile::SubCA {
                issuer: Name::from_str(&root_name).expect("a name"),
                path_len_constraint: Some(0),
            },
            2,
            &format!("CN=Test TPM Issuer {seed}"),
            spki_of(&issuer_key),
            &root_key,
        );
        Self {
            issuer_key,
            root,
            issuer,
        }
    }

    /// The anchor id of the root's key (what governance approves).
    pub fn root_key_hash(&self) -> Digest {
        endorsement::key_hash(&self.root.tbs_certificate.subject_public_key_info)
            .expect("the root's key encodes")
    }

    /// An EK certificate for `ek_public` signed by the intermediate.
    pub fn certify(&self, ek_public: &[u8]) -> Certificate {
        certificate(
            Profile::Leaf {
                issuer: self.issuer.tbs_certificate.subject.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: true,
            },
            3,
            "CN=Test TPM EK",
            ek_spki(ek_public),
            &self.issuer_key,
        )
    }

    /// The full chain for `ek_public`: its certificate, the intermediate's, the root's.
    pub fn chain(&self, ek_public: &[u8]) -> Vec<u8> {
        der(&[&self.certify(ek_public), &self.issuer, &self.root])
    }
}

fn tpm2b(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// An RSA-2048 EK's `TPMT_PUBLIC` in the TCG default template's shape (EK Credential Profile
/// §2.1.5.1), every modulus byte `modulus` (odd, for a valid key), exponent field `exponent`
/// (0 means 65537).
pub fn ek_public(modulus: u8, exponent: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0x0001u16.to_be_bytes());
    out.extend_from_slice(&0x000Bu16.to_be_bytes());
    out.extend_from_slice(&0x0003_00B2u32.to_be_bytes());
    out.extend_from_slice(&tpm2b(&[0x83; 32]));
    for field in [0x0006u16, 128, 0x0043, 0x0010, 2048] {
        out.extend_from_slice(&field.to_be_bytes());
    }
    out.extend_from_slice(&exponent.to_be_bytes());
    out.extend_from_slice(&tpm2b(&[modulus; 256]));
    out
}
