//! Backward compatibility: hand-written payloads exactly as v1 clients send them, written
//! independently of the serializer (other field orders, `t` not first, optional fields
//! omitted or `null`, unknown fields a newer client may add). These strings are frozen: if
//! one stops decoding to the same value, deployed clients break. Add cases; never edit one.

use switchboard_protocol::{
    AgentState, ClientFrame, ConversationEventKind, ConversationStatus, DeviceInfo, ErrorCode, Hello, Me, Message,
    ReceiptKind, ServerFrame, Side,
};

use crate::decode;
use crate::samples::{ANON_SECRET, CONV, JWT, SESSION};

#[track_caller]
fn check(json: &str, expected: ClientFrame) {
    match decode::<ClientFrame>(json) {
        Ok(frame) => assert_eq!(frame, expected, "decoding {json}"),
        Err(error) => panic!("a v1 client frame no longer decodes: {error}\n{json}"),
    }
}

#[track_caller]
fn check_server(json: &str, expected: ServerFrame) {
    match decode::<ServerFrame>(json) {
        Ok(frame) => assert_eq!(frame, expected, "decoding {json}"),
        Err(error) => panic!("a v1 server frame no longer decodes: {error}\n{json}"),
    }
}

fn hello() -> Hello {
    Hello {
        v: 1,
        brand: None,
        app: None,
        token: None,
        anon: None,
        code: None,
        session: None,
        device: None,
        skill: None,
        lang: None,
    }
}

#[test]
fn hello_consumer_jwt() {
    let json = format!(
        r#"{{"t":"hello","v":1,"brand":"acme","app":"acme-ios","token":"{JWT}",
            "device":{{"os":"Android 15","app_version":"4.2.0","device_type":"phone"}}}}"#
    );
    let expected = ClientFrame::Hello(Hello {
        brand: Some("acme".into()),
        app: Some("acme-ios".into()),
        token: Some(JWT.into()),
        device: Some(DeviceInfo {
            os: Some("Android 15".into()),
            app_version: Some("4.2.0".into()),
            device_type: Some("phone".into()),
        }),
        ..hello()
    });
    check(&json, expected);
}

#[test]
fn hello_consumer_with_unknown_fields() {
    // A newer SDK adds fields at the top level and inside `device`, and sends an `id`, which
    // `hello` does not have: all ignored.
    let json = format!(
        r#"{{"device":{{"device_type":"tablet","locale":"es-ES","screen":[2048,1536]}},
            "sdk":"switchboard-android/1.3.0","id":1,"app":"acme-android","v":1,
            "t":"hello","brand":"acme","token":"{JWT}","caps":{{"rich":true}}}}"#
    );
    let expected = ClientFrame::Hello(Hello {
        brand: Some("acme".into()),
        app: Some("acme-android".into()),
        token: Some(JWT.into()),
        device: Some(DeviceInfo { device_type: Some("tablet".into()), ..DeviceInfo::default() }),
        ..hello()
    });
    check(&json, expected);
}

#[test]
fn hello_consumer_anonymous() {
    check(
        r#"{"t":"hello","v":1,"brand":"acme","app":"acme-web","anon":""}"#,
        ClientFrame::Hello(Hello {
            brand: Some("acme".into()),
            app: Some("acme-web".into()),
            anon: Some(String::new()),
            code: None,
            ..hello()
        }),
    );
    check(
        &format!(r#"{{"t":"hello","v":1,"brand":"acme","app":"acme-web","anon":"{ANON_SECRET}","device":{{}}}}"#),
        ClientFrame::Hello(Hello {
            brand: Some("acme".into()),
            app: Some("acme-web".into()),
            anon: Some(ANON_SECRET.into()),
            code: None,
            device: Some(DeviceInfo::default()),
            ..hello()
        }),
    );
}

#[test]
fn hello_agent() {
    check(
        &format!(r#"{{"t":"hello","v":1,"session":"{SESSION}"}}"#),
        ClientFrame::Hello(Hello { session: Some(SESSION.into()), ..hello() }),
    );
    // Browsers authenticate with the `sb_session` cookie and send no credential.
    check(r#"{"t":"hello","v":1}"#, ClientFrame::Hello(hello()));
    check(
        r#"{"t":"hello","v":1,"brand":null,"app":null,"token":null,"anon":null,"session":null,"device":null}"#,
        ClientFrame::Hello(hello()),
    );
}

#[test]
fn hello_other_version_still_decodes() {
    // The version is checked by the server (`unsupported_version`), not by decoding, so the
    // client gets a typed error rather than `malformed_frame`.
    check(
        r#"{"t":"hello","v":2,"session":"x"}"#,
        ClientFrame::Hello(Hello { v: 2, session: Some("x".into()), ..hello() }),
    );
}

#[test]
fn send() {
    check(
        r#"{"t":"send","cid":"m-1","text":"hello"}"#,
        ClientFrame::Send { id: None, cid: "m-1".into(), text: "hello".into(), c: None, consumer: None },
    );
    check(
        r#"{"t":"send","id":7,"cid":"019abf2e-6f10-7c4a-9d2e-3b5f1a2c4d01","text":"Where is my order?","c":null,"consumer":null}"#,
        ClientFrame::Send {
            id: Some(7),
            cid: "019abf2e-6f10-7c4a-9d2e-3b5f1a2c4d01".into(),
            text: "Where is my order?".into(),
            c: None,
            consumer: None,
        },
    );
    // `t` last, unknown fields of a richer future client, JSON escapes in the text.
    check(
        r#"{"text":"caf\u00e9 \ud83d\ude00\n2nd line","cid":"m-2","attachments":[],"meta":{"src":"kb"},"t":"send"}"#,
        ClientFrame::Send { id: None, cid: "m-2".into(), text: "café 😀\n2nd line".into(), c: None, consumer: None },
    );
    check(
        r#"{"t":"send","id":18446744073709551615,"cid":"w-1","text":"On it.","c":4821337}"#,
        ClientFrame::Send {
            id: Some(u64::MAX),
            cid: "w-1".into(),
            text: "On it.".into(),
            c: Some(CONV),
            consumer: None,
        },
    );
    check(
        r#"{"t":"send","id":3,"cid":"w-2","text":"Your replacement shipped today.","consumer":20931}"#,
        ClientFrame::Send {
            id: Some(3),
            cid: "w-2".into(),
            text: "Your replacement shipped today.".into(),
            c: None,
            consumer: Some(20_931),
        },
    );
}

#[test]
fn rcpt() {
    check(
        r#"{"t":"rcpt","c":4821337,"seq":12,"k":"dlv"}"#,
        ClientFrame::Rcpt { id: None, c: CONV, seq: 12, k: ReceiptKind::Delivered },
    );
    check(
        r#"{"k":"read","seq":12,"c":4821337,"t":"rcpt","id":4,"device":"ipad"}"#,
        ClientFrame::Rcpt { id: Some(4), c: CONV, seq: 12, k: ReceiptKind::Read },
    );
}

#[test]
fn typing() {
    check(r#"{"t":"typing","c":4821337,"on":true}"#, ClientFrame::Typing { c: CONV, on: true });
    check(
        r#"{"t":"typing","c":4821337,"on":false,"id":8,"mode":"composing"}"#,
        ClientFrame::Typing { c: CONV, on: false },
    );
}

#[test]
fn sync() {
    check(r#"{"t":"sync","c":4821337,"after":0}"#, ClientFrame::Sync { id: None, c: CONV, after: 0, limit: None });
    check(
        r#"{"t":"sync","id":2,"c":4821337,"after":41,"limit":100,"reverse":false}"#,
        ClientFrame::Sync { id: Some(2), c: CONV, after: 41, limit: Some(100) },
    );
}

#[test]
fn close() {
    check(r#"{"t":"close","c":4821337}"#, ClientFrame::Close { id: None, c: CONV });
    check(r#"{"t":"close","id":21,"c":4821337,"reason":"resolved"}"#, ClientFrame::Close { id: Some(21), c: CONV });
}

#[test]
fn csat() {
    check(r#"{"t":"csat","c":4821337,"score":5}"#, ClientFrame::Csat { id: None, c: CONV, score: 5, comment: None });
    check(
        r#"{"t":"csat","id":9,"c":4821337,"score":2,"comment":"Took two days to get an answer.","tags":["slow"]}"#,
        ClientFrame::Csat { id: Some(9), c: CONV, score: 2, comment: Some("Took two days to get an answer.".into()) },
    );
    check(
        r#"{"t":"csat","c":4821337,"score":4,"comment":null}"#,
        ClientFrame::Csat { id: None, c: CONV, score: 4, comment: None },
    );
    // Range is checked by the server (`invalid_score`), not by decoding.
    check(r#"{"t":"csat","c":4821337,"score":0}"#, ClientFrame::Csat { id: None, c: CONV, score: 0, comment: None });
}

#[test]
fn history() {
    check(
        r#"{"t":"history"}"#,
        ClientFrame::History { id: None, from: None, to: None, status: None, cursor: None, limit: None },
    );
    check(
        r#"{"t":"history","id":5,"from":1732440000000,"to":1764062400000,"status":"closed","cursor":"1761300000000.4790112","limit":20,"skill":"billing"}"#,
        ClientFrame::History {
            id: Some(5),
            from: Some(1_732_440_000_000),
            to: Some(1_764_062_400_000),
            status: Some(ConversationStatus::Closed),
            cursor: Some("1761300000000.4790112".into()),
            limit: Some(20),
        },
    );
    check(
        r#"{"t":"history","status":"open","limit":1}"#,
        ClientFrame::History {
            id: None,
            from: None,
            to: None,
            status: Some(ConversationStatus::Open),
            cursor: None,
            limit: Some(1),
        },
    );
}

#[test]
fn state() {
    for (wire, state) in [
        ("online", AgentState::Online),
        ("away", AgentState::Away),
        ("back_soon", AgentState::BackSoon),
        ("offline", AgentState::Offline),
    ] {
        check(&format!(r#"{{"t":"state","state":"{wire}"}}"#), ClientFrame::State { id: None, state });
        assert_eq!(AgentState::parse(wire), Some(state));
        assert_eq!(state.as_str(), wire);
    }
    check(
        r#"{"t":"state","id":2,"state":"away","note":"lunch"}"#,
        ClientFrame::State { id: Some(2), state: AgentState::Away },
    );
}

#[test]
fn ping() {
    check(r#"{"t":"ping"}"#, ClientFrame::Ping { id: None });
    check(r#"{"t":"ping","id":99,"ts":1764062400000}"#, ClientFrame::Ping { id: Some(99) });
    check(r#"{"t":"ping","id":null}"#, ClientFrame::Ping { id: None });
}

#[test]
fn whitespace_between_tokens() {
    check("{ \"t\" : \"typing\" ,\n\t\"c\" : 4821337 , \"on\" : true }", ClientFrame::Typing { c: CONV, on: true });
}

/// A v1 SDK must keep reading what a newer v1 server sends: extra fields are ignored in that
/// direction too.
#[test]
fn server_frames_with_unknown_fields() {
    check_server(
        r#"{"t":"welcome","v":1,"me":{"id":20931,"name":"Maria Lopez","tier":"gold"},"hb":30,"node":"sb-2"}"#,
        ServerFrame::Welcome {
            v: 1,
            me: Me { id: 20_931, name: Some("Maria Lopez".into()), state: None },
            convs: vec![],
            anon: None,
            merged: None,
            hb: 30,
        },
    );
    check_server(
        r#"{"t":"msg","c":4821337,"seq":2,"ts":1764062161870,"from":"a","name":"Dana","text":"Hi Maria!","kind":"text","masked":false}"#,
        ServerFrame::Msg(Message {
            c: CONV,
            seq: 2,
            ts: 1_764_062_161_870,
            from: Side::Agent,
            name: Some("Dana".into()),
            text: "Hi Maria!".into(),
            cid: None,
        }),
    );
    check_server(
        r#"{"t":"conv","c":4821337,"ev":"queued","eta":120,"position":3}"#,
        ServerFrame::Conv {
            c: CONV,
            ev: ConversationEventKind::Queued,
            agent: None,
            eta: Some(120),
            by: None,
            conv: None,
            until: None,
        },
    );
    check_server(r#"{"t":"resync","reason":"slow consumer"}"#, ServerFrame::Resync);
    // An error code from a newer server decodes as `unknown`, keeping its request id and
    // message, so a client can still answer the request that caused it.
    check_server(
        r#"{"t":"err","id":4,"code":"rate_limited","msg":"slow down"}"#,
        ServerFrame::Err { id: Some(4), code: ErrorCode::Unknown, msg: "slow down".into() },
    );
}
