//! One integration-test binary: every module here drives Civitas over real
//! HTTP, started in-process by `helpers`.

mod helpers;

mod admin;
mod admin_data;
mod assurance;
mod audit;
mod authenticator;
mod bad_input;
mod binary;
mod browser_e2e;
mod browser_session;
mod dashboard;
mod discovery;
mod eid;
mod ephemeral_contract;
mod identifiers;
mod keys;
mod layering;
mod logout;
mod logs;
mod machine;
mod mandate_guarantees;
mod mandates;
mod metrics;
mod oidc;
mod passkeys;
mod registration;
mod representation;
mod rp;
mod scale_out;
mod store_contract;
