//! Side rows: rows of caller-defined tables written in the same transaction as entries.
//!
//! The ledger knows nothing of what the rows mean. The store prepends the `idx` column
//! (the index of the entry the row came with), so a side row commits with its leaf and
//! never without it. Table and column names are interpolated into SQL, so they are
//! checked here, on the caller's task, before a row is queued.

use crate::error::LedgerError;

/// The type of a side-table column (PostgreSQL arrays `bigint[]`, `text[]`, `bytea[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideType {
    /// A 64-bit integer.
    Int,
    /// UTF-8 text.
    Text,
    /// Bytes.
    Bytes,
}

impl SideType {
    fn pg_array(self) -> &'static str {
        match self {
            SideType::Int => "bigint[]",
            SideType::Text => "text[]",
            SideType::Bytes => "bytea[]",
        }
    }
}

/// One value of a side row; `Null` fits any column the table allows to be null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideValue {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl SideValue {
    fn kind(&self) -> &'static str {
        match self {
            SideValue::Null => "Null",
            SideValue::Int(_) => "Int",
            SideValue::Text(_) => "Text",
            SideValue::Bytes(_) => "Bytes",
        }
    }

    fn fits(&self, ty: SideType) -> bool {
        matches!(
            (self, ty),
            (SideValue::Null, _)
                | (SideValue::Int(_), SideType::Int)
                | (SideValue::Text(_), SideType::Text)
                | (SideValue::Bytes(_), SideType::Bytes)
        )
    }
}

/// A side table: its name, its columns after `idx`, and what to do on a conflict.
#[derive(Debug, PartialEq, Eq)]
pub struct SideTable {
    /// The table name, `[a-z_][a-z0-9_]*`.
    pub name: &'static str,
    /// The columns after `idx`, in order, each `[a-z_][a-z0-9_]*` and not `idx`.
    pub columns: &'static [(&'static str, SideType)],
    /// `""`, `"ON CONFLICT DO NOTHING"`, or `"ON CONFLICT (k) DO UPDATE SET c = excluded.c, ..."`.
    pub on_conflict: &'static str,
}

/// A row for a side table, sent with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideRow {
    /// The table.
    pub table: &'static SideTable,
    /// One value per column of `table.columns`, in order.
    pub values: Vec<SideValue>,
}

const MAX_IDENT: usize = 63;

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && s.len() <= MAX_IDENT
}

/// Lowercase words that would turn an ON CONFLICT clause into more than an upsert.
const FORBIDDEN_WORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "union",
    "insert",
    "delete",
    "update",
    "drop",
    "returning",
    "with",
    "into",
    "values",
    "case",
    "and",
    "or",
    "not",
    "null",
];

/// Uppercase words an ON CONFLICT clause may use.
const KEYWORDS: &[&str] = &["ON", "CONFLICT", "DO", "UPDATE", "SET", "NOTHING"];

fn on_conflict_ok(clause: &str) -> bool {
    if clause.is_empty() || clause == "ON CONFLICT DO NOTHING" {
        return true;
    }
    if !clause.starts_with("ON CONFLICT (") {
        return false;
    }
    if !clause
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | ',' | '(' | ')' | '=' | '.'))
    {
        return false;
    }
    clause
        .split([' ', ',', '(', ')', '=', '.'])
        .filter(|w| !w.is_empty())
        .all(|w| KEYWORDS.contains(&w) || (is_ident(w) && !FORBIDDEN_WORDS.contains(&w)))
}

fn bad(table: &str, what: String) -> LedgerError {
    LedgerError::SideRow(format!("side table {table:?}: {what}"))
}

impl SideTable {
    /// Checks the names and the conflict clause.
    pub fn check(&self) -> Result<(), LedgerError> {
        if !is_ident(self.name) {
            return Err(bad(
                self.name,
                "the name must match [a-z_][a-z0-9_]* (at most 63 characters)".into(),
            ));
        }
        for (i, (col, _)) in self.columns.iter().enumerate() {
            if !is_ident(col) || *col == "idx" {
                return Err(bad(
                    self.name,
                    format!("column {col:?} must match [a-z_][a-z0-9_]* and not be idx"),
                ));
            }
            if self.columns.iter().take(i).any(|(c, _)| c == col) {
                return Err(bad(self.name, format!("column {col:?} is named twice")));
            }
        }
        if !on_conflict_ok(self.on_conflict) {
            return Err(bad(
                self.name,
                format!(
                    "on_conflict {:?} must be empty, ON CONFLICT DO NOTHING, or ON CONFLICT (...) DO UPDATE SET with plain names",
                    self.on_conflict
                ),
            ));
        }
        Ok(())
    }

    fn column_list(&self) -> String {
        let mut s = String::from("idx");
        for (c, _) in self.columns {
            s.push_str(", ");
            s.push_str(c);
        }
        s
    }

    /// The single-row SQLite insert (after [`SideTable::check`]).
    pub(crate) fn sqlite_insert(&self) -> Result<String, LedgerError> {
        self.check()?;
        let marks = vec!["?"; self.columns.len() + 1].join(", ");
        Ok(format!(
            "INSERT INTO {} ({}) VALUES ({marks}) {}",
            self.name,
            self.column_list(),
            self.on_conflict
        ))
    }

    /// The multi-row PostgreSQL insert from arrays (after [`SideTable::check`]).
    pub(crate) fn pg_insert(&self) -> Result<String, LedgerError> {
        self.check()?;
        let mut arrays = String::from("$1::bigint[]");
        for (i, (_, ty)) in self.columns.iter().enumerate() {
            arrays.push_str(&format!(", ${}::{}", i + 2, ty.pg_array()));
        }
        Ok(format!(
            "INSERT INTO {} ({}) SELECT * FROM UNNEST({arrays}) {}",
            self.name,
            self.column_list(),
            self.on_conflict
        ))
    }
}

impl SideRow {
    /// Checks the table, the number of values and their types.
    pub fn check(&self) -> Result<(), LedgerError> {
        self.table.check()?;
        self.check_values()
    }

    /// Checks the number of values and their types (the table was checked already).
    pub(crate) fn check_values(&self) -> Result<(), LedgerError> {
        if self.values.len() != self.table.columns.len() {
            return Err(bad(
                self.table.name,
                format!(
                    "a row has {} values for {} columns; send one value per column",
                    self.values.len(),
                    self.table.columns.len()
                ),
            ));
        }
        for ((col, ty), value) in self.table.columns.iter().zip(&self.values) {
            if !value.fits(*ty) {
                return Err(bad(
                    self.table.name,
                    format!(
                        "column {col:?} is {ty:?} but the row holds {}",
                        value.kind()
                    ),
                ));
            }
        }
        Ok(())
    }
}
