//! What an SRE gets: the shipped Prometheus alerting rules load and pass their unit tests in
//! Debian's `promtool`, and every metric they and the Grafana dashboard use is served by a
//! running daemon.

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

/// The metric names in PromQL expressions (histogram series by their family name).
fn metric_names<'a>(exprs: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = exprs
        .flat_map(|e| e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| w.starts_with("dialerd_") || w.starts_with("process_"))
        .map(|w| w.trim_end_matches("_bucket").to_string())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Series that exist only once a campaign dials and agents log in; tests/dialer_live.rs reads
/// them from a daemon running one.
const WITH_CAMPAIGNS: [&str; 5] = [
    "dialerd_abandon_ratio",
    "dialerd_agent_occupancy_ratio",
    "dialerd_dialer_calls_total",
    "dialerd_calls_in_flight",
    "dialerd_agents",
];

/// Panics naming every metric of `names` that a fresh daemon with a trunk does not serve.
fn served(names: &[String]) {
    let d = Daemon::start(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = 9\nkeepalive = \"1s\"\n",
    );
    // One SIP request and one API request give their counters a series.
    common::udp_exchange(
        d.sip,
        &common::options_request("z9hG4bKsre"),
        Duration::from_secs(2),
    );
    d.admin_request("GET", "/api/v1/trunks", None);
    let (_, metrics) = d.get("/metrics");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !WITH_CAMPAIGNS.contains(&n.as_str()))
        .filter(|n| {
            !metrics
                .lines()
                .any(|l| l.starts_with(n.as_str()) && l[n.len()..].starts_with(['{', ' ', '_']))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in /metrics: {missing:?}\n{metrics}"
    );
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
    assert!(checked.contains("SUCCESS: 10 rules found"), "{checked}");
    promtool(&["test", "rules", "dialerd.rules.test.yml"]);
}

#[test]
fn every_metric_the_rules_name_is_served() {
    let rules = std::fs::read_to_string(conf("dialerd.rules.yml")).unwrap();
    let names = metric_names(rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")));
    assert!(names.len() >= 7, "{names:?}");
    served(&names);
}

#[test]
fn the_grafana_dashboard_uses_only_served_metrics() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf/grafana/dialerd.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(dash["templating"]["list"][0]["type"], "datasource");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    let names = metric_names(exprs.iter().map(String::as_str));
    assert!(names.len() >= 20, "{names:?}");
    served(&names);
    // Several nodes: a node variable from the served `node` label, and every selector uses it.
    let node = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "node")
        .expect("a node variable");
    assert!(
        node["query"].as_str().unwrap().ends_with(", node)"),
        "{node}"
    );
    for e in exprs.iter().filter(|e| e.contains('{')) {
        assert!(e.contains(r#"node=~"$node""#), "{e}");
    }
    let d = Daemon::start("");
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dialerd_build_info{") && l.contains("node=\"")),
        "{metrics}"
    );
}

#[test]
fn a_daemon_reports_readiness_and_its_state_disk() {
    let d = Daemon::start("");
    let (_, metrics) = d.get("/metrics");
    assert_eq!(
        common::metric(&metrics, "dialerd_ready"),
        Some(1.0),
        "{metrics}"
    );
    let available = common::metric(&metrics, "dialerd_state_dir_available_bytes").unwrap();
    let capacity = common::metric(&metrics, "dialerd_state_dir_capacity_bytes").unwrap();
    assert!(
        available > 0.0 && available <= capacity,
        "{available} / {capacity}"
    );
}
