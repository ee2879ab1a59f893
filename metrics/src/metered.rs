//! [`Metered`]: the wrapper that measures every operation of a backend.

use std::future::Future;
use std::time::Instant;

use metrics::{counter, histogram};
use session_store_core::{
    async_trait, Capabilities, Error, Lookup, Result, Rotation, ScanCursor, ScanPage,
    SessionBackend, SessionRecord, SessionSummary, StorageKey, Timestamp,
};

/// The `kind` label of an error: one word per [`Error`] variant.
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::InvalidId => "invalid_id",
        Error::AlreadyExists => "already_exists",
        Error::Conflict => "conflict",
        Error::TooLarge { .. } => "too_large",
        Error::TooManySessions { .. } => "too_many_sessions",
        Error::Decrypt { .. } => "decrypt",
        Error::Codec { .. } => "codec",
        Error::InvalidInput(_) => "invalid_input",
        Error::Config(_) => "config",
        Error::SchemaTooNew { .. } => "schema_too_new",
        Error::Backend { .. } => "backend",
        Error::Unsupported(_) => "unsupported",
        _ => "other",
    }
}

/// Wraps any backend and records, through the [`metrics`] facade, the
/// latency of every operation, its errors by kind and retryability, and the
/// lifecycle counts a store sees (see the crate docs for the names). It
/// changes nothing else: every call goes to the inner store unchanged, and
/// capabilities and rotation affinity are the inner store's.
///
/// Recording costs a clock read and a few atomic operations per call when a
/// recorder is installed, next to nothing when none is.
#[derive(Debug)]
pub struct Metered<B> {
    inner: B,
    store: &'static str,
}

impl<B> Metered<B> {
    /// Wraps `inner`, labelled `store="default"`.
    pub fn new(inner: B) -> Self {
        Metered {
            inner,
            store: "default",
        }
    }

    /// Sets the `store` label (for an application with several stores).
    pub fn with_store_label(mut self, store: &'static str) -> Self {
        self.store = store;
        self
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Runs one operation, timing it and counting its errors.
    async fn measure<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        histogram!("session_store_operation_seconds", "store" => self.store, "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            counter!(
                "session_store_operation_errors_total",
                "store" => self.store,
                "operation" => operation,
                "kind" => error_kind(e),
                "retryable" => if e.is_retryable() { "true" } else { "false" },
            )
            .increment(1);
            match e {
                Error::Conflict => counter!(
                    "session_store_conflicts_total", "store" => self.store, "operation" => operation
                )
                .increment(1),
                Error::Decrypt { .. } => counter!(
                    "session_store_decrypt_failures_total", "store" => self.store, "operation" => operation
                )
                .increment(1),
                _ => {}
            }
        }
        result
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<B: SessionBackend> SessionBackend for Metered<B> {
    fn rotation_affinity_bits(&self) -> u8 {
        self.inner.rotation_affinity_bits()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        self.measure("create", self.inner.create(key, record)).await
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let found = self.measure("load", self.inner.load(key, now)).await?;
        let result = match &found {
            Some(Lookup::Session(_)) => "session",
            Some(Lookup::Forwarded(_)) => "forwarded",
            None => "miss",
        };
        counter!("session_store_lookups_total", "store" => self.store, "result" => result)
            .increment(1);
        Ok(found)
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        self.measure("save", self.inner.save(key, record, now))
            .await
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.measure(
            "touch",
            self.inner.touch(key, idle_deadline, last_seen_at, now),
        )
        .await
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        self.measure("rotate", self.inner.rotate(rotation, now))
            .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.measure("delete", self.inner.delete(key)).await
    }

    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        self.measure("delete_user", self.inner.delete_user(user_id, except, now))
            .await
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        self.measure("list_user", self.inner.list_user(user_id, now))
            .await
    }

    async fn delete_all(&self) -> Result<()> {
        self.measure("delete_all", self.inner.delete_all()).await
    }

    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        let n = self
            .measure("cleanup_expired", self.inner.cleanup_expired(now, limit))
            .await?;
        counter!("session_store_cleaned_up_total", "store" => self.store).increment(n);
        Ok(n)
    }

    async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
        self.measure("scan", self.inner.scan(cursor, limit)).await
    }
}
