//! What an SRE gets: the shipped Prometheus alerting rules load and pass their unit tests in
//! Debian's `promtool`, and every dialerd metric they name is served by a running daemon.

mod common;

use common::Daemon;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn conf(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("conf/prometheus")
        .join(name)
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(conf(""))
        .output()
        .expect("promtool is not installed: ./scripts/test installs Debian's prometheus");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn the_alerting_rules_load_and_pass_their_unit_tests() {
    let checked = promtool(&["check", "rules", "dialerd.rules.yml"]);
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    promtool(&["test", "rules", "dialerd.rules.test.yml"]);
}

#[test]
fn every_metric_the_rules_name_is_served() {
    let rules = std::fs::read_to_string(conf("dialerd.rules.yml")).unwrap();
    let mut names: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .flat_map(|e| e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| w.starts_with("dialerd_") || w.starts_with("process_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 7, "{names:?}");
    let d = Daemon::start(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = 9\nkeepalive = \"1s\"\n",
    );
    // One SIP request gives the response counter a series.
    common::udp_exchange(
        d.sip,
        &common::options_request("z9hG4bKsre"),
        Duration::from_secs(2),
    );
    let (_, metrics) = d.get("/metrics");
    // Series that exist only while a campaign dials; tests/dialer_live.rs reads them.
    let with_campaigns = ["dialerd_abandon_ratio"];
    for name in names {
        if with_campaigns.contains(&name) {
            continue;
        }
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' '])),
            "{name} is not in /metrics:\n{metrics}"
        );
    }
    assert!(metrics.contains("dialerd_ready 1"), "{metrics}");
    let available = common::metric(&metrics, "dialerd_state_dir_available_bytes").unwrap();
    let capacity = common::metric(&metrics, "dialerd_state_dir_capacity_bytes").unwrap();
    assert!(
        available > 0.0 && available <= capacity,
        "{available} / {capacity}"
    );
}
