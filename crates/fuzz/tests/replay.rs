//! Every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through its
//! target: the corpus (seeded from real clients' requests and grown by AFL++) and every
//! crash ever found stay handled on each `cargo test`, without AFL++ installed.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut total = 0;
    for (target, run) in rivulet_fuzz::TARGETS {
        for path in inputs(kind, target) {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} panics on {}", path.display());
            total += 1;
        }
    }
    total
}

#[test]
fn every_corpus_input_is_handled() {
    let replayed = replay("corpus");
    // The seed corpus is committed; an empty replay means the path is wrong, not that
    // there is nothing to check.
    assert!(replayed > 0, "no corpus under {}", fuzz_dir().display());
    for (target, _) in rivulet_fuzz::TARGETS {
        assert!(!inputs("corpus", target).is_empty(), "no corpus for the {target} target");
    }
}

#[test]
fn every_crash_found_stays_fixed() {
    replay("regressions");
}
