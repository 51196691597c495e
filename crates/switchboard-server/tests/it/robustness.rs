//! Bad input gets a clear error and the server stays up; the HTTP surface answers.

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn malformed_and_oversized_frames_get_errors_and_the_socket_stays_usable() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut consumer = server.consumer(&brand, "fuzz").await;
    consumer.send_raw("{not json".into()).await;
    assert_eq!(consumer.expect(|f| f["t"] == "err").await["code"], "malformed_frame");
    consumer.send(json!({"t": "teleport", "id": 4})).await;
    let unknown = consumer.expect(|f| f["t"] == "err").await;
    assert_eq!(unknown["code"], "malformed_frame");
    assert_eq!(unknown["id"], 4, "the error names the request when it can");
    // A known frame with a field missing or of the wrong type is a bad request, naming it.
    consumer.send(json!({"t": "send", "id": 5, "cid": "x"})).await;
    let missing = consumer.expect(|f| f["t"] == "err").await;
    assert_eq!((missing["code"].as_str(), missing["id"].as_u64()), (Some("bad_request"), Some(5)), "{missing}");
    assert!(missing["msg"].as_str().unwrap().contains("text"), "{missing}");
    consumer.send(json!({"t": "sync", "id": 10, "c": "one", "after": 0})).await;
    let mistyped = consumer.expect(|f| f["t"] == "err").await;
    assert_eq!((mistyped["code"].as_str(), mistyped["id"].as_u64()), (Some("bad_request"), Some(10)), "{mistyped}");
    consumer.send_raw(format!("{{\"t\":\"ping\",\"id\":11,\"pad\":\"{}\"}}", "x".repeat(40_000))).await;
    let big = consumer.expect(|f| f["t"] == "err").await;
    assert_eq!(big["code"], "frame_too_large");
    assert_eq!(big["id"], 11, "the error names the request when it can: {big}");
    assert!(big["msg"].as_str().unwrap().contains("32768"), "{big}");
    consumer.send(json!({"t": "send", "id": 6, "cid": "", "text": "hi"})).await;
    assert_eq!(consumer.expect(|f| f["t"] == "err").await["code"], "invalid_client_id");
    consumer.send(json!({"t": "csat", "id": 7, "c": 1, "score": 9})).await;
    assert_eq!(consumer.expect(|f| f["t"] == "err").await["code"], "invalid_score");
    // Still usable.
    consumer.send(json!({"t": "ping", "id": 8})).await;
    assert_eq!(consumer.expect(|f| f["t"] == "pong").await["id"], 8);
    consumer.send(json!({"t": "send", "id": 9, "cid": "y", "text": "still here"})).await;
    consumer.expect(|f| f["t"] == "ack").await;
}

/// Issue 15: the frame limit left no room for a legal message written with escapes (2,000
/// emoji as `\u` surrogate pairs were refused as too large).
#[tokio::test]
async fn the_longest_message_fits_in_a_frame_however_it_is_escaped() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut consumer = server.consumer(&brand, "escapes").await;
    let text = "\\ud83d\\ude00".repeat(2000);
    let cid = "\\u0041".repeat(64);
    consumer.send_raw(format!("{{\"t\":\"send\",\"id\":1,\"cid\":\"{cid}\",\"text\":\"{text}\"}}")).await;
    let ack = consumer.expect(|f| f["t"] == "ack" || f["t"] == "err").await;
    assert_eq!(ack["t"], "ack", "{ack}");
    consumer.send(json!({"t": "sync", "id": 2, "c": ack["c"], "after": 0})).await;
    let msgs = consumer.expect(|f| f["t"] == "msgs").await;
    let stored = msgs["msgs"].as_array().unwrap().iter().find(|m| m["seq"] == ack["seq"]).unwrap();
    assert_eq!(stored["text"].as_str().unwrap(), "😀".repeat(2000));
}

/// Issue 15: a frame over the hard limit reset the connection (clients saw 1006 and retried)
/// instead of the documented 1009; a binary first frame closed without a word.
#[tokio::test]
async fn an_oversized_frame_closes_with_1009_and_a_binary_hello_with_4000() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut consumer = server.consumer(&brand, "huge").await;
    consumer.send_raw("x".repeat(switchboard_protocol::MAX_WIRE_FRAME_BYTES + 1)).await;
    assert_eq!(consumer.next().await.unwrap(), json!({"t": "closed", "code": 1009}));

    let mut binary = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    binary.send_binary(vec![0, 1, 2]).await;
    let refused = binary.next().await.unwrap();
    assert_eq!(refused["code"], "malformed_frame", "{refused}");
    assert_eq!(binary.next().await.unwrap(), json!({"t": "closed", "code": 4000}));
}

#[tokio::test]
async fn hello_problems_close_with_documented_codes() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let url = format!("{}/v1/consumer", server.ws);
    let cases = [
        (json!({"t": "ping"}), "hello_required", 4000),
        (json!({"t": "hello", "v": 99, "brand": brand.id, "app": brand.app, "anon": ""}), "unsupported_version", 4000),
        (json!({"t": "hello", "v": 1, "brand": "nope", "app": "nope"}), "brand_not_found", 4003),
        (json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app}), "unauthenticated", 4003),
    ];
    for (hello, code, close) in cases {
        let mut client = Client::connect(&url).await;
        let answer = client.hello(hello).await;
        assert_eq!(answer["code"], code, "{answer}");
        assert_eq!(client.next().await.unwrap()["code"], close);
    }
    let mut agent = Client::connect(&format!("{}/v1/agent", server.ws)).await;
    let answer = agent.hello(json!({"t": "hello", "v": 1, "session": "sbs_forged"})).await;
    assert_eq!(answer["code"], "session_expired");
    // The server is still up.
    let health = reqwest::get(format!("{}/healthz", server.http)).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn http_surface_answers_with_json_errors_openapi_and_metrics() {
    let server = TestServer::start().await;
    let openapi: Value = reqwest::get(format!("{}/openapi.json", server.http)).await.unwrap().json().await.unwrap();
    assert!(openapi["paths"]["/api/v1/conversations"].is_object());
    assert!(openapi["paths"]["/api/v1/apps/{app_id}/keys"].is_object());
    let docs = reqwest::get(format!("{}/docs/", server.http)).await.unwrap();
    assert_eq!(docs.status(), 200);
    let missing = reqwest::get(format!("{}/api/v1/nope", server.http)).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], "not_found");
    let bad_json = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.http))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    assert_eq!(bad_json.json::<Value>().await.unwrap()["code"], "bad_request");
    assert_eq!(reqwest::get(format!("{}/readyz", server.http)).await.unwrap().status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", server.http)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchboard_http_requests_total"), "{metrics}");
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_with_going_away() {
    let mut server = TestServer::start().await;
    let brand = server.brand().await;
    let mut consumer = server.consumer(&brand, "bye").await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "kept", "text": "acknowledged before shutdown"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let store = server.store.clone();
    let running = server.running.take().unwrap();
    let shutdown = tokio::spawn(running.shutdown());
    assert_eq!(consumer.expect(|f| f["t"] == "closed").await["code"], 1001);
    shutdown.await.unwrap().unwrap();
    drop(store);
    // Reopen the file: the acknowledged message is there.
    let url = format!("sqlite://{}", server.dir.join("test.db").display());
    let reopened = switchboard_store::Store::open(&switchboard_store::StoreOptions::new(url)).await.unwrap();
    assert_eq!(reopened.messages_after(&brand.id, c, 0, 10).await.unwrap().len(), 1);
}

/// The OpenAPI document is part of the API: a change shows up as a reviewed snapshot diff.
#[test]
fn openapi_document_snapshot() {
    use utoipa::OpenApi;
    let document = serde_json::to_value(switchboard_server::api::ApiDoc::openapi()).unwrap();
    insta::assert_json_snapshot!("openapi", document);
}

#[tokio::test]
async fn heartbeat_pings_are_answered_before_and_after_other_commands() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut consumer = server.consumer(&brand, "beat").await;
    // First command on the socket: answered by the socket loop itself.
    consumer.send(json!({"t": "ping", "id": 1})).await;
    assert_eq!(consumer.expect(|f| f["t"] == "pong").await["id"], 1);
    consumer.send(json!({"t": "send", "id": 2, "cid": "b1", "text": "hi"})).await;
    consumer.send(json!({"t": "ping", "id": 3})).await;
    let mut order = Vec::new();
    while order.len() < 2 {
        let frame = consumer.next().await.unwrap();
        if frame["t"] == "ack" || frame["t"] == "pong" {
            order.push(frame["id"].clone());
        }
    }
    assert_eq!(order, vec![json!(2), json!(3)], "answers keep the order of requests");
}

/// The value of `switchboard_http_requests_total{status="<class>"}` in a scrape (0 if absent).
fn requests_of_class(metrics: &str, class: &str) -> u64 {
    let series = format!("switchboard_http_requests_total{{status=\"{class}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |value| value.trim().parse().unwrap_or_else(|_| panic!("bad sample: {value}")))
}

async fn scrape(server: &TestServer) -> String {
    reqwest::get(format!("{}/metrics", server.http)).await.unwrap().text().await.unwrap()
}

/// Issue 13: every WebSocket upgrade was counted as a 5xx, so an alert on the 5xx rate fired on
/// normal traffic. Upgrades are 1xx; only real server errors are 5xx. The recorder is shared by
/// every test of this binary, so the checks are on differences, and "at least" where other tests
/// may add traffic of the same class at the same time (no test here causes a 5xx).
#[tokio::test]
async fn metrics_count_websocket_upgrades_as_1xx_not_5xx() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let before = scrape(&server).await;
    let mut sockets = Vec::new();
    for n in 0..3 {
        sockets.push(server.consumer(&brand, &format!("metered-{n}")).await);
    }
    let missing = reqwest::get(format!("{}/api/v1/nope", server.http)).await.unwrap();
    assert_eq!(missing.status(), 404);
    let after = scrape(&server).await;
    assert!(requests_of_class(&after, "1xx") >= requests_of_class(&before, "1xx") + 3, "{after}");
    assert!(requests_of_class(&after, "4xx") > requests_of_class(&before, "4xx"), "{after}");
    assert_eq!(requests_of_class(&after, "5xx"), requests_of_class(&before, "5xx"), "{after}");
    // The scrape before is itself a 2xx, counted once it was answered.
    assert!(requests_of_class(&after, "2xx") > requests_of_class(&before, "2xx"), "{after}");
    drop(sockets);
}

/// Issue 15: the OpenAPI document declared query parameters as required path parameters
/// (which breaks generated clients), and string fields had no documented limit (`jwt_issuer`
/// took 100,000 characters). Every parameter not in the path template is a query parameter;
/// every string and list of every request body has a documented limit.
#[tokio::test]
async fn the_openapi_document_declares_parameters_where_they_are_and_every_limit() {
    let server = TestServer::start().await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", server.http)).await.unwrap().json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    let mut unbounded = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let in_template = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    parameter["in"] == "path",
                    in_template,
                    "{method} {path}: parameter {name} is {}",
                    parameter["in"]
                );
            }
            if let Some(schema) = operation["requestBody"]["content"]["application/json"].get("schema") {
                bounded(schema, schemas, &format!("{method} {path}"), &mut unbounded, 0);
            }
        }
    }
    assert!(unbounded.is_empty(), "request fields without a documented limit:\n{}", unbounded.join("\n"));
}

/// Collects the strings without `maxLength` (and lists without `maxItems`) under `schema`.
fn bounded(schema: &Value, schemas: &Value, at: &str, unbounded: &mut Vec<String>, depth: usize) {
    assert!(depth < 20, "schema nesting too deep at {at}");
    if let Some(name) = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        return bounded(&schemas[name], schemas, at, unbounded, depth + 1);
    }
    for composite in ["oneOf", "anyOf", "allOf"] {
        for alternative in schema[composite].as_array().into_iter().flatten() {
            bounded(alternative, schemas, at, unbounded, depth + 1);
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"string") && schema.get("maxLength").is_none() && schema.get("enum").is_none() {
        unbounded.push(format!("{at}: string without maxLength"));
    }
    if types.contains(&"array") {
        if schema.get("maxItems").is_none() {
            unbounded.push(format!("{at}: list without maxItems"));
        }
        bounded(&schema["items"], schemas, &format!("{at}[]"), unbounded, depth + 1);
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        bounded(property, schemas, &format!("{at}.{name}"), unbounded, depth + 1);
    }
}

/// Issue 15: a 405 had an empty body, a body over the limit was a 400; every error is
/// `{code, message}` and each says what was wrong and the limit.
#[tokio::test]
async fn every_http_error_is_code_and_message_naming_the_limit() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let wrong_method = http.delete(format!("{}/healthz", server.http)).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(wrong_method.headers()["allow"].to_str().unwrap().contains("GET"));
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed", "{body}");
    assert!(body["message"].as_str().unwrap().contains("DELETE"), "{body}");

    let huge = format!("{{\"email\":\"{}\",\"password\":\"x\"}}", "a".repeat(2 * 1024 * 1024));
    let too_big = http
        .post(format!("{}/api/v1/auth/login", server.http))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    let body: Value = too_big.json().await.unwrap();
    assert_eq!(body["code"], "body_too_large", "{body}");
    assert!(body["message"].as_str().unwrap().contains("1048576"), "{body}");

    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let (status, body) = call(
        &server,
        &admin,
        reqwest::Method::POST,
        "/api/v1/apps",
        json!({"name": "Web", "channel": "web", "jwt_issuer": "i".repeat(100_000)}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "`jwt_issuer` is 100000 characters; the limit is 1024");
    let (status, body) = call(
        &server,
        &admin,
        reqwest::Method::PUT,
        "/api/v1/brand/hours",
        json!({"hours": {"time_zone": "UTC", "weekly": [{"day": "monday", "start": "09:00", "end": "17:00:00:00"}]}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "`hours.weekly[0].end` is 11 characters; the limit is 8");
}
