//! The collectors against a real TPM 2.0 (swtpm on loopback, installed by
//! `scripts/install-deps`), and the verifier on what they produce: genuine evidence verifies,
//! and each forgery is refused with its own reason.

use logos_mia::{
    eventlog::{self, EventLogError},
    evidence::{self, Evidence, EvidenceError, Previous},
    ima::{self, Entry, ImaError},
    integrity::{self, Components, Status, Tamper},
    pcr::Digest,
    quote::{self, AkPublic, QuoteError},
};
use logos_mia_collect::{
    evidence::{collect, quote_pcrs, Sources},
    files::FileSnapshot,
    kernel::{HostKernel, KernelProbe as _},
    swtpm::Swtpm,
    tamper::FileTamper,
    tpm::{AkKind, AttestationKey, QuoteBytes, Tpm, TssTpm},
};
use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

/// A fresh swtpm and a connection to it.
struct Machine {
    tpm: TssTpm,
    _swtpm: Swtpm,
    _dir: tempfile::TempDir,
}

fn machine() -> Machine {
    assert!(
        Swtpm::installed(),
        "swtpm is not installed: run scripts/install-deps"
    );
    let dir = tempfile::tempdir().unwrap();
    let swtpm = Swtpm::start(&dir.path().join("tpm"), 0).expect("swtpm starts");
    let tpm = TssTpm::open(&swtpm.tcti()).expect("the TCTI connects");
    Machine {
        tpm,
        _swtpm: swtpm,
        _dir: dir,
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/guest-boot/ima-ng")
        .join(name)
}

/// Extends the guest's measured-boot log and IMA list into this TPM, as the guest's firmware
/// and kernel did, so its PCRs are the guest's.
fn boot_like_the_guest(tpm: &mut TssTpm) -> (eventlog::EventLog, Vec<Entry>) {
    let log =
        eventlog::parse(&std::fs::read(fixture("binary_bios_measurements")).unwrap()).unwrap();
    for event in log
        .events
        .iter()
        .filter(|e| e.event_type != eventlog::EV_NO_ACTION)
    {
        tpm.extend(event.pcr, &event.sha256).unwrap();
    }
    let entries = ima::parse(
        &std::fs::read(fixture("binary_runtime_measurements")).unwrap(),
        usize::MAX,
    )
    .unwrap();
    for entry in &entries {
        tpm.extend(10, &entry.sha256_extend()).unwrap();
    }
    (log, entries)
}

fn ak_public(key: &AttestationKey) -> AkPublic {
    AkPublic::from_tpmt_public(&key.public).expect("the TPM's AK is an attestation key")
}

fn verify_quote(
    key: &AttestationKey,
    quote: &QuoteBytes,
    nonce: &[u8],
    pcrs: &BTreeMap<u32, Digest>,
) -> Result<quote::VerifiedQuote, QuoteError> {
    let quote = quote.as_quote();
    quote::verify(&ak_public(key), quote, nonce, pcrs, None)
}

#[test]
fn a_genuine_quote_verifies_with_an_ecdsa_or_an_rsa_key() {
    let mut machine = machine();
    for kind in [AkKind::EcdsaP256, AkKind::Rsa2048] {
        let key = machine.tpm.create_attestation_key(kind).unwrap();
        let nonce = [7u8; 32];
        let (quote, pcrs) = quote_pcrs(&mut machine.tpm, &key, &nonce).unwrap();
        let verified = verify_quote(&key, &quote, &nonce, &pcrs).unwrap();
        assert_eq!(verified.pcrs, evidence::quoted_pcrs(), "{kind:?}");
        assert_eq!(verified.pcrs, (0..=14).collect::<Vec<u32>>());
    }
}

#[test]
fn a_wrong_nonce_is_refused() {
    let mut machine = machine();
    let key = machine
        .tpm
        .create_attestation_key(AkKind::EcdsaP256)
        .unwrap();
    let (quote, pcrs) = quote_pcrs(&mut machine.tpm, &key, &[1; 32]).unwrap();
    assert_eq!(
        verify_quote(&key, &quote, &[2; 32], &pcrs),
        Err(QuoteError::NonceMismatch)
    );
}

#[test]
fn a_replayed_quote_is_refused_and_a_fresh_one_accepted() {
    let mut machine = machine();
    let key = machine
        .tpm
        .create_attestation_key(AkKind::EcdsaP256)
        .unwrap();
    let nonce = [3u8; 32];
    let (first, pcrs) = quote_pcrs(&mut machine.tpm, &key, &nonce).unwrap();
    let accepted = verify_quote(&key, &first, &nonce, &pcrs).unwrap();
    let replay = first.as_quote();
    assert_eq!(
        quote::verify(
            &ak_public(&key),
            replay,
            &nonce,
            &pcrs,
            Some(accepted.clock)
        ),
        Err(QuoteError::Replayed {
            quoted: accepted.clock,
            last: accepted.clock
        })
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    let (second, pcrs) = quote_pcrs(&mut machine.tpm, &key, &nonce).unwrap();
    let fresh = second.as_quote();
    let verified =
        quote::verify(&ak_public(&key), fresh, &nonce, &pcrs, Some(accepted.clock)).unwrap();
    assert!(verified.clock > accepted.clock);
}

#[test]
fn a_quote_signed_by_another_attestation_key_is_refused() {
    let mut machine = machine();
    let registered = machine
        .tpm
        .create_attestation_key(AkKind::EcdsaP256)
        .unwrap();
    let other = machine
        .tpm
        .create_attestation_key(AkKind::EcdsaP256)
        .unwrap();
    let nonce = [4u8; 32];
    let (quote, pcrs) = quote_pcrs(&mut machine.tpm, &other, &nonce).unwrap();
    assert_eq!(
        verify_quote(&registered, &quote, &nonce, &pcrs),
        Err(QuoteError::BadSignature)
    );
    // And one signed on another TPM entirely, with an RSA key where ECDSA is registered.
    let mut elsewhere = machine_with_key(AkKind::Rsa2048);
    let (quote, pcrs) = quote_pcrs(&mut elsewhere.0.tpm, &elsewhere.1, &nonce).unwrap();
    assert_eq!(
        verify_quote(&registered, &quote, &nonce, &pcrs),
        Err(QuoteError::WrongScheme)
    );
}

fn machine_with_key(kind: AkKind) -> (Machine, AttestationKey) {
    let mut machine = machine();
    let key = machine.tpm.create_attestation_key(kind).unwrap();
    (machine, key)
}

#[test]
fn a_pcr_changed_after_the_quote_is_refused() {
    let (mut machine, key) = machine_with_key(AkKind::EcdsaP256);
    let nonce = [5u8; 32];
    let (quote, _) = quote_pcrs(&mut machine.tpm, &key, &nonce).unwrap();
    machine.tpm.extend(10, &[0xAB; 32]).unwrap();
    let now = machine.tpm.read_pcrs(&evidence::quoted_pcrs()).unwrap();
    assert_eq!(
        verify_quote(&key, &quote, &nonce, &now),
        Err(QuoteError::PcrDigestMismatch)
    );
    // Reporting fewer PCRs than were quoted is its own refusal.
    let mut fewer = now.clone();
    fewer.remove(&10);
    assert!(matches!(
        verify_quote(&key, &quote, &nonce, &fewer),
        Err(QuoteError::PcrSetMismatch { .. })
    ));
}

#[test]
fn keys_that_are_not_restricted_signing_keys_are_not_attestation_keys() {
    let (mut machine, key) = machine_with_key(AkKind::EcdsaP256);
    // TPMT_PUBLIC: type u16, nameAlg u16, objectAttributes u32 (big-endian); RESTRICTED is
    // bit 16. Without it the key could sign a made-up TPMS_ATTEST.
    let mut unrestricted = key.public.clone();
    unrestricted[5] &= !0x01;
    assert!(matches!(
        AkPublic::from_tpmt_public(&unrestricted),
        Err(QuoteError::NotAnAttestationKey { .. })
    ));
    // The endorsement key (a restricted decryption key) is not one either.
    let endorsement = machine.tpm.endorsement().unwrap();
    assert!(matches!(
        AkPublic::from_tpmt_public(&endorsement.public),
        Err(QuoteError::NotAnAttestationKey { .. })
    ));
    let certificate = endorsement
        .certificate
        .expect("swtpm_setup stored an EK certificate");
    assert_eq!(certificate[0], 0x30, "a DER SEQUENCE");
}

/// Full evidence from a TPM booted like the guest, with its logs.
struct Booted {
    machine: Machine,
    key: AttestationKey,
    log: eventlog::EventLog,
    entries: Vec<Entry>,
    quote: QuoteBytes,
    pcrs: BTreeMap<u32, Digest>,
    nonce: [u8; 32],
}

fn booted() -> Booted {
    let (mut machine, key) = machine_with_key(AkKind::EcdsaP256);
    let (log, entries) = boot_like_the_guest(&mut machine.tpm);
    let nonce = [9u8; 32];
    let bound = evidence::quote_nonce(&nonce, &reported());
    let (quote, pcrs) = quote_pcrs(&mut machine.tpm, &key, &bound).unwrap();
    Booted {
        machine,
        key,
        log,
        entries,
        quote,
        pcrs,
        nonce,
    }
}

fn reported() -> Components {
    Components {
        boot: Status::Unavailable,
        ima: Status::Unavailable,
        files: Status::Measured([1; 32]),
        lkrg: Status::Unavailable,
        ebpf: Status::Unavailable,
        tamper: Tamper::Clear,
    }
}

impl Booted {
    fn verify(
        &self,
        log: &eventlog::EventLog,
        entries: &[Entry],
    ) -> Result<evidence::Verified, EvidenceError> {
        let allowed = integrity::measured_digests(&self.entries);
        let evidence = Evidence {
            quote: self.quote.as_quote(),
            pcrs: &self.pcrs,
            event_log: log,
            ima: entries,
            reported: reported(),
        };
        evidence::verify(
            &ak_public(&self.key),
            &self.nonce,
            None,
            &allowed,
            &evidence,
        )
    }
}

#[test]
fn genuine_evidence_with_the_guests_logs_verifies() {
    let booted = booted();
    let verified = booted.verify(&booted.log, &booted.entries).unwrap();
    assert_eq!(verified.ima_accepted, booted.entries.len());
    assert!(matches!(verified.components.boot, Status::Measured(_)));
    assert_eq!(verified.components.files, Status::Measured([1; 32]));
    assert_eq!(
        verified.integrity_hash,
        verified.components.integrity_hash()
    );
    // The guest provoked two IMA violations: a reference that tolerates none refuses them.
    assert_eq!(verified.ima_violations, 2);
    evidence::check_violations(&verified, 2).unwrap();
    assert_eq!(
        evidence::check_violations(&verified, 0).unwrap_err(),
        EvidenceError::Violations { count: 2, max: 0 }
    );
    // The same evidence passes its reference and fails another.
    evidence::check_reference(&verified, &verified.integrity_hash).unwrap();
    assert!(matches!(
        evidence::check_reference(&verified, &[0; 32]),
        Err(EvidenceError::IntegrityMismatch { .. })
    ));
}

#[test]
fn an_ima_entry_altered_removed_or_reordered_is_refused_with_its_reason() {
    let booted = booted();
    let mut altered = booted.entries.clone();
    let busybox = altered
        .iter()
        .position(|e| e.measurement().unwrap().path == "/bin/busybox")
        .unwrap();
    let last = altered[busybox].template_data.len() - 2;
    altered[busybox].template_data[last] ^= 1;
    assert_eq!(
        booted.verify(&booted.log, &altered).unwrap_err(),
        EvidenceError::Ima(ImaError::TemplateHashMismatch { line: busybox + 1 })
    );
    let mut removed = booted.entries.clone();
    removed.remove(busybox);
    assert!(matches!(
        booted.verify(&booted.log, &removed).unwrap_err(),
        EvidenceError::Ima(ImaError::NoMatchingPrefix { .. })
    ));
    let mut reordered = booted.entries.clone();
    reordered.swap(busybox, busybox + 1);
    assert!(matches!(
        booted.verify(&booted.log, &reordered).unwrap_err(),
        EvidenceError::Ima(ImaError::NoMatchingPrefix { .. })
    ));
    // A file outside the reference's allowlist.
    let allowed: BTreeSet<Digest> = BTreeSet::new();
    let evidence = Evidence {
        quote: booted.quote.as_quote(),
        pcrs: &booted.pcrs,
        event_log: &booted.log,
        ima: &booted.entries,
        reported: reported(),
    };
    assert!(matches!(
        evidence::verify(
            &ak_public(&booted.key),
            &booted.nonce,
            None,
            &allowed,
            &evidence
        ),
        Err(EvidenceError::Ima(ImaError::NotAllowed { line: 2, .. }))
    ));
}

#[test]
fn an_event_log_entry_altered_is_refused() {
    let booted = booted();
    let mut altered = booted.log.clone();
    // An option ROM's tag event: its digest is of the ROM, not of the event data.
    let index = altered
        .events
        .iter()
        .position(|e| e.pcr == 2 && e.event_type == 0x6)
        .unwrap();
    altered.events[index].sha256[0] ^= 1;
    assert!(matches!(
        booted.verify(&altered, &booted.entries).unwrap_err(),
        EvidenceError::EventLog(EventLogError::PcrMismatch { pcr: 2, .. })
    ));
    let mut altered = booted.log.clone();
    let separator = altered
        .events
        .iter()
        .position(|e| e.event_type == eventlog::EV_SEPARATOR)
        .unwrap();
    altered.events[separator].data = vec![0, 0, 0, 0];
    assert!(matches!(
        booted.verify(&altered, &booted.entries).unwrap_err(),
        EvidenceError::EventLog(EventLogError::EventDataMismatch { .. })
    ));
}

#[test]
fn a_reboot_starts_the_ima_replay_from_zero_and_a_continuation_from_the_last_report() {
    let mut booted = booted();
    let allowed = integrity::measured_digests(&booted.entries);
    let first = booted.verify(&booted.log, &booted.entries).unwrap();
    let previous = Previous {
        clock: first.quote.clock,
        ima_pcr: first.ima_pcr,
    };
    // Two more entries after the first report; the next report carries only them.
    let more: Vec<Entry> = booted.entries[1..3]
        .iter()
        .enumerate()
        .map(|(i, e)| Entry {
            line: i + 1,
            ..e.clone()
        })
        .collect();
    for entry in &more {
        booted
            .machine
            .tpm
            .extend(10, &entry.sha256_extend())
            .unwrap();
    }
    let nonce = [10u8; 32];
    let bound = evidence::quote_nonce(&nonce, &reported());
    let (quote, pcrs) = quote_pcrs(&mut booted.machine.tpm, &booted.key, &bound).unwrap();
    let evidence = Evidence {
        quote: quote.as_quote(),
        pcrs: &pcrs,
        event_log: &booted.log,
        ima: &more,
        reported: reported(),
    };
    let ak = ak_public(&booted.key);
    let second = evidence::verify(&ak, &nonce, Some(previous), &allowed, &evidence).unwrap();
    assert_eq!(second.ima_accepted, 2);
    // Without the previous report's PCR 10, the same entries do not reach the quote.
    assert!(matches!(
        evidence::verify(&ak, &nonce, None, &allowed, &evidence),
        Err(EvidenceError::Ima(ImaError::NoMatchingPrefix { .. }))
    ));
}

#[test]
fn collect_gathers_every_component_and_the_chain_side_agrees() {
    let (mut machine, key) = machine_with_key(AkKind::EcdsaP256);
    let (log, entries) = boot_like_the_guest(&mut machine.tpm);
    let files_dir = tempfile::tempdir().unwrap();
    std::fs::write(files_dir.path().join("config"), b"x").unwrap();
    std::fs::write(files_dir.path().join("tamper"), b"0\n").unwrap();
    let files = FileSnapshot::Paths(vec![files_dir.path().join("config")]);
    let kernel = HostKernel::default();
    let tamper = FileTamper {
        path: Some(files_dir.path().join("tamper")),
    };
    let sources = Sources {
        event_log: fixture("binary_bios_measurements"),
        ima_log: fixture("binary_runtime_measurements"),
        files: &files,
        kernel: &kernel,
        tamper: &tamper,
    };
    let nonce = [11u8; 32];
    let collected = collect(&mut machine.tpm, &key, &nonce, &sources).unwrap();
    assert_eq!(collected.components.tamper, Tamper::Clear);
    assert!(matches!(collected.components.files, Status::Measured(_)));
    assert!(matches!(collected.components.ima, Status::Measured(_)));
    assert_eq!(
        collected.components.lkrg,
        kernel.lkrg().unwrap(),
        "LKRG as this host has it"
    );
    // The chain, given the machine's own measured set as its allowlist, reaches the same hash.
    let allowed = integrity::measured_digests(&entries);
    let evidence = Evidence {
        quote: collected.quote.as_quote(),
        pcrs: &collected.pcrs,
        event_log: &log,
        ima: &entries,
        reported: collected.components,
    };
    let verified = evidence::verify(&ak_public(&key), &nonce, None, &allowed, &evidence).unwrap();
    assert_eq!(verified.integrity_hash, collected.integrity_hash());
    assert_eq!(verified.components, collected.components);
}

/// A verifier's `TPM2_MakeCredential` in software (`logos_mia::credential`) and the machine's
/// `TPM2_ActivateCredential`: the credential comes back only from the TPM holding the EK, for
/// the AK the challenge names.
#[test]
fn make_credential_in_software_is_answered_only_by_the_tpm_with_both_keys() {
    use logos_mia::credential::{self, CredentialError};
    use rand_chacha::rand_core::SeedableRng as _;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
    let (mut machine, key) = machine_with_key(AkKind::EcdsaP256);
    let endorsement = machine.tpm.endorsement().unwrap();
    let secret_value = [0x5A; 32];
    let challenge =
        credential::make_credential(&endorsement.public, &key.public, &secret_value, &mut rng)
            .unwrap();
    let answer = machine
        .tpm
        .activate_credential(&key, &challenge.credential_blob, &challenge.secret)
        .unwrap();
    assert_eq!(answer, secret_value);

    // Another AK on the same TPM: the HMAC over the name does not match.
    let other = machine
        .tpm
        .create_attestation_key(AkKind::EcdsaP256)
        .unwrap();
    assert!(machine
        .tpm
        .activate_credential(&other, &challenge.credential_blob, &challenge.secret)
        .is_err());
    // Another TPM with its own AK cannot open this TPM's challenge (the seed is encrypted to
    // this EK), even when the challenge names that AK.
    let (mut elsewhere, elsewhere_key) = machine_with_key(AkKind::EcdsaP256);
    let for_their_ak = credential::make_credential(
        &endorsement.public,
        &elsewhere_key.public,
        &secret_value,
        &mut rng,
    )
    .unwrap();
    assert!(elsewhere
        .tpm
        .activate_credential(
            &elsewhere_key,
            &for_their_ak.credential_blob,
            &for_their_ak.secret
        )
        .is_err());
    // And a challenge made for the other TPM's EK cannot be opened here.
    let foreign = elsewhere.tpm.endorsement().unwrap();
    let for_foreign =
        credential::make_credential(&foreign.public, &key.public, &secret_value, &mut rng).unwrap();
    assert!(machine
        .tpm
        .activate_credential(&key, &for_foreign.credential_blob, &for_foreign.secret)
        .is_err());
    // A tampered blob is refused by the TPM's integrity check.
    let mut tampered = challenge.credential_blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(machine
        .tpm
        .activate_credential(&key, &tampered, &challenge.secret)
        .is_err());
    // The AK is not an endorsement key, and the EK is not an attestation key.
    assert!(matches!(
        credential::make_credential(&key.public, &key.public, &secret_value, &mut rng),
        Err(CredentialError::UnsupportedEndorsementKey(_))
    ));
    assert!(matches!(
        credential::make_credential(
            &endorsement.public,
            &endorsement.public,
            &secret_value,
            &mut rng
        ),
        Err(CredentialError::NotAnAttestationKey(_))
    ));
    // After all of this, no transient object or session is left behind: more quotes work.
    for _ in 0..8 {
        quote_pcrs(&mut machine.tpm, &key, &[1; 32]).unwrap();
    }
}

impl Machine {
    /// Power-cycles the TPM: the same state directory (same EK), PCRs back to zero, the reset
    /// count one higher.
    fn reboot(self) -> Machine {
        let Machine { tpm, _swtpm, _dir } = self;
        let state = _swtpm.dir().to_owned();
        drop(tpm);
        drop(_swtpm);
        let swtpm = Swtpm::start(&state, 0).expect("swtpm restarts");
        let tpm = TssTpm::open(&swtpm.tcti()).expect("the TCTI connects");
        Machine {
            tpm,
            _swtpm: swtpm,
            _dir,
        }
    }
}

/// Verifies a fresh quote of `machine` carrying `entries`, after `previous`.
fn report(
    machine: &mut Machine,
    key: &AttestationKey,
    log: &eventlog::EventLog,
    entries: &[Entry],
    previous: Option<Previous>,
    allowed: &BTreeSet<Digest>,
) -> Result<evidence::Verified, EvidenceError> {
    let nonce = [0x33u8; 32];
    let bound = evidence::quote_nonce(&nonce, &reported());
    let (quote, pcrs) = quote_pcrs(&mut machine.tpm, key, &bound).unwrap();
    let evidence = Evidence {
        quote: quote.as_quote(),
        pcrs: &pcrs,
        event_log: log,
        ima: entries,
        reported: reported(),
    };
    evidence::verify(&ak_public(key), &nonce, previous, allowed, &evidence)
}

#[test]
fn after_a_reboot_the_ima_list_starts_again_from_its_boot_aggregate() {
    let (mut machine, key) = machine_with_key(AkKind::EcdsaP256);
    let (log, entries) = boot_like_the_guest(&mut machine.tpm);
    let allowed = integrity::measured_digests(&entries);
    let first = report(&mut machine, &key, &log, &entries, None, &allowed).unwrap();
    let previous = Previous {
        clock: first.quote.clock,
        ima_pcr: first.ima_pcr,
    };
    let mut machine = machine.reboot();
    boot_like_the_guest(&mut machine.tpm);
    let again = report(&mut machine, &key, &log, &entries, Some(previous), &allowed).unwrap();
    assert!(again.quote.clock.reset_count > first.quote.clock.reset_count);
    assert_eq!(again.ima_accepted, entries.len());
    // Only the new boot's list counts: the entries after the old report's PCR 10 do not.
    assert!(matches!(
        report(
            &mut machine,
            &key,
            &log,
            &entries[3..],
            Some(previous),
            &allowed
        ),
        Err(EvidenceError::Ima(ImaError::NoMatchingPrefix { .. }))
    ));
}

#[test]
fn a_forged_boot_aggregate_and_ima_turned_off_are_each_caught() {
    let (mut machine, key) = machine_with_key(AkKind::EcdsaP256);
    let log =
        eventlog::parse(&std::fs::read(fixture("binary_bios_measurements")).unwrap()).unwrap();
    for event in log
        .events
        .iter()
        .filter(|e| e.event_type != eventlog::EV_NO_ACTION)
    {
        machine.tpm.extend(event.pcr, &event.sha256).unwrap();
    }
    // IMA off: PCR 10 stays zero; the component is unavailable, and a list is refused.
    let none = report(&mut machine, &key, &log, &[], None, &BTreeSet::new()).unwrap();
    assert_eq!(none.components.ima, Status::Unavailable);
    let made_up = [Entry::measured(1, &[7; 32], "/usr/bin/sshd")];
    assert_eq!(
        report(&mut machine, &key, &log, &made_up, None, &BTreeSet::new()).unwrap_err(),
        EvidenceError::Ima(ImaError::NotRunning { entries: 1 })
    );
    // A list whose first entry is named boot_aggregate but does not hash the boot PCRs.
    let forged = vec![
        Entry::measured(1, &[0xBA; 32], ima::BOOT_AGGREGATE),
        Entry::measured(2, &[1; 32], "/init"),
    ];
    for entry in &forged {
        machine.tpm.extend(10, &entry.sha256_extend()).unwrap();
    }
    let allowed = BTreeSet::from([[1; 32]]);
    assert_eq!(
        report(&mut machine, &key, &log, &forged, None, &allowed).unwrap_err(),
        EvidenceError::Ima(ImaError::BootAggregateMismatch)
    );
    // After a report of this boot found IMA off, PCR 10 turning non-zero is refused outright:
    // IMA starts only at boot, so user space extended it.
    let previous = Previous {
        clock: none.quote.clock,
        ima_pcr: none.ima_pcr,
    };
    assert_eq!(
        report(&mut machine, &key, &log, &forged, Some(previous), &allowed).unwrap_err(),
        EvidenceError::Ima(ImaError::StartedMidBoot)
    );
}

#[test]
fn components_are_bound_to_the_quote() {
    let booted = booted();
    // The machine quoted with one tamper flag and reports another.
    let evidence = Evidence {
        quote: booted.quote.as_quote(),
        pcrs: &booted.pcrs,
        event_log: &booted.log,
        ima: &booted.entries,
        reported: Components {
            tamper: Tamper::Tripped,
            ..reported()
        },
    };
    let allowed = integrity::measured_digests(&booted.entries);
    assert_eq!(
        evidence::verify(
            &ak_public(&booted.key),
            &booted.nonce,
            None,
            &allowed,
            &evidence
        )
        .unwrap_err(),
        EvidenceError::Quote(QuoteError::NonceMismatch)
    );
}

#[test]
fn a_swtpm_left_behind_by_a_killed_agent_is_replaced_on_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("tpm");
    let first = Swtpm::start(&state, 0).expect("swtpm starts");
    let endorsement = TssTpm::open(&first.tcti()).unwrap().endorsement().unwrap();
    // The agent dies without stopping its swtpm (kill -9): the process stays, holding the lock.
    std::mem::forget(first);
    let second = Swtpm::start(&state, 0).expect("a second swtpm starts on the same state");
    let again = TssTpm::open(&second.tcti()).unwrap().endorsement().unwrap();
    assert_eq!(again.public, endorsement.public, "the same TPM, rebooted");
}

#[test]
fn restarts_after_using_the_ak_never_lock_the_tpm_out() {
    // swtpm counts a start after an unorderly stop against its dictionary-attack protection
    // (3 tries): the stop shuts the TPM down in order, so an agent restarts as often as needed.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("tpm");
    let mut key = None;
    for start in 0..6 {
        let swtpm = Swtpm::start(&state, 0).expect("swtpm starts");
        let mut tpm = TssTpm::open(&swtpm.tcti()).unwrap();
        let ak = key.get_or_insert_with(|| tpm.create_attestation_key(AkKind::EcdsaP256).unwrap());
        let quoted = quote_pcrs(&mut tpm, ak, &[start; 32]);
        assert!(quoted.is_ok(), "start {start}: {:?}", quoted.err());
    }
}
