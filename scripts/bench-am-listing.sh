#!/usr/bin/env bash
# Times `GET /api/v2/alerts` with 10,000 alerts and 100 inhibit rules on a real Alertmanager
# 0.25 and on Faultline (release build), the same alerts and rules in both, and prints the
# median of each and the ratio. The in-process figure is `cargo bench --bench alerts_api`.
#
#   scripts/bench-am-listing.sh            # RUNS=20 ALERTS=10000 RULES=100 to change
#
# Needs prometheus-alertmanager (Debian) and curl. Both servers run on free loopback ports
# with temporary data directories and are stopped (by PID) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-20}
ALERTS=${ALERTS:-10000}
RULES=${RULES:-100}
BATCH=1000

command -v prometheus-alertmanager >/dev/null || {
    echo "needs prometheus-alertmanager: apt-get install prometheus-alertmanager" >&2
    exit 1
}
cargo build --release -p faultline --quiet
FAULTLINE=${CARGO_TARGET_DIR:-target}/release/faultline

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# A free loopback port: one nothing answers on.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

wait_ready() {
    for _ in $(seq 200); do
        curl -fs -o /dev/null "$1" && return
        sleep 0.1
    done
    echo "$1 did not answer" >&2
    exit 1
}

# Inhibit rule r: a critical Alert<r> inhibits the warnings Alert<r+1> of the same instance.
{
    echo "route:"
    echo "  receiver: default"
    echo "receivers:"
    echo "  - name: default"
    echo "inhibit_rules:"
    for ((r = 0; r < RULES; r++)); do
        echo "  - source_matchers: ['alertname=\"Alert$r\"', 'severity=\"critical\"']"
        echo "    target_matchers: ['alertname=\"Alert$(((r + 1) % 100))\"', 'severity=\"warning\"']"
        echo "    equal: [instance]"
    done
} >"$TMP/alertmanager.yml"
mkdir -p "$TMP/rules"
for ((r = 0; r < RULES; r++)); do
    printf '[[inhibit]]\nsource_matchers = [%s, %s]\ntarget_matchers = [%s, %s]\nequal = ["instance"]\n\n' \
        "'alertname=\"Alert$r\"'" "'severity=\"critical\"'" \
        "'alertname=\"Alert$(((r + 1) % 100))\"'" "'severity=\"warning\"'"
done >"$TMP/rules/inhibit.toml"

# Alert i: Alert<i % 100> on host<i / 100>; one in seven is critical.
batch() {
    awk -v from="$1" -v to="$2" 'BEGIN {
        printf "["
        for (i = from; i < to; i++) {
            sev = (i % 7 == 0) ? "critical" : "warning"
            printf "%s{\"labels\":{\"alertname\":\"Alert%d\",\"env\":\"prod\",\"instance\":\"host%d:9100\",\"job\":\"node\",\"severity\":\"%s\"},", (i > from ? "," : ""), i % 100, int(i / 100), sev
            printf "\"annotations\":{\"summary\":\"Alert%d on host%d\"},\"generatorURL\":\"http://prometheus:9090/graph?g0.expr=rule%d\"}", i % 100, int(i / 100), i % 100
        }
        printf "]"
    }'
}

AM_PORT=$(free_port)
prometheus-alertmanager --config.file="$TMP/alertmanager.yml" --storage.path="$TMP/am" \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= \
    >"$TMP/am.log" 2>&1 &
PIDS+=($!)
FL_PORT=$(free_port)
"$FAULTLINE" serve --rules "$TMP/rules" --data "$TMP/faultline" \
    --listen "127.0.0.1:$FL_PORT" >"$TMP/faultline.log" 2>&1 &
PIDS+=($!)
AM="http://127.0.0.1:$AM_PORT"
FL="http://127.0.0.1:$FL_PORT"
wait_ready "$AM/-/ready"
wait_ready "$FL/-/ready"

for ((from = 0; from < ALERTS; from += BATCH)); do
    batch "$from" $((from + BATCH)) >"$TMP/batch.json"
    for url in "$AM" "$FL"; do
        curl -fsS -o /dev/null -H 'Content-Type: application/json' \
            --data-binary "@$TMP/batch.json" "$url/api/v2/alerts"
    done
done

# Median of RUNS timed listings (after one untimed), in milliseconds; checks the count.
time_listing() {
    local n
    n=$(curl -fsS "$1/api/v2/alerts" | grep -o '"fingerprint"' | wc -l)
    [ "$n" -eq "$ALERTS" ] || { echo "$1 listed $n alerts, not $ALERTS" >&2; exit 1; }
    for ((i = 0; i < RUNS; i++)); do
        curl -fsS -o /dev/null -w '%{time_total}\n' "$1/api/v2/alerts"
    done | sort -n | awk '{ t[NR] = $1 } END { printf "%.1f", 1000 * t[int((NR + 1) / 2)] }'
}

am_ms=$(time_listing "$AM")
fl_ms=$(time_listing "$FL")
inhibited=$(curl -fsS "$FL/api/v2/alerts?active=false" | grep -o '"fingerprint"' | wc -l)
echo "GET /api/v2/alerts, $ALERTS alerts ($inhibited inhibited), $RULES inhibit rules, median of $RUNS:"
echo "  Alertmanager 0.25: $am_ms ms"
echo "  Faultline:         $fl_ms ms"
awk -v a="$am_ms" -v f="$fl_ms" 'BEGIN { printf "  Faultline takes %.3f of Alertmanager'"'"'s time (%.1fx faster)\n", f / a, a / f }'
