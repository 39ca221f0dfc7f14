#!/usr/bin/env python3
"""Localization benchmark: how often Faultline's localizers name the root cause of a fault,
against two baselines on the same data. Not run in CI.

    make plugins && cargo build -p faultline --release
    python3 scripts/bench-localization.py --cases 40 --seed 1          # full run, ~2 min
    python3 scripts/bench-localization.py --smoke                       # 4 cases
    python3 scripts/bench-localization.py --cases 40 --seed 1 --write   # + bench/*.md

`--binary` and `--plugins` (a folder with topology, metric-deviation, log-hotspot and
webhook .wasm) choose what is tested (defaults: target/release/faultline, else
target/debug/faultline, and rules/plugins). `--case N` runs one case; with `--verbose` the
top suspects' reasons are printed, to see why a case was missed.

Pure Python 3.11 standard library; the simulator and the baselines are in
scripts/localization_sim.py.

The simulator (seeded; a case is reproducible from --seed and its number)
-------------------------------------------------------------------------
- A microservice system: 8-12 services in a random DAG of 3-5 depth levels (callers depend
  on callees; one entry service), 1-3 instances per service, each on its own node
  (`node17`). One or two instances have an error ratio that is always high (6-15 %, noisy
  but steady): they must not be blamed.
- 40 minutes of history per instance at a 10 s step: `http_requests_per_second`,
  `http_error_ratio`, `http_request_duration_seconds_p99`, `process_cpu_ratio`,
  `process_resident_memory_bytes`, labelled `{service, instance, job=<service>}`: baseline x a
  slow load cycle (a compressed "day") x slow drift x Gaussian noise. The service graph as
  Tempo's metrics generator exports it, `traces_service_graph_request_total{client, server}`
  (a counter), and a sample of each instance's access log (4 records per 10 s, NDJSON, labels
  `{job, service, instance}`, lines like `GET /api/cart status=503 duration=0.120s`; 5xx with
  the probability of the instance's error ratio).
- One fault per case, in one instance of one non-entry service (the root cause), starting a
  few minutes before now (3-8 min; 12-20 min for a leak), kinds cycling by case number:
  `cpu` (CPU +35-50 points, latency x1.4-2.9), `delay` (latency x1.6-3.9), `errors` (error
  ratio +4-15 points), `memory` (resident memory ramps +80-150 % over the rest of the window,
  latency mildly up in its second half).
- Propagation upstream only: every caller of an affected service (transitively) gets the
  symptoms 10-60 s later per hop, LOUDER than its callee (latency increase x1.3-2 per hop;
  errors 1-(1-p)^fanout with a fan-out of 2-4, plus timeouts once latency is up by more than
  half), on all of its instances. Callees and unrelated services stay normal. This is what fools ranking by
  the size of the deviation.
- Alerts as Prometheus would send them: per service (mean over its instances),
  `HighErrorRate` (error ratio over max(2.5x its median, median + 3 points)) and
  `HighLatency` (p99 over 1.6x its median), each `for: 1m`, `startsAt` when it fired. If no
  rule fires, the affected service whose latency moved most gets a `HighLatency` (counted as
  "fallback" in the output).

One case against the real binary
--------------------------------
A temporary rules directory (route with `group_wait = "1s"`, a dry-run receiver, and the
bundled localizers `topology`, `metric-deviation`, `log-hotspot`; the graph both as
`topology.json` and as `traces_service_graph_request_total` series), `faultline serve` on a
free port, the history pushed with its timestamps through remote_write (protobuf, snappy
with literal-only chunks), the logs through `POST /api/v1/logs` (NDJSON with `timestamp`),
then the alerts through `POST /api/v2/alerts`; the ranked suspects are read from
`GET /api/v1/incidents`. The process is stopped at the end of the case, also on failure or
Ctrl-C. The plugins' compile cache is shared by the cases (it is keyed by content).

Metrics (RCAEval, Pham et al.)
------------------------------
AC@k: the fraction of cases whose root cause is among the top k; Avg@5: the mean of
AC@1..AC@5. At service level (the suspects' `service`, or the service of their `instance`;
duplicates dropped, rank order kept) and at instance level (the suspects' `instance`; a
suspect naming only a service does not count there); overall and per fault type.

Baselines, on the same data: (a) "largest deviation" (each instance's largest |z| of any
metric, last 5 minutes against the rest) and (b) BARO (multivariate Bayesian online change
point detection for the onset, then RobustScaler scores; what is simplified is documented in
`localization_sim.bocpd_onset` and `localization_sim.baro_ranking`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True   # no scripts/__pycache__ in the repository
sys.path.insert(0, str(Path(__file__).resolve().parent))
import localization_sim as sim  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LOCALIZER_PLUGINS = ("topology", "metric-deviation", "log-hotspot", "webhook")
KS = (1, 2, 3, 4, 5)
ALERT_MATCH = """match = ['alertname=~"HighErrorRate|HighLatency"']"""


# --- the rules directory -------------------------------------------------------------------


def rules_toml() -> str:
    """The rule file a user of these metrics would write: the causal `topology` localizer
    (health from the series, graph from the file and the service-graph series) with the
    most say, and the two bundled ones that judge each component against its own history."""
    return f"""# Written by scripts/bench-localization.py for one case.
[route]
receiver = "bench"
group_by = ["cluster"]
group_wait = "1s"
group_interval = "5m"
repeat_interval = "4h"

[[receiver]]
name = "bench"
plugin = "webhook"
params = {{ url = "http://127.0.0.1:9/hook" }}
grants = {{ http = ["127.0.0.1:9"] }}
send_resolved = false
rails = {{ dry_run = true }}

[[localizer]]
name = "causal"
plugin = "topology"
{ALERT_MATCH}
select = '{{__name__=~"http_error_ratio|http_request_duration_seconds_p99|process_cpu_ratio|process_resident_memory_bytes|traces_service_graph_request_total"}}'
range = "1h"
files = {{ graph = "topology.json" }}
params = {{ label = "service", instance_label = "instance" }}
weight = 2.0

[[localizer]]
name = "deviation"
plugin = "metric-deviation"
{ALERT_MATCH}
select = '{{__name__=~"http_error_ratio|http_request_duration_seconds_p99|process_cpu_ratio|process_resident_memory_bytes"}}'
range = "1h"
params = {{ by = ["service", "instance"], direction = "up", lead = "2m" }}
weight = 1.0

[[localizer]]
name = "error-logs"
plugin = "log-hotspot"
{ALERT_MATCH}
logs = '{{job=~".+"}}'
range = "1h"
params = {{ node_label = "instance", lead = "2m" }}
weight = 1.0

[localization]
entity = ["instance", "service"]
top = 5
min_margin = 0.1
"""


def write_rules(dir_: Path, case: sim.Case, args) -> None:
    """The rule file, the graph file, and the plugins (copied into `plugins/`, where the
    server looks first)."""
    (dir_ / "plugins").mkdir(parents=True, exist_ok=True)
    (dir_ / "bench.toml").write_text(rules_toml())
    (dir_ / "topology.json").write_text(json.dumps(case.calls, indent=1, sort_keys=True))
    for name, path in plugin_files(args).items():
        shutil.copyfile(path, dir_ / "plugins" / f"{name}.wasm")


def plugin_files(args) -> dict:
    return {p: args.plugins / f"{p}.wasm" for p in LOCALIZER_PLUGINS}


def check_rules(args):
    """Runs `faultline check` on a sample rules directory; exits with its errors when the
    binary refuses the benchmark's rules (a binary older than the rules)."""
    case = sim.simulate(0, 0, int(time.time() * 1000))
    with tempfile.TemporaryDirectory(prefix="fl-bench-check-") as tmp:
        write_rules(Path(tmp), case, args)
        p = subprocess.run([str(args.binary), "check", tmp], capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 0:
            sys.exit("faultline check refuses the benchmark's rules:\n" + p.stdout + p.stderr)


# --- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`faultline serve` on a free port with temporary rules and data directories; stopped
    (and its directories removed, unless `keep`) when the `with` block ends, however."""

    def __init__(self, args, case):
        self.tmp = Path(tempfile.mkdtemp(prefix=f"fl-bench-{case.id}-"))
        self.keep = args.keep
        write_rules(self.tmp / "rules", case, args)
        # The compile cache (keyed by component contents and engine) is shared by the
        # cases, so that each does not compile the plugins anew.
        (self.tmp / "data").mkdir()
        (self.tmp / "data" / "cache").symlink_to(args.cache_dir, target_is_directory=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.tmp / "faultline.log"
        cmd = [str(args.binary), "serve", "--rules", str(self.tmp / "rules"),
               "--data", str(self.tmp / "data"), "--listen", f"127.0.0.1:{self.port}"]
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def __enter__(self):
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait_ready(self, timeout=120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"faultline exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if http("GET", self.url + "/-/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"faultline not ready after {timeout}s:\n{self.tail()}")

    def tail(self, n=30) -> str:
        self.log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def http(method: str, url: str, body: bytes | None = None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def expect_ok(what: str, status: int, body: bytes):
    if status >= 300:
        raise RuntimeError(f"{what}: HTTP {status}: {body[:500].decode(errors='replace')}")


# --- pushing a case ------------------------------------------------------------------------


def push_metrics(url: str, case: sim.Case) -> int:
    """Every series with its timestamps, through remote_write, one request per instance
    (and one for the service graph). Returns the number of samples sent."""
    sent = 0
    batches = []
    for inst in case.instances:
        batch = []
        for m in sim.METRICS:
            labels = {"__name__": m, "service": inst.service, "instance": inst.name,
                      "job": inst.service}
            batch.append((labels, list(zip(case.times, case.series[(inst.name, m)]))))
        batches.append(batch)
    batches.append([({"__name__": sim.GRAPH, "client": c, "server": s},
                     list(zip(case.times, v))) for (c, s), v in case.graph.items()])
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
               "X-Prometheus-Remote-Write-Version": "0.1.0"}
    for batch in batches:
        expect_ok("remote_write", *http("POST", url + "/api/v1/write",
                                        sim.remote_write_body(batch), headers))
        sent += sum(len(s) for _, s in batch)
    return sent


def push_logs(url: str, case: sim.Case, chunk=5000) -> int:
    """The access logs as NDJSON with millisecond timestamps."""
    for i in range(0, len(case.logs), chunk):
        lines = [json.dumps({"timestamp": ts, "labels": {"job": svc, "service": svc,
                                                         "instance": inst},
                             "message": line})
                 for ts, svc, inst, line in case.logs[i:i + chunk]]
        expect_ok("logs", *http("POST", url + "/api/v1/logs", "\n".join(lines).encode(),
                                {"Content-Type": "application/x-ndjson"}))
    return len(case.logs)


def rfc3339(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat().replace(
        "+00:00", "Z")


def post_alerts(url: str, case: sim.Case):
    """The firing alerts, as Prometheus posts them to an Alertmanager (`endsAt` 4 minutes
    ahead, renewed by every resend)."""
    ends = rfc3339(int(time.time() * 1000) + 4 * 60_000)
    body = [{
        "labels": {"alertname": a.name, "service": a.service, "severity": "critical",
                   "cluster": "sim"},
        "annotations": {"summary": f"{a.name} on {a.service} ({a.value:.3g})"},
        "startsAt": rfc3339(a.starts_ms),
        "endsAt": ends,
        "generatorURL": "http://prometheus.sim/graph",
    } for a in case.alerts]
    expect_ok("alerts", *http("POST", url + "/api/v2/alerts", json.dumps(body).encode(),
                              {"Content-Type": "application/json"}))


def wait_suspects(url: str, timeout: float) -> tuple[list, bool]:
    """The suspects of the first incident at /api/v1/incidents, polled until one appears
    (or `timeout`). Returns (suspects, whether an incident appeared)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http("GET", url + "/api/v1/incidents", timeout=5)
        if status == 200:
            doc = json.loads(body)
            items = doc.get("data", doc) if isinstance(doc, dict) else doc
            if items:
                return items[0].get("suspects", []), True
        time.sleep(0.5)
    return [], False


def ingest_problems(url: str, samples: int, records: int) -> list:
    """What /metrics says was dropped or refused, and what is missing of what was sent."""
    status, body = http("GET", url + "/metrics", timeout=10)
    if status != 200:
        return [f"/metrics: HTTP {status}"]
    problems, ingested = [], {}
    for line in body.decode(errors="replace").splitlines():
        name, value = line.split("{")[0].split(" ")[0], line.rsplit(" ", 1)[-1]
        if name in ("faultline_dropped_total", "faultline_ingest_rejected_total"):
            if float(value):
                problems.append(line)
        elif name in ("faultline_samples_ingested_total", "faultline_log_records_ingested_total"):
            ingested[name] = ingested.get(name, 0.0) + float(value)
    for name, sent in (("faultline_samples_ingested_total", samples),
                       ("faultline_log_records_ingested_total", records)):
        if ingested.get(name, 0.0) < sent:
            problems.append(f"{name} {ingested.get(name, 0.0):.0f} of {sent} sent")
    return problems


# --- rankings and metrics ------------------------------------------------------------------


def dedupe(xs):
    out = []
    for x in xs:
        if x is not None and x not in out:
            out.append(x)
    return out


def faultline_rankings(suspects: list, case: sim.Case) -> tuple[list, list]:
    """(services, instances) in the suspects' order. A suspect's service is its `service`
    label, else the service of its `instance`."""
    services, instances = [], []
    for s in suspects:
        labels = s.get("labels", {})
        inst = labels.get("instance")
        services.append(labels.get("service") or (case.service_of(inst) if inst else None))
        instances.append(inst)
    return dedupe(services), dedupe(instances)


def pair_rankings(pairs: list) -> tuple[list, list]:
    """(services, instances) from a baseline's ranked (service, instance) pairs."""
    return dedupe(p[0] for p in pairs), dedupe(p[1] for p in pairs)


def rank_of(ranking: list, truth: str):
    return ranking.index(truth) + 1 if truth in ranking else None


def table_row(ranks: list) -> dict:
    n = len(ranks) or 1
    ac = {k: sum(1 for r in ranks if r is not None and r <= k) / n for k in KS}
    return {"AC@1": ac[1], "AC@3": ac[3], "Avg@5": sum(ac.values()) / len(KS), "n": len(ranks)}


def markdown_table(results: list, kinds: list) -> str:
    """One row per (method, level); one column overall and one per fault type, each cell
    `AC@1 / AC@3 / Avg@5`."""
    groups = [("all", None)] + [(k, k) for k in kinds]
    head = "| method | level | " + " | ".join(
        f"{g} (n={sum(1 for r in results if k is None or r['kind'] == k)})"
        for g, k in groups) + " |"
    rows = [head, "|" + "---|" * (2 + len(groups))]
    for m in ("faultline", "naive", "baro"):
        for level in ("service", "instance"):
            cells = []
            for _, kind in groups:
                row = table_row([r["ranks"][m][level] for r in results
                                 if kind is None or r["kind"] == kind])
                cells.append(f"{row['AC@1']:.2f} / {row['AC@3']:.2f} / {row['Avg@5']:.2f}")
            rows.append(f"| {m} | {level} | " + " | ".join(cells) + " |")
    return "Each cell: AC@1 / AC@3 / Avg@5.\n\n" + "\n".join(rows)


# --- one case ------------------------------------------------------------------------------


def run_case(args, case_id: int) -> dict:
    case = sim.simulate(case_id, args.seed, int(time.time() * 1000))
    f = case.fault
    t0 = time.monotonic()
    with Server(args, case) as srv:
        # The history ends now, not when the case was generated: the newest sample is a
        # moment old when the incident is localized.
        sim.shift_to(case, int(time.time() * 1000))
        samples = push_metrics(srv.url, case)
        records = push_logs(srv.url, case)
        problems = ingest_problems(srv.url, samples, records)
        if problems:
            print(f"#{case_id:>3} ingestion: " + "; ".join(problems), file=sys.stderr)
        post_alerts(srv.url, case)
        suspects, appeared = wait_suspects(srv.url, args.timeout)
        if args.verbose:
            print(srv.tail(15), file=sys.stderr)
            for s in suspects[:5]:
                print(f"   {s.get('score', 0):.3f} {s.get('labels')}: {s.get('reason')}",
                      file=sys.stderr)
    elapsed = time.monotonic() - t0
    fl_services, fl_instances = faultline_rankings(suspects, case)
    naive_s, naive_i = pair_rankings(sim.naive_ranking(case))
    baro_pairs, baro_t0 = sim.baro_ranking(case)
    baro_s, baro_i = pair_rankings(baro_pairs)
    ranks = {
        "faultline": {"service": rank_of(fl_services, f.service),
                      "instance": rank_of(fl_instances, f.instance)},
        "naive": {"service": rank_of(naive_s, f.service),
                  "instance": rank_of(naive_i, f.instance)},
        "baro": {"service": rank_of(baro_s, f.service),
                 "instance": rank_of(baro_i, f.instance)},
    }
    return {
        "id": case_id, "kind": f.kind, "root": f"{f.service}/{f.instance}",
        "ranks": ranks, "suspects": suspects, "incident": appeared,
        "alerts": [f"{a.name}:{a.service}" for a in case.alerts],
        "fallback": case.fallback_alert, "samples": samples, "records": records,
        "naive_top": naive_i[:1], "baro_top": baro_i[:1],
        "baro_t0_min": (baro_t0 - sim.POINTS) * sim.STEP_MS / 60_000,
        "onset_min": (f.onset - sim.POINTS) * sim.STEP_MS / 60_000,
        "seconds": elapsed,
        "faultline_top3": [suspect_name(s, case) for s in suspects[:3]],
        "services": len(case.services), "instances": len(case.instances),
    }


LOCALIZER_NAMES = ("causal", "services", "deviation", "error-logs")


def suspect_name(s: dict, case: sim.Case) -> str:
    """`service/instance:score[localizers]`; `*` when the suspect names no instance. The
    localizers are read from the merged reason (`<name>: <reason>; ...`)."""
    labels = s.get("labels", {})
    inst = labels.get("instance")
    svc = labels.get("service") or (case.service_of(inst) if inst else None) or "?"
    reason = s.get("reason", "")
    by = "+".join(n for n in LOCALIZER_NAMES
                  if reason.startswith(f"{n}: ") or f"; {n}: " in reason)
    return f"{svc}/{inst or '*'}:{s.get('score', 0):.2f}[{by}]"


def case_line(r: dict) -> str:
    def mark(m):
        rk = r["ranks"][m]
        return f"s{rk['service'] or '-'}/i{rk['instance'] or '-'}"
    incident = "" if r["incident"] else " NO-INCIDENT"
    fallback = " (fallback alert)" if r["fallback"] else ""
    return (f"#{r['id']:>3} {r['kind']:<6} root={r['root']:<20} onset={r['onset_min']:.1f}m "
            f"alerts={len(r['alerts'])}{fallback}{incident}\n"
            f"      faultline[{mark('faultline')}] {', '.join(r['faultline_top3']) or '(none)'}\n"
            f"      naive[{mark('naive')}] {r['naive_top'][0] if r['naive_top'] else '-'}"
            f"   baro[{mark('baro')}] {r['baro_top'][0] if r['baro_top'] else '-'}"
            f" t0={r['baro_t0_min']:.1f}m   ({r['seconds']:.1f}s)")


# --- main ----------------------------------------------------------------------------------


def default_binary() -> Path:
    for p in (REPO / "target/release/faultline", REPO / "target/debug/faultline"):
        if p.exists():
            return p
    return REPO / "target/release/faultline"


def short_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def machine_note(args) -> str:
    """The machine, and what exactly was tested: the binary and plugins by content hash and
    time, and the repository's commit (marked when its working tree has changes)."""
    git = lambda *a: subprocess.run(["git", "-C", str(REPO), *a], capture_output=True,  # noqa: E731
                                    text=True).stdout.strip()
    dirty = " with uncommitted changes" if git("status", "--porcelain", "-uno") else ""
    stamp = lambda p: dt.datetime.fromtimestamp(p.stat().st_mtime).strftime("%H:%M")  # noqa: E731
    plugins = ", ".join(f"{name} {short_sha(path)} ({stamp(path)})"
                        for name, path in list(plugin_files(args).items())[:3])
    return (f"{platform.platform()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}. Repository at {git('rev-parse', '--short', 'HEAD')}"
            f"{dirty}; binary `{args.binary}` {short_sha(args.binary)} (built "
            f"{stamp(args.binary)}); plugins {plugins}")


def command_line(args) -> str:
    cmd = f"python3 scripts/bench-localization.py --cases {args.cases} --seed {args.seed}"
    for flag, value in (("--binary", args.binary_arg), ("--plugins", args.plugins_arg)):
        if value:
            cmd += f" {flag} {value}"
    return cmd


REPORT_HEAD = """# Localization benchmark, {date}

Written by `scripts/bench-localization.py --write` (a later run the same day is added below).
AC@k: the fraction of cases whose root cause is in the top k; Avg@5: the mean of AC@1..AC@5
(RCAEval). Service level: the suspects' services (a suspect's `service`, else the service
of its `instance`), duplicates dropped; instance level: their `instance` labels. `naive`:
each instance's largest z-score of any metric; `baro`: BARO (BOCPD onset + RobustScaler),
simplified as documented in `scripts/localization_sim.py`. Case lines: `s<rank>/i<rank>` of
the root cause at service/instance level (`-`: not named), Faultline's top 3 as
`service/instance:score[localizers]`, the baselines' top instance, BARO's onset.
"""


def report_md(args, results, table, minutes, note) -> str:
    """One run's section of the dated results file."""
    lines = [
        f"## {dt.datetime.now():%H:%M}: {len(results)} cases, seed {args.seed}",
        "",
        f"Command: `{command_line(args)}`",
        "",
        f"Machine and build: {note}. Run time: {minutes:.1f} minutes.",
        "",
        table,
        "",
        "<details><summary>Cases</summary>",
        "",
        "```",
        *(case_line(r) for r in results),
        "```",
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--smoke", action="store_true", help="4 cases, one per fault type")
    p.add_argument("--binary", type=Path, default=None,
                   help="faultline binary (default: target/release, else target/debug)")
    p.add_argument("--plugins", type=Path, default=None,
                   help="folder with topology, metric-deviation, log-hotspot and webhook .wasm "
                        "(default: rules/plugins)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the incident of a case")
    p.add_argument("--write", action="store_true",
                   help="write bench/localization-<date>.md (a later run that day is appended)")
    p.add_argument("--keep", action="store_true", help="keep each case's temporary directory")
    p.add_argument("--verbose", action="store_true",
                   help="print the server log's tail and the top suspects' reasons")
    p.add_argument("--case", type=int, action="append", default=None,
                   help="run only this case id (repeatable), to look at one miss")
    args = p.parse_args()
    if args.smoke:
        args.cases = 4
    args.binary_arg, args.plugins_arg = args.binary, args.plugins
    args.binary = (args.binary or default_binary()).resolve()
    args.plugins = (args.plugins or REPO / "rules/plugins").resolve()
    return args


def main():
    args = parse_args()
    if not args.binary.exists():
        sys.exit(f"no binary at {args.binary}: cargo build -p faultline --release")
    missing = [str(p) for p in plugin_files(args).values() if not p.exists()]
    if missing:
        sys.exit(f"missing plugins in {args.plugins}: {missing} (make plugins)")
    check_rules(args)
    print(f"binary {args.binary}\nplugins {args.plugins}\n"
          f"{len(args.case) if args.case else args.cases} cases, seed {args.seed}")
    started = time.monotonic()
    results = []
    args.cache_dir = Path(tempfile.mkdtemp(prefix="fl-bench-cache-"))
    try:
        for i in args.case or range(args.cases):
            try:
                r = run_case(args, i)
            except RuntimeError as e:
                print(f"#{i:>3} FAILED: {e}", file=sys.stderr)
                continue
            results.append(r)
            print(case_line(r), flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: results so far", file=sys.stderr)
    finally:
        shutil.rmtree(args.cache_dir, ignore_errors=True)
    minutes = (time.monotonic() - started) / 60
    if not results:
        sys.exit("no case completed")
    kinds = [k for k in sim.FAULT_KINDS if any(r["kind"] == k for r in results)]
    table = markdown_table(results, kinds)
    print("\n" + table)
    print(f"\n{len(results)} cases in {minutes:.1f} minutes")
    if args.write:
        out = REPO / "bench" / f"localization-{dt.date.today().isoformat()}.md"
        out.parent.mkdir(exist_ok=True)
        head = out.read_text() if out.exists() else REPORT_HEAD.format(
            date=dt.date.today().isoformat())
        out.write_text(head + "\n" + report_md(args, results, table, minutes,
                                                machine_note(args)))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
