//! SDP text ⇄ [`SessionDescription`]: a tolerant reader and a writer of valid SDP.
//!
//! The reader takes CRLF or LF, stray spaces, lines and attributes it does not know, and
//! attributes it cannot read (kept as plain [`Attribute`]s). It refuses only what leaves nothing
//! to negotiate with: no `v=0` first, an `m=` line without media/port/protocol, a port that is
//! not one, a `c=` or `o=` line it cannot read. `i=`, `u=`, `e=`, `p=`, `r=`, `z=` and `k=`
//! lines are read past, and a `c=` multicast TTL is dropped.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{
    Attribute, Bandwidth, Crypto, Direction, Fmtp, MediaDescription, Origin, Rtcp, RtpMap,
    SdpError, SessionDescription,
};

impl SessionDescription {
    /// Reads an SDP body.
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut lines = text.split('\n').map(str::trim).filter(|l| !l.is_empty());
        match lines.next().and_then(|l| l.strip_prefix("v=")) {
            None => return Err(SdpError::NoVersion),
            Some("0") => {}
            Some(v) => return Err(SdpError::BadVersion(v.into())),
        }
        let mut sd = SessionDescription {
            origin: Origin::default(),
            session_name: String::new(),
            connection: None,
            bandwidths: Vec::new(),
            timing: String::new(),
            direction: None,
            attributes: Vec::new(),
            media: Vec::new(),
        };
        // Each stream's own direction attribute; resolved against the session's at the end.
        let mut media_dirs: Vec<Option<Direction>> = Vec::new();
        for line in lines {
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match (kind, sd.media.last_mut()) {
                ("m", _) => {
                    sd.media.push(parse_media(value)?);
                    media_dirs.push(None);
                }
                ("o", None) => sd.origin = parse_origin(value)?,
                ("s", None) => sd.session_name = value.into(),
                ("t", None) if sd.timing.is_empty() => sd.timing = value.into(),
                ("c", None) => sd.connection = Some(parse_connection(value)?),
                ("c", Some(m)) => m.connection = Some(parse_connection(value)?),
                ("b", None) => sd.bandwidths.extend(parse_bandwidth(value)),
                ("b", Some(m)) => m.bandwidths.extend(parse_bandwidth(value)),
                ("a", None) => {
                    let attr = parse_attribute(value);
                    match Direction::from_attribute(&attr.name) {
                        Some(d) => sd.direction = Some(d),
                        None => sd.attributes.push(attr),
                    }
                }
                ("a", Some(m)) => {
                    if let Some(d) = media_attribute(m, parse_attribute(value)) {
                        if let Some(slot) = media_dirs.last_mut() {
                            *slot = Some(d);
                        }
                    }
                }
                _ => {} // Lines we do not use, or session lines out of place.
            }
        }
        if sd.timing.is_empty() {
            sd.timing = "0 0".into();
        }
        let default = sd.direction.unwrap_or_default();
        for (m, d) in sd.media.iter_mut().zip(media_dirs) {
            m.direction = d.unwrap_or(default);
        }
        Ok(sd)
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

/// `username sess-id sess-version IN IP4|IP6 address`.
fn parse_origin(value: &str) -> Result<Origin, SdpError> {
    let bad = || SdpError::BadOrigin(value.into());
    let f: Vec<&str> = value.split_whitespace().collect();
    let [username, id, version, _net, _addr_type, address] = f[..] else {
        return Err(bad());
    };
    Ok(Origin {
        username: username.into(),
        session_id: id.parse().map_err(|_| bad())?,
        session_version: version.parse().map_err(|_| bad())?,
        address: address.into(),
    })
}

/// `IN IP4|IP6 address[/ttl[/count]]`; only the address is kept.
fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut f = value.split_whitespace();
    let addr = f.nth(2).and_then(|a| a.split('/').next());
    addr.and_then(|a| a.parse().ok())
        .ok_or_else(|| SdpError::BadConnection(value.into()))
}

/// `bwtype:value`; unreadable ones are dropped, they change nothing we do.
fn parse_bandwidth(value: &str) -> Option<Bandwidth> {
    let (kind, v) = value.split_once(':')?;
    Some(Bandwidth {
        kind: kind.trim().into(),
        value: v.trim().parse().ok()?,
    })
}

/// `media port[/count] proto fmt…`.
fn parse_media(value: &str) -> Result<MediaDescription, SdpError> {
    let mut f = value.split_whitespace();
    let (Some(media), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
        return Err(SdpError::BadMedia(value.into()));
    };
    let bad_port = || SdpError::BadPort(value.into());
    let (port, count) = match port.split_once('/') {
        Some((p, c)) => (p, Some(c.parse().map_err(|_| bad_port())?)),
        None => (port, None),
    };
    let mut m = MediaDescription::new(media, port.parse().map_err(|_| bad_port())?, proto);
    m.port_count = count;
    m.formats = f.map(String::from).collect();
    Ok(m)
}

/// `name[:value]`.
fn parse_attribute(value: &str) -> Attribute {
    match value.split_once(':') {
        Some((name, v)) => Attribute {
            name: name.into(),
            value: Some(v.into()),
        },
        None => Attribute {
            name: value.into(),
            value: None,
        },
    }
}

/// Files a media-level attribute where it belongs; a direction is returned instead. Attributes
/// we know but cannot read are kept as written.
fn media_attribute(m: &mut MediaDescription, attr: Attribute) -> Option<Direction> {
    if let Some(d) = Direction::from_attribute(&attr.name) {
        return Some(d);
    }
    let v = attr.value.as_deref().unwrap_or_default();
    let filed = match attr.name.as_str() {
        "rtpmap" => parse_rtpmap(v).map(|r| m.rtpmaps.push(r)),
        "fmtp" => {
            let (format, params) = v.split_once(' ').unwrap_or((v, ""));
            m.fmtp.push(Fmtp {
                format: format.into(),
                params: params.trim().into(),
            });
            Some(())
        }
        "ptime" => parse_ms(v).map(|p| m.ptime = Some(p)),
        "maxptime" => parse_ms(v).map(|p| m.maxptime = Some(p)),
        "rtcp" => parse_rtcp(v).map(|r| m.rtcp = Some(r)),
        "rtcp-mux" => {
            m.rtcp_mux = true;
            Some(())
        }
        "crypto" => parse_crypto(v).map(|c| m.crypto.push(c)),
        _ => None,
    };
    if filed.is_none() {
        m.attributes.push(attr);
    }
    None
}

/// `pt encoding/rate[/channels]`.
fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, enc) = v.split_once(' ')?;
    let mut parts = enc.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty())?;
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RtpMap {
        pt: pt.trim().parse().ok()?,
        encoding: encoding.into(),
        clock_rate,
        channels,
    })
}

/// `tag suite key-params [session-params…]` (RFC 4568 §9.1); the tag is 1–9 digits.
fn parse_crypto(v: &str) -> Option<Crypto> {
    let mut f = v.split_whitespace();
    let tag = f
        .next()
        .filter(|t| (1..=9).contains(&t.len()))?
        .parse()
        .ok()?;
    let suite = f.next()?.into();
    let key_params = f.next()?.into();
    Some(Crypto {
        tag,
        suite,
        key_params,
        session_params: f.map(String::from).collect(),
    })
}

/// Milliseconds, tolerating a fraction some send (`20.0`), which is dropped.
fn parse_ms(v: &str) -> Option<u32> {
    let v = v.trim();
    v.split('.').next()?.parse().ok()
}

/// `port [IN IP4|IP6 address]` (RFC 3605).
fn parse_rtcp(v: &str) -> Option<Rtcp> {
    let (port, rest) = match v.trim().split_once(' ') {
        Some((p, rest)) => (p, Some(rest)),
        None => (v.trim(), None),
    };
    let addr = match rest {
        Some(r) => Some(parse_connection(r).ok()?),
        None => None,
    };
    Some(Rtcp {
        port: port.parse().ok()?,
        addr,
    })
}

/// Writes one line with its CRLF.
fn put(f: &mut fmt::Formatter<'_>, line: fmt::Arguments<'_>) -> fmt::Result {
    f.write_fmt(line)?;
    f.write_str("\r\n")
}

/// `IP4` or `IP6` for an address as written in `o=` or `c=`.
fn addr_type(addr: &str) -> &'static str {
    if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        "IP6"
    } else {
        "IP4"
    }
}

fn put_connection(f: &mut fmt::Formatter<'_>, addr: IpAddr) -> fmt::Result {
    let t = if addr.is_ipv4() { "IP4" } else { "IP6" };
    put(f, format_args!("c=IN {t} {addr}"))
}

impl fmt::Display for SessionDescription {
    /// SDP text in the order RFC 4566 §5 sets, each line ending in CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        put(f, format_args!("v=0"))?;
        put(
            f,
            format_args!(
                "o={} {} {} IN {} {}",
                o.username,
                o.session_id,
                o.session_version,
                addr_type(&o.address),
                o.address
            ),
        )?;
        // An empty name is written as one space, as RFC 4566 §5.3 suggests.
        let name = if self.session_name.is_empty() {
            " "
        } else {
            &self.session_name
        };
        put(f, format_args!("s={name}"))?;
        if let Some(c) = self.connection {
            put_connection(f, c)?;
        }
        for b in &self.bandwidths {
            put(f, format_args!("b={}:{}", b.kind, b.value))?;
        }
        put(f, format_args!("t={}", self.timing))?;
        if let Some(d) = self.direction {
            put(f, format_args!("a={d}"))?;
        }
        for a in &self.attributes {
            put(f, format_args!("a={a}"))?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for MediaDescription {
    /// The `m=` section, each line ending in CRLF; the direction is always written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt in &self.formats {
            write!(f, " {fmt}")?;
        }
        f.write_str("\r\n")?;
        if let Some(c) = self.connection {
            put_connection(f, c)?;
        }
        for b in &self.bandwidths {
            put(f, format_args!("b={}:{}", b.kind, b.value))?;
        }
        for r in &self.rtpmaps {
            put(f, format_args!("a=rtpmap:{} {r}", r.pt))?;
        }
        for p in &self.fmtp {
            put(f, format_args!("a=fmtp:{} {}", p.format, p.params))?;
        }
        if let Some(p) = self.ptime {
            put(f, format_args!("a=ptime:{p}"))?;
        }
        if let Some(p) = self.maxptime {
            put(f, format_args!("a=maxptime:{p}"))?;
        }
        match self.rtcp {
            Some(Rtcp {
                port,
                addr: Some(a),
            }) => {
                let t = if a.is_ipv4() { "IP4" } else { "IP6" };
                put(f, format_args!("a=rtcp:{port} IN {t} {a}"))?;
            }
            Some(Rtcp { port, addr: None }) => put(f, format_args!("a=rtcp:{port}"))?,
            None => {}
        }
        if self.rtcp_mux {
            put(f, format_args!("a=rtcp-mux"))?;
        }
        for c in &self.crypto {
            put(f, format_args!("a=crypto:{c}"))?;
        }
        for a in &self.attributes {
            put(f, format_args!("a={a}"))?;
        }
        put(f, format_args!("a={}", self.direction))
    }
}
