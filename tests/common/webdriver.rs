//! A small W3C WebDriver client over plain HTTP/JSON: Debian's `chromedriver` (package
//! `chromium-driver`) drives a real headless Chromium for the console tests.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key WebDriver names a found element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver; browsers are sessions on it. Killed when dropped.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready.
    pub fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver not found: scripts/test installs Debian's chromium-driver");
        let driver = Driver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(driver.addr).is_ok() {
                let (_, v) = driver.call("GET", "/status", None);
                if v["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One WebDriver command: (status, JSON answer).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("Content-Type", "application/json; charset=utf-8")]
        };
        let (status, text) = request(self.addr, method, path, headers, body.as_bytes());
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, v)
    }

    /// A new headless Chromium window of 1366×768 (an agent's laptop screen).
    pub fn browser(&self) -> Browser<'_> {
        self.browser_with(&[])
    }

    /// Like [`Driver::browser`], with more Chromium switches (fake media devices …).
    pub fn browser_with(&self, extra: &[String]) -> Browser<'_> {
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1366,768".into(),
            "--no-first-run".into(),
            "--disable-extensions".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend_from_slice(extra);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": args,
            },
        }}});
        let (status, v) = self.call("POST", "/session", Some(&caps));
        assert_eq!(status, 200, "new browser session: {v}");
        Browser {
            driver: self,
            id: v["value"]["sessionId"].as_str().unwrap().to_string(),
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window (a WebDriver session). Closed when dropped.
pub struct Browser<'a> {
    driver: &'a Driver,
    id: String,
    _profile: tempfile::TempDir,
}

impl Browser<'_> {
    /// A command on this session; panics on a WebDriver error.
    fn cmd(&self, method: &str, tail: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{tail}", self.id);
        let (status, v) = self.driver.call(method, &path, body.as_ref());
        assert_eq!(status, 200, "{method} {tail}: {v}");
        v["value"].clone()
    }

    /// Opens a URL and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) and answers its return value.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The element matching a CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.id);
        let (status, v) = self.driver.call(
            "POST",
            &path,
            Some(&json!({"using": "css selector", "value": css})),
        );
        (status == 200).then(|| v["value"][ELEMENT].as_str().unwrap().to_string())
    }

    fn element(&self, css: &str) -> String {
        self.find(css)
            .unwrap_or_else(|| panic!("no element {css} on the page"))
    }

    /// Clicks the element, as a user would (it must be visible and enabled).
    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Types into a field after clearing it.
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Picks the option of a `<select>` whose value is `value`.
    pub fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"));
    }

    /// Reads `what` of the element matching `css` (`None` when there is none). The page
    /// re-renders as events arrive: an element replaced between finding and reading it
    /// (a stale reference) is found again.
    fn read(&self, css: &str, what: &str) -> Option<Value> {
        for _ in 0..5 {
            let e = self.find(css)?;
            let path = format!("/session/{}/element/{e}/{what}", self.id);
            let (status, v) = self.driver.call("GET", &path, None);
            if status == 200 {
                return Some(v["value"].clone());
            }
            assert!(
                v["value"]["error"] == "stale element reference",
                "GET {what} of {css}: {v}"
            );
        }
        panic!("{css} kept being replaced while read");
    }

    /// The rendered text of the element ("" when hidden).
    pub fn text(&self, css: &str) -> String {
        self.read(css, "text")
            .unwrap_or_else(|| panic!("no element {css} on the page"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Whether the element is shown.
    pub fn visible(&self, css: &str) -> bool {
        self.read(css, "displayed") == Some(Value::Bool(true))
    }

    /// An attribute of the element.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.read(css, &format!("attribute/{name}"))
            .unwrap_or_else(|| panic!("no element {css} on the page"))
            .as_str()
            .map(str::to_string)
    }

    /// Presses Alt and `key` together, as a keyboard shortcut.
    pub fn alt(&self, key: char) {
        let alt = "\u{E00A}";
        let k = key.to_string();
        self.cmd(
            "POST",
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": alt}, {"type": "keyDown", "value": k},
                {"type": "keyUp", "value": k}, {"type": "keyUp", "value": alt}]}]}),
            ),
        );
        self.cmd("DELETE", "/actions", None);
    }

    /// Waits until `ok` holds, else panics naming `what` with the page's notice and console.
    pub fn wait(&self, what: &str, limit: Duration, mut ok: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !ok(self) {
            if Instant::now() > deadline {
                let notice = self.run(
                    "const n = document.getElementById('notice'); return n ? n.textContent : '';",
                    json!([]),
                );
                let log = self.driver.call(
                    "POST",
                    &format!("/session/{}/se/log", self.id),
                    Some(&json!({"type": "browser"})),
                );
                panic!(
                    "{what}: not within {limit:?}; notice {notice}; console {}",
                    log.1
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the element's text contains `want`.
    pub fn wait_text(&self, css: &str, want: &str, limit: Duration) {
        self.wait(&format!("{css} shows {want:?}"), limit, |b| {
            b.find(css).is_some() && b.text(css).contains(want)
        });
    }

    /// Saves a PNG screenshot of the window.
    pub fn screenshot(&self, path: &Path) {
        let png = self.cmd("GET", "/screenshot", None);
        let bytes = base64(png.as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self
            .driver
            .call("DELETE", &format!("/session/{}", self.id), None);
    }
}

/// Decodes standard base64 (WebDriver's screenshots); no crate for one test helper.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// One HTTP/1.1 request, its answer read by `Content-Length` (chromedriver keeps connections
/// open whatever `Connection` says): (status, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut length = None;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut out = Vec::new();
    match length {
        Some(n) => {
            out.resize(n, 0);
            r.read_exact(&mut out).unwrap();
        }
        None => {
            r.read_to_end(&mut out).unwrap();
        }
    }
    (status, String::from_utf8_lossy(&out).into_owned())
}
