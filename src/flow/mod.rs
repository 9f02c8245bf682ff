//! The background worker of task flow: about once a second it applies the moves and wait ends
//! that are due and delivers due webhooks and e-mails (retries with backoff are the store's
//! rules); every few seconds it refreshes the `dialerd_contacts` gauge.

pub mod email;
pub mod inbox;
pub mod webhook;

use crate::store::Store;
use prometheus::{IntGaugeVec, Opts, Registry};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often due work is looked for.
pub const TICK: Duration = Duration::from_secs(1);
/// How often the contact gauge is recounted.
pub const GAUGE_EVERY: Duration = Duration::from_secs(10);
/// Longest wait for a webhook's answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhook deliveries per tick.
const WEBHOOKS_PER_TICK: i64 = 50;
/// E-mails per tick.
const EMAILS_PER_TICK: i64 = 50;

/// `dialerd_contacts{campaign,task,status}`.
#[derive(Clone)]
pub struct FlowMetrics {
    /// Contacts per campaign, task and status (ids as labels).
    pub contacts: IntGaugeVec,
}

impl FlowMetrics {
    /// Creates and registers the gauge.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let contacts = IntGaugeVec::new(
            Opts::new(
                "dialerd_contacts",
                "Contacts by campaign id, task id and status, recounted every 10 s.",
            ),
            &["campaign", "task", "status"],
        )?;
        registry.register(Box::new(contacts.clone()))?;
        Ok(Self { contacts })
    }

    /// Sets the gauge from the store's counts (series that went to zero are dropped).
    pub async fn refresh(&self, store: &Store) -> Result<(), crate::store::StoreError> {
        let counts = store.contact_counts().await?;
        self.contacts.reset();
        for (campaign, task, status, n) in counts {
            self.contacts
                .with_label_values(&[&campaign.to_string(), &task.to_string(), &status])
                .set(n);
        }
        Ok(())
    }
}

/// Runs until `stop` is cancelled; webhooks go out through `client`, e-mails through
/// `mailer`.
pub async fn run(
    store: Store,
    metrics: FlowMetrics,
    client: webhook::WebhookClient,
    mailer: email::Mailer,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_gauge: Option<tokio::time::Instant> = None;
    while stop.run_until_cancelled(tick.tick()).await.is_some() {
        if let Err(e) = store.apply_due(crate::store::now_ms()).await {
            tracing::warn!(error = %e, "task flow: applying due moves failed");
        }
        deliver_webhooks(&store, &client, &stop).await;
        send_emails(&store, &mailer, &stop).await;
        if last_gauge.is_none_or(|t| t.elapsed() >= GAUGE_EVERY) {
            last_gauge = Some(tokio::time::Instant::now());
            if let Err(e) = metrics.refresh(&store).await {
                tracing::warn!(error = %e, "counting contacts for dialerd_contacts failed");
            }
        }
    }
}

async fn deliver_webhooks(
    store: &Store,
    client: &webhook::WebhookClient,
    stop: &CancellationToken,
) {
    let jobs = match store
        .due_webhooks(crate::store::now_ms(), WEBHOOKS_PER_TICK)
        .await
    {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(error = %e, "task flow: listing due webhooks failed");
            return;
        }
    };
    for job in jobs {
        if stop.is_cancelled() {
            return;
        }
        let body = serde_json::to_vec(&job.contact).unwrap_or_default();
        let outcome = match client
            .post_json(&job.settings.url, &body, WEBHOOK_TIMEOUT)
            .await
        {
            Ok(answer) => crate::store::flow::Delivery::Done(
                serde_json::json!({"code": answer.code, "body": answer.body}),
            ),
            Err(e) => {
                tracing::info!(contact = job.contact.id, task = job.task_id, url = %job.settings.url, error = %e, "webhook delivery failed");
                crate::store::flow::Delivery::Failed(e.to_string())
            }
        };
        if let Err(e) = store
            .webhook_result(&job, outcome, crate::store::now_ms())
            .await
        {
            tracing::warn!(error = %e, "task flow: recording a webhook delivery failed");
        }
    }
}

async fn send_emails(store: &Store, mailer: &email::Mailer, stop: &CancellationToken) {
    let jobs = match store
        .due_emails(crate::store::now_ms(), EMAILS_PER_TICK)
        .await
    {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(error = %e, "task flow: listing due e-mails failed");
            return;
        }
    };
    for job in jobs {
        if stop.is_cancelled() {
            return;
        }
        let outcome = mailer.send(&job).await;
        if let crate::store::flow::Delivery::Failed(e) | crate::store::flow::Delivery::Refused(e) =
            &outcome
        {
            tracing::info!(contact = job.contact.id, task = job.task_id, error = %e, "e-mail not sent");
        }
        if let Err(e) = store
            .email_result(&job, outcome, crate::store::now_ms())
            .await
        {
            tracing::warn!(error = %e, "task flow: recording an e-mail failed");
        }
    }
}
