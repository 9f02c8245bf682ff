//! Reading and writing auth header values (RFC 7235 §2.1 / RFC 3261 §25 grammar).
//!
//! Reading is lenient because carriers are: any case, spaces around `=` and `,`, quoted or bare
//! values, unknown parameters, several challenges in one line, an unquoted `qop=auth,auth-int`.
//! Writing follows RFC 7616: `algorithm`, `qop` (in credentials), `nc` and `stale` bare,
//! everything else quoted.

use super::{Algorithm, AuthError, Qop};

/// One scheme and its parameters as found in a value; names lower-cased, values unescaped.
#[derive(Debug, Default)]
struct SchemeParams {
    scheme: String,
    params: Vec<(String, String)>,
}

impl SchemeParams {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a header value into schemes with their parameters. Never fails: garbage yields
/// schemes without the parameters the caller needs, which it then rejects.
fn lex(value: &str) -> Vec<SchemeParams> {
    let c: Vec<char> = value.chars().collect();
    let n = c.len();
    let mut i = 0;
    let mut out: Vec<SchemeParams> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < n && c[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        while i < n && (c[i].is_whitespace() || c[i] == ',') {
            i += 1;
        }
        if i >= n {
            break;
        }
        let start = i;
        while i < n && !c[i].is_whitespace() && !matches!(c[i], '=' | ',' | '"') {
            i += 1;
        }
        if i == start {
            // A stray '=' or quoted string where a name belongs: skip it.
            if c[i] == '"' {
                read_quoted(&c, &mut i);
            } else {
                i += 1;
            }
            continue;
        }
        let token: String = c[start..i].iter().collect();
        let mut j = i;
        skip_ws(&mut j);
        if j < n && c[j] == '=' {
            j += 1;
            skip_ws(&mut j);
            let value = if j < n && c[j] == '"' {
                read_quoted(&c, &mut j)
            } else {
                let s = j;
                while j < n && c[j] != ',' {
                    j += 1;
                }
                c[s..j].iter().collect::<String>().trim().to_string()
            };
            if let Some(last) = out.last_mut() {
                let name = token.to_ascii_lowercase();
                // A directive must not repeat (RFC 7616 §3.3); keep the first.
                if last.get(&name).is_none() {
                    last.params.push((name, value));
                }
            }
            i = j;
        } else {
            let ends_item = j >= n || c[j] == ',';
            let continues_qop = ends_item
                && out
                    .last()
                    .and_then(|s| s.params.last())
                    .is_some_and(|(name, _)| name == "qop");
            match out.last_mut().and_then(|s| s.params.last_mut()) {
                // `qop=auth,auth-int` unquoted: the comma split the list.
                Some((_, v)) if continues_qop => {
                    v.push(',');
                    v.push_str(&token);
                }
                _ => out.push(SchemeParams {
                    scheme: token,
                    params: Vec::new(),
                }),
            }
            i = j;
        }
    }
    out
}

/// Reads a quoted-string starting at `c[*i] == '"'`, unescaping `\x`; an unterminated one
/// runs to the end.
fn read_quoted(c: &[char], i: &mut usize) -> String {
    let mut s = String::new();
    *i += 1;
    while *i < c.len() {
        match c[*i] {
            '\\' => {
                if let Some(&next) = c.get(*i + 1) {
                    s.push(next);
                }
                *i += 2;
            }
            '"' => {
                *i += 1;
                return s;
            }
            ch => {
                s.push(ch);
                *i += 1;
            }
        }
    }
    s
}

/// Renders a quoted-string, escaping `"` and `\`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        // CR/LF would split the header line; they never belong in these values.
        if ch != '\r' && ch != '\n' {
            out.push(ch);
        }
    }
    out.push('"');
    out
}

fn is_digest(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("digest")
}

/// A Digest challenge (`WWW-Authenticate` / `Proxy-Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo back.
    pub opaque: Option<String>,
    /// Hash algorithm; `MD5` when absent.
    pub algorithm: Algorithm,
    /// Offered qop values we understand; `None` when the challenge has no qop (RFC 2069).
    pub qop: Option<Vec<Qop>>,
    /// The previous nonce was merely too old: retry without asking the user.
    pub stale: bool,
    /// `domain` as given (space-separated URIs).
    pub domain: Option<String>,
}

impl Challenge {
    /// Every challenge of a value, each parsed or with why it cannot be used.
    pub fn parse_all(value: &str) -> Vec<Result<Challenge, AuthError>> {
        lex(value).iter().map(Challenge::from_scheme).collect()
    }

    /// The first usable Digest challenge of a value, else the first error.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let all = Challenge::parse_all(value);
        let mut first_err = None;
        for r in all {
            match r {
                Ok(c) => return Ok(c),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(AuthError::NotDigest(String::new())))
    }

    fn from_scheme(s: &SchemeParams) -> Result<Challenge, AuthError> {
        if !is_digest(&s.scheme) {
            return Err(AuthError::NotDigest(s.scheme.clone()));
        }
        let realm = s.get("realm").ok_or(AuthError::Malformed("no realm"))?;
        let nonce = s.get("nonce").ok_or(AuthError::Malformed("no nonce"))?;
        let algorithm = match s.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => {
                Algorithm::parse(a).ok_or_else(|| AuthError::UnsupportedAlgorithm(a.to_string()))?
            }
        };
        let qop = s
            .get("qop")
            .map(|q| q.split(',').filter_map(Qop::parse).collect());
        Ok(Challenge {
            realm: realm.to_string(),
            nonce: nonce.to_string(),
            opaque: s.get("opaque").map(str::to_string),
            algorithm,
            qop,
            stale: s
                .get("stale")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            domain: s.get("domain").map(str::to_string),
        })
    }

    /// The qop a client should answer with: `auth` if offered, else `auth-int`; `Ok(None)`
    /// without qop; an error when qop is offered but none we know.
    pub fn pick_qop(&self) -> Result<Option<Qop>, AuthError> {
        match &self.qop {
            None => Ok(None),
            Some(list) if list.contains(&Qop::Auth) => Ok(Some(Qop::Auth)),
            Some(list) if list.contains(&Qop::AuthInt) => Ok(Some(Qop::AuthInt)),
            Some(_) => Err(AuthError::UnsupportedQop),
        }
    }

    /// The header value, e.g. `Digest realm="x", nonce="y", algorithm=MD5, qop="auth"`.
    pub fn to_header_value(&self) -> String {
        let mut out = format!(
            "Digest realm={}, nonce={}",
            quote(&self.realm),
            quote(&self.nonce)
        );
        if let Some(d) = &self.domain {
            out.push_str(&format!(", domain={}", quote(d)));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque={}", quote(o)));
        }
        out.push_str(&format!(", algorithm={}", self.algorithm));
        if let Some(q) = &self.qop {
            let list: Vec<&str> = q.iter().map(|q| q.as_str()).collect();
            out.push_str(&format!(", qop={}", quote(&list.join(","))));
        }
        if self.stale {
            out.push_str(", stale=true");
        }
        out
    }
}

/// Digest credentials (`Authorization` / `Proxy-Authorization`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Protection space.
    pub realm: String,
    /// The server nonce answered.
    pub nonce: String,
    /// The digest-uri.
    pub uri: String,
    /// The computed response, hex.
    pub response: String,
    /// Hash algorithm; `MD5` when absent.
    pub algorithm: Algorithm,
    /// Client nonce.
    pub cnonce: Option<String>,
    /// Nonce count.
    pub nc: Option<u32>,
    /// Chosen qop; `None` for RFC 2069 style.
    pub qop: Option<Qop>,
    /// Opaque echoed from the challenge.
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses the first Digest credentials of a value.
    pub fn parse(value: &str) -> Result<Credentials, AuthError> {
        let schemes = lex(value);
        let s = schemes.first().ok_or(AuthError::NotDigest(String::new()))?;
        if !is_digest(&s.scheme) {
            return Err(AuthError::NotDigest(s.scheme.clone()));
        }
        let req = |name: &'static str, why: &'static str| {
            s.get(name)
                .map(str::to_string)
                .ok_or(AuthError::Malformed(why))
        };
        let algorithm = match s.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => {
                Algorithm::parse(a).ok_or_else(|| AuthError::UnsupportedAlgorithm(a.to_string()))?
            }
        };
        let qop = match s.get("qop") {
            None => None,
            Some(q) => Some(Qop::parse(q).ok_or(AuthError::UnsupportedQop)?),
        };
        let nc = match s.get("nc") {
            None => None,
            Some(v) => {
                let v = v.trim();
                if v.is_empty() || v.len() > 8 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AuthError::Malformed("bad nc"));
                }
                Some(u32::from_str_radix(v, 16).map_err(|_| AuthError::Malformed("bad nc"))?)
            }
        };
        let cnonce = s.get("cnonce").map(str::to_string);
        if qop.is_some() && (nc.is_none() || cnonce.is_none()) {
            return Err(AuthError::Malformed("qop without nc or cnonce"));
        }
        Ok(Credentials {
            username: req("username", "no username")?,
            realm: req("realm", "no realm")?,
            nonce: req("nonce", "no nonce")?,
            uri: req("uri", "no uri")?,
            response: req("response", "no response")?,
            algorithm,
            cnonce,
            nc,
            qop,
            opaque: s.get("opaque").map(str::to_string),
        })
    }

    /// The header value in RFC 7616 form.
    pub fn to_header_value(&self) -> String {
        let mut out = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response),
            self.algorithm
        );
        if let Some(c) = &self.cnonce {
            out.push_str(&format!(", cnonce={}", quote(c)));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque={}", quote(o)));
        }
        if let Some(q) = self.qop {
            out.push_str(&format!(", qop={}", q.as_str()));
        }
        if let Some(nc) = self.nc {
            out.push_str(&format!(", nc={nc:08x}"));
        }
        out
    }
}
