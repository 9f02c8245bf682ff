//! What makes a user an agent beyond its role: a SIP login for its phone (kept only as digest
//! HA1s, which the caller computes) and the call tasks — queues — it may serve.

use super::{now_ms, push_in_list, Result, Store, StoreError};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;

/// An agent's SIP login as stored: hashes only, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SipLogin {
    /// The digest user name (unique).
    pub username: String,
    /// The realm the HA1s were computed with.
    pub realm: String,
    /// `MD5(username:realm:password)`, hex.
    pub ha1_md5: String,
    /// `SHA-256(username:realm:password)`, hex.
    pub ha1_sha256: String,
    /// The algorithm the phone is challenged with (`md5`, `sha-256`).
    pub digest: String,
}

impl std::fmt::Debug for SipLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The HA1s stand for the password: never printed.
        f.debug_struct("SipLogin")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// What the API shows of an agent beyond the user: never the password or its hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentProfile {
    /// The SIP login's user name, if the agent has one.
    pub sip_username: Option<String>,
    /// The digest algorithm its phone is challenged with, if it has a login.
    pub sip_digest: Option<String>,
    /// Ids of the call tasks the agent may serve, ascending.
    pub tasks: Vec<i64>,
}

/// A change to an agent: each part `None` is left as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentChange {
    /// The new SIP login; `Some(None)` removes it.
    pub sip: Option<Option<SipLogin>>,
    /// The new set of call tasks.
    pub tasks: Option<Vec<i64>>,
}

impl AgentChange {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.sip.is_none() && self.tasks.is_none()
    }
}

/// A SIP user name as accepted: 1 to 64 letters, digits, `.`, `_`, `-` (no `:` or `@`, which
/// would change what the digest covers, and nothing a phone's configuration has to escape).
pub fn check_sip_username(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "sip_username",
            "wanted 1 to 64 characters: letters, digits, . _ -",
        ))
    }
}

fn login_of(row: &sqlx::any::AnyRow) -> Result<SipLogin> {
    Ok(SipLogin {
        username: row.try_get("username")?,
        realm: row.try_get("realm")?,
        ha1_md5: row.try_get("ha1_md5")?,
        ha1_sha256: row.try_get("ha1_sha256")?,
        digest: row.try_get("digest")?,
    })
}

/// Applies `change` to user `user_id` inside `tx`.
pub(super) async fn apply_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: i64,
    change: &AgentChange,
) -> Result<()> {
    match &change.sip {
        None => {}
        Some(None) => {
            sqlx::query("DELETE FROM sip_accounts WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
        }
        Some(Some(login)) => {
            check_sip_username(&login.username)?;
            sqlx::query(
                "INSERT INTO sip_accounts \
                 (user_id, username, realm, ha1_md5, ha1_sha256, digest, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, \
                 realm = excluded.realm, ha1_md5 = excluded.ha1_md5, \
                 ha1_sha256 = excluded.ha1_sha256, digest = excluded.digest, \
                 updated_ms = excluded.updated_ms",
            )
            .bind(user_id)
            .bind(&login.username)
            .bind(&login.realm)
            .bind(&login.ha1_md5)
            .bind(&login.ha1_sha256)
            .bind(&login.digest)
            .bind(now_ms())
            .execute(&mut **tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("sip_username {:?} is taken", login.username))
                }
                e => e,
            })?;
        }
    }
    if let Some(tasks) = &change.tasks {
        let mut wanted = tasks.clone();
        wanted.sort_unstable();
        wanted.dedup();
        let mut found = Vec::new();
        for chunk in wanted.chunks(super::ID_CHUNK) {
            let mut q = super::builder::QueryBuilder::new(
                "SELECT id FROM tasks WHERE kind = 'call' AND id IN ",
            );
            push_in_list(&mut q, chunk);
            let ids: Vec<i64> = q.build_query_scalar().fetch_all(&mut **tx).await?;
            found.extend(ids);
        }
        if let Some(missing) = wanted.iter().find(|id| !found.contains(id)) {
            return Err(StoreError::invalid(
                "tasks",
                format!("no call task {missing}"),
            ));
        }
        sqlx::query("DELETE FROM agent_tasks WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        for task in wanted {
            sqlx::query("INSERT INTO agent_tasks (user_id, task_id) VALUES ($1, $2)")
                .bind(user_id)
                .bind(task)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

impl Store {
    /// Changes an agent's SIP login and tasks at once; a taken SIP user name is a conflict,
    /// an id that is no call task invalid (`tasks`).
    pub async fn update_agent(&self, user_id: i64, change: &AgentChange) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound {
                what: "user",
                id: user_id,
            });
        }
        apply_change(&mut tx, user_id, change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A user's SIP login, if any.
    pub async fn sip_login(&self, user_id: i64) -> Result<Option<SipLogin>> {
        let row = sqlx::query(
            "SELECT username, realm, ha1_md5, ha1_sha256, digest FROM sip_accounts \
             WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(login_of).transpose()
    }

    /// Every SIP login with its user's id.
    pub async fn sip_logins(&self) -> Result<Vec<(i64, SipLogin)>> {
        let rows = sqlx::query(
            "SELECT user_id, username, realm, ha1_md5, ha1_sha256, digest FROM sip_accounts \
             ORDER BY user_id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("user_id")?, login_of(r)?)))
            .collect()
    }

    /// The call tasks an agent may serve, ascending.
    pub async fn agent_tasks(&self, user_id: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT task_id FROM agent_tasks WHERE user_id = $1 ORDER BY task_id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?)
    }

    /// The agent whose SIP account is `account` — its store login, else (when `by_name`: the
    /// account is an `[[agents]]` one) the agent user named so — with its call tasks,
    /// ascending; `None` when it is no agent's. An `[[agents]]` account without such a user
    /// is an agent with no task.
    pub async fn sip_account_call_tasks(
        &self,
        account: &str,
        by_name: bool,
    ) -> Result<Option<Vec<i64>>> {
        let mut user: Option<i64> = sqlx::query_scalar(
            "SELECT s.user_id FROM sip_accounts s JOIN users u ON u.id = s.user_id \
             WHERE s.username = $1 AND u.role = 'agent'",
        )
        .bind(account)
        .fetch_optional(&self.reader)
        .await?;
        if user.is_none() && by_name {
            user = sqlx::query_scalar("SELECT id FROM users WHERE name = $1 AND role = 'agent'")
                .bind(account)
                .fetch_optional(&self.reader)
                .await?;
            if user.is_none() {
                return Ok(Some(Vec::new()));
            }
        }
        let Some(user) = user else {
            return Ok(None);
        };
        Ok(Some(
            sqlx::query_scalar(
                "SELECT a.task_id FROM agent_tasks a JOIN tasks t ON t.id = a.task_id \
                 WHERE a.user_id = $1 AND t.kind = 'call' ORDER BY a.task_id",
            )
            .bind(user)
            .fetch_all(&self.reader)
            .await?,
        ))
    }

    /// What the API shows of one agent.
    pub async fn agent_profile(&self, user_id: i64) -> Result<AgentProfile> {
        let login = self.sip_login(user_id).await?;
        Ok(AgentProfile {
            sip_username: login.as_ref().map(|l| l.username.clone()),
            sip_digest: login.map(|l| l.digest),
            tasks: self.agent_tasks(user_id).await?,
        })
    }

    /// What the API shows of every user that has a SIP login or tasks, by user id.
    pub async fn agent_profiles(&self) -> Result<HashMap<i64, AgentProfile>> {
        let mut out: HashMap<i64, AgentProfile> = HashMap::new();
        for (id, login) in self.sip_logins().await? {
            let p = out.entry(id).or_default();
            p.sip_username = Some(login.username);
            p.sip_digest = Some(login.digest);
        }
        let rows =
            sqlx::query("SELECT user_id, task_id FROM agent_tasks ORDER BY user_id, task_id")
                .fetch_all(&self.reader)
                .await?;
        for r in rows {
            let id: i64 = r.try_get("user_id")?;
            out.entry(id).or_default().tasks.push(r.try_get("task_id")?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tasks::{TaskKind, TaskSpec};
    use crate::store::users::Role;

    fn login(name: &str) -> SipLogin {
        SipLogin {
            username: name.into(),
            realm: "dialerd".into(),
            ha1_md5: "a".repeat(32),
            ha1_sha256: "b".repeat(64),
            digest: "md5".into(),
        }
    }

    async fn task(store: &Store, kind: TaskKind, settings: serde_json::Value, name: &str) -> i64 {
        let campaign = store
            .create_campaign(&serde_json::from_value(serde_json::json!({"name": name})).unwrap())
            .await
            .unwrap();
        let spec = TaskSpec {
            name: "t".into(),
            kind,
            settings,
            flow: vec![],
        };
        store.create_task(campaign.id, spec).await.unwrap().id
    }

    crate::store::both_backends! {
        async fn logins_and_tasks_are_kept_checked_and_go_with_their_user() {
            let (_dir, store) = crate::store::test_support::store().await;
            let call = task(&store, TaskKind::Call, serde_json::json!({}), "c1").await;
            let wait = task(
                &store,
                TaskKind::Wait,
                serde_json::json!({"seconds": 60}),
                "c2",
            )
            .await;
            let change = AgentChange {
                sip: Some(Some(login("ann"))),
                tasks: Some(vec![call, call]),
            };
            let ann = store
                .create_user_with("ann", Role::Agent, None, &change)
                .await
                .unwrap();
            let profile = store.agent_profile(ann.id).await.unwrap();
            assert_eq!(profile.sip_username.as_deref(), Some("ann"));
            assert_eq!(profile.tasks, [call]);
            assert_eq!(store.sip_login(ann.id).await.unwrap(), Some(login("ann")));

            // A taken SIP name, or a task that is no call task, stores nothing at all.
            let clash = AgentChange {
                sip: Some(Some(login("ann"))),
                tasks: None,
            };
            let e = store
                .create_user_with("bea", Role::Agent, None, &clash)
                .await
                .unwrap_err();
            assert!(matches!(e, StoreError::Conflict(_)), "{e}");
            let not_call = AgentChange {
                sip: None,
                tasks: Some(vec![wait]),
            };
            let e = store.update_agent(ann.id, &not_call).await.unwrap_err();
            assert!(
                matches!(&e, StoreError::Invalid { field, .. } if field == "tasks"),
                "{e}"
            );
            assert_eq!(store.users().await.unwrap().len(), 1);
            assert_eq!(store.agent_tasks(ann.id).await.unwrap(), [call]);

            store.delete_user(ann.id).await.unwrap();
            assert!(store.sip_logins().await.unwrap().is_empty());
            assert!(store.agent_profiles().await.unwrap().is_empty());
        }
    }

    crate::store::both_backends! {
        async fn a_sip_account_names_its_agent_and_call_tasks() {
            let (_dir, store) = crate::store::test_support::store().await;
            let t1 = task(&store, TaskKind::Call, serde_json::json!({}), "c1").await;
            let t2 = task(&store, TaskKind::Call, serde_json::json!({}), "c2").await;
            let ann = AgentChange {
                sip: Some(Some(login("ann-phone"))),
                tasks: Some(vec![t2, t1]),
            };
            store.create_user_with("ann", Role::Agent, None, &ann).await.unwrap();
            let bob = AgentChange { sip: None, tasks: Some(vec![t2]) };
            store.create_user_with("bob", Role::Agent, None, &bob).await.unwrap();
            store.create_user_with("cy", Role::Supervisor, None, &AgentChange::default()).await.unwrap();
            let tasks = |account: &'static str, by_name| {
                let store = store.clone();
                async move { store.sip_account_call_tasks(account, by_name).await.unwrap() }
            };
            // A store login, by its SIP name (not the user's).
            assert_eq!(tasks("ann-phone", false).await, Some(vec![t1, t2]));
            assert_eq!(tasks("ann", false).await, None);
            // An [[agents]] account: the agent user of that name, or an agent with no task.
            assert_eq!(tasks("bob", true).await, Some(vec![t2]));
            assert_eq!(tasks("bob", false).await, None);
            assert_eq!(tasks("dee", true).await, Some(vec![]));
            // A user that is no agent has no phone to place.
            assert_eq!(tasks("cy", true).await, Some(vec![]));
            assert_eq!(tasks("cy", false).await, None);
        }
    }
}
