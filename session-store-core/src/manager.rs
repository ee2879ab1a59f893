//! The session manager: tokens, policy and the life of a session, over any backend.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info_span, Instrument as _};

use crate::backend::SessionBackend;
use crate::crypto::forward::{seal_successor, unseal_successor};
use crate::error::{Error, Result};
use crate::events::{Event, EventSink, ExpiredBy, NoEvents};
use crate::persistent::{PersistentPolicy, StoredMeta};
use crate::record::{ClientMeta, Damage, Grace, Lookup, Rotation, SessionRecord, SessionSummary};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::token::{SessionHandle, SessionToken, StorageKey};

/// What to do when a user already has the maximum number of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapPolicy {
    /// Delete the oldest sessions (by creation time) to make room.
    EvictOldest,
    /// Refuse the login with [`Error::TooManySessions`].
    Refuse,
}

/// What the manager does with a stored entry that cannot be decoded or
/// decrypted ([`Damage`]): a flipped byte on disk, foreign bytes or a wrong
/// type under a key, metadata that no longer parses, ciphertext under a key
/// missing from the keyring.
///
/// In every case the request that meets it gets no access to it (fail
/// closed), an [`Event::Corrupted`] is raised with the key's short hash
/// (plus [`Event::DecryptFailed`] for ciphertext), and listings
/// ([`SessionManager::list_devices`], the per-user cap at login) skip it. The
/// variants differ in what the load answers and what happens to the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCorrupt {
    /// The entry is deleted and the load answers `None`, as for an ended
    /// session: the caller clears the cookie or starts a new session. The
    /// default.
    #[default]
    Remove,
    /// The entry stays where it is, for inspection, and the load answers
    /// `None`: it can never be used again and goes with its deadlines
    /// (server TTL, cleanup) or an administrator.
    Quarantine,
    /// The entry stays and the load answers the error ([`Error::Decrypt`] or
    /// [`Error::Codec`]), for applications that prefer a hard failure.
    /// Listings still skip it.
    Fail,
}

/// Timeouts, throttling and limits. Every default is finite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Inactivity after which a session expires. Default 30 minutes.
    pub idle_timeout: Duration,
    /// Lifetime after which a session expires whatever the activity (counted
    /// from creation, or from the last login). Default 12 hours.
    pub absolute_timeout: Duration,
    /// A load writes a touch (idle extension) only if at least this much time
    /// passed since the last recorded activity. Default 60 seconds.
    pub touch_interval: Duration,
    /// How long the old token of a *renewal* rotation still reaches the new
    /// session. Default 0 (none). Never applies to login or privilege rotations.
    pub renewal_grace: Duration,
    /// Maximum session data size in bytes. Default 64 KiB.
    pub max_data_bytes: usize,
    /// Maximum user id size in bytes. Default 256.
    pub max_user_id_bytes: usize,
    /// Maximum encoded client metadata size in bytes. Default 2048.
    pub max_meta_bytes: usize,
    /// Optional cap on live sessions per user, applied at login. Default none.
    /// `Refuse` checks before the login writes anything; `EvictOldest` trims
    /// the oldest sessions after the login committed. Best effort under
    /// concurrent logins of one user: `Refuse` may let both through, while
    /// `EvictOldest` converges to the cap.
    pub max_sessions_per_user: Option<(usize, CapPolicy)>,
    /// What to do with a stored entry that cannot be decoded or decrypted.
    /// Default [`OnCorrupt::Remove`].
    pub on_corrupt: OnCorrupt,
    /// Persistent logins ("remember me", refresh tokens): lifetimes, grace,
    /// reuse handling. See [`crate::persistent`].
    pub persistent: PersistentPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            touch_interval: Duration::from_secs(60),
            renewal_grace: Duration::ZERO,
            max_data_bytes: 64 * 1024,
            max_user_id_bytes: 256,
            max_meta_bytes: 2048,
            max_sessions_per_user: None,
            on_corrupt: OnCorrupt::Remove,
            persistent: PersistentPolicy::default(),
        }
    }
}

impl Policy {
    fn validate(&self) -> Result<()> {
        if self.idle_timeout.is_zero() || self.absolute_timeout.is_zero() {
            return Err(Error::Config("timeouts must be greater than zero".into()));
        }
        if self.idle_timeout > self.absolute_timeout {
            return Err(Error::Config(
                "idle timeout must not exceed the absolute timeout".into(),
            ));
        }
        if self.renewal_grace > self.idle_timeout {
            return Err(Error::Config(
                "renewal grace must not exceed the idle timeout".into(),
            ));
        }
        if matches!(self.max_sessions_per_user, Some((0, _))) {
            return Err(Error::Config(
                "per-user session cap must be at least 1".into(),
            ));
        }
        self.persistent.validate()
    }
}

/// Why a session gets a new token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateReason {
    /// The user authenticated: binds `user_id`, records `auth_time`, resets
    /// both timeouts; the old token dies at once.
    Login {
        /// The authenticated user.
        user_id: String,
    },
    /// The session's privileges changed (role, step-up, password change):
    /// keeps the absolute deadline; the old token dies at once.
    PrivilegeChange,
    /// Scheduled renewal: keeps the absolute deadline; the old token reaches
    /// the new session during [`Policy::renewal_grace`].
    Renewal,
}

impl RotateReason {
    /// A short name for logs: `"login"`, `"privilege"` or `"renewal"`.
    pub fn label(&self) -> &'static str {
        match self {
            RotateReason::Login { .. } => "login",
            RotateReason::PrivilegeChange => "privilege",
            RotateReason::Renewal => "renewal",
        }
    }
}

/// A live session as the application sees it.
#[derive(Clone)]
pub struct Session {
    token: SessionToken,
    key: StorageKey,
    record: SessionRecord,
    meta: ClientMeta,
    token_changed: bool,
    /// The persistent-login family of this device, if any.
    pub(crate) family: Option<StorageKey>,
    /// Started from a persistent token (no password since).
    remembered: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("key", &self.key)
            .field("record", &self.record)
            .field("meta", &self.meta)
            .field("token_changed", &self.token_changed)
            .field("family", &self.family)
            .field("remembered", &self.remembered)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The current token: send it to the client (cookie value).
    pub fn token(&self) -> &SessionToken {
        &self.token
    }
    /// The storage key (hash of the token).
    pub fn storage_key(&self) -> StorageKey {
        self.key
    }
    /// An opaque handle for "your devices" pages.
    pub fn handle(&self) -> SessionHandle {
        SessionHandle::new(self.key)
    }
    /// True when the token differs from the one the client presented (a load
    /// that followed a renewal in its grace window): re-send [`Session::token`].
    pub fn token_changed(&self) -> bool {
        self.token_changed
    }
    /// Application data.
    pub fn data(&self) -> &[u8] {
        &self.record.data
    }
    /// Replaces the application data (written by [`SessionManager::save`]).
    pub fn set_data(&mut self, data: Vec<u8>) {
        self.record.data = data;
    }
    /// Client metadata (IP, user agent, label).
    pub fn client_meta(&self) -> &ClientMeta {
        &self.meta
    }
    /// Replaces the client metadata (written by the next save or rotation).
    pub fn set_client_meta(&mut self, meta: ClientMeta) {
        self.meta = meta;
    }
    /// The authenticated user, if logged in.
    pub fn user_id(&self) -> Option<&str> {
        self.record.user_id.as_deref()
    }
    /// Optimistic-concurrency version.
    pub fn version(&self) -> u64 {
        self.record.version
    }
    /// Creation time.
    pub fn created_at(&self) -> Timestamp {
        self.record.created_at
    }
    /// Last recorded activity.
    pub fn last_seen_at(&self) -> Timestamp {
        self.record.last_seen_at
    }
    /// Last login.
    pub fn auth_time(&self) -> Option<Timestamp> {
        self.record.auth_time
    }
    /// Idle deadline.
    pub fn idle_deadline(&self) -> Timestamp {
        self.record.idle_deadline
    }
    /// Absolute deadline.
    pub fn absolute_deadline(&self) -> Timestamp {
        self.record.absolute_deadline
    }
    /// When the session expires unless there is activity: the earlier deadline.
    pub fn expires_at(&self) -> Timestamp {
        self.record.expires_at()
    }
    /// True when the session was started from a persistent token
    /// ([`SessionManager::resume`]) and the user has not logged in with a
    /// login rotation since: [`Session::auth_time`] is the original login,
    /// and an application may ask for the password again before a sensitive
    /// action.
    pub fn remembered(&self) -> bool {
        self.remembered
    }
    /// The handle of this device's persistent login, if it has one
    /// ([`SessionManager::remember`] or [`SessionManager::resume`]).
    pub fn persistent_handle(&self) -> Option<SessionHandle> {
        self.family.map(SessionHandle::new)
    }
    /// What the session stores as metadata: the client's plus the links.
    fn stored_meta(&self) -> Vec<u8> {
        StoredMeta::session(&self.meta, self.family, self.remembered)
    }
}

/// One of a user's live sessions, for a "your devices" page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Opaque handle for [`SessionManager::revoke`]. Never a token.
    pub handle: SessionHandle,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last recorded activity.
    pub last_seen_at: Timestamp,
    /// Last login.
    pub auth_time: Option<Timestamp>,
    /// Idle deadline.
    pub idle_deadline: Timestamp,
    /// Absolute deadline.
    pub absolute_deadline: Timestamp,
    /// IP, user agent, label.
    pub meta: ClientMeta,
    /// Whether this is the session the listing was made from, or (for a
    /// persistent login) that session's own persistent login.
    pub current: bool,
    /// A session, or a persistent login ("remember me" on that device).
    pub kind: DeviceKind,
}

/// What a [`Device`] entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKind {
    /// A session.
    Session,
    /// A persistent login family ([`SessionManager::remember`]): revoking
    /// it ends "remember me" on that device.
    PersistentLogin,
}

/// Builds a [`SessionManager`].
#[derive(Debug)]
pub struct SessionManagerBuilder {
    backend: Arc<dyn SessionBackend>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    events: Arc<dyn EventSink>,
}

impl SessionManagerBuilder {
    /// The clock (default: the system clock). Inject a
    /// [`ManualClock`](crate::ManualClock) in tests.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// The policy (default: [`Policy::default`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
    /// The event sink (default: [`NoEvents`]).
    pub fn events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }
    /// Validates the policy and builds the manager.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout, idle > absolute, grace > idle or a zero cap.
    pub fn build(self) -> Result<SessionManager> {
        self.policy.validate()?;
        Ok(SessionManager {
            backend: self.backend,
            clock: self.clock,
            policy: Arc::new(self.policy),
            events: self.events,
        })
    }
}

/// Creates, loads, saves, rotates and revokes sessions over any backend,
/// applying the [`Policy`]. Cheap to clone.
///
/// # Contract
/// - Tokens are 256-bit CSPRNG values; a caller can never choose one, and an
///   unknown token never creates a session (strict mode).
/// - Untrusted tokens are validated before any I/O ([`Error::InvalidId`]).
/// - Idle and absolute timeouts are both enforced on every load; activity
///   extends only the idle deadline, never past the absolute one, and is
///   written at most once per [`Policy::touch_interval`].
/// - Size limits are checked before anything is written ([`Error::TooLarge`]).
/// - `save` is a compare-and-swap: a stale or removed session is [`Error::Conflict`].
#[derive(Clone)]
pub struct SessionManager {
    pub(crate) backend: Arc<dyn SessionBackend>,
    clock: Arc<dyn Clock>,
    pub(crate) policy: Arc<Policy>,
    events: Arc<dyn EventSink>,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("backend", &self.backend)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What following a token's forwarders found.
enum Resolved {
    /// A live session: the token that reaches it, its key and record.
    Live(SessionToken, StorageKey, SessionRecord),
    /// Nothing live.
    Missing,
    /// The entry under this key cannot be decoded or decrypted.
    Damaged(StorageKey, Error),
}

/// Most forwarders a load follows (a renewal of a renewal inside the grace window).
const MAX_FORWARD_HOPS: usize = 4;

impl SessionManager {
    /// A builder with defaults: system clock, [`Policy::default`], no events.
    pub fn builder(backend: Arc<dyn SessionBackend>) -> SessionManagerBuilder {
        SessionManagerBuilder {
            backend,
            clock: Arc::new(SystemClock),
            policy: Policy::default(),
            events: Arc::new(NoEvents),
        }
    }

    /// A manager with every default.
    pub fn new(backend: Arc<dyn SessionBackend>) -> Self {
        Self::builder(backend)
            .build()
            .expect("the default policy is valid")
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn SessionBackend> {
        &self.backend
    }

    /// The clock's current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The idle deadline that activity at `now` earns: `now + idle_timeout`,
    /// never past the absolute deadline.
    /// Whether activity at `now` is recorded (a load's touch, a save's move
    /// of the idle deadline): [`Policy::touch_interval`] has passed since
    /// the last recorded activity. The one rule for loads and saves.
    fn activity_due(&self, last_seen_at: Timestamp, now: Timestamp) -> bool {
        now.saturating_duration_since(last_seen_at) >= self.policy.touch_interval
    }

    fn idle_deadline_at(&self, now: Timestamp, absolute_deadline: Timestamp) -> Timestamp {
        now.saturating_add(self.policy.idle_timeout)
            .min(absolute_deadline)
    }

    pub(crate) fn emit(&self, event: Event) {
        debug!(?event, "session event");
        self.events.event(&event);
    }

    pub(crate) fn check_limits(
        &self,
        data: &[u8],
        meta: &[u8],
        user_id: Option<&str>,
    ) -> Result<()> {
        let p = &self.policy;
        if data.len() > p.max_data_bytes {
            return Err(Error::TooLarge {
                what: "data",
                limit: p.max_data_bytes,
                actual: data.len(),
            });
        }
        if meta.len() > p.max_meta_bytes {
            return Err(Error::TooLarge {
                what: "metadata",
                limit: p.max_meta_bytes,
                actual: meta.len(),
            });
        }
        if let Some(user) = user_id {
            if user.is_empty() {
                return Err(Error::InvalidInput("user id must not be empty"));
            }
            if user.len() > p.max_user_id_bytes {
                return Err(Error::TooLarge {
                    what: "user id",
                    limit: p.max_user_id_bytes,
                    actual: user.len(),
                });
            }
        }
        Ok(())
    }

    /// The metadata limit applies to the client's metadata (the manager's
    /// own links add at most a hundred bytes).
    pub(crate) fn check_limits_meta(&self, meta: &ClientMeta) -> Result<()> {
        self.check_limits(&[], &meta.encode(), None)
    }

    /// Applies [`Policy::on_corrupt`] to the entry under `key`, damaged as
    /// `damage`: raises the events, deletes the entry under
    /// [`OnCorrupt::Remove`]. Returns whether it was deleted.
    ///
    /// # Errors
    /// Backend errors of the delete.
    async fn contain(&self, key: &StorageKey, damage: Damage) -> Result<bool> {
        if damage == Damage::Undecryptable {
            self.emit(Event::DecryptFailed {
                key: key.short_hash(),
            });
        }
        let removed = match self.policy.on_corrupt {
            OnCorrupt::Remove => {
                self.backend.delete(key).await?;
                true
            }
            OnCorrupt::Quarantine | OnCorrupt::Fail => false,
        };
        tracing::warn!(
            key = %key.short_hash(),
            damage = damage.label(),
            removed,
            "stored session entry is damaged"
        );
        self.emit(Event::Corrupted {
            key: key.short_hash(),
            damage,
            removed,
        });
        Ok(removed)
    }

    /// A load met `err` at `key`: a damaged entry is contained (no access,
    /// `None` unless [`OnCorrupt::Fail`]); any other error is returned.
    pub(crate) async fn contain_load<T>(&self, key: &StorageKey, err: Error) -> Result<Option<T>> {
        let Some(damage) = Damage::of(&err) else {
            return Err(err);
        };
        self.contain(key, damage).await?;
        match self.policy.on_corrupt {
            OnCorrupt::Fail => Err(err),
            OnCorrupt::Remove | OnCorrupt::Quarantine => Ok(None),
        }
    }

    /// Keeps the readable entries of a listing; contains the damaged ones
    /// (see [`OnCorrupt`]), metadata that does not parse included.
    pub(crate) async fn readable_stored(
        &self,
        list: Vec<SessionSummary>,
    ) -> Result<Vec<(SessionSummary, StoredMeta)>> {
        let mut out = Vec::with_capacity(list.len());
        for s in list {
            let damage = match s.damage {
                Some(d) => d,
                None => match StoredMeta::decode(&s.meta) {
                    Ok(meta) => {
                        out.push((s, meta));
                        continue;
                    }
                    Err(e) => Damage::of(&e).unwrap_or(Damage::Undecodable),
                },
            };
            self.contain(&s.key, damage).await?;
        }
        Ok(out)
    }

    /// Creates an anonymous session.
    ///
    /// # Errors
    /// [`Error::TooLarge`] before any write; backend errors.
    pub async fn create(&self, data: Vec<u8>, meta: ClientMeta) -> Result<Session> {
        self.check_limits(&data, &meta.encode(), None)?;
        let now = self.now();
        let record = SessionRecord {
            version: 0,
            user_id: None,
            created_at: now,
            last_seen_at: now,
            auth_time: None,
            idle_deadline: now.saturating_add(self.policy.idle_timeout),
            absolute_deadline: now.saturating_add(self.policy.absolute_timeout),
            meta: Vec::new(),
            data,
        };
        self.create_record(record, meta, None, false).await
    }

    /// Stores `record` (with `meta` and the links encoded into it) under a
    /// fresh token.
    pub(crate) async fn create_record(
        &self,
        mut record: SessionRecord,
        meta: ClientMeta,
        family: Option<StorageKey>,
        remembered: bool,
    ) -> Result<Session> {
        record.meta = StoredMeta::session(&meta, family, remembered);
        loop {
            let token = SessionToken::generate();
            let key = token.storage_key();
            let span = info_span!("session.create", key = %key.short());
            match self.backend.create(&key, &record).instrument(span).await {
                Ok(()) => {
                    self.emit(Event::Created {
                        key: key.short_hash(),
                    });
                    return Ok(Session {
                        token,
                        key,
                        record,
                        meta,
                        token_changed: false,
                        family,
                        remembered,
                    });
                }
                // 2^-256: only a broken RNG gets here; never overwrite, draw again.
                Err(Error::AlreadyExists) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Loads the session for an untrusted token (a cookie value).
    ///
    /// Returns `None` for an unknown, removed or expired session. Records
    /// activity (a touch) when [`Policy::touch_interval`] has passed. Inside a
    /// renewal grace window, the old token yields the successor with
    /// [`Session::token_changed`] set.
    ///
    /// A stored entry that cannot be decoded or decrypted is handled as
    /// [`Policy::on_corrupt`] says: by default it is deleted and the load
    /// answers `None` (no access; the caller starts over), with an
    /// [`Event::Corrupted`].
    ///
    /// # Errors
    /// [`Error::InvalidId`] for a malformed token, before any I/O;
    /// [`Error::Decrypt`]/[`Error::Codec`] for a damaged entry only under
    /// [`OnCorrupt::Fail`]; backend errors (never `None`).
    pub async fn load(&self, token: &str) -> Result<Option<Session>> {
        self.load_from(token, None).await
    }

    /// [`SessionManager::load`] for a request from `client_ip`: the address
    /// is carried by [`Event::LookupMiss`], so that misses (guessing) can be
    /// counted per client.
    ///
    /// # Errors
    /// As [`SessionManager::load`].
    pub async fn load_from(
        &self,
        token: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<Session>> {
        let token = match SessionToken::parse(token) {
            Ok(t) => t,
            Err(e) => {
                self.emit(Event::InvalidToken);
                return Err(e);
            }
        };
        self.load_parsed(token, client_ip).await
    }

    /// [`SessionManager::load`] for an already parsed token.
    ///
    /// # Errors
    /// As [`SessionManager::load`].
    pub async fn load_token(&self, token: SessionToken) -> Result<Option<Session>> {
        self.load_parsed(token, None).await
    }

    /// [`SessionManager::load_token`] for a request from `client_ip` (see
    /// [`SessionManager::load_from`]).
    ///
    /// # Errors
    /// As [`SessionManager::load`].
    pub async fn load_token_from(
        &self,
        token: SessionToken,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<Session>> {
        self.load_parsed(token, client_ip).await
    }

    async fn load_parsed(
        &self,
        token: SessionToken,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<Session>> {
        let now = self.now();
        let presented = token.storage_key();
        let span = info_span!("session.load", key = %presented.short());
        async move {
            let miss = || Event::LookupMiss {
                key: presented.short_hash(),
                ip: client_ip,
            };
            // Built in a block, with the miss and the damaged-record paths
            // in boxed futures of their own: what the lookup leaves behind
            // (the resolved record, the decoded metadata) takes no room
            // beside the touch's await, and every load's future, which a
            // web layer embeds in each request's, stays that much smaller.
            // A touch that matches nothing means the entry changed between
            // the read and the touch: rotated by a concurrent request (within
            // a renewal grace window its forwarder leads to the successor),
            // or deleted. The lookup runs once more from the key it read;
            // only a second miss is "no session".
            let (mut token, mut from, mut retried) = (token, presented, false);
            loop {
                let mut session = {
                    let resolved = self.resolve(token, from, now).await?;
                    let (token, key, record) = match resolved {
                        Resolved::Live(token, key, record) => (token, key, record),
                        Resolved::Missing => {
                            Box::pin(self.report_miss(&presented, client_ip, now)).await;
                            return Ok(None);
                        }
                        Resolved::Damaged(key, err) => {
                            return Box::pin(self.contain_load(&key, err)).await
                        }
                    };
                    let stored = match StoredMeta::decode(&record.meta) {
                        Ok(stored) => stored,
                        Err(e) => return Box::pin(self.contain_load(&key, e)).await,
                    };
                    if stored.persistent {
                        // A persistent-login family is never a session.
                        self.emit(miss());
                        return Ok(None);
                    }
                    Session {
                        token_changed: key != presented,
                        token,
                        key,
                        record,
                        family: stored.family_key(),
                        remembered: stored.remembered,
                        meta: stored.client,
                    }
                };
                if self.activity_due(session.record.last_seen_at, now) {
                    let idle = self.idle_deadline_at(now, session.record.absolute_deadline);
                    if !self.backend.touch(&session.key, idle, now, now).await? {
                        if !retried {
                            (token, from, retried) = (session.token, session.key, true);
                            continue;
                        }
                        self.emit(miss());
                        return Ok(None);
                    }
                    session.record.idle_deadline = session.record.idle_deadline.max(idle);
                    session.record.last_seen_at = session.record.last_seen_at.max(now);
                }
                return Ok(Some(session));
            }
        }
        .instrument(span)
        .await
    }

    /// A load of `key` found nothing live at `now`: reports
    /// [`Event::Expired`] when the store still holds the session (a second
    /// read, at the epoch, where every stored record is live; only on
    /// misses), [`Event::LookupMiss`] otherwise.
    async fn report_miss(&self, key: &StorageKey, ip: Option<IpAddr>, now: Timestamp) {
        let event = match self.backend.load(key, Timestamp::EPOCH).await {
            Ok(Some(Lookup::Session(r))) if !r.is_live(now) => Event::Expired {
                key: key.short_hash(),
                deadline: if r.absolute_deadline <= now {
                    ExpiredBy::Absolute
                } else {
                    ExpiredBy::Idle
                },
                ip,
            },
            _ => Event::LookupMiss {
                key: key.short_hash(),
                ip,
            },
        };
        self.emit(event);
    }

    /// Follows forwarders to the live session, if any. `key` is
    /// `token.storage_key()`, which the caller already has (one hash less
    /// per load).
    async fn resolve(
        &self,
        mut token: SessionToken,
        mut key: StorageKey,
        now: Timestamp,
    ) -> Result<Resolved> {
        for _ in 0..=MAX_FORWARD_HOPS {
            let found = match self.backend.load(&key, now).await {
                Ok(found) => found,
                Err(e) if Damage::of(&e).is_some() => return Ok(Resolved::Damaged(key, e)),
                Err(e) => return Err(e),
            };
            match found {
                None => return Ok(Resolved::Missing),
                Some(Lookup::Session(record)) => return Ok(Resolved::Live(token, key, record)),
                Some(Lookup::Forwarded(fwd)) => {
                    let next = match unseal_successor(&token, &fwd.successor, &fwd.sealed_token) {
                        Ok(next) => next,
                        Err(e) if Damage::of(&e).is_some() => return Ok(Resolved::Damaged(key, e)),
                        Err(e) => return Err(e),
                    };
                    self.emit(Event::ForwardFollowed {
                        from: key.short_hash(),
                        to: fwd.successor.short_hash(),
                    });
                    key = fwd.successor;
                    token = next;
                }
            }
        }
        Ok(Resolved::Missing)
    }

    /// Writes the session's data and metadata (compare-and-swap on its
    /// version). A save is activity, recorded as a load records it: when
    /// [`Policy::touch_interval`] has passed since the last recorded activity,
    /// the idle deadline moves forward (capped) and the activity time is now;
    /// otherwise both stay as stored, so the idle deadline is never more
    /// than one touch interval behind the last activity. A save within the
    /// interval therefore leaves the stored expiry unchanged, which spares
    /// stores an index rewrite per save (on SQLite the `expires_at` index
    /// entry stays put: two pages written per save instead of three).
    ///
    /// # Errors
    /// [`Error::Conflict`] if the session changed or is gone (reload and retry);
    /// [`Error::TooLarge`] before any write; backend errors.
    pub async fn save(&self, session: &mut Session) -> Result<()> {
        self.check_limits(
            &session.record.data,
            &session.meta.encode(),
            session.record.user_id.as_deref(),
        )?;
        let meta = session.stored_meta();
        let now = self.now();
        let mut record = session.record.clone();
        record.meta = meta;
        if self.activity_due(record.last_seen_at, now) {
            record.last_seen_at = record.last_seen_at.max(now);
            record.idle_deadline = record
                .idle_deadline
                .max(self.idle_deadline_at(now, record.absolute_deadline));
        }
        let span = info_span!("session.save", key = %session.key.short());
        let version = self
            .backend
            .save(&session.key, &record, now)
            .instrument(span)
            .await?;
        record.version = version;
        session.record = record;
        Ok(())
    }

    /// Gives the session a new token, atomically (see [`RotateReason`]).
    /// On success `session` holds the new token: send it to the client.
    ///
    /// Concurrent renewals of one token (inside a grace window) all end with
    /// the same successor.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the session changed or is gone;
    /// [`Error::TooManySessions`] for a login over the cap with
    /// [`CapPolicy::Refuse`]; [`Error::TooLarge`]; backend errors.
    pub async fn rotate(&self, session: &mut Session, reason: RotateReason) -> Result<()> {
        let now = self.now();
        self.check_limits_meta(&session.meta)?;
        let remembered = session.remembered && !matches!(reason, RotateReason::Login { .. });
        let mut record = session.record.clone();
        record.meta = StoredMeta::session(&session.meta, session.family, remembered);
        record.last_seen_at = record.last_seen_at.max(now);
        match &reason {
            RotateReason::Login { user_id } => {
                record.user_id = Some(user_id.clone());
                record.auth_time = Some(now);
                record.absolute_deadline = now.saturating_add(self.policy.absolute_timeout);
                record.idle_deadline = now.saturating_add(self.policy.idle_timeout);
            }
            RotateReason::PrivilegeChange | RotateReason::Renewal => {
                record.idle_deadline = record
                    .idle_deadline
                    .max(self.idle_deadline_at(now, record.absolute_deadline));
            }
        }
        self.check_limits(&record.data, &[], record.user_id.as_deref())?;
        if let RotateReason::Login { user_id } = &reason {
            self.refuse_over_cap(user_id, Some(&session.key), now)
                .await?;
        }

        let new_token = SessionToken::generate_with_affinity(
            &session.key,
            self.backend.rotation_affinity_bits(),
        );
        let new_key = new_token.storage_key();
        let grace = match reason {
            RotateReason::Renewal if !self.policy.renewal_grace.is_zero() => Some(Grace {
                sealed_token: seal_successor(&session.token, &new_key, &new_token)?,
                until: now
                    .saturating_add(self.policy.renewal_grace)
                    .min(record.expires_at()),
            }),
            _ => None,
        };
        let rotation = Rotation {
            from: session.key,
            to: new_key,
            record,
            grace,
        };
        let span = info_span!("session.rotate", from = %session.key.short(), to = %new_key.short(), reason = reason.label());
        match self.backend.rotate(&rotation, now).instrument(span).await {
            Ok(version) => {
                self.emit(Event::Rotated {
                    from: session.key.short_hash(),
                    to: new_key.short_hash(),
                    reason: reason.clone(),
                });
                let mut record = rotation.record;
                record.version = version;
                session.record = record;
                session.token = new_token;
                session.key = new_key;
                session.token_changed = true;
                session.remembered = remembered;
                if let (RotateReason::Login { user_id }, Some((cap, CapPolicy::EvictOldest))) =
                    (&reason, self.policy.max_sessions_per_user)
                {
                    self.evict_oldest(user_id, &new_key, cap, now).await?;
                }
                Ok(())
            }
            Err(Error::Conflict) if matches!(reason, RotateReason::Renewal) => {
                // Someone else renewed this token first: join their successor
                // if the grace window lets the old token reach it.
                match self
                    .resolve(session.token.clone(), session.key, now)
                    .await?
                {
                    Resolved::Live(token, key, record) if key != session.key => {
                        let stored = StoredMeta::decode(&record.meta)?;
                        session.family = stored.family_key();
                        session.remembered = stored.remembered;
                        session.meta = stored.client;
                        session.token = token;
                        session.key = key;
                        session.record = record;
                        session.token_changed = true;
                        Ok(())
                    }
                    Resolved::Damaged(key, err) => {
                        self.contain_load::<()>(&key, err).await?;
                        Err(Error::Conflict)
                    }
                    _ => Err(Error::Conflict),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Under a refusing per-user cap ([`CapPolicy::Refuse`]): fails with
    /// [`Error::TooManySessions`] when `user_id` already has `cap` live
    /// sessions other than `except`, before anything is written.
    pub(crate) async fn refuse_over_cap(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<()> {
        if let Some((cap, CapPolicy::Refuse)) = self.policy.max_sessions_per_user {
            if self.user_sessions(user_id, except, now).await?.len() >= cap {
                return Err(Error::TooManySessions { limit: cap });
            }
        }
        Ok(())
    }

    /// The user's live sessions other than `except`, oldest first
    /// (persistent-login families are not sessions and are left out).
    pub(crate) async fn user_sessions(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<Vec<SessionSummary>> {
        let mut list = self.backend.list_user(user_id, now).await?;
        list.retain(|s| Some(&s.key) != except);
        Ok(self
            .readable_stored(list)
            .await?
            .into_iter()
            .filter(|(_, stored)| !stored.persistent)
            .map(|(s, _)| s)
            .collect())
    }

    /// After a login committed: deletes the user's oldest sessions so that at
    /// most `cap` remain, the new one included. Running after the rotation
    /// means a failed login evicts nothing, and concurrent logins each trim
    /// after their own insert, so the user ends at or under the cap.
    pub(crate) async fn evict_oldest(
        &self,
        user_id: &str,
        new_key: &StorageKey,
        cap: usize,
        now: Timestamp,
    ) -> Result<()> {
        let others = self.user_sessions(user_id, Some(new_key), now).await?;
        let excess = (others.len() + 1).saturating_sub(cap);
        for victim in &others[..excess] {
            self.backend.delete(&victim.key).await?;
            self.emit(Event::Evicted {
                key: victim.key.short_hash(),
            });
        }
        Ok(())
    }

    /// Deletes the session server-side (idempotent), and the persistent
    /// login of this device if it has one ([`Session::persistent_handle`]).
    ///
    /// # Errors
    /// Backend errors (a delete is never silently skipped). The session is
    /// deleted first; on an error from the family's delete, call again.
    pub async fn logout(&self, session: &Session) -> Result<()> {
        let span = info_span!("session.logout", key = %session.key.short());
        async {
            self.backend.delete(&session.key).await?;
            self.emit(Event::Deleted {
                key: session.key.short_hash(),
            });
            self.revoke_linked_family(session).await
        }
        .instrument(span)
        .await
    }

    /// Deletes every session of `user_id` ("log out everywhere"); returns how
    /// many live sessions were removed.
    ///
    /// # Errors
    /// Backend errors, never swallowed. A store may revoke session by session
    /// (see [`SessionBackend::delete_user`]): after an error some sessions may
    /// still be live. Call again until it returns `Ok`; only then are they
    /// all gone.
    pub async fn logout_everywhere(&self, user_id: &str) -> Result<u64> {
        self.revoke_user(user_id, None).await
    }

    /// Deletes every session of the session's user except this one ("log out
    /// other devices", e.g. after a password change), and every persistent
    /// login of the user, this device's included (issue a new one with
    /// [`SessionManager::remember`] if wanted). Returns 0 for an anonymous
    /// session.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn logout_other_devices(&self, session: &Session) -> Result<u64> {
        match session.user_id() {
            Some(user) => self.revoke_user(user, Some(&session.key)).await,
            None => Ok(0),
        }
    }

    async fn revoke_user(&self, user_id: &str, except: Option<&StorageKey>) -> Result<u64> {
        let span = info_span!("session.revoke_user");
        let count = self
            .backend
            .delete_user(user_id, except, self.now())
            .instrument(span)
            .await?;
        self.emit(Event::UserSessionsRevoked { count });
        Ok(count)
    }

    /// Lists the live sessions of `user_id`, oldest first, marking `current`.
    /// An entry that cannot be decoded or decrypted is left out and handled as
    /// [`Policy::on_corrupt`] says (an [`Event::Corrupted`] each).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn list_devices(
        &self,
        user_id: &str,
        current: Option<&Session>,
    ) -> Result<Vec<Device>> {
        let span = info_span!("session.list_devices");
        let list = self
            .backend
            .list_user(user_id, self.now())
            .instrument(span)
            .await?;
        Ok(self
            .readable_stored(list)
            .await?
            .into_iter()
            .map(|(s, stored)| Device {
                handle: SessionHandle::new(s.key),
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                auth_time: s.auth_time,
                idle_deadline: s.idle_deadline,
                absolute_deadline: s.absolute_deadline,
                meta: stored.client,
                current: current.is_some_and(|c| c.key == s.key || c.family == Some(s.key)),
                kind: if stored.persistent {
                    DeviceKind::PersistentLogin
                } else {
                    DeviceKind::Session
                },
            })
            .collect())
    }

    /// Revokes one session of `user_id` by its handle. Returns `false` if no
    /// live session of that user has this handle (another user's handle
    /// revokes nothing).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn revoke(&self, user_id: &str, handle: &SessionHandle) -> Result<bool> {
        let key = *handle.storage_key();
        let span = info_span!("session.revoke", key = %key.short());
        async {
            // A session never changes user under the same key (login rotates),
            // so checking ownership first and deleting second is safe.
            let owned = match self.backend.load(&key, self.now()).await? {
                Some(Lookup::Session(r)) => r.user_id.as_deref() == Some(user_id),
                _ => false,
            };
            if !owned {
                return Ok(false);
            }
            let removed = self.backend.delete(&key).await?;
            if removed {
                self.emit(Event::Revoked {
                    key: key.short_hash(),
                });
            }
            Ok(removed)
        }
        .instrument(span)
        .await
    }

    /// Removes expired entries in batches of `batch` until none is left;
    /// returns how many were removed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a zero batch; backend errors.
    pub async fn cleanup_expired(&self, batch: usize) -> Result<u64> {
        if batch == 0 {
            return Err(Error::InvalidInput("cleanup batch must be at least 1"));
        }
        let now = self.now();
        let mut total = 0;
        loop {
            let n = self.backend.cleanup_expired(now, batch).await?;
            total += n;
            if n < batch as u64 {
                break;
            }
        }
        self.emit(Event::CleanedUp { removed: total });
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ManualClock, MemoryStore};

    const MIN: Duration = Duration::from_secs(60);

    fn config_message(policy: Policy) -> String {
        match SessionManager::builder(Arc::new(MemoryStore::new()))
            .policy(policy)
            .build()
        {
            Err(Error::Config(message)) => message,
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    fn manager(policy: Policy) -> (SessionManager, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let manager = SessionManager::builder(store.clone())
            .clock(clock)
            .policy(policy)
            .build()
            .expect("valid policy");
        (manager, store)
    }

    #[test]
    fn default_policy_is_valid_with_no_grace() {
        let p = Policy::default();
        assert_eq!(p.renewal_grace, Duration::ZERO);
        assert!(p.renewal_grace <= p.idle_timeout);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn policy_rejects_zero_idle_timeout() {
        let m = config_message(Policy {
            idle_timeout: Duration::ZERO,
            ..Policy::default()
        });
        assert!(m.contains("timeouts must be greater than zero"), "{m}");
    }

    #[test]
    fn policy_rejects_zero_absolute_timeout() {
        let m = config_message(Policy {
            absolute_timeout: Duration::ZERO,
            ..Policy::default()
        });
        assert!(m.contains("timeouts must be greater than zero"), "{m}");
    }

    #[test]
    fn policy_rejects_idle_longer_than_absolute() {
        let m = config_message(Policy {
            idle_timeout: 61 * MIN,
            absolute_timeout: 60 * MIN,
            ..Policy::default()
        });
        assert!(m.contains("idle timeout must not exceed"), "{m}");
        // Equal is allowed.
        let equal = Policy {
            idle_timeout: 60 * MIN,
            absolute_timeout: 60 * MIN,
            ..Policy::default()
        };
        assert!(equal.validate().is_ok());
    }

    #[test]
    fn policy_rejects_grace_longer_than_idle() {
        let m = config_message(Policy {
            idle_timeout: MIN,
            renewal_grace: MIN + Duration::from_millis(1),
            ..Policy::default()
        });
        assert!(m.contains("renewal grace must not exceed"), "{m}");
        let equal = Policy {
            idle_timeout: MIN,
            renewal_grace: MIN,
            ..Policy::default()
        };
        assert!(equal.validate().is_ok());
    }

    #[test]
    fn policy_rejects_a_zero_session_cap() {
        for cap in [CapPolicy::Refuse, CapPolicy::EvictOldest] {
            let m = config_message(Policy {
                max_sessions_per_user: Some((0, cap)),
                ..Policy::default()
            });
            assert!(m.contains("cap must be at least 1"), "{m}");
        }
        let one = Policy {
            max_sessions_per_user: Some((1, CapPolicy::Refuse)),
            ..Policy::default()
        };
        assert!(one.validate().is_ok());
    }

    #[tokio::test]
    async fn create_rejects_oversized_data_and_metadata_before_writing() {
        let (m, store) = manager(Policy {
            max_data_bytes: 4,
            max_meta_bytes: 16,
            ..Policy::default()
        });
        let err = m
            .create(vec![0; 5], ClientMeta::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    what: "data",
                    limit: 4,
                    actual: 5
                }
            ),
            "{err:?}"
        );
        let meta = ClientMeta {
            user_agent: Some("x".repeat(64)),
            ..ClientMeta::default()
        };
        let err = m.create(vec![0; 4], meta).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    what: "metadata",
                    limit: 16,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(store.len(), 0, "nothing may be written");
    }

    #[tokio::test]
    async fn save_rejects_oversized_data_and_keeps_the_stored_version() {
        let (m, _store) = manager(Policy {
            max_data_bytes: 4,
            ..Policy::default()
        });
        let mut s = m.create(vec![1], ClientMeta::default()).await.unwrap();
        s.set_data(vec![0; 5]);
        let err = m.save(&mut s).await.unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { what: "data", .. }),
            "{err:?}"
        );
        let stored = m.load(s.token().expose_secret()).await.unwrap().unwrap();
        assert_eq!(stored.version(), 0);
        assert_eq!(stored.data(), &[1]);
    }

    #[tokio::test]
    async fn login_rejects_empty_and_oversized_user_ids() {
        let (m, _store) = manager(Policy {
            max_user_id_bytes: 8,
            ..Policy::default()
        });
        let mut s = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
        let before = s.token().expose_secret().to_owned();
        let err = m
            .rotate(
                &mut s,
                RotateReason::Login {
                    user_id: String::new(),
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        let err = m
            .rotate(
                &mut s,
                RotateReason::Login {
                    user_id: "x".repeat(9),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    what: "user id",
                    limit: 8,
                    actual: 9
                }
            ),
            "{err:?}"
        );
        // Neither attempt rotated anything: the anonymous token still loads.
        assert_eq!(s.token().expose_secret(), before);
        assert!(m.load(&before).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn malformed_tokens_are_invalid_id() {
        let (m, _store) = manager(Policy::default());
        for bad in ["", "short", &"!".repeat(crate::TOKEN_LEN)] {
            let err = m.load(bad).await.unwrap_err();
            assert!(matches!(err, Error::InvalidId), "{bad:?}: {err:?}");
        }
    }

    #[tokio::test]
    async fn cleanup_rejects_a_zero_batch() {
        let (m, _store) = manager(Policy::default());
        let err = m.cleanup_expired(0).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    }

    #[tokio::test]
    async fn refuse_cap_rejects_the_login_over_the_cap() {
        let (m, _store) = manager(Policy {
            max_sessions_per_user: Some((1, CapPolicy::Refuse)),
            ..Policy::default()
        });
        let login = || RotateReason::Login {
            user_id: "alice".into(),
        };
        let mut first = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
        m.rotate(&mut first, login()).await.unwrap();
        let mut second = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
        let err = m.rotate(&mut second, login()).await.unwrap_err();
        assert!(
            matches!(err, Error::TooManySessions { limit: 1 }),
            "{err:?}"
        );
        assert_eq!(second.user_id(), None);
    }

    /// Records every event.
    #[derive(Debug, Default)]
    struct Recorder(std::sync::Mutex<Vec<Event>>);

    impl EventSink for Recorder {
        fn event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<Event> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn manager_over(
        backend: Arc<dyn SessionBackend>,
        policy: Policy,
    ) -> (SessionManager, Arc<Recorder>) {
        let events = Arc::new(Recorder::default());
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let m = SessionManager::builder(backend)
            .clock(clock)
            .policy(policy)
            .events(events.clone())
            .build()
            .expect("valid policy");
        (m, events)
    }

    fn login(user: &str) -> RotateReason {
        RotateReason::Login {
            user_id: user.into(),
        }
    }

    /// Overwrites the stored metadata of `key` with bytes that do not parse.
    async fn garble_meta(store: &dyn SessionBackend, key: &StorageKey, now: Timestamp) {
        let Some(Lookup::Session(mut r)) = store.load(key, now).await.unwrap() else {
            panic!("expected a session");
        };
        r.meta = b"\xff not json".to_vec();
        store.save(key, &r, now).await.unwrap();
    }

    fn corrupted(events: &[Event]) -> Vec<(Damage, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Corrupted {
                    damage, removed, ..
                } => Some((*damage, *removed)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn undecodable_metadata_is_contained_removed_and_the_caller_starts_over() {
        let store = Arc::new(MemoryStore::new());
        let (m, events) = manager_over(store.clone(), Policy::default());
        let s = m.create(vec![1], ClientMeta::default()).await.unwrap();
        garble_meta(&*store, &s.storage_key(), m.now()).await;
        events.take();
        // Fail closed: no session, an event with the key's short hash, entry gone.
        assert!(m.load(s.token().expose_secret()).await.unwrap().is_none());
        let ev = events.take();
        assert!(
            ev.contains(&Event::Corrupted {
                key: s.storage_key().short_hash(),
                damage: Damage::Undecodable,
                removed: true,
            }),
            "{ev:?}"
        );
        assert_eq!(store.len(), 0);
        // The same cookie is now an ordinary miss; a new session works.
        assert!(m.load(s.token().expose_secret()).await.unwrap().is_none());
        assert!(matches!(events.take()[..], [Event::LookupMiss { .. }]));
        m.create(Vec::new(), ClientMeta::default()).await.unwrap();
    }

    #[tokio::test]
    async fn quarantine_keeps_the_entry_and_fail_returns_the_error() {
        let store = Arc::new(MemoryStore::new());
        for (on_corrupt, expect_err) in [(OnCorrupt::Quarantine, false), (OnCorrupt::Fail, true)] {
            let (m, events) = manager_over(
                store.clone(),
                Policy {
                    on_corrupt,
                    ..Policy::default()
                },
            );
            let s = m.create(vec![1], ClientMeta::default()).await.unwrap();
            garble_meta(&*store, &s.storage_key(), m.now()).await;
            events.take();
            for _ in 0..2 {
                let res = m.load(s.token().expose_secret()).await;
                if expect_err {
                    assert!(matches!(res, Err(Error::Codec { .. })), "{res:?}");
                } else {
                    assert!(res.unwrap().is_none());
                }
                assert_eq!(
                    corrupted(&events.take()),
                    [(Damage::Undecodable, false)],
                    "{on_corrupt:?}"
                );
            }
            assert!(store
                .load(&s.storage_key(), m.now())
                .await
                .unwrap()
                .is_some());
            store.delete(&s.storage_key()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn undecryptable_data_is_contained_with_both_events() {
        let store = Arc::new(MemoryStore::new());
        let enc = Arc::new(crate::Encrypted::new(
            store.clone(),
            crate::Keyring::new(1, crate::EncryptionKey::generate()),
        ));
        let (m, events) = manager_over(enc, Policy::default());
        let s = m
            .create(b"secret".to_vec(), ClientMeta::default())
            .await
            .unwrap();
        let key = s.storage_key();
        let Some(Lookup::Session(mut raw)) = store.load(&key, m.now()).await.unwrap() else {
            panic!("expected a session");
        };
        let last = raw.data.len() - 1;
        raw.data[last] ^= 1;
        store.save(&key, &raw, m.now()).await.unwrap();
        events.take();
        assert!(m.load(s.token().expose_secret()).await.unwrap().is_none());
        let ev = events.take();
        assert!(ev.contains(&Event::DecryptFailed {
            key: key.short_hash()
        }));
        assert_eq!(corrupted(&ev), [(Damage::Undecryptable, true)]);
        assert_eq!(store.len(), 0);
    }

    #[tokio::test]
    async fn tampered_forwarder_is_contained() {
        let store = Arc::new(MemoryStore::new());
        let (m, events) = manager_over(store.clone(), Policy::default());
        let s = m.create(vec![1], ClientMeta::default()).await.unwrap();
        let old_key = s.storage_key();
        let next = SessionToken::generate();
        // A forwarder whose successor token is sealed under another token.
        let bad = seal_successor(&SessionToken::generate(), &next.storage_key(), &next).unwrap();
        let record = store_record(&*store, &old_key, m.now()).await;
        let until = m.now().saturating_add(MIN);
        store
            .rotate(
                &Rotation {
                    from: old_key,
                    to: next.storage_key(),
                    record,
                    grace: Some(Grace {
                        sealed_token: bad,
                        until,
                    }),
                },
                m.now(),
            )
            .await
            .unwrap();
        events.take();
        assert!(m.load(s.token().expose_secret()).await.unwrap().is_none());
        assert_eq!(corrupted(&events.take()), [(Damage::Undecryptable, true)]);
        // The successor itself is untouched.
        assert!(m.load(next.expose_secret()).await.unwrap().is_some());
    }

    async fn store_record(
        store: &dyn SessionBackend,
        key: &StorageKey,
        now: Timestamp,
    ) -> SessionRecord {
        match store.load(key, now).await.unwrap() {
            Some(Lookup::Session(r)) => r,
            other => panic!("expected a session, found {other:?}"),
        }
    }

    #[tokio::test]
    async fn listings_and_logins_skip_and_report_damaged_entries() {
        let store = Arc::new(MemoryStore::new());
        let (m, events) = manager_over(
            store.clone(),
            Policy {
                max_sessions_per_user: Some((2, CapPolicy::Refuse)),
                on_corrupt: OnCorrupt::Quarantine,
                ..Policy::default()
            },
        );
        let mut a = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
        m.rotate(&mut a, login("alice")).await.unwrap();
        garble_meta(&*store, &a.storage_key(), m.now()).await;
        events.take();
        // The devices list leaves the damaged entry out and reports it.
        assert!(m.list_devices("alice", None).await.unwrap().is_empty());
        assert_eq!(corrupted(&events.take()), [(Damage::Undecodable, false)]);
        // Two more logins fit under the cap of 2: the damaged entry is not counted.
        for _ in 0..2 {
            let mut b = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
            m.rotate(&mut b, login("alice")).await.unwrap();
        }
        assert_eq!(m.list_devices("alice", None).await.unwrap().len(), 2);
        // Logout everywhere removes every entry, the damaged one too.
        m.logout_everywhere("alice").await.unwrap();
        assert_eq!(store.len(), 0);
    }

    #[tokio::test]
    async fn lookup_miss_carries_the_key_hash_and_the_client_ip() {
        let (m, events) = manager_over(Arc::new(MemoryStore::new()), Policy::default());
        let token = SessionToken::generate();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(m
            .load_from(token.expose_secret(), Some(ip))
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            events.take(),
            [Event::LookupMiss {
                key: token.storage_key().short_hash(),
                ip: Some(ip),
            }]
        );
        assert!(m.load(token.expose_secret()).await.unwrap().is_none());
        assert_eq!(
            events.take(),
            [Event::LookupMiss {
                key: token.storage_key().short_hash(),
                ip: None,
            }]
        );
        assert!(m
            .load_token_from(token.clone(), Some(ip))
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            events.take(),
            [Event::LookupMiss {
                key: token.storage_key().short_hash(),
                ip: Some(ip),
            }]
        );
        assert!(m.load("not a token").await.is_err());
        assert_eq!(events.take(), [Event::InvalidToken]);
    }

    #[test]
    fn default_grace_is_zero_and_never_exceeds_idle() {
        let p = Policy::default();
        assert_eq!(
            p.renewal_grace,
            Duration::ZERO,
            "the default grace must stay 0"
        );
        assert!(p.renewal_grace <= p.idle_timeout);
        assert_eq!(p.on_corrupt, OnCorrupt::Remove);
        // A grace one millisecond over the idle timeout never builds.
        let over = Policy {
            renewal_grace: p.idle_timeout + Duration::from_millis(1),
            ..Policy::default()
        };
        assert!(matches!(over.validate(), Err(Error::Config(_))));
    }

    /// Neither the raw bytes of an encryption key nor any base64 or hex
    /// spelling of them ever appear in what a store holds.
    #[tokio::test]
    async fn encryption_key_bytes_never_reach_the_store() {
        use base64::Engine as _;
        let raw_key = [
            0x5au8, 0x17, 0xc3, 0x99, 0x01, 0xfe, 0x42, 0x7d, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60,
            0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x0f, 0x1f, 0x2f, 0x3f, 0x4f,
            0x5f, 0x6f, 0x7f, 0x8f,
        ];
        let store = Arc::new(MemoryStore::new());
        let enc = Arc::new(crate::Encrypted::new(
            store.clone(),
            crate::Keyring::new(1, crate::EncryptionKey::from_bytes(raw_key)),
        ));
        let (m, _) = manager_over(
            enc,
            Policy {
                renewal_grace: MIN,
                ..Policy::default()
            },
        );
        let meta = ClientMeta {
            label: Some("laptop".into()),
            ..ClientMeta::default()
        };
        let mut s = m.create(raw_key.to_vec(), meta).await.unwrap();
        m.rotate(&mut s, login("alice")).await.unwrap();
        m.rotate(&mut s, RotateReason::Renewal).await.unwrap();
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        let mut spellings: Vec<Vec<u8>> = vec![raw_key[..16].to_vec(), raw_key[16..].to_vec()];
        spellings.push(hex::encode(raw_key).into_bytes());
        spellings.push(hex::encode_upper(raw_key).into_bytes());
        for e in engines {
            // Any 12-character window of the base64 text (aligned or not).
            let text = e.encode(raw_key);
            spellings.extend(text.as_bytes().windows(12).step_by(4).map(<[u8]>::to_vec));
        }
        let dump = store.dump_raw();
        assert!(!dump.is_empty());
        for blob in &dump {
            for sp in &spellings {
                assert!(
                    !blob.windows(sp.len()).any(|w| w == sp.as_slice()),
                    "key material found in a stored value"
                );
            }
        }
    }

    mod revocation_failures {
        use super::*;
        use crate::{Fault, Faulty, Op};

        async fn setup() -> (
            SessionManager,
            Arc<Faulty<MemoryStore>>,
            Arc<Recorder>,
            Session,
            Session,
        ) {
            let store = Arc::new(Faulty::new(MemoryStore::new()));
            let (m, events) = manager_over(store.clone(), Policy::default());
            let mut a = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
            m.rotate(&mut a, login("alice")).await.unwrap();
            let mut b = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
            m.rotate(&mut b, login("alice")).await.unwrap();
            events.take();
            (m, store, events, a, b)
        }

        fn is_injected(e: &Error) -> bool {
            matches!(
                e,
                Error::Backend {
                    backend: "faulty",
                    ..
                }
            )
        }

        #[tokio::test]
        async fn logout_reports_a_failed_delete() {
            for fault in [Fault::Fail, Fault::FailAfter] {
                let (m, store, events, a, _) = setup().await;
                store.inject(Op::Delete, fault);
                let err = m.logout(&a).await.unwrap_err();
                assert!(is_injected(&err), "{err:?}");
                assert!(
                    events.take().is_empty(),
                    "no Deleted event for a failed delete"
                );
                store.clear_all();
                // Retrying finishes the job.
                m.logout(&a).await.unwrap();
                assert!(m.load(a.token().expose_secret()).await.unwrap().is_none());
            }
        }

        #[tokio::test]
        async fn logout_everywhere_and_other_devices_report_failure() {
            let (m, store, events, a, b) = setup().await;
            store.inject(Op::DeleteUser, Fault::Fail);
            assert!(is_injected(
                &m.logout_everywhere("alice").await.unwrap_err()
            ));
            assert!(is_injected(&m.logout_other_devices(&a).await.unwrap_err()));
            assert!(events.take().is_empty());
            // Nothing was revoked, and nothing claimed it was.
            assert!(m.load(b.token().expose_secret()).await.unwrap().is_some());
            store.clear_all();
            assert_eq!(m.logout_everywhere("alice").await.unwrap(), 2);
        }

        #[tokio::test]
        async fn revoke_reports_a_failed_lookup_or_delete() {
            let (m, store, events, a, b) = setup().await;
            let handle = b.handle();
            for op in [Op::Load, Op::Delete] {
                store.inject(op, Fault::Fail);
                assert!(is_injected(&m.revoke("alice", &handle).await.unwrap_err()));
                store.clear_all();
            }
            assert!(events.take().is_empty());
            assert!(m.revoke("alice", &handle).await.unwrap());
            let _ = a;
        }

        #[tokio::test]
        async fn delete_all_and_cleanup_report_failure() {
            let (m, store, _events, _a, _b) = setup().await;
            store.inject(Op::DeleteAll, Fault::Fail);
            assert!(is_injected(&store.delete_all().await.unwrap_err()));
            store.inject(Op::CleanupExpired, Fault::FailTimes(1));
            assert!(is_injected(&m.cleanup_expired(10).await.unwrap_err()));
            assert_eq!(m.cleanup_expired(10).await.unwrap(), 0);
        }

        #[tokio::test]
        async fn a_failed_eviction_fails_the_login_it_belongs_to() {
            let store = Arc::new(Faulty::new(MemoryStore::new()));
            let (m, _events) = manager_over(
                store.clone(),
                Policy {
                    max_sessions_per_user: Some((1, CapPolicy::EvictOldest)),
                    ..Policy::default()
                },
            );
            let mut a = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
            m.rotate(&mut a, login("alice")).await.unwrap();
            let mut b = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
            store.inject(Op::Delete, Fault::Fail);
            assert!(is_injected(
                &m.rotate(&mut b, login("alice")).await.unwrap_err()
            ));
        }

        /// A bulk revocation that fails part way (here: the first attempt
        /// fails, as a lost connection would) is reported, and calling again
        /// finishes the job.
        #[tokio::test]
        async fn a_failed_bulk_revocation_is_finished_by_calling_again() {
            let (m, store, events, a, b) = setup().await;
            store.inject(Op::DeleteUser, Fault::FailAfter);
            assert!(is_injected(
                &m.logout_everywhere("alice").await.unwrap_err()
            ));
            assert!(
                events.take().is_empty(),
                "no UserSessionsRevoked for a failure"
            );
            store.clear_all();
            assert_eq!(m.logout_everywhere("alice").await.unwrap(), 0);
            for s in [&a, &b] {
                assert!(m.load(s.token().expose_secret()).await.unwrap().is_none());
            }
            store.inject(Op::DeleteAll, Fault::FailTimes(2));
            assert!(store.delete_all().await.is_err());
            assert!(store.delete_all().await.is_err());
            store.delete_all().await.unwrap();
        }

        #[tokio::test]
        async fn a_delayed_operation_still_completes() {
            let (m, store, _events, a, _b) = setup().await;
            store.inject(Op::Load, Fault::Delay(Duration::from_millis(30)));
            let started = std::time::Instant::now();
            assert!(m.load(a.token().expose_secret()).await.unwrap().is_some());
            assert!(started.elapsed() >= Duration::from_millis(30));
        }
    }

    /// A load that read the session just before a concurrent renewal rotated
    /// it finds its touch matching nothing (the old key is a forwarder by
    /// then): it looks once more and lands on the successor, which the grace
    /// window lets the old token reach, instead of reporting no session. A
    /// session deleted in the same gap is still no session.
    #[tokio::test]
    async fn a_load_racing_a_rotation_looks_again_before_saying_no_session() {
        let store = Arc::new(crate::Faulty::new(MemoryStore::new()));
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let m = SessionManager::builder(store.clone())
            .clock(clock.clone())
            .policy(Policy {
                renewal_grace: MIN,
                ..Policy::default()
            })
            .build()
            .unwrap();
        let mut s = m
            .create(b"x".to_vec(), ClientMeta::default())
            .await
            .unwrap();
        m.rotate(&mut s, login("alice")).await.unwrap();
        clock.advance(Policy::default().touch_interval + Duration::from_secs(1));
        // The load's touch waits (its read is done by then); the rotation,
        // polled next on this one thread, completes in that gap.
        store.inject(
            crate::Op::Touch,
            crate::Fault::Delay(Duration::from_millis(1)),
        );
        let mut renewed = s.clone();
        let (loaded, rotated) = tokio::join!(
            m.load_token(s.token().clone()),
            m.rotate(&mut renewed, RotateReason::Renewal)
        );
        rotated.unwrap();
        let loaded = loaded.unwrap().expect("the successor, not \"no session\"");
        assert_eq!(loaded.storage_key(), renewed.storage_key());
        assert!(loaded.token_changed());
        assert_eq!(loaded.user_id(), Some("alice"));

        clock.advance(Policy::default().touch_interval + Duration::from_secs(1));
        let (loaded, deleted) = tokio::join!(m.load_token(renewed.token().clone()), async {
            store.inner().delete(&renewed.storage_key()).await
        });
        assert!(deleted.unwrap());
        assert!(
            loaded.unwrap().is_none(),
            "deleted between the read and the touch"
        );
    }

    /// A save is activity recorded as a load records it: within the touch
    /// interval of the last recorded activity it leaves the idle deadline
    /// and the activity time as stored (so the store's expiry, and its
    /// index entry, stay put); once the interval has passed it moves both.
    /// The idle deadline therefore never lags the last activity by a touch
    /// interval or more, with saves, loads or both.
    #[tokio::test]
    async fn a_save_records_activity_once_per_touch_interval() {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let policy = Policy::default();
        let m = SessionManager::builder(store.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        let mut s = m
            .create(b"x".to_vec(), ClientMeta::default())
            .await
            .unwrap();
        let created = m.now();
        let stored = |key: StorageKey| {
            let store = store.clone();
            async move {
                match store.load(&key, Timestamp::EPOCH).await.unwrap() {
                    Some(Lookup::Session(r)) => (r.idle_deadline, r.last_seen_at),
                    other => panic!("expected the session, got {other:?}"),
                }
            }
        };
        let first = created.saturating_add(policy.idle_timeout);
        assert_eq!(stored(s.storage_key()).await, (first, created));

        // Saves every few seconds, inside the interval: nothing moves.
        for _ in 0..5 {
            clock.advance(Duration::from_secs(10));
            s.set_data(b"y".to_vec());
            m.save(&mut s).await.unwrap();
            assert_eq!(stored(s.storage_key()).await, (first, created));
            assert_eq!((s.idle_deadline(), s.last_seen_at()), (first, created));
        }
        // The next one is a touch interval after the recorded activity.
        clock.advance(Duration::from_secs(10));
        let now = m.now();
        assert_eq!(
            now.saturating_duration_since(created),
            policy.touch_interval
        );
        s.set_data(b"z".to_vec());
        m.save(&mut s).await.unwrap();
        let moved = now.saturating_add(policy.idle_timeout);
        assert_eq!(stored(s.storage_key()).await, (moved, now));
        assert_eq!((s.idle_deadline(), s.last_seen_at()), (moved, now));
        // A load inside the interval after it writes nothing either, and the
        // data is the last save's.
        clock.advance(Duration::from_secs(30));
        let loaded = m.load_token(s.token().clone()).await.unwrap().unwrap();
        assert_eq!(loaded.data(), b"z");
        assert_eq!(stored(s.storage_key()).await, (moved, now));
    }
}
