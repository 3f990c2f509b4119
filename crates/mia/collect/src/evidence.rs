//! One attestation, collected: the quote over PCRs 0–14, the logs that explain them, and
//! the components no quote covers.
//!
//! Order matters. The PCRs are read, then quoted, and the quote's digest must match what was
//! read (an IMA extend in between makes them differ: the pair is taken again, at most
//! [`QUOTE_ATTEMPTS`] times). The IMA list is read after the quote, so it holds at least the
//! entries the quote covers; the verifier accepts the prefix that matches.

use crate::{
    files::FileSnapshot,
    kernel::{EbpfSummary, KernelProbe},
    logs,
    tamper::TamperSource,
    tpm::{AttestationKey, QuoteBytes, Tpm},
    CollectError,
};
use logos_mia::{
    evidence::{quote_nonce, quoted_pcrs},
    integrity::{self, Components, Status},
    limits::{EVENT_LOG_MAX_BYTES, IMA_LOG_MAX_BYTES},
    pcr::{self, Digest},
};
use std::{collections::BTreeMap, path::PathBuf};

/// How many times a quote is taken when PCRs change under it.
pub const QUOTE_ATTEMPTS: usize = 5;

/// Where the collectors read from.
pub struct Sources<'a> {
    /// The measured-boot log ([`logs::EVENT_LOG_PATH`] on a machine).
    pub event_log: PathBuf,
    /// The IMA list ([`logs::IMA_BINARY_PATH`] on a machine).
    pub ima_log: PathBuf,
    /// The file snapshot.
    pub files: &'a FileSnapshot,
    /// LKRG and eBPF.
    pub kernel: &'a dyn KernelProbe,
    /// The tamper flag.
    pub tamper: &'a dyn TamperSource,
}

/// Everything one attestation sends.
#[derive(Clone, Debug)]
pub struct Collected {
    /// The quote.
    pub quote: QuoteBytes,
    /// The quoted SHA-256 PCRs (0–14).
    pub pcrs: BTreeMap<u32, Digest>,
    /// The measured-boot log, `None` when the kernel offers none.
    pub event_log: Option<Vec<u8>>,
    /// The IMA list, `None` when IMA is off.
    pub ima_log: Option<Vec<u8>>,
    /// The components as this machine measures them.
    pub components: Components,
    /// eBPF programs loaded.
    pub ebpf_programs: usize,
}

impl Collected {
    /// The integrity hash of [`Self::components`].
    pub fn integrity_hash(&self) -> Digest {
        self.components.integrity_hash()
    }
}

/// Reads the PCRs and quotes them with `nonce` until the two agree.
pub fn quote_pcrs(
    tpm: &mut dyn Tpm,
    ak: &AttestationKey,
    nonce: &[u8],
) -> Result<(QuoteBytes, BTreeMap<u32, Digest>), CollectError> {
    let selection = quoted_pcrs();
    for _ in 0..QUOTE_ATTEMPTS {
        let pcrs = tpm.read_pcrs(&selection)?;
        let quote = tpm.quote(ak, nonce, &selection)?;
        if quoted_digest(&quote.attest).as_ref() == Some(&pcr::quote_digest(&pcrs)) {
            return Ok((quote, pcrs));
        }
    }
    Err(CollectError::Invalid(format!(
        "the PCRs changed under every one of {QUOTE_ATTEMPTS} quotes"
    )))
}

/// The `pcrDigest` of a `TPMS_ATTEST` the TPM just produced: its last 32 bytes (the quote
/// info ends with the `TPM2B_DIGEST` of the PCRs).
fn quoted_digest(attest: &[u8]) -> Option<Digest> {
    let start = attest.len().checked_sub(32)?;
    attest.get(start..)?.try_into().ok()
}

/// The components a machine reports of itself (`files`, `lkrg`, `ebpf`, `tamper`; `boot` and
/// `ima` unavailable: the verifier computes those from the quote and the logs), as the quote's
/// nonce binds them, and how many eBPF programs were loaded.
pub fn reported(sources: &Sources<'_>) -> Result<(Components, usize), CollectError> {
    let EbpfSummary {
        status: ebpf,
        programs,
    } = sources.kernel.ebpf()?;
    let reported = Components {
        boot: Status::Unavailable,
        ima: Status::Unavailable,
        files: sources.files.collect()?,
        lkrg: sources.kernel.lkrg()?,
        ebpf,
        tamper: sources.tamper.read()?,
    };
    Ok((reported, programs))
}

/// Collects one attestation for the chain's `chain_nonce`: the components first, then the
/// quote over [`quote_nonce`] (which binds them), then the logs.
pub fn collect(
    tpm: &mut dyn Tpm,
    ak: &AttestationKey,
    chain_nonce: &[u8],
    sources: &Sources<'_>,
) -> Result<Collected, CollectError> {
    let (reported, programs) = reported(sources)?;
    let nonce = quote_nonce(chain_nonce, &reported);
    let (quote, pcrs) = quote_pcrs(tpm, ak, &nonce)?;
    let event_log = logs::read_optional(&sources.event_log, EVENT_LOG_MAX_BYTES)?;
    let ima_log = logs::read_optional(&sources.ima_log, IMA_LOG_MAX_BYTES)?;
    let ima = match &ima_log {
        Some(bytes) => ima_component(bytes, &pcrs)?,
        None => Status::Unavailable,
    };
    let components = Components {
        boot: integrity::boot_component(&pcrs),
        ima,
        ..reported
    };
    Ok(Collected {
        quote,
        pcrs,
        event_log,
        ima_log,
        components,
        ebpf_programs: programs,
    })
}

/// The `ima` component over the entries the quoted PCR 10 covers; unavailable when PCR 10 is
/// zero.
fn ima_component(bytes: &[u8], pcrs: &BTreeMap<u32, Digest>) -> Result<Status, CollectError> {
    let quoted = pcrs.get(&pcr::IMA_PCR).copied().unwrap_or_default();
    if quoted == [0; 32] {
        // IMA is not running this boot, whatever a file says.
        return Ok(Status::Unavailable);
    }
    let entries = logos_mia::ima::parse(bytes, usize::MAX)
        .map_err(|e| CollectError::Invalid(e.to_string()))?;
    let prefix = logos_mia::ima::matched_prefix([0; 32], &entries, &quoted).ok_or_else(|| {
        CollectError::Invalid("no prefix of this machine's IMA list replays to its PCR 10".into())
    })?;
    Ok(integrity::ima_component(&entries[..prefix]))
}
