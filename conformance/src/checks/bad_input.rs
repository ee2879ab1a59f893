//! Bad input: malformed tokens are rejected before any I/O and change
//! nothing; oversized values are refused before any write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use session_store_core::{
    async_trait, ClientMeta, Error, Lookup, Result, Rotation, SessionBackend, SessionManager,
    SessionRecord, SessionSummary, SessionToken, StorageKey, Timestamp,
};

use super::Ctx;

/// Malformed cookie values an attacker (or a broken client) may send.
fn malformed_tokens() -> Vec<(&'static str, String)> {
    let good = SessionToken::generate();
    let text = good.expose_secret().to_owned();
    let mut non_canonical = text[..42].to_owned();
    // The last character of 32 bytes in base64url carries 2 padding bits
    // that must be zero; 'B' sets one of them.
    non_canonical.push('B');
    let lossy = String::from_utf8_lossy(&[0xff, 0xfe, b'A', 0x80, 0xc3, 0x28]).into_owned();
    let mut lossy_token = text[..40].to_owned();
    lossy_token.push_str(&lossy);
    vec![
        ("empty", String::new()),
        ("one character", "A".into()),
        ("one short", text[..42].to_owned()),
        ("one long", format!("{text}A")),
        ("padded", format!("{text}=")),
        ("leading space", format!(" {text}")),
        ("trailing newline", format!("{text}\n")),
        ("standard base64 alphabet", format!("{}+/", &text[..41])),
        ("NUL inside", format!("{}\0{}", &text[..21], &text[22..])),
        ("NUL only", "\0".repeat(43)),
        ("non-UTF-8 bytes (lossy)", lossy_token),
        ("non-ASCII", format!("{}é", &text[..41])),
        ("glob", format!("{}*?[", &text[..40])),
        ("glob only", "*".repeat(43)),
        ("SQL", "' OR 1=1 --".into()),
        ("SQL in token shape", format!("{}' OR 1=1 --", &text[..32])),
        ("percent", format!("{}%", &text[..42])),
        ("percent-encoded", format!("{}%41", &text[..40])),
        ("Redis key pattern", "session:*".into()),
        (
            "handle text",
            SessionToken::generate().storage_key().to_hex(),
        ),
        ("non-canonical base64", non_canonical),
        ("1 MiB", "A".repeat(1 << 20)),
    ]
}

/// Malformed tokens are `InvalidId` through the manager, and the store is
/// unchanged: a live session still loads with the same version and data,
/// and the user's listing is the same.
pub async fn manager_malformed_tokens_invalid_id(ctx: Ctx) {
    let (m, _clock) = super::manager::manager(&ctx, session_store_core::Policy::default());
    let mut s = m
        .create(b"victim".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    m.rotate(
        &mut s,
        session_store_core::RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("login");
    let devices = m.list_devices("alice", None).await.expect("list");
    let snapshot = super::at_rest::snapshot(&ctx).await;
    for (what, bad) in malformed_tokens() {
        match m.load(&bad).await {
            Err(Error::InvalidId) => {}
            other => panic!("{what}: expected InvalidId, got {other:?}"),
        }
    }
    let loaded = m
        .load(s.token().expose_secret())
        .await
        .expect("load")
        .expect("the live session still loads");
    assert_eq!(loaded.version(), s.version());
    assert_eq!(loaded.data(), b"victim");
    assert_eq!(m.list_devices("alice", None).await.expect("list"), devices);
    assert_eq!(
        super::at_rest::snapshot(&ctx).await,
        snapshot,
        "nothing written"
    );
}

/// Wraps a backend and counts every call.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn SessionBackend>,
    calls: AtomicUsize,
}

impl Counting {
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl SessionBackend for Counting {
    fn rotation_affinity_bits(&self) -> u8 {
        self.inner.rotation_affinity_bits()
    }
    async fn create(&self, key: &StorageKey, r: &SessionRecord) -> Result<()> {
        self.hit();
        self.inner.create(key, r).await
    }
    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        self.hit();
        self.inner.load(key, now).await
    }
    async fn save(&self, key: &StorageKey, r: &SessionRecord, now: Timestamp) -> Result<u64> {
        self.hit();
        self.inner.save(key, r, now).await
    }
    async fn touch(
        &self,
        key: &StorageKey,
        idle: Timestamp,
        seen: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.hit();
        self.inner.touch(key, idle, seen, now).await
    }
    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        self.hit();
        self.inner.rotate(rotation, now).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.hit();
        self.inner.delete(key).await
    }
    async fn delete_user(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        self.hit();
        self.inner.delete_user(user, except, now).await
    }
    async fn list_user(&self, user: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        self.hit();
        self.inner.list_user(user, now).await
    }
    async fn delete_all(&self) -> Result<()> {
        self.hit();
        self.inner.delete_all().await
    }
    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        self.hit();
        self.inner.cleanup_expired(now, limit).await
    }
}

/// A malformed token is rejected before the backend is called at all, and
/// an oversized create before anything is written.
pub async fn manager_invalid_id_before_io(ctx: Ctx) {
    let counting = Arc::new(Counting {
        inner: ctx.backend.clone(),
        calls: AtomicUsize::new(0),
    });
    let m = SessionManager::builder(counting.clone())
        .clock(Arc::new(session_store_core::ManualClock::starting_now()))
        .build()
        .expect("manager");
    for (what, bad) in malformed_tokens() {
        assert!(
            matches!(m.load(&bad).await, Err(Error::InvalidId)),
            "{what}: expected InvalidId"
        );
        assert_eq!(
            counting.calls.load(Ordering::SeqCst),
            0,
            "{what}: backend called"
        );
    }
    let limit = m.policy().max_data_bytes;
    assert!(matches!(
        m.create(vec![0; limit + 1], ClientMeta::default()).await,
        Err(Error::TooLarge { what: "data", .. })
    ));
    assert_eq!(
        counting.calls.load(Ordering::SeqCst),
        0,
        "oversized create reached the backend"
    );
    // A well-formed unknown token does reach the backend, and finds nothing.
    let unknown = SessionToken::generate();
    assert!(m
        .load(unknown.expose_secret())
        .await
        .expect("load")
        .is_none());
    assert!(counting.calls.load(Ordering::SeqCst) > 0);
}
