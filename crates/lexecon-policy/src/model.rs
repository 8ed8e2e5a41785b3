//! The parsed, validated policy: terms, relations, `when` conditions, and diagnostics.

use std::collections::BTreeMap;
use std::fmt;

use lexecon_core::PolicyMode;
use serde::{Deserialize, Serialize};

/// What a term's pattern is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TermKind {
    /// The request's `actor`.
    Actor,
    /// The request's `proposed_action`.
    Action,
    /// The request's `tool` (a request without a tool matches no tool term).
    Tool,
    /// Any of the request's data classes.
    DataClass,
    /// The request's `context["resource"]`.
    Resource,
    /// One context entry: the pattern is `KEY=VALUE_GLOB`.
    Context,
}

impl TermKind {
    /// Every kind, in the order of the canonical encoding.
    pub const ALL: &'static [TermKind] = &[
        TermKind::Actor,
        TermKind::Action,
        TermKind::Tool,
        TermKind::DataClass,
        TermKind::Resource,
        TermKind::Context,
    ];

    /// The word used in policy files.
    pub const fn as_str(self) -> &'static str {
        match self {
            TermKind::Actor => "actor",
            TermKind::Action => "action",
            TermKind::Tool => "tool",
            TermKind::DataClass => "data_class",
            TermKind::Resource => "resource",
            TermKind::Context => "context",
        }
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            TermKind::Actor => 1,
            TermKind::Action => 2,
            TermKind::Tool => 3,
            TermKind::DataClass => 4,
            TermKind::Resource => 5,
            TermKind::Context => 6,
        }
    }
}

impl fmt::Display for TermKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a relation links its `from` term to its `to` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// A request matching both terms (and the `when`) may be approved.
    Permits,
    /// A request matching both terms (and the `when`) is denied, whatever permits it.
    Forbids,
    /// A request matching `from` (and the `when`) is denied unless it also matches `to`.
    Requires,
    /// Every request matching `from` also counts as matching `to`, transitively.
    Implies,
    /// A request matching both terms (and the `when`) is denied.
    Conflicts,
}

impl RelationKind {
    /// The word used in policy files.
    pub const fn as_str(self) -> &'static str {
        match self {
            RelationKind::Permits => "permits",
            RelationKind::Forbids => "forbids",
            RelationKind::Requires => "requires",
            RelationKind::Implies => "implies",
            RelationKind::Conflicts => "conflicts",
        }
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            RelationKind::Permits => 1,
            RelationKind::Forbids => 2,
            RelationKind::Requires => 3,
            RelationKind::Implies => 4,
            RelationKind::Conflicts => 5,
        }
    }
}

impl fmt::Display for RelationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named pattern over one request attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub(crate) id: String,
    pub(crate) kind: TermKind,
    pub(crate) pattern: String,
    pub(crate) description: Option<String>,
}

impl Term {
    /// The term's id, unique among terms.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// What the pattern is matched against.
    pub fn kind(&self) -> TermKind {
        self.kind
    }
    /// The pattern as written (`KEY=VALUE_GLOB` for context terms).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
    /// The optional description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

/// Conditions that must all hold for a relation to apply. An absent condition holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct When {
    pub(crate) tools: Option<Vec<String>>,
    pub(crate) max_risk_level: Option<u8>,
    pub(crate) data_classes_within: Option<Vec<String>>,
    pub(crate) context: BTreeMap<String, String>,
}

impl When {
    /// Globs one of which the request's tool must match (a request without a tool fails).
    pub fn tools(&self) -> Option<&[String]> {
        self.tools.as_deref()
    }
    /// The highest request `risk_level` allowed (a request without one fails).
    pub fn max_risk_level(&self) -> Option<u8> {
        self.max_risk_level
    }
    /// Globs that every data class of the request must match one of.
    pub fn data_classes_within(&self) -> Option<&[String]> {
        self.data_classes_within.as_deref()
    }
    /// Context keys that must be present with a value matching the glob.
    pub fn context(&self) -> &BTreeMap<String, String> {
        &self.context
    }
    /// Whether there is no condition at all.
    pub fn is_empty(&self) -> bool {
        self.tools.is_none()
            && self.max_risk_level.is_none()
            && self.data_classes_within.is_none()
            && self.context.is_empty()
    }
}

/// A directed, typed edge between two terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub(crate) id: String,
    pub(crate) kind: RelationKind,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) when: When,
}

impl Relation {
    /// The relation's id, unique among relations; it is what `reasons` name.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The kind of relation.
    pub fn kind(&self) -> RelationKind {
        self.kind
    }
    /// The id of the `from` term.
    pub fn from(&self) -> &str {
        &self.from
    }
    /// The id of the `to` term.
    pub fn to(&self) -> &str {
        &self.to
    }
    /// Its conditions (empty when the file has no `when`).
    pub fn when(&self) -> &When {
        &self.when
    }
}

/// A parsed and validated policy. Build one with [`Policy::parse`], then compile it
/// with [`CompiledPolicy::new`](crate::CompiledPolicy::new) to evaluate requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) mode: PolicyMode,
    pub(crate) terms: Vec<Term>,
    pub(crate) relations: Vec<Relation>,
}

impl Policy {
    /// The policy's name (`[policy] name`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The version the author gave it (`[policy] version`).
    pub fn version(&self) -> &str {
        &self.version
    }
    /// The policy's own mode; a request may only make it stricter.
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }
    /// The terms, in file order.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }
    /// The relations, in file order.
    pub fn relations(&self) -> &[Relation] {
        &self.relations
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is rejected.
    Error,
    /// The file is accepted, but probably not what the author meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A problem found in a policy or test file, with where it is.
///
/// Displays as `origin:line:column: error: message` (the location is left out when
/// it is unknown, i.e. `line` is 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong and what to do, lowercase, no trailing period.
    pub message: String,
    /// The file name (or any label the caller gave as origin).
    pub origin: String,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column in characters, 0 when unknown.
    pub column: u32,
}

impl Diagnostic {
    /// Whether this diagnostic rejects the file.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}: {}", self.origin, self.severity, self.message),
            (line, 0) => write!(
                f,
                "{}:{line}: {}: {}",
                self.origin, self.severity, self.message
            ),
            (line, col) => write!(
                f,
                "{}:{line}:{col}: {}: {}",
                self.origin, self.severity, self.message
            ),
        }
    }
}

/// Turns byte offsets into `line:column` for diagnostics.
#[derive(Debug)]
pub(crate) struct Locator<'a> {
    source: &'a str,
    origin: &'a str,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(source: &'a str, origin: &'a str) -> Self {
        Locator { source, origin }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub(crate) fn line_col(&self, offset: usize) -> (u32, u32) {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = self.source.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(col).unwrap_or(u32::MAX),
        )
    }

    pub(crate) fn at(
        &self,
        severity: Severity,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = span.map_or((0, 0), |s| self.line_col(s.start));
        Diagnostic {
            severity,
            message: message.into(),
            origin: self.origin.to_owned(),
            line,
            column,
        }
    }

    pub(crate) fn error(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.at(Severity::Error, Some(span), message)
    }
}
