//! Decoding Redis replies: the scripts' reply codes as one typed enum, and
//! the shapes of the other replies the store reads (index stamps and
//! members, `SCAN`, `CLUSTER SLOTS`, raw dumps).
//!
//! Every decoder returns an error for a reply it does not expect, never
//! panics: an unknown reply code, or one the script in question never
//! returns, is a permanent [`Error::Backend`] (the server runs a script this
//! crate did not send, or the scripts and this table disagree).

use std::collections::BTreeSet;
use std::fmt;

use redis::Value;
use session_store_core::{Error, Result};

/// The scripts that answer with a reply code (see [`crate::scripts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coded {
    /// `CREATE`: a logged-in session after its index entry.
    Create,
    /// `SAVE`: compare-and-swap of a whole session.
    Save,
    /// `TOUCH`: moves the idle deadline and last-seen time in place.
    Touch,
    /// `ROTATE`: moves a session to its successor, leaving a forwarder.
    Rotate,
    /// `DELETE_OWNED`: deletes a session if it belongs to a given user.
    DeleteOwned,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Coded::Create => "create",
            Coded::Save => "save",
            Coded::Touch => "touch",
            Coded::Rotate => "rotate",
            Coded::DeleteOwned => "delete_owned",
        })
    }
}

/// What a script's reply code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `1` from `CREATE`, `SAVE`, `TOUCH`, `ROTATE`: written.
    Done,
    /// `0` from `SAVE`, `TOUCH`, `ROTATE`: no session live at `now` (with the
    /// expected version, where one is given); nothing written.
    NotLive,
    /// `-1` from `CREATE`, `ROTATE`: an entry exists under the new key.
    Exists,
    /// `-2` from `SAVE`, `TOUCH`, `ROTATE`, `DELETE_OWNED`: the stored value
    /// is corrupt (a malformed header, or a key of another Redis type).
    Corrupt,
    /// `-3` from `CREATE`, `ROTATE`: the user-index entry is older than
    /// allowed; write it again and retry.
    IndexStale,
    /// `-4` from `SAVE`: the owner changes or the absolute deadline grows;
    /// write the user-index entry first, then retry.
    IndexFirst,
    /// `0` from `DELETE_OWNED`: no entry under the key.
    Missing,
    /// `1` from `DELETE_OWNED`: the user's session, not live at `now`, deleted.
    DeletedExpired,
    /// `2` from `DELETE_OWNED`: the user's live session, deleted.
    DeletedLive,
    /// `3` from `DELETE_OWNED`: a grace forwarder, kept.
    Forwarder,
    /// `4` from `DELETE_OWNED`: a session of another user, kept.
    OtherOwner,
}

/// Every (script, code) pair a script can return: the one table of reply
/// codes.
const CODES: &[(Coded, i64, Reply)] = &[
    (Coded::Create, 1, Reply::Done),
    (Coded::Create, -1, Reply::Exists),
    (Coded::Create, -3, Reply::IndexStale),
    (Coded::Save, 1, Reply::Done),
    (Coded::Save, 0, Reply::NotLive),
    (Coded::Save, -2, Reply::Corrupt),
    (Coded::Save, -4, Reply::IndexFirst),
    (Coded::Touch, 1, Reply::Done),
    (Coded::Touch, 0, Reply::NotLive),
    (Coded::Touch, -2, Reply::Corrupt),
    (Coded::Rotate, 1, Reply::Done),
    (Coded::Rotate, 0, Reply::NotLive),
    (Coded::Rotate, -1, Reply::Exists),
    (Coded::Rotate, -2, Reply::Corrupt),
    (Coded::Rotate, -3, Reply::IndexStale),
    (Coded::DeleteOwned, 0, Reply::Missing),
    (Coded::DeleteOwned, 1, Reply::DeletedExpired),
    (Coded::DeleteOwned, 2, Reply::DeletedLive),
    (Coded::DeleteOwned, 3, Reply::Forwarder),
    (Coded::DeleteOwned, 4, Reply::OtherOwner),
    (Coded::DeleteOwned, -2, Reply::Corrupt),
];

/// Decodes the reply of `script`.
///
/// # Errors
/// A permanent [`Error::Backend`] for a reply that is not an integer, or a
/// code that `script` never returns.
pub(crate) fn decode(script: Coded, value: Value) -> Result<Reply> {
    let Value::Int(code) = value else {
        return Err(unexpected(format!(
            "the {script} script returned a non-integer"
        )));
    };
    CODES
        .iter()
        .find(|(s, c, _)| *s == script && *c == code)
        .map(|(_, _, reply)| *reply)
        .ok_or_else(|| unexpected(format!("unexpected reply {code} from the {script} script")))
}

/// The error for a decoded `reply` that the caller of `script` does not
/// handle (a reply the table in this module says `script` never returns).
pub(crate) fn out_of_place(script: Coded, reply: Reply) -> Error {
    unexpected(format!(
        "unexpected reply {reply:?} from the {script} script"
    ))
}

/// The error of a reply that does not fit.
pub(crate) fn unexpected(what: impl Into<String>) -> Error {
    Error::backend_permanent(what.into())
}

/// The server time stamp `INDEX_ADD` returns.
///
/// # Errors
/// A permanent [`Error::Backend`] for any other reply.
pub(crate) fn stamp(value: Value) -> Result<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b)
            .map_err(|_| unexpected("the index script returned a non-UTF-8 stamp")),
        Value::SimpleString(s) => Ok(s),
        Value::Int(i) => Ok(i.to_string()),
        _ => Err(unexpected("unexpected reply from the index script")),
    }
}

/// A list of byte strings (`INDEX_MEMBERS`); nil is the empty list.
///
/// # Errors
/// A permanent [`Error::Backend`] for any other reply.
pub(crate) fn bulk_list(value: Value) -> Result<Vec<Vec<u8>>> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) | Value::Set(items) => items
            .into_iter()
            .map(|i| match i {
                Value::BulkString(b) => Ok(b),
                Value::SimpleString(s) => Ok(s.into_bytes()),
                _ => Err(unexpected("unexpected element in a list reply")),
            })
            .collect(),
        _ => Err(unexpected("unexpected list reply")),
    }
}

/// A `SCAN` reply: the next cursor and the key names.
///
/// # Errors
/// A permanent [`Error::Backend`] for any other reply.
pub(crate) fn scan(value: Value) -> Result<(u64, Vec<Vec<u8>>)> {
    redis::from_redis_value(value).map_err(|e| unexpected(e.to_string()))
}

/// The master nodes (host, port) of a `CLUSTER SLOTS` reply, each once.
///
/// # Errors
/// A permanent [`Error::Backend`] for a reply of another shape.
pub(crate) fn cluster_masters(value: Value) -> Result<Vec<(String, u16)>> {
    let bad = || unexpected("unexpected CLUSTER SLOTS reply");
    let Value::Array(ranges) = value else {
        return Err(bad());
    };
    let mut masters = BTreeSet::new();
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(bad());
        };
        let Some(Value::Array(node)) = parts.get(2) else {
            return Err(bad());
        };
        let host = match node.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(bad()),
        };
        let port = match node.get(1) {
            Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        masters.insert((host, port));
    }
    Ok(masters.into_iter().collect())
}

/// Appends every byte string in `value` (nested arrays, maps, numbers as
/// decimal text) to `out`, for raw dumps.
pub(crate) fn flatten(value: Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::BulkString(b) => out.push(b),
        Value::SimpleString(s) => out.push(s.into_bytes()),
        Value::Int(i) => out.push(i.to_string().into_bytes()),
        Value::Double(d) => out.push(d.to_string().into_bytes()),
        Value::Array(items) | Value::Set(items) => {
            items.into_iter().for_each(|i| flatten(i, out));
        }
        Value::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPTS: [Coded; 5] = [
        Coded::Create,
        Coded::Save,
        Coded::Touch,
        Coded::Rotate,
        Coded::DeleteOwned,
    ];

    fn code(script: Coded, code: i64) -> Result<Reply> {
        decode(script, Value::Int(code))
    }

    fn is_permanent(r: &Result<Reply>) -> bool {
        matches!(
            r,
            Err(Error::Backend {
                retryable: false,
                ..
            })
        )
    }

    #[test]
    fn create_codes() {
        assert_eq!(code(Coded::Create, 1).unwrap(), Reply::Done);
        assert_eq!(code(Coded::Create, -1).unwrap(), Reply::Exists);
        assert_eq!(code(Coded::Create, -3).unwrap(), Reply::IndexStale);
    }

    #[test]
    fn save_codes() {
        assert_eq!(code(Coded::Save, 1).unwrap(), Reply::Done);
        assert_eq!(code(Coded::Save, 0).unwrap(), Reply::NotLive);
        assert_eq!(code(Coded::Save, -2).unwrap(), Reply::Corrupt);
        assert_eq!(code(Coded::Save, -4).unwrap(), Reply::IndexFirst);
    }

    #[test]
    fn touch_codes() {
        assert_eq!(code(Coded::Touch, 1).unwrap(), Reply::Done);
        assert_eq!(code(Coded::Touch, 0).unwrap(), Reply::NotLive);
        assert_eq!(code(Coded::Touch, -2).unwrap(), Reply::Corrupt);
    }

    #[test]
    fn rotate_codes() {
        assert_eq!(code(Coded::Rotate, 1).unwrap(), Reply::Done);
        assert_eq!(code(Coded::Rotate, 0).unwrap(), Reply::NotLive);
        assert_eq!(code(Coded::Rotate, -1).unwrap(), Reply::Exists);
        assert_eq!(code(Coded::Rotate, -2).unwrap(), Reply::Corrupt);
        assert_eq!(code(Coded::Rotate, -3).unwrap(), Reply::IndexStale);
    }

    #[test]
    fn delete_owned_codes() {
        assert_eq!(code(Coded::DeleteOwned, 0).unwrap(), Reply::Missing);
        assert_eq!(code(Coded::DeleteOwned, 1).unwrap(), Reply::DeletedExpired);
        assert_eq!(code(Coded::DeleteOwned, 2).unwrap(), Reply::DeletedLive);
        assert_eq!(code(Coded::DeleteOwned, 3).unwrap(), Reply::Forwarder);
        assert_eq!(code(Coded::DeleteOwned, 4).unwrap(), Reply::OtherOwner);
        assert_eq!(code(Coded::DeleteOwned, -2).unwrap(), Reply::Corrupt);
    }

    #[test]
    fn unknown_codes_are_permanent_errors() {
        for script in SCRIPTS {
            for c in [-5, 5, 99, i64::MIN, i64::MAX] {
                let r = code(script, c);
                assert!(is_permanent(&r), "{script} {c}: {r:?}");
                let msg = r.unwrap_err().to_string();
                assert!(msg.contains(&format!("{c}")) && msg.contains(&script.to_string()));
            }
        }
        // Codes of other scripts are unknown to this one.
        for (script, c) in [
            (Coded::Create, 0),
            (Coded::Create, -2),
            (Coded::Touch, -1),
            (Coded::Touch, -4),
            (Coded::Save, -3),
            (Coded::Rotate, -4),
            (Coded::Rotate, 2),
            (Coded::DeleteOwned, -1),
        ] {
            assert!(is_permanent(&code(script, c)), "{script} {c}");
        }
    }

    #[test]
    fn every_script_code_is_listed_once() {
        for (i, (s, c, _)) in CODES.iter().enumerate() {
            assert!(
                !CODES[i + 1..].iter().any(|(s2, c2, _)| s2 == s && c2 == c),
                "{s} {c} listed twice"
            );
        }
        for script in SCRIPTS {
            assert!(CODES.iter().any(|(s, _, _)| *s == script), "{script}");
        }
    }

    #[test]
    fn malformed_replies_are_permanent_errors() {
        for script in SCRIPTS {
            for v in [
                Value::Nil,
                Value::Okay,
                Value::BulkString(b"1".to_vec()),
                Value::SimpleString("1".into()),
                Value::Double(1.0),
                Value::Array(vec![Value::Int(1)]),
            ] {
                let r = decode(script, v.clone());
                assert!(is_permanent(&r), "{script} {v:?}: {r:?}");
            }
        }
    }

    #[test]
    fn other_replies_decode_or_fail_cleanly() {
        assert_eq!(stamp(Value::BulkString(b"17".to_vec())).unwrap(), "17");
        assert_eq!(stamp(Value::Int(17)).unwrap(), "17");
        assert!(stamp(Value::BulkString(vec![0xff])).is_err());
        assert!(stamp(Value::Nil).is_err());

        assert!(bulk_list(Value::Nil).unwrap().is_empty());
        assert_eq!(
            bulk_list(Value::Array(vec![Value::BulkString(b"a".to_vec())])).unwrap(),
            vec![b"a".to_vec()]
        );
        assert!(bulk_list(Value::Array(vec![Value::Int(1)])).is_err());
        assert!(bulk_list(Value::Int(1)).is_err());

        let (cursor, keys) = scan(Value::Array(vec![
            Value::BulkString(b"7".to_vec()),
            Value::Array(vec![Value::BulkString(b"k".to_vec())]),
        ]))
        .unwrap();
        assert_eq!((cursor, keys), (7, vec![b"k".to_vec()]));
        assert!(scan(Value::Int(3)).is_err());

        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::Int(0),
                Value::Int(100),
                Value::Array(vec![
                    Value::BulkString(host.as_bytes().to_vec()),
                    Value::Int(port),
                ]),
            ])
        };
        assert_eq!(
            cluster_masters(Value::Array(vec![node("h", 1), node("h", 1), node("g", 2)])).unwrap(),
            vec![("g".to_owned(), 2), ("h".to_owned(), 1)]
        );
        for bad in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![node("h", 70_000)]),
            Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(1)])]),
        ] {
            assert!(cluster_masters(bad).is_err());
        }
    }
}
