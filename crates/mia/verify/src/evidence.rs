//! One attestation's evidence, verified as a whole: the quote, then the logs against the
//! quoted PCRs, then the components and the integrity hash against a reference.
//!
//! The PCRs a report quotes are the boot PCRs 0–7 and PCR 10 (IMA). The measured-boot log
//! must replay to PCRs 0–7; the IMA entries, replayed from the PCR 10 value the machine's last
//! accepted report reached (zeros after a reboot), must reach the quoted PCR 10 at some
//! prefix, and every file they measured must be in the reference's allowed digests. The
//! components the machine reports for what a quote cannot cover (file snapshot, LKRG, eBPF,
//! tamper) are taken as reported; `boot` (from the quoted PCRs) and `ima` (the digest of the
//! allowed set the entries were checked against, [`integrity::allowlist_digest`]) are set
//! here from verified values, so a machine cannot claim them.

use crate::{
    eventlog::{self, EventLogError},
    ima::{self, Entry, ImaError},
    integrity::{self, Components, Status},
    pcr::{Digest, BOOT_PCRS, IMA_PCR},
    quote::{self, AkPublic, Quote, QuoteError, TpmClock, VerifiedQuote},
};
use std::collections::{BTreeMap, BTreeSet};

/// The PCRs every report quotes: 0–7 and 10.
pub fn quoted_pcrs() -> Vec<u32> {
    BOOT_PCRS.chain([IMA_PCR]).collect()
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
    /// The IMA entries since the last accepted report (all of them after a reboot).
    pub ima: &'a [Entry],
    /// What the machine reports for the components no quote covers; `boot` and `ima` here
    /// are ignored and recomputed.
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
    /// The report does not quote PCRs 0–7 and 10.
    #[error("the report must quote PCRs 0-7 and 10")]
    MissingPcrs,
    /// The integrity hash is not the reference.
    #[error("the integrity hash {found} is not the reference {reference}")]
    IntegrityMismatch {
        /// The recomputed hash, hex.
        found: String,
        /// The reference, hex.
        reference: String,
    },
}

/// Verifies `evidence` for a machine whose attestation key is `ak`, against `nonce` and what
/// the chain remembers of its last report, with `allowed_ima` the file digests the machine's
/// reference allows. When the TPM was reset since (a reboot), the IMA list starts from zeros.
pub fn verify(
    ak: &AkPublic,
    nonce: &[u8],
    previous: Option<Previous>,
    allowed_ima: &BTreeSet<Digest>,
    evidence: &Evidence<'_>,
) -> Result<Verified, EvidenceError> {
    if evidence.pcrs.keys().copied().collect::<Vec<_>>() != quoted_pcrs() {
        return Err(EvidenceError::MissingPcrs);
    }
    let last_clock = previous.map(|p| p.clock);
    let quote = quote::verify(ak, evidence.quote, nonce, evidence.pcrs, last_clock)?;
    eventlog::verify(evidence.event_log, evidence.pcrs)?;
    let start = match previous {
        Some(p) if p.clock.reset_count == quote.clock.reset_count => p.ima_pcr,
        _ => [0; 32],
    };
    let quoted_ima = evidence.pcrs.get(&IMA_PCR).copied().unwrap_or_default();
    let ima_accepted = ima::verify(start, evidence.ima, &quoted_ima)?;
    ima::check_allowed(&evidence.ima[..ima_accepted], allowed_ima)?;
    let components = Components {
        boot: integrity::boot_component(evidence.pcrs),
        ima: Status::Measured(integrity::allowlist_digest(allowed_ima)),
        ..evidence.reported
    };
    Ok(Verified {
        quote,
        integrity_hash: components.integrity_hash(),
        components,
        ima_accepted,
        ima_pcr: quoted_ima,
    })
}

/// Checks a verified report's integrity hash against the machine's reference.
pub fn check_reference(verified: &Verified, reference: &Digest) -> Result<(), EvidenceError> {
    if verified.integrity_hash == *reference {
        return Ok(());
    }
    Err(EvidenceError::IntegrityMismatch {
        found: hex::encode(verified.integrity_hash),
        reference: hex::encode(reference),
    })
}
