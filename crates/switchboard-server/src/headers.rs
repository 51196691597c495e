//! Headers every response carries, whatever answered it (a handler, an error, the fallback,
//! a 405, Swagger UI):
//!
//! - `Content-Security-Policy`: the workspace's own (set by `web`) on its pages; Swagger UI at
//!   `/docs` gets one that lets its bundled scripts and styles run (its index has no inline
//!   script; the rendered UI sets inline styles and `data:` images); every other response —
//!   JSON, errors, metrics — gets `default-src 'none'`, so a body that a browser is tricked
//!   into rendering can run nothing. All of them say `frame-ancestors 'none'`.
//! - `X-Frame-Options: DENY` (framing, for browsers without CSP 3), `X-Content-Type-Options:
//!   nosniff`, `Referrer-Policy: no-referrer`, `Cross-Origin-Opener-Policy: same-origin`,
//!   `Cross-Origin-Resource-Policy: same-origin`.
//! - `Cache-Control: no-store` on every answer that does not set its own caching (the
//!   workspace's files revalidate with `no-cache`): API answers carry personal data and
//!   secrets — a login's session token, a new API token, a consumer's profile — that must
//!   not be kept in a browser's or a proxy's cache.
//! - HSTS when browsers reach the server over https.
//!
//! A WebSocket upgrade's `101 Switching Protocols` gets none of them: it has no body for a
//! browser to render, frame, sniff or cache, and a consumer's phone pays for every byte of
//! every (re)connection (about 300 bytes here).
//!
//! HSTS (`Strict-Transport-Security`) tells a browser to use https for this host from now
//! on. It is sent when the server serves TLS or trusts a TLS proxy in front
//! (`ServerConfig::public_https`), except to `localhost` and IP addresses: browsers ignore
//! it for IP addresses, and pinning `localhost` to https would break every other local
//! development server on that machine for a year after a TLS trial.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// One year, the value HSTS preload lists ask for.
const HSTS: &str = "max-age=31536000";

/// The policy of every response that sets none itself: nothing may load or run.
const API_POLICY: &str = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Swagger UI (`/docs`): its vendored scripts and styles from this origin, the inline styles
/// and `data:` images its rendering uses, and fetching `/openapi.json` and trying requests.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Adds the headers to every response (an `axum::middleware::from_fn_with_state` layer).
pub async fn add(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host_is_a_name = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| is_dns_name(host_without_port(host)));
    let docs = request.uri().path() == "/docs" || request.uri().path().starts_with("/docs/");
    let mut response = next.run(request).await;
    if response.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = if docs { DOCS_POLICY } else { API_POLICY };
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    }
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (axum::http::HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (axum::http::HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    if state.config.public_https() && host_is_a_name {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    response
}

/// `host` of `host:port`, `[::1]` of `[::1]:port`.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// A host name other than `localhost`: not an IP address.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && !host.eq_ignore_ascii_case("localhost")
        && !host.to_ascii_lowercase().ends_with(".localhost")
        && host.parse::<std::net::IpAddr>().is_err()
        && !host.starts_with('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_goes_to_host_names_only() {
        for (host, name) in [
            ("chat.example.com", true),
            ("chat.example.com:8443", true),
            ("localhost:8080", false),
            ("app.localhost", false),
            ("127.0.0.1:8080", false),
            ("[::1]:8080", false),
            ("", false),
        ] {
            assert_eq!(is_dns_name(host_without_port(host)), name, "{host}");
        }
    }
}
