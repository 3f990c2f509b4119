//! The integrity hash: one digest over every component of a machine's measured state.
//!
//! Components, in this fixed order:
//! 1. `boot`: the boot PCRs of the SHA-256 bank (0–9 and 11–14: firmware, option ROMs, boot
//!    loader, kernel and command line), as quoted;
//! 2. `ima`: the allowed file digests the IMA entries were checked against
//!    ([`allowlist_digest`]); on a machine, the set of distinct files it measured, which is the
//!    smallest allowlist its log passes ([`ima_component`]);
//! 3. `files`: the file-integrity snapshot (the AIDE role) over the configured paths;
//! 4. `lkrg`: the Linux Kernel Runtime Guard's settings, when its module is loaded;
//! 5. `ebpf`: the eBPF programs loaded in the kernel;
//! 6. `tamper`: the physical tamper flag.
//!
//! A component the machine cannot measure is [`Status::Unavailable`], which hashes
//! differently from any measured value, never a made-up one.
//!
//! Canonical encoding: the version byte `1`, then per component a tag byte (`0` unavailable,
//! `1` measured, then its 32-byte digest; for `tamper`: `0` unavailable, `1` clear, `2`
//! tripped). The integrity hash is SHA-256 of [`DOMAIN`] followed by that encoding.

use crate::{
    ima::{Entry, BOOT_AGGREGATE},
    pcr::{self, Digest},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The domain separator of the integrity hash.
pub const DOMAIN: &[u8] = b"logos/mia/integrity-hash/v1\0";
/// The canonical encoding's version.
const ENCODING_VERSION: u8 = 1;

/// One measured component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "digest")]
pub enum Status {
    /// The machine cannot measure it (no TPM, module not loaded, kernel without support).
    Unavailable,
    /// Its digest.
    #[serde(with = "hex_digest")]
    Measured(Digest),
}

/// The physical tamper flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tamper {
    /// No tamper source is configured or readable.
    Unavailable,
    /// The source says the chassis is closed.
    Clear,
    /// The source says the chassis was opened.
    Tripped,
}

/// Every component of a machine's measured state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Components {
    /// The boot PCRs ([`boot_component`]).
    pub boot: Status,
    /// The files IMA measured ([`ima_component`]).
    pub ima: Status,
    /// The file-integrity snapshot.
    pub files: Status,
    /// LKRG's settings.
    pub lkrg: Status,
    /// The loaded eBPF programs.
    pub ebpf: Status,
    /// The tamper flag.
    pub tamper: Tamper,
}

impl Components {
    /// The canonical encoding (module docs), 1 + 5 × 33 + 1 bytes at most.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![ENCODING_VERSION];
        for status in [self.boot, self.ima, self.files, self.lkrg, self.ebpf] {
            match status {
                Status::Unavailable => bytes.push(0),
                Status::Measured(digest) => {
                    bytes.push(1);
                    bytes.extend_from_slice(&digest);
                }
            }
        }
        bytes.push(match self.tamper {
            Tamper::Unavailable => 0,
            Tamper::Clear => 1,
            Tamper::Tripped => 2,
        });
        bytes
    }

    /// The integrity hash: SHA-256 of [`DOMAIN`] and the canonical encoding.
    pub fn integrity_hash(&self) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(self.encode());
        hasher.finalize().into()
    }
}

/// The `boot` component: SHA-256 of the boot PCRs ([`pcr::BOOT_PCRS`]) in order; unavailable
/// unless all of them are given.
pub fn boot_component(pcrs: &BTreeMap<u32, Digest>) -> Status {
    let boot: BTreeMap<u32, Digest> = pcrs
        .iter()
        .filter(|(index, _)| pcr::BOOT_PCRS.contains(index))
        .map(|(i, v)| (*i, *v))
        .collect();
    if boot.len() == pcr::BOOT_PCRS.len() {
        Status::Measured(pcr::quote_digest(&boot))
    } else {
        Status::Unavailable
    }
}

/// The digest of an allowlist: SHA-256 over its digests in ascending order.
pub fn allowlist_digest(allowed: &BTreeSet<Digest>) -> Digest {
    let mut hasher = Sha256::new();
    for digest in allowed {
        hasher.update(digest);
    }
    hasher.finalize().into()
}

/// The distinct SHA-256 file digests a whole list (from a boot) measured: a leading boot
/// aggregate, violations and entries that do not parse are left out (the boot PCRs and the
/// replay cover them).
pub fn measured_digests(entries: &[Entry]) -> BTreeSet<Digest> {
    let files = match entries.first().and_then(|e| e.measurement().ok()) {
        Some(first) if first.path == BOOT_AGGREGATE => entries.get(1..).unwrap_or_default(),
        _ => entries,
    };
    files
        .iter()
        .filter(|entry| !entry.is_violation())
        .filter_map(|entry| entry.measurement().ok())
        .filter(|m| m.algorithm == "sha256")
        .filter_map(|m| m.digest.as_slice().try_into().ok())
        .collect()
}

/// The `ima` component a machine computes for itself: [`allowlist_digest`] of the files it
/// measured ([`measured_digests`]).
pub fn ima_component(entries: &[Entry]) -> Status {
    Status::Measured(allowlist_digest(&measured_digests(entries)))
}

mod hex_digest {
    use super::Digest;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &Digest, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::pcr::from_hex(&text).ok_or_else(|| D::Error::custom("expected 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components() -> Components {
        Components {
            boot: Status::Measured([1; 32]),
            ima: Status::Measured([2; 32]),
            files: Status::Measured([3; 32]),
            lkrg: Status::Unavailable,
            ebpf: Status::Unavailable,
            tamper: Tamper::Clear,
        }
    }

    #[test]
    fn every_component_changes_the_hash() {
        let base = components();
        let hash = base.integrity_hash();
        let variants = [
            Components {
                boot: Status::Measured([9; 32]),
                ..base
            },
            Components {
                ima: Status::Unavailable,
                ..base
            },
            Components {
                files: Status::Measured([4; 32]),
                ..base
            },
            Components {
                lkrg: Status::Measured([0; 32]),
                ..base
            },
            Components {
                ebpf: Status::Measured([0; 32]),
                ..base
            },
            Components {
                tamper: Tamper::Tripped,
                ..base
            },
            Components {
                tamper: Tamper::Unavailable,
                ..base
            },
        ];
        let mut seen = BTreeSet::from([hash]);
        for variant in variants {
            assert!(seen.insert(variant.integrity_hash()), "{variant:?}");
        }
    }

    #[test]
    fn the_encoding_is_fixed() {
        let bytes = components().encode();
        assert_eq!(bytes.len(), 1 + 3 * 33 + 2 + 1);
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[1], 1);
        assert_eq!(&bytes[2..34], &[1; 32]);
        assert_eq!(*bytes.last().unwrap(), 1);
    }

    #[test]
    fn boot_needs_every_boot_pcr() {
        let mut pcrs: BTreeMap<u32, Digest> =
            pcr::BOOT_PCRS.iter().map(|&i| (i, [i as u8; 32])).collect();
        pcrs.insert(10, [10; 32]);
        let Status::Measured(digest) = boot_component(&pcrs) else {
            panic!("measured")
        };
        pcrs.remove(&10);
        assert_eq!(digest, pcr::quote_digest(&pcrs));
        pcrs.remove(&3);
        assert_eq!(boot_component(&pcrs), Status::Unavailable);
    }

    #[test]
    fn json_shows_each_status_and_round_trips() {
        let json = serde_json::to_string(&components()).unwrap();
        assert!(
            json.contains(&format!(
                r#""boot":{{"status":"measured","digest":"{}"}}"#,
                "01".repeat(32)
            )),
            "{json}"
        );
        assert!(
            json.contains(r#""lkrg":{"status":"unavailable"}"#),
            "{json}"
        );
        assert!(json.contains(r#""tamper":"clear""#), "{json}");
        assert_eq!(
            serde_json::from_str::<Components>(&json).unwrap(),
            components()
        );
    }
}
