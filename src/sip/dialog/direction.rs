//! The media direction of an answer to a re-offer (RFC 3264 §6.1, §8.4): a peer that puts the
//! call on hold offers `sendonly` (or `inactive`) and must get `recvonly` (or `inactive`) back,
//! not our last `sendrecv`. Our last SDP is reused with the mirrored direction, its `o=` version
//! raised when it changed (§8).

/// The direction attributes, as written in SDP.
const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

/// The direction an offer asks for: its first media section's attribute, else the session's,
/// else `sendrecv`.
fn offered(offer: &str) -> &'static str {
    let mut session = None;
    let mut in_media = false;
    for line in offer.lines().map(str::trim) {
        if line.starts_with("m=") {
            if in_media {
                break;
            }
            in_media = true;
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        if let Some(d) = DIRECTIONS.iter().find(|d| **d == attr) {
            if in_media {
                return d;
            }
            session = Some(*d);
        }
    }
    session.unwrap_or("sendrecv")
}

/// What answers `offered`: sendonly ↔ recvonly, the others as they are.
fn mirrored(offered: &str) -> &'static str {
    match offered {
        "sendonly" => "recvonly",
        "recvonly" => "sendonly",
        "inactive" => "inactive",
        _ => "sendrecv",
    }
}

/// Our answer to `offer` made from our last SDP `ours`: its direction attributes replaced by
/// the mirror of the offer's (one, after the first `m=` line), the `o=` version raised when
/// that changed anything. SDP we cannot read is returned as it is.
pub fn answer(offer: &[u8], ours: &[u8]) -> Vec<u8> {
    let (Ok(offer), Ok(text)) = (std::str::from_utf8(offer), std::str::from_utf8(ours)) else {
        return ours.to_vec();
    };
    if offer.trim().is_empty() {
        // No offer (a re-INVITE asking for ours): ours is the offer, as it was.
        return ours.to_vec();
    }
    let want = mirrored(offered(offer));
    if offered(text) == want {
        return ours.to_vec();
    }
    let mut out = Vec::new();
    let mut placed = false;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line
            .strip_prefix("a=")
            .is_some_and(|a| DIRECTIONS.contains(&a))
        {
            continue;
        }
        out.push(line.to_string());
        if line.starts_with("m=") && !placed {
            out.push(format!("a={want}"));
            placed = true;
        }
    }
    let mut rebuilt = out.join("\r\n");
    rebuilt.push_str("\r\n");
    // A changed SDP carries a higher version (the third field of o=).
    let rebuilt: Vec<String> = rebuilt
        .split("\r\n")
        .map(|l| match l.strip_prefix("o=") {
            Some(o) => {
                let mut f: Vec<String> = o.split(' ').map(str::to_string).collect();
                if let Some(v) = f.get_mut(2).and_then(|v| v.parse::<u64>().ok()) {
                    f[2] = (v + 1).to_string();
                }
                format!("o={}", f.join(" "))
            }
            None => l.to_string(),
        })
        .collect();
    rebuilt.join("\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str =
        "v=0\r\no=- 2 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                        m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

    fn offer(direction: &str) -> String {
        format!(
            "v=0\r\no=- 1 2 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\n{direction}"
        )
    }

    fn answered(direction: &str) -> String {
        String::from_utf8(answer(offer(direction).as_bytes(), OURS.as_bytes())).unwrap()
    }

    #[test]
    fn hold_is_answered_recvonly_with_a_new_version() {
        let a = answered("a=sendonly\r\n");
        assert!(a.contains("\r\na=recvonly\r\n"), "{a}");
        assert!(!a.contains("sendrecv"), "{a}");
        assert!(a.contains("o=- 2 3 IN IP4 192.0.2.10"), "{a}");
        assert!(a.contains("a=rtpmap:0 PCMU/8000"), "{a}");
    }

    #[test]
    fn inactive_recvonly_and_resume_are_mirrored() {
        assert!(answered("a=inactive\r\n").contains("a=inactive"));
        assert!(answered("a=recvonly\r\n").contains("a=sendonly"));
        // Resuming (sendrecv, or no attribute): our SDP as it was, same version.
        assert_eq!(answered("a=sendrecv\r\n"), OURS);
        assert_eq!(answered(""), OURS);
    }

    #[test]
    fn a_session_level_direction_counts_and_no_offer_keeps_ours() {
        let session = "v=0\r\no=- 1 2 IN IP4 203.0.113.5\r\ns=-\r\na=sendonly\r\nt=0 0\r\n\
                       m=audio 4000 RTP/AVP 0\r\n";
        let a = String::from_utf8(answer(session.as_bytes(), OURS.as_bytes())).unwrap();
        assert!(a.contains("a=recvonly"), "{a}");
        assert_eq!(answer(b"", OURS.as_bytes()), OURS.as_bytes());
    }

    #[test]
    fn resuming_after_hold_is_answered_sendrecv_again() {
        let held = answer(offer("a=sendonly\r\n").as_bytes(), OURS.as_bytes());
        let resumed = String::from_utf8(answer(offer("").as_bytes(), &held)).unwrap();
        assert!(resumed.contains("a=sendrecv"), "{resumed}");
        assert!(!resumed.contains("recvonly"), "{resumed}");
        assert!(resumed.contains("o=- 2 4 IN IP4"), "{resumed}");
    }
}
