//! Reading cookies from `Cookie` headers, tolerantly.

use axum::http::header::COOKIE;
use axum::http::HeaderMap;

use crate::config::MAX_COOKIE_BYTES;

/// Every value of the cookie `name` in the request, in header order.
///
/// Tolerant by design, so that no other cookie can cost a user the session:
/// every `Cookie` header is read (HTTP/2 splits them), as bytes (another
/// cookie's non-ASCII bytes do not matter), pairs are split at `;`, empty
/// pairs and pairs without `=` are skipped, whitespace around names and
/// values is trimmed, one pair of surrounding double quotes is removed (and
/// whitespace inside them trimmed), and
/// a pair longer than [`MAX_COOKIE_BYTES`] is ignored. Values that are not
/// valid UTF-8 are skipped.
pub(crate) fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    // An iterator, not a collected list: the callers stop at the first
    // usable value, and a request costs no allocation here.
    pairs(headers)
        .filter(move |pair| pair.name() == name.as_bytes())
        .filter_map(|pair| pair.value())
}

/// Every `name=value` pair of the request's `Cookie` headers, in header
/// order, each split once: the layer reads the session, CSRF and remember
/// cookies in one pass over the headers. Pairs are split and trimmed as
/// [`cookie_values`] says; pairs without `=` (empty ones included) are skipped.
pub(crate) fn pairs(headers: &HeaderMap) -> impl Iterator<Item = Pair<'_>> {
    headers
        .get_all(COOKIE)
        .into_iter()
        .flat_map(|header| header.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            Some(Pair { pair, eq })
        })
}

/// One trimmed `name=value` pair of a `Cookie` header.
#[derive(Clone, Copy)]
pub(crate) struct Pair<'a> {
    pair: &'a [u8],
    /// Index of the first `=`.
    eq: usize,
}

impl<'a> Pair<'a> {
    /// The name, trimmed (compared byte for byte: names are case-sensitive).
    pub(crate) fn name(&self) -> &'a [u8] {
        self.pair[..self.eq].trim_ascii()
    }

    /// Length of the whole pair, name and `=` included.
    pub(crate) fn len(&self) -> usize {
        self.pair.len()
    }

    /// What follows the `=`, untrimmed.
    pub(crate) fn raw_value(&self) -> &'a [u8] {
        &self.pair[self.eq + 1..]
    }

    /// The value as [`cookie_values`] yields it: `None` for a pair longer
    /// than [`MAX_COOKIE_BYTES`] or a value that is not UTF-8.
    pub(crate) fn value(&self) -> Option<&'a str> {
        if self.pair.len() > MAX_COOKIE_BYTES {
            return None;
        }
        let mut value = self.raw_value().trim_ascii();
        if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
            // Whitespace inside the quotes is trimmed too (fuzzing found
            // `s="\t"` giving a tab).
            value = value[1..value.len() - 1].trim_ascii();
        }
        std::str::from_utf8(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn values<'a>(h: &'a HeaderMap, name: &'a str) -> Vec<&'a str> {
        cookie_values(h, name).collect()
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn foreign_bytes_quotes_and_empty_pairs_do_not_matter() {
        let h = headers(&[b"a=\xff\xfe; ;; =x; junk; s=\"tok\"; b=\xc3\xa9"]);
        assert_eq!(values(&h, "s"), ["tok"]);
        let h = headers(&[b"a=1", b"s = tok2 ", b"s=tok3"]);
        assert_eq!(values(&h, "s"), ["tok2", "tok3"]);
        assert!(values(&h, "S").is_empty(), "names are case-sensitive");
        let long = format!("s={}", "a".repeat(MAX_COOKIE_BYTES));
        let h = headers(&[long.as_bytes(), b"s=short"]);
        assert_eq!(values(&h, "s"), ["short"]);
        let h = headers(&[b"\t;\t;\t\";s=\"\t\";s=\"", b"s=\" tok4 \""]);
        assert_eq!(
            values(&h, "s"),
            ["", "\"", "tok4"],
            "whitespace inside quotes is trimmed (a fuzzing find)"
        );
        let h = headers(&[b"sx=1; xs=2"]);
        assert!(values(&h, "s").is_empty());
    }
}
