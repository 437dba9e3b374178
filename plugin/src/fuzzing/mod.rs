//! Entry points of the fuzz targets (`fuzz/` at the repository root, cargo-fuzz) and of the seed replay
//! test: each takes hostile bytes, runs them through the real parser and asserts what must hold of its
//! result — round trips, bounds, fail-closed outcomes. A panic is a finding. Not part of the API.
//!
//! One function per target: [`hook_request`], [`webhook`], [`sieve_policy`], [`smtp_reply`],
//! [`nta_record`], [`mta_sts`], [`csv_import`].

mod csv;
mod hook;
mod records;
mod sieve;
mod smtp;
mod webhook;

pub use csv::csv_import;
pub use hook::hook_request;
pub use records::{mta_sts, nta_record};
pub use sieve::sieve_policy;
pub use smtp::smtp_reply;
pub use webhook::webhook;

/// A target's entry function: panics on a finding.
pub type Target = fn(&[u8]);

/// The targets, by name (the seed folders `fuzz/seeds/<name>/` and the regression folders
/// `fuzz/regressions/<name>/` are named the same).
pub const TARGETS: &[(&str, Target)] = &[
    ("hook_request", hook_request),
    ("webhook", webhook),
    ("sieve_policy", sieve_policy),
    ("smtp_reply", smtp_reply),
    ("nta_record", nta_record),
    ("mta_sts", mta_sts),
    ("csv_import", csv_import),
];

/// Splits `data` at the first `sep`: (before, after); all of it before when there is none.
fn split<'a>(data: &'a [u8], sep: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (&data[..i], &data[i + sep.len()..]),
        None => (data, &[]),
    }
}

/// A current-thread runtime for the async parsers (in-memory streams: nothing ever waits).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    RT.with(|rt| rt.block_on(f))
}
