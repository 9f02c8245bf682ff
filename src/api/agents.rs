//! `/api/v1/agents`: supervisors and admins list the agents and act for any of them (login,
//! ready, pause, hang-up, logout), and watch a queue's agents on
//! `/api/v1/queues/{task}/events`.

use super::agent::{forward_with, log_in, pause_input, redeem, send, EventsQuery};
use super::auth::{Caller, AGENTS_SUPERVISE};
use super::problem::{Params, Problem, QueryOf};
use super::AppState;
use crate::agents::driver::supervises;
use crate::agents::session::{Input, TaskId};
use crate::agents::AgentView;
use crate::store::users::{Role, User};
use axum::body::Bytes;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

type Answer<T> = Result<T, Problem>;

/// `GET /api/v1/agents`'s answer.
#[derive(Serialize)]
pub struct AgentList {
    /// Every user with role `agent`, by id.
    pub items: Vec<AgentView>,
}

/// The agent user `id`, or 404.
async fn agent(s: &AppState, id: i64) -> Answer<User> {
    let user = s.store.user(id).await?;
    if user.role != Role::Agent {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("user {id} is not an agent"),
        ));
    }
    Ok(user)
}

/// `GET /api/v1/agents`
pub async fn list(State(s): State<AppState>, caller: Caller) -> Answer<Json<AgentList>> {
    caller.require(AGENTS_SUPERVISE)?;
    let views = s.agents.views();
    let items = s
        .store
        .users()
        .await?
        .iter()
        .filter(|u| u.role == Role::Agent)
        .map(|u| {
            views
                .get(&u.id)
                .cloned()
                .unwrap_or_else(|| AgentView::logged_out(u))
        })
        .collect();
    Ok(Json(AgentList { items }))
}

/// `POST /api/v1/agents/{id}/session`: logs the agent in, as `POST /api/v1/agent/session`.
pub async fn start(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<axum::response::Response> {
    let by = caller.require(AGENTS_SUPERVISE)?;
    let user = agent(&s, id).await?;
    tracing::info!(by = %by.name, agent = %user.name, "session started for an agent");
    log_in(&s, &user, &body, &format!("/api/v1/agents/{id}/session")).await
}

async fn act(s: &AppState, caller: &Caller, id: i64, input: Input) -> Answer<Json<AgentView>> {
    let by = caller.require(AGENTS_SUPERVISE)?;
    let user = agent(s, id).await?;
    tracing::info!(by = %by.name, agent = %user.name, ?input, "agent steered");
    Ok(Json(s.agents.act(user.id, input)?))
}

/// `DELETE /api/v1/agents/{id}/session`
pub async fn stop(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<AgentView>> {
    act(&s, &caller, id, Input::LogOut).await
}

/// `POST /api/v1/agents/{id}/ready`
pub async fn ready(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<AgentView>> {
    act(&s, &caller, id, Input::Ready).await
}

/// `POST /api/v1/agents/{id}/pause`: `{"reason"}`.
pub async fn pause(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<AgentView>> {
    caller.require(AGENTS_SUPERVISE)?;
    let input = pause_input(&s, &body)?;
    act(&s, &caller, id, input).await
}

/// `POST /api/v1/agents/{id}/hangup`
pub async fn hang_up(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<AgentView>> {
    act(&s, &caller, id, Input::HangUp).await
}

/// `GET /api/v1/queues/{task}/events?ticket=…`: every state event of the agents serving the
/// call task, starting with each one's latest (a supervisor's or admin's ticket).
pub async fn queue_events(
    State(s): State<AppState>,
    Params(task): Params<TaskId>,
    QueryOf(q): QueryOf<EventsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let user = match redeem(&s, &q.ticket) {
        Ok(u) => u,
        Err(p) => return p.into_response(),
    };
    if !supervises(user.role) {
        return Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "a queue's events need the role admin or supervisor; you are {}",
                user.role.as_str()
            ),
        )
        .into_response();
    }
    ws.on_upgrade(move |socket| queue_stream(s, task, socket))
}

async fn queue_stream(s: AppState, task: TaskId, mut socket: WebSocket) {
    let mut live = s.agents.subscribe();
    let mut sent: std::collections::HashMap<i64, u64> = Default::default();
    for e in s.agents.task_states(task) {
        sent.insert(e.agent, e.seq);
        if send(&mut socket, &e).await.is_err() {
            return;
        }
    }
    let agents = s.agents.clone();
    let keep = |e: &crate::agents::events::Event| {
        let last = sent.entry(e.agent).or_default();
        let fresh = e.seq > *last && agents.serves(e.agent, task);
        if fresh {
            *last = e.seq;
        }
        fresh
    };
    // Beside the agents' events, the queue's figures whenever they change (looked at each
    // second): pacing, agents by state, calls in flight, callers waiting.
    let mut last = None;
    let figures = || {
        // No driver runs: nothing to say (agents' events say who is logged in).
        let f = s.live.figures(&[task]).into_iter().next()?;
        let now = serde_json::to_value(&f).unwrap_or_default();
        // Waiting times grow every second: compare without them.
        let mut key = now.clone();
        if let Some(w) = key
            .get_mut("waiting_callers")
            .and_then(|w| w.as_array_mut())
        {
            for c in w {
                c["waited_seconds"] = serde_json::Value::Null;
            }
        }
        if last.as_ref() == Some(&key) {
            return None;
        }
        last = Some(key);
        Some(serde_json::json!({"type": "queue", "task": task, "figures": now}).to_string())
    };
    forward_with(&mut socket, &mut live, keep, figures).await;
}
