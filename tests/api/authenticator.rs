//! The software WebAuthn authenticator lives in the library (`civitas::testkit`),
//! so that the benchmark and the cluster tests drive the same one.

pub use civitas::testkit::authenticator::*;
