//! One integration-test binary: every module here drives Civitas over real
//! HTTP, started in-process by `helpers`.

mod helpers;

mod bad_input;
mod binary;
mod discovery;
mod ephemeral_contract;
mod keys;
mod layering;
mod registration;
mod scale_out;
mod oidc;
mod rp;
mod store_contract;
