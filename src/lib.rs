//! Civitas: an OpenID Connect identity provider for e-government.
//!
//! The crate is a library with a thin binary (`src/main.rs`). Domain modules
//! (`clients`, `keys`, `oidc`, `store`, `ephemeral`, ...) hold the logic and know
//! nothing of HTTP; [`web`] is the only HTTP adapter. [`startup`] wires them
//! together. See `docs/ARCHITECTURE.md` for the map and its invariants.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::dbg_macro
)]
#![warn(missing_debug_implementations, unreachable_pub, clippy::print_stdout)]

pub mod accounts;
pub mod app;
pub mod assurance;
pub mod audit;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod eid;
pub mod ephemeral;
pub mod keys;
pub mod logging;
pub mod mail;
pub mod mandates;
pub mod metrics;
pub mod oidc;
pub mod outbound;
pub mod passkeys;
pub mod secrets;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod testkit;
pub mod web;
