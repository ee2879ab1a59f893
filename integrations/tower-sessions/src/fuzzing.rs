//! Entry point for the fuzz target (`fuzz/` at the workspace root) and for
//! the test that replays its corpus on stable Rust: the decoder of the
//! session data as stored, whose bytes are untrusted (a corrupted or
//! foreign row). It takes arbitrary bytes, must never panic, and asserts
//! what holds for any input. Not an API for applications.

use std::collections::HashMap;

use serde::{Serialize, Serializer};
use serde_json::Value;
use session_store_core::LOADED_FIELD;

use crate::json::{decode_data, encode_data, encoded_len_over};

/// What a load carries under [`LOADED_FIELD`] (its text form).
const CARRIED: &str = "v1:1:2:3:4:5:-";

/// The stored-data decoder against serde_json, and the encoder after it.
/// The adapter's `decode_data` (a fast path of its own, serde_json for the
/// rest) gives what `serde_json::from_slice::<HashMap<String, Value>>`
/// gives for the same bytes: the same map, or an error of the same
/// category and text (its errors are serde_json's own). A map that decodes
/// is encoded by the adapter's `encode_data` to exactly serde_json's bytes
/// for it without [`LOADED_FIELD`] (also when a load's carried field is
/// added first, as a load adds it), which decode back to that map; the
/// size check answers with the encoded length.
pub fn json_decode(data: &[u8]) {
    let show = || String::from_utf8_lossy(data).into_owned();
    let mut map = match (
        decode_data(data, 1),
        serde_json::from_slice::<HashMap<String, Value>>(data),
    ) {
        (Ok(ours), Ok(theirs)) => {
            assert_eq!(ours, theirs, "{:?}: another map than serde_json's", show());
            ours
        }
        (Err(ours), Err(theirs)) => {
            assert_eq!(ours.classify(), theirs.classify(), "{:?}", show());
            assert_eq!(ours.to_string(), theirs.to_string(), "{:?}", show());
            return;
        }
        (ours, theirs) => panic!("{:?}: {ours:?}, serde_json {theirs:?}", show()),
    };

    map.remove(LOADED_FIELD);
    let encoded = encode_data(&map).expect("a map of JSON values encodes");
    assert_eq!(
        String::from_utf8_lossy(&encoded),
        String::from_utf8_lossy(&reference(&map)),
        "{:?}: encoded otherwise than by serde_json",
        show()
    );
    let back = decode_data(&encoded, 1).expect("encoded data decodes");
    assert_eq!(
        back,
        map,
        "{:?}: not the same map after a round trip",
        show()
    );

    let n = encoded.len();
    assert_eq!(encoded_len_over(&map, n), None, "{:?}", show());
    assert_eq!(encoded_len_over(&map, n - 1), Some(n), "{:?}", show());

    // A load adds the carried field; a save never writes it.
    map.insert(LOADED_FIELD.to_owned(), Value::String(CARRIED.to_owned()));
    assert_eq!(
        encode_data(&map).expect("a map of JSON values encodes"),
        reference(&map),
        "{:?}: the carried field is written",
        show()
    );
}

/// serde_json's own encoding of the map without [`LOADED_FIELD`], in the
/// map's iteration order.
fn reference(data: &HashMap<String, Value>) -> Vec<u8> {
    struct Without<'a>(&'a HashMap<String, Value>);
    impl Serialize for Without<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().filter(|(k, _)| k.as_str() != LOADED_FIELD))
        }
    }
    serde_json::to_vec(&Without(data)).expect("a map of JSON values encodes")
}
