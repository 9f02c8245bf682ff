//! An agent's leg: the session call to the agent's phone (or the agent's browser, connected
//! with the login), a short join tone once answered, then silence on its continuous stream
//! until the session hangs it up or the phone leaves.

use super::session::Phone;
use crate::call::agent_leg::{AgentLeg, Waited};
use crate::call::bridge::{BridgeEnd, BridgeLeg};
use crate::call::playback::{play, Played};
use crate::media::bridge::{BridgeCommand, Side};
use crate::media::engine::MediaEngine;
use crate::media::leg::MediaLeg;
use crate::media::prompt::{Clip, SAMPLE_RATE};
use crate::media::recorder::Recorder;
use crate::sip::leg::{Dial, Incoming, LegEvent, LegId, SipHandle};
use crate::store::calls::SideQuality;
use crate::webrtc::peer::{Peer, Started};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Headers asking a SIP phone to answer at once (both conventions phones follow).
pub fn auto_answer_headers(local_ip: IpAddr) -> Vec<(String, String)> {
    let host = match local_ip {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    vec![
        ("Call-Info".into(), format!("<sip:{host}>;answer-after=0")),
        (
            "Alert-Info".into(),
            "<http://127.0.0.1>;info=alert-autoanswer".into(),
        ),
    ]
}

/// The session call to `phone`: a registered SIP account with auto-answer hints, or a number
/// through a trunk; `None` for a browser, which is not called (its offer came with the login).
pub fn dial(phone: &Phone, ring_timeout: Duration, local_ip: IpAddr) -> Option<Dial> {
    Some(match phone {
        Phone::Sip(account) => Dial {
            account: Some(account.clone()),
            display_name: Some("dialerd".into()),
            headers: auto_answer_headers(local_ip),
            ring_timeout,
            ..Dial::new(account.clone())
        },
        Phone::Number(number) => Dial {
            ring_timeout,
            ..Dial::new(number.clone())
        },
        Phone::WebRtc => return None,
    })
}

/// The join tone: two 100 ms beeps at 440 Hz, 100 ms apart.
pub fn join_tone() -> Vec<Clip> {
    let n = SAMPLE_RATE as usize / 10;
    let beep: Arc<[i16]> = (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(SAMPLE_RATE);
            (6000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        })
        .collect();
    vec![
        Clip::Audio(beep.clone()),
        Clip::silence_ms(100),
        Clip::Audio(beep),
    ]
}

/// An answered customer leg handed to the agent's phone task to be bridged.
pub struct Handover {
    /// The customer's SIP leg.
    pub id: LegId,
    /// Its media.
    pub media: MediaLeg,
    /// Its SIP events.
    pub events: mpsc::UnboundedReceiver<LegEvent>,
    /// Where to record the conversation (customer left, agent right), if it is recorded.
    pub recording: Option<std::path::PathBuf>,
    /// What the agent hears before the customer (the callback tone), if anything.
    pub agent_tone: Vec<Clip>,
    /// Told how the bridge ended.
    pub done: oneshot::Sender<Bridged>,
}

/// What a bridge to the agent leaves for the customer's call record.
#[derive(Debug, Clone, PartialEq)]
pub struct Bridged {
    /// How it ended.
    pub end: CustomerEnd,
    /// The recording's file, when the call was recorded.
    pub recording: Option<String>,
    /// What the customer sent us.
    pub customer: Option<SideQuality>,
    /// What the agent sent us during the bridge.
    pub agent: Option<SideQuality>,
}

/// How a customer's bridge to the agent ended (the customer's leg is hung up in every case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerEnd {
    /// The customer hung up (or their RTP went dead).
    CustomerLeft,
    /// The agent ended the call (hang-up, logout): unbridged, the agent's leg stays.
    Unbridged,
    /// The agent's leg ended.
    AgentLeft,
}

/// What the session asks of a running leg.
pub enum Control {
    /// Hang up.
    HangUp,
    /// Bridge this customer to the agent until one of them leaves or `commands` unbridges.
    Bridge(Box<Handover>, mpsc::Receiver<BridgeCommand>),
}

/// What a leg tells its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The phone answered.
    Answered,
    /// The call was never answered, and why.
    Failed(String),
    /// The answered leg ended from the phone's side (BYE, RTP timeout).
    Lost,
}

/// Places `dial` and keeps the leg until `control` says hang up (or is dropped), reporting to
/// `report` what the phone does.
pub async fn run(
    sip: SipHandle,
    media: MediaEngine,
    dial: Dial,
    local_ip: IpAddr,
    mut control: mpsc::UnboundedReceiver<Control>,
    report: impl Fn(Report),
) {
    let mut leg = match media.open(local_ip) {
        Ok(l) => l,
        Err(e) => return report(Report::Failed(format!("no media: {e}"))),
    };
    let placed = sip
        .dial(Dial {
            sdp: Some(leg.offer()),
            ..dial
        })
        .await;
    let id = placed.id;
    let mut events = placed.events;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(LegEvent::Answered { sdp, behind_nat }) => {
                    leg.set_behind_nat(behind_nat);
                    let usable = sdp.as_deref().map(|s| leg.accept_answer(s)).transpose().is_ok();
                    if !usable || leg.codec().is_none() {
                        sip.hang_up(id).await;
                        return report(Report::Failed("no codec in common with the phone".into()));
                    }
                    break;
                }
                Some(LegEvent::Failed { failure, code, reason }) => {
                    let code = code.map(|c| format!(" {c}")).unwrap_or_default();
                    return report(Report::Failed(format!("{}{code}: {reason}", failure.as_str())));
                }
                Some(LegEvent::Ended { .. }) | None => {
                    return report(Report::Failed("the call ended".into()));
                }
                Some(_) => {}
            },
            // Hung up (or the session is gone) while it rings.
            _ = control.recv() => return sip.hang_up(id).await,
        }
    }
    keep(sip, media, id, leg, events, control, report).await
}

/// Answers an agent's call to `sip.agent_login_number` as its session leg and keeps it like
/// [`run`] keeps a placed one; an unusable offer is rejected (488, 503 without a free port).
pub async fn answer(
    sip: SipHandle,
    media: MediaEngine,
    call: Incoming,
    control: mpsc::UnboundedReceiver<Control>,
    report: impl Fn(Report),
) {
    let id = call.leg.id;
    let mut leg = match media.open(call.local_ip) {
        Ok(l) => l,
        Err(e) => {
            sip.reject(id, 503).await;
            return report(Report::Failed(format!("no media: {e}")));
        }
    };
    leg.set_encryption(call.media_encryption);
    match leg.answer(&call.sdp) {
        Ok(sdp) => sip.answer(id, sdp).await,
        Err(e) => {
            sip.reject(id, 488).await;
            return report(Report::Failed(format!("unusable offer: {e}")));
        }
    }
    keep(sip, media, id, leg, call.leg.events, control, report).await
}

/// Keeps a browser's leg: reported answered once ICE and DTLS are up (the session's connect
/// timeout hangs up one that never connects), then kept like a phone's leg; its loss ends it
/// as a phone's BYE does.
pub async fn run_webrtc(
    sip: SipHandle,
    media: MediaEngine,
    peer: Peer,
    mut control: mpsc::UnboundedReceiver<Control>,
    report: impl Fn(Report),
) {
    let Started {
        media: leg,
        events,
        connected,
    } = match peer.start(&media) {
        Ok(s) => s,
        Err(e) => return report(Report::Failed(format!("no media: {e}"))),
    };
    tokio::select! {
        up = connected => if up.is_err() {
            return report(Report::Failed("the browser's audio did not connect".into()));
        },
        // Hung up before it connected: dropping the events ends the browser leg.
        _ = control.recv() => return,
    }
    // A leg id of its own that the SIP endpoint does not know: its hang-ups are no-ops, and
    // the leg ends when `keep` drops its events.
    let id = crate::sip::leg::next_id(&sip);
    keep(sip, media, id, leg, events, control, report).await
}

/// The answered session leg: reported, the join tone, then silence on its stream until the
/// session hangs it up or the phone leaves.
async fn keep(
    sip: SipHandle,
    media: MediaEngine,
    id: LegId,
    mut leg: MediaLeg,
    mut events: mpsc::UnboundedReceiver<LegEvent>,
    mut control: mpsc::UnboundedReceiver<Control>,
    report: impl Fn(Report),
) {
    report(Report::Answered);
    if play(&sip, &media, id, &mut leg, &mut events, join_tone()).await == Played::LegEnded {
        return report(Report::Lost);
    }
    let mut agent = AgentLeg {
        id,
        media: leg,
        events,
    };
    loop {
        match agent.wait(&sip, &media, control.recv()).await {
            Waited::Next(Control::Bridge(customer, mut commands)) => {
                if bridge(&sip, &media, &mut agent, *customer, &mut commands).await
                    == CustomerEnd::AgentLeft
                {
                    return report(Report::Lost);
                }
            }
            Waited::Next(Control::HangUp) | Waited::NoMore => return sip.hang_up(id).await,
            Waited::AgentGone => return report(Report::Lost),
        }
    }
}

/// Bridges `customer` (side A) to the agent (side B) on the agent's continuous stream, hangs
/// up whatever leg is left to hang up, and tells the customer's call how it ended.
async fn bridge(
    sip: &SipHandle,
    media: &MediaEngine,
    agent: &mut AgentLeg,
    mut customer: Handover,
    commands: &mut mpsc::Receiver<BridgeCommand>,
) -> CustomerEnd {
    let tone = std::mem::take(&mut customer.agent_tone);
    if !tone.is_empty()
        && play(
            sip,
            media,
            agent.id,
            &mut agent.media,
            &mut agent.events,
            tone,
        )
        .await
            == Played::LegEnded
    {
        sip.hang_up(customer.id).await;
        let _ = customer.done.send(Bridged {
            end: CustomerEnd::AgentLeft,
            recording: None,
            customer: crate::call::record::quality(&mut customer.media),
            agent: None,
        });
        return CustomerEnd::AgentLeft;
    }
    let mut recorder =
        customer
            .recording
            .as_deref()
            .and_then(|path| match Recorder::create(path) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "campaign call not recorded");
                    None
                }
            });
    let end = crate::call::bridge::run(
        media,
        BridgeLeg {
            media: &mut customer.media,
            events: &mut customer.events,
        },
        BridgeLeg {
            media: &mut agent.media,
            events: &mut agent.events,
        },
        commands,
        recorder.as_mut(),
    )
    .await;
    let recording = recorder.and_then(|r| match r.finish() {
        Ok(info) => Some(info.path.display().to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "recording not finished");
            None
        }
    });
    let result = match end {
        BridgeEnd::Ended(Side::A) => CustomerEnd::CustomerLeft,
        BridgeEnd::Dead(Side::A) => {
            sip.hang_up(customer.id).await;
            CustomerEnd::CustomerLeft
        }
        BridgeEnd::Unbridged => {
            sip.hang_up(customer.id).await;
            CustomerEnd::Unbridged
        }
        BridgeEnd::Ended(Side::B) | BridgeEnd::Dead(Side::B) => {
            sip.hang_up(agent.id).await;
            sip.hang_up(customer.id).await;
            CustomerEnd::AgentLeft
        }
    };
    let _ = customer.done.send(Bridged {
        end: result,
        recording,
        customer: crate::call::record::quality(&mut customer.media),
        agent: crate::call::record::quality(&mut agent.media),
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tone_is_two_short_beeps() {
        let clips = join_tone();
        let total: usize = clips.iter().map(Clip::len).sum();
        assert_eq!(total, 3 * 800);
        let audio = crate::media::prompt::render(&clips);
        let loud = |s: &[i16]| s.iter().map(|v| i32::from(*v).abs()).max().unwrap_or(0);
        assert!(loud(&audio[..800]) > 5000);
        assert_eq!(loud(&audio[800..1600]), 0);
        assert!(loud(&audio[1600..]) > 5000);
    }

    #[test]
    fn sip_phones_get_auto_answer_hints_and_numbers_go_through_a_trunk() {
        let ip: IpAddr = [10, 0, 0, 1].into();
        let d = dial(&Phone::Sip("agent1".into()), Duration::from_secs(9), ip).unwrap();
        assert_eq!(d.account.as_deref(), Some("agent1"));
        assert!(d
            .headers
            .contains(&("Call-Info".into(), "<sip:10.0.0.1>;answer-after=0".into())));
        assert!(d
            .headers
            .iter()
            .any(|(n, v)| n == "Alert-Info" && v.contains("info=alert-autoanswer")));
        assert_eq!(d.ring_timeout, Duration::from_secs(9));
        let d = dial(
            &Phone::Number("+4930123".into()),
            Duration::from_secs(9),
            ip,
        )
        .unwrap();
        assert_eq!((d.account, d.to.as_str()), (None, "+4930123"));
        assert!(d.headers.is_empty());
        assert!(dial(&Phone::WebRtc, Duration::from_secs(9), ip).is_none());
    }
}
