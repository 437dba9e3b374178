//! Bearer-token authentication shared by the hook and the admin API. A leaf: it calls only
//! [`crate::secrets::equal`], so any HTTP surface may use it without importing the router.

use axum::http::{header, HeaderMap};

/// `Authorization: Bearer <token>` compared in constant time.
pub fn bearer_ok(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|presented| {
            crate::secrets::equal(presented.trim().as_bytes(), token.as_bytes())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        assert!(bearer_ok(&headers("Bearer s3cret"), "s3cret"));
        assert!(!bearer_ok(&headers("Bearer s3cre"), "s3cret"));
        assert!(!bearer_ok(&headers("Bearer s3cretX"), "s3cret"));
        assert!(!bearer_ok(&headers("Basic s3cret"), "s3cret"));
        assert!(!bearer_ok(&HeaderMap::new(), "s3cret"));
    }
}
