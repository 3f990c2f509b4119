//! What keeps other sites and other users away from the key the console holds: the session
//! (a secret printed at start, traded for an `HttpOnly`, `SameSite=Strict` cookie: other local
//! users, who can reach loopback too, cannot use the console without it), the `Host` check
//! (DNS rebinding), fetch metadata, the form token and the `Origin` check (cross-site
//! requests), and the headers every answer carries (no framing, no foreign scripts or styles,
//! no caching).

use crate::Console;
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
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

/// Name of the session cookie.
pub const COOKIE: &str = "logos_console";

/// The session secret a request carries in its cookie, if any.
pub fn session_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| cookie.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// The `key` query parameter of `query`, if any (the secret URL the console prints).
pub fn key_of(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("key="))
}

/// True if a request's fetch metadata says another site made it (browsers send
/// `Sec-Fetch-Site`; a URL typed or pasted says `none`).
pub fn cross_site(headers: &HeaderMap) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok());
    matches!(site, Some("cross-site" | "same-site"))
}

/// Refuses requests for another host, from another site or without the session; turns the
/// secret URL into the session cookie; adds the security headers to every answer.
pub async fn guard(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let mut response = admit(&console, request, next).await;
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

async fn admit(console: &Console, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    if !host_allowed(host, console.listen) {
        return (StatusCode::MISDIRECTED_REQUEST, "unknown host").into_response();
    }
    let changes = request.method() != axum::http::Method::GET;
    if cross_site(headers) || (changes && !origin_allowed(headers, console.listen)) {
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    // The secret URL: set the session and go to the page without the secret in it.
    if let Some(key) = key_of(request.uri().query()) {
        if !token_matches(key, &console.session) {
            return (StatusCode::UNAUTHORIZED, "wrong console key").into_response();
        }
        let cookie = format!("{COOKIE}={key}; HttpOnly; SameSite=Strict; Path=/");
        let mut response = Redirect::to(request.uri().path()).into_response();
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    let public = request.uri().path().starts_with("/assets/");
    let signed_in = session_of(headers).is_some_and(|key| token_matches(key, &console.session));
    if !public && !signed_in {
        return (
            StatusCode::UNAUTHORIZED,
            "open the URL `logos w3bi` printed (it carries this console's key)",
        )
            .into_response();
    }
    next.run(request).await
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
    fn the_session_comes_from_its_cookie_or_the_secret_url_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(session_of(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; logos_console=abc; b=2"),
        );
        assert_eq!(session_of(&headers), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("logos_consoleX=abc"),
        );
        assert_eq!(session_of(&headers), None);
        assert_eq!(key_of(Some("x=1&key=s3cret")), Some("s3cret"));
        assert_eq!(key_of(Some("monkey=1")), None);
        assert_eq!(key_of(None), None);
        let mut headers = HeaderMap::new();
        assert!(!cross_site(&headers));
        for (site, foreign) in [
            ("same-origin", false),
            ("none", false),
            ("cross-site", true),
            ("same-site", true),
        ] {
            headers.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert_eq!(cross_site(&headers), foreign, "{site}");
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
