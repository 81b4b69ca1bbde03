//! One integration-test binary: every module here drives Civitas over real
//! HTTP, started in-process by `helpers`.

mod helpers;

mod admin;
mod admin_data;
mod assurance;
mod assurance_levels;
mod audit;
mod authenticator;
mod bad_input;
mod binary;
mod browser_e2e;
mod browser_eid;
mod browser_mandates;
mod browser_session;
mod dashboard;
mod discovery;
mod eid;
mod eid_flow;
mod ephemeral_contract;
mod identifiers;
mod keys;
mod late_redemption;
mod layering;
mod logout;
mod logs;
mod machine;
mod mandate_guarantees;
mod mandates;
mod metrics;
mod oidc;
mod outbound;
mod outbound_fetcher;
mod passkey_races;
mod passkeys;
mod registration;
mod representation;
mod representation_binding;
mod rp;
mod scale_out;
mod sectors;
mod session_ending;
mod store_contract;
mod verified_claims;
