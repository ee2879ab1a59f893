//! The session manager: tokens, policy and the life of a session, over any backend.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info_span, Instrument as _};

use crate::backend::SessionBackend;
use crate::crypto::forward::{seal_successor, unseal_successor};
use crate::error::{Error, Result};
use crate::events::{Event, EventSink, NoEvents};
use crate::record::{ClientMeta, Grace, Lookup, Rotation, SessionRecord};
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
        Ok(())
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
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("key", &self.key)
            .field("record", &self.record)
            .field("meta", &self.meta)
            .field("token_changed", &self.token_changed)
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
    /// Whether this is the session the listing was made from.
    pub current: bool,
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
    backend: Arc<dyn SessionBackend>,
    clock: Arc<dyn Clock>,
    policy: Arc<Policy>,
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
    fn idle_deadline_at(&self, now: Timestamp, absolute_deadline: Timestamp) -> Timestamp {
        now.saturating_add(self.policy.idle_timeout)
            .min(absolute_deadline)
    }

    fn emit(&self, event: Event) {
        debug!(?event, "session event");
        self.events.event(&event);
    }

    fn check_limits(&self, data: &[u8], meta: &[u8], user_id: Option<&str>) -> Result<()> {
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

    fn decrypt_event(&self, key: &StorageKey, err: &Error) {
        if matches!(err, Error::Decrypt { .. }) {
            self.emit(Event::DecryptFailed {
                key: key.short_hash(),
            });
        }
    }

    /// Creates an anonymous session.
    ///
    /// # Errors
    /// [`Error::TooLarge`] before any write; backend errors.
    pub async fn create(&self, data: Vec<u8>, meta: ClientMeta) -> Result<Session> {
        let meta_bytes = meta.encode();
        self.check_limits(&data, &meta_bytes, None)?;
        let now = self.now();
        let record = SessionRecord {
            version: 0,
            user_id: None,
            created_at: now,
            last_seen_at: now,
            auth_time: None,
            idle_deadline: now.saturating_add(self.policy.idle_timeout),
            absolute_deadline: now.saturating_add(self.policy.absolute_timeout),
            meta: meta_bytes,
            data,
        };
        loop {
            let token = SessionToken::generate();
            let key = token.storage_key();
            let span = info_span!("session.create", key = %key.short_hash());
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
    /// # Errors
    /// [`Error::InvalidId`] for a malformed token, before any I/O;
    /// [`Error::Decrypt`] for tampered data; backend errors (never `None`).
    pub async fn load(&self, token: &str) -> Result<Option<Session>> {
        let token = match SessionToken::parse(token) {
            Ok(t) => t,
            Err(e) => {
                self.emit(Event::InvalidToken);
                return Err(e);
            }
        };
        self.load_token(token).await
    }

    /// [`SessionManager::load`] for an already parsed token.
    ///
    /// # Errors
    /// As [`SessionManager::load`].
    pub async fn load_token(&self, token: SessionToken) -> Result<Option<Session>> {
        let now = self.now();
        let presented = token.storage_key();
        let span = info_span!("session.load", key = %presented.short_hash());
        async move {
            let Some((token, key, record)) = self.resolve(token, now).await? else {
                self.emit(Event::LookupMiss);
                return Ok(None);
            };
            let meta = ClientMeta::decode(&record.meta)?;
            let mut session = Session {
                token_changed: key != presented,
                token,
                key,
                record,
                meta,
            };
            if now.saturating_duration_since(session.record.last_seen_at)
                >= self.policy.touch_interval
            {
                let idle = self.idle_deadline_at(now, session.record.absolute_deadline);
                if !self.backend.touch(&key, idle, now, now).await? {
                    self.emit(Event::LookupMiss);
                    return Ok(None);
                }
                session.record.idle_deadline = session.record.idle_deadline.max(idle);
                session.record.last_seen_at = session.record.last_seen_at.max(now);
            }
            Ok(Some(session))
        }
        .instrument(span)
        .await
    }

    /// Follows forwarders; returns the live session's token, key and record.
    async fn resolve(
        &self,
        mut token: SessionToken,
        now: Timestamp,
    ) -> Result<Option<(SessionToken, StorageKey, SessionRecord)>> {
        let mut key = token.storage_key();
        for _ in 0..=MAX_FORWARD_HOPS {
            let found = self.backend.load(&key, now).await;
            if let Err(e) = &found {
                self.decrypt_event(&key, e);
            }
            match found? {
                None => return Ok(None),
                Some(Lookup::Session(record)) => return Ok(Some((token, key, record))),
                Some(Lookup::Forwarded(fwd)) => {
                    let next = unseal_successor(&token, &fwd.successor, &fwd.sealed_token)?;
                    self.emit(Event::ForwardFollowed {
                        from: key.short_hash(),
                        to: fwd.successor.short_hash(),
                    });
                    key = fwd.successor;
                    token = next;
                }
            }
        }
        Ok(None)
    }

    /// Writes the session's data and metadata (compare-and-swap on its
    /// version). A save is activity: the idle deadline moves forward (capped).
    ///
    /// # Errors
    /// [`Error::Conflict`] if the session changed or is gone (reload and retry);
    /// [`Error::TooLarge`] before any write; backend errors.
    pub async fn save(&self, session: &mut Session) -> Result<()> {
        let meta = session.meta.encode();
        self.check_limits(
            &session.record.data,
            &meta,
            session.record.user_id.as_deref(),
        )?;
        let now = self.now();
        let mut record = session.record.clone();
        record.meta = meta;
        record.last_seen_at = record.last_seen_at.max(now);
        record.idle_deadline = record
            .idle_deadline
            .max(self.idle_deadline_at(now, record.absolute_deadline));
        let span = info_span!("session.save", key = %session.key.short_hash());
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
        let meta = session.meta.encode();
        let mut record = session.record.clone();
        record.meta = meta;
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
        self.check_limits(&record.data, &record.meta, record.user_id.as_deref())?;
        if let (RotateReason::Login { user_id }, Some((cap, CapPolicy::Refuse))) =
            (&reason, self.policy.max_sessions_per_user)
        {
            let others = self.other_sessions(user_id, &session.key, now).await?;
            if others.len() >= cap {
                return Err(Error::TooManySessions { limit: cap });
            }
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
        let span = info_span!("session.rotate", from = %session.key.short_hash(), to = %new_key.short_hash(), reason = reason.label());
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
                match self.resolve(session.token.clone(), now).await? {
                    Some((token, key, record)) if key != session.key => {
                        session.meta = ClientMeta::decode(&record.meta)?;
                        session.token = token;
                        session.key = key;
                        session.record = record;
                        session.token_changed = true;
                        Ok(())
                    }
                    _ => Err(Error::Conflict),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The user's live sessions other than `current`, oldest first.
    async fn other_sessions(
        &self,
        user_id: &str,
        current: &StorageKey,
        now: Timestamp,
    ) -> Result<Vec<crate::record::SessionSummary>> {
        let mut list = self.backend.list_user(user_id, now).await?;
        list.retain(|s| s.key != *current);
        Ok(list)
    }

    /// After a login committed: deletes the user's oldest sessions so that at
    /// most `cap` remain, the new one included. Running after the rotation
    /// means a failed login evicts nothing, and concurrent logins each trim
    /// after their own insert, so the user ends at or under the cap.
    async fn evict_oldest(
        &self,
        user_id: &str,
        new_key: &StorageKey,
        cap: usize,
        now: Timestamp,
    ) -> Result<()> {
        let others = self.other_sessions(user_id, new_key, now).await?;
        let excess = (others.len() + 1).saturating_sub(cap);
        for victim in &others[..excess] {
            self.backend.delete(&victim.key).await?;
            self.emit(Event::Evicted {
                key: victim.key.short_hash(),
            });
        }
        Ok(())
    }

    /// Deletes the session server-side (idempotent).
    ///
    /// # Errors
    /// Backend errors (a delete is never silently skipped).
    pub async fn logout(&self, session: &Session) -> Result<()> {
        let span = info_span!("session.logout", key = %session.key.short_hash());
        self.backend.delete(&session.key).instrument(span).await?;
        self.emit(Event::Deleted {
            key: session.key.short_hash(),
        });
        Ok(())
    }

    /// Deletes every session of `user_id` ("log out everywhere"); returns how
    /// many live sessions were removed.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn logout_everywhere(&self, user_id: &str) -> Result<u64> {
        self.revoke_user(user_id, None).await
    }

    /// Deletes every session of the session's user except this one ("log out
    /// other devices", e.g. after a password change). Returns 0 for an
    /// anonymous session.
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
    ///
    /// # Errors
    /// [`Error::Decrypt`]/[`Error::Codec`] for damaged metadata; backend errors.
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
        list.into_iter()
            .map(|s| {
                Ok(Device {
                    handle: SessionHandle::new(s.key),
                    created_at: s.created_at,
                    last_seen_at: s.last_seen_at,
                    auth_time: s.auth_time,
                    idle_deadline: s.idle_deadline,
                    absolute_deadline: s.absolute_deadline,
                    meta: ClientMeta::decode(&s.meta)?,
                    current: current.is_some_and(|c| c.key == s.key),
                })
            })
            .collect()
    }

    /// Revokes one session of `user_id` by its handle. Returns `false` if no
    /// live session of that user has this handle (another user's handle
    /// revokes nothing).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn revoke(&self, user_id: &str, handle: &SessionHandle) -> Result<bool> {
        let key = *handle.storage_key();
        let span = info_span!("session.revoke", key = %key.short_hash());
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
}
