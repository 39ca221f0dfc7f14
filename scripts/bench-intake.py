#!/usr/bin/env python3
"""Intake latency and restart time against the number of stored alerts (not CI).

Starts `faultline serve` on a fresh data directory with no rules, stores N external alerts
(posted in batches of 1,000, each ending in a day so none resolves), then measures:

- intake: C concurrent clients each POSTing one alert per request to /api/v2/alerts for
  D seconds (refreshing stored alerts): requests/s, p50 and p99 latency;
- restart: SIGTERM, start again on the same data directory, time until /-/ready answers 200.

    scripts/bench-intake.py --bin target/release/faultline --alerts 0 100000 300000 --rounds 3

With `--rounds R` the sizes are run R times, interleaved (0, 100k, 300k, 0, ...), and a
summary gives each size's median p50, p99 and restart over the rounds: on a shared machine
one run's p99 moves by several milliseconds.

Figures depend on the machine and the build; compare builds on one machine.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alert(i, ends):
    return {
        "labels": {
            "alertname": f"Alert{i % 100}",
            "instance": f"host{i // 100}:9100",
            "job": "node",
            "severity": "warning",
        },
        "annotations": {"summary": f"alert {i}"},
        "endsAt": ends,
    }


def post(url, body, timeout=120):
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        r.read()
        return r.status


def wait_ready(base, deadline):
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/-/ready", timeout=5) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.02)
    return False


def start(binary, data, rules, port, log):
    return subprocess.Popen(
        [binary, "serve", "--data", data, "--rules", rules, "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=log,
    )


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def run(binary, n, clients, duration):
    tmp = tempfile.mkdtemp(prefix="faultline-bench-")
    data, rules = os.path.join(tmp, "data"), os.path.join(tmp, "rules")
    os.makedirs(rules)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(tmp, "log"), "wb")
    proc = start(binary, data, rules, port, log)
    try:
        if not wait_ready(base, time.time() + 120):
            raise SystemExit(f"not ready; see {tmp}/log")
        ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
        t0 = time.time()
        for lo in range(0, n, 1000):
            body = json.dumps([alert(i, ends) for i in range(lo, min(n, lo + 1000))])
            post(base + "/api/v2/alerts", body.encode())
        load_s = time.time() - t0

        lat, stop = [], time.time() + duration
        lock = threading.Lock()

        def client(k):
            i = k
            mine = []
            while time.time() < stop:
                body = json.dumps([alert(i % n if n else i, ends)]).encode()
                t = time.perf_counter()
                post(base + "/api/v2/alerts", body)
                mine.append(time.perf_counter() - t)
                i += clients
            with lock:
                lat.extend(mine)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        t0 = time.time()
        proc = start(binary, data, rules, port, log)
        if not wait_ready(base, time.time() + 300):
            raise SystemExit(f"not ready after restart; see {tmp}/log")
        restart_s = time.time() - t0
        p50, p99 = percentile(lat, 0.5) * 1000, percentile(lat, 0.99) * 1000
        print(
            f"alerts={n:>7} store={load_s:6.1f}s  intake: {len(lat) / duration:7.1f} req/s "
            f"p50={p50:7.1f}ms p99={p99:7.1f}ms "
            f"({clients} clients, {duration}s)  restart={restart_s:5.2f}s",
            flush=True,
        )
        return len(lat) / duration, p50, p99, restart_s
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the faultline binary")
    ap.add_argument("--alerts", type=int, nargs="+", default=[0, 100000, 300000])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=int, default=15, help="intake seconds per size")
    ap.add_argument("--rounds", type=int, default=1, help="runs of every size, interleaved")
    a = ap.parse_args()
    results = {n: [] for n in a.alerts}
    for _ in range(a.rounds):
        for n in a.alerts:
            results[n].append(run(a.bin, n, a.clients, a.duration))
    if a.rounds > 1:
        print(f"median of {a.rounds} rounds:")
        for n, rs in results.items():
            req, p50, p99, restart = (sorted(col)[len(col) // 2] for col in zip(*rs))
            print(
                f"alerts={n:>7}  {req:7.1f} req/s  p50={p50:6.1f}ms  p99={p99:6.1f}ms  "
                f"(p99 {min(r[2] for r in rs):.1f}-{max(r[2] for r in rs):.1f})  "
                f"restart={restart:5.2f}s"
            )


if __name__ == "__main__":
    main()
