//! Payloads that must not decode. Decoding returns an error (the server answers
//! `malformed_frame` and keeps the socket); it never panics and never guesses.

use switchboard_protocol::{ClientFrame, ServerFrame};

use crate::decode;

/// `(why, payload)`: each must fail to decode as a [`ClientFrame`].
const BAD_CLIENT_FRAMES: &[(&str, &str)] = &[
    // Not a frame at all.
    ("empty input", ""),
    ("whitespace", "  \n"),
    ("not JSON", "hello"),
    ("truncated JSON", r#"{"t":"send","cid":"m-1","text":"hi"#),
    ("trailing garbage", r#"{"t":"ping"} {"t":"ping"}"#),
    ("null", "null"),
    ("number", "42"),
    ("string", r#""ping""#),
    ("array", r#"[{"t":"ping"}]"#),
    ("tuple form of a frame", r#"["ping",{}]"#),
    ("empty object", "{}"),
    // The tag.
    ("missing t", r#"{"cid":"m-1","text":"hi"}"#),
    ("unknown t", r#"{"t":"sned","cid":"m-1","text":"hi"}"#),
    ("server-only t", r#"{"t":"welcome","v":1,"me":{"id":1},"hb":30}"#),
    ("server-only t (ack)", r#"{"t":"ack","c":1,"seq":1,"ts":1}"#),
    ("t with wrong case", r#"{"t":"Ping"}"#),
    ("t with spaces", r#"{"t":" ping"}"#),
    ("empty t", r#"{"t":""}"#),
    ("t is a number", r#"{"t":1}"#),
    ("t is null", r#"{"t":null}"#),
    ("t is an object", r#"{"t":{"ping":{}}}"#),
    ("externally tagged form", r#"{"ping":{}}"#),
    // Missing required fields.
    ("hello without v", r#"{"t":"hello","session":"s"}"#),
    ("send without cid", r#"{"t":"send","text":"hi"}"#),
    ("send without text", r#"{"t":"send","cid":"m-1"}"#),
    ("rcpt without c", r#"{"t":"rcpt","seq":1,"k":"dlv"}"#),
    ("rcpt without seq", r#"{"t":"rcpt","c":1,"k":"dlv"}"#),
    ("rcpt without k", r#"{"t":"rcpt","c":1,"seq":1}"#),
    ("typing without on", r#"{"t":"typing","c":1}"#),
    ("typing without c", r#"{"t":"typing","on":true}"#),
    ("sync without after", r#"{"t":"sync","c":1}"#),
    ("sync without c", r#"{"t":"sync","after":0}"#),
    ("close without c", r#"{"t":"close","id":1}"#),
    ("csat without score", r#"{"t":"csat","c":1}"#),
    ("csat without c", r#"{"t":"csat","score":5}"#),
    ("state without state", r#"{"t":"state","id":1}"#),
    // Wrong types.
    ("v as string", r#"{"t":"hello","v":"1"}"#),
    ("v negative", r#"{"t":"hello","v":-1}"#),
    ("v fractional", r#"{"t":"hello","v":1.5}"#),
    ("token as number", r#"{"t":"hello","v":1,"token":123}"#),
    ("device as string", r#"{"t":"hello","v":1,"device":"iPhone"}"#),
    ("device os as number", r#"{"t":"hello","v":1,"device":{"os":18}}"#),
    ("id negative", r#"{"t":"ping","id":-1}"#),
    ("id as string", r#"{"t":"ping","id":"1"}"#),
    ("id fractional", r#"{"t":"ping","id":1.0}"#),
    ("id above u64", r#"{"t":"ping","id":18446744073709551616}"#),
    ("cid as number", r#"{"t":"send","cid":1,"text":"hi"}"#),
    ("cid null", r#"{"t":"send","cid":null,"text":"hi"}"#),
    ("text as array", r#"{"t":"send","cid":"m-1","text":["hi"]}"#),
    ("text null", r#"{"t":"send","cid":"m-1","text":null}"#),
    ("c as string", r#"{"t":"send","cid":"m-1","text":"hi","c":"4821337"}"#),
    ("consumer as string", r#"{"t":"send","cid":"m-1","text":"hi","consumer":"20931"}"#),
    ("seq as string", r#"{"t":"rcpt","c":1,"seq":"5","k":"read"}"#),
    ("unknown receipt kind", r#"{"t":"rcpt","c":1,"seq":5,"k":"seen"}"#),
    ("receipt kind long form", r#"{"t":"rcpt","c":1,"seq":5,"k":"delivered"}"#),
    ("on as string", r#"{"t":"typing","c":1,"on":"true"}"#),
    ("on as number", r#"{"t":"typing","c":1,"on":1}"#),
    ("after as string", r#"{"t":"sync","c":1,"after":"0"}"#),
    ("limit negative", r#"{"t":"sync","c":1,"after":0,"limit":-5}"#),
    ("score as string", r#"{"t":"csat","c":1,"score":"5"}"#),
    ("score fractional", r#"{"t":"csat","c":1,"score":4.5}"#),
    ("score negative", r#"{"t":"csat","c":1,"score":-1}"#),
    ("score above u8", r#"{"t":"csat","c":1,"score":256}"#),
    ("comment as number", r#"{"t":"csat","c":1,"score":5,"comment":5}"#),
    ("unknown status", r#"{"t":"history","status":"pending"}"#),
    ("status with wrong case", r#"{"t":"history","status":"Open"}"#),
    ("from as string", r#"{"t":"history","from":"2025-01-01"}"#),
    ("cursor as number", r#"{"t":"history","cursor":4790112}"#),
    ("unknown agent state", r#"{"t":"state","state":"busy"}"#),
    ("agent state in camel case", r#"{"t":"state","state":"backSoon"}"#),
    ("state as number", r#"{"t":"state","state":1}"#),
    // Duplicates are ambiguous: refuse rather than pick one.
    ("duplicate field", r#"{"t":"send","cid":"m-1","cid":"m-2","text":"hi"}"#),
];

#[test]
fn bad_client_frames_are_refused() {
    let mut accepted = Vec::new();
    for (why, json) in BAD_CLIENT_FRAMES {
        if let Ok(frame) = decode::<ClientFrame>(json) {
            accepted.push(format!("{why}: {json} -> {frame:?}"));
        }
    }
    assert!(accepted.is_empty(), "decoded but should not have:\n{}", accepted.join("\n"));
}

#[test]
fn bad_server_frames_are_refused() {
    for (why, json) in [
        ("client-only t", r#"{"t":"send","cid":"m-1","text":"hi"}"#),
        ("ok without id", r#"{"t":"ok"}"#),
        ("err without code", r#"{"t":"err","msg":"no"}"#),
        ("msg with unknown side", r#"{"t":"msg","c":1,"seq":1,"ts":1,"from":"bot","text":"hi"}"#),
        ("welcome without hb", r#"{"t":"welcome","v":1,"me":{"id":1}}"#),
        ("msgs without more", r#"{"t":"msgs","c":1,"msgs":[]}"#),
        ("unknown conversation event", r#"{"t":"conv","c":1,"ev":"snoozed"}"#),
    ] {
        assert!(decode::<ServerFrame>(json).is_err(), "{why}: {json} decoded");
    }
}

/// Deeply nested and oversized inputs fail cleanly: serde_json's recursion limit turns them
/// into an error, not a stack overflow.
#[test]
fn hostile_inputs_fail_without_panicking() {
    let deep = format!(r#"{{"t":"hello","v":1,"device":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    assert!(decode::<ClientFrame>(&deep).is_err());
    let deep_unknown = format!(r#"{{"t":"ping","x":{}{}}}"#, "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert!(decode::<ClientFrame>(&deep_unknown).is_err());
    let huge_number = format!(r#"{{"t":"typing","c":1{},"on":true}}"#, "0".repeat(5_000));
    assert!(decode::<ClientFrame>(&huge_number).is_err());
    let lone_surrogate = r#"{"t":"send","cid":"m-1","text":"\ud800"}"#;
    assert!(decode::<ClientFrame>(lone_surrogate).is_err());
}
