"""The fault-injection simulator and the two baselines of scripts/bench-localization.py.

Pure Python 3.11 standard library. See the header of bench-localization.py for the model;
this module holds the parts that do not talk to Faultline:

- `simulate(case_id, seed, end_ms)`: one case (system, history, fault, logs, alerts).
- `naive_ranking(case)` and `baro_ranking(case)`: the baselines, on the same data.
- `remote_write_body(series)` and `snappy_literal(raw)`: Prometheus remote_write 1.0 bodies
  (protobuf `prometheus.WriteRequest`, snappy block format with literal-only chunks).
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass, field

STEP_MS = 10_000
HISTORY_MIN = 40
POINTS = HISTORY_MIN * 60_000 // STEP_MS  # 240 samples per series

RATE = "http_requests_per_second"
ERRORS = "http_error_ratio"
LATENCY = "http_request_duration_seconds_p99"
CPU = "process_cpu_ratio"
MEMORY = "process_resident_memory_bytes"
METRICS = (RATE, ERRORS, LATENCY, CPU, MEMORY)
GRAPH = "traces_service_graph_request_total"

FAULT_KINDS = ("cpu", "delay", "errors", "memory")

SERVICE_POOL = (
    "frontend", "gateway", "checkout", "cart", "payment", "catalog", "search", "users",
    "auth", "inventory", "shipping", "recommend", "orders-db", "cache", "email", "ads",
    "pricing", "reviews",
)

# Log records per instance per 10 s step (access-log sample), and their paths.
LOG_RECORDS_PER_STEP = 4
PATHS = ("/api/items", "/api/cart", "/api/pay", "/healthz", "/api/user", "/api/search")


@dataclass
class Instance:
    name: str          # node name, e.g. node17 (one instance per node)
    service: str
    base: dict         # metric -> baseline level
    noisy: bool        # error baseline always high (must not be blamed)


@dataclass
class Fault:
    kind: str
    service: str
    instance: str
    onset: int         # index of the first faulty sample


@dataclass
class Alert:
    name: str          # HighErrorRate | HighLatency
    service: str
    starts_ms: int
    value: float


@dataclass
class Case:
    id: int
    seed: int
    services: list
    calls: dict        # caller -> [callees]
    levels: dict       # service -> depth (0 = entry)
    instances: list
    fault: Fault
    times: list        # sample timestamps (ms), oldest first
    series: dict = field(default_factory=dict)   # (instance, metric) -> [values]
    graph: dict = field(default_factory=dict)    # (client, server) -> [counter values]
    logs: list = field(default_factory=list)     # (ts_ms, service, instance, line)
    alerts: list = field(default_factory=list)
    fallback_alert: bool = False                 # no rule fired; the loudest service alerted
    onsets: dict = field(default_factory=dict)   # service -> symptom onset index

    def service_of(self, instance: str) -> str | None:
        for i in self.instances:
            if i.name == instance:
                return i.service
        return None


# --- the system ---------------------------------------------------------------------------


def random_dag(rng: random.Random) -> tuple[list, dict, dict]:
    """8-12 services in 3-5 depth levels; each service calls 1-3 deeper ones (at least one
    on the next level), and every non-entry service has a caller."""
    n = rng.randint(8, 12)
    depth = rng.randint(3, 5)
    names = rng.sample(SERVICE_POOL, n)
    levels = {names[0]: 0}
    rest = names[1:]
    for d in range(1, depth):           # every level holds at least one service
        levels[rest[d - 1]] = d
    for s in rest[depth - 1:]:
        levels[s] = rng.randint(1, depth - 1)
    calls = {s: [] for s in names}
    for s in names:
        deeper = [t for t in names if levels[t] > levels[s]]
        nxt = [t for t in deeper if levels[t] == levels[s] + 1]
        if not nxt:
            continue
        chosen = {rng.choice(nxt)}
        for t in rng.sample(deeper, min(len(deeper), rng.randint(0, 2))):
            chosen.add(t)
        calls[s] = sorted(chosen)
    for s in names:
        if levels[s] > 0 and not any(s in c for c in calls.values()):
            callers = [t for t in names if levels[t] < levels[s]]
            calls[rng.choice(callers)].append(s)
    return names, calls, levels


def callers_of(calls: dict, service: str) -> list:
    return sorted(c for c, callees in calls.items() if service in callees)


def make_instances(rng: random.Random, services: list, calls: dict, levels: dict) -> list:
    """1-3 instances per service, each on its own node, with baselines; 1-2 instances (not
    of the same service) have an always-high error ratio."""
    nodes = rng.sample(range(1, 100), 3 * len(services))
    own_latency = {s: rng.uniform(0.02, 0.08) for s in services}
    latency = {}
    for s in sorted(services, key=lambda s: -levels[s]):    # callees first
        latency[s] = own_latency[s] + max((latency[t] for t in calls[s]), default=0.0)
    out = []
    for s in services:
        rate = rng.uniform(20, 300)
        k = rng.randint(1, 3)
        for _ in range(k):
            base = {
                RATE: rate / k * rng.uniform(0.9, 1.1),
                ERRORS: rng.uniform(0.002, 0.01),
                LATENCY: latency[s] * 3 * rng.uniform(0.9, 1.1),   # p99 ~ 3x the mean
                CPU: rng.uniform(0.15, 0.5),
                MEMORY: rng.uniform(150e6, 900e6),
            }
            out.append(Instance(f"node{nodes.pop()}", s, base, noisy=False))
    for inst in rng.sample(out, rng.randint(1, 2)):
        inst.noisy = True
        inst.base[ERRORS] = rng.uniform(0.06, 0.15)
    return out


# --- the fault and its propagation ---------------------------------------------------------


def pick_fault(rng: random.Random, services, calls, levels, instances, kind) -> Fault:
    """A non-entry service (it has callers, so its symptoms propagate), one of its
    non-noisy instances, and an onset a few minutes before now (10-20 minutes for a leak)."""
    candidates = [s for s in services if levels[s] > 0]
    service = rng.choice(candidates)
    pool = [i for i in instances if i.service == service and not i.noisy] or [
        i for i in instances if i.service == service]
    inst = rng.choice(pool)
    minutes = rng.uniform(12, 20) if kind == "memory" else rng.uniform(3, 8)
    onset = POINTS - int(minutes * 60_000 / STEP_MS)
    return Fault(kind, service, inst.name, onset)


def root_effects(rng: random.Random, fault: Fault) -> tuple[list, list, list, list]:
    """Per sample at the faulty instance: relative latency increase, absolute error-ratio
    increase, absolute CPU increase, relative memory increase."""
    lat, err, cpu, mem = ([0.0] * POINTS for _ in range(4))
    sev = rng.uniform(0.7, 1.3)
    cpu_add = rng.uniform(0.35, 0.5)
    lat_mult = rng.uniform(0.6, 1.5) * sev
    err_add = rng.uniform(0.04, 0.15) * sev
    leak = rng.uniform(0.8, 1.5)
    for t in range(fault.onset, POINTS):
        ramp = min(1.0, (t - fault.onset + 1) / 3)   # 30 s to full strength
        if fault.kind == "cpu":
            cpu[t] = cpu_add * ramp
            lat[t] = lat_mult * ramp
        elif fault.kind == "delay":
            lat[t] = 1.5 * lat_mult * ramp
        elif fault.kind == "errors":
            err[t] = err_add * ramp
        else:  # memory leak: memory ramps over the whole window; latency mildly, later
            frac = (t - fault.onset + 1) / (POINTS - fault.onset)
            mem[t] = leak * frac
            lat[t] = 0.6 * max(0.0, frac - 0.5)
    return lat, err, cpu, mem


def propagate(rng: random.Random, calls: dict, fault: Fault, root_lat, root_err):
    """Symptoms of the callers, transitively along the DAG: each hop lags 10-60 s and is
    LOUDER than its callee. A caller fans out to its callee (2-4 calls a request) and
    retries on timeouts: per-call errors p become 1-(1-p)^fanout, latency increases are
    amplified 1.3-2x, and large delays add timeout errors. Every instance of a caller is
    affected (each talks to the faulty instance). Returns service -> (lat, err, onset)."""
    effects = {fault.service: (root_lat, root_err, fault.onset)}
    frontier = [fault.service]
    while frontier:
        callee = frontier.pop(0)
        c_lat, c_err, c_onset = effects[callee]
        for caller in callers_of(calls, callee):
            lag = rng.randint(1, 6)                        # 10-60 s
            amp = rng.uniform(1.3, 2.0)
            fanout = rng.randint(2, 4)
            lat = [0.0] * POINTS
            err = [0.0] * POINTS
            for t in range(POINTS):
                s = t - lag
                if s < 0:
                    continue
                lat[t] = amp * c_lat[s]
                timeouts = min(0.1, 0.03 * max(0.0, lat[t] - 0.5))
                err[t] = min(0.9, 1 - (1 - c_err[s]) ** fanout + timeouts)
            old = effects.get(caller)
            if old:   # reached along two paths: the louder symptom of each sample
                lat = [max(a, b) for a, b in zip(lat, old[0])]
                err = [max(a, b) for a, b in zip(err, old[1])]
            onset = min(c_onset + lag, old[2] if old else POINTS)
            effects[caller] = (lat, err, onset)
            if caller not in frontier:
                frontier.append(caller)
    return effects


# --- series, logs, alerts ----------------------------------------------------------------


def instance_series(rng, inst: Instance, effects: dict, fault: Fault, root) -> dict:
    """The five series of one instance: baseline x slow load cycle x drift x noise, plus the
    fault's effect (at the faulty instance) or the propagated symptoms (at callers)."""
    b = inst.base
    period = rng.uniform(2, 6) * 3600 / (STEP_MS / 1000)     # a compressed "day"
    phase = rng.uniform(0, 2 * math.pi)
    amp = rng.uniform(0.05, 0.2)
    drift_lat = rng.uniform(-0.1, 0.1) / POINTS
    drift_mem = rng.uniform(-0.05, 0.08) / POINTS
    walk = 0.0
    lat_add, err_add = [0.0] * POINTS, [0.0] * POINTS
    cpu_add, mem_add = [0.0] * POINTS, [0.0] * POINTS
    if inst.name == fault.instance:
        lat_add, err_add, cpu_add, mem_add = root
    elif inst.service in effects and inst.service != fault.service:
        lat_add, err_add, _ = effects[inst.service]
        k = rng.uniform(0.9, 1.1)
        lat_add = [x * k for x in lat_add]
        err_add = [min(0.95, x * k) for x in err_add]
    err_noise = 0.35 if inst.noisy else 0.15
    out = {m: [] for m in METRICS}
    for t in range(POINTS):
        load = 1 + amp * math.sin(2 * math.pi * t / period + phase)
        walk += rng.gauss(0, 0.002)
        out[RATE].append(b[RATE] * load * (1 + rng.gauss(0, 0.03)))
        e = b[ERRORS] * (1 + rng.gauss(0, err_noise)) + err_add[t]
        out[ERRORS].append(min(1.0, max(0.0, e)))
        lat = b[LATENCY] * (1 + drift_lat * t) * (1 + rng.gauss(0, 0.05)) * (1 + lat_add[t])
        out[LATENCY].append(max(0.001, lat))
        c = b[CPU] * load + rng.gauss(0, 0.02) + cpu_add[t]
        out[CPU].append(min(1.0, max(0.01, c)))
        m = b[MEMORY] * (1 + drift_mem * t + walk) * (1 + rng.gauss(0, 0.005)) * (1 + mem_add[t])
        out[MEMORY].append(m)
    return out


def graph_counters(case: Case) -> dict:
    """`traces_service_graph_request_total{client, server}`: calls per edge, cumulative."""
    out = {}
    for caller, callees in case.calls.items():
        rate = [0.0] * POINTS
        for inst in case.instances:
            if inst.service == caller:
                rate = [a + b for a, b in zip(rate, case.series[(inst.name, RATE)])]
        for callee in callees:
            total, values = 0.0, []
            for r in rate:
                total += r * STEP_MS / 1000
                values.append(round(total))
            out[(caller, callee)] = values
    return out


def access_logs(rng, case: Case) -> list:
    """A sample of each instance's access log: a few records per step, each an error
    (status 5xx) with the probability of the instance's error ratio at that time."""
    out = []
    for inst in case.instances:
        errs = case.series[(inst.name, ERRORS)]
        lats = case.series[(inst.name, LATENCY)]
        for t, ts in enumerate(case.times):
            for _ in range(LOG_RECORDS_PER_STEP):
                at = ts - rng.randrange(STEP_MS)
                status = rng.choice((500, 502, 503, 504)) if rng.random() < errs[t] else 200
                method = "POST" if rng.random() < 0.3 else "GET"
                line = (f"{method} {rng.choice(PATHS)} status={status} "
                        f"duration={lats[t] * rng.uniform(0.2, 1.0):.3f}s")
                out.append((at, inst.service, inst.name, line))
    out.sort()
    return out


def service_view(case: Case, service: str, metric: str) -> list:
    """A service's series as a dashboard shows it: the mean over its instances."""
    rows = [case.series[(i.name, metric)] for i in case.instances if i.service == service]
    return [sum(col) / len(col) for col in zip(*rows)]


def fire_alerts(case: Case) -> list:
    """The alerts Prometheus would send: per service, HighErrorRate when the mean error
    ratio is over max(2.5x its median, median + 0.03), HighLatency when the mean p99 is
    over 1.6x its median (medians over the first 20 minutes), each `for: 1m`;
    `startsAt` is when the alert fired."""
    alerts = []
    half = POINTS // 2
    for s in case.services:
        for name, metric in (("HighErrorRate", ERRORS), ("HighLatency", LATENCY)):
            v = service_view(case, s, metric)
            med = sorted(v[:half])[half // 2]
            limit = max(2.5 * med, med + 0.03) if metric == ERRORS else 1.6 * med
            run = 0
            for t in range(half, POINTS):
                run = run + 1 if v[t] > limit else 0
                if run == 7:          # pending for 1 minute, then firing
                    alerts.append(Alert(name, s, case.times[t], v[t]))
                    break
    return alerts


def loudest_alert(case: Case) -> Alert:
    """When no rule fired: the affected service whose latency moved most (a user's report)."""
    best = None
    for s in case.onsets:
        v = service_view(case, s, LATENCY)
        ratio = v[-1] / (sorted(v[: POINTS // 2])[POINTS // 4] or 1)
        if best is None or ratio > best[0]:
            best = (ratio, s, v[-1])
    return Alert("HighLatency", best[1], case.times[-1] - 60_000, best[2])


def simulate(case_id: int, seed: int, end_ms: int, kind: str | None = None) -> Case:
    """One case, reproducible from (seed, case_id): the fault kind cycles through
    FAULT_KINDS unless given."""
    rng = random.Random(f"{seed}/{case_id}")
    kind = kind or FAULT_KINDS[case_id % len(FAULT_KINDS)]
    services, calls, levels = random_dag(rng)
    instances = make_instances(rng, services, calls, levels)
    fault = pick_fault(rng, services, calls, levels, instances, kind)
    end_ms -= end_ms % STEP_MS
    times = [end_ms - (POINTS - 1 - t) * STEP_MS for t in range(POINTS)]
    case = Case(case_id, seed, services, calls, levels, instances, fault, times)
    root = root_effects(rng, fault)
    effects = propagate(rng, calls, fault, root[0], root[1])
    case.onsets = {s: e[2] for s, e in effects.items()}
    for inst in instances:
        for m, values in instance_series(rng, inst, effects, fault, root).items():
            case.series[(inst.name, m)] = values
    case.graph = graph_counters(case)
    case.logs = access_logs(rng, case)
    case.alerts = fire_alerts(case)
    if not case.alerts:
        case.alerts = [loudest_alert(case)]
        case.fallback_alert = True
    return case


def shift_to(case: Case, end_ms: int) -> None:
    """Moves a case in time so that its newest sample is at `end_ms` (the data is the same;
    only its timestamps move), e.g. once the server is ready."""
    end_ms -= end_ms % STEP_MS
    d = end_ms - case.times[-1]
    case.times = [t + d for t in case.times]
    case.logs = [(t + d, *rest) for t, *rest in case.logs]
    for a in case.alerts:
        a.starts_ms += d


# --- baselines -----------------------------------------------------------------------------


def rank_by_score(scores: dict) -> list:
    """(service, instance) keys, best score first (ties by name, for determinism)."""
    return [k for k, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def naive_ranking(case: Case, recent: int = 30) -> list:
    """Baseline (a), "largest deviation": per instance, the largest |z| of any metric, z of
    the mean of the last `recent` samples (5 minutes) against the mean and standard
    deviation of the samples before."""
    scores = {}
    for inst in case.instances:
        best = 0.0
        for m in METRICS:
            v = case.series[(inst.name, m)]
            hist, now = v[:-recent], v[-recent:]
            mu = sum(hist) / len(hist)
            sd = math.sqrt(sum((x - mu) ** 2 for x in hist) / len(hist)) or 1e-9
            best = max(best, abs(sum(now) / len(now) - mu) / sd)
        scores[(inst.service, inst.name)] = best
    return rank_by_score(scores)


def quantile(sorted_v: list, q: float) -> float:
    pos = (len(sorted_v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_v) - 1)
    return sorted_v[lo] + (sorted_v[hi] - sorted_v[lo]) * (pos - lo)


def robust_standardize(v: list, fit: list) -> list:
    """RobustScaler: (x - median) / IQR, fitted on `fit`."""
    s = sorted(fit)
    med = quantile(s, 0.5)
    iqr = quantile(s, 0.75) - quantile(s, 0.25)
    iqr = iqr or (abs(med) * 1e-3 or 1e-9)
    return [(x - med) / iqr for x in v]


def bocpd_onset(matrix: list, hazard: float = 1 / 100, delay: int = 3,
                prune: float = 1e-6, max_runs: int = 40) -> int:
    """Multivariate Bayesian online change point detection (Adams & MacKay 2007), as BARO
    uses it, simplified: the dimensions are independent given the run length (a diagonal
    covariance instead of BARO's full Normal-Wishart), each with a Normal-Gamma prior
    (mu0 = 0, kappa0 = 1, alpha0 = 1, beta0 = 1) on standardized data, so the predictive is a
    product of Student-t densities; constant hazard; run lengths below `prune` posterior
    mass are dropped and at most `max_runs` kept (the most probable). `matrix[t]` holds
    every metric at time t. The onset is the time whose change-point posterior, read
    `delay` samples later (P(the run began then)), is the largest; the first 10% of the
    history is not searched."""
    dims = len(matrix[0])
    # Each run hypothesis: (log prob, n, [sums], [sums of squares]).
    runs = [(0.0, 0, [0.0] * dims, [0.0] * dims)]
    cp_score = [0.0] * len(matrix)
    log_h, log_1h = math.log(hazard), math.log(1 - hazard)
    log_prune = math.log(prune)
    for t, x in enumerate(matrix):
        grown, cp_mass = [], []
        for logp, n, s1, s2 in runs:
            ll = student_t_loglik(x, n, s1, s2)
            grown.append((logp + ll + log_1h, n, s1, s2))
            cp_mass.append(logp + ll + log_h)
        # A change point at t: x starts a new run; otherwise every run grows by x.
        new = [(logsumexp(cp_mass), 1, list(x), [v * v for v in x])]
        for logp, n, s1, s2 in grown:
            new.append((logp, n + 1, [a + b for a, b in zip(s1, x)],
                        [a + b * b for a, b in zip(s2, x)]))
        norm = logsumexp([r[0] for r in new])
        new = [(lp - norm, n, s1, s2) for lp, n, s1, s2 in new if lp - norm > log_prune]
        runs = sorted(new, key=lambda r: -r[0])[:max_runs]
        if t >= delay:
            # P(the current run began at t - delay): read `delay` samples late, once the
            # new regime has shown itself.
            cp_score[t - delay] = sum(math.exp(lp) for lp, n, _, _ in runs if n == delay + 1)
    start = len(matrix) // 10
    window = cp_score[start:len(matrix) - delay]
    return start + max(range(len(window)), key=lambda i: (window[i], i))


def student_t_loglik(x: list, n: int, s1: list, s2: list) -> float:
    """log p(x | run of n points with sums s1, s2) under the Normal-Gamma prior."""
    kappa0, alpha0, beta0 = 1.0, 1.0, 1.0
    kappa = kappa0 + n
    alpha = alpha0 + n / 2
    const = math.lgamma(alpha + 0.5) - math.lgamma(alpha) - 0.5 * math.log(2 * math.pi * alpha)
    total = 0.0
    for xi, a, b in zip(x, s1, s2):
        mean = a / n if n else 0.0
        ss = b - n * mean * mean if n else 0.0
        mu = a / kappa                       # (kappa0 * mu0 + n * mean) / kappa, mu0 = 0
        beta = beta0 + 0.5 * ss + kappa0 * n * mean * mean / (2 * kappa)
        scale2 = beta * (kappa + 1) / (alpha * kappa)
        z = (xi - mu) ** 2 / scale2
        total += const - 0.5 * math.log(scale2) - (alpha + 0.5) * math.log1p(z / (2 * alpha))
    return total


def logsumexp(v: list) -> float:
    m = max(v)
    return m + math.log(sum(math.exp(x - m) for x in v))


def baro_ranking(case: Case) -> tuple[list, int]:
    """Baseline (b), BARO (Pham, Ha, Zhang, FSE 2024): multivariate BOCPD over every metric
    of every instance finds the onset t0; each metric is then scaled with a RobustScaler
    fitted on the data before t0, a metric's score is its largest |scaled value| after t0,
    and (service, instance) pairs rank by their best metric. Returns the ranking and t0.

    Simplified against the paper: BOCPD as in `bocpd_onset` (diagonal covariance, fixed
    hyperparameters); its input is each metric robust-standardized on the first half of the
    history (before any fault in this simulator) and clipped to +-10; the service graph
    counters are not among the metrics (BARO uses only the system's own metrics too)."""
    keys = [(i, m) for i in case.instances for m in METRICS]
    fit_end = POINTS // 2
    columns = [robust_standardize(case.series[(i.name, m)], case.series[(i.name, m)][:fit_end])
               for i, m in keys]
    # Clipped so that one exploding metric does not decide alone.
    matrix = [[max(-10.0, min(10.0, c[t])) for c in columns] for t in range(POINTS)]
    t0 = bocpd_onset(matrix)
    scores = {}
    for inst, m in keys:
        v = case.series[(inst.name, m)]
        scaled = robust_standardize(v[t0:], v[:t0])
        k = (inst.service, inst.name)
        scores[k] = max(scores.get(k, 0.0), max(abs(x) for x in scaled))
    return rank_by_score(scores), t0


# --- wire formats --------------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1          # int64 as protobuf encodes negatives
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_field(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return varint(tag << 3 | 2) + varint(len(payload)) + payload


def remote_write_body(series: list) -> bytes:
    """`series`: [(labels dict, [(ts_ms, value)])] as a snappy-compressed
    `prometheus.WriteRequest` (labels sorted by name, as Prometheus sends them)."""
    out = bytearray()
    for labels, samples in series:
        ts = bytearray()
        for name in sorted(labels):
            ts += pb_field(1, pb_field(1, name.encode()) + pb_field(2, labels[name].encode()))
        for t, v in samples:
            sample = b"\x09" + struct.pack("<d", v) + b"\x10" + varint(t)
            ts += pb_field(2, sample)
        out += pb_field(1, bytes(ts))
    return snappy_literal(bytes(out))


def snappy_literal(raw: bytes) -> bytes:
    """Snappy's block format with literal chunks only (valid, just not compressed): the
    uncompressed length as a varint, then literals of at most 64 KiB, each with a tag byte
    (and 1 or 2 length bytes)."""
    out = bytearray(varint(len(raw)))
    for i in range(0, len(raw), 65536):
        chunk = raw[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + n.to_bytes(2, "little")
        out += chunk
    return bytes(out)
