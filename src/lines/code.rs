//! Verification codes: six random digits, kept only as a salted SHA-256, valid for ten
//! minutes, burned by the third wrong try. Pure: the caller passes the time.

use crate::store::lines::StoredCode;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// How long a code is accepted.
pub const CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// Wrong tries that burn a code.
pub const MAX_TRIES: i64 = 3;

/// What typing in a code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The right code, in time: the line is verified.
    Accepted,
    /// A wrong code; this many tries are left.
    Wrong {
        /// Tries left before the code is burned.
        tries_left: i64,
    },
    /// The third wrong try: the code is burned (or was already).
    Burned,
    /// The code's ten minutes are over.
    Expired,
    /// No code is waiting (none was spoken, or it was used).
    NoCode,
}

/// A fresh random code and how it is stored.
pub fn new_code(now_ms: i64) -> (String, StoredCode) {
    let code = format!("{:06}", random_below(1_000_000));
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source failed");
    let salt = hex(&salt);
    let stored = StoredCode {
        hash: hash(&salt, &code),
        salt,
        expires_ms: now_ms + CODE_TTL_MS,
        tries: 0,
    };
    (code, stored)
}

/// Checks a typed-in code against the stored one: the entry and the tries count to store.
pub fn check(stored: Option<&StoredCode>, typed: &str, now_ms: i64) -> (Entry, i64) {
    let Some(stored) = stored else {
        return (Entry::NoCode, 0);
    };
    if stored.tries >= MAX_TRIES {
        return (Entry::Burned, stored.tries);
    }
    if now_ms > stored.expires_ms {
        return (Entry::Expired, stored.tries);
    }
    let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if hash(&stored.salt, &typed) == stored.hash {
        return (Entry::Accepted, stored.tries);
    }
    let tries = stored.tries + 1;
    if tries >= MAX_TRIES {
        (Entry::Burned, tries)
    } else {
        (
            Entry::Wrong {
                tries_left: MAX_TRIES - tries,
            },
            tries,
        )
    }
}

fn hash(salt: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(code.as_bytes());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A uniform random number below `n`: draws above the largest multiple of `n` are redrawn, so
/// no code is likelier than another.
fn random_below(n: u32) -> u32 {
    let limit = u32::MAX - u32::MAX % n;
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).expect("the OS random source failed");
        let x = u32::from_le_bytes(b);
        if x < limit {
            return x % n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_six_digits_and_only_its_hash_is_kept() {
        let (code, stored) = new_code(1_000);
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert!(!stored.hash.contains(&code));
        assert_eq!(stored.hash.len(), 64);
        assert_eq!(stored.expires_ms, 1_000 + CODE_TTL_MS);
        let (other, again) = new_code(1_000);
        assert_ne!(stored.salt, again.salt, "a fresh salt per code");
        assert!(code != other || stored.hash != again.hash);
    }

    #[test]
    fn the_right_code_in_time_is_accepted_with_spaces() {
        let (code, stored) = new_code(0);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(check(Some(&stored), &spaced, 60_000), (Entry::Accepted, 0));
    }

    #[test]
    fn three_wrong_tries_burn_the_code_even_for_the_right_one() {
        let (code, mut stored) = new_code(0);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let (e, t) = check(Some(&stored), wrong, 1);
        assert_eq!(e, Entry::Wrong { tries_left: 2 });
        stored.tries = t;
        let (e, t) = check(Some(&stored), wrong, 2);
        assert_eq!(e, Entry::Wrong { tries_left: 1 });
        stored.tries = t;
        let (e, t) = check(Some(&stored), wrong, 3);
        assert_eq!(e, Entry::Burned);
        stored.tries = t;
        assert_eq!(check(Some(&stored), &code, 4).0, Entry::Burned);
    }

    #[test]
    fn an_expired_or_missing_code_is_refused() {
        let (code, stored) = new_code(0);
        assert_eq!(
            check(Some(&stored), &code, CODE_TTL_MS + 1).0,
            Entry::Expired
        );
        assert_eq!(check(None, &code, 0).0, Entry::NoCode);
    }

    #[test]
    fn codes_spread_over_all_digits() {
        let mut seen = [0u32; 10];
        for _ in 0..200 {
            let (code, _) = new_code(0);
            for b in code.bytes() {
                seen[(b - b'0') as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 60), "{seen:?}");
    }
}
