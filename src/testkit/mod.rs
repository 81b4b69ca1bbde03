//! Client-side tools for the tests and the benchmark, never used by the
//! server: a software WebAuthn authenticator, and a scripted citizen and
//! relying party that walk the authorization-code flow over HTTP against any
//! Civitas base URL (one instance, or several behind a load balancer).
//!
//! They live in the library, not under `tests/`, so that the integration
//! tests, the cluster tests and `civitas-bench` drive Civitas the same way.
//! A malformed answer from the server is a test failure, so the
//! authenticator panics on one; the citizen's flow returns [`FlowError`] so
//! that a load generator can count failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod authenticator;
pub mod browser;
pub mod citizen;
pub mod nginx;

pub use citizen::{Citizen, FlowError, Rp};
