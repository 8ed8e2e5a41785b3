//! The `/docs` page: the OpenAPI document rendered as one self-contained HTML page
//! (inline CSS, no script, nothing fetched from elsewhere).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::Api;

/// `text` with HTML's special characters escaped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Paragraphs and `- ` lists of a description, escaped, with `code` spans.
fn prose(text: &str) -> String {
    let mut out = String::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().collect();
        if !lines.is_empty() && lines.iter().all(|l| l.starts_with("- ")) {
            out.push_str("<ul>");
            for line in lines {
                let _ = write!(
                    out,
                    "<li>{}</li>",
                    inline(line.get(2..).unwrap_or_default())
                );
            }
            out.push_str("</ul>");
        } else {
            let _ = write!(out, "<p>{}</p>", inline(&lines.join(" ")));
        }
    }
    out
}

/// Escaped text with `backtick` spans as `<code>`.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", escape(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

/// An id usable in `href="#..."` (letters, digits, `-`, `_`).
fn anchor(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `value` at the end of a path of object keys (`"#0"`: the first array element), or
/// null when any step is missing.
fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    let mut current = value;
    for key in path {
        let next = if *key == "#0" {
            current.as_array().and_then(|a| a.first())
        } else {
            current.get(*key)
        };
        match next {
            Some(v) => current = v,
            None => return &NULL,
        }
    }
    current
}

/// The component a `$ref` names.
fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.rsplit('/').next()
}

struct Doc<'a> {
    doc: &'a Value,
}

impl<'a> Doc<'a> {
    fn schema(&self, name: &str) -> Option<&'a Value> {
        self.doc.get("components")?.get("schemas")?.get(name)
    }

    /// A short type for tables: `string`, `uint64 (string)`, `array of RiskFactor`, ...
    fn type_html(&self, schema: &Value) -> String {
        if let Some(name) = ref_name(schema) {
            let target = self.schema(name);
            let kind = match target {
                Some(s) if s.get("enum").is_some() || s.get("anyOf").is_some() => "enum ",
                _ => "",
            };
            return format!(
                "{kind}<a href=\"#schema-{}\">{}</a>",
                anchor(name),
                escape(name)
            );
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let parts: Vec<String> = any.iter().map(|s| self.type_html(s)).collect();
            return parts.join(" or ");
        }
        let ty = schema.get("type").and_then(Value::as_str).unwrap_or("any");
        match ty {
            "array" => format!(
                "array of {}",
                schema
                    .get("items")
                    .map_or_else(|| "any".to_owned(), |s| self.type_html(s))
            ),
            "object" => match schema.get("additionalProperties") {
                Some(v) if v.is_object() => format!("map of string to {}", self.type_html(v)),
                _ => "object".to_owned(),
            },
            "string" => {
                let mut out = "string".to_owned();
                if let Some(format) = schema.get("format").and_then(Value::as_str) {
                    out = match format {
                        "date-time" => "timestamp (RFC 3339 string)".to_owned(),
                        "int64" | "uint64" => format!("{format} (string)"),
                        other => format!("string ({})", escape(other)),
                    };
                }
                if schema.get("contentEncoding").is_some() {
                    out = "bytes (base64 string)".to_owned();
                }
                if let Some(values) = schema.get("enum").and_then(Value::as_array) {
                    let shown: Vec<String> = values
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|s| format!("<code>{}</code>", escape(s)))
                        .collect();
                    out = format!("one of {}", shown.join(", "));
                }
                out
            }
            "integer" => match (
                schema.get("maximum").and_then(Value::as_u64),
                schema.get("format"),
            ) {
                (Some(max), _) if max == u64::from(u32::MAX) => "uint32".to_owned(),
                (_, Some(f)) => escape(f.as_str().unwrap_or("integer")),
                _ => "integer".to_owned(),
            },
            other => escape(other),
        }
    }

    fn fields_table(&self, schema: &Value) -> String {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return String::new();
        };
        if props.is_empty() {
            return "<p class=\"muted\">No fields.</p>".to_owned();
        }
        let mut out = String::from(
            "<table><thead><tr><th>Field</th><th>Type</th><th>Description</th></tr></thead><tbody>",
        );
        // In the .proto's order: the order `properties` was built in is lost in the
        // sorted document, so follow the message's own required list where it has one.
        for (name, field) in ordered(schema, props) {
            let description = field
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(name),
                self.type_html(field),
                prose(description)
            );
        }
        out.push_str("</tbody></table>");
        out
    }

    /// A realistic example value for `schema`, for request examples.
    fn example(
        &self,
        schema: &Value,
        name: &str,
        depth: usize,
        seen: &mut BTreeSet<String>,
    ) -> Value {
        if depth > 6 {
            return json!({});
        }
        if let Some(target) = ref_name(schema) {
            if seen.contains(target) {
                return json!({});
            }
            let Some(resolved) = self.schema(target) else {
                return json!({});
            };
            seen.insert(target.to_owned());
            let value = self.example(resolved, name, depth + 1, seen);
            seen.remove(target);
            return value;
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            return any
                .first()
                .map_or(Value::Null, |s| self.example(s, name, depth + 1, seen));
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return values
                .iter()
                .find(|v| v.as_str() != Some("unspecified"))
                .or_else(|| values.first())
                .cloned()
                .unwrap_or(Value::Null);
        }
        let description = schema
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "object" => {
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    let mut out = Map::new();
                    for (field, field_schema) in props {
                        out.insert(
                            field.clone(),
                            self.example(field_schema, field, depth + 1, seen),
                        );
                    }
                    Value::Object(out)
                } else if let Some(values) =
                    schema.get("additionalProperties").filter(|v| v.is_object())
                {
                    let key = if name == "context" { "region" } else { "key" };
                    json!({ key: self.example(values, key, depth + 1, seen) })
                } else {
                    json!({})
                }
            }
            "array" => {
                let item_name = name.strip_suffix('s').unwrap_or(name);
                match schema.get("items") {
                    Some(items) => json!([self.example(items, item_name, depth + 1, seen)]),
                    None => json!([]),
                }
            }
            "boolean" => json!(false),
            "integer" => json!(integer_example(name)),
            "number" => json!(1.5),
            "string" => Value::String(string_example(schema, name, description)),
            _ => Value::Null,
        }
    }
}

/// The properties of a schema in declaration order when known (`required` lists every
/// field without presence in order), else in key order.
fn ordered<'a>(schema: &'a Value, props: &'a Map<String, Value>) -> Vec<(&'a String, &'a Value)> {
    let mut out: Vec<(&String, &Value)> = Vec::new();
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if let Some((k, v)) = props.get_key_value(name) {
                out.push((k, v));
            }
        }
    }
    for (k, v) in props {
        if !out.iter().any(|(seen, _)| *seen == k) {
            out.push((k, v));
        }
    }
    out
}

fn integer_example(name: &str) -> u64 {
    match name {
        "limit" | "page_size" => 100,
        "risk_level" => 2,
        "from" | "index" | "from_index" => 0,
        _ if name.ends_with("_tokens") => 500,
        _ => 1,
    }
}

/// The first `"quoted"` example after "e.g." in a description, else one by name.
fn string_example(schema: &Value, name: &str, description: &str) -> String {
    match schema.get("format").and_then(Value::as_str) {
        Some("date-time") => return "2026-01-31T12:00:00Z".to_owned(),
        Some("int64" | "uint64") => return "1".to_owned(),
        _ => {}
    }
    if schema.get("contentEncoding").is_some() {
        return "bGV4ZWNvbg==".to_owned();
    }
    let quoted = description
        .split("e.g. ")
        .nth(1)
        .and_then(|after| after.strip_prefix('"'))
        .and_then(|rest| rest.get(..rest.find('"')?));
    if let Some(quoted) = quoted {
        return quoted.to_owned();
    }
    match name {
        "actor" | "subject" => "agent:support-bot",
        "proposed_action" | "action" => "read:customer_data",
        "tool" => "crm",
        "user_intent" => "answer the customer's billing question",
        "data_class" => "pii",
        "model" => "gpt-4o-mini",
        "user_id" => "user-42",
        "role" => "analyst",
        "request_id" => "req-7f3c2a",
        "decision_id" => "dec_01JH8Z6Q4X2V0000000000000A",
        "escalation_id" | "id" => "esc_01JH8Z6Q4X2V0000000000000A",
        "token" => "lxc1.eyJ…",
        "token_id" => "tok_01JH8Z6Q4X2V0000000000000A",
        "reservation_id" => "res_01JH8Z6Q4X2V0000000000000A",
        "framework" => "eu_ai_act",
        "reason" | "comment" | "note" => "approved after review",
        "kind" => "decision",
        "region" => "eu-west-1",
        "name" => "support-bot-key",
        "username" => "alice",
        "password" => "correct horse battery staple",
        "page_token" => "",
        _ if name.ends_with("_json") => "{}",
        _ if name.ends_with("_id") => "01JH8Z6Q4X2V0000000000000A",
        _ => "example",
    }
    .to_owned()
}

/// `'...'` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

const CSS: &str = "
:root{--fg:#1d232b;--muted:#5b6573;--line:#d9dee5;--bg:#ffffff;--code:#f4f6f8;--accent:#1f5fbf;--get:#1c7c4b;--post:#1f5fbf}
*{box-sizing:border-box}
body{margin:0;font:15px/1.55 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:980px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:28px;margin:8px 0 4px}h2{font-size:22px;margin:40px 0 8px;padding-top:8px;border-top:2px solid var(--line)}
h3{font-size:17px;margin:28px 0 6px}h4{font-size:14px;margin:16px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
code{background:var(--code);padding:1px 4px;border-radius:3px}
pre{background:var(--code);padding:12px 14px;border-radius:6px;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
pre code{background:none;padding:0}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:14px}
th,td{border:1px solid var(--line);padding:6px 8px;text-align:left;vertical-align:top}
th{background:var(--code)}td p{margin:0 0 4px}td ul{margin:0;padding-left:18px}
.op{border:1px solid var(--line);border-radius:8px;padding:4px 18px 10px;margin:18px 0}
.verb{display:inline-block;min-width:52px;text-align:center;font:700 12px/22px ui-monospace,monospace;color:#fff;border-radius:4px;margin-right:8px;vertical-align:2px}
.verb.get{background:var(--get)}.verb.post{background:var(--post)}
.muted{color:var(--muted)}
nav ul{columns:2;padding-left:18px}nav li{break-inside:avoid}
@media print{main{max-width:none;padding:0}.op{break-inside:avoid-page}a{color:inherit}nav ul{columns:1}pre{white-space:pre-wrap}}
";

/// A favicon as a `data:` URI, so nothing is fetched.
const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%231f5fbf'/%3E%3Cpath d='M5 3v10h6' stroke='white' stroke-width='2' fill='none'/%3E%3C/svg%3E";

/// The page.
pub(crate) fn render(api: &Api) -> String {
    let document = crate::openapi::build(api);
    render_document(&document)
}

struct Operation<'a> {
    path: &'a str,
    verb: &'a str,
    op: &'a Value,
}

fn render_document(document: &Value) -> String {
    let doc = Doc { doc: document };
    let info = &at(document, &["info"]);
    let title = at(info, &["title"]).as_str().unwrap_or("API");
    let mut out = String::with_capacity(1 << 20);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"icon\" href=\"{}\"><style>{CSS}</style></head><body><main>\n",
        escape(title),
        escape(FAVICON)
    );
    let _ = writeln!(
        out,
        "<h1>{}</h1><p class=\"muted\">Version {} · OpenAPI {} · the machine-readable document is at <a href=\"/openapi.json\"><code>/openapi.json</code></a></p>",
        escape(title),
        escape(at(info, &["version"]).as_str().unwrap_or_default()),
        escape(at(document, &["openapi"]).as_str().unwrap_or_default())
    );
    out.push_str(&prose(
        at(info, &["description"]).as_str().unwrap_or_default(),
    ));
    out.push_str(
        "<p>The examples use two shell variables: <code>LEXECON_URL</code>, the server's \
         address with its scheme (the <code>server.listen</code> address, 127.0.0.1:50051 by default), \
         and <code>LEXECON_TOKEN</code>, an API key or session token.</p>\n",
    );

    // Operations grouped by tag, in the document's tag order.
    let mut groups: Vec<(String, String, Vec<Operation<'_>>)> = Vec::new();
    if let Some(tags) = at(document, &["tags"]).as_array() {
        for tag in tags {
            groups.push((
                at(tag, &["name"]).as_str().unwrap_or_default().to_owned(),
                at(tag, &["description"])
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                Vec::new(),
            ));
        }
    }
    if let Some(paths) = at(document, &["paths"]).as_object() {
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (verb, op) in item {
                let tag = at(op, &["tags", "#0"]).as_str().unwrap_or_default();
                if let Some(group) = groups.iter_mut().find(|g| g.0 == tag) {
                    group.2.push(Operation { path, verb, op });
                }
            }
        }
    }
    // Within a service: the RPCs (POST /v1/Service/Rpc) first, then the friendly routes.
    for group in &mut groups {
        group
            .2
            .sort_by_key(|o| (!o.path.starts_with(&format!("/v1/{}/", group.0)), o.path));
    }

    out.push_str("<nav><h2 id=\"contents\">Contents</h2><ul>");
    out.push_str("<li><a href=\"#errors\">Errors</a></li><li><a href=\"#streaming\">Streaming responses</a></li>");
    for (name, _, ops) in &groups {
        let _ = write!(
            out,
            "<li><a href=\"#tag-{}\">{}</a> <span class=\"muted\">({})</span></li>",
            anchor(name),
            escape(name),
            ops.len()
        );
    }
    out.push_str("<li><a href=\"#schemas\">Schemas</a></li></ul></nav>\n");

    render_errors(&mut out, document);

    for (name, description, ops) in &groups {
        let _ = write!(out, "<h2 id=\"tag-{}\">{}</h2>", anchor(name), escape(name));
        out.push_str(&prose(description));
        out.push_str("<ul>");
        for o in ops {
            let _ = write!(
                out,
                "<li><a href=\"#op-{}\"><code>{} {}</code></a> — {}</li>",
                anchor(at(o.op, &["operationId"]).as_str().unwrap_or_default()),
                escape(&o.verb.to_ascii_uppercase()),
                escape(o.path),
                inline(at(o.op, &["summary"]).as_str().unwrap_or_default())
            );
        }
        out.push_str("</ul>\n");
        for o in ops {
            render_operation(&mut out, &doc, o);
        }
    }

    out.push_str("<h2 id=\"schemas\">Schemas</h2>");
    if let Some(schemas) = at(document, &["components", "schemas"]).as_object() {
        for (name, schema) in schemas {
            let _ = write!(
                out,
                "<h3 id=\"schema-{}\">{}</h3>",
                anchor(name),
                escape(name)
            );
            out.push_str(&prose(
                at(schema, &["description"]).as_str().unwrap_or_default(),
            ));
            if schema.get("properties").is_some() {
                out.push_str(&doc.fields_table(schema));
            } else if schema.get("enum").is_none() && schema.get("anyOf").is_none() {
                let _ = write!(out, "<p>Type: {}</p>", doc.type_html(schema));
            }
        }
    }
    out.push_str("</main></body></html>\n");
    out
}

fn render_errors(out: &mut String, document: &Value) {
    out.push_str("<h2 id=\"errors\">Errors</h2><p>Every error has an HTTP status mapped from the gRPC status and this body; <code>field</code> is absent or null when the request as a whole is wrong:</p>");
    out.push_str("<pre><code>{\"error\": {\"code\": \"invalid_argument\", \"message\": \"actor must not be empty\", \"field\": \"actor\"}}</code></pre>");
    out.push_str("<table><thead><tr><th>Status</th><th>When</th></tr></thead><tbody>");
    for (status, name, _) in crate::openapi::ERRORS {
        let description = at(document, &["components", "responses", *name, "description"])
            .as_str()
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(status),
            inline(description)
        );
    }
    out.push_str("</tbody></table>\n");
    out.push_str("<h2 id=\"streaming\">Streaming responses</h2><p>Server-streaming RPCs (<code>AuditService/ExportAudit</code>, <code>OversightService/WatchEvents</code>) answer <code>application/x-ndjson</code>: one JSON message per line. The query parameters <code>max_events</code> (at least 1) and <code>wait_ms</code> (0 to 300000, default 30000) bound the response; it ends when either is reached or when the stream ends.</p>\n");
}

fn render_operation(out: &mut String, doc: &Doc<'_>, o: &Operation<'_>) {
    let op = o.op;
    let id = at(op, &["operationId"]).as_str().unwrap_or_default();
    let _ = write!(
        out,
        "<section class=\"op\" id=\"op-{}\"><h3><span class=\"verb {}\">{}</span><code>{}</code></h3>",
        anchor(id),
        escape(o.verb),
        escape(&o.verb.to_ascii_uppercase()),
        escape(o.path)
    );
    let _ = write!(
        out,
        "<p><strong>{}</strong> <span class=\"muted\">operationId <code>{}</code></span></p>",
        inline(at(op, &["summary"]).as_str().unwrap_or_default()),
        escape(id)
    );
    if let Some(description) = at(op, &["description"]).as_str() {
        out.push_str(&prose(description));
    }
    let public = at(op, &["security"]).as_array().is_some_and(Vec::is_empty);
    if public {
        out.push_str("<p class=\"muted\">No token needed.</p>");
    }

    let parameters = at(op, &["parameters"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !parameters.is_empty() {
        out.push_str("<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th><th>Description</th></tr></thead><tbody>");
        for p in &parameters {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(at(p, &["name"]).as_str().unwrap_or_default()),
                escape(at(p, &["in"]).as_str().unwrap_or_default()),
                doc.type_html(at(p, &["schema"])),
                prose(at(p, &["description"]).as_str().unwrap_or_default())
            );
        }
        out.push_str("</tbody></table>");
    }

    // The example request.
    let mut url = o.path.to_owned();
    let mut query: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &parameters {
        let name = at(p, &["name"]).as_str().unwrap_or_default();
        let value = doc.example(at(p, &["schema"]), name, 0, &mut seen);
        let text = match &value {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .first()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default(),
            other => other.to_string(),
        };
        if at(p, &["in"]) == "path" {
            url = url.replace(&format!("{{{name}}}"), &text);
        } else if name != "wait_ms" && name != "page_token" {
            query.push(format!("{name}={text}"));
        }
    }
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let body = at(op, &["requestBody", "content", "application/json"])
        .as_object()
        .map(|media| {
            media.get("example").cloned().unwrap_or_else(|| {
                doc.example(
                    media.get("schema").unwrap_or(&Value::Null),
                    "",
                    0,
                    &mut seen,
                )
            })
        });
    let mut curl = "curl -sS ".to_owned();
    if o.verb == "post" {
        curl.push_str("-X POST ");
    }
    let _ = write!(curl, "\"$LEXECON_URL{url}\"");
    if !public {
        curl.push_str(" \\\n  -H \"Authorization: Bearer $LEXECON_TOKEN\"");
    }
    if let Some(body) = &body {
        let compact = serde_json::to_string(body).unwrap_or_default();
        let _ = write!(
            curl,
            " \\\n  -H \"Content-Type: application/json\" \\\n  -d {}",
            shell_quote(&compact)
        );
    }
    if let Some(body) = &body {
        out.push_str("<h4>Request body</h4>");
        if let Some(name) = ref_name(at(
            op,
            &["requestBody", "content", "application/json", "schema"],
        )) {
            let _ = write!(
                out,
                "<p>A <a href=\"#schema-{}\">{}</a> object; every field is optional. Example:</p>",
                anchor(name),
                escape(name)
            );
        }
        let pretty = serde_json::to_string_pretty(body).unwrap_or_default();
        let _ = write!(out, "<pre><code>{}</code></pre>", escape(&pretty));
    }
    let _ = write!(
        out,
        "<h4>Example</h4><pre><code>{}</code></pre>",
        escape(&curl)
    );

    // The answer.
    let ok = &at(op, &["responses", "200"]);
    out.push_str("<h4>Response</h4>");
    out.push_str(&prose(
        at(ok, &["description"]).as_str().unwrap_or_default(),
    ));
    let schema = at(ok, &["content", "application/json", "schema"])
        .as_object()
        .or_else(|| at(ok, &["content", "application/x-ndjson", "schema"]).as_object())
        .map(|s| Value::Object(s.clone()));
    if let Some(schema) = schema {
        let resolved = ref_name(&schema)
            .and_then(|n| doc.schema(n))
            .unwrap_or(&schema);
        out.push_str(&doc.fields_table(resolved));
    }
    let statuses: Vec<&str> = at(op, &["responses"])
        .as_object()
        .map(|r| {
            r.keys()
                .filter(|k| *k != "200")
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<p class=\"muted\">Errors: {} (<a href=\"#errors\">format</a>).</p></section>",
        escape(&statuses.join(", "))
    );
}
