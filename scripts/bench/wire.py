"""The data a benchmark feeds: series with label sets like node_exporter's, as remote_write
requests (protobuf in snappy's block format, written as one uncompressed literal, which is
valid snappy) and as exposition text."""

import struct

# The 6-byte varint placeholder remote_write.lua replaces with a timestamp; `stamp(k)` is the
# k-th of several (a varint of a timestamp in ms is 6 bytes long until the year 2109).
PLACEHOLDER = b"\xff\xfe\xfd\xfc\xfb\x7f"


def stamp(k):
    return b"\xff\xfe\xfd\xfc" + bytes([0xE0 + k]) + b"\x7f"


def stamped(body, stamps):
    """`body` with placeholder `stamp(k)` replaced by timestamp `stamps[k]` (ms)."""
    for k, ts in enumerate(stamps):
        body = body.replace(stamp(k), varint(ts))
    return body
MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")


def labels(i, name=None):
    """Series i's labels, sorted: 500 series per host, as node_exporter names them (CPU
    modes, filesystems, network devices), or all named `name` (with the same other labels)."""
    host, j = divmod(i, 500)
    base = {"instance": f"10.{host >> 16 & 255}.{host >> 8 & 255}.{host & 255}:9100",
            "job": "node", "hostname": f"node-{host:05d}"}
    if j < 256:
        extra = {"__name__": "node_cpu_seconds_total", "cpu": str(j // 8), "mode": MODES[j % 8]}
    elif j < 356:
        extra = {"__name__": "node_filesystem_avail_bytes", "device": f"/dev/sd{j - 256}",
                 "fstype": "ext4", "mountpoint": f"/srv/disk{j - 256}"}
    else:
        extra = {"__name__": "node_network_receive_bytes_total", "device": f"eth{j - 356}"}
    if name:
        extra["__name__"] = name
    return sorted({**base, **extra}.items())


def value(i):
    """Series i's value: spread evenly over [0, 1)."""
    return (i * 0.6180339887498949) % 1.0


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def label_bytes(pairs):
    return b"".join(field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in pairs)


def sample(v, ts):
    """A Sample: value (double) and timestamp (int64 ms, or a placeholder's bytes)."""
    t = ts if isinstance(ts, bytes) else varint(ts)
    return field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + t)


def snappy(raw):
    """`raw` in snappy's block format as one literal."""
    n = len(raw) - 1
    tag = bytes([n << 2]) if n < 60 else bytes([63 << 2]) + n.to_bytes(4, "little")
    return varint(len(raw)) + tag + raw


def write_request(series, stamps, name=None):
    """A snappy remote_write body of `series` (indices), each with a sample at each of
    `stamps` (ms, or placeholders' bytes)."""
    raw = b"".join(
        field(1, label_bytes(labels(i, name)) + b"".join(sample(value(i), t) for t in stamps))
        for i in series)
    return snappy(raw)


def bodies(n, per, stamps, name=None):
    """Remote_write bodies covering series 0..n, `per` series each."""
    return [write_request(range(lo, min(n, lo + per)), stamps, name) for lo in range(0, n, per)]


def exposition(n):
    """Exposition text of n series (their labels but `job` and `instance`, which the scraper
    adds as a target's)."""
    lines = []
    for i in sorted(range(n), key=lambda i: (labels(i)[0][1], i)):
        pairs = [(k, v) for k, v in labels(i) if k not in ("job", "instance", "__name__")]
        name = dict(labels(i))["__name__"]
        inner = ",".join(f'{k}="{v}"' for k, v in pairs)
        lines.append(f"{name}{{{inner}}} {value(i) * 1e6:.1f}\n")
    return "".join(lines).encode()
