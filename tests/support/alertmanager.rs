//! The real Alertmanager 0.25 and `amtool` (Debian's prometheus-alertmanager), for tests
//! that use them as clients of Faultline or compare Faultline's answers with theirs.

use std::process::{Command, Output};

use crate::programs::{Program, answers, free_port, require};
use crate::wait_for;

/// How to install them.
pub const APT: &str = "apt-get install prometheus-alertmanager";

/// A running Alertmanager on a free port, without clustering, killed when dropped.
pub struct Alertmanager {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    _program: Program,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with this configuration (YAML) and waits until it is ready.
    pub fn start(config: &str) -> Alertmanager {
        let binary = require("prometheus-alertmanager", APT);
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("alertmanager.yml");
        std::fs::write(&config_file, config).unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--cluster.listen-address=");
        let program = Program::start("alertmanager", cmd);
        let url = format!("http://{address}");
        wait_for("Alertmanager to be ready", || {
            answers(&format!("{url}/-/ready")).then_some(())
        });
        Alertmanager {
            url,
            _program: program,
            _dir: dir,
        }
    }
}

/// Runs `amtool --alertmanager.url=URL ARGS...` and returns what it printed, whatever its exit.
pub fn amtool_output(url: &str, args: &[&str]) -> Output {
    Command::new(require("amtool", APT))
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .output()
        .expect("running amtool")
}

/// Runs amtool and returns its standard output; fails the test, with amtool's error output,
/// if it does not succeed.
pub fn amtool(url: &str, args: &[&str]) -> String {
    let out = amtool_output(url, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "amtool {args:?} failed ({}):\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("Warning"),
        "amtool {args:?} warned:\n{stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}
