//! The SDK against a real server (in-process, real sockets, SQLite in a temp dir): the
//! agent side is a raw WebSocket client.

mod chaos;
mod failover;
mod harness;
mod newer_server;
mod offline;
mod online;
mod push;
mod tls;
