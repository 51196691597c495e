//! Cross-site request defences: a browser request that carries the session cookie is only
//! honoured from the server's own origin or one in `allowed_origins`.
//!
//! `SameSite=Strict` stops the cookie from being sent by another *site*, but a sibling
//! subdomain (`evil.example.com` next to `chat.example.com`) or another port on the same host
//! is the same site: its pages would send the cookie. So state changes authenticated by the
//! cookie (any method but GET, HEAD and OPTIONS — logout included) and agent WebSocket
//! upgrades check the `Origin` header browsers send with them:
//!
//! - a state change by cookie must carry an allowed `Origin` (every current browser sends it
//!   on such requests; a cookie client that sends none is refused);
//! - an agent upgrade with an `Origin` must come from an allowed one (browsers always send
//!   it; non-browser clients authenticate in `hello` and send none);
//! - login with an `Origin` must come from an allowed one (no login CSRF).
//!
//! Bearer-token requests are not affected: a page cannot make a browser attach a bearer token.
//! The server's own origin is the scheme it is reached by (https when it serves TLS or trusts
//! a TLS proxy) and the `Host` the browser sent (behind a trusted proxy, `X-Forwarded-Host`
//! when present).

use axum::http::{HeaderMap, Method, header};
use switchboard_protocol::ErrorCode;

use crate::ServerConfig;
use crate::error::ApiError;
use crate::serve::ServedOverTls;

/// An origin in canonical form: lowercase `scheme://host[:port]`, the default port left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// Parses an origin as browsers send it or an operator writes it (`https://chat.example.com`,
    /// `http://localhost:5173`); a path, query, user or other scheme is refused, naming it.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let lower = text.trim().to_ascii_lowercase();
        let (scheme, rest) = lower
            .split_once("://")
            .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
            .ok_or_else(|| format!("{text:?} is not an origin: it must start with https:// or http://"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty()
            || authority.contains(['/', '?', '#', '@', ' '])
            || !authority.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(format!("{text:?} is not an origin: it must be scheme://host[:port], with no path"));
        }
        let default_port = if scheme == "https" { ":443" } else { ":80" };
        let authority = authority.strip_suffix(default_port).unwrap_or(authority);
        Ok(Origin(format!("{scheme}://{authority}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The server's own origin for this request, if the request names its host.
fn own_origin(config: &ServerConfig, headers: &HeaderMap, tls: bool) -> Option<Origin> {
    let scheme = if tls || config.trust_proxy_tls { "https" } else { "http" };
    let forwarded = config
        .trust_proxy_tls
        .then(|| headers.get("x-forwarded-host").and_then(|value| value.to_str().ok()))
        .flatten()
        .and_then(|hosts| hosts.split(',').next());
    let host = forwarded.or_else(|| headers.get(header::HOST).and_then(|value| value.to_str().ok()))?;
    Origin::parse(&format!("{scheme}://{}", host.trim())).ok()
}

/// Whether `Origin` (present) names this server or an allowed origin; `Ok` if it does.
fn check_present(config: &ServerConfig, headers: &HeaderMap, tls: bool, origin: &str) -> Result<(), ApiError> {
    let refused = || {
        metrics::counter!(crate::metrics::ORIGIN_REFUSED).increment(1);
        ApiError::new(
            ErrorCode::OriginRefused,
            format!(
                "requests from {origin} are refused: only this server's own origin{} may use its session",
                if config.allowed_origins.is_empty() { "" } else { " and allowed_origins" }
            ),
        )
    };
    let Ok(origin) = Origin::parse(origin) else { return Err(refused()) };
    if own_origin(config, headers, tls).as_ref() == Some(&origin) || config.allowed_origins.contains(&origin) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Whether the request came over TLS to this server (set by `serve`).
pub fn served_over_tls(extensions: &axum::http::Extensions) -> bool {
    extensions.get::<ServedOverTls>().is_some_and(|tls| tls.0)
}

/// A request authenticated by the session cookie: refused unless it is a safe method or
/// carries an allowed `Origin`.
pub fn check_cookie_request(
    config: &ServerConfig,
    method: &Method,
    headers: &HeaderMap,
    tls: bool,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    match headers.get(header::ORIGIN).map(|value| value.to_str().unwrap_or("null")) {
        Some(origin) => check_present(config, headers, tls, origin),
        None => {
            metrics::counter!(crate::metrics::ORIGIN_REFUSED).increment(1);
            Err(ApiError::new(
                ErrorCode::OriginRefused,
                "a change authenticated by the session cookie must carry an Origin header (browsers send it); \
                 other clients use Authorization: Bearer",
            ))
        }
    }
}

/// A request whose `Origin`, if any, must be allowed: login and agent WebSocket upgrades.
pub fn check_if_present(config: &ServerConfig, headers: &HeaderMap, tls: bool) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN) {
        Some(origin) => check_present(config, headers, tls, origin.to_str().unwrap_or("null")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn origins_are_parsed_into_one_form() {
        let cases = [
            ("https://Chat.Example.com", "https://chat.example.com"),
            ("https://chat.example.com:443/", "https://chat.example.com"),
            ("http://localhost:5173", "http://localhost:5173"),
            ("http://[::1]:80", "http://[::1]"),
        ];
        for (text, expected) in cases {
            assert_eq!(Origin::parse(text).unwrap().as_str(), expected, "{text}");
        }
        for bad in ["chat.example.com", "ftp://x", "https://x/path", "https://user@x", "null", "https://"] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_own_origin_follows_the_host_and_the_scheme() {
        let config = ServerConfig::default();
        let none = false;
        let post = Method::POST;
        let same = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert!(check_cookie_request(&config, &post, &same, none).is_ok());
        let other_port = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:9999")]);
        assert!(check_cookie_request(&config, &post, &other_port, none).is_err());
        let sibling = headers(&[("host", "chat.example.com"), ("origin", "http://evil.example.com")]);
        assert!(check_cookie_request(&config, &post, &sibling, none).is_err());
        let missing = headers(&[("host", "chat.example.com")]);
        assert!(check_cookie_request(&config, &post, &missing, none).is_err());
        assert!(check_cookie_request(&config, &Method::GET, &missing, none).is_ok(), "reads are not checked");
        // Over TLS the own origin is https.
        let tls = true;
        let https = headers(&[("host", "chat.example.com"), ("origin", "https://chat.example.com")]);
        assert!(check_cookie_request(&config, &post, &https, tls).is_ok());
        assert!(check_cookie_request(&config, &post, &https, none).is_err(), "http server, https origin");
        // Behind a trusted proxy: https, and the forwarded host.
        let proxied = ServerConfig { trust_proxy_tls: true, ..ServerConfig::default() };
        let forwarded = headers(&[
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-host", "chat.example.com"),
            ("origin", "https://chat.example.com"),
        ]);
        assert!(check_cookie_request(&proxied, &post, &forwarded, none).is_ok());
        assert!(check_cookie_request(&config, &post, &forwarded, none).is_err(), "not trusted: Host only");
        // An allowed origin.
        let allowed = ServerConfig {
            allowed_origins: vec![Origin::parse("https://admin.example.com").unwrap()],
            ..ServerConfig::default()
        };
        let from_admin = headers(&[("host", "chat.example.com"), ("origin", "https://admin.example.com")]);
        assert!(check_cookie_request(&allowed, &post, &from_admin, none).is_ok());
        assert!(check_if_present(&config, &missing, none).is_ok(), "no Origin: not a browser");
        assert!(check_if_present(&config, &sibling, none).is_err());
    }
}
