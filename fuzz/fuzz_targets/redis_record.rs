#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| session_store_redis::fuzzing::record(data));
