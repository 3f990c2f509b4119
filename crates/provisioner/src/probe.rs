//! Health probes: the workload's health check as its template declares it (HTTP path or TCP),
//! through `logos_client::http::probe_health`.

use logos_types::workload::HealthCheck;
use std::time::Duration;

/// Probes `endpoint` with `check`; `Ok` when healthy, else why not.
pub async fn probe_health(
    http: &reqwest::Client,
    endpoint: &str,
    check: &HealthCheck,
    timeout: Duration,
) -> Result<(), String> {
    logos_client::http::probe_health(http, endpoint, check.path.as_deref(), timeout)
        .await
        .map(|_| ())
}
