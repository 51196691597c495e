//! Push notifications end to end, against the fake FCM and APNs servers of `fake_providers`
//! (TLS, HTTP/2 for APNs, signatures checked): what a push to a consumer who is away looks
//! like on each provider, no push while a device is connected or has the message, masking,
//! retries that honour `Retry-After`, devices the provider rejects unregistered, one push per
//! message and device, one push for a burst, a restart during a backlog, and tenancy.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_bus::Topic;
use switchboard_server::ServerConfig;
use switchboard_store::{ApnsEnvironment, ApnsSettings, FcmSettings};

use crate::fake_providers::*;
use crate::harness::*;

/// A server whose pushes go to fresh fake providers, a brand whose app has both providers'
/// settings, and its agent, online.
struct Scene {
    server: TestServer,
    brand: TestBrand,
    agent: Client,
    fakes: FakeProviders,
    next_id: u64,
}

async fn scene() -> Scene {
    scene_with(|_| {}).await
}

async fn scene_with(adjust: impl FnOnce(&mut ServerConfig)) -> Scene {
    let fakes = FakeProviders::start().await;
    let mut config = ServerConfig { push: fakes.config(), ..ServerConfig::default() };
    adjust(&mut config);
    let server = TestServer::start_with(config).await;
    let brand = server.brand().await;
    configure_app(&server, &brand).await;
    // An agent with room for every consumer of a test.
    let email = format!("pusher@{}.test", brand.id);
    server.user(&brand, &email, &format!("Agent of {}", brand.id), switchboard_store::Role::Agent, 50, vec![]).await;
    let agent = server.online_agent(&email).await;
    Scene { server, brand, agent, fakes, next_id: 100 }
}

/// Both providers' settings for the brand's app, as an admin would save them.
async fn configure_app(server: &TestServer, brand: &TestBrand) {
    let now = now_secs() * 1000;
    let fcm = FcmSettings { project_id: FCM_PROJECT.into(), service_account_json: service_account_json() };
    server.store.set_fcm_settings(&brand.id, &brand.app, Some(&fcm), now).await.unwrap();
    let apns = ApnsSettings {
        key_id: APNS_KEY_ID.into(),
        team_id: APNS_TEAM_ID.into(),
        bundle_id: APNS_BUNDLE_ID.into(),
        private_key: apns_p8(),
        environment: ApnsEnvironment::Production,
    };
    server.store.set_apns_settings(&brand.id, &brand.app, Some(&apns), now).await.unwrap();
}

impl Scene {
    /// A consumer who registered `devices`, wrote once (the agent has the conversation) and
    /// left: returns the conversation id.
    async fn away_consumer(&mut self, sub: &str, devices: &[(&str, &str)]) -> i64 {
        let mut consumer = self.server.consumer(&self.brand, sub).await;
        for (i, (provider, token)) in devices.iter().enumerate() {
            consumer.send(json!({"t": "push", "id": 10 + i, "provider": provider, "token": token})).await;
            consumer.expect(|f| f["t"] == "ok" && f["id"] == 10 + i).await;
        }
        consumer.send(json!({"t": "send", "id": 1, "cid": format!("{sub}-1"), "text": "My parcel is late"})).await;
        let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
        self.agent.expect(|f| f["t"] == "msg" && f["c"] == c).await;
        consumer.close().await;
        self.wait_away(sub).await;
        c
    }

    /// Waits until no device of `sub` is connected to the server.
    async fn wait_away(&self, sub: &str) {
        let consumer = self.server.store.consumer_by_external_id(&self.brand.id, sub).await.unwrap().unwrap();
        let topic = Topic::Consumer { brand: self.brand.id.as_str().into(), consumer: consumer.id };
        let bus = &self.server.running.as_ref().unwrap().state.bus;
        let deadline = Instant::now() + WAIT;
        while bus.has_subscribers(&topic) {
            assert!(Instant::now() < deadline, "{sub} still connected");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The agent writes `text` into conversation `c` and waits for the ack.
    async fn reply(&mut self, c: i64, text: &str) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        self.agent.send(json!({"t": "send", "id": id, "c": c, "cid": format!("a{id}"), "text": text})).await;
        self.agent.expect(|f| f["t"] == "ack" && f["id"] == id).await["seq"].as_i64().unwrap()
    }

    /// The brand's pending pushes (claimed or not).
    async fn pending(&self) -> i64 {
        self.server.store.outbox_pending("push").await.unwrap()
    }

    /// Waits until the outbox has no pending push (panics after the wait).
    async fn drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.pending().await > 0 {
            assert!(Instant::now() < deadline, "pushes still pending");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn tokens(&self, sub: &str) -> Vec<String> {
        let consumer = self.server.store.consumer_by_external_id(&self.brand.id, sub).await.unwrap().unwrap();
        self.server
            .store
            .push_targets(&self.brand.id, consumer.id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.token)
            .collect()
    }
}

const APNS_DEVICE: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

#[tokio::test]
async fn an_answer_to_a_consumer_who_is_away_is_pushed_through_fcm() {
    let mut scene = scene().await;
    let c = scene.away_consumer("pia", &[("fcm", "fcm-device-pia")]).await;
    let seq = scene.reply(c, "Your parcel ships today").await;

    let push = scene.fakes.wait_for(1).await.remove(0);
    assert_eq!(push.provider, "fcm");
    assert_eq!(push.path, format!("/v1/projects/{FCM_PROJECT}/messages:send"));
    // The bearer token is one the token endpoint issued for a correctly signed assertion.
    let issued = scene.fakes.state.issued.lock().unwrap().clone();
    assert_eq!(issued.len(), 1, "refused: {:?}", scene.fakes.state.refused_assertions.lock().unwrap());
    assert_eq!(push.headers["authorization"], format!("Bearer {}", issued[0]).as_str());
    let message = &push.body["message"];
    assert_eq!(message["token"], "fcm-device-pia");
    assert_eq!(push.alert(), (format!("Agent of {}", scene.brand.id), "Your parcel ships today".to_owned()));
    assert_eq!(push.app_data(), json!({"c": c, "seq": seq, "badge": 1}));
    assert_eq!(push.badge(), 1);
    assert_eq!(message["android"]["collapse_key"], format!("c{c}").as_str());
    assert_eq!(message["android"]["notification"]["notification_count"], 1);
    assert_eq!(message["apns"]["headers"]["apns-collapse-id"], format!("c{c}").as_str());
    scene.drained().await;

    // A second answer: badge 2, the access token reused (no second token request).
    let seq = scene.reply(c, "Tracking number: 42").await;
    let second = scene.fakes.wait_for(2).await.remove(1);
    assert_eq!(second.app_data(), json!({"c": c, "seq": seq, "badge": 2}));
    assert_eq!(scene.fakes.state.issued.lock().unwrap().len(), 1, "the access token is cached");
    assert_eq!(second.headers["authorization"], push.headers["authorization"]);

    // The metrics count it.
    let metrics = reqwest::get(format!("{}/metrics", scene.server.http)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchboard_push_sent_total{provider=\"fcm\"}"), "{metrics}");
}

#[tokio::test]
async fn an_answer_is_pushed_through_apns_over_http2_with_a_signed_provider_token() {
    let mut scene = scene().await;
    let c = scene.away_consumer("ava", &[("apns", APNS_DEVICE)]).await;
    let seq = scene.reply(c, "We refunded you").await;

    let push = scene.fakes.wait_for(1).await.remove(0);
    assert_eq!((push.provider, push.status), ("apns", 200), "{push:?}");
    assert_eq!(push.version, axum::http::Version::HTTP_2);
    assert_eq!(push.path, format!("/3/device/{APNS_DEVICE}"));
    // The fake checked the ES256 signature, the key id and the team: it answered 200.
    let header = |name: &str| push.headers[name].to_str().unwrap().to_owned();
    assert!(header("authorization").starts_with("bearer "));
    assert_eq!(header("apns-topic"), APNS_BUNDLE_ID);
    assert_eq!(header("apns-push-type"), "alert");
    assert_eq!(header("apns-priority"), "10");
    assert_eq!(header("apns-collapse-id"), format!("c{c}"));
    let expiration: u64 = header("apns-expiration").parse().unwrap();
    assert!(expiration > now_secs() as u64 + 3600, "expires in a day: {expiration}");
    assert_eq!(push.alert().1, "We refunded you");
    assert_eq!(push.body["aps"]["badge"], 1);
    assert_eq!(push.body["aps"]["thread-id"], format!("c{c}").as_str());
    assert_eq!(push.app_data(), json!({"c": c, "seq": seq, "badge": 1}));
}

#[tokio::test]
async fn no_push_while_a_device_is_connected_or_has_confirmed_the_message() {
    let mut scene = scene_with(|config| config.push.coalesce = Duration::from_secs(2)).await;
    // Connected: the message arrives live, no push.
    let mut consumer = scene.server.consumer(&scene.brand, "cal").await;
    consumer.send(json!({"t": "push", "id": 1, "provider": "fcm", "token": "fcm-device-cal"})).await;
    consumer.send(json!({"t": "send", "id": 2, "cid": "cal-1", "text": "Hi"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    scene.agent.expect(|f| f["t"] == "msg" && f["c"] == c).await;
    scene.reply(c, "Hello Cal").await;
    consumer.expect(|f| f["t"] == "msg" && f["text"] == "Hello Cal").await;
    scene.drained().await;
    assert!(scene.fakes.received().is_empty(), "{:?}", scene.fakes.received());

    // The device confirms delivery, then leaves before the push would go: still no push.
    let seq = scene.reply(c, "Anything else?").await;
    consumer.expect(|f| f["t"] == "msg" && f["seq"] == seq).await;
    consumer.send(json!({"t": "rcpt", "id": 3, "c": c, "seq": seq, "k": "dlv"})).await;
    consumer.expect(|f| f["t"] == "ok" && f["id"] == 3).await;
    consumer.close().await;
    scene.drained().await;
    assert!(scene.fakes.received().is_empty(), "{:?}", scene.fakes.received());

    // Away and not delivered: pushed.
    scene.wait_away("cal").await;
    scene.reply(c, "Bye").await;
    assert_eq!(scene.fakes.wait_for(1).await[0].alert().1, "Bye");
}

#[tokio::test]
async fn pushes_are_masked_like_the_live_frame_or_entirely_when_the_brand_says_so() {
    let mut scene = scene().await;
    let admin = scene.server.login(&scene.brand.admin_email).await;
    let rules = json!({"rules": [
        {"name": "Credit card numbers", "kind": "credit_card", "hidden_from": {"agents": true, "storage": true}},
        {"name": "Order codes", "kind": "pattern", "pattern": "ORD-\\d+", "hidden_from": {"other_devices": true}},
    ]});
    let (status, body) = call(&scene.server, &admin, reqwest::Method::PUT, "/api/v1/brand/masking", rules).await;
    assert_eq!(status, 200, "{body}");
    let c = scene.away_consumer("max", &[("fcm", "fcm-device-max")]).await;
    scene.reply(c, "Your order ORD-123456 for card 4111 1111 1111 1111 is on its way").await;
    let push = scene.fakes.wait_for(1).await.remove(0);
    assert_eq!(push.alert().1, "Your order ********** for card **** **** **** 1111 is on its way");
    scene.drained().await;

    // The brand masks pushes: nothing of the message, not even who wrote it.
    let (status, body) =
        call(&scene.server, &admin, reqwest::Method::PATCH, "/api/v1/brand", json!({"push_masked": true})).await;
    assert_eq!((status, body["push_masked"].as_bool()), (200, Some(true)), "{body}");
    let seq = scene.reply(c, "Secret plans inside").await;
    let push = scene.fakes.wait_for(2).await.remove(1);
    assert_eq!(push.alert(), (scene.brand.id.clone(), "You have a new message".to_owned()));
    let raw = push.body.to_string();
    assert!(!raw.contains("Secret") && !raw.contains("Agent of"), "{raw}");
    assert_eq!(push.app_data(), json!({"c": c, "seq": seq, "badge": 2}), "the app still learns where to go");
}

#[tokio::test]
async fn a_busy_provider_is_retried_no_sooner_than_it_asked() {
    let mut scene = scene().await;
    scene.fakes.script(
        "fcm-device-rae",
        vec![Scripted {
            status: 503,
            retry_after: Some(2),
            body: json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "try later"}}),
        }],
    );
    scene.fakes.script(
        APNS_DEVICE,
        vec![Scripted { status: 429, retry_after: Some(1), body: json!({"reason": "TooManyRequests"}) }],
    );
    let c = scene.away_consumer("rae", &[("fcm", "fcm-device-rae"), ("apns", APNS_DEVICE)]).await;
    scene.reply(c, "Hello Rae").await;
    let first = Instant::now();
    let received = scene.fakes.wait_for(4).await;
    let waited = first.elapsed();
    scene.drained().await;
    let statuses: Vec<(&str, u16)> = received.iter().map(|r| (r.provider, r.status)).collect();
    assert_eq!(statuses.iter().filter(|s| s.1 == 200).count(), 2, "one accepted push per device: {statuses:?}");
    assert_eq!(scene.fakes.received_by("fcm-device-rae").iter().map(|r| r.status).collect::<Vec<_>>(), [503, 200]);
    assert_eq!(scene.fakes.received_by(APNS_DEVICE).iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    // The retry waited for the longer Retry-After (2 s), not the 100 ms backoff.
    assert!(waited >= Duration::from_millis(1500), "retried after {waited:?}");
    assert_eq!(scene.tokens("rae").await.len(), 2, "busy is not gone: both devices stay registered");
}

#[tokio::test]
async fn devices_the_provider_rejects_are_unregistered_and_others_get_their_push_once() {
    let mut scene = scene().await;
    scene.fakes.script(
        "fcm-gone",
        vec![Scripted {
            status: 404,
            retry_after: None,
            body: json!({"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
        }],
    );
    scene.fakes.script(
        "fcm-garbled",
        vec![Scripted {
            status: 400,
            retry_after: None,
            body: json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                "message": "The registration token is not a valid FCM registration token",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}]}}),
        }],
    );
    let old_iphone = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    scene
        .fakes
        .script(old_iphone, vec![Scripted { status: 410, retry_after: None, body: json!({"reason": "Unregistered"}) }]);
    let bad_iphone = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    scene.fakes.script(
        bad_iphone,
        vec![Scripted { status: 400, retry_after: None, body: json!({"reason": "BadDeviceToken"}) }],
    );
    // One device is fine but the provider is briefly unavailable for it: it alone is retried.
    scene.fakes.script("fcm-fine", vec![Scripted { status: 500, retry_after: None, body: json!({}) }]);
    let devices = [
        ("fcm", "fcm-gone"),
        ("fcm", "fcm-garbled"),
        ("apns", old_iphone),
        ("apns", bad_iphone),
        ("apns", APNS_DEVICE),
        ("fcm", "fcm-fine"),
    ];
    let c = scene.away_consumer("dex", &devices).await;
    scene.reply(c, "Hello Dex").await;
    scene.fakes.wait_for(7).await;
    scene.drained().await;
    assert_eq!(scene.tokens("dex").await, [APNS_DEVICE, "fcm-fine"], "the four rejected devices are unregistered");
    for (_, device) in devices {
        let accepted = scene.fakes.received_by(device).iter().filter(|r| r.status == 200).count();
        let expected = usize::from(device == APNS_DEVICE || device == "fcm-fine");
        assert_eq!(accepted, expected, "{device}: {:?}", scene.fakes.received_by(device));
    }
    assert_eq!(scene.fakes.received_by(APNS_DEVICE).len(), 1, "the device that got it is not pushed again");

    // The next message goes to the two remaining devices only.
    scene.reply(c, "Still there?").await;
    scene.fakes.wait_for(9).await;
    scene.drained().await;
    assert_eq!(scene.fakes.received().len(), 9);
}

#[tokio::test]
async fn a_burst_of_messages_makes_one_push_with_the_latest_and_the_unread_count() {
    // The three replies must fall within the coalescing window: 5 s leaves room for a
    // loaded machine (500 ms was once too short for three round trips while CI built, and
    // 2 s once too: the first two went in one push, the third in another).
    let mut scene = scene_with(|config| config.push.coalesce = Duration::from_secs(5)).await;
    let c = scene.away_consumer("bo", &[("fcm", "fcm-device-bo")]).await;
    scene.reply(c, "One").await;
    scene.reply(c, "Two").await;
    let seq = scene.reply(c, "Three").await;
    scene.drained().await;
    let received = scene.fakes.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].alert().1, "Three");
    assert_eq!(received[0].app_data(), json!({"c": c, "seq": seq, "badge": 3}));
}

#[tokio::test]
async fn a_restart_during_a_backlog_delivers_the_rest_once() {
    // Small batches of a slow provider, so the backlog is still there when the server stops.
    let mut scene = scene_with(|config| config.push.batch = 3).await;
    *scene.fakes.state.delay.lock().unwrap() = Duration::from_millis(300);
    let mut conversations = Vec::new();
    for i in 0..12 {
        let sub = format!("u{i}");
        let device = format!("fcm-device-u{i}");
        conversations.push(scene.away_consumer(&sub, &[("fcm", &device)]).await);
    }
    for c in &conversations {
        scene.reply(*c, "Your answer").await;
    }
    scene.fakes.wait_for(2).await;
    // Stop mid-backlog (pushes in flight finish or are given back), then a second server on
    // the same database delivers the rest.
    let mut config = ServerConfig { push: scene.fakes.config(), ..ServerConfig::default() };
    config.push.batch = 3;
    scene.server.restart(config).await;
    assert!(scene.pending().await > 0, "the restart came during the backlog");
    scene.drained().await;
    let received = scene.fakes.received();
    for i in 0..12 {
        let device = format!("fcm-device-u{i}");
        let pushes = received.iter().filter(|r| r.device == device).count();
        assert_eq!(pushes, 1, "{device} got {pushes} pushes");
    }
}

#[tokio::test]
async fn brands_push_with_their_own_apps_settings_only() {
    let mut scene = scene().await;
    // Another brand with the same kind of device and no push settings.
    let other = scene.server.brand().await;
    let mut other_agent = scene.server.online_agent(&other.agent_email).await;
    let mut consumer = scene.server.consumer(&other, "zed").await;
    consumer.send(json!({"t": "push", "id": 1, "provider": "fcm", "token": "fcm-device-zed"})).await;
    consumer.send(json!({"t": "send", "id": 2, "cid": "z1", "text": "Hi"})).await;
    let other_c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    other_agent.expect(|f| f["t"] == "msg" && f["c"] == other_c).await;
    consumer.close().await;
    let c = scene.away_consumer("amy", &[("fcm", "fcm-device-amy")]).await;

    other_agent.send(json!({"t": "send", "id": 3, "c": other_c, "cid": "o1", "text": "From the other brand"})).await;
    other_agent.expect(|f| f["t"] == "ack" && f["id"] == 3).await;
    scene.reply(c, "From Acme").await;
    scene.drained().await;
    let received = scene.fakes.received();
    assert_eq!(received.len(), 1, "the other brand's app has no settings: {received:#?}");
    assert_eq!((received[0].device.as_str(), received[0].alert().1.as_str()), ("fcm-device-amy", "From Acme"));
}

/// `method path` as `token` with the full response (headers included).
async fn raw(
    server: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, Option<String>, String) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", server.http))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cache = response.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
    (status, cache, response.text().await.unwrap())
}

#[tokio::test]
async fn admins_set_each_apps_push_settings_and_secrets_never_come_back() {
    let fakes = FakeProviders::start().await;
    let server = TestServer::start_with(ServerConfig { push: fakes.config(), ..ServerConfig::default() }).await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let agent = server.login(&brand.agent_email).await;
    let base = format!("/api/v1/apps/{}/push", brand.app);
    use reqwest::Method;

    let (status, cache, body) = raw(&server, &admin, Method::GET, &base, json!(null)).await;
    assert_eq!((status, cache.as_deref()), (200, Some("no-store")), "{body}");
    let empty: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((empty["fcm"].is_null(), empty["apns"].is_null()), (true, true));

    // Refusals name what is wrong, never echo the secret.
    let refused = |body: &str, says: &str| {
        let error: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(error["code"], "bad_request", "{body}");
        assert!(error["message"].as_str().unwrap().contains(says), "{body} should say {says}");
        assert!(!body.contains("PRIVATE KEY"), "{body}");
    };
    let fcm = format!("{base}/fcm");
    let (status, _, body) = raw(&server, &admin, Method::PUT, &fcm, json!({"project_id": "acme-prod"})).await;
    assert_eq!(status, 400);
    refused(&body, "service_account_json is required");
    let (_, _, body) =
        raw(&server, &admin, Method::PUT, &fcm, json!({"service_account_json": "{\"type\": \"authorized_user\"}"}))
            .await;
    refused(&body, "\"type\": \"service_account\"");
    let broken = service_account_json().replace("MII", "XXX");
    let (_, _, body) = raw(&server, &admin, Method::PUT, &fcm, json!({"service_account_json": broken})).await;
    refused(&body, "not an RSA private key");
    let (status, _, body) =
        raw(&server, &admin, Method::PUT, &fcm, json!({"service_account_json": service_account_json(), "extra": 1}))
            .await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    let (status, _, body) =
        raw(&server, &agent, Method::PUT, &fcm, json!({"service_account_json": service_account_json()})).await;
    assert_eq!(status, 403, "{body}");

    let (status, cache, body) =
        raw(&server, &admin, Method::PUT, &fcm, json!({"service_account_json": service_account_json()})).await;
    assert_eq!((status, cache.as_deref()), (200, Some("no-store")), "{body}");
    let saved: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        saved["fcm"],
        json!({"project_id": FCM_PROJECT, "client_email": FCM_CLIENT_EMAIL, "service_account_set": true})
    );
    assert!(!body.contains("PRIVATE KEY") && !body.contains("private_key\""), "{body}");

    let apns = format!("{base}/apns");
    let good =
        json!({"key_id": APNS_KEY_ID, "team_id": APNS_TEAM_ID, "bundle_id": APNS_BUNDLE_ID, "private_key": apns_p8()});
    let (_, _, body) = raw(
        &server,
        &admin,
        Method::PUT,
        &apns,
        json!({"key_id": "KEY1234567", "team_id": "T", "bundle_id": "com.acme.app", "private_key": apns_p8()}),
    )
    .await;
    refused(&body, "team_id must be the 10 letters and digits");
    let (_, _, body) = raw(
        &server,
        &admin,
        Method::PUT,
        &apns,
        json!({"key_id": APNS_KEY_ID, "team_id": APNS_TEAM_ID, "bundle_id": APNS_BUNDLE_ID}),
    )
    .await;
    refused(&body, "private_key (the .p8 file) is required");
    let (_, _, body) = raw(&server, &admin, Method::PUT, &apns, json!({"key_id": APNS_KEY_ID, "team_id": APNS_TEAM_ID, "bundle_id": APNS_BUNDLE_ID, "private_key": RSA_PRIVATE})).await;
    refused(&body, "P-256");
    let (status, _, body) = raw(&server, &admin, Method::PUT, &apns, good).await;
    assert_eq!(status, 200, "{body}");
    // Changing the environment keeps the stored key.
    let (status, _, body) = raw(
        &server,
        &admin,
        Method::PUT,
        &apns,
        json!({"key_id": APNS_KEY_ID, "team_id": APNS_TEAM_ID, "bundle_id": APNS_BUNDLE_ID, "environment": "sandbox"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = raw(&server, &admin, Method::GET, &base, json!(null)).await;
    let both: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        both["apns"],
        json!({"key_id": APNS_KEY_ID, "team_id": APNS_TEAM_ID, "bundle_id": APNS_BUNDLE_ID, "environment": "sandbox", "private_key_set": true})
    );
    assert_eq!(both["fcm"]["project_id"], FCM_PROJECT);
    assert!(!body.contains("PRIVATE KEY"), "{body}");
    let stored = server.store.push_settings(&brand.id, &brand.app).await.unwrap().unwrap();
    assert_eq!(stored.apns.unwrap().private_key, apns_p8(), "the key is kept");

    let (status, _, body) = raw(&server, &admin, Method::DELETE, &fcm, json!(null)).await;
    assert_eq!(status, 200, "{body}");
    let after: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(after["fcm"].is_null() && after["apns"]["key_id"] == APNS_KEY_ID, "{after}");
    let (status, _, _) = raw(&server, &admin, Method::GET, "/api/v1/apps/no-such-app/push", json!(null)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_test_push_reports_the_providers_answer() {
    let scene = scene().await;
    let admin = scene.server.login(&scene.brand.admin_email).await;
    let path = format!("/api/v1/apps/{}/push/test", scene.brand.app);
    use reqwest::Method;

    let (status, body) =
        call(&scene.server, &admin, Method::POST, &path, json!({"provider": "fcm", "token": "fcm-test-device"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"provider": "fcm", "sent": true, "outcome": "sent", "status": 200, "reason": ""}));
    let push = scene.fakes.wait_for(1).await.remove(0);
    assert_eq!(push.alert(), (scene.brand.id.clone(), "Test notification from Switchboard".to_owned()));
    assert_eq!(push.app_data(), json!({"test": true}));

    scene.fakes.script(
        "fcm-stale",
        vec![Scripted {
            status: 404,
            retry_after: None,
            body: json!({"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
        }],
    );
    let (_, body) =
        call(&scene.server, &admin, Method::POST, &path, json!({"provider": "fcm", "token": "fcm-stale"})).await;
    assert_eq!(
        (body["sent"].as_bool(), body["outcome"].as_str(), body["status"].as_u64()),
        (Some(false), Some("unregistered"), Some(404))
    );
    assert!(body["reason"].as_str().unwrap().starts_with("UNREGISTERED"), "{body}");

    let (_, body) =
        call(&scene.server, &admin, Method::POST, &path, json!({"provider": "apns", "token": APNS_DEVICE})).await;
    assert_eq!(body["outcome"], "sent", "{body}");
    let (_, body) =
        call(&scene.server, &admin, Method::POST, &path, json!({"provider": "apns", "token": "not-hex"})).await;
    assert_eq!(
        (body["outcome"].as_str(), body["reason"].as_str()),
        (Some("unregistered"), Some("BadDeviceToken")),
        "{body}"
    );

    let (status, body) =
        call(&scene.server, &admin, Method::POST, &path, json!({"provider": "sms", "token": "x"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("\"fcm\" or \"apns\""));
    let (status, body) =
        call(&scene.server, &admin, Method::POST, &path, json!({"provider": "fcm", "token": ""})).await;
    assert_eq!(status, 400, "{body}");
    call(&scene.server, &admin, Method::DELETE, &format!("/api/v1/apps/{}/push/fcm", scene.brand.app), json!(null))
        .await;
    let (status, body) =
        call(&scene.server, &admin, Method::POST, &path, json!({"provider": "fcm", "token": "x"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("no FCM settings"), "{body}");
    // Test tokens are not registered to anyone.
    assert_eq!(scene.server.store.outbox_pending("push").await.unwrap(), 0);
}

#[tokio::test]
async fn another_brand_cannot_read_change_or_use_an_apps_push_settings() {
    let scene = scene().await;
    let other = scene.server.brand().await;
    let intruder = scene.server.login(&other.admin_email).await;
    let base = format!("/api/v1/apps/{}/push", scene.brand.app);
    use reqwest::Method;
    let attempts = [
        (Method::GET, base.clone(), json!(null)),
        (Method::PUT, format!("{base}/fcm"), json!({"service_account_json": service_account_json()})),
        (Method::DELETE, format!("{base}/fcm"), json!(null)),
        (
            Method::PUT,
            format!("{base}/apns"),
            json!({"key_id": APNS_KEY_ID, "team_id": APNS_TEAM_ID, "bundle_id": APNS_BUNDLE_ID, "private_key": apns_p8()}),
        ),
        (Method::DELETE, format!("{base}/apns"), json!(null)),
        (Method::POST, format!("{base}/test"), json!({"provider": "fcm", "token": "x"})),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = call(&scene.server, &intruder, method.clone(), &path, body).await;
        assert_eq!((status, answer["code"].as_str()), (404, Some("app_not_found")), "{method} {path}: {answer}");
    }
    assert!(scene.fakes.received().is_empty(), "no test push went out");
    let stored = scene.server.store.push_settings(&scene.brand.id, &scene.brand.app).await.unwrap().unwrap();
    assert!(stored.fcm.is_some() && stored.apns.is_some(), "the settings are untouched");
}
