//! Tests of the sample app: its state machine (`app`) and its screens (`screens`), in one
//! test binary.

mod app;
mod screens;
