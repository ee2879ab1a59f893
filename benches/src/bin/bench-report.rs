//! Writes docs/benchmarks.md from the JSON results.
fn main() {}
