//! The Stalwart side of a deployment: what the gateway needs from Stalwart ([`side`]), rendered into
//! Stalwart's formats by `crate::stalwart::render`.

pub mod side;
