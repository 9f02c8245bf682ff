//! SDP bodies through the parser, the writer and offer/answer: as an offer we answer, as the
//! answer to our offer, and what we write must read back and write the same again.
#![no_main]

use std::net::IpAddr;

use dialerd::media::sdp::{self, negotiate, CodecPref, LocalMedia, SdpSession, SessionDescription};
use libfuzzer_sys::fuzz_target;

fn reads_back(sd: &SessionDescription) {
    let text = sd.to_string();
    let again = SessionDescription::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("our own SDP does not parse: {e}\n{text}"));
    assert_eq!(again.to_string(), text, "writing is not stable");
}

fuzz_target!(|data: &[u8]| {
    let addr = IpAddr::from([192, 0, 2, 1]);
    let local = LocalMedia::new(addr, 40000);
    let prefs = CodecPref::defaults();
    let mut session = SdpSession::new(local.clone());
    let ours = session.offer(&prefs);
    let _ = negotiate::read_answer(&ours, data);

    let Ok(sd) = SessionDescription::parse(data) else {
        return;
    };
    reads_back(&sd);
    if let Ok(a) = negotiate::answer(&sd, &local, &prefs) {
        reads_back(&a.sdp);
    }
    let _ = session.answer(&sd, &prefs);
    if let Some(offer) = sdp::parse_offer(data) {
        if let Some(codec) = sdp::choose_codec(&offer) {
            let body = sdp::answer(addr, 40000, 7, codec, &offer);
            SessionDescription::parse(body.as_bytes()).expect("our answer parses");
        }
    }
});
