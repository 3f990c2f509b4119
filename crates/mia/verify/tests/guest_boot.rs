//! The committed guest-boot fixtures (`crates/mia/fixtures/guest-boot`, made by
//! `scripts/mia-fixtures`: a Debian kernel booted under QEMU with swtpm and IMA): replaying
//! the logs reproduces the PCRs the guest read from its TPM.

use logos_mia::{
    eventlog, ima,
    pcr::{self, Digest},
};
use std::{collections::BTreeMap, path::PathBuf};

const TEMPLATES: [&str; 2] = ["ima-ng", "ima-sig"];

fn fixture(template: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/guest-boot")
        .join(template)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The SHA-256 PCRs the guest read (`pcrs.json`).
fn guest_pcrs(template: &str) -> BTreeMap<u32, Digest> {
    let json: serde_json::Value = serde_json::from_slice(&fixture(template, "pcrs.json")).unwrap();
    json["sha256"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(index, value)| {
            (
                index.parse().unwrap(),
                pcr::from_hex(value.as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_event_log_replays_to_the_guests_boot_pcrs() {
    for template in TEMPLATES {
        let log = eventlog::parse(&fixture(template, "binary_bios_measurements")).unwrap();
        assert!(
            log.events.len() >= 8,
            "{template}: {} events",
            log.events.len()
        );
        let pcrs = guest_pcrs(template);
        let boot: BTreeMap<u32, Digest> = pcrs.range(0..=7).map(|(i, v)| (*i, *v)).collect();
        eventlog::verify(&log, &boot).unwrap();
        let bank = eventlog::replay(&log);
        for index in 0..=9 {
            assert_eq!(bank.get(index), pcrs.get(&index), "{template}: PCR {index}");
        }
    }
}

#[test]
fn an_altered_event_in_the_guests_log_is_caught() {
    let bytes = fixture("ima-ng", "binary_bios_measurements");
    let quoted: BTreeMap<u32, Digest> = guest_pcrs("ima-ng")
        .range(0..=7)
        .map(|(i, v)| (*i, *v))
        .collect();
    // The action string SeaBIOS logs before booting: its digest is its hash.
    let at = bytes
        .windows(15)
        .position(|w| w == b"Calling INT 19h")
        .unwrap();
    let mut altered = bytes.clone();
    altered[at] = b'X';
    let log = eventlog::parse(&altered).unwrap();
    assert!(matches!(
        eventlog::verify(&log, &quoted),
        Err(eventlog::EventLogError::EventDataMismatch { .. })
    ));
    // The same event's SHA-256 digest: the replay of PCR 4 no longer matches.
    let log = eventlog::parse(&bytes).unwrap();
    let index = log
        .events
        .iter()
        .position(|e| e.data == b"Calling INT 19h")
        .unwrap();
    let mut altered = log.clone();
    altered.events[index].sha256[5] ^= 0x40;
    altered.events[index].data = b"x".to_vec();
    altered.events[index].event_type = 0xD;
    assert!(matches!(
        eventlog::verify(&altered, &quoted),
        Err(eventlog::EventLogError::PcrMismatch { pcr: 4, .. })
    ));
}

#[test]
fn both_ima_forms_replay_to_the_guests_pcr_10() {
    for template in TEMPLATES {
        let pcr10 = guest_pcrs(template)[&10];
        let binary = ima::parse(
            &fixture(template, "binary_runtime_measurements"),
            usize::MAX,
        )
        .unwrap();
        let ascii =
            ima::parse(&fixture(template, "ascii_runtime_measurements"), usize::MAX).unwrap();
        assert_eq!(binary, ascii, "{template}: the two forms differ");
        assert_eq!(binary.len(), 11, "{template}");
        assert!(
            ima::template_hash_mismatches(&binary).is_empty(),
            "{template}"
        );
        assert_eq!(
            binary.iter().filter(|e| e.is_violation()).count(),
            2,
            "{template}"
        );
        assert_eq!(ima::replay([0; 32], &binary), pcr10, "{template}");
        assert_eq!(ima::verify([0; 32], &binary, &pcr10), Ok(11), "{template}");
    }
}

#[test]
fn the_boot_aggregate_is_the_hash_of_pcrs_0_to_9() {
    for template in TEMPLATES {
        let log = eventlog::parse(&fixture(template, "binary_bios_measurements")).unwrap();
        let entries = ima::parse(
            &fixture(template, "binary_runtime_measurements"),
            usize::MAX,
        )
        .unwrap();
        let first = entries[0].measurement().unwrap();
        assert_eq!(first.path, ima::BOOT_AGGREGATE);
        assert_eq!(
            first.digest,
            ima::boot_aggregate(&eventlog::replay(&log).select(0..=9)),
            "{template}"
        );
    }
}

#[test]
fn altered_removed_and_reordered_guest_entries_are_each_refused() {
    let pcr10 = guest_pcrs("ima-ng")[&10];
    let text = String::from_utf8(fixture("ima-ng", "ascii_runtime_measurements")).unwrap();
    let altered = text.replacen("/bin/busybox", "/bin/busyb0x", 1);
    let entries = ima::parse(altered.as_bytes(), usize::MAX).unwrap();
    assert_eq!(ima::template_hash_mismatches(&entries), vec![3]);
    let entries = ima::parse(text.as_bytes(), usize::MAX).unwrap();
    let mut removed = entries.clone();
    removed.remove(4);
    assert!(matches!(
        ima::verify([0; 32], &removed, &pcr10),
        Err(ima::ImaError::NoMatchingPrefix { .. })
    ));
    let mut reordered = entries.clone();
    reordered.swap(2, 3);
    assert!(matches!(
        ima::verify([0; 32], &reordered, &pcr10),
        Err(ima::ImaError::NoMatchingPrefix { .. })
    ));
    // A PCR read before the last entries were logged: the list runs ahead, its prefix matches.
    let earlier = ima::replay([0; 32], &entries[..7]);
    assert_eq!(ima::matched_prefix([0; 32], &entries, &earlier), Some(7));
}
