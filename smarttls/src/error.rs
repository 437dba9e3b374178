//! The error of building a [`crate::SmartTls`] (re-exported as [`crate::Error`]).

/// Errors building a [`crate::SmartTls`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration (resolver, trust anchors, CA file).
    #[error("SmartTLS configuration: {0}")]
    Config(String),
}
