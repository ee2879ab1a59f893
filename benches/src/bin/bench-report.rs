//! Writes the benchmark report from a run's JSON results.
//!
//! `bench-report <results dir> <report.md> [notes.md]`: reads `ops.jsonl`,
//! `load.jsonl`, `requests.jsonl`, `http.jsonl` and `machine.txt` (`name: value` lines) from the results
//! directory and writes the report plus its SVG charts next to it.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use session_store_benches::report::{render, Results};
use session_store_benches::stats;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, out, rest @ ..] = args.as_slice() else {
        eprintln!("usage: bench-report <results dir> <report.md> [notes.md]");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let out = PathBuf::from(out);
    let mut records = stats::read_all(&dir.join("ops.jsonl"));
    records.extend(stats::read_all(&dir.join("load.jsonl")));
    records.extend(stats::read_all(&dir.join("requests.jsonl")));
    records.extend(stats::read_all(&dir.join("http.jsonl")));
    if records.is_empty() {
        eprintln!("no results in {}", dir.display());
        std::process::exit(1);
    }
    let facts: Vec<(String, String)> = std::fs::read_to_string(dir.join("machine.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let notes = rest
        .first()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .unwrap_or_default();
    let mode = std::env::var("BENCH_MODE").unwrap_or_else(|_| "quick".into());
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("benchmarks")
        .to_owned();
    let results = Results::from_records(records).unwrap_or_else(|e| {
        eprintln!("bench-report: {e}");
        std::process::exit(1);
    });
    let report = render(&results, &mode, &facts, &notes, &stem).unwrap_or_else(|e| {
        eprintln!("bench-report: {e}");
        std::process::exit(1);
    });
    let parent = out.parent().map(PathBuf::from).unwrap_or_default();
    for figure in report.figures {
        let path = parent.join(&figure.file);
        std::fs::write(&path, figure.svg)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    std::fs::write(&out, report.markdown)
        .unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    println!("wrote {}", out.display());
}
