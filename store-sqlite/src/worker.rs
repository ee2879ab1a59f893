//! The threads that own the SQLite connections, and the calling-thread
//! fast path.
//!
//! SQLite calls block. One writer thread owns the only write connection
//! (SQLite allows one writer at a time anyway), and a small pool of reader
//! threads each own a read connection (WAL lets them read while the writer
//! writes). Each connection sits in a slot behind a `std::sync::Mutex`.
//!
//! # Statements on the calling thread
//! The request path (load, create, save, touch, rotate, delete) goes through
//! [`Queue::run_fast`]: when nothing is queued and a connection of the pool
//! is free (`try_lock`), the statement runs right there, on the caller's
//! thread, and the call completes in its first poll. A primary-key
//! statement takes a few microseconds, less than waking another thread, so
//! this path costs what the statement costs, in any runtime shape (under
//! criterion's `block_on`, in a multi-thread runtime with one client task,
//! with other tasks busy), without spinning. Otherwise the job is handed to
//! the connection's thread ([`Queue::run`], below). The rules:
//! - **No waiting for another connection's lock on a caller's thread.**
//!   Inline statements run with a busy handler that refuses at once; a job
//!   that met `SQLITE_BUSY` (another process holds the write lock) is run
//!   again on the worker thread, which waits within the operation deadline
//!   (the busy timeout). Jobs given to `run_fast` write nothing when a
//!   statement fails with `SQLITE_BUSY`, so running them twice is safe.
//! - **No fsync on a caller's thread.** Under `synchronous=FULL` every
//!   commit syncs, so the writer runs no job inline; WAL checkpoints (which
//!   sync) always run on the writer or checkpointer thread: after an inline
//!   write that pushed the log past the threshold
//!   ([`Upkeep::due`]), an empty job wakes the writer for it, and its idle
//!   checkpoint waits for a period without inline writes too.
//! - **A slow inline statement pauses the fast path.** An inline job that
//!   ran longer than [`INLINE_SLOW`] (1 ms) sends the pool's next jobs to
//!   its threads for [`INLINE_PAUSE`] (20 ms). What makes a statement slow
//!   here is the disk: measured with `examples/cold_read.rs` (300 000
//!   sessions, a 1.3 GiB file, the file evicted from the OS page cache
//!   before each read with `posix_fadvise(DONTNEED)`, load average 5 on 2
//!   cores), a primary-key read on the calling thread took 1.6 ms at p50,
//!   13 ms at p99 and 230 ms at worst with the connection's own cache warm,
//!   and 2.3 / 14.5 / 300 ms through a fresh connection; a warm read takes
//!   about 7 µs. Blocking a runtime worker for milliseconds on every read
//!   of a database that does not fit in memory would stall every task on
//!   that worker; blocking it once per 20 ms of such traffic bounds the
//!   time a worker spends in cold reads to about a tenth, while a store whose working set is in
//!   the page cache (the common case: a live session is read on every
//!   request) never pauses.
//! - **Cancellation and panics.** An inline job runs synchronously inside
//!   one poll, so a caller dropping its future cannot interrupt it. A panic
//!   is caught (the caller gets a backend error), and a transaction left
//!   open by a job, inline or on a worker, is rolled back before the
//!   connection is used again; the slot's lock is never left poisoned in
//!   effect (a poisoned lock is taken over).
//! - **Fairness.** A caller never overtakes queued jobs: with any job
//!   waiting, it queues behind them.
//! - **Reads borrow the writer's connection when it is free**
//!   ([`Queue::run_read_fast`]), and a reader's otherwise. In WAL mode a
//!   connection drops its whole page cache when it starts a read after
//!   another connection committed, so on a reader a load that follows a
//!   save reads every page it needs again (`pread` of the log and the
//!   file), where the writer's cache is current after its own commits.
//!   Measured with a load → save loop on one session (1 KiB, 1 task, this
//!   2-core machine under load from other builds, three interleaved
//!   rounds): load p50 22.0 / 21.9 / 23.0 µs on a reader against 15.6 /
//!   15.5 / 17.5 µs on the writer, rusqlite on one connection 13-15 µs.
//!   A read holds the writer's connection for the few microseconds of one
//!   primary-key lookup; a write that finds it held meanwhile is handed to
//!   the writer thread as under any contention, and reads do not count as
//!   activity for the writer's idle checkpoint.
//!
//! [`SqliteConfig::with_inline`](crate::SqliteConfig::with_inline) turns the
//! fast path off (every job handed over, as before).
//!
//! # The hand-off, and why it spins briefly
//! Callers that cannot run inline push a boxed closure onto the pool's
//! queue and get the result back through a `tokio::sync::oneshot`. Waking a
//! parked thread costs more than a primary-key statement on each side, so
//! both sides of the hand-off busy-wait for a bounded time before they park:
//! - a worker that runs out of jobs keeps polling its queue for
//!   [`SqliteConfig::spin_wait`](crate::SqliteConfig::spin_wait) before it
//!   sleeps, so the next request of a busy store finds it awake. At most
//!   `cores - 1` workers spin at once in the whole process (the rest park at
//!   once), so spinning never takes the core a caller needs, and on a single
//!   core neither side spins;
//! - a caller whose job starts at once (an idle worker is there for it) polls
//!   its reply for up to the same bound before it awaits the reply normally.
//!   A runtime worker thread is therefore held for at most that bound per
//!   call (50 µs by default), never for the duration of a slow statement;
//!   when the pool is saturated callers do not spin at all.
//!
//! With the fast path on, the hand-off (and so the spin) is taken only under
//! contention. `with_spin_wait(Duration::ZERO)` turns spinning off (pure
//! park/unpark hand-off).
//!
//! A caller that stops waiting (its future dropped) does not cancel a job
//! already queued: a write may still be applied, as with any remote database.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use session_store_core::{Error, Result};
use tokio::sync::oneshot::{self, error::TryRecvError};

use crate::schema::Sql;

/// What a worker thread owns.
pub(crate) struct Db {
    /// The connection (writer or reader).
    pub conn: Connection,
    /// The statements for the configured table.
    pub sql: Arc<Sql>,
}

type Job = Box<dyn FnOnce(&mut Db, &Pool) + Send>;

/// A connection and its upkeep, owned by one worker thread and lent to
/// callers that find it free (see the module docs).
struct Slot {
    db: Db,
    upkeep: Option<Box<dyn Upkeep>>,
}

type SharedSlot = Arc<Mutex<Slot>>;

fn lock_slot(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A panic never leaves a slot inconsistent: an open transaction is
    // rolled back (see `close_open_transaction`) before the slot is used
    // again.
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// Rolls back a transaction that a job left open (it panicked, or it
/// forgot to commit), so that the connection is never handed on inside one.
fn close_open_transaction(db: &Db) {
    if !db.conn.is_autocommit() {
        tracing::error!("a SQLite job left a transaction open; rolling it back");
        if let Err(e) = db.conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "could not roll back a transaction left open");
        }
    }
}

thread_local! {
    /// Set by [`refuse_busy`] when a statement run on this thread met a lock
    /// held by another connection.
    static BUSY_HIT: Cell<bool> = const { Cell::new(false) };
}

/// The busy handler of a statement run on a caller's thread: never wait
/// for another connection's lock (that is the worker thread's job, within
/// the operation deadline); note it and fail at once with `SQLITE_BUSY`.
fn refuse_busy(_attempts: i32) -> bool {
    BUSY_HIT.with(|hit| hit.set(true));
    false
}

/// Housekeeping a worker does on its own connection between jobs (the
/// writer's WAL checkpoints). Runs on the worker thread, never under the
/// queue lock, and never while a job is running.
pub(crate) trait Upkeep: Send + 'static {
    /// Runs after every job (after its reply was sent). Must be cheap when
    /// there is nothing to do.
    fn after_job(&mut self, db: &mut Db);
    /// Whether [`Upkeep::after_job`] has work to do now. Asked after a job
    /// that ran on the calling thread (see the module docs): when true, the
    /// worker thread is woken to do it, so that a checkpoint never runs on
    /// a caller's thread.
    fn due(&self) -> bool;
    /// How long the queue must stay empty before [`Upkeep::idle`] runs;
    /// `None` when there is nothing to do.
    fn idle_after(&self) -> Option<Duration>;
    /// Runs once the queue has been empty for [`Upkeep::idle_after`].
    fn idle(&mut self, db: &mut Db);
}

/// What a worker does next.
enum Next {
    Job(Job),
    /// The queue stayed empty for the idle delay asked for.
    Idle,
    /// The pool is closed and drained.
    Closed,
}

/// Counts a job out of [`Pool::in_flight`] when dropped: before its reply is
/// sent (so a caller's next call sees an accurate count), or while a
/// panicking job unwinds.
struct InFlight<'a>(&'a Pool);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Worker threads busy-waiting for work, in the whole process.
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// Cores this process may use (1 when unknown).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How many workers may spin at once: one core is always left to callers,
/// so on a single core nobody spins (a spinner would only delay the thread
/// it waits for).
fn spin_limit() -> usize {
    cores() - 1
}

/// Spin-loop iterations between clock reads (a clock read costs ~25 ns).
const SPINS_PER_CLOCK_READ: u32 = 32;

/// Busy-waits until `ready` gives a value, or `None` once `bound` has passed.
fn spin_until<T>(bound: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(SPINS_PER_CLOCK_READ) && start.elapsed() >= bound {
            return None;
        }
    }
}

struct State {
    jobs: VecDeque<Job>,
    /// Workers waiting on `ready`.
    sleeping: usize,
}

/// One queue and the workers that serve it.
struct Pool {
    state: Mutex<State>,
    ready: Condvar,
    /// `jobs.len()`, readable without the lock by spinning workers.
    queued: AtomicUsize,
    /// Jobs queued or running.
    in_flight: AtomicUsize,
    /// Workers of this pool busy-waiting for a job.
    spinning: AtomicUsize,
    /// Worker threads serving this pool.
    workers: AtomicUsize,
    /// Set (under the lock, so waiters cannot miss it) when the last
    /// [`Queue`] is dropped; read without the lock by spinning workers.
    closed: AtomicBool,
    spin: Duration,
    /// Whether callers may run statements on their own thread when a
    /// connection is free ([`Queue::run_fast`]).
    inline: bool,
    /// Whether callers may run reads on their own thread with a free
    /// connection of this pool ([`Queue::run_read_fast`]; the writer's
    /// connection, also when its writes stay on its thread).
    inline_reads: bool,
    /// The connections of this pool's workers.
    slots: RwLock<Vec<SharedSlot>>,
    /// Jobs run on callers' threads so far: the writer's idle upkeep waits
    /// for a period without these too.
    inline_runs: AtomicU64,
    /// An upkeep wake-up job is queued (at most one at a time).
    upkeep_queued: AtomicBool,
    /// The busy timeout restored after a statement on a caller's thread.
    busy_timeout: Duration,
    /// Until when (microseconds since `epoch`) callers hand every job over:
    /// set when a job on a caller's thread took longer than [`INLINE_SLOW`].
    inline_paused_until: AtomicU64,
    /// The origin of `inline_paused_until`.
    epoch: Instant,
}

/// A job on a caller's thread that takes longer than this most likely went
/// to the disk (a cold page cache: 1-2 ms per read at p50 on the test
/// machine, see the module docs), or its thread was preempted; such a store
/// hands its jobs to the SQLite threads for [`INLINE_PAUSE`] before it
/// tries again, so the runtime's workers are held for at most one slow
/// statement per pause (a short pause, because preemption on a loaded
/// machine trips it too, and the fast path is worth keeping there).
///
/// Measured both ways (2026-12-05, `benches/notes.md`): with 64 HTTP
/// clients saturating the 2 cores, preempted statements paused the fast
/// path up to 60 % of the time, and waiting for two slow statements in a
/// row instead raised that benchmark's throughput by 7-10 %; but in the
/// `busy` runtime shape (CPU-bound tasks sharing the runtime's workers) the
/// same change cost 20-40 % of load → save throughput at 8 and 64 tasks,
/// where handing statements to the SQLite threads lets them run beside the
/// busy workers. One slow statement stays the trigger.
pub(crate) const INLINE_SLOW: Duration = Duration::from_millis(1);
/// See [`INLINE_SLOW`].
pub(crate) const INLINE_PAUSE: Duration = Duration::from_millis(20);

/// Spends a unit of the task's cooperative budget (tokio's, as its own
/// sockets and channels do) after a statement that ran on the calling
/// thread, yielding to the runtime once the budget is spent. An inline call
/// completes in its first poll, so without this a task that loops over
/// loads or saves would never give its worker thread back. Seen as a hang
/// of `tests/storage.rs` once the fast path paused less often (an
/// experiment, see [`INLINE_SLOW`]): its two reader tasks, looping over
/// loads on a two-worker runtime, kept both workers from the writer tasks
/// that were to stop them. Outside a tokio runtime it never yields.
async fn cooperate() {
    tokio::task::coop::consume_budget().await;
}

impl Pool {
    fn micros_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn inline_paused(&self) -> bool {
        let until = self.inline_paused_until.load(Ordering::Relaxed);
        until != 0 && self.micros_since_epoch() < until
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock still guards a valid queue (no job runs under it).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pop(&self, state: &mut State) -> Option<Job> {
        let job = state.jobs.pop_front()?;
        self.queued.fetch_sub(1, Ordering::SeqCst);
        Some(job)
    }

    /// The next job; [`Next::Idle`] once the queue has stayed empty for
    /// `idle_after` (if given); [`Next::Closed`] once the pool is closed and
    /// drained.
    fn next(&self, idle_after: Option<Duration>) -> Next {
        loop {
            if self.queued.load(Ordering::SeqCst) > 0 {
                if let Some(job) = self.pop(&mut self.lock()) {
                    return Next::Job(job);
                }
            }
            if self.spin_for_work() {
                continue;
            }
            let mut state = self.lock();
            let deadline = idle_after.map(|d| Instant::now() + d);
            loop {
                if let Some(job) = self.pop(&mut state) {
                    return Next::Job(job);
                }
                if self.closed.load(Ordering::SeqCst) {
                    return Next::Closed;
                }
                state.sleeping += 1;
                match deadline {
                    None => {
                        state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            state.sleeping -= 1;
                            return Next::Idle;
                        }
                        state = self
                            .ready
                            .wait_timeout(state, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
                state.sleeping -= 1;
            }
        }
    }

    /// Busy-waits up to `spin` for a job, if this worker may spin. True when
    /// a job arrived meanwhile; false on timeout or close (the caller then
    /// looks under the lock, where a closed pool ends the worker).
    fn spin_for_work(&self) -> bool {
        if self.spin.is_zero() {
            return false;
        }
        let limit = spin_limit();
        if SPINNING
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_err()
        {
            return false;
        }
        self.spinning.fetch_add(1, Ordering::SeqCst);
        let found = spin_until(self.spin, || {
            if self.queued.load(Ordering::SeqCst) > 0 {
                Some(true)
            } else if self.closed.load(Ordering::SeqCst) {
                Some(false)
            } else {
                None
            }
        })
        .unwrap_or(false);
        // Decrement before re-checking under the lock (in `next`): a pusher
        // that saw this worker spinning pushed before we look again.
        self.spinning.fetch_sub(1, Ordering::SeqCst);
        SPINNING.fetch_sub(1, Ordering::SeqCst);
        found
    }

    /// Puts a job that is running back at the end of the queue (it stays
    /// counted in flight). Called on the worker thread, which is awake.
    fn requeue(&self, job: Job) {
        let mut state = self.lock();
        state.jobs.push_back(job);
        self.queued.fetch_add(1, Ordering::SeqCst);
    }

    fn close(&self) {
        let state = self.lock();
        self.closed.store(true, Ordering::SeqCst);
        drop(state);
        self.ready.notify_all();
    }
}

/// Paces background jobs (cleanup) against the live traffic of a queue:
/// see [`Queue::run_paced`].
#[derive(Debug)]
pub(crate) struct Pacer {
    /// How many times as long as a paced job ran the next one yields to
    /// other jobs.
    factor: u32,
    /// When the last paced job ended and how long it ran.
    last: Mutex<Option<(Instant, Duration)>>,
}

impl Pacer {
    pub(crate) fn new(factor: u32) -> Self {
        Pacer {
            factor,
            last: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<(Instant, Duration)>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a paced job may run now.
    fn due(&self) -> bool {
        match *self.lock() {
            None => true,
            Some((ended, took)) => ended.elapsed() >= took.saturating_mul(self.factor),
        }
    }

    fn record(&self, started: Instant) {
        *self.lock() = Some((Instant::now(), started.elapsed()));
    }
}

/// A paced job: runs `work` if nothing else is queued or its turn has come
/// (see [`Queue::run_paced`]); otherwise goes back to the end of the queue.
fn paced_job(pacer: Arc<Pacer>, work: Job) -> Job {
    Box::new(move |db, pool| {
        if pool.queued.load(Ordering::SeqCst) > 0 && !pacer.due() {
            pool.requeue(paced_job(pacer, work));
            return;
        }
        let started = Instant::now();
        // `work` counts itself out of `in_flight` before it replies.
        work(db, pool);
        pacer.record(started);
    })
}

/// Closes its pool when the last [`Queue`] clone is dropped: the workers
/// finish the queued jobs, then exit and close their connections.
struct Closer(Arc<Pool>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Where jobs for one kind of worker (the writer, or the readers) go.
#[derive(Clone)]
pub(crate) struct Queue {
    closer: Arc<Closer>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pool = self.pool();
        f.debug_struct("Queue")
            .field("workers", &pool.workers.load(Ordering::Relaxed))
            .field("in_flight", &pool.in_flight.load(Ordering::Relaxed))
            .field("spin", &pool.spin)
            .finish()
    }
}

fn stopped() -> Error {
    Error::backend_permanent("the SQLite worker thread has stopped")
}

impl Queue {
    /// A new queue with no workers yet (see [`start`]); workers and callers
    /// busy-wait up to `spin` (see the module docs). With `inline`,
    /// [`Queue::run_fast`] runs a job on the caller's thread when a
    /// connection is free; `busy_timeout` is the connections' own, restored
    /// after each such job.
    pub(crate) fn new(spin: Duration, inline: bool, busy_timeout: Duration) -> Self {
        Self::with_reads(spin, inline, inline, busy_timeout)
    }

    /// [`Queue::new`] for a pool whose connections callers may borrow for
    /// reads (`inline_reads`) whether or not they may write on them
    /// (`inline`): the writer's (see [`Queue::run_read_fast`]).
    pub(crate) fn with_reads(
        spin: Duration,
        inline: bool,
        inline_reads: bool,
        busy_timeout: Duration,
    ) -> Self {
        let pool = Pool {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                sleeping: 0,
            }),
            ready: Condvar::new(),
            queued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            workers: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            spin,
            inline,
            inline_reads,
            slots: RwLock::new(Vec::new()),
            inline_runs: AtomicU64::new(0),
            upkeep_queued: AtomicBool::new(false),
            busy_timeout: busy_timeout.max(Duration::from_millis(1)),
            inline_paused_until: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        Queue {
            closer: Arc::new(Closer(Arc::new(pool))),
        }
    }

    fn pool(&self) -> &Arc<Pool> {
        &self.closer.0
    }

    /// Queues `job`; true when it starts at once (a worker is free for it).
    fn push(&self, job: Job) -> Result<bool> {
        let pool = self.pool();
        let mut state = pool.lock();
        if pool.closed.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        let in_flight = pool.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.jobs.push_back(job);
        pool.queued.fetch_add(1, Ordering::SeqCst);
        let wake = state.sleeping > 0 && pool.spinning.load(Ordering::SeqCst) == 0;
        drop(state);
        if wake {
            pool.ready.notify_one();
        }
        Ok(in_flight <= pool.workers.load(Ordering::SeqCst))
    }

    /// Runs `f` on a worker thread and returns its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T> + Send + 'static,
    {
        let (reply, mut answer) = oneshot::channel();
        let job: Job = Box::new(move |db, pool| {
            let counted = InFlight(pool);
            let out = f(db);
            drop(counted);
            // The caller may have gone away; nothing to do then.
            let _ = reply.send(out);
        });
        let starts_now = self.push(job)?;
        let spin = self.pool().spin;
        // On a single core the worker needs this core to answer: never spin.
        if starts_now && !spin.is_zero() && cores() > 1 {
            let early = spin_until(spin, || match answer.try_recv() {
                Ok(out) => Some(out),
                Err(TryRecvError::Closed) => Some(Err(stopped())),
                Err(TryRecvError::Empty) => None,
            });
            if let Some(out) = early {
                return out;
            }
        }
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `f` on the calling thread if a connection of this queue is free
    /// and no job is waiting (see the module docs), else as [`Queue::run`]
    /// does. `f` runs at most twice: a first run on the calling thread that
    /// met a lock held by another connection (`SQLITE_BUSY`, not waited
    /// for) is run again on a worker thread, which waits for the lock within
    /// the operation deadline. So `f` must write nothing when one of its
    /// statements fails with `SQLITE_BUSY` (single autocommit statements,
    /// or one transaction, as every caller does).
    pub(crate) async fn run_fast<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Db) -> Result<T> + Send + 'static,
    {
        if let Some(out) = self.try_inline(&f, false) {
            cooperate().await;
            return out;
        }
        self.run(f).await
    }

    /// Runs the read `f` on the calling thread with `writer`'s connection
    /// if it is free and nothing is queued for it, else as
    /// [`Queue::run_fast`] does on this (reader) queue. The writer's page
    /// cache is current after its own commits, where a reader connection
    /// drops its whole cache at the start of every read that follows a
    /// commit by another connection (SQLite's WAL mode), so a load after a
    /// save reads its pages again from the log and the file: that is most of
    /// what a load on a reader costs more (see the module docs). `f` must
    /// write nothing; it runs at most three times (once on the writer's
    /// connection, then as [`Queue::run_fast`] runs it) and only when a
    /// run met `SQLITE_BUSY`.
    pub(crate) async fn run_read_fast<T, F>(&self, writer: &Queue, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Db) -> Result<T> + Send + 'static,
    {
        if let Some(out) = writer.try_inline(&f, true) {
            cooperate().await;
            return out;
        }
        self.run_fast(f).await
    }

    /// The inline half of [`Queue::run_fast`] (and, for a `read`, of
    /// [`Queue::run_read_fast`]): `None` when `f` did not run here, or met
    /// `SQLITE_BUSY`.
    fn try_inline<T>(&self, f: &dyn Fn(&mut Db) -> Result<T>, read: bool) -> Option<Result<T>> {
        let pool = self.pool();
        let allowed = if read { pool.inline_reads } else { pool.inline };
        if !allowed || pool.queued.load(Ordering::SeqCst) > 0 || pool.inline_paused() {
            return None;
        }
        let slots = pool.slots.read().unwrap_or_else(|e| e.into_inner());
        for slot in slots.iter() {
            let mut guard = match slot.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            let slot = &mut *guard;
            BUSY_HIT.with(|hit| hit.set(false));
            if let Err(e) = slot.db.conn.busy_handler(Some(refuse_busy)) {
                tracing::warn!(error = %e, "could not set the busy handler");
                return None;
            }
            let started = Instant::now();
            let out = catch_unwind(AssertUnwindSafe(|| f(&mut slot.db)));
            if started.elapsed() > INLINE_SLOW {
                let until = pool.micros_since_epoch()
                    + u64::try_from(INLINE_PAUSE.as_micros()).unwrap_or(u64::MAX);
                pool.inline_paused_until
                    .store(until.max(1), Ordering::Relaxed);
            }
            close_open_transaction(&slot.db);
            if let Err(e) = slot.db.conn.busy_timeout(pool.busy_timeout) {
                tracing::error!(error = %e, "could not restore the busy timeout");
            }
            let busy = BUSY_HIT.with(|hit| hit.replace(false));
            // A read adds nothing to the log: no checkpoint can be due
            // because of it, and it does not keep the writer's idle
            // checkpoint waiting.
            let upkeep_due = !read && slot.upkeep.as_ref().is_some_and(|u| u.due());
            drop(guard);
            if !read {
                pool.inline_runs.fetch_add(1, Ordering::SeqCst);
            }
            if upkeep_due {
                self.wake_for_upkeep();
            }
            return match out {
                Err(_) => {
                    tracing::error!("a SQLite statement panicked; the store continues");
                    Some(Err(Error::backend_permanent("a SQLite statement panicked")))
                }
                Ok(_) if busy => None,
                Ok(out) => Some(out),
            };
        }
        None
    }

    /// Queues an empty job so that the worker wakes and runs its
    /// [`Upkeep::after_job`] (a checkpoint) on its own thread.
    fn wake_for_upkeep(&self) {
        let pool = self.pool();
        if pool.upkeep_queued.swap(true, Ordering::SeqCst) {
            return;
        }
        let job: Job = Box::new(|_, pool| {
            pool.upkeep_queued.store(false, Ordering::SeqCst);
            drop(InFlight(pool));
        });
        if self.push(job).is_err() {
            pool.upkeep_queued.store(false, Ordering::SeqCst);
        }
    }
}

impl Queue {
    /// Runs `f` on a worker thread as a background job: while other jobs
    /// are queued, it runs only once the time since the previous paced job
    /// (of `pacer`) ended is at least `factor` times as long as that job
    /// ran, and until then goes back behind them. So background work takes
    /// at most `1 / (1 + factor)` of the worker while there is other work,
    /// and all of it when there is none; no timer is involved.
    pub(crate) async fn run_paced<T, F>(&self, pacer: &Arc<Pacer>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Job = Box::new(move |db, pool| {
            let counted = InFlight(pool);
            let out = f(db);
            drop(counted);
            // The caller may have gone away; nothing to do then.
            let _ = reply.send(out);
        });
        self.push(paced_job(pacer.clone(), work))?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Starts one thread that opens its connection with `open` and then serves
/// jobs from `queue` until the last clone of the queue is dropped. Returns
/// once the connection is open (or failed to open).
pub(crate) async fn start<O>(name: String, open: O, sql: Arc<Sql>, queue: &Queue) -> Result<()>
where
    O: FnOnce() -> Result<Connection> + Send + 'static,
{
    start_with_upkeep(name, move || Ok((open()?, None)), sql, queue).await
}

/// [`start`] for a worker that also does [`Upkeep`] (given by `open` with
/// its connection) between jobs.
pub(crate) async fn start_with_upkeep<O>(
    name: String,
    open: O,
    sql: Arc<Sql>,
    queue: &Queue,
) -> Result<()>
where
    O: FnOnce() -> Result<(Connection, Option<Box<dyn Upkeep>>)> + Send + 'static,
{
    let (ready_tx, ready_rx) = oneshot::channel();
    let pool = queue.pool().clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let (conn, upkeep) = match open() {
                Ok(opened) => opened,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let slot = Arc::new(Mutex::new(Slot {
                db: Db { conn, sql },
                upkeep,
            }));
            pool.slots
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(slot.clone());
            pool.workers.fetch_add(1, Ordering::SeqCst);
            let _ = ready_tx.send(Ok(()));
            serve(&slot, &pool);
            // The connection closes when the pool drops its slots.
        })
        .map_err(Error::backend_permanent)?;
    ready_rx.await.map_err(|_| stopped())?
}

fn serve(slot: &Mutex<Slot>, pool: &Pool) {
    // Inline runs seen when the idle upkeep was last considered.
    let mut seen_inline = pool.inline_runs.load(Ordering::SeqCst);
    loop {
        let idle_after = lock_slot(slot).upkeep.as_ref().and_then(|u| u.idle_after());
        match pool.next(idle_after) {
            Next::Job(job) => {
                let mut guard = lock_slot(slot);
                let Slot { db, upkeep } = &mut *guard;
                // A panicking job drops its reply sender (its caller sees an
                // error); an open transaction rolls back as the panic
                // unwinds; the thread keeps serving.
                if catch_unwind(AssertUnwindSafe(|| job(db, pool))).is_err() {
                    tracing::error!("a SQLite job panicked; the worker continues");
                }
                close_open_transaction(db);
                if let Some(u) = upkeep.as_mut() {
                    if catch_unwind(AssertUnwindSafe(|| u.after_job(db))).is_err() {
                        tracing::error!("SQLite upkeep panicked; the worker continues");
                    }
                }
            }
            Next::Idle => {
                // Statements run on callers' threads meanwhile: not idle.
                let inline_runs = pool.inline_runs.load(Ordering::SeqCst);
                if inline_runs != seen_inline {
                    seen_inline = inline_runs;
                    continue;
                }
                let mut guard = lock_slot(slot);
                let Slot { db, upkeep } = &mut *guard;
                if let Some(u) = upkeep.as_mut() {
                    if catch_unwind(AssertUnwindSafe(|| u.idle(db))).is_err() {
                        tracing::error!("SQLite upkeep panicked; the worker continues");
                    }
                }
            }
            Next::Closed => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_db() -> Result<Connection> {
        Connection::open_in_memory().map_err(crate::store::sqlite_error)
    }

    async fn queue_with(workers: usize, spin: Duration) -> Queue {
        let queue = Queue::new(spin, true, Duration::from_secs(2));
        for i in 0..workers {
            start(
                format!("test-worker-{i}"),
                memory_db,
                Arc::new(Sql::new("sessions")),
                &queue,
            )
            .await
            .unwrap();
        }
        queue
    }

    async fn square_all(queue: &Queue, n: u64) {
        let calls = (0..n).map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let got = queue
                    .run(move |db| {
                        let v: i64 = db
                            .conn
                            .query_row("SELECT ?1 * ?1", [i as i64], |r| r.get(0))
                            .map_err(crate::store::sqlite_error)?;
                        Ok(v)
                    })
                    .await
                    .unwrap();
                assert_eq!(got, (i * i) as i64);
            })
        });
        for call in calls.collect::<Vec<_>>() {
            call.await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_job_is_answered_with_and_without_spinning() {
        for spin in [
            Duration::ZERO,
            Duration::from_micros(50),
            Duration::from_secs(1),
        ] {
            for workers in [1, 3] {
                let queue = queue_with(workers, spin).await;
                square_all(&queue, 500).await;
                // Sequential calls: the fast path (caller and worker spinning).
                for i in 0..200i64 {
                    let v = queue.run(move |_| Ok(i + 1)).await.unwrap();
                    assert_eq!(v, i + 1);
                }
                assert_eq!(queue.pool().in_flight.load(Ordering::SeqCst), 0);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_is_an_error_and_the_worker_goes_on() {
        let queue = queue_with(1, Duration::from_micros(50)).await;
        let err = queue
            .run(|_| -> Result<()> { panic!("job panics") })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
        assert_eq!(queue.run(|_| Ok(7)).await.unwrap(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paced_job_yields_to_queued_jobs_until_its_turn() {
        let queue = queue_with(1, Duration::ZERO).await;
        // A factor so large that the second paced job is never due within
        // this test: it must wait for the queue to empty.
        let pacer = Arc::new(Pacer::new(100_000));
        queue
            .run_paced(&pacer, |_| {
                std::thread::sleep(Duration::from_millis(1));
                Ok(())
            })
            .await
            .unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        // Hold the worker so that everything below is queued before it runs.
        let (release, blocker) = hold_worker(&queue);
        let o = order.clone();
        let paced = tokio::spawn({
            let (queue, pacer) = (queue.clone(), pacer.clone());
            async move {
                queue
                    .run_paced(&pacer, move |_| {
                        o.lock().unwrap().push("paced");
                        Ok(())
                    })
                    .await
            }
        });
        while queue.pool().queued.load(Ordering::SeqCst) < 1 {
            std::thread::yield_now();
        }
        let mut plain = Vec::new();
        for name in ["first", "second"] {
            let o = order.clone();
            let q = queue.clone();
            plain.push(tokio::spawn(async move {
                q.run(move |_| {
                    o.lock().unwrap().push(name);
                    Ok(())
                })
                .await
            }));
            while queue_len(&queue) < plain.len() + 1 {
                std::thread::yield_now();
            }
        }
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        paced.await.unwrap().unwrap();
        for p in plain {
            p.await.unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["first", "second", "paced"]);

        // With nothing else queued, a paced job runs at once, due or not.
        assert_eq!(queue.run_paced(&pacer, |_| Ok(5)).await.unwrap(), 5);
        // Counted out before the reply, as for every job.
        assert_eq!(queue.pool().in_flight.load(Ordering::SeqCst), 0);
    }

    /// Runs a job on `queue`'s worker that holds it (and its connection)
    /// until the returned sender sends; returns once the job is running.
    fn hold_worker(
        queue: &Queue,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<()>>,
    ) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (running, started) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn({
            let queue = queue.clone();
            async move {
                queue
                    .run(move |_| {
                        running.send(()).unwrap();
                        held.recv().unwrap();
                        Ok(())
                    })
                    .await
            }
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        (release, blocker)
    }

    fn queue_len(queue: &Queue) -> usize {
        queue.pool().queued.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_exit_when_the_last_queue_is_dropped() {
        let queue = queue_with(2, Duration::from_micros(50)).await;
        let pool = queue.pool().clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // A job queued just before the drop still runs.
        let pending = queue.run(move |_| {
            tx.send(()).unwrap();
            Ok(())
        });
        pending.await.unwrap();
        drop(queue);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(pool.closed.load(Ordering::SeqCst));
        // Each worker holds a clone of the pool until it exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&pool) > 1 {
            assert!(Instant::now() < deadline, "worker threads did not exit");
            std::thread::yield_now();
        }
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    fn caller_name() -> String {
        format!("{:?}", std::thread::current().id())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_free_connection_runs_the_job_on_the_calling_thread() {
        let queue = queue_with(1, Duration::ZERO).await;
        let (me, ran_on) = queue
            .run_fast(|_| Ok((caller_name(), thread_name())))
            .await
            .map(|(id, name)| (id == caller_name(), name))
            .unwrap();
        // The whole call ran in one poll on this thread: the closure saw
        // this thread's id (a worker thread is named test-worker-0).
        assert!(me, "ran on {ran_on}");
        assert_ne!(ran_on, "test-worker-0");
        assert_eq!(queue.pool().inline_runs.load(Ordering::SeqCst), 1);
        // `run` always hands over.
        assert_eq!(
            queue.run(|_| Ok(thread_name())).await.unwrap(),
            "test-worker-0"
        );
        // Inline off: handed over.
        let off = Queue::new(Duration::ZERO, false, Duration::from_secs(2));
        start(
            "test-worker-0".into(),
            memory_db,
            Arc::new(Sql::new("s")),
            &off,
        )
        .await
        .unwrap();
        assert_eq!(
            off.run_fast(|_| Ok(thread_name())).await.unwrap(),
            "test-worker-0"
        );
    }

    /// A writer queue (one worker `test-writer`, whose in-memory database
    /// alone has the table `w`) and a reader queue (one worker
    /// `test-worker-0`, without it): which connection a read ran on shows
    /// in whether it sees `w`.
    async fn writer_and_reader(inline_writes: bool, inline_reads: bool) -> (Queue, Queue) {
        let writer = Queue::with_reads(
            Duration::ZERO,
            inline_writes,
            inline_reads,
            Duration::from_secs(2),
        );
        start(
            "test-writer".into(),
            || {
                let conn = memory_db()?;
                conn.execute_batch("CREATE TABLE w (x)")
                    .map_err(crate::store::sqlite_error)?;
                Ok(conn)
            },
            Arc::new(Sql::new("s")),
            &writer,
        )
        .await
        .unwrap();
        (writer, queue_with(1, Duration::ZERO).await)
    }

    /// Runs a read through `readers.run_read_fast`: (whether it ran on the
    /// calling thread, whether it saw the writer's table).
    async fn where_read_ran(readers: &Queue, writer: &Queue) -> (bool, bool) {
        let me = caller_name();
        readers
            .run_read_fast(writer, move |db| {
                let on_writer = db
                    .conn
                    .query_row(
                        "SELECT count(*) FROM sqlite_master WHERE name = 'w'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(crate::store::sqlite_error)?
                    == 1;
                Ok((caller_name() == me, on_writer))
            })
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_borrows_the_free_writer_connection_on_the_calling_thread() {
        // Also when the writer's own writes stay on its thread
        // (`synchronous=FULL`): a read never syncs.
        for inline_writes in [true, false] {
            let (writer, readers) = writer_and_reader(inline_writes, true).await;
            assert_eq!(where_read_ran(&readers, &writer).await, (true, true));
            // A read adds nothing to the log: it does not hold back the
            // writer's idle checkpoint.
            assert_eq!(writer.pool().inline_runs.load(Ordering::SeqCst), 0);
            assert_eq!(readers.pool().inline_runs.load(Ordering::SeqCst), 0);
        }
    }

    /// Upkeep that is always due and counts its runs.
    struct AlwaysDue(Arc<AtomicUsize>);

    impl Upkeep for AlwaysDue {
        fn after_job(&mut self, _db: &mut Db) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn due(&self) -> bool {
            true
        }
        fn idle_after(&self) -> Option<Duration> {
            None
        }
        fn idle(&mut self, _db: &mut Db) {}
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_on_the_writer_never_wakes_it_for_upkeep() {
        let writer = Queue::with_reads(Duration::ZERO, true, true, Duration::from_secs(2));
        let runs = Arc::new(AtomicUsize::new(0));
        let upkeep = AlwaysDue(runs.clone());
        start_with_upkeep(
            "test-writer".into(),
            move || Ok((memory_db()?, Some(Box::new(upkeep) as Box<dyn Upkeep>))),
            Arc::new(Sql::new("s")),
            &writer,
        )
        .await
        .unwrap();
        let readers = queue_with(1, Duration::ZERO).await;
        for _ in 0..20 {
            readers.run_read_fast(&writer, |_| Ok(())).await.unwrap();
        }
        assert!(!writer.pool().upkeep_queued.load(Ordering::SeqCst));
        assert_eq!(writer.pool().in_flight.load(Ordering::SeqCst), 0);
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        // A write does wake it (the upkeep runs on the writer thread).
        writer.run_fast(|_| Ok(())).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the writer was not woken");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_takes_a_reader_when_the_writer_is_busy_or_not_lent() {
        let (writer, readers) = writer_and_reader(true, true).await;
        // The writer's connection is held by a job on its thread: the read
        // runs on a reader's connection, still on the calling thread.
        let (release, blocker) = hold_worker(&writer);
        assert_eq!(where_read_ran(&readers, &writer).await, (true, false));
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        // A paused writer (a slow statement) is not borrowed either.
        writer
            .pool()
            .inline_paused_until
            .store(u64::MAX, Ordering::Relaxed);
        assert_eq!(where_read_ran(&readers, &writer).await, (true, false));
        // The fast path off: handed to the reader thread.
        let (writer, _) = writer_and_reader(false, false).await;
        let off = Queue::new(Duration::ZERO, false, Duration::from_secs(2));
        start(
            "test-worker-0".into(),
            memory_db,
            Arc::new(Sql::new("s")),
            &off,
        )
        .await
        .unwrap();
        assert_eq!(where_read_ran(&off, &writer).await, (false, false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_connection_sends_the_job_to_the_queue() {
        let queue = queue_with(1, Duration::ZERO).await;
        // Hold the only connection in a worker job.
        let (release, blocker) = hold_worker(&queue);
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.run_fast(|_| Ok(thread_name())).await }
        });
        // It is queued (not spinning on the lock, not run inline).
        let deadline = Instant::now() + Duration::from_secs(10);
        while queue_len(&queue) < 1 {
            assert!(Instant::now() < deadline, "the job was not queued");
            std::thread::yield_now();
        }
        // While a job waits, a caller does not overtake it inline either,
        // even with the connection free: it queues behind.
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), "test-worker-0");
        assert_eq!(queue.pool().inline_runs.load(Ordering::SeqCst), 0);
        assert_eq!(queue.pool().in_flight.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_inline_panic_is_an_error_and_leaves_no_transaction_open() {
        let queue = queue_with(1, Duration::ZERO).await;
        queue
            .run(|db| {
                db.conn
                    .execute_batch("CREATE TABLE t (x INTEGER)")
                    .map_err(crate::store::sqlite_error)
            })
            .await
            .unwrap();
        let err = queue
            .run_fast(|db| -> Result<()> {
                db.conn
                    .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
                    .unwrap();
                panic!("statement panics")
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
        // Not poisoned, not inside the transaction: the insert was rolled
        // back, on the calling thread and on the worker alike.
        for n in [
            queue
                .run_fast(|db| {
                    assert!(db.conn.is_autocommit());
                    db.conn
                        .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                        .map_err(crate::store::sqlite_error)
                })
                .await
                .unwrap(),
            queue
                .run(|db| {
                    assert!(db.conn.is_autocommit());
                    db.conn
                        .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                        .map_err(crate::store::sqlite_error)
                })
                .await
                .unwrap(),
        ] {
            assert_eq!(n, 0);
        }
        // A job that forgets to commit is rolled back too.
        queue
            .run_fast(|db| {
                db.conn
                    .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2)")
                    .map_err(crate::store::sqlite_error)
            })
            .await
            .unwrap();
        let n = queue
            .run(|db| {
                db.conn
                    .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .map_err(crate::store::sqlite_error)
            })
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_held_elsewhere_is_not_waited_for_on_the_calling_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let open = {
            let path = path.clone();
            move || {
                let conn = Connection::open(&path).map_err(crate::store::sqlite_error)?;
                conn.busy_timeout(Duration::from_secs(5))
                    .map_err(crate::store::sqlite_error)?;
                conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (x)")
                    .map_err(crate::store::sqlite_error)?;
                Ok(conn)
            }
        };
        let queue = Queue::new(Duration::ZERO, true, Duration::from_secs(5));
        start(
            "test-worker-0".into(),
            open,
            Arc::new(Sql::new("s")),
            &queue,
        )
        .await
        .unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let runs = Arc::new(Mutex::new(Vec::new()));
        let write = tokio::spawn({
            let (queue, runs) = (queue.clone(), runs.clone());
            async move {
                let started = Instant::now();
                let ran_on = queue
                    .run_fast(move |db| {
                        runs.lock().unwrap().push(thread_name());
                        db.conn
                            .execute("INSERT INTO t VALUES (1)", [])
                            .map_err(crate::store::sqlite_error)?;
                        Ok(thread_name())
                    })
                    .await;
                (ran_on, started.elapsed())
            }
        });
        // The inline attempt failed at once and the job went to the writer
        // thread, which waits for the lock (busy timeout 5 s).
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.lock().unwrap().len() < 2 {
            assert!(Instant::now() < deadline, "no fallback to the worker");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let hold = Duration::from_millis(100);
        tokio::time::sleep(hold).await;
        other.execute_batch("COMMIT").unwrap();
        let (ran_on, took) = write.await.unwrap();
        assert_eq!(ran_on.unwrap(), "test-worker-0");
        assert!(took >= hold, "{took:?}");
        let names = runs.lock().unwrap().clone();
        assert_ne!(names[0], "test-worker-0", "{names:?}");
        assert_eq!(names[1], "test-worker-0", "{names:?}");
        let n: i64 = other
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "written once");
        // The connection's busy timeout is back after the inline attempt
        // (read on the worker: inline, the refusing handler is in force).
        let busy = queue
            .run(|db| {
                db.conn
                    .query_row("PRAGMA busy_timeout", [], |r| r.get::<_, i64>(0))
                    .map_err(crate::store::sqlite_error)
            })
            .await
            .unwrap();
        assert_eq!(busy, 5000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_inline_job_sends_the_next_ones_to_the_queue_for_a_while() {
        let queue = queue_with(1, Duration::ZERO).await;
        // A job that holds the calling thread past the bound (as a read
        // from a cold disk would).
        let slow = queue
            .run_fast(|_| {
                let t = Instant::now();
                while t.elapsed() <= INLINE_SLOW * 2 {
                    std::hint::spin_loop();
                }
                Ok(thread_name())
            })
            .await
            .unwrap();
        assert_ne!(slow, "test-worker-0");
        assert!(queue.pool().inline_paused());
        let next = queue.run_fast(|_| Ok(thread_name())).await.unwrap();
        // Still paused after the call, so paused during it (a loaded
        // machine may have let the pause run out before the call).
        if queue.pool().inline_paused() {
            assert_eq!(next, "test-worker-0");
        }
        // Once the pause is over, jobs run inline again (pretend it is over).
        queue.pool().inline_paused_until.store(1, Ordering::Relaxed);
        assert!(!queue.pool().inline_paused());
        assert_ne!(
            queue.run_fast(|_| Ok(thread_name())).await.unwrap(),
            "test-worker-0"
        );
    }
}
