//! The Switchboard domain, sans-IO. No sockets, no SQL, no clock: time is a parameter
//! (`now`, in milliseconds), so every rule here is tested with plain function calls.
//!
//! # Layout
//! - `ids`: the identifiers the domain speaks in.
//! - `limits`: per-channel message length limits.
//! - `routing`: the router (queues per skill, least-loaded assignment, transfers).
//! - `wait`: the estimated wait and when a new one is worth telling.
//! - `hours`: business hours (weekly shifts and dated exceptions in an IANA time zone),
//!   validated into a `Schedule` that answers "open at t?", "next change after t?" and "how much
//!   of [from, to) is open?".
//! - `conversation`: where an open conversation stands.
//! - `append`: the rules of an append (which conversation, who may write, idempotency), as a
//!   plan the store's writer drives one statement at a time.
//! - `automation`: automatic messages (triggers, templates checked at save, rendering with
//!   humanized waits, the choice by skill and language).
//! - `masking`: masking rules (the built-in card rule, custom patterns), checked and compiled
//!   into a `Masker` that masks a text for storage, agents or the consumer's other devices.
//! - `policy`: who may act on or read a conversation, and when the survey is offered.
//! - `report`: the arithmetic of the dashboard and history reports (ranges, hour buckets,
//!   percentiles, CSAT, staffing, totals), and a conversation's transfers from its event log.
//! - `retention`: how long a brand keeps transcripts, and which conversations are past it.
//! - `desk`: one brand's desk (router + open conversations + agent presence + timers),
//!   driven by `Desk::handle(input, now) -> effects`; the server's engine carries the
//!   effects out (persist, then emit).

pub mod append;
pub mod automation;
pub mod conversation;
pub mod desk;
pub mod hours;
pub mod ids;
pub mod limits;
pub mod masking;
pub mod policy;
pub mod report;
pub mod retention;
pub mod routing;
pub mod wait;

pub use switchboard_protocol::{AgentState, Millis};

#[cfg(test)]
mod tidy {
    //! The crate stays sans-IO: no IO crate among its dependencies, no clock read in its code.

    use std::path::Path;

    #[test]
    fn core_depends_on_no_io_crate_and_reads_no_clock() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
        let allowed = [
            "serde",
            "thiserror",
            "switchboard-protocol",
            // Time-zone arithmetic with a bundled tz database: computation, not IO.
            "jiff",
            // Masking patterns: a linear-time regex engine, computation, not IO.
            "regex",
        ];
        for line in dependencies.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
            let name = line.split(['.', '=', ' ']).next().unwrap();
            assert!(allowed.contains(&name), "switchboard-core must not depend on {name:?} (sans-IO)");
        }
        for entry in std::fs::read_dir(root.join("src")).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for forbidden in ["SystemTime", "Instant::now", "tokio::", "sqlx", "std::net", "std::fs::write"] {
                let code: String = text.split("mod tidy").next().unwrap().to_owned();
                assert!(
                    !code.contains(forbidden),
                    "{} uses {forbidden}: core does no IO and reads no clock",
                    path.display()
                );
            }
        }
    }
}
