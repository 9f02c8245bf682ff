//! `GET /api/v1/campaigns/{id}/dialer`: the live figures of the campaign's call tasks whose
//! driver runs (calls in flight, placed, answered, abandoned, abandon ratios, agents), and
//! `…/dialer/history`: occupancy and abandons per 5 minutes over the last hours.

use super::auth::{Caller, CALLABLE_READ};
use super::problem::{Params, Problem};
use super::AppState;
use crate::dialer::abandon::BUCKET;
use crate::dialer::time::Time;
use crate::store::tasks::TaskKind;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Longest history asked for, in hours (the occupancy is kept for a day).
const MAX_HOURS: u32 = 24;

/// `GET …/dialer`: `{"campaign_id", "dialing", "tasks": [figures of the drivers running on
/// this node], "held_by": [{"task_id", "node"}]}` (`held_by`: which node dials each of the
/// campaign's call tasks, when several nodes share the store; the figures are on that node).
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Result<Json<Value>, Problem> {
    caller.require(CALLABLE_READ)?;
    let campaign = s.store.campaign(id).await?;
    let tasks: Vec<i64> = s.store.tasks(id).await?.iter().map(|t| t.id).collect();
    let figures = s.live.figures(&tasks);
    let held_by: Vec<Value> = s
        .store
        .task_leases(crate::store::now_ms())
        .await?
        .into_iter()
        .filter(|l| tasks.contains(&l.task_id))
        .map(|l| json!({"task_id": l.task_id, "node": l.node}))
        .collect();
    Ok(Json(json!({
        "campaign_id": id,
        "dialing": crate::dialer::live::supervisor::dials_now(&campaign.spec, crate::store::now_ms()),
        "tasks": figures,
        "held_by": held_by,
    })))
}

/// `…/dialer/history?hours=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// How many hours back (default 6, at most 24).
    #[serde(default)]
    hours: Option<u32>,
}

/// `GET …/dialer/history`: per call task, every 5-minute bucket of the last `hours`:
/// `{"start", "occupancy" (null when no agent was logged in), "answered", "abandoned"}`.
/// Occupancy is kept in memory since the daemon started; answers and abandons come from the
/// task's stored abandon ledger.
pub async fn history(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require(CALLABLE_READ)?;
    let Query(q) =
        query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()).field("hours"))?;
    let hours = q.hours.unwrap_or(6);
    if hours == 0 || hours > MAX_HOURS {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "wanted 1 to 24").field("hours"));
    }
    s.store.campaign(id).await?;
    let bucket = BUCKET.as_millis() as u64;
    let now = crate::store::now_ms().max(0) as u64;
    let first = (now - now % bucket).saturating_sub(u64::from(hours) * 3600 * 1000 - bucket);
    let mut tasks = Vec::new();
    for task in s.store.tasks(id).await? {
        if task.spec.kind != TaskKind::Call {
            continue;
        }
        // start → (busy, present, answered, abandoned)
        let mut slots: BTreeMap<u64, (f64, f64, u64, u64)> = (first..=now)
            .step_by(bucket as usize)
            .map(|start| (start, (0.0, 0.0, 0, 0)))
            .collect();
        for b in s.agents.occupancy_history(task.id) {
            if let Some(slot) = slots.get_mut(&b.start_ms) {
                slot.0 += b.busy_seconds;
                slot.1 += b.present_seconds;
            }
        }
        if let Some(state) = s.store.dialer_state(task.id).await? {
            for (start, counts) in state.ledger.buckets_since(Time(first)) {
                if let Some(slot) = slots.get_mut(&start.0) {
                    slot.2 += counts.live;
                    slot.3 += counts.abandoned;
                }
            }
        }
        let buckets: Vec<Value> = slots
            .into_iter()
            .map(|(start, (busy, present, answered, abandoned))| {
                json!({
                    "start": crate::store::rfc3339(start as i64),
                    "occupancy": (present > 0.0).then(|| busy / present),
                    "answered": answered,
                    "abandoned": abandoned,
                })
            })
            .collect();
        tasks.push(json!({"task_id": task.id, "name": task.spec.name, "buckets": buckets}));
    }
    Ok(Json(json!({
        "campaign_id": id,
        "bucket_seconds": BUCKET.as_secs(),
        "tasks": tasks,
    })))
}
