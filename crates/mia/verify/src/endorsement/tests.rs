use super::*;
use crate::test_ca::{certificate, der, ek_public, key, TestCa};
use std::str::FromStr as _;
use x509_cert::{builder::Profile, name::Name};

/// Verifies `chain` for `ek` against the anchors `approved`, as the chain does; the anchor's
/// index.
fn endorse(chain: &[u8], ek: &[u8], approved: &[Digest]) -> Result<usize, EndorsementError> {
    let chain = Chain::parse(chain)?;
    let root = chain.endorse(ek, |hash| approved.contains(hash))?;
    let hashes = chain.key_hashes()?;
    Ok(hashes.iter().position(|hash| *hash == root).unwrap())
}

#[test]
fn a_chain_to_an_approved_root_endorses_its_ek_and_only_it() {
    let ca = TestCa::new(7);
    let ek = ek_public(0xC5, 0);
    assert_eq!(endorse(&ca.chain(&ek), &ek, &[ca.root_key_hash()]), Ok(2));
    // The same key written with the explicit exponent is the same EK.
    assert_eq!(
        endorse(
            &ca.chain(&ek),
            &ek_public(0xC5, 65_537),
            &[ca.root_key_hash()]
        ),
        Ok(2)
    );
    // An approved intermediate is an anchor too; the root after it is then ignored.
    let issuer = key_hash(&ca.issuer.tbs_certificate.subject_public_key_info).unwrap();
    let leaf = ca.certify(&ek);
    assert_eq!(endorse(&der(&[&leaf, &ca.issuer]), &ek, &[issuer]), Ok(1));
    assert_eq!(endorse(&ca.chain(&ek), &ek, &[issuer]), Ok(1));
    assert_eq!(
        endorse(&ca.chain(&ek), &ek, &[issuer, ca.root_key_hash()]),
        Ok(1)
    );
    // Another EK, the chain of another CA, no anchor approved.
    assert_eq!(
        endorse(&ca.chain(&ek), &ek_public(0xC7, 0), &[ca.root_key_hash()]),
        Err(EndorsementError::KeyMismatch)
    );
    let other = TestCa::new(8);
    assert_eq!(
        endorse(&other.chain(&ek), &ek, &[ca.root_key_hash()]),
        Err(EndorsementError::NoApprovedAnchor)
    );
    // The EK's own key is never an anchor (a self-made "certificate" proves nothing).
    let leaf_key = key_hash(&leaf.tbs_certificate.subject_public_key_info).unwrap();
    assert_eq!(
        endorse(&der(&[&leaf]), &ek, &[leaf_key]),
        Err(EndorsementError::NoApprovedAnchor)
    );
}

#[test]
fn a_forged_or_rechained_certificate_is_refused_with_its_reason() {
    let ca = TestCa::new(7);
    let ek = ek_public(0xC5, 0);
    let roots = [ca.root_key_hash()];

    // The EK certificate signed by a key of the attacker's, under the intermediate's name.
    let forged = certificate(
        Profile::Leaf {
            issuer: ca.issuer.tbs_certificate.subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: true,
        },
        3,
        "CN=Test TPM EK",
        crate::test_ca::ek_spki(&ek),
        &key(66),
    );
    assert_eq!(
        endorse(&der(&[&forged, &ca.issuer, &ca.root]), &ek, &roots),
        Err(EndorsementError::BadSignature(0))
    );

    // A flipped bit in the signature, and in the signed body.
    let mut bytes = ca.chain(&ek);
    let leaf_len = ca.certify(&ek).to_der().unwrap().len();
    bytes[leaf_len - 3] ^= 1;
    assert_eq!(
        endorse(&bytes, &ek, &roots),
        Err(EndorsementError::BadSignature(0))
    );

    // The intermediate's name under another root: names no longer chain.
    let other = TestCa::new(8);
    assert_eq!(
        endorse(
            &der(&[&ca.certify(&ek), &other.issuer, &ca.root]),
            &ek,
            &roots
        ),
        Err(EndorsementError::IssuerMismatch(0))
    );

    // An end-entity certificate of the root's used as a CA to sign the EK certificate.
    let end_key = key(77);
    let end = certificate(
        Profile::Leaf {
            issuer: ca.root.tbs_certificate.subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        9,
        "CN=Test TPM Issuer 7",
        SubjectPublicKeyInfoOwned::from_key(*end_key.verifying_key()).unwrap(),
        &key(7),
    );
    let signed_by_end = certificate(
        Profile::Leaf {
            issuer: end.tbs_certificate.subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: true,
        },
        3,
        "CN=Test TPM EK",
        crate::test_ca::ek_spki(&ek),
        &end_key,
    );
    assert_eq!(
        endorse(&der(&[&signed_by_end, &end, &ca.root]), &ek, &roots),
        Err(EndorsementError::NotACa(1))
    );

    // A second intermediate under one whose path length is 0.
    let deeper_key = key(88);
    let deeper = certificate(
        Profile::SubCA {
            issuer: ca.issuer.tbs_certificate.subject.clone(),
            path_len_constraint: None,
        },
        10,
        "CN=Deeper Issuer",
        SubjectPublicKeyInfoOwned::from_key(*deeper_key.verifying_key()).unwrap(),
        &ca.issuer_key,
    );
    let under_deeper = certificate(
        Profile::Leaf {
            issuer: Name::from_str("CN=Deeper Issuer").unwrap(),
            enable_key_agreement: false,
            enable_key_encipherment: true,
        },
        3,
        "CN=Test TPM EK",
        crate::test_ca::ek_spki(&ek),
        &deeper_key,
    );
    assert_eq!(
        endorse(
            &der(&[&under_deeper, &deeper, &ca.issuer, &ca.root]),
            &ek,
            &roots
        ),
        Err(EndorsementError::NotACa(2))
    );
}

#[test]
fn malformed_empty_and_oversize_chains_are_refused_before_any_signature() {
    let ca = TestCa::new(7);
    let ek = ek_public(0xC5, 0);
    let roots = [ca.root_key_hash()];
    assert_eq!(endorse(&[], &ek, &roots), Err(EndorsementError::Empty));
    assert_eq!(
        endorse(&[0x30, 0x82, 0xFF], &ek, &roots),
        Err(EndorsementError::Structure)
    );
    assert_eq!(
        endorse(&[0x30, 0x03, 1, 2, 3], &ek, &roots),
        Err(EndorsementError::Structure)
    );
    assert_eq!(
        endorse(&[0x30, 0x03, 2, 1, 3], &ek, &roots),
        Err(EndorsementError::Malformed(0))
    );
    let mut trailing_garbage = ca.chain(&ek);
    trailing_garbage.extend_from_slice(&[0; 8]);
    assert_eq!(
        endorse(&trailing_garbage, &ek, &roots),
        Err(EndorsementError::Malformed(3))
    );
    // A name of many attributes in one RDN (a SET OF a decoder sorts in quadratic time), and
    // values nested past the bound, are refused before any decoding.
    let many = (0..SET_ELEMENTS_MAX + 1)
        .map(|i| format!("CN=n{i}"))
        .collect::<Vec<_>>()
        .join("+");
    let wide = certificate(
        Profile::Leaf {
            issuer: ca.issuer.tbs_certificate.subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: true,
        },
        3,
        &many,
        crate::test_ca::ek_spki(&ek),
        &ca.issuer_key,
    );
    assert_eq!(
        endorse(&der(&[&wide, &ca.issuer, &ca.root]), &ek, &roots),
        Err(EndorsementError::Structure)
    );
    let mut deep = Vec::new();
    for _ in 0..=NESTING_MAX {
        deep = [vec![0x30, deep.len() as u8], deep].concat();
    }
    assert_eq!(
        endorse(&deep, &ek, &roots),
        Err(EndorsementError::Structure)
    );
    let leaf = ca.certify(&ek);
    let five = der(&[&leaf, &ca.issuer, &ca.issuer, &ca.issuer, &ca.root]);
    assert_eq!(endorse(&five, &ek, &roots), Err(EndorsementError::TooLong));
    assert_eq!(
        endorse(&vec![0x30; CHAIN_MAX_BYTES + 1], &ek, &roots),
        Err(EndorsementError::TooLong)
    );
    // An EK that is not an RSA-2048 EK.
    assert_eq!(
        endorse(&ca.chain(&ek), &[0; 64], &roots),
        Err(EndorsementError::UnsupportedEndorsementKey)
    );
    // An anchor index outside the chain.
    let chain = Chain::parse(&ca.chain(&ek)).unwrap();
    assert_eq!(
        chain.verify(&ek, 0),
        Err(EndorsementError::NoApprovedAnchor)
    );
    assert_eq!(
        chain.verify(&ek, 3),
        Err(EndorsementError::NoApprovedAnchor)
    );
    assert_eq!(
        certificate_key_hash(&ca.root.to_der().unwrap()),
        Ok(ca.root_key_hash())
    );
    assert_eq!(
        certificate_key_hash(&[1, 2, 3]),
        Err(EndorsementError::Malformed(0))
    );
}

proptest::proptest! {
    /// Whatever bytes arrive, parsing and verifying return (never panic).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(0u8..=255, 0..2_048)) {
        let ek = ek_public(0xC5, 0);
        if let Ok(chain) = Chain::parse(&bytes) {
            let _ = chain.key_hashes();
            for anchor in 0..=chain.len() {
                let _ = chain.verify(&ek, anchor);
            }
        }
    }

    /// Any single byte changed in a genuine chain either still verifies (an unsigned field
    /// such as the root's own signature) or is refused; it never panics.
    #[test]
    fn a_genuine_chain_with_one_byte_changed_never_panics(at in 0usize..3_000, xor in 1u8..=255) {
        let ca = TestCa::new(7);
        let ek = ek_public(0xC5, 0);
        let mut bytes = ca.chain(&ek);
        let at = at % bytes.len();
        bytes[at] ^= xor;
        let _ = endorse(&bytes, &ek, &[ca.root_key_hash()]);
    }
}
