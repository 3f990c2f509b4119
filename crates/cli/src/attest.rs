//! `logos attest replay` (replay measurement logs into PCRs) and `logos provider attest`
//! (collect and check one attestation on this machine, by hand).

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use logos_mia::{
    eventlog,
    evidence::{self, Evidence},
    ima,
    limits::{EVENT_LOG_MAX_BYTES, IMA_LOG_MAX_BYTES},
    pcr::{self, Digest},
    quote::AkPublic,
};
use logos_mia_collect::{
    evidence::{collect, Collected, Sources},
    files::FileSnapshot,
    kernel::HostKernel,
    logs,
    swtpm::Swtpm,
    tamper::FileTamper,
    tpm::{AkKind, AttestationKey, Tpm as _, TssTpm},
};
use serde::{ser::SerializeMap, Serialize, Serializer};
use std::{collections::BTreeMap, path::PathBuf};

/// `logos attest …`.
#[derive(Subcommand)]
pub enum AttestCommand {
    /// Replay a measured-boot event log (PCRs 0–7) and an IMA list (PCR 10, ascii or binary)
    /// into the SHA-256 bank, check each IMA entry's template hash, and with `--pcr10` find
    /// the prefix of the IMA list that matches it.
    Replay {
        /// The IMA measurement list (`ascii_runtime_measurements` or
        /// `binary_runtime_measurements`).
        #[arg(long)]
        ima: Option<PathBuf>,
        /// The TCG event log (`binary_bios_measurements`, crypto-agile format).
        #[arg(long)]
        eventlog: Option<PathBuf>,
        /// A PCR 10 value (SHA-256, hex) to find the matching IMA prefix for.
        #[arg(long)]
        pcr10: Option<String>,
        /// Print JSON: `{"pcrs": {"0": hex, …, "10": hex}, "ima": {"entries": N,
        /// "template_hash_mismatches": [lines], "matched_prefix": K}}`.
        #[arg(long)]
        json: bool,
    },
}

/// PCR values keyed by index, serialized as a JSON object with the keys in numeric order.
struct Pcrs(BTreeMap<u32, Digest>);

impl Serialize for Pcrs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (index, value) in &self.0 {
            map.serialize_entry(&index.to_string(), &pcr::to_hex(value))?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct ImaReplay {
    entries: usize,
    template_hash_mismatches: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    matched_prefix: Option<Option<usize>>,
}

#[derive(Serialize)]
struct Replay {
    pcrs: Pcrs,
    #[serde(skip_serializing_if = "Option::is_none")]
    ima: Option<ImaReplay>,
}

/// Runs `logos attest …`.
pub fn run(command: AttestCommand) -> Result<()> {
    let AttestCommand::Replay {
        ima,
        eventlog,
        pcr10,
        json,
    } = command;
    if ima.is_none() && eventlog.is_none() {
        bail!("give --ima PATH, --eventlog PATH, or both");
    }
    let pcr10 = match pcr10 {
        Some(_) if ima.is_none() => bail!("--pcr10 needs --ima: it picks a prefix of the IMA list"),
        Some(text) => {
            Some(pcr::from_hex(&text).context("--pcr10 must be 64 hex digits (a SHA-256 PCR)")?)
        }
        None => None,
    };
    let replay = replay(ima, eventlog, pcr10)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&replay)?);
    } else {
        print_replay(&replay);
    }
    Ok(())
}

fn replay(
    ima_path: Option<PathBuf>,
    eventlog_path: Option<PathBuf>,
    pcr10: Option<Digest>,
) -> Result<Replay> {
    let mut pcrs = BTreeMap::new();
    if let Some(path) = eventlog_path {
        let bytes = read_bounded(&path, EVENT_LOG_MAX_BYTES)?;
        let log = eventlog::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        pcrs.extend(eventlog::replay(&log).select(pcr::FIRMWARE_PCRS));
    }
    let mut ima_replay = None;
    if let Some(path) = ima_path {
        let bytes = read_bounded(&path, IMA_LOG_MAX_BYTES)?;
        let entries =
            ima::parse(&bytes, usize::MAX).with_context(|| format!("{}", path.display()))?;
        pcrs.insert(pcr::IMA_PCR, ima::replay([0; 32], &entries));
        ima_replay = Some(ImaReplay {
            entries: entries.len(),
            template_hash_mismatches: ima::template_hash_mismatches(&entries),
            matched_prefix: pcr10.map(|value| ima::matched_prefix([0; 32], &entries, &value)),
        });
    }
    Ok(Replay {
        pcrs: Pcrs(pcrs),
        ima: ima_replay,
    })
}

fn print_replay(replay: &Replay) {
    for (index, value) in &replay.pcrs.0 {
        println!("PCR {index:>2}  {}", pcr::to_hex(value));
    }
    if let Some(ima) = &replay.ima {
        println!("IMA entries: {}", ima.entries);
        if ima.template_hash_mismatches.is_empty() {
            println!("template hashes: all match");
        } else {
            println!(
                "template hash mismatches at lines: {:?}",
                ima.template_hash_mismatches
            );
        }
        match ima.matched_prefix {
            Some(Some(prefix)) => println!("the first {prefix} entries replay to the given PCR 10"),
            Some(None) => println!("no prefix of the list replays to the given PCR 10"),
            None => {}
        }
    }
}

fn read_bounded(path: &std::path::Path, max_bytes: usize) -> Result<Vec<u8>> {
    logs::read_optional(path, max_bytes)?
        .with_context(|| format!("{} does not exist", path.display()))
}

/// `logos provider attest`: one attestation collected on this machine and checked here.
#[derive(Args)]
pub struct ProviderAttestArgs {
    /// The TPM's TSS2 TCTI (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`).
    #[arg(
        long,
        env = "LOGOS_TPM_TCTI",
        default_value = "device:/dev/tpmrm0",
        conflicts_with = "swtpm"
    )]
    tcti: String,
    /// Start a software TPM (swtpm) with its state in this directory and use it.
    #[arg(long)]
    swtpm: Option<PathBuf>,
    /// The CA (swtpm's `swtpm_localca`, in this directory) that certifies a software TPM
    /// manufactured by `--swtpm`, and whose certificates make its chain.
    #[arg(long, requires = "swtpm")]
    swtpm_ca: Option<PathBuf>,
    /// The attestation key file (created under the TPM's EK when absent).
    #[arg(long)]
    ak: PathBuf,
    /// The nonce (hex, at most 64 bytes); default 32 random bytes. The chain's is the hash of
    /// a recent finalized block.
    #[arg(long)]
    nonce: Option<String>,
    /// The measured-boot log.
    #[arg(long, default_value = logs::EVENT_LOG_PATH)]
    event_log: PathBuf,
    /// The IMA measurement list (binary or ascii).
    #[arg(long, default_value = logs::IMA_BINARY_PATH)]
    ima: PathBuf,
    /// Paths the file snapshot covers (repeat the flag).
    #[arg(long = "files")]
    files: Vec<PathBuf>,
    /// AIDE's database: the file snapshot is its hash (instead of `--files`).
    #[arg(long, conflicts_with = "files")]
    aide_db: Option<PathBuf>,
    /// The tamper flag's file or sysfs path (`0` closed, `1` opened).
    #[arg(long)]
    tamper: Option<PathBuf>,
    /// The EK's certificate (DER or PEM), for a TPM that does not hold it in its NV.
    #[arg(long)]
    ek_certificate: Option<PathBuf>,
    /// The CA certificates above the EK's (PEM bundle, issuer first, root last).
    #[arg(long)]
    ek_chain: Option<PathBuf>,
    /// An endorsement root's key hash (hex, as `SetEndorsementRoot` approves it) to check the
    /// chain against (repeat the flag); without one, the chain's key hashes are shown.
    #[arg(long = "endorsement-root")]
    endorsement_roots: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `logos provider attest`.
pub fn run_provider_attest(args: ProviderAttestArgs) -> Result<()> {
    let ca = args
        .swtpm_ca
        .as_deref()
        .map(logos_mia_collect::swtpm::LocalCa::at)
        .transpose()?;
    let swtpm = args
        .swtpm
        .as_deref()
        .map(|dir| match &ca {
            Some(ca) => Swtpm::start_certified(dir, 0, ca),
            None => Swtpm::start(dir, 0),
        })
        .transpose()?;
    let ek_chain = match (&args.ek_chain, &ca) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(ca)) => Some(ca.bundle()?),
        (None, None) => None,
    };
    let tcti = swtpm.as_ref().map_or(args.tcti.clone(), Swtpm::tcti);
    let mut tpm = TssTpm::open(&tcti).with_context(|| format!("opening the TPM at {tcti}"))?;
    let key = logos_mia_collect::keyfile::load_or_create(&args.ak, &mut tpm, AkKind::EcdsaP256)?;
    let nonce = match &args.nonce {
        Some(text) => {
            let nonce = logos_primitives::decode_hex(text).context("--nonce must be hex")?;
            if nonce.len() > logos_mia_collect::tpm::NONCE_MAX_BYTES {
                bail!(
                    "the nonce exceeds the limit of {} bytes",
                    logos_mia_collect::tpm::NONCE_MAX_BYTES
                );
            }
            nonce
        }
        None => {
            let mut nonce = vec![0; 32];
            getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            nonce
        }
    };
    let files = match (&args.aide_db, args.files.is_empty()) {
        (Some(database), _) => FileSnapshot::Aide(database.clone()),
        (None, true) => FileSnapshot::None,
        (None, false) => FileSnapshot::Paths(args.files.clone()),
    };
    let kernel = HostKernel::default();
    let tamper = FileTamper {
        path: args.tamper.clone(),
    };
    let sources = Sources {
        event_log: args.event_log.clone(),
        ima_log: args.ima.clone(),
        files: &files,
        kernel: &kernel,
        tamper: &tamper,
    };
    let collected = collect(&mut tpm, &key, &nonce, &sources)?;
    let mut report = check(&key, &nonce, &collected)?;
    report.endorsement = Some(endorsement(&mut tpm, &args, ek_chain.as_deref()));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    match report.verdict {
        Verdict::Verified => Ok(()),
        Verdict::Refused(reason) => bail!("this machine's evidence does not verify: {reason}"),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Verified,
    Refused(String),
}

#[derive(Serialize)]
struct LogSummary {
    entries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    covered_by_quote: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    template_hash_mismatches: Vec<usize>,
}

#[derive(Serialize)]
struct AttestReport {
    verdict: Verdict,
    attestation_key: &'static str,
    tpm_clock_ms: Option<u64>,
    pcrs: Pcrs,
    event_log: Option<LogSummary>,
    ima: Option<LogSummary>,
    components: logos_mia::integrity::Components,
    ebpf_programs: usize,
    integrity_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    endorsement: Option<EndorsementSummary>,
}

/// The EK's certificate chain as the chain would check it at registration.
#[derive(Serialize)]
struct EndorsementSummary {
    /// Certificates in the chain, the EK's first.
    certificates: usize,
    /// Each certificate's key hash (hex): what `SetEndorsementRoot` approves.
    key_hashes: Vec<String>,
    /// Against `--endorsement-root`: verified, or why not (absent without a root given).
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<Verdict>,
}

/// The EK's chain (the TPM's certificate or `--ek-certificate`, then `--ek-chain`), checked
/// against the roots given.
fn endorsement(
    tpm: &mut TssTpm,
    args: &ProviderAttestArgs,
    ek_chain: Option<&std::path::Path>,
) -> EndorsementSummary {
    let refused = |reason: String| EndorsementSummary {
        certificates: 0,
        key_hashes: Vec::new(),
        verdict: Some(Verdict::Refused(reason)),
    };
    let chain = (|| -> Result<Vec<u8>> {
        let leaf = match &args.ek_certificate {
            Some(path) => logos_mia_collect::certs::read_bundle(path)?.swap_remove(0),
            None => tpm
                .endorsement()?
                .certificate
                .context("the TPM holds no EK certificate (give it with --ek-certificate)")?,
        };
        let authorities = match ek_chain {
            Some(path) => logos_mia_collect::certs::read_bundle(path)?,
            None => Vec::new(),
        };
        Ok(logos_mia_collect::certs::chain(&leaf, &authorities)?)
    })();
    let ek = tpm.endorsement().map(|e| e.public);
    let (chain, ek) = match (chain, ek) {
        (Ok(chain), Ok(ek)) => (chain, ek),
        (Err(error), _) => return refused(format!("{error:#}")),
        (_, Err(error)) => return refused(error.to_string()),
    };
    let parsed = match logos_mia::endorsement::Chain::parse(&chain) {
        Ok(parsed) => parsed,
        Err(error) => return refused(error.to_string()),
    };
    let hashes = parsed.key_hashes().unwrap_or_default();
    let roots: Vec<String> = args
        .endorsement_roots
        .iter()
        .map(|root| {
            let root = root.to_lowercase();
            root.strip_prefix("0x").map(str::to_owned).unwrap_or(root)
        })
        .collect();
    let verdict = (!roots.is_empty()).then(|| {
        match parsed.endorse(&ek, |hash| roots.contains(&hex::encode(hash))) {
            Ok(_) => Verdict::Verified,
            Err(error) => Verdict::Refused(error.to_string()),
        }
    });
    EndorsementSummary {
        certificates: parsed.len(),
        key_hashes: hashes.iter().map(hex::encode).collect(),
        verdict,
    }
}

/// Checks the collected evidence as the chain would, with this machine's own measured files as
/// the allowlist (the chain uses its reference's).
fn check(key: &AttestationKey, nonce: &[u8], collected: &Collected) -> Result<AttestReport> {
    let ak = AkPublic::from_tpmt_public(&key.public)?;
    let log = match &collected.event_log {
        Some(bytes) => eventlog::parse(bytes)?,
        None => eventlog::EventLog {
            banks: Vec::new(),
            events: Vec::new(),
            startup_locality: None,
        },
    };
    let entries = match &collected.ima_log {
        Some(bytes) => ima::parse(bytes, usize::MAX)?,
        None => Vec::new(),
    };
    let quoted_ima = collected
        .pcrs
        .get(&pcr::IMA_PCR)
        .copied()
        .unwrap_or_default();
    // The files the quote covers (entries logged after it are not yet attested).
    let covered = ima::matched_prefix([0; 32], &entries, &quoted_ima).unwrap_or(entries.len());
    let allowed = logos_mia::integrity::measured_digests(&entries[..covered]);
    let evidence = Evidence {
        quote: collected.quote.as_quote(),
        pcrs: &collected.pcrs,
        event_log: &log,
        ima: &entries,
        reported: collected.components,
    };
    let outcome = evidence::verify(&ak, nonce, None, &allowed, &evidence);
    Ok(AttestReport {
        verdict: match &outcome {
            Ok(_) => Verdict::Verified,
            Err(error) => Verdict::Refused(error.to_string()),
        },
        attestation_key: match ak {
            AkPublic::Rsa { .. } => "rsa",
            AkPublic::EcdsaP256 { .. } => "ecdsa-p256",
        },
        tpm_clock_ms: outcome.as_ref().ok().map(|v| v.quote.clock.clock_ms),
        endorsement: None,
        pcrs: Pcrs(collected.pcrs.clone()),
        event_log: collected.event_log.as_ref().map(|_| LogSummary {
            entries: log.events.len(),
            covered_by_quote: None,
            template_hash_mismatches: Vec::new(),
        }),
        ima: collected.ima_log.as_ref().map(|_| LogSummary {
            entries: entries.len(),
            covered_by_quote: ima::matched_prefix([0; 32], &entries, &quoted_ima),
            template_hash_mismatches: ima::template_hash_mismatches(&entries),
        }),
        // What the chain would record: the verifier's components (`boot` and `ima` from
        // verified values), or this machine's own when its evidence does not verify.
        components: outcome
            .as_ref()
            .map_or(collected.components, |v| v.components),
        ebpf_programs: collected.ebpf_programs,
        integrity_hash: hex::encode(
            outcome
                .as_ref()
                .map_or(collected.integrity_hash(), |v| v.integrity_hash),
        ),
    })
}

fn status(status: &logos_mia::integrity::Status) -> String {
    match status {
        logos_mia::integrity::Status::Unavailable => "unavailable".to_owned(),
        logos_mia::integrity::Status::Measured(digest) => {
            format!("measured  {}", pcr::to_hex(digest))
        }
    }
}

fn print_report(report: &AttestReport) {
    let verdict = match &report.verdict {
        Verdict::Verified => "verified".to_owned(),
        Verdict::Refused(reason) => format!("REFUSED: {reason}"),
    };
    println!("verdict     {verdict}");
    println!("AK          {}", report.attestation_key);
    if let Some(endorsement) = &report.endorsement {
        let verdict = match &endorsement.verdict {
            None => "no --endorsement-root given".to_owned(),
            Some(Verdict::Verified) => "verified to an approved root".to_owned(),
            Some(Verdict::Refused(reason)) => format!("REFUSED: {reason}"),
        };
        println!(
            "EK chain    {} certificates, {verdict}",
            endorsement.certificates
        );
        for (index, hash) in endorsement.key_hashes.iter().enumerate() {
            println!("  key {index}     {hash}");
        }
    }
    for (index, value) in &report.pcrs.0 {
        println!("PCR {index:>2}      {}", pcr::to_hex(value));
    }
    match &report.event_log {
        Some(log) => println!("event log   {} events", log.entries),
        None => println!("event log   unavailable"),
    }
    match &report.ima {
        Some(ima) => println!(
            "IMA list    {} entries, {} covered by the quote, {} template-hash mismatches",
            ima.entries,
            ima.covered_by_quote
                .map_or("none".to_owned(), |k| k.to_string()),
            ima.template_hash_mismatches.len()
        ),
        None => println!("IMA list    unavailable"),
    }
    let c = &report.components;
    println!("boot        {}", status(&c.boot));
    println!("ima         {}", status(&c.ima));
    println!("files       {}", status(&c.files));
    println!("lkrg        {}", status(&c.lkrg));
    println!(
        "ebpf        {} ({} programs)",
        status(&c.ebpf),
        report.ebpf_programs
    );
    println!("tamper      {}", format!("{:?}", c.tamper).to_lowercase());
    println!("integrity   {}", report.integrity_hash);
}
