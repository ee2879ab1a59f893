//! The committed fuzz corpus of the layer's decoders
//! (`fuzz/corpus/{cookie_header,csrf_form}`) replayed as ordinary tests on
//! stable Rust, through the same entry points the cargo-fuzz targets call.
//! A crash found by fuzzing is added to the corpus and stays covered here.

use std::path::PathBuf;

/// Runs `f` on every file of `fuzz/corpus/<target>`.
fn replay(target: &str, f: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
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
fn cookie_header_corpus() {
    replay("cookie_header", session_store_axum::fuzzing::cookie_header);
}

#[test]
fn csrf_form_corpus() {
    replay("csrf_form", session_store_axum::fuzzing::csrf_form);
}
