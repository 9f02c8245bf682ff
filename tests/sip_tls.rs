//! SIP over TLS against the real daemon, with OpenSSL's command-line tools as the far ends and
//! a throwaway CA: a client's OPTIONS over TLS is answered on the connection it came on, with
//! the certificate from `sip.tls_certificate` (a renewed one after SIGHUP); a TLS trunk
//! verifies the carrier's certificate for its name and keeps it up with OPTIONS over TLS, and a
//! carrier whose certificate does not carry the name gets nothing. The HTTP listener speaks
//! HTTPS with `http.tls_cert`, renewed on SIGHUP too.

mod common;

use common::Daemon;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A CA and certificates it signs, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=dialerd test CA",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .expect("openssl is not installed: ./scripts/test installs it");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `name.pem` and `name.key`: a certificate for `cn`, with `sans` as subjectAltName.
    fn issue(&self, name: &str, cn: &str, sans: &str) {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(self.path(&ext), format!("subjectAltName={sans}\n")).unwrap();
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
}

/// A process killed at the end of the test.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines a child prints on stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Lines until one contains `want` (all of them), or `None` after `limit`.
fn until(rx: &mpsc::Receiver<String>, want: &str, limit: Duration) -> Option<Vec<String>> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let hit = line.contains(want);
        seen.push(line);
        if hit {
            return Some(seen);
        }
    }
    None
}

fn tls_port(d: &Daemon) -> u16 {
    let line = d
        .seen_log("sip listening (tls)")
        .expect("no TLS listener logged");
    line["fields"]["addr"]
        .as_str()
        .unwrap()
        .parse::<std::net::SocketAddr>()
        .unwrap()
        .port()
}

/// `openssl s_client` to `port`, verifying the certificate for `name`, sending `bytes`; its
/// output lines.
fn s_client(pki: &Pki, port: u16, name: &str, bytes: &[u8]) -> (Killed, mpsc::Receiver<String>) {
    let mut c = Command::new("openssl")
        .current_dir(pki.dir.path())
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            "ca.pem",
        ])
        .args(["-verify_return_error", "-verify_hostname", name, "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.stdin.as_mut().unwrap().write_all(bytes).unwrap();
    let rx = lines_of(&mut c);
    (Killed(c), rx)
}

/// An OPTIONS over TLS to the daemon's TLS port, its certificate verified for `sip.test`.
fn options_over_tls(pki: &Pki, port: u16) -> (Killed, mpsc::Receiver<String>) {
    let local = "127.0.0.1:5999";
    let msg = format!(
        "OPTIONS sip:dialerd@127.0.0.1:{port};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-tls-opt-1;alias\r\nMax-Forwards: 70\r\n\
         From: <sips:probe@sip.test>;tag=tls1\r\nTo: <sips:dialerd@127.0.0.1:{port}>\r\n\
         Call-ID: tls-options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    s_client(pki, port, "sip.test", msg.as_bytes())
}

fn start(pki: &Pki, extra: &str) -> Daemon {
    let config = format!(
        "[log]\nlevel = \"debug\"\n[shutdown]\ndrain_timeout = \"1s\"\n\
         [sip]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\n\
         tls_certificate = \"{}\"\ntls_private_key = \"{}\"\n{extra}",
        pki.path("server.pem").display(),
        pki.path("server.key").display(),
    );
    Daemon::start(&config)
}

#[test]
fn options_over_tls_are_answered_with_the_configured_certificate_which_sighup_renews() {
    let pki = Pki::new();
    pki.issue("server", "first", "DNS:sip.test,IP:127.0.0.1");
    let d = start(&pki, "");
    let port = tls_port(&d);
    let (_c, rx) = options_over_tls(&pki, port);
    let seen =
        until(&rx, "SIP/2.0 200", Duration::from_secs(10)).expect("no 200 to the OPTIONS over TLS");
    let all = seen.join("\n");
    assert!(
        all.contains("subject=CN=first") || all.contains("subject=CN = first"),
        "{all}"
    );
    assert!(all.contains("Verify return code: 0 (ok)"), "{all}");
    let rest = until(&rx, "CSeq:", Duration::from_secs(5))
        .unwrap_or_default()
        .join("\n");
    assert!(rest.contains("Via: SIP/2.0/TLS"), "{rest}");

    // A renewed certificate at the same paths is presented after SIGHUP.
    pki.issue("server", "renewed", "DNS:sip.test,IP:127.0.0.1");
    d.signal(libc::SIGHUP);
    let mut d = d;
    d.wait_log("sip tls certificate reloaded", Duration::from_secs(5));
    let (_c, rx) = options_over_tls(&pki, port);
    let seen = until(&rx, "SIP/2.0 200", Duration::from_secs(10)).expect("no 200 after renewal");
    let all = seen.join("\n");
    assert!(
        all.contains("CN=renewed") || all.contains("CN = renewed"),
        "{all}"
    );
}

/// `openssl s_server` as a TLS carrier presenting `carrier.pem`; its output lines.
fn carrier(pki: &Pki, extra: &[&str]) -> (Killed, u16, mpsc::Receiver<String>) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut c = Command::new("openssl")
        .current_dir(pki.dir.path())
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", "carrier.pem", "-key", "carrier.key", "-quiet"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut c);
    // s_server prints nothing when it listens: wait for the port (slow on a busy machine).
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s_server not listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(c), port, rx)
}

fn tls_trunk(pki: &Pki, port: u16, name: &str) -> String {
    format!(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {port}\ntransport = \"tls\"\n\
         tls_ca = \"{}\"\ntls_server_name = \"{name}\"\nkeepalive = \"1s\"\n",
        pki.path("ca.pem").display()
    )
}

#[test]
fn a_tls_trunk_verifies_the_carriers_certificate_for_its_name() {
    let pki = Pki::new();
    pki.issue("server", "dialerd", "DNS:sip.test,IP:127.0.0.1");
    pki.issue("carrier", "carrier", "DNS:carrier.test");

    // The right name: the keepalive OPTIONS arrives over TLS, Via TLS, sips Contact.
    let (_s, port, rx) = carrier(&pki, &[]);
    let _d = start(&pki, &tls_trunk(&pki, port, "carrier.test"));
    let seen = until(&rx, "CSeq: 1 OPTIONS", Duration::from_secs(10))
        .expect("no OPTIONS over TLS reached the carrier");
    let all = seen.join("\n");
    assert!(all.contains("OPTIONS sip:127.0.0.1:"), "{all}");
    assert!(all.contains("Via: SIP/2.0/TLS 127.0.0.1:"), "{all}");

    // A certificate without the trunk's name: no connection, nothing sent.
    let (_s, port, rx) = carrier(&pki, &[]);
    let mut d = start(&pki, &tls_trunk(&pki, port, "other.test"));
    d.wait_log("sip tls connection failed", Duration::from_secs(10));
    assert!(
        until(&rx, "OPTIONS", Duration::from_secs(2)).is_none(),
        "a request went to a carrier whose certificate is not for the trunk"
    );
}

#[test]
fn a_carrier_that_asks_for_a_client_certificate_gets_the_trunks() {
    let pki = Pki::new();
    pki.issue("server", "dialerd", "DNS:sip.test,IP:127.0.0.1");
    pki.issue("carrier", "carrier", "DNS:carrier.test");
    pki.issue("client", "dialerd-client", "DNS:dialerd.test");
    let verify = ["-Verify", "1", "-CAfile", "ca.pem", "-verify_return_error"];
    // Without one configured, the carrier refuses the handshake: nothing arrives.
    // (Under TLS 1.3 the carrier refuses after our side has finished: keepalives are sent
    // every second, none is read.)
    let (_s, port, rx) = carrier(&pki, &verify);
    let d = start(&pki, &tls_trunk(&pki, port, "carrier.test"));
    assert!(until(&rx, "OPTIONS", Duration::from_secs(4)).is_none());
    drop(d);
    // With tls_client_certificate, the keepalive gets through, its Via offering the connection
    // for the carrier's own requests (RFC 5923 alias): the carrier sends one back over it.
    let with_crlf = [&verify[..], &["-crlf"]].concat();
    let (mut s, port, rx) = carrier(&pki, &with_crlf);
    let trunk = tls_trunk(&pki, port, "carrier.test")
        + &format!(
            "tls_client_certificate = \"{}\"\ntls_client_key = \"{}\"\n",
            pki.path("client.pem").display(),
            pki.path("client.key").display()
        );
    let _d = start(&pki, &trunk);
    let seen = until(&rx, "CSeq: 1 OPTIONS", Duration::from_secs(10))
        .expect("no OPTIONS through a carrier that checks client certificates")
        .join("\n");
    let via = seen.lines().find(|l| l.starts_with("Via: ")).unwrap_or("");
    assert!(via.ends_with(";alias"), "{seen}");
    let request = format!(
        "OPTIONS sip:dialerd@127.0.0.1 SIP/2.0\nVia: SIP/2.0/TLS 127.0.0.1:{port};branch=z9hG4bKback1\n\
         Max-Forwards: 70\nFrom: <sip:carrier@carrier.test>;tag=c1\nTo: <sip:dialerd@127.0.0.1>\n\
         Call-ID: back-1@carrier.test\nCSeq: 7 OPTIONS\nContent-Length: 0\n\n"
    );
    let stdin = s.0.stdin.as_mut().unwrap();
    stdin.write_all(request.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let answer = until(&rx, "CSeq: 7 OPTIONS", Duration::from_secs(10))
        .expect("the carrier's request over dialerd's connection got no answer")
        .join("\n");
    assert!(answer.contains("SIP/2.0 200"), "{answer}");
}

#[test]
fn check_config_names_a_missing_key_and_an_unreadable_ca() {
    let pki = Pki::new();
    pki.issue("server", "dialerd", "DNS:sip.test");
    let dir = tempfile::tempdir().unwrap();
    let check = |config: &str| {
        let path = dir.path().join("dialerd.toml");
        std::fs::write(&path, config).unwrap();
        let out = common::command()
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cert = pki.path("server.pem");
    let (ok, err) = check(&format!(
        "[sip]\ntls_listen = [\"127.0.0.1:5061\"]\ntls_certificate = \"{}\"\n",
        cert.display()
    ));
    assert!(!ok && err.contains("sip.tls_private_key"), "{err}");
    let (ok, err) = check(&format!(
        "[[trunks]]\nname = \"c\"\nhost = \"127.0.0.1\"\ntransport = \"tls\"\ntls_ca = \"{}\"\n",
        Path::new("/nonexistent/ca.pem").display()
    ));
    assert!(!ok && err.contains("trunks[0].tls_ca"), "{err}");
    let (ok, err) = check(&format!(
        "[sip]\ntls_listen = [\"127.0.0.1:5061\"]\ntls_certificate = \"{}\"\ntls_private_key = \"{}\"\n",
        cert.display(),
        pki.path("server.key").display()
    ));
    assert!(ok, "{err}");
    // HTTPS: both files, and ones rustls takes.
    let (ok, err) = check(&format!("[http]\ntls_cert = \"{}\"\n", cert.display()));
    assert!(!ok && err.contains("http.tls_key"), "{err}");
    let (ok, err) = check(&format!(
        "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        pki.path("missing.key").display()
    ));
    assert!(!ok && err.contains("http.tls_cert"), "{err}");
    let (ok, err) = check(&format!(
        "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        pki.path("server.key").display()
    ));
    assert!(ok, "{err}");
}

#[test]
fn the_http_listener_speaks_https_with_a_certificate_that_sighup_renews() {
    let pki = Pki::new();
    pki.issue("web", "console", "DNS:console.test,IP:127.0.0.1");
    let config = format!(
        "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        pki.path("web.pem").display(),
        pki.path("web.key").display()
    );
    let mut d = Daemon::start(&config);
    let port = d.http.port();
    let get = b"GET /agent/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let (_c, rx) = s_client(&pki, port, "console.test", get);
    let seen = until(&rx, "HTTP/1.1 200", Duration::from_secs(10))
        .expect("no 200 over HTTPS")
        .join("\n");
    assert!(seen.contains("Verify return code: 0 (ok)"), "{seen}");
    assert!(
        seen.contains("CN=console") || seen.contains("CN = console"),
        "{seen}"
    );

    // Plain HTTP on the HTTPS port gets a TLS alert, no page.
    let mut plain = std::net::TcpStream::connect(d.http).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain.write_all(get).unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP answered on the HTTPS listener"
    );

    // A renewed certificate at the same paths is presented after SIGHUP.
    pki.issue("web", "console renewed", "DNS:console.test,IP:127.0.0.1");
    d.signal(libc::SIGHUP);
    d.wait_log("https certificate reloaded", Duration::from_secs(5));
    let (_c, rx) = s_client(&pki, port, "console.test", get);
    let seen = until(&rx, "HTTP/1.1 200", Duration::from_secs(10))
        .expect("no 200 after renewal")
        .join("\n");
    assert!(seen.contains("console renewed"), "{seen}");
}
