//! Every Rust snippet of the README is compiled: each one is, line for line
//! and in order, part of a file that `cargo test` builds (an example or a
//! test). This test fails when a snippet and its file drift apart, or when
//! the README gains a Rust snippet that no compiled file carries.

use std::path::Path;

/// A snippet is recognised by a line it starts with; the file is relative
/// to the workspace root.
const SOURCES: &[(&str, &str)] = &[
    (
        "// actix-session (actix-web)",
        "integrations/actix-session/examples/actix_readme.rs",
    ),
    (
        "// tower-sessions (axum)",
        "integrations/tower-sessions/examples/tower_readme.rs",
    ),
    (
        "use session_store_axum::",
        "integrations/axum/examples/quickstart.rs",
    ),
    ("// tests/conformance.rs", "conformance/tests/readme.rs"),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("workspace root")
}

/// The bodies of the README's ```rust blocks.
fn rust_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.starts_with("```rust") => current = Some(String::new()),
            Some(_) if line.starts_with("```") => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The first non-blank line of `snippet` (trimmed) that does not occur in
/// `file` in order, if any: the snippet must be a subsequence of the file's
/// trimmed lines.
fn missing_line<'a>(snippet: &'a str, file: &str) -> Option<&'a str> {
    let mut lines = file.lines().map(str::trim);
    snippet
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .find(|wanted| !lines.any(|l| l == *wanted))
}

#[test]
fn every_readme_rust_snippet_is_part_of_a_compiled_file() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let blocks = rust_blocks(&readme);
    assert!(
        blocks.len() >= SOURCES.len(),
        "README snippets went missing"
    );
    for block in &blocks {
        let (_, path) = SOURCES
            .iter()
            .find(|(marker, _)| block.lines().any(|l| l.starts_with(marker)))
            .unwrap_or_else(|| {
                panic!("a README Rust snippet has no compiled source file:\n{block}")
            });
        let file = std::fs::read_to_string(root().join(path)).expect(path);
        if let Some(line) = missing_line(block, &file) {
            panic!("README snippet line {line:?} is not in {path} (in order)");
        }
    }
}

#[test]
fn the_check_catches_drift() {
    assert_eq!(missing_line("a\n\n  b\n", "x\n a\ny\nb\n"), None);
    assert_eq!(missing_line("b\na\n", "a\nb\n"), Some("a"));
    assert_eq!(missing_line("c\n", "a\nb\n"), Some("c"));
    let blocks =
        rust_blocks("x\n```rust,ignore\nfn a() {}\n```\n```sh\nls\n```\n```rust\nb\n```\n");
    assert_eq!(blocks, vec!["fn a() {}\n".to_owned(), "b\n".to_owned()]);
}
