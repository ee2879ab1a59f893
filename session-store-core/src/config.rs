//! Configuration from environment variables: one grammar for every crate.
//!
//! Every backend's `Config::from_env()` reads its variables through [`Vars`],
//! so a boolean, a duration or a size is written the same way whichever
//! backend reads it, and a bad value is reported the same way: an
//! [`Error::Config`] that names the variable.
//!
//! | kind | accepted | example |
//! | --- | --- | --- |
//! | string | any text; surrounding spaces are trimmed; empty means unset | `myapp:sess` |
//! | boolean | `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case) | `on` |
//! | number | a whole decimal number in the variable's range | `10` |
//! | milliseconds | a whole number of milliseconds (variables ending in `_MS`) | `5000` |
//! | microseconds | a whole number of microseconds (variables ending in `_US`) | `50` |
//! | size | a whole number of bytes, or with a `KiB`, `MiB` or `GiB` suffix | `64MiB` |
//!
//! ```
//! use std::time::Duration;
//! use session_store_core::config::Vars;
//!
//! let vars = Vars::from_pairs([("APP_TIMEOUT_MS", "250"), ("APP_ON", "yes")]);
//! assert_eq!(vars.millis("APP_TIMEOUT_MS")?, Some(Duration::from_millis(250)));
//! assert_eq!(vars.bool("APP_ON")?, Some(true));
//! assert_eq!(vars.bool("APP_MISSING")?, None);
//! let err = Vars::from_pairs([("APP_ON", "maybe")]).bool("APP_ON").unwrap_err();
//! assert_eq!(err.to_string(), "invalid configuration: APP_ON: expected a boolean (true/false, 1/0, yes/no, on/off), got \"maybe\"");
//! # Ok::<(), session_store_core::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// A source of configuration variables: the process environment, a map (in
/// tests) or any lookup function (a secrets manager).
pub struct Vars {
    lookup: Box<Lookup>,
}

/// The lookup function behind [`Vars`].
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl fmt::Debug for Vars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets (URLs with passwords): never printed.
        f.debug_struct("Vars").finish_non_exhaustive()
    }
}

impl Vars {
    /// The process environment (`std::env::var`).
    pub fn from_env() -> Self {
        Self::from_fn(|name| std::env::var(name).ok())
    }

    /// A fixed set of `(name, value)` pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::from_fn(move |name| map.get(name).cloned())
    }

    /// Any lookup function.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Vars {
            lookup: Box::new(lookup),
        }
    }

    /// The trimmed value of `name`; `None` when unset or blank.
    pub fn string(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, or [`Error::Config`] saying it is not set.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when it is unset or blank.
    pub fn required(&self, name: &str) -> Result<String> {
        self.string(name)
            .ok_or_else(|| Error::Config(format!("{name} is not set")))
    }

    /// A value parsed by `parse`, which returns `None` for a bad value;
    /// `expected` describes the grammar in the error message.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable, what was expected and what was
    /// found, when `parse` refuses the value.
    pub fn parse_with<T>(
        &self,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.string(name) {
            None => Ok(None),
            Some(v) => parse(&v)
                .map(Some)
                .ok_or_else(|| invalid(name, expected, &v)),
        }
    }

    /// A boolean: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable for any other value.
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        self.parse_with(
            name,
            "a boolean (true/false, 1/0, yes/no, on/off)",
            parse_bool,
        )
    }

    /// A whole decimal number of type `T` (range checked by `T`).
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the value is not a number
    /// that fits `T`.
    pub fn number<T: FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.parse_with(name, "a whole number", |v| v.parse().ok())
    }

    /// A whole number of milliseconds.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the value is not a whole
    /// number.
    pub fn millis(&self, name: &str) -> Result<Option<Duration>> {
        self.parse_with(name, "a whole number of milliseconds", |v| {
            v.parse().ok().map(Duration::from_millis)
        })
    }

    /// A whole number of microseconds.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the value is not a whole
    /// number.
    pub fn micros(&self, name: &str) -> Result<Option<Duration>> {
        self.parse_with(name, "a whole number of microseconds", |v| {
            v.parse().ok().map(Duration::from_micros)
        })
    }

    /// A size in bytes: a whole number, optionally followed by `KiB`, `MiB`
    /// or `GiB` (any case, spaces allowed before the unit).
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when the value does not parse or
    /// overflows `u64`.
    pub fn size(&self, name: &str) -> Result<Option<u64>> {
        self.parse_with(
            name,
            "a size in bytes (a whole number, optionally with KiB, MiB or GiB)",
            parse_size,
        )
    }
}

fn invalid(name: &str, expected: &str, value: &str) -> Error {
    Error::Config(format!("{name}: expected {expected}, got {value:?}"))
}

/// The boolean grammar of [`Vars::bool`].
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The size grammar of [`Vars::size`].
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// A URL with its password replaced by `***`, for messages and `Debug`.
///
/// Works on any `scheme://user:password@host/...` string without parsing it
/// fully; a string without credentials is returned unchanged.
///
/// ```
/// use session_store_core::config::redact_url;
///
/// assert_eq!(redact_url("redis://:hunter2@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
/// assert_eq!(redact_url("postgres://app:pw@db/app"), "postgres://app:***@db/app");
/// assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..scheme_end + 3].to_owned();
    // A lone user-info part may be a password (`redis://secret@host`).
    if let Some(at) = authority.rfind('@') {
        match authority[..at].find(':') {
            Some(colon) => out.push_str(&format!("{}:***", &authority[..colon])),
            None => out.push_str("***"),
        }
    }
    out.push_str(&authority[authority.rfind('@').map_or(0, |at| at)..]);
    // Query parameters that carry a password (`?password=...`).
    let tail = &rest[authority_end..];
    match tail.find('?') {
        None => out.push_str(tail),
        Some(q) => {
            out.push_str(&tail[..=q]);
            let params: Vec<String> = tail[q + 1..]
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_share_one_grammar() {
        for (v, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("On", true),
            ("false", false),
            ("0", false),
            ("No", false),
            ("off", false),
        ] {
            let vars = Vars::from_pairs([("B", v)]);
            assert_eq!(vars.bool("B").unwrap(), Some(want), "{v}");
        }
        for bad in ["2", "y", "enable", "truee"] {
            let err = Vars::from_pairs([("B", bad)]).bool("B").unwrap_err();
            assert!(matches!(&err, Error::Config(m) if m.starts_with("B: expected a boolean")));
        }
    }

    #[test]
    fn blank_values_are_unset() {
        let vars = Vars::from_pairs([("S", "   "), ("T", " x ")]);
        assert_eq!(vars.string("S"), None);
        assert_eq!(vars.string("T").as_deref(), Some("x"));
        assert_eq!(vars.bool("S").unwrap(), None);
        let err = vars.required("S").unwrap_err();
        assert_eq!(err.to_string(), "invalid configuration: S is not set");
    }

    #[test]
    fn numbers_durations_and_sizes() {
        let vars = Vars::from_pairs([
            ("N", "42"),
            ("NEG", "-1"),
            ("MS", "1500"),
            ("US", "7"),
            ("SIZE", "64 MiB"),
            ("BIG", "99999999999999999999GiB"),
            ("UNIT", "3 kb"),
        ]);
        assert_eq!(vars.number::<u32>("N").unwrap(), Some(42));
        assert!(vars.number::<u32>("NEG").is_err());
        assert_eq!(
            vars.millis("MS").unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(vars.micros("US").unwrap(), Some(Duration::from_micros(7)));
        assert_eq!(vars.size("SIZE").unwrap(), Some(64 << 20));
        assert_eq!(vars.size("N").unwrap(), Some(42));
        assert!(vars.size("BIG").is_err());
        let err = vars.size("UNIT").unwrap_err().to_string();
        assert!(err.contains("UNIT: expected a size"), "{err}");
        assert!(vars.millis("SIZE").is_err());
    }

    #[test]
    fn debug_never_shows_values() {
        let vars = Vars::from_pairs([("URL", "redis://:secret@h")]);
        assert!(!format!("{vars:?}").contains("secret"));
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact_url("rediss://u:p@h:1/2?x=y"),
            "rediss://u:***@h:1/2?x=y"
        );
        assert_eq!(redact_url("redis://secret@h"), "redis://***@h");
        assert_eq!(redact_url("/tmp/file.db"), "/tmp/file.db");
        assert_eq!(
            redact_url("postgres://h/db?sslmode=off&password=x@y"),
            "postgres://h/db?sslmode=off&password=***"
        );
    }
}
