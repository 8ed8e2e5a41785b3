//! The OpenAPI 3.1 document, generated from the descriptors (comments included).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::params::takes_param;
use crate::transcode::{is_well_known, screaming_snake, short_name};
use crate::{Api, Method, Route, Verb};

/// The seed's example body (README of seed 001), with an action name validation accepts.
pub(crate) fn decide_example() -> Value {
    json!({
        "actor": "agent:support-bot",
        "proposed_action": "read:customer_data",
        "tool": "crm",
        "user_intent": "answer the customer's billing question",
        "data_classes": ["pii", "financial"],
        "risk_level": 2,
        "policy_mode": "strict"
    })
}

/// The error statuses every operation can answer, with their component names.
pub(crate) const ERRORS: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "The request is invalid (`invalid_argument`, `out_of_range`): the body is not JSON or not an object, a field is unknown or of the wrong type, or the server refused a value. `field` names the field path when there is one.",
    ),
    (
        "401",
        "Unauthorized",
        "No valid credentials (`unauthenticated`): send `Authorization: Bearer <token>`.",
    ),
    (
        "403",
        "Forbidden",
        "The credentials may not do this (`permission_denied`).",
    ),
    (
        "404",
        "NotFound",
        "What the request names does not exist (`not_found`).",
    ),
    (
        "409",
        "Conflict",
        "It exists already, or a concurrent change won (`already_exists`, `aborted`).",
    ),
    (
        "412",
        "PreconditionFailed",
        "The system is not in a state that allows this (`failed_precondition`).",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than the limit: 1 MiB, or ⌈4/3 · evidence.max_bytes⌉ + 64 KiB for RegisterEvidence. Nothing was done.",
    ),
    (
        "429",
        "TooManyRequests",
        "A limit was reached (`resource_exhausted`); retry after `Retry-After` seconds.",
    ),
    (
        "500",
        "InternalError",
        "The server failed (`internal`, `unknown`, `unimplemented`, `data_loss`, `cancelled`).",
    ),
    (
        "503",
        "Unavailable",
        "The server cannot answer now (`unavailable`): starting, draining, or a dependency is down; retry after `Retry-After` seconds, with the same `request_id` where the request has one.",
    ),
    (
        "504",
        "GatewayTimeout",
        "The deadline passed before the server answered (`deadline_exceeded`).",
    ),
];

/// Statuses that carry `Retry-After`.
fn has_retry_after(status: &str) -> bool {
    status == "429" || status == "503"
}

/// Leading comments of every descriptor, by file and source path.
pub(crate) struct Comments(HashMap<(String, Vec<i32>), String>);

impl Comments {
    pub(crate) fn new(pool: &DescriptorPool) -> Comments {
        let mut map = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else {
                continue;
            };
            for location in &info.location {
                if let Some(text) = &location.leading_comments {
                    let text = clean_comment(text);
                    if !text.is_empty() {
                        map.insert((file.name().to_owned(), location.path.clone()), text);
                    }
                }
            }
        }
        Comments(map)
    }

    fn get(&self, file: &str, path: &[i32]) -> Option<&str> {
        self.0
            .get(&(file.to_owned(), path.to_vec()))
            .map(String::as_str)
    }

    pub(crate) fn message(&self, m: &MessageDescriptor) -> Option<&str> {
        self.get(m.parent_file().name(), m.path())
    }

    pub(crate) fn field(&self, f: &FieldDescriptor) -> Option<&str> {
        self.get(f.parent_message().parent_file().name(), f.path())
    }

    fn enumeration(&self, e: &EnumDescriptor) -> Option<&str> {
        self.get(e.parent_file().name(), e.path())
    }

    fn enum_value(
        &self,
        e: &EnumDescriptor,
        v: &prost_reflect::EnumValueDescriptor,
    ) -> Option<&str> {
        self.get(e.parent_file().name(), v.path())
    }

    pub(crate) fn method(&self, m: &Method) -> Option<&str> {
        let d = m.descriptor();
        self.get(d.parent_file().name(), d.path())
    }

    fn service(&self, m: &Method) -> Option<&str> {
        let s = m.descriptor().parent_service();
        self.get(s.parent_file().name(), s.path())
    }
}

/// A `//` comment block as one paragraph per blank-line-separated block.
fn clean_comment(text: &str) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs.join("\n\n")
}

/// The first sentence of a description, for summaries.
pub(crate) fn first_sentence(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.find(". ") {
        Some(i) => line.get(..=i).unwrap_or(line).to_owned(),
        None => line.to_owned(),
    }
}

/// Whether a schema is for requests (what callers may send) or responses (what the
/// server writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Input,
    Output,
}

/// Names of schema components and which forms exist.
struct Names {
    /// Messages (full name) reachable from some RPC's request.
    input_messages: BTreeSet<String>,
    /// Messages reachable from some RPC's response (or from nothing).
    output_messages: BTreeSet<String>,
    input_enums: BTreeSet<String>,
}

fn base_name(full_name: &str, package: &str) -> String {
    full_name
        .strip_prefix(package)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(full_name)
        .to_owned()
}

impl Names {
    fn new(api: &Api) -> Names {
        let mut input_messages = BTreeSet::new();
        let mut input_enums = BTreeSet::new();
        let mut output_messages = BTreeSet::new();
        let mut output_enums = BTreeSet::new();
        for m in api.methods() {
            reach(m.input(), &mut input_messages, &mut input_enums);
            reach(m.output(), &mut output_messages, &mut output_enums);
        }
        // Messages no RPC uses are documented in their response form.
        for m in api.pool.all_messages() {
            if !is_well_known(&m) && !m.is_map_entry() && !input_messages.contains(m.full_name()) {
                output_messages.insert(m.full_name().to_owned());
            }
        }
        Names {
            input_messages,
            output_messages,
            input_enums,
        }
    }

    /// The component name of a message in a form: its name, and `<Name>Input` for the
    /// request form of a message that responses use too.
    fn message(&self, m: &MessageDescriptor, form: Form) -> String {
        let base = base_name(m.full_name(), m.package_name());
        match form {
            Form::Input if self.output_messages.contains(m.full_name()) => format!("{base}Input"),
            _ => base,
        }
    }

    fn enumeration(&self, e: &EnumDescriptor, form: Form) -> String {
        let base = base_name(e.full_name(), e.package_name());
        match form {
            Form::Input => format!("{base}Input"),
            Form::Output => base,
        }
    }
}

fn reach(m: &MessageDescriptor, messages: &mut BTreeSet<String>, enums: &mut BTreeSet<String>) {
    if is_well_known(m) || !messages.insert(m.full_name().to_owned()) {
        return;
    }
    for field in m.fields() {
        let kind = if field.is_map() {
            field
                .kind()
                .as_message()
                .map_or(Kind::String, |e| e.map_entry_value_field().kind())
        } else {
            field.kind()
        };
        match kind {
            Kind::Message(inner) => reach(&inner, messages, enums),
            Kind::Enum(e) => {
                enums.insert(e.full_name().to_owned());
            }
            _ => {}
        }
    }
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The schema of one value of `kind`.
fn kind_schema(kind: &Kind, form: Form, names: &Names) -> Value {
    match kind {
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => match form {
            Form::Input => json!({
                "type": "string",
                "contentEncoding": "base64",
                "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
            }),
            Form::Output => json!({"type": "string", "contentEncoding": "base64"}),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX})
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer", "minimum": 0, "maximum": u32::MAX})
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => match form {
            Form::Input => json!({"anyOf": [
                {"type": "string", "pattern": "^-?(0|[1-9][0-9]{0,17})$"},
                {"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}
            ]}),
            Form::Output => json!({"type": "string", "pattern": "^-?[0-9]+$", "format": "int64"}),
        },
        Kind::Uint64 | Kind::Fixed64 => match form {
            Form::Input => json!({"anyOf": [
                {"type": "string", "pattern": "^(0|[1-9][0-9]{0,18})$"},
                {"type": "integer", "minimum": 0, "maximum": u64::MAX}
            ]}),
            Form::Output => json!({"type": "string", "pattern": "^[0-9]+$", "format": "uint64"}),
        },
        Kind::Double | Kind::Float => match form {
            Form::Input => json!({"type": "number"}),
            Form::Output => json!({"anyOf": [
                {"type": "number"},
                {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}
            ]}),
        },
        Kind::Enum(e) => reference(&names.enumeration(e, form)),
        Kind::Message(m) => {
            if m.full_name() == "google.protobuf.Timestamp" {
                json!({"type": "string", "format": "date-time"})
            } else if is_well_known(m) {
                json!({})
            } else {
                reference(&names.message(m, form))
            }
        }
    }
}

/// The schema of a field, with its comment as description.
fn field_schema(field: &FieldDescriptor, form: Form, names: &Names, comments: &Comments) -> Value {
    let kind = field.kind();
    let mut schema = if field.is_map() {
        let (key_kind, value_kind) = kind.as_message().map_or((Kind::String, Kind::String), |e| {
            (
                e.map_entry_key_field().kind(),
                e.map_entry_value_field().kind(),
            )
        });
        let mut map = json!({
            "type": "object",
            "additionalProperties": kind_schema(&value_kind, form, names)
        });
        let key_pattern = match key_kind {
            Kind::String => None,
            Kind::Bool => Some("^(true|false)$"),
            Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => Some("^[0-9]+$"),
            _ => Some("^-?[0-9]+$"),
        };
        if let (Some(pattern), Some(obj)) = (key_pattern, map.as_object_mut()) {
            obj.insert("propertyNames".into(), json!({"pattern": pattern}));
        }
        map
    } else if field.is_list() {
        json!({"type": "array", "items": kind_schema(&kind, form, names)})
    } else {
        kind_schema(&kind, form, names)
    };
    if let (Some(text), Some(obj)) = (comments.field(field), schema.as_object_mut()) {
        obj.insert("description".into(), Value::String(text.to_owned()));
    }
    schema
}

fn message_schema(m: &MessageDescriptor, form: Form, names: &Names, comments: &Comments) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in m.fields() {
        properties.insert(
            field.name().to_owned(),
            field_schema(&field, form, names, comments),
        );
        if form == Form::Output && !field.supports_presence() {
            required.push(Value::String(field.name().to_owned()));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    let mut description = comments.message(m).unwrap_or_default().to_owned();
    if form == Form::Input {
        let note = "Fields may also be given by their lowerCamelCase JSON names; null means the default; unknown fields are refused.";
        description = if description.is_empty() {
            note.to_owned()
        } else {
            format!("{description}\n\n{note}")
        };
    }
    if !description.is_empty() {
        schema.insert("description".into(), Value::String(description));
    }
    schema.insert("properties".into(), Value::Object(properties));
    match form {
        Form::Input => {
            schema.insert("additionalProperties".into(), json!(false));
        }
        Form::Output => {
            if !required.is_empty() {
                schema.insert("required".into(), Value::Array(required));
            }
        }
    }
    Value::Object(schema)
}

fn enum_schema(e: &EnumDescriptor, form: Form, comments: &Comments) -> Value {
    let shorts: Vec<String> = e.values().map(|v| short_name(e, v.name())).collect();
    let mut description = comments.enumeration(e).unwrap_or_default().to_owned();
    let mut lines = Vec::new();
    for v in e.values() {
        let short = short_name(e, v.name());
        match comments.enum_value(e, &v) {
            Some(text) => lines.push(format!(
                "- `{short}` ({}, {}): {text}",
                v.name(),
                v.number()
            )),
            None => lines.push(format!("- `{short}` ({}, {})", v.name(), v.number())),
        }
    }
    if !lines.is_empty() {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&lines.join("\n"));
    }
    match form {
        Form::Output => json!({
            "type": "string",
            "enum": shorts,
            "description": description,
        }),
        Form::Input => {
            let fulls: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
            let numbers: Vec<i32> = e.values().map(|v| v.number()).collect();
            let prefix = screaming_snake(e.name());
            json!({
                "anyOf": [
                    {"type": "string", "enum": shorts},
                    {"type": "string", "enum": fulls},
                    {"type": "integer", "enum": numbers}
                ],
                "description": format!(
                    "{description}\n\nSent as the short name (`{}`), the full name (`{prefix}_...`) or the number; names are case-insensitive.",
                    shorts.iter().find(|s| s.as_str() != "unspecified").map_or("", String::as_str)
                ),
            })
        }
    }
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Every error: an HTTP status mapped from the gRPC status (contract §9), and this body.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "The gRPC status code's lowercase name: invalid_argument, out_of_range, unauthenticated, permission_denied, not_found, already_exists, aborted, failed_precondition, resource_exhausted, unavailable, deadline_exceeded, internal, ...",
                        "examples": ["invalid_argument"]
                    },
                    "message": {
                        "type": "string",
                        "description": "What is wrong and what to do; starts with the field path when there is one.",
                        "examples": ["actor must not be empty"]
                    },
                    "field": {
                        "type": ["string", "null"],
                        "description": "The request field the error is about (`llm.user_id`, `data_classes[1]`); absent or null when the request as a whole is wrong.",
                        "examples": ["actor"]
                    }
                }
            }
        }
    })
}

fn error_responses(statuses: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for (status, name, _) in ERRORS {
        if statuses.is_empty() || statuses.contains(status) {
            out.insert(
                (*status).to_owned(),
                json!({"$ref": format!("#/components/responses/{name}")}),
            );
        }
    }
    out
}

fn streaming_parameters() -> Value {
    json!([
        {
            "name": "max_events",
            "in": "query",
            "required": false,
            "description": "End the response after this many messages (at least 1). Without it, only wait_ms and the end of the stream bound the response.",
            "schema": {"type": "integer", "minimum": 1}
        },
        {
            "name": "wait_ms",
            "in": "query",
            "required": false,
            "description": "End the response this many milliseconds after the request arrived (0 to 300000; default 30000).",
            "schema": {"type": "integer", "minimum": 0, "maximum": 300_000, "default": 30_000}
        }
    ])
}

fn ok_response(m: &Method, names: &Names) -> Value {
    let schema = reference(&names.message(m.output(), Form::Output));
    if m.server_streaming() {
        json!({
            "description": format!(
                "A stream of {} messages as NDJSON: one JSON object per line, each ending in a newline. The response ends when max_events messages were written, when wait_ms has passed, or when the stream ends. An error after the first line ends the body early; an error before it is an ordinary error response.",
                m.output().name()
            ),
            "content": {"application/x-ndjson": {"schema": schema}}
        })
    } else {
        json!({
            "description": format!("The {} message as JSON.", m.output().name()),
            "content": {"application/json": {"schema": schema}}
        })
    }
}

fn request_body(m: &Method, names: &Names) -> Value {
    let mut media = Map::new();
    media.insert(
        "schema".into(),
        reference(&names.message(m.input(), Form::Input)),
    );
    if m.name() == "DecisionService/Decide" {
        media.insert("example".into(), decide_example());
    }
    json!({
        "required": false,
        "description": format!(
            "The {} message as JSON; an empty body is the empty message.",
            m.input().name()
        ),
        "content": {"application/json": Value::Object(media)}
    })
}

/// `GetGaps_v1_compliance_framework_gaps`: a unique operationId for a friendly route.
fn route_operation_id(route: &Route, m: &Method) -> String {
    let slug: String = route
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let slug: Vec<&str> = slug.split('_').filter(|s| !s.is_empty()).collect();
    format!("{}_{}_via_{}", m.service(), m.rpc(), slug.join("_"))
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn route_parameters(route: &Route, m: &Method, names: &Names, comments: &Comments) -> Vec<Value> {
    let in_path = path_params(route.path);
    let mut out = Vec::new();
    for field in m.input().fields() {
        let name = route
            .aliases
            .iter()
            .find(|(_, f)| *f == field.name())
            .map_or(field.name(), |(p, _)| *p);
        let is_path = in_path.contains(&name);
        if route.verb == Verb::Post && !is_path {
            continue;
        }
        if !takes_param(&field) {
            continue;
        }
        let mut schema = field_schema(&field, Form::Input, names, comments);
        let description = schema
            .as_object_mut()
            .and_then(|o| o.remove("description"))
            .unwrap_or(Value::Null);
        let mut param = Map::new();
        param.insert("name".into(), json!(name));
        param.insert("in".into(), json!(if is_path { "path" } else { "query" }));
        param.insert("required".into(), json!(is_path));
        if let Value::String(text) = description {
            param.insert("description".into(), Value::String(text));
        }
        if field.is_list() {
            param.insert("style".into(), json!("form"));
            param.insert("explode".into(), json!(true));
        }
        if is_path {
            // A path segment is never empty.
            if let Some(obj) = schema
                .as_object_mut()
                .filter(|o| o.get("type") == Some(&json!("string")))
            {
                obj.insert("minLength".into(), json!(1));
            }
        }
        param.insert("schema".into(), schema);
        out.push(Value::Object(param));
    }
    out
}

fn operation(
    m: &Method,
    operation_id: String,
    summary: String,
    description: String,
    names: &Names,
) -> Map<String, Value> {
    let mut op = Map::new();
    op.insert("operationId".into(), Value::String(operation_id));
    op.insert("tags".into(), json!([m.service()]));
    op.insert("summary".into(), Value::String(summary));
    if !description.is_empty() {
        op.insert("description".into(), Value::String(description));
    }
    let mut responses = Map::new();
    responses.insert("200".into(), ok_response(m, names));
    responses.extend(error_responses(&[]));
    op.insert("responses".into(), Value::Object(responses));
    op.insert("security".into(), json!([{"bearerAuth": []}]));
    op
}

fn probe(name: &str, ready: bool) -> Value {
    let description = if ready {
        "Whether the server is ready for traffic: 200 while it serves, 503 (with Retry-After) while it starts or drains. Needs no token."
    } else {
        "Whether the process is alive: 200 while it serves. Needs no token."
    };
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "Serving.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}
        }),
    );
    responses.extend(error_responses(&["503"]));
    json!({"get": {
        "operationId": name,
        "tags": ["Health"],
        "summary": if ready { "Readiness probe" } else { "Liveness probe" },
        "description": description,
        "security": [],
        "responses": responses
    }})
}

const INTRO: &str = "Every RPC of the lexecon.v1 gRPC API, as JSON over HTTP/1.1 and HTTP/2 on the gRPC port (contract §9).\n\n\
- `POST /v1/<Service>/<Rpc>` takes the request message as a JSON object and answers the response message; the friendly routes (`POST /v1/decide`, `GET /v1/ledger/entries`, ...) call the same RPCs.\n\
- JSON follows the proto3 JSON mapping, except that enum values are written as their short lowercase names (`\"outcome\": \"approved\"`) and read as short names, full names (`POLICY_MODE_STRICT`) or numbers.\n\
- Responses use the .proto field names (snake_case) and always carry fields with default values; requests may use snake_case or lowerCamelCase names; unknown fields are refused.\n\
- 64-bit integers are written as strings and read from strings or numbers; bytes are base64; timestamps are RFC 3339 strings.\n\
- Authentication: `Authorization: Bearer <token>` (an API key or session token), as for gRPC. `/healthz` and `/readyz` need none.\n\
- Errors are `{\"error\": {\"code\": \"invalid_argument\", \"message\": \"...\", \"field\": \"actor\"}}` with the HTTP status mapped from the gRPC status; 429 and 503 carry `Retry-After`.\n\
- Bodies are limited to 1 MiB (RegisterEvidence: ⌈4/3 · evidence.max_bytes⌉ + 64 KiB); larger bodies get 413.\n\
- Server-streaming RPCs answer `application/x-ndjson`, one message per line, bounded by the `max_events` and `wait_ms` query parameters.";

/// The document as a JSON value (object keys sorted, so the output is stable).
pub(crate) fn build(api: &Api) -> Value {
    let comments = Comments::new(&api.pool);
    let names = Names::new(api);

    let mut paths: BTreeMap<String, Value> = BTreeMap::new();
    let mut tags: Vec<Value> = Vec::new();
    let mut seen_services = BTreeSet::new();
    for m in api.methods() {
        if seen_services.insert(m.service().to_owned()) {
            let mut tag = Map::new();
            tag.insert("name".into(), json!(m.service()));
            if let Some(text) = comments.service(m) {
                tag.insert("description".into(), json!(text));
            }
            tags.push(Value::Object(tag));
        }
        let description = comments.method(m).unwrap_or_default().to_owned();
        let summary = if description.is_empty() {
            m.rpc().to_owned()
        } else {
            first_sentence(&description)
        };
        let mut op = operation(
            m,
            format!("{}_{}", m.service(), m.rpc()),
            summary,
            description,
            &names,
        );
        op.insert("requestBody".into(), request_body(m, &names));
        if m.server_streaming() {
            op.insert("parameters".into(), streaming_parameters());
        }
        paths.insert(format!("/v1/{}", m.name()), json!({"post": op}));
    }
    for route in api.routes() {
        let Some((service, rpc)) = route.rpc.split_once('/') else {
            continue;
        };
        let Some(m) = api.method(service, rpc) else {
            continue;
        };
        let description = format!(
            "Calls {} (`POST /v1/{}`){}.{}",
            m.name(),
            m.name(),
            match route.verb {
                Verb::Get => " with the request message built from the query and path parameters",
                Verb::Post => " with the JSON body as the request message",
            },
            comments
                .method(m)
                .map(|t| format!("\n\n{t}"))
                .unwrap_or_default()
        );
        let mut op = operation(
            m,
            route_operation_id(route, m),
            route.summary.to_owned(),
            description,
            &names,
        );
        let parameters = route_parameters(route, m, &names, &comments);
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
        let verb = match route.verb {
            Verb::Get => "get",
            Verb::Post => {
                op.insert("requestBody".into(), request_body(m, &names));
                "post"
            }
        };
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(verb.to_owned(), Value::Object(op));
        }
    }
    paths.insert("/healthz".into(), probe("healthz", false));
    paths.insert("/readyz".into(), probe("readyz", true));
    tags.push(json!({"name": "Health", "description": "Probes for load balancers and orchestrators; no token."}));

    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    for m in api.pool.all_messages() {
        if is_well_known(&m) || m.is_map_entry() {
            continue;
        }
        if names.output_messages.contains(m.full_name()) {
            schemas.insert(
                names.message(&m, Form::Output),
                message_schema(&m, Form::Output, &names, &comments),
            );
        }
        if names.input_messages.contains(m.full_name()) {
            schemas.insert(
                names.message(&m, Form::Input),
                message_schema(&m, Form::Input, &names, &comments),
            );
        }
    }
    for e in api.pool.all_enums() {
        if e.full_name().starts_with("google.protobuf.") {
            continue;
        }
        schemas.insert(
            names.enumeration(&e, Form::Output),
            enum_schema(&e, Form::Output, &comments),
        );
        if names.input_enums.contains(e.full_name()) {
            schemas.insert(
                names.enumeration(&e, Form::Input),
                enum_schema(&e, Form::Input, &comments),
            );
        }
    }
    schemas.insert("Error".into(), error_schema());
    schemas.insert(
        "Health".into(),
        json!({
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["serving"]}}
        }),
    );

    let mut responses = Map::new();
    for (status, name, description) in ERRORS {
        let mut response = Map::new();
        response.insert("description".into(), json!(description));
        if has_retry_after(status) {
            response.insert(
                "headers".into(),
                json!({"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}),
            );
        }
        response.insert(
            "content".into(),
            json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}),
        );
        responses.insert((*name).to_owned(), Value::Object(response));
    }

    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Lexecon HTTP/JSON API",
            "version": "v1",
            "description": INTRO,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "tags": tags,
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0}
                }
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`lexecon apikey create`) or a session token from AuthService/Login, as for gRPC."
                }
            }
        }
    })
}

/// The document as `docs/openapi.json` holds it.
pub(crate) fn document(api: &Api) -> String {
    let value = build(api);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}
