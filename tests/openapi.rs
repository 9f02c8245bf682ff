//! `/api/v1/openapi.json` describes exactly what the router serves: every registered path,
//! and on each the methods that do not answer 405.

mod common;

use common::{http_request, Daemon};
use serde_json::Value;
use std::collections::BTreeSet;

const ADMIN: &str = "admin-token-for-tests-0123456789";

both_stores! {
    fn the_document_lists_every_route_and_method_served() {
        let d = Daemon::start_with(
            "[log]\nlevel = \"info\"\n",
            &[("DIALERD_ADMIN_TOKEN", ADMIN)],
        );
        let (status, kind, text) = http_request(d.http, "GET", "/api/v1/openapi.json", &[], b"");
        assert_eq!((status, kind.as_str()), (200, "application/json"), "{text}");
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect();

        let auth = format!("Bearer {ADMIN}");
        let mut served = BTreeSet::new();
        for path in dialerd::api::paths() {
            // Ids nobody has: nothing is changed, yet every served method answers something
            // other than 405.
            let concrete: String = path
                .split('/')
                .map(|s| match s {
                    "{name}" => "nope",
                    s if s.starts_with('{') => "999999",
                    s => s,
                })
                .collect::<Vec<_>>()
                .join("/");
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                let (status, _, _) = http_request(
                    d.http,
                    method,
                    &concrete,
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/json"),
                    ],
                    b"",
                );
                if status != 405 {
                    served.insert((path.clone(), method.to_ascii_lowercase()));
                }
            }
        }
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
        assert!(served.len() > 40, "{served:?}");
        // Operations behind a token say so and name their roles.
        let callable = &doc["paths"]["/api/v1/campaigns/{id}/contacts/callable"]["get"];
        assert_eq!(callable["security"][0]["bearer"], serde_json::json!([]));
        assert!(callable["description"]
            .as_str()
            .unwrap()
            .contains("supervisor"));
    }
}

both_stores! {
    /// No route that changes anything or places a call answers without a token: every operation
    /// but the probes, the metrics, this document and the login is 401 without one.
    fn every_route_but_the_open_ones_needs_a_token() {
        let d = Daemon::start_with(
            "[log]\nlevel = \"info\"\n",
            &[("DIALERD_ADMIN_TOKEN", ADMIN)],
        );
        let (_, _, text) = http_request(d.http, "GET", "/api/v1/openapi.json", &[], b"");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let mut open = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            let concrete: String = path
                .split('/')
                .map(|s| match s {
                    "{name}" => "nope",
                    s if s.starts_with('{') => "1",
                    s => s,
                })
                .collect::<Vec<_>>()
                .join("/");
            for (method, op) in ops.as_object().unwrap() {
                let (status, _, body) = http_request(
                    d.http,
                    &method.to_ascii_uppercase(),
                    &concrete,
                    &[("Content-Type", "application/json")],
                    b"{}",
                );
                if status != 401 {
                    open.insert(format!("{method} {path}"));
                } else {
                    assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{path}");
                    assert!(body.contains("Bearer"), "{body}");
                }
            }
        }
        let want: BTreeSet<String> = [
            "get /healthz",
            "get /readyz",
            "get /metrics",
            "get /api/v1/openapi.json",
            "post /api/v1/login",
            // WebSockets: a single-use ticket in the query stands for the token.
            "get /api/v1/agent/events",
            "get /api/v1/queues/{task}/events",
            // The console's static pages: they hold no data; they log in through the API.
            "get /agent/",
            "get /supervisor/",
            "get /console/{file}",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(open, want);
    }
}
