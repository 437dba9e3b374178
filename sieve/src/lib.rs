//! # nta7516-sieve: the `vnd.nta7516` Sieve extension
//!
//! Admins of an NTA 7516 gateway write their 2FA requirements and exemptions in Sieve (RFC 5228), the
//! language they already use in Stalwart. This crate compiles such a policy, checks it **before
//! deployment** and evaluates it **once per recipient**, failing closed.
//!
//! ```sieve
//! require ["envelope", "environment", "vnd.stalwart.expressions", "vnd.nta7516"];
//! if environment :is "vnd.nta7516.tls" "insecure" { eval "nta_portal('recipient TLS insecure')"; }
//! elsif envelope :domain :is "to" "lab-partner.nl" { eval "nta_exempt('contracted lab')"; }
//! elsif eval "nta_has_bsn()" { eval "nta_require_2fa('message contains a BSN')"; }
//! ```
//!
//! - **Facts** ([`Facts`]) go in as lowercase environment variables `vnd.nta7516.*`, usable with the
//!   standard `environment` test (see [`facts`] for the table).
//! - **Decisions** come out through host functions called with `eval`: `nta_require_2fa(reason)`,
//!   `nta_exempt(reason)`, `nta_portal(reason)`, `nta_reject(reason)`, `nta_quarantine(reason)` (received
//!   mail) and `nta_group(name)`. The strictest decision wins (reject > quarantine > portal > 2FA >
//!   exempt) and every reason is kept ([`Verdict`]).
//! - **Attachments by link**: `nta_portal_attachments(reason)` sends every attachment of the message to
//!   this recipient by a secure portal link instead of in the mail ([`Verdict::attachments_by_link`]).
//!   The link asks for the recipient's verification, so the requirement becomes at least 2FA (an
//!   `nta_exempt` does not lift it; `nta_portal` and `nta_reject` stay, being stricter).
//! - **Both directions**: the same script runs for mail sent (`vnd.nta7516.direction` = `outbound`) and,
//!   with the gateway's inbound checks on, for mail received (`inbound`, with the received message's
//!   `dmarc`, `dkim`, `spf`, `arc`, `tls_version` and the sender's `peer` status).
//! - **Content tests** are host functions too: `nta_has_bsn()` (Dutch citizen service number, 11-check,
//!   see [`bsn`]), `nta_has_phone()` and `nta_has_tag(tag)`; the scans run at most once per message
//!   ([`PreparedMessage`]), not once per recipient.
//! - **Checked before deployment** ([`Policy::compile`]): syntax errors, unknown tests (which sieve-rs
//!   only reports when it reaches them at run time), unknown functions, unsupported `require`s and
//!   `redirect` are all refused with a 1-based line and column ([`CompileError`]).
//! - **Limits and fail-closed**: script size, nesting depth and instructions per run ([`Limits`]); a
//!   runtime error or a CPU overrun yields "2FA required" with the error as reason.
//!
//! sieve-rs 0.7.3 cannot add commands or tests, so the verbs are expression functions of
//! `vnd.stalwart.expressions`; `require "vnd.nta7516"` is mandatory and declares the intent.

pub mod bsn;
mod check;
pub mod engine;
pub mod facts;
mod functions;
pub mod limits;
pub mod message;
pub mod phone;

pub use check::CompileError;
pub use engine::{Policy, Reason, Requirement, Verdict};
pub use facts::Facts;
pub use functions::FUNCTIONS;
pub use limits::Limits;
pub use message::PreparedMessage;

/// The capability every policy must `require`.
pub const CAPABILITY: &str = "vnd.nta7516";
