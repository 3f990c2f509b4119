//! Machine Integrity Attestation (MIA), the verifier: "Don't trust. Verify." (seed `003_*`).
//!
//! A provider's machine may host environments only while its measured state matches the
//! reference registered on chain. This crate checks the evidence a machine sends, in pure
//! Rust, with no I/O, no clock, no randomness and no floats, so every full node can run it in
//! the chain's state transition and reach the same verdict. Every input is bounded before it
//! is parsed ([`limits`]); nothing here panics on any input.
//!
//! # What is checked
//! - [`quote`]: a TPM 2.0 quote (`TPM2_Quote`, TPM 2.0 Library Part 3 §18.4): the
//!   `TPMS_ATTEST` structure (parsed with `tpm2-protocol`), the attestation key's signature over
//!   it (RSASSA-PKCS1-v1_5 or ECDSA P-256 over SHA-256, RustCrypto), the nonce in `extraData`,
//!   the clock against the last accepted quote (a replay), and the PCR digest against the PCR
//!   values the report carries. The attestation key must be a restricted signing key fixed to
//!   its TPM, or a forged `TPMS_ATTEST` could carry its signature.
//! - [`eventlog`]: the measured-boot log (TCG PC Client Platform Firmware Profile §10, the
//!   crypto-agile format), replayed into the boot PCRs of the SHA-256 bank (0–9 and 11–14:
//!   firmware, boot loader, kernel and command line).
//! - [`ima`]: the Linux IMA runtime measurement list, ascii or binary, templates `ima-ng` and
//!   `ima-sig` (and any template in binary form): each entry's template hash is checked, the
//!   list is replayed into PCR 10 of the SHA-256 bank, and a list that runs ahead of the
//!   quoted PCR is accepted up to the prefix that matches it (as Keylime does).
//! - [`credential`]: `TPM2_MakeCredential` in software, the challenge that proves an
//!   attestation key lives on the same TPM as an endorsement key.
//! - [`endorsement`]: the EK's X.509 certificate chain up to a governance-approved anchor
//!   (a TPM manufacturer's root), RSA or ECDSA signatures (RustCrypto, `x509-cert`).
//! - [`evidence`]: all of the above for one report, against the machine's last report and its
//!   reference.
//! - [`integrity`]: the integrity hash, a domain-separated SHA-256 over a canonical encoding of
//!   every component (boot PCRs, IMA, file snapshot, LKRG, eBPF, tamper flag); a component the
//!   machine cannot measure is `unavailable`, never a made-up value.
//!
//! The collectors that produce this evidence on a machine live in `logos-mia-collect`; this
//! crate never talks to a TPM.

#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub mod credential;
pub mod endorsement;
pub mod eventlog;
pub mod evidence;
pub mod ima;
pub mod integrity;
pub mod limits;
pub mod pcr;
pub mod quote;
#[cfg(any(test, feature = "test-ca"))]
pub mod test_ca;

pub use pcr::{Digest, PcrBank};
