#!/usr/bin/env python3
"""Soak test: a real `faultline serve` under steady load for a long time (not CI).

    python3 scripts/soak.py                          # 30 minutes, results in docs/soak/
    python3 scripts/soak.py --duration 5m --out /tmp/soak --binary target/release/faultline

Load, all at once for the whole run:
- ingestion: `--series` series pushed Pushgateway-style (`POST /metrics/job/soak/instance/iN`,
  exposition text) every `--push-interval`; each series is a sine wave with its own phase,
  so the `threshold` rule on it fires and resolves all the time;
- alert intake: `--alert-rate` alerts a second posted to `/api/v2/alerts` (JSON), alternately
  firing and resolved (`endsAt` in the past), over `--external` label sets;
- every alert is routed to a webhook receiver this script runs (answers 200);
- a reload every `--reload-interval`: the rule file is rewritten (a new annotation) and
  `POST /-/reload` sent; the file watcher reloads once more after its quiet period.

Every `--sample-interval` it records the server's RSS (/proc/PID/status VmRSS), the size of
its data directory, p50/p99 latency per request kind over the window, and from `/metrics`:
`faultline_series`, `faultline_alerts{state="firing"}`, `faultline_outbox_actions{state=
"pending"}`. At the end it writes soak.csv and soak.png (RSS, latency, counts over time,
reloads marked) to `--out` and prints a verdict on growth: a linear fit over the second half
(slope per hour) and whether the last quarter's slope is flatter than the first half's.
Exit code 0 when the run completed (whatever the verdict), 1 if the server died or never
started.

Needs matplotlib (`pip install matplotlib`) and the plugins from `make plugins`.
"""

import argparse
import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench"))
import peers  # noqa: E402

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("soak.py needs matplotlib for its plot: pip install matplotlib")


def duration(text):
    """`90`, `90s`, `30m`, `1h` -> seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30m, 90s, 1h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def default_target():
    return os.environ.get("CARGO_TARGET_DIR", "target")


def default_binary():
    release = os.path.join(default_target(), "release", "faultline")
    if os.path.exists(release):
        return release
    return os.path.join(default_target(), "debug", "faultline")


def args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default=default_binary(), help="faultline binary (default: %(default)s)")
    p.add_argument(
        "--plugins",
        default=os.path.join(default_target(), "wasm32-wasip2", "plugin"),
        help="directory of the built plugins, from `make plugins` (default: %(default)s)",
    )
    p.add_argument("--duration", type=duration, default=duration("30m"))
    p.add_argument("--series", type=int, default=2000, help="series pushed (default: %(default)s)")
    p.add_argument("--instances", type=int, default=20, help="push groups the series are split over")
    p.add_argument("--push-interval", type=duration, default=5.0)
    p.add_argument("--wave-period", type=duration, default=240.0, help="period of each series' sine")
    p.add_argument("--eval-interval", default="10s", help="the rule group's interval")
    p.add_argument("--alert-rate", type=float, default=5.0, help="alerts posted per second")
    p.add_argument("--external", type=int, default=100, help="distinct posted alerts")
    p.add_argument("--reload-interval", type=duration, default=60.0)
    p.add_argument("--sample-interval", type=duration, default=10.0)
    p.add_argument("--out", default="docs/soak", help="where soak.csv and soak.png go")
    p.add_argument("--keep", action="store_true", help="keep the temporary rules/data directory")
    p.add_argument("--report", metavar="CSV",
                   help="run nothing: print the verdict of an earlier run's soak.csv")
    return p


class Receiver:
    """A webhook receiver answering 200 to every POST, counting them."""

    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server, self.addr = peers.serve(Handler)

    def received(self):
        with self.lock:
            return self.count


def rule_file(a, hook, generation):
    return f"""# written by scripts/soak.py (generation {generation})
[[group]]
name = "soak"
interval = "{a.eval_interval}"

[[group.rule]]
name = "SoakHigh"
plugin = "threshold"
select = "soak_value"
params = {{ above = 0.8, clear = 0.2 }}
annotations = {{ summary = "soak value {{{{ $value }}}} (rules generation {generation})" }}

[[receiver]]
name = "hook"
plugin = "webhook"
params = {{ url = "http://{hook}/" }}
grants = {{ http = ["{hook}"] }}

[route]
receiver = "hook"
group_by = ["alertname", "instance"]
group_wait = "1s"
group_interval = "10s"
repeat_interval = "1h"
"""


class Server:
    """`faultline serve` on a temporary rules and data directory; its log goes to a file."""

    def __init__(self, a, dir, hook):
        self.dir = dir
        plugins = os.path.join(dir, "rules", "plugins")
        os.makedirs(plugins)
        for name in ("threshold", "webhook"):
            src = os.path.join(a.plugins, f"{name}.wasm")
            if not os.path.exists(src):
                sys.exit(f"no plugin {src}: run `make plugins` (or pass --plugins)")
            shutil.copy(src, os.path.join(plugins, f"{name}.wasm"))
        self.rules = os.path.join(dir, "rules", "soak.toml")
        with open(self.rules, "w") as f:
            f.write(rule_file(a, hook, 0))
        self.log_path = os.path.join(dir, "faultline.log")
        self.log = open(self.log_path, "w")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        self.proc = subprocess.Popen(
            [a.binary, "serve", "--rules", os.path.join(dir, "rules"),
             "--data", os.path.join(dir, "data"), "--listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.addr = None
        found = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.log.write(line)
                m = re.search(r"address=(\S+)", line)
                if m and not found.is_set():
                    self.addr = m.group(1)
                    found.set()
            self.log.flush()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(60):
            self.stop()
            sys.exit(f"faultline did not start listening; its log: {self.log_path}")

    def url(self, path):
        return f"http://{self.addr}{path}"

    def alive(self):
        return self.proc.poll() is None

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def data_mib(self):
        total = 0
        for root, _, files in os.walk(os.path.join(self.dir, "data")):
            for name in files:
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
        return total / 2**20

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.flush()


class Latencies:
    """Request latencies per kind since the last sample, and error counts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.samples = {}
        self.errors = 0
        self.last_error = ""

    def request(self, kind, url, body=None, content_type=None, method=None):
        req = urllib.request.Request(url, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        start = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                data = r.read()
            ok = True
        except (urllib.error.URLError, OSError) as e:
            data, ok = b"", False
            err = f"{kind}: {e}"
        took = time.monotonic() - start
        with self.lock:
            self.samples.setdefault(kind, []).append(took)
            if not ok:
                self.errors += 1
                self.last_error = err
        return data if ok else None

    def take(self):
        with self.lock:
            s, self.samples = self.samples, {}
            e, self.errors = self.errors, 0
            return s, e, self.last_error


def percentile(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(math.ceil(q * len(v))) - 1)]


def every(interval, stop, body):
    """Runs body() every `interval` seconds (on a fixed schedule) until `stop` is set."""
    n = 0
    start = time.monotonic()
    while not stop.is_set():
        body(n)
        n += 1
        stop.wait(max(0.0, start + n * interval - time.monotonic()))


def pusher(a, server, lat, stop):
    per = math.ceil(a.series / a.instances)

    def push(_):
        t = time.time()
        for i in range(a.instances):
            lines = []
            for j in range(per):
                s = i * per + j
                if s >= a.series:
                    break
                v = 0.5 + 0.5 * math.sin(2 * math.pi * (t / a.wave_period + s / a.series))
                lines.append(f'soak_value{{series="s{s}"}} {v:.4f}\n')
            lat.request("push", server.url(f"/metrics/job/soak/instance/i{i}"),
                        "".join(lines).encode(), "text/plain; version=0.0.4")

    every(a.push_interval, stop, push)


def poster(a, server, lat, stop):
    def post(n):
        k = n % a.external
        firing = (n // a.external) % 2 == 0
        now = time.time()
        ends = now + 300 if firing else now - 1
        alert = {
            "labels": {"alertname": "SoakExternal", "instance": f"e{k % 10}", "n": str(k)},
            "annotations": {"summary": "posted by soak.py"},
            "startsAt": iso(now - 60),
            "endsAt": iso(ends),
        }
        lat.request("alerts", server.url("/api/v2/alerts"), json.dumps([alert]).encode(),
                    "application/json")

    every(1.0 / a.alert_rate, stop, post)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def reloader(a, server, hook, lat, reloads, t0, stop):
    def reload(n):
        if n == 0:
            return
        with open(server.rules, "w") as f:
            f.write(rule_file(a, hook, n))
        reloads.append(time.monotonic() - t0)
        lat.request("reload", server.url("/-/reload"), b"", method="POST")

    every(a.reload_interval, stop, reload)


def metric(text, name, labels=None):
    """Sum of the samples of `name` whose labels include `labels`; NaN when there is none."""
    v = peers.metric(text, name, labels)
    return float("nan") if v is None else v


KINDS = ("push", "alerts", "metrics")
COLUMNS = (["t_s", "rss_mib", "data_mib"]
           + [f"{k}_{q}_ms" for k in KINDS for q in ("p50", "p99")]
           + ["requests", "errors", "alerts_firing", "external_firing", "external_resolved",
              "series", "outbox_pending", "webhook_received", "reloads", "reload_ok"])


def sample(server, hook, lat, reloads, t0):
    t = time.monotonic() - t0
    text = lat.request("metrics", server.url("/metrics"))
    text = text.decode() if text else ""
    samples, errors, last_error = lat.take()
    row = {"t_s": round(t, 1), "rss_mib": round(server.rss_mib(), 2),
           "data_mib": round(server.data_mib(), 2)}
    for k in KINDS:
        v = samples.get(k, [])
        row[f"{k}_p50_ms"] = round(percentile(v, 0.5) * 1000, 2)
        row[f"{k}_p99_ms"] = round(percentile(v, 0.99) * 1000, 2)
    row["requests"] = sum(len(v) for v in samples.values())
    row["errors"] = errors
    row["alerts_firing"] = metric(text, "faultline_alerts", {"state": "firing"})
    row["external_firing"] = metric(text, "faultline_external_alerts", {"state": "firing"})
    row["external_resolved"] = metric(text, "faultline_external_alerts", {"state": "resolved"})
    row["series"] = metric(text, "faultline_series")
    row["outbox_pending"] = metric(text, "faultline_outbox_actions", {"state": "pending"})
    row["webhook_received"] = hook.received()
    row["reloads"] = len(reloads)
    row["reload_ok"] = metric(text, "faultline_config_last_reload_successful")
    if errors:
        print(f"  {errors} failed requests, last: {last_error}", file=sys.stderr)
    return row


def fit(xs, ys):
    """Least-squares slope of ys over xs (per unit of x), NaNs left out."""
    pts = [(x, y) for x, y in zip(xs, ys) if not math.isnan(y)]
    if len(pts) < 3:
        return float("nan")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else float("nan")


def verdict(rows, column, unit, flat):
    """A line on the growth of `column`: slope per hour over the second half, and over the
    first half and last quarter to tell whether it levels off (the last quarter's slope under
    half of both others). `flat`: the change over the second half, in % of its mean, under
    which it counts as flat."""
    n = len(rows)
    t = [r["t_s"] / 3600 for r in rows]
    y = [float(r[column]) for r in rows]

    def part(lo, hi):
        return fit(t[lo:hi], y[lo:hi])

    first, second, last = part(0, n // 2), part(n // 2, n), part(3 * n // 4, n)
    half = [v for v in y[n // 2:] if not math.isnan(v)]
    mean = sum(half) / len(half) if half else float("nan")
    span_h = (t[-1] - t[n // 2]) if n > 1 else 0
    # In % of the mean, or of 1 for a mean under 1 (a count that is mostly 0).
    growth = second * span_h / max(abs(mean), 1) * 100
    if half and all(v == 0 for v in half):
        growth, word = 0.0, "flat (all 0)"
    elif math.isnan(growth):
        word = "no data"
    elif abs(growth) < flat:
        word = "flat"
    elif second > 0 and last < 0.5 * min(first, second):
        word = "levelling off"
    elif second > 0:
        word = "GROWING"
    else:
        word = "falling"
    return (f"{column:>16}: {word:<13} second half {second:+.2f} {unit}/h "
            f"({growth:+.1f}% of its mean {mean:.2f} over {span_h * 60:.0f} min); "
            f"first half {first:+.2f}, last quarter {last:+.2f} {unit}/h")


def plot(rows, reloads, path, title):
    t = [r["t_s"] / 60 for r in rows]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax1.plot(t, [r["rss_mib"] for r in rows], label="RSS")
    ax1.plot(t, [r["data_mib"] for r in rows], label="data directory")
    ax1.set_ylabel("MiB")
    ax1.set_ylim(bottom=0)
    for k, style in zip(KINDS, ("C0", "C1", "C2")):
        ax2.plot(t, [r[f"{k}_p99_ms"] for r in rows], style, label=f"{k} p99")
        ax2.plot(t, [r[f"{k}_p50_ms"] for r in rows], style + ":", label=f"{k} p50")
    ax2.set_ylabel("latency, ms")
    ax2.set_yscale("log")
    ax3.plot(t, [r["alerts_firing"] for r in rows], label="rule alerts firing")
    ax3.plot(t, [r["external_firing"] for r in rows], label="posted alerts firing")
    ax3.plot(t, [r["outbox_pending"] for r in rows], label="outbox pending")
    ax3.plot(t, [r["series"] / 10 for r in rows], label="series / 10")
    ax3.set_xlabel("minutes")
    for ax in (ax1, ax2, ax3):
        for r in reloads:
            ax.axvline(r / 60, color="grey", lw=0.5, alpha=0.5)
        ax.legend(loc="upper left", fontsize=7, ncol=3)
        ax.grid(alpha=0.3)
    ax1.set_title(title + " (grey lines: reloads)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=70)


def main():
    a = args_parser().parse_args()
    if a.report:
        return report(a.report)
    if not os.path.exists(a.binary):
        sys.exit(f"no faultline binary at {a.binary}: build it or pass --binary")
    os.makedirs(a.out, exist_ok=True)
    hook = Receiver()
    dir = tempfile.mkdtemp(prefix="faultline-soak-")
    server = Server(a, dir, hook.addr)
    print(f"faultline {a.binary} pid {server.proc.pid} on {server.addr}; files in {dir}")
    print(f"{a.series} series every {a.push_interval:g}s, {a.alert_rate:g} alerts/s, "
          f"reload every {a.reload_interval:g}s, for {a.duration / 60:g} min")
    lat = Latencies()
    stop = threading.Event()
    reloads = []
    t0 = time.monotonic()
    workers = [
        threading.Thread(target=pusher, args=(a, server, lat, stop), daemon=True),
        threading.Thread(target=poster, args=(a, server, lat, stop), daemon=True),
        threading.Thread(target=reloader, args=(a, server, hook.addr, lat, reloads, t0, stop),
                         daemon=True),
    ]
    for w in workers:
        w.start()
    rows = []
    died = False
    try:
        while time.monotonic() - t0 < a.duration:
            time.sleep(max(0.0, t0 + (len(rows) + 1) * a.sample_interval - time.monotonic()))
            if not server.alive():
                died = True
                print(f"faultline exited with {server.proc.returncode}; log: {server.log_path}")
                break
            row = sample(server, hook, lat, reloads, t0)
            rows.append(row)
            print(" ".join(f"{k}={row[k]}" for k in ("t_s", "rss_mib", "data_mib", "push_p99_ms",
                  "alerts_p99_ms", "metrics_p99_ms", "alerts_firing", "external_firing", "series",
                  "outbox_pending", "webhook_received", "reload_ok")), flush=True)
    except KeyboardInterrupt:
        print("interrupted: writing what was sampled")
    stop.set()
    for w in workers:
        w.join(35)
    server.stop()
    hook.server.shutdown()
    csv_path = os.path.join(a.out, "soak.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    png_path = os.path.join(a.out, "soak.png")
    if rows:
        plot(rows, reloads, png_path,
             f"faultline soak: {a.series} series/{a.push_interval:g}s, {a.alert_rate:g} alerts/s")
    print(f"wrote {csv_path} and {png_path}")
    print_verdict(rows)
    total_errors = sum(r["errors"] for r in rows)
    failed_reloads = sum(1 for r in rows if r["reload_ok"] == 0)
    print(f"failed requests: {total_errors}; webhook posts received: {hook.received()}; "
          f"reloads: {len(reloads)}; samples with the last reload failed: {failed_reloads}")
    if not a.keep and not died:
        shutil.rmtree(dir, ignore_errors=True)
    return 1 if died or not rows else 0


def print_verdict(rows):
    if len(rows) >= 8:
        print("verdict (linear fit; 'flat' = a change over the second half under 5% of the "
              "mean for sizes and counts, 25% for latencies, which are noisy):")
        for column, unit, flat in (
            ("rss_mib", "MiB", 5), ("data_mib", "MiB", 5), ("series", "series", 5),
            ("alerts_firing", "alerts", 5), ("outbox_pending", "actions", 5),
            ("push_p50_ms", "ms", 25), ("push_p99_ms", "ms", 25), ("alerts_p50_ms", "ms", 25),
            ("alerts_p99_ms", "ms", 25), ("metrics_p99_ms", "ms", 25),
        ):
            print("  " + verdict(rows, column, unit, flat))
    else:
        print(f"no verdict from {len(rows)} samples: a run needs at least 8")


def report(path):
    with open(path, newline="") as f:
        rows = [{k: (float(v) if v != "" else float("nan")) for k, v in r.items()}
                for r in csv.DictReader(f)]
    print_verdict(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
