//! Support for the whole-system tests: paths to the built binary and plugins, a Faultline
//! server run as a child process (stopped when dropped, even on failure), a real HTTP
//! listener that records what it receives, and polling with generous deadlines.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub mod alertmanager;
pub mod faulty;
pub mod k8s;
pub mod kafka;
pub mod programs;
pub mod tls;

/// How long any condition is waited for before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, or `target` in the workspace root.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// The `faultline` binary (built by `make test` before the tests run).
pub fn binary() -> PathBuf {
    let p = target_dir().join("debug/faultline");
    assert!(
        p.is_file(),
        "{} is missing: run `make test` (it builds the binary and the plugins first)",
        p.display()
    );
    p
}

/// A plugin component built from this repository (`make plugins`).
pub fn plugin(name: &str) -> PathBuf {
    let p = target_dir()
        .join("wasm32-wasip2/plugin")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        p.is_file(),
        "{} is missing: run `make plugins` (or `make test`)",
        p.display()
    );
    p
}

/// A rules directory in a fresh temporary folder, with the named plugins copied in.
pub struct RulesDir {
    pub tmp: tempfile::TempDir,
}

impl RulesDir {
    pub fn new(plugins: &[&str]) -> RulesDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("rules/plugins")).unwrap();
        for p in plugins {
            std::fs::copy(
                plugin(p),
                tmp.path().join("rules/plugins").join(format!("{p}.wasm")),
            )
            .unwrap();
        }
        RulesDir { tmp }
    }

    pub fn rules(&self) -> PathBuf {
        self.tmp.path().join("rules")
    }

    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// Writes a file in the rules directory.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.rules().join(name), text).unwrap();
    }

    /// Writes the server configuration `faultline.toml` beside the rules directory (relative
    /// paths in it are resolved from there) and returns its path, for `--config`.
    pub fn config(&self, text: &str) -> String {
        let path = self.tmp.path().join("faultline.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }
}

/// A `[[receiver]]` named `name` that posts to `http://ADDR/` with the `webhook` plugin,
/// granted that host, with `extra` TOML lines (rails, `max_age`...).
pub fn webhook(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[[receiver]]
name = "{name}"
plugin = "webhook"
params = {{ url = "http://{addr}/" }}
grants = {{ http = ["{addr}"] }}
{extra}
"#
    )
}

/// A rule `name` (group `[[group]]` written before it) firing while `metric` is above 2,
/// routed to the recovery receiver `receiver`.
pub fn threshold_rule(name: &str, metric: &str, receiver: &str) -> String {
    format!(
        r#"
[[group.rule]]
name = "{name}"
plugin = "threshold"
select = "{metric}"
params = {{ above = 2 }}
recovery = "{receiver}"
"#
    )
}

/// A running `faultline serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// `faultline serve` on `dir` and an ephemeral port, not started.
    pub fn command(dir: &RulesDir) -> Command {
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .arg("--rules")
            .arg(dir.rules())
            .arg("--data")
            .arg(dir.data())
            .args(["--listen", "127.0.0.1:0"]);
        cmd
    }

    /// Starts `faultline serve` on an ephemeral port with these extra arguments and waits
    /// until it listens.
    pub fn start(dir: &RulesDir, extra: &[&str]) -> Server {
        let mut child = Self::command(dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start faultline");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split("address=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                {
                    tx.send(addr).ok();
                }
                let mut l = l.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut server = Server {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        match rx.recv_timeout(DEADLINE) {
            Ok(addr) => server.addr = addr,
            Err(_) => panic!("faultline did not start listening; log:\n{}", server.log()),
        }
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Pushes exposition text Pushgateway-style.
    pub fn push(&self, grouping: &str, text: &str) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .post(self.url(&format!("/metrics/job/{grouping}")))
            .body(text.to_string())
            .send()
            .unwrap()
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        reqwest::blocking::get(self.url(path))
            .unwrap()
            .json()
            .unwrap()
    }

    /// The state of the first alert matching `rule` and label `instance`, if any.
    pub fn alert_state(&self, alertname: &str, instance: &str) -> Option<String> {
        let v = self.get_json("/api/v1/alerts");
        v["data"]["alerts"].as_array()?.iter().find_map(|a| {
            (a["labels"]["alertname"] == alertname && a["labels"]["instance"] == instance)
                .then(|| a["state"].as_str().unwrap_or("").to_string())
        })
    }

    /// The rules API entry of a rule.
    pub fn rule(&self, group: &str, name: &str) -> serde_json::Value {
        let v = self.get_json("/api/v1/rules");
        v["data"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"] == group && r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {group}/{name}"))
    }

    /// A metric's value from `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::blocking::get(self.url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        if std::thread::panicking() {
            eprintln!("--- faultline log ---\n{}", self.log());
        }
    }
}

/// Polls `f` until it returns `Some`, failing after [`DEADLINE`] with `what`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Serves `app` on `addr` (port 0 for an ephemeral one) from a runtime of its own, for a test
/// that is not async; the server stops when the returned runtime is dropped. Returns the
/// address bound.
pub fn serve(addr: SocketAddr, app: axum::Router) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.ok() });
    (addr, rt)
}

/// One request received by a [`Receiver`].
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A real HTTP server on an ephemeral port that records every request and answers with
/// the status set by [`Receiver::set_status`] (200 by default).
pub struct Receiver {
    pub addr: SocketAddr,
    rx: Mutex<mpsc::Receiver<Received>>,
    status: Arc<std::sync::atomic::AtomicU16>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// A receiver on a given address: one that was down comes back where it was.
    pub fn start_on(addr: SocketAddr) -> Receiver {
        let (tx, rx) = mpsc::channel();
        let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let st = status.clone();
        let tx = Arc::new(Mutex::new(tx));
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let tx = tx.clone();
            let st = st.clone();
            async move {
                let path = req.uri().path().to_string();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let body = axum::body::to_bytes(req.into_body(), 64 << 20)
                    .await
                    .unwrap()
                    .to_vec();
                tx.lock()
                    .unwrap()
                    .send(Received {
                        path,
                        headers,
                        body,
                    })
                    .ok();
                axum::http::StatusCode::from_u16(st.load(std::sync::atomic::Ordering::Relaxed))
                    .unwrap()
            }
        });
        let (addr, rt) = serve(addr, app);
        Receiver {
            addr,
            rx: Mutex::new(rx),
            status,
            _rt: rt,
        }
    }

    pub fn set_status(&self, s: u16) {
        self.status.store(s, std::sync::atomic::Ordering::Relaxed);
    }

    /// The next request received, waiting up to [`DEADLINE`].
    pub fn next(&self, what: &str) -> Received {
        self.rx
            .lock()
            .unwrap()
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    /// Every request received so far, without waiting.
    pub fn drain(&self) -> Vec<Received> {
        self.rx.lock().unwrap().try_iter().collect()
    }

    /// The next request whose JSON body satisfies `f`, skipping others.
    pub fn next_where(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> Received {
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let r = self
                .rx
                .lock()
                .unwrap()
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
            if serde_json::from_slice(&r.body).is_ok_and(|v| f(&v)) {
                return r;
            }
        }
    }
}

/// HMAC-SHA256 of `body` keyed with `secret`, as `sha256=<hex>`.
pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
