//! `attestation` (module index 9): Machine Integrity Attestation verified in the state
//! transition. The protocol (registration, credential, reports, zero tolerance, verified
//! reference updates) is stated in [`logos_types::attestation`], which declares the types,
//! calls and storage; the evidence is checked with `logos-mia` (pure Rust, bounded).
//!
//! Owns [`Machines`], [`References`], [`ClassReferences`], [`AllowedFiles`], [`Deployers`],
//! [`Nonces`], [`DueAt`], [`Params`], [`MachineCount`] and [`Endorsements`]. Uses `dvci` (whether a provider is
//! attested, its exclusion), `market` (closing an excluded provider's leases) and
//! `provisioning` (the staked provisioners a challenger is drawn from).
//!
//! # What a report is checked against
//! The quote must verify with the machine's AK over `quote_nonce(Nonces[anchor], reported)`,
//! with a TPM clock after the last accepted one, quoting exactly PCRs 0–14 of the SHA-256
//! bank: otherwise it is not the machine's word and the call fails (nothing changes). Its PCR
//! digest is then compared with the values the chain expects: the reference's golden boot
//! PCRs, and PCR 10 as the staged IMA entries (or, with none staged, the last report) leave
//! it; zero when the reference has IMA off. The current reference is tried first, then a
//! pending deployment's. A quote that matches neither, or matches with a file outside the
//! allowlist, too many violations, a boot aggregate that is not the reference's, a reported
//! component other than the reference's or a tripped tamper flag, excludes the machine.
//!
//! # End of block
//! Records the block's randomness in [`Nonces`] (the last [`NONCE_WINDOW_MAX_BLOCKS`] + 1
//! heights), then handles the machines due at this height ([`DueAt`]): a silent challenger,
//! or an unanswered challenge, gets a new challenger drawn; an attesting machine without a
//! report is excluded (`ReportMissing`).
//!
//! # Invariant ([`Attestation::try_state`])
//! [`MachineCount`] counts [`Machines`]; every machine's AK is an attestation key, its EK
//! recorded for it alone in [`Endorsements`] and its reference approved; every machine not excluded is listed exactly once in [`DueAt`], at its
//! `due` height, and nothing else is listed; every provider `dvci` lists as attested has an
//! attesting machine with an accepted report; [`Nonces`] holds at most
//! [`NONCE_WINDOW_MAX_BLOCKS`] + 1 heights.

// State-machine code: no arithmetic that can overflow, wrap or panic (checked or saturating
// only), outside tests.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

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
    integrity::{self, Components},
    pcr,
    quote::{self, AkPublic, Quote, QuoteError, TpmClock},
};
use logos_primitives::{hash, Address};
use logos_provisioning::{draw, Provisioning};
use logos_types::{
    attestation::{
        AllowedFiles, CallHandler, ClassReferences, Component, Deployers, Deployment, Digest,
        DueAt, Endorsements, Error, Event, Exclusion, ImaPolicy, LastReport, Machine, MachineCount,
        MachineStatus, Machines, Nonces, Parameters, Params, Reference, References, Reported,
        Staged, Tamper, BOOT_PCRS, CREDENTIAL_BLOB_MAX_BYTES, CREDENTIAL_MAX_BYTES,
        CREDENTIAL_MIN_BYTES, DUE_SPREAD_MAX_BLOCKS, ENCRYPTED_SECRET_MAX_BYTES,
        FILES_PER_CALL_MAX, IMA_ENTRIES_PER_CALL_MAX, IMA_ENTRY_MAX_BYTES, MACHINES_MAX,
        NONCE_WINDOW_MAX_BLOCKS, PERIOD_MIN_BLOCKS,
    },
    codec::{BoundedString, BoundedVec},
    corruption,
    dvci::{Attested, Provider, ProviderId, Providers, ResourceClass},
    operations::EnvironmentId,
    DispatchError, Event as RuntimeEvent,
};
use std::{collections::BTreeMap, marker::PhantomData};

/// The longest any timeout parameter may be, blocks.
const TIMEOUT_MAX_BLOCKS: u64 = 1_000_000;
/// Domain of the challenger draw's randomness.
const CHALLENGER_DOMAIN: &[u8] = b"logos/attestation/challenger/v1";

/// The `attestation` module; excluded providers' leases close through `Market<L>`.
pub struct Attestation<L>(PhantomData<L>);

/// A short error text for a receipt.
fn text(message: impl ToString) -> BoundedString<128> {
    BoundedString::truncated(&message.to_string())
}

/// What one candidate reference concluded about a report.
struct Judged {
    reference: Digest,
    adopted: bool,
    outcome: Result<LastReport, Exclusion>,
}

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
        let agent = provider
            .agent_key
            .and_then(|key| key.public_key().ok())
            .map(|key| Address::from_public_key(&key));
        if provider.owner != sender && agent != Some(sender) {
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

    /// Draws a challenger for `provider` among the staked provisioners other than `owner`.
    async fn draw_challenger<R: StateReader>(
        ctx: &Context<'_, '_, R>,
        provider: ProviderId,
        owner: Address,
        draws: u32,
    ) -> Result<Address, DispatchError> {
        let candidates = Provisioning::candidates(ctx, &[owner]).await?;
        let randomness = hash(&[
            CHALLENGER_DOMAIN,
            ctx.block.randomness.as_ref(),
            &provider.get().to_be_bytes(),
        ]);
        let picked = draw(
            &candidates,
            randomness.as_ref(),
            EnvironmentId(provider.get()),
            u64::from(draws),
            1,
        );
        Ok(picked.first().copied().ok_or(Error::NoChallenger)?)
    }

    /// Lists `provider` as due at the first height from `at` with room; returns it.
    async fn schedule<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        at: u64,
    ) -> Result<u64, DispatchError> {
        for offset in 0..DUE_SPREAD_MAX_BLOCKS {
            let height = at.saturating_add(offset);
            let mut due = DueAt::get(ctx.overlay, &height).await?.unwrap_or_default();
            if due.try_push(provider).is_ok() {
                DueAt::insert(ctx.overlay, &height, &due)?;
                return Ok(height);
            }
        }
        Err(Error::TooManyMachines.into())
    }

    /// Takes `provider` off the list of height `at`.
    async fn unschedule<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        at: u64,
    ) -> Result<(), DispatchError> {
        let Some(mut due) = DueAt::get(ctx.overlay, &at).await? else {
            return Err(corruption("a machine's deadline is not listed"));
        };
        let before = due.len();
        due.retain(|listed| *listed != provider);
        if due.len() == before {
            return Err(corruption("a machine's deadline is not listed"));
        }
        if due.is_empty() {
            DueAt::remove(ctx.overlay, &at)?;
        } else {
            DueAt::insert(ctx.overlay, &at, &due)?;
        }
        Ok(())
    }

    /// Moves `machine`'s deadline to `at` (or the next height with room).
    async fn reschedule<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        machine: &mut Machine,
        at: u64,
    ) -> Result<(), DispatchError> {
        Self::unschedule(ctx, provider, machine.due).await?;
        machine.due = Self::schedule(ctx, provider, at).await?;
        Ok(())
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
            staged.pcr = Digest(pcr::extend(&staged.pcr.0, &VIOLATION_EXTEND));
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
        staged.pcr = Digest(pcr::extend(&staged.pcr.0, &pcr::sha256(data)));
        Ok(())
    }

    /// The PCR 10 `reference` expects of the next quote.
    fn expected_ima_pcr(reference: &Reference, machine: &Machine) -> Digest {
        if reference.ima.is_none() {
            return Digest::ZERO;
        }
        match (&machine.staged, &machine.last) {
            (Some(staged), _) => staged.pcr,
            (None, Some(last)) => last.ima_pcr,
            (None, None) => Digest::ZERO,
        }
    }

    /// The PCR values `reference` expects: its boot PCRs and `ima_pcr`.
    fn expected_pcrs(reference: &Reference, ima_pcr: Digest) -> BTreeMap<u32, [u8; 32]> {
        let mut pcrs: BTreeMap<u32, [u8; 32]> = BOOT_PCRS
            .iter()
            .zip(reference.boot_pcrs.iter())
            .map(|(index, value)| (*index, value.0))
            .collect();
        pcrs.insert(pcr::IMA_PCR, ima_pcr.0);
        pcrs
    }

    /// The integrity hash of a machine matching `reference` (`logos_mia::integrity`).
    fn integrity_hash(reference: &Reference, reported: &Reported) -> Digest {
        let pcrs = Self::expected_pcrs(reference, Digest::ZERO);
        let status = |component: Component| match component {
            Component::Unavailable => integrity::Status::Unavailable,
            Component::Measured(digest) => integrity::Status::Measured(digest.0),
        };
        let components = Components {
            boot: integrity::boot_component(&pcrs),
            ima: match reference.ima {
                Some(policy) => integrity::Status::Measured(policy.digest.0),
                None => integrity::Status::Unavailable,
            },
            files: status(reported.files),
            lkrg: status(reported.lkrg),
            ebpf: status(reported.ebpf),
            tamper: tamper(reported.tamper),
        };
        Digest(components.integrity_hash())
    }

    /// What `reference` requires beyond the PCR digest: staged IMA within its policy, the
    /// boot aggregate after a reboot, the reported components, no tamper.
    fn judge_components(
        reference: &Reference,
        staged: Option<&Staged>,
        reported: &Reported,
        ima_pcr: Digest,
    ) -> Result<(), Exclusion> {
        if reported.tamper == Tamper::Tripped {
            return Err(Exclusion::Tampered);
        }
        if (reported.files, reported.lkrg, reported.ebpf)
            != (reference.files, reference.lkrg, reference.ebpf)
        {
            return Err(Exclusion::ComponentMismatch);
        }
        let Some(policy) = reference.ima else {
            return Ok(());
        };
        if ima_pcr == Digest::ZERO {
            // The reference requires IMA; a zero PCR 10 means it is off.
            return Err(Exclusion::ComponentMismatch);
        }
        let Some(staged) = staged else {
            return Ok(());
        };
        judge_staged(reference, &policy, staged)
    }

    /// Verifies the quote against one candidate reference.
    fn judge(
        ctx_height: u64,
        anchor: u64,
        machine: &Machine,
        (id, reference, adopted): (Digest, &Reference, bool),
        quote: (&AkPublic, Quote<'_>, &[u8; 32]),
        reported: &Reported,
    ) -> Result<Judged, DispatchError> {
        let (ak, evidence, nonce) = quote;
        let ima_pcr = Self::expected_ima_pcr(reference, machine);
        let pcrs = Self::expected_pcrs(reference, ima_pcr);
        let last = machine.last.map(|last| TpmClock {
            reset_count: last.reset_count,
            restart_count: last.restart_count,
            clock_ms: last.clock_ms,
        });
        let verified = match quote::verify(ak, evidence, nonce, &pcrs, last) {
            Ok(verified) => verified,
            Err(QuoteError::PcrDigestMismatch) => {
                return Ok(Judged {
                    reference: id,
                    adopted,
                    outcome: Err(Exclusion::PcrMismatch),
                })
            }
            Err(error) => return Err(Error::QuoteRefused(text(error)).into()),
        };
        let staged = machine.staged.as_ref().filter(|_| reference.ima.is_some());
        let outcome =
            Self::judge_components(reference, staged, reported, ima_pcr).map(|()| LastReport {
                height: ctx_height,
                anchor,
                reset_count: verified.clock.reset_count,
                restart_count: verified.clock.restart_count,
                clock_ms: verified.clock.clock_ms,
                ima_pcr,
                integrity_hash: Self::integrity_hash(reference, reported),
            });
        Ok(Judged {
            reference: id,
            adopted,
            outcome,
        })
    }

    /// Accepts a report that matched `judged`: the machine's last report, reference and
    /// deadline move on, and `dvci` lists the provider as attested.
    async fn accept<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
        mut machine: Machine,
        judged: Judged,
        last: LastReport,
    ) -> DispatchResult {
        let params = Params::get(ctx.overlay).await?;
        let mut emitted = Vec::new();
        if judged.adopted {
            machine.reference = judged.reference;
            machine.pending = None;
            emitted.extend(events([Event::ReferenceUpdated {
                provider,
                reference: judged.reference,
            }]));
        }
        machine.last = Some(last);
        machine.staged = None;
        let next = ctx.height().saturating_add(params.period_blocks);
        Self::reschedule(ctx, provider, &mut machine, next).await?;
        Machines::insert(ctx.overlay, &provider, &machine)?;
        Dvci::set_attested(ctx.overlay, provider, Some(ctx.height())).await?;
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

    /// Handles one machine whose deadline is this height.
    async fn due<R: StateReader>(
        ctx: &mut Context<'_, '_, R>,
        provider: ProviderId,
    ) -> DispatchResult {
        let Some(mut machine) = Machines::get(ctx.overlay, &provider).await? else {
            return Err(corruption("a deadline of an unknown machine"));
        };
        if machine.due != ctx.height() {
            return Err(corruption(
                "a machine listed at another height than its deadline",
            ));
        }
        match machine.status {
            MachineStatus::Attesting => {
                Self::exclude(ctx, provider, machine, Exclusion::ReportMissing).await
            }
            MachineStatus::AwaitingChallenge { .. } | MachineStatus::Challenged { .. } => {
                let params = Params::get(ctx.overlay).await?;
                let owner = Providers::require(ctx.overlay, &provider).await?.owner;
                machine.draws = machine.draws.saturating_add(1);
                let next = ctx.height().saturating_add(params.challenge_timeout_blocks);
                let mut emitted = Vec::new();
                match Self::draw_challenger(ctx, provider, owner, machine.draws).await {
                    Ok(challenger) => {
                        machine.status = MachineStatus::AwaitingChallenge { challenger };
                        machine.challenge = None;
                        emitted = events([Event::ChallengerRedrawn {
                            provider,
                            challenger,
                        }]);
                    }
                    // Nobody to draw: the current step waits another timeout.
                    Err(DispatchError::Module(_)) => {}
                    Err(error) => return Err(error),
                }
                Self::reschedule(ctx, provider, &mut machine, next).await?;
                Machines::insert(ctx.overlay, &provider, &machine)?;
                Ok(emitted)
            }
            MachineStatus::Excluded { .. } => Err(corruption("an excluded machine is listed")),
        }
    }
}

/// The tamper flag as `logos-mia` names it.
fn tamper(flag: Tamper) -> integrity::Tamper {
    match flag {
        Tamper::Unavailable => integrity::Tamper::Unavailable,
        Tamper::Clear => integrity::Tamper::Clear,
        Tamper::Tripped => integrity::Tamper::Tripped,
    }
}

/// Whether the staged entries meet `policy` of `reference`.
fn judge_staged(
    reference: &Reference,
    policy: &ImaPolicy,
    staged: &Staged,
) -> Result<(), Exclusion> {
    if staged.violations > policy.violations_max {
        return Err(Exclusion::ImaViolations);
    }
    let passed = staged
        .checked
        .iter()
        .flatten()
        .any(|(checked, passed)| *checked == policy.policy && *passed);
    if !passed {
        return Err(Exclusion::FileNotAllowed);
    }
    if staged.from_boot {
        let pcrs: BTreeMap<u32, [u8; 32]> = BOOT_PCRS
            .iter()
            .zip(reference.boot_pcrs.iter())
            .map(|(index, value)| (*index, value.0))
            .collect();
        if staged.boot_aggregate != Some(Digest(ima::boot_aggregate(&pcrs))) {
            return Err(Exclusion::BootAggregateMismatch);
        }
    }
    Ok(())
}

impl<R: StateReader, L: EnvironmentLifecycle> CallHandler<Context<'_, '_, R>> for Attestation<L> {
    async fn register_machine(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        ek_public: &BoundedVec<u8, { logos_types::attestation::EK_PUBLIC_MAX_BYTES }>,
        ak_public: &BoundedVec<u8, { logos_types::attestation::AK_PUBLIC_MAX_BYTES }>,
    ) -> DispatchResult {
        let record = Self::owned(ctx, *provider).await?;
        let existing = Machines::get(ctx.overlay, provider).await?;
        let replaces = match &existing {
            Some(machine) if !matches!(machine.status, MachineStatus::Excluded { .. }) => {
                return Err(Error::AlreadyRegistered(*provider).into())
            }
            Some(_) => true,
            None => false,
        };
        let count = MachineCount::get(ctx.overlay).await?;
        if !replaces && count >= MACHINES_MAX {
            return Err(Error::TooManyMachines.into());
        }
        AkPublic::from_tpmt_public(ak_public).map_err(|error| Error::InvalidKey(text(error)))?;
        logos_mia::credential::check_endorsement_key(ek_public)
            .map_err(|error| Error::InvalidKey(text(error)))?;
        let ek_hash = Digest(pcr::sha256(ek_public));
        match Endorsements::get(ctx.overlay, &ek_hash).await? {
            Some(holder) if holder != *provider => {
                return Err(Error::EndorsementInUse(holder).into())
            }
            _ => {}
        }
        let reference = ClassReferences::get(ctx.overlay, &record.class)
            .await?
            .ok_or(Error::NoReference)?;
        let challenger = Self::draw_challenger(ctx, *provider, record.owner, 0).await?;
        let params = Params::get(ctx.overlay).await?;
        let at = ctx.height().saturating_add(params.challenge_timeout_blocks);
        let due = Self::schedule(ctx, *provider, at).await?;
        if let Some(old) = existing.filter(|old| old.ek_hash != ek_hash) {
            Endorsements::remove(ctx.overlay, &old.ek_hash)?;
        }
        Endorsements::insert(ctx.overlay, &ek_hash, provider)?;
        let machine = Machine {
            ek_hash,
            ek_public: ek_public.clone(),
            ak_public: ak_public.clone(),
            reference,
            status: MachineStatus::AwaitingChallenge { challenger },
            due,
            last: None,
            staged: None,
            pending: None,
            challenge: None,
            draws: 0,
        };
        Machines::insert(ctx.overlay, provider, &machine)?;
        if !replaces {
            MachineCount::put(ctx.overlay, &count.saturating_add(1))?;
        }
        Dvci::set_attested(ctx.overlay, *provider, None).await?;
        Ok(events([Event::MachineRegistered {
            provider: *provider,
            challenger,
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
        if sender != challenger {
            return Err(Error::NotChallenger.into());
        }
        if credential_blob.is_empty() || encrypted_secret.is_empty() {
            return Err(Error::WrongStep.into());
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
            credential_hash, ..
        } = machine.status
        else {
            return Err(Error::WrongStep.into());
        };
        if credential.len() < CREDENTIAL_MIN_BYTES {
            return Err(Error::CredentialSize.into());
        }
        if Digest(pcr::sha256(credential)) != credential_hash {
            return Err(Error::CredentialMismatch.into());
        }
        let params = Params::get(ctx.overlay).await?;
        machine.status = MachineStatus::Attesting;
        machine.challenge = None;
        let next = ctx.height().saturating_add(params.period_blocks);
        Self::reschedule(ctx, *provider, &mut machine, next).await?;
        Machines::insert(ctx.overlay, provider, &machine)?;
        Ok(events([Event::CredentialActivated {
            provider: *provider,
        }]))
    }

    async fn stage_ima(
        ctx: &mut Context<'_, '_, R>,
        provider: &ProviderId,
        from_boot: &bool,
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
        let mut staged = match (*from_boot, machine.staged, &machine.last) {
            (true, _, _) => Staged {
                from_boot: true,
                checked,
                ..Staged::default()
            },
            (false, Some(staged), _) => staged,
            (false, None, Some(last)) => Staged {
                pcr: last.ima_pcr,
                checked,
                ..Staged::default()
            },
            (false, None, None) => return Err(Error::ImaNotExpected.into()),
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
        attest: &BoundedVec<u8, { logos_types::attestation::ATTEST_MAX_BYTES }>,
        signature: &BoundedVec<u8, { logos_types::attestation::SIGNATURE_MAX_BYTES }>,
        reported: &Reported,
    ) -> DispatchResult {
        Self::owned(ctx, *provider).await?;
        let machine = Self::machine(ctx, *provider).await?;
        if machine.status != MachineStatus::Attesting {
            return Err(Error::WrongStep.into());
        }
        let params = Params::get(ctx.overlay).await?;
        let anchor_nonce =
            Self::anchor_nonce(ctx, &machine, *anchor, params.nonce_window_blocks).await?;
        let ak = AkPublic::from_tpmt_public(&machine.ak_public)
            .map_err(|_| corruption("a registered AK does not parse"))?;
        let bound = Components {
            boot: integrity::Status::Unavailable,
            ima: integrity::Status::Unavailable,
            files: status_of(reported.files),
            lkrg: status_of(reported.lkrg),
            ebpf: status_of(reported.ebpf),
            tamper: tamper(reported.tamper),
        };
        let nonce = quote_nonce(&anchor_nonce.0, &bound);
        let evidence = Quote { attest, signature };
        let mut candidates = vec![(machine.reference, false)];
        if let Some(deployment) = Self::pending(&machine, ctx.height()) {
            candidates.push((deployment.reference, true));
        }
        let mut first: Option<Judged> = None;
        for (id, adopted) in candidates {
            let reference = References::require(ctx.overlay, &id).await?;
            let judged = Self::judge(
                ctx.height(),
                *anchor,
                &machine,
                (id, &reference, adopted),
                (&ak, evidence, &nonce),
                reported,
            )?;
            if let Ok(last) = judged.outcome {
                return Self::accept(ctx, *provider, machine, judged, last).await;
            }
            first.get_or_insert(judged);
        }
        let reason = match first.map(|judged| judged.outcome) {
            Some(Err(reason)) => reason,
            _ => return Err(corruption("no reference judged the report")),
        };
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

    async fn set_params(ctx: &mut Context<'_, '_, R>, params: &Parameters) -> DispatchResult {
        ctx.ensure_privileged()?;
        check_params(params)?;
        Params::put(ctx.overlay, params)?;
        Ok(events([Event::ParamsSet { params: *params }]))
    }
}

/// A reported component as `logos-mia` names it.
fn status_of(component: Component) -> integrity::Status {
    match component {
        Component::Unavailable => integrity::Status::Unavailable,
        Component::Measured(digest) => integrity::Status::Measured(digest.0),
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
    for (value, name) in [
        (params.challenge_timeout_blocks, "challenge_timeout_blocks"),
        (
            params.deployment_timeout_blocks,
            "deployment_timeout_blocks",
        ),
    ] {
        if value == 0 || value > TIMEOUT_MAX_BLOCKS {
            return Err(Error::InvalidParams(name));
        }
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
        let Some(due) = DueAt::get(ctx.overlay, &height).await? else {
            return Ok(Vec::new());
        };
        let mut emitted: Vec<RuntimeEvent> = Vec::new();
        for provider in due {
            emitted.extend(Self::due(ctx, provider).await?);
        }
        Ok(emitted)
    }

    /// See the module docs.
    fn try_state(state: &State) -> TryStateResult {
        let text = |error: logos_types::StateError| error.to_string();
        let mut listed: BTreeMap<ProviderId, u64> = BTreeMap::new();
        for entry in DueAt::iter_from(state) {
            let (height, due) = entry.map_err(text)?;
            if due.is_empty() {
                return Err(format!("an empty deadline list at {height}"));
            }
            for provider in due {
                if listed.insert(provider, height).is_some() {
                    return Err(format!("machine {provider} is listed twice"));
                }
            }
        }
        let mut count = 0u64;
        for entry in Machines::iter_from(state) {
            let (provider, machine) = entry.map_err(text)?;
            count = count.saturating_add(1);
            check_machine(state, provider, &machine, listed.remove(&provider))?;
        }
        if let Some((provider, _)) = listed.into_iter().next() {
            return Err(format!("deadline listed for unknown machine {provider}"));
        }
        if MachineCount::get_from(state).map_err(text)? != count {
            return Err(format!("the machine count is not {count}"));
        }
        // Each machine's EK maps to it (checked per machine): as many endorsements as machines.
        let endorsements = Endorsements::iter_from(state).count() as u64;
        if endorsements != count {
            return Err(format!("{endorsements} endorsements for {count} machines"));
        }
        for entry in Attested::iter_from(state) {
            let (provider, _) = entry.map_err(text)?;
            let machine = Machines::get_from(state, &provider).map_err(text)?;
            let attesting = machine.is_some_and(|machine| {
                machine.status == MachineStatus::Attesting && machine.last.is_some()
            });
            if !attesting {
                return Err(format!("provider {provider} is attested without a report"));
            }
        }
        let nonces = Nonces::iter_from(state).count() as u64;
        if nonces > NONCE_WINDOW_MAX_BLOCKS.saturating_add(1) {
            return Err(format!("{nonces} nonces kept"));
        }
        Ok(())
    }
}

/// One machine's invariants; `listed` is the height [`DueAt`] lists it at.
fn check_machine(
    state: &State,
    provider: ProviderId,
    machine: &Machine,
    listed: Option<u64>,
) -> TryStateResult {
    if AkPublic::from_tpmt_public(&machine.ak_public).is_err() {
        return Err(format!("machine {provider}'s AK does not parse"));
    }
    if machine.ek_hash != Digest(pcr::sha256(&machine.ek_public)) {
        return Err(format!("machine {provider}'s EK hash is not its EK's"));
    }
    let holder =
        Endorsements::get_from(state, &machine.ek_hash).map_err(|error| error.to_string())?;
    if holder != Some(provider) {
        return Err(format!(
            "machine {provider}'s EK is recorded for {holder:?}"
        ));
    }
    let approved = References::get_from(state, &machine.reference)
        .map_err(|error| error.to_string())?
        .is_some();
    if !approved {
        return Err(format!("machine {provider}'s reference is not approved"));
    }
    let excluded = matches!(machine.status, MachineStatus::Excluded { .. });
    match (excluded, listed) {
        (true, None) => Ok(()),
        (false, Some(height)) if height == machine.due => Ok(()),
        _ => Err(format!(
            "machine {provider} (due {}) is listed at {listed:?}",
            machine.due
        )),
    }
}
