//! The pacing simulator against the targets, on fixed seeds, and the `simulate`
//! command's JSON output. Figures and what they mean: README "Pacing and the simulator".

use dialerd::dialer::pacing::DialMode;
use dialerd::dialer::simulator::{simulate, Report, Run, Scenario};
use std::path::Path;
use std::process::Command;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("benches/pacing/{name}.toml"));
    Scenario::load(&path).expect("shipped scenario parses")
}

fn run(sc: &Scenario, mode: DialMode, seed: u64) -> Report {
    simulate(sc, Run { mode, seed })
}

fn counts_add_up(r: &Report) {
    assert_eq!(r.live_answers, r.connected + r.abandoned, "{r:?}");
    let ended: u64 = r
        .not_answered
        .iter()
        .filter(|(d, _)| **d != "$abandoned")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        r.calls_placed,
        r.live_answers + ended + r.in_flight_at_end,
        "{r:?}"
    );
}

/// A: predictive reaches 85 % occupancy under 3 % abandoned (over the day and over every
/// rolling 24 h) and at least 1.6× progressive's talk minutes. Seeds 1–20 were measured in
/// release (README: 87.5–88.4 %, abandoned at most 1.9 %); seeds 1 and 14 (14 is the lowest
/// of the twenty) here to keep the debug run short.
#[test]
fn scenario_a_predictive_reaches_85_percent_under_the_abandon_target() {
    let sc = scenario("scenario-a");
    let progressive = run(&sc, DialMode::Progressive, 1);
    counts_add_up(&progressive);
    assert_eq!(
        progressive.abandoned, 0,
        "one call per ready agent never abandons"
    );
    for seed in [1, 14] {
        let predictive = run(&sc, DialMode::Predictive, seed);
        counts_add_up(&predictive);
        assert!(
            predictive.abandon_ratio <= 0.03,
            "seed {seed}: {predictive:?}"
        );
        assert!(
            predictive.highest_24h_abandon_ratio <= 0.03,
            "seed {seed}: {predictive:?}"
        );
        let gain = predictive.talk_minutes_per_agent_hour / progressive.talk_minutes_per_agent_hour;
        assert!(
            gain >= 1.6,
            "seed {seed}: talk minutes ×{gain:.2} of progressive"
        );
        assert!(
            predictive.occupancy >= 0.85,
            "seed {seed}: occupancy {}",
            predictive.occupancy
        );
        // Calls hung up while ringing end as `$no_answer`, like any ring timeout.
        assert!(predictive.hung_up_ringing > 0);
        assert!(predictive.not_answered["$no_answer"] >= predictive.hung_up_ringing);
    }
}

/// Hanging up calls that have rung 15 s once the forecast shows more answers coming than
/// agents is what lifts A past 85 %: without it the same pacer stays near 85 % (README).
#[test]
fn hanging_up_late_ringing_calls_lifts_occupancy() {
    let with = scenario("scenario-a");
    let without = Scenario {
        hang_up_ringing_after: 0.0,
        ..with.clone()
    };
    let on = run(&with, DialMode::Predictive, 2);
    let off = run(&without, DialMode::Predictive, 2);
    counts_add_up(&off);
    assert_eq!(off.hung_up_ringing, 0);
    assert!(off.abandon_ratio <= 0.03, "{off:?}");
    assert!(
        on.occupancy >= off.occupancy + 0.01,
        "with {} without {}",
        on.occupancy,
        off.occupancy
    );
    assert!(on.abandon_ratio < off.abandon_ratio, "{on:?} {off:?}");
}

/// A task's `planned_wait_ms`: planning no wait for an answered person keeps agents less
/// busy and abandons no more than planning the full 2 s. The first 18 s of E here (65 %
/// against 68 %); the whole 6 minutes in release: 92 % against 98 % (README).
#[test]
fn planning_shorter_waits_trades_occupancy_for_no_wait() {
    let mut full = scenario("scenario-e");
    full.hours = 0.005;
    let none = Scenario {
        planned_wait: 0.0,
        ..full.clone()
    };
    let waiting = run(&full, DialMode::Predictive, 1);
    let at_once = run(&none, DialMode::Predictive, 1);
    counts_add_up(&at_once);
    assert!(
        at_once.occupancy + 0.01 <= waiting.occupancy,
        "no wait planned {}, 2 s planned {}",
        at_once.occupancy,
        waiting.occupancy
    );
    assert!(
        at_once.abandon_ratio <= waiting.abandon_ratio,
        "{at_once:?} {waiting:?}"
    );
}

/// B: five agents, 30 % live: at or under 3 % abandoned, over the day and every rolling 24 h,
/// for every seed tried (1–20 measured in release, README; 1–4 here to keep the debug run
/// short).
#[test]
fn scenario_b_small_team_stays_under_three_percent() {
    let sc = scenario("scenario-b");
    for seed in 1..=4 {
        let r = run(&sc, DialMode::Predictive, seed);
        counts_add_up(&r);
        assert!(r.abandon_ratio <= 0.03, "seed {seed}: {r:?}");
        assert!(r.highest_24h_abandon_ratio <= 0.03, "seed {seed}: {r:?}");
        assert!(r.occupancy > 0.70, "seed {seed}: occupancy {}", r.occupancy);
    }
}

/// E: 1,000 agents starting together, answers after 1 s: predictive stays under 3 %
/// abandoned, never reaches the abandon cap and keeps the agents busy. The first 36 s here
/// (the whole 6 minutes in release: README); before the forecast counted only agents free
/// for all of a step's answers, it had abandoned 4.2 % by then, dialled capped, and kept
/// 63 % occupancy (56 % over the 6 minutes).
#[test]
fn scenario_e_a_thousand_agents_on_quick_answers_are_not_over_dialled() {
    let mut sc = scenario("scenario-e");
    sc.hours = 0.01;
    let r = run(&sc, DialMode::Predictive, 1);
    counts_add_up(&r);
    assert!(r.abandon_ratio <= 0.03, "{r:?}");
    let capped = r
        .fallback_decisions
        .get("abandon_cap")
        .copied()
        .unwrap_or(0);
    assert_eq!(capped, 0, "{r:?}");
    assert!(r.occupancy > 0.8, "occupancy {}: {r:?}", r.occupancy);
}

/// C: the answer rate falls from 35 % to 10 %: every clock hour stays under 3 % abandoned,
/// and so do the day and every rolling 24 h. Seeds 1–20 were measured (worst hour at most
/// 2.47 %, README); seeds 1 and 4 here to keep the debug run short.
#[test]
fn scenario_c_follows_a_falling_answer_rate() {
    let sc = scenario("scenario-c");
    for seed in [1, 4] {
        let r = run(&sc, DialMode::Predictive, seed);
        counts_add_up(&r);
        assert!(r.abandon_ratio <= 0.03, "seed {seed}: {r:?}");
        assert!(r.highest_24h_abandon_ratio <= 0.03, "seed {seed}: {r:?}");
        assert!(
            r.occupancy >= 0.85,
            "seed {seed}: occupancy {}",
            r.occupancy
        );
        let worst = r.worst_hour.expect("answers every hour");
        assert!(worst.ratio < 0.03, "seed {seed}: worst hour {worst:?}");
        // The worst hour is the worst of the hourly figures the report lists.
        assert_eq!(r.hourly.len(), 8);
        assert!(r.hourly.iter().all(|h| h.ratio() <= worst.ratio));
    }
}

/// D (ours): the answer rate rises from 10 % to 35 %, the direction in which a learned rate
/// lags on the unsafe side: every clock hour still stays under 3 % (seeds 1–20 measured,
/// worst 2.81 %, README).
#[test]
fn scenario_d_follows_a_rising_answer_rate() {
    let r = run(&scenario("scenario-d"), DialMode::Predictive, 2);
    counts_add_up(&r);
    assert!(r.highest_24h_abandon_ratio <= 0.03, "{r:?}");
    let worst = r.worst_hour.expect("answers every hour");
    assert!(worst.ratio < 0.03, "worst hour {worst:?}");
    assert!(r.occupancy >= 0.85, "occupancy {}", r.occupancy);
}

/// Power mode's abandons are counted like any other's, and its formula over-dials A.
#[test]
fn power_mode_abandons_are_counted() {
    let sc = scenario("scenario-b");
    assert_eq!((sc.power.r_ready, sc.power.r_wrap), (1.7, 0.1));
    let r = run(&sc, DialMode::Power, 1);
    counts_add_up(&r);
    assert_eq!(
        r.not_answered.get("$abandoned").copied().unwrap_or(0),
        r.abandoned
    );
}

#[test]
fn same_seed_same_day() {
    let sc = scenario("scenario-b");
    assert_eq!(
        run(&sc, DialMode::Predictive, 7),
        run(&sc, DialMode::Predictive, 7)
    );
}

#[test]
fn simulate_command_prints_one_json_object_per_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .args(["simulate", "--scenario"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pacing/scenario-b.toml"))
        .args(["--seed", "3", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    let modes: Vec<&str> = lines.iter().map(|v| v["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["preview", "progressive", "power", "predictive"]);
    for v in &lines {
        for key in ["occupancy", "abandon_ratio", "talk_minutes_per_agent_hour"] {
            let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"));
            assert!((0.0..=60.0).contains(&x), "{key} = {x}");
        }
        assert_eq!(v["seed"], 3);
    }
    let occupancy = |m: &str| {
        lines.iter().find(|v| v["mode"] == m).unwrap()["occupancy"]
            .as_f64()
            .unwrap()
    };
    assert!(occupancy("predictive") > occupancy("progressive"));
}

#[test]
fn simulate_command_names_a_bad_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .args(["simulate", "--scenario"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pacing/scenario-b.toml"))
        .args(["--mode", "turbo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mode `turbo`"));
}
