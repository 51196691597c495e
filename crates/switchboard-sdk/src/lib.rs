//! The Switchboard consumer SDK: what a brand's app links to let its customers message the
//! brand. Offline-first (messages written offline wait in an encrypted local outbox and are
//! sent exactly once, in order, on reconnect), resumable (after any disconnect the client
//! asks for everything after the last `seq` it holds), encrypted at rest (AES-256-GCM under
//! a key the app supplies).
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_sdk::SdkError> {
//! use std::sync::Arc;
//! use switchboard_sdk::{Auth, Client, TokenProvider};
//!
//! struct MyBackend;
//! impl TokenProvider for MyBackend {
//!     fn fetch_token(&self) -> Result<String, String> {
//!         Ok("eyJ…".into()) // ask the brand's backend for a fresh JWT
//!     }
//! }
//!
//! let client = Client::builder("https://chat.example.com", "demo", "demo-app")
//!     .auth(Auth::Jwt(Arc::new(MyBackend)))
//!     .data_dir("/path/to/app/data/switchboard")
//!     .encryption_key([7u8; 32]) // from the keychain / keystore
//!     .build()?;
//! client.connect();
//! client.send_text("Hello! My order is late.")?;
//! # Ok(()) }
//! ```
//!
//! The public API is binding-friendly: owned types, no generics or lifetimes in signatures,
//! errors that say whether retrying can help, and events as a stream or a callback.

mod client;
mod crypto;
mod error;
mod event;
pub mod model;
mod push;
mod store;
mod tls;

pub use client::{
    Auth, AuthorizationCode, Backoff, Client, ClientBuilder, CodeProvider, HistoryPage, HistoryQuery, MAX_TEXT_CHARS,
    TokenProvider,
};
pub use error::SdkError;
pub use event::{ConnectionState, Event, EventListener, EventStream};
pub use model::*;
pub use push::parse_push_payload;
pub use switchboard_protocol::{ConversationStatus, DeviceInfo, PushProvider, Side};
