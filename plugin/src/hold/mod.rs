//! Holding messages: the encrypted copy of a message kept until its recipients pass 2FA.
//!
//! The original bytes are rebuilt from the hook body ([`crate::stalwart::hook::Message::rebuild`]);
//! [`crypto`] seals them with a fresh per-message key that a master key wraps; [`release`] submits
//! verified holds to Stalwart; [`reply`] submits the recipients' portal replies; [`retention`] deletes
//! expired content. The hold states themselves are `store::holds::HoldState`. May call `store`, `smtp`, `policy` (TLS status), `audit` and the `Gateway`.

pub mod blob;
pub mod crypto;
pub mod cuts;
pub mod large;
pub mod retention;
pub mod stream_split;

pub use crypto::{MasterKey, Sealed};
pub mod release;
pub mod reply;
