//! The configuration shared by the framework adapters
//! (`session-store-tower-sessions`, `session-store-actix`): the absolute
//! timeout the frameworks lack, a data size limit, and the optional data
//! field that names the user; and what a load carries to the save of the
//! same request ([`LoadedRecord`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::Vars;
use crate::error::{Error, Result};
use crate::record::SessionRecord;
use crate::time::Timestamp;

const ABSOLUTE_TIMEOUT_VAR: &str = "SESSION_STORE_ADAPTER_ABSOLUTE_TIMEOUT_MS";
const MAX_DATA_BYTES_VAR: &str = "SESSION_STORE_ADAPTER_MAX_DATA_BYTES";
const USER_ID_KEY_VAR: &str = "SESSION_STORE_ADAPTER_USER_ID_KEY";

/// Settings of a framework adapter's session store: the same type, the same
/// variables and the same defaults for every framework.
///
/// ```
/// use std::time::Duration;
/// use session_store_core::AdapterConfig;
///
/// let config = AdapterConfig::new()
///     .with_absolute_timeout(Duration::from_secs(8 * 3600))
///     .with_user_id_key("user");
/// config.validate()?;
/// assert_eq!(config.max_data_bytes(), AdapterConfig::DEFAULT_MAX_DATA_BYTES);
/// # Ok::<(), session_store_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterConfig {
    absolute_timeout: Duration,
    max_data_bytes: usize,
    user_id_key: Option<String>,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig {
            absolute_timeout: Self::DEFAULT_ABSOLUTE_TIMEOUT,
            max_data_bytes: Self::DEFAULT_MAX_DATA_BYTES,
            user_id_key: None,
        }
    }
}

impl AdapterConfig {
    /// Default absolute timeout: 12 hours, counted from the creation of the
    /// session in the backend.
    pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
    /// Default maximum encoded size of one session's data: 64 KiB.
    pub const DEFAULT_MAX_DATA_BYTES: usize = 64 * 1024;
    /// Longest user id an adapter accepts from the
    /// [`user_id_key`](AdapterConfig::user_id_key) field, in bytes (the
    /// default of [`Policy::max_user_id_bytes`](crate::Policy::max_user_id_bytes)).
    pub const MAX_USER_ID_BYTES: usize = 256;

    /// The defaults: a 12-hour absolute timeout, 64 KiB of data, no user id
    /// field (every session anonymous). Same as [`AdapterConfig::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the configuration from the process environment; unset
    /// variables keep their defaults.
    /// Shorthand for `AdapterConfig::from_vars(&Vars::from_env())`.
    ///
    /// | Variable | Meaning | Default |
    /// | --- | --- | --- |
    /// | `SESSION_STORE_ADAPTER_ABSOLUTE_TIMEOUT_MS` | absolute timeout in whole milliseconds (> 0), counted from creation | `43200000` (12 h) |
    /// | `SESSION_STORE_ADAPTER_MAX_DATA_BYTES` | largest encoded session data (> 0): bytes, or with `KiB`/`MiB`/`GiB` | `64KiB` |
    /// | `SESSION_STORE_ADAPTER_USER_ID_KEY` | session data field whose string value is the user id | unset (anonymous sessions) |
    ///
    /// Values follow the grammar of [`config`](crate::config).
    ///
    /// # Errors
    /// As [`AdapterConfig::from_vars`].
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&Vars::from_env())
    }

    /// Reads the variables of [`AdapterConfig::from_env`] from `vars` (a map
    /// in tests, a secrets manager); unset or blank variables keep their
    /// defaults. The result is valid.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_store_core::{config::Vars, AdapterConfig};
    ///
    /// let config = AdapterConfig::from_vars(&Vars::from_pairs([
    ///     ("SESSION_STORE_ADAPTER_ABSOLUTE_TIMEOUT_MS", "3600000"),
    ///     ("SESSION_STORE_ADAPTER_MAX_DATA_BYTES", "16KiB"),
    ///     ("SESSION_STORE_ADAPTER_USER_ID_KEY", "user"),
    /// ]))?;
    /// assert_eq!(config.absolute_timeout(), Duration::from_secs(3600));
    /// assert_eq!(config.max_data_bytes(), 16 * 1024);
    /// assert_eq!(config.user_id_key(), Some("user"));
    /// # Ok::<(), session_store_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable for a value that does not parse
    /// or is zero.
    pub fn from_vars(vars: &Vars) -> Result<Self> {
        let mut config = Self::default();
        if let Some(timeout) = vars.millis(ABSOLUTE_TIMEOUT_VAR)? {
            if timeout.is_zero() {
                return Err(zero(vars, ABSOLUTE_TIMEOUT_VAR));
            }
            config = config.with_absolute_timeout(timeout);
        }
        if let Some(bytes) = vars.size(MAX_DATA_BYTES_VAR)? {
            if bytes == 0 {
                return Err(zero(vars, MAX_DATA_BYTES_VAR));
            }
            config = config.with_max_data_bytes(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(key) = vars.string(USER_ID_KEY_VAR) {
            config = config.with_user_id_key(key);
        }
        Ok(config)
    }

    /// Sessions expire this long after their creation in the backend,
    /// whatever the activity and whatever expiry the framework asks for.
    /// Default 12 hours.
    pub fn with_absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute_timeout = timeout;
        self
    }

    /// Largest JSON-encoded session data the adapter writes; larger data is
    /// refused. Default 64 KiB.
    pub fn with_max_data_bytes(mut self, bytes: usize) -> Self {
        self.max_data_bytes = bytes;
        self
    }

    /// A session data field whose string value is written as the backend
    /// record's user id (at most [`AdapterConfig::MAX_USER_ID_BYTES`]), so
    /// that the adapter's `logout_user` and `list_user` find the user's
    /// sessions. Default: none (every session anonymous).
    pub fn with_user_id_key(mut self, key: impl Into<String>) -> Self {
        self.user_id_key = Some(key.into());
        self
    }

    /// The absolute timeout.
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute_timeout
    }

    /// The data size limit in bytes.
    pub fn max_data_bytes(&self) -> usize {
        self.max_data_bytes
    }

    /// The data field naming the user, if any.
    pub fn user_id_key(&self) -> Option<&str> {
        self.user_id_key.as_deref()
    }

    /// Checks every value: a timeout and a size limit greater than zero, a
    /// user id field that is not empty. The adapters call this when they
    /// take a configuration.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.absolute_timeout.is_zero() {
            return Err(Error::Config(
                "absolute_timeout must be greater than zero".into(),
            ));
        }
        if self.max_data_bytes == 0 {
            return Err(Error::Config(
                "max_data_bytes must be greater than zero".into(),
            ));
        }
        if self.user_id_key.as_deref() == Some("") {
            return Err(Error::Config("user_id_key must not be empty".into()));
        }
        Ok(())
    }
}

/// The [`Vars`] error format for a value that parsed but is zero.
fn zero(vars: &Vars, name: &str) -> Error {
    let value = vars.string(name).unwrap_or_default();
    Error::Config(format!(
        "{name}: expected a value greater than zero, got {value:?}"
    ))
}

/// The framework session-state entry under which an adapter's `load` (and
/// `create`) leave the [`LoadedRecord`] the request's save needs. Never
/// written to the backend; a save whose state lacks it (after the framework
/// cleared the session, or for a record built by hand) reads the stored
/// version first, as a second round trip.
pub const LOADED_FIELD: &str = "__session_store.loaded";

/// Distinguishes the loads of one process: a second save of the same load
/// (tower-sessions) finds the version its first save produced.
static NEXT_LOAD: AtomicU64 = AtomicU64::new(1);

/// What an adapter's `load` carries to the save of the same request, so
/// that the save is one compare-and-swap with no read before it: the fields
/// of the loaded record a save keeps, and which load it was. Carried in the
/// framework's session state under [`LOADED_FIELD`] in the text form of
/// [`LoadedRecord::encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedRecord {
    /// The stored version the save compares against.
    pub version: u64,
    /// Which load of this process it was (unique per process).
    pub load: u64,
    /// The record's creation time.
    pub created_at: Timestamp,
    /// The record's last activity.
    pub last_seen_at: Timestamp,
    /// The record's absolute deadline.
    pub absolute_deadline: Timestamp,
    /// The record's authentication time.
    pub auth_time: Option<Timestamp>,
}

impl LoadedRecord {
    /// What to carry for `record`, just read or created; `None` for a record
    /// with client metadata (written by a `SessionManager` sharing the
    /// backend), whose save keeps reading the stored record first.
    pub fn of(record: &SessionRecord) -> Option<Self> {
        record.meta.is_empty().then(|| LoadedRecord {
            version: record.version,
            load: NEXT_LOAD.fetch_add(1, Ordering::Relaxed),
            created_at: record.created_at,
            last_seen_at: record.last_seen_at,
            absolute_deadline: record.absolute_deadline,
            auth_time: record.auth_time,
        })
    }

    /// `v1:version:load:created:last_seen:absolute:auth` (milliseconds;
    /// `-` for no auth time).
    pub fn encode(&self) -> String {
        // Written digit by digit into a stack buffer, then one allocation:
        // the same text as `format!` (tested), at a fraction of its cost on
        // every load.
        let mut out = Digits::default();
        out.push(b"v1:");
        out.push_u64(self.version);
        out.push(b":");
        out.push_u64(self.load);
        for t in [self.created_at, self.last_seen_at, self.absolute_deadline] {
            out.push(b":");
            out.push_i64(t.as_millis());
        }
        out.push(b":");
        match self.auth_time {
            None => out.push(b"-"),
            Some(t) => out.push_i64(t.as_millis()),
        }
        // ASCII by construction, so never the empty fallback.
        String::from_utf8(out.buf[..out.len].to_vec()).unwrap_or_default()
    }

    /// The inverse of [`LoadedRecord::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.strip_prefix("v1:")?.split(':');
        let mut next = || parts.next();
        let version = next()?.parse().ok()?;
        let load = next()?.parse().ok()?;
        let millis = |s: Option<&str>| s?.parse().ok().map(Timestamp::from_millis);
        let created_at = millis(next())?;
        let last_seen_at = millis(next())?;
        let absolute_deadline = millis(next())?;
        let auth_time = match next()? {
            "-" => None,
            t => Some(Timestamp::from_millis(t.parse().ok()?)),
        };
        next().is_none().then_some(LoadedRecord {
            version,
            load,
            created_at,
            last_seen_at,
            absolute_deadline,
            auth_time,
        })
    }
}

/// The text of [`LoadedRecord::encode`]: at most `v1:`, two `u64`, four
/// `:` and `i64`, one more `:` (3 + 2 × 20 + 4 × 21 + 1 = 128 bytes).
struct Digits {
    buf: [u8; 128],
    len: usize,
}

impl Default for Digits {
    fn default() -> Self {
        Digits {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl Digits {
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends the decimal digits of `n`.
    fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    /// Appends `n` in decimal, with a `-` when negative.
    fn push_i64(&mut self, n: i64) {
        if n < 0 {
            self.push(b"-");
        }
        self.push_u64(n.unsigned_abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text `encode` wrote with `format!` before; the hand-written
    /// digits must give exactly the same.
    fn reference(r: &LoadedRecord) -> String {
        let auth = r
            .auth_time
            .map_or_else(|| "-".to_owned(), |t| t.as_millis().to_string());
        format!(
            "v1:{}:{}:{}:{}:{}:{auth}",
            r.version,
            r.load,
            r.created_at.as_millis(),
            r.last_seen_at.as_millis(),
            r.absolute_deadline.as_millis(),
        )
    }

    #[test]
    fn encode_writes_what_format_wrote() {
        let mut unsigned = vec![0, 1, 9, 10, 11, 99, 100, 12_345, u64::MAX - 1, u64::MAX];
        let mut signed = vec![
            0,
            1,
            -1,
            9,
            -9,
            10,
            -10,
            1_733_000_000_000,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ];
        for p in 0..20 {
            let n = 10u64.pow(p);
            unsigned.extend([n - 1, n, n + 1]);
            let n = n as i64;
            signed.extend([n - 1, n, -n, 1 - n]);
        }
        for (i, &version) in unsigned.iter().enumerate() {
            for (j, &millis) in signed.iter().enumerate() {
                let t = |k: usize| Timestamp::from_millis(signed[(j + k) % signed.len()]);
                let r = LoadedRecord {
                    version,
                    load: unsigned[(i + 1) % unsigned.len()],
                    created_at: Timestamp::from_millis(millis),
                    last_seen_at: t(1),
                    absolute_deadline: t(2),
                    auth_time: (j % 2 == 0).then(|| t(3)),
                };
                let text = r.encode();
                assert_eq!(text, reference(&r));
                assert_eq!(LoadedRecord::decode(&text), Some(r));
            }
        }
    }

    fn from(pairs: &[(&str, &str)]) -> Result<AdapterConfig> {
        AdapterConfig::from_vars(&Vars::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn from_vars_reads_every_variable() {
        let c = from(&[
            (ABSOLUTE_TIMEOUT_VAR, "60000"),
            (MAX_DATA_BYTES_VAR, "100"),
            (USER_ID_KEY_VAR, " user "),
        ])
        .unwrap();
        assert_eq!(c.absolute_timeout(), Duration::from_secs(60));
        assert_eq!(c.max_data_bytes(), 100);
        assert_eq!(c.user_id_key(), Some("user"));
        let c = from(&[(MAX_DATA_BYTES_VAR, "2 MiB")]).unwrap();
        assert_eq!(c.max_data_bytes(), 2 << 20);
        assert_eq!(from(&[]).unwrap(), AdapterConfig::default());
        // Blank is unset, as for every variable.
        assert_eq!(
            from(&[(USER_ID_KEY_VAR, "  "), (ABSOLUTE_TIMEOUT_VAR, "")]).unwrap(),
            AdapterConfig::new()
        );
    }

    #[test]
    fn from_vars_rejects_bad_values_naming_the_variable() {
        for (name, value) in [
            (ABSOLUTE_TIMEOUT_VAR, "0"),
            (ABSOLUTE_TIMEOUT_VAR, "soon"),
            (ABSOLUTE_TIMEOUT_VAR, "1.5"),
            (ABSOLUTE_TIMEOUT_VAR, "-1"),
            (MAX_DATA_BYTES_VAR, "-1"),
            (MAX_DATA_BYTES_VAR, "0"),
            (MAX_DATA_BYTES_VAR, "0KiB"),
            (MAX_DATA_BYTES_VAR, "3 kb"),
        ] {
            match from(&[(name, value)]) {
                Err(Error::Config(m)) => assert!(
                    m.starts_with(&format!("{name}: expected "))
                        && m.ends_with(&format!("{value:?}")),
                    "{name}={value}: {m}"
                ),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn defaults_and_setters() {
        let c = AdapterConfig::new();
        assert_eq!(c, AdapterConfig::default());
        assert_eq!(c.absolute_timeout(), Duration::from_secs(12 * 3600));
        assert_eq!(c.max_data_bytes(), 64 * 1024);
        assert_eq!(c.user_id_key(), None);
        c.validate().unwrap();
        let c = c
            .with_absolute_timeout(Duration::from_secs(5))
            .with_max_data_bytes(10)
            .with_user_id_key("uid");
        assert_eq!(c.absolute_timeout(), Duration::from_secs(5));
        assert_eq!(c.max_data_bytes(), 10);
        assert_eq!(c.user_id_key(), Some("uid"));
        c.validate().unwrap();
    }

    #[test]
    fn validate_names_the_field() {
        for (config, field) in [
            (
                AdapterConfig::new().with_absolute_timeout(Duration::ZERO),
                "absolute_timeout",
            ),
            (
                AdapterConfig::new().with_max_data_bytes(0),
                "max_data_bytes",
            ),
            (AdapterConfig::new().with_user_id_key(""), "user_id_key"),
        ] {
            match config.validate() {
                Err(Error::Config(m)) => assert!(m.starts_with(field), "{m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        for auth_time in [None, Some(Timestamp::from_millis(7))] {
            let l = LoadedRecord {
                version: u64::MAX - 1,
                load: 42,
                created_at: Timestamp::from_millis(1),
                last_seen_at: Timestamp::from_millis(-2),
                absolute_deadline: Timestamp::from_millis(3),
                auth_time,
            };
            assert_eq!(LoadedRecord::decode(&l.encode()), Some(l));
        }
        for bad in [
            "",
            "v1:",
            "v2:1:1:1:1:1:-",
            "v1:1:1:1:1:1:-:extra",
            "v1:x:1:1:1:1:-",
        ] {
            assert_eq!(LoadedRecord::decode(bad), None, "{bad}");
        }
    }
}
