//! Human notifications whose credentials stay secrets: the `slack` and `pagerduty`
//! receivers, each sending through a connection that holds its secret (Slack's webhook
//! path, PagerDuty's routing key) in a file. Stand-ins for Slack and PagerDuty check each
//! request field by field against the documented payloads; the secret is in the outgoing
//! request and nowhere else: not in what the plugin gets back (a server echoing the request),
//! the server's log, the API, or the data directory where plugin state and the outbox live.
//! The `email` receiver mails through a real SMTP server (Python's aiosmtpd) that requires
//! STARTTLS and a login.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};

use faultline::model::time::{now_ms, rfc3339};
use faultline_system_tests::programs::{Program, free_port, require};
use faultline_system_tests::tls::certificates;
use faultline_system_tests::{DEADLINE, Received, RulesDir, Server, serve, wait_for};
use serde_json::{Value, json};

const SLACK_PATH: &str = "/services/T0FAULT/B0LINE/sl4ckW3bh00kS3cret";
const ROUTING_KEY: &str = "R0UT1NGk3yPagerDutyS3cret0000000";

/// A stand-in for Slack or PagerDuty: records every request and answers with the scripted
/// answers in order, then with the default one. `{echo}` in an answer's body becomes the
/// request's path and body, as a server quoting what it refused would.
struct StandIn {
    addr: SocketAddr,
    requests: Mutex<mpsc::Receiver<(String, Received)>>,
    _rt: tokio::runtime::Runtime,
}

impl StandIn {
    fn start(scripted: &[(u16, &str)], default: (u16, &'static str)) -> StandIn {
        let (tx, rx) = mpsc::channel();
        let tx = Arc::new(Mutex::new(tx));
        let answers: Arc<Mutex<VecDeque<(u16, String)>>> = Arc::new(Mutex::new(
            scripted.iter().map(|(s, b)| (*s, b.to_string())).collect(),
        ));
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let tx = tx.clone();
            let answers = answers.clone();
            async move {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .unwrap()
                    .to_vec();
                let (status, answer) = answers
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or((default.0, default.1.to_string()));
                let echo = format!("{path} {}", String::from_utf8_lossy(&body));
                tx.lock()
                    .unwrap()
                    .send((
                        method,
                        Received {
                            path,
                            headers,
                            body,
                        },
                    ))
                    .ok();
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    answer.replace("{echo}", &echo),
                )
            }
        });
        let (addr, rt) = serve("127.0.0.1:0".parse().unwrap(), app);
        StandIn {
            addr,
            requests: Mutex::new(rx),
            _rt: rt,
        }
    }

    /// The next request, waiting up to the deadline.
    fn next(&self, what: &str) -> (String, Received) {
        self.requests
            .lock()
            .unwrap()
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }
}

fn rules(dir: &RulesDir) {
    dir.write(
        "notify.toml",
        r#"
[[receiver]]
name = "team-slack"
plugin = "slack"
params = { connection = "slack" }
grants = { connections = ["slack"] }

[[receiver]]
name = "oncall"
plugin = "pagerduty"
params = { connection = "pagerduty" }
grants = { connections = ["pagerduty"] }

# Names a secret its connection does not hold.
[[receiver]]
name = "misnamed"
plugin = "slack"
params = { connection = "slack", secret = "nope" }
grants = { connections = ["slack"] }

[route]
receiver = "oncall"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1s"

[[route.routes]]
receiver = "oncall"
matchers = ['alertname="DiskFull"']
continue = true

[[route.routes]]
receiver = "team-slack"
matchers = ['alertname="DiskFull"']
continue = true

[[route.routes]]
receiver = "misnamed"
matchers = ['alertname="DiskFull"']
"#,
    );
}

/// Posts the alert as Prometheus does, firing, or resolved when `ends` is now.
fn post_alert(server: &Server, starts: i64, ends: i64) {
    let alert = json!([{
        "labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
        "annotations": {
            "summary": "disk 97% full on db-1",
            // Looks like a placeholder, without the host's key: sent as written.
            "description": "{{secret:routing_key}} {{secret:webhook_path}}",
        },
        "generatorURL": "http://prometheus:9090/graph?g0.expr=disk",
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
    }]);
    let resp = reqwest::blocking::Client::new()
        .post(server.url("/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(alert.to_string())
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text());
}

fn actions(server: &Server, receiver: &str, state: &str) -> Vec<Value> {
    server.get_json(&format!("/api/v1/outbox?state={state}"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["receiver"] == receiver)
        .cloned()
        .collect()
}

#[test]
fn slack_and_pagerduty_get_documented_requests_and_the_secrets_stay_in_them() {
    // Slack first fails with an answer quoting the request, then takes the retry.
    let slack = StandIn::start(&[(500, "rollup_error for {echo}")], (200, "ok"));
    let pagerduty = StandIn::start(
        &[],
        (
            202,
            r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
        ),
    );
    let dir = RulesDir::new(&["slack", "pagerduty"]);
    rules(&dir);
    std::fs::write(dir.tmp.path().join("slack-path"), format!("{SLACK_PATH}\n")).unwrap();
    std::fs::write(dir.tmp.path().join("pd-key"), ROUTING_KEY).unwrap();
    let cfg = dir.config(&format!(
        r#"
[connection.slack]
url = "http://{}"
secrets = {{ webhook_path = {{ file = "slack-path" }} }}

[connection.pagerduty]
url = "http://{}"
secrets = {{ routing_key = {{ file = "pd-key" }} }}
"#,
        slack.addr, pagerduty.addr
    ));
    let server = Server::start(&dir, &["--config", &cfg]);
    let starts = now_ms() - 60_000;
    post_alert(&server, starts, now_ms() + 600_000);

    // PagerDuty: a trigger, as the Events API v2 documents it, keyed by the incident.
    let (method, trigger) = pagerduty.next("the PagerDuty trigger");
    assert_eq!(method, "POST");
    assert_eq!(trigger.path, "/v2/enqueue");
    assert_eq!(trigger.header("content-type"), Some("application/json"));
    let event = trigger.json();
    let incident = wait_for("the incident", || {
        let v = server.get_json("/api/v1/incidents");
        v["data"].as_array()?.first().cloned()
    });
    let incident_id = incident["id"].as_str().unwrap();
    let external = server.url("");
    assert_eq!(event["routing_key"], ROUTING_KEY);
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["dedup_key"], incident_id);
    assert_eq!(event["client"], "Faultline");
    assert_eq!(event["client_url"], external);
    assert_eq!(
        event["links"],
        json!([{"href": "http://prometheus:9090/graph?g0.expr=disk",
                "text": "Source of DiskFull"}])
    );
    let payload = &event["payload"];
    let fields: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "class",
            "custom_details",
            "severity",
            "source",
            "summary",
            "timestamp"
        ]
    );
    assert_eq!(
        payload["summary"],
        "[FIRING:1] DiskFull: disk 97% full on db-1"
    );
    assert_eq!(payload["source"], "db-1");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["timestamp"], rfc3339(starts));
    assert_eq!(payload["class"], "DiskFull");
    let details = &payload["custom_details"];
    assert_eq!(details["incident"], incident_id);
    assert_eq!(details["receiver"], "oncall");
    let alert = &details["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(
        alert["labels"],
        json!({"alertname": "DiskFull", "instance": "db-1", "severity": "critical"})
    );
    assert_eq!(
        alert["annotations"]["description"], "{{secret:routing_key}} {{secret:webhook_path}}",
        "text from an alert is not a placeholder"
    );

    // Slack: the webhook's secret path, and the documented `text` and `blocks`.
    let (_, refused) = slack.next("the first Slack request");
    let (method, message) = slack.next("the retried Slack request");
    for sent in [&refused, &message] {
        assert_eq!(sent.path, SLACK_PATH);
    }
    assert_eq!(method, "POST");
    assert_eq!(message.header("content-type"), Some("application/json"));
    assert_eq!(message.body, refused.body, "a retry sends the same message");
    let body = message.json();
    assert_eq!(body["text"], "[FIRING:1] DiskFull");
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 3, "{body:#}");
    assert_eq!(
        blocks[0],
        json!({"type": "section", "text": {"type": "mrkdwn", "text": "*[FIRING:1] DiskFull*"}})
    );
    assert_eq!(
        blocks[1]["text"]["text"],
        "• disk 97% full on db-1 — `{instance=\"db-1\", severity=\"critical\"}`"
    );
    assert_eq!(blocks[2]["type"], "context");
    assert_eq!(
        blocks[2]["elements"][0]["text"],
        format!("Incident `{incident_id}` · <{external}|Faultline>")
    );

    // What came back to the plugin quoted the secret path: it saw `<redacted>` instead.
    let done = wait_for("the Slack notification to be done", || {
        actions(&server, "team-slack", "done").into_iter().next()
    });
    let history = server.get_json("/api/v1/decisions?receiver=team-slack");
    assert!(
        history.to_string().contains("rollup_error for <redacted> "),
        "the echoed path is scrubbed: {history:#}\n{done:#}"
    );

    // A secret the connection does not hold: a clear, permanent error.
    let dead = wait_for("the misnamed receiver's action to be dead", || {
        actions(&server, "misnamed", "dead").into_iter().next()
    });
    assert!(
        dead["lastError"]
            .as_str()
            .unwrap()
            .contains(r#"connection "slack": the connection has no secret "nope""#),
        "{dead:#}"
    );

    // Resolution: PagerDuty resolves the same incident with only the documented fields;
    // Slack says it resolved.
    post_alert(&server, starts, now_ms());
    let (_, resolve) = pagerduty.next("the PagerDuty resolve");
    assert_eq!(resolve.path, "/v2/enqueue");
    assert_eq!(
        resolve.json(),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": incident_id})
    );
    let (_, resolved) = slack.next("the Slack resolution");
    assert_eq!(resolved.path, SLACK_PATH);
    assert_eq!(resolved.json()["text"], "[RESOLVED] DiskFull");
    wait_for("both resolutions to be done", || {
        (actions(&server, "oncall", "done").len() == 2
            && actions(&server, "team-slack", "done").len() == 2)
            .then_some(())
    });

    // The secrets are nowhere else: the API, the log, the data directory.
    let secrets = [SLACK_PATH, ROUTING_KEY, "sl4ckW3bh00kS3cret"];
    for path in [
        "/api/v1/outbox",
        "/api/v1/decisions",
        "/api/v1/incidents",
        "/api/v1/rules",
        "/api/v2/alerts",
        "/api/v2/alerts/groups",
        "/api/v2/receivers",
        "/api/v2/status",
    ] {
        let text = reqwest::blocking::get(server.url(path))
            .unwrap()
            .text()
            .unwrap();
        for secret in secrets {
            assert!(!text.contains(secret), "{path} shows a secret: {text}");
        }
    }
    let log = server.log();
    for secret in secrets {
        assert!(!log.contains(secret), "the log shows a secret:\n{log}");
    }
    drop(server);
    for entry in walk(&dir.data()) {
        let bytes = std::fs::read(&entry).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret",
                entry.display()
            );
        }
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// An SMTP server (aiosmtpd) on 127.0.0.1 that requires STARTTLS, then a login with the
/// password given, and prints each message it accepts as a JSON line.
const SMTP_SERVER: &str = r#"
import json, ssl, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        print(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                          "tls": session.ssl is not None, "authenticated": session.authenticated,
                          "data": envelope.content.decode("utf-8", "replace")}), flush=True)
        return "250 OK"

def login(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"faultline"
          and auth_data.password == password.encode())
    return AuthResult(success=ok)

tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True,
           authenticator=login, auth_required=True, auth_require_tls=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

const SMTP_PASSWORD: &str = "smtp-p4ssw0rd-s3cret";

#[test]
fn email_goes_out_over_starttls_with_the_connections_login() {
    let python = require("python3", "apt-get install python3");
    let dir = RulesDir::new(&["email"]);
    let tmp = dir.tmp.path();
    certificates(tmp);
    std::fs::write(tmp.join("smtp.py"), SMTP_SERVER).unwrap();
    let port = free_port();
    let mut cmd = std::process::Command::new(python);
    cmd.arg(tmp.join("smtp.py"))
        .arg(port.to_string())
        .arg(tmp.join("server.pem"))
        .arg(tmp.join("server.key"))
        .arg(SMTP_PASSWORD);
    let smtp = Program::start("aiosmtpd", cmd);
    wait_for("the SMTP server (needs `pip install aiosmtpd`)", || {
        smtp.output().contains("ready").then_some(())
    });
    std::fs::write(tmp.join("smtp-password"), format!("{SMTP_PASSWORD}\n")).unwrap();
    let cfg = dir.config(&format!(
        r#"
[connection.mail]
smtp = "127.0.0.1:{port}"
from = "Faultline <faultline@example.com>"
username = "faultline"
password = {{ file = "smtp-password" }}
ca = "ca.pem"
"#
    ));
    dir.write(
        "mail.toml",
        r#"
[[receiver]]
name = "ops-mail"
plugin = "email"
params = { connection = "mail", to = ["ops@example.com", "DB team <db@example.com>"] }
grants = { connections = ["mail"] }

[route]
receiver = "ops-mail"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1s"
"#,
    );
    let server = Server::start(&dir, &["--config", &cfg]);
    let starts = now_ms() - 60_000;
    post_alert(&server, starts, now_ms() + 600_000);

    let mails = |n: usize| {
        wait_for(&format!("{n} mail(s) received"), || {
            let mails: Vec<Value> = smtp
                .output()
                .lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            (mails.len() >= n).then_some(mails)
        })
    };
    let firing = mails(1).remove(0);
    assert_eq!(firing["from"], "faultline@example.com");
    assert_eq!(firing["to"], json!(["ops@example.com", "db@example.com"]));
    assert_eq!(firing["tls"], true, "sent after STARTTLS");
    assert_eq!(firing["authenticated"], true);
    let data = firing["data"].as_str().unwrap().replace("\r\n", "\n");
    let (headers, body) = data.split_once("\n\n").unwrap();
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .unwrap_or_else(|| panic!("no {name} header in:\n{headers}"))
    };
    assert_eq!(header("From"), "Faultline <faultline@example.com>");
    assert_eq!(
        header("To"),
        "ops@example.com, \"DB team\" <db@example.com>"
    );
    assert_eq!(header("Subject"), "[FIRING:1] DiskFull");
    assert!(
        header("Content-Type").starts_with("text/plain"),
        "{headers}"
    );
    assert!(body.starts_with("[FIRING:1] DiskFull\n"), "{body}");
    assert!(body.contains("- disk 97% full on db-1\n"), "{body}");
    assert!(
        body.contains("labels: {alertname=\"DiskFull\", instance=\"db-1\", severity=\"critical\"}"),
        "{body}"
    );
    let incident = wait_for("the incident", || {
        let v = server.get_json("/api/v1/incidents");
        v["data"].as_array()?.first().cloned()
    });
    assert!(
        body.contains(&format!(
            "Incident {} (receiver ops-mail)",
            incident["id"].as_str().unwrap()
        )),
        "{body}"
    );

    // The resolution is mailed too.
    post_alert(&server, starts, now_ms());
    let resolved = mails(2).remove(1);
    let data = resolved["data"].as_str().unwrap();
    assert!(data.contains("Subject: [RESOLVED] DiskFull"), "{data}");
    wait_for("both mails to be done", || {
        (actions(&server, "ops-mail", "done").len() == 2).then_some(())
    });
    assert!(!server.log().contains(SMTP_PASSWORD));
    let everything = format!(
        "{}{}",
        server.get_json("/api/v1/outbox"),
        server.get_json("/api/v1/decisions")
    );
    assert!(!everything.contains(SMTP_PASSWORD));
}
