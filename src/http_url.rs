//! `http://` and `https://` URLs parsed by the `url` crate (WHATWG: IDN hosts to punycode,
//! IPv4/IPv6 forms normalised, path and query percent-encoded), with our own checks on top so
//! that a URL accepted when a task is saved can be sent on the wire as it is.

use std::net::Ipv6Addr;
use url::{Host, Position, Url};

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
    /// Host name (ASCII, punycode for IDN) or address (IPv6 without brackets).
    pub host: String,
    /// Port (80 / 443 by default).
    pub port: u16,
    /// Path and query, percent-encoded, at least `/` (a `#fragment` is not sent).
    pub path: String,
}

impl Target {
    /// The URL as it is requested: no fragment, the port only when not the default.
    pub fn uri(&self) -> String {
        let (scheme, default) = match self.scheme {
            Scheme::Http => ("http", 80),
            Scheme::Https => ("https", 443),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let port = if self.port == default {
            String::new()
        } else {
            format!(":{}", self.port)
        };
        format!("{scheme}://{host}{port}{}", self.path)
    }
}

/// Parses an `http://` or `https://` URL, refusing what could not go into a request line or
/// a `Host` header as written: raw spaces and control characters (WHATWG would drop or encode
/// them silently), credentials, percent-encoded host names, port 0, and host names that are
/// not DNS names.
pub fn split_url(url: &str) -> Result<Target, UrlError> {
    let bad = |why: &str| UrlError(format!("{url:?}: {why}"));
    let not_a_name = "the host is not a host name or address";
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("spaces and control characters must be percent-encoded"));
    }
    if url.contains('\\') {
        // WHATWG reads it as `/` in http URLs: `http://a\b.com/` would go to host `a`.
        return Err(bad("a backslash is not allowed (write / or %5C)"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("not an http:// or https:// URL"));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(bad("not an http:// or https:// URL")),
    };
    // What the URL says between `//` and the path, before WHATWG forgives it.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains('@') {
        return Err(bad(
            "user names and passwords in webhook URLs are not supported",
        ));
    }
    if authority.contains('%') {
        return Err(bad(&format!("{not_a_name} (percent-encoded)")));
    }
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((h, after)) = inner.split_once(']') else {
            return Err(bad("unclosed ["));
        };
        if h.parse::<Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address between [ and ]"));
        }
        if !after.is_empty() && !after.starts_with(':') {
            return Err(bad("text after ]"));
        }
    }
    let parsed = Url::parse(url).map_err(|e| {
        bad(&match e {
            url::ParseError::InvalidPort => "bad port".to_string(),
            url::ParseError::EmptyHost => "no host".to_string(),
            url::ParseError::IdnaError | url::ParseError::InvalidDomainCharacter => {
                format!("{not_a_name} ({e})")
            }
            e => e.to_string(),
        })
    })?;
    let host = match parsed.host() {
        Some(Host::Domain(name)) => {
            let label_ok = |l: &str| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            let trimmed = name.strip_suffix('.').unwrap_or(name);
            if trimmed.len() > 253 || !trimmed.split('.').all(label_ok) {
                return Err(bad(not_a_name));
            }
            name.to_string()
        }
        Some(Host::Ipv4(a)) => a.to_string(),
        Some(Host::Ipv6(a)) => a.to_string(),
        None => return Err(bad("no host")),
    };
    let port = match parsed.port_or_known_default() {
        Some(0) | None => return Err(bad("bad port 0")),
        Some(p) => p,
    };
    Ok(Target {
        scheme,
        host,
        port,
        path: parsed[Position::BeforePath..Position::AfterQuery].to_string(),
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
            (
                "HTTPS://Example.COM:443/A",
                target(Https, "example.com", 443, "/A"),
            ),
            (
                "https://example.com:65535/",
                target(Https, "example.com", 65535, "/"),
            ),
            (
                "http://example.com:080/",
                target(Http, "example.com", 80, "/"),
            ),
        ] {
            assert_eq!(split_url(url).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn the_library_normalises_hosts_and_encodes_paths() {
        use Scheme::*;
        for (url, want) in [
            (
                "https://bücher.example/straße?q=ü",
                target(Https, "xn--bcher-kva.example", 443, "/stra%C3%9Fe?q=%C3%BC"),
            ),
            (
                "https://[2001:DB8:0:0::1]:8443/x",
                target(Https, "2001:db8::1", 8443, "/x"),
            ),
            (
                "http://[::ffff:192.0.2.1]/",
                target(Http, "::ffff:192.0.2.1", 80, "/"),
            ),
            ("http://0x7f.1/", target(Http, "127.0.0.1", 80, "/")),
            (
                "http://example.com/a/./b/../c?x=<y>",
                target(Http, "example.com", 80, "/a/c?x=%3Cy%3E"),
            ),
            (
                "http://example.com/%7Euser%20name",
                target(Http, "example.com", 80, "/%7Euser%20name"),
            ),
        ] {
            assert_eq!(split_url(url).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn the_request_uri_names_the_port_only_when_not_the_default() {
        for (url, uri) in [
            ("https://example.com:443/x#top", "https://example.com/x"),
            ("http://[::1]:8080?a=1", "http://[::1]:8080/?a=1"),
            ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ] {
            assert_eq!(split_url(url).unwrap().uri(), uri, "{url}");
        }
    }

    #[test]
    fn odd_forms_the_library_would_forgive_are_refused() {
        for (bad, why) in [
            ("http:example.com/", "not an http"),
            (r"http://exa\mple.com/", "backslash"),
            (r"http://example.com\a", "backslash"),
            ("http://example.com:-1/", "bad port"),
            ("http://:80/", "no host"),
            ("http://exa<mple.com/", "not a host name"),
            ("https://xn--/", "not a host name"),
        ] {
            let e = split_url(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
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
