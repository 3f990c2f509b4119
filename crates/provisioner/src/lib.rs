//! The provisioner daemon (seed `002`: staked provisioners realize desired state off chain and
//! cross-check each other).
//!
//! A level-triggered reconcile loop in the Kubernetes-controller manner:
//! 1. **Observe.** On every new finalized head it lists the active environments and reads each
//!    one's desired state and assignment from finalized state; changed ones are queued, and
//!    every [`ProvisionerConfig::resync_ms`] all of them (a periodic resync catches drift such
//!    as a killed workload). Before acting, a worker re-reads what it acts on with proofs.
//! 2. **Queue.** Environments assigned to it, and rounds it was drawn to cross-check and has
//!    not voted in, go into a de-duplicating work queue ([`queue`]); failed items come back
//!    after an exponential backoff (a workload that is starting is rechecked every 250 ms, at
//!    most 40 times a minute).
//! 3. **Reconcile** an assigned environment: ask the provider's agent what runs, probe the
//!    workload's health, and let the pure [`core::decide`] say what to do (ensure, destroy,
//!    report, retry, recheck); carry out its effects and decide again on the new view, at most
//!    [`RECONCILE_STEPS_MAX`] times per item.
//! 4. **Cross-check** a drawn round: ask the agent what runs, probe the reported endpoint
//!    itself, and vote what [`core::decide_vote`] says.
//! 5. **Challenge** a machine registration it was drawn for (Machine Integrity Attestation,
//!    [`challenge`]): a `TPM2_MakeCredential` blob only that TPM can open.
//!
//! Effects go through an [`Effects`] handler: [`AgentEffects`] in the daemon; tests wrap it to
//! play a lying provisioner, so no misbehaviour is compiled into the shipped binary. The
//! provisioner verifies proofs; it never executes blocks.

pub mod challenge;
pub mod core;
mod effects;
mod probe;
pub mod queue;

pub use effects::{
    verify_observation, AgentEffects, Connection, Effects, Target, REQUEST_VALIDITY_BLOCKS,
};
pub use probe::probe_health;

use crate::core::{AgentView, Effect, Observed};
use futures::future::join_all;
use logos_api::agent::WorkloadState;
use logos_client::{Client, ClientError, Wallet};
use logos_primitives::Address;
use logos_types::{
    attestation::Machines,
    dvci::{NextProviderId, Provider, ProviderId, Providers},
    operations::{ActiveEnvironments, Environment, EnvironmentId, Environments},
    provisioning::{Assignment, Assignments, Report},
    Call,
};
use queue::{Item, WorkQueue, QUEUE_MAX};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// Most items worked on at once.
pub const WORKERS: usize = 4;
/// Most decide-and-act steps per reconciled item before it is retried later.
pub const RECONCILE_STEPS_MAX: usize = 4;
/// Shortest time a submitted report is remembered as pending, ms.
const SUBMITTED_MEMORY_MIN_MS: u64 = 5_000;

/// Provisioner settings.
#[derive(Clone, Debug)]
pub struct ProvisionerConfig {
    /// Time between head polls, ms.
    pub poll_ms: u64,
    /// Longest time between full resyncs, ms.
    pub resync_ms: u64,
    /// Timeout of agent requests and health probes, ms.
    pub probe_timeout_ms: u64,
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
    /// The environment is not where it should be yet (retried after a backoff).
    #[error("{0}")]
    NotReady(String),
    /// The workload runs and its health check does not pass yet (rechecked soon).
    #[error("{0}")]
    Starting(String),
}

impl ProvisionerError {
    /// The error that ends a reconcile on `effect` (`Retry` or `Recheck`), if it is one.
    fn come_back(environment: EnvironmentId, effect: &Effect) -> Option<Self> {
        let why = |reason: &str| format!("environment {environment}: {reason}");
        match effect {
            Effect::Retry(reason) => Some(Self::NotReady(why(reason))),
            Effect::Recheck(reason) => Some(Self::Starting(why(reason))),
            _ => None,
        }
    }

    /// Whether the failed item is a starting workload (quick rechecks, see [`queue`]).
    fn is_starting(&self) -> bool {
        matches!(self, Self::Starting(_))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The daemon (see the crate docs).
pub struct Provisioner<E: Effects = AgentEffects> {
    config: ProvisionerConfig,
    connection: Arc<Connection>,
    effects: E,
    /// Reports submitted and maybe not yet final, so they are not submitted twice.
    submitted: Mutex<BTreeMap<EnvironmentId, (Report, Instant)>>,
    /// Rounds voted in (cleared when it reaches [`QUEUE_MAX`]).
    voted: Mutex<BTreeSet<(EnvironmentId, u64)>>,
    /// Desired state and assignment last seen per active environment.
    fingerprints: Mutex<BTreeMap<EnvironmentId, String>>,
    /// The next provider id whose machine is scanned for a challenge ([`challenge`]).
    scan_cursor: Mutex<u64>,
}

impl Provisioner<AgentEffects> {
    /// A provisioner signing with `wallet`.
    pub fn new(
        config: ProvisionerConfig,
        client: Client,
        wallet: Wallet,
    ) -> Result<Self, ProvisionerError> {
        Self::with_effects(config, client, wallet, |effects| effects)
    }
}

impl<E: Effects> Provisioner<E> {
    /// A provisioner whose effects go through `wrap(AgentEffects)`.
    pub fn with_effects(
        config: ProvisionerConfig,
        client: Client,
        wallet: Wallet,
        wrap: impl FnOnce(AgentEffects) -> E,
    ) -> Result<Self, ProvisionerError> {
        let connection = Arc::new(Connection::new(client, wallet, config.probe_timeout_ms)?);
        Ok(Self {
            effects: wrap(AgentEffects::new(connection.clone())),
            config,
            connection,
            submitted: Mutex::new(BTreeMap::new()),
            voted: Mutex::new(BTreeSet::new()),
            fingerprints: Mutex::new(BTreeMap::new()),
            scan_cursor: Mutex::new(0),
        })
    }

    fn me(&self) -> logos_primitives::Address {
        self.connection.wallet.address()
    }

    /// Runs the loop until the process ends.
    pub async fn run(self) -> Result<(), ProvisionerError> {
        let mut queue = WorkQueue::default();
        let mut last_head = 0;
        let resync = Duration::from_millis(self.config.resync_ms);
        let mut last_resync: Option<Instant> = None;
        loop {
            let head = self
                .connection
                .client
                .head_height()
                .await
                .unwrap_or(last_head);
            let resync_due = last_resync.is_none_or(|at| at.elapsed() >= resync);
            let new_head = head != last_head;
            if new_head || resync_due {
                match self.observe(&mut queue, resync_due).await {
                    Ok(()) => {
                        last_head = head;
                        if resync_due {
                            last_resync = Some(Instant::now());
                        }
                    }
                    Err(error) => tracing::warn!(%error, "observe"),
                }
                if new_head {
                    if let Err(error) = self.challenge_drawn().await {
                        tracing::warn!(%error, "challenge");
                    }
                }
            }
            let items = queue.take(WORKERS, Instant::now());
            let results = join_all(items.iter().map(|item| self.work(*item))).await;
            for (item, result) in items.into_iter().zip(results) {
                match result {
                    Ok(()) => queue.succeeded(item),
                    Err(error) => {
                        let starting = error.is_starting();
                        if starting {
                            // The tenant's workload decides how often this happens: not a warning.
                            tracing::debug!(?item, %error, "rechecking soon");
                        } else {
                            tracing::warn!(?item, %error, "retrying with backoff");
                        }
                        queue.failed(item, Instant::now(), starting);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(self.config.poll_ms)).await;
        }
    }

    /// Lists what concerns this provisioner and queues it. With `full`, queues every assigned
    /// environment (periodic resync); otherwise only those whose desired state or assignment
    /// changed since the last observation.
    async fn observe(&self, queue: &mut WorkQueue, full: bool) -> Result<(), ProvisionerError> {
        let me = self.me();
        let client = &self.connection.client;
        // The listing is a hint (unproven); reconcile re-reads with proofs before acting.
        let (active, _) = client.value::<ActiveEnvironments>().await?;
        let mut fingerprints = std::mem::take(&mut *lock(&self.fingerprints));
        fingerprints.retain(|id, _| active.binary_search(id).is_ok());
        for environment in active {
            let (task, _) = client.map::<Assignments>(&environment).await?;
            let (record, _) = client.map::<Environments>(&environment).await?;
            let (Some(task), Some(record)) = (task, record) else {
                continue;
            };
            let fingerprint = format!("{}:{:?}:{task:?}", record.generation, record.desired);
            let changed =
                fingerprints.insert(environment, fingerprint.clone()) != Some(fingerprint);
            if core::assigned_to(me, &task) && (changed || full) {
                queue.add(Item::Reconcile(environment));
            }
            let voted = lock(&self.voted).contains(&(environment, task.round));
            if core::must_vote(me, &task) && !voted {
                queue.add(Item::CrossCheck {
                    environment,
                    round: task.round,
                });
            }
        }
        *lock(&self.fingerprints) = fingerprints;
        let remembered = Duration::from_millis(self.config.resync_ms.max(SUBMITTED_MEMORY_MIN_MS));
        lock(&self.submitted).retain(|_, (_, at)| at.elapsed() < remembered);
        Ok(())
    }

    /// Scans the next [`challenge::SCAN_PROVIDERS_PER_HEAD`] providers' machines and
    /// challenges those this provisioner was drawn for.
    async fn challenge_drawn(&self) -> Result<(), ProvisionerError> {
        let me = self.me();
        let client = &self.connection.client;
        let (next, _) = client.value::<NextProviderId>().await?;
        let cursor = *lock(&self.scan_cursor);
        let (range, cursor) =
            challenge::scan_range(cursor, next.get(), challenge::SCAN_PROVIDERS_PER_HEAD);
        *lock(&self.scan_cursor) = cursor;
        for provider in range.map(ProviderId) {
            // One machine's failure (gone meanwhile, a refused call) does not skip the others.
            if let Err(error) = self.challenge(provider, &me).await {
                tracing::warn!(%provider, %error, "challenge");
            }
        }
        Ok(())
    }

    /// Challenges `provider`'s machine if this provisioner is drawn for it and its deadline has
    /// not passed.
    async fn challenge(&self, provider: ProviderId, me: &Address) -> Result<(), ProvisionerError> {
        let client = &self.connection.client;
        let (machine, _) = client.map::<Machines>(&provider).await?;
        if !machine.is_some_and(|machine| challenge::must_challenge(me, &machine)) {
            return Ok(());
        }
        let (machine, height) = client.map_proven::<Machines>(&provider).await?;
        let Some(machine) = machine.filter(|m| challenge::must_challenge(me, m) && m.due > height)
        else {
            return Ok(());
        };
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|error| ProvisionerError::NotReady(format!("no randomness: {error}")))?;
        let mut rng = <ChaCha20Rng as SeedableRng>::from_seed(seed);
        let call = match challenge::challenge_call(provider, &machine, &mut rng) {
            Ok(call) => call,
            Err(error) => {
                // The chain checked the keys at registration: a record it cannot challenge is
                // left to time out (the round ends, another challenger is drawn).
                tracing::warn!(%provider, %error, "cannot challenge the machine");
                return Ok(());
            }
        };
        let (_, height) = client
            .execute(&self.connection.wallet, Call::Attestation(call))
            .await?;
        tracing::info!(%provider, height, "challenged the machine's registration");
        Ok(())
    }

    async fn work(&self, item: Item) -> Result<(), ProvisionerError> {
        match item {
            Item::Reconcile(environment) => self.reconcile(environment).await,
            Item::CrossCheck { environment, round } => self.cross_check(environment, round).await,
        }
    }

    /// The environment, its assignment and its provider, read with proofs, and the target of
    /// requests about it.
    async fn read_environment(
        &self,
        environment: EnvironmentId,
    ) -> Result<(Environment, Assignment, Target), ProvisionerError> {
        let gone = || ProvisionerError::NotReady(format!("environment {environment} gone"));
        let client = &self.connection.client;
        let (record, height) = client.map_proven::<Environments>(&environment).await?;
        let record = record.ok_or_else(gone)?;
        let (task, _) = client.map_proven::<Assignments>(&environment).await?;
        let task = task.ok_or_else(gone)?;
        let (provider, _) = client.map_proven::<Providers>(&record.provider).await?;
        let provider: Provider = provider.ok_or_else(gone)?;
        let target = Target::of(environment, &record, &provider, height);
        Ok((record, task, target))
    }

    /// What is observed of `record`'s environment given the agent's `view`: the health probe
    /// is made only when the agent says the current generation runs.
    async fn observed(&self, view: AgentView, record: &Environment) -> Observed {
        let health = match &view {
            AgentView::Present(observation)
                if observation.generation == record.generation
                    && observation.workload == WorkloadState::Running =>
            {
                let check = &record.spec.workload.health;
                Some(self.connection.probe(&observation.endpoint, check).await)
            }
            _ => None,
        };
        Observed {
            agent: view,
            health,
        }
    }

    /// Makes the assigned environment match its desired state and reports what it sees.
    async fn reconcile(&self, environment: EnvironmentId) -> Result<(), ProvisionerError> {
        let (record, task, target) = self.read_environment(environment).await?;
        if !core::assigned_to(self.me(), &task) {
            return Ok(());
        }
        let mut view = self.connection.inspect(&target).await;
        for _ in 0..RECONCILE_STEPS_MAX {
            let observed = self.observed(view, &record).await;
            let submitted = lock(&self.submitted)
                .get(&environment)
                .map(|(r, _)| r.clone());
            let effects = core::decide(self.me(), &record, &observed, &task, submitted.as_ref());
            let mut next = None;
            for effect in effects {
                if let Some(error) = ProvisionerError::come_back(environment, &effect) {
                    return Err(error);
                }
                if let Some(view) = self.effects.apply(&target, &effect).await? {
                    next = Some(view);
                }
                if let Effect::Report(report) = effect {
                    lock(&self.submitted).insert(environment, (report, Instant::now()));
                }
            }
            match next {
                Some(new_view) => view = new_view,
                None => return Ok(()),
            }
        }
        Err(ProvisionerError::NotReady(format!(
            "environment {environment} did not settle in {RECONCILE_STEPS_MAX} steps"
        )))
    }

    /// Votes on round `round` of `environment`.
    async fn cross_check(
        &self,
        environment: EnvironmentId,
        round: u64,
    ) -> Result<(), ProvisionerError> {
        let (record, task, target) = self.read_environment(environment).await?;
        let me = self.me();
        let Some(report) = task
            .report
            .as_ref()
            .filter(|_| task.round == round && core::must_vote(me, &task))
        else {
            return Ok(());
        };
        let view = self.connection.inspect(&target).await;
        let probe = self
            .connection
            .probe(&report.endpoint, &record.spec.workload.health)
            .await;
        let verdict = core::verdict(report, &record.spec, &view, &probe);
        let round_age = target.height.saturating_sub(task.round_opened_at);
        if !core::vote_now(verdict, round_age) {
            // A blip, a refusal by an agent a block behind, a rate limit: observed again (with
            // the queue's backoff) before the provider is blamed.
            return Err(ProvisionerError::NotReady(format!(
                "environment {environment}: {verdict:?} after {round_age} blocks; observing again"
            )));
        }
        for effect in core::decide_vote(me, round, &task, &record.spec, &view, &probe) {
            self.effects.apply(&target, &effect).await?;
            if let Effect::Vote { round, .. } = effect {
                let mut voted = lock(&self.voted);
                if voted.len() >= QUEUE_MAX {
                    voted.clear();
                }
                voted.insert((environment, round));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_recheck_counts_as_starting() {
        let id = EnvironmentId(7);
        let recheck = ProvisionerError::come_back(id, &Effect::Recheck("503".into()));
        let retry = ProvisionerError::come_back(id, &Effect::Retry("refused".into()));
        assert!(recheck.as_ref().is_some_and(ProvisionerError::is_starting));
        assert!(retry.as_ref().is_some_and(|error| !error.is_starting()));
        assert!(retry.is_some_and(|error| error.to_string() == "environment 7: refused"));
        assert!(ProvisionerError::come_back(id, &Effect::Ensure).is_none());
    }
}
