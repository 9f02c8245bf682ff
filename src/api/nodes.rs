//! `GET /api/v1/nodes`: which node dials which call task, read from the store's task leases
//! (the same answer on every node), and the name of the node that answers.

use super::auth::{Caller, TRUNKS_READ};
use super::problem::Problem;
use super::AppState;
use crate::store::{now_ms, rfc3339};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `GET /api/v1/nodes`: `{"node": this node, "nodes": [{"name", "tasks": [task ids]}],
/// "tasks": [{"task_id", "node", "expires_at"}]}`; only unexpired leases count.
pub async fn list(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, Problem> {
    caller.require(TRUNKS_READ)?;
    let leases = s.store.task_leases(now_ms()).await?;
    let mut nodes: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for l in &leases {
        nodes.entry(&l.node).or_default().push(l.task_id);
    }
    Ok(Json(json!({
        "node": s.live.node(),
        "nodes": nodes
            .into_iter()
            .map(|(name, tasks)| json!({"name": name, "tasks": tasks}))
            .collect::<Vec<_>>(),
        "tasks": leases
            .iter()
            .map(|l| json!({
                "task_id": l.task_id,
                "node": l.node,
                "expires_at": rfc3339(l.expires_ms),
            }))
            .collect::<Vec<_>>(),
    })))
}
