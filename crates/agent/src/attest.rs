//! The attestor: the machine's side of Machine Integrity Attestation (`attestation` module,
//! whose `//!` in `logos-types` states the protocol), run by the provider's agent from its
//! agent account (`dvci` `agent_key`), so the owner's key stays off the machine.
//!
//! Every [`AttestConfig::poll_ms`] it reads its machine's record from finalized state, with
//! proofs, and does what [`plan::next_step`] says:
//! 1. **Register** the TPM's endorsement key and this agent's attestation key (created under
//!    the EK on first start and kept in [`AttestConfig::ak_file`]), after staging the EK's
//!    certificate chain (the TPM's EK certificate, or [`AttestConfig::ek_certificate`], then
//!    the CA certificates of [`AttestConfig::ek_chain`]) unless the chain holds it already.
//! 2. **Activate**: once the drawn challenger posted its `TPM2_MakeCredential` blob, open it
//!    with `TPM2_ActivateCredential` (only this TPM, with this AK loaded, can) and answer.
//! 3. **Report**, at once after activation and then [`AttestConfig::reports_per_period`] times
//!    per attestation period: the components it reports (files, LKRG, eBPF, tamper), a quote of
//!    PCRs 0–14 over `quote_nonce(report_nonce(Nonces[head], provider), components)`, checked
//!    here as the chain will check it; when the reference measures IMA, the entries of the
//!    kernel's list since the last report (or since boot, when the TPM's reset or restart count
//!    moved) staged first, in calls within the transaction limit ([`plan::chunks`]); then the
//!    report.
//!
//! The TPM is opened for each step and closed after it (a TPM serves one client at a time;
//! swtpm has no resource manager), on a blocking thread. A failed step is retried after a
//! backoff ([`plan::backoff`], at most 8 polls), a challenge that cannot be answered (this TPM
//! cannot open it, or its credential does not match the posted hash, checked here before any
//! fee is paid) is not tried again (its round ends), a refused registration waits
//! [`REGISTER_RETRY`]; IMA calls go back to back in batches; nothing here decides for the chain: a report of a changed machine is sent as it is,
//! and the chain excludes it.

pub mod plan;

use logos_client::{Client, ClientError, Wallet};
use logos_mia::{
    evidence::quote_nonce,
    ima,
    integrity::{self, Components, Status},
    limits::{IMA_ENTRIES_MAX, IMA_LOG_MAX_BYTES},
    pcr::{self, IMA_PCR},
    quote::{self, AkPublic},
};
use logos_mia_collect::{
    certs,
    evidence::{quote_pcrs, reported, Sources},
    files::FileSnapshot,
    kernel::{EbpfSummary, HostKernel, KernelProbe},
    keyfile, logs,
    tamper::FileTamper,
    tpm::{AkKind, AttestationKey, QuoteBytes, Tpm as _, TssTpm},
    CollectError,
};
use logos_types::{
    attestation::{
        report_nonce, staging_calls, Call, Component, Digest, EndorsementRoots, Event, Machine,
        MachineStatus, Machines, Nonces, Params, References, Reported, StagedEndorsements, Tamper,
        CREDENTIAL_MAX_BYTES, CREDENTIAL_MIN_BYTES,
    },
    dvci::ProviderId,
    Call as RuntimeCall, Event as RuntimeEvent, Receipt,
};
use plan::{chunks, ima_plan, next_step, Step};
use std::{collections::BTreeMap, path::PathBuf, time::Duration};

/// Attestor settings.
#[derive(Clone, Debug)]
pub struct AttestConfig {
    /// The provider whose machine this is.
    pub provider: ProviderId,
    /// The TPM's TSS2 TCTI (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`).
    pub tcti: String,
    /// The attestation key file ([`keyfile`]).
    pub ak_file: PathBuf,
    /// The EK's certificate (DER or PEM), for a TPM that does not hold it in its NV.
    pub ek_certificate: Option<PathBuf>,
    /// The CA certificates above the EK's, issuer first, root last (a PEM bundle, or one DER
    /// certificate): what the chain's endorsement roots are reached through.
    pub ek_chain: Option<PathBuf>,
    /// The kernel's IMA measurement list (binary or ascii).
    pub ima_log: PathBuf,
    /// The file-integrity snapshot.
    pub files: FileSnapshot,
    /// The tamper flag's path, if the machine has one.
    pub tamper: Option<PathBuf>,
    /// Report the loaded eBPF programs (host-wide; see [`measured_reference`]).
    pub ebpf: bool,
    /// Time between reads of the machine's record, ms.
    pub poll_ms: u64,
    /// Reports per attestation period (the deadline is one period after the last report).
    pub reports_per_period: u64,
}

/// Why an attestation step failed (retried at the next poll).
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The chain could not be read, or refused a call.
    #[error("chain: {0}")]
    Chain(#[from] ClientError),
    /// The TPM or a collector failed.
    #[error("collector: {0}")]
    Collect(#[from] CollectError),
    /// This machine's own quote does not verify (the chain would refuse it).
    #[error("own quote does not verify: {0}")]
    Quote(#[from] quote::QuoteError),
    /// The IMA list does not fit the quote or the last report.
    #[error("IMA list: {0}")]
    Plan(#[from] plan::PlanError),
    /// Finalized state lacks what the step needs.
    #[error("{0}")]
    Missing(String),
    /// What the chain posted cannot be answered (a challenge this TPM cannot open or whose
    /// credential does not match its hash).
    #[error("{0}")]
    Refused(String),
}

/// The attestor (see the module docs).
pub struct Attestor {
    config: AttestConfig,
    client: Client,
    wallet: Wallet,
    /// The last reason to wait, so that it is logged once.
    waiting: String,
    /// The credential hash of a challenge that could not be answered (not tried again).
    refused_challenge: Option<Digest>,
    /// When the chain last refused this machine's registration.
    register_refused: Option<std::time::Instant>,
    /// The challenge the TPM failed to open, and how many times.
    challenge_tries: (Digest, u32),
}

/// Times the TPM may fail to open one challenge before it is given up for its round.
pub const CHALLENGE_TRIES_MAX: u32 = 3;

/// Time before a registration the chain refused is sent again.
pub const REGISTER_RETRY: Duration = Duration::from_secs(300);
/// Most `StageIma` calls submitted back to back before waiting for them (within the mempool's
/// pending nonces per account).
pub const STAGE_CALLS_PER_BATCH: usize = 64;

impl Attestor {
    /// An attestor for `config.provider`, signing with `wallet` (the provider's agent key).
    pub fn new(config: AttestConfig, client: Client, wallet: Wallet) -> Self {
        Self {
            config,
            client,
            wallet,
            waiting: String::new(),
            refused_challenge: None,
            register_refused: None,
            challenge_tries: (Digest::ZERO, 0),
        }
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        let poll = Duration::from_millis(self.config.poll_ms);
        let ak = loop {
            match self.attestation_key().await {
                Ok(ak) => break ak,
                Err(error) => tracing::warn!(%error, "attestation key"),
            }
            tokio::time::sleep(poll).await;
        };
        let mut failures = 0;
        loop {
            match self.tick(&ak).await {
                Ok(done) => {
                    failures = 0;
                    if let Some(done) = done {
                        tracing::info!(provider = %self.config.provider, "{done}");
                    }
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "attestation step failed; retrying");
                }
            }
            tokio::time::sleep(poll * plan::backoff(failures)).await;
        }
    }

    /// One step: what [`next_step`] says for the machine's record now. `Some(what was done)`.
    pub async fn tick(&mut self, ak: &AttestationKey) -> Result<Option<String>, AttestError> {
        let provider = self.config.provider;
        let (machine, height) = self.client.map_proven::<Machines>(&provider).await?;
        let (params, _) = self.client.value_proven::<Params>().await?;
        let step = next_step(
            machine.as_ref(),
            &ak.public,
            height,
            &params,
            self.config.reports_per_period,
        );
        let done = match (step, machine) {
            (Step::Register, _) => {
                if self
                    .register_refused
                    .is_some_and(|at| at.elapsed() < REGISTER_RETRY)
                {
                    return Ok(None);
                }
                match self.register(ak).await {
                    Err(
                        error @ (AttestError::Chain(ClientError::CallFailed { .. })
                        | AttestError::Refused(_)),
                    ) => {
                        // Refusals such as NoReference, EndorsementInUse or a chain to no
                        // approved root last until governance or the operator acts: not paid
                        // for every few seconds.
                        self.register_refused = Some(std::time::Instant::now());
                        return Err(error);
                    }
                    done => done?,
                }
            }
            (Step::Activate, Some(machine)) => {
                let posted = match machine.status {
                    MachineStatus::Challenged {
                        credential_hash, ..
                    } => credential_hash,
                    _ => Digest::ZERO,
                };
                if self.refused_challenge == Some(posted) {
                    // A challenge this TPM cannot open, or whose credential is not what its
                    // hash says (a lying challenger): tried once; the round ends and another
                    // challenger is drawn.
                    return Ok(None);
                }
                match self.activate(ak, &machine, &posted).await {
                    Err(error @ AttestError::Refused(_)) => {
                        self.refused_challenge = Some(posted);
                        return Err(error);
                    }
                    Err(error @ AttestError::Collect(_)) => {
                        // The TPM could not open it, or could not be reached: tried again a
                        // few times (a busy TPM), then given up for this round.
                        let tries = match self.challenge_tries {
                            (hash, tries) if hash == posted => tries.saturating_add(1),
                            _ => 1,
                        };
                        self.challenge_tries = (posted, tries);
                        if tries >= CHALLENGE_TRIES_MAX {
                            self.refused_challenge = Some(posted);
                        }
                        return Err(error);
                    }
                    Err(AttestError::Chain(ClientError::CallFailed { height, error })) => {
                        self.refused_challenge = Some(posted);
                        return Err(AttestError::Chain(ClientError::CallFailed {
                            height,
                            error,
                        }));
                    }
                    done => done?,
                }
            }
            (Step::Report, Some(machine)) => self.report(ak, &machine, height).await?,
            (Step::Wait(why), _) => {
                if why != self.waiting {
                    tracing::info!(%provider, "attestation: {why}");
                    self.waiting = why;
                }
                return Ok(None);
            }
            (step, None) => {
                return Err(AttestError::Missing(format!("{step:?} without a machine")))
            }
        };
        self.waiting.clear();
        Ok(Some(done))
    }

    /// The attestation key, created under the EK when the key file does not exist.
    pub async fn attestation_key(&self) -> Result<AttestationKey, AttestError> {
        let path = self.config.ak_file.clone();
        self.with_tpm(move |tpm| keyfile::load_or_create(&path, tpm, AkKind::EcdsaP256))
            .await
    }

    async fn with_tpm<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut TssTpm) -> Result<T, CollectError> + Send + 'static,
    ) -> Result<T, AttestError> {
        let tcti = self.config.tcti.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut tpm = TssTpm::open(&tcti)?;
            work(&mut tpm)
        })
        .await;
        joined
            .map_err(|error| AttestError::Missing(format!("TPM thread: {error}")))?
            .map_err(AttestError::from)
    }

    async fn execute(&self, call: Call) -> Result<(Receipt, u64), AttestError> {
        Ok(self
            .client
            .execute(&self.wallet, RuntimeCall::Attestation(call))
            .await?)
    }

    async fn register(&self, ak: &AttestationKey) -> Result<String, AttestError> {
        let endorsement = self.with_tpm(|tpm| tpm.endorsement()).await?;
        let chain = self.endorsement_chain(endorsement.certificate.as_deref())?;
        self.check_chain(&chain, &endorsement.public).await?;
        self.stage_endorsement(&chain).await?;
        let too_long = |what: &str| AttestError::Missing(format!("the {what} is too long"));
        let call = Call::RegisterMachine {
            provider: self.config.provider,
            ek_public: endorsement.public.try_into().map_err(|_| too_long("EK"))?,
            ak_public: ak.public.clone().try_into().map_err(|_| too_long("AK"))?,
        };
        let (_, height) = self.execute(call).await?;
        Ok(format!("machine registered at {height}"))
    }

    /// The EK's certificate chain: its certificate (the file's, else the TPM's), then the CA
    /// bundle's.
    fn endorsement_chain(&self, from_tpm: Option<&[u8]>) -> Result<Vec<u8>, AttestError> {
        let leaf = match &self.config.ek_certificate {
            Some(path) => match certs::read_bundle(path)?.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(AttestError::Missing(format!(
                        "{}: give the EK's certificate alone (its CAs go in --ek-chain)",
                        path.display()
                    )))
                }
            },
            None => from_tpm
                .ok_or_else(|| {
                    AttestError::Missing(
                        "the TPM holds no EK certificate: give the manufacturer's with \
                         --ek-certificate"
                            .into(),
                    )
                })?
                .to_vec(),
        };
        let authorities = match &self.config.ek_chain {
            Some(path) => certs::read_bundle(path)?,
            None => Vec::new(),
        };
        Ok(certs::chain(&leaf, &authorities)?)
    }

    /// Checks `chain` as the chain will at the registration's first deadline, against the
    /// endorsement roots it approved: a chain it would refuse is not paid for.
    async fn check_chain(&self, chain: &[u8], ek_public: &[u8]) -> Result<(), AttestError> {
        use logos_mia::endorsement::Chain;
        let refused = |error: logos_mia::endorsement::EndorsementError| {
            AttestError::Refused(format!("the EK certificate chain: {error}"))
        };
        let parsed = Chain::parse(chain).map_err(refused)?;
        let mut approved = Vec::new();
        for hash in parsed.key_hashes().map_err(refused)? {
            let (root, _) = self
                .client
                .map_proven::<EndorsementRoots>(&Digest(hash))
                .await?;
            if root.is_some() {
                approved.push(hash);
            }
        }
        parsed
            .endorse(ek_public, |hash| approved.contains(hash))
            .map(|_| ())
            .map_err(refused)
    }

    /// Stages `chain` for the registration, unless the chain holds it already.
    async fn stage_endorsement(&self, chain: &[u8]) -> Result<(), AttestError> {
        let provider = self.config.provider;
        let (staged, _) = self
            .client
            .map_proven::<StagedEndorsements>(&provider)
            .await?;
        if staged.is_some_and(|staged| staged[..] == *chain) {
            return Ok(());
        }
        let calls = staging_calls(provider, chain)
            .into_iter()
            .map(RuntimeCall::Attestation)
            .collect();
        self.client.execute_all(&self.wallet, calls).await?;
        Ok(())
    }

    async fn activate(
        &self,
        ak: &AttestationKey,
        machine: &Machine,
        posted: &Digest,
    ) -> Result<String, AttestError> {
        let challenge = machine
            .challenge
            .clone()
            .ok_or_else(|| AttestError::Missing("no challenge stored".into()))?;
        let key = ak.clone();
        let credential = self
            .with_tpm(move |tpm| {
                tpm.activate_credential(
                    &key,
                    &challenge.credential_blob,
                    &challenge.encrypted_secret,
                )
            })
            .await?;
        // Checked here as the chain will: a lying challenger costs no fee.
        let size = CREDENTIAL_MIN_BYTES..=CREDENTIAL_MAX_BYTES;
        if !size.contains(&credential.len()) || Digest(pcr::sha256(&credential)) != *posted {
            return Err(AttestError::Refused(
                "the challenge's credential does not match its posted hash".into(),
            ));
        }
        let call = Call::ActivateCredential {
            provider: self.config.provider,
            credential: credential
                .try_into()
                .map_err(|_| AttestError::Refused("the credential is too long".into()))?,
        };
        let (_, height) = self.execute(call).await?;
        Ok(format!("credential activated at {height}"))
    }

    /// Quotes, stages IMA if the reference (or a pending deployment's) measures it, reports.
    async fn report(
        &self,
        ak: &AttestationKey,
        machine: &Machine,
        read_at: u64,
    ) -> Result<String, AttestError> {
        let provider = self.config.provider;
        let stages_ima = self.stages_ima(machine, read_at).await?;
        // The components first (hashing files takes time), then the freshest anchor.
        let components = self.components().await?;
        let anchor = self.client.head_height().await?.max(read_at);
        let (anchor_nonce, _) = self.client.map_proven::<Nonces>(&anchor).await?;
        let anchor_nonce = anchor_nonce
            .ok_or_else(|| AttestError::Missing(format!("no chain nonce at {anchor}")))?;
        let chain_nonce = report_nonce(&anchor_nonce, provider);
        let quoted = self.quote(ak, components, chain_nonce).await?;
        let ima_pcr = quoted.pcrs.get(&IMA_PCR).copied().unwrap_or_default();
        if stages_ima {
            self.stage(machine, quoted.rebooted(machine), &ima_pcr)
                .await?;
        }
        let too_long = |what: &str| AttestError::Missing(format!("the {what} is too long"));
        let call = Call::Attest {
            provider,
            anchor,
            attest: quoted
                .quote
                .attest
                .try_into()
                .map_err(|_| too_long("quote"))?,
            signature: quoted
                .quote
                .signature
                .try_into()
                .map_err(|_| too_long("signature"))?,
            reported: reported_of(&quoted.components),
            ima_pcr: Digest(ima_pcr),
        };
        let (receipt, height) = self.execute(call).await?;
        Ok(describe(&receipt, height))
    }

    /// Whether the machine's reference, or a pending deployment's still open at `height`,
    /// measures IMA.
    async fn stages_ima(&self, machine: &Machine, height: u64) -> Result<bool, AttestError> {
        let mut references = vec![machine.reference];
        let open = machine
            .pending
            .filter(|pending| pending.expires_at >= height);
        references.extend(open.map(|pending| pending.reference));
        for id in references {
            let (reference, _) = self.client.map_proven::<References>(&id).await?;
            let reference =
                reference.ok_or_else(|| AttestError::Missing(format!("no reference {id}")))?;
            if reference.ima.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The components this machine reports, on a blocking thread.
    async fn components(&self) -> Result<Components, AttestError> {
        let files = self.config.files.clone();
        let tamper = FileTamper {
            path: self.config.tamper.clone(),
        };
        let ebpf = self.config.ebpf;
        let joined =
            tokio::task::spawn_blocking(move || reported_components(&files, &tamper, ebpf)).await;
        joined.map_err(|error| AttestError::Missing(format!("collector thread: {error}")))?
    }

    /// A quote over `components` and `chain_nonce`, checked as the chain will check it.
    async fn quote(
        &self,
        ak: &AttestationKey,
        components: Components,
        chain_nonce: Digest,
    ) -> Result<Quoted, AttestError> {
        let key = ak.clone();
        let nonce = quote_nonce(&chain_nonce.0, &components);
        let (quote, pcrs) = self
            .with_tpm(move |tpm| quote_pcrs(tpm, &key, &nonce))
            .await?;
        let ak_public = AkPublic::from_tpmt_public(&ak.public)?;
        let verified = quote::verify(&ak_public, quote.as_quote(), &nonce, &pcrs, None)?;
        Ok(Quoted {
            components,
            quote,
            pcrs,
            clock: verified.clock,
        })
    }

    /// Stages the IMA entries the quote covers since the last report (or the boot).
    async fn stage(
        &self,
        machine: &Machine,
        rebooted: bool,
        ima_pcr: &[u8; 32],
    ) -> Result<(), AttestError> {
        let list = match logs::read_optional(&self.config.ima_log, IMA_LOG_MAX_BYTES)? {
            Some(bytes) => ima::parse(&bytes, IMA_ENTRIES_MAX)
                .map_err(|error| AttestError::Missing(format!("IMA list: {error}")))?,
            // No IMA on this machine: nothing to stage (the report shows PCR 10 as it is).
            None if *ima_pcr == [0; 32] => Vec::new(),
            None => {
                return Err(AttestError::Missing(
                    "PCR 10 is extended; no IMA list".into(),
                ))
            }
        };
        // Only PCR 10's entries replay into it (a policy may measure into other PCRs).
        let list: Vec<ima::Entry> = list.into_iter().filter(|e| e.pcr == IMA_PCR).collect();
        let plan = ima_plan(&list, machine.last.as_ref(), rebooted, ima_pcr)?;
        let staged_before = machine.staged.is_some_and(|staged| staged.entries > 0);
        if plan.entries.is_empty() && !rebooted && !staged_before {
            return Ok(());
        }
        let data: Vec<&[u8]> = list[plan.entries].iter().map(plan::staged_data).collect();
        let mut calls = Vec::new();
        for (start, entries) in chunks(plan.start, &data) {
            let entries = entries
                .into_iter()
                .map(|entry| entry.try_into())
                .collect::<Result<Vec<_>, _>>()
                .and_then(|entries| entries.try_into())
                .map_err(|_| AttestError::Missing("an IMA call exceeds its bounds".into()))?;
            calls.push(RuntimeCall::Attestation(Call::StageIma {
                provider: self.config.provider,
                start,
                entries,
            }));
        }
        // Back to back, a batch at a time: a long list stages in a few blocks.
        let mut calls = calls.into_iter().peekable();
        while calls.peek().is_some() {
            let batch: Vec<RuntimeCall> = calls.by_ref().take(STAGE_CALLS_PER_BATCH).collect();
            self.client.execute_all(&self.wallet, batch).await?;
        }
        Ok(())
    }
}

/// A quote over the reported components.
struct Quoted {
    components: Components,
    quote: QuoteBytes,
    pcrs: BTreeMap<u32, pcr::Digest>,
    clock: quote::TpmClock,
}

impl Quoted {
    /// Whether the TPM was reset or restarted since `machine`'s last report (IMA starts over).
    fn rebooted(&self, machine: &Machine) -> bool {
        machine.last.is_none_or(|last| {
            (last.reset_count, last.restart_count)
                != (self.clock.reset_count, self.clock.restart_count)
        })
    }
}

/// The reference a machine in its current state would match, as governance approves one after
/// measuring a known-good machine of `class`: the TPM's boot PCRs, IMA off when PCR 10 is zero
/// (no IMA) and otherwise `ima` (an allowlist governance fills with `AllowFiles`), and the
/// components `files`, `tamper` and this host's kernel give (eBPF only with `ebpf`).
pub fn measured_reference(
    tpm: &mut dyn logos_mia_collect::tpm::Tpm,
    class: logos_types::dvci::ResourceClass,
    ima: Option<logos_types::attestation::ImaPolicy>,
    files: &FileSnapshot,
    tamper: &FileTamper,
    ebpf: bool,
) -> Result<logos_types::attestation::Reference, AttestError> {
    let mut indices = pcr::BOOT_PCRS.to_vec();
    indices.push(IMA_PCR);
    let pcrs = tpm.read_pcrs(&indices)?;
    let boot_pcrs: Vec<Digest> = pcr::BOOT_PCRS
        .iter()
        .map(|index| Digest(pcrs.get(index).copied().unwrap_or_default()))
        .collect();
    let reported = reported_of(&reported_components(files, tamper, ebpf)?);
    let ima_off = pcrs.get(&IMA_PCR).is_none_or(|value| *value == [0; 32]);
    Ok(logos_types::attestation::Reference {
        class,
        boot_pcrs: boot_pcrs
            .try_into()
            .map_err(|_| AttestError::Missing("14 boot PCRs".into()))?,
        ima: if ima_off { None } else { ima },
        files: reported.files,
        lkrg: reported.lkrg,
        ebpf: reported.ebpf,
    })
}

/// This host's kernel, with the eBPF summary only when asked for: the loaded programs are
/// host-wide, and container runtimes load some per container (runc's device filter on cgroup
/// v2), so a reference fixing them would exclude a provider for taking a lease.
struct Kernel {
    host: HostKernel,
    ebpf: bool,
}

impl KernelProbe for Kernel {
    fn lkrg(&self) -> Result<Status, CollectError> {
        self.host.lkrg()
    }

    fn ebpf(&self) -> Result<EbpfSummary, CollectError> {
        match self.ebpf {
            true => self.host.ebpf(),
            false => Ok(EbpfSummary {
                status: Status::Unavailable,
                programs: 0,
            }),
        }
    }
}

/// The components a machine reports (`boot` and `ima` are the chain's to compute).
fn reported_components(
    files: &FileSnapshot,
    tamper: &FileTamper,
    ebpf: bool,
) -> Result<Components, AttestError> {
    let kernel = Kernel {
        host: HostKernel::default(),
        ebpf,
    };
    let sources = Sources {
        event_log: PathBuf::new(),
        ima_log: PathBuf::new(),
        files,
        kernel: &kernel,
        tamper,
    };
    Ok(reported(&sources)?.0)
}

/// The components as the `attestation` module's `Reported` (the inverse of the chain's
/// binding into the nonce: `boot` and `ima` are the chain's to compute).
pub fn reported_of(components: &Components) -> Reported {
    let component = |status: Status| match status {
        Status::Unavailable => Component::Unavailable,
        Status::Measured(digest) => Component::Measured(Digest(digest)),
    };
    Reported {
        files: component(components.files),
        lkrg: component(components.lkrg),
        ebpf: component(components.ebpf),
        tamper: match components.tamper {
            integrity::Tamper::Unavailable => Tamper::Unavailable,
            integrity::Tamper::Clear => Tamper::Clear,
            integrity::Tamper::Tripped => Tamper::Tripped,
        },
    }
}

/// What the chain made of a report.
fn describe(receipt: &Receipt, height: u64) -> String {
    let mut said = Vec::new();
    for event in &receipt.events {
        match event {
            RuntimeEvent::Attestation(Event::Attested { due, .. }) => {
                said.push(format!("attested at {height}, next deadline {due}"))
            }
            RuntimeEvent::Attestation(Event::ReferenceUpdated { reference, .. }) => {
                said.push(format!("reference updated to {reference}"))
            }
            RuntimeEvent::Attestation(Event::MachineExcluded { reason, .. }) => {
                said.push(format!("EXCLUDED at {height}: {reason:?}"))
            }
            _ => {}
        }
    }
    if said.is_empty() {
        return format!("report finalized at {height}");
    }
    said.join("; ")
}
