//! Event-log parsing and replay, on logs built here and from the attacker's side.

use super::*;
use proptest::prelude::*;

/// Builds crypto-agile logs (SHA-1 and SHA-256 banks) the way firmware writes them.
struct LogBuilder {
    bytes: Vec<u8>,
}

impl LogBuilder {
    fn new() -> Self {
        Self::with_banks(&[(0x0004, 20), (ALG_SHA256, 32)])
    }

    fn with_banks(banks: &[(u16, u16)]) -> Self {
        let mut spec = SPEC_ID_SIGNATURE.to_vec();
        spec.extend_from_slice(&0u32.to_le_bytes()); // platform class
        spec.extend_from_slice(&[0, 2, 0, 2]); // minor, major, errata, uintnSize
        spec.extend_from_slice(&(banks.len() as u32).to_le_bytes());
        for (alg, size) in banks {
            spec.extend_from_slice(&alg.to_le_bytes());
            spec.extend_from_slice(&size.to_le_bytes());
        }
        spec.push(0); // vendor info size
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
        bytes.extend_from_slice(&[0; 20]);
        bytes.extend_from_slice(&(spec.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&spec);
        Self { bytes }
    }

    /// An event whose SHA-256 digest is `digest` and SHA-1 digest is zeros.
    fn event(mut self, pcr: u32, event_type: u32, digest: Digest, data: &[u8]) -> Self {
        self.bytes.extend_from_slice(&pcr.to_le_bytes());
        self.bytes.extend_from_slice(&event_type.to_le_bytes());
        self.bytes.extend_from_slice(&2u32.to_le_bytes());
        self.bytes.extend_from_slice(&0x0004u16.to_le_bytes());
        self.bytes.extend_from_slice(&[0; 20]);
        self.bytes.extend_from_slice(&ALG_SHA256.to_le_bytes());
        self.bytes.extend_from_slice(&digest);
        self.bytes
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(data);
        self
    }

    /// An event whose digest is the hash of its data.
    fn hashed(self, pcr: u32, event_type: u32, data: &[u8]) -> Self {
        self.event(pcr, event_type, pcr::sha256(data), data)
    }

    fn build(self) -> Vec<u8> {
        self.bytes
    }
}

fn boot_log() -> Vec<u8> {
    LogBuilder::new()
        .event(0, 0x1, pcr::sha256(b"post code"), b"POST CODE")
        .hashed(0, EV_S_CRTM_VERSION, b"1.16")
        .hashed(4, EV_ACTION, b"Calling INT 19h")
        .hashed(0, EV_SEPARATOR, &[0; 4])
        .hashed(7, EV_SEPARATOR, &[0; 4])
        .event(4, 0xD, pcr::sha256(b"ipl"), b"IPL")
        .build()
}

fn quoted_from(bank: &PcrBank) -> BTreeMap<u32, Digest> {
    bank.select(0..=7)
}

#[test]
fn a_log_replays_into_its_pcrs_and_verifies() {
    let log = parse(&boot_log()).unwrap();
    assert_eq!(log.events.len(), 6);
    assert_eq!(log.banks, vec![(0x0004, 20), (ALG_SHA256, 32)]);
    let bank = replay(&log);
    let mut expected = [0u8; 32];
    for digest in [
        pcr::sha256(b"post code"),
        pcr::sha256(b"1.16"),
        pcr::sha256(&[0; 4]),
    ] {
        expected = pcr::extend(&expected, &digest);
    }
    assert_eq!(bank.get(0), Some(&expected));
    assert_eq!(bank.get(1), Some(&[0; 32]));
    verify(&log, &quoted_from(&bank)).unwrap();
}

#[test]
fn an_altered_digest_breaks_the_replay_of_its_pcr() {
    let log = parse(&boot_log()).unwrap();
    let quoted = quoted_from(&replay(&log));
    let mut altered = log.clone();
    altered.events[5].sha256[0] ^= 1;
    let error = verify(&altered, &quoted).unwrap_err();
    assert!(
        matches!(error, EventLogError::PcrMismatch { pcr: 4, .. }),
        "{error}"
    );
}

#[test]
fn altered_event_data_is_caught_where_the_digest_is_its_hash() {
    let mut bytes = boot_log();
    let at = bytes
        .windows(15)
        .position(|w| w == b"Calling INT 19h")
        .unwrap();
    bytes[at] = b'c';
    let log = parse(&bytes).unwrap();
    let error = verify(&log, &BTreeMap::new()).unwrap_err();
    assert_eq!(
        error,
        EventLogError::EventDataMismatch {
            index: 2,
            event_type: EV_ACTION
        }
    );
}

#[test]
fn removed_and_reordered_events_break_the_replay() {
    let log = parse(&boot_log()).unwrap();
    let quoted = quoted_from(&replay(&log));
    let mut removed = log.clone();
    removed.events.remove(1);
    assert!(matches!(
        verify(&removed, &quoted),
        Err(EventLogError::PcrMismatch { pcr: 0, .. })
    ));
    let mut reordered = log;
    reordered.events.swap(0, 1);
    assert!(matches!(
        verify(&reordered, &quoted),
        Err(EventLogError::PcrMismatch { pcr: 0, .. })
    ));
}

#[test]
fn a_startup_locality_sets_pcr_0_before_the_first_extend() {
    let mut data = STARTUP_LOCALITY_SIGNATURE.to_vec();
    data.push(3);
    let bytes = LogBuilder::new()
        .event(0, EV_NO_ACTION, [0; 32], &data)
        .hashed(0, EV_SEPARATOR, &[0; 4])
        .build();
    let log = parse(&bytes).unwrap();
    assert_eq!(log.startup_locality, Some(3));
    let mut initial = [0; 32];
    initial[31] = 3;
    assert_eq!(
        replay(&log).get(0),
        Some(&pcr::extend(&initial, &pcr::sha256(&[0; 4])))
    );
}

#[test]
fn trailing_padding_ends_the_log() {
    for pad in [0x00, 0xFF] {
        let mut bytes = boot_log();
        bytes.extend_from_slice(&[pad; 100]);
        assert_eq!(parse(&bytes).unwrap().events.len(), 6);
    }
}

#[test]
fn a_log_without_the_spec_id_event_is_not_crypto_agile() {
    let mut bytes = boot_log();
    let at = bytes.windows(4).position(|w| w == b"Spec").unwrap();
    bytes[at] = b's';
    assert_eq!(parse(&bytes), Err(EventLogError::NotCryptoAgile));
    assert!(matches!(
        parse(&[]),
        Err(EventLogError::Truncated { offset: 0 })
    ));
}

#[test]
fn a_log_without_sha256_is_refused() {
    let bytes = LogBuilder::with_banks(&[(0x0004, 20)]).build();
    assert_eq!(parse(&bytes), Err(EventLogError::NoSha256Bank));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = boot_log();
    for cut in 1..bytes.len() {
        let shorter = &bytes[..cut];
        // A cut at an event boundary is a valid shorter log; anywhere else an error.
        if let Err(error) = parse(shorter) {
            assert!(
                matches!(
                    error,
                    EventLogError::Truncated { .. } | EventLogError::NotCryptoAgile
                ),
                "{cut}: {error}"
            );
        }
    }
}

#[test]
fn an_unannounced_algorithm_and_a_huge_digest_count_are_refused() {
    let mut bytes = LogBuilder::new().build();
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&0x000Cu16.to_le_bytes()); // SHA-384, not announced
    bytes.extend_from_slice(&[0; 48]);
    assert_eq!(
        parse(&bytes),
        Err(EventLogError::UnknownAlgorithm {
            index: 0,
            algorithm: 0x000C
        })
    );
    let mut bytes = LogBuilder::new().build();
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        parse(&bytes),
        Err(EventLogError::DigestCount {
            index: 0,
            count: u32::MAX
        })
    );
}

#[test]
fn oversize_logs_events_and_counts_are_refused() {
    assert!(matches!(
        parse(&vec![0; EVENT_LOG_MAX_BYTES + 1]),
        Err(EventLogError::TooLarge { .. })
    ));
    let big = vec![1; EVENT_DATA_MAX_BYTES + 1];
    let bytes = LogBuilder::new().hashed(1, EV_ACTION, &big).build();
    assert!(matches!(
        parse(&bytes),
        Err(EventLogError::EventTooLarge { index: 0, .. })
    ));
    let mut builder = LogBuilder::new();
    for _ in 0..=EVENT_LOG_EVENTS_MAX {
        builder = builder.hashed(1, EV_ACTION, b"x");
    }
    assert_eq!(parse(&builder.build()), Err(EventLogError::TooManyEvents));
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_a_mutated_log(at in 0usize..200, byte in any::<u8>()) {
        let mut bytes = boot_log();
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Ok(log) = parse(&bytes) {
            let _ = verify(&log, &BTreeMap::new());
        }
    }
}
