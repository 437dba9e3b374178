//! The fuzz targets' committed inputs on stable: every seed (`fuzz/seeds/<target>/`) and every regression
//! input (`fuzz/regressions/<target>/`, a crash the fuzzer found, fixed since) goes through the target's
//! own entry function (`stalwart_nta7516::fuzzing`, the same code `cargo fuzz` runs), so the seeds stay
//! valid inputs and the fixed crashes stay fixed. Running the fuzzers themselves: `scripts/fuzz.sh`.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::Path,
};

use stalwart_nta7516::fuzzing::TARGETS;

/// The files of one input folder, sorted; none when the folder does not exist.
fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_regression_passes_its_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut failed = Vec::new();
    for (name, target) in TARGETS {
        let seeds = inputs(&fuzz.join("seeds").join(name));
        assert!(seeds.len() >= 3, "{name}: only {} seeds", seeds.len());
        let regressions = inputs(&fuzz.join("regressions").join(name));
        for (file, bytes) in seeds.iter().chain(&regressions) {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(bytes))) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failed.push(format!("{name}: {file}: {why}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "fuzz inputs that fail:\n{}",
        failed.join("\n")
    );
}
