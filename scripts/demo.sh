#!/usr/bin/env bash
# The main job: on a fresh machine, install what is missing, build, bring the lab up, start
# detour with configs/lab.conf, and show a real client (curl) being redirected from the VIP
# to a real server's URL and getting that server's page through its DIP; then the rotation
# over several requests, a large download through a DIP; the same over IPv6 (a client at
# 2001:db8::100 redirected by [2001:db8::1] and served through an IPv6 DIP); then tear
# everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p detour
bin=$PWD/target/release/detour
log=$(mktemp)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    scripts/lab.sh down >/dev/null 2>&1 || true
    rm -f "$log" "${conf:-}"
}
trap cleanup EXIT

echo "== detour check configs/lab.conf"
"$bin" check configs/lab.conf
echo "== lab up"
LAB_BIG_MB=${LAB_BIG_MB:-50} scripts/lab.sh up
# With HTTPS: configs/lab-tls.conf adds a TLS 1.3 virtual (its certificates come from the
# lab's test CA, made by `lab.sh up`).
conf=$(mktemp)
cat configs/lab.conf configs/lab-tls.conf >"$conf"
echo "== detour check (configs/lab.conf + configs/lab-tls.conf)"
"$bin" check "$conf" >/dev/null && echo "ok: certificates load"
echo "== detour run"
ip netns exec dt-dir "$bin" run --config "$conf" --summary-secs 2 >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    grep -q 'worker(s) on' "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "demo: detour exited" >&2; exit 1; }
    sleep 0.1
done
cat "$log"
c() { ip netns exec dt-client "$@"; }

echo "== curl -L -v http://www.lab/index.html  (redirected, then served through the DIP)"
c curl -sS -L -v --max-time 10 http://www.lab/index.html 2>&1 | grep -E '^(< HTTP|< Location|\* Connected|<html)|real server' || true
echo "== curl -L https://www.lab/index.html  (TLS 1.3 redirect by detour, then the real's HTTPS page through its DIP)"
c curl -sS -L -v --max-time 10 --cacert /tmp/detour-lab/tls/ca.pem https://www.lab/index.html 2>&1 |
    grep -E '^(< HTTP|< Location|\* SSL connection|\* Connected|\* subject|<html)|real server' || true
echo "== six requests: the rotation"
for _ in 1 2 3 4 5 6; do
    c curl -sS -o /dev/null --max-time 5 -w '%{http_code} -> %{redirect_url}\n' http://www.lab/
done
echo "== a large download through the VIP, then a DIP"
c curl -sS -L --max-time 60 -o /tmp/detour-demo.bin -w 'got %{size_download} bytes from %{url_effective} at %{speed_download} B/s\n' http://www.lab/big.bin
want=$(sha256sum /tmp/detour-lab/big.bin | cut -d' ' -f1)
got=$(sha256sum /tmp/detour-demo.bin | cut -d' ' -f1)
rm -f /tmp/detour-demo.bin
[ "$want" = "$got" ] && echo "sha256 matches the served file" || { echo "demo: download differs" >&2; exit 1; }
echo "== IPv6: curl -6 -L -v http://www6.lab/index.html  (neighbour discovery answered by the director, redirected, served through an IPv6 DIP)"
c curl -6 -sS -L -v --max-time 10 http://www6.lab/index.html 2>&1 | grep -E '^(< HTTP|< Location|\* Connected|<html)|real server' || true
echo "== IPv6: a large download through the VIP, then an IPv6 DIP"
c curl -6 -sS -L --max-time 60 -o /tmp/detour-demo6.bin -w 'got %{size_download} bytes from %{url_effective} at %{speed_download} B/s\n' http://www6.lab/big.bin
got=$(sha256sum /tmp/detour-demo6.bin | cut -d' ' -f1)
rm -f /tmp/detour-demo6.bin
[ "$want" = "$got" ] && echo "sha256 matches the served file" || { echo "demo: IPv6 download differs" >&2; exit 1; }
echo "== ping the VIP (the director answers ARP and ICMP itself)"
c ping -c 2 -W 1 198.18.0.1 | tail -2
c ping -6 -c 2 -W 1 2001:db8::1 | tail -2
sleep 2
echo "== detour's live summary"
tail -n 3 "$log"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
tail -n 1 "$log"
echo "demo: ok"
