//! Bytes ⇄ rsip: a front that makes RFC 4475's valid messages parse, and names what is wrong in
//! invalid ones so the server can answer 400/505 instead of going silent.
//!
//! rsip 0.4's own parser rejects compact and folded headers and mis-parses URIs (a user part
//! containing `.` becomes part of the host; IPv6 fails), so this module tokenises and checks the
//! message itself and builds the `rsip::SipMessage` directly; rsip keeps header values as strings,
//! which we hand over unfolded and canonically spaced.
//!
//! Choices where RFC 4475 allows two answers: `baddate.dat` is accepted (Date is never examined)
//! and `badaspec.dat` is accepted (spaces inside `< >` are dropped). A request whose method rsip
//! cannot represent (any extension method) gets `BadRequest { status: 501 }` after all other
//! checks pass. Max-Forwards may be absent (RFC 2543 peers, `inv2543.dat`).

mod lex;
mod syntax;
/// The elements of a comma-separated header value (commas inside quotes or `<>` kept), each
/// trimmed; `None` when one is empty.
pub fn list_elements(value: &str) -> Option<Vec<&str>> {
    syntax::split_commas(value).ok()
}

#[cfg(test)]
mod tests;

use std::io::Write as _;

use lex::{Field, Kind, Lexed};
use syntax::ParsedUri;

/// Why a message could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not recognisable as SIP (no start line, binary noise): drop it and count it.
    #[error("unparseable message: {0}")]
    Unparseable(String),
    /// A request that must be answered with `status` and `reason`: 400 (malformed), 505 (SIP
    /// version), or 501 (well-formed request whose extension method rsip cannot represent; the
    /// method is the second word of `reply.cseq`).
    #[error("bad request ({status} {reason})")]
    BadRequest {
        /// 400, 505 or 501.
        status: u16,
        /// Reason phrase naming the problem, e.g. "Missing Call-ID header".
        reason: String,
        /// What is needed to build the answer.
        reply: Box<ReplyContext>,
    },
    /// A malformed response: dropped (a response is never answered).
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// The raw header values needed to answer a request that did not fully parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyContext {
    /// Every Via value, top first, as received.
    pub via: Vec<String>,
    /// From value.
    pub from: Option<String>,
    /// To value.
    pub to: Option<String>,
    /// Call-ID value.
    pub call_id: Option<String>,
    /// CSeq value.
    pub cseq: Option<String>,
}

impl ReplyContext {
    /// Builds a minimal response (Via, From, To with a tag, Call-ID, CSeq, `extra`,
    /// `Content-Length: 0`). Fields the request lacked are left out so that even `insuf.dat`
    /// gets its 400; `None` only without a Via, since then there is nowhere to send it.
    pub fn response_bytes(
        &self,
        status: u16,
        reason: &str,
        to_tag: &str,
        extra: &[(&str, &str)],
    ) -> Option<Vec<u8>> {
        if self.via.is_empty() {
            return None;
        }
        // header injection guard: nothing we write may start a new line
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        let mut out = Vec::with_capacity(256);
        let _ = write!(out, "SIP/2.0 {} {}\r\n", status, clean(reason));
        for v in &self.via {
            let _ = write!(out, "Via: {}\r\n", v);
        }
        if let Some(f) = &self.from {
            let _ = write!(out, "From: {}\r\n", f);
        }
        if let Some(t) = &self.to {
            if to_tag.is_empty() || has_tag(t) {
                let _ = write!(out, "To: {}\r\n", t);
            } else {
                let _ = write!(out, "To: {};tag={}\r\n", t, clean(to_tag));
            }
        }
        if let Some(c) = &self.call_id {
            let _ = write!(out, "Call-ID: {}\r\n", c);
        }
        if let Some(c) = &self.cseq {
            let _ = write!(out, "CSeq: {}\r\n", c);
        }
        for (n, v) in extra {
            let _ = write!(out, "{}: {}\r\n", clean(n), clean(v));
        }
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        Some(out)
    }
}

/// True when a From/To value carries a `tag` header parameter (outside quotes and `< >`).
fn has_tag(v: &str) -> bool {
    let b = v.as_bytes();
    let (mut in_q, mut esc, mut angle) = (false, false, false);
    // params of a bare addr-spec start at the first ';' too, so no special case is needed
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if in_q {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_q = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_q = true,
            b'<' => angle = true,
            b'>' => angle = false,
            b';' if !angle => {
                let rest = v[i..].trim_start_matches([' ', '\t']);
                let name_len = rest.bytes().take_while(|&c| syntax::is_token(c)).count();
                if rest[..name_len].eq_ignore_ascii_case("tag") {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Parses one complete SIP message (a UDP datagram or one framed TCP message).
pub fn parse(bytes: &[u8]) -> Result<rsip::SipMessage, WireError> {
    let lx = lex::lex(bytes);
    if lx.start.len() >= 4 && lx.start[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_response(&lx)
            .map(rsip::SipMessage::Response)
            .map_err(WireError::BadResponse);
    }
    parse_request(&lx).map(rsip::SipMessage::Request)
}

/// A request line split at single spaces.
struct RequestLine<'a> {
    method: &'a str,
    uri: &'a str,
    version: &'a str,
}

/// Ok(None): looks like a request line but is malformed (400). Err: not SIP at all.
fn request_line(start: &[u8]) -> Result<Option<RequestLine<'_>>, WireError> {
    let unparseable = || WireError::Unparseable("no SIP start line".into());
    let s = std::str::from_utf8(start).map_err(|_| unparseable())?;
    let method_len = s.bytes().take_while(|&b| syntax::is_token(b)).count();
    let last = s.split([' ', '\t']).rfind(|w| !w.is_empty()).unwrap_or("");
    // bytes, not str: the fourth byte may be inside a multi-byte character
    let looks_sip = last
        .as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"));
    if method_len == 0 || s.as_bytes().get(method_len) != Some(&b' ') || !looks_sip {
        return Err(unparseable());
    }
    // exactly "Method SP Request-URI SP SIP-Version": extra or trailing LWS is malformed
    let mut parts = s.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    if uri.is_empty() || version.is_empty() {
        return Ok(None);
    }
    Ok(Some(RequestLine {
        method,
        uri,
        version,
    }))
}

fn reply_context(fields: &[Field<'_>]) -> ReplyContext {
    let mut rc = ReplyContext::default();
    for f in fields {
        let v = &*f.value;
        match f.kind {
            Kind::Via => match syntax::split_commas(v) {
                Ok(parts) => rc.via.extend(parts.into_iter().map(String::from)),
                Err(()) => rc.via.push(v.to_owned()),
            },
            Kind::From if rc.from.is_none() => rc.from = Some(v.to_owned()),
            Kind::To if rc.to.is_none() => rc.to = Some(v.to_owned()),
            Kind::CallId if rc.call_id.is_none() => rc.call_id = Some(v.to_owned()),
            Kind::CSeq if rc.cseq.is_none() => rc.cseq = Some(v.to_owned()),
            _ => {}
        }
    }
    rc
}

/// What header checking learnt besides the rsip headers.
#[derive(Default)]
struct Checked<'a> {
    headers: Vec<rsip::Header>,
    cseq_method: Option<&'a str>,
    content_length: Option<u32>,
    seen: u32,
}

const SINGLE: [Kind; 8] = [
    Kind::From,
    Kind::To,
    Kind::CallId,
    Kind::CSeq,
    Kind::MaxForwards,
    Kind::ContentLength,
    Kind::ContentType,
    Kind::Expires,
];

fn bit(kind: Kind) -> u32 {
    match kind {
        Kind::Via => 1 << 8,
        k => SINGLE.iter().position(|&s| s == k).map_or(0, |i| 1 << i),
    }
}

/// Checks every header field and converts it; Err carries the reason phrase.
fn check_headers<'a>(fields: &'a [Field<'a>]) -> Result<Checked<'a>, String> {
    let mut c = Checked {
        headers: Vec::with_capacity(fields.len() + 2),
        ..Default::default()
    };
    for f in fields {
        // the canonical name is looked up only when a reason needs it
        let invalid = |_| format!("Invalid {} header", lex::canonical(f.kind));
        let b = bit(f.kind);
        if b != 0 && b != bit(Kind::Via) && c.seen & b != 0 {
            return Err(format!("Multiple {} headers", lex::canonical(f.kind)));
        }
        c.seen |= b;
        let v: &'a str = &f.value;
        match f.kind {
            Kind::Via | Kind::Contact | Kind::Route | Kind::RecordRoute => {
                // multi-valued: one rsip header per element so `via_header()` etc. see one value
                let one = |p: &str| match f.kind {
                    Kind::Via => syntax::via(p),
                    k => syntax::name_addr(p, k == Kind::Contact),
                };
                if v.contains(',') {
                    for p in syntax::split_commas(v).map_err(invalid)? {
                        let canon = one(p).map_err(invalid)?;
                        c.headers.push(lex::to_rsip(f.kind, f.name, canon));
                    }
                } else {
                    let canon = one(v).map_err(invalid)?;
                    c.headers.push(lex::to_rsip(f.kind, f.name, canon));
                }
                continue;
            }
            Kind::From | Kind::To => {
                let canon = syntax::name_addr(v, false).map_err(invalid)?;
                c.headers.push(lex::to_rsip(f.kind, f.name, canon));
                continue;
            }
            Kind::CallId => syntax::call_id(v).map_err(invalid)?,
            Kind::CSeq => {
                let (canon, m) = syntax::cseq(v).map_err(invalid)?;
                c.cseq_method = Some(m);
                c.headers.push(lex::to_rsip(f.kind, f.name, canon));
                continue;
            }
            Kind::MaxForwards => match syntax::digits_u32(v) {
                Ok(0..=255) => {}
                _ => return Err(invalid(())),
            },
            Kind::ContentLength => {
                c.content_length = Some(syntax::digits_u32(v).map_err(invalid)?);
            }
            Kind::Expires => {
                syntax::digits_u32(v).map_err(invalid)?;
            }
            Kind::ContentType => {
                let canon = syntax::media_type(v).map_err(invalid)?;
                c.headers.push(lex::to_rsip(f.kind, f.name, canon));
                continue;
            }
            _ => {}
        }
        c.headers
            .push(lex::to_rsip(f.kind, f.name, String::from(v)));
    }
    Ok(c)
}

/// Applies Content-Length to the bytes after the header block (octets beyond it are ignored;
/// a length beyond the datagram is an error, never a wait).
fn body(lx: &Lexed<'_>, content_length: Option<u32>) -> Result<Vec<u8>, String> {
    match content_length {
        None => Ok(lx.body.to_vec()),
        Some(n) => lx
            .body
            .get(..n as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "Content-Length larger than message".to_owned()),
    }
}

fn missing(seen: u32, required: &[Kind]) -> Result<(), String> {
    match required.iter().find(|&&k| seen & bit(k) == 0) {
        Some(&k) => Err(format!("Missing {} header", lex::canonical(k))),
        None => Ok(()),
    }
}

/// Methods rsip can represent, spelled exactly (SIP methods are case-sensitive).
fn rsip_method(m: &str) -> Option<rsip::Method> {
    use rsip::Method as M;
    Some(match m {
        "INVITE" => M::Invite,
        "ACK" => M::Ack,
        "BYE" => M::Bye,
        "CANCEL" => M::Cancel,
        "OPTIONS" => M::Options,
        "REGISTER" => M::Register,
        "INFO" => M::Info,
        "MESSAGE" => M::Message,
        "NOTIFY" => M::Notify,
        "PRACK" => M::PRack,
        "PUBLISH" => M::Publish,
        "REFER" => M::Refer,
        "SUBSCRIBE" => M::Subscribe,
        "UPDATE" => M::Update,
        _ => return None,
    })
}

fn parse_request(lx: &Lexed<'_>) -> Result<rsip::Request, WireError> {
    let rl = request_line(lx.start)?;
    let bad = |status: u16, reason: String| WireError::BadRequest {
        status,
        reason,
        reply: Box::new(reply_context(&lx.fields)),
    };
    let Some(rl) = rl else {
        return Err(bad(400, "Malformed Request-Line".into()));
    };
    if !rl.version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(bad(505, "Version Not Supported".into()));
    }
    if let Some(fault) = lx.fault {
        return Err(bad(400, fault.into()));
    }
    if !rl.method.bytes().all(syntax::is_token) {
        return Err(bad(400, "Malformed Request-Line".into()));
    }
    let uri = syntax::uri(rl.uri, syntax::UriIn::RequestLine)
        .map_err(|()| bad(400, "Invalid Request-URI".into()))?;
    let c = check_headers(&lx.fields).map_err(|r| bad(400, r))?;
    missing(
        c.seen,
        &[Kind::To, Kind::From, Kind::CSeq, Kind::CallId, Kind::Via],
    )
    .map_err(|r| bad(400, r))?;
    if c.cseq_method != Some(rl.method) {
        return Err(bad(400, "CSeq method does not match request method".into()));
    }
    let body = body(lx, c.content_length).map_err(|r| bad(400, r))?;
    let Some(method) = rsip_method(rl.method) else {
        return Err(bad(501, "Not Implemented".into()));
    };
    Ok(rsip::Request {
        method,
        uri: rsip_uri(uri),
        version: rsip::Version::V2,
        headers: c.headers.into(),
        body,
    })
}

fn parse_response(lx: &Lexed<'_>) -> Result<rsip::Response, String> {
    let line = std::str::from_utf8(lx.start).map_err(|_| "invalid status line encoding")?;
    let rest = line
        .get(..8)
        .filter(|v| v.eq_ignore_ascii_case("SIP/2.0 "))
        .map(|_| &line[8..])
        .ok_or("bad status line version")?;
    let code_s = rest.split(' ').next().unwrap_or("");
    if code_s.len() != 3 || !code_s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad status code {code_s:.12}"));
    }
    let code: u16 = code_s.parse().map_err(|_| "bad status code")?;
    if !(100..=699).contains(&code) {
        return Err(format!("status code {code} out of range"));
    }
    let reason = rest[3..].strip_prefix(' ').unwrap_or(&rest[3..]);
    if let Some(fault) = lx.fault {
        return Err(fault.into());
    }
    let c = check_headers(&lx.fields)?;
    missing(
        c.seen,
        &[Kind::Via, Kind::From, Kind::To, Kind::CallId, Kind::CSeq],
    )?;
    let body = body(lx, c.content_length)?;
    let status_code = match rsip::StatusCode::from(code) {
        rsip::StatusCode::Other(code, _) => rsip::StatusCode::Other(code, reason.into()),
        known => known,
    };
    Ok(rsip::Response {
        status_code,
        version: rsip::Version::V2,
        headers: c.headers.into(),
        body,
    })
}

fn rsip_uri(p: ParsedUri<'_>) -> rsip::Uri {
    use rsip::{Param, Scheme};
    match p {
        ParsedUri::Sip(u) => rsip::Uri {
            scheme: Some(if u.sips { Scheme::Sips } else { Scheme::Sip }),
            auth: u.user.map(|user| rsip::Auth {
                user: user.into(),
                password: u.password.map(Into::into),
            }),
            host_with_port: rsip::HostWithPort {
                host: syntax::rsip_host(u.host),
                port: u.port.map(Into::into),
            },
            params: u
                .params()
                .map(|(n, v)| {
                    // rsip rejects unknown transports/methods in typed params: keep them as Other
                    Param::try_from((n, v))
                        .unwrap_or_else(|_| Param::Other(n.into(), v.map(Into::into)))
                })
                .collect(),
            headers: Vec::new(),
        },
        // rsip has no opaque-URI form: the part after the colon goes in the host, which
        // serialize() writes back as `scheme:opaque`; the core answers 416 for these anyway
        ParsedUri::Other(scheme, rest) => rsip::Uri {
            scheme: Some(Scheme::Other(scheme.into())),
            auth: None,
            host_with_port: rsip::Host::Domain(rest.into()).into(),
            params: Vec::new(),
            headers: Vec::new(),
        },
    }
}

/// Parses a URI (SIP/SIPS checked in full) with a correct user/host split, for callers that
/// would otherwise hit rsip 0.4's URI parser (it treats `sip:j.user@host` as a host).
/// `?headers` are validated but dropped: rsip's `Uri` cannot hold them.
pub fn parse_uri(s: &str) -> Option<rsip::Uri> {
    syntax::uri(s.trim(), syntax::UriIn::Bracketed)
        .ok()
        .map(rsip_uri)
}

/// Result of looking for one message at the start of a TCP stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Leading CRLFs (keepalives, RFC 5626) of this many bytes: skip them.
    Keepalive(usize),
    /// A complete message of this many bytes (headers + Content-Length body).
    Message(usize),
    /// Need more bytes.
    Incomplete,
}

/// Framing failures on a stream: the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The message (or its header block) exceeds the size limit.
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    /// No usable Content-Length on a stream.
    #[error("missing or bad Content-Length on a stream transport")]
    BadContentLength,
}

/// Finds the first message in a TCP buffer by Content-Length (RFC 3261 §18.3).
pub fn frame(buf: &[u8], max_size: usize) -> Result<Frame, FrameError> {
    let ka = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if ka > 0 {
        return Ok(Frame::Keepalive(ka));
    }
    // end of the header block: CRLF CRLF, or LF LF from lax peers
    let mut end = None;
    let mut pos = 0;
    while let Some(i) = buf[pos..].iter().position(|&b| b == b'\n') {
        let l = &buf[pos..pos + i];
        pos += i + 1;
        if l.is_empty() || l == b"\r" {
            end = Some(pos);
            break;
        }
    }
    let Some(end) = end else {
        return if buf.len() > max_size {
            Err(FrameError::TooLarge(max_size))
        } else {
            Ok(Frame::Incomplete)
        };
    };
    if end > max_size {
        return Err(FrameError::TooLarge(max_size));
    }
    let mut cl: Option<usize> = None;
    // skip the start line; folded continuation lines never hold Content-Length
    for l in buf[..end].split(|&b| b == b'\n').skip(1) {
        if l.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = l[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"Content-Length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let v = std::str::from_utf8(l[colon + 1..].trim_ascii())
            .ok()
            .and_then(|v| syntax::digits_u32(v).ok())
            .ok_or(FrameError::BadContentLength)?;
        if cl.is_some_and(|c| c != v as usize) {
            return Err(FrameError::BadContentLength);
        }
        cl = Some(v as usize);
    }
    let total = end + cl.ok_or(FrameError::BadContentLength)?;
    if total > max_size {
        return Err(FrameError::TooLarge(max_size));
    }
    Ok(if buf.len() >= total {
        Frame::Message(total)
    } else {
        Frame::Incomplete
    })
}

/// Writes a message in wire form. rsip's Display loses binary bodies (lossy UTF-8), prints
/// reason phrases as Rust names ("ServiceUnavailable") and leaves Content-Length to the caller;
/// here Content-Length always equals the body length.
pub fn serialize(msg: &rsip::SipMessage) -> Vec<u8> {
    match msg {
        rsip::SipMessage::Request(r) => serialize_request(r),
        rsip::SipMessage::Response(r) => serialize_response(r),
    }
}

/// [`serialize`] for a request held on its own (no clone into a `SipMessage`).
pub fn serialize_request(r: &rsip::Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + r.body.len());
    let _ = write!(out, "{} ", r.method);
    write_uri(&mut out, &r.uri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    write_headers_and_body(&mut out, &r.headers, &r.body);
    out
}

/// [`serialize`] for a response held on its own.
pub fn serialize_response(r: &rsip::Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + r.body.len());
    let code = r.status_code.code();
    let reason = match &r.status_code {
        rsip::StatusCode::Other(_, reason) => reason.as_str(),
        _ => reason_phrase(code),
    };
    let _ = write!(out, "SIP/2.0 {code} {reason}\r\n");
    write_headers_and_body(&mut out, &r.headers, &r.body);
    out
}

fn write_headers_and_body(out: &mut Vec<u8>, headers: &rsip::Headers, body: &[u8]) {
    for h in headers.iter() {
        if !matches!(h, rsip::Header::ContentLength(_)) {
            let _ = write!(out, "{h}\r\n");
        }
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}

/// rsip's Uri Display writes IPv6 hosts without brackets and `scheme://` for non-SIP schemes;
/// this writes RFC 3261 form (and `scheme:opaque` for URIs [`parse`] built).
fn write_uri(out: &mut Vec<u8>, u: &rsip::Uri) {
    if let Some(s) = &u.scheme {
        let _ = write!(out, "{s}:");
    }
    if let Some(a) = &u.auth {
        let _ = write!(out, "{a}@");
    }
    match &u.host_with_port.host {
        rsip::Host::IpAddr(std::net::IpAddr::V6(ip)) => {
            let _ = write!(out, "[{ip}]");
        }
        h => {
            let _ = write!(out, "{h}");
        }
    }
    if let Some(p) = &u.host_with_port.port {
        let _ = write!(out, ":{p}");
    }
    for p in &u.params {
        let _ = write!(out, "{p}");
    }
}

/// Standard reason phrases (RFC 3261 §21 and later RFCs) for the codes rsip names.
fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        424 => "Bad Location Information",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        433 => "Anonymity Disallowed",
        436 => "Bad Identity-Info",
        437 => "Unsupported Certificate",
        438 => "Invalid Identity Header",
        439 => "First Hop Lacks Outbound Support",
        440 => "Max-Breadth Exceeded",
        469 => "Bad Info Package",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        _ => "Unknown",
    }
}
