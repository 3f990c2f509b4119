//! Machine Integrity Attestation, the collectors: what a provider's machine measures about
//! itself and sends to the chain, which verifies it with `logos-mia`.
//!
//! Each collector is a trait with a real implementation:
//! - [`tpm::Tpm`] ([`tpm::TssTpm`], tss-esapi over Debian's libtss2): the endorsement key (and
//!   its certificate when the TPM has one), an attestation key created under it, PCR reads,
//!   quotes over a PCR selection with a nonce, and PCR extends. Every transient handle is
//!   flushed after use: swtpm has no resource manager, and a TPM holds only a few objects.
//! - [`logs`]: the kernel's measured-boot log and IMA measurement list from securityfs.
//! - [`files::FileSnapshot`]: the AIDE role, a hash over a configured set of paths, or over
//!   AIDE's database when AIDE is installed.
//! - [`kernel`]: LKRG's settings and a summary of the loaded eBPF programs, where the kernel
//!   offers them; `unavailable` otherwise, never a made-up value.
//! - [`tamper::TamperSource`]: the physical tamper flag, from a file or sysfs path.
//!
//! [`evidence::collect`] runs them all for one report; [`keyfile`] keeps the attestation key
//! between runs; [`certs`] assembles the EK's certificate chain. [`swtpm::Swtpm`] runs a software TPM
//! 2.0 on loopback, for machines without one (the devnet) and for tests.

pub mod certs;
pub mod evidence;
pub mod files;
pub mod kernel;
pub mod keyfile;
pub mod logs;
pub mod swtpm;
pub mod tamper;
pub mod tpm;

/// Why a collector failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The TPM refused or could not be reached.
    #[error("TPM: {0}")]
    Tpm(#[from] tss_esapi::Error),
    /// A file or command could not be read.
    #[error("{what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Something read was not what it should be.
    #[error("{0}")]
    Invalid(String),
    /// A bound was hit.
    #[error("{what} exceeds the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit.
        max: usize,
    },
}

impl CollectError {
    /// An I/O error while reading `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
