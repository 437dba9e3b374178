//! The limits a policy runs under: checked at compile time (script size, nesting, string size) by
//! [`crate::check`] and per run (instructions) by [`crate::engine`]. A leaf module, so that the
//! checker and the engine both depend on it and not on each other.

/// Limits on a policy: checked at compile time (size, nesting) and per run (instructions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of script source.
    pub max_script_size: usize,
    /// Nested blocks (`if { if { … } }`).
    pub max_nested_blocks: usize,
    /// Nested tests (`allof(anyof(…))`).
    pub max_nested_tests: usize,
    /// Bytes of one string literal.
    pub max_string_size: usize,
    /// Instructions executed per recipient; an overrun fails closed.
    pub cpu_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_script_size: 64 * 1024,
            max_nested_blocks: 10,
            max_nested_tests: 10,
            max_string_size: 4096,
            cpu_limit: 5000,
        }
    }
}
