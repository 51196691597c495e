//! Any input as a server frame (what the SDK and the sample app decode from the server):
//! never a panic; a frame that decodes encodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::ServerFrame;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = serde_json::from_str::<ServerFrame>(text) {
        let encoded = serde_json::to_string(&frame).expect("a decoded frame encodes");
        let again: ServerFrame = serde_json::from_str(&encoded).expect("an encoded frame decodes");
        assert_eq!(again, frame, "{text} -> {encoded}");
    }
});
