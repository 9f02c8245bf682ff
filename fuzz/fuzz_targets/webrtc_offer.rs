//! A browser's SDP offer through the console's WebRTC login path without sockets: our codec
//! choice (`webrtc.codecs` as shipped, the leg's G.711 codecs chosen by the selector) and
//! str0m's parsing and answering. An answer we give must name a codec we allow and our
//! candidate.
//!
//! Input: `[preference selector][offer]`.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use dialerd::config::WebRtcConfig;
use dialerd::media::codec::CodecKind;
use dialerd::webrtc::WebRtc;
use libfuzzer_sys::fuzz_target;

const PREFS: [&[CodecKind]; 4] = [
    &[CodecKind::Pcmu, CodecKind::Pcma],
    &[CodecKind::Pcma, CodecKind::Pcmu],
    &[CodecKind::Pcmu],
    &[CodecKind::Pcma],
];

fn webrtc() -> &'static WebRtc {
    static W: OnceLock<WebRtc> = OnceLock::new();
    W.get_or_init(|| WebRtc::new(&WebRtcConfig::default()).expect("a DTLS certificate"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(offer) = std::str::from_utf8(rest) else {
        return;
    };
    let prefs = PREFS[usize::from(sel) % PREFS.len()];
    let at: SocketAddr = "192.0.2.1:40000".parse().unwrap();
    if let Ok(answer) = webrtc().answer_offer(offer, prefs, &[at]) {
        assert!(answer.contains("192.0.2.1 40000"), "no candidate in\n{answer}");
        assert!(
            answer.contains("opus/48000")
                || prefs.iter().any(|c| answer.contains(&format!("{}/8000", c.name()))),
            "no allowed codec in\n{answer}"
        );
    }
});
