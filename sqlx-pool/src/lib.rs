//! # session-store-sqlx-pool
//!
//! A warm stack of connections on top of the sqlx pool, shared by the
//! sqlx-based session stores (`session-store-postgres`,
//! `session-store-mysql`); generic over the sqlx database.
//!
//! Why: when a `PoolConnection` is dropped, sqlx 0.9 returns it to its pool
//! from a spawned task that first pings it (one more round trip). Until that
//! ping answers, the connection is unavailable, so back-to-back operations
//! land on other connections (other, cache-cold server processes or threads) and the
//! server answers two messages per operation. That roughly doubles the cost
//! of a read, like `test_before_acquire` (which is also off).
//!
//! So the store keeps the connections it has used checked out, in a LIFO
//! stack: an operation pops the most recently used connection (its server
//! process or thread is warm), runs its statements and pushes it back at once, with
//! no ping. The sqlx pool still opens connections (with its backoff and
//! acquire timeout) and bounds their number; a connection that fails with
//! anything but a server-reported error, or whose operation is cancelled, is
//! closed instead of pushed back, so a stale connection fails one operation
//! and is replaced. Connections idle in the stack longer than the idle
//! timeout, or older than the maximum lifetime, are closed when the store is
//! next used.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The sqlx pool plus the store's warm stack.
#[derive(Debug)]
pub struct Connections<DB: Database> {
    pool: Pool<DB>,
    /// One permit per connection the store may hold (warm or leased): a
    /// waiting operation gets the next connection pushed back, fairly.
    permits: Semaphore,
    acquire_timeout: Duration,
    warm: Mutex<Vec<Warm<DB>>>,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
}

#[derive(Debug)]
struct Warm<DB: Database> {
    conn: PoolConnection<DB>,
    opened: Instant,
    idle_since: Instant,
}

/// One checked-out connection. Pushed back to the warm stack only by
/// [`Lease::finish`] after a completed statement; dropped otherwise
/// (error, cancellation), in which case the connection is closed.
pub struct Lease<'a, DB: Database> {
    owner: &'a Connections<DB>,
    conn: Option<PoolConnection<DB>>,
    opened: Instant,
    // Released after the connection is pushed back (fields drop last).
    _permit: SemaphorePermit<'a>,
}

fn close<DB: Database>(mut conn: PoolConnection<DB>) {
    // sqlx closes it gracefully from a spawned task, which needs a runtime;
    // without one (a store dropped after its runtime) just drop the socket.
    if tokio::runtime::Handle::try_current().is_ok() {
        conn.close_on_drop();
        drop(conn);
    } else {
        drop(conn.leak());
    }
}

impl<DB: Database> Connections<DB> {
    /// Wraps `pool`; its maximum size and acquire timeout bound the stack
    /// too. Warm connections idle longer than `idle_timeout`, or older than
    /// `max_lifetime`, are closed when the store is next used.
    pub fn new(
        pool: Pool<DB>,
        idle_timeout: Option<Duration>,
        max_lifetime: Option<Duration>,
    ) -> Self {
        // The pool's own limits apply to the store's layer too.
        let max = pool.options().get_max_connections().max(1) as usize;
        let acquire_timeout = pool.options().get_acquire_timeout();
        Connections {
            pool,
            permits: Semaphore::new(max),
            acquire_timeout,
            warm: Mutex::new(Vec::new()),
            idle_timeout,
            max_lifetime,
        }
    }

    /// The sqlx pool underneath.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    fn stack(&self) -> std::sync::MutexGuard<'_, Vec<Warm<DB>>> {
        // Only pushes and pops happen under the lock; a poisoned stack is intact.
        self.warm.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn too_old(&self, opened: Instant, now: Instant) -> bool {
        self.max_lifetime
            .is_some_and(|max| now.duration_since(opened) >= max)
    }

    /// The most recently used warm connection, or a new one from the pool.
    ///
    /// # Errors
    /// `PoolTimedOut` after the pool's acquire timeout, `PoolClosed` after
    /// [`Connections::close`], or the pool's error opening a connection.
    pub async fn get(&self) -> Result<Lease<'_, DB>, sqlx::Error> {
        let permit = match tokio::time::timeout(self.acquire_timeout, self.permits.acquire()).await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(sqlx::Error::PoolClosed),
            Err(_elapsed) => return Err(sqlx::Error::PoolTimedOut),
        };
        let now = Instant::now();
        let mut expired = Vec::new();
        let found = {
            let mut stack = self.stack();
            // The stack is ordered by idle_since (oldest at the bottom): drop
            // the ones idle too long.
            if let Some(idle) = self.idle_timeout {
                let keep_from = stack
                    .iter()
                    .position(|w| now.duration_since(w.idle_since) < idle)
                    .unwrap_or(stack.len());
                expired.extend(stack.drain(..keep_from));
            }
            let mut found = None;
            while let Some(w) = stack.pop() {
                if self.too_old(w.opened, now) {
                    expired.push(w);
                } else {
                    found = Some(w);
                    break;
                }
            }
            found
        };
        for w in expired {
            close(w.conn);
        }
        if let Some(w) = found {
            return Ok(Lease {
                owner: self,
                conn: Some(w.conn),
                opened: w.opened,
                _permit: permit,
            });
        }
        // With a permit and an empty stack, every connection this store
        // holds is leased, so the pool has one to give (unless the pool is
        // shared with other code).
        let conn = self.pool.acquire().await?;
        Ok(Lease {
            owner: self,
            conn: Some(conn),
            opened: Instant::now(),
            _permit: permit,
        })
    }

    /// Closes every warm connection and refuses new leases (before closing
    /// the pool).
    pub fn close(&self) {
        self.permits.close();
        self.close_warm();
    }

    fn close_warm(&self) {
        let drained: Vec<Warm<DB>> = self.stack().drain(..).collect();
        for w in drained {
            close(w.conn);
        }
    }
}

impl<DB: Database> Drop for Connections<DB> {
    fn drop(&mut self) {
        self.close_warm();
    }
}

impl<DB: Database> Lease<'_, DB> {
    /// The connection, for the next statement.
    pub fn conn(&mut self) -> &mut DB::Connection {
        self.conn
            .as_deref_mut()
            .expect("a lease holds its connection until finished")
    }

    /// Pushes the connection back if the statement completed (or the server
    /// reported an error, which leaves the connection usable); otherwise it
    /// is closed when the lease drops.
    pub fn finish<T>(self, result: &std::result::Result<T, sqlx::Error>) {
        let reusable = match result {
            Ok(_) => true,
            Err(sqlx::Error::Database(_)) | Err(sqlx::Error::RowNotFound) => true,
            Err(_) => false,
        };
        if reusable {
            self.keep();
        }
    }

    /// Pushes the connection back to the warm stack (it is in a clean state).
    pub fn keep(mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let now = Instant::now();
        if self.owner.too_old(self.opened, now) {
            close(conn);
            return;
        }
        let mut stack = self.owner.stack();
        // Checked under the lock that `close` drains under: after a close,
        // nothing is pushed back (the pool's close waits for every connection).
        if self.owner.permits.is_closed() {
            drop(stack);
            close(conn);
            return;
        }
        stack.push(Warm {
            conn,
            opened: self.opened,
            idle_since: now,
        });
    }
}

impl<DB: Database> Drop for Lease<'_, DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            close(conn);
        }
    }
}
