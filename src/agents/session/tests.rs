use super::*;
use crate::dialer::campaign::{Campaign, CampaignConfig};
use proptest::prelude::*;

const A: AgentId = AgentId(0);
const CONNECT: Duration = Duration::from_secs(30);

fn secs(s: u64) -> Time {
    Time(s * 1000)
}

fn outputs(s: &mut Session) -> Vec<Output> {
    s.drain_outputs().collect()
}

fn state_of(out: &[Output]) -> Vec<(AgentStateKind, Option<String>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::State { state, reason } => Some((*state, reason.clone())),
            _ => None,
        })
        .collect()
}

fn logged_in() -> Session {
    let mut s = Session::new(A, CONNECT, secs(0));
    s.handle(
        Input::LogIn {
            tasks: vec![7, 8],
            phone: Phone::Sip("agent1".into()),
        },
        secs(1),
    )
    .unwrap();
    s.handle(Input::LegAnswered, secs(2)).unwrap();
    s.drain_outputs();
    s
}

#[test]
fn login_dials_then_answer_pauses_with_login_and_tells_each_core() {
    let mut s = Session::new(A, CONNECT, secs(0));
    assert!(!s.has_leg());
    s.handle(
        Input::LogIn {
            tasks: vec![7, 8],
            phone: Phone::Number("+4930123".into()),
        },
        secs(1),
    )
    .unwrap();
    let out = outputs(&mut s);
    assert_eq!(out[0], Output::Dial(Phone::Number("+4930123".into())));
    assert_eq!(
        state_of(&out),
        [(AgentStateKind::LoggedOut, Some("connecting".into()))]
    );
    assert_eq!(s.poll_timeout(), Some(secs(31)));
    assert!(matches!(
        s.handle(
            Input::LogIn {
                tasks: vec![],
                phone: Phone::Sip("x".into())
            },
            secs(1)
        ),
        Err(SessionError::AlreadyLoggedIn)
    ));
    s.handle(Input::LegAnswered, secs(2)).unwrap();
    let out = outputs(&mut s);
    let core: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Campaign { task, input } => Some((*task, input.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        core,
        [
            (7, CampaignInput::AgentLoggedIn(A)),
            (7, CampaignInput::AgentPaused(A, "login".into())),
            (8, CampaignInput::AgentLoggedIn(A)),
            (8, CampaignInput::AgentPaused(A, "login".into())),
        ]
    );
    assert_eq!(
        state_of(&out),
        [(AgentStateKind::Paused, Some("login".into()))]
    );
    assert_eq!(s.since(), secs(2));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_leg_never_answered_is_given_up_at_the_connect_timeout() {
    let mut s = Session::new(A, CONNECT, secs(0));
    s.handle(
        Input::LogIn {
            tasks: vec![7],
            phone: Phone::Sip("agent1".into()),
        },
        secs(0),
    )
    .unwrap();
    s.drain_outputs();
    s.handle_timeout(secs(29));
    assert!(s.is_connecting());
    s.handle_timeout(secs(30));
    let out = outputs(&mut s);
    assert!(out.contains(&Output::HangUpLeg), "{out:?}");
    assert_eq!(s.state(), AgentStateKind::LoggedOut);
    assert_eq!(s.reason(), Some("timeout"));
    // The core never heard of this login.
    assert!(!out.iter().any(|o| matches!(o, Output::Campaign { .. })));
}

#[test]
fn failed_leg_is_logged_out_with_leg_failed() {
    let mut s = Session::new(A, CONNECT, secs(0));
    s.handle(
        Input::LogIn {
            tasks: vec![7],
            phone: Phone::Sip("agent1".into()),
        },
        secs(0),
    )
    .unwrap();
    s.handle(Input::LegFailed("not registered".into()), secs(1))
        .unwrap();
    assert_eq!(s.reason(), Some("leg_failed"));
    assert!(!s.has_leg());
}

#[test]
fn ready_pause_and_logout_feed_the_core() {
    let mut s = logged_in();
    s.handle(Input::Ready, secs(3)).unwrap();
    let out = outputs(&mut s);
    assert!(out.contains(&Output::Campaign {
        task: 8,
        input: CampaignInput::AgentReady(A)
    }));
    assert_eq!(state_of(&out), [(AgentStateKind::Ready, None)]);
    s.handle(Input::Ready, secs(4)).unwrap();
    assert!(outputs(&mut s).is_empty(), "ready twice changes nothing");
    s.handle(Input::Pause("lunch".into()), secs(5)).unwrap();
    assert_eq!(s.reason(), Some("lunch"));
    assert_eq!(
        state_of(&outputs(&mut s)),
        [(AgentStateKind::Paused, Some("lunch".into()))]
    );
    s.handle(Input::LogOut, secs(6)).unwrap();
    let out = outputs(&mut s);
    assert!(out.contains(&Output::HangUpLeg));
    assert!(out.contains(&Output::Campaign {
        task: 7,
        input: CampaignInput::AgentLoggedOut(A)
    }));
    assert_eq!(
        state_of(&out),
        [(AgentStateKind::LoggedOut, Some("logout".into()))]
    );
    assert!(matches!(
        s.handle(Input::LogOut, secs(7)),
        Err(SessionError::NotAllowed { .. })
    ));
}

#[test]
fn leg_lost_logs_out_and_tells_the_core() {
    let mut s = logged_in();
    s.handle(Input::LegLost, secs(3)).unwrap();
    let out = outputs(&mut s);
    assert!(out.contains(&Output::Campaign {
        task: 7,
        input: CampaignInput::AgentLegLost(A)
    }));
    assert_eq!(s.reason(), Some("leg_lost"));
    // A late report of the same leg changes nothing.
    s.handle(Input::LegLost, secs(4)).unwrap();
    assert!(outputs(&mut s).is_empty());
}

#[test]
fn a_call_runs_reserved_talking_wrap_up_then_the_deferred_pause() {
    let mut s = logged_in();
    let c = CallId(5);
    assert!(s
        .handle(Input::Reserved { task: 7, call: c }, secs(3))
        .is_err());
    s.handle(Input::Ready, secs(3)).unwrap();
    assert!(
        s.handle(Input::Reserved { task: 99, call: c }, secs(3))
            .is_err(),
        "a task the agent does not serve"
    );
    s.handle(Input::Reserved { task: 7, call: c }, secs(4))
        .unwrap();
    assert_eq!(s.state(), AgentStateKind::Reserved);
    assert!(s.handle(Input::Connected(CallId(6)), secs(5)).is_err());
    s.handle(Input::Connected(c), secs(5)).unwrap();
    assert_eq!(s.call(), Some(CallRef { task: 7, call: c }));
    s.handle(Input::Pause("break".into()), secs(6)).unwrap();
    assert_eq!(s.state(), AgentStateKind::Talking, "a pause waits");
    s.drain_outputs();
    s.handle(Input::HangUp, secs(7)).unwrap();
    assert_eq!(outputs(&mut s)[0], Output::HangUpCustomer(c));
    assert_eq!(s.state(), AgentStateKind::WrapUp);
    s.handle(Input::CustomerHungUp(c), secs(7)).unwrap();
    s.handle(Input::WrapUpEnded(c), secs(9)).unwrap();
    assert_eq!(s.reason(), Some("break"));
}

#[test]
fn logout_during_a_call_hangs_up_the_customer_then_the_leg() {
    let mut s = logged_in();
    let c = CallId(5);
    s.handle(Input::Ready, secs(3)).unwrap();
    s.handle(Input::Reserved { task: 8, call: c }, secs(4))
        .unwrap();
    s.handle(Input::Connected(c), secs(5)).unwrap();
    s.drain_outputs();
    s.handle(Input::LogOut, secs(6)).unwrap();
    let out = outputs(&mut s);
    let customer = out.iter().position(|o| *o == Output::HangUpCustomer(c));
    let leg = out.iter().position(|o| *o == Output::HangUpLeg);
    assert!(customer.unwrap() < leg.unwrap(), "{out:?}");
    assert!(out.contains(&Output::Campaign {
        task: 8,
        input: CampaignInput::AgentLegLost(A)
    }));
    assert_eq!(s.state(), AgentStateKind::LoggedOut);
}

/// What the property tests do: the agent through the API, the phone, the campaign driver.
#[derive(Debug, Clone)]
enum Op {
    LogIn,
    PhoneAnswers,
    PhoneFails,
    PhoneHangsUp,
    Ready,
    Pause(u8),
    HangUp,
    LogOut,
    Reserve(u8),
    Connect,
    CustomerHangsUp,
    Release,
    WrapUpEnds,
    Wait(u16),
}

fn op(calls: bool) -> BoxedStrategy<Op> {
    let base = prop_oneof![
        Just(Op::LogIn),
        Just(Op::PhoneAnswers),
        Just(Op::PhoneFails),
        Just(Op::PhoneHangsUp),
        Just(Op::Ready),
        (0u8..3).prop_map(Op::Pause),
        Just(Op::HangUp),
        Just(Op::LogOut),
        (0u16..40_000).prop_map(Op::Wait),
    ];
    if !calls {
        return base.boxed();
    }
    prop_oneof![
        4 => base,
        1 => (0u8..3).prop_map(Op::Reserve),
        1 => Just(Op::Connect),
        1 => Just(Op::CustomerHangsUp),
        1 => Just(Op::Release),
        1 => Just(Op::WrapUpEnds),
    ]
    .boxed()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    None,
    Placing,
    Up,
}

/// Runs `ops`; with `cores`, the session's campaign inputs go to a real campaign core per
/// task, which must accept each of them and agree with the session on the agent's state.
fn run(ops: Vec<Op>, cores: bool) -> Result<(), String> {
    let tasks = vec![1, 2];
    let mut core: Vec<Campaign> = tasks
        .iter()
        .map(|_| {
            let mut c = Campaign::new(CampaignConfig::default(), None).unwrap();
            c.add_agent(Time::ZERO);
            c
        })
        .collect();
    let mut s = Session::new(A, CONNECT, Time::ZERO);
    let mut leg = Leg::None;
    let mut now = Time::ZERO;
    let mut next_call = 0u64;
    let reasons = ["break", "lunch", "login"];
    for op in ops {
        let call = s.call().map(|c| c.call).unwrap_or(CallId(999));
        let _ = match op {
            Op::LogIn => s.handle(
                Input::LogIn {
                    tasks: tasks.clone(),
                    phone: Phone::Sip("agent1".into()),
                },
                now,
            ),
            Op::PhoneAnswers if leg == Leg::Placing => {
                leg = Leg::Up;
                s.handle(Input::LegAnswered, now)
            }
            Op::PhoneFails if leg == Leg::Placing => {
                leg = Leg::None;
                s.handle(Input::LegFailed("busy".into()), now)
            }
            Op::PhoneHangsUp if leg == Leg::Up => {
                leg = Leg::None;
                s.handle(Input::LegLost, now)
            }
            Op::PhoneAnswers | Op::PhoneFails | Op::PhoneHangsUp => Ok(()),
            Op::Ready => s.handle(Input::Ready, now),
            Op::Pause(i) => s.handle(Input::Pause(reasons[usize::from(i)].into()), now),
            Op::HangUp => s.handle(Input::HangUp, now),
            Op::LogOut => s.handle(Input::LogOut, now),
            Op::Reserve(t) => {
                next_call += 1;
                let task = tasks[usize::from(t) % tasks.len()];
                s.handle(
                    Input::Reserved {
                        task,
                        call: CallId(next_call),
                    },
                    now,
                )
            }
            Op::Connect => s.handle(Input::Connected(call), now),
            Op::CustomerHangsUp => s.handle(Input::CustomerHungUp(call), now),
            Op::Release => s.handle(Input::Released(call), now),
            Op::WrapUpEnds => s.handle(Input::WrapUpEnded(call), now),
            Op::Wait(ms) => {
                now = now + Duration::from_millis(u64::from(ms));
                s.handle_timeout(now);
                Ok(())
            }
        };
        for o in s.drain_outputs().collect::<Vec<_>>() {
            match o {
                Output::Dial(_) => {
                    if leg != Leg::None {
                        return Err("a second leg placed while one is held".into());
                    }
                    leg = Leg::Placing;
                }
                Output::HangUpLeg => leg = Leg::None,
                Output::Campaign { task, input } if cores => {
                    let i = tasks
                        .iter()
                        .position(|t| *t == task)
                        .ok_or("unknown task")?;
                    core[i]
                        .handle(input.clone(), now)
                        .map_err(|e| format!("core refused {input:?}: {e}"))?;
                }
                Output::Campaign { .. } | Output::HangUpCustomer(_) | Output::State { .. } => {}
            }
        }
        if s.has_leg() != (leg != Leg::None) {
            return Err(format!("session {:?} but leg {leg:?}", s.state()));
        }
        if cores {
            for c in &core {
                let kind = c.agents()[0].state().kind();
                if kind != s.state() {
                    return Err(format!("core says {kind:?}, session {:?}", s.state()));
                }
            }
        }
    }
    // Every state has an exit: logging out (or the phone hanging up) always ends the session,
    // and no leg is left held.
    let _ = s.handle(Input::LogOut, now);
    s.handle_timeout(now + Duration::from_secs(3600));
    if s.drain_outputs().any(|o| o == Output::HangUpLeg) {
        leg = Leg::None;
    }
    if s.state() != AgentStateKind::LoggedOut || s.has_leg() || leg != Leg::None {
        return Err(format!(
            "stuck: {:?} {:?}, leg {leg:?}",
            s.state(),
            s.reason()
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the agent and the phone do, the campaign cores accept every input the session
    /// gives them, agree with it on the agent's state, and logging out always ends the session.
    #[test]
    fn the_core_follows_the_session_and_logout_always_ends_it(
        ops in proptest::collection::vec(op(false), 1..120),
    ) {
        if let Err(e) = run(ops, true) {
            prop_assert!(false, "{e}");
        }
    }

    /// With calls reserved, connected, hung up and wrapped up in any order too, no sequence
    /// leaves the agent stuck or a leg held after logout.
    #[test]
    fn no_sequence_leaves_an_agent_stuck(ops in proptest::collection::vec(op(true), 1..150)) {
        if let Err(e) = run(ops, false) {
            prop_assert!(false, "{e}");
        }
    }
}
