//! Several Faultline processes as one, through a real etcd (Debian's `etcd-server`): they
//! share nothing but etcd. Every instance plans the same actions with the same idempotency
//! keys; only the leader delivers, and records what it finished. Killed with SIGKILL while
//! an action is pending, the leader is replaced, and the new one delivers exactly what was
//! not recorded; cut off from etcd, a leader stops delivering before its lease expires.
//! A silence set on one instance mutes on all.

use std::process::Command;
use std::time::{Duration, Instant};

use faultline_system_tests::programs::{Program, answers, free_port, require};
use faultline_system_tests::{
    Received, Receiver, RulesDir, Server, threshold_rule, wait_for, webhook,
};
use serde_json::{Value, json};

/// An etcd of its own on free ports, with its data in a temporary folder; killed when
/// dropped.
struct Etcd {
    program: Program,
    url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let bin = require("etcd", "apt-get install etcd-server");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let mut cmd = Command::new(bin);
        cmd.args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")]);
        let program = Program::start("etcd", cmd);
        wait_for("etcd to answer", || {
            answers(&format!("{url}/health")).then_some(())
        });
        Etcd {
            program,
            url,
            _dir: dir,
        }
    }

    /// Sends a signal to etcd (STOP: it answers nothing, as if cut off; CONT: back).
    fn signal(&self, signal: &str) {
        send(signal, self.program.pid());
    }
}

/// Sends `signal` (`-KILL`, `-TERM`...) to the process `pid`.
fn send(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Instances `fl-0`.. of one cluster, each with its own rules copy and data directory.
fn instances(n: usize, etcd: &Etcd, rules: &str, cluster: &str) -> Vec<(Server, RulesDir)> {
    (0..n)
        .map(|i| {
            let dir = RulesDir::new(&["threshold", "webhook"]);
            dir.write("r.toml", rules);
            let config = dir.config(&format!(
                "[cluster]\netcd = [\"{}\"]\nname = \"fl-{i}\"\n{cluster}",
                etcd.url
            ));
            (Server::start(&dir, &["--config", &config]), dir)
        })
        .collect()
}

fn is_leader(s: &Server) -> bool {
    s.metric("faultline_cluster_leader") == Some(1.0)
}

/// The index of the one leader among `servers`, once there is exactly one.
fn leader(servers: &[&Server]) -> usize {
    wait_for("exactly one leader", || {
        let leaders: Vec<usize> = (0..servers.len())
            .filter(|&i| is_leader(servers[i]))
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    })
}

/// Pushes `metric` at 5 to every instance, timestamped a little ahead, so that every
/// instance first sees it at the same evaluation.
fn push_all(servers: &[&Server], metric: &str) {
    let at = faultline::model::time::now_ms() + 1500;
    for s in servers {
        let r = s.push(
            &format!("node/instance/{metric}"),
            &format!("{metric} 5 {at}\n"),
        );
        assert!(r.status().is_success());
    }
}

/// The outbox actions whose group is the alert `alertname`'s.
fn actions(s: &Server, alertname: &str) -> Vec<Value> {
    let all = s.get_json("/api/v1/outbox");
    let group = format!("{{alertname=\"{alertname}\"}}");
    all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["groupKey"].as_str().unwrap_or_default().ends_with(&group))
        .cloned()
        .collect()
}

/// The one action about `alertname` on `s`, once it is in `state`.
fn action_in(s: &Server, alertname: &str, state: &str) -> Value {
    wait_for(&format!("the action for {alertname} to be {state}"), || {
        actions(s, alertname)
            .into_iter()
            .find(|a| a["state"] == state)
    })
}

fn alertname(r: &Received) -> String {
    r.json()["alerts"][0]["labels"]["alertname"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn key(r: &Received) -> String {
    r.header("Idempotency-Key").unwrap_or_default().to_string()
}

/// Makes the alert `name` fire on every instance (its metric is `name` in lower case);
/// returns the first request the receiver got for it, and its key, once every instance
/// holds the action with that key in `state`.
fn fire_everywhere(
    hook: &Receiver,
    servers: &[&Server],
    name: &str,
    state: &str,
) -> (Received, String) {
    push_all(servers, &name.to_lowercase());
    let got = hook.next_where(&format!("an attempt of {name}"), |v| {
        v["alerts"][0]["labels"]["alertname"] == name
    });
    let key = key(&got);
    for s in servers {
        let action = action_in(s, name, state);
        assert_eq!(
            action["idempotencyKey"],
            key.as_str(),
            "the same key everywhere"
        );
    }
    (got, key)
}

const GROUP: &str = "[[group]]\nname = \"g\"\ninterval = \"500ms\"\n";

#[test]
fn a_follower_takes_over_from_a_killed_leader_and_delivers_only_what_was_not_recorded() {
    let etcd = Etcd::start();
    let hook = Receiver::start();
    let rules = format!(
        "{GROUP}{}{}{}",
        threshold_rule("A", "a", "hook"),
        threshold_rule("B", "b", "hook"),
        webhook("hook", hook.addr, "max_age = \"10m\"")
    );
    // Default settings: the takeover bound is the default lease's.
    let cluster = instances(3, &etcd, &rules, "");
    let servers: Vec<&Server> = cluster.iter().map(|(s, _)| s).collect();
    let first = leader(&servers);
    let mut received = Vec::new();

    // A: delivered and recorded by the leader; every instance planned it with its key.
    let (a, key_a) = fire_everywhere(&hook, &servers, "A", "done");
    received.push(a);
    // B: the receiver fails, so B stays pending on the leader (and on the followers).
    hook.set_status(503);
    let (b, key_b) = fire_everywhere(&hook, &servers, "B", "pending");
    received.push(b);

    // The leader dies with B pending.
    let killed = Instant::now();
    send("-KILL", servers[first].pid());
    hook.set_status(200);
    let survivors: Vec<&Server> = (0..servers.len())
        .filter(|&i| i != first)
        .map(|i| servers[i])
        .collect();
    let next = leader(&survivors);
    let takeover = killed.elapsed();
    println!(
        "takeover: a follower led {:.1}s after the leader was killed (lease_ttl 6s by default)",
        takeover.as_secs_f64()
    );
    let new = survivors[next];
    let done_b = action_in(new, "B", "done");
    assert_eq!(done_b["idempotencyKey"], key_b.as_str());
    // A was recorded by the dead leader: the new one finished its copy without an attempt.
    let a_there = action_in(new, "A", "done");
    assert_eq!(a_there["attempts"], 0, "{a_there}");
    for s in &survivors {
        action_in(s, "B", "done");
    }

    received.extend(hook.drain());
    let for_a: Vec<&Received> = received.iter().filter(|r| alertname(r) == "A").collect();
    assert_eq!(for_a.len(), 1, "A was recorded, so delivered once only");
    assert_eq!(key(for_a[0]), key_a);
    let for_b: Vec<&Received> = received.iter().filter(|r| alertname(r) == "B").collect();
    assert!(for_b.len() >= 2, "B was retried after the failure");
    assert!(
        for_b.iter().all(|r| key(r) == key_b),
        "B always came with the same idempotency key: {:?}",
        for_b.iter().map(|r| key(r)).collect::<Vec<_>>()
    );
}

#[test]
fn a_leader_cut_off_from_etcd_stops_delivering_before_its_lease_expires() {
    let etcd = Etcd::start();
    let hook = Receiver::start();
    let rules = format!(
        "{GROUP}{}{}",
        threshold_rule("C", "c", "hook"),
        webhook("hook", hook.addr, "max_age = \"10m\"")
    );
    let ttl = Duration::from_secs(10);
    let cluster = instances(2, &etcd, &rules, "lease_ttl = \"10s\"");
    let servers: Vec<&Server> = cluster.iter().map(|(s, _)| s).collect();
    let leader = servers[leader(&servers)];

    etcd.signal("-STOP");
    let stopped = Instant::now();
    wait_for("the leader to report itself fenced", || {
        (leader.metric("faultline_cluster_fenced") == Some(1.0)).then_some(())
    });
    let fenced = stopped.elapsed();
    println!(
        "fenced {:.1}s after etcd stopped answering (lease_ttl {}s)",
        fenced.as_secs_f64(),
        ttl.as_secs()
    );
    // etcd last heard from the leader at most one renewal (ttl / 6) before it stopped, so
    // the lease lives at least until then; the leader fenced itself well before.
    assert!(fenced < ttl - ttl / 6, "fenced after {fenced:?}");
    assert_eq!(leader.metric("faultline_cluster_leader"), Some(0.0));
    let ready = reqwest::blocking::get(leader.url("/-/ready")).unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().unwrap().contains("fenced"));

    // An action that becomes due now is planned everywhere and delivered by nobody.
    push_all(&servers, "c");
    for s in &servers {
        action_in(s, "C", "pending");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(hook.drain().is_empty(), "delivered while fenced");
    let held = action_in(leader, "C", "pending");
    assert_eq!(held["attempts"], 0, "attempted while fenced: {held}");

    // etcd back: a leader (the same or the other) delivers it, once.
    etcd.signal("-CONT");
    let got = hook.next("the action, once etcd is back");
    assert_eq!(alertname(&got), "C");
    for s in &servers {
        action_in(s, "C", "done");
    }
    assert!(hook.drain().is_empty(), "delivered twice");
}

#[test]
fn a_leader_stopped_with_sigterm_hands_over_at_once() {
    let etcd = Etcd::start();
    // A lease far longer than the wait: only a handover, not the lease's expiry, passes.
    let cluster = instances(2, &etcd, "", "lease_ttl = \"120s\"");
    let servers: Vec<&Server> = cluster.iter().map(|(s, _)| s).collect();
    let first = leader(&servers);
    let stopped = Instant::now();
    send("-TERM", servers[first].pid());
    wait_for("the other instance to lead", || {
        is_leader(servers[1 - first]).then_some(())
    });
    println!(
        "handover on SIGTERM: {:.1}s (lease_ttl 120s)",
        stopped.elapsed().as_secs_f64()
    );
}

#[test]
fn a_silence_set_on_one_instance_mutes_on_all() {
    let etcd = Etcd::start();
    let cluster = instances(2, &etcd, "", "");
    let (one, two) = (&cluster[0].0, &cluster[1].0);
    // Alert senders send to every instance, as Prometheus does to Alertmanagers.
    let alert = json!([{"labels": {"alertname": "Noisy", "instance": "x"}}]);
    let client = reqwest::blocking::Client::new();
    for s in [one, two] {
        let r = client
            .post(s.url("/api/v2/alerts"))
            .json(&alert)
            .send()
            .unwrap();
        assert!(r.status().is_success());
    }
    let now = faultline::model::time::now_ms();
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "Noisy", "isRegex": false}],
        "startsAt": faultline::model::time::rfc3339(now),
        "endsAt": faultline::model::time::rfc3339(now + 3_600_000),
        "createdBy": "test",
        "comment": "set on one",
    });
    let r = client
        .post(two.url("/api/v2/silences"))
        .json(&silence)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let silenced_by = |s: &Server| {
        let alerts = s.get_json("/api/v2/alerts");
        alerts[0]["status"]["silencedBy"].clone()
    };
    wait_for(
        "the silence to mute the alert on the other instance",
        || (silenced_by(one) == json!([id])).then_some(()),
    );
    // Expired on the other instance, it stops muting on the first.
    let r = client
        .delete(one.url(&format!("/api/v2/silence/{id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for(
        "the expiry to reach the instance the silence was set on",
        || (silenced_by(two) == json!([])).then_some(()),
    );
}
