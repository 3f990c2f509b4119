//! IMA list parsing, template hashes and replay, on lists built here and from the attacker's
//! side. The guest-boot fixtures are checked in `tests/guest_boot.rs`.

use super::*;
use proptest::prelude::*;

fn entry(line: usize, path: &str, content: &[u8]) -> Entry {
    Entry::measured(line, &pcr::sha256(content), path)
}

fn list() -> Vec<Entry> {
    vec![
        entry(1, BOOT_AGGREGATE, b"boot"),
        entry(2, "/init", b"init"),
        entry(3, "/bin/busybox", b"busybox"),
        entry(4, "/etc/a file with spaces", b"conf"),
    ]
}

fn ascii(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| {
            let m = e.measurement().unwrap();
            format!(
                "{} {} {} {}:{} {}\n",
                e.pcr,
                hex::encode(e.template_hash),
                e.template_name,
                m.algorithm,
                hex::encode(&m.digest),
                m.path
            )
        })
        .collect()
}

fn binary(entries: &[Entry]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for e in entries {
        bytes.extend_from_slice(&e.pcr.to_le_bytes());
        bytes.extend_from_slice(&e.template_hash);
        bytes.extend_from_slice(&(e.template_name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(e.template_name.as_bytes());
        bytes.extend_from_slice(&(e.template_data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&e.template_data);
    }
    bytes
}

#[test]
fn ascii_and_binary_forms_give_the_same_entries() {
    let entries = list();
    assert_eq!(
        parse(ascii(&entries).as_bytes(), usize::MAX).unwrap(),
        entries
    );
    assert_eq!(parse(&binary(&entries), usize::MAX).unwrap(), entries);
    let m = entries[3].measurement().unwrap();
    assert_eq!(m.path, "/etc/a file with spaces");
    assert_eq!(m.algorithm, "sha256");
}

#[test]
fn a_whole_list_verifies_against_its_replay() {
    let entries = list();
    let quoted = replay([0; 32], &entries);
    assert_eq!(verify([0; 32], &entries, &quoted), Ok(4));
    assert!(template_hash_mismatches(&entries).is_empty());
}

#[test]
fn a_list_running_ahead_of_the_quote_matches_its_prefix() {
    let entries = list();
    let quoted = replay([0; 32], &entries[..2]);
    assert_eq!(matched_prefix([0; 32], &entries, &quoted), Some(2));
    assert_eq!(verify([0; 32], &entries, &quoted), Ok(2));
    // Continuing from an accepted prefix.
    let all = replay([0; 32], &entries);
    assert_eq!(verify(quoted, &entries[2..], &all), Ok(2));
}

#[test]
fn an_altered_entry_is_a_template_hash_mismatch() {
    let mut entries = list();
    let quoted = replay([0; 32], &entries);
    let text = ascii(&entries).replace("/bin/busybox", "/bin/busyb0x");
    let altered = parse(text.as_bytes(), usize::MAX).unwrap();
    assert_eq!(template_hash_mismatches(&altered), vec![3]);
    assert_eq!(
        verify([0; 32], &altered, &quoted),
        Err(ImaError::TemplateHashMismatch { line: 3 })
    );
    // Altered past what the quote covers (the list ran ahead): still an altered list.
    entries[3].template_data[10] ^= 1;
    let quoted_prefix = replay([0; 32], &entries[..2]);
    assert_eq!(
        verify([0; 32], &entries, &quoted_prefix),
        Err(ImaError::TemplateHashMismatch { line: 4 })
    );
    // Altered together with its template hash: the replay no longer reaches the quote.
    let mut rehashed = list();
    rehashed[1] = entry(2, "/init", b"evil init");
    assert!(matches!(
        verify([0; 32], &rehashed, &quoted),
        Err(ImaError::NoMatchingPrefix { entries: 4, .. })
    ));
}

#[test]
fn a_removed_or_reordered_entry_matches_no_prefix() {
    let entries = list();
    let quoted = replay([0; 32], &entries);
    let mut removed = entries.clone();
    removed.remove(2);
    assert!(matches!(
        verify([0; 32], &removed, &quoted),
        Err(ImaError::NoMatchingPrefix { entries: 3, .. })
    ));
    let mut reordered = entries;
    reordered.swap(1, 2);
    assert!(matches!(
        verify([0; 32], &reordered, &quoted),
        Err(ImaError::NoMatchingPrefix { entries: 4, .. })
    ));
}

#[test]
fn a_violation_extends_all_ones_and_needs_no_hash() {
    let mut entries = list();
    entries[2].template_hash = [0; 20];
    assert!(entries[2].is_violation());
    assert!(entries[2].template_hash_matches());
    assert_eq!(entries[2].sha256_extend(), [0xFF; 32]);
    let quoted = replay([0; 32], &entries);
    assert_eq!(verify([0; 32], &entries, &quoted), Ok(4));
}

#[test]
fn an_entry_for_another_pcr_is_refused() {
    let mut entries = list();
    entries[1].pcr = 11;
    let quoted = replay([0; 32], &entries);
    assert_eq!(
        verify([0; 32], &entries, &quoted),
        Err(ImaError::WrongPcr { line: 2, pcr: 11 })
    );
}

#[test]
fn ima_sig_lines_with_and_without_a_signature() {
    let digest = pcr::sha256(b"signed");
    let signature = [0x03, 0x02, 0x04, 0xAA, 0xBB];
    for (path, sig) in [
        ("/usr/bin/signed", &signature[..]),
        ("/usr/bin/plain file", &[][..]),
    ] {
        let data = template_data("sha256", &digest, path, Some(sig));
        let hash: [u8; 20] = Sha1::digest(&data).into();
        let line = format!(
            "10 {} ima-sig sha256:{} {path} {}",
            hex::encode(hash),
            hex::encode(digest),
            hex::encode(sig)
        );
        let parsed = parse(line.as_bytes(), 1).unwrap();
        assert_eq!(parsed[0].template_data, data, "{line}");
        let m = parsed[0].measurement().unwrap();
        assert_eq!((m.path.as_str(), m.signature.as_slice()), (path, sig));
    }
}

#[test]
fn the_allowlist_admits_listed_digests_only() {
    let entries = list();
    let files = &entries[1..];
    let mut allowed: BTreeSet<Digest> = [b"init".as_slice(), b"busybox", b"conf"]
        .iter()
        .map(|c| pcr::sha256(c))
        .collect();
    assert_eq!(check_allowed(files, &allowed), Ok(()));
    allowed.remove(&pcr::sha256(b"busybox"));
    assert_eq!(
        check_allowed(files, &allowed),
        Err(ImaError::NotAllowed {
            line: 3,
            path: "/bin/busybox".to_owned()
        })
    );
}

#[test]
fn a_file_logged_as_boot_aggregate_is_an_ordinary_file() {
    // The kernel logs a bare name when it cannot build a path: a program called
    // boot_aggregate run from such a place gets no exemption.
    let allowed: BTreeSet<Digest> = [pcr::sha256(b"init")].into();
    let entries = vec![
        entry(1, "/init", b"init"),
        entry(2, BOOT_AGGREGATE, b"rootkit"),
    ];
    assert_eq!(
        check_allowed(&entries, &allowed),
        Err(ImaError::NotAllowed {
            line: 2,
            path: BOOT_AGGREGATE.to_owned()
        })
    );
}

#[test]
fn the_boot_aggregate_must_hash_the_quoted_pcrs_0_to_9() {
    let pcrs: BTreeMap<u32, Digest> = (0..=14).map(|i| (i, [i as u8; 32])).collect();
    let genuine = Entry::measured(1, &boot_aggregate(&pcrs), BOOT_AGGREGATE);
    assert_eq!(check_boot_aggregate(&genuine, &pcrs), Ok(()));
    let mut other_pcrs = pcrs.clone();
    other_pcrs.insert(8, [0xEE; 32]);
    assert_eq!(
        check_boot_aggregate(&genuine, &other_pcrs),
        Err(ImaError::BootAggregateMismatch),
        "PCR 8 (the kernel) is part of it"
    );
    let renamed = Entry::measured(1, &boot_aggregate(&pcrs), "/boot_aggregate");
    assert_eq!(
        check_boot_aggregate(&renamed, &pcrs),
        Err(ImaError::BootAggregateMismatch)
    );
    let mut violation = genuine.clone();
    violation.template_hash = [0; 20];
    assert_eq!(
        check_boot_aggregate(&violation, &pcrs),
        Err(ImaError::BootAggregateMismatch)
    );
}

#[test]
fn malformed_lists_are_errors() {
    for bad in [
        "10 zz ima-ng sha256:00 /x",
        "x 0000000000000000000000000000000000000000 ima-ng sha256:00 /x",
        "10 0000000000000000000000000000000000000000 ima-ng sha256:00",
        "10 0000000000000000000000000000000000000000 ima-ng sha256-00 /x",
        "10 0000000000000000000000000000000000000000 ima-buf sha256:00 /x",
    ] {
        assert!(
            matches!(
                parse(bad.as_bytes(), 10),
                Err(ImaError::Malformed { line: 1, .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(
        parse(
            b"10 0000000000000000000000000000000000000000 ima sha1:00 /x",
            10
        ),
        Err(ImaError::LegacyTemplate { line: 1 })
    );
    let bytes = binary(&list());
    for cut in 1..bytes.len() {
        if let Err(error) = parse_binary(&bytes[..cut], 10) {
            assert!(
                matches!(error, ImaError::Malformed { .. }),
                "{cut}: {error}"
            );
        }
    }
}

#[test]
fn oversize_lists_and_entries_are_refused() {
    assert!(matches!(
        parse(&vec![0; IMA_LOG_MAX_BYTES + 1], 1),
        Err(ImaError::TooLarge { .. })
    ));
    assert_eq!(
        parse(ascii(&list()).as_bytes(), 3),
        Err(ImaError::TooManyEntries { max: 3 })
    );
    assert_eq!(
        parse(&binary(&list()), 3),
        Err(ImaError::TooManyEntries { max: 3 })
    );
    let mut huge = entry(1, &"a".repeat(IMA_TEMPLATE_DATA_MAX_BYTES), b"x");
    huge.template_hash = [1; 20];
    assert!(matches!(
        parse_binary(&binary(&[huge]), 1),
        Err(ImaError::Malformed {
            reason: "template data too large",
            ..
        })
    ));
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(entries) = parse(&bytes, 64) {
            for entry in &entries {
                let _ = entry.measurement();
            }
            let whole = replay([0; 32], &entries);
            let _ = verify([0; 32], &entries, &whole);
            let _ = check_allowed(&entries, &BTreeSet::new());
        }
    }

    #[test]
    fn parse_never_panics_on_ascii_noise(text in "[0-9a-f :/\\n]{0,300}") {
        let _ = parse(text.as_bytes(), 64);
    }
}
