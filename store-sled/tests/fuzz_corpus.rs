//! The committed fuzz corpus (`fuzz/corpus/<target>`) replayed as ordinary
//! tests on stable Rust: every seed through the same entry point the
//! cargo-fuzz target calls. A crash found by fuzzing is added to the corpus
//! and stays covered here.

use session_store_core::fuzzing::replay_corpus as replay;

#[test]
fn sled_record_corpus() {
    replay("sled_record", |data| {
        let _ = session_store_sled::schema::decode_entry(data);
    });
}
