//! Task leases: which node dials a call task when several share the store. A node takes a
//! task's lease before it starts the task's driver and renews it every few seconds; another
//! node may take it only once it has expired. Taking, renewing and taking over are one
//! conditional upsert, so of nodes racing for one task exactly one holds it.
//!
//! Expiry times are epoch milliseconds on the clock of the node that writes them: the nodes'
//! clocks must agree to well under the lease time (NTP does).

use super::{Result, Store};

/// A call task's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLease {
    /// The call task.
    pub task_id: i64,
    /// The node holding it.
    pub node: String,
    /// Until when (epoch milliseconds).
    pub expires_ms: i64,
}

/// What became of a claim on a task's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The claiming node holds the lease now. `from`: the node whose expired lease it took
    /// over (`None`: the lease was free, or the claimer's own).
    Held {
        /// The previous holder, when another node.
        from: Option<String>,
    },
    /// Another node holds the lease, unexpired.
    Elsewhere(String),
}

impl Store {
    /// Takes or renews `node`'s lease on `task_id` until `now_ms + ttl_ms`: it succeeds when
    /// no lease is stored, the stored one has expired, or it is `node`'s own.
    pub async fn claim_task(
        &self,
        task_id: i64,
        node: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Claim> {
        self.unfenced()?;
        let _timer = self.timings.start("task_lease");
        let before: Option<String> =
            sqlx::query_scalar("SELECT node FROM task_leases WHERE task_id = $1")
                .bind(task_id)
                .fetch_optional(&self.writer)
                .await?;
        let done = sqlx::query(
            "INSERT INTO task_leases (task_id, node, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (task_id) DO UPDATE SET node = excluded.node, \
             expires_ms = excluded.expires_ms \
             WHERE task_leases.node = excluded.node OR task_leases.expires_ms <= $4",
        )
        .bind(task_id)
        .bind(node)
        .bind(now_ms.saturating_add(ttl_ms))
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Claim::Held {
                from: before.filter(|b| b != node),
            });
        }
        let holder: Option<String> =
            sqlx::query_scalar("SELECT node FROM task_leases WHERE task_id = $1")
                .bind(task_id)
                .fetch_optional(&self.writer)
                .await?;
        // Released between the two statements: free now, but not claimed; the next try takes it.
        Ok(Claim::Elsewhere(holder.unwrap_or_default()))
    }

    /// Gives up `node`'s lease on `task_id` (a no-op when it holds none).
    pub async fn release_task(&self, task_id: i64, node: &str) -> Result<()> {
        self.unfenced()?;
        sqlx::query("DELETE FROM task_leases WHERE task_id = $1 AND node = $2")
            .bind(task_id)
            .bind(node)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The node holding `task_id`'s lease unexpired at `now_ms`, if any.
    pub async fn task_holder(&self, task_id: i64, now_ms: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT node FROM task_leases WHERE task_id = $1 AND expires_ms > $2",
        )
        .bind(task_id)
        .bind(now_ms)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// The task leases unexpired at `now_ms`, by task.
    pub async fn task_leases(&self, now_ms: i64) -> Result<Vec<TaskLease>> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT task_id, node, expires_ms FROM task_leases WHERE expires_ms > $1 \
             ORDER BY task_id",
        )
        .bind(now_ms)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(task_id, node, expires_ms)| TaskLease {
                task_id,
                node,
                expires_ms,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::Claim;
    use crate::store::test_support;

    const TTL: i64 = 15_000;

    crate::store::both_backends! {
        async fn a_task_lease_is_held_renewed_released_and_taken_over_once_expired() {
            let (_dir, store) = test_support::store().await;
            let (_, task) =
                test_support::campaign_with_call_task(&store, serde_json::json!({"name": "c"}))
                    .await;
            let t0 = 1_800_000_000_000;
            let held = |from: Option<&str>| Claim::Held {
                from: from.map(String::from),
            };
            assert_eq!(store.claim_task(task, "a", t0, TTL).await.unwrap(), held(None));
            // Another node is refused while it runs, the holder renews.
            assert_eq!(
                store.claim_task(task, "b", t0 + 5_000, TTL).await.unwrap(),
                Claim::Elsewhere("a".into())
            );
            assert_eq!(store.claim_task(task, "a", t0 + 5_000, TTL).await.unwrap(), held(None));
            let listed = store.task_leases(t0 + 5_000).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!((listed[0].task_id, listed[0].node.as_str()), (task, "a"));
            assert_eq!(listed[0].expires_ms, t0 + 5_000 + TTL);
            // Renewed: still a's 15 s after the first claim.
            assert_eq!(
                store.claim_task(task, "b", t0 + TTL, TTL).await.unwrap(),
                Claim::Elsewhere("a".into())
            );
            // a stops renewing (it died): once expired, b takes it over, and a is refused.
            let later = t0 + 5_000 + TTL;
            assert!(store.task_leases(later).await.unwrap().is_empty());
            assert_eq!(store.claim_task(task, "b", later, TTL).await.unwrap(), held(Some("a")));
            assert_eq!(
                store.claim_task(task, "a", later + 1, TTL).await.unwrap(),
                Claim::Elsewhere("b".into())
            );
            // Releasing someone else's lease does nothing; the holder's release frees it.
            store.release_task(task, "a").await.unwrap();
            assert_eq!(store.task_leases(later).await.unwrap()[0].node, "b");
            store.release_task(task, "b").await.unwrap();
            assert!(store.task_leases(later).await.unwrap().is_empty());
            assert_eq!(store.claim_task(task, "a", later, TTL).await.unwrap(), held(None));
            // A deleted task takes its lease with it.
            let c = store.campaigns().await.unwrap()[0].id;
            store.delete_campaign(c).await.unwrap();
            assert!(store.task_leases(later).await.unwrap().is_empty());
        }
    }

    crate::store::both_backends! {
        async fn of_two_nodes_racing_for_tasks_exactly_one_holds_each() {
            let (_dir, one) = test_support::store().await;
            // The second node: its own connections to the same database.
            let two = test_support::reopen(&one).await;
            let mut tasks = Vec::new();
            for i in 0..12 {
                let (_, t) = test_support::campaign_with_call_task(
                    &one,
                    serde_json::json!({"name": format!("c{i}")}),
                )
                .await;
                tasks.push(t);
            }
            let now = 1_800_000_000_000;
            // Half the tasks are free, half have a lease that has just expired.
            for t in tasks.iter().skip(6) {
                one.claim_task(*t, "dead", now - 2 * TTL, TTL).await.unwrap();
            }
            let race = |store: crate::store::Store, node: &'static str| {
                let tasks = tasks.clone();
                tokio::spawn(async move {
                    let mut won = Vec::new();
                    for t in tasks {
                        if let Claim::Held { .. } = store.claim_task(t, node, now, TTL).await.unwrap()
                        {
                            won.push(t);
                        }
                    }
                    won
                })
            };
            let (a, b) = tokio::join!(race(one.clone(), "a"), race(two.clone(), "b"));
            let (a, b) = (a.unwrap(), b.unwrap());
            for t in &tasks {
                let holders = a.iter().chain(&b).filter(|w| *w == t).count();
                assert_eq!(holders, 1, "task {t}: a won {a:?}, b won {b:?}");
            }
            let listed = one.task_leases(now).await.unwrap();
            assert_eq!(listed.len(), tasks.len());
            for l in listed {
                let want = if a.contains(&l.task_id) { "a" } else { "b" };
                assert_eq!(l.node, want, "the stored holder is the winner");
            }
        }
    }
}
