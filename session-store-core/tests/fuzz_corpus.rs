//! The committed fuzz corpus (`fuzz/corpus/<target>`) replayed as ordinary
//! tests on stable Rust: every seed through the same entry point the
//! cargo-fuzz target calls. A crash found by fuzzing is added to the corpus
//! and stays covered here.

use session_store_core::fuzzing::replay_corpus as replay;

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
