//! What keeps other sites and other users away from the key the console holds: the `Host`
//! check (DNS rebinding), the form token and `Origin` check (cross-site requests), and the
//! headers every answer carries (no framing, no foreign scripts or styles, no caching).

use crate::Console;
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::{net::SocketAddr, sync::Arc};

/// The `Content-Security-Policy` of every answer: only the console's own script, style and
/// connections; inline SVG drawn by that script; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The `Host` values the console answers: its listen address, and `localhost:PORT` when it
/// listens on loopback.
pub fn host_allowed(host: &str, listen: SocketAddr) -> bool {
    if host == listen.to_string() {
        return true;
    }
    listen.ip().is_loopback() && host == format!("localhost:{}", listen.port())
}

/// True if `given` is the console's token (compared in constant time).
pub fn token_matches(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// True if a state-changing request's `Origin` (when the browser sent one) is the console.
pub fn origin_allowed(headers: &HeaderMap, listen: SocketAddr) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .is_some_and(|host| host_allowed(host, listen))
}

/// Refuses requests for another host and cross-site state changes, and adds the security
/// headers to every answer.
pub async fn guard(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    if !host_allowed(host, console.listen) {
        return (StatusCode::MISDIRECTED_REQUEST, "unknown host").into_response();
    }
    let changes = request.method() != axum::http::Method::GET;
    if changes && !origin_allowed(request.headers(), console.listen) {
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not `no-referrer`: with it browsers send `Origin: null` on the console's own forms.
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_console_itself_is_a_host_or_an_origin() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(host_allowed("127.0.0.1:8080", listen));
        assert!(host_allowed("localhost:8080", listen));
        for foreign in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "localhost",
            "",
            "127.0.0.1",
        ] {
            assert!(!host_allowed(foreign, listen), "{foreign}");
        }
        let public: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        assert!(!host_allowed("localhost:8080", public));
        let mut headers = HeaderMap::new();
        assert!(
            origin_allowed(&headers, listen),
            "same-origin forms may omit it"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(origin_allowed(&headers, listen));
        for foreign in [
            "https://evil.example",
            "null",
            "http://127.0.0.1:8080.evil.example",
        ] {
            headers.insert(header::ORIGIN, HeaderValue::from_static(foreign));
            assert!(!origin_allowed(&headers, listen), "{foreign}");
        }
    }

    #[test]
    fn the_token_must_match_exactly() {
        let token = "ab".repeat(32);
        assert!(token_matches(&token, &token));
        assert!(!token_matches(&"ab".repeat(31), &token));
        assert!(!token_matches(&format!("{}ac", "ab".repeat(31)), &token));
        assert!(!token_matches("", &token));
    }
}
