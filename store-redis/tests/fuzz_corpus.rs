//! The committed fuzz corpus (`fuzz/corpus/<target>`) replayed as ordinary
//! tests on stable Rust: every seed through the same entry point the
//! cargo-fuzz target calls. A crash found by fuzzing is added to the corpus
//! and stays covered here.

use session_store_core::fuzzing::replay_corpus as replay;

#[test]
fn redis_record_corpus() {
    replay("redis_record", session_store_redis::fuzzing::record);
}

#[test]
fn redis_member_corpus() {
    replay("redis_member", session_store_redis::fuzzing::member);
}

#[test]
fn redis_script_reply_corpus() {
    replay(
        "redis_script_reply",
        session_store_redis::fuzzing::script_reply,
    );
}
