//! Runs the real `dialerd` binary for integration tests and talks to it over loopback.
#![allow(dead_code)]

pub mod agent_phone;
pub mod api;
pub mod dialer;
pub mod pg;
pub mod phone;
pub mod rtp;
pub mod ua;
pub mod webdriver;
pub mod ws;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dialerd")
}

/// A command for the binary with a clean environment: no inherited overrides, systemd vars or
/// proxies.
pub fn command() -> Command {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("DIALERD__") {
            cmd.env_remove(k);
        }
    }
    for k in [
        "RUST_LOG",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "STATE_DIRECTORY",
        "JOURNAL_STREAM",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(k);
    }
    cmd
}

/// A running daemon whose JSON log lines are collected.
pub struct Daemon {
    pub child: Child,
    pub http: SocketAddr,
    pub sip: SocketAddr,
    pub dir: tempfile::TempDir,
    /// The admin's API token (`DIALERD_ADMIN_TOKEN` when given, else `admin.token`).
    pub admin: String,
    lines: Receiver<Value>,
    pub seen: Vec<Value>,
}

impl Daemon {
    /// Config file path inside the daemon's temp dir.
    pub fn config_path(dir: &Path) -> PathBuf {
        dir.join("dialerd.toml")
    }

    /// Starts the daemon on `config` (TOML text), ephemeral ports via env overrides.
    pub fn start(config: &str) -> Daemon {
        Self::start_with(config, &[])
    }

    /// Like `start`, with extra environment variables.
    pub fn start_with(config: &str, env: &[(&str, &str)]) -> Daemon {
        Self::start_in(tempfile::tempdir().unwrap(), config, env)
    }

    /// The `dialerd run` command of `start_in`, its config written into `dir`.
    fn run_command(dir: &Path, config: &str, env: &[(&str, &str)]) -> Command {
        let path = Self::config_path(dir);
        std::fs::write(&path, config).unwrap();
        let mut cmd = command();
        cmd.arg("run")
            .arg("--config")
            .arg(&path)
            .env("DIALERD__HTTP__LISTEN", "127.0.0.1:0")
            .env("DIALERD__SIP__LISTEN", "127.0.0.1:0")
            .env("DIALERD__LOG__FORMAT", "json")
            .env("DIALERD__STATE_DIR", dir.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = pg::store_url(dir) {
            cmd.env("DIALERD__STORE__URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the daemon as `start_in` would, for one that must refuse to start: its exit
    /// status and stderr, once it has exited (panics when it still runs after `timeout`).
    pub fn refused(
        dir: &Path,
        config: &str,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> (ExitStatus, String) {
        let mut child = Self::run_command(dir, config, env).spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon still runs after {timeout:?}: {}",
                    reader.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, reader.join().unwrap())
    }

    /// Like `start_with`, in an existing directory (its state from an earlier run kept).
    pub fn start_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Daemon {
        let mut child = Self::run_command(dir.path(), config, env).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut d = Daemon {
            child,
            http: "0.0.0.0:0".parse().unwrap(),
            sip: "0.0.0.0:0".parse().unwrap(),
            dir,
            admin: String::new(),
            lines: rx,
            seen: Vec::new(),
        };
        let line = d.wait_log("sip listening (udp, tcp)", Duration::from_secs(20));
        d.sip = line["fields"]["addr"].as_str().unwrap().parse().unwrap();
        let line = d.wait_log("http listening", Duration::from_secs(20));
        d.http = line["fields"]["addr"].as_str().unwrap().parse().unwrap();
        d.wait_log("dialerd ready", Duration::from_secs(20));
        d.admin = match env.iter().find(|(k, _)| *k == "DIALERD_ADMIN_TOKEN") {
            Some((_, t)) => t.to_string(),
            None => std::fs::read_to_string(d.dir.path().join("state/admin.token"))
                .map(|t| t.trim().to_string())
                .unwrap_or_default(),
        };
        d
    }

    /// An API request as the admin, with an optional JSON body: (status, content type, body).
    pub fn admin_request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let (status, _, body) = api_request(self.http, &self.admin, method, path, body);
        (status, body)
    }

    /// Waits for a log line whose message is `msg`, panicking with what was seen on timeout.
    pub fn wait_log(&mut self, msg: &str, timeout: Duration) -> Value {
        self.try_wait_log(msg, timeout).unwrap_or_else(|| {
            panic!(
                "no log line {msg:?} within {timeout:?}; saw: {:#?}",
                self.seen
            )
        })
    }

    /// A log line already read whose message is `msg` (the first).
    pub fn seen_log(&self, msg: &str) -> Option<&Value> {
        self.seen.iter().find(|v| v["fields"]["message"] == msg)
    }

    /// Waits for a log line whose message is `msg`; `None` on timeout.
    pub fn try_wait_log(&mut self, msg: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v["fields"]["message"] == msg {
                        return Some(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Sends a Unix signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits for exit up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// HTTP GET on the admin listener: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET over a fresh connection.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

/// One HTTP/1.1 request with extra headers and a body: (status, content type, body).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let (status, kind, body) = http_request_bytes(addr, method, path, headers, body);
    let text = String::from_utf8(body).unwrap_or_else(|e| panic!("body not UTF-8: {e}"));
    (status, kind, text)
}

/// Like `http_request`, with the body as bytes (audio, spreadsheets).
pub fn http_request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(130))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let body = resp.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response: {head:?}"));
    let kind = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, kind, body)
}

/// Spawns `cmd` in a process group of its own, so that [`kill_group`] ends the processes it
/// forks too (Kamailio's workers outlive a SIGKILL of its main process).
pub fn spawn_group(cmd: &mut Command) -> Child {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).spawn().unwrap()
}

/// Debian's Kamailio in the foreground on `cfg` (its pid file in `dir`, listening on UDP and
/// TCP `port` of 127.0.0.1); the caller adds its `-A` defines and spawns it with
/// [`spawn_group`].
pub fn kamailio(cfg: &Path, dir: &Path, port: u16) -> Command {
    let bin = ["kamailio", "/usr/sbin/kamailio"]
        .into_iter()
        .find(|b| Command::new(b).arg("-v").output().is_ok())
        .expect("kamailio is not installed: ./scripts/test installs Debian's kamailio");
    let mut cmd = Command::new(bin);
    cmd.arg("-f")
        .arg(cfg)
        .args(["-DD", "-E", "-Y"])
        .arg(dir.join("kamailio.pid"))
        .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
        .args(["-A", &format!("LISTEN_TCP=tcp:127.0.0.1:{port}")]);
    cmd
}

/// Kamailio on conf/kamailio/dialerd-cluster.cfg in front of several nodes, its log (stderr) in
/// a file; it and its workers end when it is dropped.
pub struct ClusterProxy {
    child: Child,
    log: PathBuf,
}

impl ClusterProxy {
    /// Kamailio on UDP and TCP `port` of 127.0.0.1 with the dispatcher list `list` (written
    /// into `dir`, where its log goes too) and the further `-A` defines `defines`; returns
    /// once it listens.
    pub fn start(dir: &Path, port: u16, list: &str, defines: &[String]) -> ClusterProxy {
        let log = dir.join("kamailio.log");
        let list_file = dir.join("dialerd.list");
        std::fs::write(&list_file, list).unwrap();
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/kamailio/dialerd-cluster.cfg");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = kamailio(&cfg, dir, port);
        cmd.args(["-A", &format!("DS_LIST=\"{}\"", list_file.display())]);
        for d in defines {
            cmd.args(["-A", d]);
        }
        let child = spawn_group(
            cmd.stdin(Stdio::null())
                .stdout(file.try_clone().unwrap())
                .stderr(file),
        );
        let k = ClusterProxy { child, log };
        // Kamailio says "Listening on" before it binds its sockets: a request sent then is
        // lost. It is ready once it answers an OPTIONS to itself (retransmitted as over UDP).
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = probe.local_addr().unwrap();
        let options = format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ready;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=ready\r\nTo: <sip:127.0.0.1:{port}>\r\n\
             Call-ID: ready-{port}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 2048];
        loop {
            let _ = probe.send_to(options.as_bytes(), ("127.0.0.1", port));
            if let Ok(n) = probe.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not answer OPTIONS:\n{}",
                k.log_text()
            );
        }
        k
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ClusterProxy {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Ends a child spawned by [`spawn_group`] and every process of its group.
pub fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the group of our own child; it touches no memory.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// A command for Debian's python3, whose modules (`python3-openpyxl`, `python3-aiosmtpd`)
/// scripts/test installs; `python3` on the PATH where there is none.
pub fn python3() -> Command {
    let debian = Path::new("/usr/bin/python3");
    Command::new(if debian.exists() {
        debian
    } else {
        Path::new("python3")
    })
}

/// One HTTP/1.1 request answered in bytes (a binary file, say): (status, head, body), a
/// chunked body put back together.
pub fn http_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(130))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("bad HTTP response: {:?}", String::from_utf8_lossy(&resp)));
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut body = resp[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response: {head:?}"));
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut whole = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&rest[..eol]).unwrap_or("?").trim();
            let n = usize::from_str_radix(size, 16).unwrap_or_else(|_| panic!("chunk {size:?}"));
            if n == 0 {
                break;
            }
            whole.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 4 + n..];
        }
        body = whole;
    }
    (status, head, body)
}

/// One API request with a Bearer `token` and an optional JSON body: (status, content type,
/// body).
pub fn api_request(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, String, String) {
    let auth = format!("Bearer {token}");
    let body = body.map(Value::to_string).unwrap_or_default();
    http_request(
        addr,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// Sends one raw HTTP/1.1 request and reads the answer to the end: (status, body).
fn http(addr: SocketAddr, request: String) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    // Test calls may ring for a while before the answer comes.
    s.set_read_timeout(Some(Duration::from_secs(130))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response: {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Sends `bytes` to `to` over UDP from a fresh socket; returns the first non-provisional
/// answer within `wait`.
pub fn udp_exchange(to: SocketAddr, bytes: &[u8], wait: Duration) -> Option<String> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(bytes, to).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = sock.recv(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return Some(text);
        }
    }
}

/// A bodiless 200 OK to the SIP request `req` (its Via, From, To, Call-ID and CSeq copied).
pub fn ok_response(req: &str) -> String {
    let mut resp = String::from("SIP/2.0 200 OK\r\n");
    for line in req.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str()) {
            resp.push_str(line);
            resp.push_str("\r\n");
        }
    }
    resp.push_str("Content-Length: 0\r\n\r\n");
    resp
}

/// A fresh OPTIONS request as a UDP client at `from_port` would send it.
pub fn options_request(branch: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:dialerd@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:dialerd@127.0.0.1>\r\n\
         Call-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Status code of a SIP response text.
pub fn status_of(resp: &str) -> u16 {
    resp.strip_prefix("SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not a SIP response: {resp:?}"))
}

/// The value of one metric series line (`name{labels}` exactly as exposed, but for the `node`
/// label every series carries: tests/daemon.rs checks it).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().map(without_node).find_map(|l| {
        l.strip_prefix(series)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The sum of every series of metric `name` in `/metrics` text, whatever their labels.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = if rest.starts_with('{') {
                rest.split_once("} ")?.1
            } else {
                rest.strip_prefix(' ')?
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

/// A series line of `/metrics` without its `node="…"` label (and without `{}` when that was its
/// only one).
pub fn without_node(line: &str) -> String {
    let Some(start) = line.find("node=\"") else {
        return line.to_string();
    };
    let Some(len) = line[start + 6..].find('"') else {
        return line.to_string();
    };
    let (mut from, mut to) = (start, start + 6 + len + 1);
    if line[to..].starts_with(',') {
        to += 1;
    } else if line[..from].ends_with(',') {
        from -= 1;
    }
    format!("{}{}", &line[..from], &line[to..]).replacen("{}", "", 1)
}

/// A minimal HTTP/1.1 POST of a JSON body: (status, body).
pub fn http_post(addr: SocketAddr, path: &str, json: &str) -> (u16, String) {
    http(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        ),
    )
}

/// The store for a test that uses it directly, on the test's backend (see `pg`): a SQLite
/// file in `dir`, or a database of its own in the shared PostgreSQL cluster.
pub async fn open_store(dir: &Path) -> dialerd::store::Store {
    use dialerd::store::{Location, Store};
    let location = match pg::store_url(dir) {
        None => Location::Sqlite(dir.join("t.db")),
        Some(url) => Location::Postgres(url),
    };
    Store::open_at(&location, dir).await.unwrap()
}

impl Daemon {
    /// The daemon's own store, opened beside it (its SQLite file, or its PostgreSQL database).
    pub async fn open_store(&self) -> dialerd::store::Store {
        use dialerd::store::{Location, Store};
        let location = match std::fs::read_to_string(self.dir.path().join("store.url")) {
            Ok(url) => Location::Postgres(url),
            Err(_) => Location::Sqlite(self.dir.path().join("state/dialerd.db")),
        };
        Store::open_at(&location, &self.dir.path().join("state"))
            .await
            .unwrap()
    }
}

impl Daemon {
    /// An sqlx URL of the daemon's database, for a test that changes it behind its back.
    pub fn store_url(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("store.url")).unwrap_or_else(|_| {
            format!(
                "sqlite://{}",
                self.dir.path().join("state/dialerd.db").display()
            )
        })
    }
}
