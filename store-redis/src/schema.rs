//! Key names and the stored encoding.
//!
//! # Keys
//! With prefix `P` and a storage key whose lowercase hex is `H` (64
//! characters, `HH` its first two):
//!
//! | key | type | holds | expires (PEXPIREAT) |
//! | --- | --- | --- | --- |
//! | `{P:HH}:s:H` | string | a session or a forwarder (see Values) | `expires_at` / `until`, plus slack |
//! | `{P:u:U}` | sorted set | user index: members `H`, score = the session's absolute deadline | max score, plus slack |
//! | `{P:u:U}:t` | hash | user index: member `H` → server time (ms) it was added | same as the sorted set |
//!
//! where `U` is the hex SHA-256 of the user id (fixed length, any user id is
//! safe in a key name, and key names do not reveal user ids).
//!
//! The hash tag `{P:HH}` holds the first 8 bits of the storage key, so a
//! session and its rotation successor (generated with the same first 8 bits,
//! see [`AFFINITY_BITS`]) live in one cluster slot and a rotation is one
//! atomic script. A user's index keys share the tag `{P:u:U}`.
//!
//! # Values
//! One Redis string per entry, so that `load` is one `GET`, as cheap as a
//! raw read. It starts with a fixed-width text header that the Lua scripts
//! read with `GETRANGE` and patch with `SETRANGE` (so `touch` rewrites 40
//! bytes, never the data), followed by binary fields only Rust reads:
//!
//! ```text
//! session:   'S' version(20) idle(20) absolute(20) last_seen(20) 'u'|'a' user_len(10) '\n'
//!            user bytes, created (i64 BE), auth flag (1) + auth time (i64 BE),
//!            meta length (u32 BE) + meta, data (the rest)
//! forwarder: 'F' until(20) '\n' successor (32 raw bytes) sealed token (the rest)
//! ```
//!
//! Versions are 20 zero-padded digits; instants are a sign and 19 digits (all
//! of `i64`, exact: the scripts compare them as decimal strings, never as
//! floating point). A value that does not parse is [`Error::Codec`], never a
//! panic.

use sha2::{Digest, Sha256};

use session_store_core::{
    Error, Forward, Lookup, Result, SessionRecord, SessionSummary, StorageKey, Timestamp,
};

/// Leading storage-key bits shared by a session and its rotation successor.
pub const AFFINITY_BITS: u8 = 8;

/// Key naming for one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// `{P:HH}:s:H`. Built in one allocation, the hex on the stack: it is
    /// on every operation's path.
    pub(crate) fn entry(&self, key: &StorageKey) -> String {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(key.as_bytes(), &mut buf).expect("32 bytes are 64 hex digits");
        let hex = std::str::from_utf8(&buf).expect("hex digits are ASCII");
        let mut out = String::with_capacity(self.prefix.len() + hex.len() + 8);
        out.push('{');
        out.push_str(&self.prefix);
        out.push(':');
        out.push_str(&hex[..2]);
        out.push_str("}:s:");
        out.push_str(hex);
        out
    }

    /// The user index: (`{P:u:U}`, `{P:u:U}:t`).
    pub(crate) fn user(&self, user_id: &str) -> (String, String) {
        let digest: [u8; 32] = Sha256::digest(user_id.as_bytes()).into();
        let zset = format!("{{{}:u:{}}}", self.prefix, hex::encode(digest));
        let times = format!("{zset}:t");
        (zset, times)
    }

    /// A SCAN pattern that covers every key of this prefix (and possibly keys
    /// of longer prefixes, which [`Keys::owns`] filters out).
    pub(crate) fn scan_pattern(&self) -> String {
        // The prefix alphabet has no glob metacharacters.
        format!("{{{}:*", self.prefix)
    }

    /// A SCAN pattern that covers the entry keys (`{P:HH}:s:H`) of this
    /// prefix, and possibly keys of longer prefixes, which
    /// [`Keys::parse_entry`] filters out.
    pub(crate) fn entry_scan_pattern(&self) -> String {
        format!("{{{}:??}}:s:*", self.prefix)
    }

    /// The storage key of an entry key name of this prefix; `None` for any
    /// other name (user indexes, other prefixes).
    pub(crate) fn parse_entry(&self, name: &[u8]) -> Option<StorageKey> {
        let hex = name
            .strip_prefix(b"{")?
            .strip_prefix(self.prefix.as_bytes())?
            .strip_prefix(b":")?;
        if hex.len() != 2 + 4 + 64 || &hex[2..6] != b"}:s:" || hex[..2] != hex[6..8] {
            return None;
        }
        parse_member(&hex[6..]).ok()
    }

    /// Whether `key` is exactly one of this prefix's key shapes.
    pub(crate) fn owns(&self, key: &[u8]) -> bool {
        let Some(rest) = key
            .strip_prefix(b"{")
            .and_then(|r| r.strip_prefix(self.prefix.as_bytes()))
            .and_then(|r| r.strip_prefix(b":"))
        else {
            return false;
        };
        let is_hex = |s: &[u8]| s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        // HH}:s:H
        if rest.len() == 2 + 4 + 64 && &rest[2..6] == b"}:s:" {
            return is_hex(&rest[..2]) && is_hex(&rest[6..]) && rest[..2] == rest[6..8];
        }
        // u:U}  or  u:U}:t
        if let Some(u) = rest.strip_prefix(b"u:") {
            let u = u.strip_suffix(b":t").unwrap_or(u);
            return u.len() == 65 && u[64] == b'}' && is_hex(&u[..64]);
        }
        false
    }
}

/// The 64-character hex member of a storage key in a user index.
pub(crate) fn member(key: &StorageKey) -> String {
    key.to_hex()
}

/// Parses a user-index member back into a storage key.
pub(crate) fn parse_member(member: &[u8]) -> Result<StorageKey> {
    if member.len() != 64 {
        return Err(Error::codec("user index member of the wrong length"));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(member, &mut out)
        .map_err(|_| Error::codec("user index member is not hex"))?;
    Ok(StorageKey::from_bytes(out))
}

pub(crate) fn ts(t: Timestamp) -> String {
    t.as_millis().to_string()
}

/// The `PEXPIREAT`/`PXAT` argument for an entry that expires at `deadline`:
/// clamped to `[1, 2^53 - 1]` ms (Redis rejects 0 and below for `PXAT`; the
/// scripts' doubles are exact up to 2^53, year 287,396).
pub(crate) fn ttl_at(deadline: Timestamp, slack: std::time::Duration) -> String {
    const MAX_EXPIRE_MS: i64 = (1 << 53) - 1;
    deadline
        .saturating_add(slack)
        .as_millis()
        .clamp(1, MAX_EXPIRE_MS)
        .to_string()
}

/// Length of a session header (through the newline).
pub(crate) const SESSION_HEADER: usize = 93;
/// Length of a forwarder header (through the newline).
const FORWARD_HEADER: usize = 22;

/// A version as stored: 20 zero-padded digits.
pub(crate) fn fixed_version(v: u64) -> [u8; 20] {
    let mut out = [b'0'; 20];
    digits_into(v, &mut out);
    out
}

/// A session header's first 21 bytes for `v`: `'S'` and the version as
/// stored (the `SAVE` script compares them in place).
pub(crate) fn expected_head(v: u64) -> [u8; 21] {
    let mut out = [b'0'; 21];
    out[0] = b'S';
    digits_into(v, &mut out[1..]);
    out
}

/// `SAVE`'s mode argument: `"1"` once the user-index entry is written, else
/// `"F"` when `now` is at or after 0 and before the new absolute deadline
/// (the script may then take its fast path, see `scripts`), else `"0"`.
pub(crate) fn save_mode(now: Timestamp, absolute: Timestamp, index_written: bool) -> &'static str {
    if index_written {
        "1"
    } else if now.as_millis() >= 0 && now < absolute {
        "F"
    } else {
        "0"
    }
}

/// `TOUCH`'s mode argument: `"F"` when `now`, the idle deadline and the
/// last-seen time are all at or after 0 (the script may then take its fast
/// path, see `scripts`), else `"0"`.
pub(crate) fn touch_mode(now: Timestamp, idle: Timestamp, last_seen: Timestamp) -> &'static str {
    if now.as_millis() >= 0 && idle.as_millis() >= 0 && last_seen.as_millis() >= 0 {
        "F"
    } else {
        "0"
    }
}

/// `ROTATE`'s mode argument: `"F"` when `now` is at or after 0 (the script
/// may then take its fast path, see `scripts`), else `"0"`.
pub(crate) fn rotate_mode(now: Timestamp) -> &'static str {
    if now.as_millis() >= 0 {
        "F"
    } else {
        "0"
    }
}

/// Writes `v` right-aligned into `out` as decimal digits (`out` holds `'0'`s
/// and is wide enough: 20 digits for any `u64`).
fn digits_into(mut v: u64, out: &mut [u8]) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// An instant as stored: sign and 19 digits. The scripts take their
/// instant arguments in this form too and compare them as text.
pub(crate) fn fixed_time(t: Timestamp) -> [u8; 20] {
    let ms = t.as_millis();
    let mut out = [b'0'; 20];
    out[0] = if ms < 0 { b'-' } else { b'+' };
    digits_into(ms.unsigned_abs(), &mut out[1..]);
    out
}

/// A user as a session header stores it from the user flag on: `'u'`, the
/// length (10 digits), `'\n'`, the user id. The scripts compare an owner
/// with one string equality; `None` (anonymous) is empty.
pub(crate) fn owner(user: Option<&str>) -> Vec<u8> {
    let Some(user) = user else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(12 + user.len());
    out.push(b'u');
    out.extend_from_slice(&user_len(user.len()));
    out.push(b'\n');
    out.extend_from_slice(user.as_bytes());
    out
}

/// A user id length as stored: 10 digits (a user id longer than that is
/// refused by the manager's limits long before).
fn user_len(n: usize) -> [u8; 10] {
    let mut out = [b'0'; 10];
    digits_into(u64::try_from(n).unwrap_or(u64::MAX), &mut out);
    out
}

/// The last byte a script reads of a session of `user` (0-based, for
/// `GETRANGE`): the header and the user id.
pub(crate) fn header_end(user: Option<&str>) -> String {
    (SESSION_HEADER - 1 + user.map_or(0, str::len)).to_string()
}

/// Encodes a session stored with `version`.
pub(crate) fn encode_session(r: &SessionRecord, version: u64) -> Vec<u8> {
    let user = r.user_id.as_deref().unwrap_or("").as_bytes();
    let mut out =
        Vec::with_capacity(SESSION_HEADER + user.len() + 21 + r.meta.len() + r.data.len());
    out.push(b'S');
    out.extend_from_slice(&fixed_version(version));
    out.extend_from_slice(&fixed_time(r.idle_deadline));
    out.extend_from_slice(&fixed_time(r.absolute_deadline));
    out.extend_from_slice(&fixed_time(r.last_seen_at));
    out.push(if r.user_id.is_some() { b'u' } else { b'a' });
    out.extend_from_slice(&user_len(user.len()));
    out.push(b'\n');
    debug_assert_eq!(out.len(), SESSION_HEADER);
    out.extend_from_slice(user);
    out.extend_from_slice(&r.created_at.as_millis().to_be_bytes());
    match r.auth_time {
        Some(a) => {
            out.push(1);
            out.extend_from_slice(&a.as_millis().to_be_bytes());
        }
        None => out.extend_from_slice(&[0; 9]),
    }
    // Metadata is small (the manager caps it); a u32 length always fits.
    out.extend_from_slice(
        &u32::try_from(r.meta.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&r.meta);
    out.extend_from_slice(&r.data);
    out
}

/// Encodes a renewal forwarder.
pub(crate) fn encode_forwarder(successor: &StorageKey, sealed: &[u8], until: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(FORWARD_HEADER + 32 + sealed.len());
    out.push(b'F');
    out.extend_from_slice(&fixed_time(until));
    out.push(b'\n');
    out.extend_from_slice(successor.as_bytes());
    out.extend_from_slice(sealed);
    out
}

fn corrupt(what: &str) -> Error {
    Error::codec(format!("stored entry is corrupt: {what}"))
}

fn digits(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &c| {
        let d = c.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn parse_version(field: &[u8]) -> Result<u64> {
    digits(field).ok_or_else(|| corrupt("version"))
}

fn parse_time(field: &[u8], what: &str) -> Result<Timestamp> {
    let (sign, rest) = field.split_first().ok_or_else(|| corrupt(what))?;
    let magnitude = i128::from(digits(rest).ok_or_else(|| corrupt(what))?);
    let ms = match sign {
        b'+' => magnitude,
        b'-' => -magnitude,
        _ => return Err(corrupt(what)),
    };
    i64::try_from(ms)
        .map(Timestamp::from_millis)
        .map_err(|_| corrupt(what))
}

/// A cursor over the binary part.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        let b = self.take(8, what)?;
        Ok(i64::from_be_bytes(b.try_into().map_err(|_| corrupt(what))?))
    }
}

/// Decodes a stored entry, whatever its liveness.
pub(crate) fn decode(bytes: &[u8]) -> Result<Lookup> {
    match bytes.first() {
        Some(b'S') => decode_session(bytes).map(Lookup::Session),
        Some(b'F') => {
            if bytes.len() < FORWARD_HEADER + 32 || bytes[FORWARD_HEADER - 1] != b'\n' {
                return Err(corrupt("forwarder header"));
            }
            let until = parse_time(&bytes[1..21], "until")?;
            let successor =
                StorageKey::try_from_slice(&bytes[FORWARD_HEADER..FORWARD_HEADER + 32])?;
            Ok(Lookup::Forwarded(Forward {
                successor,
                sealed_token: bytes[FORWARD_HEADER + 32..].to_vec(),
                until,
            }))
        }
        _ => Err(corrupt("unknown kind")),
    }
}

fn decode_session(bytes: &[u8]) -> Result<SessionRecord> {
    if bytes.len() < SESSION_HEADER || bytes[SESSION_HEADER - 1] != b'\n' {
        return Err(corrupt("session header"));
    }
    let version = parse_version(&bytes[1..21])?;
    let idle_deadline = parse_time(&bytes[21..41], "idle deadline")?;
    let absolute_deadline = parse_time(&bytes[41..61], "absolute deadline")?;
    let last_seen_at = parse_time(&bytes[61..81], "last seen")?;
    let has_user = match bytes[81] {
        b'u' => true,
        b'a' => false,
        _ => return Err(corrupt("user flag")),
    };
    let user_len = digits(&bytes[82..92]).ok_or_else(|| corrupt("user length"))?;
    let mut rest = Reader(&bytes[SESSION_HEADER..]);
    let user = rest.take(
        usize::try_from(user_len).map_err(|_| corrupt("user length"))?,
        "user",
    )?;
    let user_id = if has_user {
        Some(String::from_utf8(user.to_vec()).map_err(|_| corrupt("user id is not UTF-8"))?)
    } else if user.is_empty() {
        None
    } else {
        return Err(corrupt("anonymous session with a user"));
    };
    let created_at = Timestamp::from_millis(rest.i64("created")?);
    let auth_time = match rest.take(1, "auth flag")?[0] {
        0 => {
            rest.take(8, "auth time")?;
            None
        }
        1 => Some(Timestamp::from_millis(rest.i64("auth time")?)),
        _ => return Err(corrupt("auth flag")),
    };
    let meta_len = u32::from_be_bytes(
        rest.take(4, "meta length")?
            .try_into()
            .map_err(|_| corrupt("meta length"))?,
    );
    let meta = rest
        .take(
            usize::try_from(meta_len).map_err(|_| corrupt("meta length"))?,
            "meta",
        )?
        .to_vec();
    Ok(SessionRecord {
        version,
        user_id,
        created_at,
        last_seen_at,
        auth_time,
        idle_deadline,
        absolute_deadline,
        meta,
        data: rest.0.to_vec(),
    })
}

/// A listed session, if `record` is a session of `user_id` live at `now`.
pub(crate) fn live_summary(
    key: StorageKey,
    user_id: &str,
    record: &SessionRecord,
    now: Timestamp,
) -> Option<SessionSummary> {
    (record.user_id.as_deref() == Some(user_id) && record.is_live(now))
        .then(|| SessionSummary::of(key, user_id.to_owned(), record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_store_core::SessionToken;

    #[test]
    fn entry_names_are_the_documented_form() {
        let keys = Keys::new("app:v1");
        for _ in 0..100 {
            let key = SessionToken::generate().storage_key();
            let hex = key.to_hex();
            assert_eq!(
                keys.entry(&key),
                format!("{{app:v1:{}}}:s:{hex}", &hex[..2])
            );
        }
    }

    #[test]
    fn decimal_fields_parse_exactly() {
        assert_eq!(digits(b"00000000000000000042"), Some(42));
        assert_eq!(digits(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(digits(b"18446744073709551616"), None);
        assert_eq!(digits(b""), None);
        assert_eq!(digits(b"12a4"), None);
        assert_eq!(digits(b"+12"), None);
    }

    #[test]
    fn key_shapes_are_owned_exactly() {
        let keys = Keys::new("a");
        let k = SessionToken::generate().storage_key();
        let entry = keys.entry(&k);
        assert!(entry.starts_with("{a:"));
        assert!(keys.owns(entry.as_bytes()));
        let (z, t) = keys.user("alice");
        assert!(keys.owns(z.as_bytes()) && keys.owns(t.as_bytes()));
        // Longer prefixes that start with "a:" are not ours.
        for other in ["a:u", "a:0f", "a:b"] {
            let o = Keys::new(other);
            assert!(!keys.owns(o.entry(&k).as_bytes()), "{other}");
            let (oz, ot) = o.user("alice");
            assert!(!keys.owns(oz.as_bytes()) && !keys.owns(ot.as_bytes()));
            assert!(!o.owns(entry.as_bytes()) && !o.owns(z.as_bytes()));
        }
        assert!(!keys.owns(b"{a:zz}:s:00"));
        assert!(!keys.owns(b"session"));
    }

    #[test]
    fn successors_share_the_hash_tag() {
        let keys = Keys::new("p");
        let k = SessionToken::generate().storage_key();
        let succ = SessionToken::generate_with_affinity(&k, AFFINITY_BITS).storage_key();
        let tag = |s: String| s[..s.find('}').unwrap() + 1].to_owned();
        assert_eq!(tag(keys.entry(&k)), tag(keys.entry(&succ)));
    }

    fn sample(user: Option<&str>) -> SessionRecord {
        SessionRecord {
            version: 0,
            user_id: user.map(str::to_owned),
            created_at: Timestamp::from_millis(-5),
            last_seen_at: Timestamp::from_millis(0),
            auth_time: user.map(|_| Timestamp::from_millis(i64::MIN)),
            idle_deadline: Timestamp::from_millis(10),
            absolute_deadline: Timestamp::MAX,
            meta: b"meta".to_vec(),
            data: b"da\nta".to_vec(),
        }
    }

    #[test]
    fn entries_round_trip() {
        for user in [None, Some(""), Some("alice\n{x}")] {
            let r = sample(user);
            let bytes = encode_session(&r, u64::MAX);
            let back = decode(&bytes).unwrap();
            assert_eq!(
                back,
                Lookup::Session(SessionRecord {
                    version: u64::MAX,
                    ..r
                })
            );
        }
        let succ = SessionToken::generate().storage_key();
        let f = encode_forwarder(&succ, b"sealed", Timestamp::from_millis(-1));
        assert_eq!(
            decode(&f).unwrap(),
            Lookup::Forwarded(Forward {
                successor: succ,
                sealed_token: b"sealed".to_vec(),
                until: Timestamp::from_millis(-1),
            })
        );
    }

    #[test]
    fn owner_and_header_end_match_the_stored_header() {
        for user in [None, Some(""), Some("alice\n{x}")] {
            let bytes = encode_session(&sample(user), 1);
            let end: usize = header_end(user).parse().unwrap();
            let read = &bytes[..=end];
            match user {
                Some(_) => assert_eq!(&read[81..], owner(user).as_slice()),
                None => assert!(owner(user).is_empty() && end == SESSION_HEADER - 1),
            }
        }
        assert_eq!(
            &fixed_time(Timestamp::from_millis(-1)),
            b"-0000000000000000001"
        );
        assert_eq!(
            &fixed_time(Timestamp::from_millis(i64::MIN)),
            b"-9223372036854775808"
        );
        assert_eq!(&fixed_time(Timestamp::MAX), b"+9223372036854775807");
        assert_eq!(&fixed_version(u64::MAX), b"18446744073709551615");
        assert_eq!(&fixed_version(7), b"00000000000000000007");
        assert_eq!(&user_len(42), b"0000000042");
    }

    #[test]
    fn corrupt_values_are_codec_errors() {
        let good = encode_session(&sample(Some("bob")), 3);
        let mut bad: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"X".to_vec(),
            b"S".to_vec(),
            good[..SESSION_HEADER - 1].to_vec(),
            good[..SESSION_HEADER + 2].to_vec(),
            b"F+0000000000000000001\nshort".to_vec(),
        ];
        for (at, byte) in [
            (1, b'x'),
            (21, b'*'),
            (30, b'a'),
            (81, b'z'),
            (85, b'-'),
            (92, b' '),
        ] {
            let mut b = good.clone();
            b[at] = byte;
            bad.push(b);
        }
        let mut big = good.clone();
        big[82..92].copy_from_slice(b"9999999999");
        bad.push(big);
        for b in bad {
            assert!(matches!(decode(&b), Err(Error::Codec { .. })), "{b:?}");
        }
    }
}
