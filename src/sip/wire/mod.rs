//! Bytes ⇄ rsip: a front that makes RFC 4475's valid messages parse, and names what is wrong in
//! invalid ones so the server can answer 400/505 instead of going silent.

use std::net::SocketAddr;

/// Why a message could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not recognisable as SIP (no start line, binary noise): drop it and count it.
    #[error("unparseable message: {0}")]
    Unparseable(String),
    /// A request that must be answered with `status` (400 or 505) and `reason`.
    #[error("bad request ({status} {reason})")]
    BadRequest {
        /// 400 or 505.
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

/// Parses one complete SIP message (a UDP datagram or one framed TCP message).
pub fn parse(_bytes: &[u8]) -> Result<rsip::SipMessage, WireError> {
    Err(WireError::Unparseable("not implemented yet".into()))
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
pub fn frame(_buf: &[u8], _max_size: usize) -> Result<Frame, FrameError> {
    Ok(Frame::Incomplete)
}

/// Unused for now; keeps the import meaningful until the wire layer lands.
#[doc(hidden)]
pub fn _peer(_a: SocketAddr) {}
