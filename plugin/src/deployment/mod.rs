//! The Stalwart side of a deployment: render, check, trust.

pub mod check;
