//! The provisioner daemon (seed `002`: staked provisioners realize desired state off chain and
//! cross-check each other).
//!
//! A level-triggered reconcile loop in the Kubernetes-controller manner:
//! 1. **Observe.** On every new finalized head it lists the active environments and reads each
//!    one's desired state and assignment from finalized state; changed ones are queued, and
//!    every [`ProvisionerConfig::resync_ms`] all of them (a periodic resync catches drift such
//!    as a killed workload). Before acting, a worker re-reads what it acts on with proofs.
//! 2. **Queue.** Environments assigned to it, and rounds it was drawn to cross-check and has
//!    not voted in, go into a de-duplicating work queue; failed items come back after an
//!    exponential backoff ([`BACKOFF_BASE_MS`] doubling to [`BACKOFF_MAX_MS`]).
//! 3. **Reconcile** an assigned environment: ask the provider's agent (a signed
//!    `logos_api::agent` request) to ensure or destroy it, probe its health endpoint
//!    (`GET /health`, 2xx = healthy), and report the observed phase on chain when it differs from
//!    the last report. A stopped or OOM-killed workload is reported `Failed` and restored by the
//!    next ensure.
//! 4. **Cross-check** a drawn round: ask the agent what runs and probe the reported endpoint
//!    itself; vote that the report holds only if both agree with it.
//!
//! Test-only misbehaviour ([`Byzantine`]) exists so end-to-end tests can show that a lying
//! provisioner is outvoted and slashed.

mod probe;

use futures::future::join_all;
use logos_api::agent::{
    request_message, Action, AgentRequest, Observation, WorkloadState, AGENT_NAMESPACE,
};
use logos_client::{Client, ClientError, Wallet};
use logos_primitives::format_public_key;
use logos_state::{
    modules::{
        dvci,
        operations::{self, Desired, Environment, Phase},
        provisioning::{self, Assignment, Report},
    },
    Call,
};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Mutex,
    time::{Duration, Instant},
};

pub use probe::probe_health;

/// First retry delay of a failed item, ms.
pub const BACKOFF_BASE_MS: u64 = 250;
/// Longest retry delay, ms.
pub const BACKOFF_MAX_MS: u64 = 8_000;
/// Most items reconciled at once.
pub const WORKERS: usize = 4;
/// Most items in the work queue.
pub const QUEUE_MAX: usize = 4_096;

/// Deliberate misbehaviour, for end-to-end tests of slashing only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// Never touch the agent; report every assigned environment `Running` at a made-up endpoint.
    ReportRunning,
}

/// Provisioner settings.
#[derive(Clone, Debug)]
pub struct ProvisionerConfig {
    /// Time between head polls, ms.
    pub poll_ms: u64,
    /// Longest time between full resyncs, ms.
    pub resync_ms: u64,
    /// Timeout of agent requests and health probes, ms.
    pub probe_timeout_ms: u64,
    /// Misbehaviour (tests only).
    pub byzantine: Option<Byzantine>,
}

/// Errors of the provisioner.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionerError {
    /// The chain could not be read or written.
    #[error("chain: {0}")]
    Chain(#[from] ClientError),
    /// The provider's agent failed or refused.
    #[error("agent {endpoint}: {reason}")]
    Agent {
        /// The agent's endpoint.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// The environment is in a state the provisioner cannot act on yet.
    #[error("{0}")]
    NotReady(String),
}

/// A unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Reconcile(u64),
    CrossCheck { environment: u64, round: u64 },
}

/// The de-duplicating work queue with per-item backoff.
#[derive(Default)]
struct WorkQueue {
    ready: BTreeSet<Item>,
    failures: BTreeMap<Item, (u32, Instant)>,
}

impl WorkQueue {
    fn add(&mut self, item: Item) {
        if self.ready.len() < QUEUE_MAX {
            self.ready.insert(item);
        }
    }

    /// Up to `count` items whose backoff has passed.
    fn take(&mut self, count: usize, now: Instant) -> Vec<Item> {
        let due: Vec<Item> = self
            .ready
            .iter()
            .filter(|item| self.failures.get(item).is_none_or(|(_, at)| *at <= now))
            .take(count)
            .copied()
            .collect();
        for item in &due {
            self.ready.remove(item);
        }
        due
    }

    fn succeeded(&mut self, item: Item) {
        self.failures.remove(&item);
    }

    fn failed(&mut self, item: Item, now: Instant) {
        let failures = self.failures.get(&item).map_or(0, |(count, _)| *count) + 1;
        let delay_ms = (BACKOFF_BASE_MS << failures.min(10)).min(BACKOFF_MAX_MS);
        self.failures
            .insert(item, (failures, now + Duration::from_millis(delay_ms)));
        self.add(item);
    }
}

/// The daemon's state.
pub struct Provisioner {
    config: ProvisionerConfig,
    client: Client,
    wallet: Wallet,
    http: reqwest::Client,
    /// Reports submitted and not yet visible in finalized state, to avoid resubmitting them.
    submitted: Mutex<BTreeMap<u64, (Report, Instant)>>,
    /// Rounds voted in (bounded: cleared when it reaches [`QUEUE_MAX`]).
    voted: Mutex<BTreeSet<(u64, u64)>>,
    /// Desired state and assignment last seen per active environment.
    fingerprints: Mutex<BTreeMap<u64, String>>,
}

impl Provisioner {
    /// A provisioner signing with `wallet`.
    pub fn new(config: ProvisionerConfig, client: Client, wallet: Wallet) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.probe_timeout_ms))
            .build()
            .expect("HTTP client");
        Self {
            config,
            client,
            wallet,
            http,
            submitted: Mutex::new(BTreeMap::new()),
            voted: Mutex::new(BTreeSet::new()),
            fingerprints: Mutex::new(BTreeMap::new()),
        }
    }

    /// Runs the loop until the process ends.
    pub async fn run(self) -> Result<(), ProvisionerError> {
        let mut queue = WorkQueue::default();
        let mut last_head = 0;
        let mut last_resync = Instant::now() - Duration::from_millis(self.config.resync_ms);
        loop {
            let head = self.client.head_height().await.unwrap_or(last_head);
            let resync_due = last_resync.elapsed() >= Duration::from_millis(self.config.resync_ms);
            if head != last_head || resync_due {
                match self.observe(&mut queue, resync_due).await {
                    Ok(()) => {
                        last_head = head;
                        if resync_due {
                            last_resync = Instant::now();
                        }
                    }
                    Err(error) => tracing::warn!(%error, "observe"),
                }
            }
            let now = Instant::now();
            let items = queue.take(WORKERS, now);
            let results = join_all(items.iter().map(|item| self.work(*item))).await;
            for (item, result) in items.into_iter().zip(results) {
                match result {
                    Ok(()) => queue.succeeded(item),
                    Err(error) => {
                        tracing::warn!(?item, %error, "retrying with backoff");
                        queue.failed(item, Instant::now());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(self.config.poll_ms)).await;
        }
    }

    /// Lists what concerns this provisioner and queues it.
    /// With `full`, queues every assigned environment (periodic resync); otherwise only those
    /// whose desired state or assignment changed since the last observation.
    async fn observe(&self, queue: &mut WorkQueue, full: bool) -> Result<(), ProvisionerError> {
        let me = self.wallet.address();
        let (active, _) = self
            .client
            .read_raw(&operations::active_environments_key())
            .await?;
        let active = match active {
            Some(bytes) => operations::decode_active(&bytes)
                .map_err(|error| ProvisionerError::NotReady(error.to_string()))?,
            None => Vec::new(),
        };
        let mut fingerprints =
            std::mem::take(&mut *self.fingerprints.lock().expect("fingerprints lock"));
        fingerprints.retain(|id, _| active.binary_search(id).is_ok());
        for environment in active {
            // The listing is a hint (unproven); reconcile re-reads with proofs before acting.
            let (task, _) = self
                .client
                .read::<Assignment>(&provisioning::assignment_key(environment))
                .await?;
            let (record, _) = self
                .client
                .read::<Environment>(&operations::environment_key(environment))
                .await?;
            let (Some(task), Some(record)) = (task, record) else {
                continue;
            };
            let fingerprint = format!("{}:{:?}:{task:?}", record.generation, record.desired);
            let changed =
                fingerprints.insert(environment, fingerprint.clone()) != Some(fingerprint);
            if task.assigned == Some(me) && (changed || full) {
                queue.add(Item::Reconcile(environment));
            }
            let running = task
                .report
                .as_ref()
                .is_some_and(|r| r.phase == Phase::Running);
            let voted = self
                .voted
                .lock()
                .expect("voted lock")
                .contains(&(environment, task.round))
                || task.votes.iter().any(|(voter, _)| *voter == me);
            if task.checkers.contains(&me) && !task.decided() && running && !voted {
                queue.add(Item::CrossCheck {
                    environment,
                    round: task.round,
                });
            }
        }
        *self.fingerprints.lock().expect("fingerprints lock") = fingerprints;
        let stale = Duration::from_millis(self.config.resync_ms.max(5_000));
        self.submitted
            .lock()
            .expect("submitted lock")
            .retain(|_, (_, at)| at.elapsed() < stale);
        Ok(())
    }

    async fn work(&self, item: Item) -> Result<(), ProvisionerError> {
        match item {
            Item::Reconcile(environment) => self.reconcile(environment).await,
            Item::CrossCheck { environment, round } => self.cross_check(environment, round).await,
        }
    }

    async fn read_environment(
        &self,
        environment: u64,
    ) -> Result<(Environment, Assignment, dvci::Provider), ProvisionerError> {
        let not_ready = || ProvisionerError::NotReady(format!("environment {environment} gone"));
        let (record, _) = self
            .client
            .read_proven::<Environment>(&operations::environment_key(environment))
            .await?;
        let record = record.ok_or_else(not_ready)?;
        let (task, _) = self
            .client
            .read_proven::<Assignment>(&provisioning::assignment_key(environment))
            .await?;
        let task = task.ok_or_else(not_ready)?;
        let (provider, _) = self
            .client
            .read_proven::<dvci::Provider>(&dvci::provider_key(record.provider))
            .await?;
        let provider = provider.ok_or_else(not_ready)?;
        Ok((record, task, provider))
    }

    /// Makes the assigned environment match its desired state and reports what it sees.
    async fn reconcile(&self, environment: u64) -> Result<(), ProvisionerError> {
        let (record, task, provider) = self.read_environment(environment).await?;
        if task.assigned != Some(self.wallet.address()) {
            return Ok(());
        }
        let report = match (record.desired, self.config.byzantine) {
            (Desired::Running, Some(Byzantine::ReportRunning)) => Report {
                generation: record.generation,
                phase: Phase::Running,
                endpoint: format!("10.88.250.250:{}", record.spec.workload.health_port),
                message: "HealthCheckPassed".into(),
            },
            (Desired::Running, None) => {
                // A workload that stopped is reported (with why) before it is restored.
                let stopped = self
                    .inspect(&provider, environment)
                    .await
                    .filter(|observed| observed.generation == record.generation)
                    .filter(|observed| observed.workload != WorkloadState::Running);
                let failure = match stopped {
                    Some(observed) => Some(self.assess(&record, Some(observed)).await),
                    None => None,
                };
                match failure {
                    Some(report) if !self.already_reported(environment, &task, &report) => report,
                    _ => {
                        let observed = self
                            .request(&provider, &record, environment, Action::Ensure)
                            .await?;
                        self.assess(&record, observed).await
                    }
                }
            }
            (Desired::Destroyed, _) => {
                self.request(&provider, &record, environment, Action::Destroy)
                    .await?;
                Report {
                    generation: record.generation,
                    phase: Phase::Destroyed,
                    endpoint: String::new(),
                    message: "Destroyed".into(),
                }
            }
        };
        self.submit_report(environment, &task, report.clone())
            .await?;
        match report.phase {
            Phase::Running | Phase::Destroyed => Ok(()),
            // Not there yet: come back after a backoff (and restore it if it stopped).
            Phase::Pending | Phase::Failed => Err(ProvisionerError::NotReady(format!(
                "environment {environment}: {}",
                report.message
            ))),
        }
    }

    /// Turns the agent's observation and a health probe into a report.
    async fn assess(&self, record: &Environment, observed: Option<Observation>) -> Report {
        let generation = record.generation;
        let Some(observed) = observed else {
            return failed(
                generation,
                "Missing: the agent has no such environment".into(),
            );
        };
        match observed.workload {
            WorkloadState::Running => match probe_health(&self.http, &observed.endpoint).await {
                Ok(()) => Report {
                    generation,
                    phase: Phase::Running,
                    endpoint: observed.endpoint,
                    message: "HealthCheckPassed".into(),
                },
                Err(_) => Report {
                    generation,
                    phase: Phase::Pending,
                    endpoint: observed.endpoint,
                    message: "Starting: health check not passing yet".into(),
                },
            },
            WorkloadState::OomKilled { limit_mib } => failed(
                generation,
                format!("OOMKilled: exceeded its memory limit of {limit_mib} MiB; restarting"),
            ),
            WorkloadState::Exited { code } => {
                failed(generation, format!("Exited: status {code:?}; restarting"))
            }
        }
    }

    /// True if `report` is on chain or was submitted recently.
    fn already_reported(&self, environment: u64, task: &Assignment, report: &Report) -> bool {
        task.report.as_ref() == Some(report)
            || self
                .submitted
                .lock()
                .expect("submitted lock")
                .get(&environment)
                .is_some_and(|(submitted, _)| submitted == report)
    }

    async fn submit_report(
        &self,
        environment: u64,
        task: &Assignment,
        report: Report,
    ) -> Result<(), ProvisionerError> {
        if self.already_reported(environment, task, &report) {
            return Ok(());
        }
        let phase = report.phase;
        let call = Call::Provisioning(provisioning::Call::Report {
            environment,
            report: report.clone(),
        });
        let (hash, _) = self.client.submit(&self.wallet, call).await?;
        tracing::info!(environment, ?phase, %hash, "reported");
        self.submitted
            .lock()
            .expect("submitted lock")
            .insert(environment, (report, Instant::now()));
        Ok(())
    }

    /// Votes on round `round` of `environment`.
    async fn cross_check(&self, environment: u64, round: u64) -> Result<(), ProvisionerError> {
        let (_, task, provider) = self.read_environment(environment).await?;
        let me = self.wallet.address();
        if task.round != round || !task.checkers.contains(&me) || task.decided() {
            return Ok(());
        }
        let Some(report) = task.report.as_ref() else {
            return Ok(());
        };
        let agent_view = self.inspect(&provider, environment).await;
        let agent_agrees = agent_view.as_ref().is_some_and(|observed| {
            observed.workload == WorkloadState::Running && observed.endpoint == report.endpoint
        });
        let probe = probe_health(&self.http, &report.endpoint).await;
        let agrees = agent_agrees && probe.is_ok();
        let call = Call::Provisioning(provisioning::Call::CrossCheck {
            environment,
            round,
            agrees,
        });
        let (hash, _) = self.client.submit(&self.wallet, call).await?;
        tracing::info!(environment, round, agrees, probe = ?probe.err(), %hash, "cross-checked");
        let mut voted = self.voted.lock().expect("voted lock");
        if voted.len() >= QUEUE_MAX {
            voted.clear();
        }
        voted.insert((environment, round));
        Ok(())
    }

    /// Sends a signed request to the provider's agent.
    async fn request(
        &self,
        provider: &dvci::Provider,
        record: &Environment,
        environment: u64,
        action: Action,
    ) -> Result<Option<Observation>, ProvisionerError> {
        let (provider_id, generation) = (record.provider, record.generation);
        let message = request_message(provider_id, environment, generation, action);
        let signature = self.wallet.sign(AGENT_NAMESPACE, &message);
        let request = AgentRequest {
            provider: provider_id,
            environment,
            generation,
            action,
            provisioner: format_public_key(&self.wallet.public_key()),
            signature: format!(
                "0x{}",
                hex::encode(commonware_codec::Encode::encode(&signature))
            ),
        };
        let url = format!("http://{}/v1/environments/{environment}", provider.endpoint);
        let agent_error = |reason: String| ProvisionerError::Agent {
            endpoint: provider.endpoint.clone(),
            reason,
        };
        let response = self
            .http
            .post(&url)
            .json(&request)
            .send()
            .await
            .map_err(|error| agent_error(error.to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| agent_error(e.to_string()))?;
        if !status.is_success() {
            return Err(agent_error(format!("{status}: {body}")));
        }
        serde_json::from_str(&body).map_err(|error| agent_error(error.to_string()))
    }

    async fn inspect(&self, provider: &dvci::Provider, environment: u64) -> Option<Observation> {
        let url = format!("http://{}/v1/environments/{environment}", provider.endpoint);
        let response = self.http.get(&url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }
}

fn failed(generation: u64, message: String) -> Report {
    Report {
        generation,
        phase: Phase::Failed,
        endpoint: String::new(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_deduplicates_and_backs_off_exponentially() {
        let mut queue = WorkQueue::default();
        let start = Instant::now();
        queue.add(Item::Reconcile(1));
        queue.add(Item::Reconcile(1));
        queue.add(Item::Reconcile(2));
        assert_eq!(
            queue.take(10, start),
            vec![Item::Reconcile(1), Item::Reconcile(2)]
        );
        assert!(queue.take(10, start).is_empty());
        queue.failed(Item::Reconcile(1), start);
        assert!(queue.take(10, start).is_empty(), "backing off");
        let first = Duration::from_millis(BACKOFF_BASE_MS << 1);
        assert_eq!(queue.take(10, start + first), vec![Item::Reconcile(1)]);
        queue.failed(Item::Reconcile(1), start);
        assert!(queue.take(10, start + first).is_empty(), "doubled");
        assert_eq!(queue.take(10, start + first * 2), vec![Item::Reconcile(1)]);
        for _ in 0..20 {
            queue.failed(Item::Reconcile(1), start);
            queue.take(10, start + Duration::from_millis(BACKOFF_MAX_MS));
        }
        queue.failed(Item::Reconcile(1), start);
        assert_eq!(
            queue.take(10, start + Duration::from_millis(BACKOFF_MAX_MS)),
            vec![Item::Reconcile(1)],
            "capped"
        );
        queue.succeeded(Item::Reconcile(1));
        queue.add(Item::Reconcile(1));
        assert_eq!(queue.take(10, start), vec![Item::Reconcile(1)], "reset");
    }
}
