//! Data governance end to end: the reporting API's search, transcript exports, the audit
//! log, erasure of a consumer's data and retention, each refused across brands.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

pub const CARD: &str = "4111 1111 1111 1111";
pub const MASKED: &str = "**** **** **** 1111";

/// A conversation of consumer `sub` with the brand's agent: the consumer writes (a card
/// number among the words), the agent answers, hands it back to the queue (a transfer), a
/// manager closes it and the consumer scores it `score`. Returns its id.
pub async fn scored_conversation(server: &TestServer, brand: &TestBrand, sub: &str, score: u8) -> i64 {
    let mut consumer = server.consumer(brand, sub).await;
    let mut agent = server.online_agent(&brand.agent_email).await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "m1", "text": format!("my card is {CARD}")})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    agent.send(json!({"t": "send", "id": 2, "c": c, "cid": "a1", "text": "Thanks, looking into it"})).await;
    agent.expect(|f| f["t"] == "ack" && f["id"] == 2).await;
    let admin = server.login(&brand.admin_email).await;
    let (status, body) =
        call(server, &admin, Method::POST, &format!("/api/v1/conversations/{c}/transfer"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        call(server, &admin, Method::POST, &format!("/api/v1/conversations/{c}/close"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    consumer.expect(|f| f["t"] == "survey" && f["c"] == c).await;
    consumer.send(json!({"t": "csat", "id": 3, "c": c, "score": score, "comment": "quick"})).await;
    consumer.expect(|f| f["t"] == "ok" && f["id"] == 3).await;
    c
}

#[tokio::test]
async fn the_reporting_api_finds_conversations_with_consumer_messages_transfers_and_scores() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let good = scored_conversation(&server, &brand, "erin", 5).await;
    let poor = scored_conversation(&server, &brand, "frank", 2).await;
    let admin = server.login(&brand.admin_email).await;

    let (status, page) = call(&server, &admin, Method::GET, "/api/v1/reports/conversations", Value::Null).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<i64> =
        page["conversations"].as_array().unwrap().iter().map(|r| r["conversation"]["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [poor, good], "newest first");

    let (status, page) =
        call(&server, &admin, Method::GET, "/api/v1/reports/conversations?csat_min=4&status=closed", Value::Null).await;
    assert_eq!(status, 200, "{page}");
    let records = page["conversations"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{page}");
    let record = &records[0];
    assert_eq!(record["conversation"]["id"], good);
    assert_eq!(record["consumer"]["external_id"], "erin", "the brand's own consumer id");
    assert_eq!(record["consumer"]["name"], "Customer erin");
    assert_eq!(record["consumer"]["email"], "erin@example.com");
    assert_eq!(record["csat"], json!({"score": 5, "comment": "quick"}));
    assert_eq!(record["agent"], format!("Agent of {}", brand.id));
    let texts: Vec<&str> = record["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&format!("my card is {MASKED}").as_str()), "masked as agents see it: {texts:?}");
    assert!(texts.contains(&"Thanks, looking into it"), "{texts:?}");
    assert!(!page.to_string().contains("4111 1111 1111"), "{page}");
    let transfers = record["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 1, "{record}");
    assert_eq!(transfers[0]["from_agent"], format!("Agent of {}", brand.id));
    assert_eq!(transfers[0]["to_agent_id"], Value::Null, "back to the queue");
    let kinds: Vec<&str> = record["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opened", "assigned", "queued", "closed"]);

    // By consumer (the brand's id), and in pages of one that follow `next`.
    let (_, page) =
        call(&server, &admin, Method::GET, "/api/v1/reports/conversations?consumer=frank", Value::Null).await;
    assert_eq!(page["conversations"][0]["conversation"]["id"], poor, "{page}");
    let (_, page) =
        call(&server, &admin, Method::GET, "/api/v1/reports/conversations?consumer=nobody", Value::Null).await;
    assert_eq!(page["conversations"], json!([]));
    let (_, first) =
        call(&server, &admin, Method::GET, "/api/v1/reports/conversations?limit=1&messages=1", Value::Null).await;
    assert_eq!(first["conversations"][0]["conversation"]["id"], poor);
    assert_eq!(first["conversations"][0]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(first["conversations"][0]["more_messages"], true);
    let next = first["next"].as_str().unwrap();
    let (_, second) = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v1/reports/conversations?limit=1&cursor={next}"),
        Value::Null,
    )
    .await;
    assert_eq!(second["conversations"][0]["conversation"]["id"], good);
    assert_eq!(second["next"], Value::Null);

    for (query, says) in [
        ("csat_min=0", "csat_min must be 1 to 5 (got 0)"),
        ("csat_min=4&csat_max=2", "csat_max must be at least csat_min"),
        ("status=pending", "status must be \"open\" or \"closed\""),
        ("channel=fax", "channel must be one of in_app, web, sms, messenger"),
        ("limit=0", "limit must be 1 to 100 (got 0)"),
        ("messages=501", "messages must be 0 to 500 (got 501)"),
        ("cursor=xyz", "cursor is not valid"),
        ("from=10&to=10", "to must be after from"),
        ("agent_id=abc", "agent_id"),
    ] {
        let (status, body) =
            call(&server, &admin, Method::GET, &format!("/api/v1/reports/conversations?{query}"), Value::Null).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{says:?} not in {body}");
    }

    // Agents may not search the brand; another brand's admin finds nothing of this one.
    let agent = server.login(&brand.agent_email).await;
    let (status, _) = call(&server, &agent, Method::GET, "/api/v1/reports/conversations", Value::Null).await;
    assert_eq!(status, 403);
    let other = server.brand().await;
    let other_admin = server.login(&other.admin_email).await;
    let (status, page) =
        call(&server, &other_admin, Method::GET, "/api/v1/reports/conversations?consumer=erin", Value::Null).await;
    assert_eq!((status, &page["conversations"]), (200, &json!([])));
    let (_, page) = call(&server, &other_admin, Method::GET, "/api/v1/reports/conversations", Value::Null).await;
    assert_eq!(page["conversations"], json!([]));
}

/// A message text that tries every escaping rule of every format.
pub const TRICKY: &str = "<b>&amp; \"quoted\" 'single' ]]> line one\r\nline two\u{1} 👍";

/// `GET path` as `token`: status, headers and the body as text.
pub async fn download(server: &TestServer, token: &str, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response =
        reqwest::Client::new().get(format!("{}{path}", server.http)).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// What the round-trip compares of one transcript: id, the consumer's id and name, the
/// score, the kinds of events, the transfers and every message.
#[derive(Debug, PartialEq, Default)]
struct Gist {
    id: i64,
    consumer: String,
    consumer_name: String,
    csat: Option<(i64, String)>,
    events: Vec<String>,
    transfers: Vec<(String, i64)>,
    participants: Vec<(String, String)>,
    messages: Vec<(i64, String, String, String)>,
}

fn gists_of_json(export: &Value) -> Vec<Gist> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    export["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Gist {
            id: c["id"].as_i64().unwrap(),
            consumer: text(&c["consumer"]["external_id"]),
            consumer_name: text(&c["consumer"]["name"]),
            csat: c["csat"]["score"].as_i64().map(|score| (score, text(&c["csat"]["comment"]))),
            events: c["events"].as_array().unwrap().iter().map(|e| text(&e["kind"])).collect(),
            transfers: c["transfers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (text(&t["at"]), t["from_agent_id"].as_i64().unwrap()))
                .collect(),
            participants: c["participants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (text(&p["role"]), text(&p["id"])))
                .collect(),
            messages: c["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["seq"].as_i64().unwrap(), text(&m["from"]), text(&m["at"]), text(&m["text"])))
                .collect(),
        })
        .collect()
}

/// Parses an XML export back (with quick-xml, checking end tags) into the same gists.
fn gists_of_xml(xml: &str) -> Vec<Gist> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut gists: Vec<Gist> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut attributes: Vec<std::collections::HashMap<String, String>> = Vec::new();
    let attrs = |e: &quick_xml::events::BytesStart<'_>| -> std::collections::HashMap<String, String> {
        e.attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (
                    a.key.as_ref().to_owned(),
                    a.normalized_value(quick_xml::XmlVersion::Explicit1_0).unwrap().into_owned(),
                )
            })
            .collect()
    };
    loop {
        let event = reader.read_event().unwrap_or_else(|error| panic!("not well-formed: {error}"));
        match event {
            Event::Start(e) => {
                let name = e.name().as_ref().to_owned();
                let a = attrs(&e);
                match name.as_str() {
                    "conversation" => gists.push(Gist { id: a["id"].parse().unwrap(), ..Gist::default() }),
                    "message" => gists.last_mut().unwrap().messages.push((
                        a["seq"].parse().unwrap(),
                        a["from"].clone(),
                        a["at"].clone(),
                        String::new(),
                    )),
                    "transfer" => {
                        gists.last_mut().unwrap().transfers.push((a["at"].clone(), a["from_agent_id"].parse().unwrap()))
                    }
                    "participant" => gists.last_mut().unwrap().participants.push((a["role"].clone(), a["id"].clone())),
                    "csat" => gists.last_mut().unwrap().csat = Some((a["score"].parse().unwrap(), String::new())),
                    _ => {}
                }
                path.push(name);
                attributes.push(a);
                text.clear();
            }
            Event::Empty(e) => {
                let name = e.name().as_ref().to_owned();
                let a = attrs(&e);
                if name == "event" {
                    gists.last_mut().unwrap().events.push(a["kind"].clone());
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => match r.resolve_char_ref().unwrap() {
                Some(c) => text.push(c),
                None => text.push(match &*r.xml10_content() {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    "apos" => '\'',
                    other => panic!("unknown entity {other}"),
                }),
            },
            Event::End(_) => {
                let name = path.pop().unwrap();
                attributes.pop();
                let parent = path.last().map(String::as_str);
                if let Some(gist) = gists.last_mut() {
                    match (parent, name.as_str()) {
                        (Some("consumer"), "external_id") => gist.consumer = text.clone(),
                        (Some("consumer"), "name") => gist.consumer_name = text.clone(),
                        (Some("message"), "text") => gist.messages.last_mut().unwrap().3 = text.clone(),
                        (_, "csat") => gist.csat.as_mut().unwrap().1 = text.clone(),
                        _ => {}
                    }
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(path.is_empty(), "every element closed: {path:?}");
    gists
}

#[tokio::test]
async fn transcripts_export_as_txt_xml_and_json_round_trip_and_match_the_schema() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let first = scored_conversation(&server, &brand, "erin", 5).await;
    // The second conversation's consumer says something that tests every escaping rule.
    let mut consumer = server.consumer(&brand, "gina").await;
    let mut agent = server.online_agent(&brand.agent_email).await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "t1", "text": TRICKY})).await;
    let second = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    agent.expect(|f| f["t"] == "msg" && f["c"] == second).await;
    let admin = server.login(&brand.admin_email).await;

    let (status, headers, json_text) = download(&server, &admin, "/api/v1/exports/conversations?format=json").await;
    assert_eq!(status, 200, "{json_text}");
    assert_eq!(headers["content-type"], "application/json");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with(&format!("attachment; filename=\"transcripts-{}-", brand.id)), "{disposition}");
    assert!(disposition.ends_with(".json\""), "{disposition}");
    let export: Value = serde_json::from_str(&json_text).expect("the JSON export parses");
    let schema: Value = serde_json::from_str(include_str!("../../../../docs/transcripts.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the published schema is a valid JSON Schema");
    let errors: Vec<String> =
        validator.iter_errors(&export).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "the export does not match docs/transcripts.schema.json: {errors:#?}");
    let gists = gists_of_json(&export);
    assert_eq!(gists.iter().map(|g| g.id).collect::<Vec<_>>(), [second, first], "newest first");
    let scored = &gists[1];
    assert_eq!((scored.consumer.as_str(), scored.consumer_name.as_str()), ("erin", "Customer erin"));
    assert_eq!(scored.csat, Some((5, "quick".to_owned())));
    assert_eq!(scored.transfers.len(), 1);
    assert_eq!(scored.participants[0], ("consumer".to_owned(), "erin".to_owned()));
    assert!(scored.participants.iter().any(|(role, _)| role == "agent"), "{:?}", scored.participants);
    assert_eq!(scored.messages[0].3, format!("my card is {MASKED}"), "masked as agents see it");
    assert_eq!(gists[0].messages[0].3, TRICKY, "JSON carries any text");
    assert!(!json_text.contains("4111 1111 1111"));

    let (status, headers, xml) = download(&server, &admin, "/api/v1/exports/conversations?format=xml").await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(headers["content-type"], "application/xml; charset=utf-8");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"), "{xml}");
    let mut from_xml = gists_of_xml(&xml);
    // XML 1.0 cannot carry U+0001 at all: it is the one character the XML form replaces.
    let tricky_in_xml = TRICKY.replace('\u{1}', "\u{FFFD}");
    assert_eq!(from_xml[0].messages[0].3, tricky_in_xml, "markup, quotes and \\r\\n survive the round trip");
    from_xml[0].messages[0].3 = TRICKY.to_owned();
    assert_eq!(from_xml, gists, "the XML export parses back to what the JSON export says");

    let (status, headers, txt) = download(&server, &admin, "/api/v1/exports/conversations?format=txt").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(txt.contains(&format!("Conversation {first} · closed · channel in_app")), "{txt}");
    assert!(txt.contains("Consumer: erin · name Customer erin · email erin@example.com"), "{txt}");
    assert!(txt.contains("CSAT: 5/5 \"quick\""), "{txt}");
    assert!(txt.contains(&format!("#1 Consumer: my card is {MASKED}")), "{txt}");
    assert!(txt.contains("line one\n    line two"), "continuation lines are indented: {txt}");
    assert!(txt.contains("2 conversation(s)."), "{txt}");
    assert!(!txt.contains("4111 1111 1111"));

    // Filters as the reporting API's: only the scored one.
    let (_, _, filtered) = download(&server, &admin, "/api/v1/exports/conversations?format=json&csat_min=1").await;
    let filtered: Value = serde_json::from_str(&filtered).unwrap();
    assert_eq!(gists_of_json(&filtered).iter().map(|g| g.id).collect::<Vec<_>>(), [first]);
    let (_, _, nobody) = download(&server, &admin, "/api/v1/exports/conversations?format=json&consumer=nobody").await;
    let nobody: Value = serde_json::from_str(&nobody).unwrap();
    assert_eq!(nobody["conversations"], json!([]));
    assert!(validator.is_valid(&nobody));
    for (query, says) in
        [("format=pdf", "format must be \"txt\", \"xml\" or \"json\""), ("format=json&csat_max=9", "csat_max")]
    {
        let (status, _, body) = download(&server, &admin, &format!("/api/v1/exports/conversations?{query}")).await;
        assert_eq!(status, 400, "{query}");
        let message = serde_json::from_str::<Value>(&body).unwrap()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{says:?} not in {body}");
    }

    // One conversation: its agent may export it; the same JSON shape.
    let agent_token = server.login(&brand.agent_email).await;
    let (status, headers, one) =
        download(&server, &agent_token, &format!("/api/v1/conversations/{second}/transcript?format=json")).await;
    assert_eq!(status, 200, "{one}");
    assert!(headers["content-disposition"].to_str().unwrap().contains(&format!("conversation-{second}.json")));
    let one: Value = serde_json::from_str(&one).unwrap();
    assert!(validator.is_valid(&one), "{one}");
    assert_eq!(gists_of_json(&one), gists[..1]);
    // Agents may not export the brand; another brand's staff find nothing.
    let (status, _, _) = download(&server, &agent_token, "/api/v1/exports/conversations?format=json").await;
    assert_eq!(status, 403);
    let other = server.brand().await;
    let other_admin = server.login(&other.admin_email).await;
    let (status, _, body) =
        download(&server, &other_admin, &format!("/api/v1/conversations/{second}/transcript?format=json")).await;
    assert_eq!(status, 404, "{body}");
    let (_, _, theirs) = download(&server, &other_admin, "/api/v1/exports/conversations?format=json").await;
    assert_eq!(serde_json::from_str::<Value>(&theirs).unwrap()["conversations"], json!([]));
}

#[tokio::test]
async fn an_export_larger_than_a_page_holds_every_conversation_once() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let now = now_secs() * 1000;
    // 250 conversations (the export reads 100 at a time), the last one with 1,200 messages
    // (read 500 at a time).
    for i in 0..250i64 {
        let consumer =
            server.store.upsert_consumer(&brand.id, &format!("bulk-{i}"), &Default::default(), now).await.unwrap();
        let messages = if i == 249 { 1200 } else { 1 };
        for n in 0..messages {
            let append = switchboard_store::Append::Consumer(switchboard_store::ConsumerAppend {
                brand_id: brand.id.clone(),
                consumer_id: consumer.id,
                app_id: brand.app.clone(),
                channel: "in_app".into(),
                skill_id: None,
                priority: 0,
                client_id: format!("m{n}"),
                text: format!("message {n} of bulk-{i}"),
            });
            server.store.append(append, now + i).await.unwrap();
        }
    }
    let admin = server.login(&brand.admin_email).await;
    let (status, _, text) = download(&server, &admin, "/api/v1/exports/conversations?format=json").await;
    assert_eq!(status, 200);
    let export: Value = serde_json::from_str(&text).unwrap();
    let conversations = export["conversations"].as_array().unwrap();
    let mut consumers: Vec<&str> =
        conversations.iter().map(|c| c["consumer"]["external_id"].as_str().unwrap()).collect();
    assert_eq!(consumers.len(), 250);
    consumers.sort_unstable();
    consumers.dedup();
    assert_eq!(consumers.len(), 250, "each once");
    let long = &conversations[0];
    assert_eq!(long["consumer"]["external_id"], "bulk-249", "newest first");
    let seqs: Vec<i64> = long["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=1200).collect::<Vec<_>>(), "every message once, in order");
    let (_, _, xml) = download(&server, &admin, "/api/v1/exports/conversations?format=xml").await;
    assert_eq!(gists_of_xml(&xml).len(), 250);
}

#[tokio::test]
async fn every_admin_mutation_and_data_action_is_in_the_audit_log() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let ok = |status: u16, body: &Value| assert!((200..300).contains(&status), "{status}: {body}");
    let secret_password = "a very secret passphrase 42";

    let (status, skill) = call(&server, &admin, Method::POST, "/api/v1/skills", json!({"name": "billing"})).await;
    ok(status, &skill);
    let skill_id = skill["id"].as_i64().unwrap();
    let (status, body) =
        call(&server, &admin, Method::PATCH, &format!("/api/v1/skills/{skill_id}"), json!({"routing": "offer"})).await;
    ok(status, &body);
    let new_user = json!({"email": format!("new@{}.test", brand.id), "name": "New Agent", "role": "agent",
        "password": secret_password});
    let (status, user) = call(&server, &admin, Method::POST, "/api/v1/users", new_user).await;
    ok(status, &user);
    let user_id = user["id"].as_i64().unwrap();
    let patch = json!({"name": "Renamed", "password": format!("{secret_password}!")});
    let (status, body) = call(&server, &admin, Method::PATCH, &format!("/api/v1/users/{user_id}"), patch).await;
    ok(status, &body);
    let (status, app) =
        call(&server, &admin, Method::POST, "/api/v1/apps", json!({"name": "Web", "channel": "web"})).await;
    ok(status, &app);
    let app_id = app["id"].as_str().unwrap().to_owned();
    let (status, body) =
        call(&server, &admin, Method::PATCH, &format!("/api/v1/apps/{app_id}"), json!({"name": "Website"})).await;
    ok(status, &body);
    let (status, key) = call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/v1/apps/{app_id}/keys"),
        json!({"format": "pem", "material": RSA_PUBLIC}),
    )
    .await;
    ok(status, &key);
    let key_id = key["id"].as_i64().unwrap();
    let (status, body) =
        call(&server, &admin, Method::DELETE, &format!("/api/v1/apps/{app_id}/keys/{key_id}"), Value::Null).await;
    ok(status, &body);
    let rules = json!({"rules": [{"name": "Cards", "kind": "credit_card", "hidden_from": {"agents": true}}]});
    let (status, body) = call(&server, &admin, Method::PUT, "/api/v1/brand/masking", rules).await;
    ok(status, &body);
    let (status, message) =
        call(&server, &admin, Method::PUT, "/api/v1/automatic-messages", json!({"trigger": "welcome", "text": "Hi!"}))
            .await;
    ok(status, &message);
    let message_id = message["id"].as_i64().unwrap();
    let (status, body) =
        call(&server, &admin, Method::DELETE, &format!("/api/v1/automatic-messages/{message_id}"), Value::Null).await;
    ok(status, &body);
    let (status, body) = call(&server, &admin, Method::PUT, "/api/v1/brand/hours", json!({"hours": null})).await;
    ok(status, &body);
    let (status, body) =
        call(&server, &admin, Method::PUT, &format!("/api/v1/skills/{skill_id}/hours"), json!({"hours": null})).await;
    ok(status, &body);
    // An API token acts under its own name.
    let (status, token) = call(&server, &admin, Method::POST, "/api/v1/tokens", json!({"name": "ci robot"})).await;
    ok(status, &token);
    let token_id = token["info"]["id"].as_i64().unwrap();
    let robot = token["token"].as_str().unwrap().to_owned();
    let (status, body) = call(&server, &robot, Method::PATCH, "/api/v1/brand", json!({"retention_days": 30})).await;
    ok(status, &body);
    let (status, _, _) = download(&server, &robot, "/api/v1/exports/conversations?format=txt&status=closed").await;
    assert_eq!(status, 200);
    let (status, body) =
        call(&server, &admin, Method::DELETE, &format!("/api/v1/tokens/{token_id}"), Value::Null).await;
    ok(status, &body);
    let (status, body) =
        call(&server, &admin, Method::DELETE, &format!("/api/v1/skills/{skill_id}"), Value::Null).await;
    ok(status, &body);

    let (status, log) = call(&server, &admin, Method::GET, "/api/v1/audit?limit=200", Value::Null).await;
    assert_eq!(status, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    let expected = [
        "skill.delete",
        "token.delete",
        "export.conversations",
        "brand.update",
        "token.create",
        "hours.update",
        "hours.update",
        "automatic_message.delete",
        "automatic_message.put",
        "masking.update",
        "app.key_delete",
        "app.key_add",
        "app.update",
        "app.create",
        "user.update",
        "user.create",
        "skill.update",
        "skill.create",
    ];
    assert_eq!(actions, expected, "newest first, one entry per change");
    let by_token = &entries[3];
    assert_eq!(
        (by_token["actor_kind"].as_str(), by_token["actor_name"].as_str()),
        (Some("api_token"), Some("ci robot"))
    );
    assert_eq!(by_token["actor_id"], token_id);
    assert_eq!(by_token["detail"], json!({"retention_days": 30}), "only what changed");
    assert_eq!(entries[2]["detail"], json!({"format": "txt", "filters": {"status": "closed"}}));
    let by_admin = &entries[14];
    assert_eq!(by_admin["actor_kind"], "user");
    assert_eq!(by_admin["target"], format!("user {user_id}"));
    assert_eq!(by_admin["detail"]["password_changed"], true);
    assert!(entries.iter().all(|e| e["at"].as_i64().unwrap() > 0));
    assert!(!log.to_string().contains(secret_password), "no password in the log: {log}");
    assert!(!log.to_string().contains(&robot), "no token in the log");

    // Filters, pages.
    let (_, users) = call(&server, &admin, Method::GET, "/api/v1/audit?action=user.", Value::Null).await;
    assert_eq!(users["entries"].as_array().unwrap().len(), 2, "{users}");
    let (_, robots) = call(&server, &admin, Method::GET, "/api/v1/audit?actor_kind=api_token", Value::Null).await;
    assert_eq!(robots["entries"].as_array().unwrap().len(), 2, "{robots}");
    let (_, first) = call(&server, &admin, Method::GET, "/api/v1/audit?limit=5", Value::Null).await;
    let next = first["next"].as_str().unwrap();
    let (_, second) =
        call(&server, &admin, Method::GET, &format!("/api/v1/audit?limit=5&cursor={next}"), Value::Null).await;
    assert_eq!(second["entries"][0]["action"], expected[5]);
    for (query, says) in [
        ("limit=0", "limit must be 1 to 200"),
        ("actor_kind=robot", "actor_kind must be one of"),
        ("cursor=x", "cursor"),
    ] {
        let (status, body) = call(&server, &admin, Method::GET, &format!("/api/v1/audit?{query}"), Value::Null).await;
        assert_eq!(status, 400, "{query}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }

    // Only admins read it, each brand its own.
    let agent = server.login(&brand.agent_email).await;
    let (status, _) = call(&server, &agent, Method::GET, "/api/v1/audit", Value::Null).await;
    assert_eq!(status, 403);
    let other = server.brand().await;
    let other_admin = server.login(&other.admin_email).await;
    let (status, theirs) = call(&server, &other_admin, Method::GET, "/api/v1/audit", Value::Null).await;
    assert_eq!((status, &theirs["entries"]), (200, &json!([])));
}
