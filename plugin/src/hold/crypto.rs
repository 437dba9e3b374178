//! Envelope encryption of held content: AES-256-GCM with a random 256-bit data key per message; the data
//! key is itself sealed with AES-256-GCM under the master key. The message id is the associated data of
//! both, so a sealed body cannot be swapped between rows. Calls `ring`; the sealed form it produces is
//! `store::sealed::Sealed`.

use std::path::Path;

use ring::{
    aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN},
    digest,
    rand::{SecureRandom, SystemRandom},
};

pub use crate::store::sealed::Sealed;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key must be 64 hex characters (32 bytes)")]
    Format,
    #[error("cannot read master key file {0}: {1}")]
    Read(String, std::io::Error),
    #[error("random generator failed")]
    Random,
    #[error("decryption failed: wrong master key or tampered data")]
    Open,
}

/// The key that wraps every per-message key. Its id (a hash prefix) is stored with each message so a
/// rotated key is recognised.
pub struct MasterKey {
    key: LessSafeKey,
    id: String,
}

impl MasterKey {
    pub fn from_hex(hex_key: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| KeyError::Format)?;
        if bytes.len() != 32 {
            return Err(KeyError::Format);
        }
        let id = hex::encode(&digest::digest(&digest::SHA256, &bytes).as_ref()[..8]);
        let key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| KeyError::Format)?);
        Ok(MasterKey { key, id })
    }

    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError::Read(path.display().to_string(), e))?;
        Self::from_hex(&text)
    }

    /// A new random key, hex-encoded (for first start and `keygen`).
    pub fn generate_hex() -> Result<String, KeyError> {
        Ok(hex::encode(random::<32>()?))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn seal(&self, message_id: &str, content: &[u8]) -> Result<Sealed, KeyError> {
        let data_key_bytes = random::<32>()?;
        let data_key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &data_key_bytes).map_err(|_| KeyError::Format)?,
        );

        let nonce = random::<NONCE_LEN>()?;
        let mut ciphertext = content.to_vec();
        data_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(message_id),
                &mut ciphertext,
            )
            .map_err(|_| KeyError::Random)?;

        let wrap_nonce = random::<NONCE_LEN>()?;
        let mut wrapped = data_key_bytes.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(message_id),
                &mut wrapped,
            )
            .map_err(|_| KeyError::Random)?;
        let mut wrapped_key = wrap_nonce.to_vec();
        wrapped_key.extend_from_slice(&wrapped);

        Ok(Sealed {
            key_id: self.id.clone(),
            wrapped_key,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// A 256-bit data key sealed under the master key with `aad` (nonce ‖ ciphertext ‖ tag), as the
    /// per-message keys are; used for the per-blob keys of large attachments.
    pub fn wrap(&self, aad: &str, data_key: &[u8; 32]) -> Result<Vec<u8>, KeyError> {
        let wrap_nonce = random::<NONCE_LEN>()?;
        let mut wrapped = data_key.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(aad),
                &mut wrapped,
            )
            .map_err(|_| KeyError::Random)?;
        let mut out = wrap_nonce.to_vec();
        out.extend_from_slice(&wrapped);
        Ok(out)
    }

    /// The data key [`MasterKey::wrap`] sealed; `Open` for another master key, `aad` or tampering.
    pub fn unwrap(&self, aad: &str, wrapped: &[u8]) -> Result<[u8; 32], KeyError> {
        if wrapped.len() < NONCE_LEN {
            return Err(KeyError::Open);
        }
        let (wrap_nonce, wrapped) = wrapped.split_at(NONCE_LEN);
        let mut wrapped = wrapped.to_vec();
        let key = self
            .key
            .open_in_place(nonce(wrap_nonce)?, Aad::from(aad), &mut wrapped)
            .map_err(|_| KeyError::Open)?;
        key.try_into().map_err(|_| KeyError::Open)
    }

    pub fn open(&self, message_id: &str, sealed: &Sealed) -> Result<Vec<u8>, KeyError> {
        if sealed.wrapped_key.len() < NONCE_LEN || sealed.nonce.len() != NONCE_LEN {
            return Err(KeyError::Open);
        }
        let (wrap_nonce, wrapped) = sealed.wrapped_key.split_at(NONCE_LEN);
        let mut wrapped = wrapped.to_vec();
        let data_key_bytes = self
            .key
            .open_in_place(nonce(wrap_nonce)?, Aad::from(message_id), &mut wrapped)
            .map_err(|_| KeyError::Open)?;
        let data_key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, data_key_bytes).map_err(|_| KeyError::Open)?,
        );
        let mut content = sealed.ciphertext.clone();
        let plain = data_key
            .open_in_place(nonce(&sealed.nonce)?, Aad::from(message_id), &mut content)
            .map_err(|_| KeyError::Open)?;
        Ok(plain.to_vec())
    }
}

fn nonce(bytes: &[u8]) -> Result<Nonce, KeyError> {
    Nonce::try_assume_unique_for_key(bytes).map_err(|_| KeyError::Open)
}

/// `N` bytes from the system's secure random generator.
pub fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| KeyError::Random)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_hex(&MasterKey::generate_hex().unwrap()).unwrap()
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let k = key();
        let sealed = k
            .seal("h-1", b"Subject: x\r\n\r\nBSN 111222333\r\n")
            .unwrap();
        assert!(!sealed.ciphertext.windows(9).any(|w| w == b"111222333"));
        assert_eq!(
            k.open("h-1", &sealed).unwrap(),
            b"Subject: x\r\n\r\nBSN 111222333\r\n"
        );
        // Bound to its message id.
        assert!(matches!(k.open("h-2", &sealed), Err(KeyError::Open)));
        // Any flipped bit is detected.
        let mut bad = sealed.clone();
        bad.ciphertext[3] ^= 1;
        assert!(matches!(k.open("h-1", &bad), Err(KeyError::Open)));
        // Another master key cannot open it.
        assert!(matches!(key().open("h-1", &sealed), Err(KeyError::Open)));
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!(matches!(MasterKey::from_hex("abcd"), Err(KeyError::Format)));
        assert!(matches!(
            MasterKey::from_hex(&"zz".repeat(32)),
            Err(KeyError::Format)
        ));
    }
}
