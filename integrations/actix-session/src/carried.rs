//! What a `load` hands to the `update` of the same request, so that
//! `update` is one compare-and-swap with no read before it: the stored
//! version and the record fields an update keeps, carried in the session
//! state under [`LOADED_FIELD`].

use std::sync::atomic::{AtomicU64, Ordering};

use session_store_core::{SessionRecord, Timestamp};

/// The session state entry under which `load` leaves what the request's
/// `update` needs: the stored version and the record's fixed fields. It is
/// never written to the backend, and an update whose state lacks it (after
/// `Session::clear`) reads the stored version first, as a second round trip.
pub const LOADED_FIELD: &str = "__session_store.loaded";

/// Distinguishes the loads of one process (kept for symmetry with the
/// tower-sessions adapter, whose second save of one load needs it).
static NEXT_LOAD: AtomicU64 = AtomicU64::new(1);

/// The fields of a loaded record a save keeps, and which load it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub version: u64,
    pub load: u64,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub absolute_deadline: Timestamp,
    pub auth_time: Option<Timestamp>,
}

impl Loaded {
    /// What to carry for `record`, just read; `None` for a record with client
    /// metadata (written by a `SessionManager` sharing the backend), whose
    /// update keeps reading the stored record first.
    pub fn of(record: &SessionRecord) -> Option<Self> {
        record.meta.is_empty().then(|| Loaded {
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
        let auth = self
            .auth_time
            .map_or_else(|| "-".to_owned(), |t| t.as_millis().to_string());
        format!(
            "v1:{}:{}:{}:{}:{}:{auth}",
            self.version,
            self.load,
            self.created_at.as_millis(),
            self.last_seen_at.as_millis(),
            self.absolute_deadline.as_millis(),
        )
    }

    /// The inverse of [`Loaded::encode`]; `None` for anything else.
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
        next().is_none().then_some(Loaded {
            version,
            load,
            created_at,
            last_seen_at,
            absolute_deadline,
            auth_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        for auth_time in [None, Some(Timestamp::from_millis(7))] {
            let l = Loaded {
                version: u64::MAX - 1,
                load: 42,
                created_at: Timestamp::from_millis(1),
                last_seen_at: Timestamp::from_millis(-2),
                absolute_deadline: Timestamp::from_millis(3),
                auth_time,
            };
            assert_eq!(Loaded::decode(&l.encode()), Some(l));
        }
        for bad in [
            "",
            "v1:",
            "v2:1:1:1:1:1:-",
            "v1:1:1:1:1:1:-:extra",
            "v1:x:1:1:1:1:-",
        ] {
            assert_eq!(Loaded::decode(bad), None, "{bad}");
        }
    }
}
