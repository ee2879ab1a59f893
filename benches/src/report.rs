//! The Markdown report and its SVG charts.
