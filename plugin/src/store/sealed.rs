//! The sealed form of a held message, as `held_messages` keeps it. A leaf (it imports nothing): the
//! store keeps these bytes, [`crate::hold::crypto`] makes and opens them.

/// Sealed content as stored.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub key_id: String,
    /// nonce ‖ AES-GCM(master, data key) ‖ tag
    pub wrapped_key: Vec<u8>,
    pub nonce: Vec<u8>,
    /// AES-GCM(data key, content) ‖ tag
    pub ciphertext: Vec<u8>,
}
