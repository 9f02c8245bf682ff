//! The hash arithmetic of RFC 7616 §3.4, and the keyed MAC our nonces carry.

use super::{Algorithm, Qop};
use sha2::Digest;

/// Lower-case hex of `data` hashed with `algorithm`'s base hash.
pub(crate) fn hash_hex(algorithm: Algorithm, data: &[u8]) -> String {
    match algorithm.base() {
        Algorithm::Md5 => to_hex(&md5::Md5::digest(data)),
        Algorithm::Sha256 => to_hex(&sha2::Sha256::digest(data)),
        _ => to_hex(&sha2::Sha512_256::digest(data)),
    }
}

/// `H(username:realm:password)`: the HA1 a registrar may store instead of the password.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    hash_hex(
        algorithm,
        format!("{username}:{realm}:{password}").as_bytes(),
    )
}

/// Everything the `response` parameter is computed from.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    /// Algorithm of the challenge/credentials (a `-sess` one rehashes HA1 with the nonces).
    pub algorithm: Algorithm,
    /// `H(username:realm:password)` with the base hash, lower-case hex.
    pub ha1: &'a str,
    /// Server nonce.
    pub nonce: &'a str,
    /// Client nonce (ignored without qop unless the algorithm is `-sess`).
    pub cnonce: &'a str,
    /// Nonce count (ignored without qop).
    pub nc: u32,
    /// Quality of protection; `None` is RFC 2069 compatibility.
    pub qop: Option<Qop>,
    /// Request method.
    pub method: &'a str,
    /// The digest-uri.
    pub uri: &'a str,
    /// Request body (for `auth-int`).
    pub body: &'a [u8],
}

/// The `response` value (RFC 7616 §3.4.1), lower-case hex.
pub fn response(i: &ResponseInput<'_>) -> String {
    let alg = i.algorithm;
    let ha1 = if alg.is_sess() {
        hash_hex(
            alg,
            format!("{}:{}:{}", i.ha1, i.nonce, i.cnonce).as_bytes(),
        )
    } else {
        i.ha1.to_string()
    };
    let ha2 = match i.qop {
        Some(Qop::AuthInt) => {
            let body = hash_hex(alg, i.body);
            hash_hex(alg, format!("{}:{}:{body}", i.method, i.uri).as_bytes())
        }
        _ => hash_hex(alg, format!("{}:{}", i.method, i.uri).as_bytes()),
    };
    let data = match i.qop {
        Some(q) => format!(
            "{ha1}:{}:{:08x}:{}:{}:{ha2}",
            i.nonce,
            i.nc,
            i.cnonce,
            q.as_str()
        ),
        None => format!("{ha1}:{}:{ha2}", i.nonce),
    };
    hash_hex(alg, data.as_bytes())
}

/// HMAC-SHA-256 (RFC 2104), written out because the hmac crate is not a dependency.
pub(crate) fn hmac_sha256(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = sha2::Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    let outer = sha2::Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    outer.into()
}

/// Comparison whose time does not depend on where the inputs differ (no response oracle).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}
