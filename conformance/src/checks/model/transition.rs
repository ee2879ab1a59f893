//! The operations a model-based sequence is made of. Keys and users are
//! small indices into per-case pools, so that collisions, conflicts and
//! cross-user effects happen often; times are offsets in milliseconds from
//! the case's base instant.

/// Index into the case's pool of storage keys (sorted, so index order is key order).
pub type KeyIx = u8;
/// Index into the pool of user ids ([`LOOKALIKE_USERS`](super::strategies::LOOKALIKE_USERS)).
pub type UserIx = u8;

/// Which version a `save` or `rotate` presents, relative to what is stored
/// when the step runs (so that a step keeps its meaning when earlier steps
/// are removed while shrinking).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionPick {
    /// The stored version: the write should succeed if the session is live.
    Current,
    /// `stored - n` (or some other wrong value if that would underflow).
    Stale(u64),
    /// `stored + n`.
    Ahead(u64),
}

/// One step of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `create` with deadlines `now + idle_ms` and `now + abs_ms` (either may come first: the idle deadline may lie past the absolute one, and the session then ends at the absolute one).
    Create {
        /// Key.
        key: KeyIx,
        /// Owner, if any.
        user: Option<UserIx>,
        /// Version stored as given.
        version: u64,
        /// Idle timeout from now.
        idle_ms: i64,
        /// Absolute timeout from now.
        abs_ms: i64,
        /// Seeds data and metadata bytes.
        tag: u8,
    },
    /// `load`.
    Load {
        /// Key.
        key: KeyIx,
    },
    /// `save` of a record derived from what is stored (or a fresh one).
    Save {
        /// Key.
        key: KeyIx,
        /// Version presented.
        version: VersionPick,
        /// New owner.
        user: Option<UserIx>,
        /// New idle timeout from now (not capped: it may lie past the absolute deadline).
        idle_ms: i64,
        /// Seeds the new data.
        tag: u8,
    },
    /// `touch` asking for `now + idle_ms`, last seen at `now - seen_back_ms`.
    Touch {
        /// Key.
        key: KeyIx,
        /// Requested idle timeout from now.
        idle_ms: i64,
        /// How far in the past the activity was seen.
        seen_back_ms: i64,
    },
    /// `rotate` from `from` to `to`.
    Rotate {
        /// Source key.
        from: KeyIx,
        /// Successor key.
        to: KeyIx,
        /// Version presented.
        version: VersionPick,
        /// `Some(user)`: a login (binds the user, resets both deadlines).
        login: Option<UserIx>,
        /// Leave a forwarder for this long.
        grace_ms: Option<i64>,
        /// Seeds the new data and the sealed token.
        tag: u8,
    },
    /// `delete`.
    Delete {
        /// Key.
        key: KeyIx,
    },
    /// `delete_user`.
    DeleteUser {
        /// User.
        user: UserIx,
        /// Session to keep.
        except: Option<KeyIx>,
    },
    /// `list_user`.
    ListUser {
        /// User.
        user: UserIx,
    },
    /// `cleanup_expired(now, limit)`, then a sweep that deletes every entry
    /// the model still holds as expired (so that model and store agree on
    /// which expired entries exist, whichever ones the batch picked).
    Cleanup {
        /// Batch size.
        limit: usize,
    },
    /// Moves the clock forward.
    Advance {
        /// Milliseconds.
        ms: i64,
    },
}
