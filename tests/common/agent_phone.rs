//! SIPp as an agent's phone: the scenarios in `sip-scenarios/agent/` and the ports they need.

use std::net::{SocketAddr, UdpSocket};
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

/// A port for SIPp's `-mp` with `-rtp_echo`: free on 127.0.0.1 right now, and so is the port
/// two above it, which SIPp binds too (for video); SIPp exits when it cannot.
pub fn free_rtp_echo_port() -> u16 {
    loop {
        let audio = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = audio.local_addr().unwrap().port();
        if port < u16::MAX - 2 && UdpSocket::bind(("127.0.0.1", port + 2)).is_ok() {
            return port;
        }
    }
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

/// Registers the SIP account `user` with digest, its Contact on `phone_port` (where another
/// SIPp answers as the phone); panics unless the registrar answered 200.
pub fn register(user: &str, password: &str, phone_port: u16, daemon: SocketAddr) {
    let out = sipp()
        .arg("-sf")
        .arg(scenario("register.xml"))
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-key", "phone_port", &phone_port.to_string()])
        .args(["-key", "sip_user", user, "-au", user, "-ap", password])
        .args(["-m", "1", "-timeout", "20", "-timeout_error", "-nostdin"])
        .arg(daemon.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "register.xml: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
