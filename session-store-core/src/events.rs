//! Lifecycle events, for audit logs and alerting.

use std::fmt::Debug;

use std::net::IpAddr;

use crate::manager::RotateReason;
use crate::record::Damage;

/// Something that happened to a session. Keys are
/// [`StorageKey::short_hash`](crate::StorageKey::short_hash) tags, never tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A session was created.
    Created {
        /// Short hash of the new key.
        key: String,
    },
    /// A session moved to a new token.
    Rotated {
        /// Short hash of the old key.
        from: String,
        /// Short hash of the new key.
        to: String,
        /// Why: login (with the user id), privilege change or renewal.
        reason: RotateReason,
    },
    /// A load followed a renewal forwarder to the successor (grace window).
    ForwardFollowed {
        /// Short hash of the old key.
        from: String,
        /// Short hash of the successor.
        to: String,
    },
    /// A session was deleted (logout).
    Deleted {
        /// Short hash of the key.
        key: String,
    },
    /// One session was revoked through its handle.
    Revoked {
        /// Short hash of the key.
        key: String,
    },
    /// Sessions of a user were revoked (log out everywhere / other devices).
    UserSessionsRevoked {
        /// How many live sessions were removed.
        count: u64,
    },
    /// A session was removed to respect the per-user cap.
    Evicted {
        /// Short hash of the key.
        key: String,
    },
    /// A well-formed token found no live session: unknown, deleted, rotated
    /// away or expired. (A backend folds "expired" into "absent" by contract:
    /// once cleanup ran the two are indistinguishable anyway.) Count these per
    /// client IP to detect guessing.
    LookupMiss {
        /// Short hash of the key the presented token names.
        key: String,
        /// The client's address, when the caller supplied it
        /// ([`SessionManager::load_from`](crate::SessionManager::load_from)).
        ip: Option<IpAddr>,
    },
    /// A well-formed token named a session that the store still holds but
    /// that has expired (idle or absolute deadline passed, not yet cleaned
    /// up): reported instead of [`Event::LookupMiss`], because it is a
    /// returning user, not a guess. A store that removes expired entries on
    /// its own (Redis TTLs) reports such a load as a miss.
    Expired {
        /// Short hash of the key.
        key: String,
        /// Which deadline ended it.
        deadline: ExpiredBy,
        /// The client's address, when the caller supplied it.
        ip: Option<IpAddr>,
    },
    /// A stored entry could not be decoded or decrypted. The request that
    /// met it was answered as if the session had ended (fail closed), or with
    /// the error under [`OnCorrupt::Fail`](crate::OnCorrupt::Fail); listings
    /// skipped it.
    Corrupted {
        /// Short hash of the key.
        key: String,
        /// What is wrong with it.
        damage: Damage,
        /// Whether the entry was deleted ([`OnCorrupt::Remove`](crate::OnCorrupt::Remove)).
        removed: bool,
    },
    /// A malformed token was presented (rejected before any I/O).
    InvalidToken,
    /// Stored ciphertext failed to decrypt: tampering or a missing key.
    DecryptFailed {
        /// Short hash of the key.
        key: String,
    },
    /// A logged-in session was loaded from a client whose IP network or user
    /// agent differs from the one recorded at login (contextual signals, as
    /// compared by a framework layer such as `session-store-axum`). Carries
    /// no address, user agent or token: only what changed and what the
    /// layer's policy did.
    ContextChanged {
        /// Short hash of the session's key.
        key: String,
        /// The IP is outside the login's network (at the layer's granularity).
        ip_changed: bool,
        /// The user agent differs from the login's.
        user_agent_changed: bool,
        /// What the policy did: `"ignore"` (nothing), `"flag"` (the
        /// handler is told) or `"end"` (the session was deleted and the
        /// request continued without it).
        action: &'static str,
    },
    /// Expired entries were removed by cleanup.
    CleanedUp {
        /// How many entries were removed.
        removed: u64,
    },
    /// A persistent login ("remember me") was issued.
    PersistentIssued {
        /// Short hash of the family key.
        family: String,
    },
    /// A persistent token was used: rotated to its successor, and a session
    /// started.
    PersistentUsed {
        /// Short hash of the family key.
        family: String,
        /// Short hash of the new session's key.
        session: String,
    },
    /// A just-rotated persistent token was used again inside the grace
    /// window and got the same successor (concurrent requests of a client).
    PersistentGraceJoined {
        /// Short hash of the family key.
        family: String,
    },
    /// A persistent token that was already rotated away was presented
    /// outside the grace window: likely theft. The family was revoked, and
    /// the sessions it minted when so configured.
    PersistentReuse {
        /// Short hash of the family key.
        family: String,
        /// How many sessions of the family were revoked with it.
        sessions_revoked: u64,
    },
    /// A persistent login was revoked (logout, or replaced by a new one).
    PersistentRevoked {
        /// Short hash of the family key.
        family: String,
    },
}

/// Which deadline ended a session ([`Event::Expired`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiredBy {
    /// No activity for the idle timeout.
    Idle,
    /// The absolute lifetime ran out.
    Absolute,
}

/// Receives lifecycle events. The default sink ([`NoEvents`]) ignores them.
/// Called inline: keep it fast (hand off to a channel for slow work).
pub trait EventSink: Send + Sync + Debug {
    /// Called once per event.
    fn event(&self, event: &Event);
}

/// Ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&self, _event: &Event) {}
}
