//! Campaign prompts over the real binary: a safe-harbour message uploaded in any WAV format is
//! kept converted, and power and predictive calling run only while a campaign has one.

mod common;

use common::api::{campaign, start, user, Api, ADMIN};
use common::http_request_bytes;
use serde_json::{json, Value};

/// A WAV file of `seconds` of a 440 Hz tone at `rate`, `channels` channels, 16-bit.
fn tone_wav(seconds: f64, rate: u32, channels: u16) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for i in 0..(seconds * f64::from(rate)) as u32 {
        let v = (f64::from(i) * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin();
        for _ in 0..channels {
            w.write_sample((v * 12000.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
    out.into_inner()
}

/// `PUT …/prompts/{name}` with `body` as `kind`: (status, JSON answer).
fn upload(api: &Api, c: i64, name: &str, kind: &str, body: &[u8]) -> (u16, Value) {
    let auth = format!("Bearer {}", api.token);
    let (s, _, text) = http_request_bytes(
        api.addr,
        "PUT",
        &format!("/api/v1/campaigns/{c}/prompts/{name}"),
        &[("Authorization", &auth), ("Content-Type", kind)],
        body,
    );
    (s, serde_json::from_slice(&text).unwrap_or(Value::Null))
}

fn enable(api: &Api, c: i64) -> (u16, Value) {
    api.call(
        "PATCH",
        &format!("/api/v1/campaigns/{c}"),
        Some(json!({"status": "enabled"})),
    )
}

both_stores! {
    fn power_and_predictive_need_a_safe_harbour_message_uploaded_as_any_wav() {
        let d = start();
        let admin = Api::new(&d, ADMIN);
        let (c, task) = campaign(&admin, "Spring");
        let task_path = format!("/api/v1/campaigns/{c}/tasks/{task}");
        admin.ok(
            "PATCH",
            &task_path,
            Some(json!({"settings": {"queue": "sales", "dial_mode": "predictive"}})),
        );

        // A predictive campaign without the message may not start; the answer names the prompt.
        let (s, p) = enable(&admin, c);
        assert_eq!(s, 409, "{p}");
        assert!(
            p["detail"].as_str().unwrap().contains("safe_harbour"),
            "{p}"
        );
        assert_eq!(
            admin.ok("GET", &format!("/api/v1/campaigns/{c}"), None)["status"],
            "disabled"
        );

        // Uploads that are not a usable WAV are refused and store nothing.
        let (s, p) = upload(&admin, c, "safe_harbour", "text/plain", b"hello");
        assert_eq!((s, p["field"].as_str()), (415, Some("Content-Type")), "{p}");
        let (s, p) = upload(&admin, c, "safe_harbour", "audio/wav", b"RIFF....WAVEjunk");
        assert_eq!((s, p["field"].as_str()), (422, Some("body")), "{p}");
        let (s, p) = upload(
            &admin,
            c,
            "safe_harbour",
            "audio/wav",
            &tone_wav(1.0, 8000, 1),
        );
        assert_eq!((s, p["field"].as_str()), (422, Some("body")), "{p}");
        assert!(p["detail"].as_str().unwrap().contains("1.0 s"), "{p}");
        let (s, p) = upload(
            &admin,
            c,
            "safe_harbour",
            "audio/wav",
            &tone_wav(31.0, 8000, 1),
        );
        assert_eq!(s, 422, "{p}");
        let (s, p) = upload(&admin, c, "goodbye", "audio/wav", &tone_wav(3.0, 8000, 1));
        assert_eq!((s, p["field"].as_str()), (422, Some("name")), "{p}");
        assert_eq!(
            admin.ok("GET", &format!("/api/v1/campaigns/{c}/prompts"), None),
            json!([])
        );

        // Roles: a backoffice user may not upload; a supervisor may listen.
        let (_, bo) = user(&admin, "bo", "backoffice");
        let (s, _) = upload(&bo, c, "safe_harbour", "audio/wav", &tone_wav(3.0, 8000, 1));
        assert_eq!(s, 403);

        // 5 s of 16 kHz stereo goes in, kept as 8 kHz mono: 40,000 samples of the same tone.
        let (s, info) = upload(
            &admin,
            c,
            "safe_harbour",
            "audio/wave",
            &tone_wav(5.0, 16000, 2),
        );
        assert_eq!(s, 200, "{info}");
        assert_eq!(
            (&info["name"], &info["seconds"], &info["updated_by"]),
            (&json!("safe_harbour"), &json!(5.0), &json!("admin"))
        );
        let (_, sup) = user(&admin, "sup", "supervisor");
        let auth = format!("Bearer {}", sup.token);
        let (s, kind, wav) = http_request_bytes(
            d.http,
            "GET",
            &format!("/api/v1/campaigns/{c}/prompts/safe_harbour"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!((s, kind.as_str()), (200, "audio/wav"));
        let reader = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (8000, 1, 16)
        );
        let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
        assert_eq!(samples.len(), 40_000);
        // A 440 Hz tone crosses zero 880 times a second.
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!(
            (4350..=4450).contains(&crossings),
            "{crossings} zero crossings"
        );

        // Now it starts; the message cannot be removed while it may run predictive calls.
        let (s, p) = enable(&admin, c);
        assert_eq!((s, &p["status"]), (200, &json!("enabled")), "{p}");
        let prompt = format!("/api/v1/campaigns/{c}/prompts/safe_harbour");
        let (s, p) = admin.call("DELETE", &prompt, None);
        assert_eq!(s, 409, "{p}");
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "disabled"})),
        );
        let (s, _) = admin.call("DELETE", &prompt, None);
        assert_eq!(s, 204);
        let (s, _) = admin.call("GET", &prompt, None);
        assert_eq!(s, 404);

        // Preview and progressive run without it, but a running campaign cannot gain a power or
        // predictive task while it has none.
        let (c2, task2) = campaign(&admin, "Summer");
        let (s, p) = enable(&admin, c2);
        assert_eq!(s, 200, "{p}");
        let (s, p) = admin.call(
            "PATCH",
            &format!("/api/v1/campaigns/{c2}/tasks/{task2}"),
            Some(json!({"settings": {"queue": "sales", "dial_mode": "power"}})),
        );
        assert_eq!(s, 409, "{p}");
        let (s, p) = admin.call(
            "POST",
            &format!("/api/v1/campaigns/{c2}/tasks"),
            Some(json!({"name": "more", "kind": "call", "settings": {"queue": "sales", "dial_mode": "predictive"}})),
        );
        assert_eq!(s, 409, "{p}");
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c2}/tasks/{task2}"),
            Some(json!({"settings": {"queue": "sales", "dial_mode": "preview"}})),
        );
    }
}
