//! An agent's long-lived leg: it stays up while customer legs come and go. Between customers
//! it hears silence frames on its own continuous stream (same SSRC, sequence and timestamps
//! running on, as `media::rtp::outbound` keeps them), so its phone hears no click and no
//! stream restart when a customer is bridged in or leaves.
//!
//! The `sip.agent_test_number` test route drives it: the first caller becomes the agent, each
//! later caller is bridged to it in turn (one at a time; more than a few waiting get 486).

use super::bridge::{BridgeEnd, BridgeLeg};
use crate::media::bridge::{BridgeCommand, Side};
use crate::media::engine::MediaEngine;
use crate::media::leg::{Input, MediaLeg, MAX_DATAGRAM};
use crate::media::prompt::FRAME_SAMPLES;
use crate::sip::leg::{Incoming, LegEvent, LegId, SipHandle};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Callers that may wait for the test agent while it talks to another.
const WAITING: usize = 4;

/// An answered agent leg.
pub struct AgentLeg {
    /// Its SIP leg.
    pub id: LegId,
    /// Its media.
    pub media: MediaLeg,
    /// Its SIP events.
    pub events: mpsc::UnboundedReceiver<LegEvent>,
}

/// How waiting for the next customer ended.
pub enum Waited<T> {
    /// The next customer (or whatever `next` gave).
    Next(T),
    /// `next` gave nothing more: no customer will come.
    NoMore,
    /// The agent's leg ended (or its RTP went dead and it was hung up).
    AgentGone,
}

impl AgentLeg {
    /// Plays silence to the agent until `next` completes or the agent's leg ends.
    pub async fn wait<T>(
        &mut self,
        sip: &SipHandle,
        media: &MediaEngine,
        next: impl Future<Output = Option<T>>,
    ) -> Waited<T> {
        let Some(kind) = self.media.codec() else {
            return Waited::AgentGone;
        };
        let mut encoder = kind.new_codec();
        let mut silence = Vec::with_capacity(FRAME_SAMPLES);
        encoder.encode(&[0; FRAME_SAMPLES], &mut silence);
        let mut out = Vec::with_capacity(256);
        let mut tick = frame_clock();
        tokio::pin!(next);
        loop {
            tokio::select! {
                got = &mut next => return got.map_or(Waited::NoMore, Waited::Next),
                ev = self.events.recv() => if !super::on_leg_event(ev, &mut self.media) {
                    return Waited::AgentGone;
                },
                _ = tick.tick() => {
                    let now = tokio::time::Instant::now().into_std();
                    if let Some(s) = self.media.session() {
                        s.build_voice(now, &silence, FRAME_SAMPLES as u32, &mut out);
                        self.media.send_rtp(&out);
                    }
                }
                input = self.media.input() => match input {
                    Input::Rtp => {
                        // Read for latching, statistics and liveness; nobody to hear it.
                        let mut buf = [0u8; MAX_DATAGRAM];
                        while let Some((n, from)) = self.media.recv_rtp(&mut buf) {
                            let now = tokio::time::Instant::now().into_std();
                            if let Some(s) = self.media.session() {
                                let _ = s.on_rtp(now, from, &buf[..n]);
                            }
                        }
                    }
                    Input::Timer if self.media.is_dead() => {
                        super::hang_up_dead(sip, media, self.id).await;
                        return Waited::AgentGone;
                    }
                    Input::Timer | Input::Handled => {}
                },
            }
        }
    }

    /// Bridges a customer's answered leg (side A) to this agent (side B) until the customer
    /// leaves, the agent leaves, or `commands` unbridges them; hangs up the customer unless
    /// the customer ended it. True while the agent's leg is still up.
    pub async fn bridge(
        &mut self,
        sip: &SipHandle,
        media: &MediaEngine,
        customer: (LegId, &mut MediaLeg, &mut mpsc::UnboundedReceiver<LegEvent>),
        commands: &mut mpsc::Receiver<BridgeCommand>,
    ) -> bool {
        let (id, leg, events) = customer;
        let end = super::bridge::run(
            media,
            BridgeLeg { media: leg, events },
            BridgeLeg {
                media: &mut self.media,
                events: &mut self.events,
            },
            commands,
            None,
        )
        .await;
        match end {
            BridgeEnd::Ended(Side::A) => true,
            BridgeEnd::Dead(Side::A) => {
                super::hang_up_dead(sip, media, id).await;
                true
            }
            BridgeEnd::Unbridged => {
                sip.hang_up(id).await;
                true
            }
            BridgeEnd::Ended(Side::B) => {
                sip.hang_up(id).await;
                false
            }
            BridgeEnd::Dead(Side::B) => {
                super::hang_up_dead(sip, media, self.id).await;
                sip.hang_up(id).await;
                false
            }
        }
    }
}

/// The 20 ms clock of the agent's own frames. A tick served late (a busy runtime) is followed
/// by the next one on the 20 ms grid, not 20 ms after the late one: the stream keeps 50
/// packets a second, and only a stall longer than a frame skips frames.
fn frame_clock() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick
}

/// Where callers to the agent test number go: the waiting line of the agent there is.
#[derive(Clone, Default)]
pub struct TestAgentSlot {
    queue: Arc<Mutex<Option<mpsc::Sender<Incoming>>>>,
}

impl TestAgentSlot {
    /// Routes one call to the test number: to the agent there is, or as the new agent.
    pub async fn route(&self, sip: &SipHandle, media: &MediaEngine, call: Incoming) {
        let call = {
            let mut slot = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref().filter(|q| !q.is_closed()) {
                Some(q) => match q.try_send(call) {
                    Ok(()) => return,
                    Err(mpsc::error::TrySendError::Full(call)) => Err(call),
                    Err(mpsc::error::TrySendError::Closed(call)) => Ok(call),
                },
                None => Ok(call),
            }
            .map(|call| {
                let (tx, rx) = mpsc::channel(WAITING);
                *slot = Some(tx);
                (call, rx)
            })
        };
        match call {
            Ok((agent, customers)) => {
                tokio::spawn(serve_agent(sip.clone(), media.clone(), agent, customers));
            }
            Err(busy) => sip.reject(busy.leg.id, 486).await,
        }
    }
}

/// The test agent: answered, then bridged to each waiting caller in turn until it hangs up.
async fn serve_agent(
    sip: SipHandle,
    media: MediaEngine,
    call: Incoming,
    mut customers: mpsc::Receiver<Incoming>,
) {
    let super::Inbound {
        id,
        events,
        local_ip,
        sdp,
        behind_nat,
        encryption,
    } = call.into();
    let Some(leg) =
        super::answer_with_media(&sip, &media, id, local_ip, sdp, behind_nat, encryption).await
    else {
        return;
    };
    let mut agent = AgentLeg {
        id,
        media: leg,
        events,
    };
    // Nothing drives the test agent's bridges: the sender stays here so they run to the end.
    let (_commands_tx, mut commands) = mpsc::channel(1);
    loop {
        let call = match agent.wait(&sip, &media, customers.recv()).await {
            Waited::Next(call) => call,
            Waited::NoMore | Waited::AgentGone => break,
        };
        let super::Inbound {
            id: cid,
            mut events,
            local_ip,
            sdp,
            behind_nat,
            encryption,
        } = call.into();
        let Some(mut leg) =
            super::answer_with_media(&sip, &media, cid, local_ip, sdp, behind_nat, encryption)
                .await
        else {
            continue;
        };
        tracing::info!(agent = %id, customer = %cid, "test agent bridged to a caller");
        if !agent
            .bridge(&sip, &media, (cid, &mut leg, &mut events), &mut commands)
            .await
        {
            break;
        }
    }
    // Callers still waiting for this agent are turned away.
    customers.close();
    while let Ok(call) = customers.try_recv() {
        sip.reject(call.leg.id, 486).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn frames_served_late_keep_fifty_a_second() {
        let mut clock = frame_clock();
        let begun = Instant::now();
        let mut frames = 0;
        while begun.elapsed() < Duration::from_secs(1) {
            clock.tick().await;
            frames += 1;
            if frames % 5 == 0 {
                // Busy for longer than a frame: the next tick is served 8 ms late.
                tokio::time::advance(Duration::from_millis(28)).await;
            }
        }
        assert_eq!(frames, 50, "one second of 20 ms frames");
    }
}
