//! `logos bench attest`: what verifying attestation reports costs the chain's state transition
//! (module `attestation`), with real TPMs.
//!
//! The benchmark starts one software TPM (swtpm) per machine (`--machines`), boots each the
//! same way (boot PCRs extended, IMA's boot aggregate and files of this host under
//! `/usr/bin` extended into PCR 10), and runs a chain in memory through the runtime's own
//! `execute_block`: governance approves the machines' reference and allowlist, each machine
//! registers its EK and AK, each drawn provisioner (3 by default) challenges it with `TPM2_MakeCredential` and
//! the TPM answers with `TPM2_ActivateCredential`. Then every block carries one report per
//! machine: `StageIma` with `--entries` new IMA entries (extended into PCR 10 first) and
//! `Attest` with a fresh quote of PCRs 0–14 over the nonce of the previous block. Each
//! transaction is checked against the 1 KiB limit, each report must be accepted. Only
//! `execute_block` is timed (signatures are checked before execution, as the node does). It
//! prints:
//!
//! | field | meaning |
//! |---|---|
//! | `verify_us_p50`, `verify_us_p99` | one report (its staging and its quote) through the state transition, µs: a block's execution time over its reports, less an empty block's |
//! | `block_ms_p50` | a block of `machines` reports, executed, ms |
//! | `empty_block_us_p50` | an empty block at the same state, µs |
//! | `reports_per_block` | reports one block can carry while its execution stays within `budget_ms` (`--budget-ms`, default 10: well under the devnet's block time, so validators still vote in time) |
//! | `report_bytes_max` | the largest report transaction, bytes (limit 1,024) |
//! | `quote_ms_p50` | the TPM's quote, ms (swtpm; a hardware TPM takes 20–200 ms) |
//! | `endorsement_us_p50` | a registration's EK certificate chain checked (parse, anchor, signatures; swtpm's chain: RSA-3072 CA keys), µs; a block runs at most 16 |
//! | `reports`, `machines`, `ima_entries_per_report` | the run's size |

use anyhow::{bail, ensure, Context as _, Result};
use commonware_cryptography::Signer as _;
use futures::executor::block_on;
use logos_attestation::report::bound_components;
use logos_framework::MapExt as _;
use logos_mia::{
    credential,
    evidence::{quote_nonce, quoted_pcrs},
    ima, integrity,
    pcr::{self, BOOT_PCRS},
};
use logos_mia_collect::{
    files,
    swtpm::Swtpm,
    tpm::{AkKind, AttestationKey, Tpm, TssTpm},
};
use logos_primitives::{hash, Address, Amount, ChainId, PrivateKey};
use logos_runtime::{execute_block, genesis_state, BlockContext, State};
use logos_types::{
    attestation::{
        self, report_nonce, Component, Digest, ImaPolicy, MachineStatus, Machines, Nonces,
        Reference, Reported, Start, Tamper, DRAW_DELAY_BLOCKS, FILES_PER_CALL_MAX,
        IMA_ENTRIES_PER_CALL_MAX,
    },
    codec::{encode, BoundedVec},
    dvci::{self, ProviderId, RegionId, ResourceClass, Resources},
    genesis::{GenesisAccount, GenesisValidator},
    provisioning,
    transaction::{TransactionPayload, TRANSACTION_MAX_BYTES},
    Call, Event, Genesis, Params, Transaction,
};
use rand_chacha::rand_core::{RngCore as _, SeedableRng as _};
use std::{collections::BTreeMap, path::PathBuf, time::Instant};

/// The IMA allowlist of the benchmark's reference.
const POLICY: u32 = 1;
/// The file snapshot every machine reports.
const FILES: Digest = Digest([0xF1; 32]);
/// Tokens each account starts with, smallest unit.
const FUNDS: u128 = 1_000_000_000_000;

/// The benchmark's size.
pub struct AttestBench {
    /// Reports verified in all.
    pub reports: usize,
    /// New IMA entries per report.
    pub entries: usize,
    /// Machines (swtpm instances): reports per block.
    pub machines: usize,
    /// Execution budget of one block, ms.
    pub budget_ms: f64,
}

/// Runs the benchmark (module docs) and returns its JSON object.
pub fn run(bench: &AttestBench, json: bool) -> Result<serde_json::Value> {
    ensure!(
        Swtpm::installed(),
        "swtpm is not installed (scripts/install-deps installs it)"
    );
    let dir = tempfile::Builder::new()
        .prefix("logos-bench-attest-")
        .tempdir()?;
    let mut machines = Vec::with_capacity(bench.machines);
    let ca = logos_mia_collect::swtpm::LocalCa::at(&dir.path().join("ca"))?;
    for index in 0..bench.machines {
        let swtpm = Swtpm::start_certified(&dir.path().join(format!("tpm-{index}")), 0, &ca)?;
        let mut tpm = TssTpm::open(&swtpm.tcti())?;
        let boot_list = boot(&mut tpm)?;
        let key = tpm.create_attestation_key(AkKind::EcdsaP256)?;
        machines.push(Machine {
            tpm,
            _swtpm: swtpm,
            key,
            boot_list,
        });
    }
    let blocks = bench.reports.div_ceil(bench.machines.max(1));
    let files = host_files(blocks.saturating_mul(bench.entries).max(1))?;
    if !json {
        eprintln!(
            "{} machines, {blocks} blocks of one report each, {} new IMA entries per report",
            bench.machines, bench.entries
        );
    }
    let mut chain = Chain::new(bench.machines)?;
    chain.admit(&mut machines, &files, &ca)?;
    let endorsement_us = endorsement_us(&mut machines, &ca)?;
    let mut result = measure(&mut chain, &mut machines, &files, bench, blocks)?;
    result["endorsement_us_p50"] = serde_json::json!(super::round(endorsement_us));
    Ok(result)
}

/// Times the check a registration's first deadline runs on the first machine's real chain
/// (swtpm's EK certificate, its CA's RSA-3072 intermediate and root): parse, anchor, verify;
/// the median of 64 runs, µs.
fn endorsement_us(machines: &mut [Machine], ca: &logos_mia_collect::swtpm::LocalCa) -> Result<f64> {
    use logos_mia::endorsement::{certificate_key_hash, Chain};
    let machine = machines.first_mut().context("no machines")?;
    let endorsement = machine.tpm.endorsement()?;
    let certificate = endorsement
        .certificate
        .as_deref()
        .context("swtpm stored no EK certificate")?;
    let chain = logos_mia_collect::certs::chain(certificate, &ca.authorities()?)?;
    let root = certificate_key_hash(&ca.root()?).map_err(anyhow::Error::msg)?;
    let mut runs = Vec::with_capacity(64);
    for _ in 0..64 {
        let start = std::time::Instant::now();
        let parsed = Chain::parse(&chain).map_err(anyhow::Error::msg)?;
        parsed
            .endorse(&endorsement.public, |hash| *hash == root)
            .map_err(anyhow::Error::msg)?;
        runs.push(start.elapsed().as_secs_f64() * 1e6);
    }
    runs.sort_by(f64::total_cmp);
    Ok(super::percentile(&runs, 0.5))
}

/// One machine: its TPM and attestation key.
struct Machine {
    tpm: TssTpm,
    _swtpm: Swtpm,
    key: AttestationKey,
    boot_list: Vec<Vec<u8>>,
}

/// The boot every machine does: firmware, boot loader and kernel extend their PCRs. Returns
/// IMA's list so far: the boot aggregate.
fn boot(tpm: &mut TssTpm) -> Result<Vec<Vec<u8>>> {
    for index in [0, 2, 4, 7, 8, 9, 11, 14] {
        tpm.extend(index, &pcr::sha256(format!("boot {index}").as_bytes()))?;
    }
    let boot = tpm.read_pcrs(&BOOT_PCRS)?;
    // IMA's first entry; the first report block extends it into PCR 10.
    let aggregate = ima::template_data(
        "sha256",
        &ima::boot_aggregate(&boot),
        ima::BOOT_AGGREGATE,
        None,
    );
    Ok(vec![aggregate])
}

/// A chain in memory: its state and keys, blocks through the runtime's `execute_block`.
struct Chain {
    state: State,
    genesis: Genesis,
    chain_id: ChainId,
    height: u64,
    root: PrivateKey,
    owner: PrivateKey,
    /// As many provisioners as a registration may have to answer challengers.
    provisioners: Vec<PrivateKey>,
    nonces: BTreeMap<Address, u64>,
}

impl Chain {
    fn new(machines: usize) -> Result<Self> {
        let (root, owner) = (PrivateKey::from_seed(1), PrivateKey::from_seed(2));
        let validator = PrivateKey::from_seed(4);
        let provisioners: Vec<PrivateKey> = (0..attestation::CHALLENGES_REQUIRED_MAX as u64)
            .map(|k| PrivateKey::from_seed(10 + k))
            .collect();
        let accounts = [&root, &owner]
            .into_iter()
            .chain(&provisioners)
            .map(|key| GenesisAccount {
                address: Address::from_public_key(&key.public_key()),
                balance: Amount(FUNDS),
            })
            .collect();
        let genesis = Genesis {
            chain_name: "bench-attest".into(),
            timestamp_ms: 0,
            params: Params {
                privileged_account: Some(Address::from_public_key(&root.public_key())),
                ..Params::default()
            },
            validators: vec![GenesisValidator {
                public_key: logos_primitives::format_public_key(&validator.public_key()),
                p2p_address: ([127, 0, 0, 1], 1).into(),
            }],
            accounts,
            parent: None,
        };
        let mut state = State::new();
        logos_framework::apply(
            &mut state,
            genesis_state(&genesis).map_err(anyhow::Error::msg)?,
        );
        let mut chain = Self {
            state,
            chain_id: genesis.chain_id(),
            genesis,
            height: 0,
            root,
            owner,
            provisioners,
            nonces: BTreeMap::new(),
        };
        chain.setup_providers(machines)?;
        Ok(chain)
    }

    fn sign(&mut self, key: &PrivateKey, call: impl Into<Call>) -> Transaction {
        let nonce = self
            .nonces
            .entry(Address::from_public_key(&key.public_key()))
            .or_default();
        let transaction = TransactionPayload {
            chain_id: self.chain_id,
            sender: key.public_key(),
            nonce: *nonce,
            fee: self.genesis.params.min_fee,
            call: call.into(),
        }
        .sign(key);
        *nonce = nonce.saturating_add(1);
        transaction
    }

    fn context(&self) -> BlockContext {
        let height = self.height.saturating_add(1);
        BlockContext {
            chain_id: self.chain_id,
            height,
            author: Address([0xAA; 20]),
            params: self.genesis.params.clone(),
            randomness: hash(&[b"bench-attest", &height.to_be_bytes()]),
            parent: hash(&[b"bench-attest-parent", &height.to_be_bytes()]),
        }
    }

    /// Executes a block of `transactions` (timed); every call must succeed.
    fn execute(&mut self, transactions: &[Transaction]) -> Result<(f64, Vec<Event>)> {
        let context = self.context();
        let started = Instant::now();
        let outcome = block_on(execute_block(&self.state, &context, transactions))?;
        let elapsed_us = started.elapsed().as_secs_f64() * 1e6;
        let mut events = outcome.block_events;
        for receipt in outcome.receipts {
            if !receipt.success {
                bail!("a benchmark call failed: {:?}", receipt.error);
            }
            events.extend(receipt.events);
        }
        logos_framework::apply(&mut self.state, outcome.writes);
        self.height = context.height;
        Ok((elapsed_us, events))
    }

    fn call(&mut self, key: &PrivateKey, call: impl Into<Call>) -> Result<Vec<Event>> {
        let key = key.clone();
        let transaction = self.sign(&key, call);
        Ok(self.execute(&[transaction])?.1)
    }

    fn privileged(&mut self, call: impl Into<Call>) -> Result<()> {
        let root = self.root.clone();
        self.call(&root, call).map(|_| ())
    }

    /// A region, `count` providers of the owner and the challenging provisioner.
    fn setup_providers(&mut self, count: usize) -> Result<()> {
        self.privileged(dvci::Call::CreateRegion {
            region: RegionId(1),
            name: "bench".try_into().map_err(anyhow::Error::msg)?,
        })?;
        let owner = self.owner.clone();
        for _ in 0..count {
            self.call(
                &owner,
                dvci::Call::RegisterProvider {
                    endpoint: "127.0.0.1:7100".try_into().map_err(anyhow::Error::msg)?,
                    inventory: Resources {
                        vcpu: 8,
                        memory_mib: 8_192,
                        disk_gib: 100,
                        gpus: 0,
                    },
                    class: ResourceClass::ComputeHosted,
                    region: RegionId(1),
                    bond: Amount(1_000_000),
                },
            )?;
        }
        for provisioner in self.provisioners.clone() {
            self.call(
                &provisioner,
                provisioning::Call::RegisterProvisioner {
                    stake: Amount(10_000_000),
                },
            )?;
        }
        Ok(())
    }

    /// Approves the machines' reference, allowlist and CA root, registers each machine (its
    /// EK's chain staged) and has the provisioner challenge it and its TPM answer.
    fn admit(
        &mut self,
        machines: &mut [Machine],
        files: &[(String, [u8; 32])],
        ca: &logos_mia_collect::swtpm::LocalCa,
    ) -> Result<()> {
        let Some(first) = machines.first_mut() else {
            bail!("no machines");
        };
        let boot = first.tpm.read_pcrs(&BOOT_PCRS)?;
        let boot_pcrs: Vec<Digest> = boot.values().map(|value| Digest(*value)).collect();
        let reference = Reference {
            class: ResourceClass::ComputeHosted,
            boot_pcrs: boot_pcrs
                .try_into()
                .map_err(|_| anyhow::anyhow!("14 boot PCRs"))?,
            ima: Some(ImaPolicy {
                policy: POLICY,
                digest: Digest(integrity::allowlist_digest(
                    &files.iter().map(|(_, digest)| *digest).collect(),
                )),
                violations_max: 0,
            }),
            files: Component::Measured(FILES),
            lkrg: Component::Unavailable,
            ebpf: Component::Unavailable,
        };
        let id = reference.id();
        self.privileged(attestation::Call::ApproveReference { reference })?;
        self.privileged(attestation::Call::SetClassReference {
            class: ResourceClass::ComputeHosted,
            reference: id,
        })?;
        let mut digests: Vec<Digest> = files.iter().map(|(_, digest)| Digest(*digest)).collect();
        digests.sort();
        digests.dedup();
        for chunk in digests.chunks(FILES_PER_CALL_MAX) {
            self.privileged(attestation::Call::AllowFiles {
                policy: POLICY,
                files: chunk.to_vec().try_into().map_err(anyhow::Error::msg)?,
                allowed: true,
            })?;
        }
        let root = logos_mia::endorsement::certificate_key_hash(&ca.root()?)
            .map_err(anyhow::Error::msg)?;
        self.privileged(attestation::Call::SetEndorsementRoot {
            root: Digest(root),
            approved: true,
        })?;
        let authorities = ca.authorities()?;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for (index, machine) in (0u64..).zip(machines.iter_mut()) {
            self.admit_one(ProviderId(index), machine, &authorities, &mut rng)?;
        }
        Ok(())
    }

    fn admit_one(
        &mut self,
        provider: ProviderId,
        machine: &mut Machine,
        authorities: &[Vec<u8>],
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> Result<()> {
        let endorsement = machine.tpm.endorsement()?;
        let owner = self.owner.clone();
        let certificate = endorsement
            .certificate
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("swtpm stored no EK certificate"))?;
        let chain = logos_mia_collect::certs::chain(certificate, authorities)?;
        for call in attestation::staging_calls(provider, &chain) {
            self.call(&owner, call)?;
        }
        self.call(
            &owner,
            attestation::Call::RegisterMachine {
                provider,
                ek_public: endorsement
                    .public
                    .clone()
                    .try_into()
                    .map_err(anyhow::Error::msg)?,
                ak_public: machine
                    .key
                    .public
                    .clone()
                    .try_into()
                    .map_err(anyhow::Error::msg)?,
            },
        )?;
        // Each drawn provisioner challenges, the TPM answers, until the machine attests.
        for _ in 0..attestation::CHALLENGES_REQUIRED_MAX {
            for _ in 0..DRAW_DELAY_BLOCKS {
                self.execute(&[])?;
            }
            let status = Machines::get_from(&self.state, &provider)?.map(|record| record.status);
            match status {
                Some(MachineStatus::AwaitingChallenge { challenger }) => {
                    self.answer(provider, machine, &endorsement.public, challenger, rng)?
                }
                _ => break,
            }
        }
        let attesting = Machines::get_from(&self.state, &provider)?
            .is_some_and(|record| record.status == MachineStatus::Attesting);
        ensure!(attesting, "machine {provider} was not admitted");
        Ok(())
    }

    /// `challenger` posts a `TPM2_MakeCredential` challenge; `machine`'s TPM answers it.
    fn answer(
        &mut self,
        provider: ProviderId,
        machine: &mut Machine,
        ek_public: &[u8],
        challenger: Address,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> Result<()> {
        let provisioner = self
            .provisioners
            .iter()
            .find(|key| Address::from_public_key(&key.public_key()) == challenger)
            .context("the challenger is one of the bench's provisioners")?
            .clone();
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let challenge = credential::make_credential(ek_public, &machine.key.public, &secret, rng)?;
        self.call(
            &provisioner,
            attestation::Call::Challenge {
                provider,
                credential_blob: challenge
                    .credential_blob
                    .try_into()
                    .map_err(anyhow::Error::msg)?,
                encrypted_secret: challenge.secret.try_into().map_err(anyhow::Error::msg)?,
                credential_hash: Digest(pcr::sha256(&secret)),
            },
        )?;
        let stored = Machines::get_from(&self.state, &provider)?
            .and_then(|record| record.challenge)
            .context("the challenge is on chain")?;
        let answer = machine.tpm.activate_credential(
            &machine.key,
            &stored.credential_blob,
            &stored.encrypted_secret,
        )?;
        let owner = self.owner.clone();
        self.call(
            &owner,
            attestation::Call::ActivateCredential {
                provider,
                credential: answer.try_into().map_err(anyhow::Error::msg)?,
            },
        )?;
        Ok(())
    }
}

/// The reported components (bound into the nonce).
fn reported() -> Reported {
    Reported {
        files: Component::Measured(FILES),
        lkrg: Component::Unavailable,
        ebpf: Component::Unavailable,
        tamper: Tamper::Clear,
    }
}

/// `StageIma` transactions carrying `list`, each within the transaction limit.
fn staging(
    chain: &mut Chain,
    provider: ProviderId,
    start: Start,
    list: &[Vec<u8>],
) -> Result<Vec<Transaction>> {
    let owner = chain.owner.clone();
    let mut transactions = Vec::new();
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut first = start;
    for data in list {
        let candidate: Vec<Vec<u8>> = pending.iter().cloned().chain([data.clone()]).collect();
        let fits = candidate.len() <= IMA_ENTRIES_PER_CALL_MAX
            && candidate
                .iter()
                .map(|d| d.len().saturating_add(4))
                .sum::<usize>()
                <= 700;
        if !fits {
            transactions.push(stage_call(chain, &owner, provider, first, &pending)?);
            first = Start::Continue;
            pending.clear();
        }
        pending.push(data.clone());
    }
    if !pending.is_empty() {
        transactions.push(stage_call(chain, &owner, provider, first, &pending)?);
    }
    Ok(transactions)
}

fn stage_call(
    chain: &mut Chain,
    owner: &PrivateKey,
    provider: ProviderId,
    start: Start,
    entries: &[Vec<u8>],
) -> Result<Transaction> {
    let entries: Vec<BoundedVec<u8, { attestation::IMA_ENTRY_MAX_BYTES }>> = entries
        .iter()
        .map(|data| data.clone().try_into().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    Ok(chain.sign(
        owner,
        attestation::Call::StageIma {
            provider,
            start,
            entries: entries.try_into().map_err(anyhow::Error::msg)?,
        },
    ))
}

/// Runs `blocks` blocks of one report per machine and summarizes their timings.
fn measure(
    chain: &mut Chain,
    machines: &mut [Machine],
    files: &[(String, [u8; 32])],
    bench: &AttestBench,
    blocks: usize,
) -> Result<serde_json::Value> {
    let mut block_us = Vec::with_capacity(blocks);
    let mut empty_us = Vec::with_capacity(blocks);
    let mut quote_ms = Vec::new();
    let mut report_bytes_max = 0usize;
    let mut next_file = files.iter().cycle();
    for block in 0..=blocks {
        let anchor = chain.height;
        let anchor_nonce = Nonces::get_from(&chain.state, &anchor)?.context("the last nonce")?;
        let mut transactions = Vec::new();
        for (index, machine) in (0u64..).zip(machines.iter_mut()) {
            let provider = ProviderId(index);
            // The first block stages each machine's list from boot; it is not timed.
            let list: Vec<Vec<u8>> = match block {
                0 => machine.boot_list.clone(),
                _ => (0..bench.entries)
                    .filter_map(|_| next_file.next())
                    .map(|(path, digest)| ima::template_data("sha256", digest, path, None))
                    .collect(),
            };
            for data in &list {
                machine.tpm.extend(10, &pcr::sha256(data))?;
            }
            let start = match block {
                0 => Start::Boot,
                _ => Start::LastReport,
            };
            if !list.is_empty() {
                transactions.extend(staging(chain, provider, start, &list)?);
            }
            let chain_nonce = report_nonce(&anchor_nonce, provider);
            let nonce = quote_nonce(&chain_nonce.0, &bound_components(&reported()));
            let quoted = Instant::now();
            let quote = machine.tpm.quote(&machine.key, &nonce, &quoted_pcrs())?;
            quote_ms.push(quoted.elapsed().as_secs_f64() * 1e3);
            let owner = chain.owner.clone();
            let report = chain.sign(
                &owner,
                attestation::Call::Attest {
                    provider,
                    anchor,
                    attest: quote.attest.try_into().map_err(anyhow::Error::msg)?,
                    signature: quote.signature.try_into().map_err(anyhow::Error::msg)?,
                    reported: reported(),
                    ima_pcr: Digest(machine.tpm.read_pcrs(&[10])?[&10]),
                },
            );
            transactions.push(report);
        }
        for transaction in &transactions {
            let size = encode(transaction).len();
            ensure!(
                size <= TRANSACTION_MAX_BYTES,
                "a report transaction is {size} bytes, over the limit"
            );
            report_bytes_max = report_bytes_max.max(size);
        }
        let (elapsed_us, events) = chain.execute(&transactions)?;
        let excluded = events.iter().any(|event| {
            matches!(
                event,
                Event::Attestation(attestation::Event::MachineExcluded { .. })
            )
        });
        ensure!(!excluded, "an honest machine was excluded");
        if block > 0 {
            block_us.push(elapsed_us);
            empty_us.push(chain.execute(&[])?.0);
        }
    }
    summarize(block_us, empty_us, quote_ms, report_bytes_max, bench)
}

fn summarize(
    mut block_us: Vec<f64>,
    mut empty_us: Vec<f64>,
    mut quote_ms: Vec<f64>,
    report_bytes_max: usize,
    bench: &AttestBench,
) -> Result<serde_json::Value> {
    ensure!(!block_us.is_empty(), "no report block ran");
    let machines = bench.machines.max(1) as f64;
    let empty_p50 = {
        empty_us.sort_by(f64::total_cmp);
        super::percentile(&empty_us, 0.5)
    };
    let mut per_report: Vec<f64> = block_us
        .iter()
        .map(|us| (us - empty_p50).max(0.0) / machines)
        .collect();
    per_report.sort_by(f64::total_cmp);
    block_us.sort_by(f64::total_cmp);
    quote_ms.sort_by(f64::total_cmp);
    let p50 = super::percentile(&per_report, 0.5);
    let budget_us = bench.budget_ms * 1e3 - empty_p50;
    Ok(serde_json::json!({
        "verify_us_p50": super::round(p50),
        "verify_us_p99": super::round(super::percentile(&per_report, 0.99)),
        "block_ms_p50": super::round(super::percentile(&block_us, 0.5) / 1e3),
        "empty_block_us_p50": super::round(empty_p50),
        "reports_per_block": (budget_us.max(0.0) / p50.max(1.0)).floor(),
        "budget_ms": bench.budget_ms,
        "report_bytes_max": report_bytes_max,
        "quote_ms_p50": super::round(super::percentile(&quote_ms, 0.5)),
        "reports": per_report.len() * bench.machines,
        "machines": bench.machines,
        "ima_entries_per_report": bench.entries,
    }))
}

/// `count` regular files of this host with their SHA-256 (what IMA would log for them),
/// cycling through `/usr/bin` if it has fewer.
fn host_files(count: usize) -> Result<Vec<(String, [u8; 32])>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("/usr/bin")
        .context("reading /usr/bin")?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .take(4_096)
        .collect();
    paths.sort();
    ensure!(!paths.is_empty(), "/usr/bin has no files");
    let mut measured = Vec::with_capacity(paths.len());
    for path in &paths {
        // Paths short enough to stage several entries per transaction.
        let text = path.display().to_string();
        if text.len() > 64 {
            continue;
        }
        if let Ok(digest) = files::hash_file(path) {
            measured.push((text, digest));
        }
        if measured.len() >= count {
            break;
        }
    }
    Ok(measured.iter().cycle().take(count).cloned().collect())
}
