//! `sieve_policy`: see `docs/_draft_fuzz.md`; the checks live in `stalwart_nta7516::fuzzing::sieve_policy`, shared with the
//! seed replay test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stalwart_nta7516::fuzzing::sieve_policy(data));
