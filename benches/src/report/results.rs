//! Every result of one run, indexed by typed ids, and the ratios between them.

use std::collections::BTreeMap;

use super::http::{self, HttpHandler, HttpPath, HttpPoint, HttpResults};
use super::id::{
    self, Baseline, Connection, Level, Op, Peer, RawPath, RequestPath, ResultId, Sequence, Store,
    UnknownId,
};
use crate::stats::{Record, Summary};
use crate::{Shape, Target};

/// One timed task (population, cleanup, delete-by-user).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    /// What was timed (`cleanup`, `delete_user_100`, `populate`).
    pub what: String,
    /// The store.
    pub id: ResultId,
    /// Items involved.
    pub items: usize,
    /// Median seconds.
    pub seconds: f64,
    /// Free-form detail.
    pub note: String,
}

/// How p50 latency grew between the smallest and the largest scale level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    /// The smallest level measured (live sessions).
    pub from: usize,
    /// The largest level measured.
    pub to: usize,
    /// p50 at `to` over p50 at `from`.
    pub ratio: f64,
}

/// Every result of one run, indexed.
#[derive(Debug, Default)]
pub struct Results {
    /// Single-task operations: (operation, payload, id) → summary.
    pub ops: BTreeMap<(Op, String, ResultId), Summary>,
    /// Concurrency points: (operation, id, tasks) → summary.
    pub concurrency: BTreeMap<(Op, ResultId, usize), Summary>,
    /// Request sequences: (runtime shape, sequence, path, tasks) → summary.
    pub requests: BTreeMap<(Shape, Sequence, RequestPath, usize), Summary>,
    /// HTTP points: (backend, path, handler, clients) → point.
    pub http: HttpResults,
    /// Scale points: (operation, id, live sessions) → summary.
    pub scale: BTreeMap<(Op, ResultId, usize), Summary>,
    /// Timed tasks, in the order recorded.
    pub tasks: Vec<TaskRun>,
    /// What could not be measured (free-form label → reason).
    pub missing: BTreeMap<String, String>,
}

impl Results {
    /// Indexes records, parsing every operation and id.
    ///
    /// # Errors
    /// [`UnknownId`] for an operation or id of a shape the report does not
    /// know (the labels of `missing` records are free-form and not parsed).
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Result<Self, UnknownId> {
        let mut r = Results::default();
        for rec in records {
            match rec {
                Record::Op {
                    op,
                    payload,
                    id,
                    summary,
                } => {
                    let key = (Op::parse(&op)?, payload, ResultId::parse(&id)?);
                    r.ops.insert(key, summary);
                }
                Record::Concurrency {
                    op,
                    id,
                    tasks,
                    summary,
                } => {
                    let key = (Op::parse(&op)?, ResultId::parse(&id)?, tasks);
                    r.concurrency.insert(key, summary);
                }
                Record::Request {
                    shape,
                    sequence,
                    id,
                    tasks,
                    summary,
                } => {
                    let key = (
                        id::parse_shape(&shape)?,
                        Sequence::parse(&sequence)?,
                        RequestPath::parse(&id)?,
                        tasks,
                    );
                    r.requests.insert(key, summary);
                }
                Record::Http {
                    backend,
                    path,
                    handler,
                    clients,
                    errors,
                    summary,
                    cost,
                    rounds,
                } => {
                    let key = (
                        http::parse_target(&backend)?,
                        HttpPath::parse(&path)?,
                        HttpHandler::parse(&handler)?,
                        clients,
                    );
                    r.http.insert(
                        key,
                        HttpPoint {
                            summary,
                            errors,
                            cost,
                            rounds,
                        },
                    );
                }
                Record::Scale {
                    op,
                    id,
                    live,
                    summary,
                } => {
                    let key = (Op::parse(&op)?, ResultId::parse(&id)?, live);
                    r.scale.insert(key, summary);
                }
                Record::Task {
                    what,
                    id,
                    items,
                    seconds,
                    note,
                } => r.tasks.push(TaskRun {
                    what,
                    id: ResultId::parse(&id)?,
                    items,
                    seconds,
                    note,
                }),
                Record::Missing { id, reason } => {
                    r.missing.insert(id, reason);
                }
                Record::Machine { .. } => {}
            }
        }
        Ok(r)
    }

    /// The runtime shapes with request results, in report order.
    pub fn request_shapes(&self) -> Vec<Shape> {
        let mut shapes: Vec<_> = self.requests.keys().map(|(s, ..)| *s).collect();
        shapes.dedup();
        shapes
    }

    /// The paths measured for `sequence` in `shape`, in report order.
    pub fn request_paths(&self, shape: Shape, sequence: Sequence) -> Vec<RequestPath> {
        let mut paths: Vec<_> = self
            .requests
            .keys()
            .filter(|(s, q, ..)| *s == shape && *q == sequence)
            .map(|(_, _, p, _)| *p)
            .collect();
        paths.dedup();
        paths
    }

    /// The task counts of the request sequences, ascending.
    pub fn request_levels(&self) -> Vec<usize> {
        let mut levels: Vec<_> = self.requests.keys().map(|(.., t)| *t).collect();
        levels.sort_unstable();
        levels.dedup();
        levels
    }

    /// One request point.
    pub fn request(
        &self,
        shape: Shape,
        sequence: Sequence,
        path: RequestPath,
        tasks: usize,
    ) -> Option<&Summary> {
        self.requests.get(&(shape, sequence, path, tasks))
    }

    /// p50 of our path over the peer's, same shape, sequence and tasks.
    pub fn peer_ratio(
        &self,
        shape: Shape,
        sequence: Sequence,
        peer: Peer,
        tasks: usize,
    ) -> Option<f64> {
        let ours = self.request(shape, sequence, peer.ours(), tasks)?;
        let theirs = self.request(shape, sequence, RequestPath::Peer(peer), tasks)?;
        (theirs.p50_ns > 0.0).then(|| ours.p50_ns / theirs.p50_ns)
    }

    /// p50 of `raw`'s target through the manager over `raw`'s p50, same
    /// shape, sequence and tasks.
    pub fn raw_ratio(
        &self,
        shape: Shape,
        sequence: Sequence,
        raw: RawPath,
        tasks: usize,
    ) -> Option<f64> {
        let ours = self.request(shape, sequence, RequestPath::Manager(raw.target()), tasks)?;
        let base = self.request(shape, sequence, RequestPath::Raw(raw), tasks)?;
        (base.p50_ns > 0.0).then(|| ours.p50_ns / base.p50_ns)
    }

    /// The peers measured, in report order.
    pub fn peers(&self) -> Vec<Peer> {
        Peer::ALL
            .into_iter()
            .filter(|p| {
                self.requests
                    .keys()
                    .any(|(_, _, path, _)| *path == RequestPath::Peer(*p))
            })
            .collect()
    }

    /// The summary of one single-task result.
    pub fn op(&self, op: Op, payload: &str, id: impl Into<ResultId>) -> Option<&Summary> {
        self.ops.get(&(op, payload.to_owned(), id.into()))
    }

    /// Payload labels measured, bytes before KiB.
    pub fn payloads(&self) -> Vec<String> {
        let mut p: Vec<String> = self.ops.keys().map(|k| k.1.clone()).collect();
        p.sort_by_key(|s| (s.ends_with("KiB"), s.clone()));
        p.dedup();
        p
    }

    /// The ids measured for `op` with `payload`, in report order.
    pub fn ids_of(&self, op: Op, payload: &str) -> Vec<ResultId> {
        self.ops
            .keys()
            .filter(|k| k.0 == op && k.1 == payload)
            .map(|k| k.2)
            .collect()
    }

    /// p50 of `op` on `store` over the p50 of its raw baseline (the client's
    /// read or write, PostgreSQL and MySQL on a dedicated connection); `None` for the
    /// in-memory store or when either is missing.
    pub fn ratio(&self, op: Op, payload: &str, store: Store) -> Option<f64> {
        let base = Baseline::of(store.target, op.access(), Connection::Dedicated)?;
        self.ratio_to(op, payload, store, base)
    }

    /// p50 of `op` on `id` over the p50 of `base`, measured in the
    /// backend-level group of the same kind (read or write).
    pub fn ratio_to(
        &self,
        op: Op,
        payload: &str,
        id: impl Into<ResultId>,
        base: Baseline,
    ) -> Option<f64> {
        let b = self.op(op.baseline_group(), payload, base)?;
        let s = self.op(op, payload, id)?;
        Some(s.p50_ns / b.p50_ns)
    }

    /// The encryption wrapper's own p50 cost for `op` (`load` or `save`) at
    /// `level`: `memory+enc` minus `memory`.
    pub fn wrapper_cost(&self, op: Op, payload: &str, level: Level) -> Option<f64> {
        let op = match level {
            Level::Backend => op.backend_level(),
            Level::Manager => op,
        };
        let memory = Store::plain(Target::Memory);
        Some(
            self.op(op, payload, memory.encrypted())?.p50_ns - self.op(op, payload, memory)?.p50_ns,
        )
    }

    /// p50 of one raw AES-256-GCM encryption and decryption of the payload.
    pub fn aes_round_trip(&self, payload: &str) -> Option<f64> {
        Some(
            self.op(Op::BackendLoad, payload, Baseline::AesGcmEncDec)?
                .p50_ns,
        )
    }

    /// The wrapper's cost for a load plus a save over raw AES-GCM.
    pub fn wrapper_ratio(&self, payload: &str, level: Level) -> Option<f64> {
        let load = self.wrapper_cost(Op::Load, payload, level)?;
        let save = self.wrapper_cost(Op::Save, payload, level)?;
        Some((load + save) / self.aes_round_trip(payload)?)
    }

    /// Concurrency levels measured, ascending.
    pub fn concurrency_levels(&self) -> Vec<usize> {
        let mut l: Vec<usize> = self.concurrency.keys().map(|k| k.2).collect();
        l.sort_unstable();
        l.dedup();
        l
    }

    /// The ids measured under concurrency for `op`, in report order.
    pub fn concurrency_ids(&self, op: Op) -> Vec<ResultId> {
        let mut ids: Vec<ResultId> = self
            .concurrency
            .keys()
            .filter(|k| k.0 == op)
            .map(|k| k.1)
            .collect();
        ids.dedup();
        ids
    }

    /// One concurrency point.
    pub fn at_concurrency(
        &self,
        op: Op,
        id: impl Into<ResultId>,
        tasks: usize,
    ) -> Option<&Summary> {
        self.concurrency.get(&(op, id.into(), tasks))
    }

    /// Throughput of `store` at `tasks` over that of its raw baseline (the
    /// client's read or write, PostgreSQL and MySQL through a pool like the store's).
    pub fn throughput_ratio(&self, op: Op, store: Store, tasks: usize) -> Option<f64> {
        let base = Baseline::of(store.target, op.access(), Connection::Pool)?;
        let s = self.at_concurrency(op, store, tasks)?;
        let b = self.at_concurrency(op, base, tasks)?;
        Some(s.ops_per_sec / b.ops_per_sec)
    }

    /// Scale levels measured, ascending.
    pub fn scale_levels(&self) -> Vec<usize> {
        let mut l: Vec<usize> = self.scale.keys().map(|k| k.2).collect();
        l.sort_unstable();
        l.dedup();
        l
    }

    /// One scale point of a target (backend level).
    pub fn at_scale(&self, op: Op, target: Target, live: usize) -> Option<&Summary> {
        self.scale.get(&(op, target.into(), live))
    }

    /// p50 growth of `op` on `target` from its smallest to its largest
    /// measured level; `None` with fewer than two levels.
    pub fn growth(&self, op: Op, target: Target) -> Option<Growth> {
        let id = ResultId::from(target);
        let mut levels = self
            .scale
            .iter()
            .filter(|(k, _)| k.0 == op && k.1 == id)
            .map(|(k, s)| (k.2, s.p50_ns));
        let first = levels.next()?;
        let last = levels.next_back()?;
        Some(Growth {
            from: first.0,
            to: last.0,
            ratio: last.1 / first.1,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A summary with this p50 (p99 twice that, throughput from the mean).
    pub fn summary(p50_ns: f64) -> Summary {
        Summary {
            n: 100,
            p50_ns,
            p99_ns: 2.0 * p50_ns,
            mean_ns: p50_ns,
            ops_per_sec: 1e9 / p50_ns,
        }
    }

    /// An op record.
    pub fn op(op: &str, payload: &str, id: &str, p50: f64) -> Record {
        Record::Op {
            op: op.into(),
            payload: payload.into(),
            id: id.into(),
            summary: summary(p50),
        }
    }

    /// A concurrency record with this throughput.
    pub fn conc(op: &str, id: &str, tasks: usize, ops_per_sec: f64) -> Record {
        Record::Concurrency {
            op: op.into(),
            id: id.into(),
            tasks,
            summary: Summary {
                ops_per_sec,
                ..summary(1_000.0)
            },
        }
    }

    /// A request-sequence record in the `idle` shape with the given p50
    /// and p99 (ns).
    pub fn request(sequence: &str, id: &str, tasks: usize, p50: f64, p99: f64) -> Record {
        request_in("idle", sequence, id, tasks, p50, p99)
    }

    /// A request-sequence record in `shape` with the given p50 and p99 (ns).
    pub fn request_in(
        shape: &str,
        sequence: &str,
        id: &str,
        tasks: usize,
        p50: f64,
        p99: f64,
    ) -> Record {
        Record::Request {
            shape: shape.into(),
            sequence: sequence.into(),
            id: id.into(),
            tasks,
            summary: Summary {
                p99_ns: p99,
                ..summary(p50)
            },
        }
    }

    /// A scale record.
    pub fn scale(op: &str, id: &str, live: usize, p50: f64) -> Record {
        Record::Scale {
            op: op.into(),
            id: id.into(),
            live,
            summary: summary(p50),
        }
    }

    /// Indexes records that must parse.
    pub fn results(records: Vec<Record>) -> Results {
        Results::from_records(records).expect("known ids")
    }

    #[test]
    fn an_unknown_id_or_operation_is_an_error() {
        let e = Results::from_records([op("load", "200B", "redis+zstd", 1.0)]).unwrap_err();
        assert_eq!(e.id, "redis+zstd");
        let e = Results::from_records([conc("touch", "redis", 1, 1.0)]).unwrap_err();
        assert_eq!(e.id, "touch");
        // Missing records name what failed in free form.
        let r = results(vec![Record::Missing {
            id: "backend_load-200B/raw-redis-GET".into(),
            reason: "timeout".into(),
        }]);
        assert_eq!(r.missing.len(), 1);
    }

    #[test]
    fn ratios_use_the_raw_client_of_the_same_kind() {
        let r = results(vec![
            op("backend_load", "200B", "raw-redis-GET", 100.0),
            op("backend_save", "200B", "raw-redis-SET-PX", 200.0),
            op("backend_load", "200B", "raw-pg-conn-SELECT", 50.0),
            op("backend_load", "200B", "raw-pg-pool-SELECT", 80.0),
            op("load", "200B", "redis", 150.0),
            op("list_user", "200B", "redis+enc", 300.0),
            op("rotate", "200B", "redis", 500.0),
            op("load", "200B", "postgres", 100.0),
            op("load", "200B", "memory", 1.0),
        ]);
        let redis = Store::plain(Target::Redis);
        assert_eq!(r.ratio(Op::Load, "200B", redis), Some(1.5));
        assert_eq!(r.ratio(Op::ListUser, "200B", redis.encrypted()), Some(3.0));
        assert_eq!(r.ratio(Op::Rotate, "200B", redis), Some(2.5));
        assert_eq!(
            r.ratio(Op::Load, "200B", Store::plain(Target::Postgres)),
            Some(2.0)
        );
        assert_eq!(
            r.ratio(Op::Load, "200B", Store::plain(Target::Memory)),
            None
        );
        assert_eq!(r.ratio(Op::Load, "4KiB", redis), None);
    }

    #[test]
    fn wrapper_ratio_is_both_deltas_over_one_aes_round_trip() {
        let r = results(vec![
            op("backend_load", "200B", "memory", 100.0),
            op("backend_load", "200B", "memory+enc", 400.0),
            op("backend_save", "200B", "memory", 200.0),
            op("backend_save", "200B", "memory+enc", 500.0),
            op("backend_load", "200B", "raw-aes-gcm-enc+dec", 400.0),
        ]);
        assert_eq!(
            r.wrapper_cost(Op::Load, "200B", Level::Backend),
            Some(300.0)
        );
        assert_eq!(r.wrapper_ratio("200B", Level::Backend), Some(1.5));
        assert_eq!(r.wrapper_ratio("200B", Level::Manager), None);
    }

    #[test]
    fn payloads_ids_and_levels_come_out_in_report_order() {
        let r = results(vec![
            op("load", "4KiB", "redis", 1.0),
            op("load", "200B", "raw-sled-get", 1.0),
            op("load", "200B", "redis", 1.0),
            op("load", "200B", "sled+enc", 1.0),
            op("load", "200B", "sled", 1.0),
            conc("load", "raw-redis-GET", 64, 1.0),
            conc("load", "redis/backend", 8, 1.0),
            conc("load", "redis", 64, 1.0),
        ]);
        assert_eq!(r.payloads(), ["200B", "4KiB"]);
        let ids: Vec<String> = r
            .ids_of(Op::Load, "200B")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ids, ["sled", "sled+enc", "redis", "raw-sled-get"]);
        let ids: Vec<String> = r
            .concurrency_ids(Op::Load)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ids, ["redis", "redis/backend", "raw-redis-GET"]);
        assert_eq!(r.concurrency_levels(), [8, 64]);
    }

    #[test]
    fn throughput_against_postgres_uses_the_pool_baseline() {
        let r = results(vec![
            conc("save", "postgres", 8, 300.0),
            conc("save", "raw-pg-pool-upsert", 8, 200.0),
            conc("save", "raw-pg-conn-upsert", 8, 100.0),
        ]);
        let pg = Store::plain(Target::Postgres);
        assert_eq!(r.throughput_ratio(Op::Save, pg, 8), Some(1.5));
        assert_eq!(r.throughput_ratio(Op::Save, pg.direct(), 8), None);
    }

    #[test]
    fn growth_needs_two_levels() {
        let r = results(vec![
            scale("load", "sled", 1_000, 100.0),
            scale("load", "sled", 1_000_000, 350.0),
            scale("load", "sled", 100_000, 200.0),
            scale("load", "redis", 1_000, 100.0),
        ]);
        assert_eq!(
            r.growth(Op::Load, Target::Sled),
            Some(Growth {
                from: 1_000,
                to: 1_000_000,
                ratio: 3.5
            })
        );
        assert_eq!(r.growth(Op::Load, Target::Redis), None);
        assert_eq!(r.scale_levels(), [1_000, 100_000, 1_000_000]);
    }
}
