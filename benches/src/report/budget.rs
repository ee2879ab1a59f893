//! The performance budgets the report judges, as data.

use std::fmt;

use super::id::{Baseline, Level, Op, RawPath, RequestPath, Sequence, Store};
use super::results::Results;
use crate::Target;

/// The payload of the concurrency runs.
pub const CONCURRENCY_PAYLOAD: &str = "200B";

/// Which side of the limit passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The measurement must not exceed the limit.
    AtMost,
    /// The measurement must reach the limit.
    AtLeast,
}

impl Bound {
    /// `≤` or `≥`.
    pub fn symbol(self) -> &'static str {
        match self {
            Bound::AtMost => "≤",
            Bound::AtLeast => "≥",
        }
    }

    /// Whether `measured` passes `limit`.
    pub fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Bound::AtMost => measured <= limit,
            Bound::AtLeast => measured >= limit,
        }
    }
}

/// What a budget measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// For each payload: p50 of `op` (`load` or `save`) on `target` over the
    /// p50 of `baseline` (`None`: the target's raw client, PostgreSQL on a
    /// dedicated connection), at the backend level and through the manager.
    Latency {
        /// The store.
        target: Target,
        /// The manager operation (its backend-level counterpart is judged too).
        op: Op,
        /// Another baseline than the target's raw client.
        baseline: Option<Baseline>,
    },
    /// For each payload: the encryption wrapper's Δload + Δsave on the
    /// in-memory store over one raw AES-256-GCM round trip.
    EncryptionCost,
    /// Throughput of `op` on `target` at `tasks` concurrent tasks over that of
    /// its raw client (`/backend` is the backend level).
    Throughput {
        /// The store.
        target: Target,
        /// `load` or `save`.
        op: Op,
        /// Concurrent tasks.
        tasks: usize,
    },
    /// For every target with two or more scale levels: p50 of `op` at the
    /// largest level over p50 at the smallest (backend level only).
    ScaleGrowth {
        /// `load` or `save`.
        op: Op,
    },
    /// For every runtime shape measured: p50 of `sequence` through the
    /// manager of `raw`'s target over `raw`'s p50 (the same statements
    /// without the store), at `tasks` tasks, in the request benchmark.
    Request {
        /// The baseline, and so the target.
        raw: RawPath,
        /// The request sequence.
        sequence: Sequence,
        /// Concurrent tasks.
        tasks: usize,
    },
}

impl Measure {
    /// Whether the budget is judged once per payload.
    pub fn per_payload(self) -> bool {
        matches!(self, Measure::Latency { .. } | Measure::EncryptionCost)
    }
}

/// A target the report judges: `subject bound limit× versus`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// What is measured, in words (`Redis load`).
    pub subject: &'static str,
    /// Which side of the limit passes.
    pub bound: Bound,
    /// The limit, a ratio.
    pub limit: f64,
    /// What it is compared with, in words (`raw GET`).
    pub versus: &'static str,
    /// How the ratio is computed.
    pub measure: Measure,
    /// How the ratio is computed, in words.
    pub how: &'static str,
}

const VS_RAW: &str = "p50 / p50 of the raw baseline";

const fn latency(
    subject: &'static str,
    limit: f64,
    versus: &'static str,
    target: Target,
    op: Op,
) -> Budget {
    Budget {
        subject,
        bound: Bound::AtMost,
        limit,
        versus,
        measure: Measure::Latency {
            target,
            op,
            baseline: None,
        },
        how: VS_RAW,
    }
}

/// Every budget, in report order (per-payload ones are listed per payload,
/// the others after them).
pub const BUDGETS: &[Budget] = &[
    latency("Redis load", 1.1, "raw GET", Target::Redis, Op::Load),
    latency("Redis save", 1.15, "raw SET PX", Target::Redis, Op::Save),
    latency(
        "PostgreSQL load",
        1.5,
        "raw PK SELECT, dedicated connection",
        Target::Postgres,
        Op::Load,
    ),
    latency(
        "PostgreSQL save",
        1.2,
        "raw upsert, dedicated connection",
        Target::Postgres,
        Op::Save,
    ),
    latency(
        "MySQL load",
        1.5,
        "raw PK SELECT, dedicated connection",
        Target::Mysql,
        Op::Load,
    ),
    latency(
        "MySQL save",
        1.2,
        "raw upsert, dedicated connection",
        Target::Mysql,
        Op::Save,
    ),
    latency(
        "SQLite load",
        3.0,
        "raw rusqlite SELECT on the calling thread",
        Target::Sqlite,
        Op::Load,
    ),
    latency(
        "SQLite save",
        3.0,
        "raw rusqlite upsert on the calling thread",
        Target::Sqlite,
        Op::Save,
    ),
    latency("sled load", 2.0, "raw get", Target::Sled, Op::Load),
    Budget {
        subject: "SQLite save",
        bound: Bound::AtMost,
        limit: 3.0,
        versus: "the store's own UPDATE run by rusqlite on the calling thread",
        measure: Measure::Latency {
            target: Target::Sqlite,
            op: Op::Save,
            baseline: Some(Baseline::RusqliteStoreUpdate),
        },
        how: "p50 / p50 of `raw-rusqlite-store-UPDATE` (same schema, indexes and statement)",
    },
    Budget {
        subject: "Encryption wrapper",
        bound: Bound::AtMost,
        limit: 1.3,
        versus: "raw AES-256-GCM encrypt+decrypt",
        measure: Measure::EncryptionCost,
        how: "(Δload + Δsave of memory+enc over memory) / p50(raw AES-GCM enc+dec)",
    },
    Budget {
        subject: "Redis load throughput",
        bound: Bound::AtLeast,
        limit: 0.9,
        versus: "raw GET throughput",
        measure: Measure::Throughput {
            target: Target::Redis,
            op: Op::Load,
            tasks: 64,
        },
        how: "ops/s / ops/s",
    },
    Budget {
        subject: "SQLite load → save",
        bound: Bound::AtMost,
        limit: 1.5,
        versus: "the same two statements with rusqlite on the calling thread",
        measure: Measure::Request {
            raw: RawPath::Rusqlite,
            sequence: Sequence::LoadSave,
            tasks: 1,
        },
        how: "p50 of `sqlite (manager)` / p50 of `raw-rusqlite` in the request benchmark \
              (the store's load `SELECT` and save `UPDATE` on its own table, 1 KiB)",
    },
    Budget {
        subject: "load latency",
        bound: Bound::AtMost,
        limit: 1.5,
        versus: "that",
        measure: Measure::ScaleGrowth { op: Op::Load },
        how: "p50 / p50 (backend level)",
    },
];

/// Whether a measurement keeps its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Met,
    /// Beyond the limit.
    Missed,
    /// Not measured in this run.
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::Unknown => "—",
        })
    }
}

/// One judged row: a budget applied to one payload or one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The row's description.
    pub what: String,
    /// The backend-level measurement (or the only one).
    pub backend: Option<f64>,
    /// Through the `SessionManager`, where that differs.
    pub manager: Option<f64>,
    /// The budget judged.
    pub budget: Budget,
}

impl Budget {
    /// The verdict on a measurement.
    pub fn verdict(&self, measured: Option<f64>) -> Verdict {
        match measured {
            None => Verdict::Unknown,
            Some(m) if self.bound.holds(m, self.limit) => Verdict::Met,
            Some(_) => Verdict::Missed,
        }
    }

    /// `Redis load ≤ 1.1× raw GET`, with the context in between or after.
    fn describe(&self, before: &str, middle: &str, after: &str) -> String {
        format!(
            "{before}{}{middle} {} {}× {}{after}",
            self.subject,
            self.bound.symbol(),
            self.limit,
            self.versus
        )
    }

    /// The rows of a per-payload budget for `payload` (none for the others).
    pub fn check_payload(&self, r: &Results, payload: &str) -> Option<Check> {
        let (backend, manager) = match self.measure {
            Measure::Latency {
                target,
                op,
                baseline,
            } => {
                let store = Store::plain(target);
                let at = |op: Op| match baseline {
                    Some(b) => r.ratio_to(op, payload, store, b),
                    None => r.ratio(op, payload, store),
                };
                (at(op.backend_level()), at(op))
            }
            Measure::EncryptionCost => (
                r.wrapper_ratio(payload, Level::Backend),
                r.wrapper_ratio(payload, Level::Manager),
            ),
            Measure::Throughput { .. } | Measure::ScaleGrowth { .. } | Measure::Request { .. } => {
                return None
            }
        };
        Some(Check {
            what: self.describe("", "", &format!(" ({payload})")),
            backend,
            manager,
            budget: *self,
        })
    }

    /// The rows of a budget judged once per run (none for per-payload ones).
    pub fn check_run(&self, r: &Results) -> Vec<Check> {
        match self.measure {
            Measure::Throughput { target, op, tasks } => {
                let store = Store::plain(target);
                vec![Check {
                    what: self.describe(
                        "",
                        &format!(" at {tasks} tasks"),
                        &format!(" ({CONCURRENCY_PAYLOAD})"),
                    ),
                    backend: r.throughput_ratio(op, store.direct(), tasks),
                    manager: r.throughput_ratio(op, store, tasks),
                    budget: *self,
                }]
            }
            Measure::ScaleGrowth { op } => Target::ALL
                .into_iter()
                .filter_map(|target| {
                    let g = r.growth(op, target)?;
                    Some(Check {
                        what: self.describe(
                            &format!("{}: ", target.id()),
                            &format!(" at {} sessions", g.to),
                            &format!(" at {}", g.from),
                        ),
                        backend: Some(g.ratio),
                        manager: None,
                        budget: *self,
                    })
                })
                .collect(),
            Measure::Request {
                raw,
                sequence,
                tasks,
            } => r
                .request_shapes()
                .into_iter()
                .filter(|&shape| {
                    r.request(shape, sequence, RequestPath::Raw(raw), tasks)
                        .is_some()
                })
                .map(|shape| Check {
                    what: self.describe(
                        "",
                        "",
                        &format!(" (`{}` shape, {tasks} task(s))", shape.id()),
                    ),
                    backend: None,
                    manager: r.raw_ratio(shape, sequence, raw, tasks),
                    budget: *self,
                })
                .collect(),
            Measure::Latency { .. } | Measure::EncryptionCost => Vec::new(),
        }
    }
}

/// Every row of `budgets` for this run: the per-payload ones for each
/// payload in turn, then the others.
pub fn checks(budgets: &[Budget], r: &Results) -> Vec<Check> {
    let mut rows: Vec<Check> = r
        .payloads()
        .iter()
        .flat_map(|p| budgets.iter().filter_map(|b| b.check_payload(r, p)))
        .collect();
    rows.extend(budgets.iter().flat_map(|b| b.check_run(r)));
    rows
}

#[cfg(test)]
mod tests {
    use super::super::results::tests::{conc, op, results, scale};
    use super::*;
    use crate::report::id::{Access, Connection};

    #[test]
    fn every_budget_reads_as_a_sentence_with_its_limit() {
        let texts: Vec<String> = BUDGETS.iter().map(|b| b.describe("", "", "")).collect();
        assert_eq!(texts[0], "Redis load ≤ 1.1× raw GET");
        assert_eq!(texts[1], "Redis save ≤ 1.15× raw SET PX");
        assert_eq!(
            texts[4],
            "MySQL load ≤ 1.5× raw PK SELECT, dedicated connection"
        );
        assert_eq!(
            texts[5],
            "MySQL save ≤ 1.2× raw upsert, dedicated connection"
        );
        assert_eq!(
            texts[6],
            "SQLite load ≤ 3× raw rusqlite SELECT on the calling thread"
        );
        assert_eq!(texts[11], "Redis load throughput ≥ 0.9× raw GET throughput");
        for b in BUDGETS {
            assert!(b.limit > 0.0 && !b.subject.is_empty() && !b.how.is_empty());
        }
    }

    #[test]
    fn every_latency_budget_has_a_baseline() {
        for b in BUDGETS {
            if let Measure::Latency {
                target,
                op,
                baseline,
            } = b.measure
            {
                assert!(matches!(op, Op::Load | Op::Save), "{}", b.subject);
                let access = op.access();
                assert!(
                    baseline.is_some()
                        || Baseline::of(target, access, Connection::Dedicated).is_some(),
                    "{}",
                    b.subject
                );
                if access == Access::Read {
                    assert_ne!(baseline, Some(Baseline::RusqliteStoreUpdate));
                }
            }
        }
    }

    #[test]
    fn verdicts_follow_the_bound() {
        let at_most = BUDGETS[0];
        assert_eq!(at_most.verdict(Some(1.1)), Verdict::Met);
        assert_eq!(at_most.verdict(Some(1.11)), Verdict::Missed);
        assert_eq!(at_most.verdict(None), Verdict::Unknown);
        let at_least = BUDGETS[11];
        assert_eq!(at_least.verdict(Some(0.9)), Verdict::Met);
        assert_eq!(at_least.verdict(Some(0.89)), Verdict::Missed);
        assert_eq!(Verdict::Missed.to_string(), "**missed**");
    }

    #[test]
    fn latency_budgets_judge_both_levels_per_payload() {
        let r = results(vec![
            op("backend_load", "200B", "raw-redis-GET", 100.0),
            op("backend_load", "200B", "redis", 105.0),
            op("load", "200B", "redis", 150.0),
            op("backend_save", "200B", "raw-rusqlite-store-UPDATE", 10.0),
            op("backend_save", "200B", "sqlite", 20.0),
        ]);
        let c = BUDGETS[0].check_payload(&r, "200B").unwrap();
        assert_eq!(c.what, "Redis load ≤ 1.1× raw GET (200B)");
        assert_eq!((c.backend, c.manager), (Some(1.05), Some(1.5)));
        assert_eq!(c.budget.verdict(c.backend), Verdict::Met);
        assert_eq!(c.budget.verdict(c.manager), Verdict::Missed);
        let c = BUDGETS[9].check_payload(&r, "200B").unwrap();
        assert_eq!((c.backend, c.manager), (Some(2.0), None));
        assert_eq!(BUDGETS[11].check_payload(&r, "200B"), None);
    }

    #[test]
    fn mysql_budgets_judge_against_the_dedicated_connection() {
        let r = results(vec![
            op("backend_load", "200B", "raw-mysql-conn-SELECT", 100.0),
            op("backend_load", "200B", "raw-mysql-pool-SELECT", 200.0),
            op("backend_load", "200B", "mysql", 120.0),
            op("load", "200B", "mysql", 160.0),
            op("backend_save", "200B", "raw-mysql-conn-upsert", 400.0),
            op("backend_save", "200B", "raw-mysql-pool-upsert", 300.0),
            op("backend_save", "200B", "mysql", 440.0),
            op("save", "200B", "mysql", 520.0),
        ]);
        let load = BUDGETS[4].check_payload(&r, "200B").unwrap();
        assert_eq!(
            load.what,
            "MySQL load ≤ 1.5× raw PK SELECT, dedicated connection (200B)"
        );
        assert_eq!((load.backend, load.manager), (Some(1.2), Some(1.6)));
        assert_eq!(load.budget.verdict(load.backend), Verdict::Met);
        assert_eq!(load.budget.verdict(load.manager), Verdict::Missed);
        let save = BUDGETS[5].check_payload(&r, "200B").unwrap();
        assert_eq!((save.backend, save.manager), (Some(1.1), Some(1.3)));
        assert_eq!(save.budget.verdict(save.backend), Verdict::Met);
        assert_eq!(save.budget.verdict(save.manager), Verdict::Missed);
    }

    #[test]
    fn run_budgets_judge_throughput_and_every_scaled_target() {
        let r = results(vec![
            op("load", "200B", "redis", 1.0),
            conc("load", "raw-redis-GET", 64, 100.0),
            conc("load", "redis", 64, 95.0),
            conc("load", "redis/backend", 64, 80.0),
            scale("load", "sled", 1_000, 100.0),
            scale("load", "sled", 1_000_000, 500.0),
            scale("load", "memory", 1_000, 100.0),
            scale("load", "memory", 1_000_000, 120.0),
            scale("load", "redis", 1_000, 100.0),
        ]);
        let rows = checks(BUDGETS, &r);
        let what: Vec<&str> = rows.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(what.len(), 11 + 1 + 2, "{what:#?}");
        assert_eq!(what[0], "Redis load ≤ 1.1× raw GET (200B)");
        assert_eq!(
            what[11],
            "Redis load throughput at 64 tasks ≥ 0.9× raw GET throughput (200B)"
        );
        assert_eq!(
            what[12],
            "memory: load latency at 1000000 sessions ≤ 1.5× that at 1000"
        );
        assert_eq!(
            what[13],
            "sled: load latency at 1000000 sessions ≤ 1.5× that at 1000"
        );
        assert_eq!(
            (rows[11].backend, rows[11].manager),
            (Some(0.8), Some(0.95))
        );
        assert_eq!((rows[13].backend, rows[13].manager), (Some(5.0), None));
    }
}
