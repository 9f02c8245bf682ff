//! Grammar checks (RFC 3261 §25) for the fields the wire layer must understand. Each checker
//! returns the value with canonical spacing (no LWS around `/ ; = :`) because rsip's typed
//! parsers only understand that form, and `Err(())` when the value is malformed; the caller
//! turns that into a reason naming the header.

use std::net::{IpAddr, Ipv6Addr};

/// A 256-entry membership table: alphanumerics plus `extra` (lookups beat `contains` scans
/// on the hot path).
const fn class(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

static TOKEN: [bool; 256] = class(b"-.!%*_+`'~");
/// `word` from the Call-ID grammar.
static WORD: [bool; 256] = class(b"-.!%*_+`'~()<>:\\\"/[]?{}");
/// URI user: unreserved / user-unreserved.
static USER: [bool; 256] = class(b"-_.!~*'()&=+$,;?/");
static PASSWORD: [bool; 256] = class(b"-_.!~*'()&=+$,");
/// URI paramchar: param-unreserved / unreserved.
static PARAM: [bool; 256] = class(b"-_.!~*'()[]/:&+$");
/// URI headers: hnv-unreserved / unreserved, plus the `=` and `&` separators.
static HEADER: [bool; 256] = class(b"-_.!~*'()[]/?:+$=&");

/// RFC 3261 `token` characters.
pub(super) fn is_token(c: u8) -> bool {
    TOKEN[c as usize]
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// A byte cursor over one header value.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Skips whitespace; true when some was skipped.
    fn sws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn token(&mut self) -> Result<&'a str, ()> {
        let t = self.take_while(is_token);
        if t.is_empty() {
            Err(())
        } else {
            Ok(t)
        }
    }

    /// A quoted-string including its quotes; quoted-pairs are skipped over.
    fn quoted(&mut self) -> Result<&'a str, ()> {
        let b = self.s.as_bytes();
        let start = self.pos;
        if !self.eat(b'"') {
            return Err(());
        }
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(&self.s[start..self.pos]);
                }
                b'\\' => {
                    // quoted-pair excludes CR and LF, which cannot occur here anyway
                    if self.pos + 1 >= b.len() {
                        return Err(());
                    }
                    self.pos += 2;
                }
                _ => self.pos += 1,
            }
        }
        Err(())
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
}

/// Parses `*( SEMI generic-param )` to the end of the cursor, appending `;name[=value]`.
fn params(c: &mut Cursor<'_>, out: &mut String) -> Result<(), ()> {
    loop {
        c.sws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b';') {
            return Err(());
        }
        c.sws();
        let name = c.token()?;
        out.push(';');
        out.push_str(name);
        c.sws();
        if c.eat(b'=') {
            c.sws();
            let value = if c.peek() == Some(b'"') {
                c.quoted()?
            } else {
                // token / host; ':' and brackets admit IPv6 `received` values
                let v = c.take_while(|b| is_token(b) || b == b':' || b == b'[' || b == b']');
                if v.is_empty() {
                    return Err(());
                }
                v
            };
            out.push('=');
            out.push_str(value);
        }
    }
}

/// Host part of a URI or Via sent-by: hostname, IPv4 or bracketed IPv6.
fn host(c: &mut Cursor<'_>) -> Result<(), ()> {
    if c.eat(b'[') {
        let inner = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !c.eat(b']') || inner.parse::<Ipv6Addr>().is_err() {
            return Err(());
        }
        return Ok(());
    }
    let h = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if h.is_empty() {
        Err(())
    } else {
        Ok(())
    }
}

fn port(s: &str) -> Result<u16, ()> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    s.parse::<u16>().map_err(|_| ())
}

/// Checks a `Via` value (one via-parm) and returns it canonically spaced.
pub(super) fn via(v: &str) -> Result<String, ()> {
    let mut c = Cursor::new(v);
    let mut out = String::with_capacity(v.len());
    c.sws();
    let proto = c.token()?;
    c.sws();
    if !c.eat(b'/') {
        return Err(());
    }
    c.sws();
    let version = c.token()?;
    c.sws();
    if !c.eat(b'/') {
        return Err(());
    }
    c.sws();
    let transport = c.token()?;
    if !c.sws() {
        return Err(());
    }
    let h_start = c.pos;
    host(&mut c)?;
    let h = &v[h_start..c.pos];
    out.push_str(proto);
    out.push('/');
    out.push_str(version);
    out.push('/');
    out.push_str(transport);
    out.push(' ');
    out.push_str(h);
    c.sws();
    if c.eat(b':') {
        c.sws();
        let p = c.take_while(|b| b.is_ascii_digit());
        port(p)?;
        out.push(':');
        out.push_str(p);
    }
    params(&mut c, &mut out)?;
    Ok(out)
}

/// Where a URI appears: the Request-URI may not carry `?headers` (RFC 3261 §19.1.1).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum UriIn {
    RequestLine,
    Bracketed,
    Bare,
}

/// A SIP/SIPS URI split into its (still escaped) parts.
pub(super) struct SipUri<'a> {
    pub sips: bool,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<u16>,
    /// `;name[=value]…` as received (validated); see [`SipUri::params`].
    pub params: &'a str,
}

impl<'a> SipUri<'a> {
    /// The URI parameters as `(name, value)` pairs.
    pub fn params(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        let p: &'a str = self.params;
        p.split(';').skip(1).map(|one| match one.find('=') {
            Some(i) => (&one[..i], Some(&one[i + 1..])),
            None => (one, None),
        })
    }
}

/// A validated URI of any scheme.
pub(super) enum ParsedUri<'a> {
    Sip(SipUri<'a>),
    /// Non-SIP scheme: scheme and the opaque rest after the colon.
    Other(&'a str, &'a str),
}

/// All bytes in `class`, or `%HH` escapes.
fn all(s: &str, class: &[bool; 256]) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if class[c as usize] {
            i += 1;
        } else if c == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            i += 3;
        } else {
            return false;
        }
    }
    true
}

/// Validates a URI. SIP/SIPS URIs are checked against RFC 3261 §25.1; other schemes only for
/// a well-formed scheme and no whitespace or delimiters, since the core answers 416 for them.
pub(super) fn uri(s: &str, at: UriIn) -> Result<ParsedUri<'_>, ()> {
    let colon = s.find(':').ok_or(())?;
    let scheme = &s[..colon];
    let rest = &s[colon + 1..];
    let sb = scheme.as_bytes();
    if sb.is_empty()
        || !sb[0].is_ascii_alphabetic()
        || !sb
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    {
        return Err(());
    }
    let sips = scheme.eq_ignore_ascii_case("sips");
    if !sips && !scheme.eq_ignore_ascii_case("sip") {
        if rest.is_empty()
            || !rest
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>\"".contains(&b))
        {
            return Err(());
        }
        return Ok(ParsedUri::Other(scheme, rest));
    }
    // userinfo cannot hold an unescaped '@', so the first one ends it
    let (userinfo, hostpart) = match rest.find('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(ui) => {
            let (u, p) = match ui.find(':') {
                Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                None => (ui, None),
            };
            if u.is_empty() || !all(u, &USER) {
                return Err(());
            }
            if let Some(p) = p {
                if !all(p, &PASSWORD) {
                    return Err(());
                }
            }
            (Some(u), p)
        }
        None => (None, None),
    };
    let mut c = Cursor::new(hostpart);
    host(&mut c)?;
    let host_s = &hostpart[..c.pos];
    let mut port_v = None;
    if c.eat(b':') {
        port_v = Some(port(c.take_while(|b| b.is_ascii_digit()))?);
    }
    let tail = c.rest();
    let (param_s, headers) = match tail.find('?') {
        Some(i) => (&tail[..i], Some(&tail[i + 1..])),
        None => (tail, None),
    };
    if !param_s.is_empty() {
        // validated without collecting: most callers only need the verdict
        let p = param_s.strip_prefix(';').ok_or(())?;
        for one in p.split(';') {
            let (name, value) = match one.find('=') {
                Some(i) => (&one[..i], Some(&one[i + 1..])),
                None => (one, None),
            };
            if name.is_empty() || !all(name, &PARAM) || !value.is_none_or(|v| all(v, &PARAM)) {
                return Err(());
            }
        }
    }
    if let Some(h) = headers {
        if at == UriIn::RequestLine || h.is_empty() {
            return Err(());
        }
        if !all(h, &HEADER) {
            return Err(());
        }
    }
    Ok(ParsedUri::Sip(SipUri {
        sips,
        user,
        password,
        host: host_s,
        port: port_v,
        params: param_s,
    }))
}

/// Checks a name-addr / addr-spec header value (From, To, Contact, Route, Record-Route …) with
/// its parameters and returns it canonically spaced. `star` admits `Contact: *`.
pub(super) fn name_addr(v: &str, star: bool) -> Result<String, ()> {
    let mut c = Cursor::new(v);
    let mut out = String::with_capacity(v.len());
    c.sws();
    if star && v.trim() == "*" {
        return Ok("*".into());
    }
    let bracketed = match c.peek() {
        None => return Err(()),
        Some(b'"') => {
            let d = c.quoted()?;
            out.push_str(d);
            out.push(' ');
            c.sws();
            if !c.eat(b'<') {
                return Err(());
            }
            true
        }
        Some(b'<') => {
            c.pos += 1;
            true
        }
        Some(_) => match c.rest().find('<') {
            Some(i) => {
                // display-name = *(token LWS): an unquoted comma or quote is malformed
                let d = c.rest()[..i].trim_end_matches([' ', '\t']);
                if !d.bytes().all(|b| is_token(b) || is_ws(b)) {
                    return Err(());
                }
                out.push_str(d);
                out.push(' ');
                c.pos += i + 1;
                true
            }
            None => false,
        },
    };
    if bracketed {
        let inner_len = c.rest().find('>').ok_or(())?;
        // spaces just inside the brackets are tolerated (RFC 4475 §3.1.2.14 allows recovery)
        let inner = c.rest()[..inner_len].trim_matches([' ', '\t']);
        uri(inner, UriIn::Bracketed)?;
        out.push('<');
        out.push_str(inner);
        out.push('>');
        c.pos += inner_len + 1;
    } else {
        let u = c.take_while(|b| b != b';' && !is_ws(b));
        // a bare addr-spec with ',' or '?' must have been bracketed (RFC 3261 §20)
        if u.contains([',', '?']) {
            return Err(());
        }
        uri(u, UriIn::Bare)?;
        out.push_str(u);
    }
    params(&mut c, &mut out)?;
    Ok(out)
}

/// Checks `Call-ID: word ["@" word]`.
pub(super) fn call_id(v: &str) -> Result<(), ()> {
    let (a, b) = match v.find('@') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| WORD[b as usize]);
    if word(a) && b.is_none_or(word) {
        Ok(())
    } else {
        Err(())
    }
}

/// Parses `1*DIGIT` into a u32 (leading zeros allowed, overflow is an error).
pub(super) fn digits_u32(s: &str) -> Result<u32, ()> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let t = s.trim_start_matches('0');
    if t.len() > 10 {
        return Err(());
    }
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<u32>().map_err(|_| ())
}

/// Checks `CSeq: 1*DIGIT LWS Method`; returns the canonical value and the method. The number
/// may use all 32 bits: RFC 3261 tells senders to stay below 2^31, but only 2^32 and up is
/// malformed (RFC 4475 §3.1.2.4).
pub(super) fn cseq(v: &str) -> Result<(String, &str), ()> {
    let mut c = Cursor::new(v);
    c.sws();
    let n = c.take_while(|b| b.is_ascii_digit());
    digits_u32(n)?;
    if !c.sws() {
        return Err(());
    }
    let m = c.token()?;
    c.sws();
    if !c.at_end() {
        return Err(());
    }
    let mut out = String::with_capacity(n.len() + 1 + m.len());
    out.push_str(n);
    out.push(' ');
    out.push_str(m);
    Ok((out, m))
}

/// Checks `Content-Type: type "/" subtype *(SEMI m-parameter)`.
pub(super) fn media_type(v: &str) -> Result<String, ()> {
    let mut c = Cursor::new(v);
    let mut out = String::with_capacity(v.len());
    c.sws();
    out.push_str(c.token()?);
    c.sws();
    if !c.eat(b'/') {
        return Err(());
    }
    c.sws();
    out.push('/');
    out.push_str(c.token()?);
    params(&mut c, &mut out)?;
    Ok(out)
}

/// Splits a header value at commas outside quotes and angle brackets. Empty elements are an
/// error (`Via: a;;,;,,` in RFC 4475 §3.1.2.1).
pub(super) fn split_commas(v: &str) -> Result<Vec<&str>, ()> {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let (mut in_q, mut esc, mut angle, mut start) = (false, false, false, 0);
    for (i, &c) in b.iter().enumerate() {
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
            b',' if !angle => {
                out.push(v[start..i].trim_matches([' ', '\t']));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim_matches([' ', '\t']));
    if out.iter().any(|p| p.is_empty()) {
        return Err(());
    }
    Ok(out)
}

/// Classifies a URI host string for rsip: IPv4 literals become `IpAddr`; IPv6 stays a bracketed
/// domain so rsip's Display (which drops brackets) still writes a usable URI.
pub(super) fn rsip_host(h: &str) -> rsip::Host {
    if !h.starts_with('[') {
        if let Ok(ip) = h.parse::<IpAddr>() {
            return rsip::Host::IpAddr(ip);
        }
    }
    rsip::Host::Domain(h.into())
}
