//! A JSON API client for one token over the real daemon's HTTP listener.

use super::Daemon;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// A config for API tests: info logs, a short drain.
pub const BASE: &str = "[log]\nlevel = \"info\"\n[shutdown]\ndrain_timeout = \"3s\"\n";
/// The admin token the test daemons start with.
pub const ADMIN: &str = "admin-token-for-tests-0123456789";

/// A daemon on `BASE` whose admin token is `ADMIN`.
pub fn start() -> Daemon {
    Daemon::start_with(BASE, &[("DIALERD_ADMIN_TOKEN", ADMIN)])
}

/// A campaign in Germany with one call task: (campaign id, task id).
pub fn campaign(api: &Api, name: &str) -> (i64, i64) {
    let c = api.ok(
        "POST",
        "/api/v1/campaigns",
        Some(json!({"name": name, "default_region": "DE", "time_zone": "Europe/Berlin"})),
    );
    let t = api.ok(
        "POST",
        &format!("/api/v1/campaigns/{}/tasks", c["id"]),
        Some(json!({"name": "dial", "kind": "call", "settings": {"queue": "sales"}})),
    );
    (c["id"].as_i64().unwrap(), t["id"].as_i64().unwrap())
}

/// An API client for one token.
pub struct Api {
    /// The daemon's HTTP address.
    pub addr: SocketAddr,
    /// The Bearer token.
    pub token: String,
}

impl Api {
    /// A client of `d` with `token`.
    pub fn new(d: &Daemon, token: &str) -> Api {
        Api {
            addr: d.http,
            token: token.to_string(),
        }
    }

    /// (status, JSON body); panics on a non-JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, kind, text) =
            super::api_request(self.addr, &self.token, method, path, body.as_ref());
        if status >= 400 {
            assert_eq!(
                kind, "application/problem+json",
                "{method} {path}: {status} {text}"
            );
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}: {status} {text:?}"))
        };
        (status, value)
    }

    /// Like `call`; panics unless the status is 2xx.
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// GET of a file: (status, content type, bytes).
    pub fn download(&self, path: &str) -> (u16, String, Vec<u8>) {
        let auth = format!("Bearer {}", self.token);
        let (status, head, body) =
            super::http_bytes(self.addr, "GET", path, &[("Authorization", &auth)]);
        let kind = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        (status, kind, body)
    }

    /// Imports `csv` into `campaign` with `query`: (status, JSON report or problem).
    pub fn import(&self, campaign: i64, query: &str, csv: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let (status, _, text) = super::http_request(
            self.addr,
            "POST",
            &format!("/api/v1/campaigns/{campaign}/contacts/import?{query}"),
            &[("Authorization", &auth), ("Content-Type", "text/csv")],
            csv.as_bytes(),
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} {text:?}")),
        )
    }

    /// Every contact of a campaign matching `query`, following cursors `limit` at a time.
    pub fn all_contacts(&self, campaign: i64, query: &str, limit: u32) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/campaigns/{campaign}/contacts?limit={limit}&{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.ok("GET", &path, None);
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }
}

/// A user with `role` named `name`: its id and an API client with a token of its own.
pub fn user(admin: &Api, name: &str, role: &str) -> (i64, Api) {
    let u = admin.ok(
        "POST",
        "/api/v1/users",
        Some(json!({"name": name, "role": role})),
    );
    let id = u["id"].as_i64().unwrap();
    let t = admin.ok(
        "POST",
        &format!("/api/v1/users/{id}/tokens"),
        Some(json!({"label": "test"})),
    );
    (
        id,
        Api {
            addr: admin.addr,
            token: t["token"].as_str().unwrap().to_string(),
        },
    )
}
