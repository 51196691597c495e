//! The authorization matrix: every route of the served OpenAPI document × every kind of
//! caller (anonymous, a consumer's JWT, the operator, another brand's admin, agent, manager,
//! admin). The expected access of each route is written in [`ROUTES`]; a route the document
//! has and the table does not (or the other way round) fails the test naming it, so a new
//! route cannot skip this check.
//!
//! For each route and caller a request is sent with the path's ids filled with real ids of
//! brand A (the callers' brand; the other brand's admin gets the same ids of A) and a minimal
//! valid body. Allowed callers must not be refused (401/403) nor meet a server error; lower
//! roles get 403 `forbidden`, callers without a staff session 401; the other brand's admin
//! gets 403 or 404 for A's ids, and no answer to them names brand A's data.

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_server::ServerConfig;
use switchboard_store::Role;

use crate::harness::*;

const OPERATOR: &str = "operator-token-for-the-matrix-0123456789";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Only the deployment operator's token.
    Operator,
    /// Staff of the brand with at least this role.
    Staff(Role),
}

use Access::{Operator, Public, Staff};

const AGENT: Access = Staff(Role::Agent);
const MANAGER: Access = Staff(Role::Manager);
const ADMIN: Access = Staff(Role::Admin);

/// The expected access of every route of the OpenAPI document.
const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/readyz", Public),
    // Public in the default configuration; with `metrics_token` set, only for that token.
    ("GET", "/metrics", Public),
    ("POST", "/api/v1/auth/login", Public),
    ("POST", "/api/v1/auth/logout", AGENT),
    ("GET", "/api/v1/me", AGENT),
    ("PUT", "/api/v1/me/password", AGENT),
    ("POST", "/api/v1/brands", Operator),
    ("GET", "/api/v1/brand", AGENT),
    ("PATCH", "/api/v1/brand", ADMIN),
    ("GET", "/api/v1/brand/hours", MANAGER),
    ("PUT", "/api/v1/brand/hours", ADMIN),
    ("GET", "/api/v1/brand/masking", MANAGER),
    ("PUT", "/api/v1/brand/masking", ADMIN),
    ("GET", "/api/v1/apps", ADMIN),
    ("POST", "/api/v1/apps", ADMIN),
    ("GET", "/api/v1/apps/{app_id}", ADMIN),
    ("PATCH", "/api/v1/apps/{app_id}", ADMIN),
    ("GET", "/api/v1/apps/{app_id}/identity", ADMIN),
    ("PUT", "/api/v1/apps/{app_id}/identity", ADMIN),
    ("GET", "/api/v1/apps/{app_id}/keys", ADMIN),
    ("POST", "/api/v1/apps/{app_id}/keys", ADMIN),
    ("DELETE", "/api/v1/apps/{app_id}/keys/{key_id}", ADMIN),
    ("GET", "/api/v1/apps/{app_id}/push", ADMIN),
    ("PUT", "/api/v1/apps/{app_id}/push/apns", ADMIN),
    ("DELETE", "/api/v1/apps/{app_id}/push/apns", ADMIN),
    ("PUT", "/api/v1/apps/{app_id}/push/fcm", ADMIN),
    ("DELETE", "/api/v1/apps/{app_id}/push/fcm", ADMIN),
    ("POST", "/api/v1/apps/{app_id}/push/test", ADMIN),
    ("GET", "/api/v1/audit", ADMIN),
    ("GET", "/api/v1/automatic-messages", ADMIN),
    ("PUT", "/api/v1/automatic-messages", ADMIN),
    ("POST", "/api/v1/automatic-messages/preview", ADMIN),
    ("DELETE", "/api/v1/automatic-messages/{message_id}", ADMIN),
    ("POST", "/api/v1/consumers/erase", ADMIN),
    ("GET", "/api/v1/conversations", AGENT),
    ("GET", "/api/v1/conversations/{conversation_id}", AGENT),
    ("POST", "/api/v1/conversations/{conversation_id}/close", AGENT),
    ("POST", "/api/v1/conversations/{conversation_id}/priority", MANAGER),
    ("GET", "/api/v1/conversations/{conversation_id}/transcript", AGENT),
    ("POST", "/api/v1/conversations/{conversation_id}/transfer", AGENT),
    ("GET", "/api/v1/dashboard", MANAGER),
    ("GET", "/api/v1/exports/conversations", MANAGER),
    ("GET", "/api/v1/hours/status", MANAGER),
    ("GET", "/api/v1/inbox", AGENT),
    ("GET", "/api/v1/queue", MANAGER),
    ("GET", "/api/v1/reports", MANAGER),
    ("GET", "/api/v1/reports/conversations", MANAGER),
    ("GET", "/api/v1/reports/conversations.csv", MANAGER),
    ("GET", "/api/v1/retention", ADMIN),
    ("POST", "/api/v1/retention/purge", ADMIN),
    ("GET", "/api/v1/roster", AGENT),
    ("GET", "/api/v1/skills", AGENT),
    ("POST", "/api/v1/skills", ADMIN),
    ("PATCH", "/api/v1/skills/{skill_id}", ADMIN),
    ("DELETE", "/api/v1/skills/{skill_id}", ADMIN),
    ("GET", "/api/v1/skills/{skill_id}/hours", MANAGER),
    ("PUT", "/api/v1/skills/{skill_id}/hours", ADMIN),
    ("GET", "/api/v1/tokens", ADMIN),
    ("POST", "/api/v1/tokens", ADMIN),
    ("DELETE", "/api/v1/tokens/{token_id}", ADMIN),
    ("GET", "/api/v1/users", MANAGER),
    ("POST", "/api/v1/users", ADMIN),
    ("GET", "/api/v1/users/{user_id}", MANAGER),
    ("PATCH", "/api/v1/users/{user_id}", ADMIN),
];

/// Routes that end the caller's session or change its credentials: run last, in this order.
const LAST: &[(&str, &str)] = &[("PUT", "/api/v1/me/password"), ("POST", "/api/v1/auth/logout")];

/// The callers, in the order each route is tried: the refused ones first, so that only the
/// allowed ones change anything, and brand A's admin last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Consumer,
    Operator,
    OtherAdmin,
    Agent,
    Manager,
    Admin,
}

const CALLERS: [Who; 7] =
    [Who::Anonymous, Who::Consumer, Who::Operator, Who::OtherAdmin, Who::Agent, Who::Manager, Who::Admin];

/// Real ids of brand A for the path parameters. Routes that delete get an id of their own.
struct Ids {
    app: String,
    key_to_delete: i64,
    conversation: i64,
    conversation_to_close: i64,
    skill: i64,
    skill_to_delete: i64,
    user: i64,
    token_to_delete: i64,
    message_to_delete: i64,
}

impl Ids {
    fn fill(&self, method: &str, path: &str) -> String {
        let deleting = method == "DELETE";
        let closing = path.ends_with("/close");
        path.split('/')
            .map(|segment| match segment {
                "{app_id}" => self.app.clone(),
                "{key_id}" => self.key_to_delete.to_string(),
                "{conversation_id}" if closing => self.conversation_to_close.to_string(),
                "{conversation_id}" => self.conversation.to_string(),
                "{skill_id}" if deleting => self.skill_to_delete.to_string(),
                "{skill_id}" => self.skill.to_string(),
                "{user_id}" => self.user.to_string(),
                "{token_id}" => self.token_to_delete.to_string(),
                "{message_id}" => self.message_to_delete.to_string(),
                other if other.starts_with('{') => {
                    panic!("{method} {path}: no id for the path parameter {other}; add one to authz.rs `Ids`")
                }
                other => other.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The query a route needs (its required parameters).
fn query_of(path: &str) -> &'static str {
    match path {
        "/api/v1/conversations/{conversation_id}/transcript" | "/api/v1/exports/conversations" => "?format=json",
        "/api/v1/reports" | "/api/v1/reports/conversations.csv" => "?from=0&to=86400000",
        _ => "",
    }
}

/// A minimal valid body for a route that takes one.
fn body_of(method: &str, path: &str, brand: &TestBrand) -> Option<Value> {
    let body = match (method, path) {
        ("POST", "/api/v1/auth/login") => json!({"email": brand.agent_email, "password": PASSWORD}),
        ("PUT", "/api/v1/me/password") => {
            json!({"current_password": PASSWORD, "new_password": "a brand new passphrase for the matrix"})
        }
        ("POST", "/api/v1/brands") => json!({
            "id": unique("matrix-brand"), "name": "Matrix", "admin_email": "root@matrix.test",
            "admin_name": "Root", "admin_password": PASSWORD,
        }),
        ("PUT", "/api/v1/brand/masking") => json!({"rules": []}),
        ("POST", "/api/v1/apps") => json!({"name": "Matrix app", "channel": "in_app"}),
        ("POST", "/api/v1/apps/{app_id}/keys") => json!({"format": "pem", "material": RSA_PUBLIC}),
        ("PUT", "/api/v1/apps/{app_id}/push/apns") => {
            json!({"key_id": "ABC123DEFG", "team_id": "TEAM123456", "bundle_id": "test.matrix"})
        }
        ("POST", "/api/v1/apps/{app_id}/push/test") => json!({"provider": "fcm", "token": "device-token"}),
        ("PUT", "/api/v1/automatic-messages") => json!({"trigger": "welcome", "text": "Hello"}),
        ("POST", "/api/v1/automatic-messages/preview") => json!({"text": "Hello {first_name}"}),
        ("POST", "/api/v1/consumers/erase") => json!({"consumer": "nobody-of-the-matrix"}),
        ("POST", "/api/v1/conversations/{conversation_id}/priority") => json!({"priority": "high"}),
        ("POST", "/api/v1/skills") => json!({"name": unique("matrix skill")}),
        ("POST", "/api/v1/tokens") => json!({"name": "matrix token"}),
        ("POST", "/api/v1/users") => json!({
            "email": format!("{}@example.test", unique("matrix-user")), "name": "New user",
            "role": "agent", "password": PASSWORD,
        }),
        (_, "/api/v1/conversations/{conversation_id}/close") | ("POST", "/api/v1/retention/purge") => return None,
        ("POST" | "PUT" | "PATCH", _) => json!({}),
        _ => return None,
    };
    Some(body)
}

async fn create_skill(server: &TestServer, admin: &str, name: &str) -> i64 {
    let (status, body) = call(server, admin, Method::POST, "/api/v1/skills", json!({"name": name})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn send(server: &TestServer, token: Option<&str>, method: &str, url: &str, body: Option<Value>) -> (u16, String) {
    let mut request =
        reqwest::Client::new().request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{url}", server.http));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A JSON `{code, message}` error body; its code.
fn error_code(route: &str, who: Who, status: u16, text: &str) -> String {
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|_| panic!("{route} as {who:?}: the {status} answer is not JSON: {text:?}"));
    let (Some(code), Some(_)) = (body["code"].as_str(), body["message"].as_str()) else {
        panic!("{route} as {who:?}: the {status} answer is not {{code, message}}: {text}");
    };
    code.to_owned()
}

#[tokio::test]
async fn every_route_admits_exactly_the_callers_it_documents() {
    matrix(Backend::Sqlite).await;
}

/// The same on PostgreSQL, whose queries scope by brand in their own SQL.
#[tokio::test]
#[ignore = "needs PostgreSQL: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored"]
async fn every_route_admits_exactly_the_callers_it_documents_on_postgres() {
    matrix(Backend::Postgres).await;
}

async fn matrix(backend: Backend) {
    let config = ServerConfig { operator_token: Some(OPERATOR.into()), ..ServerConfig::default() };
    let server = TestServer::start_on(backend, config).await;
    let a = server.brand().await;
    let b = server.brand().await;
    let manager_email = format!("manager@{}.test", a.id);
    server.user(&a, &manager_email, "Manager of A", Role::Manager, 0, vec![]).await;
    let target_user = server.user(&a, &format!("target@{}.test", a.id), "Target of A", Role::Agent, 0, vec![]).await;

    // Two conversations held by A's agent: one to close, one for the rest.
    let mut agent_socket = server.online_agent(&a.agent_email).await;
    let mut conversations = Vec::new();
    for sub in ["matrix-1", "matrix-2"] {
        let mut consumer = server.consumer(&a, sub).await;
        consumer.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "secret of brand A"})).await;
        conversations.push(consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap());
        agent_socket.expect(|f| f["t"] == "msg").await;
    }

    let admin = server.login(&a.admin_email).await;
    let ids = {
        let (skill, skill_to_delete) =
            (create_skill(&server, &admin, "Matrix").await, create_skill(&server, &admin, "Matrix victim").await);
        let (status, keys) =
            call(&server, &admin, Method::GET, &format!("/api/v1/apps/{}/keys", a.app), json!(null)).await;
        assert_eq!(status, 200, "{keys}");
        let key_to_delete = keys[1]["id"].as_i64().unwrap();
        let (status, token) = call(&server, &admin, Method::POST, "/api/v1/tokens", json!({"name": "victim"})).await;
        assert_eq!(status, 201, "{token}");
        let token_to_delete = token["info"]["id"].as_i64().unwrap();
        let (status, message) = call(
            &server,
            &admin,
            Method::PUT,
            "/api/v1/automatic-messages",
            json!({"trigger": "resolved", "text": "Bye"}),
        )
        .await;
        assert_eq!(status, 200, "{message}");
        Ids {
            app: a.app.clone(),
            key_to_delete,
            conversation: conversations[0],
            conversation_to_close: conversations[1],
            skill,
            skill_to_delete,
            user: target_user,
            token_to_delete,
            message_to_delete: message["id"].as_i64().unwrap(),
        }
    };

    let consumer_jwt = rs256_token(&claims(&a, "matrix-1", 3600));
    let tokens = [
        (Who::Anonymous, None),
        (Who::Consumer, Some(consumer_jwt)),
        (Who::Operator, Some(OPERATOR.to_owned())),
        (Who::OtherAdmin, Some(server.login(&b.admin_email).await)),
        (Who::Agent, Some(server.login(&a.agent_email).await)),
        (Who::Manager, Some(server.login(&manager_email).await)),
        (Who::Admin, Some(server.login(&a.admin_email).await)),
    ];
    assert_eq!(tokens.iter().map(|(who, _)| *who).collect::<Vec<_>>(), CALLERS);
    // What no answer to the other brand's admin may contain.
    let secrets_of_a = [format!("\"{}\"", a.id), format!("@{}.test", a.id), "secret of brand A".to_owned()];

    // The routes of the served document, checked against the table both ways.
    let doc: Value = reqwest::get(format!("{}/openapi.json", server.http)).await.unwrap().json().await.unwrap();
    let mut documented = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let method = method.to_uppercase();
            // The document says an operation needs no credentials with an empty requirement.
            let public_in_doc = operation["security"].as_array().is_some_and(|any| any.contains(&json!({})));
            if let Some((_, _, access)) = ROUTES.iter().find(|(m, p, _)| *m == method && p == path) {
                assert_eq!(
                    public_in_doc,
                    *access == Public,
                    "{method} {path}: the OpenAPI document and authz.rs disagree on whether it needs credentials"
                );
            }
            documented.push((method, path.clone()));
        }
    }
    let missing: Vec<String> = documented
        .iter()
        .filter(|(method, path)| !ROUTES.iter().any(|(m, p, _)| *m == method.as_str() && *p == path.as_str()))
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(missing.is_empty(), "routes with no expected access in authz.rs ROUTES: {missing:?}");
    let stale: Vec<String> = ROUTES
        .iter()
        .filter(|(m, p, _)| !documented.iter().any(|(method, path)| *m == method.as_str() && *p == path.as_str()))
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert!(stale.is_empty(), "routes in authz.rs ROUTES that the OpenAPI document does not have: {stale:?}");

    let mut order: Vec<&(&str, &str, Access)> = ROUTES.iter().filter(|(m, p, _)| !LAST.contains(&(*m, *p))).collect();
    order.extend(LAST.iter().map(|(m, p)| ROUTES.iter().find(|(rm, rp, _)| rm == m && rp == p).unwrap()));

    let mut tried = 0;
    for &&(method, path, access) in &order {
        let route = format!("{method} {path}");
        let url = format!("{}{}", ids.fill(method, path), query_of(path));
        for (who, token) in &tokens {
            let who = *who;
            let (status, text) = send(&server, token.as_deref(), method, &url, body_of(method, path, &a)).await;
            tried += 1;
            assert!(status != 500, "{route} as {who:?}: server error {text}");
            if status >= 400 {
                error_code(&route, who, status, &text);
            }
            let allowed = match (access, who) {
                (Public, _) => true,
                (Operator, who) => who == Who::Operator,
                (Staff(_), Who::Anonymous | Who::Consumer | Who::Operator) => false,
                (Staff(_), Who::OtherAdmin) => !path.contains('{'),
                (Staff(role), Who::Agent) => Role::Agent >= role,
                (Staff(role), Who::Manager) => Role::Manager >= role,
                (Staff(_), Who::Admin) => true,
            };
            if allowed {
                assert!(status != 401 && status != 403, "{route} as {who:?} was refused ({status}): {text}");
            } else {
                let expected: &[u16] = match (access, who) {
                    (_, Who::Anonymous | Who::Consumer) => &[401],
                    // Any token but the operator's is no operator token; the operator is no staff.
                    (Operator, _) | (Staff(_), Who::Operator) => &[401],
                    (Staff(_), Who::OtherAdmin) => &[403, 404],
                    _ => &[403],
                };
                assert!(expected.contains(&status), "{route} as {who:?}: expected {expected:?}, got {status}: {text}");
                if status == 403 && who != Who::OtherAdmin {
                    assert_eq!(error_code(&route, who, status, &text), "forbidden", "{route} as {who:?}");
                }
            }
            if who == Who::OtherAdmin && access != Public {
                for secret in &secrets_of_a {
                    assert!(!text.contains(secret.as_str()), "{route} as brand B's admin shows {secret}: {text}");
                }
            }
        }
    }
    assert_eq!(tried, ROUTES.len() * CALLERS.len());
}
