//! The gateway's integration tests: one test binary (one link, one harness in [`util`]), a module per
//! area. Each test starts its own gateway on loopback over SQLite or PostgreSQL (`both_backends!`), with
//! real SMTP, SNS (moto) and Chromium peers where the area needs them. `sns_credentials` is a binary of
//! its own because it changes the process environment (AWS variables), which would leak into these tests.

#[macro_use]
mod util;

mod admin;
mod admin_schema;
mod audit;
mod bulk;
mod cli;
mod cluster;
mod contract;
mod crash;
mod deploy;
mod doctor;
mod fuzz_seeds;
mod hook;
mod inbound;
mod large_attachment;
mod outage;
mod policy_cli;
mod portal_a11y;
mod portal_attachments;
mod portal_brand;
mod portal_browser;
mod portal_reply;
mod recipient_abuse;
mod recipient_flow;
mod sender_phone;
mod sieve_policy;
mod smarttls;
mod stalwart_check;
mod stalwart_trust;
mod tidy;
mod webhook;
mod withdraw;
