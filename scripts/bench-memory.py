#!/usr/bin/env python3
"""Resident memory per series: starts `faultline serve` on a temporary directory, pushes N
series with node_exporter-like label sets (10 samples each, by remote_write), optionally with
K threshold rules selecting every series, and prints VmRSS from /proc/PID/status.

    python3 scripts/bench-memory.py --series 100000 [--rules 10] [--binary target/release/faultline]

Prints one line per measurement: series, rules, RSS before pushing, RSS after, and bytes per
series of the difference. Needs only Python's standard library (the request encoding is
scripts/localization_sim.py's).

Memory per alert: `--above V` sets the rules' threshold (a series' values run from its index
on its host, 0-499, upwards: `--above 222` fires 57% of the series), and `--external N` then
posts N alerts to /api/v2/alerts and prints RSS before and after them. Bytes per rule alert:
the difference between a run with `--above 222` and one with the default (nothing fires),
divided by the firing count, so the rule's own plugin memory cancels out.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from localization_sim import remote_write_body  # noqa: E402

SERIES_PER_HOST = 500


def host_series(h):
    """About SERIES_PER_HOST label sets of one node_exporter target."""
    base = [("instance", f"host-{h:05d}.example.net:9100"), ("job", "node")]
    out = []
    for cpu in range(32):
        for mode in ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"):
            out.append([("__name__", "node_cpu_seconds_total"), ("cpu", str(cpu)), ("mode", mode)])
    for dev, mnt in (("sda1", "/"), ("sda2", "/var"), ("sdb1", "/data"), ("tmpfs", "/run"), ("sda3", "/home")):
        for m in ("avail_bytes", "free_bytes", "size_bytes", "files", "files_free", "readonly"):
            out.append([("__name__", f"node_filesystem_{m}"), ("device", dev), ("fstype", "ext4"), ("mountpoint", mnt)])
    for dev in ("eth0", "eth1", "lo", "docker0"):
        for m in ("receive_bytes_total", "transmit_bytes_total", "receive_packets_total", "transmit_packets_total",
                  "receive_errs_total", "transmit_errs_total", "receive_drop_total", "transmit_drop_total"):
            out.append([("__name__", f"node_network_{m}"), ("device", dev)])
    for dev in ("sda", "sdb", "nvme0n1", "nvme1n1"):
        for m in ("reads_completed_total", "writes_completed_total", "read_bytes_total", "written_bytes_total",
                  "io_time_seconds_total", "read_time_seconds_total", "write_time_seconds_total", "io_now"):
            out.append([("__name__", f"node_disk_{m}"), ("device", dev)])
    i = 0
    while len(out) < SERIES_PER_HOST:
        out.append([("__name__", f"node_memory_Item{i}_bytes")])
        i += 1
    return [sorted(base + l) for l in out[:SERIES_PER_HOST]]


def request_body(h, now_ms, samples):
    ts = [now_ms - (samples - 1 - k) * 15_000 for k in range(samples)]
    return remote_write_body([(dict(labels), [(t, float(n + k)) for k, t in enumerate(ts)])
                              for n, labels in enumerate(host_series(h))])


class Server:
    def __init__(self, binary, dir, rules, above, plugins, env_extra):
        rules_dir = os.path.join(dir, "rules")
        os.makedirs(os.path.join(rules_dir, "plugins"))
        if rules:
            shutil.copy(os.path.join(plugins, "threshold.wasm"), os.path.join(rules_dir, "plugins"))
            with open(os.path.join(rules_dir, "bench.toml"), "w") as f:
                f.write('[[group]]\nname = "bench"\ninterval = "5s"\n')
                for r in range(rules):
                    f.write(f'\n[[group.rule]]\nname = "High{r}"\nplugin = "threshold"\n'
                            f'select = \'{{job="node"}}\'\nparams = {{ above = {above} }}\n')
        self.log = open(os.path.join(dir, "faultline.log"), "w")
        env = dict(os.environ, RUST_LOG="warn,faultline=info", **env_extra)
        self.proc = subprocess.Popen(
            [binary, "serve", "--rules", rules_dir, "--data", os.path.join(dir, "data"),
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        found = threading.Event()
        self.addr = None

        def drain():
            for line in self.proc.stderr:
                self.log.write(line)
                m = re.search(r"address=(\S+)", line)
                if m and not found.is_set():
                    self.addr = m.group(1)
                    found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(120):
            self.stop()
            sys.exit("faultline did not start listening")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def post(self, body, path="/api/v1/write", headers=None):
        req = urllib.request.Request(f"http://{self.addr}{path}", data=body, method="POST", headers=headers or {
            "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0"})
        with urllib.request.urlopen(req, timeout=300) as r:
            r.read()

    def metric(self, name):
        """The sum of every sample of metric `name`, None if it has none."""
        with urllib.request.urlopen(f"http://{self.addr}/metrics", timeout=60) as r:
            values = [float(line.split()[-1]) for line in r.read().decode().splitlines()
                      if line.startswith(name + " ") or line.startswith(name + "{")]
        return sum(values) if values else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=100_000)
    p.add_argument("--samples", type=int, default=10, help="samples per series (15 s apart)")
    p.add_argument("--rules", type=int, default=0, help="threshold rules over every series")
    p.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "faultline"))
    p.add_argument("--plugins", default=None, help="directory with threshold.wasm (default: the target dir's)")
    p.add_argument("--above", type=float, default=1e12, help="the rules' threshold (default: nothing fires)")
    p.add_argument("--external", type=int, default=0, help="alerts posted to /api/v2/alerts afterwards")
    p.add_argument("--settle", type=float, default=15, help="seconds to wait after pushing (rules evaluate)")
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server (e.g. MALLOC_ARENA_MAX=1)")
    a = p.parse_args()
    plugins = a.plugins or os.path.join(os.path.dirname(os.path.dirname(a.binary)), "wasm32-wasip2", "plugin")
    env = dict(e.split("=", 1) for e in a.env)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as dir:
        s = Server(a.binary, dir, a.rules, a.above, plugins, env)
        try:
            time.sleep(2)
            before = s.rss_kib()
            hosts = (a.series + SERIES_PER_HOST - 1) // SERIES_PER_HOST
            now_ms = int(time.time() * 1000)
            t0 = time.time()
            with ThreadPoolExecutor(a.clients) as pool:
                list(pool.map(lambda h: s.post(request_body(h, now_ms, a.samples)), range(hosts)))
            pushed = time.time() - t0
            # The series gauge is refreshed periodically: wait until it counts every series.
            deadline = time.time() + 120
            while (s.metric("faultline_series") or 0) < hosts * SERIES_PER_HOST and time.time() < deadline:
                time.sleep(1)
            # Every rule evaluates twice over all the series before RSS is read.
            evaluated = s.metric("faultline_rule_evaluations_total") or 0
            while (a.rules and (s.metric("faultline_rule_evaluations_total") or 0) < evaluated + 2 * a.rules
                   and time.time() < deadline + 600):
                time.sleep(1)
            time.sleep(a.settle)
            series = s.metric("faultline_series")
            after = s.rss_kib()
            firing = int(s.metric('faultline_alerts{state="firing"}') or 0)
            print(f"binary={a.binary} env={a.env} series={int(series or 0)} rules={a.rules} above={a.above:g} "
                  f"firing={firing} samples={a.samples} push_s={pushed:.1f} rss_before_mib={before / 1024:.1f} "
                  f"rss_after_mib={after / 1024:.1f} bytes_per_series={(after - before) * 1024 / max(series or 1, 1):.0f}",
                  flush=True)
            if a.external:
                post_external(s, a.external, a.settle, after)
        finally:
            s.stop()


def post_external(s, n, settle, before):
    """Posts n alerts (node_exporter-like labels, a summary) in batches of 1,000 and prints the
    RSS they added per alert."""
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    for lo in range(0, n, 1000):
        batch = [{"labels": {"alertname": f"Alert{i % 100}", "instance": f"host-{i // 100:05d}.example.net:9100",
                             "job": "node", "severity": "warning"},
                  "annotations": {"summary": f"Alert{i % 100} on host-{i // 100:05d}"},
                  "endsAt": ends} for i in range(lo, min(n, lo + 1000))]
        s.post(json.dumps(batch).encode(), "/api/v2/alerts", {"Content-Type": "application/json"})
    time.sleep(settle)
    after = s.rss_kib()
    print(f"external={n} rss_before_mib={before / 1024:.1f} rss_after_mib={after / 1024:.1f} "
          f"bytes_per_external_alert={(after - before) * 1024 / n:.0f}", flush=True)
if __name__ == "__main__":
    main()
