//! The Markdown report and its SVG charts, from the JSON results.
//!
//! Ratios are of medians: a store operation's p50 latency divided by the p50
//! of its raw baseline measured in the same run, with the same payload.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::stats::{Record, Summary};

/// Operations in report order, with their titles.
pub const OPS: [(&str, &str); 10] = [
    (
        "backend_load",
        "backend load (`SessionBackend::load`, no manager)",
    ),
    (
        "backend_save",
        "backend save (`SessionBackend::save`, no manager)",
    ),
    ("create", "create"),
    ("load", "load (touch not due)"),
    ("load_touch", "load with touch"),
    ("save", "save"),
    ("rotate", "rotate (privilege change, logged-in session)"),
    ("delete", "delete (logout)"),
    ("list_user", "list a user's sessions (10)"),
    ("delete_user", "delete a user's sessions (10)"),
];

/// Backend ids in report order.
pub const BACKENDS: [&str; 7] = [
    "memory",
    "sled",
    "sled-periodic",
    "sqlite",
    "postgres",
    "redis",
    "redis-cluster",
];

/// Whether an operation's baseline is the raw read (else the raw write).
fn reads(op: &str) -> bool {
    matches!(op, "backend_load" | "load" | "load_touch" | "list_user")
}

/// The raw baseline id of a backend id (`x+enc` uses `x`'s), for an operation.
pub fn baseline(id: &str, op: &str) -> Option<&'static str> {
    let base = id.strip_suffix("+enc").unwrap_or(id);
    let r = reads(op);
    Some(match base {
        "sled" | "sled-periodic" => {
            if r {
                "raw-sled-get"
            } else {
                "raw-sled-insert"
            }
        }
        "sqlite" => {
            if r {
                "raw-rusqlite-SELECT"
            } else {
                "raw-rusqlite-upsert"
            }
        }
        "postgres" => {
            if r {
                "raw-pg-conn-SELECT"
            } else {
                "raw-pg-conn-upsert"
            }
        }
        "redis" => {
            if r {
                "raw-redis-GET"
            } else {
                "raw-redis-SET-PX"
            }
        }
        "redis-cluster" => {
            if r {
                "raw-redis-cluster-GET"
            } else {
                "raw-redis-cluster-SET-PX"
            }
        }
        _ => return None,
    })
}

/// The concurrency baseline of a backend for `load`/`save`.
fn conc_baseline(id: &str, op: &str) -> Option<&'static str> {
    let id = id.strip_suffix("/backend").unwrap_or(id);
    let r = op == "load";
    Some(match id {
        "sled" | "sled-periodic" => {
            if r {
                "raw-sled-get"
            } else {
                "raw-sled-insert"
            }
        }
        "sqlite" => {
            if r {
                "raw-rusqlite-SELECT"
            } else {
                "raw-rusqlite-upsert"
            }
        }
        "postgres" => {
            if r {
                "raw-pg-pool-SELECT"
            } else {
                "raw-pg-pool-upsert"
            }
        }
        "redis" => {
            if r {
                "raw-redis-GET"
            } else {
                "raw-redis-SET-PX"
            }
        }
        "redis-cluster" => {
            if r {
                "raw-redis-cluster-GET"
            } else {
                "raw-redis-cluster-SET-PX"
            }
        }
        _ => return None,
    })
}

/// One timed task: items involved, seconds, note.
pub type TaskRun = (usize, f64, String);

/// Every result of one run, indexed.
#[derive(Debug, Default)]
pub struct Results {
    /// (op, payload, id) → summary.
    pub ops: BTreeMap<(String, String, String), Summary>,
    /// (op, id, tasks) → summary.
    pub conc: BTreeMap<(String, String, usize), Summary>,
    /// (op, id, live) → summary.
    pub scale: BTreeMap<(String, String, usize), Summary>,
    /// (what, id) → runs.
    pub tasks: BTreeMap<(String, String), Vec<TaskRun>>,
    /// id → reason.
    pub missing: BTreeMap<String, String>,
}

impl Results {
    /// Indexes records.
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Self {
        let mut r = Results::default();
        for rec in records {
            match rec {
                Record::Op {
                    op,
                    payload,
                    id,
                    summary,
                } => {
                    r.ops.insert((op, payload, id), summary);
                }
                Record::Concurrency {
                    op,
                    id,
                    tasks,
                    summary,
                } => {
                    r.conc.insert((op, id, tasks), summary);
                }
                Record::Scale {
                    op,
                    id,
                    live,
                    summary,
                } => {
                    r.scale.insert((op, id, live), summary);
                }
                Record::Task {
                    what,
                    id,
                    items,
                    seconds,
                    note,
                } => r
                    .tasks
                    .entry((what, id))
                    .or_default()
                    .push((items, seconds, note)),
                Record::Missing { id, reason } => {
                    r.missing.insert(id, reason);
                }
                Record::Machine { .. } => {}
            }
        }
        r
    }

    fn op(&self, op: &str, payload: &str, id: &str) -> Option<&Summary> {
        self.ops
            .get(&(op.to_owned(), payload.to_owned(), id.to_owned()))
    }

    /// p50(op of id) / p50(its baseline).
    pub fn ratio(&self, op: &str, payload: &str, id: &str) -> Option<f64> {
        self.ratio_to(op, payload, id, baseline(id, op)?)
    }

    /// `op`'s p50 for `id` over the p50 of the raw baseline `base` (from the
    /// backend-level group of the same kind, read or write).
    pub fn ratio_to(&self, op: &str, payload: &str, id: &str, base: &str) -> Option<f64> {
        let group = if reads(op) {
            "backend_load"
        } else {
            "backend_save"
        };
        let b = self.op(group, payload, base)?;
        let s = self.op(op, payload, id)?;
        Some(s.p50_ns / b.p50_ns)
    }

    fn payloads(&self) -> Vec<String> {
        let mut p: Vec<String> = self.ops.keys().map(|k| k.1.clone()).collect();
        p.sort_by_key(|s| if s.ends_with("KiB") { 1 } else { 0 });
        p.dedup();
        p
    }

    fn ids_of(&self, op: &str, payload: &str) -> Vec<String> {
        let order = |id: &str| {
            let base = id.strip_suffix("+enc").unwrap_or(id);
            let pos = BACKENDS.iter().position(|b| *b == base).unwrap_or(99);
            (
                id.starts_with("raw-"),
                pos,
                id.ends_with("+enc"),
                id.to_owned(),
            )
        };
        let mut ids: Vec<String> = self
            .ops
            .keys()
            .filter(|k| k.0 == op && k.1 == payload)
            .map(|k| k.2.clone())
            .collect();
        ids.sort_by_key(|id| order(id));
        ids
    }
}

/// Formats nanoseconds as µs or ms.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "—".into()
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.0} µs", ns / 1e3)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

fn fmt_ops(o: f64) -> String {
    if o >= 1e5 {
        format!("{:.0}k", o / 1e3)
    } else if o >= 1e3 {
        format!("{:.1}k", o / 1e3)
    } else {
        format!("{o:.0}")
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}×"))
}

/// One checked target: description, measured ratio, limit, whether `>=`.
struct Target {
    what: String,
    /// Backend level (or the only measurement).
    measured: Option<f64>,
    /// Through the `SessionManager`, where that differs.
    manager: Option<f64>,
    limit: f64,
    at_least: bool,
    how: String,
}

impl Target {
    fn verdict_of(&self, m: Option<f64>) -> &'static str {
        match m {
            None => "—",
            Some(m)
                if (self.at_least && m >= self.limit) || (!self.at_least && m <= self.limit) =>
            {
                "met"
            }
            Some(_) => "**missed**",
        }
    }
}

fn targets(r: &Results) -> Vec<Target> {
    let mut t = Vec::new();
    for p in r.payloads() {
        let mut push = |what: String, op: &str, id: &str, limit: f64| {
            t.push(Target {
                what,
                measured: r.ratio(&format!("backend_{op}"), &p, id),
                manager: r.ratio(op, &p, id),
                limit,
                at_least: false,
                how: "p50 / p50 of the raw baseline".into(),
            });
        };
        push(
            format!("Redis load ≤ 1.1× raw GET ({p})"),
            "load",
            "redis",
            1.1,
        );
        push(
            format!("Redis save ≤ 1.15× raw SET PX ({p})"),
            "save",
            "redis",
            1.15,
        );
        push(
            format!("PostgreSQL load ≤ 1.5× raw PK SELECT, dedicated connection ({p})"),
            "load",
            "postgres",
            1.5,
        );
        push(
            format!("PostgreSQL save ≤ 1.2× raw upsert, dedicated connection ({p})"),
            "save",
            "postgres",
            1.2,
        );
        push(
            format!("SQLite load ≤ 3× raw rusqlite SELECT on the calling thread ({p})"),
            "load",
            "sqlite",
            3.0,
        );
        push(
            format!("SQLite save ≤ 3× raw rusqlite upsert on the calling thread ({p})"),
            "save",
            "sqlite",
            3.0,
        );
        push(format!("sled load ≤ 2× raw get ({p})"), "load", "sled", 2.0);
        let base = "raw-rusqlite-store-UPDATE";
        t.push(Target {
            what: format!(
                "SQLite save ≤ 3× the store's own UPDATE run by rusqlite on the calling thread ({p})"
            ),
            measured: r.ratio_to("backend_save", &p, "sqlite", base),
            manager: r.ratio_to("save", &p, "sqlite", base),
            limit: 3.0,
            at_least: false,
            how: "p50 / p50 of `raw-rusqlite-store-UPDATE` (same schema, indexes and statement)"
                .into(),
        });
        t.push(Target {
            what: format!("Encryption wrapper ≤ 1.3× raw AES-256-GCM encrypt+decrypt ({p})"),
            measured: wrapper_ratio(r, &p, "backend_"),
            manager: wrapper_ratio(r, &p, ""),
            limit: 1.3,
            at_least: false,
            how: "(Δload + Δsave of memory+enc over memory) / p50(raw AES-GCM enc+dec)".into(),
        });
    }
    let tp = |id: &str, base: &str| {
        let s = r.conc.get(&("load".into(), id.into(), 64))?;
        let b = r.conc.get(&("load".into(), base.into(), 64))?;
        Some(s.ops_per_sec / b.ops_per_sec)
    };
    t.push(Target {
        what: "Redis load throughput at 64 tasks ≥ 0.9× raw GET throughput (200B)".into(),
        measured: tp("redis/backend", "raw-redis-GET"),
        manager: tp("redis", "raw-redis-GET"),
        limit: 0.9,
        at_least: true,
        how: "ops/s / ops/s".into(),
    });
    for id in BACKENDS {
        let levels: Vec<usize> = r
            .scale
            .keys()
            .filter(|k| k.0 == "load" && k.1 == id)
            .map(|k| k.2)
            .collect();
        let (Some(&lo), Some(&hi)) = (levels.iter().min(), levels.iter().max()) else {
            continue;
        };
        if lo == hi {
            continue;
        }
        let m = (|| {
            let a = r.scale.get(&("load".into(), id.into(), lo))?;
            let b = r.scale.get(&("load".into(), id.into(), hi))?;
            Some(b.p50_ns / a.p50_ns)
        })();
        t.push(Target {
            what: format!("{id}: load latency at {hi} sessions ≤ 1.5× that at {lo}"),
            measured: m,
            manager: None,
            limit: 1.5,
            at_least: false,
            how: "p50 / p50 (backend level)".into(),
        });
    }
    t
}

/// The encryption wrapper's own cost for a save plus a load (`prefix` ""
/// for the manager-level operations, "backend_" for the backend level), over
/// raw AES-GCM.
pub fn wrapper_ratio(r: &Results, payload: &str, prefix: &str) -> Option<f64> {
    let d = |op: &str| -> Option<f64> {
        let op = format!("{prefix}{op}");
        Some(r.op(&op, payload, "memory+enc")?.p50_ns - r.op(&op, payload, "memory")?.p50_ns)
    };
    let aes = r.op("backend_load", payload, "raw-aes-gcm-enc+dec")?.p50_ns;
    Some((d("load")? + d("save")?) / aes)
}

const COLORS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal grouped bar chart with a log-scale axis (latency in ns).
fn bar_chart(title: &str, groups: &[(String, Vec<(String, f64)>)]) -> String {
    let series: Vec<String> = {
        let mut s: Vec<String> = Vec::new();
        for (_, bars) in groups {
            for (name, _) in bars {
                if !s.contains(name) {
                    s.push(name.clone());
                }
            }
        }
        s
    };
    let values = groups
        .iter()
        .flat_map(|(_, b)| b.iter().map(|(_, v)| *v))
        .filter(|v| v.is_finite() && *v > 0.0);
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return String::new();
    }
    let (lo_e, hi_e) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let (left, width, bar_h, gap) = (190.0, 620.0, 9.0, 10.0);
    let rows: usize = groups.iter().map(|(_, b)| b.len()).sum();
    let height =
        60.0 + rows as f64 * bar_h + groups.len() as f64 * gap + 30.0 + 16.0 * series.len() as f64;
    let x = |v: f64| left + (v.log10() - lo_e) / (hi_e - lo_e) * width;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{t}</text>",
        w = left + width + 30.0,
        t = esc(title)
    );
    let top = 40.0;
    let axis_bottom = height - 30.0 - 16.0 * series.len() as f64;
    let mut e = lo_e;
    while e <= hi_e {
        let xv = x(10f64.powf(e));
        let label = fmt_ns(10f64.powf(e));
        let _ = write!(
            s,
            "<line x1=\"{xv:.1}\" y1=\"{top}\" x2=\"{xv:.1}\" y2=\"{axis_bottom:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{xv:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{label}</text>",
            axis_bottom + 12.0
        );
        e += 1.0;
    }
    let mut y = top;
    for (group, bars) in groups {
        let gh = bars.len() as f64 * bar_h;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + gh / 2.0 + 4.0,
            esc(group)
        );
        for (name, v) in bars {
            let ci = series.iter().position(|n| n == name).unwrap_or(0) % COLORS.len();
            if v.is_finite() && *v > 0.0 {
                let w = (x(*v) - left).max(1.0);
                let _ = write!(
                    s,
                    "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {}</title></rect>",
                    bar_h - 1.0,
                    COLORS[ci],
                    esc(name),
                    fmt_ns(*v)
                );
            }
            y += bar_h;
        }
        y += gap;
    }
    let mut ly = axis_bottom + 28.0;
    for (i, name) in series.iter().enumerate() {
        let _ = write!(
            s,
            "<rect x=\"{left}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            ly - 9.0,
            COLORS[i % COLORS.len()],
            left + 14.0,
            ly,
            esc(name)
        );
        ly += 16.0;
    }
    s.push_str("</svg>\n");
    s
}

/// Throughput bars, one labelled row each, on a log scale (raw baselines grey).
fn throughput_chart(title: &str, bars: &[(String, f64)]) -> String {
    let vals: Vec<f64> = bars.iter().map(|b| b.1).filter(|v| *v > 0.0).collect();
    if vals.is_empty() {
        return String::new();
    }
    let lo = vals
        .iter()
        .copied()
        .fold(f64::MAX, f64::min)
        .log10()
        .floor();
    let hi = vals
        .iter()
        .copied()
        .fold(f64::MIN, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let (left, width, row) = (200.0, 560.0, 16.0);
    let height = 50.0 + bars.len() as f64 * row + 30.0;
    let x = |v: f64| left + (v.log10() - lo) / (hi - lo) * width;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{t}</text>",
        w = left + width + 80.0,
        t = esc(title)
    );
    let top = 34.0;
    let bottom = top + bars.len() as f64 * row;
    let mut e = lo;
    while e <= hi {
        let xv = x(10f64.powf(e));
        let _ = write!(
            s,
            "<line x1=\"{xv:.1}\" y1=\"{top}\" x2=\"{xv:.1}\" y2=\"{bottom:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{xv:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}/s</text>",
            bottom + 14.0,
            fmt_ops(10f64.powf(e))
        );
        e += 1.0;
    }
    for (i, (name, v)) in bars.iter().enumerate() {
        let y = top + i as f64 * row;
        let base = name.strip_suffix("/backend").unwrap_or(name);
        let color = if name.starts_with("raw-") {
            "#9e9e9e"
        } else {
            COLORS[BACKENDS.iter().position(|b| *b == base).unwrap_or(7) % COLORS.len()]
        };
        let w = (x(*v) - left).max(1.0);
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#333\">{}</text>",
            left - 6.0,
            y + 11.0,
            esc(name),
            y + 2.0,
            row - 4.0,
            left + w + 4.0,
            y + 11.0,
            fmt_ops(*v)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Renders the report. `facts` are (name, value) pairs about the machine;
/// `notes` is hand-written analysis appended verbatim; `svg_prefix` names the
/// chart files written next to the report (returned as (file name, content)).
pub fn render(
    r: &Results,
    mode: &str,
    facts: &[(String, String)],
    notes: &str,
    svg_prefix: &str,
) -> (String, Vec<(String, String)>) {
    let mut md = String::new();
    let mut svgs = Vec::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `scripts/bench.sh {mode}` (mode `{mode}`); do not edit by hand: \
         the analysis at the end comes from `benches/notes.md`. Criterion's HTML report \
         of the same run is in `target/criterion/report/index.html`.\n"
    );
    let _ = writeln!(
        md,
        "All operations go through `SessionManager` (token parsing, policy, hashing), \
         single task, on a tokio multi-thread runtime; p50/p99 are per operation; \
         single-task ops/s is 1 / mean latency. \"Ratio\" is the p50 of the operation \
         divided by the p50 of its raw baseline measured in the same run with the same \
         payload: reads (load, load with touch, list) against the raw read, the other \
         operations against the raw write. Baselines: `raw-redis-GET`/`SET-PX` on a \
         `ConnectionManager` set up like the store's, `raw-redis-cluster-*` on the \
         cluster client, `raw-pg-conn-*` on one dedicated `PgConnection` (the physical \
         limit; `raw-pg-pool-*` through a sqlx pool configured like the store's), `raw-rusqlite-*` on the \
         calling thread (`raw-rusqlite-upsert` a two-column key-value upsert; \
         `raw-rusqlite-store-UPDATE` the store's own compare-and-swap `UPDATE` on a table \
         with the store's schema and indexes), `raw-sled-*` plain tree `get`/`insert` (no flush), \
         `raw-aes-gcm-enc+dec` one AES-256-GCM encryption and decryption of the payload.\n"
    );
    let _ = writeln!(md, "## Machine\n\n| | |\n| --- | --- |");
    for (k, v) in facts {
        let _ = writeln!(md, "| {} | {} |", esc(k), esc(v));
    }
    if !r.missing.is_empty() {
        let _ = writeln!(md, "\n## Not measured\n");
        for (id, reason) in &r.missing {
            let _ = writeln!(md, "- `{id}`: {}", esc(reason));
        }
    }

    let _ = writeln!(md, "\n## Targets\n");
    let _ = writeln!(
        md,
        "Each target is judged twice where it applies: at the backend level (the \
         backend's own `load`/`save` against the raw client doing the same primary-key \
         read or write: what the backend crate is responsible for) and through \
         `SessionManager` (adds token parsing, SHA-256 of the token, policy checks and \
         metadata decoding: what an application sees).\n"
    );
    let _ = writeln!(
        md,
        "| target | backend level | verdict | through the manager | verdict | how |\n| --- | --- | --- | --- | --- | --- |"
    );
    for t in targets(r) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} (limit {}{:.2}×) |",
            t.what,
            fmt_ratio(t.measured),
            t.verdict_of(t.measured),
            fmt_ratio(t.manager),
            t.verdict_of(t.manager),
            t.how,
            if t.at_least { "≥ " } else { "≤ " },
            t.limit,
        );
    }
    let _ = writeln!(
        md,
        "\nPostgreSQL `create` is one statement (`INSERT ... ON CONFLICT (key) DO NOTHING`, \
         see `store-postgres/src/schema.rs`); its cost is in the create table below."
    );

    let _ = writeln!(md, "\n## Per operation\n");
    for p in r.payloads() {
        let file = format!("{svg_prefix}-ops-{p}.svg");
        let groups: Vec<(String, Vec<(String, f64)>)> = OPS
            .iter()
            .filter_map(|(op, _)| {
                let bars: Vec<(String, f64)> = r
                    .ids_of(op, &p)
                    .into_iter()
                    .filter(|id| !id.starts_with("raw-") && !id.ends_with("+enc"))
                    .filter_map(|id| Some((id.clone(), r.op(op, &p, &id)?.p50_ns)))
                    .collect();
                (!bars.is_empty()).then(|| (op.to_string(), bars))
            })
            .collect();
        let svg = bar_chart(
            &format!("p50 latency per operation, {p} payload (log scale)"),
            &groups,
        );
        if !svg.is_empty() {
            let _ = writeln!(md, "![p50 per operation, {p}]({file})\n");
            svgs.push((file, svg));
        }
    }
    for (op, title) in OPS {
        let _ = writeln!(md, "### {title}\n");
        for p in r.payloads() {
            let ids = r.ids_of(op, &p);
            if ids.is_empty() {
                continue;
            }
            let _ = writeln!(
                md,
                "{p} payload:\n\n| backend | p50 | p99 | ops/s | ratio to raw |\n| --- | --- | --- | --- | --- |"
            );
            for id in ids {
                let s = r.op(op, &p, &id).expect("listed");
                let ratio = if id.starts_with("raw-") {
                    "baseline".to_owned()
                } else {
                    fmt_ratio(r.ratio(op, &p, &id))
                };
                let _ = writeln!(
                    md,
                    "| {id} | {} | {} | {} | {ratio} |",
                    fmt_ns(s.p50_ns),
                    fmt_ns(s.p99_ns),
                    fmt_ops(1e9 / s.mean_ns)
                );
            }
            let _ = writeln!(md);
        }
    }

    let _ = writeln!(md, "## Encryption wrapper\n");
    let _ = writeln!(
        md,
        "The wrapper's own cost is isolated on the in-memory store: (p50 load + p50 save of \
         `memory+enc`) − (the same for `memory`), at the backend level and through the \
         manager, compared with one raw AES-256-GCM encryption and decryption of the \
         payload.\n\n| payload | level | Δ load | Δ save | raw AES-GCM enc+dec | ratio |\n| --- | --- | --- | --- | --- | --- |"
    );
    for p in r.payloads() {
        for (level, prefix) in [("backend", "backend_"), ("manager", "")] {
            let d = |op: &str| -> Option<f64> {
                let op = format!("{prefix}{op}");
                Some(r.op(&op, &p, "memory+enc")?.p50_ns - r.op(&op, &p, "memory")?.p50_ns)
            };
            let aes = r
                .op("backend_load", &p, "raw-aes-gcm-enc+dec")
                .map(|s| s.p50_ns);
            let _ = writeln!(
                md,
                "| {p} | {level} | {} | {} | {} | {} |",
                d("load").map_or("—".into(), fmt_ns),
                d("save").map_or("—".into(), fmt_ns),
                aes.map_or("—".into(), fmt_ns),
                fmt_ratio(wrapper_ratio(r, &p, prefix))
            );
        }
    }

    let _ = writeln!(md, "\n## Concurrency (200B payload)\n");
    let _ = writeln!(
        md,
        "N tasks on the same runtime, each loading (or saving) its own session in a \
         loop for a fixed time; throughput over wall time, latency per operation \
         (queueing included). `x/backend` rows call the backend directly (no manager). \
         The ratio compares throughput with the raw baseline at the \
         same concurrency (PostgreSQL: through a sqlx pool of the store's default size, 10).\n"
    );
    let levels: Vec<usize> = {
        let mut l: Vec<usize> = r.conc.keys().map(|k| k.2).collect();
        l.sort_unstable();
        l.dedup();
        l
    };
    for op in ["load", "save"] {
        let mut ids: Vec<String> = r
            .conc
            .keys()
            .filter(|k| k.0 == op)
            .map(|k| k.1.clone())
            .collect();
        ids.sort_by_key(|id| {
            let base = id.strip_suffix("/backend").unwrap_or(id);
            (
                id.starts_with("raw-"),
                BACKENDS.iter().position(|b| *b == base).unwrap_or(99),
                id.clone(),
            )
        });
        ids.dedup();
        if ids.is_empty() {
            continue;
        }
        let _ = write!(md, "### {op}\n\n| backend |");
        for l in &levels {
            let _ = write!(md, " {l} tasks: ops/s (ratio) · p50 · p99 |");
        }
        let _ = write!(md, "\n| --- |");
        for _ in &levels {
            let _ = write!(md, " --- |");
        }
        let _ = writeln!(md);
        for id in &ids {
            let _ = write!(md, "| {id} |");
            for &l in &levels {
                match r.conc.get(&(op.into(), id.clone(), l)) {
                    Some(s) => {
                        let ratio = conc_baseline(id, op)
                            .and_then(|b| r.conc.get(&(op.into(), b.into(), l)))
                            .map(|b| s.ops_per_sec / b.ops_per_sec);
                        let _ = write!(
                            md,
                            " {}{} · {} · {} |",
                            fmt_ops(s.ops_per_sec),
                            ratio.map_or(String::new(), |x| format!(" ({x:.2}×)")),
                            fmt_ns(s.p50_ns),
                            fmt_ns(s.p99_ns)
                        );
                    }
                    None => {
                        let _ = write!(md, " — |");
                    }
                }
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
        // Chart: throughput at 64 tasks (or the highest level run).
        if let Some(&top) = levels.iter().find(|&&l| l == 64).or(levels.last()) {
            let bars: Vec<(String, f64)> = ids
                .iter()
                .filter_map(|id| {
                    let s = r.conc.get(&(op.into(), id.clone(), top))?;
                    Some((id.clone(), s.ops_per_sec))
                })
                .collect();
            let file = format!("{svg_prefix}-concurrency-{op}.svg");
            let svg = throughput_chart(
                &format!("{op}: throughput at {top} concurrent tasks, 200B (log scale)"),
                &bars,
            );
            if !svg.is_empty() {
                let _ = writeln!(md, "![{op} throughput at {top} tasks]({file})\n");
                svgs.push((file, svg));
            }
        }
    }

    let _ = writeln!(md, "## Scale\n");
    let _ = writeln!(
        md,
        "Backend-level `load` and `save` of random sessions among N live ones (200B), \
         populated with each engine's bulk path (copies of a template session written \
         the way the store writes them; see `benches/src/populate.rs`). \
         Sequential, bounded in count and time per point.\n"
    );
    let scale_levels: Vec<usize> = {
        let mut l: Vec<usize> = r.scale.keys().map(|k| k.2).collect();
        l.sort_unstable();
        l.dedup();
        l
    };
    if !scale_levels.is_empty() {
        let _ = write!(md, "| backend | op |");
        for l in &scale_levels {
            let _ = write!(md, " {l} live: p50 · p99 |");
        }
        let _ = write!(md, " largest / smallest (p50) |\n| --- | --- |");
        for _ in &scale_levels {
            let _ = write!(md, " --- |");
        }
        let _ = writeln!(md, " --- |");
        for id in BACKENDS {
            for op in ["load", "save"] {
                let row: Vec<Option<&Summary>> = scale_levels
                    .iter()
                    .map(|&l| r.scale.get(&(op.into(), id.into(), l)))
                    .collect();
                if row.iter().all(Option::is_none) {
                    continue;
                }
                let _ = write!(md, "| {id} | {op} |");
                for s in &row {
                    match s {
                        Some(s) => {
                            let _ = write!(md, " {} · {} |", fmt_ns(s.p50_ns), fmt_ns(s.p99_ns));
                        }
                        None => {
                            let _ = write!(md, " — |");
                        }
                    }
                }
                let present: Vec<&Summary> = row.iter().flatten().copied().collect();
                let growth = match (present.first(), present.last()) {
                    (Some(a), Some(b)) if present.len() > 1 => Some(b.p50_ns / a.p50_ns),
                    _ => None,
                };
                let _ = writeln!(md, " {} |", fmt_ratio(growth));
            }
        }
    }
    let _ = writeln!(
        md,
        "\n| task | backend | sessions | time | note |\n| --- | --- | --- | --- | --- |"
    );
    for ((what, id), runs) in &r.tasks {
        for (items, secs, note) in runs {
            let label = match what.as_str() {
                "cleanup" => "cleanup of expired sessions",
                "delete_user_100" => "delete a user's 100 sessions among the others",
                "populate" => "bulk populate (cumulative level)",
                other => other,
            };
            let _ = writeln!(
                md,
                "| {label} | {id} | {items} | {} | {} |",
                if *secs >= 1.0 {
                    format!("{secs:.2} s")
                } else {
                    format!("{:.2} ms", secs * 1e3)
                },
                esc(note)
            );
        }
    }
    let _ = writeln!(
        md,
        "\nRedis and Redis Cluster have no counted cleanup: every key carries a native TTL \
         and `cleanup_expired` returns 0 (capability `counted_cleanup = false`)."
    );
    if !notes.trim().is_empty() {
        let _ = writeln!(md, "\n{}", notes.trim_end());
    }
    (md, svgs)
}
