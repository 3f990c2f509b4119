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
use serde::Serialize;
use serde_json::{Map, Value};

/// Deepest nesting flattened into dotted field names; deeper values are shown as compact JSON.
const FLATTEN_DEPTH_MAX: usize = 4;
/// Longest cell, in characters, before it is cut with `…` (the JSON output is never cut).
const CELL_CHARS_MAX: usize = 72;
/// Most items of a list of plain values shown in one cell.
const LIST_ITEMS_MAX: usize = 8;
/// Most rows of one table; the rest are counted in a last line (`--json` prints them all).
const ROWS_MAX: usize = 500;

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
        let value = serde_json::to_value(value)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            println!("{}", human(&value).trim_end());
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
                .map(|header| Cell::new(header.to_uppercase())),
        );
    table
}

/// A FIELD/VALUE table of `rows`, in their order.
pub fn fields(rows: &[(&str, String)]) -> String {
    let mut table = table(&["field", "value"]);
    for (name, value) in rows {
        table.add_row(vec![name.to_string(), value.clone()]);
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
    items.iter().map(text).collect::<Vec<_>>().join("\n")
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
        out.push_str(&title.to_uppercase());
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
    for item in items {
        for key in item.as_object().into_iter().flat_map(Map::keys) {
            if !columns.contains(&key.as_str()) {
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
        out.push_str(&format!(
            "\n… {} more (--json shows all)",
            items.len() - ROWS_MAX
        ));
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

/// A plain value as text (`-` for null, strings unquoted and [`printable`]); anything else
/// compact JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => printable(text),
        other => other.to_string(),
    }
}

/// `text` with every control character escaped (`\n`, `\u{1b}`): strings come from other
/// people (template authors, providers), and a raw escape sequence would drive the reader's
/// terminal or a newline would forge a row.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c.is_control() {
            true => out.extend(c.escape_default()),
            false => out.push(c),
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
}
