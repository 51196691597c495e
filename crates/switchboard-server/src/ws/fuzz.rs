//! Property-based fuzzing of the frame decoder (`decode`), what every text frame of a socket
//! goes through: arbitrary text, arbitrary JSON and near-valid frames (a real frame with a
//! field removed, retyped or added, or its type changed) never panic; each is either a frame
//! that encodes back to itself, or a refusal with a documented code and a message, naming
//! the request's `id` when the frame had a readable one.

use proptest::prelude::*;
use serde_json::{Map, Value};
use switchboard_protocol::{ClientFrame, ErrorCode, MAX_FRAME_BYTES};

use super::{Work, decode};

/// Valid client frames, one or more of each type (as in the protocol's snapshots).
const SAMPLES: &[&str] = &[
    r#"{"t":"hello","v":1}"#,
    r#"{"t":"hello","v":1,"session":"sbs_vXF7RnB14FEkJFbdAFEckKOa_GKx2nGoBxTA-zmGy00"}"#,
    r#"{"t":"hello","v":1,"brand":"acme","app":"acme-web","anon":"","device":{"os":"Windows 11","device_type":"web"}}"#,
    r#"{"t":"hello","v":1,"brand":"acme","app":"acme-ios","code":{"code":"Splx","redirect_uri":"com.acme.app:/oauth","verifier":"dBjftJeZ4CVP-mJ92K9cYp0ey7tZr7v4Vc8dAwo9Yx5"}}"#,
    r#"{"t":"hello","v":1,"brand":"acme","app":"acme-ios","token":"a.b.c","device":{"os":"iOS 18.1","app_version":"4.2.0","device_type":"phone"},"skill":12}"#,
    r#"{"t":"send","id":1,"cid":"019abf2e","text":"Hi, my order #48213 hasn't arrived yet."}"#,
    r#"{"t":"send","id":17,"cid":"w-0017","text":"Let me check.","c":4821337}"#,
    r#"{"t":"send","id":18,"cid":"w-0018","text":"Following up.","consumer":20931}"#,
    r#"{"t":"rcpt","id":4,"c":4821337,"seq":5,"k":"read"}"#,
    r#"{"t":"typing","c":4821337,"on":true}"#,
    r#"{"t":"sync","id":3,"c":4821337,"after":0,"limit":50}"#,
    r#"{"t":"close","id":21,"c":4821337}"#,
    r#"{"t":"csat","id":9,"c":4821337,"score":4,"comment":"Quick and friendly."}"#,
    r#"{"t":"history","id":5,"from":1732440000000,"to":1764062400000,"status":"closed","cursor":"1761300000000.4790112","limit":20}"#,
    r#"{"t":"state","id":2,"state":"back_soon"}"#,
    r#"{"t":"push","id":7,"provider":"fcm","token":"fcm:APA91bH-example"}"#,
    r#"{"t":"unpush","id":8,"provider":"fcm","token":"fcm:APA91bH-example"}"#,
    r#"{"t":"ping","id":99}"#,
    r#"{"t":"accept","id":22,"c":4821337}"#,
    r#"{"t":"decline","id":23,"c":4821337}"#,
];

/// Field names of the protocol, for mutations that add a field that may mean something.
const FIELDS: &[&str] = &[
    "t", "id", "v", "c", "cid", "text", "seq", "k", "after", "limit", "on", "score", "comment", "state", "brand",
    "app", "token", "anon", "session", "code", "device", "skill", "consumer", "provider", "from", "to", "cursor",
    "status", "lang",
];

/// Any JSON value: numbers at their extremes, strings of any characters (NUL included),
/// nested arrays and objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(FIELDS).prop_map(|field| Value::String(field.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(FIELDS).prop_map(str::to_owned), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// One change to a valid frame.
#[derive(Debug, Clone)]
enum Mutation {
    Remove(prop::sample::Index),
    Retype(prop::sample::Index, Value),
    Add(&'static str, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Remove),
        (any::<prop::sample::Index>(), json_value()).prop_map(|(index, value)| Mutation::Retype(index, value)),
        (prop::sample::select(FIELDS), json_value()).prop_map(|(field, value)| Mutation::Add(field, value)),
    ]
}

fn mutate(frame: &mut Map<String, Value>, mutation: &Mutation) {
    let keys: Vec<String> = frame.keys().cloned().collect();
    match mutation {
        Mutation::Remove(_) | Mutation::Retype(..) if keys.is_empty() => {}
        Mutation::Remove(index) => {
            frame.remove(index.get(&keys));
        }
        Mutation::Retype(index, value) => {
            frame.insert(index.get(&keys).clone(), value.clone());
        }
        Mutation::Add(field, value) => {
            frame.insert((*field).to_owned(), value.clone());
        }
    }
}

/// What every decode must hold; returns the refusal's request id and code, if refused.
fn check(text: &str) -> Option<(Option<u64>, ErrorCode)> {
    match decode(text) {
        Work::Send(send) => {
            let frame =
                ClientFrame::Send { id: send.id, cid: send.cid, text: send.text, c: send.c, consumer: send.consumer };
            assert_round_trip(&frame);
            None
        }
        Work::Frame(frame) => {
            assert_round_trip(&frame);
            None
        }
        Work::Refuse(id, error) => {
            assert!(
                matches!(error.code, ErrorCode::MalformedFrame | ErrorCode::BadRequest | ErrorCode::FrameTooLarge),
                "{text:?} refused with {:?}",
                error.code
            );
            assert!(!error.message.is_empty(), "{text:?} refused without a message");
            Some((id, error.code))
        }
    }
}

/// A decoded frame encodes to a frame that decodes to the same.
fn assert_round_trip(frame: &ClientFrame) {
    let encoded = serde_json::to_string(frame).unwrap();
    let again: ClientFrame = serde_json::from_str(&encoded).unwrap_or_else(|error| panic!("{encoded}: {error}"));
    assert_eq!(&again, frame);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn arbitrary_json_is_a_frame_or_a_clear_refusal(value in json_value()) {
        check(&value.to_string());
    }

    /// A frame with one to three fields removed, retyped or added; a refusal names the
    /// frame's `id` when it still has one that is a request id.
    #[test]
    fn near_valid_frames_decode_or_are_refused_naming_their_request(
        sample in prop::sample::select(SAMPLES),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let Value::Object(mut frame) = serde_json::from_str(sample).unwrap() else { unreachable!() };
        for mutation in &mutations {
            mutate(&mut frame, mutation);
        }
        let text = Value::Object(frame.clone()).to_string();
        if let Some((id, _)) = check(&text) {
            prop_assert_eq!(id, frame.get("id").and_then(Value::as_u64), "{}", text);
        }
    }

    /// Every prefix of a valid frame (what a broken client might send) is handled.
    #[test]
    fn truncated_frames_are_refused(sample in prop::sample::select(SAMPLES), cut in any::<prop::sample::Index>()) {
        let boundaries: Vec<usize> = (0..sample.len()).filter(|at| sample.is_char_boundary(*at)).collect();
        let text = &sample[..*cut.get(&boundaries)];
        let refused = check(text);
        prop_assert!(refused.is_some(), "{:?} decoded", text);
    }
}

#[test]
fn every_sample_decodes() {
    for sample in SAMPLES {
        assert!(check(sample).is_none(), "{sample} was refused");
    }
}

#[test]
fn a_frame_over_the_limit_is_refused_before_it_is_decoded_naming_its_request() {
    let text = format!(r#"{{"t":"send","id":7,"cid":"big","text":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
    assert_eq!(check(&text), Some((Some(7), ErrorCode::FrameTooLarge)));
}
