//! `http://` and `https://` URLs split into what an HTTP/1.1 client needs, checked closely
//! enough that a URL accepted when a task is saved can be sent on the wire as it is.

use std::net::Ipv6Addr;

/// Why a URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(String);

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TLS.
    Https,
}

/// The parts of an HTTP URL a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// http or https.
    pub scheme: Scheme,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80 / 443 by default).
    pub port: u16,
    /// Path and query, at least `/` (a `#fragment` is not sent).
    pub path: String,
}

/// Splits an `http://` or `https://` URL, refusing what could not go into a request line or
/// a `Host` header as written.
pub fn split_url(url: &str) -> Result<Target, UrlError> {
    let bad = |why: &str| Err(UrlError(format!("{url:?}: {why}")));
    let (scheme, rest, default_port) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest, 443)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest, 80)
    } else {
        return bad("not an http:// or https:// URL");
    };
    if rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return bad("spaces and control characters must be percent-encoded");
    }
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return bad("user names and passwords in webhook URLs are not supported");
    }
    let port_of = |p: &str| match p.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(UrlError(format!("{url:?}: bad port {p:?}"))),
    };
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let Some((h, after)) = inner.split_once(']') else {
            return bad("unclosed [");
        };
        if h.parse::<Ipv6Addr>().is_err() {
            return bad("not an IPv6 address between [ and ]");
        }
        match after.strip_prefix(':') {
            Some(p) => (h, port_of(p)?),
            None if after.is_empty() => (h, default_port),
            None => return bad("text after ]"),
        }
    } else {
        let (h, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, port_of(p)?),
            None => (authority, default_port),
        };
        if h.is_empty() {
            return bad("no host");
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let name = h.strip_suffix('.').unwrap_or(h);
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return bad("the host is not a host name or address");
        }
        (h, port)
    };
    Ok(Target {
        scheme,
        host: host.to_string(),
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(scheme: Scheme, host: &str, port: u16, path: &str) -> Target {
        Target {
            scheme,
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn urls_split_with_default_ports() {
        use Scheme::*;
        for (url, want) in [
            (
                "http://127.0.0.1:8080/hook?a=1",
                target(Http, "127.0.0.1", 8080, "/hook?a=1"),
            ),
            ("http://example.com", target(Http, "example.com", 80, "/")),
            (
                "https://example.com?x=1",
                target(Https, "example.com", 443, "/?x=1"),
            ),
            ("https://[::1]:81/x", target(Https, "::1", 81, "/x")),
            ("https://[::1]/x", target(Https, "::1", 443, "/x")),
            (
                "https://crm.example.com/in#top",
                target(Https, "crm.example.com", 443, "/in"),
            ),
            ("http://my_host:1/", target(Http, "my_host", 1, "/")),
        ] {
            assert_eq!(split_url(url).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn urls_that_could_not_be_sent_are_refused_with_the_reason() {
        for (bad, why) in [
            ("ftp://h/", "not an http"),
            ("http://h:port/", "bad port"),
            ("http://h:0/", "bad port"),
            ("http://h:70000/", "bad port"),
            ("https:///x", "no host"),
            ("https://u:p@h/", "passwords"),
            ("http://exa mple.com/", "percent-encoded"),
            ("http://example.com/a b", "percent-encoded"),
            ("http://example.com/a\r\nX: y", "percent-encoded"),
            ("http://ex%41mple.com/", "not a host name"),
            ("http://-example.com/", "not a host name"),
            ("http://example..com/", "not a host name"),
            ("http://[::1/", "unclosed ["),
            ("http://[example]/", "not an IPv6"),
            ("http://[::1]x/", "after ]"),
        ] {
            let e = split_url(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
