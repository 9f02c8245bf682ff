//! Node names: which running daemon holds each `node.name` of the store. A daemon takes its
//! name at start (one conditional upsert, so of two daemons racing for one name exactly one
//! holds it), renews it every few seconds and deletes it at a clean stop; a name whose holder
//! stopped renewing is free once its row has expired.
//!
//! Times are epoch milliseconds on the writing node's clock, as for task leases.

use super::{Result, Store, StoreError};
use std::sync::atomic::Ordering;

/// A node name's row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// The node name.
    pub name: String,
    /// The running daemon holding it (a random id drawn at its start).
    pub instance: String,
    /// When that daemon took the name (epoch milliseconds).
    pub started_ms: i64,
    /// Its last renewal.
    pub heartbeat_ms: i64,
    /// Until when the name is held without a renewal.
    pub expires_ms: i64,
    /// The node's SIP address, where a proxy relays the phones of agents it serves (`node.sip_uri`;
    /// empty: none published).
    pub sip_uri: String,
}

/// What became of a claim on a node name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameClaim {
    /// The claiming instance holds the name now.
    Held,
    /// Another instance holds it, unexpired: its row.
    Taken(NodeRow),
}

const COLUMNS: &str = "name, instance, started_ms, heartbeat_ms, expires_ms, sip_uri";

type Row = (String, String, i64, i64, i64, String);

fn node_row((name, instance, started_ms, heartbeat_ms, expires_ms, sip_uri): Row) -> NodeRow {
    NodeRow {
        name,
        instance,
        started_ms,
        heartbeat_ms,
        expires_ms,
        sip_uri,
    }
}

impl Store {
    /// Fences this daemon (for good): another instance took its node name, and with it the
    /// task and contact leases named after it, so from now on every write a node makes as the
    /// holder of those leases (taking, renewing, releasing or recovering leases, recording its
    /// calls' attempts, saving a task's dialer state) fails with [`StoreError::Fenced`]
    /// instead of touching the other instance's rows. Shared by every clone of the store.
    pub fn fence(&self) {
        self.fenced.store(true, Ordering::SeqCst);
    }

    /// Whether [`Store::fence`] was called.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// Until when this daemon's node name, as last renewed, is surely still its own (epoch
    /// ms on this node's clock): past it, writes made as the holder of its leases fail with
    /// [`StoreError::NameUnrenewed`] until the next renewal moves it on. A daemon that stalls
    /// past it wakes with timers due before its heartbeat; this keeps them from writing under
    /// a name another instance may have taken meanwhile. Shared by every clone of the store.
    pub fn name_held_until(&self, until_ms: i64) {
        self.name_until.store(until_ms, Ordering::SeqCst);
    }

    /// Refuses a write made as the holder of this node's leases once fenced, or while its
    /// name is not known to be its own ([`Store::name_held_until`]).
    pub(crate) fn unfenced(&self) -> Result<()> {
        if self.is_fenced() {
            return Err(StoreError::Fenced);
        }
        let until = self.name_until.load(Ordering::SeqCst);
        if until > 0 && super::now_ms() >= until {
            return Err(StoreError::NameUnrenewed);
        }
        Ok(())
    }

    /// Takes `name` for `instance` until `now_ms + ttl_ms`, publishing its `sip_uri`: it
    /// succeeds when no row is stored, the stored one has expired, or it is `instance`'s or
    /// `previous`'s (this daemon's predecessor on the same state directory, known to have
    /// ended).
    pub async fn claim_node(
        &self,
        name: &str,
        instance: &str,
        sip_uri: &str,
        previous: Option<&str>,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<NameClaim> {
        let done = sqlx::query(
            "INSERT INTO nodes (name, instance, started_ms, heartbeat_ms, expires_ms, sip_uri) \
             VALUES ($1, $2, $3, $3, $4, $6) \
             ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, \
             started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms, \
             expires_ms = excluded.expires_ms, sip_uri = excluded.sip_uri \
             WHERE nodes.instance = excluded.instance OR nodes.instance = $5 \
             OR nodes.expires_ms <= $3",
        )
        .bind(name)
        .bind(instance)
        .bind(now_ms)
        .bind(now_ms.saturating_add(ttl_ms))
        // No instance id is empty, so `None` matches no row.
        .bind(previous.unwrap_or(""))
        .bind(sip_uri)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(NameClaim::Held);
        }
        let row: Option<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM nodes WHERE name = $1"))
                .bind(name)
                .fetch_optional(&self.writer)
                .await?;
        Ok(match row {
            Some(row) => NameClaim::Taken(node_row(row)),
            // Released between the two statements: free, but not claimed; say who had it.
            None => NameClaim::Taken(NodeRow {
                name: name.to_string(),
                instance: String::new(),
                started_ms: now_ms,
                heartbeat_ms: now_ms,
                expires_ms: now_ms,
                sip_uri: String::new(),
            }),
        })
    }

    /// Renews `instance`'s hold on `name` until `now_ms + ttl_ms`; false when it no longer
    /// holds it (its row expired and another instance took the name, or it was deleted).
    pub async fn renew_node(
        &self,
        name: &str,
        instance: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        let _timer = self.timings.start("node_heartbeat");
        let done = sqlx::query(
            "UPDATE nodes SET heartbeat_ms = $3, expires_ms = $4 \
             WHERE name = $1 AND instance = $2",
        )
        .bind(name)
        .bind(instance)
        .bind(now_ms)
        .bind(now_ms.saturating_add(ttl_ms))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Publishes `sip_uri` in `name`'s row, when `instance` holds it; false otherwise.
    pub async fn set_node_sip_uri(
        &self,
        name: &str,
        instance: &str,
        sip_uri: &str,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE nodes SET sip_uri = $3 WHERE name = $1 AND instance = $2")
            .bind(name)
            .bind(instance)
            .bind(sip_uri)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives `name` up, when `instance` holds it (a no-op otherwise).
    pub async fn release_node(&self, name: &str, instance: &str) -> Result<()> {
        sqlx::query("DELETE FROM nodes WHERE name = $1 AND instance = $2")
            .bind(name)
            .bind(instance)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The nodes up at `now_ms` (their rows unexpired), by name.
    pub async fn nodes_up(&self, now_ms: i64) -> Result<Vec<NodeRow>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM nodes WHERE expires_ms > $1 ORDER BY name"
        ))
        .bind(now_ms)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(node_row).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::NameClaim;
    use crate::store::test_support;

    const TTL: i64 = 15_000;

    crate::store::both_backends! {
        async fn a_node_name_is_held_by_one_instance_until_released_or_expired() {
            let (_dir, store) = test_support::store().await;
            let t0 = 1_800_000_000_000;
            assert_eq!(store.claim_node("n1", "a", "sip:a.example:5060", None, t0, TTL).await.unwrap(), NameClaim::Held);
            // A second daemon of the same name is refused while the first renews.
            let NameClaim::Taken(row) =
                store.claim_node("n1", "b", "sip:b.example:5060", None, t0 + 5_000, TTL).await.unwrap()
            else {
                panic!("b took a held name");
            };
            assert_eq!((row.instance.as_str(), row.heartbeat_ms), ("a", t0));
            assert!(store.renew_node("n1", "a", t0 + 5_000, TTL).await.unwrap());
            assert!(matches!(
                store.claim_node("n1", "b", "sip:b.example:5060", None, t0 + TTL, TTL).await.unwrap(),
                NameClaim::Taken(_)
            ));
            // Another name is free, and both are listed as up.
            assert_eq!(store.claim_node("n2", "c", "sip:c.example:5060", None, t0, TTL).await.unwrap(), NameClaim::Held);
            let up = store.nodes_up(t0 + 5_000).await.unwrap();
            let names: Vec<_> = up.iter().map(|n| (n.name.as_str(), n.instance.as_str())).collect();
            assert_eq!(names, [("n1", "a"), ("n2", "c")]);
            // Each publishes its SIP address.
            assert_eq!(up[1].sip_uri, "sip:c.example:5060");
            // a's successor on its state directory takes the name at once.
            assert_eq!(
                store.claim_node("n1", "a2", "sip:a2.example:5060", Some("a"), t0 + 6_000, TTL).await.unwrap(),
                NameClaim::Held
            );
            // a2 stops renewing (it died): the name is free once expired, and a2 has lost it.
            let later = t0 + 6_000 + TTL;
            assert_eq!(store.nodes_up(later - 1).await.unwrap()[0].sip_uri, "sip:a2.example:5060");
            assert_eq!(store.nodes_up(later).await.unwrap().len(), 0);
            assert_eq!(store.claim_node("n1", "b", "sip:b.example:5060", None, later, TTL).await.unwrap(), NameClaim::Held);
            assert!(!store.renew_node("n1", "a2", later + 1, TTL).await.unwrap());
            // The holder alone may change its SIP address.
            assert!(!store.set_node_sip_uri("n1", "a2", "sip:x").await.unwrap());
            assert!(store.set_node_sip_uri("n1", "b", "sip:b2.example").await.unwrap());
            assert_eq!(store.nodes_up(later).await.unwrap()[0].sip_uri, "sip:b2.example");
            // Releasing someone else's name does nothing; the holder's release frees it.
            store.release_node("n1", "a2").await.unwrap();
            assert_eq!(store.nodes_up(later).await.unwrap()[0].instance, "b");
            store.release_node("n1", "b").await.unwrap();
            assert!(store.nodes_up(later).await.unwrap().is_empty());
            assert_eq!(store.claim_node("n1", "d", "sip:d.example:5060", None, later, TTL).await.unwrap(), NameClaim::Held);
        }
    }
}
