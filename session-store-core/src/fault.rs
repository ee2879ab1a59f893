//! A fault-injecting wrapper: any backend, with chosen operations failing or
//! slowed down, for tests that must see failures reported (a revocation
//! that fails must never look like one that worked).
//!
//! ```
//! use std::sync::Arc;
//! use session_store_core::{Fault, Faulty, MemoryStore, Op, SessionBackend, SessionToken};
//!
//! # tokio_test_block_on(async {
//! let store = Arc::new(Faulty::new(MemoryStore::new()));
//! store.inject(Op::Delete, Fault::Fail);
//! let key = SessionToken::generate().storage_key();
//! assert!(store.delete(&key).await.is_err());
//! store.clear(Op::Delete);
//! assert!(!store.delete(&key).await.unwrap());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Capabilities, SessionBackend};
use crate::error::{Error, Result};
use crate::record::{Lookup, Rotation, SessionRecord, SessionSummary};
use crate::scan::{ScanCursor, ScanPage};
use crate::time::Timestamp;
use crate::token::StorageKey;

/// An operation of [`SessionBackend`] that can be given a [`Fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`SessionBackend::create`].
    Create,
    /// [`SessionBackend::load`].
    Load,
    /// [`SessionBackend::save`].
    Save,
    /// [`SessionBackend::touch`].
    Touch,
    /// [`SessionBackend::rotate`].
    Rotate,
    /// [`SessionBackend::delete`].
    Delete,
    /// [`SessionBackend::delete_user`].
    DeleteUser,
    /// [`SessionBackend::list_user`].
    ListUser,
    /// [`SessionBackend::delete_all`].
    DeleteAll,
    /// [`SessionBackend::cleanup_expired`].
    CleanupExpired,
    /// [`SessionBackend::scan`].
    Scan,
}

impl Op {
    /// The trait method's name (`"delete_user"`), as in [`Error::Backend`]'s `operation`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Load => "load",
            Op::Save => "save",
            Op::Touch => "touch",
            Op::Rotate => "rotate",
            Op::Delete => "delete",
            Op::DeleteUser => "delete_user",
            Op::ListUser => "list_user",
            Op::DeleteAll => "delete_all",
            Op::CleanupExpired => "cleanup_expired",
            Op::Scan => "scan",
        }
    }
}

/// What happens to an operation with a fault injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The operation does not reach the store and returns a retryable
    /// [`Error::Backend`] (backend `"faulty"`).
    Fail,
    /// The operation reaches the store, which applies it, and then returns a
    /// retryable [`Error::Backend`]: an answer lost on the way back (the
    /// client cannot tell whether the write happened).
    FailAfter,
    /// The operation waits this long, then runs normally.
    Delay(Duration),
    /// The next `n` calls fail as with [`Fault::Fail`], then the fault clears
    /// itself.
    FailTimes(u32),
}

/// The injected error's source.
#[derive(Debug)]
struct Injected(&'static str);

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault injected into {}", self.0)
    }
}

impl std::error::Error for Injected {}

/// Wraps any backend; operations given a [`Fault`] with [`Faulty::inject`]
/// fail or wait, every other operation is forwarded unchanged. Forwards
/// every trait method, defaults included.
pub struct Faulty<B> {
    inner: B,
    faults: Mutex<HashMap<Op, Fault>>,
}

impl<B: fmt::Debug> fmt::Debug for Faulty<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("inner", &self.inner)
            .field("faults", &*self.faults.lock().expect("fault table"))
            .finish()
    }
}

impl<B> Faulty<B> {
    /// Wraps `inner` with no fault injected.
    pub fn new(inner: B) -> Self {
        Faulty {
            inner,
            faults: Mutex::new(HashMap::new()),
        }
    }

    /// Gives `op` the fault `fault` (replacing any earlier one).
    pub fn inject(&self, op: Op, fault: Fault) {
        self.faults.lock().expect("fault table").insert(op, fault);
    }

    /// Removes the fault of `op`.
    pub fn clear(&self, op: Op) {
        self.faults.lock().expect("fault table").remove(&op);
    }

    /// Removes every fault.
    pub fn clear_all(&self) {
        self.faults.lock().expect("fault table").clear();
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn error(op: Op) -> Error {
        Error::Backend {
            backend: "faulty",
            operation: op.name(),
            endpoint: None,
            source: Box::new(Injected(op.name())),
            retryable: true,
        }
    }

    /// Runs `f` under the fault of `op`, if any.
    async fn run<T, F>(&self, op: Op, f: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let fault = {
            let mut faults = self.faults.lock().expect("fault table");
            let fault = faults.get(&op).copied();
            if let Some(Fault::FailTimes(n)) = fault {
                if n <= 1 {
                    faults.remove(&op);
                } else {
                    faults.insert(op, Fault::FailTimes(n - 1));
                }
            }
            fault
        };
        match fault {
            None => f.await,
            Some(Fault::Fail | Fault::FailTimes(_)) => Err(Self::error(op)),
            Some(Fault::FailAfter) => {
                f.await?;
                Err(Self::error(op))
            }
            Some(Fault::Delay(d)) => {
                sleep(d).await;
                f.await
            }
        }
    }
}

/// A timer-free sleep (the core does not depend on a runtime): a thread
/// parks for `d`, then wakes the task.
async fn sleep(d: Duration) {
    let (tx, rx) = futures_channel();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        tx.send();
    });
    rx.await;
}

/// A one-shot signal between a thread and a task.
fn futures_channel() -> (Signal, Signal) {
    let shared = std::sync::Arc::new(Mutex::new((false, None::<std::task::Waker>)));
    (Signal(shared.clone()), Signal(shared))
}

/// Either end of a one-shot signal.
struct Signal(std::sync::Arc<Mutex<(bool, Option<std::task::Waker>)>>);

impl Signal {
    fn send(self) {
        let mut state = self.0.lock().expect("signal");
        state.0 = true;
        if let Some(w) = state.1.take() {
            w.wake();
        }
    }
}

impl std::future::Future for Signal {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let mut state = self.0.lock().expect("signal");
        if state.0 {
            std::task::Poll::Ready(())
        } else {
            state.1 = Some(cx.waker().clone());
            std::task::Poll::Pending
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<B: SessionBackend> SessionBackend for Faulty<B> {
    fn rotation_affinity_bits(&self) -> u8 {
        self.inner.rotation_affinity_bits()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        self.run(Op::Create, self.inner.create(key, record)).await
    }
    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        self.run(Op::Load, self.inner.load(key, now)).await
    }
    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        self.run(Op::Save, self.inner.save(key, record, now)).await
    }
    async fn touch(
        &self,
        key: &StorageKey,
        idle: Timestamp,
        seen: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.run(Op::Touch, self.inner.touch(key, idle, seen, now))
            .await
    }
    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        self.run(Op::Rotate, self.inner.rotate(rotation, now)).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.run(Op::Delete, self.inner.delete(key)).await
    }
    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        self.run(Op::DeleteUser, self.inner.delete_user(user_id, except, now))
            .await
    }
    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        self.run(Op::ListUser, self.inner.list_user(user_id, now))
            .await
    }
    async fn delete_all(&self) -> Result<()> {
        self.run(Op::DeleteAll, self.inner.delete_all()).await
    }
    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        self.run(Op::CleanupExpired, self.inner.cleanup_expired(now, limit))
            .await
    }
    async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
        self.run(Op::Scan, self.inner.scan(cursor, limit)).await
    }
}
