//! `GET /api/v1/nodes`: the nodes that are up (their name rows, renewed by each node's
//! heartbeat) and which dials which call task (the task leases), read from the store: the same
//! answer on every node, with the name of the node that answers.

use super::auth::{Caller, TRUNKS_READ};
use super::problem::Problem;
use super::AppState;
use crate::store::{now_ms, rfc3339};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `GET /api/v1/nodes`: `{"node": this node, "nodes": [{"name", "instance", "started_at",
/// "heartbeat_at", "tasks": [task ids]}], "tasks": [{"task_id", "node", "expires_at"}]}`;
/// only unexpired rows count (a lease holder without a name row shows with nulls).
pub async fn list(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, Problem> {
    caller.require(TRUNKS_READ)?;
    let now = now_ms();
    let up = s.store.nodes_up(now).await?;
    let leases = s.store.task_leases(now).await?;
    let mut nodes: BTreeMap<&str, Value> = up
        .iter()
        .map(|n| {
            let node = json!({
                "name": n.name,
                "instance": n.instance,
                "started_at": rfc3339(n.started_ms),
                "heartbeat_at": rfc3339(n.heartbeat_ms),
                "tasks": [],
            });
            (n.name.as_str(), node)
        })
        .collect();
    for l in &leases {
        let node = nodes.entry(l.node.as_str()).or_insert_with(|| {
            json!({"name": l.node, "instance": null, "started_at": null,
                   "heartbeat_at": null, "tasks": []})
        });
        if let Some(tasks) = node["tasks"].as_array_mut() {
            tasks.push(l.task_id.into());
        }
    }
    Ok(Json(json!({
        "node": s.live.node(),
        "nodes": nodes.into_values().collect::<Vec<_>>(),
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
