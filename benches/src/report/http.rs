//! The HTTP benchmark's results (`benches/http.rs`, issue 11) and its
//! section of the report: requests per second, p50 and p99 per stack,
//! handler, backend and client count, and the issue's two targets judged
//! on medians of the same run.
//!
//! - **At least as fast as tower-sessions**: for each backend, client count
//!   and handler, `ours` p50 ≤ `tower` p50 and `ours` req/s ≥ `tower` req/s.
//! - **The read path adds at most one round trip**: for each backend and
//!   client count, counted: `ours` makes at most as many backend calls per
//!   read request as the `none` load handler (a server without sessions
//!   whose handler makes one `SessionBackend::load`). Timed, shown beside
//!   it: `ours` read p50 − `none` read p50 against that handler's round
//!   trip (`none` load p50 − `none` read p50), one load called directly
//!   (`backend-load`), and the layer's CPU per read beyond the load.
//!   Results without the counts (older runs) are judged on the p50s.
//!
//! Per request, where measured: the whole process's CPU time, thread
//! switches and backend calls. Per round, where recorded: ours' and
//! tower-sessions' p50s paired round by round ([`PairedRounds`]), to show
//! how far a point's ratio stands from the run's noise.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::format::{maybe_ns, ns, ops, ratio};
use super::id::UnknownId;
use crate::stats::{HttpCost, HttpRound, Summary};
use crate::Target;

/// The stack a request went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpPath {
    /// `session-store-axum`'s layer and extractor.
    Ours,
    /// axum + tower-sessions over `session-store-tower-sessions`.
    Tower,
    /// No session layer.
    NoSession,
    /// `SessionBackend::load` called directly (no HTTP): one round trip.
    BackendLoad,
}

impl HttpPath {
    /// Every path, in report order.
    pub const ALL: [HttpPath; 4] = [
        HttpPath::Ours,
        HttpPath::Tower,
        HttpPath::NoSession,
        HttpPath::BackendLoad,
    ];

    /// The name the benchmark writes.
    pub fn id(self) -> &'static str {
        match self {
            HttpPath::Ours => "ours",
            HttpPath::Tower => "tower",
            HttpPath::NoSession => "none",
            HttpPath::BackendLoad => "backend-load",
        }
    }

    /// The row label in the report.
    pub fn label(self) -> &'static str {
        match self {
            HttpPath::Ours => "session-store-axum",
            HttpPath::Tower => "axum + tower-sessions + adapter",
            HttpPath::NoSession => "no session",
            HttpPath::BackendLoad => "one backend load (no HTTP)",
        }
    }

    /// Parses a written path.
    ///
    /// # Errors
    /// [`UnknownId`] for a name not in [`HttpPath::ALL`].
    pub fn parse(s: &str) -> Result<Self, UnknownId> {
        Self::ALL
            .into_iter()
            .find(|p| p.id() == s)
            .ok_or_else(|| UnknownId {
                kind: "http path",
                id: s.to_owned(),
            })
    }
}

/// What the handler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpHandler {
    /// Reads one value from the session.
    Read,
    /// Increments one value in the session.
    Update,
    /// One backend load: called directly ([`HttpPath::BackendLoad`]), or
    /// made by the handler of the server without sessions
    /// ([`HttpPath::NoSession`]).
    Load,
}

impl HttpHandler {
    /// Every handler, in report order.
    pub const ALL: [HttpHandler; 3] = [HttpHandler::Read, HttpHandler::Update, HttpHandler::Load];

    /// The name the benchmark writes.
    pub fn id(self) -> &'static str {
        match self {
            HttpHandler::Read => "read",
            HttpHandler::Update => "update",
            HttpHandler::Load => "load",
        }
    }

    /// Parses a written handler.
    ///
    /// # Errors
    /// [`UnknownId`] for a name not in [`HttpHandler::ALL`].
    pub fn parse(s: &str) -> Result<Self, UnknownId> {
        Self::ALL
            .into_iter()
            .find(|h| h.id() == s)
            .ok_or_else(|| UnknownId {
                kind: "http handler",
                id: s.to_owned(),
            })
    }
}

/// Parses a written backend (a [`Target::id`]).
///
/// # Errors
/// [`UnknownId`] for anything else.
pub fn parse_target(s: &str) -> Result<Target, UnknownId> {
    Target::ALL
        .into_iter()
        .find(|t| t.id() == s)
        .ok_or_else(|| UnknownId {
            kind: "http backend",
            id: s.to_owned(),
        })
}

/// One measured HTTP point.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpPoint {
    /// Latency per request and requests per second.
    pub summary: Summary,
    /// Requests that failed (status or body).
    pub errors: usize,
    /// CPU, context switches and backend calls per request, where measured.
    pub cost: HttpCost,
    /// The point's rounds in order (empty in older results).
    pub rounds: Vec<HttpRound>,
}

/// Key of an HTTP point: backend, path, handler, clients.
pub type HttpKey = (Target, HttpPath, HttpHandler, usize);

/// Every HTTP point of a run.
pub type HttpResults = BTreeMap<HttpKey, HttpPoint>;

/// `ours` over `tower` for one backend, client count and handler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VsTower {
    /// p50 of ours over p50 of tower-sessions (≤ 1 passes).
    pub p50: f64,
    /// req/s of ours over req/s of tower-sessions (≥ 1 passes).
    pub rps: f64,
    /// Whole-process CPU per request, ours over tower-sessions' (shown, not
    /// judged; `None` where not measured).
    pub cpu: Option<f64>,
    /// Round by round (the two series' rounds run next to each other in
    /// time), where both points have the same number of rounds.
    pub rounds: Option<PairedRounds>,
}

/// Ours over tower-sessions round by round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedRounds {
    /// Rounds compared.
    pub n: usize,
    /// Median over the rounds of ours' p50 over tower-sessions' p50.
    pub p50_median: f64,
    /// Smallest and largest of those per-round ratios.
    pub p50_range: (f64, f64),
    /// Rounds in which ours had the lower (or equal) p50.
    pub ours_ahead: usize,
}

impl PairedRounds {
    /// Pairs two series' rounds by position; `None` unless both have the
    /// same, non-zero number of rounds with positive p50s.
    pub fn of(ours: &[HttpRound], tower: &[HttpRound]) -> Option<Self> {
        if ours.is_empty() || ours.len() != tower.len() || tower.iter().any(|r| r.p50_ns <= 0.0) {
            return None;
        }
        let mut ratios: Vec<f64> = ours
            .iter()
            .zip(tower)
            .map(|(o, w)| o.p50_ns / w.p50_ns)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let n = ratios.len();
        let p50_median = if n % 2 == 1 {
            ratios[n / 2]
        } else {
            (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
        };
        Some(PairedRounds {
            n,
            p50_median,
            p50_range: (ratios[0], ratios[n - 1]),
            ours_ahead: ratios.iter().filter(|&&r| r <= 1.0).count(),
        })
    }
}

impl VsTower {
    /// Whether ours is at least as fast on both counts.
    pub fn met(self) -> bool {
        self.p50 <= 1.0 && self.rps >= 1.0
    }
}

/// The read path's added latency against one backend round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadCost {
    /// ours read p50 − no-session read p50, nanoseconds.
    pub added_ns: f64,
    /// One round trip as a handler makes it: no-session load p50 −
    /// no-session read p50, nanoseconds (`None` in runs without that point).
    pub in_handler_ns: Option<f64>,
    /// p50 of one backend load called directly (no HTTP), nanoseconds.
    pub direct_ns: f64,
    /// Backend calls per read request through ours, and per request of the
    /// no-session load handler (one round trip), where counted.
    pub calls: Option<(f64, f64)>,
    /// Whole-process CPU per request: ours read minus the no-session load
    /// handler, nanoseconds (the layer's own work beyond the one load).
    pub layer_cpu_ns: Option<f64>,
}

impl ReadCost {
    /// The round trip the latency is compared with: the in-handler one when
    /// measured, else the direct one.
    pub fn round_trip_ns(self) -> f64 {
        self.in_handler_ns.unwrap_or(self.direct_ns)
    }

    /// Whether the read adds at most one backend round trip: counted, ours'
    /// backend calls per read are at most the no-session load handler's
    /// (which makes exactly one). In results without the counts (older
    /// runs), judged on latency: the added p50 at most one round trip's.
    pub fn met(self) -> bool {
        match self.calls {
            Some((ours, one)) => ours <= one,
            None => self.added_ns <= self.round_trip_ns(),
        }
    }

    /// The added latency in round trips.
    pub fn round_trips(self) -> f64 {
        self.added_ns / self.round_trip_ns()
    }
}

fn point(h: &HttpResults, key: HttpKey) -> Option<&HttpPoint> {
    h.get(&key)
}

/// Ours against tower-sessions.
pub fn vs_tower(
    h: &HttpResults,
    t: Target,
    handler: HttpHandler,
    clients: usize,
) -> Option<VsTower> {
    let ours = point(h, (t, HttpPath::Ours, handler, clients))?;
    let tower = point(h, (t, HttpPath::Tower, handler, clients))?;
    let (o, w) = (ours.summary, tower.summary);
    (w.p50_ns > 0.0 && w.ops_per_sec > 0.0).then(|| VsTower {
        p50: o.p50_ns / w.p50_ns,
        rps: o.ops_per_sec / w.ops_per_sec,
        cpu: ours
            .cost
            .cpu_ns
            .zip(tower.cost.cpu_ns)
            .filter(|&(_, w)| w > 0.0)
            .map(|(o, w)| o / w),
        rounds: PairedRounds::of(&ours.rounds, &tower.rounds),
    })
}

/// The read path's added latency.
pub fn read_cost(h: &HttpResults, t: Target, clients: usize) -> Option<ReadCost> {
    let ours = point(h, (t, HttpPath::Ours, HttpHandler::Read, clients))?;
    let none = point(h, (t, HttpPath::NoSession, HttpHandler::Read, clients))?.summary;
    let load = point(h, (t, HttpPath::BackendLoad, HttpHandler::Load, clients))?.summary;
    let handler_load = point(h, (t, HttpPath::NoSession, HttpHandler::Load, clients));
    let handler_cost = handler_load.map(|p| p.cost).unwrap_or_default();
    Some(ReadCost {
        added_ns: ours.summary.p50_ns - none.p50_ns,
        in_handler_ns: handler_load.map(|p| p.summary.p50_ns - none.p50_ns),
        direct_ns: load.p50_ns,
        calls: ours.cost.backend_calls.zip(handler_cost.backend_calls),
        layer_cpu_ns: ours
            .cost
            .cpu_ns
            .zip(handler_cost.cpu_ns)
            .map(|(o, n)| o - n),
    })
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

/// The HTTP section (empty without HTTP results).
pub fn section(h: &HttpResults) -> String {
    if h.is_empty() {
        return String::new();
    }
    let mut targets: Vec<Target> = h.keys().map(|k| k.0).collect();
    targets.dedup();
    let mut levels: Vec<usize> = h.keys().map(|k| k.3).collect();
    levels.sort_unstable();
    levels.dedup();
    let mut md = String::from(
        "## HTTP (loopback: axum 0.8 server, reqwest clients)\n\n\
         `benches/http.rs`. Each client is a `reqwest` client with its own cookie jar, \
         keep-alive connection and session; clients, server and store share the machine \
         (one tokio runtime). `read` returns one value from the session; `update` \
         increments it (session-store-axum: `Session::update`, a compare-and-swap; \
         tower-sessions: `get` then `insert`, saved by its layer after the handler, \
         through `session-store-tower-sessions`). `no session` is a router without a \
         session layer: `read` returns the same body, `load` also makes one \
         `SessionBackend::load` of the client's session (named by a header: no cookie, \
         token or decoding), one round trip as a handler makes it. `one backend load` is \
         `SessionBackend::load` of one session called directly at the same concurrency, \
         no HTTP: one round trip. Every response is checked (status and the value the \
         client's session holds). Cells: req/s · p50 · p99.\n\n",
    );
    for &t in &targets {
        let _ = write!(md, "### {}\n\n", t.id());
        series_table(
            &mut md,
            h,
            t,
            &levels,
            "req/s · p50 · p99",
            |_| true,
            |p| {
                let s = &p.summary;
                let mut cell = format!(
                    "{} · {} · {}",
                    ops(s.ops_per_sec),
                    ns(s.p50_ns),
                    ns(s.p99_ns)
                );
                if p.errors > 0 {
                    let _ = write!(cell, " ({} of {} failed)", p.errors, s.n);
                }
                cell
            },
        );
        cost_table(&mut md, h, t, &levels);
    }
    md.push_str(
        "### HTTP targets\n\n\
         At least as fast as tower-sessions over the same backend: session-store-axum's \
         p50 over tower-sessions' p50 (met at ≤ 1.00×) and its req/s over theirs \
         (met at ≥ 1.00×), both required. The whole process's CPU per request, ours \
         over theirs, is shown beside them (not judged): where the p50s are within \
         noise of each other it tells which stack does more work.\n\n\
         The rounds column pairs the two series round by round (each round \
         measures every series once, in an order shuffled each round, so ours' and \
         tower-sessions' slices of one round ran seconds apart): the median of the \
         per-round p50 ratios, their range, and in how many rounds ours had the \
         lower p50. It shows how far the point's ratio is from noise.\n\n\
         | backend | clients | handler | p50 ours / tower-sessions | req/s ours / tower-sessions | CPU/request ours / tower-sessions | rounds: p50 ratio median (range), ours ahead | verdict |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for &t in &targets {
        for &l in &levels {
            for handler in [HttpHandler::Read, HttpHandler::Update] {
                let Some(v) = vs_tower(h, t, handler, l) else {
                    continue;
                };
                let rounds = v.rounds.map_or("—".to_owned(), |r| {
                    format!(
                        "{} ({}–{}), {} of {}",
                        ratio(Some(r.p50_median)),
                        ratio(Some(r.p50_range.0)),
                        ratio(Some(r.p50_range.1)),
                        r.ours_ahead,
                        r.n
                    )
                });
                let _ = writeln!(
                    md,
                    "| {} | {l} | {} | {} | {} | {} | {rounds} | {} |",
                    t.id(),
                    handler.id(),
                    ratio(Some(v.p50)),
                    ratio(Some(v.rps)),
                    ratio(v.cpu),
                    verdict(v.met())
                );
            }
        }
    }
    md.push_str(
        "\nThe read path adds at most one backend round trip over the no-session \
         baseline. Counted: every backend call goes through a counting wrapper, so \
         the benchmark sees how many round trips a read request makes through \
         session-store-axum, against the no-session handler that makes one `load` \
         (met when ours is at most that). Timed: session-store-axum's read p50 minus \
         the no-session read p50, against one round trip as a handler makes it (the \
         no-session load p50 minus the no-session read p50), and the p50 of one \
         `SessionBackend::load` called directly at the same concurrency, without HTTP \
         (it skips the wake-ups a server's handler pays between its connection's \
         task, the client library's task and the store). What the read adds beyond \
         its one round trip is the layer's own work: the last column is the whole \
         process's CPU per read request minus the no-session load handler's. Results \
         without the counts are judged on the p50s.\n\n\
         | backend | clients | backend calls per read (no-session load) | read p50 − no-session p50 | one round trip in a handler | one direct load | in round trips' time | layer CPU per read | verdict |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for &t in &targets {
        for &l in &levels {
            let Some(c) = read_cost(h, t, l) else {
                continue;
            };
            let calls = c
                .calls
                .map_or("—".to_owned(), |(o, n)| format!("{o:.2} ({n:.2})"));
            let _ = writeln!(
                md,
                "| {} | {l} | {calls} | {} | {} | {} | {:.2} | {} | {} |",
                t.id(),
                ns(c.added_ns),
                maybe_ns(c.in_handler_ns),
                ns(c.direct_ns),
                c.round_trips(),
                maybe_ns(c.layer_cpu_ns),
                verdict(c.met())
            );
        }
    }
    md.push('\n');
    md
}

/// One backend's table: a row per path and handler measured at any level
/// (and kept by `keep`), a `cell` per level (`—` where not measured).
fn series_table(
    md: &mut String,
    h: &HttpResults,
    t: Target,
    levels: &[usize],
    columns: &str,
    keep: impl Fn(&HttpPoint) -> bool,
    cell: impl Fn(&HttpPoint) -> String,
) {
    md.push_str("| path | handler |");
    for l in levels {
        let _ = write!(md, " {l} client{}: {columns} |", plural(*l));
    }
    md.push_str("\n| --- | --- |");
    md.push_str(&" --- |".repeat(levels.len()));
    md.push('\n');
    for path in HttpPath::ALL {
        for handler in HttpHandler::ALL {
            let at = |l: usize| h.get(&(t, path, handler, l)).filter(|p| keep(p));
            if !levels.iter().any(|&l| at(l).is_some()) {
                continue;
            }
            let _ = write!(md, "| {} | {} |", path.label(), handler.id());
            for &l in levels {
                match at(l) {
                    Some(p) => {
                        let _ = write!(md, " {} |", cell(p));
                    }
                    None => md.push_str(" — |"),
                }
            }
            md.push('\n');
        }
    }
    md.push('\n');
}

/// Per request, for one backend: the whole process's CPU, thread switches
/// and backend calls of each series (nothing when no point has them).
fn cost_table(md: &mut String, h: &HttpResults, t: Target, levels: &[usize]) {
    let has = |p: &HttpPoint| p.cost != HttpCost::default();
    if !h.iter().any(|(k, p)| k.0 == t && has(p)) {
        return;
    }
    md.push_str(
        "Per request: CPU time of the whole process (clients, server, store client and \
         store threads, from `/proc/self/task/*/schedstat`) · times a thread was \
         switched onto a CPU · backend calls.\n\n",
    );
    let count = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.2}"));
    series_table(md, h, t, levels, "CPU · switches · calls", has, |p| {
        format!(
            "{} · {} · {}",
            maybe_ns(p.cost.cpu_ns),
            count(p.cost.switches),
            count(p.cost.backend_calls)
        )
    });
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::super::results::Results;
    use super::*;
    use crate::stats::Record;

    fn rec(backend: &str, path: &str, handler: &str, clients: usize, p50: f64, rps: f64) -> Record {
        Record::Http {
            backend: backend.into(),
            path: path.into(),
            handler: handler.into(),
            clients,
            errors: 0,
            summary: Summary {
                n: 100,
                p50_ns: p50,
                p99_ns: 2.0 * p50,
                mean_ns: p50,
                ops_per_sec: rps,
            },
            cost: HttpCost::default(),
            rounds: Vec::new(),
        }
    }

    /// `r` with its per-request costs and rounds changed by `f`.
    fn with(r: Record, f: impl FnOnce(&mut HttpCost, &mut Vec<HttpRound>)) -> Record {
        let mut r = r;
        if let Record::Http { cost, rounds, .. } = &mut r {
            f(cost, rounds);
        }
        r
    }

    /// `rec` with per-request costs: CPU (ns), switches and backend calls.
    fn costed(r: Record, cpu_ns: f64, switches: f64, calls: f64) -> Record {
        with(r, |cost, _| {
            *cost = HttpCost {
                cpu_ns: Some(cpu_ns),
                switches: Some(switches),
                backend_calls: Some(calls),
            }
        })
    }

    /// `rec` with its rounds' p50s (req/s 1000 each).
    fn rounded(r: Record, p50s: &[f64]) -> Record {
        with(r, |_, rounds| {
            *rounds = p50s
                .iter()
                .map(|&p50_ns| HttpRound {
                    p50_ns,
                    ops_per_sec: 1000.0,
                })
                .collect()
        })
    }

    fn run() -> Results {
        Results::from_records(vec![
            rec("sqlite", "ours", "read", 1, 100_000.0, 9_000.0),
            rec("sqlite", "tower", "read", 1, 120_000.0, 8_000.0),
            rec("sqlite", "ours", "update", 1, 300_000.0, 3_000.0),
            rec("sqlite", "tower", "update", 1, 290_000.0, 3_100.0),
            rec("sqlite", "none", "read", 1, 60_000.0, 15_000.0),
            rec("sqlite", "backend-load", "load", 1, 30_000.0, 30_000.0),
            rec("redis", "ours", "read", 64, 2_000_000.0, 20_000.0),
            rec("redis", "none", "read", 64, 1_000_000.0, 40_000.0),
            rec("redis", "backend-load", "load", 64, 1_500_000.0, 30_000.0),
            rec("redis", "none", "load", 64, 2_100_000.0, 21_000.0),
        ])
        .expect("known ids")
    }

    #[test]
    fn ratios_and_round_trips_come_from_the_same_run() {
        let r = run();
        let v = vs_tower(&r.http, Target::Sqlite, HttpHandler::Read, 1).unwrap();
        assert!((v.p50 - 100.0 / 120.0).abs() < 1e-9 && (v.rps - 9.0 / 8.0).abs() < 1e-9);
        assert!(v.met());
        let v = vs_tower(&r.http, Target::Sqlite, HttpHandler::Update, 1).unwrap();
        assert!(!v.met(), "slower on both counts: {v:?}");
        assert_eq!(
            vs_tower(&r.http, Target::Redis, HttpHandler::Read, 64),
            None
        );
        let c = read_cost(&r.http, Target::Sqlite, 1).unwrap();
        assert_eq!(
            (c.added_ns, c.in_handler_ns, c.direct_ns),
            (40_000.0, None, 30_000.0)
        );
        assert!(
            !c.met(),
            "without an in-handler point the direct load judges"
        );
        let c = read_cost(&r.http, Target::Redis, 64).unwrap();
        assert_eq!(c.in_handler_ns, Some(1_100_000.0));
        assert!(
            c.met() && (c.round_trips() - 1.0 / 1.1).abs() < 1e-9,
            "{c:?}"
        );
        // Judged on the in-handler round trip, not the (longer) direct load.
        let slower = ReadCost {
            added_ns: 1_200_000.0,
            ..c
        };
        assert!(!slower.met() && slower.added_ns < slower.direct_ns);
    }

    #[test]
    fn the_section_has_a_table_per_backend_and_judges_both_targets() {
        let md = section(&run().http);
        let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(
            headings,
            [
                "## HTTP (loopback: axum 0.8 server, reqwest clients)",
                "### sqlite",
                "### redis",
                "### HTTP targets"
            ]
        );
        assert!(
            md.contains("| session-store-axum | read | 9.0k · 100 µs · 200 µs | — |"),
            "{md}"
        );
        assert!(
            md.contains("| sqlite | 1 | read | 0.83× | 1.12× | — | — | met |"),
            "{md}"
        );
        assert!(
            md.contains("| sqlite | 1 | update | 1.03× | 0.97× | — | — | **missed** |"),
            "{md}"
        );
        assert!(
            md.contains("| sqlite | 1 | — | 40 µs | — | 30 µs | 1.33 | — | **missed** |"),
            "{md}"
        );
        assert!(
            md.contains("| redis | 64 | — | 1.00 ms | 1.10 ms | 1.50 ms | 0.91 | — | met |"),
            "{md}"
        );
        assert!(
            !md.contains("| redis | 1 |"),
            "rows without results are left out: {md}"
        );
        assert!(
            !md.contains("Per request: CPU time"),
            "no cost table without costs: {md}"
        );
        assert_eq!(section(&HttpResults::new()), "");
    }

    /// With counted backend calls the round-trip target is judged on the
    /// count (one call per read, as the no-session load handler makes),
    /// whatever the p50s say; the layer's CPU is shown beside it.
    #[test]
    fn counted_backend_calls_judge_the_read_path_and_costs_are_tabled() {
        let with = |ours_calls: f64| {
            Results::from_records(vec![
                costed(
                    rec("redis", "ours", "read", 1, 150_000.0, 6_000.0),
                    98_000.0,
                    1.0,
                    ours_calls,
                ),
                costed(
                    rec("redis", "tower", "read", 1, 160_000.0, 5_900.0),
                    110_000.0,
                    1.0,
                    1.0,
                ),
                costed(
                    rec("redis", "none", "read", 1, 30_000.0, 30_000.0),
                    33_000.0,
                    0.01,
                    0.0,
                ),
                costed(
                    rec("redis", "none", "load", 1, 130_000.0, 8_000.0),
                    84_000.0,
                    1.0,
                    1.0,
                ),
                costed(
                    rec("redis", "backend-load", "load", 1, 70_000.0, 16_000.0),
                    28_000.0,
                    1.0,
                    1.0,
                ),
            ])
            .expect("known ids")
        };
        let r = with(1.0);
        let c = read_cost(&r.http, Target::Redis, 1).unwrap();
        assert_eq!(c.calls, Some((1.0, 1.0)));
        assert_eq!(c.layer_cpu_ns, Some(14_000.0));
        assert!(
            c.met() && c.round_trips() > 1.0,
            "one call per read meets it although the p50 adds 1.2 round trips: {c:?}"
        );
        let two = read_cost(&with(2.0).http, Target::Redis, 1).unwrap();
        assert!(!two.met(), "a second round trip per read misses: {two:?}");
        let v = vs_tower(&r.http, Target::Redis, HttpHandler::Read, 1).unwrap();
        assert!((v.cpu.unwrap() - 98.0 / 110.0).abs() < 1e-9, "{v:?}");

        let md = section(&r.http);
        assert!(
            md.contains("| session-store-axum | read | 98 µs · 1.00 · 1.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| no session | read | 33 µs · 0.01 · 0.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| redis | 1 | read | 0.94× | 1.02× | 0.89× | — | met |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| redis | 1 | 1.00 (1.00) | 120 µs | 100 µs | 70 µs | 1.20 | 14 µs | met |"
            ),
            "{md}"
        );
    }

    /// Result lines written before the costs existed still read, and the
    /// costs survive a write and a read.
    #[test]
    fn costs_are_optional_in_result_lines() {
        let old = r#"{"kind":"http","backend":"redis","path":"ours","handler":"read","clients":1,"errors":0,"summary":{"n":1,"p50_ns":1.0,"p99_ns":1.0,"mean_ns":1.0,"ops_per_sec":1.0}}"#;
        let r: Record = serde_json::from_str(old).expect("old line");
        assert!(matches!(
            r,
            Record::Http { cost, rounds, .. } if cost == HttpCost::default() && rounds.is_empty()
        ));
        let new = costed(rec("redis", "ours", "read", 1, 1.0, 1.0), 5.0, 0.5, 1.0);
        let line = serde_json::to_string(&new).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), new);
        let bare = serde_json::to_string(&rec("redis", "ours", "read", 1, 1.0, 1.0)).unwrap();
        assert!(!bare.contains("cpu_ns"), "{bare}");
    }

    #[test]
    fn failed_requests_are_shown_and_unknown_names_refused() {
        let mut r = run();
        r.http
            .get_mut(&(Target::Sqlite, HttpPath::Ours, HttpHandler::Read, 1))
            .unwrap()
            .errors = 3;
        assert!(section(&r.http).contains("· 200 µs (3 of 100 failed) |"));
        let e =
            Results::from_records(vec![rec("sqlite", "actix", "read", 1, 1.0, 1.0)]).unwrap_err();
        assert_eq!((e.kind, e.id.as_str()), ("http path", "actix"));
        let e = Results::from_records(vec![rec("mongo", "ours", "read", 1, 1.0, 1.0)]).unwrap_err();
        assert_eq!(e.kind, "http backend");
        let e =
            Results::from_records(vec![rec("redis", "ours", "delete", 1, 1.0, 1.0)]).unwrap_err();
        assert_eq!(e.kind, "http handler");
    }

    #[test]
    fn rounds_are_paired_by_position_and_shown() {
        let r = Results::from_records(vec![
            rounded(
                rec("redis", "ours", "read", 1, 100.0, 10.0),
                &[90.0, 110.0, 100.0, 80.0],
            ),
            rounded(
                rec("redis", "tower", "read", 1, 100.0, 10.0),
                &[100.0, 100.0, 100.0, 100.0],
            ),
            rounded(rec("redis", "ours", "update", 1, 100.0, 10.0), &[1.0, 2.0]),
            rounded(rec("redis", "tower", "update", 1, 100.0, 10.0), &[1.0]),
        ])
        .expect("known ids");
        let p = vs_tower(&r.http, Target::Redis, HttpHandler::Read, 1)
            .unwrap()
            .rounds
            .unwrap();
        assert_eq!(p.n, 4);
        assert!((p.p50_median - 0.95).abs() < 1e-9, "{p:?}");
        assert_eq!(p.p50_range, (0.8, 1.1));
        assert_eq!(p.ours_ahead, 3, "1.00× counts as ahead: {p:?}");
        let unpaired = vs_tower(&r.http, Target::Redis, HttpHandler::Update, 1).unwrap();
        assert_eq!(
            unpaired.rounds, None,
            "different round counts are not paired"
        );
        let md = section(&r.http);
        assert!(md.contains("| 0.95× (0.80×–1.10×), 3 of 4 |"), "{md}");
        assert!(
            md.contains("| 1.00× | — | — | met |"),
            "unpaired rounds show a dash: {md}"
        );
        let line =
            serde_json::to_string(&rounded(rec("redis", "ours", "read", 1, 1.0, 1.0), &[5.0]))
                .unwrap();
        assert!(line.contains("\"rounds\":[{\"p50_ns\":5.0"), "{line}");
        assert!(matches!(
            serde_json::from_str::<Record>(&line).unwrap(),
            Record::Http { rounds, .. } if rounds.len() == 1
        ));
    }
}
