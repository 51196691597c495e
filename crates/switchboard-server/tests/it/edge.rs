//! Cross-site defences and security headers (issue 15, item 2): state changes by cookie and
//! agent upgrades only from the server's own origin or an allowed one; security headers on
//! every response, Swagger UI and errors included; `/metrics` behind a token when configured.

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_server::ServerConfig;
use switchboard_server::origin::Origin;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::*;

/// Logs in and returns the session cookie (`sb_session=…`).
async fn cookie_of(server: &TestServer, email: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.http))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// A request with the cookie and, if given, an `Origin`: status and body.
async fn with_cookie(
    server: &TestServer,
    cookie: &str,
    origin: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", server.http)).header("cookie", cookie);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn cookie_state_changes_need_the_servers_own_origin() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let cookie = cookie_of(&server, &brand.admin_email).await;
    let own = server.http.clone();
    let port = server.running.as_ref().unwrap().addr.port();
    let skill = || Some(json!({"name": "vip"}));

    // A sibling origin (another port of the same host: the same site for SameSite) and a page
    // that sends no Origin are refused, naming why; nothing was created.
    for origin in [Some(format!("http://127.0.0.1:{}", port + 1)), Some("null".to_owned()), None] {
        let (status, body) =
            with_cookie(&server, &cookie, origin.as_deref(), Method::POST, "/api/v1/skills", skill()).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("origin_refused")), "{origin:?}: {body}");
    }
    assert!(server.store.skills(&brand.id).await.unwrap().iter().all(|s| s.name != "vip"));
    // Logout too: the session survives a foreign page's logout.
    let (status, _) =
        with_cookie(&server, &cookie, Some("http://evil.test"), Method::POST, "/api/v1/auth/logout", None).await;
    assert_eq!(status, 403);
    // Reads are not changes: the cookie still works for them from anywhere (CORS keeps the
    // answer from a foreign page).
    let (status, me) = with_cookie(&server, &cookie, None, Method::GET, "/api/v1/me", None).await;
    assert_eq!((status, me["email"].as_str()), (200, Some(brand.admin_email.as_str())));
    // The own origin works.
    let (status, created) = with_cookie(&server, &cookie, Some(&own), Method::POST, "/api/v1/skills", skill()).await;
    assert_eq!(status, 201, "{created}");
    // A bearer token is not a browser's ambient credential: no Origin rule.
    let token = server.login(&brand.admin_email).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/skills", server.http))
        .bearer_auth(&token)
        .header("origin", "http://evil.test")
        .json(&json!({"name": "ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (status, _) = with_cookie(&server, &cookie, Some(&own), Method::POST, "/api/v1/auth/logout", None).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn allowed_origins_may_use_the_cookie_and_login_refuses_foreign_pages() {
    let config = ServerConfig {
        allowed_origins: vec![Origin::parse("https://admin.example.com").unwrap()],
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let brand = server.brand().await;
    let cookie = cookie_of(&server, &brand.admin_email).await;
    let (status, _) = with_cookie(
        &server,
        &cookie,
        Some("https://admin.example.com"),
        Method::POST,
        "/api/v1/skills",
        Some(json!({"name": "vip"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = with_cookie(
        &server,
        &cookie,
        Some("https://other.example.com"),
        Method::POST,
        "/api/v1/skills",
        Some(json!({"name": "vip2"})),
    )
    .await;
    assert_eq!(status, 403);
    // Login CSRF: a foreign page cannot log the browser in (to the attacker's account).
    let login = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.http))
        .header("origin", "https://other.example.com")
        .json(&json!({"email": brand.agent_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 403);
    assert!(login.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn agent_upgrades_from_a_foreign_page_are_refused() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let cookie = cookie_of(&server, &brand.agent_email).await;
    let upgrade = |origin: &str| {
        let mut request = format!("{}/v1/agent", server.ws).into_client_request().unwrap();
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
        request.headers_mut().insert("origin", origin.parse().unwrap());
        request
    };
    let foreign = tokio_tungstenite::connect_async(upgrade("http://evil.test")).await;
    match foreign {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("a foreign page's upgrade must be refused: {:?}", other.map(|(_, r)| r.status())),
    }
    let (socket, _) = tokio_tungstenite::connect_async(upgrade(&server.http)).await.unwrap();
    let mut agent = Client::from_stream(socket);
    let welcome = agent.hello(json!({"t": "hello", "v": 1})).await;
    assert_eq!(welcome["t"], "welcome", "the own origin's upgrade works with the cookie: {welcome}");
}

/// A WebSocket upgrade's 101 carries none of the page headers (no body to protect; a
/// consumer's phone pays for each byte of every reconnection), while a refused upgrade, an
/// ordinary answer, still does.
#[tokio::test]
async fn upgrades_carry_no_page_headers() {
    let server = TestServer::start().await;
    let (_socket, response) = tokio_tungstenite::connect_async(format!("{}/v1/consumer", server.ws)).await.unwrap();
    assert_eq!(response.status(), 101);
    for name in ["content-security-policy", "x-frame-options", "referrer-policy", "cache-control"] {
        assert!(response.headers().get(name).is_none(), "{name} on a 101: {:?}", response.headers());
    }
    let refused = reqwest::get(format!("{}/v1/consumer", server.http)).await.unwrap();
    assert!(refused.headers().get("content-security-policy").is_some(), "a refused upgrade keeps them");
}

/// Every response carries the security headers: JSON, errors (404, 405, 401), the workspace
/// (its own stricter policy), Swagger UI (a policy that lets it run) and metrics.
#[tokio::test]
async fn security_headers_are_on_every_response() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let cases = [
        (Method::GET, "/healthz", 200, "default-src 'none'"),
        (Method::GET, "/no/such/thing", 404, "default-src 'none'"),
        (Method::DELETE, "/api/v1/me", 405, "default-src 'none'"),
        (Method::GET, "/api/v1/me", 401, "default-src 'none'"),
        (Method::GET, "/openapi.json", 200, "default-src 'none'"),
        (Method::GET, "/docs/", 200, "script-src 'self'"),
        (Method::GET, "/", 200, "script-src 'self'"),
        (Method::GET, "/metrics", 200, "default-src 'none'"),
    ];
    for (method, path, status, policy) in cases {
        let response = http.request(method.clone(), format!("{}{path}", server.http)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let headers = response.headers();
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let csp = header("content-security-policy");
        assert!(csp.contains(policy) && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_configured() {
    let token = "metrics-scraper-secret-1";
    let server =
        TestServer::start_with(ServerConfig { metrics_token: Some(token.into()), ..ServerConfig::default() }).await;
    let url = format!("{}/metrics", server.http);
    let http = reqwest::Client::new();
    let refused = http.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "unauthenticated");
    assert_eq!(http.get(&url).bearer_auth("wrong-token-of-same-len").send().await.unwrap().status(), 401);
    let scraped = http.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
}
