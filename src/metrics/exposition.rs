//! The Prometheus text exposition format, version 0.0.4: for each metric
//! family a `# HELP` and a `# TYPE` line, then one line per series,
//! `name{label="value",…} number`.

use std::fmt::Write as _;

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A document being written.
#[derive(Debug, Default)]
pub(super) struct Exposition {
    out: String,
}

/// A metric's type.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Exposition {
    /// Starts a metric family.
    pub(super) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        // HELP text escapes only backslash and newline.
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample with an integer value.
    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.out, " {value}");
    }

    /// One sample with a floating-point value.
    pub(super) fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.out, " {value}");
    }

    fn name_and_labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.out.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(label);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// The finished document.
    pub(super) fn finish(self) -> String {
        self.out
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_follow_the_format() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "Things\ncounted.");
        e.sample("x_total", &[("a", "1"), ("b", "q\"u\\o\nte")], 7);
        e.sample("x_total", &[], 0);
        e.family("y_seconds", Kind::Histogram, "Time.");
        e.sample_f64("y_seconds_sum", &[("a", "1")], 0.25);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things\\ncounted.\n# TYPE x_total counter\n\
             x_total{a=\"1\",b=\"q\\\"u\\\\o\\nte\"} 7\nx_total 0\n\
             # HELP y_seconds Time.\n# TYPE y_seconds histogram\ny_seconds_sum{a=\"1\"} 0.25\n"
        );
    }
}
