#!/usr/bin/env python3
"""Faultline side by side with Prometheus and Alertmanager (not CI).

    python3 scripts/bench/run.py [--smoke] [--only evaluation,memory,...] [--rounds N]

Starts Faultline (release build: $CARGO_TARGET_DIR/release/faultline, or --faultline) and
the peer each case compares it with, feeds both the same data with the same load tool, runs
them one after the other, interleaved (Faultline, peer, Faultline, peer...; one round is
one of each), and prints a Markdown table: each side's median over the rounds with its range
(min-max), the ratio Faultline/peer (median of the rounds' ratios, and their range) and the
goal from issue 17. Cases (--only takes their names):

- evaluation: N series x R threshold rules (N 10k and 100k, R 1 and 10), fed by
  remote_write, evaluated every 2 s. Faultline: `faultline_rule_group_last_duration_seconds`
  (the rules' plugin calls with their alerts' update and save) and the rules' part alone
  (`faultline_rule_evaluation_duration_seconds_sum`); each rule with `timeout = "30s"`, as
  the default 1 s deadline is too short on a loaded machine; Prometheus:
  `prometheus_rule_group_last_duration_seconds`. Measured in the steady state: the cycle
  that creates the alerts and the next one are left out; the median of the next 3 is a
  round's figure.
- memory: resident memory (VmRSS of /proc/PID/status) per series at 100k and 1M series with
  node_exporter's label sets, 10 samples each, fed by remote_write; no rules.
- scrape: both scrape one exposition-text target of 100k series every 5 s;
  `scrape_duration_seconds`, read through each one's /api/v1/query.
- intake: wrk POSTs alerts to /api/v2/alerts, 1 and 100 per request, 8 and 32
  connections, for --seconds; vs Alertmanager.
- listing: `GET /api/v2/alerts` with 10,000 alerts and 100 inhibit rules; vs Alertmanager.
- remote_write: wrk sends 10k series, 500 per request, over 4 connections; vs Prometheus's
  receiver (`--web.enable-remote-write-receiver`).
- webhook: Faultline alone: a pushed sample crossing a threshold (rule every 1 s) until the
  webhook receives the alert, p50 and p99, under 100k samples/s of remote_write.
- delivery: Faultline alone: 2,000 alerts posted at once, each its own group, until a
  webhook receiver answering at once has every one: recovery actions delivered per second
  (each planned durably, attempted and finished), at the receiver's default concurrency.

--smoke runs every case tiny and fast (1 round) to check the driver works, not to measure.

Needs: Debian's prometheus, prometheus-alertmanager and wrk
(`apt-get install prometheus prometheus-alertmanager wrk`), the plugins (`make plugins`)
and a release build (`cargo build --release -p faultline`). Every program runs on a free
loopback port with a temporary directory, in its own process group, killed on exit.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
import wire  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = ("evaluation", "memory", "scrape", "intake", "listing", "remote_write", "webhook",
         "delivery")


def args_parser():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faultline", default=os.path.join(target, "release", "faultline"),
                   help="the faultline binary (default: %(default)s)")
    p.add_argument("--plugins", default=os.path.join(target, "wasm32-wasip2", "plugin"),
                   help="the built plugins (default: %(default)s)")
    p.add_argument("--only", default=",".join(CASES), help="cases to run, comma-separated")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10, help="each wrk run (default: 10)")
    p.add_argument("--evaluation-series", type=lambda t: [int(x) for x in t.split(",")],
                   default=[10_000, 100_000], help="series counts of the evaluation case "
                   "(default: 10000,100000)")
    p.add_argument("--smoke", action="store_true", help="every case tiny, one round")
    return p


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="faultline-bench-")
        self.rows = []
        self.runs = 0

    def dir(self, what):
        self.runs += 1
        d = os.path.join(self.tmp, f"{self.runs:03d}-{what}")
        os.makedirs(d)
        return d

    def faultline(self, rules="", config=""):
        return peers.faultline(self.a.faultline, self.dir("faultline"), rules, config)

    def row(self, work, unit, fl, peer, goal=None, peer_name="", lower_is_better=True):
        self.rows.append(dict(work=work, unit=unit, fl=fl, peer=peer, goal=goal,
                              peer_name=peer_name, lower=lower_is_better))
        print(f"  {work}: Faultline {spread(fl, unit)}"
              + (f", {peer_name} {spread(peer, unit)}" if peer else ""), flush=True)

    def rounds(self):
        return 1 if self.a.smoke else self.a.rounds


def spread(xs, unit):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt(xs[0], unit)
    return f"{fmt(statistics.median(xs), unit)} ({fmt(min(xs), unit)}–{fmt(max(xs), unit)})"


def fmt(x, unit):
    if unit == "s":
        return f"{x * 1000:,.1f} ms" if x < 1 else f"{x:,.2f} s"
    if unit == "B":
        return f"{x / 2**20:,.0f} MiB" if x >= 2**20 else f"{x / 1024:,.2f} KiB"
    if unit == "ratio":
        return f"{x:.3g}"
    return f"{x:,.0f} {unit}"


def poll_changes(read, skip, take, timeout):
    """The successive distinct values `read()` returns (polled every 0.1 s), the first `skip`
    left out, until `take` are collected or `timeout` seconds pass."""
    seen, last, deadline = [], None, time.time() + timeout
    while len(seen) < skip + take and time.time() < deadline:
        v = read()
        if v is not None and v != last:
            if last is not None or skip == 0:
                seen.append(v)
            last = v
        time.sleep(0.1)
    got = seen[skip:]
    if not got:
        raise SystemExit(f"no reading within {timeout} s")
    return got


def wait_until(what, check, timeout):
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def send_all(url, bodies, threads=4):
    """POSTs remote_write `bodies` to `url` over `threads` connections."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    errors = []

    def worker(k):
        c = http.client.HTTPConnection(host, int(port), timeout=300)
        for body in bodies[k::threads]:
            c.request("POST", "/api/v1/write", body, {
                "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0"})
            r = c.getresponse()
            text = r.read()
            if r.status // 100 != 2:
                errors.append(f"{r.status} {text[:200]!r}")
        c.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit(f"remote_write to {url} failed {len(errors)} times: {errors[0]}")


def series_held(p):
    """Series a server holds: Faultline's faultline_series, Prometheus's head series."""
    text = p.metrics()
    return peers.metric(text, "faultline_series") or peers.metric(
        text, "prometheus_tsdb_head_series") or 0


def median(xs):
    return statistics.median(xs)


# --- evaluation -----------------------------------------------------------------------

def evaluation(b):
    sizes, rule_counts = ([2000], [1, 2]) if b.a.smoke else (b.a.evaluation_series, [1, 10])
    for n in sizes:
        for r in rule_counts:
            fl_cycle, fl_rules, prom, firing = [], [], [], {}
            for _ in range(b.rounds()):
                c, rules_only, firing["Faultline"] = evaluate_faultline(b, n, r)
                fl_cycle.append(c)
                fl_rules.append(rules_only)
                p, firing["Prometheus"] = evaluate_prometheus(b, n, r)
                prom.append(p)
            what = f"evaluation, {n:,} series × {r} rule{'s' * (r > 1)} ({firing['Faultline']:,.0f} firing; Prometheus {firing['Prometheus']:,.0f})"
            b.row(what + ": rules' evaluation only", "s", fl_rules, prom, ("≤", 0.05), "Prometheus")
            b.row(what + ": whole cycle with the alerts' update and save", "s", fl_cycle, prom,
                  ("≤", 0.05), "Prometheus")


def thresholds(r):
    """Rule k fires for about 6% - 0.1% k of the series."""
    return [round(0.94 + 0.001 * k, 3) for k in range(r)]


def eval_bodies(n):
    now = int(time.time() * 1000)
    return wire.bodies(n, 500, [now - 1000, now], name="bench_value")


def evaluate_faultline(b, n, r):
    rules = '[[group]]\nname = "bench"\ninterval = "2s"\n' + "".join(
        f'\n[[group.rule]]\nname = "High{k}"\nplugin = "threshold"\nselect = "bench_value"\n'
        f'params = {{ above = {t} }}\ntimeout = "30s"\n' for k, t in enumerate(thresholds(r)))
    f = b.faultline(rules)
    try:
        send_all(f.url(""), eval_bodies(n))
        wait_until("series in Faultline", lambda: series_held(f) >= n, 120)

        def evals():
            text = f.metrics()
            return (peers.metric(text, "faultline_rule_evaluations_total") or 0,
                    peers.metric(text, "faultline_rule_evaluation_duration_seconds_sum") or 0,
                    peers.metric(text, "faultline_rule_group_last_duration_seconds"))

        # Steady state: one whole cycle after the one that created the alerts. The rules'
        # part: the duration sum's growth over whole cycles (r evaluations each).
        wait_until("firing alerts", lambda: firing_faultline(f) > 0, 120)
        e = evals()[0]
        wait_until("a cycle more", lambda: evals()[0] >= e + r, 120)
        e0, d0, _ = evals()
        cycles = poll_changes(lambda: evals()[2], 1, 3, 120) if evals()[2] is not None else []
        wait_until("3 more cycles", lambda: evals()[0] >= e0 + 3 * r, 120)
        e1, d1, _ = evals()
        rules_only = (d1 - d0) / (e1 - e0) * r
        return (median(cycles) if cycles else None), rules_only, firing_faultline(f)
    finally:
        f.stop()


def firing_faultline(f):
    return peers.metric(f.metrics(), "faultline_alerts", {"state": "firing"}) or 0


def firing_prometheus(p):
    return sum(p.query('count(ALERTS{alertstate="firing"})'))


def evaluate_prometheus(b, n, r):
    d = b.dir("prometheus")
    with open(os.path.join(d, "rules.yml"), "w") as out:
        out.write("groups:\n- name: bench\n  interval: 2s\n  rules:\n" + "".join(
            f"  - alert: High{k}\n    expr: bench_value > {t}\n"
            for k, t in enumerate(thresholds(r))))
    p = peers.prometheus(d, f"global:\n  evaluation_interval: 2s\nrule_files: [{d}/rules.yml]\n")
    try:
        send_all(p.url(""), eval_bodies(n))
        wait_until("series in Prometheus", lambda: series_held(p) >= n, 120)

        def last():
            return peers.metric(p.metrics(), "prometheus_rule_group_last_duration_seconds")

        wait_until("firing alerts", lambda: firing_prometheus(p) > 0, 300)
        got = poll_changes(last, 1, 3, 300)
        return median(got), firing_prometheus(p)
    finally:
        p.stop()


# --- memory and scrape -----------------------------------------------------------------

def memory(b):
    sizes, samples = ([5000], 3) if b.a.smoke else ([100_000, 1_000_000], 10)
    for n in sizes:
        print(f"  generating {n:,} series...", flush=True)
        template = wire.bodies(n, 500, [wire.stamp(k) for k in range(samples)])
        fl, prom = [], []
        for _ in range(b.rounds()):
            fl.append(fill_and_measure(b.faultline(), template, samples, n))
            d = b.dir("prometheus")
            prom.append(fill_and_measure(peers.prometheus(d, "global: {}\n"), template, samples, n))
        b.row(f"resident memory per series, {n:,} series × {samples} samples, no rules", "B",
              fl, prom, ("≤", 1.0), "Prometheus")
        b.rows[-1]["absolute"] = ("≤", 1024)


def fill_and_measure(p, template, samples, n):
    try:
        now = int(time.time() * 1000)
        stamps = [now - (samples - 1 - k) * 15_000 for k in range(samples)]
        send_all(p.url(""), [wire.stamped(body, stamps) for body in template])
        wait_until(f"series in {p.kind}", lambda: series_held(p) >= n, 300)
        time.sleep(3)
        return p.rss_bytes() / n
    finally:
        p.stop()


class Target:
    """An exposition-text target serving fixed bytes at /metrics."""

    def __init__(self, body):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self.server, self.addr = peers.serve(Handler)


def scrape(b):
    n = 2000 if b.a.smoke else 100_000
    target = Target(wire.exposition(n))
    try:
        fl, prom = [], []
        for _ in range(b.rounds()):
            f = b.faultline(config=f'[[scrape]]\njob = "bench"\ntargets = ["{target.addr}"]\n'
                                   'interval = "5s"\ntimeout = "5s"\n')
            fl.append(scrape_duration(f))
            d = b.dir("prometheus")
            p = peers.prometheus(d, "scrape_configs:\n- job_name: bench\n  scrape_interval: 5s\n"
                                    f"  scrape_timeout: 5s\n  static_configs:\n  - targets: ['{target.addr}']\n")
            prom.append(scrape_duration(p))
        b.row(f"exposition text scrape, {n:,} series ({len(wire.exposition(n)) / 2**20:.1f} MiB)",
              "s", fl, prom, None, "Prometheus")
    finally:
        target.server.shutdown()


def scrape_duration(p):
    try:
        def read():
            got = p.query('scrape_duration_seconds{job="bench"}')
            return got[0] if got else None

        return median(poll_changes(read, 1, 3, 120))
    finally:
        p.stop()


# --- intake and listing ------------------------------------------------------------------

AM_CONFIG = "route:\n  receiver: default\nreceivers:\n  - name: default\n"


def intake(b):
    shapes = [(1, 8), (1, 32), (100, 8), (100, 32)]
    seconds = 2 if b.a.smoke else b.a.seconds
    got = {s: ([], []) for s in shapes}
    errors = [0, 0]
    for _ in range(b.rounds()):
        for side, start in ((0, lambda: b.faultline()),
                            (1, lambda: peers.alertmanager(b.dir("alertmanager"), AM_CONFIG))):
            p = start()
            try:
                for per, conns in shapes:
                    rps, failed = peers.wrk(p.url("/api/v2/alerts"), os.path.join(HERE, "post.lua"),
                                            conns, seconds, {"BENCH_PER": str(per)})
                    got[(per, conns)][side].append(rps * per)
                    errors[side] += failed
            finally:
                p.stop()
    for (per, conns), (fl, am) in got.items():
        b.row(f"`POST /api/v2/alerts`, {per} per request, {conns} connections", "alerts/s",
              fl, am, ("≥", 3.0), "Alertmanager", lower_is_better=False)
    if any(errors):
        b.rows[-1]["work"] += (f" (failed requests over all intake runs: Faultline {errors[0]}, "
                               f"Alertmanager {errors[1]}: wrk's timeouts and non-2xx)")


def listing(b):
    alerts, rules, gets = (500, 10, 3) if b.a.smoke else (10_000, 100, 10)
    am_rules = "".join(
        f"  - source_matchers: ['alertname=\"Alert{r}\"', 'severity=\"critical\"']\n"
        f"    target_matchers: ['alertname=\"Alert{(r + 1) % 100}\"', 'severity=\"warning\"']\n"
        "    equal: [instance]\n" for r in range(rules))
    fl_rules = "".join(
        f"[[inhibit]]\nsource_matchers = ['alertname=\"Alert{r}\"', 'severity=\"critical\"']\n"
        f"target_matchers = ['alertname=\"Alert{(r + 1) % 100}\"', 'severity=\"warning\"']\n"
        'equal = ["instance"]\n\n' for r in range(rules))
    f = b.faultline(fl_rules)
    am = peers.alertmanager(b.dir("alertmanager"), AM_CONFIG + "inhibit_rules:\n" + am_rules)
    try:
        for lo in range(0, alerts, 1000):
            body = json.dumps([listed_alert(i) for i in range(lo, min(alerts, lo + 1000))]).encode()
            for p in (f, am):
                peers.http(p.url("/api/v2/alerts"), body)
        for p in (f, am):
            n = len(json.loads(peers.http(p.url("/api/v2/alerts"))))
            if n != alerts:
                raise SystemExit(f"{p.kind} lists {n} alerts, not {alerts}")
        fl, peer = [], []
        for _ in range(b.rounds()):
            fl.append(time_gets(f, gets))
            peer.append(time_gets(am, gets))
        b.row(f"`GET /api/v2/alerts`, {alerts:,} alerts, {rules} inhibit rules", "s", fl, peer,
              ("≤", 0.1), "Alertmanager")
    finally:
        f.stop()
        am.stop()


def listed_alert(i):
    """Alert i: Alert<i % 100> on host<i / 100>; one in seven is critical."""
    return {
        "labels": {"alertname": f"Alert{i % 100}", "env": "prod", "instance": f"host{i // 100}:9100",
                   "job": "node", "severity": "critical" if i % 7 == 0 else "warning"},
        "annotations": {"summary": f"Alert{i % 100} on host{i // 100}"},
        "generatorURL": f"http://prometheus:9090/graph?g0.expr=rule{i % 100}",
    }


def time_gets(p, n):
    took = []
    for _ in range(n):
        t = time.perf_counter()
        peers.http(p.url("/api/v2/alerts"))
        took.append(time.perf_counter() - t)
    return median(took)


# --- remote_write -----------------------------------------------------------------------

def remote_write(b):
    n, conns = (2000, 2) if b.a.smoke else (10_000, 4)
    seconds = 2 if b.a.smoke else b.a.seconds
    bodies = os.path.join(b.tmp, "remote_write")
    os.makedirs(bodies)
    template = wire.bodies(n, 500, [wire.PLACEHOLDER])
    for k, body in enumerate(template):
        with open(os.path.join(bodies, f"{k}.bin"), "wb") as out:
            out.write(body)
    env = {"BENCH_BODIES": bodies, "BENCH_COUNT": str(len(template))}
    rate, rss = ([], []), ([], [])
    for _ in range(b.rounds()):
        for side in (0, 1):
            if side == 0:
                p = b.faultline()
            else:
                d = b.dir("prometheus")
                p = peers.prometheus(d, "global: {}\n")
            try:
                rps, failed = peers.wrk(p.url("/api/v1/write"),
                                        os.path.join(HERE, "remote_write.lua"), conns, seconds,
                                        env, [str(conns)])
                if failed:
                    raise SystemExit(f"{p.kind}: {failed} failed remote_write requests; log: {p.log_path}")
                rate[side].append(rps * 500)
                rss[side].append(p.rss_bytes())
            finally:
                p.stop()
    b.row(f"remote_write, {n:,} series, 500 per request, {conns} connections", "samples/s",
          rate[0], rate[1], ("≥", 2.0), "Prometheus", lower_is_better=False)
    b.row("  resident memory after it", "B", rss[0], rss[1], None, "Prometheus")


# --- push to webhook --------------------------------------------------------------------

def receiver(on_alert):
    """A webhook receiver on a free port, answering 200 at once: `on_alert(alert, time)` for
    each alert of each notification, one call at a time. Returns the server and its address."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            t = time.time()
            with lock:
                for a in body.get("alerts", []):
                    on_alert(a, t)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    return peers.serve(Handler)


def routed_to(addr, group_by, group_interval):
    """Rules TOML: the webhook receiver `hook` at `addr` and a route to it grouping by
    `group_by`, notifying at once and repeating hourly."""
    return f"""[[receiver]]
name = "hook"
plugin = "webhook"
params = {{ url = "http://{addr}/" }}
grants = {{ http = ["{addr}"] }}

[route]
receiver = "hook"
group_by = ["{group_by}"]
group_wait = "0s"
group_interval = "{group_interval}"
repeat_interval = "1h"
"""


def webhook(b):
    probes, background = (3, 2000) if b.a.smoke else (60, 100_000)
    arrived = {}

    def firing(alert, t):
        if alert.get("status") == "firing" and "probe" in alert.get("labels", {}):
            arrived.setdefault(alert["labels"]["probe"], t)

    hook, addr = receiver(firing)
    rules = f"""[[group]]
name = "probe"
interval = "1s"

[[group.rule]]
name = "Probe"
plugin = "threshold"
select = "probe_value"
params = {{ above = 1 }}

""" + routed_to(addr, "probe", "1s")
    f = b.faultline(rules)
    stop = threading.Event()
    template = wire.bodies(10_000, 500, [wire.PLACEHOLDER])
    sent = [0]

    def load():
        """remote_write at `background` samples/s, 500 samples a request."""
        c = http.client.HTTPConnection("127.0.0.1", f.port, timeout=60)
        start, k = time.time(), 0
        while not stop.is_set():
            ts = int(time.time() * 1000)
            body = template[k % len(template)].replace(wire.PLACEHOLDER, wire.varint(ts))
            c.request("POST", "/api/v1/write", body, {"Content-Type": "application/x-protobuf",
                                                       "Content-Encoding": "snappy"})
            c.getresponse().read()
            k += 1
            sent[0] += 500
            time.sleep(max(0.0, start + k * 500 / background - time.time()))

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    pushed = {}
    try:
        time.sleep(3)
        for k in range(probes):
            probe = f"p{k}"
            pushed[probe] = time.time()
            peers.http(f.url(f"/metrics/job/probe/instance/{probe}"),
                       f'probe_value{{probe="{probe}"}} 5\n'.encode(), "text/plain; version=0.0.4")
            time.sleep(1.0)
        wait_until("every probe's alert at the webhook", lambda: len(arrived) >= probes, 60)
        elapsed = time.time() - pushed["p0"]
    finally:
        stop.set()
        loader.join(10)
        f.stop()
        hook.shutdown()
    lat = sorted(arrived[p] - pushed[p] for p in pushed)
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    rate = sent[0] / (elapsed + 3)
    b.row(f"push → webhook, p50, 1 s rule interval, {rate:,.0f} samples/s remote_write besides",
          "s", [p50], [], None)
    b.row("push → webhook, p99 (goal: under the interval + 50 ms)", "s", [p99], [], ("<", 1.05))
    b.rows[-1]["absolute"] = ("<", 1.05)


# --- delivery ----------------------------------------------------------------------------

def delivery(b):
    n = 20 if b.a.smoke else 2000
    arrived = set()
    hook, addr = receiver(lambda a, _t: arrived.add(a["labels"].get("instance")))
    f = b.faultline(routed_to(addr, "instance", "1h"))
    try:
        alerts = [{"labels": {"alertname": "Down", "instance": f"host{i}"}} for i in range(n)]
        t0 = time.time()
        peers.http(f.url("/api/v2/alerts"), json.dumps(alerts).encode())
        wait_until("every action at the webhook", lambda: len(arrived) >= n, 600)
        took = time.time() - t0
    finally:
        f.stop()
        hook.shutdown()
    b.row(f"recovery actions delivered, {n:,} groups at once, webhook answering at once",
          "actions/s", [n / took], [], None, lower_is_better=False)


# --- the table ---------------------------------------------------------------------------

def table(rows):
    out = ["| work | Faultline | peer | ratio (median, range) | goal | met |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        peer = f"{r['peer_name']}: {spread(r['peer'], r['unit'])}" if r["peer"] else ""
        ratios = [f / p for f, p in zip(r["fl"], r["peer"]) if f is not None and p]
        ratio = spread(ratios, "ratio") if ratios else ""
        goal, met = "", ""
        if "absolute" in r:
            op, limit = r["absolute"]
            goal = f"{op} {fmt(limit, r['unit'])}"
            met = check(op, median(r["fl"]), limit)
        elif r["goal"] and ratios:
            op, limit = r["goal"]
            goal = f"{op} {limit:g}x"
            met = check(op, median(ratios), limit)
        out.append(f"| {r['work']} | {spread(r['fl'], r['unit'])} | {peer} | {ratio} | {goal} | {met} |")
    return "\n".join(out)


def check(op, value, limit):
    ok = {"≤": value <= limit, "<": value < limit, "≥": value >= limit}[op]
    return "yes" if ok else "**no**"


def machine(a, loads):
    """The machine and the programs, as Markdown lines."""
    def run(*argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 2**20
    with open("/etc/debian_version") as f:
        debian = f.read().strip()
    return "\n".join([
        f"- machine: {run('nproc')} CPUs, {mem:.1f} GiB RAM, "
        f"kernel {os.uname().release}, Debian {debian}",
        f"- {run('rustc', '--version')}; Faultline at commit {run('git', 'rev-parse', '--short', 'HEAD')} "
        f"(`{a.faultline}`)",
        f"- {run('prometheus', '--version')}",
        f"- {run('prometheus-alertmanager', '--version')}",
        f"- {run('wrk', '--version')}",
        "- load average (1 min) as each case started, the machine's other work included: "
        + ", ".join(f"{case} {load:.1f}" for case, load in loads),
    ])


def main():
    a = args_parser().parse_args()
    peers.PLUGINS = a.plugins
    only = [c for c in a.only.split(",") if c]
    unknown = [c for c in only if c not in CASES]
    if unknown:
        sys.exit(f"unknown cases {unknown}; there are {', '.join(CASES)}")
    if not os.path.exists(a.faultline):
        sys.exit(f"no faultline binary at {a.faultline}: `cargo build --release -p faultline` "
                 "or pass --faultline")
    for tool in ("wrk", "prometheus", "prometheus-alertmanager"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool}: apt-get install wrk prometheus prometheus-alertmanager")
    b = Bench(a)
    print(f"{a.faultline}; files in {b.tmp}", flush=True)
    loads = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    failed = []
    try:
        for case in CASES:
            if case in only:
                print(f"{case}:", flush=True)
                loads.append((case, os.getloadavg()[0]))
                try:
                    globals()[case](b)
                except SystemExit as e:
                    failed.append(case)
                    print(f"  {case} failed: {e}", file=sys.stderr)
                finally:
                    peers.stop_all()
    except KeyboardInterrupt:
        print("interrupted: the table of what ran", file=sys.stderr)
    finally:
        peers.stop_all()
    if failed:
        print(f"failed: {', '.join(failed)}; the programs' logs are in {b.tmp}", file=sys.stderr)
    else:
        shutil.rmtree(b.tmp, ignore_errors=True)
    print()
    print(machine(a, loads))
    print(f"- command: `{' '.join(['python3'] + sys.argv)}`\n")
    print(f"{b.rounds()} round(s), interleaved; medians with (min–max) over rounds; "
          "ratio = Faultline / peer, per round.\n")
    print(table(b.rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
