//! Dedicated threads that own the SQLite connections.
//!
//! SQLite calls block, so they never run on the async runtime: one writer
//! thread owns the only write connection (SQLite allows one writer at a time
//! anyway, and a single owner makes every write path lock-free on our side),
//! and a small pool of reader threads each own a read connection (WAL lets
//! them read while the writer writes). Callers push a boxed closure onto the
//! pool's queue and get the result back through a `tokio::sync::oneshot`.
//!
//! # Why the hand-off spins briefly
//! A primary-key statement takes a few microseconds; waking a parked thread
//! costs more than that on each side (a `spawn_blocking` hop alone
//! takes tens of microseconds). So both sides of the
//! hand-off busy-wait for a bounded time before they park:
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
//! `with_spin_wait(Duration::ZERO)` turns both off (pure park/unpark hand-off).
//!
//! A caller that stops waiting (its future dropped) does not cancel a job
//! already queued: a write may still be applied, as with any remote database.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
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

/// Housekeeping a worker does on its own connection between jobs (the
/// writer's WAL checkpoints). Runs on the worker thread, never under the
/// queue lock, and never while a job is running.
pub(crate) trait Upkeep: Send + 'static {
    /// Runs after every job (after its reply was sent). Must be cheap when
    /// there is nothing to do.
    fn after_job(&mut self, db: &mut Db);
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
    /// busy-wait up to `spin` (see the module docs).
    pub(crate) fn new(spin: Duration) -> Self {
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
            pool.workers.fetch_add(1, Ordering::SeqCst);
            let _ = ready_tx.send(Ok(()));
            serve(Db { conn, sql }, &pool, upkeep);
        })
        .map_err(Error::backend_permanent)?;
    ready_rx.await.map_err(|_| stopped())?
}

fn serve(mut db: Db, pool: &Pool, mut upkeep: Option<Box<dyn Upkeep>>) {
    loop {
        let idle_after = upkeep.as_ref().and_then(|u| u.idle_after());
        match pool.next(idle_after) {
            Next::Job(job) => {
                // A panicking job drops its reply sender (its caller sees an
                // error); an open transaction rolls back as the panic
                // unwinds; the thread keeps serving.
                if catch_unwind(AssertUnwindSafe(|| job(&mut db, pool))).is_err() {
                    tracing::error!("a SQLite job panicked; the worker continues");
                }
                if let Some(u) = upkeep.as_mut() {
                    if catch_unwind(AssertUnwindSafe(|| u.after_job(&mut db))).is_err() {
                        tracing::error!("SQLite upkeep panicked; the worker continues");
                    }
                }
            }
            Next::Idle => {
                if let Some(u) = upkeep.as_mut() {
                    if catch_unwind(AssertUnwindSafe(|| u.idle(&mut db))).is_err() {
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
        let queue = Queue::new(spin);
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
}
