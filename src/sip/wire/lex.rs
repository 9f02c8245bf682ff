//! Light tokenisation: start line, unfolded header fields with canonical names, body.

use std::borrow::Cow;

use rsip::headers::{self as h, UntypedHeader};

use super::syntax::is_token;

/// Header fields the wire layer knows by name: rsip's own set plus the compact-form targets it
/// lacks. Order is irrelevant; lookup is case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Accept,
    AcceptEncoding,
    AcceptLanguage,
    AlertInfo,
    Allow,
    AuthenticationInfo,
    Authorization,
    CSeq,
    CallId,
    CallInfo,
    Contact,
    ContentDisposition,
    ContentEncoding,
    ContentLanguage,
    ContentLength,
    ContentType,
    Date,
    ErrorInfo,
    Event,
    Expires,
    From,
    InReplyTo,
    MaxForwards,
    MimeVersion,
    MinExpires,
    Organization,
    Priority,
    ProxyAuthenticate,
    ProxyAuthorization,
    ProxyRequire,
    RecordRoute,
    ReplyTo,
    Require,
    RetryAfter,
    Route,
    Server,
    Subject,
    SubscriptionState,
    Supported,
    Timestamp,
    To,
    Unsupported,
    UserAgent,
    Via,
    Warning,
    WwwAuthenticate,
    /// Known name rsip has no variant for (Refer-To, Identity …): kept as `Other` with the
    /// canonical name.
    Named(&'static str),
    /// Unknown extension header: kept as received.
    Other,
}

const NAMES: &[(&str, Kind)] = &[
    ("Via", Kind::Via),
    ("From", Kind::From),
    ("To", Kind::To),
    ("Call-ID", Kind::CallId),
    ("CSeq", Kind::CSeq),
    ("Contact", Kind::Contact),
    ("Max-Forwards", Kind::MaxForwards),
    ("Content-Length", Kind::ContentLength),
    ("Content-Type", Kind::ContentType),
    ("Route", Kind::Route),
    ("Record-Route", Kind::RecordRoute),
    ("Allow", Kind::Allow),
    ("Supported", Kind::Supported),
    ("User-Agent", Kind::UserAgent),
    ("Expires", Kind::Expires),
    ("Accept", Kind::Accept),
    ("Accept-Encoding", Kind::AcceptEncoding),
    ("Accept-Language", Kind::AcceptLanguage),
    ("Alert-Info", Kind::AlertInfo),
    ("Authentication-Info", Kind::AuthenticationInfo),
    ("Authorization", Kind::Authorization),
    ("Call-Info", Kind::CallInfo),
    ("Content-Disposition", Kind::ContentDisposition),
    ("Content-Encoding", Kind::ContentEncoding),
    ("Content-Language", Kind::ContentLanguage),
    ("Date", Kind::Date),
    ("Error-Info", Kind::ErrorInfo),
    ("Event", Kind::Event),
    ("In-Reply-To", Kind::InReplyTo),
    ("MIME-Version", Kind::MimeVersion),
    ("Min-Expires", Kind::MinExpires),
    ("Organization", Kind::Organization),
    ("Priority", Kind::Priority),
    ("Proxy-Authenticate", Kind::ProxyAuthenticate),
    ("Proxy-Authorization", Kind::ProxyAuthorization),
    ("Proxy-Require", Kind::ProxyRequire),
    ("Reply-To", Kind::ReplyTo),
    ("Require", Kind::Require),
    ("Retry-After", Kind::RetryAfter),
    ("Server", Kind::Server),
    ("Subject", Kind::Subject),
    ("Subscription-State", Kind::SubscriptionState),
    ("Timestamp", Kind::Timestamp),
    ("Unsupported", Kind::Unsupported),
    ("Warning", Kind::Warning),
    ("WWW-Authenticate", Kind::WwwAuthenticate),
    ("Refer-To", Kind::Named("Refer-To")),
    ("Referred-By", Kind::Named("Referred-By")),
    ("Session-Expires", Kind::Named("Session-Expires")),
    ("Allow-Events", Kind::Named("Allow-Events")),
    ("Identity", Kind::Named("Identity")),
    ("Accept-Contact", Kind::Named("Accept-Contact")),
    ("Reject-Contact", Kind::Named("Reject-Contact")),
    ("Request-Disposition", Kind::Named("Request-Disposition")),
];

/// Compact forms (RFC 3261 §7.3.3 and the extension RFCs listed at IANA).
fn compact(c: u8) -> Option<Kind> {
    Some(match c.to_ascii_lowercase() {
        b'i' => Kind::CallId,
        b'm' => Kind::Contact,
        b'e' => Kind::ContentEncoding,
        b'l' => Kind::ContentLength,
        b'c' => Kind::ContentType,
        b'f' => Kind::From,
        b's' => Kind::Subject,
        b'k' => Kind::Supported,
        b't' => Kind::To,
        b'v' => Kind::Via,
        b'o' => Kind::Event,
        b'r' => Kind::Named("Refer-To"),
        b'b' => Kind::Named("Referred-By"),
        b'x' => Kind::Named("Session-Expires"),
        b'u' => Kind::Named("Allow-Events"),
        b'y' => Kind::Named("Identity"),
        b'a' => Kind::Named("Accept-Contact"),
        b'j' => Kind::Named("Reject-Contact"),
        b'd' => Kind::Named("Request-Disposition"),
        _ => return None,
    })
}

/// Maps a received header name (any case, compact or long) to its kind.
pub(super) fn kind_of(name: &str) -> Kind {
    let b = name.as_bytes();
    if b.len() == 1 {
        return compact(b[0]).unwrap_or(Kind::Other);
    }
    // NAMES entries are few per (length, first letter); filtering on both before the
    // case-insensitive compare keeps this off the profile
    let first = b.first().map_or(0, u8::to_ascii_lowercase);
    NAMES
        .iter()
        .find(|(n, _)| {
            n.len() == b.len()
                && n.as_bytes()[0].to_ascii_lowercase() == first
                && n.eq_ignore_ascii_case(name)
        })
        .map_or(Kind::Other, |&(_, k)| k)
}

/// Canonical name used in reasons ("Missing Call-ID header").
pub(super) fn canonical(kind: Kind) -> &'static str {
    if let Kind::Named(n) = kind {
        return n;
    }
    NAMES
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("Unknown", |&(n, _)| n)
}

/// Builds the rsip header for one (already checked and normalised) value.
pub(super) fn to_rsip(kind: Kind, name: &str, v: String) -> rsip::Header {
    use rsip::Header as H;
    match kind {
        Kind::Accept => H::Accept(h::Accept::new(v)),
        Kind::AcceptEncoding => H::AcceptEncoding(h::AcceptEncoding::new(v)),
        Kind::AcceptLanguage => H::AcceptLanguage(h::AcceptLanguage::new(v)),
        Kind::AlertInfo => H::AlertInfo(h::AlertInfo::new(v)),
        Kind::Allow => H::Allow(h::Allow::new(v)),
        Kind::AuthenticationInfo => H::AuthenticationInfo(h::AuthenticationInfo::new(v)),
        Kind::Authorization => H::Authorization(h::Authorization::new(v)),
        Kind::CSeq => H::CSeq(h::CSeq::new(v)),
        Kind::CallId => H::CallId(h::CallId::new(v)),
        Kind::CallInfo => H::CallInfo(h::CallInfo::new(v)),
        Kind::Contact => H::Contact(h::Contact::new(v)),
        Kind::ContentDisposition => H::ContentDisposition(h::ContentDisposition::new(v)),
        Kind::ContentEncoding => H::ContentEncoding(h::ContentEncoding::new(v)),
        Kind::ContentLanguage => H::ContentLanguage(h::ContentLanguage::new(v)),
        Kind::ContentLength => H::ContentLength(h::ContentLength::new(v)),
        Kind::ContentType => H::ContentType(h::ContentType::new(v)),
        Kind::Date => H::Date(h::Date::new(v)),
        Kind::ErrorInfo => H::ErrorInfo(h::ErrorInfo::new(v)),
        Kind::Event => H::Event(h::Event::new(v)),
        Kind::Expires => H::Expires(h::Expires::new(v)),
        Kind::From => H::From(h::From::new(v)),
        Kind::InReplyTo => H::InReplyTo(h::InReplyTo::new(v)),
        Kind::MaxForwards => H::MaxForwards(h::MaxForwards::new(v)),
        Kind::MimeVersion => H::MimeVersion(h::MimeVersion::new(v)),
        Kind::MinExpires => H::MinExpires(h::MinExpires::new(v)),
        Kind::Organization => H::Organization(h::Organization::new(v)),
        Kind::Priority => H::Priority(h::Priority::new(v)),
        Kind::ProxyAuthenticate => H::ProxyAuthenticate(h::ProxyAuthenticate::new(v)),
        Kind::ProxyAuthorization => H::ProxyAuthorization(h::ProxyAuthorization::new(v)),
        Kind::ProxyRequire => H::ProxyRequire(h::ProxyRequire::new(v)),
        Kind::RecordRoute => H::RecordRoute(h::RecordRoute::new(v)),
        Kind::ReplyTo => H::ReplyTo(h::ReplyTo::new(v)),
        Kind::Require => H::Require(h::Require::new(v)),
        Kind::RetryAfter => H::RetryAfter(h::RetryAfter::new(v)),
        Kind::Route => H::Route(h::Route::new(v)),
        Kind::Server => H::Server(h::Server::new(v)),
        Kind::Subject => H::Subject(h::Subject::new(v)),
        Kind::SubscriptionState => H::SubscriptionState(h::SubscriptionState::new(v)),
        Kind::Supported => H::Supported(h::Supported::new(v)),
        Kind::Timestamp => H::Timestamp(h::Timestamp::new(v)),
        Kind::To => H::To(h::To::new(v)),
        Kind::Unsupported => H::Unsupported(h::Unsupported::new(v)),
        Kind::UserAgent => H::UserAgent(h::UserAgent::new(v)),
        Kind::Via => H::Via(h::Via::new(v)),
        Kind::Warning => H::Warning(h::Warning::new(v)),
        Kind::WwwAuthenticate => H::WwwAuthenticate(h::WwwAuthenticate::new(v)),
        Kind::Named(n) => H::Other(n.into(), v),
        Kind::Other => H::Other(name.into(), v),
    }
}

/// One header field: name as received, kind, unfolded and trimmed value.
pub(super) struct Field<'a> {
    pub name: &'a str,
    pub kind: Kind,
    pub value: Cow<'a, str>,
}

/// A message cut into its parts. Lexical faults are recorded, not returned, so the fields
/// that did lex can still fill a reply context.
pub(super) struct Lexed<'a> {
    pub start: &'a [u8],
    pub fields: Vec<Field<'a>>,
    /// Bytes after the empty line (all of them; Content-Length is applied later).
    pub body: &'a [u8],
    /// First lexical fault, as a reason phrase.
    pub fault: Option<&'static str>,
}

/// Next line (without its CRLF or bare LF) and the offset after it.
fn line(buf: &[u8], from: usize) -> (&[u8], usize) {
    match buf[from..].iter().position(|&b| b == b'\n') {
        Some(i) => {
            let l = &buf[from..from + i];
            (l.strip_suffix(b"\r").unwrap_or(l), from + i + 1)
        }
        None => (&buf[from..], buf.len()),
    }
}

/// Splits `buf` into start line, header fields and body.
pub(super) fn lex(buf: &[u8]) -> Lexed<'_> {
    // RFC 3261 §7.5: CRLFs before the start line are ignored
    let mut pos = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let (start, next) = line(buf, pos);
    pos = next;
    // one UTF-8 check for the whole message; invalid bytes are only allowed in the body
    let text = match std::str::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
    };
    let mut fields: Vec<Field<'_>> = Vec::with_capacity(16);
    let mut fault = None;
    let mut body: &[u8] = &[];
    let mut ended = false;
    while pos < text.len() {
        let rest = &text[pos..];
        let l = match rest.find('\n') {
            Some(i) => {
                pos += i + 1;
                &rest[..i]
            }
            None if text.len() < buf.len() => break,
            None => {
                pos = text.len();
                rest
            }
        };
        let l = l.strip_suffix('\r').unwrap_or(l);
        if l.is_empty() {
            body = &buf[pos..];
            ended = true;
            break;
        }
        if l.starts_with([' ', '\t']) {
            // continuation: LWS folds into a single space
            let cont = l.trim_matches([' ', '\t']);
            match fields.last_mut() {
                Some(f) if !cont.is_empty() => {
                    let v = f.value.to_mut();
                    if !v.is_empty() {
                        v.push(' ');
                    }
                    v.push_str(cont);
                }
                Some(_) => {}
                None => fault = fault.or(Some("Malformed header line")),
            }
            continue;
        }
        let Some(colon) = l.find(':') else {
            fault = fault.or(Some("Malformed header line"));
            continue;
        };
        // l does not start with whitespace, so trimming only drops the LWS allowed before ':'
        let name = l[..colon].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token) {
            fault = fault.or(Some("Malformed header line"));
            continue;
        }
        fields.push(Field {
            name,
            kind: kind_of(name),
            value: Cow::Borrowed(l[colon + 1..].trim_matches([' ', '\t'])),
        });
    }
    if !ended && text.len() < buf.len() {
        fault = fault.or(Some("Invalid header encoding"));
    }
    Lexed {
        start,
        fields,
        body,
        fault,
    }
}
