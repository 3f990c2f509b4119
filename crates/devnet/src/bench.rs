//! `logos bench …`: whole-scenario benchmarks.
//!
//! `logos bench lease --leases 5 --json` starts a devnet with the sub0layer and measures, per
//! lease of the "Logos full node" template, the time from submitting `CreateLease` to the
//! environment's `Ready` and `Verified` conditions (see [`run_lease_bench`] for the fields).
//!
//! `logos bench attest --json` measures verifying attestation reports in the state transition
//! (module `attestation`, real TPMs: swtpm), and how many fit in a block (see [`attest`] for
//! the fields).
//!
//! `logos bench epoch --json` starts a devnet with short epochs and reports the longest pause
//! in finality across epoch changes (see [`run_epoch_bench`]).
//!
//! `logos bench consensus --validators N --seconds S --json` starts an N-validator devnet (as
//! separate processes), drives signed transfers from funded accounts through the validators'
//! RPC at `--tps` per second for S seconds, and follows finalized heads over WebSocket. It
//! prints one JSON object:
//!
//! | field | meaning |
//! |---|---|
//! | `finality_ms_p50`, `finality_ms_p99` | offer (the moment the load generator signs and queues the transaction for its sender's submitter; one submitter per sender, in nonce order) to the finalized head that carries the transaction, as seen by a subscriber of validator 0 |
//! | `offered_tps`, `seconds` | the offered load (`--tps`) and the window (`--seconds`) |
//! | `block_interval_ms_p50` | median difference of consecutive finalized block timestamps |
//! | `finalized_tps` | transactions submitted in the window and finalized, divided by S |
//! | `validators` | N |
//! | `rss_mb_max` | largest peak resident set (VmHWM) over the validator processes, MiB |
//! | `submitted`, `rejected`, `finalized` | counts |
//! | `unfinalized` | submitted, accepted by the RPC, and not finalized within 10 s after the window (none expected) |
//! | `disk_mb_per_hour` | growth of a validator's storage (allocated bytes of its data directory, logs excluded; the mean over validators) during the load window, MiB per hour |
//! | `disk_mb_per_hour_idle` | the same over `--idle-seconds` without load, before the window |
//!
//! With `--sweep-to-tps MAX` (and `--sweep-step-tps`, default 500) it runs at `--tps`, then at
//! each step up to MAX, a fresh devnet each, stopping after the first run that is not
//! sustained (`finality_ms_p99` over 1,000 ms, or any transaction rejected or unfinalized, or
//! the run failed: then its step is `{"offered_tps", "error"}`), and prints `{"steps": [one
//! object as above per run], "max_offered_tps_p99_within_1s", "finalized_tps_at_max"}` (null
//! when even the first run was not sustained).

pub mod attest;

use crate::network::{self as devnet, DevnetArgs};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use commonware_cryptography::Signer;
use jsonrpsee::{core::client::Subscription, ws_client::WsClientBuilder};
use logos_api::rpc::{Head, LogosApiClient};
use logos_client::keystore;
use logos_primitives::{format_hash, Address, Amount, PrivateKey};
use logos_types::{balances, catalog::TemplateId, codec::encode, market, Call, TransactionPayload};
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// `logos bench …`
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Finality latency and throughput of an N-validator devnet under transfer load.
    Consensus {
        /// Number of validators.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Length of the load window, seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Offered load, transactions per second.
        #[arg(long, default_value_t = 2_500, value_parser = clap::value_parser!(u64).range(1..))]
        tps: u64,
        /// Number of sending accounts.
        #[arg(long, default_value_t = 64)]
        accounts: usize,
        /// Length of the idle window before the load, seconds (for `disk_mb_per_hour_idle`).
        #[arg(long, default_value_t = 30)]
        idle_seconds: u64,
        /// Also run at `--tps` + k × `--sweep-step-tps` up to this load (a fresh devnet each),
        /// stopping after the first that is not sustained (p99 over 1,000 ms, or a transaction
        /// refused or never finalized), and report the highest sustained load (see the module
        /// docs).
        #[arg(long)]
        sweep_to_tps: Option<u64>,
        /// Step of `--sweep-to-tps`, transactions per second.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
        sweep_step_tps: u64,
        /// Print only the JSON result.
        #[arg(long)]
        json: bool,
        /// Devnet directory (default: a fresh directory under $TMPDIR).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The longest pause in finality across epoch changes: an N-validator devnet with short
    /// epochs, its finalized heads followed over WebSocket across `--epochs` changes (see
    /// [`run_epoch_bench`] for the fields).
    Epoch {
        /// Number of validators.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Epoch changes to cross.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
        epochs: u64,
        /// Epoch length, blocks.
        #[arg(long, default_value_t = 100)]
        epoch_length_blocks: u64,
        /// Print only the JSON result.
        #[arg(long)]
        json: bool,
        /// Devnet directory (default: a fresh directory under $TMPDIR).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Time from `lease create` to a Running and to a Verified "Logos full node" environment
    /// (its node synced), over several leases on a fresh devnet with the sub0layer, with the
    /// providers' image caches warm; and the time to pull the node's image into a cold cache.
    Lease {
        /// Number of leases (one after another; each is closed once measured).
        #[arg(long, default_value_t = 5)]
        leases: usize,
        /// The template leased (0: "Logos full node", whose health check passes once the
        /// node has synced the chain from genesis; 1: "Static web server").
        #[arg(long, default_value_t = 0)]
        template: u32,
        /// Number of validators (each runs a provisioner).
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Print only the JSON result.
        #[arg(long)]
        json: bool,
        /// Devnet directory (default: a fresh directory under $TMPDIR).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Machine Integrity Attestation reports through the state transition: machines with
    /// swtpm admitted on an in-memory chain, then blocks of one report (staged IMA entries and
    /// a fresh quote) per machine, executed by the runtime and timed.
    Attest {
        /// Reports verified in all (one per machine per block).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        reports: u64,
        /// New IMA entries per report.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=4_096))]
        entries: u64,
        /// Machines, each with its own swtpm: the reports in one block.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
        machines: u64,
        /// Execution time one block's reports may take, ms (`reports_per_block`).
        #[arg(long, default_value_t = 10.0)]
        budget_ms: f64,
        /// Print only the JSON result.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `logos bench …`.
pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Consensus {
            validators,
            seconds,
            tps,
            accounts,
            idle_seconds,
            sweep_to_tps,
            sweep_step_tps,
            json,
            dir,
        } => {
            let bench = ConsensusBench {
                validators,
                accounts,
                load: Load {
                    tps,
                    seconds,
                    idle_seconds,
                },
                json,
                dir,
            };
            let report = match sweep_to_tps {
                None => bench.run()?,
                Some(last) => bench.sweep(last, sweep_step_tps)?,
            };
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        BenchCommand::Epoch {
            validators,
            epochs,
            epoch_length_blocks,
            json,
            dir,
        } => {
            let report = run_epoch_bench(validators, epochs, epoch_length_blocks, json, dir)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        BenchCommand::Lease {
            leases,
            template,
            validators,
            json,
            dir,
        } => run_lease_bench(leases, TemplateId(template), validators, json, dir),
        BenchCommand::Attest {
            reports,
            entries,
            machines,
            budget_ms,
            json,
        } => {
            anyhow::ensure!(
                budget_ms.is_finite() && budget_ms > 0.0,
                "--budget-ms must be a positive number of milliseconds"
            );
            let bench = attest::AttestBench {
                reports: reports as usize,
                entries: entries as usize,
                machines: machines as usize,
                budget_ms,
            };
            let report = attest::run(&bench, json)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}

/// Highest p99 finality a sweep step may have to count as sustained, ms.
pub const SWEEP_P99_MAX_MS: f64 = 1_000.0;

/// One `logos bench consensus` configuration.
struct ConsensusBench {
    validators: usize,
    accounts: usize,
    load: Load,
    json: bool,
    dir: Option<PathBuf>,
}

impl ConsensusBench {
    /// Runs at `self.load.tps`, then `+ step` up to `last`, each on a fresh devnet, until a
    /// step is not sustained (p99 over [`SWEEP_P99_MAX_MS`], or a transaction refused or
    /// never finalized; a run that fails counts as not sustained, with its error); the steps,
    /// and the highest sustained load with its `finalized_tps` (null if none was).
    fn sweep(&self, last: u64, step: u64) -> Result<serde_json::Value> {
        if step == 0 || last < self.load.tps {
            bail!("--sweep-to-tps must be at least --tps, and --sweep-step-tps above 0");
        }
        let mut steps = Vec::new();
        let mut sustained: Option<serde_json::Value> = None;
        let mut next = Some(self.load.tps);
        while let Some(tps) = next.filter(|tps| *tps <= last) {
            let run = ConsensusBench {
                load: Load { tps, ..self.load },
                dir: self.dir.clone(),
                ..*self
            }
            .run();
            let report = run.unwrap_or_else(
                |error| serde_json::json!({ "offered_tps": tps, "error": format!("{error:#}") }),
            );
            let within = report["finality_ms_p99"]
                .as_f64()
                .is_some_and(|p99| p99 <= SWEEP_P99_MAX_MS)
                && report["unfinalized"] == 0
                && report["rejected"] == 0;
            if within {
                sustained = Some(report.clone());
            }
            steps.push(report);
            if !within {
                break;
            }
            next = tps.checked_add(step);
        }
        Ok(serde_json::json!({
            "steps": steps,
            "max_offered_tps_p99_within_1s": sustained.as_ref().map(|report| report["offered_tps"].clone()),
            "finalized_tps_at_max": sustained.as_ref().map(|report| report["finalized_tps"].clone()),
        }))
    }

    /// One run: a fresh devnet loaded at `self.load` (see the module docs for the fields).
    fn run(&self) -> Result<serde_json::Value> {
        let (validators, tps, seconds) = (self.validators, self.load.tps, self.load.seconds);
        let args = bench_devnet(validators, self.accounts, 0, self.dir.clone());
        let layout = devnet::init(&args)?;
        let mut processes = spawn_validators(&layout)?;
        if !self.json {
            eprintln!("{validators} validators up; loading {tps} tx/s for {seconds} s");
        }
        let keys: Result<Vec<PrivateKey>> = (0..self.accounts)
            .map(|j| Ok(keystore::load(&layout.keystore, &format!("account-{j}"))?))
            .collect();
        let urls: Vec<String> = processes
            .iter()
            .map(|process| process.rpc.clone())
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let storage = Storage {
            dirs: layout
                .configs
                .iter()
                .filter_map(|config| config.parent().map(PathBuf::from))
                .collect(),
        };
        let result =
            keys.and_then(|keys| runtime.block_on(drive(&urls, keys, &self.load, &storage)));
        let pids: Vec<u32> = processes.iter().map(|process| process.child.id()).collect();
        let rss_mb_max = pids
            .iter()
            .filter_map(|pid| peak_rss_mb(*pid))
            .fold(0.0f64, f64::max);
        devnet::stop(&mut processes);
        let _ = std::fs::remove_dir_all(&layout.dir);
        let mut report = result?;
        report["validators"] = validators.into();
        report["rss_mb_max"] = serde_json::json!((rss_mb_max * 10.0).round() / 10.0);
        Ok(report)
    }
}

/// Starts every validator of `layout`; on a failure, stops those started.
fn spawn_validators(layout: &devnet::Layout) -> Result<Vec<devnet::Validator>> {
    let mut processes = Vec::new();
    for config in &layout.configs {
        match devnet::spawn(config, None, Duration::from_secs(60)) {
            Ok(process) => processes.push(process),
            Err(error) => {
                devnet::stop(&mut processes);
                return Err(error);
            }
        }
    }
    Ok(processes)
}

/// Peak resident set of `pid` in MiB (VmHWM from /proc).
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Finalized blocks to see before the load starts.
const WARM_UP_BLOCKS: usize = 10;

/// The offered load.
#[derive(Clone, Copy)]
struct Load {
    tps: u64,
    seconds: u64,
    idle_seconds: u64,
}

/// The validators' data directories, measured for `disk_mb_per_hour`.
struct Storage {
    dirs: Vec<PathBuf>,
}

impl Storage {
    /// Mean allocated bytes per validator (log files left out: their size depends on the log
    /// level, not on the chain).
    fn mean_bytes(&self) -> f64 {
        let total: u64 = self.dirs.iter().map(|dir| allocated_bytes(dir)).sum();
        total as f64 / self.dirs.len().max(1) as f64
    }
}

/// Allocated bytes (512-byte blocks, as `du` counts) of the files under `dir`, `.log` files
/// excluded; unreadable entries count as empty.
fn allocated_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => allocated_bytes(&path),
                Ok(_) if path.extension().is_some_and(|ext| ext == "log") => 0,
                Ok(meta) => meta.blocks().saturating_mul(512),
                Err(_) => 0,
            }
        })
        .sum()
}

/// MiB per hour from a growth of `bytes` over `elapsed`.
fn mb_per_hour(bytes: f64, elapsed: Duration) -> f64 {
    bytes / (1024.0 * 1024.0) * 3600.0 / elapsed.as_secs_f64().max(f64::EPSILON)
}

struct Sender {
    key: PrivateKey,
    nonce: u64,
}

async fn drive(
    urls: &[String],
    keys: Vec<PrivateKey>,
    load: &Load,
    storage: &Storage,
) -> Result<serde_json::Value> {
    let (tps, seconds) = (load.tps, load.seconds);
    let ws_urls: Vec<String> = urls
        .iter()
        .map(|url| url.replace("http://", "ws://"))
        .collect();
    let mut clients = Vec::new();
    for url in &ws_urls {
        clients.push(Arc::new(
            WsClientBuilder::default()
                .max_concurrent_requests(4_096)
                .build(url)
                .await
                .with_context(|| format!("connect {url}"))?,
        ));
    }
    let info = clients[0].chain_info().await?;
    let mut heads: Subscription<Head> = clients[0].subscribe_finalized_heads().await?;
    let submitted_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let finalized_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let timestamps: Arc<Mutex<Vec<u64>>> = Arc::default();
    let follower = {
        let finalized_at = finalized_at.clone();
        let timestamps = timestamps.clone();
        tokio::spawn(async move {
            while let Some(Ok(head)) = heads.next().await {
                let now = Instant::now();
                timestamps.lock().expect("lock").push(head.timestamp_ms);
                let mut finalized = finalized_at.lock().expect("lock");
                for hash in head.transactions {
                    finalized.insert(hash, now);
                }
            }
        })
    };
    // Warm up: measure steady state, not connection setup.
    let warm_deadline = Instant::now() + Duration::from_secs(30);
    while timestamps.lock().expect("lock").len() < WARM_UP_BLOCKS {
        if Instant::now() > warm_deadline {
            bail!("the devnet did not finalize {WARM_UP_BLOCKS} blocks within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Idle storage growth: blocks keep coming with nothing in them.
    let idle_start = (Instant::now(), storage.mean_bytes());
    tokio::time::sleep(Duration::from_secs(load.idle_seconds)).await;
    let disk_mb_per_hour_idle =
        mb_per_hour(storage.mean_bytes() - idle_start.1, idle_start.0.elapsed());
    timestamps.lock().expect("lock").clear();
    let mut senders: Vec<Sender> = keys
        .into_iter()
        .map(|key| Sender { key, nonce: 0 })
        .collect();
    let rejected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let refused: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    let tick = Duration::from_millis(10);
    // Fractions carry over in `owed`, so a load below one per tick is offered as asked.
    let per_tick = tps as f64 * tick.as_secs_f64();
    let start = Instant::now();
    let bytes_at_start = storage.mean_bytes();
    let window = Duration::from_secs(seconds);
    let mut owed = 0.0;
    let mut next_sender = 0usize;
    // One submitter per sender, in nonce order (the mempool admits no nonce gaps), each on
    // its validator's client.
    let mut queues = Vec::with_capacity(senders.len());
    let mut submitters = Vec::with_capacity(senders.len());
    for index in 0..senders.len() {
        let (queue, mut pending) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let client = clients[index % clients.len()].clone();
        let rejected = rejected.clone();
        let refused = refused.clone();
        submitters.push(tokio::spawn(async move {
            while let Some((hash, hex)) = pending.recv().await {
                if client.submit_transaction(hex).await.is_err() {
                    rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    refused.lock().expect("lock").insert(hash);
                }
            }
        }));
        queues.push(queue);
    }
    let mut ticker = tokio::time::interval(tick);
    while start.elapsed() < window {
        ticker.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let index = next_sender;
            next_sender = (next_sender + 1) % senders.len();
            let sender = &mut senders[index];
            let transaction = TransactionPayload {
                chain_id: info.chain_id,
                sender: sender.key.public_key(),
                nonce: sender.nonce,
                fee: info.min_fee,
                call: Call::Balances(balances::Call::Transfer {
                    to: Address([7; 20]),
                    amount: Amount(1),
                }),
            }
            .sign(&sender.key);
            sender.nonce += 1;
            let hash = format_hash(&transaction.hash());
            let hex = format!("0x{}", hex::encode(encode(&transaction)));
            submitted_at
                .lock()
                .expect("lock")
                .insert(hash.clone(), Instant::now());
            // A closed queue means its submitter died; the transaction counts as rejected.
            if queues[index].send((hash.clone(), hex)).is_err() {
                rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                refused.lock().expect("lock").insert(hash);
            }
        }
    }
    drop(queues);
    for submitter in submitters {
        let _ = submitter.await;
    }
    let disk_mb_per_hour = mb_per_hour(storage.mean_bytes() - bytes_at_start, start.elapsed());
    // Let the last submissions finalize.
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = {
            let submitted = submitted_at.lock().expect("lock");
            let finalized = finalized_at.lock().expect("lock");
            submitted
                .keys()
                .filter(|hash| !finalized.contains_key(*hash))
                .count() as u64
        };
        if pending <= rejected.load(std::sync::atomic::Ordering::Relaxed)
            || Instant::now() > drain_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    follower.abort();
    let submitted = submitted_at.lock().expect("lock").clone();
    let finalized = finalized_at.lock().expect("lock").clone();
    // Accepted by the RPC and never seen in a finalized head.
    let unfinalized = {
        let refused = refused.lock().expect("lock");
        submitted
            .keys()
            .filter(|hash| !finalized.contains_key(*hash) && !refused.contains(*hash))
            .count()
    };
    let timed: Vec<(f64, f64)> = submitted
        .iter()
        .filter_map(|(hash, sent)| {
            let done = finalized.get(hash)?;
            let sent_at_s = sent.saturating_duration_since(start).as_secs_f64();
            Some((
                sent_at_s,
                done.saturating_duration_since(*sent).as_secs_f64() * 1000.0,
            ))
        })
        .collect();
    let worst =
        timed.iter().copied().fold(
            (0.0, 0.0),
            |worst, sample| if sample.1 > worst.1 { sample } else { worst },
        );
    let mut latencies: Vec<f64> = timed.iter().map(|(_, latency)| *latency).collect();
    if latencies.is_empty() {
        bail!("no transaction was finalized");
    }
    latencies.sort_by(f64::total_cmp);
    let timestamps = timestamps.lock().expect("lock").clone();
    let mut intervals: Vec<f64> = timestamps
        .windows(2)
        .map(|pair| pair[1].saturating_sub(pair[0]) as f64)
        .collect();
    intervals.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "finality_ms_p50": round(percentile(&latencies, 0.50)),
        "finality_ms_p99": round(percentile(&latencies, 0.99)),
        "block_interval_ms_p50": round(if intervals.is_empty() { 0.0 } else { percentile(&intervals, 0.50) }),
        "finalized_tps": round(latencies.len() as f64 / seconds as f64),
        "offered_tps": tps,
        "seconds": seconds,
        "submitted": submitted.len(),
        "rejected": rejected.load(std::sync::atomic::Ordering::Relaxed),
        "finalized": latencies.len(),
        "unfinalized": unfinalized,
        "disk_mb_per_hour": round(disk_mb_per_hour),
        "disk_mb_per_hour_idle": round(disk_mb_per_hour_idle),
        "blocks": timestamps.len(),
        "finality_ms_max": round(worst.1),
        "finality_max_at_s": round(worst.0),
    }))
}

fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Devnet options of the benchmarks (ports and network indices apart from a default devnet).
fn bench_devnet(
    validators: usize,
    accounts: usize,
    providers: usize,
    dir: Option<PathBuf>,
) -> DevnetArgs {
    DevnetArgs {
        validators,
        dir: Some(dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("logos-bench-{}", std::process::id()))
        })),
        resume: false,
        init_only: false,
        p2p_base_port: 31_300,
        rpc_base_port: 18_545,
        metrics_base_port: 19_100,
        block_time_ms: 25,
        accounts,
        log_level: "warn".into(),
        providers,
        agent_base_port: 17_100,
        network_base_index: 201,
        demo: false,
        external_provisioners: Vec::new(),
        check_invariants: false,
        full_nodes: 0,
        // Validators prune as a default node does (`retention_blocks` = 1,000,000; pruning
        // starts past that many blocks, so within a bench window `disk_mb_per_hour` is the
        // growth before any pruning, which bounds it at the window's size).
        retention_blocks: Some(1_000_000),
        images: None,
        registry: crate::sub0::DEFAULT_REGISTRY.into(),
        hosts: false,
        epoch_length_blocks: None,
        committee_size: None,
        elections: false,
        unattested: false,
    }
}

/// `logos bench lease`: see [`BenchCommand::Lease`]. Prints one JSON object (`template`: the
/// template leased):
///
/// | field | meaning |
/// |---|---|
/// | `lease_to_running_ms_p50`, `_max` | `lease create` submitted → the environment's `Ready` condition `True` in finalized state (workload running, health check passing), image caches warm |
/// | `lease_to_verified_ms_p50`, `_max` | submitted → `Verified` `True` (a quorum of cross-checks agreed) and the leased node's `/health` says synced, caches warm |
/// | `lease_to_running_ms_cold` | the same for the first lease, whose provider pulled the image |
/// | `image_pull_ms_p50`, `_max` | the node's image pulled, verified and cached into an empty cache by the agent's image store, from the devnet's registry (one pull per lease measured) |
/// | `image_bytes` | the image's compressed size |
/// | `leases`, `validators`, `providers` | the scenario |
fn run_lease_bench(
    leases: usize,
    template: TemplateId,
    validators: usize,
    json: bool,
    dir: Option<PathBuf>,
) -> Result<()> {
    let args = bench_devnet(validators, 0, 2, dir);
    let layout = devnet::init(&args)?;
    let mut network = devnet::start(&args, &layout)?;
    let rpc = network.validators[0].rpc.clone();
    let keys = layout.keystore.clone();
    let images = layout.images.clone();
    let result = crate::runtime()?.block_on(async move {
        let client = logos_client::Client::connect(&rpc).await?;
        let dev = logos_client::Wallet::new(keystore::load(&keys, "dev")?);
        // Warm-up: until every provider hosted one lease (its cache then holds the image).
        let mut warmed = std::collections::BTreeSet::new();
        let mut cold = None;
        for _ in 0..8 {
            let (running, _, provider) =
                measure_lease(&client, &dev, template, "warm-up", json).await?;
            cold.get_or_insert(running);
            warmed.insert(provider);
            if warmed.len() == 2 {
                break;
            }
        }
        let mut running = Vec::new();
        let mut verified = Vec::new();
        for index in 0..leases {
            let (to_running, to_verified, _) =
                measure_lease(&client, &dev, template, &index.to_string(), json).await?;
            running.push(to_running);
            verified.push(to_verified);
        }
        let (pulls, image_bytes) = cold_pulls(&images, leases).await?;
        running.sort_by(f64::total_cmp);
        verified.sort_by(f64::total_cmp);
        Ok::<_, anyhow::Error>(serde_json::json!({
            "leases": leases,
            "template": template,
            "validators": validators,
            "providers": 2,
            "lease_to_running_ms_p50": round(percentile(&running, 0.5)),
            "lease_to_running_ms_max": round(percentile(&running, 1.0)),
            "lease_to_verified_ms_p50": round(percentile(&verified, 0.5)),
            "lease_to_verified_ms_max": round(percentile(&verified, 1.0)),
            "lease_to_running_ms_cold": cold.map(round),
            "image_pull_ms_p50": round(percentile(&pulls, 0.5)),
            "image_pull_ms_max": round(percentile(&pulls, 1.0)),
            "image_bytes": image_bytes,
        }))
    });
    network.stop();
    let result = result?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

/// Leases the "Logos full node", follows it to Verified and synced, closes it; returns
/// (ms to Running, ms to Verified and synced, its provider).
async fn measure_lease(
    client: &logos_client::Client,
    dev: &logos_client::Wallet,
    template: TemplateId,
    label: &str,
    json: bool,
) -> Result<(f64, f64, u64)> {
    let started = Instant::now();
    let (lease, _) =
        logos_client::tenant::create_lease(client, dev, template, crate::sub0::REGION, 36_000)
            .await?;
    let mut say = |step: String| {
        if !json {
            eprintln!(
                "lease {label} [{:>6} ms] {step}",
                started.elapsed().as_millis()
            )
        }
    };
    let milestones =
        logos_client::tenant::watch(client, lease, Duration::from_secs(120), Some(dev), &mut say)
            .await?;
    let ms = |at: Option<Instant>| at.map_or(f64::NAN, |at| (at - started).as_secs_f64() * 1e3);
    let status = logos_client::tenant::lease_status(client, lease).await?;
    let close = Call::Market(market::Call::CloseLease { lease });
    client.execute(dev, close).await?;
    if let Some(key) = milestones.registered {
        // The registry is bounded: give the slot (and the deposit) back.
        let deregister = Call::Peers(logos_types::peers::Call::DeregisterFullNode { key });
        client.execute(dev, deregister).await?;
    }
    Ok((
        ms(milestones.running),
        ms(milestones.verified.max(milestones.synced)),
        status.record.provider.get(),
    ))
}

/// Pulls the devnet's `logos-node` image `count` times into a fresh cache each time with the
/// agent's image store; returns the times (ms) and the image's compressed size.
async fn cold_pulls(images: &std::path::Path, count: usize) -> Result<(Vec<f64>, u64)> {
    let images = logos_client::template::Images::parse(&std::fs::read_to_string(images)?)?;
    let reference = images
        .0
        .get("logos-node")
        .context("no logos-node image")?
        .clone();
    let registry = reference
        .split_once('/')
        .map(|(registry, _)| registry.to_string())
        .unwrap_or_default();
    let mut times = Vec::new();
    let mut bytes = 0;
    for attempt in 0..count.max(1) {
        let cache =
            std::env::temp_dir().join(format!("logos-bench-pull-{}-{attempt}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let store = logos_agent::image::ImageStore::new(
            &cache,
            vec![registry.clone()],
            Default::default(),
        )?;
        store.prepare().await?;
        let started = Instant::now();
        store.ensure(&reference).await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        bytes = store.size_bytes().await?;
        let _ = std::fs::remove_dir_all(&cache);
    }
    times.sort_by(f64::total_cmp);
    Ok((times, bytes))
}

/// An arrival gap listed in `slow_intervals` is longer than this, ms.
const SLOW_INTERVAL_MS: f64 = 500.0;
/// Most gaps listed in `slow_intervals`.
const SLOW_INTERVALS_MAX: usize = 32;

/// Most time to wait for the devnet to cross the epochs of [`run_epoch_bench`], per block, ms.
const EPOCH_BENCH_WAIT_PER_BLOCK_MS: u64 = 1_000;
/// Longest wait for the first finalized head of the epoch benchmark.
const EPOCH_BENCH_FIRST_HEAD_WAIT: Duration = Duration::from_secs(60);

/// `logos bench epoch`: an N-validator devnet whose genesis sets `epoch_length_blocks`; a
/// subscriber of validator 0's finalized heads notes when each height arrives, until `epochs`
/// epoch changes are crossed. At each change every validator stops its epoch's simplex engine
/// and starts the next one's (a fresh journal, the previous epoch's last block as floor).
/// Prints one JSON object:
///
/// | field | meaning |
/// |---|---|
/// | `epoch_change_gap_ms` | the longest of `epoch_change_gaps_ms` |
/// | `epoch_change_gaps_ms` | per change: arrival of the new epoch's first finalized block minus arrival of the old epoch's last |
/// | `block_interval_ms_p50`, `block_interval_ms_max` | arrival gaps of consecutive finalized blocks inside epochs (changes excluded) |
/// | `slow_intervals` | `[height, gap_ms]` of every arrival gap over 500 ms (at most 32): where finality paused |
/// | `epochs`, `epoch_length_blocks`, `validators` | the scenario |
pub fn run_epoch_bench(
    validators: usize,
    epochs: u64,
    epoch_length_blocks: u64,
    json: bool,
    dir: Option<PathBuf>,
) -> Result<serde_json::Value> {
    let mut args = bench_devnet(validators, 0, 0, dir);
    args.epoch_length_blocks = Some(epoch_length_blocks);
    let layout = devnet::init(&args)?;
    let mut processes = spawn_validators(&layout)?;
    if !json {
        eprintln!("{validators} validators up; following finality across {epochs} epoch changes");
    }
    let url = processes[0].rpc.replace("http://", "ws://");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let arrivals = runtime.block_on(follow_heads(&url, epochs, epoch_length_blocks));
    devnet::stop(&mut processes);
    let _ = std::fs::remove_dir_all(&layout.dir);
    let arrivals = arrivals?;
    let mut report = epoch_gaps(&arrivals, epoch_length_blocks, epochs)?;
    report["validators"] = validators.into();
    Ok(report)
}

/// When each finalized height arrived at a subscriber of `url`, until `epochs` epoch changes
/// (epochs of `epoch_length_blocks`) were crossed after the first head it saw: the chain runs
/// while the last validators start, so the subscription may begin past the first changes.
async fn follow_heads(
    url: &str,
    epochs: u64,
    epoch_length_blocks: u64,
) -> Result<Vec<(u64, Instant)>> {
    let client = WsClientBuilder::default().build(url).await?;
    let mut heads: Subscription<Head> = client.subscribe_finalized_heads().await?;
    let first = tokio::time::timeout(EPOCH_BENCH_FIRST_HEAD_WAIT, heads.next())
        .await
        .context("no finalized head")?
        .context("head subscription closed")??;
    // Epoch 0 spans heights 1 to L; epoch k ends at (k + 1) L. A change lies after each
    // multiple of L: the first at or above the first head seen.
    let length = epoch_length_blocks.max(1);
    let first_change = first.height.div_ceil(length).max(1).saturating_mul(length);
    let last = first_change
        .saturating_add(length.saturating_mul(epochs.saturating_sub(1)))
        .saturating_add(2);
    let blocks = last.saturating_sub(first.height);
    let wait = Duration::from_millis(EPOCH_BENCH_WAIT_PER_BLOCK_MS.saturating_mul(blocks));
    let deadline = Instant::now() + wait;
    let mut arrivals = vec![(first.height, Instant::now())];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let head = tokio::time::timeout(left, heads.next())
            .await
            .with_context(|| format!("height {last} not finalized within {wait:?}"))?
            .context("head subscription closed")??;
        arrivals.push((head.height, Instant::now()));
        if head.height >= last {
            return Ok(arrivals);
        }
    }
}

/// The report of [`run_epoch_bench`] from `arrivals` (heights ascending).
fn epoch_gaps(
    arrivals: &[(u64, Instant)],
    epoch_length_blocks: u64,
    epochs: u64,
) -> Result<serde_json::Value> {
    let mut changes = Vec::new();
    let mut inside = Vec::new();
    let mut slow = Vec::new();
    for pair in arrivals.windows(2) {
        let ((before, at), (after, next)) = (pair[0], pair[1]);
        let gap_ms = next.duration_since(at).as_secs_f64() * 1_000.0;
        if gap_ms > SLOW_INTERVAL_MS && slow.len() < SLOW_INTERVALS_MAX {
            slow.push(serde_json::json!([after, round(gap_ms)]));
        }
        // A change lies between the last height of an epoch and the next one.
        let boundary = (before..after).any(|h| h > 0 && h % epoch_length_blocks == 0);
        match boundary {
            true => changes.push(round(gap_ms)),
            false => inside.push(gap_ms),
        }
    }
    if (changes.len() as u64) < epochs {
        bail!("crossed {} epoch changes of {epochs}", changes.len());
    }
    inside.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "epoch_change_gap_ms": changes.iter().copied().fold(0.0f64, f64::max),
        "epoch_change_gaps_ms": changes,
        "block_interval_ms_p50": round(percentile(&inside, 0.5)),
        "block_interval_ms_max": round(inside.last().copied().unwrap_or(0.0)),
        "slow_intervals": slow,
        "epochs": epochs,
        "epoch_length_blocks": epoch_length_blocks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrivals(gaps_ms: &[(u64, u64)]) -> Vec<(u64, Instant)> {
        let start = Instant::now();
        let mut at = Duration::ZERO;
        gaps_ms
            .iter()
            .map(|(height, gap_ms)| {
                at += Duration::from_millis(*gap_ms);
                (*height, start + at)
            })
            .collect()
    }

    /// A change is the gap across a multiple of the epoch length (heights skipped by the
    /// subscription included); other gaps are block intervals; too few changes are an error.
    #[test]
    fn epoch_changes_are_the_gaps_across_epoch_ends() {
        let heads = arrivals(&[(9, 0), (10, 25), (11, 400), (12, 30), (19, 25), (21, 900)]);
        let report = epoch_gaps(&heads, 10, 2).unwrap();
        assert_eq!(
            report["epoch_change_gaps_ms"],
            serde_json::json!([400.0, 900.0])
        );
        assert_eq!(report["epoch_change_gap_ms"], 900.0);
        assert_eq!(report["block_interval_ms_max"], 30.0);
        assert_eq!(report["slow_intervals"], serde_json::json!([[21, 900.0]]));
        assert!(epoch_gaps(&heads, 10, 3).is_err());
    }
}
