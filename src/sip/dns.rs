//! DNS for SIP trunks, RFC 3263 simplified: SRV, then A/AAAA, without a DNS crate.
//!
//! Two halves. The sans-IO half builds queries and parses replies (RFC 1035 message format,
//! RFC 2782 SRV records) and orders SRV targets; it never panics on input, whatever bytes arrive.
//! The [`Resolver`] is a thin tokio driver: one UDP socket per query, a timeout, a few attempts
//! per server, and a retry over TCP when a reply comes back truncated.
//!
//! Deliberately left out: caching (callers resolve when they (re)connect a trunk), EDNS0, NAPTR
//! (RFC 3263 §4.1; trunks name their transport in configuration), DNSSEC and search domains.

use super::id::random_u32;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::sip::transport::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The SIP port when neither the URI nor an SRV record names one (RFC 3261 §19.1.2).
pub const SIP_PORT: u16 = 5060;
/// The default port of SIP over TLS.
pub const SIPS_PORT: u16 = 5061;
/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// Length of the fixed message header.
const HEADER_LEN: usize = 12;
/// Longest name on the wire, length bytes included (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;
/// CNAME hops followed inside one reply; more is a loop or abuse.
const MAX_CNAME_HOPS: usize = 8;
/// Class IN.
const CLASS_IN: u16 = 1;
/// Header flag bits (RFC 1035 §4.1.1).
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
/// Receive buffer for UDP replies: we send no EDNS0, so servers keep to 512 bytes, but a little
/// slack costs nothing and a longer datagram would otherwise be cut silently.
const UDP_BUF: usize = 4096;

/// Errors building, parsing or resolving DNS messages.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The message ends in the middle of a header, name or record.
    #[error("dns message truncated")]
    Truncated,
    /// A compression pointer points forward, at itself or past the end (a loop or garbage).
    #[error("bad dns compression pointer at offset {offset}")]
    BadPointer {
        /// Offset of the pointer in the message.
        offset: usize,
    },
    /// A name uses a reserved label type or is longer than 255 bytes.
    #[error("bad dns name in message")]
    BadName,
    /// Record data does not fit its type (an A record not 4 bytes long, …).
    #[error("bad rdata for dns record type {rtype}")]
    BadRdata {
        /// The record type.
        rtype: u16,
    },
    /// A name cannot be put in a query (empty label, label over 63 bytes, too long).
    #[error("invalid dns name {0:?}")]
    InvalidName(String),
    /// The reply's id is not the query's.
    #[error("dns reply id {got} does not match query id {expected}")]
    IdMismatch {
        /// Id of the query.
        expected: u16,
        /// Id in the reply.
        got: u16,
    },
    /// The message is a query, not a response.
    #[error("dns message is not a response")]
    NotResponse,
    /// The reply answers another question than the one asked.
    #[error("dns reply is for another question")]
    QuestionMismatch,
    /// RCODE 3: the name does not exist.
    #[error("{0}: no such domain (NXDOMAIN)")]
    NxDomain(String),
    /// RCODE 2: the server failed.
    #[error("dns server failure (SERVFAIL)")]
    ServFail,
    /// Another non-zero RCODE (1 FORMERR, 4 NOTIMP, 5 REFUSED, …).
    #[error("dns error rcode {0}")]
    Rcode(u8),
    /// The name exists but has no record of the type asked (or only SRV targets of ".").
    #[error("{0}: no dns records")]
    NoAnswer(String),
    /// No server answered within the timeout and attempts.
    #[error("no dns server answered")]
    Timeout,
    /// A socket error talking to a server.
    #[error("dns i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl DnsError {
    /// True when no server gave an answer at all (as opposed to an answer saying no).
    fn no_server_answered(&self) -> bool {
        matches!(self, DnsError::Timeout | DnsError::Io(_))
    }
}

/// Record types this module asks for or understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// IPv4 address (1).
    A,
    /// Canonical name (5).
    Cname,
    /// IPv6 address (28).
    Aaaa,
    /// Service location (33).
    Srv,
}

impl RecordType {
    /// The TYPE/QTYPE code on the wire.
    pub fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Cname => 5,
            RecordType::Aaaa => 28,
            RecordType::Srv => 33,
        }
    }
}

/// The fixed 12-byte message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Transaction id.
    pub id: u16,
    /// QR, OPCODE, AA, TC, RD, RA, Z and RCODE.
    pub flags: u16,
    /// Questions.
    pub qdcount: u16,
    /// Answer records.
    pub ancount: u16,
    /// Authority records.
    pub nscount: u16,
    /// Additional records.
    pub arcount: u16,
}

impl Header {
    /// Parses the header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Header, DnsError> {
        let mut r = Reader { buf, pos: 0 };
        Ok(Header {
            id: r.u16()?,
            flags: r.u16()?,
            qdcount: r.u16()?,
            ancount: r.u16()?,
            nscount: r.u16()?,
            arcount: r.u16()?,
        })
    }
    /// QR: a response.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }
    /// TC: the server cut the reply to fit a datagram.
    pub fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }
    /// RD: recursion desired.
    pub fn recursion_desired(&self) -> bool {
        self.flags & FLAG_RD != 0
    }
    /// The response code (0 no error, 2 SERVFAIL, 3 NXDOMAIN, …).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x000f) as u8
    }
}

/// A question: name, QTYPE and QCLASS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Name asked for (presentation form, no trailing dot).
    pub name: String,
    /// QTYPE code.
    pub qtype: u16,
    /// QCLASS code.
    pub qclass: u16,
}

/// An SRV record's data (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share among records of the same priority.
    pub weight: u16,
    /// Port of the service on the target.
    pub port: u16,
    /// Host name of the target; "." means the service is not offered.
    pub target: String,
}

/// Data of a resource record, for the types this module reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Alias target.
    Cname(String),
    /// Service location.
    Srv(SrvRecord),
    /// Any other type or class, skipped.
    Other,
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name (presentation form, no trailing dot; the root is ".").
    pub name: String,
    /// TYPE code.
    pub rtype: u16,
    /// CLASS code.
    pub class: u16,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Decoded data.
    pub data: RData,
}

/// A parsed DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The question section.
    pub questions: Vec<Question>,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authorities: Vec<Record>,
    /// The additional section.
    pub additionals: Vec<Record>,
}

impl Message {
    /// Records of the answer and additional sections, where a reply's data lives.
    fn data_records(&self) -> impl Iterator<Item = &Record> {
        self.answers.iter().chain(self.additionals.iter())
    }

    /// `name` after following CNAME records in this message (at most a few hops, so a CNAME
    /// loop ends instead of spinning).
    pub fn canonical_name<'a>(&'a self, name: &'a str) -> &'a str {
        let mut current = name;
        for _ in 0..MAX_CNAME_HOPS {
            let next = self.data_records().find_map(|r| match &r.data {
                RData::Cname(target) if names_eq(&r.name, current) => Some(target.as_str()),
                _ => None,
            });
            match next {
                Some(target) => current = target,
                None => break,
            }
        }
        current
    }

    /// SRV records of `name` (through CNAMEs), in message order.
    pub fn srv_records(&self, name: &str) -> Vec<SrvRecord> {
        let owner = self.canonical_name(name);
        self.data_records()
            .filter(|r| names_eq(&r.name, owner))
            .filter_map(|r| match &r.data {
                RData::Srv(srv) => Some(srv.clone()),
                _ => None,
            })
            .collect()
    }

    /// A and AAAA addresses of `name` (through CNAMEs) from the answer and additional sections,
    /// IPv4 first, without duplicates.
    pub fn addresses(&self, name: &str) -> Vec<IpAddr> {
        let owner = self.canonical_name(name);
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for r in self.data_records().filter(|r| names_eq(&r.name, owner)) {
            match r.data {
                RData::A(ip) => v4.push(IpAddr::V4(ip)),
                RData::Aaaa(ip) => v6.push(IpAddr::V6(ip)),
                _ => {}
            }
        }
        v4.extend(v6);
        dedup(v4)
    }
}

/// Builds a standard query: `id`, RD set, one question for `name` of type `rtype`, class IN.
pub fn build_query(id: u16, name: &str, rtype: RecordType) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    for count in [1u16, 0, 0, 0] {
        out.extend_from_slice(&count.to_be_bytes());
    }
    encode_name(name, &mut out)?;
    out.extend_from_slice(&rtype.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// Appends `name` in wire form (labels, no compression). A trailing dot is optional; "." is the
/// root. Escapes are not interpreted: names come from configuration, not zone files.
fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), DnsError> {
    let invalid = || DnsError::InvalidName(name.to_string());
    let start = out.len();
    if name != "." {
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL_LEN || label.contains('\\') {
                return Err(invalid());
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - start > MAX_NAME_LEN {
        return Err(invalid());
    }
    Ok(())
}

/// Parses a whole message. Counts, rcode and id are not judged here (see [`parse_reply`]).
/// When the header says TC, records cut off at the end are dropped instead of failing.
pub fn parse_message(buf: &[u8]) -> Result<Message, DnsError> {
    let header = Header::parse(buf)?;
    let mut r = Reader {
        buf,
        pos: HEADER_LEN,
    };
    let mut questions = Vec::new();
    for _ in 0..header.qdcount {
        let name = r.name()?;
        let qtype = r.u16()?;
        let qclass = r.u16()?;
        questions.push(Question {
            name,
            qtype,
            qclass,
        });
    }
    let mut sections: [Vec<Record>; 3] = Default::default();
    let counts = [header.ancount, header.nscount, header.arcount];
    'sections: for (section, count) in sections.iter_mut().zip(counts) {
        for _ in 0..count {
            match r.record() {
                Ok(rec) => section.push(rec),
                Err(DnsError::Truncated) if header.truncated() => break 'sections,
                Err(e) => return Err(e),
            }
        }
    }
    let [answers, authorities, additionals] = sections;
    Ok(Message {
        header,
        questions,
        answers,
        authorities,
        additionals,
    })
}

/// Parses a reply to the query (`id`, `name`, `rtype`) and judges it: a response, same id, same
/// question, RCODE 0 (else [`DnsError::NxDomain`], [`DnsError::ServFail`] or
/// [`DnsError::Rcode`]). An empty answer is not an error here; the callers decide.
pub fn parse_reply(
    buf: &[u8],
    id: u16,
    name: &str,
    rtype: RecordType,
) -> Result<Message, DnsError> {
    let header = Header::parse(buf)?;
    if header.id != id {
        return Err(DnsError::IdMismatch {
            expected: id,
            got: header.id,
        });
    }
    if !header.is_response() {
        return Err(DnsError::NotResponse);
    }
    let msg = parse_message(buf)?;
    // Servers may drop the question from error replies; a success must echo it.
    match msg.questions.as_slice() {
        [q] if names_eq(&q.name, name) && q.qtype == rtype.code() && q.qclass == CLASS_IN => {}
        [] if header.rcode() != 0 => {}
        _ => return Err(DnsError::QuestionMismatch),
    }
    match header.rcode() {
        0 => Ok(msg),
        2 => Err(DnsError::ServFail),
        3 => Err(DnsError::NxDomain(trim_dot(name).to_string())),
        other => Err(DnsError::Rcode(other)),
    }
}

/// Orders SRV records for trying (RFC 2782): priority ascending; within a priority, a weighted
/// random pick repeated until none are left, `random` giving the random numbers. Targets of "."
/// (service not offered) are dropped.
pub fn order_srv(records: &[SrvRecord], mut random: impl FnMut() -> u32) -> Vec<SrvRecord> {
    let mut pending: Vec<SrvRecord> = records
        .iter()
        .filter(|r| !is_root(&r.target))
        .cloned()
        .collect();
    // Stable sort: same-priority records keep message order, zero weights first as the RFC asks.
    pending.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(pending.len());
    while let Some(first) = pending.first() {
        let priority = first.priority;
        let group_len = pending
            .iter()
            .take_while(|r| r.priority == priority)
            .count();
        let mut group: Vec<SrvRecord> = pending.drain(..group_len).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            // Uniform in 0..=total; total ≤ 65535 × 65535 < u32::MAX, so +1 cannot overflow.
            let pick = random() % (total + 1);
            let mut running = 0u32;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(group.len() - 1);
            out.push(group.remove(index));
        }
    }
    out
}

/// Name servers from resolv.conf text: `nameserver` lines, port 53. Lines that do not parse (an
/// IPv6 address with a `%zone`, say) are skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => addr.parse::<IpAddr>().ok(),
                _ => None,
            }
        })
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .collect()
}

/// Bounds-checked reading of a message; every read returns an error rather than panicking.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], DnsError> {
        let end = self.pos.checked_add(n).ok_or(DnsError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DnsError::Truncated)?;
        self.pos = end;
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DnsError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn name(&mut self) -> Result<String, DnsError> {
        let (name, next) = read_name(self.buf, self.pos)?;
        self.pos = next;
        Ok(name)
    }
    fn record(&mut self) -> Result<Record, DnsError> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let rdlen = usize::from(self.u16()?);
        let start = self.pos;
        let rdata = self.bytes(rdlen)?;
        let bad = DnsError::BadRdata { rtype };
        let data = match (class, rtype) {
            (CLASS_IN, 1) => RData::A(Ipv4Addr::from(<[u8; 4]>::try_from(rdata).map_err(|_| bad)?)),
            (CLASS_IN, 28) => RData::Aaaa(Ipv6Addr::from(
                <[u8; 16]>::try_from(rdata).map_err(|_| bad)?,
            )),
            (CLASS_IN, 5) => RData::Cname(self.name_in_rdata(start, rdlen, rtype)?),
            // Fixed fields, then a target name of at least the root's one byte.
            (CLASS_IN, 33) if rdata.len() >= 7 => RData::Srv(SrvRecord {
                priority: u16::from_be_bytes([rdata[0], rdata[1]]),
                weight: u16::from_be_bytes([rdata[2], rdata[3]]),
                port: u16::from_be_bytes([rdata[4], rdata[5]]),
                target: self.name_in_rdata(start + 6, rdlen - 6, rtype)?,
            }),
            (CLASS_IN, 33) => return Err(bad),
            _ => RData::Other,
        };
        Ok(Record {
            name,
            rtype,
            class,
            ttl,
            data,
        })
    }
    /// A name that must start at `start` and end within the `len` bytes of rdata there
    /// (pointers may still lead earlier in the message).
    fn name_in_rdata(&self, start: usize, len: usize, rtype: u16) -> Result<String, DnsError> {
        // Cut the buffer at the rdata's end: a name running past it is bad rdata, not a cut
        // message (the rdata itself was read whole).
        let end = start + len;
        let window = self.buf.get(..end).ok_or(DnsError::Truncated)?;
        match read_name(window, start) {
            Err(DnsError::Truncated) => Err(DnsError::BadRdata { rtype }),
            other => other.map(|(name, _)| name),
        }
    }
}

/// Reads the name at `start`, following compression pointers; returns it in presentation form
/// and the offset just past it (past the first pointer, if any).
///
/// Every pointer must point before the previous one (or before the name's start), which is
/// what real compression does and what makes loops impossible.
fn read_name(buf: &[u8], start: usize) -> Result<(String, usize), DnsError> {
    let mut out = String::new();
    let mut pos = start;
    let mut limit = start;
    let mut next = None;
    let mut wire_len = 1; // the final zero byte
    loop {
        let len = *buf.get(pos).ok_or(DnsError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                let next = next.unwrap_or(pos + 1);
                if out.is_empty() {
                    out.push('.');
                }
                return Ok((out, next));
            }
            0x00 => {
                let len = usize::from(len);
                let label = buf.get(pos + 1..pos + 1 + len).ok_or(DnsError::Truncated)?;
                wire_len += len + 1;
                if wire_len > MAX_NAME_LEN {
                    return Err(DnsError::BadName);
                }
                if !out.is_empty() {
                    out.push('.');
                }
                push_label(&mut out, label);
                pos += 1 + len;
            }
            0xc0 => {
                let low = *buf.get(pos + 1).ok_or(DnsError::Truncated)?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                if target >= limit {
                    return Err(DnsError::BadPointer { offset: pos });
                }
                next.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            // 0x40 (extended label types, RFC 6891 dropped them) and 0x80 are reserved.
            _ => return Err(DnsError::BadName),
        }
    }
}

/// Appends a label in presentation form: dots, backslashes and non-printing bytes escaped
/// (RFC 4343), so a hostile name cannot pass for another.
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x21..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
}

/// Name equality: ASCII case-insensitive, trailing dot optional.
fn names_eq(a: &str, b: &str) -> bool {
    trim_dot(a).eq_ignore_ascii_case(trim_dot(b))
}

/// `name` without its trailing dot (the root stays ".").
fn trim_dot(name: &str) -> &str {
    match name.strip_suffix('.') {
        Some("") | None => name,
        Some(trimmed) => trimmed,
    }
}

/// The root name, an SRV target meaning "not offered here".
fn is_root(name: &str) -> bool {
    name == "." || name.is_empty()
}

/// `host` as an IP address, if it is a literal (IPv6 possibly in brackets, as in SIP URIs).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Removes later duplicates, keeping order.
fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// A stub resolver for trunk hosts: asks recursive servers over UDP (TCP when a reply is
/// truncated) and applies RFC 3263's SRV → A/AAAA steps.
#[derive(Debug, Clone)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: u32,
}

impl Resolver {
    /// Wait for a reply from one server, per attempt.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Rounds over the server list.
    pub const DEFAULT_ATTEMPTS: u32 = 2;

    /// The servers of `/etc/resolv.conf`, or 127.0.0.1:53 when it names none or cannot be read.
    pub fn from_system() -> Self {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut servers = parse_resolv_conf(&text);
        if servers.is_empty() {
            servers.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DNS_PORT));
        }
        Self::new(servers, Self::DEFAULT_TIMEOUT)
    }

    /// A resolver asking `servers` in order, waiting `timeout` for each, two rounds.
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self {
            servers,
            timeout,
            attempts: Self::DEFAULT_ATTEMPTS,
        }
    }

    /// The same resolver making `attempts` rounds over its servers (at least one).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The servers asked, in order.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Asks the servers in turn, `attempts` rounds, until one answers. NXDOMAIN is final; a
    /// timeout, socket error, SERVFAIL or other RCODE moves on to the next server, and the last
    /// such error is returned when all fail ([`DnsError::Timeout`] with no servers).
    pub async fn query(&self, name: &str, rtype: RecordType) -> Result<Message, DnsError> {
        let mut last = DnsError::Timeout;
        for _ in 0..self.attempts.max(1) {
            for &server in &self.servers {
                match self.exchange(server, name, rtype).await {
                    Ok(msg) => return Ok(msg),
                    Err(e @ DnsError::NxDomain(_)) => return Err(e),
                    Err(e @ DnsError::InvalidName(_)) => return Err(e),
                    Err(e) => {
                        tracing::debug!(%server, name, ?rtype, error = %e, "dns query failed");
                        last = e;
                    }
                }
            }
        }
        Err(last)
    }

    /// SRV records of `name` (e.g. `_sip._udp.example.com`) as the reply lists them; order them
    /// with [`order_srv`]. [`DnsError::NoAnswer`] when there are none.
    pub async fn srv(&self, name: &str) -> Result<Vec<SrvRecord>, DnsError> {
        let records = self.query(name, RecordType::Srv).await?.srv_records(name);
        if records.is_empty() {
            return Err(DnsError::NoAnswer(trim_dot(name).to_string()));
        }
        Ok(records)
    }

    /// Addresses of `host`: an IP literal as is, without a query; else A then AAAA records
    /// (asked at once), IPv4 first.
    ///
    /// When the servers say NXDOMAIN or none answers, the system resolver
    /// (`tokio::net::lookup_host`, i.e. getaddrinfo) gets a go, so names from `/etc/hosts` work.
    /// That may ask DNS once more; it is the simple route to the hosts file and NSS.
    pub async fn ip(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Some(ip) = ip_literal(host) {
            return Ok(vec![ip]);
        }
        let (a, aaaa) = tokio::join!(
            self.query(host, RecordType::A),
            self.query(host, RecordType::Aaaa)
        );
        let mut addrs = Vec::new();
        for msg in [&a, &aaaa].into_iter().flatten() {
            addrs.extend(msg.addresses(host));
        }
        if !addrs.is_empty() {
            return Ok(dedup(addrs));
        }
        let error = match (a, aaaa) {
            (Err(e), _) | (Ok(_), Err(e)) => e,
            (Ok(_), Ok(_)) => return Err(DnsError::NoAnswer(trim_dot(host).to_string())),
        };
        if matches!(error, DnsError::NxDomain(_)) || error.no_server_answered() {
            return system_lookup(host).await.ok_or(error);
        }
        Err(error)
    }

    /// Where to send SIP requests for `host` (RFC 3263 §4.2, without NAPTR): an IP literal with
    /// `port` or 5060 (5061 over TLS); with an explicit `port`, the A/AAAA addresses of `host`;
    /// otherwise the `_sip._udp`/`_sip._tcp`/`_sips._tcp` SRV targets in RFC 2782 order with their ports (addresses from
    /// the reply's additional section when it has them), or, without SRV records, the
    /// addresses of `host` on 5060.
    ///
    /// If no server answers the SRV query, the system resolver is asked for `host` directly
    /// rather than timing out a second time on A/AAAA.
    pub async fn resolve_sip(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Transport,
    ) -> Result<Vec<SocketAddr>, DnsError> {
        // TLS: `_sips._tcp` and 5061 (RFC 3261 §26.2, RFC 3263 §4.2).
        let default_port = match transport {
            Transport::Tls => SIPS_PORT,
            _ => SIP_PORT,
        };
        if let Some(ip) = ip_literal(host) {
            return Ok(vec![SocketAddr::new(ip, port.unwrap_or(default_port))]);
        }
        if trim_dot(host).is_empty() || host == "." {
            return Err(DnsError::InvalidName(host.to_string()));
        }
        if let Some(port) = port {
            return Ok(with_port(self.ip(host).await?, port).collect());
        }
        let service = match transport {
            Transport::Udp => "_sip._udp",
            Transport::Tcp => "_sip._tcp",
            Transport::Tls => "_sips._tcp",
        };
        let srv_name = format!("{service}.{}", trim_dot(host));
        let reply = match self.query(&srv_name, RecordType::Srv).await {
            Ok(reply) => reply,
            Err(e) if e.no_server_answered() => {
                let ips = system_lookup(host).await.ok_or(e)?;
                return Ok(with_port(ips, default_port).collect());
            }
            // NXDOMAIN for the _sip label says nothing of the host; SERVFAIL on SRV is a
            // broken server more often than a broken domain: either way, plain A/AAAA.
            Err(e) => {
                tracing::debug!(name = %srv_name, error = %e, "no sip srv, trying a/aaaa");
                return Ok(with_port(self.ip(host).await?, default_port).collect());
            }
        };
        let records = reply.srv_records(&srv_name);
        if records.is_empty() {
            return Ok(with_port(self.ip(host).await?, default_port).collect());
        }
        let mut out = Vec::new();
        let mut last = DnsError::NoAnswer(srv_name.clone());
        for srv in order_srv(&records, random_u32) {
            let mut ips = reply.addresses(&srv.target);
            if ips.is_empty() {
                match self.ip(&srv.target).await {
                    Ok(found) => ips = found,
                    Err(e) => {
                        tracing::debug!(target = %srv.target, error = %e, "srv target unresolved");
                        last = e;
                    }
                }
            }
            out.extend(with_port(ips, srv.port));
        }
        if out.is_empty() {
            return Err(last);
        }
        Ok(dedup(out))
    }

    /// One query to one server over UDP, then TCP if the reply is truncated. Replies with the
    /// wrong id or question, or that do not parse, are ignored (spoofing, stray datagrams) and
    /// the wait for the right one goes on until the timeout.
    ///
    /// On TC=1 the query is repeated over TCP (2-byte length prefix, RFC 1035 §4.2.2); if that
    /// fails, the truncated reply is used for what it holds, which for SRV is usually enough.
    async fn exchange(
        &self,
        server: SocketAddr,
        name: &str,
        rtype: RecordType,
    ) -> Result<Message, DnsError> {
        let id = random_u32() as u16;
        let query = build_query(id, name, rtype)?;
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        // A fresh socket per query: a random source port, and connect() filters other senders.
        let socket = UdpSocket::bind(local).await?;
        socket.connect(server).await?;
        socket.send(&query).await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut buf = vec![0u8; UDP_BUF];
        let reply = loop {
            let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Ok(n) => n?,
                Err(_) => return Err(DnsError::Timeout),
            };
            match parse_reply(&buf[..n], id, name, rtype) {
                Err(
                    e @ (DnsError::IdMismatch { .. }
                    | DnsError::NotResponse
                    | DnsError::QuestionMismatch
                    | DnsError::Truncated
                    | DnsError::BadPointer { .. }
                    | DnsError::BadName
                    | DnsError::BadRdata { .. }),
                ) => {
                    tracing::debug!(%server, error = %e, "ignoring dns datagram");
                }
                other => break other?,
            }
        };
        if !reply.header.truncated() {
            return Ok(reply);
        }
        match self.exchange_tcp(server, &query, id, name, rtype).await {
            Ok(full) => Ok(full),
            Err(e @ DnsError::NxDomain(_)) => Err(e),
            Err(e) => {
                tracing::debug!(%server, error = %e, "dns over tcp failed, using truncated reply");
                Ok(reply)
            }
        }
    }

    /// The same query over TCP, within the timeout.
    async fn exchange_tcp(
        &self,
        server: SocketAddr,
        query: &[u8],
        id: u16,
        name: &str,
        rtype: RecordType,
    ) -> Result<Message, DnsError> {
        let exchange = async {
            let mut stream = TcpStream::connect(server).await?;
            let len = u16::try_from(query.len()).map_err(|_| DnsError::InvalidName(name.into()))?;
            let mut framed = Vec::with_capacity(query.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(query);
            stream.write_all(&framed).await?;
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut buf).await?;
            parse_reply(&buf, id, name, rtype)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| DnsError::Timeout)?
    }
}

/// `ips` each on `port`.
fn with_port(ips: Vec<IpAddr>, port: u16) -> impl Iterator<Item = SocketAddr> {
    ips.into_iter().map(move |ip| SocketAddr::new(ip, port))
}

/// The system resolver's addresses for `host` (hosts file, NSS), or `None`.
async fn system_lookup(host: &str) -> Option<Vec<IpAddr>> {
    match tokio::net::lookup_host((trim_dot(host), 0)).await {
        Ok(addrs) => {
            let ips = dedup(addrs.map(|a| a.ip()).collect::<Vec<_>>());
            (!ips.is_empty()).then_some(ips)
        }
        Err(e) => {
            tracing::debug!(host, error = %e, "system lookup failed");
            None
        }
    }
}

#[cfg(test)]
mod tests;
