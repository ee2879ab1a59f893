//! Per-session CSRF synchronizer tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::TryRngCore as _;
use subtle::ConstantTimeEq as _;

/// A fresh CSRF token: 256 bits from the OS CSPRNG, base64url.
///
/// # Panics
/// Only if the operating system's random source fails.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `presented` equals the session's token, compared in constant time
/// (the length is not secret). An empty expected token never matches.
pub fn matches(expected: &str, presented: Option<&str>) -> bool {
    match presented {
        Some(p) if !expected.is_empty() => expected.as_bytes().ct_eq(p.as_bytes()).into(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_exactly() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
        assert!(matches(&a, Some(&a)));
        assert!(!matches(&a, Some(&a[..42])));
        assert!(!matches(&a, None));
        assert!(!matches("", Some("")));
    }
}
