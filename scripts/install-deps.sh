#!/usr/bin/env bash
# Installs what building and testing Faultline need besides Rust, on Debian, only when it is
# missing; `make run` and `make test` call it, so a fresh machine with rustup needs nothing
# else. `build`: what compiling needs (librdkafka is built from source by the rdkafka crate:
# cmake, a C++ compiler and libcurl's headers). `test`: also the real programs the
# whole-system tests talk to (Prometheus, Alertmanager with amtool, node_exporter, openssl
# for the TLS test's certificates, Debian's etcd-server for the cluster tests,
# python-logging-loki, the SMTP server aiosmtpd and the elasticsearch client from PyPI, rsyslog with its Elasticsearch output, the Kafka-protocol
# broker tansu from crates.io, which builds in about 10 minutes, and for the console's
# browser test Debian's chromium with playwright-core from npm).
set -euo pipefail

need="${1:-build}"
sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi

apt_install() {
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$@"
}

has_curl_headers() {
    test -f /usr/include/x86_64-linux-gnu/curl/curl.h || test -f /usr/include/curl/curl.h \
        || test -n "$(find /usr/include -path '*curl/curl.h' -print -quit 2>/dev/null)"
}

if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null || ! has_curl_headers; then
    apt_install cmake g++ libcurl4-openssl-dev
fi
[ "$need" = test ] || exit 0

if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
    || ! command -v prometheus-node-exporter >/dev/null || ! command -v amtool >/dev/null \
    || ! command -v openssl >/dev/null || ! command -v python3 >/dev/null; then
    apt_install prometheus prometheus-alertmanager prometheus-node-exporter openssl python3
fi

if ! command -v etcd >/dev/null; then
    apt_install etcd-server
fi

if ! python3 -c "import logging_loki" 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    # Debian's own Python refuses system-wide installs (PEP 668) unless told to.
    python3 -m pip install python-logging-loki==0.3.1 \
        || python3 -m pip install --break-system-packages python-logging-loki==0.3.1
fi

if ! python3 -c "import aiosmtpd" 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    python3 -m pip install aiosmtpd==1.4.6 \
        || python3 -m pip install --break-system-packages aiosmtpd==1.4.6
fi

if ! python3 -c "import elasticsearch" 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    python3 -m pip install elasticsearch==9.5.1 \
        || python3 -m pip install --break-system-packages elasticsearch==9.5.1
fi

if ! command -v rsyslogd >/dev/null \
    || [ -z "$(find /usr/lib -name omelasticsearch.so -print -quit 2>/dev/null)" ]; then
    apt_install rsyslog rsyslog-elasticsearch
fi

# Without `dynostore` tansu has only a storage engine that keeps nothing.
if ! command -v tansu >/dev/null && ! test -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"; then
    cargo install tansu --version 0.6.0 --locked --features dynostore
fi

# The console's browser test: Debian's chromium, driven by playwright-core (npm, pinned by
# tests/console/package-lock.json). Node.js 20 or later comes with the machine; Debian's
# own is installed only when there is none.
if ! command -v chromium >/dev/null; then
    apt_install chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
fi
console_tests="$(dirname "$0")/../tests/console"
if [ ! -d "$console_tests/node_modules/playwright-core" ]; then
    (cd "$console_tests" && npm ci --no-audit --no-fund)
fi
