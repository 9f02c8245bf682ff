//! RFC 2833/4733 DTMF from SIPp (its own telephone-event captures) reaches the call layer as
//! the right digits, once each.

mod common;

use common::Daemon;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn sipp_dtmf_reaches_the_call_layer_as_digits() {
    let mut d = Daemon::start(
        "[[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = 5070\nkeepalive = \"0s\"\n\
         [sip]\necho_number = \"1000\"\n",
    );
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-scenarios/call_echo_dtmf.xml");
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("sipp")
        .current_dir(work.path())
        .arg("-sf")
        .arg(&scenario)
        .args([
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-timeout",
            "30s",
            "-timeout_error",
        ])
        .args(["-nostdin", "-trace_err"])
        .arg(d.sip.to_string())
        .output()
        .expect("SIPp is not installed: ./scripts/test installs sip-tester");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut digits = String::new();
    while let Some(line) = d.try_wait_log("dtmf received", Duration::from_secs(2)) {
        digits.push_str(line["fields"]["digit"].as_str().unwrap_or("?"));
    }
    assert_eq!(digits, "123");
}
