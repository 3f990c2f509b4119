//! `logos bench attest`: what verifying one attestation report costs, as the chain's state
//! transition verifies it (`logos_mia::evidence::verify`).
//!
//! A software TPM (swtpm) is booted like the committed guest (its measured-boot log and IMA
//! list extended into the TPM), then for each report: `--entries` new IMA entries (files of
//! this host under `/usr/bin`, hashed) are extended into PCR 10, the TPM quotes PCRs 0–14
//! with a fresh nonce (bound to the reported components), and the report is verified
//! against the previous one: the attestation
//! key parsed from its `TPMT_PUBLIC`, the quote's signature (ECDSA P-256), nonce, clock and PCR
//! digest, the event log replayed, the new IMA entries checked, replayed from the previous PCR
//! 10 and matched against the allowlist, and the integrity hash. Only the verification is
//! timed. It prints:
//!
//! | field | meaning |
//! |---|---|
//! | `verify_us_p50`, `verify_us_p99` | one report verified, µs |
//! | `reports_per_second_one_core` | 1,000,000 / `verify_us_p50` |
//! | `quote_ms_p50` | the TPM's quote, ms (swtpm; a hardware TPM takes 20–200 ms) |
//! | `reports`, `ima_entries_per_report` | the run's size |

use anyhow::{Context as _, Result};
use logos_mia::{
    eventlog,
    evidence::{self, Evidence, Previous},
    ima::{self, Entry},
    integrity::{self, Components, Status, Tamper},
    pcr::Digest,
    quote::AkPublic,
};
use logos_mia_collect::{
    evidence::quote_pcrs,
    files,
    swtpm::Swtpm,
    tpm::{AkKind, Tpm, TssTpm},
};
use std::{collections::BTreeSet, path::PathBuf, time::Instant};

/// The guest's measured-boot log and IMA list (`crates/mia/fixtures/guest-boot`).
const GUEST_EVENT_LOG: &[u8] =
    include_bytes!("../../../mia/fixtures/guest-boot/ima-ng/binary_bios_measurements");
const GUEST_IMA: &[u8] =
    include_bytes!("../../../mia/fixtures/guest-boot/ima-ng/binary_runtime_measurements");

/// Runs the benchmark (module docs) and returns its JSON object.
pub fn run(reports: usize, entries_per_report: usize, json: bool) -> Result<serde_json::Value> {
    anyhow::ensure!(
        Swtpm::installed(),
        "swtpm is not installed (scripts/install-deps installs it)"
    );
    let dir = tempfile::Builder::new()
        .prefix("logos-bench-attest-")
        .tempdir()?;
    let swtpm = Swtpm::start(&dir.path().join("tpm"), 0)?;
    measure(&swtpm, reports, entries_per_report, json)
}

fn measure(
    swtpm: &Swtpm,
    reports: usize,
    per_report: usize,
    json: bool,
) -> Result<serde_json::Value> {
    let mut tpm = TssTpm::open(&swtpm.tcti())?;
    let key = tpm.create_attestation_key(AkKind::EcdsaP256)?;
    let log = eventlog::parse(GUEST_EVENT_LOG)?;
    for event in log
        .events
        .iter()
        .filter(|e| e.event_type != eventlog::EV_NO_ACTION)
    {
        tpm.extend(event.pcr, &event.sha256)?;
    }
    let boot_entries = ima::parse(GUEST_IMA, usize::MAX)?;
    for entry in &boot_entries {
        tpm.extend(10, &entry.sha256_extend())?;
    }
    let files = host_files(reports.saturating_mul(per_report))?;
    let mut allowed = integrity::measured_digests(&boot_entries);
    allowed.extend(files.iter().map(|(_, digest)| *digest));
    let (mut previous, _) = report(&mut tpm, &key, &log, &boot_entries, None, &allowed, 0)?;
    if !json {
        eprintln!("verifying {reports} reports of {per_report} new IMA entries each");
    }
    let mut verify_us = Vec::with_capacity(reports);
    let mut quote_ms = Vec::with_capacity(reports);
    for index in 0..reports {
        let start = index.saturating_mul(per_report);
        let chunk = files
            .get(start..start.saturating_add(per_report))
            .unwrap_or_default();
        let entries: Vec<Entry> = (1..)
            .zip(chunk)
            .map(|(line, (path, digest))| Entry::measured(line, digest, path))
            .collect();
        for entry in &entries {
            tpm.extend(10, &entry.sha256_extend())?;
        }
        let nonce = index.saturating_add(1);
        let (next, timing) = report(
            &mut tpm,
            &key,
            &log,
            &entries,
            Some(previous),
            &allowed,
            nonce,
        )?;
        previous = next;
        verify_us.push(timing.verify_us);
        quote_ms.push(timing.quote_ms);
    }
    verify_us.sort_by(f64::total_cmp);
    quote_ms.sort_by(f64::total_cmp);
    let p50 = super::percentile(&verify_us, 0.5);
    Ok(serde_json::json!({
        "verify_us_p50": super::round(p50),
        "verify_us_p99": super::round(super::percentile(&verify_us, 0.99)),
        "reports_per_second_one_core": (1e6 / p50).round(),
        "quote_ms_p50": super::round(super::percentile(&quote_ms, 0.5)),
        "reports": verify_us.len(),
        "ima_entries_per_report": per_report,
    }))
}

struct Timing {
    verify_us: f64,
    quote_ms: f64,
}

/// Quotes, then verifies (timed) one report carrying `entries`.
fn report(
    tpm: &mut TssTpm,
    key: &logos_mia_collect::tpm::AttestationKey,
    log: &eventlog::EventLog,
    entries: &[Entry],
    previous: Option<Previous>,
    allowed: &BTreeSet<Digest>,
    nonce: usize,
) -> Result<(Previous, Timing)> {
    let nonce = logos_mia::pcr::sha256(&nonce.to_le_bytes());
    let reported = Components {
        boot: Status::Unavailable,
        ima: Status::Unavailable,
        files: Status::Measured([1; 32]),
        lkrg: Status::Unavailable,
        ebpf: Status::Unavailable,
        tamper: Tamper::Clear,
    };
    let bound = evidence::quote_nonce(&nonce, &reported);
    let quoted = Instant::now();
    let (quote, pcrs) = quote_pcrs(tpm, key, &bound)?;
    let quote_ms = quoted.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let ak = AkPublic::from_tpmt_public(&key.public)?;
    let evidence = Evidence {
        quote: quote.as_quote(),
        pcrs: &pcrs,
        event_log: log,
        ima: entries,
        reported,
    };
    let verified = evidence::verify(&ak, &nonce, previous, allowed, &evidence)?;
    let verify_us = started.elapsed().as_secs_f64() * 1e6;
    anyhow::ensure!(
        verified.ima_accepted == entries.len(),
        "the quote covers every entry"
    );
    let next = Previous {
        clock: verified.quote.clock,
        ima_pcr: verified.ima_pcr,
    };
    Ok((
        next,
        Timing {
            verify_us,
            quote_ms,
        },
    ))
}

/// `count` regular files of this host with their SHA-256 (what IMA would log for them),
/// cycling through `/usr/bin` if it has fewer.
fn host_files(count: usize) -> Result<Vec<(String, Digest)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("/usr/bin")
        .context("reading /usr/bin")?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .take(4_096)
        .collect();
    paths.sort();
    anyhow::ensure!(!paths.is_empty(), "/usr/bin has no files");
    let mut measured = Vec::with_capacity(paths.len());
    for path in &paths {
        if let Ok(digest) = files::hash_file(path) {
            measured.push((path.display().to_string(), digest));
        }
    }
    Ok(measured.iter().cycle().take(count).cloned().collect())
}
