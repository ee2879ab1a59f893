//! The committed fuzz corpus of the layer's decoders
//! (`fuzz/corpus/{cookie_header,csrf_form}`) replayed as ordinary tests on
//! stable Rust, through the same entry points the cargo-fuzz targets call.
//! A crash found by fuzzing is added to the corpus and stays covered here.

use session_store_core::fuzzing::replay_corpus as replay;

#[test]
fn cookie_header_corpus() {
    replay("cookie_header", session_store_axum::fuzzing::cookie_header);
}

#[test]
fn csrf_form_corpus() {
    replay("csrf_form", session_store_axum::fuzzing::csrf_form);
}
