#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| session_store_core::fuzzing::persistent(data));
