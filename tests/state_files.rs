//! What the daemon keeps in its state directory is not open to other users, even when it is
//! started from a shell whose umask is the usual 022 (outside systemd and its `UMask=0027`).

mod common;

use common::ua::TestUa;
use common::Daemon;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn all_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_under(&path));
        }
        out.push(path);
    }
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn database_wal_and_recordings_are_created_closed_to_others_under_umask_022() {
    // SAFETY: sets this test process's mask, inherited by the daemon it starts.
    unsafe { libc::umask(0o022) };
    // A relayed call through a trunk that is the daemon itself, recorded.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "[[trunks]]\nname = \"self\"\nhost = \"127.0.0.1\"\nport = {port}\nkeepalive = \"0s\"\ninbound_from = [\"127.0.0.1\"]\n\
         [sip]\nprompt_number = \"1001\"\nrelay_prefix = \"9\"\n\
         [media]\nrtp_port_min = 31600\nrtp_port_max = 31699\nrecord_relay = true\n"
    );
    let listen = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(&cfg, &[("DIALERD__SIP__LISTEN", listen.as_str())]);
    let ua = TestUa::new(d.sip, "perm-1");
    ua.invite("91001");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    let (_, bye) = ua.receive_until_bye(Duration::from_secs(15));
    assert!(bye, "the relayed call did not end");

    let state = d.dir.path().join("state");
    let deadline = Instant::now() + Duration::from_secs(10);
    let files = loop {
        let files = all_under(&state);
        let has = |suffix: &str| files.iter().any(|p| p.to_string_lossy().ends_with(suffix));
        if has("dialerd.db") && has("dialerd.db-wal") && has(".wav") {
            break files;
        }
        assert!(Instant::now() < deadline, "missing files: {files:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(mode(&state), 0o750, "state directory {:o}", mode(&state));
    let open: Vec<String> = files
        .iter()
        .filter(|p| mode(p) & 0o027 != 0)
        .map(|p| format!("{:o} {}", mode(p), p.display()))
        .collect();
    assert!(open.is_empty(), "open to group writes or others: {open:#?}");
}
