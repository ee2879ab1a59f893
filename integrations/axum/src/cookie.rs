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
    headers
        .get_all(COOKIE)
        .into_iter()
        .flat_map(|header| header.as_bytes().split(|b| *b == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            if pair.is_empty() || pair.len() > MAX_COOKIE_BYTES {
                return None;
            }
            let eq = pair.iter().position(|b| *b == b'=')?;
            if pair[..eq].trim_ascii() != name.as_bytes() {
                return None;
            }
            let mut value = pair[eq + 1..].trim_ascii();
            if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
                // Whitespace inside the quotes is trimmed too (fuzzing found
                // `s="\t"` giving a tab).
                value = value[1..value.len() - 1].trim_ascii();
            }
            std::str::from_utf8(value).ok()
        })
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
