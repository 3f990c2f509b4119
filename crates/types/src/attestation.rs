//! Types of `attestation` (module index 9): Machine Integrity Attestation on chain (seed `003`:
//! "Don't trust. Verify."). The chain verifies each machine's TPM evidence in its own state
//! transition (with `logos-mia`), so every full node checks every attestation and nobody is the
//! verifier.
//!
//! # The protocol
//! 1. **Registration.** A provider's owner (or its agent) stages the EK's certificate chain
//!    ([`Call::StageEndorsement`], in chunks: a chain is larger than a transaction), then
//!    registers the machine's TPM ([`Call::RegisterMachine`]): the endorsement key's and an
//!    attestation key's `TPMT_PUBLIC`. The chain checks the AK is a restricted signing key
//!    (`logos_mia::quote::AkPublic`), the EK an RSA-2048 EK a challenger can encrypt to, and
//!    that a chain is staged. At the registration's first deadline ([`DRAW_DELAY_BLOCKS`]
//!    later; at most 4 chain checks per block, so the work a block does on chains is bounded
//!    whatever transactions it carries) it checks the staged chain
//!    (`logos_mia::endorsement`): the EK's certificate, signed through its intermediates up to
//!    a key governance approved as an **endorsement root** ([`Call::SetEndorsementRoot`],
//!    [`EndorsementRoots`]: TPM manufacturers' roots; a devnet approves the CA its software
//!    TPMs were made by, and no other network should). The check consumes the staged chain; a
//!    refused one removes the registration ([`Event::EndorsementRefused`]). The machine
//!    records the root it was endorsed by ([`Machine::endorsed_by`]); once governance revokes
//!    that root, the machine's next report excludes it (`EndorsementRevoked`), and a pending
//!    registration can be neither challenged nor activated and is removed at its next
//!    deadline. At that first deadline, with that
//!    block's randomness (unknown when the registration was sent), it draws a **challenger**
//!    by stake among the provisioners, never the provider's owner or agent nor one this
//!    registration answered already.
//! 2. **Credential.** The challenger runs `TPM2_MakeCredential` off chain
//!    (`logos_mia::credential`) with a secret credential of its choice and posts the
//!    challenge with the credential's SHA-256 ([`Call::Challenge`]); the challenge is public
//!    by design, since only the TPM holding that EK, with that AK loaded, can open it. The
//!    owner answers with the credential ([`Call::ActivateCredential`]); its hash must match.
//!    Until [`Parameters::challenges_required`] (default 3) distinct challengers were
//!    answered ([`Machine::answered`]), the next one is drawn [`DRAW_DELAY_BLOCKS`] after the
//!    answer, from that block's randomness; only then is the EK bound to the provider
//!    ([`Endorsements`], keyed by the EK's RSA modulus, so the same EK written differently is
//!    the same EK; the binding stays until another EK of the provider is activated or the
//!    machine is removed) and the machine attests. A challenger silent
//!    for [`Parameters::challenge_timeout_blocks`] (not drawn again for this provider while
//!    others are eligible), or a challenge unanswered as long, ends the round; after
//!    [`CHALLENGE_ROUNDS_MAX`] rounds (a round without any challenger drawn counts too) the
//!    registration is dropped. A provider gets at most [`DRAWS_MAX_PER_PROVIDER`] draws per
//!    [`DRAW_WINDOW_BLOCKS`] (deregistering and registering again does not buy fresh ones);
//!    governance grants more at once ([`Call::ResetDraws`]). Every step after its deadline is
//!    refused.
//!
//!    **What this proves, and what it does not.** The EK is one an approved manufacturer
//!    certified, so it lives in a TPM that manufacturer built (a software TPM or an RSA key
//!    dressed as an EK has no such certificate), and one TPM has one certified RSA EK, so one
//!    TPM backs one provider ([`Endorsements`]; a TPM whose maker certified both a low-range
//!    and a high-range RSA-2048 EK (EK Credential Profile 2.3+) could back two). The AK lives
//!    in that same TPM unless the required challengers, drawn in a row, all colluded with the
//!    provider (each knows its credential; nothing on chain can tell a leaked one). An honest
//!    challenger's credential cannot be answered without the AK in the TPM, and leaving one
//!    unanswered starts the answers over, so an attacker with a share `s` of the
//!    provisioners' stake needs `s` to the power of the required count, for each of the
//!    [`CHALLENGE_ROUNDS_MAX`] tries a registration has. A draw counts the provisioners as
//!    they stood before its randomness (known once the parent block exists) was known: not
//!    those that joined since, and still those that left since (`provisioning::Departures`),
//!    so nobody steers it by joining or leaving; the randomness is the hash of the block's seed
//!    (module `beacon`), which no proposer can grind, except in an epoch without a group key,
//!    where it is the parent's digest and that parent's proposer can. Raising
//!    [`Parameters::challenges_required`] does not re-challenge attesting machines; lowering
//!    it applies to registrations under way. Admission (`dvci` `Active`) stays governance's
//!    decision.
//!    Certificate validity periods are not checked (no agreed clock in the state transition);
//!    a compromised CA is handled by revoking its root.
//! 3. **Reports.** From then on the machine quotes PCRs 0–14 with the nonce
//!    `logos_mia::evidence::quote_nonce(`[`report_nonce`]`(anchor nonce, provider), reported
//!    components)`, where the anchor nonce is [`Nonces`]`[anchor]` of a block at most
//!    [`Parameters::nonce_window_blocks`] old, and sends the quote with the components it
//!    reports and the PCR 10 it claims ([`Call::Attest`]). The chain checks the quote's PCR
//!    digest against the reference's golden boot PCRs and that PCR 10, then the PCR 10 against
//!    the IMA entries staged with [`Call::StageIma`] since the last report (from zero after a
//!    reboot, which the quote's TPM reset or restart count must show). A report is due every
//!    [`Parameters::period_blocks`].
//! 4. **Zero tolerance.** A quote genuinely signed by the machine's AK, over a fresh nonce, whose
//!    boot PCRs are not the reference's, whose staged IMA entries measured a file outside the
//!    allowlist (or more violations than it tolerates, or a wrong boot aggregate), with IMA
//!    running where the reference has it off or off where it requires it, with reported
//!    components other than the reference's or a tripped tamper flag, and a missed deadline,
//!    exclude the provider at that block: `dvci` status `Excluded` (placement stops until
//!    governance admits it again), its open leases closed with their escrow refunded
//!    (`market`), and [`Event::MachineExcluded`] says why. Evidence that is not the machine's
//!    word (a bad signature, a stale or foreign nonce, a replayed clock), and IMA entries that
//!    do not replay to the quoted PCR 10 (incomplete staging), are refused as errors and
//!    change nothing: the deadline still runs. `files`, `lkrg`, `ebpf` and `tamper` are the
//!    machine's word, signed by its TPM through the nonce but not measured into a PCR: they
//!    tell an honest machine's changes apart, they do not stop a lying root (the boot PCRs
//!    and IMA do that).
//!
//!    Limits: measurements taken after a report and lost in a reboot before the next one are
//!    not seen (IMA starts over at boot); the IMA policy must measure the provider's own
//!    system, not tenants' workloads (a tenant's binary would exclude its provider); an entry
//!    longer than [`IMA_ENTRY_MAX_BYTES`] cannot be staged.
//! 5. **Verified reference update.** Governance approves references ([`Call::ApproveReference`],
//!    the artifact hash is [`Reference::id`]) and deployers ([`Call::SetDeployer`]). A
//!    deployer signs a deployment of an approved reference to a machine ([`Call::Deploy`]); the
//!    machine's next report that matches the deployment makes it the machine's reference. Any
//!    other change stays a violation.
//!
//! 6. **Deregistration.** The owner or agent removes its machine ([`Call::DeregisterMachine`]):
//!    an attesting machine's provider is excluded first (`Deregistered`), its leases refunded.
//!    A machine whose provider left `dvci` is removed at its next deadline, or by anyone at
//!    any time.
//!
//! A genesis with `unattested = true` (devnets without a TPM) lets providers take leases
//! without attestation; `dvci::Unattested` records it.
//!
//! # Storage
//! | item | key | value |
//! |---|---|---|
//! | 0 [`Machines`] | [`ProviderId`] | [`Machine`] |
//! | 1 [`References`] | [`Digest`] (the reference id) | [`Reference`] |
//! | 2 [`ClassReferences`] | [`ResourceClass`] | [`Digest`]: the reference new machines of the class start from |
//! | 3 [`AllowedFiles`] | (policy, file [`Digest`]) | the height it was allowed at |
//! | 4 [`Deployers`] | [`Address`] | the height it was authorized at |
//! | 5 [`Nonces`] | height | [`Digest`]: the block's randomness, for the last [`NONCE_WINDOW_MAX_BLOCKS`] + 1 blocks |
//! | 6 [`DueAt`] | height | the machines whose deadline is that height |
//! | 7 [`Params`] | | [`Parameters`] |
//! | 8 [`MachineCount`] | | how many machines are registered |
//! | 9 [`Endorsements`] | [`Digest`] (SHA-256 of an EK's RSA modulus) | the [`ProviderId`] whose activated machine holds it: one TPM backs one provider |
//! | 10 [`DueCursor`] | | the lowest height whose deadlines are not all handled |
//! | 11 [`Draws`] | [`ProviderId`] | [`DrawHistory`]: the provider's draws and silent challengers, across registrations |
//! | 12 [`EndorsementRoots`] | [`Digest`] (SHA-256 of a root key's DER `SubjectPublicKeyInfo`) | the height it was approved at |
//! | 13 [`StagedEndorsements`] | [`ProviderId`] | the EK certificate chain staged for the provider's next registration (at most [`ENDORSEMENT_CHAIN_MAX_BYTES`]) |
//!
//! # Calls
//! | index | call | origin |
//! |---|---|---|
//! | 0 | [`Call::RegisterMachine`] | the provider's owner or its agent's account |
//! | 1 | [`Call::Challenge`] | the drawn challenger |
//! | 2 | [`Call::ActivateCredential`] | the provider's owner or its agent's account |
//! | 3 | [`Call::StageIma`] | the provider's owner or its agent's account |
//! | 4 | [`Call::Attest`] | the provider's owner or its agent's account |
//! | 5 | [`Call::Deploy`] | an authorized deployer |
//! | 6 | [`Call::ApproveReference`] | privileged |
//! | 7 | [`Call::SetClassReference`] | privileged |
//! | 8 | [`Call::AllowFiles`] | privileged |
//! | 9 | [`Call::SetDeployer`] | privileged |
//! | 10 | [`Call::SetParams`] | privileged |
//! | 11 | [`Call::DeregisterMachine`] | the provider's owner or its agent's account; anyone once the provider is gone |
//! | 12 | [`Call::ResetDraws`] | privileged |
//! | 13 | [`Call::StageEndorsement`] | the provider's owner or its agent's account |
//! | 14 | [`Call::SetEndorsementRoot`] | privileged |
//!
//! "Its agent's account" is the account of the provider's `agent_key` (`dvci`): the agent on
//! the machine holds the TPM and runs the protocol without the owner's key.

use crate::{
    calls,
    codec::BoundedVec,
    dvci::{ProviderId, ResourceClass},
    errors, events, record, storage, Codec, MaxEncodeSize,
};
use logos_primitives::{hash, Address};

/// Name of the module (in receipts and logs).
pub const NAME: &str = "attestation";
/// Module index of `attestation`: storage prefix, call routing, error index.
pub const INDEX: u8 = 9;

/// Largest endorsement key `TPMT_PUBLIC`, bytes (an RSA-2048 EK with its policy is ~314).
pub const EK_PUBLIC_MAX_BYTES: usize = 400;
/// Largest attestation key `TPMT_PUBLIC`, bytes (RSA-2048 ~280, ECC P-256 ~90).
pub const AK_PUBLIC_MAX_BYTES: usize = 400;
/// Largest `TPM2B_ID_OBJECT` contents of a challenge, bytes (68 for a 32-byte credential).
pub const CREDENTIAL_BLOB_MAX_BYTES: usize = 96;
/// Largest encrypted seed of a challenge, bytes (an RSA-4096 EK's ciphertext).
pub const ENCRYPTED_SECRET_MAX_BYTES: usize = 512;
/// Shortest credential, bytes (`logos_mia::credential::CREDENTIAL_MIN_BYTES`).
pub const CREDENTIAL_MIN_BYTES: usize = 16;
/// Longest credential, bytes (`logos_mia::credential::CREDENTIAL_MAX_BYTES`).
pub const CREDENTIAL_MAX_BYTES: usize = 32;
/// Largest `TPMS_ATTEST` of a report, bytes (a quote of one bank is ~150).
pub const ATTEST_MAX_BYTES: usize = 256;
/// Largest `TPMT_SIGNATURE` of a report, bytes (RSA-4096; the 1 KiB transaction limit leaves
/// room for RSA-3072 at most).
pub const SIGNATURE_MAX_BYTES: usize = 518;
/// Largest EK certificate chain staged for a registration, bytes
/// (`logos_mia::endorsement::CHAIN_MAX_BYTES`: an EK certificate and three CA certificates).
pub const ENDORSEMENT_CHAIN_MAX_BYTES: usize = 6_144;
/// Largest piece of a chain one [`Call::StageEndorsement`] carries, bytes (within a 1 KiB
/// transaction).
pub const ENDORSEMENT_CHUNK_MAX_BYTES: usize = 768;
/// Largest IMA template data staged per entry, bytes (an `ima-ng` entry is ~90 + its path).
pub const IMA_ENTRY_MAX_BYTES: usize = 768;
/// Most IMA entries one [`Call::StageIma`] carries.
pub const IMA_ENTRIES_PER_CALL_MAX: usize = 16;
/// Most file digests one [`Call::AllowFiles`] carries.
pub const FILES_PER_CALL_MAX: usize = 16;
/// Most machines whose deadline falls on one height ([`DueAt`]): a deadline that finds its
/// height full moves to the next one with room.
pub const DUE_PER_HEIGHT_MAX: usize = 64;
/// How far a deadline moves at most to find room, blocks (`64 × 64` slots cover every
/// machine of [`MACHINES_MAX`]).
pub const DUE_SPREAD_MAX_BLOCKS: u64 = 64;
/// Most registered machines.
pub const MACHINES_MAX: u64 = 4_096;
/// Longest nonce window, blocks.
pub const NONCE_WINDOW_MAX_BLOCKS: u64 = 1_024;
/// Shortest attestation period and challenge timeout, blocks: [`MACHINES_MAX`] deadlines
/// spread over it stay within [`DUE_HANDLED_PER_BLOCK_MAX`] per block.
pub const PERIOD_MIN_BLOCKS: u64 = 256;
/// The boot PCRs a reference fixes, in order: 0–9 and 11–14 (`logos_mia::pcr::BOOT_PCRS`).
pub const BOOT_PCRS: [u32; 14] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14];
/// Namespace of a [`Reference`]'s id.
pub const REFERENCE_DOMAIN: &[u8] = b"logos/attestation/reference/v1";
/// Namespace of [`report_nonce`].
pub const REPORT_NONCE_DOMAIN: &[u8] = b"logos/attestation/report-nonce/v1";
/// Blocks between a registration and its challenger's draw (the draw uses a block the
/// registrant could not see).
pub const DRAW_DELAY_BLOCKS: u64 = 2;
/// Challenge rounds (a challenger silent, or a challenge unanswered) before a registration is
/// dropped.
pub const CHALLENGE_ROUNDS_MAX: u32 = 3;
/// Silent challengers remembered per provider (not drawn again while others are eligible).
pub const CHALLENGERS_MAX: usize = 8;
/// The most distinct challengers a registration may have to answer
/// ([`Parameters::challenges_required`]).
pub const CHALLENGES_REQUIRED_MAX: usize = 5;
/// Challenger draws a provider gets per [`DRAW_WINDOW_BLOCKS`], across its registrations
/// (governance grants more at once with [`Call::ResetDraws`]): a registrant cannot keep
/// registering again until a colluding challenger is drawn. A challenger that stays silent
/// gives its draw back, so a provisioner cannot burn another provider's draws by silence.
pub const DRAWS_MAX_PER_PROVIDER: u32 = 8;
/// The window [`DRAWS_MAX_PER_PROVIDER`] counts over, blocks (a day at 6-second blocks).
pub const DRAW_WINDOW_BLOCKS: u64 = 14_400;
/// Most deadlines handled at one block's end; the rest wait for the next blocks.
pub const DUE_HANDLED_PER_BLOCK_MAX: u32 = 16;

/// The chain nonce a machine's quote is bound to for a report of `provider` anchored at a
/// block whose [`Nonces`] entry is `anchor_nonce`: SHA-256 of [`REPORT_NONCE_DOMAIN`], the
/// anchor nonce and the provider id (big-endian), so that one quote serves one provider.
pub fn report_nonce(anchor_nonce: &Digest, provider: ProviderId) -> Digest {
    Digest(
        hash(&[
            REPORT_NONCE_DOMAIN,
            &anchor_nonce.0,
            &provider.get().to_be_bytes(),
        ])
        .0,
    )
}

/// A SHA-256 digest; lowercase hex (no prefix) in JSON.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Codec, MaxEncodeSize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The all-zero digest (a PCR's reset value).
    pub const ZERO: Digest = Digest([0; 32]);
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Digest {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        logos_primitives::decode_hex_array::<32>(text)
            .map(Digest)
            .map_err(|error| format!("not a 32-byte hex digest: {error}"))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A component a reference fixes (`logos_mia::integrity::Status`).
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case", tag = "status", content = "digest")]
pub enum Component {
    /// The machine cannot measure it.
    #[index(0)]
    Unavailable,
    /// Its digest.
    #[index(1)]
    Measured(Digest),
}

/// The physical tamper flag a machine reports (`logos_mia::integrity::Tamper`).
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum Tamper {
    /// No tamper source.
    #[index(0)]
    Unavailable,
    /// Closed.
    #[index(1)]
    Clear,
    /// Opened: always a violation.
    #[index(2)]
    Tripped,
}

/// What a machine reports of itself (bound into its quote's nonce): the components the chain
/// cannot compute.
#[record]
#[derive(Copy)]
pub struct Reported {
    /// The file-integrity snapshot.
    pub files: Component,
    /// LKRG's settings.
    pub lkrg: Component,
    /// The loaded eBPF programs.
    pub ebpf: Component,
    /// The tamper flag.
    pub tamper: Tamper,
}

/// How a reference treats IMA.
#[record]
#[derive(Copy)]
pub struct ImaPolicy {
    /// The allowlist ([`AllowedFiles`]) the measured files must be in.
    pub policy: u32,
    /// The digest that names this allowlist in the integrity hash (governance's choice, e.g.
    /// `logos_mia::integrity::allowlist_digest` of its files at approval).
    pub digest: Digest,
    /// Violations tolerated per report (files measured while open for writing).
    pub violations_max: u32,
}

/// Reference values of a machine's measured state, approved by governance. Its id, the
/// artifact hash a deployment names, is [`Reference::id`].
#[record]
pub struct Reference {
    /// The machine class it is for.
    pub class: ResourceClass,
    /// Golden values of the boot PCRs [`BOOT_PCRS`], in that order (SHA-256 bank): exactly
    /// 14 (on the heap, so that a call carrying a reference stays small).
    pub boot_pcrs: BoundedVec<Digest, 14>,
    /// IMA: required with this allowlist, or off (PCR 10 must stay zero).
    pub ima: Option<ImaPolicy>,
    /// The file snapshot the machine must report.
    pub files: Component,
    /// The LKRG state the machine must report.
    pub lkrg: Component,
    /// The eBPF state the machine must report.
    pub ebpf: Component,
}

impl Reference {
    /// The reference's id: SHA-256 of [`REFERENCE_DOMAIN`] and its canonical encoding.
    pub fn id(&self) -> Digest {
        let encoded = crate::codec::encode(self);
        Digest(hash(&[REFERENCE_DOMAIN, &encoded]).0)
    }
}

/// Where a machine stands.
#[record]
#[derive(Copy)]
pub enum MachineStatus {
    /// Registered; its challenger is drawn at its deadline.
    #[index(4)]
    AwaitingDraw,
    /// Waiting for `challenger`'s challenge.
    #[index(0)]
    AwaitingChallenge {
        /// The drawn provisioner.
        challenger: Address,
    },
    /// Waiting for the owner's answer to `challenger`'s challenge.
    #[index(1)]
    Challenged {
        /// Who posted it.
        challenger: Address,
        /// SHA-256 of the credential.
        credential_hash: Digest,
    },
    /// The AK is proven; reports are due.
    #[index(2)]
    Attesting,
    /// Excluded at `at` (see [`Exclusion`]); a new registration starts over, and its provider
    /// takes leases again only once governance admits it again (`dvci` status).
    #[index(3)]
    Excluded {
        /// The height.
        at: u64,
        /// Why.
        reason: Exclusion,
    },
}

/// Why a machine was excluded.
#[record]
#[derive(Copy)]
pub enum Exclusion {
    /// No accepted report before its deadline.
    #[index(0)]
    ReportMissing,
    /// The quoted PCRs are not the reference's (boot chain, kernel, command line) with PCR 10
    /// replayed from the staged IMA entries.
    #[index(1)]
    PcrMismatch,
    /// A staged IMA entry the quote covers measured a file outside the allowlist.
    #[index(2)]
    FileNotAllowed,
    /// More IMA violations than the reference tolerates.
    #[index(3)]
    ImaViolations,
    /// The staged list after a reboot does not start with the reference's boot aggregate.
    #[index(4)]
    BootAggregateMismatch,
    /// A reported component (files, LKRG, eBPF) is not the reference's.
    #[index(5)]
    ComponentMismatch,
    /// The tamper flag is tripped.
    #[index(6)]
    Tampered,
    /// Its owner deregistered the machine.
    #[index(7)]
    Deregistered,
    /// Its deadline could not be handled (a corrupted state): dropped, the machine set aside
    /// so that it can be removed.
    #[index(8)]
    DeadlineFailed,
    /// Governance revoked the endorsement root its EK was certified under.
    #[index(9)]
    EndorsementRevoked,
}

/// The IMA entries staged since the last accepted report, folded as they arrive.
#[record]
#[derive(Copy, Default)]
pub struct Staged {
    /// Whether the list starts from a reboot (PCR 10 from zero) rather than the last report.
    pub from_boot: bool,
    /// PCR 10 after the staged entries.
    pub pcr: Digest,
    /// Entries staged.
    pub entries: u32,
    /// Violations among them.
    pub violations: u32,
    /// The file digest of the first entry after a reboot, if it is the boot aggregate.
    pub boot_aggregate: Option<Digest>,
    /// The allowlists checked at staging, with whether every file passed (the current
    /// reference's and a pending deployment's).
    pub checked: [Option<(u32, bool)>; 2],
}

/// Where a [`Call::StageIma`] starts.
#[record]
#[derive(Copy)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// After the entries staged so far.
    #[index(0)]
    Continue,
    /// Over, from the PCR 10 of the last accepted report (dropping what was staged).
    #[index(1)]
    LastReport,
    /// Over, from zero: the machine rebooted; the first entry is the boot aggregate.
    #[index(2)]
    Boot,
}

/// A deployment of an approved reference to a machine, signed by a deployer.
#[record]
#[derive(Copy)]
pub struct Deployment {
    /// The approved reference.
    pub reference: Digest,
    /// Who deployed it.
    pub deployer: Address,
    /// The last height a report may adopt it.
    pub expires_at: u64,
}

/// A posted `TPM2_MakeCredential` challenge, kept until answered: what the machine's agent
/// reads to run `TPM2_ActivateCredential`.
#[record]
pub struct CredentialChallenge {
    /// The `TPM2B_ID_OBJECT` contents.
    pub credential_blob: BoundedVec<u8, CREDENTIAL_BLOB_MAX_BYTES>,
    /// The `TPM2B_ENCRYPTED_SECRET` contents.
    pub encrypted_secret: BoundedVec<u8, ENCRYPTED_SECRET_MAX_BYTES>,
}

/// The last accepted report.
#[record]
#[derive(Copy)]
pub struct LastReport {
    /// Its height.
    pub height: u64,
    /// The anchor height of its nonce.
    pub anchor: u64,
    /// The TPM's reset count.
    pub reset_count: u32,
    /// The TPM's restart count.
    pub restart_count: u32,
    /// The TPM's clock, ms.
    pub clock_ms: u64,
    /// PCR 10 after the entries it accepted.
    pub ima_pcr: Digest,
    /// The integrity hash it established.
    pub integrity_hash: Digest,
}

/// A registered machine: a provider's TPM.
#[record]
pub struct Machine {
    /// The endorsement key's id: SHA-256 of its RSA modulus (`logos_mia::credential`).
    pub ek_id: Digest,
    /// The endorsement key's `TPMT_PUBLIC` (what challengers encrypt to).
    pub ek_public: BoundedVec<u8, EK_PUBLIC_MAX_BYTES>,
    /// The attestation key's `TPMT_PUBLIC`.
    pub ak_public: BoundedVec<u8, AK_PUBLIC_MAX_BYTES>,
    /// Its current reference.
    pub reference: Digest,
    /// Where it stands.
    pub status: MachineStatus,
    /// The height by which the next step is due (challenge, answer or report).
    pub due: u64,
    /// The last accepted report.
    pub last: Option<LastReport>,
    /// IMA entries staged for the next report.
    pub staged: Option<Staged>,
    /// A deployment awaiting the report that adopts it.
    pub pending: Option<Deployment>,
    /// The posted challenge, while it waits for its answer.
    pub challenge: Option<CredentialChallenge>,
    /// Challenge rounds of this registration ended without an answer.
    pub rounds: u32,
    /// Who may not challenge it: the provider's owner and agent account at registration.
    pub excluded: BoundedVec<Address, 2>,
    /// The EK bound to this provider in [`Endorsements`] (by its last activation), if any.
    pub bound_ek: Option<Digest>,
    /// The challengers whose credential this registration answered, in order (each drawn
    /// once; [`Parameters::challenges_required`] of them admit the machine).
    pub answered: BoundedVec<Address, CHALLENGES_REQUIRED_MAX>,
    /// The endorsement root ([`EndorsementRoots`]) its EK's certificate chain reached, once
    /// checked (at the registration's first deadline).
    pub endorsed_by: Option<Digest>,
}

/// A provider's challenger draws, kept across its registrations.
#[record]
#[derive(Default)]
pub struct DrawHistory {
    /// Draws in the current window (a silent challenger's draw is given back).
    pub draws: u32,
    /// The height the current window started at.
    pub window_start: u64,
    /// Challengers that stayed silent, oldest first.
    pub silent: BoundedVec<Address, CHALLENGERS_MAX>,
}

/// The module's parameters.
#[record]
#[derive(Copy)]
pub struct Parameters {
    /// Blocks between a machine's reports at most.
    pub period_blocks: u64,
    /// How old a report's anchor may be, blocks.
    pub nonce_window_blocks: u64,
    /// Blocks a challenger has to post its challenge, and the owner to answer it.
    pub challenge_timeout_blocks: u64,
    /// Blocks a deployment may wait for the report that adopts it.
    pub deployment_timeout_blocks: u64,
    /// Distinct challengers, each drawn after the last one was answered, whose credentials a
    /// registration must answer (1 to [`CHALLENGES_REQUIRED_MAX`]): admitting a key outside
    /// the TPM takes all of them colluding.
    pub challenges_required: u32,
}

impl Default for Parameters {
    fn default() -> Self {
        Self {
            period_blocks: 600,
            nonce_window_blocks: 256,
            challenge_timeout_blocks: 600,
            deployment_timeout_blocks: 3_600,
            challenges_required: 3,
        }
    }
}

/// The [`Call::StageEndorsement`] calls that stage `chain` for `provider`, in order (the
/// first starts a new chain), each within a transaction.
pub fn staging_calls(provider: ProviderId, chain: &[u8]) -> Vec<Call> {
    chain
        .chunks(ENDORSEMENT_CHUNK_MAX_BYTES)
        .enumerate()
        .map(|(index, chunk)| Call::StageEndorsement {
            provider,
            start: index == 0,
            // A chunk is at most its bound by construction.
            chunk: BoundedVec::truncated(chunk.to_vec()),
        })
        .collect()
}

/// Calls of `attestation`.
#[calls]
pub enum Call {
    /// (owner or agent) Register `provider`'s machine: its TPM's endorsement key and an attestation key
    /// (`TPMT_PUBLIC` each), checked by the chain; a challenger is drawn.
    #[index(0)]
    RegisterMachine {
        /// The provider.
        provider: ProviderId,
        /// The EK's `TPMT_PUBLIC`.
        ek_public: BoundedVec<u8, EK_PUBLIC_MAX_BYTES>,
        /// The AK's `TPMT_PUBLIC`.
        ak_public: BoundedVec<u8, AK_PUBLIC_MAX_BYTES>,
    },
    /// (the drawn challenger) Post a `TPM2_MakeCredential` challenge and its credential's hash.
    #[index(1)]
    Challenge {
        /// The provider.
        provider: ProviderId,
        /// The `TPM2B_ID_OBJECT` contents.
        credential_blob: BoundedVec<u8, CREDENTIAL_BLOB_MAX_BYTES>,
        /// The `TPM2B_ENCRYPTED_SECRET` contents.
        encrypted_secret: BoundedVec<u8, ENCRYPTED_SECRET_MAX_BYTES>,
        /// SHA-256 of the credential.
        credential_hash: Digest,
    },
    /// (owner or agent) Answer the challenge with the credential `TPM2_ActivateCredential` returned.
    #[index(2)]
    ActivateCredential {
        /// The provider.
        provider: ProviderId,
        /// The credential.
        credential: BoundedVec<u8, CREDENTIAL_MAX_BYTES>,
    },
    /// (owner or agent) Stage IMA entries for the next report: each entry's template data
    /// (`d-ng`, `n-ng`, optional `sig`), empty for a violation, from `start`.
    #[index(3)]
    StageIma {
        /// The provider.
        provider: ProviderId,
        /// Where the entries start.
        start: Start,
        /// The entries' template data, in log order.
        entries: BoundedVec<BoundedVec<u8, IMA_ENTRY_MAX_BYTES>, IMA_ENTRIES_PER_CALL_MAX>,
    },
    /// (owner or agent) Report: a quote of PCRs 0–14 over the nonce bound to `anchor` and `reported`.
    #[index(4)]
    Attest {
        /// The provider.
        provider: ProviderId,
        /// The height whose [`Nonces`] entry the quote's nonce is built from.
        anchor: u64,
        /// The `TPMS_ATTEST`.
        attest: BoundedVec<u8, ATTEST_MAX_BYTES>,
        /// The AK's `TPMT_SIGNATURE` over it.
        signature: BoundedVec<u8, SIGNATURE_MAX_BYTES>,
        /// The components the machine reports.
        reported: Reported,
        /// The PCR 10 the quote covers (checked through the quote's PCR digest).
        ima_pcr: Digest,
    },
    /// (deployer) Deploy an approved reference to a machine: its next matching report adopts
    /// it.
    #[index(5)]
    Deploy {
        /// The provider.
        provider: ProviderId,
        /// The approved reference's id.
        reference: Digest,
    },
    /// (privileged) Approve a reference.
    #[index(6)]
    ApproveReference {
        /// The reference.
        reference: Reference,
    },
    /// (privileged) Set the reference new machines of a class start from.
    #[index(7)]
    SetClassReference {
        /// The class.
        class: ResourceClass,
        /// An approved reference of that class.
        reference: Digest,
    },
    /// (privileged) Allow (or disallow) file digests in an IMA allowlist.
    #[index(8)]
    AllowFiles {
        /// The allowlist.
        policy: u32,
        /// SHA-256 file digests.
        files: BoundedVec<Digest, FILES_PER_CALL_MAX>,
        /// Allow (true) or remove (false).
        allowed: bool,
    },
    /// (privileged) Authorize or remove a deployer.
    #[index(9)]
    SetDeployer {
        /// The account.
        deployer: Address,
        /// Authorized or not.
        authorized: bool,
    },
    /// (privileged) Set the parameters.
    #[index(10)]
    SetParams {
        /// The new parameters.
        params: Parameters,
    },
    /// (owner or agent; anyone once the provider is gone) Remove the machine: an attesting
    /// one's provider is excluded first. For a provider that is gone and has no machine, it
    /// drops the chain it staged.
    #[index(11)]
    DeregisterMachine {
        /// The provider.
        provider: ProviderId,
    },
    /// (privileged) Grant a provider [`DRAWS_MAX_PER_PROVIDER`] new challenger draws now.
    #[index(12)]
    ResetDraws {
        /// The provider.
        provider: ProviderId,
    },
    /// (owner or agent) Stage a piece of the EK's certificate chain for the next
    /// [`Call::RegisterMachine`]: concatenated DER certificates, the EK's first, each followed
    /// by its issuer's, up to the approved root's (`logos_mia::endorsement`).
    #[index(13)]
    StageEndorsement {
        /// The provider.
        provider: ProviderId,
        /// Start a new chain (true) or continue the staged one.
        start: bool,
        /// The next bytes of the chain.
        chunk: BoundedVec<u8, ENDORSEMENT_CHUNK_MAX_BYTES>,
    },
    /// (privileged) Approve (or revoke) an endorsement root: a TPM manufacturer's CA key, by
    /// the SHA-256 of its DER `SubjectPublicKeyInfo`
    /// (`logos_mia::endorsement::certificate_key_hash` of its certificate).
    #[index(14)]
    SetEndorsementRoot {
        /// The root key's hash.
        root: Digest,
        /// Approved (true) or revoked.
        approved: bool,
    },
}

/// Events of `attestation`.
#[events]
pub enum Event {
    /// A machine was registered; its challenger is drawn at `draw_at`.
    MachineRegistered {
        /// The provider.
        provider: ProviderId,
        /// The height of the draw.
        draw_at: u64,
    },
    /// A machine was removed (deregistered, its provider gone, or its registration never
    /// answered in [`CHALLENGE_ROUNDS_MAX`] rounds).
    MachineRemoved {
        /// The provider.
        provider: ProviderId,
    },
    /// A challenge was posted.
    Challenged {
        /// The provider.
        provider: ProviderId,
        /// The challenger.
        challenger: Address,
    },
    /// A challenger's credential was answered: the AK was proven to live on the EK's TPM to
    /// one more challenger (the machine attests once `answered` reaches
    /// [`Parameters::challenges_required`]; until then the next challenger is drawn).
    CredentialActivated {
        /// The provider.
        provider: ProviderId,
        /// Challengers answered so far for this registration.
        answered: u32,
    },
    /// No challenger could be drawn (none eligible, or the provider's draws are spent): the
    /// registration waits another timeout, and counts a round.
    NoChallengerDrawn {
        /// The provider.
        provider: ProviderId,
    },
    /// A challenger was drawn (after the registration, or when a round timed out).
    ChallengerDrawn {
        /// The provider.
        provider: ProviderId,
        /// The new challenger.
        challenger: Address,
    },
    /// IMA entries were staged.
    ImaStaged {
        /// The provider.
        provider: ProviderId,
        /// Entries staged so far.
        entries: u32,
    },
    /// A report verified.
    Attested {
        /// The provider.
        provider: ProviderId,
        /// Its integrity hash.
        integrity_hash: Digest,
        /// The next report's deadline.
        due: u64,
    },
    /// A report adopted a deployment: the machine's reference changed.
    ReferenceUpdated {
        /// The provider.
        provider: ProviderId,
        /// The new reference.
        reference: Digest,
    },
    /// The machine was excluded: its provider takes no environments and its leases closed.
    MachineExcluded {
        /// The provider.
        provider: ProviderId,
        /// Why.
        reason: Exclusion,
    },
    /// A deployment was signed.
    Deployed {
        /// The provider.
        provider: ProviderId,
        /// The reference.
        reference: Digest,
        /// The deployer.
        deployer: Address,
    },
    /// A reference was approved.
    ReferenceApproved {
        /// Its id.
        reference: Digest,
        /// Its class.
        class: ResourceClass,
    },
    /// A class's starting reference changed.
    ClassReferenceSet {
        /// The class.
        class: ResourceClass,
        /// The reference.
        reference: Digest,
    },
    /// An allowlist changed.
    FilesAllowed {
        /// The allowlist.
        policy: u32,
        /// How many digests.
        files: u32,
        /// Allowed or removed.
        allowed: bool,
    },
    /// A deployer was authorized or removed.
    DeployerSet {
        /// The account.
        deployer: Address,
        /// Authorized.
        authorized: bool,
    },
    /// The parameters changed.
    ParamsSet {
        /// The new parameters.
        params: Parameters,
    },
    /// A provider was granted new challenger draws.
    DrawsReset {
        /// The provider.
        provider: ProviderId,
    },
    /// A deadline could not be handled (a corrupted state): it was dropped so that the others
    /// go on.
    DeadlineDropped {
        /// The provider.
        provider: ProviderId,
    },
    /// A registration's staged chain did not certify its EK up to an approved root: the
    /// registration was removed (its staged chain too).
    EndorsementRefused {
        /// The provider.
        provider: ProviderId,
        /// Why.
        reason: crate::codec::BoundedString<128>,
    },
    /// The staged chain of a provider that left was dropped.
    StagedEndorsementDropped {
        /// The provider.
        provider: ProviderId,
    },
    /// A piece of an EK certificate chain was staged.
    EndorsementStaged {
        /// The provider.
        provider: ProviderId,
        /// Bytes staged so far.
        bytes: u32,
    },
    /// An endorsement root was approved or revoked.
    EndorsementRootSet {
        /// The root key's hash.
        root: Digest,
        /// Approved (true) or revoked.
        approved: bool,
    },
}

/// Errors of `attestation`.
#[errors]
pub enum Error {
    /// No such provider.
    #[index(0)]
    #[error("unknown provider {0}")]
    UnknownProvider(ProviderId),
    /// Only the provider's owner (or its agent's account) may make this call.
    #[index(1)]
    #[error("not the provider's owner or agent")]
    NotOwner,
    /// The provider has a machine in good standing already.
    #[index(2)]
    #[error("provider {0} has a machine registered")]
    AlreadyRegistered(ProviderId),
    /// No machine registered for the provider.
    #[index(3)]
    #[error("provider {0} has no machine registered")]
    UnknownMachine(ProviderId),
    /// The keys are not an EK and a restricted, fixedTPM signing AK with SHA-256 names.
    #[index(4)]
    #[error("invalid TPM key: {0}")]
    InvalidKey(crate::codec::BoundedString<128>),
    /// No reference is set for the provider's class.
    #[index(5)]
    #[error("no reference for the provider's class")]
    NoReference,
    /// No staked provisioner can challenge the machine.
    #[index(6)]
    #[error("no provisioner can challenge the machine")]
    NoChallenger,
    /// The machine is not at the step this call is for.
    #[index(7)]
    #[error("the machine is not at this step")]
    WrongStep,
    /// Only the drawn challenger may challenge.
    #[index(8)]
    #[error("not the drawn challenger")]
    NotChallenger,
    /// The credential does not hash to the challenge's.
    #[index(9)]
    #[error("the credential does not match the challenge")]
    CredentialMismatch,
    /// The credential's size is outside 16–32 bytes.
    #[index(10)]
    #[error("a credential is 16 to 32 bytes")]
    CredentialSize,
    /// The anchor is not a recent block's nonce (too old, not yet, or not newer than the last
    /// report's).
    #[index(11)]
    #[error("anchor {0} is not a usable recent height")]
    StaleAnchor(u64),
    /// The quote is not the machine's word (unparsable, bad signature, not a quote, wrong
    /// nonce, replayed clock, wrong bank or PCR selection).
    #[index(12)]
    #[error("quote refused: {0}")]
    QuoteRefused(crate::codec::BoundedString<128>),
    /// A staged IMA entry is malformed.
    #[index(13)]
    #[error("IMA entry {0} is malformed")]
    MalformedImaEntry(u32),
    /// The staged list does not continue (staging on a reference without IMA, or continuing
    /// before any report).
    #[index(14)]
    #[error("IMA entries cannot be staged now")]
    ImaNotExpected,
    /// The reference is not approved.
    #[index(15)]
    #[error("reference {0} is not approved")]
    UnknownReference(Digest),
    /// The reference is for another class.
    #[index(16)]
    #[error("the reference is for another class")]
    WrongClass,
    /// The sender is not an authorized deployer.
    #[index(17)]
    #[error("not an authorized deployer")]
    NotDeployer,
    /// A parameter is out of range.
    #[index(18)]
    #[error("invalid parameters: {0}")]
    InvalidParams(&'static str),
    /// [`MACHINES_MAX`] machines are registered, or no deadline slot is free.
    #[index(19)]
    #[error("too many machines")]
    TooManyMachines,
    /// Too many entries staged (the period's list exceeds `u32`).
    #[index(20)]
    #[error("too many IMA entries staged")]
    TooManyEntries,
    /// The endorsement key backs another provider's machine.
    #[index(21)]
    #[error("the endorsement key backs provider {0}'s machine")]
    EndorsementInUse(ProviderId),
    /// A reference must fix all 14 boot PCRs.
    #[index(22)]
    #[error("a reference fixes exactly the 14 boot PCRs")]
    InvalidReference,
    /// The entries were staged from a boot, but the quote shows no reboot since the last report.
    #[index(23)]
    #[error("IMA entries staged from a boot, but the TPM was not reset or restarted")]
    RebootNotQuoted,
    /// The staged entries do not replay to the quoted PCR 10: stage the rest (or start over)
    /// and report again before the deadline.
    #[index(24)]
    #[error("the staged IMA entries do not reach the quoted PCR 10")]
    ImaIncomplete,
    /// The staged entries were not checked against this reference's allowlist (a deployment
    /// came after staging began): stage them again.
    #[index(25)]
    #[error("the staged IMA entries were not checked against the deployed allowlist")]
    ImaNotChecked,
    /// A challenge is not the shape `TPM2_MakeCredential` gives for an RSA-2048 EK.
    #[index(26)]
    #[error("malformed challenge")]
    InvalidChallenge,
    /// The step's deadline has passed.
    #[index(27)]
    #[error("the deadline at {0} has passed")]
    DeadlinePassed(u64),
    /// No certificate chain is staged for the registration.
    #[index(28)]
    #[error("endorsement refused: {0}")]
    EndorsementRefused(crate::codec::BoundedString<128>),
    /// The staged chain would exceed [`ENDORSEMENT_CHAIN_MAX_BYTES`], or continues nothing.
    #[index(29)]
    #[error(
        "a staged chain starts with `start` and is at most {ENDORSEMENT_CHAIN_MAX_BYTES} bytes"
    )]
    EndorsementStaging,
    /// The endorsement root the machine's EK was certified under is revoked.
    #[index(30)]
    #[error("the machine's endorsement root is revoked")]
    EndorsementRevoked,
}

storage! {
    module = INDEX;
    /// Registered machines by provider.
    pub Machines: map(0) ProviderId => Machine;
    /// Approved references by id.
    pub References: map(1) Digest => Reference;
    /// The reference each class's new machines start from.
    pub ClassReferences: map(2) ResourceClass => Digest;
    /// IMA allowlists: (policy, file digest), present while allowed: the height it was
    /// allowed at.
    pub AllowedFiles: map(3) (u32, Digest) => u64;
    /// Authorized deployers: the height each was authorized at.
    pub Deployers: map(4) Address => u64;
    /// Each recent block's randomness by height (the last [`NONCE_WINDOW_MAX_BLOCKS`] + 1).
    pub Nonces: map(5) u64 => Digest;
    /// Machines whose deadline is a height, at most [`DUE_PER_HEIGHT_MAX`].
    pub DueAt: map(6) u64 => BoundedVec<ProviderId, DUE_PER_HEIGHT_MAX>;
    /// The parameters.
    pub Params: value(7) Parameters = Parameters::default();
    /// How many machines are registered (excluded ones included, until re-registered).
    pub MachineCount: value(8) u64;
    /// Which provider's activated machine each endorsement key (by RSA modulus) belongs to:
    /// one TPM cannot back two providers.
    pub Endorsements: map(9) Digest => ProviderId;
    /// The lowest height whose deadlines are not all handled (deadlines are handled in height
    /// order, at most [`DUE_HANDLED_PER_BLOCK_MAX`] per block).
    pub DueCursor: value(10) u64;
    /// Each provider's challenger draws, across its registrations.
    pub Draws: map(11) ProviderId => DrawHistory;
    /// Approved endorsement roots (TPM manufacturers' CA keys): the height each was approved
    /// at.
    pub EndorsementRoots: map(12) Digest => u64;
    /// The EK certificate chain each provider staged for its next registration (consumed by
    /// the registration's check; one of a provider that left is dropped by anyone, through
    /// [`Call::DeregisterMachine`]).
    pub StagedEndorsements: map(13) ProviderId => BoundedVec<u8, ENDORSEMENT_CHAIN_MAX_BYTES>;
}
