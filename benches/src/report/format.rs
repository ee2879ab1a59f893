//! How numbers and text appear in the report.

/// Nanoseconds as µs or ms (`—` when not finite).
pub fn ns(ns: f64) -> String {
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

/// Operations per second, shortened with `k` from 1000 on.
pub fn ops(o: f64) -> String {
    if o >= 1e5 {
        format!("{:.0}k", o / 1e3)
    } else if o >= 1e3 {
        format!("{:.1}k", o / 1e3)
    } else {
        format!("{o:.0}")
    }
}

/// A ratio as `1.23×`, `—` when not measured.
pub fn ratio(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}×"))
}

/// Nanoseconds or `—` when not measured.
pub fn maybe_ns(v: Option<f64>) -> String {
    v.map_or("—".into(), ns)
}

/// Seconds as `1.23 s`, or milliseconds below one second.
pub fn secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.2} ms", s * 1e3)
    }
}

/// Escapes `&`, `<` and `>` (for Markdown table cells and SVG text).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_switch_units_and_precision() {
        assert_eq!(ns(150.0), "0.1 µs");
        assert_eq!(ns(9_949.0), "9.9 µs");
        assert_eq!(ns(10_000.0), "10 µs");
        assert_eq!(ns(999_000.0), "999 µs");
        assert_eq!(ns(1_234_567.0), "1.23 ms");
        assert_eq!(ns(f64::NAN), "—");
        assert_eq!(maybe_ns(None), "—");
    }

    #[test]
    fn throughput_ratios_and_seconds() {
        assert_eq!(ops(950.4), "950");
        assert_eq!(ops(17_049.0), "17.0k");
        assert_eq!(ops(5_608_000.0), "5608k");
        assert_eq!(ratio(Some(1.104)), "1.10×");
        assert_eq!(ratio(None), "—");
        assert_eq!(secs(23.8), "23.80 s");
        assert_eq!(secs(0.000_03), "0.03 ms");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("a<b> & c"), "a&lt;b&gt; &amp; c");
    }
}
