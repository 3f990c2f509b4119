//! The Linux IMA runtime measurement list: parsing (ascii and binary), template hashes, and
//! replay into PCR 10.
//!
//! Source: the kernel's `Documentation/security/IMA-templates.rst` and
//! `security/integrity/ima/ima_fs.c`. Each entry records a file the IMA policy measured:
//! - binary (`binary_runtime_measurements`, little-endian): `pcr u32`, the template hash
//!   (SHA-1, 20 bytes), `name_len u32`, the template name, `data_len u32`, the template data.
//!   The template data is the template's fields, each `len u32` then its bytes; for `ima-ng`
//!   `d-ng` (`"<algo>:\0"` then the file digest) and `n-ng` (the path, NUL-terminated), and
//!   for `ima-sig` also `sig` (the file's signature, possibly empty);
//! - ascii (`ascii_runtime_measurements`): `PCR template-hash template-name <algo>:<hex>
//!   path [signature-hex]`, one entry per line; the template data is rebuilt from the fields.
//!
//! The template hash is SHA-1 of the template data; an all-zero template hash marks a
//! violation (a file measured while open for writing), which the kernel extends as all
//! `0xFF`. Since Linux 5.8 every PCR bank is extended with that bank's hash of the template
//! data, so PCR 10 of the SHA-256 bank is the chain of `SHA-256(template data)` (or 32 `0xFF`
//! bytes for a violation).
//!
//! The list keeps growing while the machine runs, so a list read after the quote runs ahead
//! of the quoted PCR 10: it is accepted up to the prefix whose replay matches (Keylime's
//! approach), and the entries after it wait for the next quote.

use crate::{
    limits::{
        IMA_ENTRIES_MAX, IMA_LOG_MAX_BYTES, IMA_TEMPLATE_DATA_MAX_BYTES,
        IMA_TEMPLATE_NAME_MAX_BYTES,
    },
    pcr::{self, Digest, IMA_PCR},
};
use sha1::{Digest as _, Sha1};
use std::collections::{BTreeMap, BTreeSet};

/// The legacy template, whose template hash is over a fixed-size field layout; unsupported.
const LEGACY_TEMPLATE: &str = "ima";
/// The path the kernel gives the first entry, the hash of the boot PCRs.
pub const BOOT_AGGREGATE: &str = "boot_aggregate";
/// The value a violation extends into every bank.
pub const VIOLATION_EXTEND: Digest = [0xFF; 32];

/// One IMA measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its position in the list, from 1 (the line in the ascii form).
    pub line: usize,
    /// The PCR it extends.
    pub pcr: u32,
    /// SHA-1 of the template data; zeros for a violation.
    pub template_hash: [u8; 20],
    /// The template name (`ima-ng`, `ima-sig`, …).
    pub template_name: String,
    /// The template data (fields, each length-prefixed).
    pub template_data: Vec<u8>,
}

/// The first fields of an `ima-ng`, `ima-sig` or `ima-buf` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The file digest's algorithm (`sha256`, `sha1`, …).
    pub algorithm: String,
    /// The file digest.
    pub digest: Vec<u8>,
    /// The path (or buffer name) measured.
    pub path: String,
    /// The file signature (`ima-sig`), empty when absent.
    pub signature: Vec<u8>,
}

/// Why an IMA list was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImaError {
    /// The list is larger than [`IMA_LOG_MAX_BYTES`].
    #[error("the IMA list is {size_bytes} bytes, the limit is {IMA_LOG_MAX_BYTES}")]
    TooLarge {
        /// Its size, bytes.
        size_bytes: usize,
    },
    /// The list has more than [`IMA_ENTRIES_MAX`] entries (or more than a report may carry).
    #[error("the IMA list has more than {max} entries")]
    TooManyEntries {
        /// The bound that was hit.
        max: usize,
    },
    /// An entry could not be read.
    #[error("IMA entry {line} is malformed: {reason}")]
    Malformed {
        /// The entry's position, from 1.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry uses the legacy `ima` template.
    #[error(
        "IMA entry {line} uses the legacy template `ima`; boot with ima_template=ima-ng or ima-sig"
    )]
    LegacyTemplate {
        /// The entry's position, from 1.
        line: usize,
    },
    /// An entry's template data does not hash to its template hash: the entry was altered.
    #[error("IMA entry {line} was altered: its template data does not hash to its template hash")]
    TemplateHashMismatch {
        /// The entry's position, from 1.
        line: usize,
    },
    /// An entry extends another PCR than 10.
    #[error("IMA entry {line} extends PCR {pcr}; only PCR 10 is verified")]
    WrongPcr {
        /// The entry's position, from 1.
        line: usize,
        /// The PCR it names.
        pcr: u32,
    },
    /// No prefix of the list replays to the quoted PCR 10: an entry was removed, reordered,
    /// or altered together with its template hash.
    #[error("no prefix of the {entries} IMA entries replays to the quoted PCR 10 ({quoted})")]
    NoMatchingPrefix {
        /// The entries offered.
        entries: usize,
        /// The quoted PCR 10, hex.
        quoted: String,
    },
    /// PCR 10 is zero (IMA did not run this boot) but entries were offered.
    #[error("PCR 10 is zero, so IMA is not running, yet {entries} IMA entries were offered")]
    NotRunning {
        /// The entries offered.
        entries: usize,
    },
    /// PCR 10 was zero at the last report of this boot (IMA off) and is not now: IMA starts only
    /// at boot, so something else extended it.
    #[error("PCR 10 turned non-zero after a report of this boot found IMA off")]
    StartedMidBoot,
    /// After a reboot the list must start with the boot aggregate of the quoted PCRs 0–9.
    #[error("the IMA list does not start with the boot aggregate of the quoted PCRs 0-9")]
    BootAggregateMismatch,
    /// A measured file's digest is not in the reference's allowed digests.
    #[error("IMA entry {line} measured {path} with a digest the reference does not allow")]
    NotAllowed {
        /// The entry's position, from 1.
        line: usize,
        /// The path measured.
        path: String,
    },
}

impl Entry {
    /// The `ima-ng` entry IMA would log for a file with SHA-256 `digest` at `path`, at
    /// position `line`.
    pub fn measured(line: usize, digest: &Digest, path: &str) -> Self {
        let template_data = template_data("sha256", digest, path, None);
        Self {
            line,
            pcr: IMA_PCR,
            template_hash: Sha1::digest(&template_data).into(),
            template_name: "ima-ng".to_owned(),
            template_data,
        }
    }

    /// Whether this entry records a violation (template hash all zeros).
    pub fn is_violation(&self) -> bool {
        self.template_hash == [0; 20]
    }

    /// Whether the template data hashes to the template hash (a violation always does).
    pub fn template_hash_matches(&self) -> bool {
        self.is_violation() || Sha1::digest(&self.template_data).as_slice() == self.template_hash
    }

    /// What this entry extends into PCR 10 of the SHA-256 bank.
    pub fn sha256_extend(&self) -> Digest {
        if self.is_violation() {
            VIOLATION_EXTEND
        } else {
            pcr::sha256(&self.template_data)
        }
    }

    /// The digest, path and signature fields, for the templates that start with `d-ng` and
    /// `n-ng` (`ima-ng`, `ima-sig`, `ima-buf`).
    pub fn measurement(&self) -> Result<Measurement, ImaError> {
        measurement_of(self.line, &self.template_data)
    }
}

/// The digest, path and signature fields of `template_data` (templates that start with `d-ng`
/// and `n-ng`: `ima-ng`, `ima-sig`, `ima-buf`); `line` names the entry in errors.
pub fn measurement_of(line: usize, template_data: &[u8]) -> Result<Measurement, ImaError> {
    let malformed = |reason| ImaError::Malformed { line, reason };
    let mut fields = Fields {
        rest: template_data,
    };
    let digest_field = fields.next().ok_or(malformed("no digest field"))?;
    let path_field = fields.next().ok_or(malformed("no path field"))?;
    let signature = fields.next().unwrap_or_default().to_vec();
    let split = digest_field.windows(2).position(|w| w == b":\0");
    let split = split.map(|at| digest_field.split_at(at));
    let (algorithm, digest) = match split {
        Some((algorithm, rest)) => (algorithm, rest.get(2..).unwrap_or_default()),
        None => return Err(malformed("the digest field has no algorithm")),
    };
    let algorithm = std::str::from_utf8(algorithm).map_err(|_| malformed("algorithm"))?;
    let path = path_field.strip_suffix(&[0]).unwrap_or(path_field);
    Ok(Measurement {
        algorithm: algorithm.to_owned(),
        digest: digest.to_vec(),
        path: String::from_utf8_lossy(path).into_owned(),
        signature,
    })
}

/// Length-prefixed template fields.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.rest.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let (field, rest) = rest.split_at_checked(len)?;
        self.rest = rest;
        Some(field)
    }
}

/// Parses a measurement list in either form (ascii when it starts with a digit), taking at
/// most `entries_max` entries.
pub fn parse(bytes: &[u8], entries_max: usize) -> Result<Vec<Entry>, ImaError> {
    if bytes.len() > IMA_LOG_MAX_BYTES {
        return Err(ImaError::TooLarge {
            size_bytes: bytes.len(),
        });
    }
    let entries_max = entries_max.min(IMA_ENTRIES_MAX);
    match bytes.first() {
        Some(b'0'..=b'9') => parse_ascii(bytes, entries_max),
        _ => parse_binary(bytes, entries_max),
    }
}

/// Parses the binary form (`binary_runtime_measurements`).
pub fn parse_binary(bytes: &[u8], entries_max: usize) -> Result<Vec<Entry>, ImaError> {
    let mut rest = bytes;
    let mut entries = Vec::new();
    while !rest.is_empty() {
        if entries.len() >= entries_max {
            return Err(ImaError::TooManyEntries { max: entries_max });
        }
        let line = entries.len().saturating_add(1);
        let malformed = |reason| ImaError::Malformed { line, reason };
        let (pcr, after) = take_u32(rest).ok_or(malformed("truncated PCR"))?;
        let (hash, after) = after
            .split_at_checked(20)
            .ok_or(malformed("truncated hash"))?;
        let (name_len, after) = take_u32(after).ok_or(malformed("truncated name"))?;
        if name_len as usize > IMA_TEMPLATE_NAME_MAX_BYTES {
            return Err(malformed("template name too long"));
        }
        let (name, after) = after
            .split_at_checked(name_len as usize)
            .ok_or(malformed("truncated name"))?;
        let name = std::str::from_utf8(name).map_err(|_| malformed("template name"))?;
        if name == LEGACY_TEMPLATE {
            return Err(ImaError::LegacyTemplate { line });
        }
        let (data_len, after) = take_u32(after).ok_or(malformed("truncated data"))?;
        if data_len as usize > IMA_TEMPLATE_DATA_MAX_BYTES {
            return Err(malformed("template data too large"));
        }
        let (data, after) = after
            .split_at_checked(data_len as usize)
            .ok_or(malformed("truncated data"))?;
        entries.push(Entry {
            line,
            pcr,
            template_hash: hash.try_into().map_err(|_| malformed("hash"))?,
            template_name: name.to_owned(),
            template_data: data.to_vec(),
        });
        rest = after;
    }
    Ok(entries)
}

fn take_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_at_checked(4)?;
    Some((u32::from_le_bytes(head.try_into().ok()?), rest))
}

/// Parses the ascii form (`ascii_runtime_measurements`), rebuilding each entry's template
/// data.
pub fn parse_ascii(bytes: &[u8], entries_max: usize) -> Result<Vec<Entry>, ImaError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ImaError::Malformed {
        line: 1,
        reason: "not UTF-8",
    })?;
    let mut entries = Vec::new();
    for (index, text_line) in text.lines().enumerate() {
        if text_line.is_empty() {
            continue;
        }
        if entries.len() >= entries_max {
            return Err(ImaError::TooManyEntries { max: entries_max });
        }
        entries.push(parse_ascii_line(index.saturating_add(1), text_line)?);
    }
    Ok(entries)
}

fn parse_ascii_line(line: usize, text: &str) -> Result<Entry, ImaError> {
    let malformed = |reason| ImaError::Malformed { line, reason };
    let mut words = text.splitn(4, ' ');
    let pcr = words.next().and_then(|w| w.parse().ok());
    let pcr = pcr.ok_or(malformed("PCR"))?;
    let mut template_hash = [0; 20];
    let hash = words.next().ok_or(malformed("no template hash"))?;
    hex::decode_to_slice(hash, &mut template_hash).map_err(|_| malformed("template hash"))?;
    let template_name = words
        .next()
        .ok_or(malformed("no template name"))?
        .to_owned();
    let rest = words.next().ok_or(malformed("no digest"))?;
    let (digest, path) = rest.split_once(' ').ok_or(malformed("no path"))?;
    let (algorithm, digest_hex) = digest.split_once(':').ok_or(malformed("digest"))?;
    let digest = hex::decode(digest_hex).map_err(|_| malformed("digest hex"))?;
    let mut entry = Entry {
        line,
        pcr,
        template_hash,
        template_name,
        template_data: Vec::new(),
    };
    match entry.template_name.as_str() {
        "ima-ng" => entry.template_data = template_data(algorithm, &digest, path, None),
        "ima-sig" => {
            // The kernel always prints the signature field after the path's last space, as
            // hex, empty when the file has none; so the last space splits them even when the
            // path has spaces.
            let (path, signature) = path
                .rsplit_once(' ')
                .ok_or(malformed("no signature field"))?;
            let signature = hex::decode(signature).map_err(|_| malformed("signature hex"))?;
            entry.template_data = template_data(algorithm, &digest, path, Some(&signature));
        }
        LEGACY_TEMPLATE => return Err(ImaError::LegacyTemplate { line }),
        _ => {
            return Err(malformed(
                "template not readable in ascii form (use the binary list)",
            ))
        }
    }
    if entry.template_data.len() > IMA_TEMPLATE_DATA_MAX_BYTES {
        return Err(malformed("template data too large"));
    }
    Ok(entry)
}

/// Template data: `d-ng`, `n-ng`, and `sig` when given.
pub fn template_data(
    algorithm: &str,
    digest: &[u8],
    path: &str,
    signature: Option<&[u8]>,
) -> Vec<u8> {
    let mut digest_field = algorithm.as_bytes().to_vec();
    digest_field.extend_from_slice(b":\0");
    digest_field.extend_from_slice(digest);
    let mut path_field = path.as_bytes().to_vec();
    path_field.push(0);
    let mut data = Vec::new();
    for field in [
        Some(digest_field.as_slice()),
        Some(path_field.as_slice()),
        signature,
    ]
    .into_iter()
    .flatten()
    {
        data.extend_from_slice(&(field.len() as u32).to_le_bytes());
        data.extend_from_slice(field);
    }
    data
}

/// The lines (from 1) of the entries whose template data does not hash to their template hash.
pub fn template_hash_mismatches(entries: &[Entry]) -> Vec<usize> {
    entries
        .iter()
        .filter(|entry| !entry.template_hash_matches())
        .map(|entry| entry.line)
        .collect()
}

/// PCR 10 after replaying all of `entries` from `start`.
pub fn replay(start: Digest, entries: &[Entry]) -> Digest {
    entries.iter().fold(start, |value, entry| {
        pcr::extend(&value, &entry.sha256_extend())
    })
}

/// How many entries, replayed from `start`, give `quoted` (the first such prefix), if any.
pub fn matched_prefix(start: Digest, entries: &[Entry], quoted: &Digest) -> Option<usize> {
    let mut value = start;
    if value == *quoted {
        return Some(0);
    }
    for (count, entry) in (1..).zip(entries) {
        value = pcr::extend(&value, &entry.sha256_extend());
        if value == *quoted {
            return Some(count);
        }
    }
    None
}

/// Verifies a list against the quoted PCR 10: every entry extends PCR 10 and has a matching
/// template hash (also past the quote: a mismatch anywhere is an altered list), and a prefix
/// replays to `quoted`. Returns the prefix's length; the entries after it are not yet
/// covered by a quote.
pub fn verify(start: Digest, entries: &[Entry], quoted: &Digest) -> Result<usize, ImaError> {
    if let Some(entry) = entries.iter().find(|entry| entry.pcr != IMA_PCR) {
        return Err(ImaError::WrongPcr {
            line: entry.line,
            pcr: entry.pcr,
        });
    }
    if let Some(entry) = entries.iter().find(|entry| !entry.template_hash_matches()) {
        return Err(ImaError::TemplateHashMismatch { line: entry.line });
    }
    matched_prefix(start, entries, quoted).ok_or_else(|| ImaError::NoMatchingPrefix {
        entries: entries.len(),
        quoted: pcr::to_hex(quoted),
    })
}

/// Checks that every measured file's SHA-256 digest is in `allowed` (violations, which carry
/// no digest, are counted by the caller). The boot aggregate is not exempt here: the caller
/// checks the first entry after a reboot with [`check_boot_aggregate`] and passes the rest.
pub fn check_allowed(entries: &[Entry], allowed: &BTreeSet<Digest>) -> Result<(), ImaError> {
    for entry in entries.iter().filter(|entry| !entry.is_violation()) {
        let measurement = entry.measurement()?;
        let digest: Option<Digest> = measurement.digest.as_slice().try_into().ok();
        let allowed_digest =
            measurement.algorithm == "sha256" && digest.is_some_and(|d| allowed.contains(&d));
        if !allowed_digest {
            return Err(ImaError::NotAllowed {
                line: entry.line,
                path: measurement.path,
            });
        }
    }
    Ok(())
}

/// The boot aggregate IMA records first with a SHA-256 TPM bank: SHA-256 over PCRs 0–7, then
/// PCRs 8 and 9 (Linux 5.8 and later, TPM 2.0); a PCR missing from `pcrs` counts as zeros.
pub fn boot_aggregate(pcrs: &BTreeMap<u32, Digest>) -> Digest {
    let mut hasher = sha2::Sha256::new();
    for index in 0..=9 {
        hasher.update(pcrs.get(&index).copied().unwrap_or_default());
    }
    hasher.finalize().into()
}

/// Checks that `first` is the boot aggregate of the quoted `pcrs`: path `boot_aggregate`,
/// SHA-256, the right digest, not a violation. Only the first entry after a reboot may be it;
/// a file elsewhere that IMA logged under that name (the kernel falls back to the bare name
/// when it cannot build a path) is an ordinary file.
pub fn check_boot_aggregate(first: &Entry, pcrs: &BTreeMap<u32, Digest>) -> Result<(), ImaError> {
    if first.is_violation() {
        return Err(ImaError::BootAggregateMismatch);
    }
    let measurement = first.measurement()?;
    let expected = boot_aggregate(pcrs);
    let matches = measurement.path == BOOT_AGGREGATE
        && measurement.algorithm == "sha256"
        && measurement.digest == expected;
    if matches {
        Ok(())
    } else {
        Err(ImaError::BootAggregateMismatch)
    }
}

#[cfg(test)]
mod tests;
