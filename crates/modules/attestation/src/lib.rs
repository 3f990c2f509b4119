//! `attestation` (module index 9): Machine Integrity Attestation verified in the state
//! transition. The protocol (registration, credential, reports, zero tolerance, verified
//! reference updates, deregistration) and what it does not prove yet are stated in
//! [`logos_types::attestation`], which declares the types, calls and storage; the evidence is
//! checked with `logos-mia` (pure Rust, bounded).
//!
//! Owns [`Machines`], [`References`], [`ClassReferences`], [`AllowedFiles`], [`Deployers`],
//! [`Nonces`], `DueAt`, `DueCursor`, [`Params`], [`MachineCount`], [`Endorsements`],
//! [`Draws`], [`EndorsementRoots`] and [`StagedEndorsements`].
//! Uses `dvci` (whether a provider is attested, its exclusion), `market` (closing an excluded
//! provider's leases) and `provisioning` (the staked provisioners a challenger is drawn from).
//!
//! # A registration
//! The call only checks the keys and that a chain is staged. At the registration's first
//! deadline (in the end-of-block hook, within its per-block budget) the staged chain is parsed
//! (bounded), the first certificate past the EK's whose key is an approved root is its anchor,
//! and `logos_mia::endorsement` checks every link below it; the staged chain is consumed, and a
//! refused one removes the registration. A revoked root refuses a challenge and its answer,
//! removes a pending registration at its next deadline, and excludes an attesting machine at
//! its next report.
//!
//! # A report
//! The quote is judged against the machine's reference, then against a pending deployment's
//! ([`report`] states the order of checks). A candidate that accepts it wins; otherwise a
//! refusal (not the machine's word, or incomplete staging) fails the call and changes nothing;
//! otherwise the first candidate's reason excludes the machine.
//!
//! # End of block
//! Records the block's randomness in [`Nonces`] (the last [`NONCE_WINDOW_MAX_BLOCKS`] + 1
//! heights), then handles the deadlines due ([`deadlines`]): a registration gets its
//! challenger drawn; a silent challenger, or an unanswered challenge, ends a round (a new
//! challenger, or after `CHALLENGE_ROUNDS_MAX` (3) rounds the registration is removed); an
//! attesting machine without a report is excluded (`ReportMissing`); a machine whose provider
//! left is removed.
//!
//! # Invariant ([`Attestation::try_state`])
//! [`MachineCount`] counts [`Machines`]; every machine's AK is an attestation key, its
//! reference (and a pending deployment's) approved, a posted challenge present exactly while
//! it is `Challenged`, its answered challengers distinct and none its owner or agent (at least
//! one once it attests, none before its chain was checked), an attesting machine's own EK
//! bound to it; [`Endorsements`] holds exactly the machines' bound EKs, each for its own
//! provider; every machine not excluded is listed exactly once in `DueAt`, at its `due` height, no list is below `DueCursor` and nothing
//! else is listed; every provider `dvci` lists as attested has an attesting machine with an
//! accepted report; [`Nonces`] holds at most [`NONCE_WINDOW_MAX_BLOCKS`] + 1 heights.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

mod deadlines;
mod invariants;
pub mod report;
#[cfg(test)]
mod tests;

use logos_dvci::Dvci;
use logos_framework::{
    events, Context, DispatchResult, MapExt, Module, State, StateReader, TryStateResult, ValueExt,
};
use logos_market::{EnvironmentLifecycle, Market};
use logos_mia::{
    evidence::quote_nonce,
    ima::{self, BOOT_AGGREGATE, VIOLATION_EXTEND},
    pcr,
    quote::{AkPublic, Quote},
};
use logos_primitives::Address;
use logos_types::{
    attestation::{
        report_nonce, AllowedFiles, CallHandler, ClassReferences, Deployers, Deployment, Digest,
        Draws, EndorsementRoots, Endorsements, Error, Event, Exclusion, Machine, MachineCount,
        MachineStatus, Machines, Nonces, Parameters, Params, Reference, References, Reported,
        Staged, StagedEndorsements, Start, AK_PUBLIC_MAX_BYTES, ATTEST_MAX_BYTES, BOOT_PCRS,
        CHALLENGES_REQUIRED_MAX, CREDENTIAL_BLOB_MAX_BYTES, CREDENTIAL_MAX_BYTES,
        CREDENTIAL_MIN_BYTES, DRAW_DELAY_BLOCKS, EK_PUBLIC_MAX_BYTES, ENCRYPTED_SECRET_MAX_BYTES,
        ENDORSEMENT_CHAIN_MAX_BYTES, ENDORSEMENT_CHUNK_MAX_BYTES, FILES_PER_CALL_MAX,
        IMA_ENTRIES_PER_CALL_MAX, IMA_ENTRY_MAX_BYTES, MACHINES_MAX, NONCE_WINDOW_MAX_BLOCKS,
        PERIOD_MIN_BLOCKS, SIGNATURE_MAX_BYTES,
    },
    codec::BoundedVec,
    corruption,
    dvci::{Provider, ProviderId, Providers, ResourceClass},
    DispatchError,
};
use report::{text, Verdict};
use std::marker::PhantomData;

/// The longest any timeout parameter may be, blocks.
const TIMEOUT_MAX_BLOCKS: u64 = 1_000_000;
/// The encrypted seed of a challenge to an RSA-2048 EK, bytes.
const ENCRYPTED_SEED_BYTES: usize = 256;
/// The smallest `TPM2B_ID_OBJECT` contents: an HMAC (2 + 32) and a 16-byte credential (2 + 16).
const CREDENTIAL_BLOB_MIN_BYTES: usize = 52;

/// The `attestation` module; excluded providers' leases close through `Market<L>`.
pub struct Attestation<L>(PhantomData<L>);

impl<L: EnvironmentLifecycle> Attestation<L> {
    /// Provider `id`, if the sender may act for its machine: its owner, or the account of its
    /// agent key (the gatekeeper on the machine, which holds the TPM).
    async fn owned<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        id: ProviderId,
    ) -> Result<Provider, DispatchError> {
        let sender = ctx.sender()?;
        let provider = Providers::get(ctx.overlay, &id)
            .await?
            .ok_or(Error::UnknownProvider(id))?;
        if provider.owner != sender && provider.agent_account() != Some(sender) {
            return Err(Error::NotOwner.into());
        }
        Ok(provider)
    }

    async fn machine<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        id: ProviderId,
    ) -> Result<Machine, DispatchError> {
        Ok(Machines::get(ctx.overlay, &id)
            .await?
            .ok_or(Error::UnknownMachine(id))?)
    }

    /// Excludes `provider`'s machine for `reason`: off the deadline list, `dvci` status
    /// `Excluded`, its open leases closed and refunded.
    async fn exclude<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        mut machine: Machine,
        reason: Exclusion,
    ) -> DispatchResult {
        Self::unschedule(ctx, provider, machine.due).await?;
        machine.status = MachineStatus::Excluded {
            at: ctx.height(),
            reason,
        };
        machine.staged = None;
        machine.pending = None;
        machine.challenge = None;
        Machines::insert(ctx.overlay, &provider, &machine)?;
        let mut emitted = events([Event::MachineExcluded { provider, reason }]);
        if Providers::contains(ctx.overlay, &provider).await? {
            emitted.extend(Dvci::exclude(ctx.overlay, provider).await?);
            emitted.extend(Market::<L>::close_provider_leases(ctx, provider).await?);
        }
        Ok(emitted)
    }

    /// Refuses a step after the machine's deadline (its handling may wait for a backlog).
    fn before_deadline<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        machine: &Machine,
    ) -> Result<(), Error> {
        match ctx.height() > machine.due {
            true => Err(Error::DeadlinePassed(machine.due)),
            false => Ok(()),
        }
    }

    /// The pending deployment of `machine`, unless it expired.
    fn pending(machine: &Machine, height: u64) -> Option<Deployment> {
        machine.pending.filter(|d| d.expires_at >= height)
    }

    /// The IMA policies a staging is checked against: the current reference's and a pending
    /// deployment's.
    async fn staging_policies<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        machine: &Machine,
    ) -> Result<[Option<(u32, bool)>; 2], DispatchError> {
        let mut checked = [None, None];
        let pending = Self::pending(machine, ctx.height()).map(|d| d.reference);
        for (slot, id) in checked.iter_mut().zip([Some(machine.reference), pending]) {
            let Some(id) = id else { continue };
            let reference = References::require(ctx.overlay, &id).await?;
            *slot = reference.ima.map(|policy| (policy.policy, true));
        }
        Ok(checked)
    }

    /// Folds one staged entry (its template data; empty for a violation) into `staged`.
    async fn fold_entry<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        staged: &mut Staged,
        number: u32,
        data: &[u8],
    ) -> Result<(), DispatchError> {
        let first = staged.entries == 0;
        staged.entries = staged.entries.checked_add(1).ok_or(Error::TooManyEntries)?;
        if data.is_empty() {
            staged.violations = staged.violations.saturating_add(1);
            staged.pcr = report::extend(&staged.pcr, &VIOLATION_EXTEND);
            return Ok(());
        }
        let measurement = ima::measurement_of(number as usize, data)
            .map_err(|_| Error::MalformedImaEntry(number))?;
        let digest: [u8; 32] = match (measurement.algorithm.as_str(), measurement.digest) {
            ("sha256", digest) => digest
                .try_into()
                .map_err(|_| Error::MalformedImaEntry(number))?,
            _ => return Err(Error::MalformedImaEntry(number).into()),
        };
        if first && staged.from_boot && measurement.path == BOOT_AGGREGATE {
            staged.boot_aggregate = Some(Digest(digest));
        } else {
            for (policy, passed) in staged.checked.iter_mut().flatten() {
                let key = (*policy, Digest(digest));
                *passed = *passed && AllowedFiles::contains(ctx.overlay, &key).await?;
            }
        }
        staged.pcr = report::extend(&staged.pcr, &pcr::sha256(data));
        Ok(())
    }

    /// Accepts a report: the machine's last report, reference and deadline move on, and
    /// `dvci` lists the provider as attested until its next deadline.
    async fn accept<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        mut machine: Machine,
        adopted: Option<Digest>,
        last: logos_types::attestation::LastReport,
    ) -> DispatchResult {
        let params = Params::get(ctx.overlay).await?;
        let mut emitted = Vec::new();
        if let Some(reference) = adopted {
            machine.reference = reference;
            machine.pending = None;
            emitted.extend(events([Event::ReferenceUpdated {
                provider,
                reference,
            }]));
        }
        machine.last = Some(last);
        machine.staged = None;
        let next = ctx.height().saturating_add(params.period_blocks);
        Self::reschedule(ctx, provider, &mut machine, next).await?;
        Machines::insert(ctx.overlay, &provider, &machine)?;
        Dvci::set_attested(ctx.overlay, provider, Some(machine.due)).await?;
        emitted.extend(events([Event::Attested {
            provider,
            integrity_hash: last.integrity_hash,
            due: machine.due,
        }]));
        Ok(emitted)
    }

    /// Checks a report's anchor and returns its nonce.
    async fn anchor_nonce<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        machine: &Machine,
        anchor: u64,
        window: u64,
    ) -> Result<Digest, DispatchError> {
        let height = ctx.height();
        let fresh = anchor < height && height.saturating_sub(anchor) <= window;
        let newer = machine.last.is_none_or(|last| anchor > last.anchor);
        if !fresh || !newer {
            return Err(Error::StaleAnchor(anchor).into());
        }
        Ok(Nonces::get(ctx.overlay, &anchor)
            .await?
            .ok_or(Error::StaleAnchor(anchor))?)
    }

    /// The endorsement root `provider`'s staged chain certifies `ek_public` under, or why
    /// not (see the module docs); the outer error is the state's.
    pub(crate) async fn check_endorsement<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        provider: ProviderId,
        ek_public: &[u8],
    ) -> Result<Result<Digest, logos_mia::endorsement::EndorsementError>, DispatchError> {
        use logos_mia::endorsement::{Chain, EndorsementError};
        let Some(staged) = StagedEndorsements::get(ctx.overlay, &provider).await? else {
            return Ok(Err(EndorsementError::Empty));
        };
        let chain = match Chain::parse(&staged) {
            Ok(chain) => chain,
            Err(error) => return Ok(Err(error)),
        };
        let hashes = match chain.key_hashes() {
            Ok(hashes) => hashes,
            Err(error) => return Ok(Err(error)),
        };
        let mut approved = Vec::with_capacity(hashes.len());
        for hash in hashes {
            if EndorsementRoots::contains(ctx.overlay, &Digest(hash)).await? {
                approved.push(hash);
            }
        }
        Ok(chain
            .endorse(ek_public, |hash| approved.contains(hash))
            .map(Digest))
    }

    /// Whether `machine`'s endorsement root is checked and still approved.
    pub(crate) async fn root_approved<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        machine: &Machine,
    ) -> Result<bool, DispatchError> {
        match machine.endorsed_by {
            Some(root) => Ok(EndorsementRoots::contains(ctx.overlay, &root).await?),
            None => Ok(false),
        }
    }

    /// The candidate references of a report: the machine's, then a pending deployment's.
    async fn candidates<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        machine: &Machine,
    ) -> Result<Vec<(Digest, Reference, bool)>, DispatchError> {
        let mut candidates = vec![(machine.reference, false)];
        if let Some(deployment) = Self::pending(machine, ctx.height()) {
            candidates.push((deployment.reference, true));
        }
        let mut loaded = Vec::with_capacity(candidates.len());
        for (id, adopted) in candidates {
            loaded.push((id, References::require(ctx.overlay, &id).await?, adopted));
        }
        Ok(loaded)
    }
}

impl<R: StateReader, L: EnvironmentLifecycle> CallHandler<Context<'_, '_, R>> for Attestation<L> {
    async fn register_machine(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        ek_public: &BoundedVec<u8, EK_PUBLIC_MAX_BYTES>,
        ak_public: &BoundedVec<u8, AK_PUBLIC_MAX_BYTES>,
    ) -> DispatchResult {
        let record = Self::owned(ctx, *provider).await?;
        let existing = Machines::get(ctx.overlay, provider).await?;
        if let Some(machine) = &existing {
            if !matches!(machine.status, MachineStatus::Excluded { .. }) {
                return Err(Error::AlreadyRegistered(*provider).into());
            }
        }
        let count = MachineCount::get(ctx.overlay).await?;
        if existing.is_none() && count >= MACHINES_MAX {
            return Err(Error::TooManyMachines.into());
        }
        AkPublic::from_tpmt_public(ak_public).map_err(|error| Error::InvalidKey(text(error)))?;
        let ek_id = logos_mia::credential::endorsement_key_id(ek_public)
            .map(Digest)
            .map_err(|error| Error::InvalidKey(text(error)))?;
        if let Some(holder) = Endorsements::get(ctx.overlay, &ek_id).await? {
            if holder != *provider {
                return Err(Error::EndorsementInUse(holder).into());
            }
        }
        let reference = ClassReferences::get(ctx.overlay, &record.class)
            .await?
            .ok_or(Error::NoReference)?;
        // The chain itself is checked at the first deadline, within a bounded budget.
        if !StagedEndorsements::contains(ctx.overlay, provider).await? {
            return Err(Error::EndorsementRefused(text("no certificate chain staged")).into());
        }
        let excluded = [Some(record.owner), record.agent_account()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| corruption("more than two excluded challengers"))?;
        let draw_at = ctx.height().saturating_add(DRAW_DELAY_BLOCKS);
        let due = Self::schedule(ctx, *provider, draw_at).await?;
        let machine = Machine {
            ek_id,
            ek_public: ek_public.clone(),
            ak_public: ak_public.clone(),
            reference,
            status: MachineStatus::AwaitingDraw,
            due,
            last: None,
            staged: None,
            pending: None,
            challenge: None,
            rounds: 0,
            excluded,
            // The TPM bound by an earlier activation stays bound until another is activated.
            bound_ek: existing.and_then(|old| old.bound_ek),
            answered: BoundedVec::default(),
            endorsed_by: None,
        };
        let was_counted = Machines::contains(ctx.overlay, provider).await?;
        Machines::insert(ctx.overlay, provider, &machine)?;
        if !was_counted {
            MachineCount::put(ctx.overlay, &count.saturating_add(1))?;
        }
        Dvci::set_attested(ctx.overlay, *provider, None).await?;
        Ok(events([Event::MachineRegistered {
            provider: *provider,
            draw_at: due,
        }]))
    }

    async fn challenge(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        credential_blob: &BoundedVec<u8, CREDENTIAL_BLOB_MAX_BYTES>,
        encrypted_secret: &BoundedVec<u8, ENCRYPTED_SECRET_MAX_BYTES>,
        credential_hash: &Digest,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        let mut machine = Self::machine(ctx, *provider).await?;
        let MachineStatus::AwaitingChallenge { challenger } = machine.status else {
            return Err(Error::WrongStep.into());
        };
        Self::before_deadline(ctx, &machine)?;
        if sender != challenger {
            return Err(Error::NotChallenger.into());
        }
        if credential_blob.len() < CREDENTIAL_BLOB_MIN_BYTES
            || encrypted_secret.len() != ENCRYPTED_SEED_BYTES
        {
            return Err(Error::InvalidChallenge.into());
        }
        if !Self::root_approved(ctx, &machine).await? {
            return Err(Error::EndorsementRevoked.into());
        }
        let params = Params::get(ctx.overlay).await?;
        machine.status = MachineStatus::Challenged {
            challenger,
            credential_hash: *credential_hash,
        };
        machine.challenge = Some(logos_types::attestation::CredentialChallenge {
            credential_blob: credential_blob.clone(),
            encrypted_secret: encrypted_secret.clone(),
        });
        let next = ctx.height().saturating_add(params.challenge_timeout_blocks);
        Self::reschedule(ctx, *provider, &mut machine, next).await?;
        Machines::insert(ctx.overlay, provider, &machine)?;
        Ok(events([Event::Challenged {
            provider: *provider,
            challenger,
        }]))
    }

    async fn activate_credential(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        credential: &BoundedVec<u8, CREDENTIAL_MAX_BYTES>,
    ) -> DispatchResult {
        Self::owned(ctx, *provider).await?;
        let mut machine = Self::machine(ctx, *provider).await?;
        let MachineStatus::Challenged {
            credential_hash,
            challenger,
        } = machine.status
        else {
            return Err(Error::WrongStep.into());
        };
        if credential.len() < CREDENTIAL_MIN_BYTES {
            return Err(Error::CredentialSize.into());
        }
        Self::before_deadline(ctx, &machine)?;
        if Digest(pcr::sha256(credential)) != credential_hash {
            return Err(Error::CredentialMismatch.into());
        }
        if !Self::root_approved(ctx, &machine).await? {
            return Err(Error::EndorsementRevoked.into());
        }
        // The EK must be free at every answer, not only the last: no challenger works for a
        // registration that cannot finish.
        if let Some(holder) = Endorsements::get(ctx.overlay, &machine.ek_id).await? {
            if holder != *provider {
                return Err(Error::EndorsementInUse(holder).into());
            }
        }
        machine
            .answered
            .try_push(challenger)
            .map_err(|_| corruption("more challengers answered than required"))?;
        machine.challenge = None;
        Self::give_draw_back(ctx, *provider).await?;
        let params = Params::get(ctx.overlay).await?;
        let answered = u32::try_from(machine.answered.len()).unwrap_or(u32::MAX);
        if answered < params.challenges_required {
            // The next challenger comes from a later block's randomness.
            machine.status = MachineStatus::AwaitingDraw;
            let draw_at = ctx.height().saturating_add(DRAW_DELAY_BLOCKS);
            Self::reschedule(ctx, *provider, &mut machine, draw_at).await?;
            Machines::insert(ctx.overlay, provider, &machine)?;
            return Ok(events([Event::CredentialActivated {
                provider: *provider,
                answered,
            }]));
        }
        // The EK is bound only now: a registration that never answers holds no TPM.
        if let Some(old) = machine.bound_ek.filter(|old| *old != machine.ek_id) {
            Endorsements::remove(ctx.overlay, &old)?;
        }
        Endorsements::insert(ctx.overlay, &machine.ek_id, provider)?;
        machine.bound_ek = Some(machine.ek_id);
        machine.status = MachineStatus::Attesting;
        let next = ctx.height().saturating_add(params.period_blocks);
        Self::reschedule(ctx, *provider, &mut machine, next).await?;
        Machines::insert(ctx.overlay, provider, &machine)?;
        Ok(events([Event::CredentialActivated {
            provider: *provider,
            answered,
        }]))
    }

    async fn stage_ima(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        start: &Start,
        entries: &BoundedVec<BoundedVec<u8, IMA_ENTRY_MAX_BYTES>, IMA_ENTRIES_PER_CALL_MAX>,
    ) -> DispatchResult {
        Self::owned(ctx, *provider).await?;
        let mut machine = Self::machine(ctx, *provider).await?;
        if machine.status != MachineStatus::Attesting {
            return Err(Error::WrongStep.into());
        }
        let checked = Self::staging_policies(ctx, &machine).await?;
        if checked.iter().all(Option::is_none) {
            return Err(Error::ImaNotExpected.into());
        }
        let mut staged = match (start, machine.staged, &machine.last) {
            (Start::Boot, _, _) => Staged {
                from_boot: true,
                checked,
                ..Staged::default()
            },
            (Start::Continue, Some(staged), _) => staged,
            (Start::LastReport, _, Some(last)) => Staged {
                pcr: last.ima_pcr,
                checked,
                ..Staged::default()
            },
            _ => return Err(Error::ImaNotExpected.into()),
        };
        for data in entries {
            let number = staged.entries.saturating_add(1);
            Self::fold_entry(ctx, &mut staged, number, data).await?;
        }
        machine.staged = Some(staged);
        Machines::insert(ctx.overlay, provider, &machine)?;
        Ok(events([Event::ImaStaged {
            provider: *provider,
            entries: staged.entries,
        }]))
    }

    async fn attest(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        anchor: &u64,
        attest: &BoundedVec<u8, ATTEST_MAX_BYTES>,
        signature: &BoundedVec<u8, SIGNATURE_MAX_BYTES>,
        reported: &Reported,
        ima_pcr: &Digest,
    ) -> DispatchResult {
        Self::owned(ctx, *provider).await?;
        let machine = Self::machine(ctx, *provider).await?;
        if machine.status != MachineStatus::Attesting {
            return Err(Error::WrongStep.into());
        }
        Self::before_deadline(ctx, &machine)?;
        if !Self::root_approved(ctx, &machine).await? {
            let reason = Exclusion::EndorsementRevoked;
            return Self::exclude(ctx, *provider, machine, reason).await;
        }
        let params = Params::get(ctx.overlay).await?;
        let anchor_nonce =
            Self::anchor_nonce(ctx, &machine, *anchor, params.nonce_window_blocks).await?;
        let ak = AkPublic::from_tpmt_public(&machine.ak_public)
            .map_err(|_| corruption("a registered AK does not parse"))?;
        let chain_nonce = report_nonce(&anchor_nonce, *provider);
        let nonce = quote_nonce(&chain_nonce.0, &report::bound_components(reported));
        let report = report::Report {
            height: ctx.height(),
            anchor: *anchor,
            quote: Quote { attest, signature },
            nonce: &nonce,
            reported,
            ima_pcr: *ima_pcr,
        };
        let mut refusal = None;
        let mut exclusion = None;
        for (id, reference, adopted) in Self::candidates(ctx, &machine).await? {
            match report::judge(&ak, &machine, &reference, &report) {
                Verdict::Accept(last) => {
                    let adopted = adopted.then_some(id);
                    return Self::accept(ctx, *provider, machine, adopted, last).await;
                }
                Verdict::Refuse(error) => {
                    refusal.get_or_insert(error);
                }
                Verdict::Exclude(reason) => {
                    exclusion.get_or_insert(reason);
                }
            }
        }
        if let Some(error) = refusal {
            return Err(error.into());
        }
        let reason = exclusion.ok_or_else(|| corruption("no reference judged the report"))?;
        Self::exclude(ctx, *provider, machine, reason).await
    }

    async fn deploy(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        reference: &Digest,
    ) -> DispatchResult {
        let sender = ctx.sender()?;
        if !Deployers::contains(ctx.overlay, &sender).await? {
            return Err(Error::NotDeployer.into());
        }
        let approved = References::get(ctx.overlay, reference)
            .await?
            .ok_or(Error::UnknownReference(*reference))?;
        let class = Providers::get(ctx.overlay, provider)
            .await?
            .ok_or(Error::UnknownProvider(*provider))?
            .class;
        if approved.class != class {
            return Err(Error::WrongClass.into());
        }
        let mut machine = Self::machine(ctx, *provider).await?;
        if machine.status != MachineStatus::Attesting {
            return Err(Error::WrongStep.into());
        }
        let params = Params::get(ctx.overlay).await?;
        machine.pending = Some(Deployment {
            reference: *reference,
            deployer: sender,
            expires_at: ctx
                .height()
                .saturating_add(params.deployment_timeout_blocks),
        });
        Machines::insert(ctx.overlay, provider, &machine)?;
        Ok(events([Event::Deployed {
            provider: *provider,
            reference: *reference,
            deployer: sender,
        }]))
    }

    async fn approve_reference(
        ctx: &mut Context<'_, '_, R>,
        reference: &Reference,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        if reference.boot_pcrs.len() != BOOT_PCRS.len() {
            return Err(Error::InvalidReference.into());
        }
        let id = reference.id();
        References::insert(ctx.overlay, &id, reference)?;
        Ok(events([Event::ReferenceApproved {
            reference: id,
            class: reference.class,
        }]))
    }

    async fn set_class_reference(
        ctx: &mut Context<'_, '_, R>,
        class: &ResourceClass,
        reference: &Digest,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        let approved = References::get(ctx.overlay, reference)
            .await?
            .ok_or(Error::UnknownReference(*reference))?;
        if approved.class != *class {
            return Err(Error::WrongClass.into());
        }
        ClassReferences::insert(ctx.overlay, class, reference)?;
        Ok(events([Event::ClassReferenceSet {
            class: *class,
            reference: *reference,
        }]))
    }

    async fn allow_files(
        ctx: &mut Context<'_, '_, R>,
        policy: &u32,
        files: &BoundedVec<Digest, FILES_PER_CALL_MAX>,
        allowed: &bool,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        for file in files {
            match allowed {
                true => AllowedFiles::insert(ctx.overlay, &(*policy, *file), &ctx.height())?,
                false => AllowedFiles::remove(ctx.overlay, &(*policy, *file))?,
            }
        }
        Ok(events([Event::FilesAllowed {
            policy: *policy,
            files: u32::try_from(files.len()).unwrap_or(u32::MAX),
            allowed: *allowed,
        }]))
    }

    async fn set_deployer(
        ctx: &mut Context<'_, '_, R>,
        deployer: &Address,
        authorized: &bool,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        match authorized {
            true => Deployers::insert(ctx.overlay, deployer, &ctx.height())?,
            false => Deployers::remove(ctx.overlay, deployer)?,
        }
        Ok(events([Event::DeployerSet {
            deployer: *deployer,
            authorized: *authorized,
        }]))
    }

    async fn reset_draws(ctx: &mut Context<'_, '_, R>, provider: &ProviderId) -> DispatchResult {
        ctx.ensure_privileged()?;
        // The silent challengers stay remembered; only the count starts over.
        let mut history = Draws::get(ctx.overlay, provider).await?.unwrap_or_default();
        history.draws = 0;
        history.window_start = ctx.height();
        Draws::insert(ctx.overlay, provider, &history)?;
        Ok(events([Event::DrawsReset {
            provider: *provider,
        }]))
    }

    async fn set_params(ctx: &mut Context<'_, '_, R>, params: &Parameters) -> DispatchResult {
        ctx.ensure_privileged()?;
        check_params(params)?;
        Params::put(ctx.overlay, params)?;
        Ok(events([Event::ParamsSet { params: *params }]))
    }

    async fn deregister_machine(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
    ) -> DispatchResult {
        // Anyone may remove the machine of a provider that is gone; otherwise its owner or agent.
        let gone = !Providers::contains(ctx.overlay, provider).await?;
        if !gone {
            Self::owned(ctx, *provider).await?;
        }
        let staged = StagedEndorsements::contains(ctx.overlay, provider).await?;
        if gone && staged && !Machines::contains(ctx.overlay, provider).await? {
            StagedEndorsements::remove(ctx.overlay, provider)?;
            return Ok(events([Event::StagedEndorsementDropped {
                provider: *provider,
            }]));
        }
        let mut machine = Self::machine(ctx, *provider).await?;
        let mut emitted = Vec::new();
        if machine.status == MachineStatus::Attesting {
            emitted = Self::exclude(ctx, *provider, machine, Exclusion::Deregistered).await?;
            machine = Self::machine(ctx, *provider).await?;
        }
        emitted.extend(Self::remove(ctx, *provider, machine).await?);
        Ok(emitted)
    }

    async fn stage_endorsement(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        start: &bool,
        chunk: &BoundedVec<u8, ENDORSEMENT_CHUNK_MAX_BYTES>,
    ) -> DispatchResult {
        Self::owned(ctx, *provider).await?;
        let mut staged = match start {
            true => Vec::new(),
            false => StagedEndorsements::get(ctx.overlay, provider)
                .await?
                .ok_or(Error::EndorsementStaging)?
                .into_inner(),
        };
        staged.extend_from_slice(chunk);
        let bytes = u32::try_from(staged.len()).map_err(|_| Error::EndorsementStaging)?;
        let staged: BoundedVec<u8, ENDORSEMENT_CHAIN_MAX_BYTES> =
            staged.try_into().map_err(|_| Error::EndorsementStaging)?;
        StagedEndorsements::insert(ctx.overlay, provider, &staged)?;
        Ok(events([Event::EndorsementStaged {
            provider: *provider,
            bytes,
        }]))
    }

    async fn set_endorsement_root(
        ctx: &mut Context<'_, '_, R>,
        root: &Digest,
        approved: &bool,
    ) -> DispatchResult {
        ctx.ensure_privileged()?;
        match approved {
            true => EndorsementRoots::insert(ctx.overlay, root, &ctx.height())?,
            false => EndorsementRoots::remove(ctx.overlay, root)?,
        }
        Ok(events([Event::EndorsementRootSet {
            root: *root,
            approved: *approved,
        }]))
    }
}

/// Checks parameters are in range.
fn check_params(params: &Parameters) -> Result<(), Error> {
    if params.period_blocks < PERIOD_MIN_BLOCKS || params.period_blocks > TIMEOUT_MAX_BLOCKS {
        return Err(Error::InvalidParams("period_blocks"));
    }
    if params.nonce_window_blocks == 0
        || params.nonce_window_blocks > NONCE_WINDOW_MAX_BLOCKS
        || params.nonce_window_blocks >= params.period_blocks
    {
        return Err(Error::InvalidParams("nonce_window_blocks"));
    }
    let timeout = params.challenge_timeout_blocks;
    if !(PERIOD_MIN_BLOCKS..=TIMEOUT_MAX_BLOCKS).contains(&timeout) {
        return Err(Error::InvalidParams("challenge_timeout_blocks"));
    }
    let timeout = params.deployment_timeout_blocks;
    if timeout == 0 || timeout > TIMEOUT_MAX_BLOCKS {
        return Err(Error::InvalidParams("deployment_timeout_blocks"));
    }
    let required = usize::try_from(params.challenges_required).unwrap_or(usize::MAX);
    if !(1..=CHALLENGES_REQUIRED_MAX).contains(&required) {
        return Err(Error::InvalidParams("challenges_required"));
    }
    Ok(())
}

impl<L: EnvironmentLifecycle> Module for Attestation<L> {
    logos_framework::module_calls!(logos_types::attestation);

    /// See the module docs.
    async fn on_block_end<R: StateReader>(ctx: &mut Context<'_, '_, R>) -> DispatchResult {
        let height = ctx.height();
        Nonces::insert(ctx.overlay, &height, &Digest(ctx.block.randomness.0))?;
        if let Some(old) = height.checked_sub(NONCE_WINDOW_MAX_BLOCKS.saturating_add(1)) {
            Nonces::remove(ctx.overlay, &old)?;
        }
        Self::handle_deadlines(ctx).await
    }

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        invariants::check(state)
    }
}
