//! Key names and the stored encoding.
//!
//! # Keys
//! With prefix `P` and a storage key whose lowercase hex is `H` (64
//! characters, `HH` its first two):
//!
//! | key | type | holds | expires (PEXPIREAT) |
//! | --- | --- | --- | --- |
//! | `{P:HH}:s:H` | hash | a session or a forwarder | `expires_at` / `until`, plus slack |
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
//! A session is a hash with fields `v` (version), `u` (user id, absent when
//! anonymous), `c` (created), `l` (last seen), `a` (auth time, absent when
//! none), `i` (idle deadline), `x` (absolute deadline), `m` (metadata), `d`
//! (data). Integers are canonical decimal text, which the Lua scripts compare
//! exactly (no floating point) and pass straight to `PEXPIREAT`. A forwarder
//! is a hash with `f` (successor storage key, 32 raw bytes), `s` (sealed
//! token) and `t` (until).
//!
//! Why a hash and not one blob: `load` is still one round trip (`HGETALL`),
//! but `touch` rewrites two small fields instead of the whole value, the CAS
//! scripts read only `v`, `i`, `x` (`HMGET`), and listing reads no data.

use redis::Value;
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

    /// `{P:HH}:s:H`.
    pub(crate) fn entry(&self, key: &StorageKey) -> String {
        let hex = key.to_hex();
        format!("{{{}:{}}}:s:{}", self.prefix, &hex[..2], hex)
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

/// The `PEXPIREAT` argument for an entry that expires at `deadline`.
/// Clamped to 2^53 - 1 ms (year 287,396), which the scripts can also represent.
pub(crate) fn ttl_at(deadline: Timestamp, slack: std::time::Duration) -> String {
    const MAX_EXPIRE_MS: i64 = (1 << 53) - 1;
    deadline
        .saturating_add(slack)
        .as_millis()
        .min(MAX_EXPIRE_MS)
        .to_string()
}

/// The session's fields, as alternating field/value script arguments.
pub(crate) fn session_fields(r: &SessionRecord, version: u64) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(18);
    let mut put = |f: &str, v: Vec<u8>| {
        out.push(f.as_bytes().to_vec());
        out.push(v);
    };
    put("v", version.to_string().into_bytes());
    if let Some(u) = &r.user_id {
        put("u", u.as_bytes().to_vec());
    }
    put("c", ts(r.created_at).into_bytes());
    put("l", ts(r.last_seen_at).into_bytes());
    if let Some(a) = r.auth_time {
        put("a", ts(a).into_bytes());
    }
    put("i", ts(r.idle_deadline).into_bytes());
    put("x", ts(r.absolute_deadline).into_bytes());
    put("m", r.meta.clone());
    put("d", r.data.clone());
    out
}

/// Fields read for a user listing (everything but the data), in this order.
pub(crate) const SUMMARY_FIELDS: [&str; 9] = ["v", "u", "c", "l", "a", "i", "x", "m", "f"];

fn bytes(v: Value) -> Result<Option<Vec<u8>>> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        Value::VerbatimString { text, .. } => Ok(Some(text.into_bytes())),
        Value::Int(i) => Ok(Some(i.to_string().into_bytes())),
        _ => Err(Error::codec("unexpected value type in a stored hash")),
    }
}

/// Field/value pairs of an `HGETALL` reply (RESP2 flat array or RESP3 map).
pub(crate) fn hash_pairs(v: Value) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    match v {
        Value::Nil => {}
        Value::Map(pairs) => {
            for (k, v) in pairs {
                if let (Some(k), Some(v)) = (bytes(k)?, bytes(v)?) {
                    out.push((k, v));
                }
            }
        }
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(Error::codec("odd HGETALL reply"));
            }
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let (Some(k), Some(v)) = (bytes(k)?, bytes(v)?) {
                    out.push((k, v));
                }
            }
        }
        _ => return Err(Error::codec("unexpected HGETALL reply")),
    }
    Ok(out)
}

fn int<T: std::str::FromStr>(field: &str, v: Option<&[u8]>) -> Result<T> {
    let v = v.ok_or_else(|| Error::codec(format!("stored session lacks field {field}")))?;
    std::str::from_utf8(v)
        .ok()
        .filter(|s| s == &"0" || (!s.starts_with('0') && !s.starts_with("-0")))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::codec(format!("stored field {field} is not an integer")))
}

fn time(field: &str, v: Option<&[u8]>) -> Result<Timestamp> {
    int::<i64>(field, v).map(Timestamp::from_millis)
}

/// One stored hash, by field name.
#[derive(Default)]
pub(crate) struct Fields {
    v: Option<Vec<u8>>,
    u: Option<Vec<u8>>,
    c: Option<Vec<u8>>,
    l: Option<Vec<u8>>,
    a: Option<Vec<u8>>,
    i: Option<Vec<u8>>,
    x: Option<Vec<u8>>,
    m: Option<Vec<u8>>,
    d: Option<Vec<u8>>,
    f: Option<Vec<u8>>,
    s: Option<Vec<u8>>,
    t: Option<Vec<u8>>,
}

impl Fields {
    fn set(&mut self, name: &[u8], value: Vec<u8>) {
        let slot = match name {
            b"v" => &mut self.v,
            b"u" => &mut self.u,
            b"c" => &mut self.c,
            b"l" => &mut self.l,
            b"a" => &mut self.a,
            b"i" => &mut self.i,
            b"x" => &mut self.x,
            b"m" => &mut self.m,
            b"d" => &mut self.d,
            b"f" => &mut self.f,
            b"s" => &mut self.s,
            b"t" => &mut self.t,
            // Unknown fields are ignored: a newer writer may add some.
            _ => return,
        };
        *slot = Some(value);
    }

    /// From an `HGETALL` reply.
    pub(crate) fn from_hgetall(v: Value) -> Result<Option<Self>> {
        let pairs = hash_pairs(v)?;
        if pairs.is_empty() {
            return Ok(None);
        }
        let mut f = Fields::default();
        for (k, v) in pairs {
            f.set(&k, v);
        }
        Ok(Some(f))
    }

    /// From an `HMGET` of [`SUMMARY_FIELDS`].
    pub(crate) fn from_summary_hmget(v: Value) -> Result<Option<Self>> {
        let Value::Array(items) = v else {
            return Err(Error::codec("unexpected HMGET reply"));
        };
        if items.len() != SUMMARY_FIELDS.len() {
            return Err(Error::codec("unexpected HMGET reply length"));
        }
        let mut f = Fields::default();
        let mut any = false;
        for (name, item) in SUMMARY_FIELDS.iter().zip(items) {
            if let Some(b) = bytes(item)? {
                any = true;
                f.set(name.as_bytes(), b);
            }
        }
        Ok(any.then_some(f))
    }

    fn is_forwarder(&self) -> Result<bool> {
        match (self.v.is_some(), self.f.is_some()) {
            (true, false) => Ok(false),
            (false, true) => Ok(true),
            _ => Err(Error::codec(
                "stored entry is neither a session nor a forwarder",
            )),
        }
    }

    fn record(self, with_data: bool) -> Result<SessionRecord> {
        let user_id = match self.u {
            Some(u) => Some(
                String::from_utf8(u).map_err(|_| Error::codec("stored user id is not UTF-8"))?,
            ),
            None => None,
        };
        Ok(SessionRecord {
            version: int("v", self.v.as_deref())?,
            user_id,
            created_at: time("c", self.c.as_deref())?,
            last_seen_at: time("l", self.l.as_deref())?,
            auth_time: match self.a.as_deref() {
                Some(a) => Some(time("a", Some(a))?),
                None => None,
            },
            idle_deadline: time("i", self.i.as_deref())?,
            absolute_deadline: time("x", self.x.as_deref())?,
            meta: self.m.unwrap_or_default(),
            data: if with_data {
                self.d
                    .ok_or_else(|| Error::codec("stored session lacks field d"))?
            } else {
                Vec::new()
            },
        })
    }

    /// The entry, whatever its liveness.
    pub(crate) fn into_lookup(self) -> Result<Lookup> {
        if self.is_forwarder()? {
            let successor = StorageKey::try_from_slice(self.f.as_deref().unwrap_or_default())?;
            Ok(Lookup::Forwarded(Forward {
                successor,
                sealed_token: self
                    .s
                    .ok_or_else(|| Error::codec("stored forwarder lacks field s"))?,
                until: time("t", self.t.as_deref())?,
            }))
        } else {
            Ok(Lookup::Session(self.record(true)?))
        }
    }

    /// For listings: `Ok(None)` for a forwarder, else the record without data.
    pub(crate) fn into_summary_record(self) -> Result<Option<SessionRecord>> {
        if self.is_forwarder()? {
            return Ok(None);
        }
        self.record(false).map(Some)
    }
}

/// A listed session, if `fields` is a session of `user_id` live at `now`.
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

    #[test]
    fn corrupt_fields_are_codec_errors() {
        let pairs = |p: &[(&str, &str)]| {
            Value::Array(
                p.iter()
                    .flat_map(|(k, v)| {
                        [
                            Value::BulkString(k.as_bytes().to_vec()),
                            Value::BulkString(v.as_bytes().to_vec()),
                        ]
                    })
                    .collect(),
            )
        };
        let bad: &[&[(&str, &str)]] = &[
            &[("zz", "1")],
            &[("v", "1")],
            &[
                ("v", "x"),
                ("c", "1"),
                ("l", "1"),
                ("i", "1"),
                ("x", "1"),
                ("d", ""),
            ],
            &[
                ("v", "01"),
                ("c", "1"),
                ("l", "1"),
                ("i", "1"),
                ("x", "1"),
                ("d", ""),
            ],
            &[("v", "1"), ("f", "short"), ("s", ""), ("t", "1")],
            &[("f", "0123456789abcdef0123456789abcdef"), ("t", "1")],
        ];
        for p in bad {
            let r = Fields::from_hgetall(pairs(p))
                .unwrap()
                .unwrap()
                .into_lookup();
            assert!(matches!(r, Err(Error::Codec { .. })), "{p:?}");
        }
        let ok = pairs(&[
            ("v", "7"),
            ("c", "-5"),
            ("l", "0"),
            ("i", "10"),
            ("x", "9223372036854775807"),
            ("m", ""),
            ("d", "hi"),
        ]);
        match Fields::from_hgetall(ok)
            .unwrap()
            .unwrap()
            .into_lookup()
            .unwrap()
        {
            Lookup::Session(r) => {
                assert_eq!(r.version, 7);
                assert_eq!(r.created_at, Timestamp::from_millis(-5));
                assert_eq!(r.absolute_deadline, Timestamp::MAX);
                assert_eq!(r.data, b"hi");
                assert_eq!(r.user_id, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(Fields::from_hgetall(Value::Array(vec![]))
            .unwrap()
            .is_none());
    }
}
