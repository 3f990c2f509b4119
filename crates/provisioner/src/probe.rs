//! Health probes.

/// `GET http://{endpoint}/health`; `Ok` on a 2xx answer.
pub async fn probe_health(http: &reqwest::Client, endpoint: &str) -> Result<(), String> {
    if endpoint.is_empty() {
        return Err("no endpoint".into());
    }
    let response = http
        .get(format!("http://{endpoint}/health"))
        .send()
        .await
        .map_err(|error| error.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("health check answered {}", response.status()))
    }
}
