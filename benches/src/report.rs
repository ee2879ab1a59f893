//! The Markdown report and its SVG charts, from the JSON results.
//!
//! Ratios are of medians: a store operation's p50 latency divided by the p50
//! of its raw baseline measured in the same run, with the same payload.
//!
//! - [`id`]: the typed result ids (store, `+enc`, `/backend`, raw baseline)
//!   and operations, parsed in one place.
//! - [`Results`]: every result of a run indexed by those ids, and the ratios.
//! - [`BUDGETS`]: the targets the report judges, as data.
//! - [`sections`]: one function per section of the report.
//! - [`http`]: the HTTP benchmark's results, section and targets.
//! - [`chart`]: the bar charts, drawn with `plotters`.

pub mod budget;
pub mod chart;
pub mod format;
pub mod http;
pub mod id;
pub mod results;
pub mod sections;

use std::fmt;

pub use budget::{Budget, BUDGETS};
pub use id::{ResultId, UnknownId};
pub use results::Results;
pub use sections::Figure;

/// Why no report could be written.
#[derive(Debug)]
pub enum ReportError {
    /// A result with an id or operation the report does not know.
    UnknownId(UnknownId),
    /// A chart could not be drawn.
    Chart(String),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::UnknownId(e) => write!(f, "{e}"),
            ReportError::Chart(e) => write!(f, "chart {e}"),
        }
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReportError::UnknownId(e) => Some(e),
            ReportError::Chart(_) => None,
        }
    }
}

impl From<UnknownId> for ReportError {
    fn from(e: UnknownId) -> Self {
        ReportError::UnknownId(e)
    }
}

/// A rendered report: the Markdown and the charts it links.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The Markdown document.
    pub markdown: String,
    /// The charts, to be written next to the document.
    pub figures: Vec<Figure>,
}

/// Renders the report. `facts` are (name, value) pairs about the machine;
/// `notes` is hand-written analysis appended verbatim; `svg_prefix` names the
/// chart files written next to the report.
///
/// # Errors
/// [`ReportError::Chart`] if `plotters` fails to draw a chart.
pub fn render(
    r: &Results,
    mode: &str,
    facts: &[(String, String)],
    notes: &str,
    svg_prefix: &str,
) -> Result<Report, ReportError> {
    let per_operation = sections::per_operation(r, svg_prefix).map_err(ReportError::Chart)?;
    let concurrency = sections::concurrency(r, svg_prefix).map_err(ReportError::Chart)?;
    let markdown = [
        sections::header(mode),
        sections::machine(facts),
        sections::not_measured(r),
        sections::targets(r, BUDGETS),
        per_operation.md,
        sections::encryption(r),
        concurrency.md,
        sections::requests(r),
        http::section(&r.http),
        sections::scale(r),
        sections::tasks(r),
        sections::notes(notes),
    ]
    .concat();
    let figures = per_operation
        .figures
        .into_iter()
        .chain(concurrency.figures)
        .collect();
    Ok(Report { markdown, figures })
}

#[cfg(test)]
mod tests {
    use super::results::tests::{conc, op, results, scale};
    use super::*;

    #[test]
    fn the_report_has_every_section_in_order_and_links_its_figures() {
        let r = results(vec![
            op("backend_load", "200B", "raw-redis-GET", 100.0),
            op("backend_load", "200B", "redis", 110.0),
            conc("load", "redis", 64, 1_000.0),
            conc("load", "raw-redis-GET", 64, 1_000.0),
            scale("load", "redis", 1_000, 100.0),
        ]);
        let facts = [("nproc".to_owned(), "2".to_owned())];
        let report = render(&r, "ci", &facts, "## Analysis\n\nfine\n", "bench").unwrap();
        let md = &report.markdown;
        let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(
            headings[..6],
            [
                "# Benchmarks",
                "## Machine",
                "## Targets",
                "## Per operation",
                "### backend load (`SessionBackend::load`, no manager)",
                "### backend save (`SessionBackend::save`, no manager)",
            ]
        );
        assert_eq!(
            headings[headings.len() - 5..],
            [
                "## Encryption wrapper",
                "## Concurrency (200B payload)",
                "### load",
                "## Scale",
                "## Analysis",
            ]
        );
        let files: Vec<&str> = report.figures.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(files, ["bench-ops-200B.svg", "bench-concurrency-load.svg"]);
        for f in &files {
            assert_eq!(md.matches(&format!("]({f})")).count(), 1, "{f}");
        }
        assert!(md.ends_with("\n## Analysis\n\nfine\n"));
    }

    #[test]
    fn an_unknown_id_is_a_report_error_naming_it() {
        let e: ReportError = Results::from_records([op("load", "200B", "mongodb", 1.0)])
            .unwrap_err()
            .into();
        assert!(
            e.to_string()
                .starts_with("unknown result id \"mongodb\": expected"),
            "{e}"
        );
    }
}
