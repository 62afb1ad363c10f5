//! What a scenario hands back: a table for people, the same figures as JSON, and the problems found. Plus the
//! number formats the tables share.

use serde::Serialize;

use super::Scenario;
use super::rounds::Series;

/// The outcome of one scenario.
pub struct Section {
    /// The table and notes, as printed.
    pub text: String,
    /// Every figure, for `--json`.
    pub data: serde_json::Value,
    /// What went wrong (a failed run, a check that did not hold); the task fails if there is any.
    pub problems: Vec<String>,
}

impl Section {
    /// A scenario's results.
    pub fn new(scenario: Scenario, text: String, data: impl Serialize, problems: Vec<String>) -> Self {
        let data = serde_json::json!({
            "scenario": scenario,
            "status": if problems.is_empty() { "ok" } else { "problems" },
            "problems": problems,
            "results": serde_json::to_value(data).unwrap_or_else(|e| serde_json::Value::String(e.to_string())),
        });
        Self { text, data, problems }
    }

    /// Adds a line below the table, and to the JSON's `notes`.
    pub fn note(&mut self, line: &str) {
        self.text.push('\n');
        self.text.push_str(line);
        if let Some(obj) = self.data.as_object_mut() {
            let notes = obj
                .entry("notes")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let Some(notes) = notes.as_array_mut() {
                notes.push(serde_json::Value::String(line.to_owned()));
            }
        }
    }

    /// A scenario that could not run at all.
    pub fn failed(scenario: Scenario, error: &anyhow::Error) -> Self {
        let error = format!("{error:#}");
        Self {
            text: format!("{}: FAILED: {error}", scenario.name()),
            data: serde_json::json!({ "scenario": scenario, "status": "failed", "error": error }),
            problems: vec![format!("{}: {error}", scenario.name())],
        }
    }
}

/// A plain-text table: the first column left-aligned, the others right-aligned.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, row) in self.rows.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    if c == 0 {
                        format!("{cell:<w$}", w = widths[c])
                    } else {
                        format!("{cell:>w$}", w = widths[c])
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                out.push_str(&rule.join("  "));
                out.push('\n');
            }
        }
        out
    }
}

/// Requests per second with thousands separators: `48,213`.
pub fn rps(value: f64) -> String {
    let whole = value.round().max(0.0) as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as milliseconds: `1.23`.
pub fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

/// Microseconds, whole: `87`.
pub fn us(us: f64) -> String {
    format!("{us:.0}")
}

/// A ratio: `0.87×`; `—` when there is none.
pub fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| String::from("—"), |v| format!("{v:.2}×"))
}

/// A count of errors: `0`, `12`.
pub fn count(value: f64) -> String {
    format!("{value:.0}")
}

/// Notes on a series' failed runs and errors, for below a table; and the problems among them (a failed run
/// always is one; errors are one when `errors_are_problems`, as they are for the gateway).
pub fn review(series: &[Series], errors_are_problems: impl Fn(&Series) -> bool) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    for s in series {
        let failures = s.failures();
        if let Some(first) = failures.first() {
            let note = format!(
                "{}: {} of {} runs FAILED; first: {first}",
                s.target.name(),
                failures.len(),
                s.runs.len()
            );
            notes.push(note.clone());
            problems.push(note);
        }
        if s.errors_total > 0.0 {
            let note = format!(
                "{}: {} failed requests over all runs",
                s.target.name(),
                count(s.errors_total)
            );
            if errors_are_problems(s) {
                problems.push(note.clone());
            }
            notes.push(note);
        }
    }
    (notes, problems)
}

/// The medians of a series as cells: req/s, p50, p99, p99.9 (in the unit `latency` formats), errors (the total
/// over all runs), the server's CPU µs per request ([`CPU_COLUMN`]). `FAILED` when no run succeeded.
pub fn load_cells(series: &Series, latency: fn(f64) -> String) -> Vec<String> {
    match &series.median {
        Some(m) => vec![
            rps(m.rps),
            latency(m.p50_us),
            latency(m.p99_us),
            latency(m.p999_us),
            count(series.errors_total),
            cpu_us(m.cpu_us_per_request),
        ],
        None => vec![
            String::from("FAILED"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ],
    }
}

/// The header of the column [`load_cells`] ends with.
pub const CPU_COLUMN: &str = "CPU µs/req";

/// CPU µs per request, one decimal; `?` where it was not measured.
pub fn cpu_us(value: Option<f64>) -> String {
    value.map_or_else(|| String::from("?"), |v| format!("{v:.1}"))
}

/// A table and the notes below it, as one text.
pub fn with_notes(title: &str, table: &Table, notes: &[String]) -> String {
    let mut text = format!("{title}\n\n{}", table.render());
    for note in notes {
        text.push('\n');
        text.push_str(note);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rps(0.4), "0");
        assert_eq!(rps(999.0), "999");
        assert_eq!(rps(48_213.2), "48,213");
        assert_eq!(rps(1_234_567.0), "1,234,567");
        assert_eq!(ms(1234.0), "1.23");
        assert_eq!(ratio(Some(0.8712)), "0.87×");
        assert_eq!(ratio(None), "—");
    }

    #[test]
    fn aligns_columns() {
        let mut table = Table::new(&["target", "req/s"]);
        table.row(vec!["gateway".into(), "1,000".into()]);
        assert_eq!(table.render(), "target   req/s\n-------  -----\ngateway  1,000\n");
    }
}
