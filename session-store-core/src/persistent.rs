//! Persistent logins ("remember me", refresh tokens): token families rotated
//! on every use, with reuse detection.
//!
//! # Contract
//! - A [`PersistentToken`] is a secret of its own, separate from the session
//!   token: a 128-bit family id and a 256-bit secret from the OS CSPRNG,
//!   carried as `p.` followed by 64 characters of base64url (66 characters,
//!   fixed length, so no token is a prefix of another, and neither a session
//!   token nor a handle ever parses as one). Parsing rejects anything else
//!   with [`Error::InvalidId`] before any I/O.
//! - A family is stored as one record in the backend's ordinary key space,
//!   under `SHA-256("session-store persistent family v1\0" ‖ family id)`,
//!   owned by the user (so it is in the user's listing, and
//!   [`SessionManager::logout_everywhere`] removes it with the sessions). The
//!   record holds only a SHA-256 hash of the current secret, the hash of the
//!   previous one, and the successor sealed under the previous secret: no
//!   token is ever at rest. Under [`Encrypted`](crate::Encrypted) the whole
//!   family state and its client metadata are encrypted like session data.
//! - The family's absolute deadline is its issue time plus
//!   [`PersistentPolicy::lifetime`]; its idle deadline is its last use plus
//!   [`PersistentPolicy::idle_timeout`]. Both are the record's deadlines, so
//!   every backend expires families as it expires sessions.
//! - **Use** ([`SessionManager::resume`]): a token whose secret is the
//!   family's current one is rotated by one compare-and-swap `save` of the
//!   family record, which marks it used and installs its successor in one
//!   atomic write; the caller gets a new logged-in session whose `auth_time`
//!   is the original login's and which reports
//!   [`Session::remembered`]. Concurrent uses of one token: exactly one
//!   `save` wins, so exactly one successor exists.
//! - **Grace**: for [`PersistentPolicy::grace`] after a rotation, the token
//!   just rotated still opens the family: it gets a new session and the
//!   *same* successor (unsealed with the old secret), so two tabs of one
//!   browser racing on one cookie both stay logged in. The trade-off: a
//!   thief replaying a stolen token within that window is not detected by
//!   that replay (the next use of either copy outside the window is). With a
//!   grace of zero, the loser of a race revokes the family.
//! - **Reuse**: any other secret under a live family (a token rotated away,
//!   outside the grace) revokes the family, and, when
//!   [`PersistentPolicy::revoke_sessions_on_reuse`] is on (the default),
//!   every session the family minted (started from one of its tokens, with
//!   no password login since); [`Event::PersistentReuse`] is raised
//!   and the use answers `None`.
//! - **Revocation**: [`SessionManager::logout`] also deletes the family the
//!   session is linked to; `logout_everywhere` deletes every family of the
//!   user; [`SessionManager::list_devices`] lists families as
//!   [`DeviceKind::PersistentLogin`] with a handle that
//!   [`SessionManager::revoke`] accepts.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::TryRngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use tracing::{info_span, Instrument as _};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::forward::{open_persistent, seal_persistent};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::manager::{CapPolicy, Session, SessionManager};
use crate::record::{ClientMeta, Lookup, SessionRecord};
use crate::time::Timestamp;
use crate::token::{SessionHandle, StorageKey};

#[allow(unused_imports)] // for intra-doc links
use crate::manager::DeviceKind;

/// Length of a persistent token's text form: `p.` and 64 base64url characters.
pub const PERSISTENT_TOKEN_LEN: usize = 66;
const PREFIX: &str = "p.";
const FAMILY_BYTES: usize = 16;
const SECRET_BYTES: usize = 32;
const FAMILY_DOMAIN: &[u8] = b"session-store persistent family v1\0";
const SECRET_DOMAIN: &[u8] = b"session-store persistent secret v1\0";

/// How long persistent logins live and how their rotation behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistentPolicy {
    /// Absolute lifetime of a family, from the "remember me" login. Default 30 days.
    pub lifetime: Duration,
    /// A family not used for this long expires. Default 14 days.
    pub idle_timeout: Duration,
    /// How long a just-rotated token still reaches its successor (see the
    /// module docs for the trade-off). Default 5 seconds; zero allowed; at
    /// most one minute.
    pub grace: Duration,
    /// Whether detected reuse also revokes the sessions the family minted.
    /// Default on.
    pub revoke_sessions_on_reuse: bool,
}

impl Default for PersistentPolicy {
    fn default() -> Self {
        PersistentPolicy {
            lifetime: Duration::from_secs(30 * 24 * 3600),
            idle_timeout: Duration::from_secs(14 * 24 * 3600),
            grace: Duration::from_secs(5),
            revoke_sessions_on_reuse: true,
        }
    }
}

/// Longest allowed [`PersistentPolicy::grace`].
pub const MAX_PERSISTENT_GRACE: Duration = Duration::from_secs(60);

impl PersistentPolicy {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.lifetime.is_zero() || self.idle_timeout.is_zero() {
            return Err(Error::Config(
                "persistent login lifetime and idle timeout must be greater than zero".into(),
            ));
        }
        if self.idle_timeout > self.lifetime {
            return Err(Error::Config(
                "persistent login idle timeout must not exceed its lifetime".into(),
            ));
        }
        if self.grace > MAX_PERSISTENT_GRACE {
            return Err(Error::Config(
                "persistent login grace must not exceed one minute".into(),
            ));
        }
        Ok(())
    }
}

/// The secret of a persistent login ("remember me" cookie value, refresh
/// token). See the [module docs](self) for its format.
///
/// `Debug` is redacted and the bytes are zeroized on drop. Compare tokens
/// with `==`, which is constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PersistentToken {
    text: String,
}

impl PersistentToken {
    fn from_parts(family: &[u8; FAMILY_BYTES], secret: &[u8; SECRET_BYTES]) -> Self {
        let mut bytes = Zeroizing::new([0u8; FAMILY_BYTES + SECRET_BYTES]);
        bytes[..FAMILY_BYTES].copy_from_slice(family);
        bytes[FAMILY_BYTES..].copy_from_slice(secret);
        let mut text = String::with_capacity(PERSISTENT_TOKEN_LEN);
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&bytes[..], &mut text);
        PersistentToken { text }
    }

    /// The first token of a new family.
    fn new_family() -> Self {
        let mut family = [0u8; FAMILY_BYTES];
        fill(&mut family);
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        fill(&mut secret[..]);
        Self::from_parts(&family, &secret)
    }

    /// The next token of this token's family: same family id, fresh secret.
    fn successor(&self) -> Self {
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        fill(&mut secret[..]);
        Self::from_parts(&self.family_id(), &secret)
    }

    /// Parses a token from untrusted input (a cookie or a request body).
    ///
    /// # Errors
    /// [`Error::InvalidId`] unless the input is exactly `p.` followed by 64
    /// base64url characters. No I/O happens.
    pub fn parse(input: &str) -> Result<Self> {
        let Some(body) = input.strip_prefix(PREFIX) else {
            return Err(Error::InvalidId);
        };
        if input.len() != PERSISTENT_TOKEN_LEN
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidId);
        }
        let mut bytes = Zeroizing::new([0u8; FAMILY_BYTES + SECRET_BYTES]);
        match URL_SAFE_NO_PAD.decode_slice(body, &mut bytes[..]) {
            Ok(n) if n == FAMILY_BYTES + SECRET_BYTES => {}
            _ => return Err(Error::InvalidId),
        }
        Ok(PersistentToken {
            text: input.to_owned(),
        })
    }

    /// The text to send to the client. Treat it as a secret: never log it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The 48 raw bytes (family id, then secret). Treat them as a secret.
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.bytes().to_vec())
    }

    fn bytes(&self) -> Zeroizing<[u8; FAMILY_BYTES + SECRET_BYTES]> {
        let mut bytes = Zeroizing::new([0u8; FAMILY_BYTES + SECRET_BYTES]);
        URL_SAFE_NO_PAD
            .decode_slice(&self.text[PREFIX.len()..], &mut bytes[..])
            .expect("a PersistentToken always holds 48 bytes of base64url");
        bytes
    }

    fn family_id(&self) -> [u8; FAMILY_BYTES] {
        let mut id = [0u8; FAMILY_BYTES];
        id.copy_from_slice(&self.bytes()[..FAMILY_BYTES]);
        id
    }

    fn secret(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.bytes()[FAMILY_BYTES..].to_vec())
    }

    /// The storage key of this token's family (the same for every token of
    /// the family).
    pub fn family_key(&self) -> StorageKey {
        let mut h = Sha256::new();
        h.update(FAMILY_DOMAIN);
        h.update(self.family_id());
        StorageKey::from_bytes(h.finalize().into())
    }

    /// SHA-256 of the secret part: what the family record stores.
    fn secret_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(SECRET_DOMAIN);
        h.update(&self.secret()[..]);
        h.finalize().into()
    }
}

fn fill(buf: &mut [u8]) {
    OsRng
        .try_fill_bytes(buf)
        .expect("the OS random number generator failed");
}

impl fmt::Debug for PersistentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersistentToken(<redacted>)")
    }
}

impl PartialEq for PersistentToken {
    fn eq(&self, other: &Self) -> bool {
        self.text.as_bytes().ct_eq(other.text.as_bytes()).into()
    }
}
impl Eq for PersistentToken {}

/// What [`SessionManager::remember`] issued.
#[derive(Debug, Clone)]
pub struct PersistentLogin {
    /// The token to give the client (the remember cookie's value).
    pub token: PersistentToken,
    /// The family's absolute deadline: a cookie's `Max-Age` must not exceed it.
    pub expires_at: Timestamp,
    /// The family's handle, as listed by [`SessionManager::list_devices`].
    pub handle: SessionHandle,
}

/// What [`SessionManager::resume`] returns for a live persistent token.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// A new logged-in session ([`Session::remembered`] is true): send its token.
    pub session: Session,
    /// The family's next token: send it in place of the one presented.
    pub token: PersistentToken,
    /// The family's absolute deadline.
    pub expires_at: Timestamp,
    /// True when the presented token had just been rotated by a concurrent
    /// use and this call joined that rotation inside the grace window.
    pub joined: bool,
}

/// The family state kept in a family record's `data` (format version 1):
/// `1 | generation u64 | current hash [32] | has-prev u8 | prev hash [32] |
/// prev-until i64 | sealed len u16 | sealed`, integers big-endian.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FamilyState {
    generation: u64,
    current: [u8; 32],
    prev: Option<[u8; 32]>,
    prev_until: Timestamp,
    sealed: Vec<u8>,
}

const STATE_VERSION: u8 = 1;
const STATE_HEADER: usize = 1 + 8 + 32 + 1 + 32 + 8 + 2;
/// Largest sealed successor: nonce, tag and a token.
const MAX_SEALED: usize = 12 + 16 + PERSISTENT_TOKEN_LEN;

impl FamilyState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATE_HEADER + self.sealed.len());
        out.push(STATE_VERSION);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.current);
        out.push(u8::from(self.prev.is_some()));
        out.extend_from_slice(&self.prev.unwrap_or([0; 32]));
        out.extend_from_slice(&self.prev_until.as_millis().to_be_bytes());
        let len = u16::try_from(self.sealed.len()).expect("sealed successor is small");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.sealed);
        out
    }

    /// # Errors
    /// [`Error::Codec`] for anything but a well-formed state.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = |what: &str| Error::codec(format!("persistent login state: {what}"));
        if bytes.len() < STATE_HEADER {
            return Err(bad("too short"));
        }
        if bytes[0] != STATE_VERSION {
            return Err(bad("unknown format version"));
        }
        let take32 = |at: usize| -> [u8; 32] { bytes[at..at + 32].try_into().expect("32 bytes") };
        let generation = u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
        let current = take32(9);
        let prev = match bytes[41] {
            0 => None,
            1 => Some(take32(42)),
            _ => return Err(bad("bad flag")),
        };
        let prev_until =
            Timestamp::from_millis(i64::from_be_bytes(bytes[74..82].try_into().expect("8")));
        let len = usize::from(u16::from_be_bytes([bytes[82], bytes[83]]));
        if len > MAX_SEALED || bytes.len() != STATE_HEADER + len {
            return Err(bad("bad length"));
        }
        Ok(FamilyState {
            generation,
            current,
            prev,
            prev_until,
            sealed: bytes[STATE_HEADER..].to_vec(),
        })
    }
}

/// Client metadata as stored: the application's [`ClientMeta`] plus the
/// manager's own links, in one JSON object (fields the application's type
/// does not know are ignored by [`ClientMeta::decode`], so older readers and
/// tools keep working). Encodes to nothing when everything is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredMeta {
    #[serde(flatten)]
    pub(crate) client: ClientMeta,
    /// On a session: the persistent-login family of this device (hex key).
    #[serde(rename = "_pf", default, skip_serializing_if = "Option::is_none")]
    pub(crate) family: Option<String>,
    /// On a session: it was started from a persistent token.
    #[serde(rename = "_pr", default, skip_serializing_if = "is_false")]
    pub(crate) remembered: bool,
    /// The record is a persistent-login family, not a session.
    #[serde(rename = "_pk", default, skip_serializing_if = "is_false")]
    pub(crate) persistent: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl StoredMeta {
    /// The stored metadata of a session: the client's, its family link and
    /// whether it was started from a persistent token.
    pub(crate) fn session(
        client: &ClientMeta,
        family: Option<StorageKey>,
        remembered: bool,
    ) -> Vec<u8> {
        StoredMeta {
            client: client.clone(),
            family: family.map(|k| k.to_hex()),
            remembered,
            persistent: false,
        }
        .encode()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        if *self == StoredMeta::default() {
            return Vec::new();
        }
        serde_json::to_vec(self).expect("StoredMeta always serializes")
    }

    /// # Errors
    /// [`Error::Codec`] for bytes that are not stored metadata.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            return Ok(StoredMeta::default());
        }
        let meta: StoredMeta = serde_json::from_slice(bytes).map_err(Error::codec)?;
        if let Some(f) = &meta.family {
            if f.len() != 64 || hex::decode(f).is_err() {
                return Err(Error::codec("metadata: malformed family link"));
            }
        }
        Ok(meta)
    }

    pub(crate) fn family_key(&self) -> Option<StorageKey> {
        let f = self.family.as_deref()?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(f, &mut out).ok()?;
        Some(StorageKey::from_bytes(out))
    }
}

impl SessionManager {
    fn persistent_idle(&self, now: Timestamp, absolute: Timestamp) -> Timestamp {
        now.saturating_add(self.policy.persistent.idle_timeout)
            .min(absolute)
    }

    /// Issues a persistent login ("remember me") for a logged-in session:
    /// a new family owned by the session's user, linked to this session so
    /// that [`SessionManager::logout`] revokes it. A family the session was
    /// linked to before is revoked. Call it right after the login rotation.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an anonymous session; [`Error::Conflict`]
    /// if the session changed meanwhile (nothing stays behind); backend errors.
    pub async fn remember(&self, session: &mut Session) -> Result<PersistentLogin> {
        let Some(user) = session.user_id().map(str::to_owned) else {
            return Err(Error::InvalidInput(
                "only a logged-in session can be remembered",
            ));
        };
        let now = self.now();
        let absolute = now.saturating_add(self.policy.persistent.lifetime);
        let client = session.client_meta().clone();
        let (token, key) = loop {
            let token = PersistentToken::new_family();
            let key = token.family_key();
            let state = FamilyState {
                generation: 0,
                current: token.secret_hash(),
                prev: None,
                prev_until: Timestamp::EPOCH,
                sealed: Vec::new(),
            };
            let record = SessionRecord {
                version: 0,
                user_id: Some(user.clone()),
                created_at: now,
                last_seen_at: now,
                auth_time: session.auth_time(),
                idle_deadline: self.persistent_idle(now, absolute),
                absolute_deadline: absolute,
                meta: StoredMeta {
                    client: client.clone(),
                    persistent: true,
                    ..StoredMeta::default()
                }
                .encode(),
                data: state.encode(),
            };
            let span = info_span!("session.remember", family = %key.short());
            match self.backend.create(&key, &record).instrument(span).await {
                Ok(()) => break (token, key),
                Err(Error::AlreadyExists) => continue,
                Err(e) => return Err(e),
            }
        };
        let previous = session.family;
        session.family = Some(key);
        if let Err(e) = self.save(session).await {
            session.family = previous;
            if let Err(cleanup) = self.backend.delete(&key).await {
                tracing::warn!(family = %key.short_hash(), error = %cleanup,
                    "could not remove a persistent login whose session save failed");
            }
            return Err(e);
        }
        if let Some(old) = previous.filter(|old| *old != key) {
            self.revoke_family(&old).await?;
        }
        self.emit(Event::PersistentIssued {
            family: key.short_hash(),
        });
        Ok(PersistentLogin {
            token,
            expires_at: absolute,
            handle: SessionHandle::new(key),
        })
    }

    /// Uses a persistent token (untrusted input): see the
    /// [module docs](crate::persistent) for the rules. Returns `None` for an
    /// unknown, expired or revoked family, and after detected reuse (which
    /// revokes the family). `meta` is the client's metadata for the new session.
    ///
    /// # Errors
    /// [`Error::InvalidId`] for a malformed token, before any I/O;
    /// [`Error::TooLarge`] for oversized metadata; [`Error::TooManySessions`]
    /// under a refusing per-user cap; [`Error::Conflict`] after repeated
    /// concurrent rotations; backend errors (never `None`).
    pub async fn resume(&self, token: &str, meta: ClientMeta) -> Result<Option<Resumed>> {
        self.resume_from(token, meta, None).await
    }

    /// [`SessionManager::resume`] for a request from `client_ip` (carried by
    /// [`Event::LookupMiss`]).
    ///
    /// # Errors
    /// As [`SessionManager::resume`].
    pub async fn resume_from(
        &self,
        token: &str,
        meta: ClientMeta,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<Resumed>> {
        let token = match PersistentToken::parse(token) {
            Ok(t) => t,
            Err(e) => {
                self.emit(Event::InvalidToken);
                return Err(e);
            }
        };
        self.check_limits_meta(&meta)?;
        let key = token.family_key();
        let span = info_span!("session.resume", family = %key.short());
        async {
            for _ in 0..4 {
                match self.resume_once(&token, &key, &meta, client_ip).await? {
                    Attempt::Done(out) => return Ok(out.map(|b| *b)),
                    Attempt::Raced => continue,
                }
            }
            Err(Error::Conflict)
        }
        .instrument(span)
        .await
    }

    async fn resume_once(
        &self,
        token: &PersistentToken,
        key: &StorageKey,
        meta: &ClientMeta,
        client_ip: Option<IpAddr>,
    ) -> Result<Attempt> {
        let now = self.now();
        let miss = || Event::LookupMiss {
            key: key.short_hash(),
            ip: client_ip,
        };
        let record = match self.backend.load(key, now).await {
            Ok(Some(Lookup::Session(r))) => r,
            Ok(_) => {
                self.emit(miss());
                return Ok(Attempt::Done(None));
            }
            Err(e) => return self.contain_load(key, e).await.map(Attempt::Done),
        };
        let decoded = StoredMeta::decode(&record.meta).and_then(|m| {
            if !m.persistent || record.user_id.is_none() {
                return Err(Error::codec("not a persistent login family"));
            }
            Ok((m, FamilyState::decode(&record.data)?))
        });
        let (stored, state) = match decoded {
            Ok(v) => v,
            Err(e) => return self.contain_load(key, e).await.map(Attempt::Done),
        };
        let user = record.user_id.clone().expect("checked above");
        let presented = token.secret_hash();
        if bool::from(presented.ct_eq(&state.current)) {
            let successor = token.successor();
            let sealed = seal_persistent(
                &token.secret(),
                key.as_bytes(),
                successor.expose_secret().as_bytes(),
            )?;
            let session = self
                .mint_session(&user, record.auth_time, meta, key, now)
                .await?;
            let next = FamilyState {
                generation: state.generation.saturating_add(1),
                current: successor.secret_hash(),
                prev: Some(presented),
                prev_until: now
                    .saturating_add(self.policy.persistent.grace)
                    .min(record.expires_at()),
                sealed,
            };
            let mut updated = record.clone();
            updated.data = next.encode();
            updated.last_seen_at = updated.last_seen_at.max(now);
            updated.idle_deadline = updated
                .idle_deadline
                .max(self.persistent_idle(now, record.absolute_deadline));
            updated.meta = StoredMeta {
                client: meta.clone(),
                ..stored
            }
            .encode();
            match self.backend.save(key, &updated, now).await {
                Ok(_) => {
                    self.emit(Event::PersistentUsed {
                        family: key.short_hash(),
                        session: session.storage_key().short_hash(),
                    });
                    self.after_resume(&user, &session, now).await?;
                    Ok(Attempt::Done(Some(Box::new(Resumed {
                        session,
                        token: successor,
                        expires_at: record.absolute_deadline,
                        joined: false,
                    }))))
                }
                Err(e) => {
                    // The minted session's token was never handed out.
                    if let Err(cleanup) = self.backend.delete(&session.storage_key()).await {
                        tracing::warn!(key = %session.storage_key().short_hash(), error = %cleanup,
                            "could not remove a session minted by a failed persistent login");
                    }
                    match e {
                        Error::Conflict => Ok(Attempt::Raced),
                        e => Err(e),
                    }
                }
            }
        } else if state.prev.is_some_and(|p| bool::from(presented.ct_eq(&p)))
            && now < state.prev_until
        {
            let opened = open_persistent(&token.secret(), key.as_bytes(), &state.sealed);
            let successor = match opened.as_deref().map(|b| std::str::from_utf8(b)) {
                Ok(Ok(text)) => PersistentToken::parse(text).ok(),
                _ => None,
            };
            let Some(successor) = successor.filter(|s| {
                s.family_key() == *key && bool::from(s.secret_hash().ct_eq(&state.current))
            }) else {
                let err = opened.err().unwrap_or(Error::Decrypt { key_id: None });
                return self.contain_load(key, err).await.map(Attempt::Done);
            };
            let session = self
                .mint_session(&user, record.auth_time, meta, key, now)
                .await?;
            self.emit(Event::PersistentGraceJoined {
                family: key.short_hash(),
            });
            self.after_resume(&user, &session, now).await?;
            Ok(Attempt::Done(Some(Box::new(Resumed {
                session,
                token: successor,
                expires_at: record.absolute_deadline,
                joined: true,
            }))))
        } else {
            let revoked = self.revoke_family_on_reuse(key, &user, now).await?;
            tracing::warn!(family = %key.short_hash(), sessions = revoked,
                "persistent login token reused: family revoked");
            self.emit(Event::PersistentReuse {
                family: key.short_hash(),
                sessions_revoked: revoked,
            });
            Ok(Attempt::Done(None))
        }
    }

    /// Creates the logged-in session a persistent token starts.
    async fn mint_session(
        &self,
        user: &str,
        auth_time: Option<Timestamp>,
        meta: &ClientMeta,
        family: &StorageKey,
        now: Timestamp,
    ) -> Result<Session> {
        self.refuse_over_cap(user, None, now).await?;
        let record = SessionRecord {
            version: 0,
            user_id: Some(user.to_owned()),
            created_at: now,
            last_seen_at: now,
            auth_time,
            idle_deadline: now.saturating_add(self.policy.idle_timeout),
            absolute_deadline: now.saturating_add(self.policy.absolute_timeout),
            meta: Vec::new(),
            data: Vec::new(),
        };
        self.create_record(record, meta.clone(), Some(*family), true)
            .await
    }

    async fn after_resume(&self, user: &str, session: &Session, now: Timestamp) -> Result<()> {
        if let Some((cap, CapPolicy::EvictOldest)) = self.policy.max_sessions_per_user {
            self.evict_oldest(user, &session.storage_key(), cap, now)
                .await?;
        }
        Ok(())
    }

    /// Deletes a family after reuse and, if configured, the sessions it
    /// minted; returns how many sessions were removed.
    async fn revoke_family_on_reuse(
        &self,
        key: &StorageKey,
        user: &str,
        now: Timestamp,
    ) -> Result<u64> {
        self.backend.delete(key).await?;
        if !self.policy.persistent.revoke_sessions_on_reuse {
            return Ok(0);
        }
        let list = self.backend.list_user(user, now).await?;
        let mut revoked = 0;
        for (summary, stored) in self.readable_stored(list).await? {
            // Minted by the family: started from one of its tokens, no
            // password login since (that one stays: the user proved it).
            if !stored.persistent
                && stored.remembered
                && stored.family_key() == Some(*key)
                && self.backend.delete(&summary.key).await?
            {
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Deletes the family `session` is linked to, if any (part of logout).
    pub(crate) async fn revoke_linked_family(&self, session: &Session) -> Result<()> {
        match session.family {
            Some(family) => self.revoke_family(&family).await,
            None => Ok(()),
        }
    }

    /// Deletes a family (logout, or replaced by a new one) and says so.
    async fn revoke_family(&self, family: &StorageKey) -> Result<()> {
        self.backend.delete(family).await?;
        self.emit(Event::PersistentRevoked {
            family: family.short_hash(),
        });
        Ok(())
    }
}

enum Attempt {
    Done(Option<Box<Resumed>>),
    Raced,
}

/// Whether a stored record's client metadata, as the store holds it (after
/// decryption, if encrypted), marks a persistent-login family rather than a
/// session: for tools that walk raw records (`scan`, `list_user`), such as
/// the `session-store` CLI. Ciphertext and foreign bytes are not families.
pub fn is_family_metadata(meta: &[u8]) -> bool {
    StoredMeta::decode(meta).is_ok_and(|m| m.persistent)
}

/// Fuzzing entry point ([`crate::fuzzing::persistent`]).
pub(crate) fn fuzz_decode(bytes: &[u8]) {
    if let Ok(s) = FamilyState::decode(bytes) {
        assert_eq!(
            FamilyState::decode(&s.encode()).ok(),
            Some(s),
            "a decoded family state re-encodes to itself"
        );
    }
    if let Ok(m) = StoredMeta::decode(bytes) {
        assert_eq!(StoredMeta::decode(&m.encode()).ok(), Some(m.clone()));
        let _ = m.family_key();
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(t) = PersistentToken::parse(text) {
            assert_eq!(t.expose_secret(), text, "a token prints as parsed");
            assert_eq!(t.family_key(), t.successor().family_key());
        }
    }
    // Forged seals never open, whatever the bytes.
    let secret = [7u8; SECRET_BYTES];
    assert!(
        open_persistent(&secret, b"family", bytes).is_err(),
        "arbitrary bytes opened as a sealed successor"
    );
}

impl fmt::Debug for FamilyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FamilyState")
            .field("generation", &self.generation)
            .field("prev_until", &self.prev_until)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_66_chars_and_round_trip() {
        let t = PersistentToken::new_family();
        assert_eq!(t.expose_secret().len(), PERSISTENT_TOKEN_LEN);
        assert!(t.expose_secret().starts_with("p."));
        let back = PersistentToken::parse(t.expose_secret()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.family_key(), t.family_key());
        assert_eq!(format!("{t:?}"), "PersistentToken(<redacted>)");
    }

    #[test]
    fn successor_keeps_the_family_and_changes_the_secret() {
        let t = PersistentToken::new_family();
        let s = t.successor();
        assert_eq!(s.family_key(), t.family_key());
        assert_ne!(s.secret_hash(), t.secret_hash());
        assert_ne!(s, t);
        assert_ne!(PersistentToken::new_family().family_key(), t.family_key());
    }

    #[test]
    fn malformed_tokens_are_invalid_id() {
        let t = PersistentToken::new_family();
        let good = t.expose_secret().to_owned();
        let session = crate::SessionToken::generate();
        let handle = SessionHandle::new(session.storage_key()).to_string();
        let cases = [
            String::new(),
            "p.".into(),
            good[2..].to_owned(),
            format!("q.{}", &good[2..]),
            format!("{good}A"),
            good[..65].to_owned(),
            format!("p.{}", "+".repeat(64)),
            format!("p.{}=", &good[2..65]),
            format!("p.{}é", &good[2..64]),
            session.expose_secret().to_owned(),
            handle,
            "x".repeat(10_000),
        ];
        for c in cases {
            assert!(
                matches!(PersistentToken::parse(&c), Err(Error::InvalidId)),
                "{c:?} parsed"
            );
        }
        // A session token never parses as a persistent one and vice versa.
        assert!(crate::SessionToken::parse(&good).is_err());
    }

    #[test]
    fn state_round_trips_and_rejects_damage() {
        let s = FamilyState {
            generation: 7,
            current: [1; 32],
            prev: Some([2; 32]),
            prev_until: Timestamp::from_millis(1234),
            sealed: vec![9; 40],
        };
        let bytes = s.encode();
        assert_eq!(FamilyState::decode(&bytes).unwrap(), s);
        for cut in 0..bytes.len() {
            assert!(FamilyState::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(FamilyState::decode(&longer).is_err());
        let mut flag = bytes.clone();
        flag[41] = 2;
        assert!(FamilyState::decode(&flag).is_err());
        let mut version = bytes;
        version[0] = 2;
        assert!(matches!(
            FamilyState::decode(&version),
            Err(Error::Codec { .. })
        ));
    }

    #[tokio::test]
    async fn revocation_failures_are_reported_and_finished_by_calling_again() {
        use std::sync::Arc;

        use crate::{Fault, Faulty, ManualClock, MemoryStore, Op, RotateReason};

        let store = Arc::new(Faulty::new(MemoryStore::new()));
        let clock = Arc::new(ManualClock::starting_now());
        let m = SessionManager::builder(store.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        let login = || async {
            let mut s = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
            m.rotate(
                &mut s,
                RotateReason::Login {
                    user_id: "alice".into(),
                },
            )
            .await
            .unwrap();
            let issued = m.remember(&mut s).await.unwrap();
            (s, issued.token)
        };
        let resume = |t: &PersistentToken| {
            let t = t.expose_secret().to_owned();
            let m = m.clone();
            async move { m.resume(&t, ClientMeta::default()).await }
        };

        // Reuse whose revocation fails is an error, never a quiet `None`,
        // and the next presentation revokes.
        let (_s, t0) = login().await;
        let r = resume(&t0).await.unwrap().expect("resumes");
        clock.advance(Duration::from_secs(10));
        store.inject(Op::Delete, Fault::Fail);
        assert!(
            resume(&t0).await.is_err(),
            "a failed revocation is reported"
        );
        store.clear_all();
        assert!(resume(&t0).await.unwrap().is_none());
        assert!(resume(&r.token).await.unwrap().is_none(), "family revoked");

        // A logout whose delete fails after the session went: the family
        // lives on until the logout is called again.
        let (s, t) = login().await;
        store.inject(Op::Delete, Fault::FailAfter);
        assert!(m.logout(&s).await.is_err());
        store.clear_all();
        m.logout(&s).await.unwrap();
        assert!(
            resume(&t).await.unwrap().is_none(),
            "logout finished the job"
        );
    }

    #[tokio::test]
    async fn a_damaged_family_is_contained_and_the_user_can_remember_again() {
        use std::sync::Arc;

        use crate::{Event, ManualClock, MemoryStore, RotateReason, SessionBackend};

        #[derive(Debug, Default)]
        struct Events(std::sync::Mutex<Vec<Event>>);
        impl crate::EventSink for Events {
            fn event(&self, e: &Event) {
                self.0.lock().unwrap().push(e.clone());
            }
        }
        let store = Arc::new(MemoryStore::new());
        let events = Arc::new(Events::default());
        let m = SessionManager::builder(store.clone())
            .clock(Arc::new(ManualClock::starting_now()))
            .events(events.clone())
            .build()
            .unwrap();
        let remembered = || async {
            let mut s = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
            m.rotate(
                &mut s,
                RotateReason::Login {
                    user_id: "alice".into(),
                },
            )
            .await
            .unwrap();
            m.remember(&mut s).await.unwrap().token
        };
        // Each kind of damage under a family's key: state bytes that do not
        // decode, metadata that does not parse, a session record (no family
        // marker) in its place.
        let damages: [fn(&mut SessionRecord); 3] = [
            |r| r.data = b"\x07garbage".to_vec(),
            |r| r.meta = b"{not json".to_vec(),
            |r| r.meta = Vec::new(),
        ];
        for damage in damages {
            let token = remembered().await;
            let key = token.family_key();
            let Some(Lookup::Session(mut record)) = store.load(&key, m.now()).await.unwrap() else {
                panic!("the family is stored");
            };
            damage(&mut record);
            store.save(&key, &record, m.now()).await.unwrap();
            events.0.lock().unwrap().clear();
            // No access, no error: the damaged family is removed.
            let got = m.resume(token.expose_secret(), ClientMeta::default()).await;
            assert!(matches!(got, Ok(None)), "{got:?}");
            assert!(store.load(&key, m.now()).await.unwrap().is_none());
            assert!(events
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, Event::Corrupted { removed: true, .. })));
            // The user logs in and is remembered again.
            let again = remembered().await;
            assert!(m
                .resume(again.expose_secret(), ClientMeta::default())
                .await
                .unwrap()
                .is_some());
        }
    }

    #[test]
    fn family_metadata_is_recognised() {
        let family = StoredMeta {
            persistent: true,
            ..StoredMeta::default()
        };
        assert!(is_family_metadata(&family.encode()));
        let session = StoredMeta {
            family: Some("ab".repeat(32)),
            remembered: true,
            ..StoredMeta::default()
        };
        assert!(!is_family_metadata(&session.encode()));
        for other in [&b""[..], b"{}", b"\x00\x01ciphertext", br#"{"_pk":1}"#] {
            assert!(!is_family_metadata(other));
        }
    }

    #[test]
    fn stored_meta_is_client_meta_compatible() {
        let client = ClientMeta {
            ip: Some("192.0.2.1".into()),
            user_agent: Some("ua".into()),
            label: None,
        };
        // Plain sessions store exactly what ClientMeta stores.
        let plain = StoredMeta {
            client: client.clone(),
            ..StoredMeta::default()
        };
        assert_eq!(plain.encode(), client.encode());
        assert!(StoredMeta::default().encode().is_empty());
        let linked = StoredMeta {
            client: client.clone(),
            family: Some("ab".repeat(32)),
            remembered: true,
            persistent: false,
        };
        let bytes = linked.encode();
        assert_eq!(StoredMeta::decode(&bytes).unwrap(), linked);
        assert_eq!(ClientMeta::decode(&bytes).unwrap(), client);
        for bad in [
            &b"{"[..],
            b"[]",
            br#"{"_pf":"zz"}"#,
            br#"{"_pf":12}"#,
            br#"{"_pk":"yes"}"#,
        ] {
            assert!(StoredMeta::decode(bad).is_err(), "{bad:?}");
        }
    }
}
