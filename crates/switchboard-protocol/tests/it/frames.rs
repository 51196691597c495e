//! Snapshots of the exact compact JSON of every frame. A change to a wire type shows up here
//! as a `.snap` diff to review (`cargo insta review`, or `INSTA_UPDATE=always` then `git diff`).
//! Each sample must also decode back to itself: what the server writes, a client can read.

use std::collections::BTreeSet;

use switchboard_protocol::{ClientFrame, ServerFrame};

use crate::samples::{client_frames, server_frames};
use crate::{accepted_tags, decode, tag_of, to_json};

#[test]
fn client_frame_snapshots() {
    for (name, frame) in client_frames() {
        let json = to_json(&frame);
        insta::assert_snapshot!(format!("client_{name}"), json);
        assert_eq!(decode::<ClientFrame>(&json).unwrap(), frame, "round trip of client_{name}");
    }
}

#[test]
fn server_frame_snapshots() {
    for (name, frame) in server_frames() {
        let json = to_json(&frame);
        assert_eq!(json, frame.to_json(), "ServerFrame::to_json of server_{name}");
        insta::assert_snapshot!(format!("server_{name}"), json);
        assert_eq!(decode::<ServerFrame>(&json).unwrap(), frame, "round trip of server_{name}");
    }
}

#[test]
fn samples_cover_every_client_frame() {
    let sampled: BTreeSet<String> = client_frames().iter().map(|(_, f)| tag_of(&to_json(f))).collect();
    let accepted: BTreeSet<String> = accepted_tags::<ClientFrame>().into_iter().collect();
    assert_eq!(sampled, accepted, "add a sample to samples::client_frames for each new frame");
}

#[test]
fn samples_cover_every_server_frame() {
    let sampled: BTreeSet<String> = server_frames().iter().map(|(_, f)| tag_of(&to_json(f))).collect();
    let accepted: BTreeSet<String> = accepted_tags::<ServerFrame>().into_iter().collect();
    assert_eq!(sampled, accepted, "add a sample to samples::server_frames for each new frame");
}

#[test]
fn sample_names_are_unique() {
    let client: BTreeSet<_> = client_frames().into_iter().map(|(name, _)| name).collect();
    assert_eq!(client.len(), client_frames().len());
    let server: BTreeSet<_> = server_frames().into_iter().map(|(name, _)| name).collect();
    assert_eq!(server.len(), server_frames().len());
}

#[test]
fn request_id_is_the_id_field() {
    for (name, frame) in client_frames() {
        let value: serde_json::Value = serde_json::from_str(&to_json(&frame)).unwrap();
        assert_eq!(frame.request_id(), value.get("id").and_then(serde_json::Value::as_u64), "{name}");
    }
}
