//! SDES keys never travel in clear: a leg signalled over UDP is not answered with `a=crypto`
//! (RTP/SAVP refused with 488, keys offered in RTP/AVP read past), and check-config refuses
//! `media_encryption` on a trunk that is not TLS. SRTP itself, over TLS, is run against
//! baresip in tests/interop.rs.

mod common;

use common::ua::TestUa;
use common::Daemon;

/// INVITEs are taken from trunks only: the test UA calls from one on loopback.
const CONFIG: &str = "[[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\n\
    inbound_from = [\"127.0.0.1\"]\nport = 5070\nkeepalive = \"0s\"\n\
    [sip]\necho_number = \"1000\"\n[media]\nrtp_port_min = 31300\nrtp_port_max = 31309\n";

#[test]
fn rtp_savp_over_udp_is_refused_with_488() {
    let d = Daemon::start(CONFIG);
    let ua = TestUa::new(d.sip, "savp-udp").sdes("RTP/SAVP");
    ua.invite("1000");
    let resp = ua.final_response();
    assert_eq!(common::status_of(&resp), 488, "{resp}");
    // The same phone offering plain RTP is answered: the refusal was for the keys.
    let plain = TestUa::new(d.sip, "avp-udp");
    plain.invite("1000");
    assert_eq!(common::status_of(&plain.final_response()), 200);
}

#[test]
fn keys_offered_in_rtp_avp_over_udp_get_a_plain_answer() {
    let d = Daemon::start(CONFIG);
    let ua = TestUa::new(d.sip, "avp-crypto-udp").sdes("RTP/AVP");
    ua.invite("1000");
    let resp = ua.final_response();
    assert_eq!(common::status_of(&resp), 200, "{resp}");
    assert!(resp.contains(" RTP/AVP "), "{resp}");
    assert!(
        !resp.contains("a=crypto"),
        "a key answered over UDP:\n{resp}"
    );
    ua.bye();
}

/// check-config on a config with one trunk of `transport` and `media_encryption`.
fn check_trunk(transport: &str, encryption: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dialerd.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{}\"\n[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\n\
             transport = \"{transport}\"\nmedia_encryption = \"{encryption}\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("STATE_DIRECTORY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_takes_sdes_only_on_tls_trunks() {
    for transport in ["udp", "tcp"] {
        for encryption in ["srtp", "optional"] {
            let (ok, err) = check_trunk(transport, encryption);
            assert!(!ok, "{transport}/{encryption} accepted");
            assert!(
                err.contains("trunks[0].media_encryption") && err.contains("tls"),
                "{transport}/{encryption}: {err}"
            );
        }
        let (ok, err) = check_trunk(transport, "none");
        assert!(ok, "{transport}/none: {err}");
    }
    for encryption in ["srtp", "optional", "none"] {
        let (ok, err) = check_trunk("tls", encryption);
        assert!(ok, "tls/{encryption}: {err}");
    }
    let (ok, err) = check_trunk("tls", "sdes");
    assert!(
        !ok && err.contains("\"sdes\" is not a media encryption"),
        "{err}"
    );
}
