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
    /// Expired entries were removed by cleanup.
    CleanedUp {
        /// How many entries were removed.
        removed: u64,
    },
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
