//! The committed fuzz corpus (`fuzz/corpus/<target>`) replayed as ordinary
//! tests on stable Rust: every seed through the same entry point the
//! cargo-fuzz target calls. A crash found by fuzzing is added to the corpus
//! and stays covered here.

use std::path::PathBuf;

/// Runs `f` on every file of `fuzz/corpus/<target>`.
fn replay(target: &str, f: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| f(&bytes));
        assert!(outcome.is_ok(), "{target}: seed {} panics", path.display());
        n += 1;
    }
    assert!(n > 0, "{target}: empty corpus");
}

#[test]
fn token_corpus() {
    replay("token", session_store_core::fuzzing::token);
}

#[test]
fn client_meta_corpus() {
    replay("client_meta", session_store_core::fuzzing::client_meta);
}

#[test]
fn frame_corpus() {
    replay("frame", session_store_core::fuzzing::frame);
}

#[test]
fn forward_corpus() {
    replay("forward", session_store_core::fuzzing::forward);
}

#[test]
fn persistent_corpus() {
    replay("persistent", session_store_core::fuzzing::persistent);
}
