//! One attestation's evidence, verified as a whole: the quote, then the logs against the
//! quoted PCRs, then the components and the integrity hash against a reference.
//!
//! A report quotes the boot PCRs ([`pcr::BOOT_PCRS`]: firmware, boot loader, kernel and
//! command line) and PCR 10 (IMA), with the nonce [`quote_nonce`]: the chain's nonce bound to
//! the components the machine reports, so the TPM's signature covers them too.
//! - The measured-boot log must replay to the quoted boot PCRs.
//! - IMA: on the same boot (same TPM reset and restart counts) as the machine's last accepted
//!   report, the entries since then, replayed from the PCR 10 that report reached, must reach
//!   the quoted PCR 10 at some prefix. After a reboot the list starts from zero and its first
//!   entry must be the boot aggregate of the quoted PCRs 0–9 (after a TPM restart, which may or
//!   may not have reset the PCRs, either reading is tried). Every file the accepted entries
//!   measured must be in the reference's allowed digests. A quoted PCR 10 of zero after a
//!   reboot means IMA is off: the component is `unavailable` and no entry may be offered.
//! - `boot` and `ima` are set here from verified values (the boot PCRs' digest; the allowlist
//!   the entries passed), so a machine cannot claim them. The `ima` result means something
//!   only on a machine whose boot PCRs are the reference's: a kernel of the attacker's choice
//!   logs whatever it likes, and root can extend PCR 10 from user space when no kernel does;
//!   so the chain acts on a report only after [`check_reference`] passed, which covers the
//!   boot PCRs (kernel and command line included). `files`, `lkrg`, `ebpf` and `tamper`
//!   are the machine's word, signed by its TPM through the nonce but not measured into a PCR:
//!   they tell an honest machine's state changes apart; they do not stop a lying root.

use crate::{
    eventlog::{self, EventLogError},
    ima::{self, Entry, ImaError},
    integrity::{self, Components, Status},
    pcr::{self, Digest, BOOT_PCRS, IMA_PCR},
    quote::{self, AkPublic, Quote, QuoteError, TpmClock, VerifiedQuote},
};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The domain separator of [`quote_nonce`].
const NONCE_DOMAIN: &[u8] = b"logos/mia/quote-nonce/v1\0";

/// The PCRs every report quotes: the boot PCRs and 10, ascending.
pub fn quoted_pcrs() -> Vec<u32> {
    let mut pcrs: Vec<u32> = BOOT_PCRS.iter().copied().chain([IMA_PCR]).collect();
    pcrs.sort_unstable();
    pcrs
}

/// The nonce a machine puts in its quote: SHA-256 of a domain separator, the chain's nonce
/// and the canonical encoding of the components it reports (with `boot` and `ima`, which the
/// verifier computes, as unavailable).
pub fn quote_nonce(chain_nonce: &[u8], reported: &Components) -> Digest {
    let bound = Components {
        boot: Status::Unavailable,
        ima: Status::Unavailable,
        ..*reported
    };
    let mut hasher = Sha256::new();
    hasher.update(NONCE_DOMAIN);
    hasher.update((chain_nonce.len() as u64).to_le_bytes());
    hasher.update(chain_nonce);
    hasher.update(bound.encode());
    hasher.finalize().into()
}

/// A report's evidence, parsed.
#[derive(Clone, Debug)]
pub struct Evidence<'a> {
    /// The quote.
    pub quote: Quote<'a>,
    /// The SHA-256 PCR values the quote covers ([`quoted_pcrs`]).
    pub pcrs: &'a BTreeMap<u32, Digest>,
    /// The measured-boot event log.
    pub event_log: &'a eventlog::EventLog,
    /// The IMA entries since the last accepted report (the whole list after a reboot).
    pub ima: &'a [Entry],
    /// The components the machine reports; `boot` and `ima` here are ignored and recomputed.
    pub reported: Components,
}

/// The chain's memory of a machine's last accepted report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Previous {
    /// Its TPM clock.
    pub clock: TpmClock,
    /// PCR 10 after the IMA entries it accepted.
    pub ima_pcr: Digest,
}

/// What verified evidence establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The quote's facts.
    pub quote: VerifiedQuote,
    /// The components, `boot` and `ima` recomputed.
    pub components: Components,
    /// Their integrity hash.
    pub integrity_hash: Digest,
    /// How many of the offered IMA entries the quote covers.
    pub ima_accepted: usize,
    /// How many of those are violations (a file measured while open for writing, or written
    /// while open for reading): the reference decides whether it tolerates them.
    pub ima_violations: usize,
    /// PCR 10 after them.
    pub ima_pcr: Digest,
}

/// Why evidence was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The quote failed.
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// The measured-boot log failed.
    #[error(transparent)]
    EventLog(#[from] EventLogError),
    /// The IMA list failed.
    #[error(transparent)]
    Ima(#[from] ImaError),
    /// The report does not quote exactly [`quoted_pcrs`].
    #[error("the report must quote PCRs 0-14")]
    MissingPcrs,
    /// More IMA violations than the reference tolerates.
    #[error("{count} IMA violations, the reference tolerates {max}")]
    Violations {
        /// Violations in the accepted entries.
        count: usize,
        /// The reference's bound.
        max: usize,
    },
    /// The integrity hash is not the reference.
    #[error("the integrity hash {found} is not the reference {reference}")]
    IntegrityMismatch {
        /// The recomputed hash, hex.
        found: String,
        /// The reference, hex.
        reference: String,
    },
}

/// The IMA outcome of one report.
struct ImaOutcome {
    status: Status,
    accepted: usize,
}

/// Verifies `evidence` for a machine whose attestation key is `ak`, against the chain's
/// `chain_nonce` and what the chain remembers of its last report, with `allowed_ima` the file
/// digests the machine's reference allows (module docs).
pub fn verify(
    ak: &AkPublic,
    chain_nonce: &[u8],
    previous: Option<Previous>,
    allowed_ima: &BTreeSet<Digest>,
    evidence: &Evidence<'_>,
) -> Result<Verified, EvidenceError> {
    if !evidence.pcrs.keys().copied().eq(quoted_pcrs()) {
        return Err(EvidenceError::MissingPcrs);
    }
    let nonce = quote_nonce(chain_nonce, &evidence.reported);
    let last_clock = previous.map(|p| p.clock);
    let quote = quote::verify(ak, evidence.quote, &nonce, evidence.pcrs, last_clock)?;
    eventlog::verify(evidence.event_log, evidence.pcrs)?;
    let quoted_ima = evidence.pcrs.get(&IMA_PCR).copied().unwrap_or_default();
    let same_reset = previous.filter(|p| p.clock.reset_count == quote.clock.reset_count);
    let same_boot = same_reset.filter(|p| p.ima_pcr != [0; 32]);
    let same_start = |p: &Previous| p.clock.restart_count == quote.clock.restart_count;
    // IMA starts only at boot: a PCR 10 that turns non-zero later in the same boot was
    // extended from user space.
    if same_reset.is_some_and(|p| same_start(&p) && p.ima_pcr == [0; 32]) && quoted_ima != [0; 32] {
        return Err(ImaError::StartedMidBoot.into());
    }
    let continued = |p: Previous| continue_ima(p.ima_pcr, evidence.ima, &quoted_ima, allowed_ima);
    let ima = match same_boot {
        Some(p) if same_start(&p) => continued(p)?,
        // After a TPM restart the PCRs may or may not have been reset: either reading; when
        // both fail, the continuation's reason is the more telling one.
        Some(p) => match continued(p) {
            Ok(outcome) => outcome,
            Err(error) => ima_from_boot(evidence, &quoted_ima, allowed_ima).map_err(|_| error)?,
        },
        None => ima_from_boot(evidence, &quoted_ima, allowed_ima)?,
    };
    let accepted = &evidence.ima[..ima.accepted];
    let components = Components {
        boot: integrity::boot_component(evidence.pcrs),
        ima: ima.status,
        ..evidence.reported
    };
    Ok(Verified {
        quote,
        integrity_hash: components.integrity_hash(),
        components,
        ima_accepted: ima.accepted,
        ima_violations: accepted.iter().filter(|e| e.is_violation()).count(),
        ima_pcr: quoted_ima,
    })
}

/// The entries since a report of the same boot that reached `start`.
fn continue_ima(
    start: Digest,
    entries: &[Entry],
    quoted: &Digest,
    allowed: &BTreeSet<Digest>,
) -> Result<ImaOutcome, ImaError> {
    let accepted = ima::verify(start, entries, quoted)?;
    ima::check_allowed(&entries[..accepted], allowed)?;
    Ok(ImaOutcome {
        status: Status::Measured(integrity::allowlist_digest(allowed)),
        accepted,
    })
}

/// A whole list from a (re)boot: IMA off (PCR 10 zero, no entries), or starting with the boot
/// aggregate of the quoted PCRs 0–9.
fn ima_from_boot(
    evidence: &Evidence<'_>,
    quoted: &Digest,
    allowed: &BTreeSet<Digest>,
) -> Result<ImaOutcome, ImaError> {
    if *quoted == [0; 32] {
        if !evidence.ima.is_empty() {
            return Err(ImaError::NotRunning {
                entries: evidence.ima.len(),
            });
        }
        return Ok(ImaOutcome {
            status: Status::Unavailable,
            accepted: 0,
        });
    }
    let accepted = ima::verify([0; 32], evidence.ima, quoted)?;
    let (first, files) = match evidence.ima[..accepted].split_first() {
        Some(split) => split,
        None => return Err(ImaError::BootAggregateMismatch),
    };
    ima::check_boot_aggregate(first, evidence.pcrs)?;
    ima::check_allowed(files, allowed)?;
    Ok(ImaOutcome {
        status: Status::Measured(integrity::allowlist_digest(allowed)),
        accepted,
    })
}

/// Checks that a verified report has at most `violations_max` IMA violations (files measured
/// while open for writing, or written while open for reading: what ran may not be what was
/// measured). The reference sets the bound; zero tolerates none.
pub fn check_violations(verified: &Verified, violations_max: usize) -> Result<(), EvidenceError> {
    if verified.ima_violations <= violations_max {
        return Ok(());
    }
    Err(EvidenceError::Violations {
        count: verified.ima_violations,
        max: violations_max,
    })
}

/// Checks a verified report's integrity hash against the machine's reference.
pub fn check_reference(verified: &Verified, reference: &Digest) -> Result<(), EvidenceError> {
    if verified.integrity_hash == *reference {
        return Ok(());
    }
    Err(EvidenceError::IntegrityMismatch {
        found: pcr::to_hex(&verified.integrity_hash),
        reference: pcr::to_hex(reference),
    })
}
