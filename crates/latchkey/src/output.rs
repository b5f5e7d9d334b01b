//! Readable output: aligned tables for lists, `key: value` lines for single
//! records, and writing to stdout without panicking on a closed pipe.

use std::fmt::Write as _;
use std::io::Write as _;

use latchkey_types::JsonObject;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What is shown for an absent value.
pub const NONE: &str = "-";

/// A table with a header row; columns are as wide as their widest cell.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I) -> &mut Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells
            .into_iter()
            .map(|c| clean(&c.into()))
            .take(self.headers.len())
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
        self
    }

    /// The table as text: two spaces between columns, no trailing spaces,
    /// one line per row, each ending with a newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w - width(cell)));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A single record as `key: value` lines, values aligned in one column.
#[derive(Debug, Clone, Default)]
pub struct Record {
    fields: Vec<(&'static str, String)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Record {
        Record::default()
    }

    /// Adds a field.
    pub fn field(&mut self, key: &'static str, value: impl Into<String>) -> &mut Record {
        self.fields.push((key, clean(&value.into())));
        self
    }

    /// The record as text, one field per line, each ending with a newline.
    pub fn render(&self) -> String {
        let key_width = self.fields.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value) in &self.fields {
            let pad = key_width - width(key);
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{key}: {:pad$}{value}", "");
        }
        out
    }
}

/// An optional string, or [`NONE`].
pub fn opt(value: Option<&str>) -> String {
    value.unwrap_or(NONE).to_owned()
}

/// A timestamp as RFC 3339.
pub fn time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// An optional timestamp as RFC 3339, or [`NONE`].
pub fn opt_time(t: Option<OffsetDateTime>) -> String {
    t.map(time).unwrap_or_else(|| NONE.to_owned())
}

/// A JSON object on one line (`{}` when empty).
pub fn json_inline(obj: &JsonObject) -> String {
    serde_json::to_string(obj).unwrap_or_else(|_| "{}".to_owned())
}

/// A list of names, comma-separated, or [`NONE`] when empty.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        NONE.to_owned()
    } else {
        items.join(", ")
    }
}

/// Writes `text` to stdout, adding a final newline when it lacks one.
/// A closed pipe (`latchkey … | head`) ends output quietly instead of
/// panicking as `println!` would.
pub fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let result = out.write_all(text.as_bytes()).and_then(|()| {
        if text.ends_with('\n') || text.is_empty() {
            Ok(())
        } else {
            out.write_all(b"\n")
        }
    });
    match result.and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Folds a message that spans several lines (a TOML parse error quotes the
/// offending line under a gutter of `|`) into one line: the quoted snippet
/// is dropped and the remaining lines are joined with `: `.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_snippet(line))
        .collect::<Vec<_>>()
        .join(": ")
}

/// Whether `line` is a quoted source line such as `1 | bogus = 1` or `| ^^^`.
fn is_snippet(line: &str) -> bool {
    line.split_once('|')
        .is_some_and(|(gutter, _)| gutter.trim().chars().all(|c| c.is_ascii_digit()))
}

/// Display width of a cell. Counting characters is right for the ASCII that
/// ids and timestamps are made of, and close enough for names.
fn width(s: &str) -> usize {
    s.chars().count()
}

/// Escapes control characters (newlines, tabs, terminal escape sequences)
/// in server-supplied text, so a name cannot break the layout or drive the
/// terminal.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn tables_align_columns_to_the_widest_cell() {
        let mut t = Table::new(&["ID", "NAME", "CASCADE"]);
        t.row(["acme", "Acme Corporation", "true"]);
        t.row(["eu-west-1", "EU", "false"]);
        assert_eq!(
            t.render(),
            "ID         NAME              CASCADE\n\
             acme       Acme Corporation  true\n\
             eu-west-1  EU                false\n"
        );
    }

    #[test]
    fn tables_have_no_trailing_spaces_and_pad_short_rows() {
        let mut t = Table::new(&["A", "B"]);
        t.row(["long value"]);
        t.row(["x", ""]);
        let text = t.render();
        assert!(text.lines().all(|l| l == l.trim_end()), "{text:?}");
        assert_eq!(text, "A           B\nlong value\nx\n");
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let t = Table::new(&["ID", "NAME"]);
        assert_eq!(t.render(), "ID  NAME\n");
    }

    #[test]
    fn records_align_values() {
        let mut r = Record::new();
        r.field("id", "acme")
            .field("parentId", opt(None))
            .field("createdAt", time(datetime!(2025-01-02 03:04:05 UTC)));
        assert_eq!(
            r.render(),
            "id:        acme\n\
             parentId:  -\n\
             createdAt: 2025-01-02T03:04:05Z\n"
        );
    }

    #[test]
    fn control_characters_from_the_server_are_escaped() {
        let mut t = Table::new(&["NAME"]);
        t.row(["evil\nrow\u{1b}[31m"]);
        assert_eq!(t.render(), "NAME\nevil\\nrow\\u{1b}[31m\n");
        let mut r = Record::new();
        r.field("name", "a\tb");
        assert_eq!(r.render(), "name: a\\tb\n");
    }

    #[test]
    fn small_formatters() {
        assert_eq!(list(&[]), "-");
        assert_eq!(list(&["a".into(), "b".into()]), "a, b");
        assert_eq!(opt_time(None), "-");
        let mut obj = JsonObject::new();
        assert_eq!(json_inline(&obj), "{}");
        obj.insert("k".into(), serde_json::json!(1));
        assert_eq!(json_inline(&obj), r#"{"k":1}"#);
    }

    #[test]
    fn multi_line_messages_fold_into_one_line() {
        let toml = "configuration: ./latchkey.toml: TOML parse error at line 1, column 1\n  |\n1 | bogus = 1\n  | ^^^^^\nunknown field `bogus`, expected one of `listen`\n";
        assert_eq!(
            one_line(toml),
            "configuration: ./latchkey.toml: TOML parse error at line 1, column 1: unknown field `bogus`, expected one of `listen`"
        );
        assert_eq!(one_line("simple: message"), "simple: message");
        assert_eq!(one_line("a || b"), "a || b");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut t = Table::new(&["NAME", "X"]);
        t.row(["Zürich", "1"]);
        t.row(["Bern", "2"]);
        assert_eq!(t.render(), "NAME    X\nZürich  1\nBern    2\n");
    }
}
