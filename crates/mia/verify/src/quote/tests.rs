//! Quote parsing and verification from the attacker's side, on structures built and signed
//! here (a software P-256 key standing in for a TPM's AK). Genuine quotes from a TPM are
//! checked against swtpm in `logos-mia-collect`'s tests.

use super::*;
use p256::ecdsa::{signature::hazmat::PrehashSigner, SigningKey};
use proptest::prelude::*;

/// TPMA_OBJECT of an AK: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth,
/// restricted, sign.
const AK_ATTRIBUTES: u32 = 0x0005_0072;

fn tpm2b(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32].into()).unwrap()
}

/// An ECC `TPMT_PUBLIC` for `key`, with the given attributes, name algorithm, curve and
/// scheme hash.
fn ecc_public(key: &SigningKey, attributes: u32, name_alg: u16, curve: u16, hash: u16) -> Vec<u8> {
    let point = key.verifying_key().to_encoded_point(false);
    let mut out = Vec::new();
    out.extend_from_slice(&0x0023u16.to_be_bytes());
    out.extend_from_slice(&name_alg.to_be_bytes());
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&tpm2b(&[]));
    out.extend_from_slice(&0x0010u16.to_be_bytes()); // symmetric: null
    out.extend_from_slice(&0x0018u16.to_be_bytes()); // scheme: ECDSA
    out.extend_from_slice(&hash.to_be_bytes());
    out.extend_from_slice(&curve.to_be_bytes());
    out.extend_from_slice(&0x0010u16.to_be_bytes()); // kdf: null
    out.extend_from_slice(&tpm2b(point.x().unwrap()));
    out.extend_from_slice(&tpm2b(point.y().unwrap()));
    out
}

fn ak() -> Vec<u8> {
    ecc_public(&signing_key(), AK_ATTRIBUTES, 0x000B, 0x0003, 0x000B)
}

/// How a test quote is made.
#[derive(Clone)]
struct QuoteSpec {
    attest_type: u16,
    nonce: Vec<u8>,
    clock: TpmClock,
    /// (hash algorithm, selection bitmap) per bank.
    banks: Vec<(u16, Vec<u8>)>,
    digest: Digest,
}

/// PCRs 0–14 of the SHA-256 bank, each a distinct value.
fn pcrs() -> BTreeMap<u32, Digest> {
    (0..=14).map(|i| (i, [i as u8 + 1; 32])).collect()
}

fn spec() -> QuoteSpec {
    QuoteSpec {
        attest_type: 0x8018,
        nonce: b"nonce".to_vec(),
        clock: TpmClock {
            reset_count: 2,
            restart_count: 0,
            clock_ms: 5_000,
        },
        banks: vec![(0x000B, vec![0xFF, 0x7F, 0x00])],
        digest: pcr::quote_digest(&pcrs()),
    }
}

fn attest(spec: &QuoteSpec) -> Vec<u8> {
    let mut out = 0xFF54_4347u32.to_be_bytes().to_vec();
    out.extend_from_slice(&spec.attest_type.to_be_bytes());
    let mut signer = vec![0x00, 0x0B];
    signer.extend_from_slice(&[0xAB; 32]);
    out.extend_from_slice(&tpm2b(&signer));
    out.extend_from_slice(&tpm2b(&spec.nonce));
    out.extend_from_slice(&spec.clock.clock_ms.to_be_bytes());
    out.extend_from_slice(&spec.clock.reset_count.to_be_bytes());
    out.extend_from_slice(&spec.clock.restart_count.to_be_bytes());
    out.push(1);
    out.extend_from_slice(&7u64.to_be_bytes());
    if spec.attest_type == 0x8018 {
        out.extend_from_slice(&(spec.banks.len() as u32).to_be_bytes());
        for (hash, select) in &spec.banks {
            out.extend_from_slice(&hash.to_be_bytes());
            out.push(select.len() as u8);
            out.extend_from_slice(select);
        }
        out.extend_from_slice(&tpm2b(&spec.digest));
    } else {
        // TPMS_CERTIFY_INFO: name, qualifiedName.
        out.extend_from_slice(&tpm2b(&signer));
        out.extend_from_slice(&tpm2b(&signer));
    }
    out
}

/// A `TPMT_SIGNATURE` (ECDSA, `hash`) by `key` over `message`.
fn sign(key: &SigningKey, message: &[u8], hash: u16) -> Vec<u8> {
    let signature: EcdsaSignature = key.sign_prehash(&pcr::sha256(message)).unwrap();
    let (r, s) = signature.split_bytes();
    let mut out = 0x0018u16.to_be_bytes().to_vec();
    out.extend_from_slice(&hash.to_be_bytes());
    out.extend_from_slice(&tpm2b(&r));
    out.extend_from_slice(&tpm2b(&s));
    out
}

fn check(
    spec: &QuoteSpec,
    reported: &BTreeMap<u32, Digest>,
    last: Option<TpmClock>,
) -> Result<VerifiedQuote, QuoteError> {
    let attest = attest(spec);
    let signature = sign(&signing_key(), &attest, 0x000B);
    let ak = AkPublic::from_tpmt_public(&ak()).unwrap();
    verify(
        &ak,
        Quote {
            attest: &attest,
            signature: &signature,
        },
        b"nonce",
        reported,
        last,
    )
}

#[test]
fn a_genuine_quote_verifies() {
    let verified = check(&spec(), &pcrs(), None).unwrap();
    assert_eq!(verified.pcrs, (0..=14).collect::<Vec<u32>>());
    assert_eq!(verified.clock, spec().clock);
    let later = TpmClock {
        clock_ms: 4_999,
        ..spec().clock
    };
    assert!(check(&spec(), &pcrs(), Some(later)).is_ok());
}

#[test]
fn each_forgery_of_the_attestation_has_its_reason() {
    let not_a_quote = QuoteSpec {
        attest_type: 0x8017,
        ..spec()
    };
    assert_eq!(
        check(&not_a_quote, &pcrs(), None),
        Err(QuoteError::NotAQuote)
    );
    let wrong_nonce = QuoteSpec {
        nonce: b"other".to_vec(),
        ..spec()
    };
    assert_eq!(
        check(&wrong_nonce, &pcrs(), None),
        Err(QuoteError::NonceMismatch)
    );
    assert!(matches!(
        check(&spec(), &pcrs(), Some(spec().clock)),
        Err(QuoteError::Replayed { .. })
    ));
    let two_banks = QuoteSpec {
        banks: vec![
            (0x0004, vec![0x00, 0x04, 0x00]),
            (0x000B, vec![0xFF, 0x7F, 0x00]),
        ],
        ..spec()
    };
    assert_eq!(check(&two_banks, &pcrs(), None), Err(QuoteError::WrongBank));
    let sha1_bank = QuoteSpec {
        banks: vec![(0x0004, vec![0xFF, 0x7F, 0x00])],
        ..spec()
    };
    assert_eq!(check(&sha1_bank, &pcrs(), None), Err(QuoteError::WrongBank));
    let no_bank = QuoteSpec {
        banks: vec![],
        ..spec()
    };
    assert_eq!(check(&no_bank, &pcrs(), None), Err(QuoteError::WrongBank));
    // PCR 31 selected (a fourth select byte): not a PCR the report carries.
    let past_the_bank = QuoteSpec {
        banks: vec![(0x000B, vec![0xFF, 0x7F, 0x00, 0x80])],
        ..spec()
    };
    assert!(matches!(
        check(&past_the_bank, &pcrs(), None),
        Err(QuoteError::PcrSetMismatch { .. })
    ));
    let mut fewer = pcrs();
    fewer.remove(&14);
    assert!(matches!(
        check(&spec(), &fewer, None),
        Err(QuoteError::PcrSetMismatch { .. })
    ));
    let mut changed = pcrs();
    changed.insert(10, [0xEE; 32]);
    assert_eq!(
        check(&spec(), &changed, None),
        Err(QuoteError::PcrDigestMismatch)
    );
}

#[test]
fn signatures_by_other_keys_or_schemes_are_refused() {
    let attest = attest(&spec());
    let ak = AkPublic::from_tpmt_public(&ak()).unwrap();
    let other = SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
    let by_other = sign(&other, &attest, 0x000B);
    let quote = Quote {
        attest: &attest,
        signature: &by_other,
    };
    assert_eq!(
        verify(&ak, quote, b"nonce", &pcrs(), None),
        Err(QuoteError::BadSignature)
    );
    let sha1 = sign(&signing_key(), &attest, 0x0004);
    let quote = Quote {
        attest: &attest,
        signature: &sha1,
    };
    assert_eq!(
        verify(&ak, quote, b"nonce", &pcrs(), None),
        Err(QuoteError::WrongScheme)
    );
    // An altered attestation under the genuine signature.
    let signature = sign(&signing_key(), &attest, 0x000B);
    let mut altered = attest.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let quote = Quote {
        attest: &altered,
        signature: &signature,
    };
    assert_eq!(
        verify(&ak, quote, b"nonce", &pcrs(), None),
        Err(QuoteError::BadSignature)
    );
    // Trailing bytes after the structure.
    let mut longer = attest.clone();
    longer.push(0);
    let quote = Quote {
        attest: &longer,
        signature: &signature,
    };
    assert_eq!(
        verify(&ak, quote, b"nonce", &pcrs(), None),
        Err(QuoteError::Malformed {
            what: "attestation"
        })
    );
}

#[test]
fn the_high_s_form_of_a_signature_also_verifies() {
    // Documented in the module: freshness never rests on signature bytes.
    let attest = attest(&spec());
    let signature: EcdsaSignature = signing_key().sign_prehash(&pcr::sha256(&attest)).unwrap();
    let (r, s) = signature.split_scalars();
    let flipped = EcdsaSignature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    let (r, s) = flipped.split_bytes();
    let mut bytes = 0x0018u16.to_be_bytes().to_vec();
    bytes.extend_from_slice(&0x000Bu16.to_be_bytes());
    bytes.extend_from_slice(&tpm2b(&r));
    bytes.extend_from_slice(&tpm2b(&s));
    let ak = AkPublic::from_tpmt_public(&ak()).unwrap();
    let quote = Quote {
        attest: &attest,
        signature: &bytes,
    };
    assert!(verify(&ak, quote, b"nonce", &pcrs(), None).is_ok());
}

#[test]
fn keys_missing_an_attestation_key_property_are_refused() {
    let key = signing_key();
    for missing in [0x2, 0x10, 0x20, 0x1_0000, 0x4_0000] {
        let public = ecc_public(&key, AK_ATTRIBUTES & !missing, 0x000B, 0x0003, 0x000B);
        assert!(
            matches!(
                AkPublic::from_tpmt_public(&public),
                Err(QuoteError::NotAnAttestationKey { .. })
            ),
            "without {missing:#x}"
        );
    }
    let cases = [
        (
            "decrypt too",
            ecc_public(&key, AK_ATTRIBUTES | 0x2_0000, 0x000B, 0x0003, 0x000B),
        ),
        (
            "SHA-1 names",
            ecc_public(&key, AK_ATTRIBUTES, 0x0004, 0x0003, 0x000B),
        ),
        (
            "P-384",
            ecc_public(&key, AK_ATTRIBUTES, 0x000B, 0x0004, 0x000B),
        ),
        (
            "SHA-384 scheme",
            ecc_public(&key, AK_ATTRIBUTES, 0x000B, 0x0003, 0x000C),
        ),
    ];
    for (what, public) in cases {
        assert!(
            matches!(
                AkPublic::from_tpmt_public(&public),
                Err(QuoteError::NotAnAttestationKey { .. })
            ),
            "{what}"
        );
    }
    assert!(AkPublic::from_tpmt_public(&ak()).is_ok());
}

/// An RSA `TPMT_PUBLIC` with the AK's attributes, `scheme` (RSASSA 0x0014, RSAPSS 0x0016) and
/// `modulus`.
fn rsa_public(scheme: u16, modulus: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0x0001u16.to_be_bytes());
    out.extend_from_slice(&0x000Bu16.to_be_bytes());
    out.extend_from_slice(&AK_ATTRIBUTES.to_be_bytes());
    out.extend_from_slice(&tpm2b(&[]));
    out.extend_from_slice(&0x0010u16.to_be_bytes()); // symmetric: null
    out.extend_from_slice(&scheme.to_be_bytes());
    out.extend_from_slice(&0x000Bu16.to_be_bytes());
    out.extend_from_slice(&((modulus.len() * 8) as u16).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // exponent: the default
    out.extend_from_slice(&tpm2b(modulus));
    out
}

#[test]
fn rsa_keys_need_rsassa_and_2048_bits() {
    let mut modulus = vec![0xC5; 256];
    modulus[255] |= 1;
    assert!(matches!(
        AkPublic::from_tpmt_public(&rsa_public(0x0014, &modulus)),
        Ok(AkPublic::Rsa {
            exponent: 65_537,
            ..
        })
    ));
    let refused = [
        ("RSAPSS", rsa_public(0x0016, &modulus)),
        ("1024 bits", rsa_public(0x0014, &modulus[..128])),
        // 256 bytes, but the top byte zero: 2040 bits.
        (
            "leading zeros",
            rsa_public(0x0014, &[&[0u8][..], &modulus[1..]].concat()),
        ),
    ];
    for (what, public) in refused {
        assert!(
            matches!(
                AkPublic::from_tpmt_public(&public),
                Err(QuoteError::NotAnAttestationKey { .. })
            ),
            "{what}"
        );
    }
}

fn ecdsa_key() -> AkPublic {
    // The P-256 generator: a valid point.
    let x =
        hex::decode("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296").unwrap();
    let y =
        hex::decode("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5").unwrap();
    AkPublic::EcdsaP256 {
        x: x.try_into().unwrap(),
        y: y.try_into().unwrap(),
    }
}

#[test]
fn oversize_structures_are_refused_before_parsing() {
    let pcrs = BTreeMap::new();
    let big = vec![0; ATTEST_MAX_BYTES + 1];
    let quote = Quote {
        attest: &big,
        signature: &[],
    };
    assert!(matches!(
        verify(&ecdsa_key(), quote, b"n", &pcrs, None),
        Err(QuoteError::TooLarge {
            what: "attestation",
            ..
        })
    ));
    assert!(matches!(
        AkPublic::from_tpmt_public(&vec![0; PUBLIC_KEY_MAX_BYTES + 1]),
        Err(QuoteError::TooLarge { .. })
    ));
    assert!(matches!(
        ecdsa_key().verify_signature(b"m", &vec![0; SIGNATURE_MAX_BYTES + 1]),
        Err(QuoteError::TooLarge {
            what: "signature",
            ..
        })
    ));
}

#[test]
fn garbage_is_malformed() {
    let pcrs = BTreeMap::new();
    let quote = Quote {
        attest: &[0xFF, 0x54, 0x43, 0x47, 0, 0],
        signature: &[],
    };
    assert_eq!(
        verify(&ecdsa_key(), quote, b"n", &pcrs, None),
        Err(QuoteError::Malformed {
            what: "attestation"
        })
    );
    assert_eq!(
        AkPublic::from_tpmt_public(&[0, 1, 0, 11]),
        Err(QuoteError::Malformed {
            what: "attestation key"
        })
    );
}

#[test]
fn the_clock_must_move_on() {
    let last = TpmClock {
        reset_count: 3,
        restart_count: 0,
        clock_ms: 1_000,
    };
    let later = TpmClock {
        clock_ms: 1_001,
        ..last
    };
    let rebooted = TpmClock {
        reset_count: 4,
        clock_ms: 10,
        ..last
    };
    assert!(is_after(&later, &last));
    assert!(is_after(&rebooted, &last));
    assert!(!is_after(&last, &last));
    assert!(!is_after(
        &TpmClock {
            clock_ms: 999,
            ..last
        },
        &last
    ));
}

#[test]
fn scalars_are_left_padded_and_oversize_ones_refused() {
    assert_eq!(left_pad_32(&[1]).unwrap()[31], 1);
    assert_eq!(left_pad_32(&[7; 32]), Some([7; 32]));
    assert_eq!(left_pad_32(&[0; 33]), None);
}

proptest! {
    /// A byte of a genuine attestation changed and signed again, so the change reaches every
    /// check after the signature.
    #[test]
    fn a_resigned_mutation_never_panics(at in 0usize..400, byte in any::<u8>()) {
        let mut attest = attest(&spec());
        let at = at % attest.len();
        attest[at] = byte;
        let signature = sign(&signing_key(), &attest, 0x000B);
        let ak = AkPublic::from_tpmt_public(&ak()).unwrap();
        let _ = verify(&ak, Quote { attest: &attest, signature: &signature }, b"nonce", &pcrs(), Some(spec().clock));
    }

    #[test]
    fn verify_never_panics(attest in proptest::collection::vec(any::<u8>(), 0..300),
                           signature in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut with_magic = vec![0xFF, 0x54, 0x43, 0x47, 0x80, 0x18];
        with_magic.extend_from_slice(&attest);
        for bytes in [&attest, &with_magic] {
            let quote = Quote { attest: bytes, signature: &signature };
            let _ = verify(&ecdsa_key(), quote, b"nonce", &BTreeMap::new(), None);
        }
        let _ = AkPublic::from_tpmt_public(&attest);
        let _ = ecdsa_key().verify_signature(&attest, &signature);
    }
}
