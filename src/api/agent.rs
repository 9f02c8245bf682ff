//! `/api/v1/agent/...`: an agent's own session (login on a phone, ready, pause, hang-up,
//! logout), the result of its call, a ticket for its event WebSocket, and that WebSocket.
//! Supervisors and admins do the same for any agent under `/api/v1/agents/{id}/...`
//! (`agents.rs`).

use super::auth::{Caller, AGENT_SELF, EVENT_TICKET};
use super::problem::{parse, Problem, QueryOf};
use super::AppState;
use crate::agents::events::Event;
use crate::agents::session::{Input, Phone, TaskId, SYSTEM_REASONS};
use crate::agents::{AgentView, SessionError};
use crate::dialer::agent::AgentStateKind;
use crate::dialer::live::{AgentResult, LiveError};
use crate::store::contacts::STATUSES;
use crate::store::users::{Role, User};
use crate::webrtc::WebRtcError;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tokio::sync::broadcast;

type Answer<T> = Result<T, Problem>;

/// Body of `POST …/session`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogIn {
    tasks: Vec<TaskId>,
    phone: String,
    /// The browser's SDP offer, with `phone: "webrtc"`.
    #[serde(default)]
    sdp: Option<String>,
}

/// Body of `POST …/pause`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pause {
    reason: String,
}

/// Query of the event WebSockets.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The single-use ticket.
    pub ticket: String,
    /// The last `seq` the client saw.
    #[serde(default)]
    pub since: Option<u64>,
}

impl From<SessionError> for Problem {
    fn from(e: SessionError) -> Self {
        let status = match e {
            SessionError::NotAllowed { .. }
            | SessionError::AlreadyLoggedIn
            | SessionError::NotLoggedIn
            | SessionError::NoSipAccount(_) => StatusCode::CONFLICT,
            SessionError::PhoneFailed(_) => StatusCode::BAD_GATEWAY,
            SessionError::WebRtc(WebRtcError::Offer(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            SessionError::WebRtc(WebRtcError::Off) => StatusCode::CONFLICT,
            SessionError::WebRtc(WebRtcError::Media(_)) => StatusCode::SERVICE_UNAVAILABLE,
            SessionError::WebRtc(_) => StatusCode::INTERNAL_SERVER_ERROR,
            SessionError::Metrics(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Problem::new(status, e.to_string())
    }
}

/// Logs `user` in: checks the tasks and the phone, places the session call, waits for it; a
/// browser (`webrtc`) gets the SDP answer at once and `location` to DELETE.
pub async fn log_in(s: &AppState, user: &User, body: &[u8], location: &str) -> Answer<Response> {
    let req: LogIn = parse(body)?;
    if req.sdp.is_some() != (req.phone == "webrtc") {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sdp: wanted the browser's SDP offer with phone \"webrtc\", and only then",
        )
        .field("sdp"));
    }
    let phone = match req.phone.as_str() {
        "webrtc" => Phone::WebRtc,
        // The store's SIP login, else an `[[agents]]` account named as the agent.
        "sip" => match s.store.sip_login(user.id).await? {
            Some(login) => Phone::Sip(login.username),
            None if s.agents.is_config_account(&user.name) => Phone::Sip(user.name.clone()),
            None => return Err(SessionError::NoSipAccount(user.name.clone()).into()),
        },
        n if n.len() > 2
            && n.len() <= 16
            && n.starts_with('+')
            && n[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            Phone::Number(n.to_string())
        }
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "phone: wanted \"sip\" (the agent's registered phone), \"webrtc\" (this browser, with its SDP offer in `sdp`) or a number in E.164 (+ and up to 15 digits)",
            )
            .field("phone"))
        }
    };
    if req.tasks.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "tasks: wanted at least one call task",
        )
        .field("tasks"));
    }
    let mut call_tasks = Vec::new();
    for c in s.store.campaigns().await? {
        for t in s.store.tasks(c.id).await? {
            if t.spec.call_settings().is_some() {
                call_tasks.push(t.id);
            }
        }
    }
    if let Some(t) = req.tasks.iter().find(|t| !call_tasks.contains(t)) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("tasks: {t} is not a call task"),
        )
        .field("tasks"));
    }
    // An agent given tasks serves only those; one given none may serve any call task.
    let allowed = s.store.agent_tasks(user.id).await?;
    if let Some(t) = req
        .tasks
        .iter()
        .find(|t| !allowed.is_empty() && !allowed.contains(t))
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "tasks: agent {} may not serve task {t} (its tasks: {allowed:?})",
                user.name
            ),
        )
        .field("tasks"));
    }
    let mut tasks = req.tasks;
    tasks.sort_unstable();
    tasks.dedup();
    tracing::info!(agent = %user.name, ?tasks, phone = %req.phone, "agent logging in");
    if let Some(offer) = req.sdp {
        let (view, answer) = s
            .agents
            .log_in_webrtc(user, tasks, &offer)
            .map_err(|e| match e {
                SessionError::WebRtc(WebRtcError::Offer(_)) => Problem::from(e).field("sdp"),
                e => e.into(),
            })?;
        let mut body = serde_json::to_value(view).unwrap_or_default();
        body["sdp"] = answer.into();
        return Ok((
            StatusCode::CREATED,
            [(axum::http::header::LOCATION, location.to_string())],
            Json(body),
        )
            .into_response());
    }
    let view = s.agents.log_in(user, tasks, phone).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Checks a pause reason against the system reasons and `sessions.pause_reasons`.
pub fn pause_input(s: &AppState, body: &[u8]) -> Answer<Input> {
    let req: Pause = parse(body)?;
    let known = SYSTEM_REASONS.contains(&req.reason.as_str())
        || s.agents.pause_reasons().contains(&req.reason);
    if !known {
        let mut all: Vec<&str> = s
            .agents
            .pause_reasons()
            .iter()
            .map(String::as_str)
            .collect();
        all.extend(SYSTEM_REASONS);
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "reason: \"{}\" is not one of {}",
                req.reason,
                all.join(", ")
            ),
        )
        .field("reason"));
    }
    Ok(Input::Pause(req.reason))
}

/// `POST /api/v1/agent/session`: `{"tasks": [ids], "phone": "sip" | "+E164"}`; 201 once the
/// phone answered (the agent is paused, reason `login`). With `"phone": "webrtc", "sdp":
/// offer` 201 at once with the SDP answer in `sdp` (WHIP-style; `Location` to DELETE).
pub async fn start(State(s): State<AppState>, caller: Caller, body: Bytes) -> Answer<Response> {
    let user = caller.require(AGENT_SELF)?;
    log_in(&s, user, &body, "/api/v1/agent/session").await
}

/// `DELETE /api/v1/agent/session`: logout; a call in progress ends first, then the leg.
pub async fn stop(State(s): State<AppState>, caller: Caller) -> Answer<Json<AgentView>> {
    let user = caller.require(AGENT_SELF)?;
    Ok(Json(s.agents.act(user.id, Input::LogOut)?))
}

/// `GET /api/v1/agent/session`: the agent's own state (`logged_out` when no session runs).
pub async fn show(State(s): State<AppState>, caller: Caller) -> Answer<Json<AgentView>> {
    let user = caller.require(AGENT_SELF)?;
    Ok(Json(
        s.agents.view(user.id).ok_or(SessionError::NotLoggedIn)?,
    ))
}

/// `POST /api/v1/agent/ready`
pub async fn ready(State(s): State<AppState>, caller: Caller) -> Answer<Json<AgentView>> {
    let user = caller.require(AGENT_SELF)?;
    Ok(Json(s.agents.act(user.id, Input::Ready)?))
}

/// `POST /api/v1/agent/pause`: `{"reason"}`.
pub async fn pause(
    State(s): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Answer<Json<AgentView>> {
    let user = caller.require(AGENT_SELF)?;
    let input = pause_input(&s, &body)?;
    Ok(Json(s.agents.act(user.id, input)?))
}

/// `POST /api/v1/agent/hangup`: ends the call with the customer.
pub async fn hang_up(State(s): State<AppState>, caller: Caller) -> Answer<Json<AgentView>> {
    let user = caller.require(AGENT_SELF)?;
    Ok(Json(s.agents.act(user.id, Input::HangUp)?))
}

/// `POST /api/v1/agent/ticket`: a single-use ticket for an event WebSocket (browsers cannot
/// set headers on one, and the API token never goes in a URL).
pub async fn ticket(
    State(s): State<AppState>,
    caller: Caller,
) -> Answer<(StatusCode, Json<serde_json::Value>)> {
    let user = caller.require(EVENT_TICKET)?;
    let ticket = s.agents.ticket(user);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "ticket": ticket,
            "expires_in": crate::agents::driver::TICKET_TTL.as_secs(),
        })),
    ))
}

/// The user of an event WebSocket's ticket, or 401.
pub fn redeem(s: &AppState, ticket: &str) -> Answer<User> {
    s.agents.redeem(ticket).ok_or_else(|| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "wanted a fresh ticket from POST /api/v1/agent/ticket (single use, 30 s)",
        )
        .field("ticket")
    })
}

/// `GET /api/v1/agent/events?ticket=…[&since=N]`: the agent's events as JSON text messages,
/// first the kept events after `N` (without `since`: the latest, the agent's state now).
pub async fn events(
    State(s): State<AppState>,
    QueryOf(q): QueryOf<EventsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let user = match redeem(&s, &q.ticket) {
        Ok(u) => u,
        Err(p) => return p.into_response(),
    };
    if user.role != Role::Agent {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "an agent's event stream is the agent's own; supervisors watch /api/v1/queues/{task}/events",
        )
        .into_response();
    }
    ws.on_upgrade(move |socket| agent_stream(s, user.id, q.since, socket))
}

/// With `since`, the kept events after it; without, the latest (the agent's state now).
async fn agent_stream(s: AppState, agent: i64, since: Option<u64>, mut socket: WebSocket) {
    // Subscribed before the missed events are read, so none falls between.
    let mut live = s.agents.subscribe();
    let mut kept = s.agents.events_since(agent, since.unwrap_or(0));
    if since.is_none() {
        kept = kept.split_off(kept.len().saturating_sub(1));
    }
    let mut sent = since.unwrap_or(0);
    for e in kept {
        sent = e.seq;
        if send(&mut socket, &e).await.is_err() {
            return;
        }
    }
    forward(&mut socket, &mut live, |e| {
        let fresh = e.agent == agent && e.seq > sent;
        if fresh {
            sent = e.seq;
        }
        fresh
    })
    .await;
}

/// Sends the events `keep` lets through until the client leaves or lags too far (it then
/// reconnects with `since`).
pub async fn forward(
    socket: &mut WebSocket,
    live: &mut broadcast::Receiver<Event>,
    keep: impl FnMut(&Event) -> bool,
) {
    forward_with(socket, live, keep, || None).await
}

/// Like [`forward`], and each second sends what `extra` gives, if anything.
pub async fn forward_with(
    socket: &mut WebSocket,
    live: &mut broadcast::Receiver<Event>,
    mut keep: impl FnMut(&Event) -> bool,
    mut extra: impl FnMut() -> Option<String>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => if let Some(text) = extra() {
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            },
            got = live.recv() => match got {
                Ok(e) => if keep(&e) && send(socket, &e).await.is_err() {
                    return;
                },
                Err(_) => {
                    let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1013,
                        reason: "too far behind; reconnect with since".into(),
                    }))).await;
                    return;
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Sends one event as a JSON text message.
pub async fn send(socket: &mut WebSocket, e: &Event) -> Result<(), axum::Error> {
    let text = serde_json::to_string(e).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}

/// Body of `POST /api/v1/agent/result`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultBody {
    status: String,
    detail: String,
    #[serde(default = "auto")]
    follow_up: String,
    #[serde(default)]
    follow_up_at: Option<String>,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
}

fn auto() -> String {
    "auto".into()
}

impl From<LiveError> for Problem {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::NotInWrapUp => Problem::new(
                StatusCode::CONFLICT,
                "not in wrap-up: a result is posted after a call, before the wrap-up time ends",
            ),
            LiveError::NoOffer => Problem::new(
                StatusCode::CONFLICT,
                "no preview offer: accept or skip answers a call.offered of direction preview",
            ),
            LiveError::Store(e) => e.into(),
            LiveError::Metrics(e) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// `POST /api/v1/agent/result`: `{"status", "detail", "follow_up": "auto"|"particular",
/// "follow_up_at", "fields"}` ends the wrap-up of the agent's call; the attempt is recorded
/// with it. 409 when not in wrap-up; 422 naming the field at fault.
pub async fn result(
    State(s): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Answer<Json<AgentView>> {
    let user = caller.require(AGENT_SELF)?;
    let req: ResultBody = parse(&body)?;
    let invalid = |field: &str, why: String| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{field}: {why}")).field(field)
    };
    if !STATUSES.contains(&req.status.as_str()) {
        return Err(invalid(
            "status",
            format!("wanted one of {}", STATUSES.join(", ")),
        ));
    }
    if req.detail.trim().is_empty() || req.detail.len() > 100 || req.detail.starts_with('$') {
        return Err(invalid(
            "detail",
            "wanted 1 to 100 characters, not starting with $ (the dialer's own details)".into(),
        ));
    }
    let follow_up_ms = match (req.follow_up.as_str(), &req.follow_up_at) {
        ("auto", None) => None,
        ("particular", Some(at)) => Some(
            chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|e| invalid("follow_up_at", format!("wanted RFC 3339: {e}")))?
                .timestamp_millis(),
        ),
        ("particular", None) => {
            return Err(invalid(
                "follow_up_at",
                "wanted with follow_up \"particular\"".into(),
            ))
        }
        ("auto", Some(_)) => {
            return Err(invalid(
                "follow_up_at",
                "only with follow_up \"particular\"".into(),
            ))
        }
        _ => {
            return Err(invalid(
                "follow_up",
                "wanted \"auto\" or \"particular\"".into(),
            ))
        }
    };
    let (state, call) = s.agents.call_of(user.id).ok_or(LiveError::NotInWrapUp)?;
    if state != AgentStateKind::WrapUp {
        return Err(LiveError::NotInWrapUp.into());
    }
    let particular = req.follow_up == "particular";
    let result = AgentResult {
        owner: particular.then(|| user.name.clone()),
        status: req.status,
        detail: req.detail,
        follow_up_ms,
        fields: req.fields,
        actor: user.name.clone(),
    };
    s.live.result(call.task, user.id, call.call, result).await?;
    Ok(Json(
        s.agents.view(user.id).ok_or(SessionError::NotLoggedIn)?,
    ))
}

/// `POST /api/v1/agent/preview/dial`: places the contact of the agent's `preview.offer`;
/// 409 without an offer.
pub async fn preview_dial(State(s): State<AppState>, caller: Caller) -> Answer<Json<AgentView>> {
    preview(s, caller, true).await
}

/// `POST /api/v1/agent/preview/skip`: skips the offered contact (it goes back to the callable
/// contacts); 409 without an offer.
pub async fn preview_skip(State(s): State<AppState>, caller: Caller) -> Answer<Json<AgentView>> {
    preview(s, caller, false).await
}

async fn preview(s: AppState, caller: Caller, accept: bool) -> Answer<Json<AgentView>> {
    let user = caller.require(AGENT_SELF)?;
    let (state, call) = s.agents.call_of(user.id).ok_or(LiveError::NoOffer)?;
    if state != AgentStateKind::Reserved {
        return Err(LiveError::NoOffer.into());
    }
    s.live
        .preview(call.task, user.id, call.call, accept)
        .await?;
    Ok(Json(
        s.agents.view(user.id).ok_or(SessionError::NotLoggedIn)?,
    ))
}

/// The call tasks an agent may serve (its `tasks`, else every call task; every one for a
/// supervisor), with their campaigns.
async fn servable(
    s: &AppState,
    user: &User,
) -> Answer<Vec<(crate::store::campaigns::Campaign, crate::store::tasks::Task)>> {
    let allowed = s.store.agent_tasks(user.id).await?;
    let mut out = Vec::new();
    for c in s.store.campaigns().await? {
        for t in s.store.tasks(c.id).await? {
            if t.spec.call_settings().is_some() && (allowed.is_empty() || allowed.contains(&t.id)) {
                out.push((c.clone(), t));
            }
        }
    }
    Ok(out)
}

/// `GET /api/v1/agent/choices`: what an agent's screen offers — the pause reasons, the call
/// tasks it may serve (with their campaign, dial mode and wrap-up time) and each of those
/// campaigns' form, for the result. Supervisors and admins get every call task.
pub async fn choices(State(s): State<AppState>, caller: Caller) -> Answer<Json<serde_json::Value>> {
    let user = caller.require(EVENT_TICKET)?;
    let mut tasks = Vec::new();
    let mut forms = serde_json::Map::new();
    for (c, t) in servable(&s, user).await? {
        let settings = t.spec.call_settings().unwrap_or_default();
        tasks.push(serde_json::json!({
            "id": t.id,
            "name": t.spec.name,
            "campaign_id": c.id,
            "campaign": c.spec.name,
            "dial_mode": settings.dial_mode,
            "wrap_up_seconds": settings.wrap_up_seconds,
        }));
        if !forms.contains_key(&c.id.to_string()) {
            let form = s.store.form(c.id).await?;
            forms.insert(
                c.id.to_string(),
                serde_json::to_value(form.fields).unwrap_or_default(),
            );
        }
    }
    Ok(Json(serde_json::json!({
        "pause_reasons": s.agents.pause_reasons(),
        "tasks": tasks,
        "forms": forms,
    })))
}

/// `GET /api/v1/agent/contact`: the contact of the agent's offer or call now, with its
/// history (previous attempts, results, notes); 409 without one.
pub async fn contact(State(s): State<AppState>, caller: Caller) -> Answer<Json<serde_json::Value>> {
    let user = caller.require(AGENT_SELF)?;
    let none = || {
        Problem::new(
            StatusCode::CONFLICT,
            "no contact: the agent has no offer or call now",
        )
    };
    let view = s.agents.view(user.id).ok_or_else(none)?;
    let (_, call) = s.agents.call_of(user.id).ok_or_else(none)?;
    let contact_id = view.contact_id.ok_or_else(none)?;
    let (campaign, _) = servable(&s, user)
        .await?
        .into_iter()
        .find(|(_, t)| t.id == call.task)
        .ok_or_else(none)?;
    let c = s.store.contact(campaign.id, contact_id).await?;
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["history"] = serde_json::to_value(s.store.history(contact_id).await?).unwrap_or_default();
    Ok(Json(v))
}
