//! The fault-injection suite: receivers down, slow, hung and flapping; the Kafka broker down
//! and back; a scrape target that never answers; SIGKILL at random points under load; a full
//! disk. Each scenario checks the promises the README makes under faults: every acknowledged
//! alert (a 200 answer) is there afterwards, every action ends delivered or dead-lettered,
//! a receiver sees an action again only under the same idempotency key, and the receivers
//! and rule groups that are not at fault stay on schedule. Each prints a line of counts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use faultline_system_tests::faulty::{Hung, Slow};
use faultline_system_tests::kafka::{Tansu, consume};
use faultline_system_tests::programs::free_port;
use faultline_system_tests::{Received, Receiver, RulesDir, Server, wait_for, webhook};
use serde_json::{Value, json};

/// A rule group `tick` evaluated every 500 ms, whose schedule the scenarios watch.
const TICK: &str = r#"
[[group]]
name = "tick"
interval = "500ms"
[[group.rule]]
name = "Tick"
plugin = "threshold"
select = "tick"
params = { above = 0 }
"#;

/// A route to `healthy` by default and to the receiver named like its `team` label
/// otherwise, one action per alert.
fn route(teams: &[&str]) -> String {
    let mut r = "\n[route]\nreceiver = \"healthy\"\ngroup_by = [\"alertname\", \"instance\"]\n\
                 group_wait = \"0s\"\n"
        .to_string();
    for t in teams {
        r.push_str(&format!(
            "[[route.routes]]\nreceiver = \"{t}\"\nmatchers = ['team=\"{t}\"']\n"
        ));
    }
    r
}

/// Alerts named `prefix-0`...`prefix-(n-1)` for `team`, each its own instance.
fn alerts(prefix: &str, team: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{team}-{i}")).collect()
}

/// Posts alerts (their names; `team` routes them) and answers whether they were
/// acknowledged; `None` when there was no answer at all.
fn post(server: &Server, names: &[String], team: &str, note: &str) -> Option<u16> {
    let body: Value = names
        .iter()
        .map(|n| {
            json!({"labels": {"alertname": n, "team": team, "instance": n},
                   "annotations": {"note": note}})
        })
        .collect();
    let r = reqwest::blocking::Client::new()
        .post(server.url("/api/v2/alerts"))
        .timeout(Duration::from_secs(30))
        .json(&body)
        .send()
        .ok()?;
    Some(r.status().as_u16())
}

/// Posts alerts that must be acknowledged.
fn post_ok(server: &Server, names: &[String], team: &str) {
    assert_eq!(
        post(server, names, team, ""),
        Some(200),
        "posting {names:?}"
    );
}

/// The names of the alerts the server holds.
fn present(server: &Server) -> BTreeSet<String> {
    server
        .get_json("/api/v2/alerts")
        .as_array()
        .expect("an array of alerts")
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
        .collect()
}

/// Every outbox action.
/// Every acknowledged alert is among those the server holds.
fn assert_kept(acknowledged: &BTreeSet<String>, held: &BTreeSet<String>) {
    let missing: Vec<&String> = acknowledged.difference(held).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged, then lost, such as {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

fn outbox(server: &Server) -> Vec<Value> {
    server.get_json("/api/v1/outbox")["data"]
        .as_array()
        .expect("a data array")
        .clone()
}

/// The outbox once no action is pending any more.
fn settled(server: &Server) -> Vec<Value> {
    wait_for("every action to be delivered or dead-lettered", || {
        let all = outbox(server);
        all.iter().all(|a| a["state"] != "pending").then_some(all)
    })
}

/// How many of `receiver`'s actions are in `state`.
fn count(all: &[Value], receiver: &str, state: &str) -> usize {
    all.iter()
        .filter(|a| a["receiver"] == receiver && a["state"] == state)
        .count()
}

/// What a receiver was sent, by notification (alert names and status): the idempotency
/// keys it came under and how many requests carried it.
#[derive(Default)]
struct Ledger {
    keys: BTreeMap<String, BTreeSet<String>>,
    requests: usize,
}

impl Ledger {
    fn record(&mut self, received: &[Received]) {
        for r in received {
            let body = r.json();
            let mut names: Vec<&str> = body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["labels"]["alertname"].as_str().unwrap())
                .collect();
            names.sort_unstable();
            let what = format!("{} {}", body["status"], names.join(","));
            let key = r.header("Idempotency-Key").expect("an idempotency key");
            self.keys.entry(what).or_default().insert(key.to_string());
            self.requests += 1;
        }
    }

    /// The alert names of every firing notification received.
    fn firing(&self) -> BTreeSet<String> {
        self.keys
            .keys()
            .filter_map(|w| w.strip_prefix("\"firing\" "))
            .flat_map(|names| names.split(','))
            .map(str::to_string)
            .collect()
    }

    /// Requests beyond the first of each key.
    fn duplicates(&self) -> usize {
        self.requests - self.keys.values().map(BTreeSet::len).sum::<usize>()
    }

    /// Fails if one notification came under two keys: a duplicate the key cannot undo.
    fn assert_one_key_each(&self, receiver: &str) {
        for (what, keys) in &self.keys {
            assert_eq!(keys.len(), 1, "{receiver} got {what} under {keys:?}");
        }
    }
}

fn summary(scenario: &str, acknowledged: usize, present: usize, all: &[Value], dups: usize) {
    let state = |s: &str| all.iter().filter(|a| a["state"] == s).count();
    eprintln!(
        "faults: {scenario}: acknowledged {acknowledged}, present {present}, delivered {}, \
         dead {}, duplicates-by-key {dups}",
        state("done"),
        state("dead")
    );
}

/// Evaluations of the rule `tick/Tick` so far.
fn evaluations(server: &Server) -> f64 {
    server
        .metric(r#"faultline_rule_evaluations_total{rule="tick/Tick"}"#)
        .unwrap_or(0.0)
}

/// Fails unless the rule group `tick` keeps evaluating on schedule.
fn assert_on_schedule(server: &Server) {
    let before = evaluations(server);
    wait_for("three more evaluations of the rule group", || {
        (evaluations(server) >= before + 3.0).then_some(())
    });
    let lag = server
        .metric(r#"faultline_evaluation_lag_seconds{group="tick"}"#)
        .expect("an evaluation lag gauge");
    // Two seconds (four intervals) leave room for a busy CI machine; a group held up by a
    // fault falls behind without bound.
    assert!(lag <= 2.0, "the rule group is {lag}s behind");
}

/// Makes a receiver answer 503 for `down`, then 200 for three times as long, over and over
/// until dropped.
struct Flapper {
    stop: Arc<AtomicBool>,
}

impl Flapper {
    fn start(receiver: Arc<Receiver>, down: Duration) -> Flapper {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                receiver.set_status(503);
                std::thread::sleep(down);
                receiver.set_status(200);
                std::thread::sleep(down * 3);
            }
        });
        Flapper { stop }
    }
}

impl Drop for Flapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn receivers_down_slow_hung_or_flapping_delay_only_themselves() {
    let down: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let slow = Slow::start(Duration::from_millis(300));
    let hung = Hung::start();
    let flapping = Arc::new(Receiver::start());
    let healthy = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "rules.toml",
        &format!(
            "{TICK}{}{}{}{}{}{}",
            route(&["down", "slow", "hung", "flapping"]),
            webhook("down", down, "max_age = \"3s\""),
            webhook("slow", slow.addr, ""),
            webhook("hung", hung.addr, "timeout = \"1s\"\nmax_age = \"4s\""),
            webhook("flapping", flapping.addr, "max_age = \"10m\""),
            webhook("healthy", healthy.addr, ""),
        ),
    );
    let server = Server::start(&dir, &[]);
    // The flapping receiver refuses its first request whenever it comes (a pass's actions
    // can all be delivered within one of its up phases), then flaps.
    flapping.set_status(503);
    let mut acknowledged = BTreeSet::new();
    for team in ["down", "slow", "hung", "flapping", "ok"] {
        let names = alerts("r", team, 20);
        post_ok(&server, &names, team);
        acknowledged.extend(names);
    }
    let mut flapped = Ledger::default();
    wait_for("the flapping receiver's first request", || {
        flapped.record(&flapping.drain());
        (flapped.requests > 0).then_some(())
    });
    let _flapper = Flapper::start(flapping.clone(), Duration::from_millis(300));
    let mut ledger = Ledger::default();
    let want = alerts("r", "ok", 20).into_iter().collect::<BTreeSet<_>>();
    wait_for("the healthy receiver to get its 20 alerts", || {
        ledger.record(&healthy.drain());
        ledger.firing().is_superset(&want).then_some(())
    });
    assert_on_schedule(&server);
    let all = settled(&server);
    let held = present(&server);
    assert!(held.is_superset(&acknowledged));
    for (receiver, state) in [
        ("down", "dead"),
        ("hung", "dead"),
        ("slow", "done"),
        ("healthy", "done"),
    ] {
        assert_eq!(count(&all, receiver, state), 20, "{receiver}: {all:#?}");
    }
    ledger.record(&healthy.drain());
    ledger.assert_one_key_each("healthy");
    flapped.record(&flapping.drain());
    flapped.assert_one_key_each("flapping");
    assert!(
        flapped.requests > 20,
        "the flapping receiver never refused one"
    );
    let flapped_done = count(&all, "flapping", "done");
    assert_eq!(flapped_done + count(&all, "flapping", "dead"), 20);
    assert!(flapped_done > 0, "{all:#?}");
    summary(
        "receivers",
        acknowledged.len(),
        held.intersection(&acknowledged).count(),
        &all,
        ledger.duplicates() + flapped.duplicates(),
    );
}

#[test]
fn the_kafka_broker_down_then_back_gets_every_event_once() {
    let port = free_port();
    let healthy = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook", "kafka"]);
    dir.write(
        "rules.toml",
        &format!(
            r#"{TICK}{}{}
[[receiver]]
name = "events"
plugin = "kafka"
params = {{ topic = "incidents" }}
grants = {{ kafka = ["incidents"], connections = ["events"] }}
max_age = "10m"
"#,
            route(&["events"]),
            webhook("healthy", healthy.addr, ""),
        ),
    );
    let config = dir.config(&format!(
        "[connection.events]\nbrokers = \"127.0.0.1:{port}\"\n"
    ));
    let server = Server::start(&dir, &["--config", &config]);
    let events = alerts("k", "events", 5);
    let fine = alerts("k", "ok", 3);
    post_ok(&server, &events, "events");
    post_ok(&server, &fine, "ok");
    wait_for("the events to be tried while the broker is down", || {
        outbox(&server)
            .iter()
            .any(|a| {
                a["receiver"] == "events"
                    && a["state"] == "pending"
                    && a["attempts"].as_u64() >= Some(1)
            })
            .then_some(())
    });
    // The healthy receiver and the rule group are not held up meanwhile.
    let mut ledger = Ledger::default();
    wait_for("the healthy receiver's alerts", || {
        ledger.record(&healthy.drain());
        ledger
            .firing()
            .is_superset(&fine.iter().cloned().collect())
            .then_some(())
    });
    assert_on_schedule(&server);

    let tansu = Tansu::start_on(port);
    tansu.create_topic("incidents");
    let all = settled(&server);
    assert_eq!(count(&all, "events", "done"), 5, "{all:#?}");
    let keys: BTreeSet<&str> = all
        .iter()
        .filter(|a| a["receiver"] == "events")
        .map(|a| a["idempotencyKey"].as_str().unwrap())
        .collect();
    let got = consume(&tansu.brokers(), "incidents", 5, Duration::from_secs(30));
    let sent: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.header("idempotency-key").unwrap()).to_string())
        .collect();
    let distinct: BTreeSet<&str> = sent.iter().map(String::as_str).collect();
    assert_eq!(distinct, keys, "every event, under its action's key");
    let held = present(&server);
    let acknowledged: BTreeSet<String> = events.into_iter().chain(fine).collect();
    assert!(held.is_superset(&acknowledged));
    ledger.assert_one_key_each("healthy");
    summary(
        "kafka",
        acknowledged.len(),
        held.intersection(&acknowledged).count(),
        &all,
        sent.len() - distinct.len() + ledger.duplicates(),
    );
}

#[test]
fn a_hanging_scrape_target_delays_nothing_else() {
    let hung = Hung::start();
    let healthy = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "rules.toml",
        &format!(
            r#"{TICK}
[[group]]
name = "targets"
interval = "500ms"
[[group.rule]]
name = "TargetDown"
plugin = "threshold"
select = 'up{{job="stuck"}}'
params = {{ below = 1 }}
{}{}"#,
            route(&[]),
            webhook("healthy", healthy.addr, ""),
        ),
    );
    let config = dir.config(&format!(
        "[[scrape]]\njob = \"stuck\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
        hung.addr
    ));
    let server = Server::start(&dir, &["--config", &config]);
    wait_for("the scrape to reach the target", || {
        (hung.connections() >= 1).then_some(())
    });
    let acknowledged = alerts("s", "ok", 10);
    post_ok(&server, &acknowledged, "ok");
    let mut ledger = Ledger::default();
    let mut want: BTreeSet<String> = acknowledged.iter().cloned().collect();
    want.insert("TargetDown".into());
    wait_for(
        "the alerts and the target's TargetDown at the receiver",
        || {
            ledger.record(&healthy.drain());
            ledger.firing().is_superset(&want).then_some(())
        },
    );
    assert_on_schedule(&server);
    let connections = hung.connections();
    wait_for("the target to be scraped again after a timeout", || {
        (hung.connections() > connections).then_some(())
    });
    let all = settled(&server);
    assert_eq!(count(&all, "healthy", "done"), all.len(), "{all:#?}");
    let held = present(&server);
    assert!(held.is_superset(&want));
    ledger.assert_one_key_each("healthy");
    summary(
        "scrape",
        acknowledged.len(),
        held.iter().filter(|n| acknowledged.contains(n)).count(),
        &all,
        ledger.duplicates(),
    );
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants): random points that a
/// failing run can repeat with its seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn kill9(server: Server) {
    Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap();
    drop(server);
}

/// Posts batches of alerts for `team` until stopped, returning the acknowledged ones.
fn load(server: &Server, prefix: String, stop: &AtomicBool) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for batch in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let names = alerts(&format!("{prefix}b{batch}"), "ok", 5);
        match post(server, &names, "ok", "") {
            Some(200) => acknowledged.extend(names),
            _ => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    acknowledged
}

#[test]
fn sigkill_at_random_points_under_load_loses_and_duplicates_nothing() {
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    eprintln!("faults: sigkill: seed {seed} (set FAULTS_SEED to repeat another run)");
    let mut rng = Lcg(seed);
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "rules.toml",
        &format!("{TICK}{}{}", route(&[]), webhook("healthy", hook.addr, "")),
    );
    let mut acknowledged = BTreeSet::new();
    let mut ledger = Ledger::default();
    for round in 0..6 {
        // The receiver fails now and then, so some actions are mid-retry at the kill.
        hook.set_status(if rng.below(3) == 0 { 503 } else { 200 });
        let server = Arc::new(Server::start(&dir, &[]));
        let stop = Arc::new(AtomicBool::new(false));
        let poster = {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || load(&server, format!("k{round}"), &stop))
        };
        std::thread::sleep(Duration::from_millis(200 + rng.below(1500)));
        Command::new("kill")
            .args(["-KILL", &server.pid().to_string()])
            .status()
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        let got = poster.join().expect("the poster");
        eprintln!("faults: sigkill: round {round}: {} acknowledged", got.len());
        acknowledged.extend(got);
        drop(server);
        ledger.record(&hook.drain());
    }
    hook.set_status(200);
    let server = Server::start(&dir, &[]);
    let held = present(&server);
    assert_kept(&acknowledged, &held);
    wait_for("every acknowledged alert at the receiver", || {
        ledger.record(&hook.drain());
        ledger.firing().is_superset(&acknowledged).then_some(())
    });
    let all = settled(&server);
    assert_eq!(count(&all, "healthy", "done"), all.len(), "{all:#?}");
    ledger.assert_one_key_each("healthy");
    assert!(!acknowledged.is_empty());
    summary(
        "sigkill",
        acknowledged.len(),
        acknowledged.intersection(&held).count(),
        &all,
        ledger.duplicates(),
    );
    kill9(server);
}

/// A small tmpfs mounted on a directory, unmounted when dropped; `None` where mounting is
/// not permitted (it needs root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        Command::new("umount").arg("-l").arg(&self.0).status().ok();
    }
}

#[test]
fn a_full_disk_refuses_alerts_and_loses_none_it_acknowledged() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    let Some(_disk) = Tmpfs::mount(&dir.data(), "4m") else {
        eprintln!("faults: disk-full: SKIPPED: mounting a tmpfs needs root here");
        return;
    };
    // Ballast, removed later to free the disk.
    std::fs::write(dir.data().join("ballast"), vec![0u8; 1 << 20]).unwrap();
    dir.write(
        "rules.toml",
        &format!(
            "{TICK}\n[route]\nreceiver = \"healthy\"\ngroup_by = [\"team\"]\ngroup_wait = \"0s\"\n\
             group_interval = \"1s\"\n{}",
            webhook("healthy", hook.addr, "")
        ),
    );
    let server = Server::start(&dir, &[]);
    let note = "x".repeat(2000);
    let mut acknowledged = BTreeSet::new();
    let mut refused = None;
    for batch in 0..2000 {
        let names = alerts(&format!("d{batch}"), "ok", 20);
        match post(&server, &names, "ok", &note) {
            Some(200) => acknowledged.extend(names),
            other => {
                refused = other;
                break;
            }
        }
    }
    let refused = refused.expect("the disk never filled up");
    assert!(refused >= 500, "a full disk answered {refused}");
    assert_eq!(
        reqwest::blocking::get(server.url("/-/healthy"))
            .unwrap()
            .status(),
        200,
        "the server is still up"
    );
    assert_on_schedule(&server);
    let full = acknowledged.len();

    // Space again: alerts are taken, and every acknowledged one is notified.
    std::fs::remove_file(dir.data().join("ballast")).unwrap();
    let later = alerts("after", "ok", 5);
    wait_for("alerts to be taken again", || {
        (post(&server, &later, "ok", "") == Some(200)).then_some(())
    });
    acknowledged.extend(later);
    let (mut requests, mut keys, mut notified) = (0, BTreeSet::new(), BTreeSet::new());
    wait_for("every acknowledged alert at the receiver", || {
        for r in hook.drain() {
            let body = r.json();
            if body["status"] == "firing" {
                let names = body["alerts"].as_array().unwrap().iter();
                notified
                    .extend(names.map(|a| a["labels"]["alertname"].as_str().unwrap().to_string()));
            }
            requests += 1;
            keys.insert(r.header("Idempotency-Key").unwrap().to_string());
        }
        notified.is_superset(&acknowledged).then_some(())
    });
    let all = settled(&server);

    // And they survive a SIGKILL.
    kill9(server);
    let server = Server::start(&dir, &[]);
    let held = present(&server);
    assert_kept(&acknowledged, &held);
    eprintln!("faults: disk-full: full after {full} alerts, answered {refused}");
    summary(
        "disk-full",
        acknowledged.len(),
        acknowledged.intersection(&held).count(),
        &all,
        requests - keys.len(),
    );
}
