//! Headers every response carries, whatever answered it (a handler, an error, the fallback,
//! a 405, Swagger UI): HSTS when browsers reach the server over https.
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

/// Adds the headers to every response (an `axum::middleware::from_fn_with_state` layer).
pub async fn add(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host_is_a_name = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| is_dns_name(host_without_port(host)));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
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
