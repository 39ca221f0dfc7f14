"""The programs a benchmark runs: Faultline and its peers (Prometheus, Alertmanager), each in
a process group of its own on a free loopback port with a temporary directory, killed with
its children when the benchmark ends however it ends; and what is read from them (RSS,
/metrics, wrk's figures)."""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import ThreadingHTTPServer

RUNNING = []


def stop_all():
    """Kills every process group still running (called from a `finally`)."""
    while RUNNING:
        RUNNING.pop().stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(handler):
    """An HTTP server of `handler` (a BaseHTTPRequestHandler class) on a free loopback port,
    in a daemon thread. Returns the server (`shutdown()` stops it) and its "host:port"."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def http(url, body=None, content_type="application/json", timeout=300):
    """The response body of a GET (or of a POST of `body`); fails on a non-2xx status."""
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def metric(text, name, labels=None):
    """Sum of the samples of `name` in exposition `text` whose labels include `labels`;
    None when there is none."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name):len(name) + 1] not in ("{", " "):
            continue
        head, _, value = line.rpartition(" ")
        if labels and not all(f'{k}="{v}"' in head for k, v in labels.items()):
            continue
        total += float(value)
        seen = True
    return total if seen else None


class Proc:
    """A program on a free port; `kind` is "faultline", "prometheus" or "alertmanager"."""

    def __init__(self, kind, argv, dir, port, ready_path):
        os.makedirs(dir, exist_ok=True)
        self.kind, self.dir, self.port = kind, dir, port
        self.log_path = os.path.join(dir, f"{kind}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log,
                                     start_new_session=True,
                                     env=dict(os.environ, RUST_LOG="info"))
        RUNNING.append(self)
        deadline = time.time() + 120
        while True:
            try:
                http(self.url(ready_path), timeout=5)
                return
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"{kind} did not get ready; its log: {self.log_path}")
                time.sleep(0.05)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def metrics(self):
        return http(self.url("/metrics")).decode()

    def query(self, expr):
        """The values of an instant query (the same API on all three servers that have it)."""
        q = urllib.parse.urlencode({"query": expr})
        data = json.loads(http(self.url(f"/api/v1/query?{q}")))
        return [float(r["value"][1]) for r in data["data"]["result"]]

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.log.close()
        if self in RUNNING:
            RUNNING.remove(self)


def faultline(binary, dir, rules="", config=""):
    """`faultline serve` with `rules` (TOML) in its rules directory and `config` as its server
    config; plugins named by the rules are copied from `binary`'s plugin directory."""
    rules_dir, data = os.path.join(dir, "rules"), os.path.join(dir, "data")
    os.makedirs(os.path.join(rules_dir, "plugins"), exist_ok=True)
    plugins = plugin_dir(binary)
    for name in set(re.findall(r'plugin = "(\w+)"', rules)):
        src = os.path.join(plugins, f"{name}.wasm")
        if not os.path.exists(src):
            raise SystemExit(f"no plugin {src}: run `make plugins` (or pass --plugins)")
        with open(src, "rb") as f, open(os.path.join(rules_dir, "plugins", f"{name}.wasm"), "wb") as g:
            g.write(f.read())
    with open(os.path.join(rules_dir, "bench.toml"), "w") as f:
        f.write(rules)
    port = free_port()
    argv = [binary, "serve", "--rules", rules_dir, "--data", data, "--listen", f"127.0.0.1:{port}"]
    if config:
        path = os.path.join(dir, "faultline.toml")
        with open(path, "w") as f:
            f.write(config)
        argv += ["--config", path]
    return Proc("faultline", argv, dir, port, "/-/ready")


PLUGINS = None


def plugin_dir(binary):
    if PLUGINS:
        return PLUGINS
    return os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "wasm32-wasip2", "plugin")


def prometheus(dir, config):
    """Prometheus with `config` (YAML), its remote_write receiver on."""
    return peer("prometheus", dir, config, "tsdb", [
        "--web.enable-remote-write-receiver"])


def alertmanager(dir, config):
    """Alertmanager with `config` (YAML), no cluster."""
    return peer("alertmanager", dir, config, "am", ["--cluster.listen-address="])


def peer(kind, dir, config, storage, flags):
    path = os.path.join(dir, f"{kind}.yml")
    with open(path, "w") as f:
        f.write(config)
    port = free_port()
    binary = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}[kind]
    storage_flag = {"prometheus": "--storage.tsdb.path", "alertmanager": "--storage.path"}[kind]
    argv = [binary, f"--config.file={path}", f"{storage_flag}={dir}/{storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}/", *flags]
    return Proc(kind, argv, dir, port, "/-/ready")


def wrk(url, script, connections, seconds, env, args=()):
    """Runs wrk (one thread per connection) and returns (requests/s, non-2xx responses)."""
    argv = ["wrk", f"-t{connections}", f"-c{connections}", f"-d{seconds}s", "-s", script, url]
    if args:
        argv += ["--", *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120,
                         env=dict(os.environ, **env), start_new_session=True)
    if out.returncode != 0:
        raise SystemExit(f"wrk failed: {out.stderr}{out.stdout}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    errors = re.search(r"Socket errors: (.*)", out.stdout)
    failed = int(bad.group(1)) if bad else 0
    if errors:
        failed += sum(int(n) for n in re.findall(r"\d+", errors.group(1)))
    return rps, failed
