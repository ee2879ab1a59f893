#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| session_store_tower_sessions::fuzzing::json_decode(data));
