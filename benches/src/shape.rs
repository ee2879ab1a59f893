//! The runtime shapes the request benchmark runs in: the harness's own
//! runtime with nothing else to do, and a small runtime shared with
//! CPU-bound tasks, the way a web server's runtime is shared with handlers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// CPU-bound tasks running next to the measured ones in [`Shape::Busy`].
pub const BUSY_TASKS: usize = 2;

/// How long each busy task spins before it yields to the scheduler.
pub const BUSY_SPIN: Duration = Duration::from_micros(50);

/// Workers of the [`Shape::Busy`] runtime.
pub const BUSY_WORKERS: usize = 2;

/// A runtime shape of the request benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// `idle`: the harness's multi-thread runtime ([`crate::runtime`], one
    /// worker per core) with nothing else running.
    Idle,
    /// `busy`: a multi-thread runtime of [`BUSY_WORKERS`] workers where
    /// [`BUSY_TASKS`] CPU-bound tasks spin for [`BUSY_SPIN`] and yield, in a
    /// loop, for the whole measurement.
    Busy,
}

impl Shape {
    /// Every shape, in run and report order.
    pub const ALL: [Shape; 2] = [Shape::Idle, Shape::Busy];

    /// The name the benchmark writes.
    pub fn id(self) -> &'static str {
        match self {
            Shape::Idle => "idle",
            Shape::Busy => "busy",
        }
    }

    /// How the report describes it.
    pub fn title(self) -> &'static str {
        match self {
            Shape::Idle => "idle runtime (multi-thread, one worker per core, nothing else running)",
            Shape::Busy => {
                "busy runtime (multi-thread, 2 workers, 2 CPU-bound tasks spinning 50 µs between yields)"
            }
        }
    }

    /// Parses a shape name (`None` for another name).
    pub fn parse(s: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|x| x.id() == s)
    }

    /// A fresh runtime of this shape.
    ///
    /// # Panics
    /// If the runtime cannot be built.
    pub fn runtime(self) -> tokio::runtime::Runtime {
        match self {
            Shape::Idle => crate::runtime(),
            Shape::Busy => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(BUSY_WORKERS)
                .enable_all()
                .build()
                .expect("tokio runtime"),
        }
    }

    /// Starts this shape's background load on the current runtime (none for
    /// [`Shape::Idle`]). Stop it with [`Load::stop`].
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start_load(self) -> Load {
        let n = match self {
            Shape::Idle => 0,
            Shape::Busy => BUSY_TASKS,
        };
        Load::spin(n, BUSY_SPIN)
    }
}

/// CPU-bound tasks running until [`Load::stop`].
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Spawns `tasks` tasks that each spin for `spin`, then yield, until
    /// stopped.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spin(tasks: usize, spin: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let tasks = (0..tasks)
            .map(|_| {
                let (stop, rounds) = (stop.clone(), rounds.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        while t.elapsed() < spin {
                            std::hint::spin_loop();
                        }
                        rounds.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            rounds,
            tasks,
        }
    }

    /// Spin rounds completed so far, over all tasks.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Stops the tasks and waits for them; returns the rounds they completed.
    ///
    /// # Panics
    /// If a task panicked.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("busy task");
        }
        self.rounds.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Shape::ALL {
            assert_eq!(Shape::parse(s.id()), Some(s));
        }
        assert_eq!(Shape::parse("criterion"), None);
    }

    #[test]
    fn busy_load_runs_next_to_other_tasks_and_stops() {
        let rt = Shape::Busy.runtime();
        rt.block_on(async {
            let load = Shape::Busy.start_load();
            // Other tasks still make progress while the spinners run.
            let other = tokio::spawn(async {
                for _ in 0..100 {
                    tokio::task::yield_now().await;
                }
                7
            });
            assert_eq!(other.await.expect("task"), 7);
            while load.rounds() < 20 {
                tokio::task::yield_now().await;
            }
            let rounds = load.stop().await;
            assert!(rounds >= 20, "{rounds}");
        });
    }

    #[test]
    fn idle_shape_adds_no_load() {
        let rt = Shape::Idle.runtime();
        rt.block_on(async {
            let load = Shape::Idle.start_load();
            assert!(load.tasks.is_empty());
            assert_eq!(load.stop().await, 0);
        });
    }
}
