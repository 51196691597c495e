//! The one integration-test binary of `switchboard-protocol` (one binary per crate: every extra
//! test binary is another link step on 2 cores).
//!
//! - `frames`: insta snapshots of a sample of every client and server frame, as the exact
//!   compact JSON sent on the wire, plus round trips.
//! - `compat`: hand-written v1 payloads, as deployed clients send them, still decode.
//! - `negative`: malformed payloads are refused with an error, never a panic.
//! - `docs`: `docs/errors.md` and `docs/protocol.md` agree with the Rust types.
//! - `size`: the JSON payloads of a 12-message conversation stay within a byte budget.
//!
//! Shared sample values live in `samples`; small helpers live here.

mod compat;
mod docs;
mod frames;
mod negative;
mod samples;
mod size;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The exact text a frame is sent as: compact JSON, no whitespace.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("wire types always serialize")
}

/// Decodes a frame the way the server's edge does.
pub fn decode<T: DeserializeOwned>(json: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(json)
}

/// Every value of the `t` tag that `T` accepts, read from serde's own "unknown variant" error
/// (`expected one of `a`, `b`, …`). Tests use it to prove the samples cover every variant,
/// without a hand-kept list that could go stale.
pub fn accepted_tags<T: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
    let error = decode::<T>(r#"{"t":"~no such frame~"}"#).expect_err("a made-up tag must not decode");
    let message = error.to_string();
    let (_, list) = message
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("serde's unknown-variant message changed shape: {message}"));
    let list = list.split(" at line ").next().unwrap_or(list);
    let tags: Vec<String> = list.split(", ").map(|tag| tag.trim().trim_matches('`').to_owned()).collect();
    assert!(tags.len() > 3, "could not read the variant list from {message:?}");
    tags
}

/// The `t` tag of an encoded frame.
pub fn tag_of(json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    value["t"].as_str().expect("every frame has a string `t`").to_owned()
}
