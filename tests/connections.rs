//! Connections of the server configuration: the host adds the URL, the bearer token and
//! the TLS CA to a plugin's request. An HTTPS API whose certificate chains to the
//! connection's CA is reached; the same API through a connection without that CA is not.

use std::process::Command;

use faultline_system_tests::programs::{Program, free_port, require};
use faultline_system_tests::tls::certificates;
use faultline_system_tests::{RulesDir, Server, wait_for};
use serde_json::Value;

/// An HTTPS server (Python's, with the certificate below) that prints each PATCH it gets.
const SERVER: &str = r#"
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_PATCH(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(json.dumps({"path": self.path, "auth": self.headers.get("Authorization"),
                          "type": self.headers.get("Content-Type"), "body": body.decode()}), flush=True)
        answer = b'{"kind": "Node", "apiVersion": "v1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"#;

#[test]
fn the_host_adds_url_token_and_ca_and_an_unknown_ca_is_refused() {
    let dir = RulesDir::new(&["threshold", "kubernetes", "topology"]);
    let tmp = dir.tmp.path();
    certificates(tmp);
    let port = free_port();
    std::fs::write(tmp.join("server.py"), SERVER).unwrap();
    let mut cmd = Command::new(require("python3", "apt-get install python3"));
    cmd.arg(tmp.join("server.py"))
        .arg(port.to_string())
        .arg(tmp.join("server.pem"))
        .arg(tmp.join("server.key"));
    let api = Program::start("https server", cmd);
    wait_for("the HTTPS server", || {
        api.output().contains("ready").then_some(())
    });

    std::fs::write(tmp.join("token"), "tls-t0ken\n").unwrap();
    let cfg = dir.config(&format!(
        r#"
[connection.trusted]
url = "https://127.0.0.1:{port}"
token = {{ file = "token" }}
ca = "ca.pem"

[connection.untrusted]
url = "https://127.0.0.1:{port}"
token = {{ file = "token" }}
"#
    ));
    dir.write("graph.json", r#"{"svc": []}"#);
    dir.write(
        "r.toml",
        r#"
[[group]]
name = "g"
interval = "200ms"

[[group.rule]]
name = "A"
plugin = "threshold"
select = "a"
params = { above = 2 }
recovery = "trusted"

[[group.rule]]
name = "B"
plugin = "threshold"
select = "b"
params = { above = 2 }
recovery = "untrusted"

[[localizer]]
name = "services"
plugin = "topology"
files = { graph = "graph.json" }
params = { carry = ["instance"] }

[[receiver]]
name = "trusted"
plugin = "kubernetes"
params = { connection = "trusted", action = "cordon", node = "{{ instance }}" }
grants = { connections = ["trusted"] }

[[receiver]]
name = "untrusted"
plugin = "kubernetes"
params = { connection = "untrusted", action = "cordon", node = "{{ instance }}" }
grants = { connections = ["untrusted"] }
max_age = "2s"
"#,
    );
    let server = Server::start(&dir, &["--config", &cfg]);
    server.push("node/instance/n1", "a{service=\"svc\"} 5\n");
    let line = wait_for("the PATCH over HTTPS", || {
        api.output()
            .lines()
            .find(|l| l.starts_with('{'))
            .map(str::to_string)
    });
    let got: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got["path"], "/api/v1/nodes/n1");
    assert_eq!(got["auth"], "Bearer tls-t0ken");
    assert_eq!(got["type"], "application/strategic-merge-patch+json");

    server.push("node/instance/n2", "b{service=\"svc\"} 5\n");
    let dead = wait_for("the untrusted action to be dead-lettered", || {
        server.get_json("/api/v1/outbox?state=dead")["data"]
            .as_array()?
            .iter()
            .find(|a| a["receiver"] == "untrusted")
            .cloned()
    });
    let err = dead["lastError"].as_str().unwrap();
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(
        api.output().lines().filter(|l| l.starts_with('{')).count(),
        1,
        "a request got through without the CA"
    );
    assert!(!server.log().contains("tls-t0ken"));
}
