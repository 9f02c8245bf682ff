//! Agents who log in by calling `sip.agent_login_number` from their registered phone: the
//! router hands such calls up (only INVITEs digest-authenticated as an agent's phone, whose
//! From user is the SIP account), and the call becomes the agent's session leg for the call
//! tasks the store gives the agent.
//!
//! Refusals are SIP answers, so the phone shows them at once: 403 when the account is no
//! agent's or the agent has no call task, 486 when the agent is logged in already.

use super::session::TaskId;
use super::Agents;
use crate::sip::leg::{Incoming, SipHandle};
use crate::store::users::{Role, User};
use crate::store::{Result, Store};
use tokio::sync::mpsc;

/// Serves the calls to the login number until the router stops handing them up.
pub async fn serve(
    agents: Agents,
    store: Store,
    sip: SipHandle,
    mut calls: mpsc::Receiver<Incoming>,
) {
    while let Some(call) = calls.recv().await {
        let (agents, store, sip) = (agents.clone(), store.clone(), sip.clone());
        tokio::spawn(async move { log_in(&agents, &store, &sip, call).await });
    }
}

/// Logs in the agent whose phone placed `call`, or rejects the call.
async fn log_in(agents: &Agents, store: &Store, sip: &SipHandle, call: Incoming) {
    let account = call.from_user.clone();
    let found = match agent_of(agents, store, &account).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(%account, error = %e, "agent login call: store error; 500");
            return sip.reject(call.leg.id, 500).await;
        }
    };
    let Some((user, tasks)) = found else {
        return sip.reject(call.leg.id, 403).await;
    };
    tracing::info!(agent = %user.name, ?tasks, %account, "agent logging in by calling the login number");
    if let Err(refused) = agents.log_in_on_call(&user, tasks, account, call) {
        let (e, call) = *refused;
        tracing::info!(agent = %user.name, error = %e, "agent login call refused; 486");
        sip.reject(call.leg.id, 486).await;
    }
}

/// The agent a SIP account belongs to (a store login, else an `[[agents]]` account named as
/// the user) with its call tasks; `None` when it is no agent's or the agent has no call task.
async fn agent_of(
    agents: &Agents,
    store: &Store,
    account: &str,
) -> Result<Option<(User, Vec<TaskId>)>> {
    let owner = store
        .sip_logins()
        .await?
        .into_iter()
        .find(|(_, l)| l.username == account)
        .map(|(id, _)| id);
    let user = match owner {
        Some(id) => Some(store.user(id).await?),
        None if agents.is_config_account(account) => {
            store.users().await?.into_iter().find(|u| u.name == account)
        }
        None => None,
    };
    let Some(user) = user.filter(|u| u.role == Role::Agent) else {
        tracing::info!(%account, "agent login call from an account that is no agent's; 403");
        return Ok(None);
    };
    let mut call_tasks = Vec::new();
    for c in store.campaigns().await? {
        for t in store.tasks(c.id).await? {
            if t.spec.call_settings().is_some() {
                call_tasks.push(t.id);
            }
        }
    }
    let tasks: Vec<TaskId> = store
        .agent_tasks(user.id)
        .await?
        .into_iter()
        .filter(|t| call_tasks.contains(t))
        .collect();
    if tasks.is_empty() {
        tracing::info!(agent = %user.name, "agent login call from an agent without call tasks; 403");
        return Ok(None);
    }
    Ok(Some((user, tasks)))
}
