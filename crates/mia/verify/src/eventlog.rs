//! The measured-boot event log, in the crypto-agile format, and its replay into PCRs 0–7.
//!
//! Source: TCG PC Client Platform Firmware Profile (PFP) 1.05, §10.2 "Event Logging". Linux
//! exposes it as `/sys/kernel/security/tpm0/binary_bios_measurements`. Layout, little-endian:
//! - the first event in the SHA-1 format (`TCG_PCClientPCREvent`): `pcrIndex u32`,
//!   `eventType u32` (`EV_NO_ACTION`), `digest [20]`, `eventDataSize u32`, then the
//!   `TCG_EfiSpecIdEvent`: `"Spec ID Event03\0"`, platform class, versions, `uintnSize`, and
//!   the banks the log carries (`algorithmId u16`, `digestSize u16` each);
//! - then `TCG_PCR_EVENT2` events: `pcrIndex u32`, `eventType u32`, `count u32` digests of
//!   (`hashAlg u16`, digest of that bank's size), `eventSize u32`, `event [eventSize]`.
//!
//! Replay extends each event's SHA-256 digest into its PCR, except `EV_NO_ACTION` events, which
//! are not extended; a `StartupLocality` one sets PCR 0's initial value (PFP §10.4.5.3). For
//! the event types whose digest is defined as the hash of their data (`EV_SEPARATOR`,
//! `EV_ACTION`, `EV_EFI_ACTION`, `EV_S_CRTM_VERSION`) the data must hash to the digest, so an
//! altered description is caught even where the PCR is not quoted.

use crate::{
    limits::{EVENT_DATA_MAX_BYTES, EVENT_DIGESTS_MAX, EVENT_LOG_EVENTS_MAX, EVENT_LOG_MAX_BYTES},
    pcr::{self, Digest, PcrBank, BOOT_PCRS},
};
use std::collections::BTreeMap;

/// `EV_NO_ACTION`: logged, never extended.
pub const EV_NO_ACTION: u32 = 0x0000_0003;
/// `EV_SEPARATOR`: the end of a phase; digest = hash of the data.
pub const EV_SEPARATOR: u32 = 0x0000_0004;
/// `EV_ACTION`: a string; digest = hash of the data.
pub const EV_ACTION: u32 = 0x0000_0005;
/// `EV_S_CRTM_VERSION`: the CRTM's version; digest = hash of the data.
pub const EV_S_CRTM_VERSION: u32 = 0x0000_0008;
/// `EV_EFI_ACTION`: a UEFI string; digest = hash of the data.
pub const EV_EFI_ACTION: u32 = 0x8000_0007;

/// `TPM_ALG_SHA256`.
const ALG_SHA256: u16 = 0x000B;
/// The signature of the first event's data in a crypto-agile log.
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// The signature of a `StartupLocality` event's data.
const STARTUP_LOCALITY_SIGNATURE: &[u8; 16] = b"StartupLocality\0";
/// The most banks a spec id event may announce.
const SPEC_ID_ALGORITHMS_MAX: u32 = 16;

/// One measured-boot event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The PCR it extends.
    pub pcr: u32,
    /// Its `eventType` (PFP §10.4.1).
    pub event_type: u32,
    /// Its SHA-256 bank digest.
    pub sha256: Digest,
    /// Its event data (at most [`EVENT_DATA_MAX_BYTES`]).
    pub data: Vec<u8>,
}

/// A parsed crypto-agile event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog {
    /// The banks the log carries: (`TPM_ALG_ID`, digest size, bytes).
    pub banks: Vec<(u16, u16)>,
    /// The events after the spec id event, in log order.
    pub events: Vec<Event>,
    /// PCR 0's initial value from a `StartupLocality` event, if the log has one.
    pub startup_locality: Option<u8>,
}

/// Why an event log was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventLogError {
    /// The log is larger than [`EVENT_LOG_MAX_BYTES`].
    #[error("the event log is {size_bytes} bytes, the limit is {EVENT_LOG_MAX_BYTES}")]
    TooLarge {
        /// Its size, bytes.
        size_bytes: usize,
    },
    /// The log ends inside a structure.
    #[error("the event log ends inside the structure at byte {offset}")]
    Truncated {
        /// Where the cut structure starts, bytes from the log's start.
        offset: usize,
    },
    /// The first event is not a `Spec ID Event03`: not a crypto-agile log.
    #[error("the event log is not in the crypto-agile format (no Spec ID Event03 first)")]
    NotCryptoAgile,
    /// The log does not carry the SHA-256 bank.
    #[error("the event log carries no SHA-256 digests")]
    NoSha256Bank,
    /// An event names a bank the spec id event did not announce.
    #[error(
        "event {index} carries a digest of algorithm {algorithm:#06x}, not announced by the log"
    )]
    UnknownAlgorithm {
        /// The event's position (0 = the first after the spec id event).
        index: usize,
        /// The `TPM_ALG_ID`.
        algorithm: u16,
    },
    /// An event carries no SHA-256 digest, or more digests than banks.
    #[error("event {index} carries {count} digests, not one per announced bank")]
    DigestCount {
        /// The event's position.
        index: usize,
        /// The digests it claims.
        count: u32,
    },
    /// An event's data is larger than [`EVENT_DATA_MAX_BYTES`].
    #[error(
        "event {index} carries {size_bytes} bytes of data, the limit is {EVENT_DATA_MAX_BYTES}"
    )]
    EventTooLarge {
        /// The event's position.
        index: usize,
        /// Its data size, bytes.
        size_bytes: usize,
    },
    /// The log has more than [`EVENT_LOG_EVENTS_MAX`] events.
    #[error("the event log has more than {EVENT_LOG_EVENTS_MAX} events")]
    TooManyEvents,
    /// An event whose digest is the hash of its data does not hash to it: the entry was altered.
    #[error(
        "event {index} (type {event_type:#x}) was altered: its data does not hash to its digest"
    )]
    EventDataMismatch {
        /// The event's position.
        index: usize,
        /// Its type.
        event_type: u32,
    },
    /// The replayed log does not give the quoted value of a PCR.
    #[error("replaying the event log gives PCR {pcr} = {replayed}, the TPM quoted {quoted}")]
    PcrMismatch {
        /// The PCR.
        pcr: u32,
        /// The replayed value, hex.
        replayed: String,
        /// The quoted value, hex.
        quoted: String,
    },
}

/// A little-endian reader over a bounded buffer that never reads past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, start: usize) -> Result<&'a [u8], EventLogError> {
        let end = self.offset.checked_add(len);
        let slice = end.and_then(|end| Some((end, self.bytes.get(self.offset..end)?)));
        let (end, slice) = slice.ok_or(EventLogError::Truncated { offset: start })?;
        self.offset = end;
        Ok(slice)
    }

    fn u8(&mut self, start: usize) -> Result<u8, EventLogError> {
        Ok(self.take(1, start)?[0])
    }

    fn u16(&mut self, start: usize) -> Result<u16, EventLogError> {
        let bytes = self.take(2, start)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self, start: usize) -> Result<u32, EventLogError> {
        let bytes = self.take(4, start)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.offset..).unwrap_or_default()
    }
}

/// Parses a crypto-agile event log. Trailing bytes that are all `0x00` or all `0xFF` (the
/// unused part of a firmware's log area) end the log.
pub fn parse(bytes: &[u8]) -> Result<EventLog, EventLogError> {
    if bytes.len() > EVENT_LOG_MAX_BYTES {
        return Err(EventLogError::TooLarge {
            size_bytes: bytes.len(),
        });
    }
    let mut reader = Reader { bytes, offset: 0 };
    let banks = parse_spec_id(&mut reader)?;
    if !banks
        .iter()
        .any(|&(alg, size)| alg == ALG_SHA256 && size == 32)
    {
        return Err(EventLogError::NoSha256Bank);
    }
    let mut events = Vec::new();
    let mut startup_locality = None;
    while !is_padding(reader.rest()) {
        if events.len() == EVENT_LOG_EVENTS_MAX {
            return Err(EventLogError::TooManyEvents);
        }
        let event = parse_event(&mut reader, &banks, events.len())?;
        if event.event_type == EV_NO_ACTION && event.pcr == 0 {
            startup_locality = startup_locality.or(locality_of(&event.data));
        }
        events.push(event);
    }
    Ok(EventLog {
        banks,
        events,
        startup_locality,
    })
}

fn is_padding(rest: &[u8]) -> bool {
    rest.iter().all(|&b| b == 0) || rest.iter().all(|&b| b == 0xFF)
}

/// Reads the first event (SHA-1 format) and returns the banks its spec id event announces.
fn parse_spec_id(reader: &mut Reader<'_>) -> Result<Vec<(u16, u16)>, EventLogError> {
    let _pcr = reader.u32(0)?;
    let event_type = reader.u32(0)?;
    let _sha1 = reader.take(20, 0)?;
    if event_type != EV_NO_ACTION {
        return Err(EventLogError::NotCryptoAgile);
    }
    let size = reader.u32(0)? as usize;
    let data = reader.take(size, 0)?;
    if data.get(..16) != Some(SPEC_ID_SIGNATURE.as_slice()) {
        return Err(EventLogError::NotCryptoAgile);
    }
    let mut spec = Reader {
        bytes: data,
        offset: 16,
    };
    let start = 32; // the spec id event's data starts after the 32-byte SHA-1 header
    let _platform_class = spec.u32(start)?;
    let _versions_and_uintn = spec.take(4, start)?;
    let count = spec.u32(start)?;
    if count == 0 || count > SPEC_ID_ALGORITHMS_MAX {
        return Err(EventLogError::NotCryptoAgile);
    }
    let mut banks = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let algorithm = spec.u16(start)?;
        let size = spec.u16(start)?;
        if size == 0 || size > 64 {
            return Err(EventLogError::NotCryptoAgile);
        }
        banks.push((algorithm, size));
    }
    let vendor = spec.u8(start)? as usize;
    spec.take(vendor, start)?;
    Ok(banks)
}

fn parse_event(
    reader: &mut Reader<'_>,
    banks: &[(u16, u16)],
    index: usize,
) -> Result<Event, EventLogError> {
    let start = reader.offset;
    let pcr = reader.u32(start)?;
    let event_type = reader.u32(start)?;
    let count = reader.u32(start)?;
    if count as usize > banks.len().min(EVENT_DIGESTS_MAX) {
        return Err(EventLogError::DigestCount { index, count });
    }
    let mut sha256 = None;
    for _ in 0..count {
        let algorithm = reader.u16(start)?;
        let size = banks
            .iter()
            .find(|(alg, _)| *alg == algorithm)
            .map(|&(_, size)| size as usize)
            .ok_or(EventLogError::UnknownAlgorithm { index, algorithm })?;
        let digest = reader.take(size, start)?;
        if algorithm == ALG_SHA256 {
            sha256 = digest.try_into().ok();
        }
    }
    let sha256 = sha256.ok_or(EventLogError::DigestCount { index, count })?;
    let size_bytes = reader.u32(start)? as usize;
    if size_bytes > EVENT_DATA_MAX_BYTES {
        return Err(EventLogError::EventTooLarge { index, size_bytes });
    }
    let data = reader.take(size_bytes, start)?.to_vec();
    Ok(Event {
        pcr,
        event_type,
        sha256,
        data,
    })
}

/// The locality of a `StartupLocality` event's data (`"StartupLocality\0"`, `u8`).
fn locality_of(data: &[u8]) -> Option<u8> {
    match data.split_at_checked(16) {
        Some((signature, [locality])) if signature == STARTUP_LOCALITY_SIGNATURE => Some(*locality),
        _ => None,
    }
}

/// Checks the events whose digest is the hash of their data (see the module docs).
pub fn check_event_data(log: &EventLog) -> Result<(), EventLogError> {
    for (index, event) in log.events.iter().enumerate() {
        let hashed = matches!(
            event.event_type,
            EV_SEPARATOR | EV_ACTION | EV_EFI_ACTION | EV_S_CRTM_VERSION
        );
        if hashed && pcr::sha256(&event.data) != event.sha256 {
            return Err(EventLogError::EventDataMismatch {
                index,
                event_type: event.event_type,
            });
        }
    }
    Ok(())
}

/// Replays the log's SHA-256 digests into a fresh bank (events for PCRs past the bank, which a
/// TPM would refuse, are skipped).
pub fn replay(log: &EventLog) -> PcrBank {
    let mut bank = PcrBank::new();
    if let Some(locality) = log.startup_locality {
        let mut initial = [0; 32];
        initial[31] = locality;
        bank.set(0, initial);
    }
    for event in &log.events {
        if event.event_type != EV_NO_ACTION {
            bank.extend(event.pcr, &event.sha256);
        }
    }
    bank
}

/// Checks the log against quoted PCR values: the hashed events' data, then every boot PCR
/// ([`BOOT_PCRS`]) present in `quoted` against the replay.
pub fn verify(log: &EventLog, quoted: &BTreeMap<u32, Digest>) -> Result<(), EventLogError> {
    check_event_data(log)?;
    let bank = replay(log);
    let boot = quoted.iter().filter(|(index, _)| BOOT_PCRS.contains(index));
    for (&index, quoted_value) in boot {
        let replayed = bank.get(index).copied().unwrap_or_default();
        if replayed != *quoted_value {
            return Err(EventLogError::PcrMismatch {
                pcr: index,
                replayed: pcr::to_hex(&replayed),
                quoted: pcr::to_hex(quoted_value),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
