//! Shippers that speak Elasticsearch's bulk API send logs into Faultline unchanged:
//!
//! - the official `elasticsearch` Python client 9.x (PyPI), through `helpers.bulk` and
//!   `bulk`, with its product check, its compatibility Content-Type and gzip: three hosts'
//!   request logs, one of which starts failing; a `log-count` rule fires for it, and the
//!   incident's `log-hotspot` localizer ranks it first. A bulk with bad documents answers
//!   per-item errors and keeps the good ones;
//! - rsyslog's omelasticsearch (Debian's `rsyslog-elasticsearch`) in bulk mode, fed syslog
//!   over TCP: its records arrive with the host and severity as labels and a rule fires.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use faultline_system_tests::programs::{Program, free_port, require};
use faultline_system_tests::{Receiver, RulesDir, Server, wait_for};
use serde_json::Value;

const RULES: &str = r#"
[[group]]
name = "logs"
interval = "200ms"

[[group.rule]]
name = "ErrorBurst"
plugin = "log-count"
logs = '{index="shop-logs", log_level="error"}'
range = "1m"
params = { above = 10, by = "host_name" }
labels = { severity = "page" }

[[localizer]]
name = "error-logs"
plugin = "log-hotspot"
match = ['alertname="ErrorBurst"']
logs = '{index="shop-logs"}'
range = "1h"
params = { node_label = "host_name", status_field = "http.response.status_code" }

[route]
receiver = "notify"
group_by = ["alertname"]
group_wait = "1s"
group_interval = "1s"
"#;

/// Ships the request logs of web1, web2 and web3 as an application would with the official
/// client: half an hour of baseline with few errors, then 20 s in which web2 fails 80% of
/// its requests. web1 and web2 documents nest their fields (`{"host": {"name": ...}}`),
/// web3's spell them flat (`"host.name"`). Then a bulk with a document that has no
/// `message` and a `delete`, through a client that gzips its bodies. Prints what the client
/// saw as JSON; any exception (a failed product check, a refused bulk) fails the script.
const SHIPPER: &str = r#"
import json
import sys
from datetime import datetime, timedelta, timezone

from elasticsearch import Elasticsearch, helpers

url = sys.argv[1]
es = Elasticsearch(url)
info = es.info()

now = datetime.now(timezone.utc)

def doc(host, t, status):
    fields = {
        "@timestamp": t.isoformat(),
        "message": f"GET /cart status={status}",
        "service": {"name": "cart"},
        "log": {"level": "error" if status >= 500 else "info"},
        "http": {"response": {"status_code": status}},
    }
    if host == "web3":
        fields = {"@timestamp": fields["@timestamp"], "message": fields["message"],
                  "host.name": host, "service.name": "cart",
                  "log.level": fields["log"]["level"], "http.response.status_code": status}
    else:
        fields["host"] = {"name": host}
    return {"_index": "shop-logs", **fields}

actions = []
for host in ("web1", "web2", "web3"):
    for i in range(60):
        status = 500 if i % 50 == 7 else 200
        actions.append(doc(host, now - timedelta(minutes=30) + timedelta(seconds=20 * i), status))
    for i in range(20):
        status = 503 if host == "web2" and i % 5 != 0 else 200
        actions.append(doc(host, now - timedelta(seconds=20) + timedelta(seconds=i), status))
stored, errors = helpers.bulk(es, actions)

plain = es.bulk(index="shop-logs", operations=[
    {"create": {}}, doc("web1", now, 200),
    {"index": {"_id": "own-id"}}, doc("web3", now, 200),
])

gz = Elasticsearch(url, http_compress=True)
partial_stored, partial_errors = helpers.bulk(gz, [
    doc("web1", now, 200),
    {"_index": "shop-logs", "msg": "no message field", "host": {"name": "web1"}},
    {"_op_type": "delete", "_index": "shop-logs", "_id": "x1"},
    doc("web3", now, 200),
], raise_on_error=False)

print(json.dumps({
    "info": info.body,
    "stored": stored,
    "errors": errors,
    "plain": plain.body,
    "partial_stored": partial_stored,
    "partial_errors": partial_errors,
}))
"#;

fn python_with(module: &str, install: &str) -> std::path::PathBuf {
    let python = require("python3", "apt-get install python3");
    let check = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{module} is not installed; this test needs it. Install it with: {install}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

fn data(v: &Value) -> Vec<Value> {
    v["data"].as_array().expect("a data array").clone()
}

#[test]
fn the_python_client_ships_logs_that_rules_and_localizers_use() {
    let python = python_with(
        "elasticsearch",
        "python3 -m pip install 'elasticsearch==9.5.1'",
    );
    let hook = Receiver::start();
    let dir = RulesDir::new(&["log-count", "log-hotspot", "webhook"]);
    dir.write(
        "logs.toml",
        &format!(
            "{RULES}\n[[receiver]]\nname = \"notify\"\nplugin = \"webhook\"\n\
             params = {{ url = \"http://{0}/\" }}\ngrants = {{ http = [\"{0}\"] }}\n",
            hook.addr
        ),
    );
    let server = Server::start(&dir, &[]);

    let script = dir.tmp.path().join("shipper.py");
    std::fs::write(&script, SHIPPER).unwrap();
    let out = Command::new(&python)
        .arg(&script)
        .arg(server.url(""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The client's view: it took Faultline for Elasticsearch 9 and every document was
    // stored.
    assert_eq!(seen["info"]["version"]["number"], "9.0.0", "{seen:#}");
    assert_eq!(seen["info"]["tagline"], "You Know, for Search");
    assert_eq!(seen["stored"], 240, "{seen:#}");
    assert_eq!(seen["errors"], serde_json::json!([]));
    assert_eq!(seen["plain"]["errors"], false, "{seen:#}");
    let items = seen["plain"]["items"].as_array().unwrap();
    assert_eq!(items[0]["create"]["status"], 201);
    assert_eq!(items[0]["create"]["_index"], "shop-logs");
    assert_eq!(items[0]["create"]["_id"].as_str().unwrap().len(), 20);
    assert_eq!(items[1]["index"]["_id"], "own-id");
    assert_eq!(items[1]["index"]["result"], "created");

    // A partial failure: the two bad actions are answered per item, the two good documents
    // are stored.
    assert_eq!(seen["partial_stored"], 2, "{seen:#}");
    let errors = seen["partial_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{seen:#}");
    assert_eq!(errors[0]["index"]["status"], 400);
    assert_eq!(
        errors[0]["index"]["error"]["type"],
        "mapper_parsing_exception"
    );
    assert_eq!(
        errors[0]["index"]["error"]["reason"],
        "line 4: the document has no field [message], the log line (elasticsearch.message_field)"
    );
    assert_eq!(errors[1]["delete"]["status"], 400);
    assert!(
        errors[1]["delete"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("delete is not supported"),
        "{seen:#}"
    );
    assert_eq!(
        server.metric(r#"faultline_log_records_ingested_total{source="elasticsearch"}"#),
        Some(244.0)
    );
    assert_eq!(
        server.metric(r#"faultline_ingest_rejected_total{source="elasticsearch",code="400"}"#),
        Some(2.0)
    );

    // The rule counts web2's error records, selected by the labels the documents' fields
    // became.
    wait_for("ErrorBurst to fire for web2", || {
        let v = server.get_json("/api/v1/alerts");
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["host_name"] == "web2" && a["state"] == "firing")
            .cloned()
    });
    let alerts = server.get_json("/api/v1/alerts");
    let alerts = alerts["data"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "only web2 logs errors now: {alerts:#?}");
    assert_eq!(alerts[0]["value"], "16");

    // The incident: web2's error share rose against its own baseline; the others' did not.
    let incident = wait_for("the incident, localized", || {
        data(&server.get_json("/api/v1/incidents"))
            .into_iter()
            .find(|i| i["suspects"].as_array().is_some_and(|s| !s.is_empty()))
    });
    let suspects = incident["suspects"].as_array().unwrap();
    assert_eq!(suspects[0]["labels"]["host_name"], "web2", "{incident:#}");
    assert!(
        suspects
            .iter()
            .all(|s| s["labels"]["host_name"] != "web1" && s["labels"]["host_name"] != "web3"),
        "{incident:#}"
    );
    hook.next("the incident's notification");
}

/// An rsyslog configuration: syslog over TCP on `port`, each message as an ECS-style
/// document, bulk-posted to Faultline at `es_port`; documents Faultline refuses are written
/// to `errors`.
fn rsyslog_conf(work: &Path, port: u16, es_port: u16, errors: &Path) -> String {
    format!(
        r#"
global(workDirectory="{work}")
module(load="imtcp")
module(load="omelasticsearch")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="ecs" type="list" option.jsonf="on") {{
  property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="host.name" name="hostname" format="jsonf")
  property(outname="service.name" name="app-name" format="jsonf")
  property(outname="log.level" name="syslogseverity-text" format="jsonf")
  property(outname="message" name="msg" format="jsonf")
}}
action(type="omelasticsearch" server="127.0.0.1" serverport="{es_port}" template="ecs"
       searchIndex="syslog" bulkmode="on" errorFile="{errors}")
"#,
        work = work.display(),
        errors = errors.display(),
    )
}

#[test]
fn rsyslog_ships_syslog_through_the_bulk_api() {
    let rsyslogd = require("rsyslogd", "apt-get install rsyslog rsyslog-elasticsearch");
    let dir = RulesDir::new(&["log-count"]);
    dir.write(
        "syslog.toml",
        r#"
[[group]]
name = "syslog"
interval = "200ms"

[[group.rule]]
name = "SyslogErrors"
plugin = "log-count"
logs = '{index="syslog", service_name="checkout", log_level="err"} |= "failed"'
range = "1m"
params = { above = 2, by = "host_name" }
"#,
    );
    let server = Server::start(&dir, &[]);

    let work = dir.tmp.path().join("rsyslog");
    std::fs::create_dir(&work).unwrap();
    let errors = work.join("errors.json");
    let port = free_port();
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        rsyslog_conf(&work, port, server.addr.port(), &errors),
    )
    .unwrap();
    let mut cmd = Command::new(rsyslogd);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(work.join("rsyslogd.pid"));
    let rsyslog = Program::start("rsyslogd", cmd);
    let mut conn = wait_for("rsyslog to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });

    // RFC 5424 messages, one a line: PRI 11 is user.err, 14 user.info.
    let now = faultline::model::time::rfc3339(faultline::model::time::now_ms());
    let mut sent = 0;
    for (host, pri, text, n) in [
        ("db1", 11, "query failed: deadlock detected", 4),
        ("db2", 11, "query failed: timeout", 1),
        ("db2", 14, "query ok", 3),
    ] {
        for i in 0..n {
            writeln!(conn, "<{pri}>1 {now} {host} checkout - - - {text} #{i}").unwrap();
            sent += 1;
        }
    }
    conn.flush().unwrap();

    wait_for("every message to arrive", || {
        let n = server.metric(r#"faultline_log_records_ingested_total{source="elasticsearch"}"#);
        (n == Some(f64::from(sent))).then_some(())
    });
    wait_for("SyslogErrors to fire for db1", || {
        let v = server.get_json("/api/v1/alerts");
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["host_name"] == "db1" && a["state"] == "firing")
            .cloned()
    });
    let v = server.get_json("/api/v1/alerts");
    let alerts = v["data"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "db2 logged one failure: {alerts:#?}");
    assert_eq!(alerts[0]["value"], "4");
    assert!(
        !errors.exists(),
        "rsyslog recorded refused documents:\n{}\n{}",
        std::fs::read_to_string(&errors).unwrap_or_default(),
        rsyslog.output()
    );
}
