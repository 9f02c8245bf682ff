//! SIP HTTP Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.
//!
//! - [`Challenge`] / [`Credentials`]: the `WWW-Authenticate`/`Proxy-Authenticate` and
//!   `Authorization`/`Proxy-Authorization` values, parsed leniently and rendered strictly.
//! - [`DigestClient`]: answers the challenges of one trunk, reuses the last nonce pre-emptively,
//!   and gives up instead of looping when the server refuses its credentials.
//! - [`DigestServer`]: issues self-validating nonces (issue time + keyed MAC, so no table is
//!   needed to know a nonce is ours and how old it is) and remembers the highest `nc` per nonce
//!   in a bounded table to refuse replays.
//!
//! - [`AuthLimiter`]: blocks sources and accounts that keep failing, with growing back-off.
//!
//! None of them reads a clock or does IO: time comes in as `now`, credentials come from a
//! caller-supplied lookup.
//!
//! `transaction::header_param` is not used here: it reads `;`-separated name-addr parameters,
//! while auth values are `,`-separated lists with quoted strings and several schemes per line.

mod client;
mod digest;
mod limiter;
mod params;
mod server;

#[cfg(test)]
mod tests;

pub use client::{apply, with_credentials, AuthHeader, ClientOutcome, DigestClient};
pub use digest::{ha1, response, ResponseInput};
pub use limiter::{AuthLimiter, LimiterConfig};
pub use params::{Challenge, Credentials};
pub use server::{DigestServer, Secret, StaleReason, Verdict, MAX_FAILURES_PER_NONCE};

use rsip::headers::untyped::UntypedHeader;
use rsip::Header;

/// Why a digest value could not be used or credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The value uses another scheme (Basic, Bearer …) or none.
    #[error("not a Digest value (scheme {0:?})")]
    NotDigest(String),
    /// A required parameter is missing or unreadable.
    #[error("malformed digest value: {0}")]
    Malformed(&'static str),
    /// An algorithm we do not implement (e.g. AKAv1-MD5).
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The challenge demands a qop we do not implement.
    #[error("no supported qop offered")]
    UnsupportedQop,
    /// Client: the response carried no challenge we can answer.
    #[error("no usable digest challenge")]
    NoUsableChallenge,
    /// Client: the server challenged again after our answer: the credentials are wrong.
    #[error("credentials rejected by realm {0:?}")]
    Rejected(String),
    /// Client: the server answered `stale=true` to a fresh nonce; retrying would loop.
    #[error("realm {0:?} keeps answering stale=true")]
    StaleLoop(String),
    /// Server: the lookup knows no such user.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// Server: the digest does not match (wrong password, or tampered request).
    #[error("wrong digest response from {0:?}")]
    WrongResponse(String),
    /// Server: the stored HA1 was computed with another hash than the client used.
    #[error("no secret stored for {0:?} with algorithm {1}")]
    NoSecretFor(String, Algorithm),
}

/// Digest hash algorithms we implement (RFC 7616 §3.3, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617; what most SIP equipment speaks).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Parses the `algorithm` token, case-insensitively; `None` for ones we do not implement.
    pub fn parse(s: &str) -> Option<Algorithm> {
        const ALL: [Algorithm; 6] = [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ];
        let s = s.trim();
        ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The token as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// True for the `-sess` variants (HA1 also covers nonce and cnonce).
    pub fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// The hash without `-sess`: the one a stored HA1 must have been made with.
    pub fn base(self) -> Algorithm {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Algorithm::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Algorithm::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => Algorithm::Sha512_256,
        }
    }

    /// Preference when a server offers several (RFC 8760 §2.4: the strongest first).
    fn strength(self) -> u8 {
        match self.base() {
            Algorithm::Sha512_256 => 3,
            Algorithm::Sha256 => 2,
            _ => 1,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of protection (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: method and URI are covered.
    Auth,
    /// `auth-int`: the body is covered too.
    AuthInt,
}

impl Qop {
    /// Parses a qop token, case-insensitively.
    pub fn parse(s: &str) -> Option<Qop> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auth") {
            Some(Qop::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }

    /// The token as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Which pair of headers: a user agent's (401) or a proxy's (407).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// `WWW-Authenticate` in a 401, answered with `Authorization`.
    Www,
    /// `Proxy-Authenticate` in a 407, answered with `Proxy-Authorization`.
    Proxy,
}

impl AuthKind {
    /// The kind a status code challenges with (401 or 407).
    pub fn for_status(code: u16) -> Option<AuthKind> {
        match code {
            401 => Some(AuthKind::Www),
            407 => Some(AuthKind::Proxy),
            _ => None,
        }
    }

    /// Name of the challenge header.
    pub fn challenge_name(self) -> &'static str {
        match self {
            AuthKind::Www => "WWW-Authenticate",
            AuthKind::Proxy => "Proxy-Authenticate",
        }
    }

    /// Name of the credentials header.
    pub fn credentials_name(self) -> &'static str {
        match self {
            AuthKind::Www => "Authorization",
            AuthKind::Proxy => "Proxy-Authorization",
        }
    }

    /// A challenge header of this kind carrying `value`.
    pub fn challenge_header(self, value: String) -> Header {
        match self {
            AuthKind::Www => Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(value)),
            AuthKind::Proxy => {
                Header::ProxyAuthenticate(rsip::headers::ProxyAuthenticate::new(value))
            }
        }
    }

    /// A credentials header of this kind carrying `value`.
    pub fn credentials_header(self, value: String) -> Header {
        match self {
            AuthKind::Www => Header::Authorization(rsip::headers::Authorization::new(value)),
            AuthKind::Proxy => {
                Header::ProxyAuthorization(rsip::headers::ProxyAuthorization::new(value))
            }
        }
    }

    /// The challenge values of `headers` with their kind, in order.
    pub fn challenges_in(headers: &rsip::Headers) -> Vec<(AuthKind, String)> {
        headers
            .iter()
            .filter_map(|h| match h {
                Header::WwwAuthenticate(v) => Some((AuthKind::Www, v.value().to_string())),
                Header::ProxyAuthenticate(v) => Some((AuthKind::Proxy, v.value().to_string())),
                _ => None,
            })
            .collect()
    }

    /// The credentials values of `headers` with their kind, in order.
    pub fn credentials_in(headers: &rsip::Headers) -> Vec<(AuthKind, String)> {
        headers
            .iter()
            .filter_map(|h| match h {
                Header::Authorization(v) => Some((AuthKind::Www, v.value().to_string())),
                Header::ProxyAuthorization(v) => Some((AuthKind::Proxy, v.value().to_string())),
                _ => None,
            })
            .collect()
    }
}

/// What of a request the digest covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The method, e.g. `REGISTER`.
    pub method: &'a str,
    /// The digest-uri: the Request-URI as sent.
    pub uri: &'a str,
    /// The body (only `auth-int` covers it).
    pub body: &'a [u8],
}
