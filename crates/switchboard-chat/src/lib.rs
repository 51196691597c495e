//! `switchboard-chat`: a sample terminal consumer app on the Switchboard SDK.
//!
//! The app is split for testability: [`app::App`] is the screen's state, changed only by
//! SDK events, key presses and ticks, and answering with [`app::Action`]s; [`ui::render`]
//! draws it; [`run`] is the thin loop that wires the terminal, the SDK and a clock together.

pub mod app;
pub mod cli;
pub mod ui;

mod run;

pub use run::run;
