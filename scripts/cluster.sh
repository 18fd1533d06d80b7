#!/usr/bin/env bash
# The cluster lab: several detour directors behind a router's ECMP, announced over BGP by BIRD.
# Dual-stack: every IPv4 address 198.18.X.Y below has an IPv6 twin 2001:db8:X::Y.
#
#  dtc-cl 198.18.10.100 --c0|r0--> dtc-rt [r0 198.18.10.1 | brf 198.18.11.1 | brb 198.18.12.1]
#                                     |  BIRD, kernel multipath routes to the /32s and /128s
#                       brf (front) --+-- dtc-d1..d4 dc 198.18.11.1N  (detour + BIRD each)
#                       brb (back)  --+-- dtc-d1..d4 ds 198.18.12.1N
#                                     +-- dtc-r1..r3 198.18.12.21-23 :8080 (DIPs 198.18.20.2-4)
#
# The reals' default route is the router's back address; the router sends their traffic
# (ip rule iif brb -> table 200, both families) over the multipath default routes the
# directors announce, so the return traffic also goes through any live director. Virtuals
# 198.18.20.1 and 2001:db8:20::1 (DIPs 2001:db8:20::2-4). One BGP session per director and
# side carries both families (MP-BGP, IPv6 next hops set per channel), under one BFD session.
#
# usage: scripts/cluster.sh up|down|status|demo
#        scripts/cluster.sh start N [drain-secs] | signal N SIG | routes | ctl N <command...>
#        (env: CLUSTER_DIR, default /tmp/detour-cluster; CLUSTER_BIG_MB, default 20;
#         DETOUR_BIN, default target/release/detour)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${CLUSTER_DIR:-/tmp/detour-cluster}
BIG_MB=${CLUSTER_BIG_MB:-20}
BIN=${DETOUR_BIN:-$ROOT/target/release/detour}
DIRECTORS=(1 2 3 4)
REALS=(1 2 3)
NS=(dtc-cl dtc-rt dtc-d1 dtc-d2 dtc-d3 dtc-d4 dtc-r1 dtc-r2 dtc-r3)

x() { ip netns exec "$@"; }

down() {
    for ns in "${NS[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    done
    for ns in "${NS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [ -e "/run/netns/$ns" ] || break
            ip netns del "$ns" 2>/dev/null && break
            ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
            sleep 0.2
        done
    done
}

sub() { sed -e "s|@N@|$2|g" -e "s|@DIR@|$DIR|g" "$ROOT/scripts/cluster/$1"; }

up() {
    down
    trap 'echo "cluster: setup failed, tearing down" >&2; down' ERR
    command -v bird >/dev/null || { echo "cluster: bird (Debian bird2) is missing: scripts/setup.sh" >&2; exit 1; }
    mkdir -p "$DIR"
    rm -f "$DIR"/*.log "$DIR"/*.ctl "$DIR"/*.sock "$DIR"/*.pid
    for ns in "${NS[@]}"; do
        ip netns add "$ns"
        x "$ns" ip link set lo up
        # No duplicate address detection (the addresses are ours), no router advertisements.
        x "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    done
    x dtc-rt sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
        net.ipv6.conf.all.forwarding=1 net.ipv6.fib_multipath_hash_policy=1
    # client <-> router
    ip link add c0 netns dtc-cl type veth peer r0 netns dtc-rt
    x dtc-cl ip addr add 198.18.10.100/24 dev c0
    x dtc-cl ip addr add 2001:db8:10::100/64 dev c0 nodad
    x dtc-rt ip addr add 198.18.10.1/24 dev r0
    x dtc-rt ip addr add 2001:db8:10::1/64 dev r0 nodad
    x dtc-rt ip link add brf type bridge
    x dtc-rt ip link add brb type bridge
    x dtc-rt ip addr add 198.18.11.1/24 dev brf
    x dtc-rt ip addr add 198.18.12.1/24 dev brb
    x dtc-rt ip addr add 2001:db8:11::1/64 dev brf nodad
    x dtc-rt ip addr add 2001:db8:12::1/64 dev brb nodad
    for n in "${DIRECTORS[@]}"; do
        ip link add dc netns "dtc-d$n" type veth peer "f$n" netns dtc-rt
        ip link add ds netns "dtc-d$n" type veth peer "b$n" netns dtc-rt
        x "dtc-d$n" ip addr add "198.18.11.1$n/24" dev dc
        x "dtc-d$n" ip addr add "198.18.12.1$n/24" dev ds
        x "dtc-d$n" ip addr add "2001:db8:11::1$n/64" dev dc nodad
        x "dtc-d$n" ip addr add "2001:db8:12::1$n/64" dev ds nodad
        x "dtc-d$n" ip link set dc up
        x "dtc-d$n" ip link set ds up
        x dtc-rt ip link set "f$n" master brf
        x dtc-rt ip link set "b$n" master brb
        for p in "f$n" "b$n"; do
            x dtc-rt ip link set "$p" up
            # Frames the director sends by AF_XDP reach a veth peer with GRO on (DESIGN.md 3).
            x dtc-rt ethtool -K "$p" tx off gro on >/dev/null 2>&1 || true
        done
    done
    for n in "${REALS[@]}"; do
        ip link add eth0 netns "dtc-r$n" type veth peer "p$n" netns dtc-rt
        x dtc-rt ip link set "p$n" master brb
        x dtc-rt ip link set "p$n" up
        x dtc-rt ethtool -K "p$n" tx off >/dev/null 2>&1 || true
        # The router forwards the reals' traffic back out of brb (to a director): a redirect
        # taken would pin a real's replies to one director.
        x "dtc-r$n" sysctl -qw net.ipv4.conf.all.accept_redirects=0 \
            net.ipv6.conf.all.accept_redirects=0 net.ipv6.conf.eth0.accept_redirects=0
        x "dtc-r$n" ip addr add "198.18.12.2$n/24" dev eth0
        x "dtc-r$n" ip addr add "2001:db8:12::2$n/64" dev eth0 nodad
        x "dtc-r$n" ip link set eth0 up
        x "dtc-r$n" ip route add default via 198.18.12.1
        x "dtc-r$n" ip -6 route add default via 2001:db8:12::1
        x "dtc-r$n" ethtool -K eth0 tx off >/dev/null
    done
    x dtc-rt ip link set brf up
    x dtc-rt ip link set brb up
    x dtc-rt ip link set r0 up
    x dtc-cl ip link set c0 up
    x dtc-cl ip route add 198.18.0.0/15 via 198.18.10.1
    x dtc-cl ip -6 route add 2001:db8::/32 via 2001:db8:10::1
    x dtc-cl ethtool -K c0 tx off >/dev/null
    x dtc-rt ethtool -K r0 tx off >/dev/null
    # The reals' traffic leaves through a director (their return path), never straight to
    # the client; with no director announcing, it is dropped.
    x dtc-rt ip rule add iif brb lookup 200 pref 100
    x dtc-rt ip route add unreachable default table 200 metric 4000
    x dtc-rt ip -6 rule add iif brb lookup 200 pref 100
    x dtc-rt ip -6 route add unreachable default table 200 metric 4000

    # BIRD everywhere, each with its own control socket.
    {
        sub bird-router.conf 0
        for n in "${DIRECTORS[@]}"; do sub bird-router-director.conf "$n"; done
    } >"$DIR/router.bird.conf"
    x dtc-rt bird -c "$DIR/router.bird.conf" -s "$DIR/router.bird.ctl" -P "$DIR/router.bird.pid"
    for n in "${DIRECTORS[@]}"; do
        sub bird-director.conf "$n" >"$DIR/d$n.bird.conf"
        x "dtc-d$n" bird -c "$DIR/d$n.bird.conf" -s "$DIR/d$n.bird.ctl" -P "$DIR/d$n.bird.pid"
    done

    # Real servers.
    head -c "$((BIG_MB * 1024 * 1024))" /dev/urandom >"$DIR/big.bin.tmp"
    mv "$DIR/big.bin.tmp" "$DIR/big.bin"
    for n in "${REALS[@]}"; do
        mkdir -p "$DIR/r$n"
        printf 'real %s\n' "$n" >"$DIR/r$n/index.html"
        ln -sf "$DIR/big.bin" "$DIR/r$n/big.bin"
        x "dtc-r$n" python3 -m http.server --bind :: --directory "$DIR/r$n" 8080 \
            >>"$DIR/r$n.log" 2>&1 &
    done
    for n in "${REALS[@]}"; do
        for _ in $(seq 1 50); do
            x "dtc-r$n" curl -s -o /dev/null --max-time 1 http://127.0.0.1:8080/index.html && break
            sleep 0.1
        done
    done
    # Sessions up (bounded wait).
    for _ in $(seq 1 100); do
        [ "$(x dtc-rt birdc -s "$DIR/router.bird.ctl" show protocols | grep -c Established)" -ge 8 ] && break
        sleep 0.1
    done
    trap - ERR
    echo "cluster: up ($(x dtc-rt birdc -s "$DIR/router.bird.ctl" show protocols | grep -c Established) BGP sessions established)"
}

# Start detour in director N (its own secret file, control socket and log).
start() {
    local n=$1 drain=${2:-2}
    [ -f "$DIR/d$n.secret" ] || { (umask 077; printf '%s\n' "${CLUSTER_SECRET:-0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0}" >"$DIR/d$n.secret"); }
    # `ip netns exec` execs detour, so $! is detour's own pid (signals reach it).
    ip netns exec "dtc-d$n" "$BIN" run --config "$ROOT/configs/cluster.conf" \
        --cores "$(( (n - 1) % $(nproc) ))" --announce dtann --drain-secs "$drain" \
        --cookie-secret-file "$DIR/d$n.secret" --ctl-socket "$DIR/d$n.sock" --summary-secs 2 \
        >"$DIR/d$n.log" 2>&1 &
    echo $! >"$DIR/d$n.pid"
    disown
    for _ in $(seq 1 100); do
        x "dtc-d$n" ip route show table 100 2>/dev/null | grep -q 198.18.20.1 &&
            x "dtc-d$n" ip -6 route show table 100 2>/dev/null | grep -q 2001:db8:20::1 && return 0
        sleep 0.1
    done
    echo "cluster: detour in dtc-d$n announced nothing within 10 s" >&2
    cat "$DIR/d$n.log" >&2
    return 1
}

signal() { kill "-$2" "$(cat "$DIR/d$1.pid")"; }

routes() {
    echo "routes to the virtuals and DIPs:"
    x dtc-rt ip route show root 198.18.20.0/24
    x dtc-rt ip -6 route show root 2001:db8:20::/64
    echo "table 200 (the reals' return path):"
    x dtc-rt ip route show table 200
    x dtc-rt ip -6 route show table 200
}

status() {
    for ns in "${NS[@]}"; do
        if ip netns list | grep -qw "$ns"; then echo "$ns: present"; else echo "$ns: absent"; fi
    done
    [ -e /run/netns/dtc-rt ] && { x dtc-rt birdc -s "$DIR/router.bird.ctl" show protocols || true; routes; }
}

# A client loop's answers so far, complete lines only: "OK/ALL".
answers() {
    local n
    n=$(wc -l <"$1" 2>/dev/null) || n=0
    printf '%s/%s' "$(head -n "$n" "$1" 2>/dev/null | grep -c '^302$' || true)" "$n"
}

# One line: each director's redirects so far, both families (or `-`), the router's next hops
# for the virtuals, the client loops' answers.
summary() {
    local line="" n r
    for n in "${DIRECTORS[@]}"; do
        r=$(x "dtc-d$n" "$BIN" ctl --socket "$DIR/d$n.sock" show statistics 2>/dev/null |
            awk '/responses: redirects [0-9]/ {print $3; exit}') || true
        line+="d$n ${r:--}  "
    done
    local tenths=$((($(date +%s%N) - T0) / 100000000))
    printf '[%3d.%ds] redirects per director: %s| next hops: %s v4, %s v6 | client: %s ok v4, %s ok v6\n' \
        $((tenths / 10)) $((tenths % 10)) "$line" \
        "$(x dtc-rt ip -4 route show 198.18.20.1 | grep -c 'via')" \
        "$(x dtc-rt ip -6 route show 2001:db8:20::1 | grep -c 'via')" \
        "$(answers "$DIR/loop.out")" "$(answers "$DIR/loop6.out")"
}

demo() {
    trap down EXIT
    up
    for n in 1 2 3; do start "$n" 3; done
    echo "== what director 1 announces (detour ctl show announce):"
    x dtc-d1 "$BIN" ctl --socket "$DIR/d1.sock" show announce
    echo "== the router's multipath routes (BIRD, merge paths):"
    routes
    T0=$(date +%s%N)
    # A client per family: redirects one after another (a new connection and port each),
    # bounded.
    ( for _ in $(seq 1 4000); do
          x dtc-cl curl -s -o /dev/null --max-time 2 -w '%{http_code}\n' "http://198.18.20.1/demo" || true
      done >"$DIR/loop.out" ) &
    local loop=$!
    ( for _ in $(seq 1 4000); do
          x dtc-cl curl -g -s -o /dev/null --max-time 2 -w '%{http_code}\n' "http://[2001:db8:20::1]/demo" || true
      done >"$DIR/loop6.out" ) &
    local loop6=$!
    local dl=() i
    for i in 1 2 3 4 5 6; do
        local host="198.18.20.$(( i % 3 + 2 ))"
        [ "$i" -gt 3 ] && host="[2001:db8:20::$(( i % 3 + 2 ))]"
        x dtc-cl curl -g -sf --max-time 90 --limit-rate 1M -o "$DIR/dl$i" "http://$host/big.bin" &
        dl+=($!)
    done
    echo "== a redirect loop per family and 6 downloads of $BIG_MB MB through the DIPs (3 over IPv4, 3 over IPv6; 1 MB/s each)"
    for t in $(seq 1 24); do
        case $t in
            4) echo "== SIGKILL director 1"; signal 1 KILL ;;
            9) echo "== SIGTERM director 2 (withdraws, serves 3 s more, stops)"; signal 2 TERM ;;
            15) echo "== director 4 joins"; start 4 3 ;;
        esac
        summary
        sleep 1
    done
    kill "$loop" "$loop6" 2>/dev/null || true
    wait "$loop" "$loop6" 2>/dev/null || true
    local ok=0 good=0 pid f want
    for pid in "${dl[@]}"; do wait "$pid" && ok=$((ok + 1)); done
    want=$(sha256sum <"$DIR/big.bin" | cut -d' ' -f1)
    for f in "$DIR"/dl*; do [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$want" ] && good=$((good + 1)); done
    echo "== the router's routes now:"
    routes
    echo "== redirects: $(grep -c '^302' "$DIR/loop.out") answered, $(grep -vc '^302' "$DIR/loop.out") failed over IPv4; $(grep -c '^302' "$DIR/loop6.out") answered, $(grep -vc '^302' "$DIR/loop6.out") failed over IPv6; downloads: $ok of ${#dl[@]} finished, $good with the right sha256"
}

case "${1:-}" in
    up) up ;;
    down) down; echo "cluster: down" ;;
    status) status ;;
    demo) demo ;;
    start) start "${2:?which director (1-4)}" "${3:-2}" ;;
    signal) signal "${2:?which director}" "${3:?which signal}" ;;
    routes) routes ;;
    ctl) n=${2:?which director}; shift 2; x "dtc-d$n" "$BIN" ctl --socket "$DIR/d$n.sock" "$@" ;;
    *) echo "usage: $0 up|down|status|demo|start N [drain]|signal N SIG|routes|ctl N cmd..." >&2; exit 2 ;;
esac
