//! Inbound callbacks: people who call back a number a campaign showed. A call from a trunk to a
//! verified line in forward mode (named by the Request-URI, To, Diversion or History-Info), or
//! to the access number with a line named in Diversion or History-Info, is matched to the call
//! tasks that show the line; the caller's number (P-Asserted-Identity, else From) to their
//! contacts. An open contact's call joins its task's queue, ahead of outbound calls; other
//! callers get the line's `inbound_policy` (`route` as an unknown caller, `message`, `reject`).
//! A caller nobody can take hears that they will be called back, and their contact gets an
//! overdue follow-up.
//!
//! With several nodes, a node that does not dial the task refuses the call with 503 while
//! another dials it, for the proxy in front to try the next node; when every node refused,
//! the proxy relays it once more with [`LAST_RESORT_HEADER`], and the node takes it as a
//! missed callback rather than lose it.

use super::metrics::LiveMetrics;
use super::supervisor::Live;
use crate::call::record::{self, CallLog};
use crate::media::engine::MediaEngine;
use crate::media::prompt::Clip;
use crate::sip::leg::{Incoming, SipHandle, LAST_RESORT_HEADER};
use crate::store::contacts::Contact;
use crate::store::inbound::{InboundCall, LineTask, MISSED_CALLBACK};
use crate::store::lines::{InboundPolicy, Line};
use crate::store::{now_ms, phone, Store, StoreError};
use tokio::sync::mpsc;

/// A caller handed to a call task's driver.
#[derive(Debug)]
pub struct InboundOffer {
    /// The caller's leg, not answered yet.
    pub call: Incoming,
    /// Their contact in the task.
    pub contact: Contact,
    /// The line they called.
    pub line: Line,
    /// Their number (E.164 when it could be read as one).
    pub number: String,
    /// The metric result when an agent takes them: `connected`, `unknown`, `closed_contact`.
    pub label: &'static str,
}

/// The numbers a call names as the one it was meant for: the Request-URI's, To's, and each
/// in Diversion and History-Info (as users of their SIP URIs).
pub fn called_numbers(call: &Incoming, diverted_only: bool) -> Vec<String> {
    let mut out = Vec::new();
    if !diverted_only {
        out.push(call.to_user.clone());
    }
    for (name, value) in &call.headers {
        let name = name.to_ascii_lowercase();
        let wanted = match name.as_str() {
            "to" => !diverted_only,
            "diversion" | "history-info" => true,
            _ => false,
        };
        if !wanted {
            continue;
        }
        for part in value.split(',') {
            if let Some(user) = uri_user(part) {
                out.push(user);
            }
        }
    }
    out
}

/// The caller's number: P-Asserted-Identity's user, else From's.
pub fn caller_number(call: &Incoming) -> String {
    call.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("P-Asserted-Identity"))
        .find_map(|(_, v)| v.split(',').find_map(uri_user))
        .unwrap_or_else(|| call.from_user.clone())
}

/// True when the proxy in front of the nodes relayed `call` as its last resort (every node
/// refused it): [`LAST_RESORT_HEADER`] `1` from a trunk marked `cluster_proxy`. From anybody
/// else the header proves nothing: the proxy strips it from its carriers, but a carrier that
/// is a node's trunk too may send straight to the node.
pub fn last_resort(call: &Incoming) -> bool {
    call.from_cluster_proxy
        && call
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(LAST_RESORT_HEADER) && v.trim() == "1")
}

/// The user part of the first `sip:`/`sips:`/`tel:` URI in a header value.
fn uri_user(value: &str) -> Option<String> {
    let at = ["sip:", "sips:", "tel:"]
        .iter()
        .filter_map(|s| value.find(s).map(|i| i + s.len()))
        .min()?;
    let rest = &value[at..];
    let end = rest.find(['@', ';', '>', '?', ' ']).unwrap_or(rest.len());
    let user = &rest[..end];
    (!user.is_empty()).then(|| user.to_string())
}

/// Takes calls for lines and hands each to the driver of its call task.
#[derive(Clone)]
pub struct Callbacks {
    /// The store.
    pub store: Store,
    /// The running drivers.
    pub live: Live,
    /// SIP.
    pub sip: SipHandle,
    /// Media, for the messages.
    pub media: MediaEngine,
    /// Call records.
    pub log: CallLog,
    /// `dialerd_inbound_calls_total`.
    pub metrics: LiveMetrics,
    /// `lines.access_number`: calls to it name the line in Diversion or History-Info.
    pub access_number: Option<String>,
}

impl Callbacks {
    /// Serves calls from trunks that no other route took, until the sender is gone.
    pub async fn serve(self, mut calls: mpsc::Receiver<Incoming>) {
        while let Some(call) = calls.recv().await {
            tokio::spawn(self.clone().take(call));
        }
    }

    async fn take(self, call: Incoming) {
        let id = call.leg.id;
        match self.route(call).await {
            Ok(None) => {}
            Ok(Some(call)) => {
                tracing::debug!(to = %call.to_user, from = %call.from_user, "no route for call");
                self.sip.reject(call.leg.id, 404).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "inbound call not routed; 503");
                self.sip.reject(id, 503).await;
            }
        }
    }

    /// Routes `call`; gives it back when it reached no line.
    async fn route(&self, call: Incoming) -> Result<Option<Incoming>, StoreError> {
        let via_access = self.access_number.as_deref() == Some(call.to_user.as_str());
        let numbers = called_numbers(&call, via_access);
        let Some(line) = self.store.line_called(&numbers, !via_access).await? else {
            return Ok(Some(call));
        };
        let tasks = self.store.tasks_showing_line(line.id).await?;
        let raw = caller_number(&call);
        let region = tasks
            .first()
            .and_then(|t| t.default_region.as_deref())
            .and_then(phone::region);
        let (number, callable) = match phone::normalise(&raw, region) {
            Ok(n) => (n, true),
            // Anonymous or unreadable: no contact can have it, nor be made for it.
            Err(_) => (raw, false),
        };
        let ids: Vec<i64> = tasks.iter().map(|t| t.task_id).collect();
        let contacts = self.store.contacts_with_number(&ids, &number).await?;
        tracing::info!(line = line.id, %number, known = contacts.len(), "call to a line");
        if let Some(open) = contacts.iter().find(|c| c.spec.status == "open") {
            self.offer(call, open.clone(), line, number, "connected")
                .await?;
            return Ok(None);
        }
        let closed = contacts.into_iter().next();
        let label = if closed.is_some() {
            "closed_contact"
        } else {
            "unknown"
        };
        match line.spec.inbound_policy {
            InboundPolicy::Route => {
                let contact = match closed {
                    Some(c) => c,
                    None if !callable => {
                        self.answered_by_policy(call, &line, None, &number, 480, "rejected")
                            .await?;
                        return Ok(None);
                    }
                    None => {
                        let Some((campaign, task)) = self.task_for_unknown(&line, &tasks).await?
                        else {
                            self.answered_by_policy(call, &line, None, &number, 480, "rejected")
                                .await?;
                            return Ok(None);
                        };
                        self.store
                            .inbound_contact(campaign, task, &number, now_ms())
                            .await?
                    }
                };
                self.offer(call, contact, line, number, label).await?;
            }
            InboundPolicy::Message => {
                self.answered_by_policy(call, &line, closed.as_ref(), &number, 200, "message")
                    .await?;
            }
            InboundPolicy::Reject => {
                self.answered_by_policy(call, &line, closed.as_ref(), &number, 480, "rejected")
                    .await?;
            }
        }
        Ok(None)
    }

    /// Where an unknown caller's new contact goes: the line's `missed_calls_task`, else the
    /// first task showing the line that has a running driver, else the first task showing it.
    async fn task_for_unknown(
        &self,
        line: &Line,
        tasks: &[LineTask],
    ) -> Result<Option<(i64, i64)>, StoreError> {
        if let Some(task) = line.spec.missed_calls_task {
            if let Some(campaign) = self.store.campaign_of_task(task).await? {
                return Ok(Some((campaign, task)));
            }
        }
        let running = tasks.iter().find(|t| self.live.runs(t.task_id));
        Ok(running
            .or(tasks.first())
            .map(|t| (t.campaign_id, t.task_id)))
    }

    /// Hands the caller to the driver of the contact's task; with none running (no agent
    /// logged in, or the campaign not dialling), tells the caller they will be called back —
    /// unless another node dials the task: then the call is refused with 503, for the proxy in
    /// front of the nodes to try the next one (conf/kamailio/dialerd-cluster.cfg), but for the
    /// proxy's last resort ([`last_resort`]), which this node takes as the missed callback.
    async fn offer(
        &self,
        call: Incoming,
        contact: Contact,
        line: Line,
        number: String,
        label: &'static str,
    ) -> Result<(), StoreError> {
        let task = contact.spec.task_id.unwrap_or_default();
        let offer = Box::new(InboundOffer {
            call,
            contact,
            line,
            number,
            label,
        });
        let Err(offer) = self.live.inbound(task, offer) else {
            return Ok(());
        };
        let InboundOffer {
            call,
            contact,
            line,
            number,
            ..
        } = *offer;
        let last_resort = last_resort(&call);
        if let Some(holder) = self.store.task_holder(task, now_ms()).await? {
            if holder != self.live.node() && last_resort {
                // Every node refused it (the holder may have just died): missed, not lost.
                tracing::info!(
                    task,
                    contact = contact.id,
                    holder = %holder,
                    "callback every node refused; taken here as a missed callback"
                );
            } else if holder != self.live.node() {
                tracing::info!(
                    task,
                    contact = contact.id,
                    holder = %holder,
                    "callback for a task another node dials; refused for the proxy to try the next node"
                );
                self.sip.reject(call.leg.id, 503).await;
                self.count(&line, "elsewhere");
                return Ok(());
            }
        }
        tracing::info!(
            task,
            contact = contact.id,
            "callback with no agent to take it"
        );
        let clips = self.clips(&line, &["we_will_call_you_back", "goodbye"]);
        let rec = self
            .play(call, &line, Some(contact.id), &number, clips, "missed")
            .await;
        let missed = InboundCall {
            number,
            line_id: line.id,
            result: MISSED_CALLBACK.into(),
            status: Some("open".into()),
            follow_up_ms: Some(now_ms()),
            call_id: Some(rec),
            waited_ms: 0,
            agent: None,
            at_ms: now_ms(),
        };
        self.store
            .record_inbound(contact.campaign_id, contact.id, &missed, "dialer")
            .await?;
        self.count(&line, "missed");
        Ok(())
    }

    /// The line's policy answers a caller who is no open contact: 480 (`reject`) or the
    /// line's message (`message`); a closed contact's history says so.
    async fn answered_by_policy(
        &self,
        call: Incoming,
        line: &Line,
        contact: Option<&Contact>,
        number: &str,
        code: u16,
        result: &'static str,
    ) -> Result<(), StoreError> {
        let rec = if code == 200 {
            let clips = self.clips(line, &["thank_you_for_calling", "goodbye"]);
            self.play(call, line, contact.map(|c| c.id), number, clips, result)
                .await
        } else {
            self.sip.reject(call.leg.id, code).await;
            self.write_record(line, contact.map(|c| c.id), number, now_ms(), None, result)
                .await
        };
        if let Some(c) = contact {
            let note = InboundCall {
                number: number.to_string(),
                line_id: line.id,
                result: format!("$inbound_{result}"),
                status: None,
                follow_up_ms: None,
                call_id: Some(rec),
                waited_ms: 0,
                agent: None,
                at_ms: now_ms(),
            };
            self.store
                .record_inbound(c.campaign_id, c.id, &note, "dialer")
                .await?;
        }
        self.count(line, result);
        Ok(())
    }

    fn count(&self, line: &Line, result: &str) {
        self.metrics
            .inbound_calls
            .with_label_values(&[&line.id.to_string(), result])
            .inc();
    }

    fn clips(&self, line: &Line, names: &[&str]) -> Vec<Clip> {
        let prompts = self.media.prompts();
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                out.push(Clip::silence_ms(300));
            }
            if let Some(p) = prompts.get(&line.spec.language, name) {
                out.push(Clip::Audio(p));
            }
        }
        out
    }

    /// Answers, plays `clips`, hangs up, and writes the call record; its id.
    async fn play(
        &self,
        call: Incoming,
        line: &Line,
        contact: Option<i64>,
        number: &str,
        clips: Vec<Clip>,
        reason: &str,
    ) -> String {
        let started = now_ms();
        crate::call::playback::run(self.sip.clone(), self.media.clone(), call, clips).await;
        self.write_record(line, contact, number, started, Some(started), reason)
            .await
    }

    async fn write_record(
        &self,
        line: &Line,
        contact: Option<i64>,
        number: &str,
        started_at: i64,
        answered_at: Option<i64>,
        reason: &str,
    ) -> String {
        let rec = crate::store::calls::CallRecord {
            id: record::new_call_id(),
            route: "inbound".into(),
            a_number: number.to_string(),
            b_number: line.spec.number.clone(),
            started_at,
            answered_at,
            ended_at: now_ms(),
            end_reason: reason.to_string(),
            line_id: Some(line.id),
            contact_id: contact,
            waited_ms: Some(0),
            ..Default::default()
        };
        let id = rec.id.clone();
        self.log.write(rec).await;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::leg::{Leg, LegId};

    fn call(to: &str, from: &str, headers: &[(&str, &str)]) -> Incoming {
        let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Incoming {
            leg: Leg {
                id: LegId(1),
                events: rx,
            },
            to_user: to.into(),
            from_user: from.into(),
            from: format!("<sip:{from}@carrier>"),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            sdp: Vec::new(),
            source: "127.0.0.1:5060".parse().unwrap(),
            local_ip: "127.0.0.1".parse().unwrap(),
            media_encryption: Default::default(),
            trunk: Some("kamailio".into()),
            behind_nat: false,
            from_cluster_proxy: true,
        }
    }

    #[test]
    fn the_called_number_comes_from_the_request_uri_to_diversion_and_history_info() {
        let c = call(
            "4930999111",
            "anonymous",
            &[
                ("To", "<sip:+4930555000@dialerd>"),
                (
                    "Diversion",
                    "<sip:+4930555123@carrier.example>;reason=unconditional",
                ),
                (
                    "History-Info",
                    "<sip:004930555777@pbx;user=phone>;index=1,<tel:+4930555888>;index=1.1",
                ),
            ],
        );
        assert_eq!(
            called_numbers(&c, false),
            [
                "4930999111",
                "+4930555000",
                "+4930555123",
                "004930555777",
                "+4930555888"
            ]
        );
        assert_eq!(
            called_numbers(&c, true),
            ["+4930555123", "004930555777", "+4930555888"]
        );
    }

    #[test]
    fn the_last_resort_header_counts_from_the_cluster_proxy_only() {
        let mut c = call("x", "030123", &[("x-dialerd-last-resort", " 1")]);
        assert!(last_resort(&c));
        c.trunk = Some("carrier".into());
        c.from_cluster_proxy = false;
        assert!(!last_resort(&c), "a carrier's header proves nothing");
        c.trunk = None;
        assert!(
            !last_resort(&c),
            "a phone's or anybody's header proves nothing"
        );
        assert!(!last_resort(&call("x", "030123", &[])));
        assert!(!last_resort(&call(
            "x",
            "030123",
            &[("X-Dialerd-Last-Resort", "0")]
        )));
    }

    #[test]
    fn the_caller_is_p_asserted_identity_before_from() {
        let c = call(
            "x",
            "anonymous",
            &[("P-Asserted-Identity", "\"Ann\" <sip:+4930123456@carrier>")],
        );
        assert_eq!(caller_number(&c), "+4930123456");
        assert_eq!(caller_number(&call("x", "030123", &[])), "030123");
    }
}
