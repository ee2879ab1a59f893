//! What a backend stores: session records, renewal forwarders, summaries.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::token::StorageKey;

/// One stored session, as a backend sees it.
///
/// `data` and `meta` are opaque bytes to a backend (ciphertext when the
/// [`Encrypted`](crate::Encrypted) wrapper is on). Invariant kept by the
/// manager: `idle_deadline <= absolute_deadline`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Optimistic-concurrency version. On `save`/`rotate` input it is the
    /// version the caller read; the backend stores `version + 1`.
    pub version: u64,
    /// The authenticated user, bound at login. `None` for anonymous sessions.
    pub user_id: Option<String>,
    /// When the session was first created (UTC).
    pub created_at: Timestamp,
    /// Last activity seen by the manager (UTC).
    pub last_seen_at: Timestamp,
    /// When the user last authenticated (login rotation), if ever.
    pub auth_time: Option<Timestamp>,
    /// The session expires at this instant unless activity moves it forward.
    pub idle_deadline: Timestamp,
    /// The session expires at this instant whatever the activity.
    pub absolute_deadline: Timestamp,
    /// Encoded client metadata ([`ClientMeta`]), opaque to backends.
    pub meta: Vec<u8>,
    /// Application session data, opaque to backends.
    pub data: Vec<u8>,
}

impl SessionRecord {
    /// The first instant at which the record is expired:
    /// `min(idle_deadline, absolute_deadline)`.
    pub fn expires_at(&self) -> Timestamp {
        self.idle_deadline.min(self.absolute_deadline)
    }

    /// Whether the record is live at `now` (`now < expires_at()`).
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at()
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("version", &self.version)
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("auth_time", &self.auth_time)
            .field("idle_deadline", &self.idle_deadline)
            .field("absolute_deadline", &self.absolute_deadline)
            .field("meta_len", &self.meta.len())
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Left under a renewed token during the grace window: points at the successor.
///
/// `sealed_token` is the successor's token encrypted under a key derived from
/// the *old* token, so only a holder of the old token can learn the successor
/// (see [`SessionManager`](crate::SessionManager)); to the backend it is opaque.
#[derive(Clone, PartialEq, Eq)]
pub struct Forward {
    /// Storage key of the successor session.
    pub successor: StorageKey,
    /// The successor's token, sealed under the old token.
    pub sealed_token: Vec<u8>,
    /// The forwarder is gone (loads nothing) from this instant on.
    pub until: Timestamp,
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("successor", &self.successor)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

/// The grace part of a [`Rotation`]: what to leave under the old key.
#[derive(Clone, PartialEq, Eq)]
pub struct Grace {
    /// The successor's token sealed under the old token (opaque to backends).
    pub sealed_token: Vec<u8>,
    /// End of the grace window.
    pub until: Timestamp,
}

impl fmt::Debug for Grace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grace")
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

/// What a `load` finds under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live session.
    Session(SessionRecord),
    /// A renewed session's old key, inside its grace window.
    Forwarded(Forward),
}

/// An atomic key replacement: `from` disappears (or becomes a forwarder) and
/// `to` appears with `record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The current key.
    pub from: StorageKey,
    /// The new key; must be unused.
    pub to: StorageKey,
    /// The record to store under `to`. Its `version` is the version the
    /// caller read from `from`; the backend stores `version + 1`.
    pub record: SessionRecord,
    /// If set (renewals only), `from` becomes a [`Forward`] to `to` until
    /// `grace.until`; otherwise `from` is deleted.
    pub grace: Option<Grace>,
}

/// A live session of a user, as listed for "your devices". No session data.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Storage key (wrap it in a [`SessionHandle`](crate::SessionHandle) before showing it).
    pub key: StorageKey,
    /// The user it belongs to.
    pub user_id: String,
    /// Current version.
    pub version: u64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last activity.
    pub last_seen_at: Timestamp,
    /// Last authentication.
    pub auth_time: Option<Timestamp>,
    /// Idle deadline.
    pub idle_deadline: Timestamp,
    /// Absolute deadline.
    pub absolute_deadline: Timestamp,
    /// Encoded client metadata (ciphertext under encryption), opaque to backends.
    /// Empty when `damage` is set.
    pub meta: Vec<u8>,
    /// Set when the stored entry under `key` could not be decoded or
    /// decrypted: listings report such an entry instead of failing, with
    /// whatever fields could be read (the others are zero) and no metadata.
    /// [`SessionManager`](crate::SessionManager) skips it and applies
    /// [`Policy::on_corrupt`](crate::Policy::on_corrupt).
    pub damage: Option<Damage>,
}

/// How a stored entry is damaged (see [`SessionSummary::damage`] and
/// [`Event::Corrupted`](crate::Event::Corrupted)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Damage {
    /// The stored bytes do not decode: a corrupt record, metadata that does
    /// not parse, a wrong type or foreign bytes under the key
    /// ([`Error::Codec`](crate::Error::Codec)).
    Undecodable,
    /// Stored ciphertext failed to decrypt or authenticate: tampering, a
    /// blob moved between rows, or a key missing from the keyring
    /// ([`Error::Decrypt`](crate::Error::Decrypt)).
    Undecryptable,
}

impl Damage {
    /// The damage an error reports, if it reports one: [`Error::Codec`](crate::Error::Codec)
    /// is [`Damage::Undecodable`], [`Error::Decrypt`](crate::Error::Decrypt) is
    /// [`Damage::Undecryptable`]; every other error is not about stored bytes.
    pub fn of(err: &crate::Error) -> Option<Damage> {
        match err {
            crate::Error::Codec { .. } => Some(Damage::Undecodable),
            crate::Error::Decrypt { .. } => Some(Damage::Undecryptable),
            _ => None,
        }
    }

    /// A short name for logs: `"undecodable"` or `"undecryptable"`.
    pub fn label(self) -> &'static str {
        match self {
            Damage::Undecodable => "undecodable",
            Damage::Undecryptable => "undecryptable",
        }
    }
}

impl fmt::Debug for SessionSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSummary")
            .field("key", &self.key)
            .field("user_id", &self.user_id)
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("idle_deadline", &self.idle_deadline)
            .field("absolute_deadline", &self.absolute_deadline)
            .field("damage", &self.damage)
            .finish_non_exhaustive()
    }
}

impl SessionSummary {
    /// The summary of a stored record.
    pub fn of(key: StorageKey, user_id: String, r: &SessionRecord) -> Self {
        SessionSummary {
            key,
            user_id,
            version: r.version,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            auth_time: r.auth_time,
            idle_deadline: r.idle_deadline,
            absolute_deadline: r.absolute_deadline,
            meta: r.meta.clone(),
            damage: None,
        }
    }

    /// The summary of an entry of `user_id` under `key` whose stored bytes
    /// could not be read: every time stamp zero, no metadata, `damage` set.
    pub fn damaged(key: StorageKey, user_id: String, damage: Damage) -> Self {
        SessionSummary {
            key,
            user_id,
            version: 0,
            created_at: Timestamp::from_millis(0),
            last_seen_at: Timestamp::from_millis(0),
            auth_time: None,
            idle_deadline: Timestamp::from_millis(0),
            absolute_deadline: Timestamp::from_millis(0),
            meta: Vec::new(),
            damage: Some(damage),
        }
    }
}

/// Small client metadata kept with a session for "your devices" pages.
/// Personal data: encrypted at rest when encryption is on.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMeta {
    /// Client IP address as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A free label ("work laptop").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl fmt::Debug for ClientMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientMeta")
            .field("ip", &self.ip.as_ref().map(|_| "<set>"))
            .field("user_agent", &self.user_agent)
            .field("label", &self.label)
            .finish()
    }
}

impl ClientMeta {
    /// Encodes for storage (empty for empty metadata).
    pub fn encode(&self) -> Vec<u8> {
        if *self == ClientMeta::default() {
            return Vec::new();
        }
        serde_json::to_vec(self).expect("ClientMeta always serializes")
    }

    /// Decodes stored bytes.
    ///
    /// # Errors
    /// [`Error::Codec`](crate::Error::Codec) for bytes that are not encoded metadata.
    pub fn decode(bytes: &[u8]) -> crate::Result<Self> {
        if bytes.is_empty() {
            return Ok(ClientMeta::default());
        }
        serde_json::from_slice(bytes).map_err(crate::Error::codec)
    }
}
