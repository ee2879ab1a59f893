//! The session data as stored: compact JSON, byte for byte what
//! `serde_json::to_vec` writes for the same map (the at-rest format is
//! unchanged), written faster. serde_json checks every byte of every string
//! against its escape table one at a time (about 10 instructions a byte,
//! most of a save's CPU with 1 KiB of data); here a string is first checked
//! as a whole with a branch-free pass the compiler vectorizes, and copied
//! in one piece when nothing in it needs escaping (the common case).
//! Strings that do, and every number, go through serde_json itself, so the
//! escaping and number formatting are serde_json's own.
//!
//! Decoding ([`decode_data`]) gives what serde_json gives for the same
//! bytes, by the same kind of shortcut: plain strings and integers read
//! here, everything else by serde_json (tested against it on malformed
//! input too). serde_json is built with its `float_roundtrip` feature, so
//! that a float reads back as the very `f64` that was written (its default
//! float parsing is best-effort and can be one bit off).

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

/// The session data as stored, decoded: what
/// `serde_json::from_slice::<HashMap<String, Value>>` returns for it, with
/// room for `extra` more entries. A fast path reads the common forms itself
/// (strings without escapes, found with a pass over whole blocks of bytes;
/// integers of at most 19 digits; literals; nesting), hands serde_json each
/// number and escaped string it does not read itself, and gives up on
/// anything else (malformed input, very deep nesting), which serde_json
/// then decodes from the start: it never accepts what serde_json refuses,
/// and errors are serde_json's own.
pub(crate) fn decode_data(
    bytes: &[u8],
    extra: usize,
) -> serde_json::Result<HashMap<String, Value>> {
    if let Some(data) = (Reader { bytes, pos: 0 }).data(extra) {
        return Ok(data);
    }
    #[cfg(test)]
    tests::FALLBACKS.with(|n| n.set(n.get() + 1));
    serde_json::from_slice(bytes)
}

/// Nesting the fast path reads (serde_json's limit is 128); deeper data is
/// left to serde_json.
const MAX_DEPTH: usize = 64;

/// The fast path of [`decode_data`]: every method returns `None` where
/// serde_json might answer differently.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn data(mut self, extra: usize) -> Option<HashMap<String, Value>> {
        self.skip_whitespace();
        self.eat(b'{')?;
        let mut data = HashMap::with_capacity(4 + extra);
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                let key = self.key()?;
                let value = self.value(1)?;
                data.insert(key, value);
                if self.end_of_entry(b'}')? {
                    break;
                }
            }
        }
        self.skip_whitespace();
        (self.pos == self.bytes.len()).then_some(data)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// JSON whitespace, as serde_json skips it.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// After a value: whitespace, then `,` (whitespace again; `false`) or
    /// `close` (`true`).
    fn end_of_entry(&mut self, close: u8) -> Option<bool> {
        self.skip_whitespace();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                self.skip_whitespace();
                Some(false)
            }
            b if b == close => {
                self.pos += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// A key and the `:` after it (whitespace around it skipped).
    fn key(&mut self) -> Option<String> {
        let key = self.string()?;
        self.skip_whitespace();
        self.eat(b':')?;
        self.skip_whitespace();
        Some(key)
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        Some(match self.peek()? {
            b'"' => Value::String(self.string()?),
            b'n' => self.literal(b"null", Value::Null)?,
            b't' => self.literal(b"true", Value::Bool(true))?,
            b'f' => self.literal(b"false", Value::Bool(false))?,
            b'-' | b'0'..=b'9' => self.number()?,
            b'[' if depth < MAX_DEPTH => {
                self.pos += 1;
                self.skip_whitespace();
                let mut items = Vec::new();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        items.push(self.value(depth + 1)?);
                        if self.end_of_entry(b']')? {
                            break;
                        }
                    }
                }
                Value::Array(items)
            }
            b'{' if depth < MAX_DEPTH => {
                self.pos += 1;
                self.skip_whitespace();
                let mut map = serde_json::Map::new();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        let key = self.key()?;
                        // serde_json reads an object whose first key is one
                        // of its private markers as something else (with
                        // arbitrary_precision or raw_value).
                        if map.is_empty() && key.starts_with('$') {
                            return None;
                        }
                        let value = self.value(depth + 1)?;
                        map.insert(key, value);
                        if self.end_of_entry(b'}')? {
                            break;
                        }
                    }
                }
                Value::Object(map)
            }
            _ => return None,
        })
    }

    fn literal(&mut self, text: &[u8], value: Value) -> Option<Value> {
        let end = self.pos + text.len();
        (self.bytes.get(self.pos..end)? == text).then(|| {
            self.pos = end;
            value
        })
    }

    /// A number: a plain integer of at most 19 digits (always a `u64`)
    /// read here, any other number by serde_json.
    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.pos += 1;
        }
        let text = &self.bytes[start..self.pos];
        let plain = text.len() <= 19
            && text.iter().all(u8::is_ascii_digit)
            && (text[0] != b'0' || text.len() == 1);
        if plain {
            let n = text.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
            return Some(Value::from(n));
        }
        #[cfg(test)]
        tests::DELEGATED.with(|n| n.set(n.get() + 1));
        match serde_json::from_slice(text).ok()? {
            n @ Value::Number(_) => Some(n),
            _ => None,
        }
    }

    /// A string: copied when no byte in it needs an escape, otherwise
    /// decoded by serde_json.
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let rest = &self.bytes[self.pos..];
        let len = plain_prefix(rest);
        if rest.get(len) == Some(&b'"') {
            let text = std::str::from_utf8(&rest[..len]).ok()?;
            self.pos += len + 1;
            return Some(text.to_owned());
        }
        // An escape or a control character: the whole string to serde_json.
        let start = self.pos - 1;
        let mut i = self.pos + len;
        loop {
            match self.bytes.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        #[cfg(test)]
        tests::DELEGATED.with(|n| n.set(n.get() + 1));
        serde_json::from_slice(&self.bytes[start..self.pos]).ok()
    }
}

/// How many bytes from the start need no escape in a JSON string (none is
/// `"`, `\` or a control character). Whole blocks are checked without an
/// early exit, so that the check vectorizes; the block that has such a
/// byte is then read byte by byte.
fn plain_prefix(bytes: &[u8]) -> usize {
    const BLOCK: usize = 32;
    let mut len = 0;
    for block in bytes.chunks_exact(BLOCK) {
        if needs_escape(block) {
            break;
        }
        len += BLOCK;
    }
    len + bytes[len..]
        .iter()
        .take_while(|&&b| !(b < 0x20 || b == b'"' || b == b'\\'))
        .count()
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
        /// Documents this thread's `decode_data` left to serde_json whole.
        pub(super) static FALLBACKS: Cell<usize> = const { Cell::new(0) };
        /// Numbers and strings this thread's fast path handed to serde_json.
        pub(super) static DELEGATED: Cell<usize> = const { Cell::new(0) };
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

    pub(super) fn cases() -> Vec<HashMap<String, Value>> {
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
        cases
    }

    #[test]
    fn writes_what_serde_json_writes() {
        for data in &cases() {
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

/// The decoder's fast path against serde_json.
#[cfg(test)]
mod decode_tests {
    use super::tests::{DELEGATED, FALLBACKS};
    use super::*;
    use serde_json::json;
    use std::cell::Cell;

    fn counted(counter: &'static std::thread::LocalKey<Cell<usize>>, f: impl FnOnce()) -> usize {
        let before = counter.with(Cell::get);
        f();
        counter.with(Cell::get) - before
    }

    /// `decode_data` answers as serde_json does (the same map, or the same
    /// error), and the fast path alone never accepts what serde_json
    /// refuses nor reads it differently.
    fn check(doc: &[u8]) {
        let expected = serde_json::from_slice::<HashMap<String, Value>>(doc);
        match (decode_data(doc, 0), &expected) {
            (Ok(ours), Ok(theirs)) => {
                assert_eq!(&ours, theirs, "{:?}", String::from_utf8_lossy(doc))
            }
            (Err(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string()),
            (ours, _) => panic!(
                "{:?}: {ours:?} vs {expected:?}",
                String::from_utf8_lossy(doc)
            ),
        }
        if let Some(fast) = (Reader { bytes: doc, pos: 0 }).data(0) {
            assert_eq!(
                Some(&fast),
                expected.as_ref().ok(),
                "{:?}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    fn documents() -> Vec<Vec<u8>> {
        let mut docs: Vec<Vec<u8>> = super::tests::cases()
            .iter()
            .map(|data| encode_data(data).unwrap())
            .collect();
        docs.extend(super::tests::cases().iter().map(|data| {
            let data: HashMap<_, _> = data
                .iter()
                .filter(|(k, _)| k.as_str() != LOADED_FIELD)
                .collect();
            serde_json::to_vec_pretty(&data).unwrap()
        }));
        let texts: &[&str] = &[
            "",
            " ",
            "{}",
            " \t\r\n{ \t\r\n} \t\r\n",
            "{}x",
            "{} {}",
            "[]",
            "null",
            "{\"a\":1,\"a\":2}",
            "{\"a\":{\"k\":1,\"k\":[2]}}",
            "{\"a\" : 1 , \"b\" :\"x\" }",
            "{\"a\":1,}",
            "{,}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{a:1}",
            "{\"a\":[1,]}",
            "{\"a\":[,1]}",
            "{\"a\":[1 2]}",
            "{\"a\":[ ]}",
            "{\"a\":{ }}",
            "{\"a\":{\"b\":1,}}",
            "{\"a\":nul}",
            "{\"a\":nulll}",
            "{\"a\":True}",
            "{\"a\":truex}",
            "{\"a\":false1}",
            "{\"a\":0}",
            "{\"a\":00}",
            "{\"a\":01}",
            "{\"a\":-0}",
            "{\"a\":-}",
            "{\"a\":+1}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e5}",
            "{\"a\":1E+5}",
            "{\"a\":1e-5}",
            "{\"a\":1.5e}",
            "{\"a\":1-2}",
            "{\"a\":1\"}",
            "{\"a\":9999999999999999999}",
            "{\"a\":18446744073709551615}",
            "{\"a\":18446744073709551616}",
            "{\"a\":123456789012345678901234567890}",
            "{\"a\":-9223372036854775808}",
            "{\"a\":-9223372036854775809}",
            "{\"a\":1e400}",
            "{\"a\":NaN}",
            "{\"a\":Infinity}",
            "{\"a\":\"\\u00e9\\n\\\"\"}",
            "{\"\\u0061\":1}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\\"}",
            "{\"a\":\"unterminated}",
            "{\"a\":\"tab\tinside\"}",
            "{\"a\":\"nul\u{0}inside\"}",
            "{\"a\":\"\u{7f}\"}",
            "{\"$serde_json::private::Number\":\"1\"}",
            "{\"a\":{\"$serde_json::private::Number\":\"1\"}}",
            "{\"a\":{\"$x\":1}}",
            "{\"a\":{\"b\":1,\"$x\":2}}",
            "\u{feff}{}",
            "{\"a\":1}\u{0}",
        ];
        docs.extend(texts.iter().map(|t| t.as_bytes().to_vec()));
        // Invalid UTF-8 in a key and in a value, and split sequences.
        docs.push(b"{\"a\":\"\xff\"}".to_vec());
        docs.push(b"{\"\xc3\":1}".to_vec());
        docs.push(b"{\"a\":\"\xe6\x97\"}".to_vec());
        docs.push(b"{\"a\":\"\xed\xa0\x80\"}".to_vec());
        // Nesting up to and past the fast path's and serde_json's limits.
        for depth in [1, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 127, 128, 129] {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let doc = format!("{{\"a\":{}1{}}}", open.repeat(depth), close.repeat(depth));
                docs.push(doc.into_bytes());
            }
        }
        docs
    }

    #[test]
    fn decodes_what_serde_json_decodes() {
        for doc in &documents() {
            check(doc);
        }
        // Small documents of every form with each byte removed, doubled or
        // replaced by one that matters to the grammar.
        let mut small: Vec<Vec<u8>> = documents().into_iter().filter(|d| d.len() < 40).collect();
        for data in [
            json!({"s": "é\"x", "n": [1, -2, 0.5, {"k": null}], "t": true, "": {}}),
            json!({"a": {"b": [[], {"c": false}]}, "z": "\u{1}", "u": 12345678901234567890u64}),
        ] {
            small.push(serde_json::to_vec(&data).unwrap());
            small.push(serde_json::to_vec_pretty(&data).unwrap());
        }
        let replacements = b"\"\\,:{}[] 0-.eE1tnx\x00\x1f\x7f\x80\xc3";
        for doc in &small {
            for i in 0..doc.len() {
                let mut removed = doc.clone();
                removed.remove(i);
                check(&removed);
                let mut doubled = doc.clone();
                doubled.insert(i, doc[i]);
                check(&doubled);
                for &r in replacements {
                    let mut replaced = doc.clone();
                    replaced[i] = r;
                    check(&replaced);
                }
            }
        }
    }

    /// Ordinary session data is read by the fast path alone: the
    /// benchmark's record, text, integers, flags, nesting. A float or a
    /// negative number is handed to serde_json (just that number), an
    /// escaped string likewise; only malformed data falls back whole.
    #[test]
    fn ordinary_data_takes_the_fast_path() {
        let ordinary = [
            HashMap::from([
                ("blob".to_owned(), json!("x".repeat(1024))),
                ("n".to_owned(), json!(0)),
            ]),
            HashMap::from([
                (
                    "user".to_owned(),
                    json!({"id": 42, "name": "Zoë", "roles": ["admin", "dev"]}),
                ),
                ("csrf".to_owned(), json!("Yz1kX2FhYmJjY2RkZWVmZmdn")),
                ("flags".to_owned(), json!([true, false, null])),
                ("visits".to_owned(), json!(u64::MAX / 2)),
            ]),
        ];
        for data in &ordinary {
            let doc = encode_data(data).unwrap();
            let mut back = None;
            let fell_back = counted(&FALLBACKS, || {
                assert_eq!(
                    counted(&DELEGATED, || back = Some(decode_data(&doc, 1).unwrap())),
                    0
                );
            });
            assert_eq!(fell_back, 0);
            assert_eq!(back.as_ref(), Some(data));
        }
        let delegated = HashMap::from([
            ("f".to_owned(), json!(0.5)),
            ("i".to_owned(), json!(-3)),
            ("q".to_owned(), json!("say \"hi\"")),
        ]);
        let doc = encode_data(&delegated).unwrap();
        assert_eq!(
            counted(&DELEGATED, || assert_eq!(
                decode_data(&doc, 0).unwrap(),
                delegated
            )),
            3
        );
        assert_eq!(
            counted(&FALLBACKS, || assert!(
                decode_data(b"{\"a\":01}", 0).is_err()
            )),
            1
        );
    }

    #[test]
    fn plain_prefix_stops_at_the_first_escaped_byte() {
        for b in 0u8..=255 {
            let stops = b < 0x20 || b == b'"' || b == b'\\';
            for len in [1, 31, 32, 33, 64, 100] {
                for pos in [0, len / 2, len - 1] {
                    let mut bytes = vec![b'a'; len];
                    bytes[pos] = b;
                    assert_eq!(
                        plain_prefix(&bytes),
                        if stops { pos } else { len },
                        "byte {b} at {pos} of {len}"
                    );
                }
            }
        }
    }
}
