//! The transport-free core of the gateway: what to do with each message from the
//! client and from the upstream. The stdio and HTTP relays only move bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::decider::{
    Completion, Decider, DecisionAnswer, DecisionRequest, EscalationState, Outcome,
};
use crate::jsonrpc::{self, Classified, GATEWAY_ERROR, INVALID_REQUEST, Id, Kind, ToolCall};
use crate::mapping::Settings;

/// `_meta` key of a forwarded call's result: the decision that let it through.
pub const META_DECISION_ID: &str = "lexecon/decision_id";
/// `_meta` key of a forwarded call's result: the capability token of that decision.
pub const META_CAPABILITY_TOKEN: &str = "lexecon/capability_token";

/// How often a call waiting for an escalation asks how it stands.
const ESCALATION_POLL: Duration = Duration::from_millis(500);

/// What the relay must do next with (part of) a client message.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send these bytes to the upstream now, in order.
    Forward(String),
    /// Send these bytes to the client.
    Reply(String),
    /// Decide this call ([`Gateway::decide`]); `raw` is its message as received.
    Decide {
        /// The call.
        call: ToolCall,
        /// Its bytes.
        raw: String,
    },
}

/// A request the upstream has not answered yet.
#[derive(Debug, Clone)]
enum Pending {
    /// A tools/call being decided (not forwarded yet).
    Deciding(Id),
    /// A forwarded tools/call.
    Call(Forwarded),
    /// A forwarded tools/list.
    List(Id),
    /// Any other forwarded request.
    Other(Id),
}

/// A forwarded call, until its result arrives.
#[derive(Debug, Clone)]
struct Forwarded {
    id: Id,
    decision_id: String,
    token: String,
    started: Instant,
    arguments: Option<String>,
}

/// One MCP session: the bytes its request ids are derived from, and what it awaits.
#[derive(Debug, Default)]
pub struct Session {
    id: Option<Vec<u8>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Session {
    /// A session whose request ids derive from `id`; `None` decides every call afresh
    /// (an HTTP upstream that keeps no sessions).
    pub fn new(id: Option<Vec<u8>>) -> Session {
        Session {
            id,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// A stdio session: 128 random bits drawn now.
    pub fn random() -> Session {
        let bits: [u8; 16] = rand::random();
        Session::new(Some(bits.to_vec()))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many requests await an answer.
    pub fn awaiting(&self) -> usize {
        self.pending().len()
    }

    /// Forgets a forwarded request that never reached the upstream, and returns the
    /// error to give the client for it.
    pub fn unreachable(&self, raw: &str, why: &str) -> Option<String> {
        let id = match jsonrpc::classify(raw.as_bytes()) {
            Classified::Single(m) => match m.kind {
                Kind::ToolCall(c) => Some(c.id),
                Kind::ToolsList { id } | Kind::Request { id } => Some(id),
                _ => None,
            },
            _ => None,
        }?;
        self.pending().remove(id.key());
        Some(jsonrpc::error_response(Some(&id), GATEWAY_ERROR, why))
    }

    /// Calls whose decision was abandoned because the upstream closed: an error for each.
    pub fn abandon_deciding(&self, server: &str) -> Vec<String> {
        let mut pending = self.pending();
        let ids: Vec<Id> = pending
            .values()
            .filter_map(|p| match p {
                Pending::Deciding(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        ids.into_iter()
            .map(|id| {
                pending.remove(id.key());
                jsonrpc::error_response(
                    Some(&id),
                    GATEWAY_ERROR,
                    &format!(
                        "the upstream MCP server {server:?} closed before this call could be forwarded"
                    ),
                )
            })
            .collect()
    }
}

/// Sends completions to a background task that records them; never blocks the relay.
#[derive(Debug)]
struct Recorder {
    tx: Mutex<Option<mpsc::UnboundedSender<Completion>>>,
}

/// The gateway for one upstream.
pub struct Gateway<D: Decider + ?Sized> {
    server: String,
    actor: String,
    settings: Settings,
    decider: Arc<D>,
    recorder: Recorder,
}

impl<D: Decider + ?Sized> std::fmt::Debug for Gateway<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("server", &self.server)
            .field("actor", &self.actor)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<D: Decider + ?Sized> Gateway<D> {
    /// The gateway for upstream `server`, deciding for `actor` (empty: the API key's
    /// one bound actor). Returns the task that records completions: await it after
    /// [`Gateway::finish`] so none is lost.
    pub fn new(
        server: &str,
        actor: &str,
        settings: Settings,
        decider: Arc<D>,
    ) -> (Gateway<D>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(record_completions(Arc::clone(&decider), rx));
        (
            Gateway {
                server: server.to_owned(),
                actor: actor.to_owned(),
                settings,
                decider,
                recorder: Recorder {
                    tx: Mutex::new(Some(tx)),
                },
            },
            task,
        )
    }

    /// The upstream's name.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Stops taking completions; the recorder task ends once it has recorded those
    /// already handed over.
    pub fn finish(&self) {
        self.recorder
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    fn record(&self, completion: Completion) {
        let tx = self
            .recorder
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match tx.as_ref() {
            Some(tx) if tx.send(completion).is_ok() => {}
            _ => tracing::warn!("a completion arrived after shutdown began; it is not recorded"),
        }
    }

    /// What to do with one line (or HTTP body) from the client.
    pub fn from_client(&self, session: &Session, line: &[u8]) -> Vec<Step> {
        match jsonrpc::classify(line) {
            Classified::Blank => Vec::new(),
            Classified::Single(message) => self.client_message(session, message.raw, message.kind),
            Classified::Batch(items) => {
                let governed = items
                    .iter()
                    .any(|m| matches!(m.kind, Kind::ToolCall(_) | Kind::Refused { .. }));
                if !governed {
                    // Nothing to decide: register what awaits an answer and relay the
                    // batch as it came.
                    let raw = std::str::from_utf8(line)
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    for m in items {
                        self.expect(session, m.kind);
                    }
                    return vec![Step::Forward(raw)];
                }
                // A batch with calls is relayed one message at a time, each call after
                // its decision (answers come back one by one).
                items
                    .into_iter()
                    .flat_map(|m| self.client_message(session, m.raw, m.kind))
                    .collect()
            }
        }
    }

    fn expect(&self, session: &Session, kind: Kind) {
        let mut pending = session.pending();
        match kind {
            Kind::ToolsList { id } => {
                pending.insert(id.key().to_owned(), Pending::List(id));
            }
            Kind::Request { id } => {
                pending.insert(id.key().to_owned(), Pending::Other(id));
            }
            _ => {}
        }
    }

    fn client_message(&self, session: &Session, raw: &str, kind: Kind) -> Vec<Step> {
        match kind {
            Kind::ToolCall(call) => {
                let mut pending = session.pending();
                if pending.contains_key(call.id.key()) {
                    return vec![Step::Reply(jsonrpc::error_response(
                        Some(&call.id),
                        INVALID_REQUEST,
                        "invalid request: a request with this id is still in flight; use a new id",
                    ))];
                }
                pending.insert(call.id.key().to_owned(), Pending::Deciding(call.id.clone()));
                vec![Step::Decide {
                    call,
                    raw: raw.to_owned(),
                }]
            }
            Kind::ToolsList { .. } | Kind::Request { .. } => {
                self.expect(session, kind);
                vec![Step::Forward(raw.to_owned())]
            }
            Kind::Notification | Kind::Response { .. } => vec![Step::Forward(raw.to_owned())],
            Kind::Refused {
                id,
                code,
                message,
                answer,
            } => {
                if answer {
                    vec![Step::Reply(jsonrpc::error_response(
                        id.as_ref(),
                        code,
                        &message,
                    ))]
                } else {
                    tracing::warn!(%message, "dropped a message from the client");
                    Vec::new()
                }
            }
        }
    }

    /// Decides one call: [`Step::Forward`] with its bytes when an APPROVED decision
    /// names this call, else [`Step::Reply`] with the result the client gets instead.
    pub async fn decide(&self, session: &Session, call: ToolCall, raw: String) -> Step {
        let request =
            self.settings
                .request(&self.server, &self.actor, session.id.as_deref(), &call);
        let verdict = self.verdict(&request).await;
        let mut pending = session.pending();
        match verdict {
            Verdict::Forward { decision_id, token } => {
                let arguments = self
                    .settings
                    .record_payloads
                    .then(|| Value::Object(call.arguments.clone()).to_string());
                pending.insert(
                    call.id.key().to_owned(),
                    Pending::Call(Forwarded {
                        id: call.id,
                        decision_id,
                        token,
                        started: Instant::now(),
                        arguments,
                    }),
                );
                Step::Forward(raw)
            }
            Verdict::Refuse(text) => {
                pending.remove(call.id.key());
                Step::Reply(jsonrpc::tool_error_result(&call.id, &text))
            }
        }
    }

    async fn verdict(&self, request: &DecisionRequest) -> Verdict {
        let answer = match self.decider.decide(request).await {
            Ok(answer) => answer,
            Err(e) => return Verdict::Refuse(no_decision(&e.to_string())),
        };
        match answer.outcome {
            Outcome::Approved => approved(request, &answer.decision_id, &answer),
            Outcome::Denied => Verdict::Refuse(denied_text(&answer)),
            Outcome::Escalated => {
                if answer.capability_token.is_some() {
                    // A retried request whose escalation was approved: its grant's token.
                    return approved(request, &answer.decision_id, &answer);
                }
                self.wait_for_people(request, &answer).await
            }
        }
    }

    async fn wait_for_people(&self, request: &DecisionRequest, answer: &DecisionAnswer) -> Verdict {
        let Some(escalation_id) = answer.escalation_id.clone() else {
            return Verdict::Refuse(escalated_text(answer, None));
        };
        let deadline = Instant::now() + Duration::from_secs(self.settings.escalation_wait_secs);
        let mut state = answer.escalation_state;
        while Instant::now() < deadline {
            tokio::time::sleep(
                ESCALATION_POLL.min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
            let esc = match self.decider.escalation(&escalation_id).await {
                Ok(esc) => esc,
                Err(e) => return Verdict::Refuse(no_decision(&e.to_string())),
            };
            state = Some(esc.state);
            match esc.state {
                EscalationState::Pending => {}
                EscalationState::Approved => {
                    let answer = DecisionAnswer {
                        decision_id: esc.decision_id.clone(),
                        capability_token: esc.capability_token.clone(),
                        ..answer.clone()
                    };
                    if answer.capability_token.is_some() {
                        return approved(request, &esc.decision_id, &answer);
                    }
                    // Approved, but the grant was used elsewhere: ask again (path b).
                    return match self.decider.decide(request).await {
                        Ok(again) if again.outcome == Outcome::Approved => {
                            approved(request, &again.decision_id, &again)
                        }
                        Ok(again) if again.capability_token.is_some() => {
                            approved(request, &again.decision_id, &again)
                        }
                        Ok(again) => Verdict::Refuse(escalated_text(&again, Some(esc.state))),
                        Err(e) => Verdict::Refuse(no_decision(&e.to_string())),
                    };
                }
                EscalationState::Denied | EscalationState::Expired | EscalationState::Cancelled => {
                    return Verdict::Refuse(escalated_text(answer, state));
                }
            }
        }
        Verdict::Refuse(escalated_text(answer, state))
    }

    /// What the client gets for one line from the upstream (`None`: nothing).
    pub async fn from_upstream(&self, session: &Session, line: &[u8]) -> Option<String> {
        match jsonrpc::classify(line) {
            Classified::Blank => None,
            Classified::Single(m) => Some(
                self.upstream_message(session, m.raw, &m.kind)
                    .await
                    .unwrap_or_else(|| {
                        // Not a message we can read: relay it as it came.
                        String::from_utf8_lossy(line).trim_end().to_owned()
                    }),
            ),
            Classified::Batch(items) => {
                let mut out = String::from("[");
                for (i, m) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match self.upstream_message(session, m.raw, &m.kind).await {
                        Some(text) => out.push_str(&text),
                        None => out.push_str(m.raw),
                    }
                }
                out.push(']');
                Some(out)
            }
        }
    }

    async fn upstream_message(&self, session: &Session, raw: &str, kind: &Kind) -> Option<String> {
        let Kind::Response { id: Some(id) } = kind else {
            if let Kind::Refused { .. } = kind {
                return None;
            }
            return Some(raw.to_owned());
        };
        let pending = {
            let mut map = session.pending();
            match map.get(id.key()) {
                Some(Pending::Deciding(_)) | None => None,
                Some(_) => map.remove(id.key()),
            }
        };
        match pending {
            Some(Pending::Call(call)) => Some(self.call_result(raw, call)),
            Some(Pending::List(_)) if self.settings.hide_denied => {
                Some(self.filter_tools(raw).await)
            }
            _ => Some(raw.to_owned()),
        }
    }

    /// Adds the decision to a forwarded call's result and hands its completion over.
    fn call_result(&self, raw: &str, call: Forwarded) -> String {
        let duration_us = u64::try_from(call.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let Some(mut members) = jsonrpc::members(raw) else {
            return raw.to_owned();
        };
        let mut is_error = true;
        let mut hashed = Value::Null;
        let mut out_result = None;
        for (key, value) in &members {
            match key.as_str() {
                "result" => {
                    let mut result: Value =
                        serde_json::from_str(value.get()).unwrap_or(Value::Null);
                    is_error = result.get("isError") == Some(&Value::Bool(true));
                    hashed = result.clone();
                    if let Value::Object(map) = &mut result {
                        let meta = map
                            .entry("_meta")
                            .or_insert_with(|| Value::Object(serde_json::Map::new()));
                        if !meta.is_object() {
                            *meta = Value::Object(serde_json::Map::new());
                        }
                        if let Value::Object(meta) = meta {
                            meta.insert(
                                META_DECISION_ID.to_owned(),
                                Value::from(call.decision_id.clone()),
                            );
                            meta.insert(
                                META_CAPABILITY_TOKEN.to_owned(),
                                Value::from(call.token.clone()),
                            );
                        }
                        out_result = RawValue::from_string(result.to_string()).ok();
                    }
                }
                "error" => {
                    is_error = true;
                    hashed = serde_json::from_str(value.get()).unwrap_or(Value::Null);
                }
                _ => {}
            }
        }
        self.record(Completion {
            decision_id: call.decision_id,
            is_error,
            duration_us,
            result_sha256: crate::canonical::sha256(&hashed),
            arguments_json: call.arguments,
            result_json: self.settings.record_payloads.then(|| hashed.to_string()),
        });
        if let Some(result) = out_result {
            for (key, value) in &mut members {
                if key == "result" {
                    *value = result;
                    break;
                }
            }
        }
        jsonrpc::join_members(&members)
    }

    /// Leaves out of a `tools/list` result the tools the policy always denies.
    async fn filter_tools(&self, raw: &str) -> String {
        match self.try_filter_tools(raw).await {
            Ok(Some(text)) => text,
            Ok(None) => raw.to_owned(),
            Err(e) => {
                tracing::warn!(server = %self.server, error = %e, "could not check which tools the policy always denies; tools/list passed through unchanged (every call is still decided)");
                raw.to_owned()
            }
        }
    }

    async fn try_filter_tools(&self, raw: &str) -> Result<Option<String>, String> {
        let Some(mut members) = jsonrpc::members(raw) else {
            return Ok(None);
        };
        let Some(result) = members
            .iter_mut()
            .find(|(k, _)| k == "result")
            .map(|(_, v)| v)
        else {
            return Ok(None);
        };
        let Some(mut fields) = jsonrpc::members(result.get()) else {
            return Ok(None);
        };
        let Some(tools_raw) = fields
            .iter_mut()
            .find(|(k, _)| k == "tools")
            .map(|(_, v)| v)
        else {
            return Ok(None);
        };
        let Ok(tools) = serde_json::from_str::<Vec<Box<RawValue>>>(tools_raw.get()) else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct Named {
            name: Option<Value>,
        }
        let names: Vec<Option<String>> = tools
            .iter()
            .map(|t| match serde_json::from_str::<Named>(t.get()) {
                Ok(Named {
                    name: Some(Value::String(name)),
                }) => Some(name),
                _ => None,
            })
            .collect();
        let probes: Vec<_> = names
            .iter()
            .flatten()
            .map(|name| self.settings.probe(&self.server, name))
            .collect();
        if probes.is_empty() {
            return Ok(None);
        }
        let mut denied = Vec::with_capacity(probes.len());
        for chunk in probes.chunks(1000) {
            let answers = self
                .decider
                .check_tools(&self.actor, chunk)
                .await
                .map_err(|e| e.to_string())?;
            if answers.len() != chunk.len() {
                return Err(format!(
                    "asked about {} tools, got {} answers",
                    chunk.len(),
                    answers.len()
                ));
            }
            denied.extend(answers);
        }
        let mut answers = denied.into_iter();
        let mut kept = Vec::with_capacity(tools.len());
        for (tool, name) in tools.iter().zip(&names) {
            let hide = name.is_some() && answers.next().unwrap_or(false);
            if !hide {
                kept.push(tool.get());
            }
        }
        if kept.len() == tools.len() {
            return Ok(None);
        }
        let list = format!("[{}]", kept.join(","));
        *tools_raw = RawValue::from_string(list).map_err(|e| e.to_string())?;
        *result =
            RawValue::from_string(jsonrpc::join_members(&fields)).map_err(|e| e.to_string())?;
        Ok(Some(jsonrpc::join_members(&members)))
    }

    /// The upstream is gone: an error for every forwarded request still unanswered.
    pub fn upstream_closed(&self, session: &Session) -> Vec<String> {
        let mut pending = session.pending();
        let keys: Vec<String> = pending
            .iter()
            .filter(|(_, p)| !matches!(p, Pending::Deciding(_)))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let id = match pending.remove(&key) {
                Some(Pending::Call(c)) => c.id,
                Some(Pending::List(id) | Pending::Other(id)) => id,
                _ => continue,
            };
            out.push(jsonrpc::error_response(
                Some(&id),
                GATEWAY_ERROR,
                &format!(
                    "the upstream MCP server {:?} closed before answering this request",
                    self.server
                ),
            ));
        }
        out
    }
}

/// What became of a call.
enum Verdict {
    Forward { decision_id: String, token: String },
    Refuse(String),
}

/// Forward only when the token names this call's decision, tool and action (the
/// request id, echoed, binds the arguments' digest through the engine's fingerprint).
fn approved(request: &DecisionRequest, decision_id: &str, answer: &DecisionAnswer) -> Verdict {
    let Some(token) = answer.capability_token.clone().filter(|t| !t.is_empty()) else {
        return Verdict::Refuse(no_decision(&format!(
            "decision {decision_id} was approved without a capability token"
        )));
    };
    if !request.request_id.is_empty()
        && !answer.request_id.is_empty()
        && answer.request_id != request.request_id
    {
        return Verdict::Refuse(no_decision(&format!(
            "decision {decision_id} answers another request ({}), not this call",
            answer.request_id
        )));
    }
    let claims =
        lexecon_capability::unsigned(&token).and_then(|u| lexecon_capability::unsigned_claims(&u));
    match claims {
        Ok(c)
            if c.decision_id.to_string() == decision_id
                && c.action.as_str() == request.action
                && c.tool.as_ref().map(|t| t.as_str()) == Some(request.tool.as_str()) =>
        {
            Verdict::Forward {
                decision_id: decision_id.to_owned(),
                token,
            }
        }
        Ok(c) => Verdict::Refuse(no_decision(&format!(
            "the token of decision {decision_id} names decision {}, action {:?} and tool {:?}, not this call's {:?} through {:?}",
            c.decision_id,
            c.action.as_str(),
            c.tool.as_ref().map_or("", |t| t.as_str()),
            request.action,
            request.tool
        ))),
        Err(e) => Verdict::Refuse(no_decision(&format!(
            "the token of decision {decision_id} cannot be read: {e}"
        ))),
    }
}

fn reasons(answer: &DecisionAnswer) -> String {
    if answer.reasons.is_empty() {
        "none".to_owned()
    } else {
        answer.reasons.join(", ")
    }
}

/// The text of a denied call's result.
pub fn denied_text(answer: &DecisionAnswer) -> String {
    format!(
        "Lexecon denied this call (decision {}, reasons: {}): {}",
        answer.decision_id,
        reasons(answer),
        answer.reasoning
    )
}

/// The text of an escalated call's result when no approval came in time.
pub fn escalated_text(answer: &DecisionAnswer, state: Option<EscalationState>) -> String {
    let Some(esc) = &answer.escalation_id else {
        return format!(
            "Lexecon escalated this call to a person and did not forward it (decision {}, reasons: {}): {}",
            answer.decision_id,
            reasons(answer),
            answer.reasoning
        );
    };
    let state = state.unwrap_or(EscalationState::Pending);
    let next = match state {
        EscalationState::Pending | EscalationState::Approved => format!(
            "A compliance officer can approve it with `lexecon escalations approve {esc} --reason \"...\"`; once approved, the same call with the same arguments goes through once when it is sent again."
        ),
        EscalationState::Denied => "A person denied it.".to_owned(),
        EscalationState::Expired => "It expired without an answer.".to_owned(),
        EscalationState::Cancelled => "It was cancelled.".to_owned(),
    };
    format!(
        "Lexecon escalated this call to a person and did not forward it (decision {}, escalation {esc}, {}, reasons: {}): {} {next}",
        answer.decision_id,
        state.as_str(),
        reasons(answer),
        answer.reasoning
    )
}

/// The text of a call refused because no decision could be had.
pub fn no_decision(why: &str) -> String {
    format!("Lexecon could not decide this call, so it was not forwarded: {why}")
}

async fn record_completions<D: Decider + ?Sized>(
    decider: Arc<D>,
    mut rx: mpsc::UnboundedReceiver<Completion>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Some(completion) => {
                    let decider = Arc::clone(&decider);
                    tasks.spawn(async move {
                        let id = completion.decision_id.clone();
                        if let Err(e) = decider.record_completion(completion).await {
                            tracing::error!(decision_id = %id, error = %e, "recording a completion failed");
                        }
                    });
                }
                None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}
