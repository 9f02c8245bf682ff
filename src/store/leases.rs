//! Contact leases: a contact the live dialer is calling is held by one call at a time, across
//! call tasks and restarts. A lease is taken when the dialer picks the contact and released
//! when its attempt is recorded (or the contact is given back unused). The owner of a lease is
//! the node whose call holds it; leases a stopped node left behind become `$interrupted`
//! attempts at its next start, or when another node takes their call task over
//! ([`super::task_leases`]). The contact's primary key makes taking a lease an insert that
//! fails for every caller but one, on any node.

use super::contacts::{Attempt, Contact};
use super::{Result, Store};

/// The result recorded for a contact whose call was cut short by a stop of the daemon.
pub const INTERRUPTED: &str = "$interrupted";

impl Store {
    /// Up to `n` callable contacts of `task_id` (as [`Store::next_callable`] orders them) that
    /// no call holds, each leased to `owner` in the same step: a contact is returned to one
    /// caller only.
    pub async fn lease_callable(
        &self,
        campaign_id: i64,
        task_id: i64,
        n: u32,
        now_ms: i64,
        owner: &str,
    ) -> Result<Vec<Contact>> {
        self.unfenced()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let _timer = self.timings.start("lease_contacts");
        let mut leased: Vec<Contact> = Vec::new();
        // The selection leaves out leased contacts, but others may lease the same candidates
        // meanwhile: look further until enough or none left.
        for round in 0..8u32 {
            let limit = n.saturating_mul(round + 1);
            let candidates = self
                .next_callable(campaign_id, task_id, now_ms, limit)
                .await?;
            let exhausted = (candidates.len() as u32) < limit;
            let fresh: Vec<Contact> = candidates
                .into_iter()
                .filter(|c| !leased.iter().any(|l| l.id == c.id))
                .collect();
            let want = n as usize - leased.len();
            leased.extend(
                self.lease_each_as_read(fresh, campaign_id, task_id, owner, now_ms, want)
                    .await?,
            );
            if leased.len() as u32 == n || exhausted {
                break;
            }
        }
        Ok(leased)
    }

    /// Leases up to `want` of `candidates`, each as it was read, in one transaction (one disk
    /// flush for them all); returns those leased, in order. The primary key makes an insert the
    /// lease (a held contact inserts nothing), and a contact must still be callable as read — an
    /// attempt written since (its lease released just now) makes it due later, or no longer
    /// open.
    pub(crate) async fn lease_each_as_read(
        &self,
        candidates: Vec<Contact>,
        campaign_id: i64,
        task_id: i64,
        owner: &str,
        now_ms: i64,
        want: usize,
    ) -> Result<Vec<Contact>> {
        self.unfenced()?;
        let mut leased = Vec::new();
        if candidates.is_empty() || want == 0 {
            return Ok(leased);
        }
        let mut tx = self.writer.begin().await?;
        for c in candidates {
            if leased.len() == want {
                break;
            }
            if Self::insert_lease(&mut tx, &c, campaign_id, task_id, owner, now_ms).await? {
                leased.push(c);
            }
        }
        tx.commit().await?;
        Ok(leased)
    }

    /// The insert that is a lease of `c` as read, if it is still callable so.
    async fn insert_lease(
        conn: &mut sqlx::AnyConnection,
        c: &Contact,
        campaign_id: i64,
        task_id: i64,
        owner: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO contact_leases (contact_id, campaign_id, task_id, owner, leased_ms) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM contacts WHERE id = $1 \
             AND status = 'open' AND attempts = $6 \
             AND (follow_up_ms IS NULL OR follow_up_ms <= $5)) \
             ON CONFLICT (contact_id) DO NOTHING",
        )
        .bind(c.id)
        .bind(campaign_id)
        .bind(task_id)
        .bind(owner)
        .bind(now_ms)
        .bind(c.spec.attempts)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases the lease of `contact_id` (a no-op when it holds none).
    pub async fn release_lease(&self, contact_id: i64) -> Result<()> {
        self.unfenced()?;
        let _timer = self.timings.start("release_lease");
        sqlx::query("DELETE FROM contact_leases WHERE contact_id = $1")
            .bind(contact_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Contacts leased now, with their campaign and task: `(contact, campaign, task)`.
    pub async fn leases(&self) -> Result<Vec<(i64, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT contact_id, campaign_id, task_id FROM contact_leases ORDER BY contact_id",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    /// At `node`'s start: turns the leases an earlier run of `node` left, and those of tasks
    /// no node holds (their holder gone, or leases written before task leases existed), into
    /// `$interrupted` attempts (the contact stays open, callable again at once) and releases
    /// them; returns how many there were. Leases of tasks another node holds are that node's.
    pub async fn recover_leases(&self, now_ms: i64, node: &str) -> Result<usize> {
        self.unfenced()?;
        let left: Vec<Held> = sqlx::query_as(
            "SELECT contact_id, campaign_id, owner FROM contact_leases cl \
             WHERE owner = $1 OR owner = $2 \
             OR NOT EXISTS (SELECT 1 FROM task_leases tl WHERE tl.task_id = cl.task_id \
             AND tl.expires_ms > $3) ORDER BY contact_id",
        )
        .bind(node)
        .bind(recovering(node))
        .bind(now_ms)
        .fetch_all(&self.writer)
        .await?;
        self.interrupt(left, now_ms, node).await
    }

    /// When `node` has taken `task_id` over: the contact leases other nodes left on it become
    /// `$interrupted` attempts, as in [`Store::recover_leases`]; returns how many. Leases
    /// another node is recovering already (it restarted) stay that node's.
    pub async fn recover_task_leases(
        &self,
        task_id: i64,
        now_ms: i64,
        node: &str,
    ) -> Result<usize> {
        self.unfenced()?;
        let left: Vec<Held> = sqlx::query_as(
            "SELECT contact_id, campaign_id, owner FROM contact_leases \
             WHERE task_id = $1 AND owner <> $2 AND owner NOT LIKE '%#recovering' \
             ORDER BY contact_id",
        )
        .bind(task_id)
        .bind(node)
        .fetch_all(&self.writer)
        .await?;
        self.interrupt(left, now_ms, node).await
    }

    /// Records each of `left` as `$interrupted` and releases it. A lease is first marked as
    /// `node`'s to recover, only if its owner is still the one read: of two nodes recovering
    /// one lease (a node restarting while another takes its task over) one records it, and a
    /// node stopped half-way finishes at its next start.
    async fn interrupt(&self, left: Vec<Held>, now_ms: i64, node: &str) -> Result<usize> {
        let mut done = 0;
        for (contact, campaign, owner) in left {
            let claimed = sqlx::query(
                "UPDATE contact_leases SET owner = $1 WHERE contact_id = $2 AND owner = $3",
            )
            .bind(recovering(node))
            .bind(contact)
            .bind(&owner)
            .execute(&self.writer)
            .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let number = match self.contact(campaign, contact).await {
                Ok(c) => c.spec.phones.first().cloned().unwrap_or_default(),
                // Deleted meanwhile: nothing to record.
                Err(_) => {
                    self.release_lease(contact).await?;
                    continue;
                }
            };
            let attempt = Attempt {
                number,
                result: INTERRUPTED.into(),
                sip_code: None,
                call_id: None,
                status: "open".into(),
                follow_up_ms: Some(now_ms),
                at_ms: now_ms,
            };
            self.record_attempt(campaign, contact, &attempt, "dialer")
                .await?;
            self.release_lease(contact).await?;
            done += 1;
        }
        Ok(done)
    }
}

/// A contact lease as recovery reads it: (contact, campaign, owner).
type Held = (i64, i64, String);

/// The owner a lease has while `node` records it as interrupted; never a node's name, since
/// node names have no `#`.
fn recovering(node: &str) -> String {
    format!("{node}#recovering")
}

#[cfg(test)]
mod tests {
    use crate::store::contacts::ContactSpec;
    use crate::store::{now_ms, test_support, StoreError};

    crate::store::both_backends! {
        async fn a_contact_read_before_an_attempt_was_written_is_not_leased_after_it() {
            let (_dir, store) = test_support::store().await;
            let (campaign, task) = test_support::campaign_with_call_task(
                &store,
                serde_json::json!({
                    "name": "c", "default_region": "DE",
                    "calling_hours": {"from": "00:00", "to": "24:00"}
                }),
            )
            .await;
            let spec: ContactSpec = serde_json::from_value(serde_json::json!({
                "phones": ["+493012345000"], "time_zone": "Europe/Berlin"
            }))
            .unwrap();
            store.create_contact(campaign, &spec, "t").await.unwrap();
            let now = now_ms();
            let read = store.next_callable(campaign, task, now, 10).await.unwrap();
            assert_eq!(read.len(), 1);
            // Meanwhile its busy attempt is written (due again in 10 minutes).
            let busy = crate::store::contacts::Attempt {
                number: "+493012345000".into(),
                result: "$busy".into(),
                sip_code: Some(486),
                call_id: None,
                status: "open".into(),
                follow_up_ms: Some(now + 600_000),
                at_ms: now,
            };
            store
                .record_attempt(campaign, read[0].id, &busy, "dialer")
                .await
                .unwrap();
            let leased = store
                .lease_each_as_read(read.clone(), campaign, task, "one", now, 1)
                .await
                .unwrap();
            assert!(
                leased.is_empty(),
                "a contact leased from a stale read is dialled twice"
            );
            let fresh = store.contact(campaign, read[0].id).await.unwrap();
            let leased = store
                .lease_each_as_read(vec![fresh], campaign, task, "one", now + 600_000, 1)
                .await
                .unwrap();
            assert_eq!(leased.len(), 1, "due again, as written");
        }
    }

    /// A store with a call task dialling round the clock and `n` Berlin contacts:
    /// (its directory, the store, the campaign, the task).
    async fn with_contacts(n: usize) -> (tempfile::TempDir, crate::store::Store, i64, i64) {
        let (dir, store) = test_support::store().await;
        let (campaign, task) = test_support::campaign_with_call_task(
            &store,
            serde_json::json!({
                "name": "c", "default_region": "DE",
                "calling_hours": {"from": "00:00", "to": "24:00"}
            }),
        )
        .await;
        for i in 0..n {
            let spec: ContactSpec = serde_json::from_value(serde_json::json!({
                "phones": [format!("+4930123450{i}")], "time_zone": "Europe/Berlin"
            }))
            .unwrap();
            store.create_contact(campaign, &spec, "t").await.unwrap();
        }
        (dir, store, campaign, task)
    }

    crate::store::both_backends! {
        async fn a_contact_is_leased_to_one_caller_at_a_time_until_released_or_recovered() {
            let (_dir, store, campaign, task) = with_contacts(5).await;
            let now = now_ms();
            // Two leasers at once get disjoint contacts, and no more than there are.
            let (a, b) = tokio::join!(
                store.lease_callable(campaign, task, 3, now, "one"),
                store.lease_callable(campaign, task, 3, now, "two"),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            let mut ids: Vec<i64> = a.iter().chain(&b).map(|c| c.id).collect();
            ids.sort_unstable();
            let n = ids.len();
            ids.dedup();
            assert_eq!((ids.len(), n), (5, 5), "{ids:?}");
            let none = store.lease_callable(campaign, task, 3, now, "three");
            assert!(none.await.unwrap().is_empty());

            // A released contact can be leased again.
            store.release_lease(ids[0]).await.unwrap();
            let again = store.lease_callable(campaign, task, 3, now, "three");
            let again: Vec<i64> = again.await.unwrap().iter().map(|c| c.id).collect();
            assert_eq!(again, [ids[0]]);

            // A restart turns every lease into an `$interrupted` attempt and frees the contact.
            assert_eq!(store.recover_leases(now, "one").await.unwrap(), 5);
            assert!(store.leases().await.unwrap().is_empty());
            let c = store.contact(campaign, ids[1]).await.unwrap();
            assert_eq!(c.spec.attempts, 1);
            assert_eq!(c.last_result.as_deref(), Some(crate::store::leases::INTERRUPTED));
            assert_eq!(c.spec.status, "open");
            let back = store.lease_callable(campaign, task, 10, now, "four");
            assert_eq!(back.await.unwrap().len(), 5);
        }
    }

    crate::store::both_backends! {
        async fn a_fenced_node_writes_nothing_on_the_leases_named_after_it() {
            let (_dir, store, campaign, task) = with_contacts(4).await;
            let now = now_ms();
            // An instance of n1 dials the task with two contacts leased; it stalls, and a new
            // instance of n1 (its own connections) holds the name, and so these leases, now.
            store.claim_task(task, "n1", now, 15_000).await.unwrap();
            let leased = store.lease_callable(campaign, task, 2, now, "n1").await.unwrap();
            assert_eq!(leased.len(), 2);
            let rightful = test_support::reopen(&store).await;
            store.fence();
            let fenced = |e: Option<StoreError>| matches!(e, Some(StoreError::Fenced));
            let later = now + 1_000;
            assert!(fenced(store.claim_task(task, "n1", later, 15_000).await.err()));
            assert!(fenced(store.release_task(task, "n1").await.err()));
            assert!(fenced(store.lease_callable(campaign, task, 2, later, "n1").await.err()));
            assert!(fenced(store.release_lease(leased[0].id).await.err()));
            assert!(fenced(store.recover_leases(later, "n1").await.err()));
            assert!(fenced(store.recover_task_leases(task, later, "n1").await.err()));
            // The rows are untouched: the task and both contacts stay held.
            assert_eq!(rightful.task_holder(task, later).await.unwrap().as_deref(), Some("n1"));
            assert_eq!(rightful.leases().await.unwrap().len(), 2);
            let c = rightful.contact(campaign, leased[0].id).await.unwrap();
            assert_eq!(c.spec.attempts, 0);
            // The fence is the stalled instance's alone.
            assert!(store.is_fenced() && !rightful.is_fenced());
            rightful.release_lease(leased[0].id).await.unwrap();
            assert_eq!(rightful.leases().await.unwrap().len(), 1);
        }
    }

    crate::store::both_backends! {
        async fn a_node_whose_name_was_not_renewed_in_time_writes_on_its_leases_only_once_renewed() {
            let (_dir, store, campaign, task) = with_contacts(4).await;
            let now = now_ms();
            store.name_held_until(now + 11_000);
            store.claim_task(task, "n1", now, 15_000).await.unwrap();
            let leased = store.lease_callable(campaign, task, 1, now, "n1").await.unwrap();
            // The daemon stalled past its name's renewal: on waking, its timers are due
            // before its heartbeat, and may not write under a name another may hold by now.
            store.name_held_until(now - 1);
            let unrenewed = |e: Option<StoreError>| matches!(e, Some(StoreError::NameUnrenewed));
            assert!(unrenewed(store.claim_task(task, "n1", now, 15_000).await.err()));
            assert!(unrenewed(store.lease_callable(campaign, task, 1, now, "n1").await.err()));
            assert!(unrenewed(store.release_lease(leased[0].id).await.err()));
            assert_eq!(store.leases().await.unwrap().len(), 1);
            // The heartbeat renews the name: the writes go through again.
            store.name_held_until(now_ms() + 11_000);
            store.claim_task(task, "n1", now, 15_000).await.unwrap();
            store.release_lease(leased[0].id).await.unwrap();
            assert!(store.leases().await.unwrap().is_empty());
        }
    }

    crate::store::both_backends! {
        async fn recovery_touches_the_nodes_own_leases_and_those_of_tasks_taken_over_once() {
            let (_dir, store, campaign, task) = with_contacts(6).await;
            let now = now_ms();
            // Node b dials the task; node a, restarting, had leased contacts on it before b
            // took it over.
            store.claim_task(task, "b", now, 15_000).await.unwrap();
            let of_a = store.lease_callable(campaign, task, 2, now, "a").await.unwrap();
            let of_b = store.lease_callable(campaign, task, 3, now, "b").await.unwrap();
            assert_eq!((of_a.len(), of_b.len()), (2, 3));
            assert_eq!(store.recover_leases(now, "a").await.unwrap(), 2);
            let held: Vec<i64> = store.leases().await.unwrap().iter().map(|l| l.0).collect();
            let mut want: Vec<i64> = of_b.iter().map(|c| c.id).collect();
            want.sort_unstable();
            assert_eq!(held, want, "b's calls in flight keep their leases");
            // b dies; c takes the task over and recovers b's leases — and so does b,
            // restarting at the same moment, on its own connections: each once.
            let restarted_b = test_support::reopen(&store).await;
            let later = now + 20_000;
            let taken = store.claim_task(task, "c", later, 15_000).await.unwrap();
            assert_eq!(taken, crate::store::task_leases::Claim::Held { from: Some("b".into()) });
            let (by_c, by_b) = tokio::join!(
                store.recover_task_leases(task, later, "c"),
                restarted_b.recover_leases(later, "b"),
            );
            assert_eq!(by_c.unwrap() + by_b.unwrap(), 3);
            assert!(store.leases().await.unwrap().is_empty());
            for c in of_a.iter().chain(&of_b) {
                let c = store.contact(campaign, c.id).await.unwrap();
                assert_eq!(c.spec.attempts, 1, "contact {} recorded once", c.id);
                assert_eq!(c.last_result.as_deref(), Some(crate::store::leases::INTERRUPTED));
            }
        }
    }
}
