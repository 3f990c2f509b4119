//! Platform Configuration Registers of the SHA-256 bank, and the extend operation.
//!
//! `PCR_new = SHA-256(PCR_old || digest)` (TPM 2.0 Library Part 1 §17.4). A TPM resets PCRs
//! 0–16 and 23 to zeros at startup; PCR 0 may instead start at the locality the firmware
//! started in (a `StartupLocality` event).

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// A SHA-256 digest, 32 bytes.
pub type Digest = [u8; 32];

/// PCRs a PC-client TPM has.
pub const PCR_COUNT: usize = 24;

/// The PCR IMA extends (the kernel's `CONFIG_IMA_MEASURE_PCR_IDX`).
pub const IMA_PCR: u32 = 10;

/// The PCRs the firmware extends up to the boot loader (TCG PC Client PFP §3.3.4): 0–7.
pub const FIRMWARE_PCRS: std::ops::RangeInclusive<u32> = 0..=7;

/// The PCRs that make a machine's boot state: the firmware's (0–7), the boot loader's kernel,
/// initrd and command line (8–9, GRUB), and the UEFI stub's and shim's (11–14). A report
/// quotes all of them, so a different kernel or command line shows even where the firmware
/// and boot loader are the same. (PCR 10 is IMA's.)
pub const BOOT_PCRS: [u32; 14] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14];

/// The SHA-256 bank of one TPM's PCRs, all zeros at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBank {
    values: [Digest; PCR_COUNT],
}

impl Default for PcrBank {
    fn default() -> Self {
        Self::new()
    }
}

impl PcrBank {
    /// Every PCR zero, as after `TPM2_Startup(CLEAR)`.
    pub const fn new() -> Self {
        Self {
            values: [[0; 32]; PCR_COUNT],
        }
    }

    /// Extends PCR `index` with `digest`; `false` (and nothing changes) when `index` is not a
    /// PCR.
    pub fn extend(&mut self, index: u32, digest: &Digest) -> bool {
        match self.values.get_mut(index as usize) {
            Some(value) => {
                *value = extend(value, digest);
                true
            }
            None => false,
        }
    }

    /// Sets PCR `index` to `value` (a startup locality); `false` when `index` is not a PCR.
    pub fn set(&mut self, index: u32, value: Digest) -> bool {
        match self.values.get_mut(index as usize) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// PCR `index`, or `None` when it is not a PCR.
    pub fn get(&self, index: u32) -> Option<&Digest> {
        self.values.get(index as usize)
    }

    /// The PCRs in `indices`, by index.
    pub fn select(&self, indices: impl IntoIterator<Item = u32>) -> BTreeMap<u32, Digest> {
        indices
            .into_iter()
            .filter_map(|index| self.get(index).map(|value| (index, *value)))
            .collect()
    }
}

/// `SHA-256(value || digest)`: one PCR extend.
pub fn extend(value: &Digest, digest: &Digest) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(value);
    hasher.update(digest);
    hasher.finalize().into()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// The digest a quote signs over its selected PCRs: SHA-256 of their values concatenated in
/// ascending index order (TPM 2.0 Library Part 3 §18.4, `pcrDigest`).
pub fn quote_digest(pcrs: &BTreeMap<u32, Digest>) -> Digest {
    let mut hasher = Sha256::new();
    for value in pcrs.values() {
        hasher.update(value);
    }
    hasher.finalize().into()
}

/// Lowercase hex of a digest, for reports and JSON.
pub fn to_hex(digest: &Digest) -> String {
    hex::encode(digest)
}

/// Parses 64 hex digits (either case) into a digest.
pub fn from_hex(text: &str) -> Option<Digest> {
    let mut digest = [0; 32];
    hex::decode_to_slice(text.trim(), &mut digest).ok()?;
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_matches_the_definition() {
        let mut bank = PcrBank::new();
        let digest = sha256(b"event");
        assert!(bank.extend(10, &digest));
        let mut expected = Sha256::new();
        expected.update([0u8; 32]);
        expected.update(digest);
        assert_eq!(bank.get(10), Some(&expected.finalize().into()));
        assert_eq!(bank.get(9), Some(&[0; 32]));
    }

    #[test]
    fn an_index_past_the_bank_changes_nothing() {
        let mut bank = PcrBank::new();
        assert!(!bank.extend(24, &[1; 32]));
        assert!(!bank.extend(u32::MAX, &[1; 32]));
        assert!(!bank.set(24, [1; 32]));
        assert_eq!(bank, PcrBank::new());
        assert_eq!(bank.get(24), None);
    }

    #[test]
    fn hex_round_trips_and_refuses_the_wrong_length() {
        let digest = sha256(b"x");
        assert_eq!(from_hex(&to_hex(&digest)), Some(digest));
        assert_eq!(from_hex(&to_hex(&digest).to_uppercase()), Some(digest));
        assert_eq!(from_hex("abcd"), None);
        assert_eq!(from_hex(&"zz".repeat(32)), None);
    }
}
