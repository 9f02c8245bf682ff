//! Transaction keys (RFC 3261 §17.1.3, §17.2.3), the top-Via reader they need, and the
//! response-destination rule of §18.2.2 / RFC 3581.
//!
//! The Via is read by hand rather than through rsip's typed header: we need it for every message,
//! must not fail on IPv6 sent-by or `rport` without a value, and must only look at the first
//! value of a comma-joined header line.

use super::{Peer, Transport};
use rsip::headers::untyped::UntypedHeader;
use rsip::Header;
use std::net::{IpAddr, SocketAddr};

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Which side of a transaction we are: the same branch may be both (a request looped to us).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Identifies one transaction: role, branch, sent-by and method (ACK folded into INVITE).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionKey {
    role: Role,
    /// The Via branch, or for pre-RFC 3261 peers a synthetic value built from the request.
    branch: String,
    /// Top Via sent-by, host lower-cased, port defaulted to 5060 so `a` and `a:5060` match.
    sent_by: String,
    /// Request method; `ACK` is stored as `INVITE` so the ACK finds its INVITE (§17.2.3).
    method: String,
}

impl TransactionKey {
    /// Client or server side.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The branch (or RFC 2543 synthetic identifier).
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The method of the transaction (never `ACK`).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// True for INVITE transactions.
    pub fn is_invite(&self) -> bool {
        self.method == "INVITE"
    }

    /// The same branch and sent-by with another method: how CANCEL finds its INVITE (§9.2).
    pub(crate) fn with_method(&self, method: &str) -> TransactionKey {
        TransactionKey {
            role: self.role,
            branch: self.branch.clone(),
            sent_by: self.sent_by.clone(),
            method: method.to_string(),
        }
    }

    /// Key of a server transaction for an incoming request; `None` when the request lacks the
    /// headers needed (it is then dropped).
    pub(crate) fn for_server(req: &rsip::Request) -> Option<TransactionKey> {
        let via = TopVia::of(&req.headers)?;
        let method = key_method(&req.method.to_string());
        let branch = match via.branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) => b.to_string(),
            // RFC 2543 peers (§17.2.3 fallback): identify by Request-URI, From tag, Call-ID,
            // CSeq number and the whole top Via. The To tag is left out so the ACK of a non-2xx
            // (which carries our tag) still finds its INVITE.
            _ => {
                let dialog = DialogIds::of(req)?;
                format!(
                    "rfc2543|{}|{}|{}|{}|{}",
                    req.uri, dialog.from_tag, dialog.call_id, dialog.cseq, via.raw
                )
            }
        };
        Some(TransactionKey {
            role: Role::Server,
            branch,
            sent_by: via.sent_by_key(),
            method,
        })
    }

    /// Key of a client transaction for a request we send (its top Via must carry a branch).
    pub fn for_client_request(req: &rsip::Request) -> Option<TransactionKey> {
        let via = TopVia::of(&req.headers)?;
        Some(TransactionKey {
            role: Role::Client,
            branch: via.branch()?.to_string(),
            sent_by: via.sent_by_key(),
            method: key_method(&req.method.to_string()),
        })
    }

    /// Key of the client transaction a response belongs to (§17.1.3: branch + CSeq method),
    /// with the sent-by check of §18.1.2 folded in.
    pub(crate) fn for_response(resp: &rsip::Response) -> Option<TransactionKey> {
        let via = TopVia::of(&resp.headers)?;
        let cseq = cseq_of(&resp.headers)?;
        Some(TransactionKey {
            role: Role::Client,
            branch: via.branch()?.to_string(),
            sent_by: via.sent_by_key(),
            method: key_method(&cseq.1),
        })
    }
}

impl std::fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = match self.role {
            Role::Client => "uac",
            Role::Server => "uas",
        };
        write!(f, "{role}:{}:{}:{}", self.method, self.branch, self.sent_by)
    }
}

fn key_method(method: &str) -> String {
    if method.eq_ignore_ascii_case("ACK") {
        "INVITE".to_string()
    } else {
        method.to_ascii_uppercase()
    }
}

/// The first Via value of a message, parsed just enough for matching and routing responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopVia {
    /// The value as received (first comma element only), trimmed.
    pub raw: String,
    /// Transport token, e.g. `UDP`.
    pub transport: String,
    /// Sent-by host (IPv6 without brackets).
    pub host: String,
    /// Sent-by port, if given.
    pub port: Option<u16>,
    /// Parameters in order, names as written.
    pub params: Vec<(String, Option<String>)>,
}

impl TopVia {
    /// Reads the top Via of a header list; `None` if absent or unreadable.
    pub fn of(headers: &rsip::Headers) -> Option<TopVia> {
        let first = headers.iter().find_map(|h| match h {
            Header::Via(v) => Some(v.value()),
            _ => None,
        })?;
        TopVia::parse(split_first_value(first).0)
    }

    /// Parses one Via value: `SIP/2.0/UDP host[:port][;params]`.
    pub fn parse(value: &str) -> Option<TopVia> {
        let raw = value.trim();
        let (head, params_str) = match raw.find(';') {
            Some(i) => (&raw[..i], Some(&raw[i + 1..])),
            None => (raw, None),
        };
        let mut parts = head.splitn(3, '/');
        let name = parts.next()?.trim();
        let _version = parts.next()?.trim();
        let rest = parts.next()?.trim_start();
        if !name.eq_ignore_ascii_case("SIP") {
            return None;
        }
        let split = rest.find(|c: char| c.is_whitespace())?;
        let transport = rest[..split].to_string();
        let sent_by = rest[split..].trim();
        let (host, port) = parse_host_port(sent_by)?;
        let mut params = Vec::new();
        if let Some(p) = params_str {
            for item in p.split(';') {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                match item.split_once('=') {
                    Some((n, v)) => params.push((n.trim().to_string(), Some(v.trim().to_string()))),
                    None => params.push((item.to_string(), None)),
                }
            }
        }
        Some(TopVia {
            raw: raw.to_string(),
            transport,
            host,
            port,
            params,
        })
    }

    /// Value of a parameter (`Some(None)` for a flag such as a bare `rport`).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// Sent-by normalised for comparisons.
    pub fn sent_by_key(&self) -> String {
        format!(
            "{}:{}",
            self.host.to_ascii_lowercase(),
            self.port.unwrap_or(5060)
        )
    }

    /// Renders the value back, e.g. after adding `received`/`rport`.
    pub fn render(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut out = format!("SIP/2.0/{} {}", self.transport, host);
        if let Some(p) = self.port {
            out.push_str(&format!(":{p}"));
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => out.push_str(&format!(";{n}={v}")),
                None => out.push_str(&format!(";{n}")),
            }
        }
        out
    }

    /// Stamps `received` (when the source differs from sent-by, or rport asks for it) and fills
    /// a bare `rport` (RFC 3261 §18.2.1, RFC 3581 §4). Returns whether anything changed.
    pub fn stamp_source(&mut self, source: SocketAddr) -> bool {
        let wants_rport = self.param("rport").is_some();
        let same_host = self.host.parse::<IpAddr>().ok() == Some(source.ip());
        let mut changed = false;
        if wants_rport {
            for (n, v) in self.params.iter_mut() {
                if n.eq_ignore_ascii_case("rport") && v.is_none() {
                    *v = Some(source.port().to_string());
                    changed = true;
                }
            }
        }
        if (!same_host || wants_rport) && self.param("received").is_none() {
            self.params
                .push(("received".to_string(), Some(source.ip().to_string())));
            changed = true;
        }
        changed
    }
}

/// Splits a header value at its first comma outside quotes and angle brackets.
fn split_first_value(value: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut angle = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => return (&value[..i], Some(&value[i + 1..])),
            _ => {}
        }
    }
    (value, None)
}

fn parse_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = rest[..end].to_string();
        let after = rest[end + 1..].trim();
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.trim().parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.trim().to_string(), Some(p.trim().parse().ok()?))),
        None => Some((s.to_string(), None)),
    }
}

/// Rewrites the top Via of an incoming request with `received`/`rport` (§18.2.1, RFC 3581).
pub(crate) fn stamp_top_via(headers: &mut rsip::Headers, source: SocketAddr) {
    edit_top_via(headers, |via| via.stamp_source(source));
}

/// Applies `edit` to the first Via value and writes it back if `edit` reports a change.
pub fn edit_top_via(headers: &mut rsip::Headers, edit: impl FnOnce(&mut TopVia) -> bool) {
    for h in headers.iter_mut() {
        if let Header::Via(v) = h {
            let value = v.value().to_string();
            let (first, rest) = split_first_value(&value);
            if let Some(mut via) = TopVia::parse(first) {
                if edit(&mut via) {
                    let mut new = via.render();
                    if let Some(rest) = rest {
                        new.push(',');
                        new.push_str(rest);
                    }
                    v.replace(new);
                }
            }
            return;
        }
    }
}

/// Number of Via values in a header list (comma-joined values counted one by one).
pub(crate) fn via_count(headers: &rsip::Headers) -> usize {
    headers
        .iter()
        .filter_map(|h| match h {
            Header::Via(v) => Some(v.value()),
            _ => None,
        })
        .map(|mut v| {
            let mut n = 1;
            while let (_, Some(rest)) = split_first_value(v) {
                n += 1;
                v = rest;
            }
            n
        })
        .sum()
}

/// Where a server transaction sends its responses (RFC 3261 §18.2.2, RFC 3581 §4).
///
/// Reliable: back over the connection the request came on. UDP with `rport`: the source address
/// and port. UDP without: the source IP (the value `received` carries) and the sent-by port,
/// 5060 by default. `maddr` (multicast) is not honoured: nothing we talk to uses it.
pub fn response_destination(via: &TopVia, source: Peer) -> Peer {
    if source.transport.is_reliable() {
        return source;
    }
    if via.param("rport").is_some() {
        return source;
    }
    Peer {
        addr: SocketAddr::new(source.addr.ip(), via.port.unwrap_or(5060)),
        transport: Transport::Udp,
    }
}

/// The identifiers shared by a request and its retransmissions, forks and CANCEL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DialogIds {
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
}

impl DialogIds {
    pub(crate) fn of(req: &rsip::Request) -> Option<DialogIds> {
        Some(DialogIds {
            call_id: call_id_of(&req.headers)?,
            from_tag: tag_of(&req.headers, true).unwrap_or_default(),
            cseq: cseq_of(&req.headers)?.0,
        })
    }
}

/// Index used both for merged-request detection (§8.2.2.2) and for finding the INVITE an
/// ACK for a 2xx acknowledges (that ACK has its own branch).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RequestIds {
    pub ids: DialogIds,
    pub method: String,
}

pub(crate) fn call_id_of(headers: &rsip::Headers) -> Option<String> {
    headers.iter().find_map(|h| match h {
        Header::CallId(c) => Some(c.value().trim().to_string()),
        _ => None,
    })
}

/// (number, METHOD) of the CSeq header.
pub fn cseq_of(headers: &rsip::Headers) -> Option<(u32, String)> {
    let v = headers.iter().find_map(|h| match h {
        Header::CSeq(c) => Some(c.value()),
        _ => None,
    })?;
    let mut it = v.split_whitespace();
    let n = it.next()?.parse().ok()?;
    let m = it.next()?.to_ascii_uppercase();
    Some((n, m))
}

/// The `tag` of From (`from == true`) or To.
pub fn tag_of(headers: &rsip::Headers, from: bool) -> Option<String> {
    let v = headers.iter().find_map(|h| match (h, from) {
        (Header::From(f), true) => Some(f.value()),
        (Header::To(t), false) => Some(t.value()),
        _ => None,
    })?;
    header_param(v, "tag").map(str::to_string)
}

/// A header parameter of a name-addr / addr-spec value (params inside `<>` belong to the URI).
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => match value.find(';') {
            Some(i) => &value[i..],
            None => "",
        },
    };
    params.split(';').find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then_some(v.trim())
            .filter(|v| !v.is_empty())
    })
}
