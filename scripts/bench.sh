#!/usr/bin/env bash
# detour's benchmark (issue 6): detour next to the kernel (routing, nftables DNAT), a no-op
# AF_XDP forwarder built on detour's own I/O (the ceiling of that path), nginx and HAProxy, in
# one run on this machine, in namespaces of its own (dtb-gen, dtb-mid, dtb-sink; addresses in
# 198.18.0.0/15): throughput, latency from payload timestamps, batch service time, redirects,
# memory and legitimate traffic through a SYN flood. Installs what is missing, builds release,
# runs perf/bench.py (set-up, searches, report, tear-down) and writes
# perf/results/<date>-<host>.md/.json/.svg.
#
# usage: scripts/bench.sh [--quick] [--runs N] [--out DIR]
#   --quick: 1 run, short trials (under a minute once built): a smoke test of the harness
#            (what CI runs); its figures are not measurements. Written with a -quick suffix.
# Needs root (namespaces, XDP, AF_XDP). Every flood is bounded in count and time; the
# namespaces and processes are removed on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bench: needs root (network namespaces, XDP)" >&2
    exit 1
fi

# Install what is missing (Debian).
need=()
for pair in nginx:nginx-light haproxy:haproxy wrk:wrk nft:nftables ethtool:ethtool curl:curl \
    python3:python3 clang:clang taskset:util-linux nstat:iproute2; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
[ -e /usr/include/gelf.h ] || need+=(libelf-dev)
if [ "${#need[@]}" -gt 0 ]; then
    echo "bench: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi
# The packaged nginx and haproxy services must not hold port 80 elsewhere; ours run in dtb-mid.

echo "bench: building release (detour, detour-perf)"
cargo build --release -q -p detour -p detour-perf

cleanup() { python3 perf/bench.py --teardown || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
python3 perf/bench.py "$@"
