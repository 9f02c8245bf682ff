//! SIPp as an agent's phone: the scenarios in `sip-scenarios/agent/` and the ports they need.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A scenario of `sip-scenarios/agent/`.
pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("sip-scenarios/agent/{name}"))
}

/// A UDP port free on 127.0.0.1 right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A SIPp command reading nothing and printing its errors to a pipe; panics when SIPp is
/// missing.
pub fn sipp() -> Command {
    assert!(
        Command::new("sipp").arg("-v").output().is_ok(),
        "SIPp is not installed: ./scripts/test installs Debian's sip-tester"
    );
    let mut c = Command::new("sipp");
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}
