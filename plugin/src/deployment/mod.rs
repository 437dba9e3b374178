//! The Stalwart side of a deployment: render, check, trust. Commands an operator runs while putting the
//! gateway next to a Stalwart; nothing here runs inside `serve`'s request paths.
//!
//! - [`trust`]: `stalwart-nta7516 stalwart trust` — fetch the certificate of Stalwart's `nta-release` /
//!   `nta-notify` listener once, show it, and pin its key in the gateway's configuration.

pub mod trust;
