//! How long and how large a run is.

use std::path::PathBuf;
use std::time::Duration;

/// The size of a benchmark run, from the `BENCH_MODE` environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A smoke run for CI: every benchmark executes a few times; speed is not
    /// judged and results go to `target/` only.
    Ci,
    /// A few minutes: short measurements, scale up to 10^4 sessions.
    Quick,
    /// The measured run behind `docs/benchmarks.md`.
    Full,
}

impl Mode {
    /// `BENCH_MODE` (`ci`, `quick` or `full`); `quick` when unset.
    ///
    /// # Panics
    /// For any other value.
    pub fn from_env() -> Self {
        match std::env::var("BENCH_MODE").as_deref() {
            Ok("ci") => Mode::Ci,
            Ok("full") => Mode::Full,
            Ok("quick") | Err(_) => Mode::Quick,
            Ok(other) => panic!("BENCH_MODE must be ci, quick or full, not {other:?}"),
        }
    }

    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ci => "ci",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    /// Where the JSON results go: `BENCH_OUT`, or `target/bench-report/<mode>`.
    pub fn out_dir(self) -> PathBuf {
        let dir = std::env::var_os("BENCH_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/bench-report")
                    .join(self.name())
            });
        std::fs::create_dir_all(&dir).expect("create the benchmark output directory");
        dir
    }

    /// Criterion warm-up time per benchmark.
    pub fn warm_up(self) -> Duration {
        match self {
            Mode::Ci => Duration::from_millis(10),
            Mode::Quick => Duration::from_millis(50),
            Mode::Full => Duration::from_millis(300),
        }
    }

    /// Criterion measurement time per benchmark.
    pub fn measurement(self) -> Duration {
        match self {
            Mode::Ci => Duration::from_millis(20),
            Mode::Quick => Duration::from_millis(200),
            Mode::Full => Duration::from_millis(1200),
        }
    }

    /// Criterion samples per benchmark (10 is criterion's minimum).
    pub fn samples(self) -> usize {
        match self {
            Mode::Ci | Mode::Quick => 10,
            Mode::Full => 30,
        }
    }

    /// Duration of one concurrency point.
    pub fn point_duration(self) -> Duration {
        match self {
            Mode::Ci => Duration::from_millis(30),
            Mode::Quick => Duration::from_millis(300),
            Mode::Full => Duration::from_millis(800),
        }
    }

    /// Duration of one point of the request benchmark (shorter than
    /// [`Mode::point_duration`]: it has two runtime shapes and more paths).
    pub fn request_point(self) -> Duration {
        match self {
            Mode::Ci => Duration::from_millis(30),
            Mode::Quick => Duration::from_millis(200),
            Mode::Full => Duration::from_millis(400),
        }
    }

    /// Concurrency levels (tasks).
    pub fn concurrency(self) -> &'static [usize] {
        match self {
            Mode::Ci => &[1, 8],
            Mode::Quick | Mode::Full => &[1, 8, 64, 256],
        }
    }

    /// Live-session counts of the scale runs.
    pub fn scale_levels(self) -> &'static [usize] {
        match self {
            Mode::Ci => &[100, 1_000],
            Mode::Quick => &[1_000, 10_000],
            Mode::Full => &[1_000, 100_000, 1_000_000],
        }
    }

    /// The live-session count for the PostgreSQL scale run's largest level
    /// (the other levels are shared).
    pub fn postgres_max_scale(self) -> usize {
        *self.scale_levels().last().expect("levels")
    }

    /// Expired sessions for the cleanup measurement.
    pub fn cleanup_size(self) -> usize {
        match self {
            Mode::Ci => 500,
            Mode::Quick => 10_000,
            Mode::Full => 100_000,
        }
    }

    /// Timed operations per scale point (upper bound; also bounded in time).
    pub fn scale_ops(self) -> usize {
        match self {
            Mode::Ci => 50,
            Mode::Quick => 500,
            Mode::Full => 1_500,
        }
    }
}
