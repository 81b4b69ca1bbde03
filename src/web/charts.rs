//! Charts drawn as SVG on the server: no script, no external font, nothing
//! the page's CSP would have to allow. Colours are presentation attributes
//! (not `style`), text is XML-escaped, and every chart carries a `<title>`
//! and a `<desc>` with its figures for screen readers.

use std::fmt::Write as _;

/// Colours of the series, in order (distinguishable in light and dark).
const PALETTE: [&str; 8] = [
    "#0b57d0", "#e8710a", "#188038", "#a142f4", "#d93025", "#007b83", "#b06000", "#5f6368",
];

const WIDTH: u32 = 640;
const HEIGHT: u32 = 220;
const LEFT: u32 = 40;
const BOTTOM: u32 = 30;
const TOP: u32 = 10;

/// Escapes text for XML content and attribute values.
#[must_use]
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A stacked bar chart: one bar per label (a day), one colour per series,
/// with a legend below. `series` are `(name, values)`, each value list as
/// long as `labels`.
#[must_use]
pub(crate) fn stacked_bars(
    title: &str,
    labels: &[String],
    series: &[(String, Vec<u64>)],
) -> String {
    let n = labels.len().max(1);
    let totals: Vec<u64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|(_, v)| v.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT - 10;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = f64::from(plot_w) / n as f64;
    let bar = (slot * 0.8).max(1.0);
    let legend_rows = series.len().div_ceil(3);
    let height = HEIGHT + 20 * u32::try_from(legend_rows).unwrap_or(0);
    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" font-family="sans-serif" font-size="11"><title>{}</title><desc>"#,
        escape(title)
    );
    for (name, values) in series {
        let total: u64 = values.iter().sum();
        let _ = write!(svg, "{}: {total} in all. ", escape(name));
    }
    svg.push_str("</desc>");
    // Axis and the scale's top value.
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#888"/><line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#888"/><text x="{}" y="{}" text-anchor="end" fill="#888">{max}</text><text x="{}" y="{}" text-anchor="end" fill="#888">0</text>"##,
        TOP + plot_h,
        TOP + plot_h,
        WIDTH - 10,
        TOP + plot_h,
        LEFT - 4,
        TOP + 8,
        LEFT - 4,
        TOP + plot_h
    );
    for i in 0..n {
        let x = f64::from(LEFT) + slot * i as f64 + (slot - bar) / 2.0;
        let mut base = f64::from(TOP + plot_h);
        for (s, (name, values)) in series.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let h = f64::from(plot_h) * v as f64 / max as f64;
            base -= h;
            let label = labels.get(i).map_or("", String::as_str);
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{base:.1}" width="{bar:.1}" height="{h:.1}" fill="{}"><title>{} {}: {v}</title></rect>"#,
                PALETTE[s % PALETTE.len()],
                escape(name),
                escape(label)
            );
        }
    }
    // First and last day under the axis.
    if let (Some(first), Some(last)) = (labels.first(), labels.last()) {
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{}" fill="#888">{}</text><text x="{}" y="{}" text-anchor="end" fill="#888">{}</text>"##,
            HEIGHT - 12,
            escape(first),
            WIDTH - 10,
            HEIGHT - 12,
            escape(last)
        );
    }
    for (s, (name, _)) in series.iter().enumerate() {
        let col = u32::try_from(s % 3).unwrap_or(0);
        let row = u32::try_from(s / 3).unwrap_or(0);
        let x = LEFT + col * 200;
        let y = HEIGHT + 4 + row * 20;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{y}" width="10" height="10" fill="{}"/><text x="{}" y="{}" fill="currentColor">{}</text>"#,
            PALETTE[s % PALETTE.len()],
            x + 14,
            y + 9,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_day_and_names_are_escaped() {
        let labels = vec!["06-01".to_owned(), "06-02".to_owned()];
        let svg = stacked_bars(
            "Sign-ins <per day>",
            &labels,
            &[
                ("A & B <script>".to_owned(), vec![2, 4]),
                ("C".to_owned(), vec![0, 4]),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>Sign-ins &lt;per day&gt;</title>"));
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("A &amp; B &lt;script&gt;: 6 in all."));
        // The tallest stack (8) fills the plot; a zero value draws nothing.
        assert!(svg.contains(">8</text>"));
        assert_eq!(
            svg.matches("<rect x=").count(),
            3 + 2,
            "three bars, two legend keys"
        );
        assert!(!svg.contains("style="));
    }

    #[test]
    fn an_empty_chart_still_renders() {
        let svg = stacked_bars("Nothing", &[], &[]);
        assert!(svg.contains("<title>Nothing</title>") && svg.ends_with("</svg>"));
    }
}
