//! Entry points for the fuzz targets (`fuzz/` at the workspace root) and the
//! tests that replay their corpus on stable Rust: the decoders of bytes that
//! come back from the server (records, user-index members, script replies).
//! Each takes arbitrary bytes and must never panic. Not an API for
//! applications.

use redis::Value;
use session_store_core::Lookup;

use crate::reply::{self, Coded};
use crate::schema;

/// A stored entry (session record or forwarder): whatever decodes
/// re-encodes to bytes that decode to the same entry.
pub fn record(data: &[u8]) {
    match schema::decode(data) {
        Ok(Lookup::Session(r)) => {
            let again = schema::decode(&schema::encode_session(&r, r.version));
            assert_eq!(again.ok(), Some(Lookup::Session(r)));
        }
        Ok(Lookup::Forwarded(f)) => {
            let bytes = schema::encode_forwarder(&f.successor, &f.sealed_token, f.until);
            assert_eq!(schema::decode(&bytes).ok(), Some(Lookup::Forwarded(f)));
        }
        Err(_) => {}
    }
}

/// A user-index member: one that parses is the member of the key it names.
pub fn member(data: &[u8]) {
    if let Ok(key) = schema::parse_member(data) {
        assert_eq!(
            schema::parse_member(schema::member(&key).as_bytes()).ok(),
            Some(key)
        );
    }
}

/// A reply value built from the bytes (a small tree of integers, strings,
/// nils and arrays), decoded as every script's reply and as the index
/// scripts' stamp and member list.
pub fn script_reply(data: &[u8]) {
    let mut input = data;
    let value = build(&mut input, 0);
    for coded in [
        Coded::Create,
        Coded::Save,
        Coded::Touch,
        Coded::Rotate,
        Coded::DeleteOwned,
    ] {
        let _ = reply::decode(coded, value.clone());
    }
    let _ = reply::stamp(value.clone());
    let _ = reply::bulk_list(value);
}

/// Reads one value from the front of `input`.
fn build(input: &mut &[u8], depth: usize) -> Value {
    let Some((&tag, rest)) = input.split_first() else {
        return Value::Nil;
    };
    *input = rest;
    let take = |input: &mut &[u8], n: usize| {
        let n = n.min(input.len());
        let (head, tail) = input.split_at(n);
        *input = tail;
        head.to_vec()
    };
    match tag % 6 {
        0 => Value::Nil,
        1 => {
            let b = take(input, 8);
            let mut buf = [0u8; 8];
            buf[..b.len()].copy_from_slice(&b);
            Value::Int(i64::from_le_bytes(buf) >> (tag / 6 % 64))
        }
        2 => {
            let n = usize::from(take(input, 1).first().copied().unwrap_or(0));
            Value::BulkString(take(input, n))
        }
        3 => {
            let n = usize::from(take(input, 1).first().copied().unwrap_or(0));
            Value::SimpleString(String::from_utf8_lossy(&take(input, n)).into_owned())
        }
        4 if depth < 4 => {
            let n = usize::from(take(input, 1).first().copied().unwrap_or(0) % 8);
            Value::Array((0..n).map(|_| build(input, depth + 1)).collect())
        }
        _ => Value::Okay,
    }
}
