//! HTTP to servers nobody vouches for: a provider's agent, a tenant's workload.
//!
//! Their answers are read with a byte bound ([`read_bounded`]), so a server that streams
//! without end, or announces a huge `Content-Length`, costs at most the bound; and the client
//! from [`untrusted`] follows no redirect, so a server cannot point the caller's requests
//! elsewhere (its own machine's loopback services, say) and gives up after a timeout.

use std::time::Duration;

/// Errors of reading an untrusted answer.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The answer is longer than the caller's bound.
    #[error("answer over {max_bytes} bytes")]
    TooLarge {
        /// The bound, bytes.
        max_bytes: usize,
    },
    /// The connection failed or timed out while reading.
    #[error("reading the answer: {0}")]
    Read(String),
}

/// An HTTP client for untrusted servers: each request times out after `timeout` (connecting
/// and reading included), and redirects are not followed.
pub fn untrusted(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The body of `response`, at most `max_bytes`: refused as soon as it announces or sends more.
pub async fn read_bounded(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, BodyError> {
    let too_large = BodyError::TooLarge { max_bytes };
    if response
        .content_length()
        .is_some_and(|length| length > max_bytes as u64)
    {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| BodyError::Read(error.to_string()))?
    {
        if body.len().saturating_add(chunk.len()) > max_bytes {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Largest health answer read, bytes (a node's `/health` is under 1 KiB; more is not read).
pub const HEALTH_BODY_MAX_BYTES: usize = 16_384;

/// Probes a workload's health as its template says (`logos_types::workload::HealthCheck`):
/// with a path, `GET http://{endpoint}{path}` must answer 2xx (its body, read at most
/// [`HEALTH_BODY_MAX_BYTES`], is returned as JSON when it is JSON); without, a TCP connection
/// to `endpoint` must be accepted within `timeout`. The error says why not.
pub async fn probe_health(
    http: &reqwest::Client,
    endpoint: &str,
    path: Option<&str>,
    timeout: Duration,
) -> Result<Option<serde_json::Value>, String> {
    if endpoint.is_empty() {
        return Err("no endpoint".into());
    }
    let Some(path) = path else {
        let connect = tokio::net::TcpStream::connect(endpoint);
        return match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(_)) => Ok(None),
            Ok(Err(error)) => Err(format!("TCP {endpoint}: {error}")),
            Err(_) => Err(format!(
                "TCP {endpoint}: no answer in {} ms",
                timeout.as_millis()
            )),
        };
    };
    let response = http
        .get(format!("http://{endpoint}{path}"))
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("health check answered {status}"));
    }
    let body = read_bounded(response, HEALTH_BODY_MAX_BYTES)
        .await
        .unwrap_or_default();
    Ok(serde_json::from_slice(&body).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `body` once per connection on a loopback port, with its length announced or
    /// (without `announce_length`) until the connection closes.
    async fn serve(body: Vec<u8>, announce_length: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4_096];
                    let _ = stream.read(&mut request).await;
                    let length = if announce_length {
                        format!("Content-Length: {}\r\n", body.len())
                    } else {
                        String::new()
                    };
                    let head = format!("HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n");
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                });
            }
        });
        format!("http://{address}/")
    }

    async fn fetch(url: &str, max_bytes: usize) -> Result<Vec<u8>, BodyError> {
        let http = untrusted(Duration::from_secs(5)).unwrap();
        read_bounded(http.get(url).send().await.unwrap(), max_bytes).await
    }

    /// An answer within the bound is read whole; one byte over is refused, announced or not.
    #[tokio::test]
    async fn answers_over_the_bound_are_refused_announced_or_not() {
        for announce_length in [true, false] {
            let exact = serve(vec![b'x'; 1_000], announce_length).await;
            assert_eq!(fetch(&exact, 1_000).await.unwrap().len(), 1_000);
            let over = serve(vec![b'x'; 1_001], announce_length).await;
            assert!(matches!(
                fetch(&over, 1_000).await,
                Err(BodyError::TooLarge { max_bytes: 1_000 })
            ));
        }
    }

    /// A redirect is handed back, not followed.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 4_096];
                let _ = stream.read(&mut request).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/secret\r\nContent-Length: 0\r\n\r\n",
                    )
                    .await;
            }
        });
        let http = untrusted(Duration::from_secs(5)).unwrap();
        let response = http.get(format!("http://{address}/")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 302);
    }
}
