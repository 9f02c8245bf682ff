//! The OpenAPI 3.1 document of the HTTP API, served at `/api/v1/openapi.json`. Written by hand
//! from one table of operations (no generator dependency); a test checks that every path and
//! method the router serves is in it, and nothing more.

use axum::Json;
use serde_json::{json, Map, Value};

/// What an operation takes as its body.
#[derive(Clone, Copy)]
enum Body {
    None,
    Json(&'static str),
    Csv,
    JsonOrCsv(&'static str),
    Wav,
}

/// One operation: method, path, summary, roles (empty: no token), query parameters, body,
/// success status and the schema answered.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    roles: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Body,
    ok: (&'static str, &'static str),
}

const C: &str = "/api/v1/campaigns/{id}";
const READ: &str = "admin, operator, supervisor, backoffice";
const WRITE: &str = "admin, operator";
const EDIT: &str = "admin, operator, backoffice";
const DIAL: &str = "admin, operator, supervisor";
const ROUTE: &str = "admin, operator, supervisor, proxy";
const AGENTS: &str = "admin, supervisor";
const LIST: &[(&str, &str)] = &[
    ("cursor", "`next` of the previous page"),
    ("limit", "items per page, 1–1000 (100)"),
];

fn ops() -> Vec<Op> {
    use Body::*;
    let op = |method, path: &'static str, summary, roles, query, body, ok| Op {
        method,
        path,
        summary,
        roles,
        query,
        body,
        ok,
    };
    let c = |tail: &str| -> &'static str { Box::leak(format!("{C}{tail}").into_boxed_str()) };
    vec![
        op("get", "/metrics", "Prometheus metrics (text format)", "", &[], None, ("200", "text")),
        op("get", "/healthz", "Liveness: 200 while the process serves HTTP", "", &[], None, ("200", "text")),
        op("get", "/agent/", "The agent console (HTML page; it logs in with POST /api/v1/login and keeps the token in memory)", "", &[], None, ("200", "text")),
        op("get", "/supervisor/", "The supervisor page (HTML)", "", &[], None, ("200", "text")),
        op("get", "/console/{file}", "A script or style sheet of the console pages", "", &[], None, ("200", "text")),
        op("get", "/readyz", "Readiness: 200 when ready, 503 before and while draining", "", &[], None, ("200", "text")),
        op("get", "/api/v1/trunks", "SIP trunks and their state", DIAL, &[], None, ("200", "array")),
        op("get", "/api/v1/nodes", "The nodes that are up (name, instance, last heartbeat, SIP URI) and which dials which call task (the task leases of the nodes sharing the store), and this node's name", DIAL, &[], None, ("200", "object")),
        op("get", "/api/v1/nodes/route", "The SIP URI of the node that should serve the agent whose phone registers as `sip_user`, as plain text (for Kamailio's http_client): the node holding a lease on one of the agent's call tasks (lowest task first), else the node that rendezvous hashing of the agent's lowest call task (no task: its user name) picks among the nodes up; the node's name in the `Dialerd-Node` header; 404 for an account that is no agent's", ROUTE, &[("sip_user", "the phone's SIP user name")], None, ("200", "text")),
        op("post", "/api/v1/trunks/{name}/test-call", "Place one test call through a trunk (a `caller_id` other than a verified line's number: admin only)", WRITE, &[], Json("TestCall"), ("200", "object")),
        op("get", "/api/v1/openapi.json", "This document", "", &[], None, ("200", "object")),
        op("post", "/api/v1/login", "A new token for a name and password", "", &[], Json("Login"), ("201", "Token")),
        op("get", "/api/v1/me", "The caller", "every role", &[], None, ("200", "User")),
        op("get", "/api/v1/users", "Users", "admin", &[], None, ("200", "array")),
        op("post", "/api/v1/users", "Create a user", "admin", &[], Json("NewUser"), ("201", "User")),
        op("get", "/api/v1/users/{id}", "One user", "admin", &[], None, ("200", "User")),
        op("patch", "/api/v1/users/{id}", "Change an agent's SIP login and tasks", "admin", &[], Json("UserPatch"), ("200", "User")),
        op("delete", "/api/v1/users/{id}", "Delete a user (not oneself)", "admin", &[], None, ("204", "")),
        op("get", "/api/v1/users/{id}/tokens", "A user's tokens", "admin", &[], None, ("200", "array")),
        op("post", "/api/v1/users/{id}/tokens", "A new token (the secret is shown once)", "admin", &[], Json("TokenRequest"), ("201", "Token")),
        op("delete", "/api/v1/tokens/{id}", "Revoke a token", "admin", &[], None, ("200", "object")),
        op("get", "/api/v1/campaigns", "Campaigns", READ, &[], None, ("200", "array")),
        op("post", "/api/v1/campaigns", "Create a campaign", WRITE, &[], Json("Campaign"), ("201", "Campaign")),
        op("get", C, "One campaign", READ, &[], None, ("200", "Campaign")),
        op("patch", C, "Change a campaign (JSON merge patch)", WRITE, &[], Json("Campaign"), ("200", "Campaign")),
        op("delete", C, "Delete a campaign with its tasks, contacts and imports", WRITE, &[], None, ("204", "")),
        op("get", c("/tasks"), "Tasks of a campaign", READ, &[], None, ("200", "array")),
        op("post", c("/tasks"), "Create a task", WRITE, &[], Json("Task"), ("201", "Task")),
        op("get", c("/tasks/{task}"), "One task", READ, &[], None, ("200", "Task")),
        op("patch", c("/tasks/{task}"), "Change a task (JSON merge patch)", WRITE, &[], Json("Task"), ("200", "Task")),
        op("delete", c("/tasks/{task}"), "Delete a task that holds no contacts", WRITE, &[], None, ("204", "")),
        op("get", c("/tasks/{task}/exports"), "Files of an export task, newest first (`new` until downloaded)", WRITE, &[], None, ("200", "array")),
        op("get", c("/tasks/{task}/exports/{file}"), "Download an export file (TSV, CSV, XLSX or a ZIP of PDF letters); an open file is closed by this (needs an export grant on a campaign with grants; backoffice always)", "admin, operator, backoffice", &[], None, ("200", "text")),
        op("get", c("/contacts"), "Contacts, filtered, by id or in due order", EDIT,
           &[("task", "task id"), ("status", "open, success, declined, failed"), ("detail", "status detail"),
             ("text", "text in fields or numbers"), ("due", "true: follow-up passed"), ("order", "id or due"),
             ("cursor", "`next` of the previous page"), ("limit", "1–1000 (100)")],
           None, ("200", "ContactPage")),
        op("post", c("/contacts"), "Create a contact", EDIT, &[], Json("Contact"), ("201", "Contact")),
        op("post", c("/contacts/import"), "Import contacts from a CSV body (streamed); answers the report", WRITE,
           &[("mode", "append or replace"), ("header", "true or false"), ("phone", "phone columns, comma-separated"), ("task", "task id")],
           Csv, ("200", "ImportReport")),
        op("get", c("/contacts/callable"), "Contacts the dialer may call now (or at `at`): open, not on a do-not-call list, follow-up due or never called, inside calling hours in their zone; overdue follow-ups first", DIAL,
           &[("task", "task id (default: the campaign's first)"), ("limit", "1–10000 (100)"), ("at", "RFC 3339 time to judge instead of now")],
           None, ("200", "object")),
        op("get", c("/contacts/{contact}/callable"), "Whether the dialer may call this contact now (or at `at`) and every reason it may not: status, do-not-call lists, follow-up, calling hours, country calling rules (`[[calling_rules]]`)", DIAL,
           &[("at", "RFC 3339 time to judge instead of now")],
           None, ("200", "object")),
        op("post", c("/contacts/bulk"), "Set one field on every contact matching a filter", EDIT, &[], Json("BulkEdit"), ("200", "object")),
        op("post", c("/contacts/move"), "Move listed or matching contacts into a task (as the task's kind wants)", EDIT, &[], Json("Move"), ("200", "object")),
        op("get", c("/contacts/{contact}"), "One contact with its history", EDIT, &[], None, ("200", "Contact")),
        op("patch", c("/contacts/{contact}"), "Change a contact (JSON merge patch); a final status runs the task flow", EDIT, &[], Json("Contact"), ("200", "Contact")),
        op("delete", c("/contacts/{contact}"), "Delete a contact", WRITE, &[], None, ("204", "")),
        op("get", "/api/v1/dnc", "The global do-not-call list, by number", DIAL, LIST, None, ("200", "DncPage")),
        op("post", "/api/v1/dnc", "Add numbers to the global list (JSON, or a CSV column)", WRITE,
           &[("region", "ISO country for numbers without +"), ("header", "CSV: true or false"), ("column", "CSV: column name or number")],
           JsonOrCsv("Numbers"), ("200", "DncReport")),
        op("delete", "/api/v1/dnc", "Take numbers off the global list", WRITE, &[], Json("Numbers"), ("200", "object")),
        op("get", c("/dnc"), "A campaign's do-not-call list", DIAL, LIST, None, ("200", "DncPage")),
        op("post", c("/dnc"), "Add numbers to a campaign's list (read with its default_region)", WRITE,
           &[("region", "ISO country for numbers without +"), ("header", "CSV: true or false"), ("column", "CSV: column name or number")],
           JsonOrCsv("Numbers"), ("200", "DncReport")),
        op("delete", c("/dnc"), "Take numbers off a campaign's list", WRITE, &[], Json("Numbers"), ("200", "object")),
        op("get", c("/form"), "The agent form: ordered fields, each editing the contact field named by its key", READ, &[], None, ("200", "Form")),
        op("put", c("/form"), "Replace the form; a field retyped so that stored values no longer fit is a 422 naming it and the first contacts", WRITE, &[], Json("FormSpec"), ("200", "Form")),
        op("get", c("/form/preview"), "The form filled with a contact's values, by section, as the agent sees it", READ,
           &[("contact", "contact id")], None, ("200", "FormPreview")),
        op("get", c("/questionnaire"), "The questionnaire: ordered questions, retired ones included", READ, &[], None, ("200", "Questionnaire")),
        op("put", c("/questionnaire"), "Replace the questions; answered ones left out stay, retired", WRITE, &[], Json("QuestionnaireSpec"), ("200", "Questionnaire")),
        op("get", c("/questionnaire/export"), "The answers as CSV or XLSX (one row per contact that answered, one column per question id) or a ZIP of one PDF letter per contact (needs an export grant on a campaign with grants; backoffice always)", "admin, operator, backoffice",
           &[("format", "csv (default), xlsx or pdf_zip")], None, ("200", "text")),
        op("get", c("/contacts/{contact}/answers"), "A contact's answers, who gave them and when", EDIT, &[], None, ("200", "Answers")),
        op("put", c("/contacts/{contact}/answers"), "Set a contact's answers, checked against the questionnaire; recorded in its history", EDIT, &[], Json("AnswersSpec"), ("200", "Answers")),
        op("get", c("/permissions"), "The campaign's edit and export grants (none: the roles alone decide)", WRITE, &[], None, ("200", "Permissions")),
        op("put", c("/permissions"), "Replace the campaign's grants; an empty list lifts them", "admin", &[], Json("PermissionsSpec"), ("200", "Permissions")),
        op("get", c("/dialer"), "The live dialer: whether the campaign dials now, and per running call task its mode, agents, calls in flight, placed, answered, abandoned, abandon ratios (24h, 30d) and the callers waiting for an agent (`waiting_callers`)", DIAL, &[], None, ("200", "Dialer")),
        op("get", c("/dialer/history"), "Per call task, every 5-minute bucket of the last `hours` (default 6, at most 24): `start`, `occupancy` (agent time busy with a call over time logged in; null when nobody was logged in; kept since the daemon started), `answered` and `abandoned` (from the stored abandon ledger)", DIAL, &[("hours", "1 to 24")], None, ("200", "DialerHistory")),
        op("get", c("/prompts"), "The campaign's prompts (name, seconds, who uploaded them, when)", READ, &[], None, ("200", "array")),
        op("get", c("/prompts/{name}"), "A prompt as stored: 8 kHz mono 16-bit WAV", READ, &[], None, ("200", "text")),
        op("put", c("/prompts/{name}"), "Upload a prompt (`safe_harbour`: who called and a number to call back, 2–30 s) as WAV in any format, converted at upload; power and predictive tasks run only while the campaign has its safe_harbour prompt", WRITE, &[], Wav, ("200", "Prompt")),
        op("delete", c("/prompts/{name}"), "Remove a prompt (not the safe_harbour prompt while power or predictive tasks may run: 409)", WRITE, &[], None, ("204", "")),
        op("get", c("/imports"), "Import history, newest first", WRITE, &[], None, ("200", "array")),
        op("get", c("/imports/{import}"), "One import report", WRITE, &[], None, ("200", "ImportReport")),
        op("get", c("/import-settings"), "How the campaign's drop-folder files are imported (the defaults while never set)", WRITE, &[], None, ("200", "ImportSettings")),
        op("put", c("/import-settings"), "Save how the campaign's drop-folder files are imported: mode, header, phone columns, task", WRITE, &[], Json("ImportSettings"), ("200", "ImportSettings")),
        op("post", c("/test-call"), "Place one call as the campaign does (its verified line as caller ID) and report the SIP outcome", WRITE, &[], Json("CampaignTestCall"), ("200", "TestCallReport")),
        op("get", "/api/v1/calls", "Call records, latest first", "admin, supervisor", &[("limit", "1–1000 (100)")], None, ("200", "array")),
        op("get", "/api/v1/calls/{id}", "One call record (numbers, times, end reason, recording path, quality)", "admin, supervisor", &[], None, ("200", "object")),
        op("get", "/api/v1/lines", "Caller-ID lines", WRITE, &[], None, ("200", "array")),
        op("post", "/api/v1/lines", "Create a line (unverified); the number is normalised to E.164", WRITE, &[], Json("Line"), ("201", "Line")),
        op("get", "/api/v1/lines/{id}", "One line", WRITE, &[], None, ("200", "Line")),
        op("patch", "/api/v1/lines/{id}", "Change a line (JSON merge patch); a new number or mode makes it unverified", WRITE, &[], Json("Line"), ("200", "Line")),
        op("delete", "/api/v1/lines/{id}", "Delete a line (its attempts stay in the audit trail)", WRITE, &[], None, ("204", "")),
        op("post", "/api/v1/lines/{id}/verification", "Place a verification call (external: speaks a code; forward: must come back to the access number); 429 past the per-number limit", WRITE, &[], None, ("202", "Line")),
        op("get", "/api/v1/lines/{id}/verifications", "Every verification attempt of a line, newest first", WRITE, &[], None, ("200", "array")),
        op("post", "/api/v1/lines/{id}/verify", "The code the owner heard; verifies the line (3 tries, 10 minutes)", WRITE, &[], Json("CodeEntry"), ("200", "Line")),
        op("post", "/api/v1/agent/session", "Log in: dialerd calls the agent's phone (`sip`: its registered phone, auto-answer; or an E.164 number through a trunk) and answers once it is up, the agent paused with reason `login`; 502 when the phone does not answer. `webrtc` with the browser's SDP offer in `sdp`: 201 at once with the SDP answer in `sdp` and `Location` to DELETE (WHIP-style); the agent is paused, reason `login`, once ICE and DTLS are up", "agent", &[], Json("AgentLogin"), ("201", "Agent")),
        op("get", "/api/v1/agent/session", "The agent's own state, reason, call and contact; 409 when not logged in", "agent", &[], None, ("200", "Agent")),
        op("delete", "/api/v1/agent/session", "Log out; a call in progress ends first, then the phone's leg", "agent", &[], None, ("200", "Agent")),
        op("post", "/api/v1/agent/ready", "Ready for calls (after a call: cancels a pause asked for during it)", "agent", &[], None, ("200", "Agent")),
        op("post", "/api/v1/agent/pause", "Pause with a reason: `sessions.pause_reasons` or a system reason (`login`, `leg_lost`, `missed_offer`); during a call it applies when wrap-up ends", "agent", &[], Json("AgentPause"), ("200", "Agent")),
        op("post", "/api/v1/agent/hangup", "End the call with the customer; wrap-up starts", "agent", &[], None, ("200", "Agent")),
        op("post", "/api/v1/agent/result", "End wrap-up with the call's result: the contact's `status` and `detail` (the disposition), `follow_up` `auto` (the task's retry delay) or `particular` with `follow_up_at`, and contact `fields` checked against the form (422 naming `fields.KEY`); 409 when not in wrap-up", "agent", &[], Json("AgentResult"), ("200", "Agent")),
        op("post", "/api/v1/agent/preview/dial", "Place the call to the contact of the agent's `preview.offer`; 409 without an offer", "agent", &[], None, ("200", "Agent")),
        op("post", "/api/v1/agent/preview/skip", "Skip the contact of the agent's `preview.offer` (back to the callable ones); 409 without an offer", "agent", &[], None, ("200", "Agent")),
        op("post", "/api/v1/agent/ticket", "A single-use ticket (30 s) for an event WebSocket", "admin, supervisor, agent", &[], None, ("201", "Ticket")),
        op("get", "/api/v1/agent/choices", "What an agent's screen offers: `pause_reasons`, the call `tasks` it may serve (id, name, campaign_id, campaign, dial_mode, wrap_up_seconds) and `forms` (each of their campaigns' form fields, by campaign id); supervisors and admins get every call task", "admin, supervisor, agent", &[], None, ("200", "AgentChoices")),
        op("get", "/api/v1/agent/contact", "The contact of the agent's offer or call now, with its history (previous attempts, results, notes); 409 without one", "agent", &[], None, ("200", "Contact")),
        op("get", "/api/v1/agent/events", "WebSocket of the agent's own events (JSON text messages, each with the agent's `seq`): `state`, and for each call `call.offered` (contact, fields, phones, direction; before the audio joins), `call.connected`, `call.customer_hangup`, `call.ended`, `wrap_up` (deadline); first the kept events after `since` (the last 256 are kept), without it the latest", "", &[("ticket", "from POST /api/v1/agent/ticket (an agent's)"), ("since", "last `seq` seen")], None, ("101", "Event")),
        op("get", "/api/v1/agents", "Every agent with its state, reason, since, call and tasks", AGENTS, &[], None, ("200", "AgentList")),
        op("post", "/api/v1/agents/{id}/session", "Log an agent in (as POST /api/v1/agent/session)", AGENTS, &[], Json("AgentLogin"), ("201", "Agent")),
        op("delete", "/api/v1/agents/{id}/session", "Log an agent out", AGENTS, &[], None, ("200", "Agent")),
        op("post", "/api/v1/agents/{id}/ready", "Make an agent ready", AGENTS, &[], None, ("200", "Agent")),
        op("post", "/api/v1/agents/{id}/pause", "Pause an agent with a reason", AGENTS, &[], Json("AgentPause"), ("200", "Agent")),
        op("post", "/api/v1/agents/{id}/hangup", "End an agent's call with the customer", AGENTS, &[], None, ("200", "Agent")),
        op("get", "/api/v1/queues/{task}/events", "WebSocket of the state events of every agent serving a call task, each agent's latest first", "", &[("ticket", "from POST /api/v1/agent/ticket (an admin's or supervisor's)")], None, ("101", "Event")),
    ]
}

fn schema_ref(name: &str) -> Value {
    match name {
        "text" => json!({"type": "string"}),
        "array" => json!({"type": "array", "items": {"type": "object"}}),
        "object" | "" => json!({"type": "object"}),
        n => json!({"$ref": format!("#/components/schemas/{n}")}),
    }
}

/// An object schema with these (name, type) properties.
fn object(props: &[(&str, &str)]) -> Value {
    let p: Map<String, Value> = props
        .iter()
        .map(|(n, t)| ((*n).to_string(), json!({"type": t})))
        .collect();
    json!({"type": "object", "properties": p})
}

fn components() -> Value {
    let mut c = base_components();
    // Added apart: one json! of every schema passes the macro recursion limit.
    let more = [
        (
            "AgentResult",
            object(&[
                ("status", "string"),
                ("detail", "string"),
                ("follow_up", "string"),
                ("follow_up_at", "string"),
                ("fields", "object"),
            ]),
        ),
        (
            "AgentChoices",
            object(&[
                ("pause_reasons", "array"),
                ("tasks", "array"),
                ("forms", "object"),
            ]),
        ),
        (
            "Dialer",
            object(&[
                ("campaign_id", "integer"),
                ("dialing", "boolean"),
                ("tasks", "array"),
            ]),
        ),
        (
            "DialerHistory",
            object(&[
                ("campaign_id", "integer"),
                ("bucket_seconds", "integer"),
                ("tasks", "array"),
            ]),
        ),
    ];
    if let Some(schemas) = c["schemas"].as_object_mut() {
        for (name, schema) in more {
            schemas.insert(name.into(), schema);
        }
    }
    c
}

fn base_components() -> Value {
    json!({
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Problem": object(&[("type", "string"), ("title", "string"), ("status", "integer"), ("detail", "string"), ("field", "string")]),
            "User": object(&[("id", "integer"), ("name", "string"), ("role", "string"), ("has_password", "boolean"), ("created_at", "string"), ("sip_username", "string"), ("sip_digest", "string"), ("tasks", "array")]),
            "NewUser": object(&[("name", "string"), ("role", "string"), ("password", "string"), ("sip_username", "string"), ("sip_password", "string"), ("sip_digest", "string"), ("tasks", "array")]),
            "UserPatch": object(&[("sip_username", "string"), ("sip_password", "string"), ("sip_digest", "string"), ("tasks", "array")]),
            "Login": object(&[("name", "string"), ("password", "string")]),
            "TokenRequest": object(&[("label", "string")]),
            "Token": object(&[("id", "integer"), ("user_id", "integer"), ("label", "string"), ("token", "string"), ("created_at", "string")]),
            "TestCall": object(&[("to", "string"), ("ring_timeout", "integer"), ("caller_id", "string")]),
            "CampaignTestCall": object(&[("to", "string"), ("trunk", "string"), ("task_id", "integer")]),
            "TestCallReport": object(&[("trunk", "string"), ("to", "string"), ("caller_id", "string"), ("outcome", "string"), ("code", "integer"), ("reason", "string"),
                ("auth_challenges", "integer"), ("first_response_ms", "integer"), ("ringing_ms", "integer"), ("final_ms", "integer")]),
            "Line": object(&[("id", "integer"), ("number", "string"), ("title", "string"), ("language", "string"), ("callback_mode", "string"),
                ("inbound_policy", "string"), ("max_wait_seconds", "integer"), ("waiting_audio", "string"), ("missed_calls_task", "integer"),
                ("status", "string"), ("last_outcome", "string"), ("last_sip_code", "integer"), ("last_attempt_at", "string"), ("verified_at", "string")]),
            "CodeEntry": object(&[("code", "string")]),
            "Campaign": object(&[("id", "integer"), ("name", "string"), ("description", "string"), ("status", "string"), ("time_zone", "string"),
                                 ("windows", "array"), ("default_region", "string"), ("line_id", "integer"), ("recording", "boolean"), ("calling_hours", "object")]),
            "Task": object(&[("id", "integer"), ("campaign_id", "integer"), ("name", "string"), ("kind", "string"), ("settings", "object"), ("flow", "array")]),
            "Contact": object(&[("id", "integer"), ("campaign_id", "integer"), ("task_id", "integer"), ("fields", "object"), ("phones", "array"),
                                ("time_zone", "string"), ("status", "string"), ("detail", "string"), ("follow_up_at", "string"), ("owner", "string"),
                                ("attempts", "integer"), ("dnc_numbers", "array"), ("last_result", "string"), ("history", "array")]),
            "ContactPage": object(&[("items", "array"), ("next", "string")]),
            "ImportReport": object(&[("id", "integer"), ("state", "string"), ("rows", "integer"), ("inserted", "integer"), ("bad", "integer"),
                                     ("duplicates", "integer"), ("removed", "integer"), ("kept_with_results", "integer"), ("problems", "array"),
                                     ("error", "string"), ("rolled_back", "integer")]),
            "BulkEdit": object(&[("filter", "object"), ("field", "string"), ("value", "string")]),
            "Move": object(&[("filter", "object"), ("ids", "array"), ("task_id", "integer")]),
            "Numbers": object(&[("phones", "array"), ("region", "string")]),
            "DncPage": object(&[("items", "array"), ("next", "string")]),
            "FormSpec": object(&[("fields", "array")]),
            "Form": object(&[("campaign_id", "integer"), ("fields", "array"), ("updated_by", "string"), ("updated_at", "string")]),
            "FormPreview": object(&[("campaign_id", "integer"), ("contact", "object"), ("sections", "array")]),
            "QuestionnaireSpec": object(&[("questions", "array")]),
            "ImportSettings": object(&[("mode", "string"), ("header", "boolean"), ("phone_columns", "array"), ("task_id", "integer")]),
            "Questionnaire": object(&[("campaign_id", "integer"), ("questions", "array"), ("updated_by", "string"), ("updated_at", "string")]),
            "AnswersSpec": object(&[("answers", "object"), ("respondent", "string"), ("respondent_name", "string"), ("answered_at", "string")]),
            "Answers": object(&[("contact_id", "integer"), ("answers", "object"), ("respondent", "string"), ("respondent_name", "string"),
                                ("answered_at", "string"), ("recorded_by", "string"), ("recorded_at", "string")]),
            "PermissionsSpec": object(&[("grants", "array")]),
            "Prompt": object(&[("name", "string"), ("seconds", "number"), ("updated_at", "string"), ("updated_by", "string")]),
            "Permissions": object(&[("campaign_id", "integer"), ("restricted", "boolean"), ("grants", "array")]),
            "AgentLogin": object(&[("tasks", "array"), ("phone", "string"), ("sdp", "string")]),
            "AgentPause": object(&[("reason", "string")]),
            "Agent": object(&[("id", "integer"), ("name", "string"), ("state", "string"), ("reason", "string"), ("since", "string"),
                              ("call_id", "integer"), ("contact_id", "integer"), ("tasks", "array")]),
            "AgentList": object(&[("items", "array")]),
            "Ticket": object(&[("ticket", "string"), ("expires_in", "integer")]),
            "Event": object(&[("seq", "integer"), ("agent", "integer"), ("at", "string"), ("type", "string"), ("state", "string"), ("reason", "string"),
                              ("call", "integer"), ("task", "integer"), ("contact", "integer"), ("fields", "object"), ("phones", "array"),
                              ("direction", "string"), ("deadline", "string")]),
            "DncReport": object(&[("added", "integer"), ("already", "integer"), ("bad", "array"), ("bad_count", "integer"), ("contacts_marked", "integer")]),
        }
    })
}

/// The document (callers keep it: each call leaks the joined campaign paths).
fn document() -> Value {
    let mut paths = Map::new();
    for op in ops() {
        let mut params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                let kind = if matches!(name, "name" | "file") {
                    "string"
                } else {
                    "integer"
                };
                json!({"name": name, "in": "path", "required": true, "schema": {"type": kind}})
            })
            .collect();
        params.extend(op.query.iter().map(|(name, about)| {
            json!({"name": name, "in": "query", "required": false, "description": about, "schema": {"type": "string"}})
        }));
        let mut o = json!({
            "summary": op.summary,
            "parameters": params,
            "responses": {
                op.ok.0: if op.ok.1.is_empty() {
                    json!({"description": "done"})
                } else {
                    json!({"description": "ok", "content": {"application/json": {"schema": schema_ref(op.ok.1)}}})
                },
                "4XX": {"description": "problem details naming the field at fault",
                        "content": {"application/problem+json": {"schema": schema_ref("Problem")}}}
            }
        });
        if !op.roles.is_empty() {
            o["security"] = json!([{"bearer": []}]);
            o["description"] = json!(format!("Roles: {}.", op.roles));
        }
        let csv = json!({"text/csv": {"schema": {"type": "string"}}});
        let body = match op.body {
            Body::None => None,
            Body::Json(s) => Some(json!({"application/json": {"schema": schema_ref(s)}})),
            Body::Csv => Some(csv),
            Body::JsonOrCsv(s) => Some(
                json!({"application/json": {"schema": schema_ref(s)}, "text/csv": {"schema": {"type": "string"}}}),
            ),
            Body::Wav => {
                Some(json!({"audio/wav": {"schema": {"type": "string", "format": "binary"}}}))
            }
        };
        if let Some(content) = body {
            o["requestBody"] = json!({"required": true, "content": content});
        }
        paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(op.method.to_string(), o));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "dialerd", "version": env!("CARGO_PKG_VERSION"),
                 "description": "SIP telephony and predictive-dialer daemon: campaigns, tasks, contacts, imports, exports, do-not-call lists, users."},
        "paths": paths,
        "components": components(),
    })
}

/// `GET /api/v1/openapi.json`: built once (the table leaks its few joined paths once).
pub async fn serve() -> Json<Value> {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}
