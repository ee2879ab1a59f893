//! A pass-through backend that counts calls, to prove that something
//! happened before any I/O, or without any write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use session_store_core::{
    async_trait, Lookup, Result, Rotation, SessionBackend, SessionRecord, SessionSummary,
    StorageKey, Timestamp,
};

/// Wraps a backend and counts reads and writes.
#[derive(Debug)]
pub(crate) struct Spy {
    inner: Arc<dyn SessionBackend>,
    reads: AtomicUsize,
    writes: AtomicUsize,
}

impl Spy {
    pub(crate) fn new(inner: Arc<dyn SessionBackend>) -> Arc<Self> {
        Arc::new(Spy {
            inner,
            reads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
        })
    }

    /// Calls of any kind so far.
    pub(crate) fn calls(&self) -> usize {
        self.reads.load(Ordering::SeqCst) + self.writes.load(Ordering::SeqCst)
    }

    /// Writing calls so far (everything but `load`, `list_user` and `scan`).
    pub(crate) fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
    }

    fn write(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl SessionBackend for Spy {
    fn rotation_affinity_bits(&self) -> u8 {
        self.inner.rotation_affinity_bits()
    }
    fn capabilities(&self) -> session_store_core::Capabilities {
        self.inner.capabilities()
    }
    async fn create(&self, key: &StorageKey, r: &SessionRecord) -> Result<()> {
        self.write();
        self.inner.create(key, r).await
    }
    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        self.read();
        self.inner.load(key, now).await
    }
    async fn save(&self, key: &StorageKey, r: &SessionRecord, now: Timestamp) -> Result<u64> {
        self.write();
        self.inner.save(key, r, now).await
    }
    async fn touch(
        &self,
        key: &StorageKey,
        idle: Timestamp,
        seen: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.write();
        self.inner.touch(key, idle, seen, now).await
    }
    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        self.write();
        self.inner.rotate(rotation, now).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.write();
        self.inner.delete(key).await
    }
    async fn delete_user(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        self.write();
        self.inner.delete_user(user, except, now).await
    }
    async fn list_user(&self, user: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        self.read();
        self.inner.list_user(user, now).await
    }
    async fn delete_all(&self) -> Result<()> {
        self.write();
        self.inner.delete_all().await
    }
    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        self.write();
        self.inner.cleanup_expired(now, limit).await
    }
    async fn scan(
        &self,
        cursor: Option<&session_store_core::ScanCursor>,
        limit: usize,
    ) -> Result<session_store_core::ScanPage> {
        self.read();
        self.inner.scan(cursor, limit).await
    }
}
