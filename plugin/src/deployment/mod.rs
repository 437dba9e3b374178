//! The Stalwart side of a deployment: render, check, trust. Commands an operator runs while putting the
//! gateway next to a Stalwart.
//!
//! - [`side`]: what the gateway needs from Stalwart, derived from its configuration (the renderers in
//!   `crate::stalwart::render` write it in Stalwart's formats: `stalwart-nta7516 stalwart render`);
//! - [`check`]: `stalwart-nta7516 stalwart check` and `serve`'s monitor — read a live Stalwart's
//!   configuration through its management API and judge it rule by rule (`on_unsafe`);
//! - [`trust`]: `stalwart-nta7516 stalwart trust` — fetch the certificate of Stalwart's `nta-release` /
//!   `nta-notify` listener once, show it, and pin its key in the gateway's configuration.

pub mod check;
pub mod side;
pub mod trust;
