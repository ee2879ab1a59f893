//! The committed fuzz corpus of the adapter's decoder of stored session
//! data (`fuzz/corpus/tower_json`) replayed as an ordinary test on stable
//! Rust, through the same entry point the cargo-fuzz target calls. A crash
//! found by fuzzing is added to the corpus and stays covered here.

use session_store_core::fuzzing::replay_corpus as replay;

#[test]
fn tower_json_corpus() {
    replay(
        "tower_json",
        session_store_tower_sessions::fuzzing::json_decode,
    );
}
