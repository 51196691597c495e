//! Wire types of Switchboard: the JSON frames exchanged over the consumer and agent
//! WebSocket endpoints, and the one table of error codes shared by WebSocket and REST.
//!
//! This crate is pure data: `serde` only, no IO. The server decodes a text frame into a
//! [`ClientFrame`] once, at its edge; everything behind that edge works with typed values.
//! `docs/protocol.md` is the prose description of these types; the snapshot tests in
//! `tests/it` keep a sample of every frame so that a change shows up as a reviewed diff.
//!
//! Field names are short on purpose: SPEC holds us to ≤ 4 KB down and ≤ 2 KB up for a
//! 12-message conversation, handshake included.
//!
//! `cards` is the one piece of text handling both ends share: finding and masking card
//! numbers (the server's card rule, the SDK's client-side masking).

pub mod cards;
mod error;
mod frames;

pub use error::{CloseCode, ErrorCode};
pub use frames::*;

/// The protocol version this build speaks. A `hello` with another version is refused with
/// [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest text frame the server reads and answers with a typed error. Larger frames are
/// answered with [`ErrorCode::FrameTooLarge`]; frames above [`MAX_WIRE_FRAME_BYTES`] close
/// the socket (WebSocket close code 1009).
///
/// It leaves room for any legal frame however it is written: the longest message (2,000
/// characters) with every character escaped as a surrogate pair (`\ud83d\ude00`, 12 bytes
/// each: 24,000 bytes), a `cid` of [`MAX_CLIENT_ID_BYTES`] escaped byte by byte (384), and
/// the other fields.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// Hard limit enforced by the WebSocket layer itself.
pub const MAX_WIRE_FRAME_BYTES: usize = 1024 * 1024;

/// Longest client idempotency id (`cid`), in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;
