//! What a call task's dialer keeps across restarts: its abandon ledger and learned statistics
//! ([`Persisted`]), one JSON document per task, so a restarted daemon neither forgets the
//! abandons it must keep under the cap nor starts pacing from nothing.

use super::{now_ms, Result, Store, StoreError};
use crate::dialer::campaign::Persisted;

impl Store {
    /// Saves (replacing) the dialer state of `task_id`.
    pub async fn save_dialer_state(&self, task_id: i64, state: &Persisted) -> Result<()> {
        self.unfenced()?;
        let json = serde_json::to_string(state)
            .map_err(|e| StoreError::invalid("dialer_state", e.to_string()))?;
        sqlx::query(
            "INSERT INTO dialer_state (task_id, state, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, \
             updated_ms = excluded.updated_ms",
        )
        .bind(task_id)
        .bind(json)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The dialer state saved for `task_id`; `None` when none was. A document that does not
    /// read back as a valid state is an `Invalid` error naming why (the caller may start cold,
    /// which dials progressively until it has learned again).
    pub async fn dialer_state(&self, task_id: i64) -> Result<Option<Persisted>> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT state FROM dialer_state WHERE task_id = $1")
                .bind(task_id)
                .fetch_optional(&self.reader)
                .await?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::invalid("dialer_state", e.to_string()))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::dialer::abandon::AbandonLedger;
    use crate::dialer::campaign::{Campaign, CampaignConfig, ContactId, Input, Output, Persisted};
    use crate::dialer::pacing::{DialMode, PacerConfig};
    use crate::dialer::{CallId, Time};
    use std::time::Duration;

    fn config() -> CampaignConfig {
        CampaignConfig {
            pacer: PacerConfig {
                mode: DialMode::Predictive,
                ..PacerConfig::default()
            },
            max_cps: 1000.0,
            ..CampaignConfig::default()
        }
    }

    /// Runs `core` at `now` until it settles, leasing contacts from `next`; returns the
    /// calls placed.
    fn settle(core: &mut Campaign, now: Time, next: &mut i64) -> Vec<CallId> {
        let mut placed = Vec::new();
        loop {
            if core.poll_timeout().is_some_and(|t| t <= now) {
                core.handle_timeout(now).unwrap();
            }
            let outs: Vec<Output> = core.drain_outputs().collect();
            if outs.is_empty() {
                return placed;
            }
            for o in outs {
                match o {
                    Output::Lease(n) => {
                        let c = (0..n)
                            .map(|_| {
                                *next += 1;
                                ContactId(*next)
                            })
                            .collect();
                        core.handle(Input::Leased(c), now).unwrap();
                    }
                    Output::Place { call, .. } => placed.push(call),
                    Output::Bridge { call, .. } => core.handle(Input::Bridged(call), now).unwrap(),
                    _ => {}
                }
            }
        }
    }

    /// What the pacer of a fresh core restored from `state` decides first with 4 ready agents.
    fn first_decision(state: Option<&Persisted>, now: Time) -> usize {
        let mut core = Campaign::new(config(), state).unwrap();
        for _ in 0..4 {
            let a = core.add_agent(now);
            core.handle(Input::AgentLoggedIn(a), now).unwrap();
        }
        settle(&mut core, now, &mut 0).len()
    }

    crate::store::both_backends! {
        async fn learned_statistics_and_abandons_survive_a_restart() {
            let (_dir, store) = crate::store::test_support::store().await;
            let (_, task) = crate::store::test_support::campaign_with_call_task(
                &store,
                serde_json::json!({"name": "c"}),
            )
            .await;
            assert!(store.dialer_state(task).await.unwrap().is_none());
            // What a running core had learned and counted: a 20 % answer rate, ring, talk and
            // wrap-up times, and 3 abandons in 200 live answers (epoch-millisecond times).
            let now = Time(1_800_000_000_000);
            let mut ledger = AbandonLedger::new();
            for i in 0..200 {
                ledger.record(now - Duration::from_secs(i * 60), i % 70 == 0);
            }
            let saved = Persisted {
                ledger,
                stats: crate::dialer::predictive::tests::learned().snapshot(),
            };
            let core = Campaign::new(config(), Some(&saved)).unwrap();
            assert_eq!(core.persisted(), saved);
            store.save_dialer_state(task, &saved).await.unwrap();
            store.close().await;

            // The daemon restarts: the same database, opened again.
            let store = crate::store::test_support::reopen(&store).await;
            let loaded = store.dialer_state(task).await.unwrap().unwrap();
            assert_eq!(loaded, saved);
            assert_eq!(loaded.ledger.last_24h(now), core.ledger().last_24h(now));
            // Restored, the pacer decides as the running one would have; cold, it would dial
            // progressively (one call per ready agent) having forgotten the answer rate.
            let warm = first_decision(Some(&loaded), now);
            assert_eq!(warm, first_decision(Some(&saved), now));
            assert_eq!(first_decision(None, now), 4);
            assert!(warm > 4, "restored pacing places {warm}");

            // A damaged row is refused with a clear error, not a panic.
            sqlx::query("UPDATE dialer_state SET state = '{\"ledger\": {\"buckets\": [], \"total\": {\"live\": 5, \"abandoned\": 9}}}'")
                .execute(&store.writer)
                .await
                .unwrap();
            let err = store.dialer_state(task).await.unwrap_err();
            assert!(err.to_string().contains("dialer_state"), "{err}");
        }
    }
}
