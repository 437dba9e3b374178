//! The audit log: append-only, hash-chained records of every decision, hold, verification, release,
//! portal access, expiry, delivery event and admin change (NTA 7516's logging clause).
//!
//! # Recording an event
//!
//! Build an [`Event`] and append it — inside the transaction that makes the change, so the change and its
//! record commit together or not at all:
//!
//! ```no_run
//! # use stalwart_nta7516::{audit::Event, store::{self, Store}, time};
//! # async fn example(store: &Store) -> Result<(), Box<dyn std::error::Error>> {
//! let mut tx = store.transaction().await?;
//! // … the change itself, on `tx` …
//! let event = Event::CodeSucceeded {
//!     message_ref: Some("h-0123456789abcdef0123456789abcdef".into()),
//!     recipient: "bob@example.nl".into(),
//!     challenge_id: "c-0123456789abcdef0123456789abcdef".into(),
//!     verified_until: time::now() + 90 * 86_400,
//! };
//! store::audit::append(&mut tx, time::now(), &[event]).await?;
//! tx.commit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! or, when nothing else changes, with its own transaction: `store.append_audit(&[event]).await?`.
//! Phone numbers go in as [`MaskedPhone`] (masked on construction); message content never goes in,
//! only its SHA-256. A [`Event::Released`] with a queue id links that Stalwart queue id to the message, so
//! the webhook's delivery events of the re-submission land in the message's report.
//!
//! # Integrity
//!
//! Each record carries the hash of the previous one ([`record`] defines the encoding); a single-row
//! chain head, updated in the same transaction, serialises appends across connections and gateway
//! instances. [`verify`] finds edited, inserted and deleted records and names them.
//!
//! # Layout
//!
//! [`event`] (what is recorded, and each event's columns), [`record`] (the stored record and its
//! hash), [`verify`], [`report`] (proof of delivery), [`export`] (JSON lines, CSV) and [`delivery`]
//! (which webhook events become records). The audit log builds and checks records; it may use the
//! policy's decision types, Stalwart's webhook wire types and the time helpers. The store writes and
//! reads them; nothing here touches the database.

pub mod delivery;
pub mod event;
pub mod evidence;
pub mod export;
pub mod record;
pub mod report;
pub mod standing;
pub mod verify;

pub use event::{
    Entry, Event, Kind, MaskedPhone, Notice, PhoneOutcome, PhoneSource, ReleaseTarget, SmsFailure,
    WithdrawnBy,
};
pub use record::{Record, GENESIS};
pub use report::Report;
pub use verify::{Finding, Verification, Verifier};
