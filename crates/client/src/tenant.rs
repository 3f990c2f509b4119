//! The tenant's side: lease a template, read a lease's full status, follow it until its
//! environment is verified and its workload healthy.

use crate::{find_event, Client, ClientError, Wallet};
use logos_types::{
    catalog::TemplateId,
    dvci::RegionId,
    market::{self, Lease, LeaseId, Leases},
    operations::{ConditionStatus, ConditionType, Environment, EnvironmentId, Environments},
    provisioning::{Assignment, Assignments},
    Call, Event,
};
use std::time::{Duration, Instant};

/// How often [`watch`] polls the chain, ms.
pub const WATCH_POLL_MS: u64 = 50;
/// Timeout of [`watch`]'s probe of the workload's health, ms.
pub const HEALTH_TIMEOUT_MS: u64 = 1_000;

/// Everything about one lease.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LeaseStatus {
    /// Lease id (= environment id).
    pub lease: LeaseId,
    /// The lease record.
    pub record: Lease,
    /// Its environment (desired state and reported status).
    pub environment: Option<Environment>,
    /// Who realizes and checks it (none once destroyed).
    pub assignment: Option<Assignment>,
    /// Finalized height of the reads.
    pub height: u64,
}

/// Reads a lease's full status (not proven: for display).
pub async fn lease_status(client: &Client, id: LeaseId) -> Result<LeaseStatus, ClientError> {
    let (record, height) = client.map::<Leases>(&id).await?;
    let record = record.ok_or_else(|| ClientError::Missing(format!("no lease {id}")))?;
    let environment_id = EnvironmentId::from(id);
    let (environment, _) = client.map::<Environments>(&environment_id).await?;
    let (assignment, _) = client.map::<Assignments>(&environment_id).await?;
    Ok(LeaseStatus {
        lease: id,
        record,
        environment,
        assignment,
        height,
    })
}

/// Leases `template` in `region` for `blocks` blocks from `wallet`; returns the lease's id and
/// the height it was created at.
pub async fn create_lease(
    client: &Client,
    wallet: &Wallet,
    template: TemplateId,
    region: RegionId,
    blocks: u64,
) -> Result<(LeaseId, u64), ClientError> {
    let call = Call::Market(market::Call::CreateLease {
        template,
        region,
        blocks,
    });
    let (receipt, height) = client.execute(wallet, call).await?;
    let lease = find_event(&receipt, "LeaseCreated", |event| match event {
        Event::Market(market::Event::LeaseCreated { lease, .. }) => Some(*lease),
        _ => None,
    })?;
    Ok((lease, height))
}

/// Milestones of a lease, in the order they happen.
#[derive(Clone, Copy, Debug, Default)]
pub struct Milestones {
    /// First seen Ready=True.
    pub running: Option<Instant>,
    /// First seen Verified=True.
    pub verified: Option<Instant>,
    /// First seen the workload's own health saying it is healthy.
    pub synced: Option<Instant>,
}

/// Follows lease `id` until it is Verified and its workload healthy (or `timeout`), calling
/// `say` with each new step. Fails if the lease closes.
pub async fn watch(
    client: &Client,
    id: LeaseId,
    timeout: Duration,
    say: &mut impl FnMut(String),
) -> Result<Milestones, ClientError> {
    let deadline = Instant::now() + timeout;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(HEALTH_TIMEOUT_MS))
        .build()
        .map_err(|error| ClientError::Malformed(error.to_string()))?;
    let mut seen = Vec::<String>::new();
    let mut milestones = Milestones::default();
    while Instant::now() < deadline {
        let status = lease_status(client, id).await?;
        for step in steps(&status) {
            if !seen.contains(&step) {
                say(step.clone());
                seen.push(step);
            }
        }
        let environment = status
            .environment
            .as_ref()
            .ok_or_else(|| ClientError::Missing(format!("lease {id} has no environment")))?;
        if let Some((height, reason)) = status.record.closed {
            return Err(ClientError::Missing(format!(
                "lease {id} closed at height {height}: {reason:?}"
            )));
        }
        let now = Instant::now();
        if environment.condition(ConditionType::Ready).status == ConditionStatus::True {
            milestones.running.get_or_insert(now);
        }
        if environment.condition(ConditionType::Verified).status == ConditionStatus::True {
            milestones.verified.get_or_insert(now);
        }
        if milestones.synced.is_none() && !environment.endpoint.is_empty() {
            if let Some(health) = probe(&http, &environment.endpoint).await {
                say(format!(
                    "workload healthy: {}",
                    summarize_health(&health, status.height)
                ));
                milestones.synced = Some(now);
            }
        }
        if milestones.verified.is_some() && milestones.synced.is_some() {
            return Ok(milestones);
        }
        tokio::time::sleep(Duration::from_millis(WATCH_POLL_MS)).await;
    }
    Err(ClientError::Missing(format!(
        "lease {id} not verified within {} s",
        timeout.as_secs()
    )))
}

/// The body of `GET http://{endpoint}/health` if it answers 2xx.
async fn probe(http: &reqwest::Client, endpoint: &str) -> Option<serde_json::Value> {
    let response = http
        .get(format!("http://{endpoint}/health"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    Some(response.json().await.unwrap_or_default())
}

fn summarize_health(body: &serde_json::Value, chain_height: u64) -> String {
    match body.get("finalized_height") {
        Some(height) => format!(
            "leased full node synced to finalized height {height} (chain head {chain_height})"
        ),
        None => body.to_string(),
    }
}

/// Human-readable steps of a lease's status.
fn steps(status: &LeaseStatus) -> Vec<String> {
    let mut steps = vec![format!(
        "lease {} created at height {}: {} per block",
        status.lease, status.record.created_at, status.record.rate
    )];
    steps.push(format!("placed on provider {}", status.record.provider));
    if let Some(assigned) = status.assignment.as_ref().and_then(|task| task.assigned) {
        steps.push(format!("assigned to provisioner {assigned}"));
    }
    if let Some(environment) = &status.environment {
        for condition in &environment.conditions {
            let untouched = condition.status == ConditionStatus::Unknown
                && condition.reason == "AwaitingReport";
            if condition.kind == ConditionType::Scheduled || untouched {
                continue;
            }
            let separator = if condition.message.is_empty() {
                ""
            } else {
                ": "
            };
            steps.push(format!(
                "{:?}={:?} ({}{separator}{})",
                condition.kind, condition.status, condition.reason, condition.message
            ));
        }
        if !environment.endpoint.is_empty() {
            steps.push(format!("endpoint {}", environment.endpoint));
        }
    }
    if let Some(task) = &status.assignment {
        if !task.checkers.is_empty() {
            let checkers: Vec<String> = task.checkers.iter().map(|c| c.to_string()).collect();
            steps.push(format!(
                "cross-check round {} drawn: {}",
                task.round,
                checkers.join(", ")
            ));
        }
    }
    steps
}
