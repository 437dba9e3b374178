//! Identifiers: 128-bit random, hex, with a short prefix that says what they name.

/// `prefix-<32 hex>`: 128 bits from the system's secure generator.
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 16] = crate::hold::crypto::random().unwrap_or_else(|_| {
        // The OS generator failing is fatal for a security gateway.
        panic!("system random generator unavailable")
    });
    format!("{prefix}-{}", hex::encode(bytes))
}
