//! Real programs the whole-system tests run beside Faultline (Prometheus, node_exporter, a
//! log shipper): found on the PATH or the test fails saying what to install, started on free
//! loopback ports, their output kept for the failure message, and killed by PID when dropped,
//! even when the test fails.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A free TCP port on 127.0.0.1: bound, then released for a program to take.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of `program` on the PATH; fails the test with `install` (the command that
/// installs it) if it is missing. Nothing is skipped.
pub fn require(program: &str, install: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} is not installed; this test needs it. Install it with: {install}")
        })
}

/// A running program, killed when dropped.
pub struct Program {
    name: String,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Program {
    /// Starts `cmd`, keeping what it prints on stdout and stderr.
    pub fn start(name: &str, mut cmd: Command) -> Program {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for stream in streams {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Program {
            name: name.to_string(),
            child,
            output,
        }
    }

    /// Everything the program printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The program's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the program (by its PID) and waits for it to exit.
    pub fn stop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- {} output ---\n{}", self.name, self.output());
        }
    }
}

/// Whether a GET of `url` answers 200 (a program's readiness check).
pub fn answers(url: &str) -> bool {
    reqwest::blocking::get(url).is_ok_and(|r| r.status() == 200)
}

/// Starts a Prometheus on `address` with its config file and data in `dir`, resending
/// alerts every 2 s (PEERS.md: with the default, the first alert takes a minute).
pub fn start_prometheus(
    binary: &std::path::Path,
    config: &std::path::Path,
    dir: &std::path::Path,
    address: &str,
) -> Program {
    let mut cmd = Command::new(binary);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={address}"))
        .arg(format!("--web.external-url=http://{address}/"))
        .arg("--rules.alert.resend-delay=2s");
    Program::start("prometheus", cmd)
}
