//! The session data as stored: compact JSON, byte for byte what
//! `serde_json::to_vec` writes for the same map (the at-rest format is
//! unchanged), written faster. serde_json checks every byte of every string
//! against its escape table one at a time (about 10 instructions a byte,
//! most of a save's CPU with 1 KiB of data); here a string is first checked
//! as a whole with a branch-free pass the compiler vectorizes, and copied
//! in one piece when nothing in it needs escaping (the common case).
//! Strings that do, and every number, go through serde_json itself, so the
//! escaping and number formatting are serde_json's own.

use std::collections::HashMap;

use serde_json::Value;
use session_store_core::LOADED_FIELD;

/// The session data minus the carried [`LOADED_FIELD`], as compact JSON
/// (what `serde_json::to_vec` writes for it, keys in the map's iteration
/// order).
pub(crate) fn encode_data(data: &HashMap<String, Value>) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint(data));
    out.push(b'{');
    let mut first = true;
    for (key, value) in data {
        if key == LOADED_FIELD {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(&mut out, key)?;
        out.push(b':');
        write_value(&mut out, value)?;
    }
    out.push(b'}');
    Ok(out)
}

/// Whether [`encode_data`]'s output would be longer than `limit` bytes,
/// and its length then: first a bound that counts every string byte as an
/// escape (no scan of the strings, no output), and the encoding itself only
/// when the bound is over the limit (the typed in-memory path's size limit;
/// sessions near or over it are rare).
pub(crate) fn encoded_len_over(data: &HashMap<String, Value>, limit: usize) -> Option<usize> {
    if upper_bound(data) <= limit {
        return None;
    }
    // Writing a map of JSON values cannot fail; if it ever did, the data
    // would be refused as too large rather than kept unchecked.
    Some(encode_data(data).map_or(usize::MAX, |out| out.len())).filter(|n| *n > limit)
}

/// At least the length of [`encode_data`]'s output: strings at six bytes a
/// byte (`\u00XX`), numbers at 40 (serde_json writes at most 20 digits and
/// a sign for integers, and at most 24 characters for a float).
fn upper_bound(data: &HashMap<String, Value>) -> usize {
    fn str_bound(s: &str) -> usize {
        s.len().saturating_mul(6).saturating_add(2)
    }
    fn value(v: &Value) -> usize {
        match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 40,
            Value::String(s) => str_bound(s),
            Value::Array(a) => a
                .iter()
                .fold(2usize, |n, v| n.saturating_add(value(v)).saturating_add(1)),
            Value::Object(m) => m.iter().fold(2usize, |n, (k, v)| {
                n.saturating_add(str_bound(k))
                    .saturating_add(value(v))
                    .saturating_add(2)
            }),
        }
    }
    data.iter().fold(2usize, |n, (k, v)| {
        n.saturating_add(str_bound(k))
            .saturating_add(value(v))
            .saturating_add(2)
    })
}

/// A first guess at the encoded length (strings at their own length), so
/// that the buffer rarely grows.
pub(crate) fn size_hint(data: &HashMap<String, Value>) -> usize {
    fn value(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len() + 2,
            Value::Array(a) => 2 + a.iter().map(|v| value(v) + 1).sum::<usize>(),
            Value::Object(m) => 2 + m.iter().map(|(k, v)| k.len() + 4 + value(v)).sum::<usize>(),
            _ => 8,
        }
    }
    2 + data
        .iter()
        .map(|(k, v)| k.len() + 4 + value(v))
        .sum::<usize>()
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json::to_writer(&mut *out, n)?,
        Value::String(s) => write_str(out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key)?;
                out.push(b':');
                write_value(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// A JSON string: copied between quotes when no byte needs escaping,
/// otherwise written by serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if needs_escape(s.as_bytes()) {
        #[cfg(test)]
        tests::ESCAPED.with(|n| n.set(n.get() + 1));
        serde_json::to_writer(&mut *out, s)
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    }
}

/// Whether any byte is one serde_json escapes: a control character below
/// 0x20, `"` or `\`. No early exit, so that the loop vectorizes.
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Serialize, Serializer};
    use serde_json::json;
    use std::cell::Cell;

    thread_local! {
        /// Strings this thread handed to serde_json for escaping.
        pub(super) static ESCAPED: Cell<usize> = const { Cell::new(0) };
    }

    fn escaped_during(f: impl FnOnce()) -> usize {
        let before = ESCAPED.with(Cell::get);
        f();
        ESCAPED.with(Cell::get) - before
    }

    /// The fast path is the one taken for ordinary data: a 1 KiB string and
    /// plain keys are copied, never handed to serde_json's escaping; only a
    /// string that needs escaping is.
    #[test]
    fn plain_strings_take_the_copy_path() {
        let data = HashMap::from([
            ("blob".to_owned(), json!("x".repeat(1024))),
            ("n".to_owned(), json!(7)),
            ("user".to_owned(), json!("alice@example.com")),
            ("nested".to_owned(), json!({"k": ["é", "日本"]})),
        ]);
        assert_eq!(escaped_during(|| drop(encode_data(&data).unwrap())), 0);
        let quoted = HashMap::from([("q".to_owned(), json!("say \"hi\""))]);
        assert_eq!(escaped_during(|| drop(encode_data(&quoted).unwrap())), 1);
    }

    /// serde_json's own encoding of the same map without the carried field.
    fn reference(data: &HashMap<String, Value>) -> Vec<u8> {
        struct Without<'a>(&'a HashMap<String, Value>);
        impl Serialize for Without<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().filter(|(k, _)| k.as_str() != LOADED_FIELD))
            }
        }
        serde_json::to_vec(&Without(data)).unwrap()
    }

    fn strings() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "plain",
            "quote \" inside",
            "back\\slash",
            "new\nline\ttab\r",
            "\u{0}\u{1}\u{1f} controls",
            "\u{7f} del stays",
            "é ü 日本語 😀 non-ASCII stays",
            "slash / stays",
            "</script>",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every byte value below 0x80 alone, and at each position of a
        // string longer than one vector register.
        for b in 0u8..0x80 {
            let c = char::from(b);
            out.push(c.to_string());
            for pos in [0, 15, 31, 32, 63, 100] {
                let mut s = "x".repeat(101);
                s.replace_range(pos..=pos, &c.to_string());
                out.push(s);
            }
        }
        out
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let numbers = [
            json!(0),
            json!(-1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(-0.0),
            json!(1e300),
            json!(0.1),
            json!(f64::MIN_POSITIVE),
        ];
        let mut cases: Vec<HashMap<String, Value>> = vec![HashMap::new()];
        for s in strings() {
            cases.push(HashMap::from([(s.clone(), json!(s.clone()))]));
        }
        for n in &numbers {
            cases.push(HashMap::from([("n".to_owned(), n.clone())]));
        }
        cases.push(HashMap::from([
            ("null".to_owned(), Value::Null),
            ("t".to_owned(), json!(true)),
            ("f".to_owned(), json!(false)),
            (
                "arr".to_owned(),
                json!([1, "two", [], {}, [null, false], {"k\"": "v\n"}]),
            ),
            (
                "obj".to_owned(),
                json!({"b": {"c": [1.25, "x"]}, "a": "", "é": numbers}),
            ),
            ("blob".to_owned(), json!("x".repeat(4096))),
            (LOADED_FIELD.to_owned(), json!("v1:1:2:3:4:5:-")),
        ]));
        cases.push(HashMap::from([(LOADED_FIELD.to_owned(), json!("only"))]));
        for data in &cases {
            let ours = encode_data(data).unwrap();
            assert!(upper_bound(data) >= ours.len(), "{data:?}");
            for limit in [0, ours.len() - 1, ours.len(), ours.len() + 1, usize::MAX] {
                assert_eq!(
                    encoded_len_over(data, limit),
                    (ours.len() > limit).then_some(ours.len()),
                    "{data:?} {limit}"
                );
            }
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&reference(data)),
                "{data:?}"
            );
            let back: HashMap<String, Value> = serde_json::from_slice(&ours).unwrap();
            let mut expected = data.clone();
            expected.remove(LOADED_FIELD);
            assert_eq!(back, expected);
        }
    }

    #[test]
    fn escape_check_finds_every_escaped_byte() {
        for b in 0u8..=255 {
            let expected = b < 0x20 || b == b'"' || b == b'\\';
            for len in [1, 16, 33, 64, 1000] {
                for pos in [0, len / 2, len - 1] {
                    let mut bytes = vec![b'a'; len];
                    bytes[pos] = b;
                    assert_eq!(needs_escape(&bytes), expected, "byte {b} at {pos} of {len}");
                }
            }
        }
    }
}
