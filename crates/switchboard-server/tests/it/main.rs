//! End-to-end tests of the server over real sockets: a server bound to 127.0.0.1:0 on a
//! fresh SQLite file, real WebSocket clients (tokio-tungstenite) and a real HTTP client.

mod harness;

mod abuse;
mod admin;
mod auth;
mod authz;
mod automation;
mod conversation;
mod credentials;
mod edge;
mod fake_providers;
mod floor;
mod governance;
mod identity;
mod masking;
mod presence;
mod push;
mod races;
mod robustness;
mod tenancy;
mod text_input;
mod tls;
mod tokens;
