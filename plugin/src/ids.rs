//! Identifiers: 128 bits, hex, with a short prefix that says what they name.
//!
//! Two kinds, the same shape (`prefix-<32 hex>`, which `admin::validate::id` checks):
//! - [`new_id`]: 128 random bits, for names that must not say when they were made.
//! - [`ordered_id`]: the time in milliseconds, then 80 random bits, for the rows written on every
//!   message (messages, holds, challenges, outbox rows). Their index entries then land next to each
//!   other instead of on a random page of a large b-tree: a commit writes a few pages, not one per
//!   index per row (SQLite's WAL writes whole pages). 80 random bits keep them unguessable and
//!   distinct; an ordered id is never a secret on its own (links carry an HMAC token).

/// `prefix-<32 hex>`: 128 bits from the system's secure generator.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", hex::encode(random::<16>()))
}

/// `prefix-<12 hex: unix milliseconds><20 hex: 80 random bits>`: sorts by creation time (to the
/// millisecond; ids of the same millisecond in random order).
pub fn ordered_id(prefix: &str) -> String {
    ordered_at(prefix, crate::time::now_millis())
}

fn ordered_at(prefix: &str, millis: u64) -> String {
    let time = &millis.to_be_bytes()[2..];
    format!(
        "{prefix}-{}{}",
        hex::encode(time),
        hex::encode(random::<10>())
    )
}

fn random<const N: usize>() -> [u8; N] {
    crate::hold::crypto::random().unwrap_or_else(|_| {
        // The OS generator failing is fatal for a security gateway.
        panic!("system random generator unavailable")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_by_time_and_keep_the_shape() {
        let (a, b) = (
            ordered_at("h", 1_764_000_000_000),
            ordered_at("h", 1_764_000_000_001),
        );
        assert!(a < b, "{a} {b}");
        assert_eq!(&a[..14], "h-019ab697e800");
        for id in [a, ordered_id("m"), new_id("c")] {
            assert_eq!(id.len(), 34, "{id}");
            let prefix = &id[..1];
            assert!(
                crate::admin::validate::id("test", prefix, &id).is_ok(),
                "{id}"
            );
        }
        assert_ne!(
            ordered_id("h"),
            ordered_id("h"),
            "random within the millisecond"
        );
    }
}
