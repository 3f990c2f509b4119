//! Judging one report against one candidate reference: pure, no state access.
//!
//! Order of checks, each deciding before the next runs:
//! 1. the quote (`logos_mia::quote::verify`) over the reference's golden boot PCRs and the PCR
//!    10 the report claims: a bad signature, nonce, clock, bank or selection is not the
//!    machine's word ([`Verdict::Refuse`]); a PCR digest that differs means the boot PCRs are
//!    not the reference's (or the claimed PCR 10 is a lie) ([`Verdict::Exclude`]);
//! 2. the tamper flag and the reported components against the reference (exclude);
//! 3. IMA: running where the reference has it off, or off where it requires it (exclude);
//!    entries staged from a boot the quote does not show, or entries that do not reach the
//!    quoted PCR 10, or entries not checked against this reference's allowlist (refuse: the
//!    owner stages again before the deadline); then violations, files outside the allowlist
//!    and the boot aggregate (exclude).

use logos_mia::{
    ima, integrity,
    pcr::{self, IMA_PCR},
    quote::{self, AkPublic, Quote, QuoteError, TpmClock, VerifiedQuote},
};
use logos_types::attestation::{
    Component, Digest, Error, Exclusion, ImaPolicy, LastReport, Machine, Reference, Reported,
    Staged, Tamper, BOOT_PCRS,
};
use std::collections::BTreeMap;

/// What one candidate reference concludes about a report.
#[derive(Debug)]
pub enum Verdict {
    /// The report matches: the machine's last report becomes this.
    Accept(LastReport),
    /// The evidence is not usable (not the machine's word, or the staged entries are
    /// incomplete): an error, nothing changes.
    Refuse(Error),
    /// A genuine quote of a state the reference does not allow.
    Exclude(Exclusion),
}

/// The report as the chain received it.
pub struct Report<'a> {
    /// Its height.
    pub height: u64,
    /// Its anchor.
    pub anchor: u64,
    /// The quote.
    pub quote: Quote<'a>,
    /// The nonce the quote must carry.
    pub nonce: &'a [u8; 32],
    /// The components it reports.
    pub reported: &'a Reported,
    /// The PCR 10 it claims.
    pub ima_pcr: Digest,
}

/// Judges `report` of `machine` (whose AK is `ak`) against `reference` (module docs).
pub fn judge(ak: &AkPublic, machine: &Machine, reference: &Reference, report: &Report) -> Verdict {
    let pcrs = expected_pcrs(reference, report.ima_pcr);
    let last = machine.last.map(|last| TpmClock {
        reset_count: last.reset_count,
        restart_count: last.restart_count,
        clock_ms: last.clock_ms,
    });
    let verified = match quote::verify(ak, report.quote, report.nonce, &pcrs, last) {
        Ok(verified) => verified,
        Err(QuoteError::PcrDigestMismatch) => return Verdict::Exclude(Exclusion::PcrMismatch),
        Err(error) => return Verdict::Refuse(Error::QuoteRefused(text(error))),
    };
    if let Err(reason) = judge_components(reference, report.reported) {
        return Verdict::Exclude(reason);
    }
    if let Err(verdict) = judge_ima(reference, machine, &verified, report.ima_pcr) {
        return verdict;
    }
    Verdict::Accept(LastReport {
        height: report.height,
        anchor: report.anchor,
        reset_count: verified.clock.reset_count,
        restart_count: verified.clock.restart_count,
        clock_ms: verified.clock.clock_ms,
        ima_pcr: report.ima_pcr,
        integrity_hash: integrity_hash(reference, report.reported),
    })
}

/// A short error text for a receipt.
pub fn text(message: impl ToString) -> logos_types::codec::BoundedString<128> {
    logos_types::codec::BoundedString::truncated(&message.to_string())
}

/// The reference's boot PCRs and `ima_pcr`, by index.
pub fn expected_pcrs(reference: &Reference, ima_pcr: Digest) -> BTreeMap<u32, [u8; 32]> {
    let mut pcrs = boot_pcrs(reference);
    pcrs.insert(IMA_PCR, ima_pcr.0);
    pcrs
}

fn boot_pcrs(reference: &Reference) -> BTreeMap<u32, [u8; 32]> {
    BOOT_PCRS
        .iter()
        .zip(reference.boot_pcrs.iter())
        .map(|(index, value)| (*index, value.0))
        .collect()
}

/// The tamper flag and the reported components against the reference.
fn judge_components(reference: &Reference, reported: &Reported) -> Result<(), Exclusion> {
    if reported.tamper == Tamper::Tripped {
        return Err(Exclusion::Tampered);
    }
    let expected = (reference.files, reference.lkrg, reference.ebpf);
    if (reported.files, reported.lkrg, reported.ebpf) != expected {
        return Err(Exclusion::ComponentMismatch);
    }
    Ok(())
}

/// IMA against the reference (module docs, step 3).
fn judge_ima(
    reference: &Reference,
    machine: &Machine,
    quote: &VerifiedQuote,
    ima_pcr: Digest,
) -> Result<(), Verdict> {
    let Some(policy) = reference.ima else {
        // IMA off in the reference: PCR 10 must be zero; anything else extended it.
        return match ima_pcr == Digest::ZERO {
            true => Ok(()),
            false => Err(Verdict::Exclude(Exclusion::ComponentMismatch)),
        };
    };
    if ima_pcr == Digest::ZERO {
        return Err(Verdict::Exclude(Exclusion::ComponentMismatch));
    }
    let rebooted = machine.last.is_none_or(|last| {
        (quote.clock.reset_count, quote.clock.restart_count)
            != (last.reset_count, last.restart_count)
    });
    let staged = machine.staged.filter(|staged| staged.entries > 0);
    let reached = match (staged, machine.last) {
        (Some(staged), _) if staged.from_boot && !rebooted => {
            return Err(Verdict::Refuse(Error::RebootNotQuoted))
        }
        (Some(staged), _) => staged.pcr,
        (None, Some(last)) if !rebooted => last.ima_pcr,
        (None, _) => Digest::ZERO,
    };
    // After a reboot IMA starts over: only a list staged from the boot can reach PCR 10.
    let from_boot = staged.is_some_and(|staged| staged.from_boot);
    if reached != ima_pcr || (rebooted && !from_boot) {
        return Err(Verdict::Refuse(Error::ImaIncomplete));
    }
    match staged {
        Some(staged) => judge_staged(reference, &policy, &staged),
        None => Ok(()),
    }
}

/// The staged entries against `policy`: checked against its allowlist, violations within its
/// bound, the boot aggregate of the reference's PCRs 0–9 after a reboot.
fn judge_staged(reference: &Reference, policy: &ImaPolicy, staged: &Staged) -> Result<(), Verdict> {
    let checked = staged
        .checked
        .iter()
        .flatten()
        .find(|(checked, _)| *checked == policy.policy);
    let Some((_, passed)) = checked else {
        return Err(Verdict::Refuse(Error::ImaNotChecked));
    };
    if staged.violations > policy.violations_max {
        return Err(Verdict::Exclude(Exclusion::ImaViolations));
    }
    if !passed {
        return Err(Verdict::Exclude(Exclusion::FileNotAllowed));
    }
    let aggregate = Digest(ima::boot_aggregate(&boot_pcrs(reference)));
    if staged.from_boot && staged.boot_aggregate != Some(aggregate) {
        return Err(Verdict::Exclude(Exclusion::BootAggregateMismatch));
    }
    Ok(())
}

/// The integrity hash of a machine matching `reference` (`logos_mia::integrity`).
pub fn integrity_hash(reference: &Reference, reported: &Reported) -> Digest {
    let components = integrity::Components {
        boot: integrity::boot_component(&boot_pcrs(reference)),
        ima: match reference.ima {
            Some(policy) => integrity::Status::Measured(policy.digest.0),
            None => integrity::Status::Unavailable,
        },
        ..bound_components(reported)
    };
    Digest(components.integrity_hash())
}

/// The components a machine reports, as `logos-mia` binds them into the quote's nonce
/// (`boot` and `ima`, which the chain computes, unavailable).
pub fn bound_components(reported: &Reported) -> integrity::Components {
    let status = |component: Component| match component {
        Component::Unavailable => integrity::Status::Unavailable,
        Component::Measured(digest) => integrity::Status::Measured(digest.0),
    };
    integrity::Components {
        boot: integrity::Status::Unavailable,
        ima: integrity::Status::Unavailable,
        files: status(reported.files),
        lkrg: status(reported.lkrg),
        ebpf: status(reported.ebpf),
        tamper: match reported.tamper {
            Tamper::Unavailable => integrity::Tamper::Unavailable,
            Tamper::Clear => integrity::Tamper::Clear,
            Tamper::Tripped => integrity::Tamper::Tripped,
        },
    }
}

/// Extends `pcr` with `digest` (SHA-256 bank).
pub fn extend(pcr: &Digest, digest: &[u8; 32]) -> Digest {
    Digest(pcr::extend(&pcr.0, digest))
}
