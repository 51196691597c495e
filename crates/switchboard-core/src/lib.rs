//! The Switchboard domain, sans-IO: message limits and the routing engine. No sockets, no
//! SQL, no clock: time is a parameter (`now`, in milliseconds), so every rule here is tested
//! with plain function calls.
//!
//! The server feeds events in (a conversation opened, an agent went online, a conversation
//! closed) and carries out the decisions that come back (store the assignment, tell the
//! agent and the consumer).

pub mod limits;
pub mod routing;

pub use switchboard_protocol::{AgentState, Millis};
