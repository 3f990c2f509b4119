//! The bounds every parser here checks before it reads.
//!
//! The on-machine tools (`logos attest replay`, the agent) read a whole log from the kernel,
//! which grows for as long as the machine runs, within these bounds; the chain reads only what
//! one report carries, which its transaction size bounds far below them. Every parser checks
//! its bound before it allocates, so a hostile log cannot make it allocate without limit.

/// The largest measured-boot event log read, bytes. A UEFI machine's log is 20–100 KiB;
/// SeaBIOS writes about 1 KiB.
pub const EVENT_LOG_MAX_BYTES: usize = 1 << 20;

/// The most events one measured-boot log may hold.
pub const EVENT_LOG_EVENTS_MAX: usize = 4_096;

/// The largest event data one measured-boot event may carry, bytes (an EFI variable with its
/// certificates fits).
pub const EVENT_DATA_MAX_BYTES: usize = 64 << 10;

/// The most digests one crypto-agile event may carry (one per PCR bank: SHA-1, SHA-256,
/// SHA-384, SHA-512, SM3).
pub const EVENT_DIGESTS_MAX: usize = 5;

/// The largest IMA measurement list read on a machine, bytes. A busy server's list reaches
/// tens of thousands of entries of ~150 bytes.
pub const IMA_LOG_MAX_BYTES: usize = 64 << 20;

/// The most entries an IMA measurement list read on a machine may hold.
pub const IMA_ENTRIES_MAX: usize = 1 << 20;

/// The largest template data one IMA entry may carry, bytes (a path of `PATH_MAX` = 4,096
/// bytes, a digest and a signature).
pub const IMA_TEMPLATE_DATA_MAX_BYTES: usize = 8 << 10;

/// The longest IMA template name, bytes (the kernel's `IMA_TEMPLATE_NAME_LEN_MAX`).
pub const IMA_TEMPLATE_NAME_MAX_BYTES: usize = 15;

/// The largest `TPMS_ATTEST` a quote may carry, bytes (`sizeof(TPMS_ATTEST)` in the TPM 2.0
/// Library, Part 2 §10.12.12, is 1,090 at most).
pub const ATTEST_MAX_BYTES: usize = 1_090;

/// The largest `TPMT_SIGNATURE` a quote may carry, bytes (an RSA-4096 signature and its
/// header).
pub const SIGNATURE_MAX_BYTES: usize = 518;

/// The largest `TPMT_PUBLIC` an attestation or endorsement key may have, bytes.
pub const PUBLIC_KEY_MAX_BYTES: usize = 1_024;
