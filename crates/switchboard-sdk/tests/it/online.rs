//! Connected behaviour: messages both ways, receipts, typing, conversation state, history.

use switchboard_sdk::{Auth, Client, ConnectionState, Event, MessageState, SdkError, Side};
use switchboard_server::seed;

use crate::harness::*;

#[tokio::test]
async fn consumer_and_agent_converse_with_receipts_typing_and_close() {
    let server = TestServer::start().await;
    let mut agent = Agent::online(&server).await;
    let dir = temp_dir("sdk-client");
    let client = sdk(&server.url(), dev_tokens(&server.data_dir, "casey"), &dir);
    let mut events = Events::of(&client);
    client.connect();
    expect_event(&mut events, |e| *e == Event::Connection(ConnectionState::Connected)).await;

    let pending = client.send_text("Where is my parcel?").unwrap();
    assert_eq!(pending.state, MessageState::Pending);
    let client_id = pending.client_id.unwrap();
    let sent =
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await;
    let Event::MessageStateChanged { client_id: acked, conversation: Some(c), seq: Some(1), .. } = sent else {
        panic!("unexpected {sent:?}")
    };
    assert_eq!(acked, client_id);
    expect_event(&mut events, |e| matches!(e, Event::Assigned { agent: Some(name), .. } if name == "Alice Agent"))
        .await;
    let msg = agent.expect(|f| f["t"] == "msg").await;
    assert_eq!(msg["text"], "Where is my parcel?");

    // The agent types and replies; the SDK reports both and confirms delivery by itself.
    agent.send(serde_json::json!({"t": "typing", "c": c, "on": true})).await;
    // The agent's display name comes with it, for "Alice Agent is typing…".
    expect_event(&mut events, |e| {
        *e == Event::Typing { conversation: c, on: true, name: Some("Alice Agent".to_owned()) }
    })
    .await;
    agent.reply(c, "It left the warehouse this morning.").await;
    let received = expect_event(&mut events, |e| matches!(e, Event::MessageReceived(_))).await;
    let Event::MessageReceived(reply) = received else { unreachable!() };
    assert_eq!(reply.text, "It left the warehouse this morning.");
    assert_eq!(reply.from, Side::Agent);
    let delivered = agent.expect(|f| f["t"] == "rcpt" && f["k"] == "dlv").await;
    assert_eq!(delivered["seq"], 2);
    client.mark_read(c, 2);
    agent.expect(|f| f["t"] == "rcpt" && f["k"] == "read").await;

    // The agent reads the consumer's message: the SDK marks it read in the cache.
    agent.send(serde_json::json!({"t": "rcpt", "c": c, "seq": 1, "k": "read"})).await;
    expect_event(&mut events, |e| matches!(e, Event::Receipt { read: true, seq: 1, .. })).await;
    let cached = client.messages(c).unwrap();
    assert_eq!(cached.len(), 2);
    assert_eq!(cached[0].state, MessageState::Read);
    assert_eq!(cached[1].text, "It left the warehouse this morning.");

    // Resolve: closed and survey; the answer goes through.
    agent.send(serde_json::json!({"t": "close", "id": 5, "c": c})).await;
    expect_event(&mut events, |e| matches!(e, Event::Closed { by: Some(Side::Agent), .. })).await;
    expect_event(&mut events, |e| *e == Event::SurveyRequested { conversation: c }).await;
    client.answer_survey(c, 5, Some("great".into())).await.unwrap();
    let again = client.answer_survey(c, 4, None).await.unwrap_err();
    assert!(matches!(&again, SdkError::Server { code, .. } if code == "survey_already_answered"), "{again:?}");
    assert!(!again.is_transient());
    let history = client.history(Default::default()).await.unwrap();
    assert_eq!(history.conversations.len(), 1);
    assert_eq!(history.conversations[0].csat, Some(5));
    client.shutdown().await;
    assert_eq!(client.connection_state(), ConnectionState::Disconnected);
}

#[tokio::test]
async fn bad_input_is_refused_locally_with_the_limit_named() {
    let server = TestServer::start().await;
    let client = sdk(&server.url(), dev_tokens(&server.data_dir, "limits"), &temp_dir("sdk-client"));
    let error = client.send_text(&"x".repeat(2001)).unwrap_err();
    assert_eq!(error.to_string(), "message is 2001 characters; the limit is 2000");
    assert!(!error.is_transient());
    assert!(client.send_text("   ").is_err());
    assert!(client.pending_messages().unwrap().is_empty(), "nothing was queued");
    let offline = client.history(Default::default()).await.unwrap_err();
    assert_eq!(offline, SdkError::Offline, "requests need a connection");
    assert!(offline.is_transient());
}

#[tokio::test]
async fn two_devices_of_one_consumer_see_the_same_conversation_live() {
    let server = TestServer::start().await;
    let mut agent = Agent::online(&server).await;
    let phone = sdk(&server.url(), dev_tokens(&server.data_dir, "dana"), &temp_dir("sdk-phone"));
    let tablet = sdk(&server.url(), dev_tokens(&server.data_dir, "dana"), &temp_dir("sdk-tablet"));
    let mut phone_events = Events::of(&phone);
    let mut tablet_events = Events::of(&tablet);
    phone.connect();
    tablet.connect();
    expect_event(&mut phone_events, |e| *e == Event::Connection(ConnectionState::Connected)).await;
    expect_event(&mut tablet_events, |e| *e == Event::Connection(ConnectionState::Connected)).await;
    phone.send_text("sent from the phone").unwrap();
    let seen = expect_event(&mut tablet_events, |e| matches!(e, Event::MessageReceived(_))).await;
    let Event::MessageReceived(message) = seen else { unreachable!() };
    assert_eq!(message.text, "sent from the phone");
    assert_eq!(message.from, Side::Consumer);
    let c = message.conversation.unwrap();
    agent.expect(|f| f["t"] == "msg").await;
    agent.reply(c, "hello both").await;
    expect_event(&mut phone_events, |e| matches!(e, Event::MessageReceived(m) if m.text == "hello both")).await;
    expect_event(&mut tablet_events, |e| matches!(e, Event::MessageReceived(m) if m.text == "hello both")).await;
    assert_eq!(tablet.messages(c).unwrap().len(), 2);
    assert_eq!(phone.messages(c).unwrap().len(), 2, "the phone holds its own message once, not twice");
}

/// Client-side masking: with `mask_card_numbers`, a card number is masked on the device
/// before the outbox, so it never leaves the device, even when the brand's server rules
/// would let it through.
#[tokio::test]
async fn card_numbers_are_masked_on_the_device_when_the_app_asks() {
    let server = TestServer::start().await;
    let state = &server.running.as_ref().unwrap().state;
    // The brand's rules off: only the device masks.
    state.store.set_masking_rules(seed::DEMO_BRAND, &[]).await.unwrap();
    state.fanout.masking_changed(seed::DEMO_BRAND);
    let mut agent = Agent::online(&server).await;

    let dir = temp_dir("sdk-masking");
    let client = Client::builder(server.url(), seed::DEMO_BRAND, seed::DEMO_APP)
        .auth(Auth::Jwt(dev_tokens(&server.data_dir, "mia")))
        .data_dir(&dir)
        .encryption_key(KEY)
        .mask_card_numbers(true)
        .build()
        .unwrap();
    client.connect();
    let pending = client.send_text("card 4111 1111 1111 1111, thanks").unwrap();
    assert_eq!(pending.text, "card **** **** **** 1111, thanks");
    let msg = agent.expect(|f| f["t"] == "msg").await;
    assert_eq!(msg["text"], "card **** **** **** 1111, thanks");

    // Without the option the same text arrives as typed (the brand's rules are off).
    let plain = sdk(&server.url(), dev_tokens(&server.data_dir, "noa"), &temp_dir("sdk-plain"));
    plain.connect();
    plain.send_text("card 4111 1111 1111 1111").unwrap();
    let msg = agent.expect(|f| f["t"] == "msg" && f["text"].as_str().is_some_and(|t| t.contains("4111 1111"))).await;
    assert_eq!(msg["text"], "card 4111 1111 1111 1111");
}

/// The anonymous → authenticated upgrade through the SDK: an app that ran anonymously builds
/// its client with the logged-in consumer's tokens and `upgrade_anonymous` on the same data
/// directory; the conversation carries on, and the anonymous identity is gone for good.
#[tokio::test]
async fn a_consumer_who_logs_in_keeps_what_they_wrote_anonymously() {
    let server = TestServer::start().await;
    let mut agent = Agent::online(&server).await;
    let dir = temp_dir("sdk-upgrade");
    let anonymous = Client::builder(server.url(), seed::DEMO_BRAND, seed::DEMO_APP)
        .auth(Auth::Anonymous)
        .data_dir(&dir)
        .encryption_key(KEY)
        .build()
        .unwrap();
    let mut events = Events::of(&anonymous);
    anonymous.connect();
    anonymous.send_text("Asking before I log in").unwrap();
    let sent =
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await;
    let Event::MessageStateChanged { conversation: Some(c), .. } = sent else { unreachable!() };
    agent.expect(|f| f["t"] == "msg" && f["c"] == c).await;
    anonymous.shutdown().await;
    drop(anonymous);

    let logged_in = Client::builder(server.url(), seed::DEMO_BRAND, seed::DEMO_APP)
        .auth(Auth::Jwt(dev_tokens(&server.data_dir, "logged-in")))
        .upgrade_anonymous(true)
        .data_dir(&dir)
        .encryption_key(KEY)
        .build()
        .unwrap();
    let mut events = Events::of(&logged_in);
    logged_in.connect();
    expect_event(&mut events, |e| *e == Event::Connection(ConnectionState::Connected)).await;
    logged_in.send_text("Now logged in").unwrap();
    let sent =
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await;
    assert!(
        matches!(sent, Event::MessageStateChanged { conversation: Some(same), seq: Some(2), .. } if same == c),
        "{sent:?}"
    );
    let seen = agent.expect(|f| f["t"] == "msg" && f["text"] == "Now logged in").await;
    assert_eq!(seen["c"], c);
    logged_in.shutdown().await;
    drop(logged_in);

    // The device secret was forgotten: running anonymously again is a new identity.
    let again = Client::builder(server.url(), seed::DEMO_BRAND, seed::DEMO_APP)
        .auth(Auth::Anonymous)
        .data_dir(&dir)
        .encryption_key(KEY)
        .build()
        .unwrap();
    let mut events = Events::of(&again);
    again.connect();
    expect_event(&mut events, |e| *e == Event::Connection(ConnectionState::Connected)).await;
    again.send_text("A new visitor").unwrap();
    let sent =
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await;
    assert!(matches!(sent, Event::MessageStateChanged { conversation: Some(other), .. } if other != c), "{sent:?}");
}

/// The OAuth2 code flow through the SDK: the app's code provider is asked before each
/// connection; the server exchanges the code at the brand's (fake) token endpoint and the
/// consumer is the id token's subject.
#[tokio::test]
async fn the_code_flow_connects_as_the_id_tokens_subject() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use switchboard_sdk::{AuthorizationCode, CodeProvider};

    let server = TestServer::start().await;
    // The brand's token endpoint: takes the code the app got, answers with an id token for
    // the demo app (signed by the demo key, issued to the client "demo-app").
    let id_token = seed::dev_token(&server.data_dir, "cody", Some("Cody Code"), 3600).unwrap();
    let token_endpoint = axum::Router::new().route(
        "/token",
        axum::routing::post(move |body: String| {
            let id_token = id_token.clone();
            async move {
                if !body.contains("code=code-from-the-app") || !body.contains("code_verifier=pkce") {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(serde_json::json!({"error": "invalid_grant"})),
                    );
                }
                let answer = serde_json::json!({"access_token": "a", "token_type": "Bearer", "id_token": id_token});
                (axum::http::StatusCode::OK, axum::Json(answer))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, token_endpoint).await;
    });
    let store = server.running.as_ref().unwrap().state.store.clone();
    let flow = switchboard_store::CodeFlowSettings {
        token_url,
        client_id: seed::DEMO_APP.into(),
        client_secret: "secret".into(),
        redirect_uri: None,
    };
    let settings = switchboard_store::IdentitySettings { jwks_url: None, code_flow: Some(flow) };
    store.set_identity_settings(seed::DEMO_BRAND, seed::DEMO_APP, &settings, 0).await.unwrap();

    struct App(AtomicUsize);
    impl CodeProvider for App {
        fn fetch_code(&self) -> Result<AuthorizationCode, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(AuthorizationCode {
                code: "code-from-the-app".into(),
                redirect_uri: None,
                verifier: Some("pkce".into()),
            })
        }
    }
    let app = std::sync::Arc::new(App(AtomicUsize::new(0)));
    let client = Client::builder(server.url(), seed::DEMO_BRAND, seed::DEMO_APP)
        .auth(Auth::Code(app.clone()))
        .data_dir(temp_dir("sdk-code"))
        .encryption_key(KEY)
        .build()
        .unwrap();
    let mut events = Events::of(&client);
    client.connect();
    expect_event(&mut events, |e| *e == Event::Connection(ConnectionState::Connected)).await;
    assert_eq!(app.0.load(Ordering::SeqCst), 1);
    let mut agent = Agent::online(&server).await;
    client.send_text("Hello by code").unwrap();
    let seen = agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    assert_eq!(seen["conv"]["consumer"]["name"], "Cody Code", "{seen}");
}
