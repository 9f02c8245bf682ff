//! The `Host` check against DNS rebinding: a web page whose name an attacker re-points at
//! dialerd's address still sends its own name in `Host`, so only IP literals, `localhost` and
//! names the operator lists (`http.allowed_hosts`) are served; anything else gets 421.

use super::problem::Problem;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// The host part of a `Host` value (`name`, `name:port`, `1.2.3.4:80`, `[::1]:80`).
fn host_part(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a request naming `host` may be served.
pub fn allowed(host: &str, allowed_hosts: &[String]) -> bool {
    let name = host_part(host.trim());
    let name = name.strip_suffix('.').unwrap_or(name);
    // No DNS answer can make a browser send an IP literal for a name it resolved.
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Middleware: 421 for a request whose `Host` (or absolute-form authority) is not allowed.
/// A request without either cannot come from a browser and passes.
pub async fn check(
    State(allowed_hosts): State<Arc<[String]>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{fffd}").to_string())
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if !allowed(&h, &allowed_hosts) => Problem::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server does not answer for the host {h:?}; use its address or a name in \
                 http.allowed_hosts"
            ),
        )
        .field("Host")
        .into_response(),
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn ip_literals_and_localhost_pass_other_names_only_when_listed() {
        let none: &[String] = &[];
        for ok in [
            "127.0.0.1:9090",
            "10.1.2.3",
            "[::1]:9090",
            "localhost:9090",
            "LOCALHOST",
            "localhost.",
        ] {
            assert!(allowed(ok, none), "{ok}");
        }
        for bad in [
            "evil.example:9090",
            "127.0.0.1.evil.example",
            "",
            "localhost.evil",
        ] {
            assert!(!allowed(bad, none), "{bad}");
        }
        let listed = ["dialer.corp.example".to_string()];
        assert!(allowed("Dialer.corp.example:9090", &listed));
        assert!(!allowed("other.corp.example", &listed));
    }
}
