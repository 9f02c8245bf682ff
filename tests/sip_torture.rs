//! RFC 4475 torture corpus: every message goes to the real UDP listener; each answer is checked
//! against `../shared/sip-torture/rfc4475/EXPECTED.tsv`, and the daemon keeps answering OPTIONS.

mod common;

use common::{options_request, status_of, udp_exchange, Daemon};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What a file may get back.
#[derive(Debug)]
enum Want {
    /// One of these status codes.
    Codes(&'static [u16]),
    /// Any final answer except 400 (handled normally).
    Not400,
    /// Any 4xx.
    Any4xx,
    /// No answer at all (responses are never answered).
    Nothing,
    /// The RFC allows a 400 or normal handling: any answer, as long as the daemon lives.
    Either,
}

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/sip-torture/rfc4475");
    assert!(
        dir.is_dir(),
        "torture corpus missing at {} (shared/ must sit beside the project)",
        dir.display()
    );
    dir
}

/// Our reading of EXPECTED.tsv's fourth column, file by file.
fn wanted() -> BTreeMap<&'static str, Want> {
    use Want::*;
    const REGISTER_NORMAL: &[u16] = &[401, 403, 404];
    BTreeMap::from([
        ("wsinv.dat", Not400),
        ("intmeth.dat", Codes(&[405, 501])),
        ("esc01.dat", Not400),
        ("escnull.dat", Codes(REGISTER_NORMAL)),
        ("esc02.dat", Codes(&[405, 501])),
        ("lwsdisp.dat", Codes(&[200])),
        ("longreq.dat", Not400),
        ("dblreq.dat", Codes(REGISTER_NORMAL)),
        ("semiuri.dat", Codes(&[200])),
        ("transports.dat", Codes(&[200])),
        ("mpart01.dat", Codes(&[405, 501, 415])),
        ("unreason.dat", Nothing),
        ("noreason.dat", Nothing),
        ("badinv01.dat", Codes(&[400])),
        ("clerr.dat", Codes(&[400])),
        ("ncl.dat", Codes(&[400])),
        ("scalar02.dat", Codes(&[400])),
        ("scalarlg.dat", Nothing),
        ("quotbal.dat", Codes(&[400])),
        ("ltgtruri.dat", Codes(&[400])),
        ("lwsruri.dat", Codes(&[400])),
        ("lwsstart.dat", Codes(&[400])),
        ("trws.dat", Codes(&[400])),
        ("escruri.dat", Codes(&[400])),
        ("baddate.dat", Either),
        ("regbadct.dat", Codes(&[400])),
        ("badaspec.dat", Either),
        ("baddn.dat", Codes(&[400])),
        ("badvers.dat", Codes(&[505])),
        ("mismatch01.dat", Codes(&[400])),
        ("mismatch02.dat", Codes(&[400])),
        ("bigcode.dat", Nothing),
        ("badbranch.dat", Codes(&[200])),
        ("insuf.dat", Codes(&[400])),
        ("unkscm.dat", Codes(&[416])),
        ("novelsc.dat", Codes(&[416])),
        ("unksm2.dat", Any4xx),
        ("bext01.dat", Codes(&[420])),
        ("invut.dat", Codes(&[415])),
        ("regaut01.dat", Codes(&[401])),
        ("multi01.dat", Codes(&[400])),
        ("mcl01.dat", Codes(&[400])),
        ("bcast.dat", Nothing),
        ("zeromf.dat", Codes(&[200])),
        ("cparam01.dat", Codes(REGISTER_NORMAL)),
        ("cparam02.dat", Codes(REGISTER_NORMAL)),
        ("regescrt.dat", Codes(REGISTER_NORMAL)),
        ("sdp01.dat", Codes(&[406])),
        ("inv2543.dat", Not400),
    ])
}

/// The Call-ID of a message (full or compact name, any case, space before the colon).
fn call_id(msg: &str) -> Option<String> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim().to_ascii_lowercase();
        (name == "call-id" || name == "i").then(|| value.trim().to_string())
    })
}

/// (method, top Via value): what RFC 3261 §17.2.3 matches server transactions on. `None` for
/// OPTIONS: it is answered without a transaction, so each message gets its own answer.
fn txn_key(msg: &str) -> Option<(String, String)> {
    let method = msg.split(' ').next()?.to_string();
    if method == "OPTIONS" {
        return None;
    }
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    let via = head.lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim().to_ascii_lowercase();
        (name == "via" || name == "v").then(|| value.trim().to_string())
    })?;
    Some((method, via))
}

/// The first final answer on `sock` carrying `id` as Call-ID (answers to earlier messages,
/// such as Timer G retransmissions of an INVITE's 404, are skipped).
fn answer_to(sock: &std::net::UdpSocket, id: Option<String>, wait: Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let n = sock.recv(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") && call_id(&text) == id {
            return Some(text);
        }
    }
}

#[test]
fn every_torture_message_gets_the_expected_answer_and_the_daemon_survives() {
    let dir = corpus();
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let files: Vec<&str> = expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let wanted = wanted();
    assert_eq!(files.len(), 49);
    for f in &files {
        assert!(
            wanted.contains_key(f),
            "{f} is in EXPECTED.tsv but not in this test's table"
        );
    }

    // Answer at the source port: the corpus Vias name hosts and ports we cannot listen on.
    // The sender is a trunk, so INVITEs are routed (404) rather than refused (403).
    let trunk =
        "[[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\n";
    let d = Daemon::start_with(trunk, &[("DIALERD__SIP__FORCE_RPORT", "true")]);
    // One socket, as one peer: some files repeat an earlier file's branch, sent-by and method,
    // which RFC 3261 §17.2.3 matches as a retransmission answered to the first sender.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut failures = Vec::new();
    let mut first_with_key: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
    for file in files {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // A repeat of an earlier transaction is answered with that transaction's response.
        let expect_id = match txn_key(&text) {
            Some(key) => first_with_key
                .entry(key)
                .or_insert_with(|| call_id(&text))
                .clone(),
            None => call_id(&text),
        };
        let wait = match wanted[file] {
            Want::Nothing => Duration::from_millis(300),
            _ => Duration::from_secs(3),
        };
        sock.send_to(&bytes, d.sip).unwrap();
        let answer = answer_to(&sock, expect_id, wait);
        let code = answer.as_deref().map(status_of);
        // A provisional (100 Trying for INVITE) is not the answer; read on for the final.
        let ok = match (&wanted[file], code) {
            (Want::Nothing, None) => true,
            (Want::Nothing, Some(_)) => false,
            (_, None) => false,
            (Want::Codes(c), Some(code)) => c.contains(&code),
            (Want::Not400, Some(code)) => code != 400,
            (Want::Any4xx, Some(code)) => (400..500).contains(&code),
            (Want::Either, Some(_)) => true,
        };
        if !ok {
            failures.push(format!(
                "{file}: wanted {:?}, got {:?}",
                wanted[file], answer
            ));
        }
        // Details that matter beyond the code.
        if let Some(a) = &answer {
            match file {
                "bext01.dat" => assert!(
                    a.contains("\r\nUnsupported: "),
                    "420 without Unsupported: {a}"
                ),
                "invut.dat" => assert!(
                    a.contains("\r\nAccept: application/sdp"),
                    "415 without Accept: {a}"
                ),
                "regaut01.dat" => assert!(
                    a.contains("\r\nWWW-Authenticate: Digest "),
                    "401 without challenge: {a}"
                ),
                "insuf.dat" => assert!(
                    a.contains("Missing"),
                    "400 should name the missing header: {a}"
                ),
                _ => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "torture answers off:\n{}",
        failures.join("\n")
    );

    let answer = udp_exchange(
        d.sip,
        &options_request("after-torture"),
        Duration::from_secs(3),
    )
    .expect("daemon stopped answering after the torture corpus");
    assert_eq!(status_of(&answer), 200);
    let (_, metrics) = d.get("/metrics");
    let parse_errors = common::metric(&metrics, "dialerd_sip_parse_errors_total").unwrap() as u64;
    assert!(
        parse_errors >= 20,
        "bad messages should be counted: {parse_errors}"
    );
}

#[test]
fn strict_routing_answers_at_the_via_port_without_rport() {
    let d = Daemon::start("");
    // The Via names a host we are not and a port we listen on, and we send from another port:
    // the answer goes to the source address (received) at the Via's port.
    let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    target
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let port = target.local_addr().unwrap().port();
    let msg = String::from_utf8(options_request("strict"))
        .unwrap()
        .replace(
            "127.0.0.1:9;branch=z9hG4bKstrict;rport",
            &format!("probe.example:{port};branch=z9hG4bKstrict"),
        );
    assert_eq!(
        udp_exchange(d.sip, msg.as_bytes(), Duration::from_millis(300)),
        None,
        "answered at the source port"
    );
    let mut buf = [0u8; 4096];
    let n = target.recv(&mut buf).expect("no answer at the Via port");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(status_of(&answer), 200);
    assert!(answer.contains(";received=127.0.0.1"), "{answer}");
}

#[test]
fn inputs_that_crashed_the_fuzzer_leave_the_daemon_answering() {
    // Each of these panicked the wire parser once, which ran in the SIP endpoint's loop: one
    // datagram stopped all SIP while the process stayed up.
    let d = Daemon::start("");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for bytes in [
        &b"SIP\xcc\x9com>;tag=39a\r\n\r\n"[..],
        "INVITE x SIP\u{cc}\r\n\r\n".as_bytes(),
    ] {
        sock.send_to(bytes, d.sip).unwrap();
    }
    let answer = udp_exchange(
        d.sip,
        &options_request("after-fuzz"),
        Duration::from_secs(3),
    )
    .expect("daemon stopped answering after a fuzzer's crash input");
    assert_eq!(status_of(&answer), 200);
}
