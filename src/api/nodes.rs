//! `GET /api/v1/nodes`: the nodes that are up (their name rows, renewed by each node's
//! heartbeat) and which dials which call task (the task leases), read from the store: the same
//! answer on every node, with the name of the node that answers.

use super::auth::{Caller, NODE_ROUTE, TRUNKS_READ};
use super::problem::{Problem, QueryOf};
use super::AppState;
use crate::store::{now_ms, rfc3339};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `GET /api/v1/nodes`: `{"node": this node, "nodes": [{"name", "instance", "started_at",
/// "heartbeat_at", "sip_uri", "tasks": [task ids]}], "tasks": [{"task_id", "node", "expires_at"}]}`;
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
                "sip_uri": n.sip_uri,
                "tasks": [],
            });
            (n.name.as_str(), node)
        })
        .collect();
    for l in &leases {
        let node = nodes.entry(l.node.as_str()).or_insert_with(|| {
            json!({"name": l.node, "instance": null, "started_at": null,
                   "heartbeat_at": null, "sip_uri": null, "tasks": []})
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

/// The query of [`route`].
#[derive(Debug, Deserialize)]
pub struct RouteQuery {
    /// The SIP user name of an agent's phone.
    sip_user: String,
}

/// `GET /api/v1/nodes/route?sip_user=NAME`: the SIP URI of the node that should serve the
/// agent whose phone registers as `NAME` ([`crate::placement`]), as plain text, for a proxy
/// in front of the nodes (Kamailio's `http_client`); the node's name in `Dialerd-Node`. 404
/// when the account is no agent's, 503 when no node up publishes a SIP address.
pub async fn route(
    State(s): State<AppState>,
    caller: Caller,
    QueryOf(q): QueryOf<RouteQuery>,
) -> Result<Response, Problem> {
    caller.require(NODE_ROUTE)?;
    let config_account = s.agents.is_config_account(&q.sip_user);
    let Some(tasks) = s
        .store
        .sip_account_call_tasks(&q.sip_user, config_account)
        .await?
    else {
        let detail = format!("no agent has the SIP account {:?}", q.sip_user);
        return Err(Problem::new(StatusCode::NOT_FOUND, detail).field("sip_user"));
    };
    let now = now_ms();
    // Only nodes that publish a SIP address can be relayed to.
    let up: Vec<_> = s
        .store
        .nodes_up(now)
        .await?
        .into_iter()
        .filter(|n| !n.sip_uri.is_empty())
        .collect();
    let leases = s.store.task_leases(now).await?;
    let names: Vec<&str> = up.iter().map(|n| n.name.as_str()).collect();
    let held: Vec<(i64, &str)> = leases
        .iter()
        .map(|l| (l.task_id, l.node.as_str()))
        .collect();
    let node = crate::placement::agent_node(&q.sip_user, &tasks, &held, &names)
        .and_then(|name| up.iter().find(|n| n.name == name))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no node that is up publishes a SIP address (node.sip_uri)",
            )
        })?;
    tracing::debug!(sip_user = %q.sip_user, ?tasks, node = %node.name, "agent placed");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::HeaderName::from_static("dialerd-node"),
                node.name.clone(),
            ),
        ],
        node.sip_uri.clone(),
    )
        .into_response())
}
