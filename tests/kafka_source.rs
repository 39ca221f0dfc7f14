//! Kafka sources in a consumer group, against a real Kafka-protocol broker (tansu): three
//! Faultline shards share a 6-partition topic of remote_write messages keyed by `service`,
//! and forward their alerts to a fourth instance that dispatches. One shard is killed: its
//! partitions move to the others, which replay them; then a new shard joins, and partitions
//! move off the survivors, which hand their alerts over. No sample is lost, the alerts that
//! were firing keep firing (same start, no resolution anywhere), and a rule over two series
//! of one service fires on exactly one shard before and after.

use std::collections::BTreeMap;
use std::time::Duration;

use faultline::ingest::remote_write::proto;
use faultline_system_tests::kafka::Tansu;
use faultline_system_tests::{Receiver, RulesDir, Server, wait_for, webhook};
use prost::Message;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const TOPIC: &str = "metrics";
const PARTITIONS: u32 = 6;
const SERVICES: usize = 12;
/// Rounds of samples produced before the kill, and again after it.
const ROUNDS: i64 = 10;

/// The shards' rules: a threshold per `load` series, a ratio of two series per service,
/// and a route forwarding every alert to the dispatcher's webhook intake.
fn shard_rules(dispatcher: std::net::SocketAddr) -> String {
    format!(
        r#"
[[group]]
name = "shard"
interval = "1s"

[[group.rule]]
name = "HighLoad"
plugin = "threshold"
select = 'load'
params = {{ above = 5.0 }}

[[group.rule]]
name = "HighErrorRatio"
plugin = "ratio"
select = {{ errors = 'errors', total = 'requests' }}
params = {{ by = ["service"], above = 0.5 }}

[route]
receiver = "dispatcher"
group_by = ["alertname", "service"]
group_wait = "0s"
group_interval = "1s"

[[receiver]]
name = "dispatcher"
plugin = "webhook"
params = {{ url = "http://{dispatcher}/api/v1/alertmanager/webhook" }}
grants = {{ http = ["{dispatcher}"] }}
"#
    )
}

fn shard_config(brokers: &str) -> String {
    format!(
        r#"
[[kafka_source]]
brokers = "{brokers}"
topics = ["{TOPIC}"]
format = "remote_write"
group_id = "shards"
session_timeout = "6s"
"#
    )
}

/// A snappy-compressed remote_write request of one series with one sample.
fn write_request(name: &str, service: &str, value: f64, ts: i64) -> Vec<u8> {
    let req = proto::WriteRequest {
        timeseries: vec![proto::TimeSeries {
            labels: [("__name__", name), ("service", service)]
                .iter()
                .map(|(n, v)| proto::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: vec![proto::Sample {
                value,
                timestamp: ts,
            }],
        }],
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

fn service(i: usize) -> String {
    format!("s{i:02}")
}

/// Produces rounds `rounds` of samples, one message per series and round, keyed by service:
/// `load` = 10 for every service, and `errors` = 6 of `requests` = 10 for service s00 (a
/// ratio of 0.6), in messages of their own that the key keeps on one partition.
fn produce(producer: &BaseProducer, t0: i64, rounds: std::ops::Range<i64>) {
    for round in rounds {
        let ts = t0 + round * 1000;
        let mut messages: Vec<(String, Vec<u8>)> = (0..SERVICES)
            .map(|i| (service(i), write_request("load", &service(i), 10.0, ts)))
            .collect();
        messages.push((service(0), write_request("errors", &service(0), 6.0, ts)));
        messages.push((service(0), write_request("requests", &service(0), 10.0, ts)));
        for (key, payload) in &messages {
            producer
                .send(BaseRecord::to(TOPIC).key(key).payload(payload))
                .unwrap_or_else(|(e, _)| panic!("producing: {e}"));
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flushing");
}

/// Per series (`name{service}`) a shard holds, the timestamps of its samples in the last
/// 10 minutes.
fn held(shard: &Server) -> BTreeMap<String, Vec<i64>> {
    let v = shard.get_json("/api/v1/query?query=%7Bservice%3D~%22.%2B%22%7D%5B10m%5D");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let key = format!(
                "{}{{{}}}",
                s["metric"]["__name__"].as_str().unwrap(),
                s["metric"]["service"].as_str().unwrap()
            );
            let ts = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_f64().unwrap() * 1000.0).round() as i64)
                .collect();
            (key, ts)
        })
        .collect()
}

/// Whether every series produced is held whole (every timestamp of `rounds`) by exactly
/// one of `shards`, and no shard holds a series in part.
fn all_held_once(shards: &[&Server], t0: i64, rounds: i64) -> bool {
    let want: Vec<i64> = (0..rounds).map(|r| t0 + r * 1000).collect();
    let mut series: Vec<String> = (0..SERVICES)
        .map(|i| format!("load{{{}}}", service(i)))
        .collect();
    series.push(format!("errors{{{}}}", service(0)));
    series.push(format!("requests{{{}}}", service(0)));
    let held: Vec<_> = shards.iter().map(|s| held(s)).collect();
    series.iter().all(|name| {
        let holders: Vec<&Vec<i64>> = held.iter().filter_map(|h| h.get(name)).collect();
        holders.len() == 1 && holders[0] == &want
    })
}

/// The shards still running.
fn live(shards: &[Option<Server>]) -> Vec<&Server> {
    shards.iter().flatten().collect()
}

fn gauge(shard: &Server, name: &str) -> f64 {
    shard
        .metric(&format!(r#"{name}{{source="{TOPIC}"}}"#))
        .unwrap_or(-1.0)
}

/// Whether the group has settled over `shards`: every partition assigned, none replaying,
/// and every shard ready.
fn settled(shards: &[&Server]) -> bool {
    let assigned: f64 = shards
        .iter()
        .map(|s| gauge(s, "faultline_kafka_partitions_assigned"))
        .sum();
    assigned == f64::from(PARTITIONS)
        && shards.iter().all(|s| {
            gauge(s, "faultline_kafka_partitions_assigned") > 0.0
                && gauge(s, "faultline_kafka_partitions_replaying") == 0.0
                && reqwest::blocking::get(s.url("/-/ready")).is_ok_and(|r| r.status() == 200)
        })
}

/// The shards on which the rule `alertname` fires for `service`.
fn firing_on(shards: &[&Server], alertname: &str, service: &str) -> Vec<usize> {
    (0..shards.len())
        .filter(|&i| {
            let v = shards[i].get_json("/api/v1/alerts");
            v["data"]["alerts"].as_array().unwrap().iter().any(|a| {
                a["labels"]["alertname"] == alertname
                    && a["labels"]["service"] == service
                    && a["state"] == "firing"
            })
        })
        .collect()
}

/// The dispatcher's active alerts: `alertname/service` -> `startsAt`.
fn dispatched(dispatcher: &Server) -> BTreeMap<String, String> {
    let v = dispatcher.get_json("/api/v2/alerts");
    v.as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .map(|a| {
            (
                format!(
                    "{}/{}",
                    a["labels"]["alertname"].as_str().unwrap(),
                    a["labels"]["service"].as_str().unwrap_or("")
                ),
                a["startsAt"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Evaluations of `HighLoad` a shard has run.
fn evaluations(shard: &Server) -> f64 {
    shard
        .metric(r#"faultline_rule_evaluations_total{rule="shard/HighLoad"}"#)
        .unwrap_or(0.0)
}

#[test]
fn a_killed_shards_partitions_move_without_losing_samples_or_flapping_alerts() {
    let tansu = Tansu::start();
    tansu.create_partitioned_topic(TOPIC, PARTITIONS);
    let hook = Receiver::start();
    let dispatcher_dir = RulesDir::new(&["webhook"]);
    dispatcher_dir.write(
        "route.toml",
        &format!(
            "[route]\nreceiver = \"hook\"\ngroup_by = [\"alertname\", \"service\"]\n\
             group_wait = \"0s\"\ngroup_interval = \"1s\"\n{}",
            webhook("hook", hook.addr, "")
        ),
    );
    let dispatcher = Server::start(&dispatcher_dir, &[]);
    let dirs: Vec<RulesDir> = (0..3)
        .map(|_| {
            let dir = RulesDir::new(&["threshold", "ratio", "webhook"]);
            dir.write("shard.toml", &shard_rules(dispatcher.addr));
            dir
        })
        .collect();
    let mut shards: Vec<Option<Server>> = dirs
        .iter()
        .map(|d| {
            let cfg = d.config(&shard_config(&tansu.brokers()));
            Some(Server::start(d, &["--config", &cfg]))
        })
        .collect();
    wait_for(
        "the group to spread the partitions over three ready shards",
        || settled(&live(&shards)).then_some(()),
    );

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", tansu.brokers())
        .set("acks", "all")
        .create()
        .unwrap();
    let t0 = faultline::model::time::now_ms() - 60_000;
    produce(&producer, t0, 0..ROUNDS);
    wait_for("every series to be held whole by one shard", || {
        all_held_once(&live(&shards), t0, ROUNDS).then_some(())
    });
    let ratio = wait_for("the ratio alert of s00 to fire on one shard", || {
        let on = firing_on(&live(&shards), "HighErrorRatio", "s00");
        (!on.is_empty()).then_some(on)
    });
    assert_eq!(ratio.len(), 1, "the ratio fires on exactly one shard");
    let before = wait_for("the dispatcher to hold every shard's alerts", || {
        let d = dispatched(&dispatcher);
        (d.len() == SERVICES + 1).then_some(d)
    });

    // Kill the shard whose rule sees s00's two series: its partitions, with them, move.
    let victim = ratio[0];
    let assigned_before: Vec<f64> = live(&shards)
        .iter()
        .map(|s| gauge(s, "faultline_kafka_partitions_assigned"))
        .collect();
    drop(shards[victim].take()); // SIGKILL
    produce(&producer, t0, ROUNDS..2 * ROUNDS);
    wait_for("the two shards left to take over every partition", || {
        settled(&live(&shards)).then_some(())
    });
    let survivors = live(&shards);
    let kept_before = assigned_before
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim);
    for (s, (_, before)) in survivors.iter().zip(kept_before) {
        let now = gauge(s, "faultline_kafka_partitions_assigned");
        assert!(
            now > *before,
            "a survivor went from {before} to {now} partitions"
        );
    }
    wait_for(
        "every series, before and after the kill, held whole by one survivor",
        || all_held_once(&survivors, t0, 2 * ROUNDS).then_some(()),
    );
    let ratio = wait_for("the ratio alert of s00 to fire on a survivor", || {
        let on = firing_on(&survivors, "HighErrorRatio", "s00");
        (!on.is_empty()).then_some(on)
    });
    assert_eq!(ratio.len(), 1, "the ratio fires on exactly one survivor");
    // A survivor that gained a partition fires its alerts once it has evaluated after the
    // replay: wait for that, then none may fire twice.
    for i in 0..SERVICES {
        let on = wait_for(
            &format!("HighLoad of {} to fire on a survivor", service(i)),
            || {
                let on = firing_on(&survivors, "HighLoad", &service(i));
                (!on.is_empty()).then_some(on)
            },
        );
        assert_eq!(
            on.len(),
            1,
            "HighLoad of {} fires on exactly one survivor",
            service(i)
        );
    }

    // A shard joins again: partitions move off the survivors, which hand their alerts over
    // to it rather than resolve them.
    let joined_dir = RulesDir::new(&["threshold", "ratio", "webhook"]);
    joined_dir.write("shard.toml", &shard_rules(dispatcher.addr));
    let cfg = joined_dir.config(&shard_config(&tansu.brokers()));
    shards[victim] = Some(Server::start(&joined_dir, &["--config", &cfg]));
    let all = live(&shards);
    wait_for(
        "the group to spread the partitions over three ready shards again",
        || {
            (settled(&all) && gauge(all[victim], "faultline_kafka_partitions_assigned") > 0.0)
                .then_some(())
        },
    );
    wait_for(
        "every series held whole by one shard after the join",
        || all_held_once(&all, t0, 2 * ROUNDS).then_some(()),
    );
    for i in 0..SERVICES {
        let what = format!(
            "HighLoad of {} to fire on one shard after the join",
            service(i)
        );
        wait_for(&what, || {
            (firing_on(&all, "HighLoad", &service(i)).len() == 1).then_some(())
        });
    }

    // Let every shard evaluate and notify a few more times: nothing resolves anywhere.
    let evaluated: Vec<f64> = all.iter().map(|s| evaluations(s)).collect();
    wait_for("three more evaluations on each shard", || {
        all.iter()
            .zip(&evaluated)
            .all(|(s, e)| evaluations(s) >= e + 3.0)
            .then_some(())
    });
    assert_eq!(
        dispatched(&dispatcher),
        before,
        "every alert still fires at the dispatcher, from the same start"
    );
    for r in hook.drain() {
        let body = r.json();
        for a in body["alerts"].as_array().unwrap() {
            assert_eq!(
                a["status"], "firing",
                "a resolution reached the receiver: {a}"
            );
        }
    }
}
