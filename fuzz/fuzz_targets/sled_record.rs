#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = session_store_sled::schema::decode_entry(data);
});
