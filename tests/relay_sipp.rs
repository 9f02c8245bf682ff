//! The relay route between two real SIPps: a caller streaming 7 s of PCMA in 20 ms packets
//! (the load pcap) and a carrier echoing RTP (`-rtp_echo`). Every packet dialerd receives is
//! sent on, and the echo of each packet the caller sent comes back through dialerd.

mod common;

use common::Daemon;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn sipp_audio_crosses_the_relay_both_ways_without_loss() {
    let carrier_port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let work = tempfile::tempdir().unwrap();
    let mut carrier = Command::new("sipp")
        .current_dir(work.path())
        .args(["-sn", "uas", "-rtp_echo", "-i", "127.0.0.1", "-p"])
        .arg(carrier_port.to_string())
        .args(["-mp", "33000", "-m", "3", "-nostdin", "-timeout", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("SIPp is not installed: ./scripts/test installs sip-tester");
    let d = Daemon::start(&format!(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {carrier_port}\n\
         keepalive = \"0s\"\n[sip]\nrelay_prefix = \"9\"\n\
         [media]\nrtp_port_min = 31800\nrtp_port_max = 31899\n"
    ));
    let load = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-scenarios/load");
    let caller = Command::new("sipp")
        .current_dir(&load)
        .arg("-sf")
        .arg(load.join("uac_pcma_20ms.xml"))
        .args([
            "-s",
            "91000",
            "-i",
            "127.0.0.1",
            "-mp",
            "34000",
            "-m",
            "3",
            "-r",
            "3",
        ])
        .args([
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
            "-trace_err",
        ])
        .arg(d.sip.to_string())
        .output()
        .unwrap();
    let carrier_done = carrier.wait().unwrap();
    assert_eq!(
        caller.status.code(),
        Some(0),
        "caller: {}",
        String::from_utf8_lossy(&caller.stderr)
    );
    assert!(carrier_done.success(), "the carrier SIPp failed");
    let (_, metrics) = d.get("/metrics");
    let m = |s: &str| common::metric(&metrics, s).unwrap_or(0.0);
    let (rx, tx) = (
        m("dialerd_rtp_packets_total{direction=\"in\"}"),
        m("dialerd_rtp_packets_total{direction=\"out\"}"),
    );
    // 3 calls × 350 packets, each received from the caller and again from the echo.
    assert!(rx >= 0.95 * 2100.0, "only {rx} packets in:\n{metrics}");
    assert_eq!(rx, tx, "every packet received is sent on");
}
