//! The on-disk layout: tree names, index keys and the record encoding.
//!
//! Every store lives in four sled trees named `<prefix>.<tree>`:
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `records` | storage key (32 bytes) | an encoded [`Lookup`] (session or forwarder) |
//! | `users` | `u32` BE length of the user id, the user id, the storage key | empty |
//! | `expiry` | expiry instant as an order-preserving `u64` BE, the storage key | empty |
//! | `meta` | `schema_version` | `u32` BE |
//!
//! The length prefix in `users` makes a prefix scan list exactly one user's
//! sessions (`"ab"` never matches `"abc"`). The `expiry` key sorts by time, so
//! cleanup reads expired entries from the start of the tree and stops at `now`.
//!
//! Record values start with a format byte (currently 1) and a kind byte,
//! followed by fixed-width big-endian integers and `u32`-length-prefixed byte
//! strings. Decoding checks every length against the bytes that are actually
//! there and rejects trailing bytes: corrupt input is an
//! [`Error::Codec`], never a panic.

use session_store_core::{Error, Forward, Lookup, Result, SessionRecord, StorageKey, Timestamp};

/// The layout version this library writes and understands (stored in `meta`).
pub const SCHEMA_VERSION: u32 = 1;

/// The key of the schema version in the `meta` tree.
pub(crate) const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";

/// The first byte of every record value.
pub(crate) const RECORD_FORMAT: u8 = 1;

const KIND_SESSION: u8 = 0;
const KIND_FORWARD: u8 = 1;

/// Length of a [`StorageKey`] in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// Length of an encoded expiry instant.
const TIME_LEN: usize = 8;

/// The four tree names of a namespace.
#[derive(Debug, Clone)]
pub(crate) struct TreeNames {
    pub records: String,
    pub users: String,
    pub expiry: String,
    pub meta: String,
}

impl TreeNames {
    /// The names for `prefix` (already validated).
    pub fn new(prefix: &str) -> Self {
        TreeNames {
            records: format!("{prefix}.records"),
            users: format!("{prefix}.users"),
            expiry: format!("{prefix}.expiry"),
            meta: format!("{prefix}.meta"),
        }
    }
}

/// Checks a tree-name prefix: 1 to 48 characters of ASCII letters, digits,
/// `_` and `-`, starting with a letter or digit. The `.` that joins prefix and
/// tree name can therefore never occur in a prefix, so two prefixes never
/// produce the same tree name, and nothing can collide with sled's own
/// `__sled__default` tree.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    let ok_len = (1..=48).contains(&prefix.len());
    let ok_first = prefix
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    let ok_chars = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok_len && ok_first && ok_chars {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid sled tree prefix {prefix:?}: 1 to 48 of [A-Za-z0-9_-], starting with a letter or digit"
        )))
    }
}

/// An instant as 8 bytes whose byte order is the time order (sign bit flipped).
pub(crate) fn encode_time(t: Timestamp) -> [u8; TIME_LEN] {
    ((t.as_millis() as u64) ^ (1 << 63)).to_be_bytes()
}

fn decode_time(bytes: [u8; TIME_LEN]) -> Timestamp {
    Timestamp::from_millis((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// The `expiry` key of an entry expiring at `t`.
pub(crate) fn expiry_key(t: Timestamp, key: &StorageKey) -> [u8; TIME_LEN + KEY_LEN] {
    let mut out = [0u8; TIME_LEN + KEY_LEN];
    out[..TIME_LEN].copy_from_slice(&encode_time(t));
    out[TIME_LEN..].copy_from_slice(key.as_bytes());
    out
}

/// Splits an `expiry` key into its instant and storage key.
pub(crate) fn parse_expiry_key(bytes: &[u8]) -> Result<(Timestamp, StorageKey)> {
    if bytes.len() != TIME_LEN + KEY_LEN {
        return Err(Error::codec(format!(
            "expiry index key of {} bytes",
            bytes.len()
        )));
    }
    let mut t = [0u8; TIME_LEN];
    t.copy_from_slice(&bytes[..TIME_LEN]);
    Ok((
        decode_time(t),
        StorageKey::try_from_slice(&bytes[TIME_LEN..])?,
    ))
}

/// The `users` prefix of every key of `user`.
pub(crate) fn user_prefix(user: &str) -> Result<Vec<u8>> {
    let len = u32::try_from(user.len()).map_err(|_| Error::TooLarge {
        what: "user id",
        limit: u32::MAX as usize,
        actual: user.len(),
    })?;
    let mut out = Vec::with_capacity(4 + user.len() + KEY_LEN);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(user.as_bytes());
    Ok(out)
}

/// The `users` key of `key` for `user`.
pub(crate) fn user_key(user: &str, key: &StorageKey) -> Result<Vec<u8>> {
    let mut out = user_prefix(user)?;
    out.extend_from_slice(key.as_bytes());
    Ok(out)
}

/// The storage key at the end of a `users` key.
pub(crate) fn parse_user_key(bytes: &[u8], prefix_len: usize) -> Result<StorageKey> {
    match bytes.get(prefix_len..) {
        Some(rest) => StorageKey::try_from_slice(rest),
        None => Err(Error::codec("user index key shorter than its prefix")),
    }
}

/// When an entry stops being live.
pub(crate) fn entry_expires_at(entry: &Lookup) -> Timestamp {
    match entry {
        Lookup::Session(r) => r.expires_at(),
        Lookup::Forwarded(f) => f.until,
    }
}

/// Encodes a session record.
pub(crate) fn encode_session(r: &SessionRecord) -> Result<Vec<u8>> {
    let user_len = r.user_id.as_ref().map_or(0, |u| u.len());
    let mut out = Vec::with_capacity(2 + 8 * 6 + 2 + 12 + user_len + r.meta.len() + r.data.len());
    out.push(RECORD_FORMAT);
    out.push(KIND_SESSION);
    out.extend_from_slice(&r.version.to_be_bytes());
    for t in [
        r.created_at,
        r.last_seen_at,
        r.idle_deadline,
        r.absolute_deadline,
    ] {
        out.extend_from_slice(&t.as_millis().to_be_bytes());
    }
    match r.auth_time {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.as_millis().to_be_bytes());
        }
        None => out.push(0),
    }
    match &r.user_id {
        Some(u) => {
            out.push(1);
            put_bytes(&mut out, u.as_bytes(), "user id")?;
        }
        None => out.push(0),
    }
    put_bytes(&mut out, &r.meta, "metadata")?;
    put_bytes(&mut out, &r.data, "data")?;
    Ok(out)
}

/// Encodes a forwarder.
pub(crate) fn encode_forward(f: &Forward) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(2 + KEY_LEN + 8 + 4 + f.sealed_token.len());
    out.push(RECORD_FORMAT);
    out.push(KIND_FORWARD);
    out.extend_from_slice(f.successor.as_bytes());
    out.extend_from_slice(&f.until.as_millis().to_be_bytes());
    put_bytes(&mut out, &f.sealed_token, "sealed token")?;
    Ok(out)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| Error::TooLarge {
        what,
        limit: u32::MAX as usize,
        actual: bytes.len(),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Decodes a value of the `records` tree (for audits and tools). Every read
/// is bounds-checked.
///
/// # Errors
/// [`Error::Codec`] for anything but a complete, well-formed value.
pub fn decode_entry(bytes: &[u8]) -> Result<Lookup> {
    let mut r = Reader { bytes, pos: 0 };
    let format = r.u8()?;
    if format != RECORD_FORMAT {
        return Err(Error::codec(format!("unknown record format {format}")));
    }
    let entry = match r.u8()? {
        KIND_SESSION => {
            let version = r.u64()?;
            let created_at = r.time()?;
            let last_seen_at = r.time()?;
            let idle_deadline = r.time()?;
            let absolute_deadline = r.time()?;
            let auth_time = match r.u8()? {
                0 => None,
                1 => Some(r.time()?),
                b => return Err(Error::codec(format!("bad auth_time flag {b}"))),
            };
            let user_id = match r.u8()? {
                0 => None,
                1 => Some(
                    String::from_utf8(r.bytes()?.to_vec())
                        .map_err(|_| Error::codec("user id is not UTF-8"))?,
                ),
                b => return Err(Error::codec(format!("bad user id flag {b}"))),
            };
            let meta = r.bytes()?.to_vec();
            let data = r.bytes()?.to_vec();
            Lookup::Session(SessionRecord {
                version,
                user_id,
                created_at,
                last_seen_at,
                auth_time,
                idle_deadline,
                absolute_deadline,
                meta,
                data,
            })
        }
        KIND_FORWARD => {
            let successor = StorageKey::try_from_slice(r.take(KEY_LEN)?)?;
            let until = r.time()?;
            let sealed_token = r.bytes()?.to_vec();
            Lookup::Forwarded(Forward {
                successor,
                sealed_token,
                until,
            })
        }
        kind => return Err(Error::codec(format!("unknown record kind {kind}"))),
    };
    if r.pos != bytes.len() {
        return Err(Error::codec(format!(
            "{} trailing bytes after the record",
            bytes.len() - r.pos
        )));
    }
    Ok(entry)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                Error::codec(format!(
                    "record truncated: need {n} bytes at offset {}, have {}",
                    self.pos,
                    self.bytes.len().saturating_sub(self.pos)
                ))
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn time(&mut self) -> Result<Timestamp> {
        Ok(Timestamp::from_millis(i64::from_be_bytes(self.array()?)))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        SessionRecord {
            version: 7,
            user_id: Some("alice".into()),
            created_at: Timestamp::from_millis(-5),
            last_seen_at: Timestamp::from_millis(10),
            auth_time: Some(Timestamp::from_millis(3)),
            idle_deadline: Timestamp::from_millis(100),
            absolute_deadline: Timestamp::MAX,
            meta: b"{\"ip\":\"127.0.0.1\"}".to_vec(),
            data: vec![0, 1, 2, 255],
        }
    }

    fn forward() -> Forward {
        Forward {
            successor: StorageKey::from_bytes([9; 32]),
            sealed_token: vec![1; 60],
            until: Timestamp::from_millis(i64::MIN),
        }
    }

    #[test]
    fn records_round_trip() {
        let mut anonymous = record();
        anonymous.user_id = None;
        anonymous.auth_time = None;
        anonymous.meta.clear();
        anonymous.data.clear();
        for r in [record(), anonymous] {
            let bytes = encode_session(&r).unwrap();
            assert_eq!(decode_entry(&bytes).unwrap(), Lookup::Session(r));
        }
        let f = forward();
        let bytes = encode_forward(&f).unwrap();
        assert_eq!(decode_entry(&bytes).unwrap(), Lookup::Forwarded(f));
    }

    /// Every truncation, every single-byte change and trailing garbage either
    /// decodes to something or is a codec error: never a panic.
    #[test]
    fn corrupt_bytes_are_codec_errors_never_panics() {
        for good in [
            encode_session(&record()).unwrap(),
            encode_forward(&forward()).unwrap(),
        ] {
            for len in 0..good.len() {
                assert!(
                    matches!(decode_entry(&good[..len]), Err(Error::Codec { .. })),
                    "truncated to {len}"
                );
            }
            let mut longer = good.clone();
            longer.push(0);
            assert!(matches!(decode_entry(&longer), Err(Error::Codec { .. })));
            for i in 0..good.len() {
                for v in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                    let mut bad = good.clone();
                    bad[i] = v;
                    let _ = decode_entry(&bad);
                }
            }
        }
        // Huge declared lengths must not allocate or panic.
        let mut huge = encode_session(&record()).unwrap();
        let data_len_at = huge.len() - 4 - 4;
        huge[data_len_at..data_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode_entry(&huge), Err(Error::Codec { .. })));
        for bad in [&[][..], &[2, 0], &[1, 9], &[1, 0, 0]] {
            assert!(matches!(decode_entry(bad), Err(Error::Codec { .. })));
        }
        // Invalid UTF-8 in the user id.
        let mut r = record();
        r.user_id = Some("ab".into());
        let mut bytes = encode_session(&r).unwrap();
        let at = bytes.windows(2).position(|w| w == b"ab").unwrap();
        bytes[at] = 0xff;
        assert!(matches!(decode_entry(&bytes), Err(Error::Codec { .. })));
    }

    #[test]
    fn time_encoding_preserves_order() {
        let times = [i64::MIN, -1_000, -1, 0, 1, 1_000, i64::MAX];
        for w in times.windows(2) {
            let (a, b) = (Timestamp::from_millis(w[0]), Timestamp::from_millis(w[1]));
            assert!(encode_time(a) < encode_time(b));
            assert_eq!(decode_time(encode_time(a)), a);
        }
        let key = StorageKey::from_bytes([3; 32]);
        let k = expiry_key(Timestamp::from_millis(42), &key);
        assert_eq!(
            parse_expiry_key(&k).unwrap(),
            (Timestamp::from_millis(42), key)
        );
        assert!(parse_expiry_key(&k[1..]).is_err());
    }

    #[test]
    fn user_keys_never_match_a_longer_user() {
        let key = StorageKey::from_bytes([1; 32]);
        let abc = user_key("abc", &key).unwrap();
        assert!(!abc.starts_with(&user_prefix("ab").unwrap()));
        assert!(abc.starts_with(&user_prefix("abc").unwrap()));
        let p = user_prefix("abc").unwrap().len();
        assert_eq!(parse_user_key(&abc, p).unwrap(), key);
        assert!(parse_user_key(&abc[..p + 3], p).is_err());
    }

    #[test]
    fn prefixes_are_validated() {
        for ok in ["a", "sessions", "tenant_1", "A-b", &"x".repeat(48)] {
            validate_prefix(ok).unwrap();
        }
        for bad in [
            "",
            "_x",
            "-x",
            "a.b",
            "a b",
            "é",
            "a/b",
            &"x".repeat(49),
            "__sled__default",
        ] {
            assert!(
                matches!(validate_prefix(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }
}
