#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| session_store_axum::fuzzing::csrf_form(data));
