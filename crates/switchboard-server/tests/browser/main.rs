//! The browser workspace in real Chromium: an agent logs in, goes online and converses with a
//! consumer socket live (typing, read marks, XSS-safe text, resolve → closed + survey); the
//! manager's dashboard follows the queue and the loads without reload; login errors are
//! clear; 200 conversations and a 2,000-message history stay usable; an admin's automatic
//! welcome and auto-close settings are checked, previewed, stored and show in the thread; an
//! admin masks, erases and reads the audit log, a manager searches and exports, an agent
//! downloads a transcript, an
//! admin sets up an app's APNs push and sends a test push to a fake provider, an admin
//! creates, uses and revokes an API token. Screenshots of the main
//! screens land in `target/screenshots/`.

#[allow(dead_code)]
#[path = "../it/harness.rs"]
mod harness;

mod driver;

#[allow(dead_code)]
#[path = "../it/fake_providers.rs"]
mod fake_providers;

use serde_json::json;
use switchboard_store::{Append, ConsumerAppend, ConsumerClaims, Role};

use crate::driver::{Driver, Engine};
use crate::harness::*;

/// A consumer socket with a full profile and device information.
async fn consumer(server: &TestServer, brand: &TestBrand, sub: &str, name: &str) -> Client {
    let claims = json!({"sub": sub, "iss": "brand-backend", "aud": brand.app, "exp": now_secs() + 3600,
        "name": name, "email": format!("{sub}@example.com"), "phone": "+34 612 345 678"});
    let mut socket = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let device = json!({"os": "iOS 18.1", "app_version": "4.2.0", "device_type": "phone"});
    let hello = json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": rs256_token(&claims), "device": device});
    let welcome = socket.hello(hello).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    socket
}

/// Waits until the store says the agent is online (the state select went through).
async fn wait_online(server: &TestServer, brand: &TestBrand, id: i64) {
    let deadline = tokio::time::Instant::now() + driver::WAIT;
    while server.store.user(&brand.id, id).await.unwrap().unwrap().state.as_str() != "online" {
        assert!(tokio::time::Instant::now() < deadline, "agent {id} did not go online");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn agent_and_consumer_converse_live_while_the_manager_watches() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let alice_email = format!("alice@{}.test", brand.id);
    let alice = server.user(&brand, &alice_email, "Alice Moreno", Role::Agent, 5, vec![]).await;
    let manager_email = format!("morgan@{}.test", brand.id);
    server.user(&brand, &manager_email, "Morgan Lee", Role::Manager, 0, vec![]).await;
    let base = server.http.clone();

    // The manager watches the floor.
    let manager = driver.browser().await;
    manager.login(&base, &manager_email, PASSWORD).await;
    manager.goto(&format!("{base}/#/dashboard")).await;
    manager.visible("#dashboard").await;
    let alice_row = format!("#agents-table tr[data-agent=\"{alice}\"]");
    manager.text_contains(&format!("{alice_row} td.state"), "Offline").await;

    // A consumer writes while nobody is online: the queue shows it.
    let mut maria = consumer(&server, &brand, "maria", "Maria Lopez").await;
    maria.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Hi, my order #48213 hasn't arrived"})).await;
    let c = maria.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    maria.expect(|f| f["t"] == "conv" && f["ev"] == "queued").await;
    manager.until("one conversation queued", "return [...document.querySelectorAll('#skills-table td.queue-depth')].some(td => td.textContent.trim() === '1')").await;
    manager.screenshot("dashboard-queue").await;
    // The manager sees who waits and raises the priority from the dashboard.
    manager.text_contains(&format!("#waiting-table tr[data-conversation=\"{c}\"]"), "Maria Lopez").await;
    manager.select(&format!("#priority-{c}"), "urgent").await;
    let deadline = tokio::time::Instant::now() + driver::WAIT;
    while server.store.conversation(&brand.id, c).await.unwrap().unwrap().priority != 2 {
        assert!(tokio::time::Instant::now() < deadline, "the priority was not saved");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The agent logs in and goes online; the conversation appears in her inbox.
    let agent = driver.browser().await;
    agent.login(&base, &alice_email, PASSWORD).await;
    agent.visible("#agent-state").await;
    agent.screenshot("workspace-empty").await;
    agent.select("#agent-state", "online").await;
    wait_online(&server, &brand, alice).await;
    let item = format!("#conversation-list li[data-conversation=\"{c}\"]");
    agent.text_contains(&item, "Maria Lopez").await;
    agent.text_contains(&item, "order #48213").await;
    maria.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["agent"] == "Alice Moreno").await;
    // The dashboard follows without reload: queue empty, Alice online holding one of five.
    manager.text_contains(&format!("{alice_row} td.load"), "1 / 5").await;
    manager.text_contains(&format!("{alice_row} td.state"), "Online").await;
    manager.until("queue drained", "return [...document.querySelectorAll('#skills-table td.queue-depth')].every(td => td.textContent.trim() === '0')").await;

    // She opens it: message, consumer panel with profile and device.
    agent.click(&item).await;
    agent.text_contains("#messages", "Hi, my order #48213 hasn't arrived").await;
    let panel = agent.text_contains("#consumer-panel", "maria@example.com").await;
    for detail in ["Maria Lopez", "+34 612 345 678", "iOS 18.1", "4.2.0"] {
        assert!(panel.contains(detail), "consumer panel lacks {detail:?}: {panel}");
    }
    // Opening it marks it read: the consumer sees the read receipt.
    let read = maria.expect(|f| f["t"] == "rcpt" && f["k"] == "read").await;
    assert_eq!((read["by"].as_str(), read["seq"].as_i64()), (Some("a"), Some(1)));

    // Typing both ways.
    maria.send(json!({"t": "typing", "c": c, "on": true})).await;
    agent.visible("#typing-indicator").await;
    agent.text_contains("#typing-indicator", "typing").await;
    agent.type_into("#composer", "Let me check that for you, Maria.").await;
    let typing = maria.expect(|f| f["t"] == "typing" && f["on"] == true).await;
    assert_eq!(typing["name"], "Alice Moreno");
    agent.text_contains("#char-count", "33 / 2000").await;
    agent.click("#send-button").await;
    let reply = maria.expect(|f| f["t"] == "msg" && f["from"] == "a").await;
    assert_eq!(reply["text"], "Let me check that for you, Maria.");
    let reply_seq = reply["seq"].as_i64().unwrap();

    // The consumer reads it: the agent's message shows "Read".
    maria.send(json!({"t": "rcpt", "c": c, "seq": reply_seq, "k": "read"})).await;
    agent.text_contains(&format!("#messages .message[data-seq=\"{reply_seq}\"] .mark"), "Read").await;

    // Message text is never HTML.
    let attack = "<img src=x onerror=\"window.__xss = 1\"> <b>bold?</b>";
    maria.send(json!({"t": "send", "id": 2, "cid": "m2", "text": attack})).await;
    agent.text_contains("#messages", "<img src=x onerror=").await;
    let injected = agent.js("return [window.__xss === undefined, document.querySelectorAll('#messages img, #messages b').length, document.querySelectorAll('#conversation-list img').length]", vec![]).await;
    assert_eq!(injected, json!([true, 0, 0]), "message text must show as text, not run as HTML");
    agent.screenshot("workspace-conversation").await;

    // Resolve: the consumer gets the closed notice and the survey; the inbox empties and the
    // dashboard counts it.
    agent.click("#resolve-button").await;
    let closed = maria.expect(|f| f["t"] == "conv" && f["ev"] == "closed").await;
    assert_eq!(closed["by"], "a");
    maria.expect(|f| f["t"] == "survey" && f["c"] == c).await;
    agent.until("conversation left the list", &format!("return !document.querySelector({})", json!(item))).await;
    manager.text_contains(&format!("{alice_row} td.load"), "0 / 5").await;
    manager.screenshot("dashboard").await;

    // Reports and admin pages render for the people allowed to see them.
    manager.goto(&format!("{base}/#/reports")).await;
    manager.visible("#reports").await;
    manager.visible("#export-csv").await;
    manager.until("charts drawn", "return document.querySelectorAll('#reports svg').length >= 3").await;
    manager.screenshot("reports").await;
    let admin = driver.browser().await;
    admin.login(&base, &brand.admin_email, PASSWORD).await;
    admin.goto(&format!("{base}/#/admin/agents")).await;
    admin.text_contains("main", "Alice Moreno").await;
    admin.screenshot("admin-agents").await;
    for browser in [agent, manager, admin] {
        browser.close().await;
    }
}

/// Where an element is and whether a click at its centre reaches it: `[fully in the viewport,
/// not clipped by an ancestor that hides overflow, the element hit at its centre is it or in it,
/// not under a notification toast (toasts let clicks through, but hide what is under them),
/// width]`.
const REACHABLE: &str = "
    const e = document.querySelector(arguments[0]);
    if (!e) return null;
    const r = e.getBoundingClientRect();
    const inView = r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0
        && r.right <= window.innerWidth && r.bottom <= window.innerHeight;
    let unclipped = true;
    for (let a = e.parentElement; a; a = a.parentElement) {
        const s = getComputedStyle(a);
        if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
        const ar = a.getBoundingClientRect();
        if (r.left < ar.left - 0.5 || r.right > ar.right + 0.5 || r.top < ar.top - 0.5 || r.bottom > ar.bottom + 0.5) unclipped = false;
    }
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    const uncovered = ![...document.querySelectorAll('.toast')].some((t) => {
        const q = t.getBoundingClientRect();
        return q.left < r.right && q.right > r.left && q.top < r.bottom && q.bottom > r.top;
    });
    return [inView, unclipped, !!hit && e.contains(hit), uncovered, Math.round(r.width)];";

/// Issue 13: at 1366 px the conversation header was cut to "Visitor …", at 1280×800 the name
/// and number disappeared, and at 1024×768 Transfer was cut off and Resolve not visible at all.
/// At each size the name and the conversation number show in full, and every action is in
/// view, unclipped and clickable; Transfer opens its dialog and Resolve resolves at 1024×768.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn the_conversation_header_and_its_actions_fit_from_1024_to_1920_wide() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut maria = consumer(&server, &brand, "maria", "Maria Fernanda Lopez").await;
    maria.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Where is my parcel?"})).await;
    let c = maria.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let agent = driver.browser().await;
    agent.login(&server.http, &brand.agent_email, PASSWORD).await;
    agent.select("#agent-state", "online").await;
    let item = format!("#conversation-list li[data-conversation=\"{c}\"]");
    agent.click(&item).await;
    agent.text_contains("#messages", "Where is my parcel?").await;
    let number = format!("Conversation #{c}");
    for (width, height) in [(1920, 1080), (1366, 768), (1280, 800), (1024, 768)] {
        agent.viewport(width, height).await;
        agent.text_contains(".thread-meta", &number).await;
        agent.screenshot(&format!("workspace-{width}x{height}")).await;
        for selector in [".thread-name", ".thread-meta"] {
            let cut = agent
                .js("const e = document.querySelector(arguments[0]); return [e.textContent, e.scrollWidth > e.clientWidth, e.clientWidth]", vec![json!(selector)])
                .await;
            assert_eq!(cut[1], json!(false), "{selector} is cut at {width}x{height}: {cut}");
        }
        for selector in ["#resolve-button", "#transfer-button", "#requeue-button", "#composer", "#send-button"] {
            let reach = agent.js(REACHABLE, vec![json!(selector)]).await;
            let reach_flags = reach.as_array().unwrap_or_else(|| panic!("{selector} missing at {width}x{height}"));
            assert!(
                reach_flags[..4].iter().all(|flag| *flag == json!(true)),
                "{selector} at {width}x{height}: {reach}"
            );
        }
    }
    // At the smallest size the actions work, not only show.
    agent.click("#transfer-button").await;
    agent.visible("#transfer-dialog").await;
    agent.screenshot("workspace-1024x768-transfer").await;
    agent.click("#transfer-cancel").await;
    agent.until("dialog closed", "const d = document.querySelector('#transfer-dialog'); return !d || !d.open").await;
    agent.click("#resolve-button").await;
    let closed = maria.expect(|f| f["t"] == "conv" && f["ev"] == "closed").await;
    assert_eq!(closed["by"], "a");
    agent.close().await;
}

/// Issue 13: the empty inbox said the same whatever the agent's state, and an anonymous
/// "Visitor #1" typing showed as "Visitor is typing…".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn the_empty_inbox_follows_the_agents_state_and_typing_names_the_visitor() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let agent = driver.browser().await;
    agent.login(&server.http, &brand.agent_email, PASSWORD).await;
    agent.visible("#agent-state").await;
    agent.text_contains("#inbox-empty-title", "You are Offline").await;
    agent.text_contains("#inbox-empty-hint", "Switch to Online").await;
    agent.select("#agent-state", "away").await;
    agent.text_contains("#inbox-empty-title", "You are Away").await;
    agent.select("#agent-state", "online").await;
    agent.text_contains("#inbox-empty-title", "No conversations right now").await;
    agent.screenshot("workspace-empty-online").await;

    let mut visitor = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    visitor.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "anon": ""})).await;
    visitor.send(json!({"t": "send", "id": 1, "cid": "v1", "text": "Anyone there?"})).await;
    let c = visitor.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let item = format!("#conversation-list li[data-conversation=\"{c}\"]");
    let name = agent.text_contains(&format!("{item} .conv-name"), "Visitor #").await;
    agent.click(&item).await;
    agent.text_contains("#messages", "Anyone there?").await;
    visitor.send(json!({"t": "typing", "c": c, "on": true})).await;
    agent.text_contains("#typing-indicator", &format!("{} is typing", name.trim())).await;
    agent.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn a_lost_connection_is_shown_and_recovered_without_missing_anything() {
    let driver = Driver::start().await;
    let mut server = TestServer::start().await;
    let brand = server.brand().await;
    let mut maria = consumer(&server, &brand, "maria", "Maria Lopez").await;
    maria.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Are you there?"})).await;
    let c = maria.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let agent = driver.browser().await;
    agent.login(&server.http, &brand.agent_email, PASSWORD).await;
    agent.select("#agent-state", "online").await;
    let item = format!("#conversation-list li[data-conversation=\"{c}\"]");
    agent.click(&item).await;
    agent.text_contains("#messages", "Are you there?").await;
    agent.until("connected", "const b = document.querySelector('#connection-banner'); return !!b && b.hidden").await;

    // The server goes away: the workspace says so.
    let running = server.running.take().unwrap();
    let addr = running.addr;
    running.shutdown().await.unwrap();
    agent.visible("#connection-banner").await;
    agent.screenshot("workspace-connection-lost").await;

    // It comes back on the same address; the consumer writes before the workspace is back.
    let store = switchboard_store::Store::open(&switchboard_store::StoreOptions::new(format!(
        "sqlite://{}",
        server.dir.join("test.db").display()
    )))
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    server.running = Some(switchboard_server::start(store.clone(), Default::default(), listener).await.unwrap());
    server.store = store;
    let mut maria = consumer(&server, &brand, "maria", "Maria Lopez").await;
    for (i, text) in ["Hello again", "I'm still waiting"].iter().enumerate() {
        maria.send(json!({"t": "send", "id": 10 + i, "cid": format!("back{i}"), "text": text})).await;
        maria.expect(|f| f["t"] == "ack" && f["id"] == 10 + i).await;
    }
    agent.until("reconnected", "const b = document.querySelector('#connection-banner'); return !!b && b.hidden").await;
    agent.text_contains("#messages", "I'm still waiting").await;
    let counts = agent
        .js(
            "const texts = [...document.querySelectorAll('#messages .message-text')].map(e => e.textContent);
             return ['Are you there?', 'Hello again', \"I'm still waiting\"].map(t => texts.filter(x => x === t).length)",
            vec![],
        )
        .await;
    assert_eq!(counts, json!([1, 1, 1]), "every message exactly once after the reconnect");
    agent.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn an_agent_transfers_to_a_colleague_who_hands_it_back_to_the_queue() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let bob_email = format!("bob@{}.test", brand.id);
    let bob_id = server.user(&brand, &bob_email, "Bob Builder", Role::Agent, 3, vec![]).await;
    let alice = driver.browser().await;
    alice.login(&server.http, &brand.agent_email, PASSWORD).await;
    alice.select("#agent-state", "online").await;
    let mut maria = consumer(&server, &brand, "maria", "Maria Lopez").await;
    maria.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Can someone from returns help?"})).await;
    let c = maria.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let item = format!("#conversation-list li[data-conversation=\"{c}\"]");
    alice.click(&item).await;
    alice.text_contains("#messages", "returns").await;

    // Bob comes online; Alice picks him in the transfer dialog.
    let bob = driver.browser().await;
    bob.login(&server.http, &bob_email, PASSWORD).await;
    bob.select("#agent-state", "online").await;
    wait_online(&server, &brand, bob_id).await;
    alice.click("#transfer-button").await;
    alice.visible("#transfer-dialog").await;
    alice.click("#transfer-to-agent").await;
    alice.select("#transfer-agent", &bob_id.to_string()).await;
    alice.screenshot("workspace-transfer-dialog").await;
    alice.click("#transfer-confirm").await;
    alice.until("the conversation left Alice", &format!("return !document.querySelector({})", json!(item))).await;
    bob.text_contains(&item, "Maria Lopez").await;
    let notice = maria.expect(|f| f["t"] == "msg" && f["from"] == "s").await;
    assert_eq!(notice["text"], "Transferred to Bob Builder");
    maria.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["agent"] == "Bob Builder").await;

    // Bob opens it (the notice shows) and hands it back: it goes to Alice, not to him.
    bob.click(&item).await;
    bob.text_contains("#messages", "Transferred to Bob Builder").await;
    bob.click("#requeue-button").await;
    bob.until("the conversation left Bob", &format!("return !document.querySelector({})", json!(item))).await;
    alice.text_contains(&item, "Maria Lopez").await;
    maria.expect(|f| f["t"] == "msg" && f["text"] == "Returned to the queue").await;
    for browser in [alice, bob] {
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Firefox ESR and geckodriver (apt-get install firefox-esr; cargo install geckodriver), run with --include-ignored"]
async fn the_workspace_works_in_firefox_too() {
    let driver = Driver::start_engine(Engine::Firefox).await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let agent = driver.browser().await;
    agent.login(&server.http, &brand.agent_email, PASSWORD).await;
    agent.select("#agent-state", "online").await;
    let mut maria = consumer(&server, &brand, "maria", "Maria Lopez").await;
    maria
        .send(json!({"t": "send", "id": 1, "cid": "m1", "text": "<script>window.__xss = 1</script>Hello from Firefox"}))
        .await;
    let c = maria.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let item = format!("#conversation-list li[data-conversation=\"{c}\"]");
    agent.click(&item).await;
    agent.text_contains("#messages", "<script>window.__xss = 1</script>Hello from Firefox").await;
    agent.type_into("#composer", "Hi Maria!\u{E007}").await;
    let reply = maria.expect(|f| f["t"] == "msg" && f["from"] == "a").await;
    assert_eq!(reply["text"], "Hi Maria!", "Enter sends");
    assert_eq!(agent.js("return window.__xss === undefined", vec![]).await, json!(true));
    agent.screenshot("firefox-workspace").await;
    agent.click("#resolve-button").await;
    maria.expect(|f| f["t"] == "conv" && f["ev"] == "closed").await;
    agent.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn an_admin_creates_a_skill_and_an_agent_who_can_then_log_in() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = driver.browser().await;
    admin.login(&server.http, &brand.admin_email, PASSWORD).await;
    admin.visible("#dashboard").await;

    admin.goto(&format!("{}/#/admin/skills", server.http)).await;
    admin.type_into("#new-skill-name", "vip").await;
    admin.click("#new-skill-form button[type=submit]").await;
    admin.text_contains("#skills-admin-table", "vip").await;

    admin.goto(&format!("{}/#/admin/agents", server.http)).await;
    admin.click("button[aria-controls=\"new-agent-form\"]").await;
    let email = format!("nora@{}.test", brand.id);
    admin.type_into("#new-agent-form [name=name]", "Nora Quinn").await;
    admin.type_into("#new-agent-form [name=email]", &email).await;
    admin.type_into("#new-agent-form [name=password]", "a strong passphrase").await;
    admin.js("const f = document.querySelector('#new-agent-form'); f.elements.max_concurrent.value = '4'; \
              [...f.querySelectorAll('input[type=checkbox]')].forEach(c => { if (c.parentElement.textContent.includes('vip')) c.click(); }); return true", vec![]).await;
    admin.click("#new-agent-form button[type=submit]").await;
    admin.text_contains("#users-table", &email).await;
    admin.screenshot("admin-agent-created").await;
    let created = server.store.user_by_email(&brand.id, &email).await.unwrap().expect("the form created the user");
    assert_eq!((created.name.as_str(), created.max_concurrent, created.role), ("Nora Quinn", 4, Role::Agent));
    let vip = server.store.skills(&brand.id).await.unwrap().into_iter().find(|s| s.name == "vip").unwrap();
    assert_eq!(created.skills, vec![vip.id]);

    // A bad setting is refused with the server's reason, shown next to the form.
    admin.goto(&format!("{}/#/admin/settings", server.http)).await;
    admin.visible("#retention-days").await;
    admin.js("document.querySelector('#retention-days').value = '0'; return true", vec![]).await;
    admin.click("#settings-save").await;
    admin.text_contains("#settings-form [role=alert]", "retention_days must be 1 to").await;
    admin.screenshot("admin-settings").await;
    admin.goto(&format!("{}/#/admin/apps", server.http)).await;
    admin.text_contains("#apps-table", &brand.app).await;
    admin.screenshot("admin-apps").await;

    let nora = driver.browser().await;
    nora.login(&server.http, &email, "a strong passphrase").await;
    nora.text_contains("body", "Nora Quinn").await;
    nora.visible("#agent-state").await;
    for browser in [admin, nora] {
        browser.close().await;
    }
}

/// API tokens from their admin page: a token is created with a role and an expiry, its secret
/// shown once works, the list shows where it stands and its last use, and revoking it (after
/// an inline confirmation) ends its access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn an_admin_creates_uses_and_revokes_an_api_token() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = driver.browser().await;
    admin.login(&server.http, &brand.admin_email, PASSWORD).await;
    admin.visible("#dashboard").await;

    admin.goto(&format!("{}/#/admin/tokens", server.http)).await;
    admin.text_contains("#tokens-admin-table", "No API tokens").await;
    admin.type_into("#new-token-name", "nightly export").await;
    admin.select("#new-token-role", "manager").await;
    admin.type_into("#new-token-days", "30").await;
    admin.click("#new-token-form button[type=submit]").await;
    admin.text_contains("#new-token-secret", "not shown again").await;
    let secret = admin.until("the secret", "return document.querySelector('#new-token-value')?.value").await;
    let secret = secret.as_str().unwrap().to_owned();
    assert!(secret.starts_with("sbt_"), "{secret}");
    let row = admin.text_contains("#tokens-admin-table", "nightly export").await;
    assert!(row.contains("Manager") && row.contains("Not yet"), "{row}");
    admin.screenshot("admin-tokens").await;

    let (status, _) = call(&server, &secret, reqwest::Method::GET, "/api/v1/queue", serde_json::Value::Null).await;
    assert_eq!(status, 200, "the secret shown works");
    admin.goto(&format!("{}/#/admin/agents", server.http)).await;
    admin.goto(&format!("{}/#/admin/tokens", server.http)).await;
    admin
        .until(
            "the last use shown",
            "const row = document.querySelector('#tokens-admin-table tbody tr'); \
        return row && !row.querySelector('.token-last-used').textContent.includes('Not yet')",
        )
        .await;

    admin.click("#tokens-admin-table button[aria-label^=\"Revoke token\"]").await;
    admin.click("#tokens-admin-table .confirm button.danger").await;
    admin.text_contains("#tokens-admin-table", "No API tokens").await;
    let (status, _) = call(&server, &secret, reqwest::Method::GET, "/api/v1/queue", serde_json::Value::Null).await;
    assert_eq!(status, 401, "revoked");
    admin.close().await;
}

/// Push settings from the Apps page: the APNs form refuses a bad team id with the server's
/// reason, saves the key (never shown again: the page says it is stored), the brand's masking
/// checkbox is saved, and a test push reports the fake provider's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn an_admin_sets_up_apns_for_an_app_and_sends_a_test_push() {
    use crate::fake_providers::*;
    let driver = Driver::start().await;
    let fakes = FakeProviders::start().await;
    let server =
        TestServer::start_with(switchboard_server::ServerConfig { push: fakes.config(), ..Default::default() }).await;
    let brand = server.brand().await;
    let base = server.http.clone();
    let admin = driver.browser().await;
    admin.login(&base, &brand.admin_email, PASSWORD).await;
    admin.visible("#dashboard").await;

    admin.goto(&format!("{base}/#/admin/apps")).await;
    let row = format!("#apps-table tr[data-app=\"{}\"]", brand.app);
    admin.click(&format!("{row} button[aria-label^=\"Push\"]")).await;
    admin.text_contains(".push-panel", "Not set up: iOS devices get no pushes.").await;
    let apns = ".push-panel form[aria-label^=\"APNs\"]";
    admin.type_into(&format!("{apns} [name=key_id]"), APNS_KEY_ID).await;
    admin.type_into(&format!("{apns} [name=team_id]"), "TEAM").await;
    admin.type_into(&format!("{apns} [name=bundle_id]"), APNS_BUNDLE_ID).await;
    admin.js("document.querySelector('.push-panel form[aria-label^=\"APNs\"] [name=private_key]').value = arguments[0]; return true",
        vec![json!(apns_p8())]).await;
    admin.click(&format!("{apns} button[type=submit]")).await;
    admin.text_contains(&format!("{apns} [role=alert]"), "team_id must be the 10 letters and digits").await;
    admin.js("document.querySelector('.push-panel form[aria-label^=\"APNs\"] [name=team_id]').value = arguments[0]; return true",
        vec![json!(APNS_TEAM_ID)]).await;
    admin.click(&format!("{apns} button[type=submit]")).await;
    admin
        .text_contains(
            apns,
            &format!("Set up: key {APNS_KEY_ID}, team {APNS_TEAM_ID}, {APNS_BUNDLE_ID}, production; key stored."),
        )
        .await;
    let key_field = admin
        .js("return document.querySelector('.push-panel form[aria-label^=\"APNs\"] [name=private_key]').value", vec![])
        .await;
    assert_eq!(key_field, json!(""), "the key is not shown again");
    let stored = server.store.push_settings(&brand.id, &brand.app).await.unwrap().unwrap().apns.unwrap();
    assert_eq!((stored.key_id.as_str(), stored.team_id.as_str()), (APNS_KEY_ID, APNS_TEAM_ID));

    let test = ".push-panel form[aria-label^=\"Send a test push\"]";
    admin.select(&format!("{test} [name=provider]"), "apns").await;
    admin
        .type_into(&format!("{test} [name=token]"), "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9")
        .await;
    admin.click(&format!("{test} button[type=submit]")).await;
    admin.text_contains(&format!("{test} .push-test-result"), "Sent: the provider accepted it (HTTP 200).").await;
    assert_eq!(fakes.received().len(), 1);
    admin.screenshot("admin-app-push").await;

    admin.goto(&format!("{base}/#/admin/settings")).await;
    admin.click("#push-masked").await;
    admin.click("#settings-save").await;
    admin.until("push masking saved", "return document.querySelector('#push-masked').checked ? true : null").await;
    for _ in 0..50 {
        if server.store.brand(&brand.id).await.unwrap().unwrap().push_masked {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(server.store.brand(&brand.id).await.unwrap().unwrap().push_masked, "the setting was saved");
    admin.close().await;
}

/// Automation from the admin pages: a welcome with an unknown variable is refused naming it,
/// then fixed, previewed and saved; auto-close is set to 30 minutes with a 5-minute warning
/// and stored so; a consumer then opens a conversation and the agent's thread shows the
/// welcome as an automatic message, not as an agent's bubble.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn an_admin_sets_a_welcome_and_auto_close_and_the_agent_sees_the_welcome_as_automatic() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let base = server.http.clone();
    let admin = driver.browser().await;
    admin.login(&base, &brand.admin_email, PASSWORD).await;
    admin.visible("#dashboard").await;

    // All nine triggers are listed, none set yet.
    admin.goto(&format!("{base}/#/admin/messages")).await;
    admin.visible("#automatic-messages-table").await;
    let rows =
        admin.js("return document.querySelectorAll('#automatic-messages-table tr.trigger-row').length", vec![]).await;
    assert_eq!(rows, json!(9));
    let welcome = "#automatic-messages-table tr[data-trigger=\"welcome\"]";
    admin.text_contains(welcome, "Not set").await;
    admin.click(&format!("{welcome} button.edit")).await;
    let editor = "#automatic-message-editor";
    let text = format!("{editor} textarea[name=text]");
    admin.type_into(&text, "Hi {first_name}!").await;
    admin.click(&format!("{editor} button[type=submit]")).await;
    admin.text_contains(&format!("{editor} [role=alert]"), "unknown variable {first_name}").await;
    admin.screenshot("admin-automatic-message-error").await;

    // Fixed with the variable buttons, previewed with sample values, saved.
    admin.js("document.querySelector(arguments[0]).value = ''; return true", vec![json!(text)]).await;
    admin.type_into(&text, "Welcome to ").await;
    admin.click(&format!("{editor} .variable-chips button[title=\"Insert {{brand_name}}\"]")).await;
    admin.type_into(&text, ", ").await;
    admin.click(&format!("{editor} .variable-chips button[title=\"Insert {{consumer_name}}\"]")).await;
    admin.type_into(&text, "!").await;
    admin.click(&format!("{editor} .preview-button")).await;
    let preview = format!("Welcome to {}, Carol Jones!", brand.id);
    admin.text_contains(&format!("{editor} .automatic-preview"), &preview).await;
    admin.screenshot("admin-automatic-message-preview").await;
    admin.click(&format!("{editor} button[type=submit]")).await;
    admin.text_contains(&format!("{welcome} td.template"), "Welcome to {brand_name}, {consumer_name}!").await;
    admin.until("editor closed", &format!("return !document.querySelector({})", json!(editor))).await;
    admin.screenshot("admin-automatic-messages").await;
    let stored = server.store.automatic_messages(&brand.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].trigger.as_str(), stored[0].skill_id, stored[0].language.as_str(), stored[0].enabled),
        ("welcome", None, "en", true)
    );
    assert_eq!(stored[0].text, "Welcome to {brand_name}, {consumer_name}!");

    // Auto-close after 30 minutes, warning 5 minutes before, survey on.
    admin.goto(&format!("{base}/#/admin/settings")).await;
    admin.visible("#auto-close-unit").await;
    admin.select("#auto-close-unit", "minutes").await;
    admin.type_into("#auto-close-after", "30").await;
    admin.type_into("#auto-close-warn", "5").await;
    admin.click("#auto-close-survey").await;
    admin.click("#settings-save").await;
    let deadline = tokio::time::Instant::now() + driver::WAIT;
    loop {
        let row = server.store.brand(&brand.id).await.unwrap().unwrap();
        if row.auto_close_secs == Some(1800) {
            assert_eq!((row.auto_close_warn_secs, row.auto_close_survey), (Some(300), true));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "auto-close was not saved: {:?}", row.auto_close_secs);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The page shows what is stored when opened again.
    admin.client.refresh().await.unwrap();
    admin.visible("#auto-close-after").await;
    let shown = admin.js("return [document.querySelector('#auto-close-unit').value, document.querySelector('#auto-close-after').value, document.querySelector('#auto-close-warn').value, document.querySelector('#auto-close-survey').checked]", vec![]).await;
    assert_eq!(shown, json!(["minutes", "30", "5", true]));
    admin.js("document.querySelector('#automation-settings').scrollIntoView(); return true", vec![]).await;
    admin.screenshot("admin-settings-auto-close").await;

    // The agent goes online; a consumer writes; the thread shows the welcome as automatic.
    let agent = driver.browser().await;
    agent.login(&base, &brand.agent_email, PASSWORD).await;
    agent.visible("#agent-state").await;
    agent.select("#agent-state", "online").await;
    let agent_id = server.store.user_by_email(&brand.id, &brand.agent_email).await.unwrap().unwrap().id;
    wait_online(&server, &brand, agent_id).await;
    let mut maria = consumer(&server, &brand, "maria", "Maria Lopez").await;
    maria.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Hello, anyone there?"})).await;
    let c = maria.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let greeting = format!("Welcome to {}, Maria Lopez!", brand.id);
    let sent = maria.expect(|f| f["t"] == "msg" && f["from"] == "s").await;
    assert_eq!(sent["text"], greeting.as_str());
    let item = format!("#conversation-list li[data-conversation=\"{c}\"]");
    agent.text_contains(&item, &format!("Automatic: {greeting}")).await;
    agent.click(&item).await;
    agent.text_contains("#messages", "Hello, anyone there?").await;
    let card = agent.text_contains("#messages .message.automatic", &greeting).await;
    assert!(card.contains("Automatic message"), "the card is labelled: {card}");
    let bubbles = agent.js("return [...document.querySelectorAll('#messages .message.from-a')].filter(m => m.textContent.includes(arguments[0])).length", vec![json!(greeting)]).await;
    assert_eq!(bubbles, json!(0), "the welcome is not shown as an agent's message");
    agent.screenshot("workspace-automatic-message").await;
    for browser in [admin, agent] {
        browser.close().await;
    }
}

/// Business hours from the admin pages: the brand's (a Monday shift, Christmas closed, close
/// when off hours) and a skill's own, each with its status line, stored as entered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn an_admin_sets_the_brands_and_a_skills_business_hours() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let base = server.http.clone();
    let skill = server.store.create_skill(&brand.id, "billing", now_secs() * 1000).await.unwrap();
    let admin = driver.browser().await;
    admin.login(&base, &brand.admin_email, PASSWORD).await;
    admin.visible("#dashboard").await;

    admin.goto(&format!("{base}/#/admin/settings")).await;
    admin.text_contains("#brand-hours-status", "Always open").await;
    admin.select("#brand-hours-mode", "on").await;
    admin.js("const z = document.querySelector('#brand-hours-zone'); z.value = 'UTC'; return true", vec![]).await;
    let monday = "#brand-hours-weekly tr[data-day=\"monday\"]";
    admin.click(&format!("{monday} button.add-range")).await;
    admin.type_into(&format!("{monday} .range input:first-of-type"), "09:00").await;
    admin.type_into(&format!("{monday} .range input:nth-of-type(2)"), "17:00").await;
    admin.click("#brand-hours-add-date").await;
    admin
        .js(
            "const row = document.querySelector('#brand-hours-exceptions .hours-exception'); \
             row.querySelector('input[type=date]').value = '2026-12-25'; \
             row.querySelector('input[aria-label=Name]').value = 'Christmas'; return true",
            vec![],
        )
        .await;
    admin.select("#off-hours", "close").await;
    // An unknown time zone is refused, named in the form's alert.
    admin.js("document.querySelector('#brand-hours-zone').value = 'Mars/Olympus'; return true", vec![]).await;
    admin.click("#brand-hours-save").await;
    admin.text_contains("#brand-hours-form [role=alert]", "Mars/Olympus").await;
    admin.js("document.querySelector('#brand-hours-zone').value = 'UTC'; return true", vec![]).await;
    admin.click("#brand-hours-save").await;
    // The status line follows the saved hours: no longer "Always open".
    let status = admin
        .until(
            "the status line shows the saved hours",
            "const t = document.querySelector('#brand-hours-status').textContent; return t.includes('Always') ? null : t",
        )
        .await;
    let status = status.as_str().unwrap();
    assert!(status.starts_with("Open now") || status.starts_with("Closed until"), "{status}");
    assert!(status.contains("local time") && status.ends_with("UTC"), "{status}");
    admin.js("document.querySelector('#brand-hours').scrollIntoView(); return true", vec![]).await;
    admin.screenshot("admin-brand-hours").await;
    let token = server.login(&brand.admin_email).await;
    let get = |path: String| {
        let token = token.clone();
        async move {
            let response = reqwest::Client::new().get(path).bearer_auth(token).send().await.unwrap();
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let stored = get(format!("{base}/api/v1/brand/hours")).await;
    assert_eq!(stored["off_hours"], "close", "{stored}");
    assert_eq!(
        stored["hours"],
        json!({"time_zone": "UTC", "weekly": [{"day": "monday", "start": "09:00", "end": "17:00"}],
            "exceptions": [{"date": "2026-12-25", "name": "Christmas", "hours": []}]})
    );

    // A skill's own hours, from the Skills page.
    admin.goto(&format!("{base}/#/admin/skills")).await;
    let row = format!("#skills-admin-table tr[data-skill-id=\"{}\"]", skill.id);
    admin.text_contains(&format!("{row} td.hours"), "Brand's hours").await;
    admin.click(&format!("{row} button.hours-button")).await;
    let form = format!("#skill-hours-form-{}", skill.id);
    admin.select(&format!("#skill-{}-hours-mode", skill.id), "on").await;
    admin
        .js(
            &format!("document.querySelector('#skill-{}-hours-zone').value = 'Europe/Berlin'; return true", skill.id),
            vec![],
        )
        .await;
    let tuesday = format!("{form} tr[data-day=\"tuesday\"]");
    admin.click(&format!("{tuesday} button.add-range")).await;
    admin.type_into(&format!("{tuesday} .range input:first-of-type"), "22:00").await;
    admin.type_into(&format!("{tuesday} .range input:nth-of-type(2)"), "06:00").await;
    admin.click(&format!("{form} button[type=submit]")).await;
    admin.text_contains(&format!("{row} td.hours"), "Own hours").await;
    admin.text_contains(&format!("{form} .hours-status"), "local time").await;
    admin.screenshot("admin-skill-hours").await;
    let own = get(format!("{base}/api/v1/skills/{}/hours", skill.id)).await;
    assert_eq!(own["follows"], "skill", "{own}");
    assert_eq!(own["hours"]["weekly"], json!([{"day": "tuesday", "start": "22:00", "end": "06:00"}]));
    admin.close().await;
}

/// Issue 9 in the workspace: an admin adds a masking pattern (a bad one is refused naming the
/// rule), erases a customer and finds both in the audit log; a manager searches the
/// conversations of the report's range and downloads their export; an agent downloads the
/// transcript of the conversation they hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn an_admin_masks_erases_and_audits_and_managers_and_agents_export_transcripts() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut erin = consumer(&server, &brand, "erin", "Erin Erasable").await;
    erin.send(json!({"t": "send", "id": 1, "cid": "e1", "text": "please forget me"})).await;
    erin.expect(|f| f["t"] == "ack").await;
    let mut maria = consumer(&server, &brand, "maria", "Maria Lopez").await;

    let admin = driver.browser().await;
    admin.login(&server.http, &brand.admin_email, PASSWORD).await;
    admin.visible("#dashboard").await;

    // Masking: a pattern that matches the empty text is refused by name; a good one is saved.
    admin.goto(&format!("{}/#/admin/masking", server.http)).await;
    admin.text_contains("#masking-count", "1 rule").await;
    admin.click("#add-pattern-rule").await;
    let fill = |pattern: &str| {
        format!(
            "const rules = document.querySelectorAll('#masking-rules .masking-rule'); const rule = rules[rules.length - 1]; \
             rule.querySelector('[name=name]').value = 'Order numbers'; rule.querySelector('[name=pattern]').value = {}; return true",
            json!(pattern)
        )
    };
    admin.js(&fill("x*"), vec![]).await;
    admin.click("#masking-save").await;
    admin
        .text_contains("#masking-form [role=alert]", "rule \"Order numbers\": the pattern matches the empty text")
        .await;
    admin.js(&fill(r"ORDER-\d{6}"), vec![]).await;
    admin.click("#masking-save").await;
    admin.text_contains("#masking-count", "2 rules").await;
    admin.screenshot("admin-masking").await;
    let rules = server.store.masking_rules(&brand.id).await.unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!((rules[1].name.as_str(), rules[1].pattern.as_deref()), ("Order numbers", Some(r"ORDER-\d{6}")));
    assert!(rules[1].hidden_from.agents, "a new pattern rule hides from agents");

    // Erasure from the data page, after a confirmation.
    admin.goto(&format!("{}/#/admin/data", server.http)).await;
    admin.text_contains("#retention-summary", "396 days").await;
    admin.type_into("#erase-consumer", "erin").await;
    admin.click("#erase-submit").await;
    admin.click("#erasure-form .confirm button.danger").await;
    admin.text_contains("#erasure-result", "Erased erin: 1 conversation(s) (1 open)").await;
    assert!(server.store.consumer_by_external_id(&brand.id, "erin").await.unwrap().is_none());
    erin.expect(|f| f["t"] == "conv" && f["ev"] == "closed").await;

    // Both are in the audit log; the filter narrows it.
    admin.goto(&format!("{}/#/admin/audit", server.http)).await;
    admin.text_contains("#audit-table", "consumer.erase").await;
    admin.text_contains("#audit-table", "masking.update").await;
    admin.select("#audit-action", "consumer.").await;
    admin
        .until("only erasures listed", "return [...document.querySelectorAll('#audit-table tbody tr[data-action]')].every(r => r.dataset.action === 'consumer.erase')")
        .await;
    admin.screenshot("admin-audit").await;

    // An agent holds Maria's conversation and downloads its transcript from the thread header.
    let agent = driver.browser().await;
    agent.login(&server.http, &brand.agent_email, PASSWORD).await;
    agent.select("#agent-state", "online").await;
    maria.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Where is ORDER-123456?"})).await;
    let c = maria.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    agent.click(&format!("#conversation-list li[data-conversation=\"{c}\"]")).await;
    agent.text_contains("#messages", "Where is").await;
    agent.click("#export-menu summary").await;
    agent.visible("#export-txt").await;
    let transcript =
        agent.js("return fetch(document.querySelector('#export-txt').href).then(r => r.text())", vec![]).await;
    let transcript = transcript.as_str().unwrap();
    assert!(
        transcript.contains(&format!("Conversation {c}")) && transcript.contains("Where is ************?"),
        "{transcript}"
    );

    // The manager (the admin) searches the report's range and exports what it finds.
    admin.goto(&format!("{}/#/reports", server.http)).await;
    admin.text_contains("#search-results", "Maria Lopez").await;
    admin.select("#search-status", "open").await;
    admin.text_contains("#search-summary", "1 conversation").await;
    admin.screenshot("reports-search").await;
    let export =
        admin.js("return fetch(document.querySelector('#search-export-json').href).then(r => r.json())", vec![]).await;
    assert_eq!(export["format"], "switchboard.transcripts", "{export}");
    let conversations = export["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "{export}");
    assert_eq!(conversations[0]["consumer"]["external_id"], "maria");
    for browser in [admin, agent] {
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn wrong_password_and_expired_session_say_so() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let browser = driver.browser().await;
    browser.goto(&format!("{}/", server.http)).await;
    browser.visible("#login-email").await;
    browser.screenshot("login").await;
    browser.login(&server.http, &brand.agent_email, "not the password").await;
    browser.text_contains("#login-error", "Wrong email or password").await;

    // Keyboard only: email, Tab, password, Enter.
    browser.js("const e = document.querySelector('#login-email'); e.value = ''; e.focus(); document.querySelector('#login-password').value = ''; return true", vec![]).await;
    let focused = browser.client.active_element().await.unwrap();
    focused.send_keys(&format!("{}\u{E004}{PASSWORD}\u{E007}", brand.agent_email)).await.unwrap();
    browser.visible("#agent-state").await;
    // The session ends on the server (expiry or logout elsewhere): the next load says so.
    let cookie = browser.client.get_named_cookie("sb_session").await.expect("session cookie");
    server.store.delete_session(&switchboard_server::auth::hash_secret(cookie.value())).await.unwrap();
    browser.client.refresh().await.unwrap();
    browser.text_contains("body", "Your session has expired. Please log in again.").await;
    browser.visible("#login-email").await;
    browser.close().await;
}

/// Issue 15, item 1: the workspace over https, as `serve --tls-self-signed` runs it. Chromium
/// trusts the server's key by the hash the banner prints; login sets a `Secure` cookie that
/// JavaScript cannot read, the agent socket is `wss://`, and a consumer's message arrives live
/// and the answer goes back over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn the_workspace_works_over_https() {
    let driver = Driver::start().await;
    let certificate = certificate(&["localhost", "127.0.0.1"]);
    let server = TestServer::start_tls(&certificate, |_| {}).await;
    let brand = server.brand().await;
    let base = server.http.clone();
    assert!(base.starts_with("https://"));
    let agent = driver.browser_trusting(Some(&certificate.spki_sha256)).await;
    agent.login(&base, &brand.agent_email, PASSWORD).await;
    agent.visible("#agent-state").await;
    assert_eq!(agent.js("return location.protocol", vec![]).await, "https:");
    let cookie = agent.client.get_named_cookie("sb_session").await.expect("session cookie");
    assert_eq!(cookie.secure(), Some(true), "the session cookie is Secure over https");
    assert_eq!(agent.js("return document.cookie", vec![]).await, "", "and HttpOnly");
    agent.select("#agent-state", "online").await;
    let agent_id =
        server.store.users(&brand.id).await.unwrap().iter().find(|u| u.email == brand.agent_email).unwrap().id;
    wait_online(&server, &brand, agent_id).await;

    let mut consumer = Client::connect_tls(&format!("{}/v1/consumer", server.ws), trusting(&certificate.ca_pem)).await;
    let token = rs256_token(&claims(&brand, "tls-maria", 3600));
    let welcome =
        consumer.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": token})).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    consumer.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Hello over TLS"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let item = format!("#conversation-list li[data-conversation=\"{c}\"]");
    agent.click(&item).await;
    agent.text_contains("#messages", "Hello over TLS").await;
    agent.type_into("#composer", "Secure answer").await;
    agent.click("#send-button").await;
    let reply = consumer.expect(|f| f["t"] == "msg" && f["from"] == "a").await;
    assert_eq!(reply["text"], "Secure answer");
    agent.screenshot("workspace-https").await;
    agent.close().await;
}

/// Issue 15, item 2: Swagger UI runs under the Content-Security-Policy every response now
/// carries (its scripts and styles load, it fetches the document and lists the operations),
/// and the workspace refuses to be framed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn swagger_ui_renders_under_its_policy_and_nothing_can_frame_the_workspace() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let browser = driver.browser().await;
    browser.goto(&format!("{}/docs/", server.http)).await;
    browser.text_contains("#swagger-ui .info .title", "Switchboard API").await;
    browser.until("operations listed", "return document.querySelectorAll('#swagger-ui .opblock').length > 20").await;
    browser.screenshot("swagger-ui").await;
    // A page (here: the API's own JSON origin, a data: URL) that frames the workspace sees
    // the frame refused.
    browser
        .js(
            "const f = document.createElement('iframe'); f.id = 'framed'; f.src = arguments[0]; document.body.appendChild(f); return true",
            vec![json!(format!("{}/", server.http))],
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let framed = browser
        .js("try { return document.querySelector('#framed').contentDocument?.querySelector('#login-email') ? 'loaded' : 'blocked'; } catch (e) { return 'blocked'; }", vec![])
        .await;
    assert_eq!(framed, "blocked", "frame-ancestors 'none' keeps the workspace out of frames");
    browser.close().await;
}

/// Issue 15, item 5: the same email in two brands with the same password; the login form
/// asks for the brand, naming both, and signs in to the one given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn a_login_that_opens_two_brands_asks_which() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let (acme, globex) = (server.brand().await, server.brand().await);
    let email = "sam@contractor.test";
    server.user(&acme, email, "Sam at Acme", Role::Agent, 3, vec![]).await;
    server.user(&globex, email, "Sam at Globex", Role::Agent, 3, vec![]).await;
    let browser = driver.browser().await;
    browser.login(&server.http, email, PASSWORD).await;
    let message = browser.text_contains("#login-error", "name the brand").await;
    assert!(message.contains(&acme.id) && message.contains(&globex.id), "{message}");
    browser.type_into("#login-brand", &globex.id).await;
    browser.click("#login-submit").await;
    browser.text_contains("body", "Sam at Globex").await;
    browser.visible("#agent-state").await;
    browser.close().await;
}

/// A skill in offer mode rings the agent, who accepts from the offer card; when her browser
/// closes, the manager's dashboard shows her disconnected with the grace countdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn an_offer_is_accepted_from_the_inbox_and_a_closed_browser_shows_as_disconnected() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let now = now_secs() * 1000;
    let billing = server.store.create_skill(&brand.id, "billing", now).await.unwrap();
    let offer = switchboard_store::SkillPatch {
        routing: Some(switchboard_store::SkillRouting::Offer),
        offer_timeout_secs: Some(60),
        ..Default::default()
    };
    server.store.update_skill(&brand.id, billing.id, &offer).await.unwrap();
    let patch = switchboard_store::BrandPatch { agent_grace_secs: Some(600), ..Default::default() };
    server.store.update_brand(&brand.id, &patch).await.unwrap();
    let app = switchboard_store::AppPatch { default_skill_id: Some(Some(billing.id)), ..Default::default() };
    server.store.update_app(&brand.id, &brand.app, &app).await.unwrap();
    let alice_email = format!("alice@{}.test", brand.id);
    let alice = server.user(&brand, &alice_email, "Alice Moreno", Role::Agent, 5, vec![billing.id]).await;
    let manager_email = format!("morgan@{}.test", brand.id);
    server.user(&brand, &manager_email, "Morgan Lee", Role::Manager, 0, vec![]).await;
    server.running.as_ref().unwrap().state.engines.rebuild(&brand.id).await;
    let base = server.http.clone();

    let agent = driver.browser().await;
    agent.login(&base, &alice_email, PASSWORD).await;
    agent.select("#agent-state", "online").await;
    wait_online(&server, &brand, alice).await;
    let mut maria = consumer(&server, &brand, "maria", "Maria Lopez").await;
    maria.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Why was I charged twice?"})).await;
    let c = maria.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let card = format!("#offer-list li[data-conversation=\"{c}\"]");
    agent.text_contains(&card, "Maria Lopez").await;
    agent.text_contains(&card, "Answer within").await;
    agent.screenshot("workspace-offer").await;
    agent.click(&format!("#accept-offer-{c}")).await;
    let item = format!("#conversation-list li[data-conversation=\"{c}\"]");
    agent.text_contains(&item, "Maria Lopez").await;
    agent.until("the offer card is gone", &format!("return !document.querySelector({})", json!(card))).await;
    maria.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["agent"] == "Alice Moreno").await;

    // Alice's browser closes: the dashboard says she is disconnected and when her
    // conversation goes back to the queue.
    let manager = driver.browser().await;
    manager.login(&base, &manager_email, PASSWORD).await;
    manager.goto(&format!("{base}/#/dashboard")).await;
    let row = format!("#agents-table tr[data-agent=\"{alice}\"] td.state");
    manager.text_contains(&row, "Online").await;
    agent.close().await;
    manager.text_contains(&row, "Disconnected · back to queue in").await;
    manager.screenshot("dashboard-disconnected").await;
    manager.close().await;
}

/// An agent ("Busy Agent", capacity 250) holding 200 open conversations with consumers
/// `c0`…`c199` ("Customer i"); `c0`'s has 2,000 messages, the others one each. Returns the
/// agent's email and the long conversation's id.
async fn seed_busy_inbox(server: &TestServer, brand: &TestBrand) -> (String, i64) {
    let email = format!("busy@{}.test", brand.id);
    let agent_id = server.user(brand, &email, "Busy Agent", Role::Agent, 250, vec![]).await;
    let now = now_secs() * 1000;
    let append = |consumer: i64, cid: String, text: String| {
        Append::Consumer(ConsumerAppend {
            brand_id: brand.id.clone(),
            consumer_id: consumer,
            app_id: brand.app.clone(),
            channel: "in_app".into(),
            skill_id: None,
            priority: 0,
            client_id: cid,
            text,
        })
    };
    let mut long = 0;
    for i in 0..200 {
        let claims = ConsumerClaims { name: Some(format!("Customer {i}")), ..Default::default() };
        let consumer = server.store.upsert_consumer(&brand.id, &format!("c{i}"), &claims, now).await.unwrap().id;
        let messages = if i == 0 { 2_000 } else { 1 };
        let mut c = 0;
        for n in 0..messages {
            let text = format!("Customer {i} message {}", n + 1);
            let at = now - 1000 * (200 - i);
            c = server
                .store
                .append(append(consumer, format!("c{i}-{n}"), text), at)
                .await
                .unwrap()
                .message
                .conversation_id;
        }
        server.store.assign(&brand.id, c, agent_id, now).await.unwrap();
        if i == 0 {
            long = c;
        }
    }
    // Written behind the router's back: let it learn the assignments, as at a restart.
    server.running.as_ref().unwrap().state.engines.rebuild(&brand.id).await;
    (email, long)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver), run with --include-ignored"]
async fn two_hundred_conversations_and_a_long_history_stay_usable() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let (email, long) = seed_busy_inbox(&server, &brand).await;
    let browser = driver.browser().await;
    browser.login(&server.http, &email, PASSWORD).await;
    browser
        .until(
            "200 conversations listed",
            "return document.querySelectorAll('#conversation-list li[data-conversation]').length === 200",
        )
        .await;
    let item = format!("#conversation-list li[data-conversation=\"{long}\"]");
    browser.click(&item).await;
    browser.text_contains("#messages", "Customer 0 message 2000").await;
    let shown = browser.js("return document.querySelectorAll('#messages .message').length", vec![]).await;
    let shown = shown.as_i64().unwrap();
    assert!((1..=300).contains(&shown), "a long history opens on its latest page, not all 2,000 at once ({shown})");
    // Earlier pages load on demand (scrolling to the top or the button).
    browser.js("const m = document.querySelector('#messages'); m.scrollTop = 0; m.dispatchEvent(new Event('scroll')); const b = document.querySelector('#messages button'); if (b) b.click(); return true", vec![]).await;
    browser
        .until(
            "an earlier page loaded",
            &format!("return document.querySelectorAll('#messages .message').length > {shown}"),
        )
        .await;
    let opened = browser
        .js("return [...document.querySelectorAll('#messages .notice')].filter(n => n.textContent.includes('Conversation opened')).length", vec![])
        .await;
    assert_eq!(opened, json!(0), "the opening notice belongs before message 1, not between loaded pages");
    browser.screenshot("workspace-busy").await;
    browser.close().await;
}

/// Benchmark of the workspace in Chromium, run by `bench/workspace.sh` (release build: the
/// embedded assets). Wall-clock times measured from the test through WebDriver, polling every
/// 5 ms (each figure includes one WebDriver round trip); the live figure is measured in the
/// page: the time a MutationObserver saw the text, minus the time the consumer sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/workspace.sh"]
async fn bench_workspace() {
    let driver = Driver::start().await;
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let (email, long) = seed_busy_inbox(&server, &brand).await;
    let browser = driver.browser().await;
    browser.login(&server.http, &email, PASSWORD).await;
    let listed = "return document.querySelectorAll('#conversation-list li[data-conversation]').length === 200";
    browser.until("200 conversations listed", listed).await;
    let item = format!("#conversation-list li[data-conversation=\"{long}\"]");
    const RUNS: usize = 5;
    let (mut inbox, mut open, mut older) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let started = std::time::Instant::now();
        browser.client.refresh().await.unwrap();
        browser.time_until("200 conversations listed", listed).await;
        inbox.push(started.elapsed());
        let started = std::time::Instant::now();
        browser.client.find(fantoccini::Locator::Css(&item)).await.unwrap().click().await.unwrap();
        browser
            .time_until(
                "latest message shown",
                "return !!document.querySelector('#messages .message[data-seq=\"2000\"]')",
            )
            .await;
        open.push(started.elapsed());
        let shown = browser.js("return document.querySelectorAll('#messages .message').length", vec![]).await;
        let started = std::time::Instant::now();
        browser.js("const m = document.querySelector('#messages'); m.scrollTop = 0; m.dispatchEvent(new Event('scroll')); const b = document.querySelector('#messages button'); if (b) b.click(); return true", vec![]).await;
        browser
            .time_until(
                "earlier page",
                &format!("return document.querySelectorAll('#messages .message').length > {shown}"),
            )
            .await;
        older.push(started.elapsed());
    }

    // Live: the open conversation's consumer writes; the page notes when each text appears.
    browser.js("window.__seen = {}; new MutationObserver(() => { for (const e of document.querySelectorAll('#messages .message-text')) { const t = e.textContent; if (t.startsWith('live ') && !(t in window.__seen)) window.__seen[t] = Date.now(); } }).observe(document.querySelector('#messages'), {childList: true, subtree: true}); return true", vec![]).await;
    let mut consumer = consumer(&server, &brand, "c0", "Customer 0").await;
    let mut live = Vec::new();
    for i in 0..20 {
        let text = format!("live {i}");
        let sent = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        consumer.send(json!({"t": "send", "id": i, "cid": format!("live-{i}"), "text": text})).await;
        let seen = browser.until("live message shown", &format!("return window.__seen[{}] || null", json!(text))).await;
        live.push(std::time::Duration::from_millis(u64::try_from(seen.as_i64().unwrap() - sent).unwrap_or(0)));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.close().await;

    let row = |name: &str, runs: &mut Vec<std::time::Duration>| {
        runs.sort();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{name:<58} {:>8.0} ms {:>8.0} ms {:>8.0} ms  ({} runs)",
            ms(runs[0]),
            ms(runs[runs.len() / 2]),
            ms(runs[runs.len() - 1]),
            runs.len()
        )
    };
    let report = [
        format!("{:<58} {:>11} {:>11} {:>11}", "", "min", "median", "max"),
        row("reload → inbox of 200 conversations listed", &mut inbox),
        row("click → 2,000-message conversation open (latest 100)", &mut open),
        row("scroll to top → earlier page of 100 shown", &mut older),
        row("consumer sends → text in the agent's open conversation", &mut live),
    ]
    .join("\n");
    println!("{report}");
    if let Ok(path) = std::env::var("SWITCHBOARD_BENCH_OUT") {
        std::fs::write(path, format!("{report}\n")).unwrap();
    }
}
