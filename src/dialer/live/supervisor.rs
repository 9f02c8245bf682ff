//! Starts and drains the call tasks' drivers: a driver runs for each call task whose campaign
//! dials now (`enabled`, or `automatic` inside one of its windows) while agents are logged in
//! for it on this node and this node holds the task's lease ([`super::ownership`]); checked
//! every second and at every agent input, settings read again from the store each time. At
//! start-up the contact leases an earlier run of this node left are turned into
//! `$interrupted` attempts first, and so are those a node left on a task taken over from it.

use super::attempt_log::AttemptLog;
use super::call::CallCtx;
use super::driver::{Ctx, Driver, Msg};
use super::inbound::InboundOffer;
use super::metrics::LiveMetrics;
use super::ownership::{Hold, Ownership};
use super::trunks::TrunkRoom;
use super::{AgentResult, Figures, LiveError};
use crate::agents::session::TaskId;
use crate::agents::Agents;
use crate::call::record::CallLog;
use crate::dialer::agent::AgentStateKind;
use crate::dialer::campaign::Input;
use crate::dialer::CallId;
use crate::media::engine::MediaEngine;
use crate::sip::endpoint::TrunkView;
use crate::sip::leg::SipHandle;
use crate::store::campaigns::{CampaignSpec, CampaignStatus, Day};
use crate::store::tasks::CallSettings;
use crate::store::{now_ms, Store};
use chrono::{Datelike, Timelike};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the supervisor looks at the campaigns.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

struct Running {
    campaign_id: i64,
    /// The task's settings the driver started with.
    settings: CallSettings,
    /// Draining to restart on changed settings.
    restarting: bool,
    tx: mpsc::UnboundedSender<Msg>,
    done: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    drivers: Mutex<HashMap<TaskId, mpsc::UnboundedSender<Msg>>>,
    figures: Arc<Mutex<HashMap<TaskId, Figures>>>,
    /// This node's name.
    node: String,
}

/// The API's handle on the running drivers; cheap to clone.
#[derive(Clone, Default)]
pub struct Live {
    shared: Arc<Shared>,
}

impl Live {
    /// Hands an agent's result for `call` of `task` to its driver; answered once recorded.
    pub async fn result(
        &self,
        task: TaskId,
        agent: i64,
        call: CallId,
        result: AgentResult,
    ) -> Result<(), LiveError> {
        let tx = self.driver(task).ok_or(LiveError::NotInWrapUp)?;
        let (reply, answer) = oneshot::channel();
        tx.send(Msg::Result {
            agent,
            call,
            result,
            reply,
        })
        .map_err(|_| LiveError::NotInWrapUp)?;
        answer.await.map_err(|_| LiveError::NotInWrapUp)?
    }

    /// Hands an agent's answer to the preview offer `call` of `task` to its driver.
    pub async fn preview(
        &self,
        task: TaskId,
        agent: i64,
        call: CallId,
        accept: bool,
    ) -> Result<(), LiveError> {
        let tx = self.driver(task).ok_or(LiveError::NoOffer)?;
        let (reply, answer) = oneshot::channel();
        tx.send(Msg::Preview {
            agent,
            call,
            accept,
            reply,
        })
        .map_err(|_| LiveError::NoOffer)?;
        answer.await.map_err(|_| LiveError::NoOffer)?
    }

    /// Hands a caller to the driver of `task`; gives the offer back when none runs.
    pub fn inbound(&self, task: TaskId, offer: Box<InboundOffer>) -> Result<(), Box<InboundOffer>> {
        let Some(tx) = self.driver(task) else {
            return Err(offer);
        };
        tx.send(Msg::Inbound(offer)).map_err(|e| match e.0 {
            Msg::Inbound(offer) => offer,
            _ => unreachable!("the message sent comes back"),
        })
    }

    /// This node's name (`node.name`).
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Whether a driver runs for `task`.
    pub fn runs(&self, task: TaskId) -> bool {
        self.driver(task).is_some()
    }

    fn driver(&self, task: TaskId) -> Option<mpsc::UnboundedSender<Msg>> {
        self.shared
            .drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&task)
            .cloned()
    }

    /// The live figures of the running drivers of `tasks`.
    pub fn figures(&self, tasks: &[TaskId]) -> Vec<Figures> {
        let f = self
            .shared
            .figures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        tasks.iter().filter_map(|t| f.get(t).cloned()).collect()
    }
}

/// The attempt log's writer, waiting to be spawned.
type AttemptWriter = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The supervisor: owns the drivers.
pub struct Supervisor {
    store: Store,
    agents: Agents,
    ctx: Ctx,
    live: Live,
    running: HashMap<TaskId, Running>,
    ownership: Ownership,
    /// The drivers' attempt writer, spawned by [`Supervisor::run`]; it ends once the drivers
    /// (which wait for their attempts to be written) and the supervisor are gone.
    /// (In a mutex only so that the supervisor is `Sync`.)
    attempt_writer: Mutex<Option<AttemptWriter>>,
}

impl Supervisor {
    /// A supervisor for the node `node`, with the handle the API uses.
    pub fn new(
        node: String,
        store: Store,
        sip: SipHandle,
        media: MediaEngine,
        agents: Agents,
        log: CallLog,
        metrics: LiveMetrics,
    ) -> (Self, Live) {
        let live = Live {
            shared: Arc::new(Shared {
                node: node.clone(),
                ..Shared::default()
            }),
        };
        // Contact leases name the node: its next start, or the node taking a task over from
        // it, recovers them.
        let owner = node.clone();
        let ctx_store = store.clone();
        let (attempts, attempt_writer) = AttemptLog::new(store.clone());
        let ctx = Ctx {
            store: store.clone(),
            calls: CallCtx {
                sip,
                media,
                agents: agents.clone(),
                log,
            },
            metrics,
            owner,
            figures: live.shared.figures.clone(),
            trunks: TrunkRoom::default(),
            attempts,
        };
        (
            Self {
                store,
                agents,
                ctx,
                live: live.clone(),
                running: HashMap::new(),
                ownership: Ownership::new(ctx_store, node),
                attempt_writer: Mutex::new(Some(Box::pin(attempt_writer))),
            },
            live,
        )
    }

    /// Paces the drivers to the trunks: no more calls than their free lines, and at most
    /// `max_cps` calls per second per call task.
    pub fn with_trunks(mut self, view: TrunkView, max_cps: f64) -> Self {
        self.ctx.trunks = TrunkRoom::new(view, max_cps);
        self
    }

    /// Recovers the leases of a previous run, then runs the drivers until `stop`: each is told
    /// to hang up and waited for.
    pub async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<(TaskId, Input)>,
        stop: CancellationToken,
    ) {
        let writer = self
            .attempt_writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(writer) = writer {
            tokio::spawn(writer);
        }
        match self
            .store
            .recover_leases(now_ms(), self.ownership.node())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                contacts = n,
                "leases of the last run recorded as $interrupted"
            ),
            Err(e) => tracing::warn!(error = %e, "leases of the last run not recovered"),
        }
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                got = inputs.recv() => match got {
                    Some((task, input)) => {
                        if let Some(r) = self.running.get(&task) {
                            let _ = r.tx.send(Msg::Agent(input));
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {}
            }
            if let Err(e) = self.check().await {
                tracing::warn!(error = %e, "campaign supervisor check failed");
                // The store may be gone: the running drivers' leases still lapse in time.
                let running: Vec<TaskId> = self.running.keys().copied().collect();
                for task in running {
                    self.keep_or_stop(task, now_ms()).await;
                }
            }
        }
        for r in self.running.values() {
            let _ = r.tx.send(Msg::Stop);
        }
        for (_, r) in self.running.drain() {
            let _ = r.done.await;
        }
        // Stopped cleanly: another node may take the tasks at once.
        for task in self.ownership.held() {
            self.ownership.release(task).await;
        }
    }

    /// Starts the drivers now wanted, drains those no longer wanted, forgets finished ones.
    async fn check(&mut self) -> Result<(), LiveError> {
        self.running.retain(|task, r| {
            let alive = !r.done.is_finished();
            if !alive {
                tracing::debug!(task, campaign = r.campaign_id, "driver finished");
            }
            alive
        });
        {
            let mut d = self
                .live
                .shared
                .drivers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            d.retain(|task, _| self.running.contains_key(task));
        }
        let views: Vec<_> = self.agents.views().into_values().collect();
        let now = now_ms();
        let mut wanted: HashMap<TaskId, (i64, CallSettings)> = HashMap::new();
        for c in self.store.campaigns().await? {
            if !dials_now(&c.spec, now) {
                continue;
            }
            for t in self.store.tasks(c.id).await? {
                let Some(settings) = t.spec.call_settings() else {
                    continue;
                };
                let staffed = views
                    .iter()
                    .any(|v| v.state != AgentStateKind::LoggedOut && v.tasks.contains(&t.id));
                if staffed {
                    wanted.insert(t.id, (c.id, settings));
                }
            }
        }
        // Leases: held for the tasks wanted and those whose driver still runs (a draining
        // driver's calls keep theirs), given up when neither.
        let mut tasks: Vec<TaskId> = wanted.keys().chain(self.running.keys()).copied().collect();
        tasks.sort_unstable();
        tasks.dedup();
        self.ownership.forget_others(&tasks);
        let mut ours: Vec<TaskId> = Vec::new();
        for task in tasks {
            if self.keep_or_stop(task, now).await {
                ours.push(task);
            }
        }
        for task in self.ownership.held() {
            if !wanted.contains_key(&task) && !self.running.contains_key(&task) {
                self.ownership.release(task).await;
            }
        }
        for (task, r) in &mut self.running {
            match wanted.get(task) {
                None => {
                    let _ = r.tx.send(Msg::Drain);
                }
                // Changed settings (dial mode, ratios, wrap-up): the driver drains and a new
                // one starts on them, its core restored from the state the old one saved.
                Some((_, settings)) if *settings != r.settings && !r.restarting => {
                    tracing::info!(task, "call task settings changed; its driver restarts");
                    r.restarting = true;
                    let _ = r.tx.send(Msg::Drain);
                }
                Some(_) => {}
            }
        }
        for (task, (campaign, settings)) in wanted {
            if self.running.contains_key(&task) || !ours.contains(&task) {
                continue;
            }
            let term = self.ownership.term(task);
            let (driver, calls) =
                Driver::start(self.ctx.clone(), campaign, task, &views, term).await?;
            let (tx, rx) = mpsc::unbounded_channel();
            let done = tokio::spawn(driver.run(rx, calls));
            self.live
                .shared
                .drivers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(task, tx.clone());
            self.running.insert(
                task,
                Running {
                    campaign_id: campaign,
                    settings,
                    restarting: false,
                    tx,
                    done,
                },
            );
        }
        Ok(())
    }

    /// Holds `task`'s lease (taking or renewing it); true when this node holds it. A driver
    /// of a task this node no longer holds is stopped.
    async fn keep_or_stop(&mut self, task: TaskId, now: i64) -> bool {
        match self.ownership.hold(task, now).await {
            Hold::Held { fresh, from } => {
                if fresh {
                    self.recover_taken_over(task, from.as_deref(), now).await;
                }
                true
            }
            Hold::Elsewhere(_) | Hold::Lapsed => {
                // Another node dials the task, or may soon: this node's calls must end now,
                // not after a drain, or a contact could be on two nodes' calls.
                if let Some(r) = self.running.get(&task) {
                    tracing::warn!(
                        task,
                        "call task no longer this node's; its calls are hung up"
                    );
                    let _ = r.tx.send(Msg::Stop);
                }
                false
            }
        }
    }

    /// A task newly held: the contact leases other nodes left on it (their calls ended with
    /// them) become `$interrupted` attempts before this node dials it.
    async fn recover_taken_over(&self, task: TaskId, from: Option<&str>, now: i64) {
        match self
            .store
            .recover_task_leases(task, now, self.ownership.node())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                task,
                from = from.unwrap_or_default(),
                contacts = n,
                "leases of a node gone recorded as $interrupted"
            ),
            Err(e) => tracing::warn!(task, error = %e, "leases of a node gone not recovered"),
        }
    }
}

/// Whether a campaign dials at `now_ms`: `enabled`, or `automatic` inside one of its weekly
/// windows (in its time zone).
pub fn dials_now(spec: &CampaignSpec, now_ms: i64) -> bool {
    match spec.status {
        CampaignStatus::Enabled => true,
        CampaignStatus::Disabled => false,
        CampaignStatus::Automatic => {
            let (Ok(tz), Some(utc)) = (
                spec.time_zone.parse::<chrono_tz::Tz>(),
                chrono::DateTime::from_timestamp_millis(now_ms),
            ) else {
                return false;
            };
            let local = utc.with_timezone(&tz);
            let day = match local.weekday() {
                chrono::Weekday::Mon => Day::Mon,
                chrono::Weekday::Tue => Day::Tue,
                chrono::Weekday::Wed => Day::Wed,
                chrono::Weekday::Thu => Day::Thu,
                chrono::Weekday::Fri => Day::Fri,
                chrono::Weekday::Sat => Day::Sat,
                chrono::Weekday::Sun => Day::Sun,
            };
            let minute = local.hour() * 60 + local.minute();
            spec.windows.iter().any(|w| {
                w.days.contains(&day)
                    && hhmm(&w.from).is_some_and(|f| f <= minute)
                    && hhmm(&w.to).is_some_and(|t| minute < t)
            })
        }
    }
}

fn hhmm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    Some(h.parse::<u32>().ok()? * 60 + m.parse::<u32>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::campaigns::Window;

    fn spec(status: CampaignStatus, windows: Vec<Window>) -> CampaignSpec {
        let mut s: CampaignSpec = serde_json::from_value(serde_json::json!({"name": "c"})).unwrap();
        s.status = status;
        s.time_zone = "Europe/Berlin".into();
        s.windows = windows;
        s
    }

    #[test]
    fn automatic_campaigns_dial_inside_their_windows_only() {
        let at = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .timestamp_millis()
        };
        let w = vec![Window {
            days: vec![Day::Mon, Day::Tue],
            from: "09:00".into(),
            to: "17:00".into(),
        }];
        let s = spec(CampaignStatus::Automatic, w.clone());
        // Monday 2025-01-13, 08:30 UTC = 09:30 in Berlin.
        assert!(dials_now(&s, at("2025-01-13T08:30:00Z")));
        // 07:30 UTC = 08:30 Berlin: before the window.
        assert!(!dials_now(&s, at("2025-01-13T07:30:00Z")));
        // 16:00 UTC = 17:00 Berlin: the end is outside.
        assert!(!dials_now(&s, at("2025-01-13T16:00:00Z")));
        // Wednesday: not a day of the window.
        assert!(!dials_now(&s, at("2025-01-15T08:30:00Z")));
        assert!(dials_now(&spec(CampaignStatus::Enabled, vec![]), 0));
        assert!(!dials_now(
            &spec(CampaignStatus::Disabled, w),
            at("2025-01-13T08:30:00Z")
        ));
    }
}
