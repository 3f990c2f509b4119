//! Quote parsing from the attacker's side. Genuine quotes from a TPM are checked against
//! swtpm in `logos-mia-collect`'s tests.

use super::*;
use proptest::prelude::*;

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
