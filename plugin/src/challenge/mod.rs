//! Recipient 2FA: link tokens, SMS codes ([`code`]: sending one, checking one), phone numbers
//! ([`phone`]), the SMS senders ([`sms`]), the notification mails ([`notify`], in the sender domain's
//! brand: [`brand_mail`]) and the background
//! [`worker`] that sends them and releases verified holds. All state is in the database, reached
//! through `store` only; may call `store`, `hold`, `smtp`, `audit`, `config`, `secrets` and the
//! `Gateway`; never `portal`, `admin` or `http`.
//!
//! Secrets handling (DESIGN §6): link tokens are HMAC-SHA256 values (256 bits) derived from the challenge
//! id under a key derived from the master key, so they can be re-created for a resent mail and never need
//! to be stored; the database keeps only their SHA-256 (looked up by hash, compared in constant time).
//! SMS codes are 6 random digits stored as an HMAC bound to the challenge id.

pub mod brand_mail;
pub mod code;
pub mod notify;
pub mod phone;
pub mod sender_notices;
pub mod sms;
pub mod worker;

use base64::Engine;
use ring::{digest, hmac};

pub use crate::store::{Challenge, ChallengeState, Purpose};
use crate::store::{Store, StoreError};
pub use code::{check_code, send_code, CodeCheck, CodeSent};

/// The HMAC label of a purpose's link tokens.
fn label(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Recipient => "recipient",
        Purpose::SenderPhone => "sender-phone",
    }
}

/// Keys derived from the master key (HMAC-SHA256 with distinct labels).
pub struct Keys {
    link: hmac::Key,
    code: hmac::Key,
    csrf: hmac::Key,
}

impl Keys {
    pub fn derive(master_hex: &str) -> Keys {
        let root = hmac::Key::new(hmac::HMAC_SHA256, master_hex.trim().as_bytes());
        let sub = |label: &str| {
            hmac::Key::new(
                hmac::HMAC_SHA256,
                hmac::sign(&root, format!("nta7516 {label} key").as_bytes()).as_ref(),
            )
        };
        Keys {
            link: sub("link-token"),
            code: sub("sms-code"),
            csrf: sub("csrf"),
        }
    }

    /// The link token of a challenge for a purpose: 256 bits, URL-safe base64.
    pub fn link_token(&self, purpose: Purpose, challenge_id: &str) -> String {
        self.sign_link(label(purpose), challenge_id)
    }

    /// The sender's withdraw link token of a held message (a purpose of its own, about a message
    /// rather than a challenge): 256 bits, URL-safe base64.
    pub fn withdraw_token(&self, message_id: &str) -> String {
        self.sign_link("sender-withdraw", message_id)
    }

    fn sign_link(&self, label: &str, id: &str) -> String {
        let tag = hmac::sign(&self.link, format!("{label}\0{id}").as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// The stored form of an SMS code, bound to its challenge.
    pub fn code_hash(&self, challenge_id: &str, code: &str) -> String {
        hex::encode(hmac::sign(&self.code, format!("{challenge_id}\0{code}").as_bytes()).as_ref())
    }

    /// The CSRF value for a form, bound to the browser's CSRF cookie and the page's link token hash.
    pub fn csrf(&self, cookie: &str, scope: &str) -> String {
        hex::encode(hmac::sign(&self.csrf, format!("{cookie}\0{scope}").as_bytes()).as_ref())
    }
}

/// SHA-256 hex of a presented token: the only form in which tokens are stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The challenge a presented link token opens, or `None`. Looked up by the token's SHA-256 (so the
/// database never compares secrets) and re-checked in constant time.
pub async fn by_token(
    store: &Store,
    purpose: Purpose,
    token: &str,
) -> Result<Option<Challenge>, StoreError> {
    if token.len() > 64 {
        return Ok(None);
    }
    let hash = token_hash(token);
    let Some((c, stored)) = store.challenge_by_token(purpose, &hash).await? else {
        return Ok(None);
    };
    Ok(crate::secrets::equal(stored.as_bytes(), hash.as_bytes()).then_some(c))
}

/// The held message a presented withdraw link token opens, or `None` (looked up like [`by_token`]).
pub async fn by_withdraw_token(
    store: &Store,
    token: &str,
) -> Result<Option<crate::store::withdraw::WithdrawLink>, StoreError> {
    if token.len() > 64 {
        return Ok(None);
    }
    let hash = token_hash(token);
    let Some(link) = store.withdraw_link(&hash).await? else {
        return Ok(None);
    };
    Ok(crate::secrets::equal(link.token_hash.as_bytes(), hash.as_bytes()).then_some(link))
}

/// The recipient a portal session cookie belongs to, while it is valid.
pub async fn session_recipient(
    store: &Store,
    cookie: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    if cookie.len() > 64 {
        return Ok(None);
    }
    store.session_recipient(&token_hash(cookie), now).await
}

/// Six uniformly random digits.
pub fn new_code() -> String {
    loop {
        let b: [u8; 4] = crate::hold::crypto::random().expect("system random generator");
        let n = u32::from_le_bytes(b);
        // Rejection sampling: no modulo bias.
        if n < u32::MAX - (u32::MAX % 1_000_000) {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// A random 256-bit token for sessions and CSRF cookies.
pub fn random_token() -> String {
    crate::secrets::new_token().expect("system random generator")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_per_purpose_and_long() {
        let k = Keys::derive(&"ab".repeat(32));
        let a = k.link_token(Purpose::Recipient, "c-1");
        assert_eq!(a, k.link_token(Purpose::Recipient, "c-1"));
        assert_ne!(a, k.link_token(Purpose::SenderPhone, "c-1"));
        assert_ne!(a, k.link_token(Purpose::Recipient, "c-2"));
        assert_ne!(a, k.withdraw_token("c-1"));
        assert_eq!(k.withdraw_token("h-1").len(), 43);
        assert_eq!(a.len(), 43); // 256 bits
        let other = Keys::derive(&"cd".repeat(32));
        assert_ne!(a, other.link_token(Purpose::Recipient, "c-1"));
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
