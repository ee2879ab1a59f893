//! Dedicated threads that own the SQLite connections.
//!
//! SQLite calls block, so they never run on the async runtime: one writer
//! thread owns the only write connection (SQLite allows one writer at a time
//! anyway, and a single owner makes every write path lock-free on our side),
//! and a small pool of reader threads each own a read connection (WAL lets
//! them read while the writer writes). Callers send a boxed closure over a
//! channel and await a `tokio::sync::oneshot` reply: two wake-ups per call,
//! no `spawn_blocking` hop, no runtime worker ever blocked.
//!
//! A caller that stops waiting (its future dropped) does not cancel a job
//! already sent: a write may still be applied, as with any remote database.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use session_store_core::{Error, Result};
use tokio::sync::oneshot;

use crate::schema::Sql;

/// What a worker thread owns.
pub(crate) struct Db {
    /// The connection (writer or reader).
    pub conn: Connection,
    /// The statements for the configured table.
    pub sql: Arc<Sql>,
}

type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// Where jobs for one kind of worker go.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    tx: Sender<Job>,
}

fn stopped() -> Error {
    Error::backend_permanent("the SQLite worker thread has stopped")
}

impl Queue {
    /// Runs `f` on a worker thread and returns its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            // The caller may have gone away; nothing to do then.
            let _ = reply.send(f(db));
        });
        self.tx.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Starts one thread that opens its connection with `open` and then serves
/// jobs from `jobs` until every sender is gone. Returns once the connection
/// is open (or failed to open).
pub(crate) async fn start<O>(name: String, open: O, sql: Arc<Sql>, jobs: Source) -> Result<()>
where
    O: FnOnce() -> Result<Connection> + Send + 'static,
{
    let (ready_tx, ready_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let conn = match open() {
                Ok(conn) => {
                    let _ = ready_tx.send(Ok(()));
                    conn
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            serve(Db { conn, sql }, jobs);
        })
        .map_err(Error::backend_permanent)?;
    ready_rx.await.map_err(|_| stopped())?
}

/// The receiving side: one thread's own channel, or a channel shared by a pool.
pub(crate) enum Source {
    /// The writer's private queue.
    Own(Receiver<Job>),
    /// A queue shared by the reader pool: whichever reader is idle takes the next job.
    Shared(Arc<Mutex<Receiver<Job>>>),
}

impl Source {
    fn next(&self) -> Option<Job> {
        match self {
            Source::Own(rx) => rx.recv().ok(),
            Source::Shared(rx) => {
                // The lock is held only while waiting for the next job; a
                // poisoned lock still guards a valid receiver.
                let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                rx.recv().ok()
            }
        }
    }
}

fn serve(mut db: Db, jobs: Source) {
    while let Some(job) = jobs.next() {
        // A panicking job drops its reply sender (its caller sees an error);
        // an open transaction rolls back as the panic unwinds; the thread
        // keeps serving.
        if catch_unwind(AssertUnwindSafe(|| job(&mut db))).is_err() {
            tracing::error!("a SQLite job panicked; the worker continues");
        }
    }
}

/// A new job channel: the queue for callers and its receiving end.
pub(crate) fn channel() -> (Queue, Receiver<Job>) {
    let (tx, rx) = mpsc::channel();
    (Queue { tx }, rx)
}
