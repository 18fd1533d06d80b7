#!/usr/bin/env bash
# The lab of DESIGN.md section 4, in network namespaces joined by veth pairs, dual-stack:
#
#   dt-client (198.18.0.100) --c0/dc--> dt-dir [dc 198.18.0.254 | ds 198.18.1.1] --ds/sw0--> dt-sw (bridge)
#                                                                              |-- dt-real1 198.18.1.11 :8080 (NAT DIP 198.18.0.2)
#                                                                              |-- dt-real2 198.18.1.12 :8080 (NAT DIP 198.18.0.4)
#                                                                              `-- dt-real3 198.18.1.13 + 198.18.0.3 :80 (same-address DIP)
#
# IPv6 beside it: client 2001:db8::100/64, director dc 2001:db8::fe/64 and ds 2001:db8:1::1/64,
# reals 2001:db8:1::11-13/64 (NAT DIPs [2001:db8::2] -> real1, [2001:db8::4] -> real2; the VIP
# is [2001:db8::1]). Every IPv6 address is added with `nodad`, so nothing waits for duplicate
# address detection; the client resolves the VIP and DIPs by neighbour discovery, which the
# director answers.
#
# Each real runs python3's http.server on a directory holding index.html (naming the
# real) and big.bin, and the same over HTTPS (TLS 1.3) on 8443 (real1, real2) or 443
# (real3), with a certificate for its name from the lab's test CA. `up` makes the CA and the
# certificates with openssl under $LAB_DIR/tls: ca.pem; <name>.pem/.key for www.lab (ECDSA
# P-256), secure.lab (RSA 2048), real1.lab .. real3.lab (ECDSA P-256). The director's
# interfaces have 2 queues. Everything is torn down by `down`, and by `up` itself if it
# fails half way.
#
# usage: scripts/lab.sh up|down|status|stop-real N|start-real N
#        (env: LAB_BIG_MB, size of big.bin, default 100)
set -euo pipefail

NS=(dt-client dt-dir dt-sw dt-real1 dt-real2 dt-real3)
LAB_DIR=${LAB_DIR:-/tmp/detour-lab}
BIG_MB=${LAB_BIG_MB:-100}
QUEUES=${LAB_QUEUES:-2}

x() { ip netns exec "$@"; }

down() {
    for ns in "${NS[@]}"; do
        if [ -f "$LAB_DIR/$ns.pid" ]; then
            kill "$(cat "$LAB_DIR/$ns.pid")" 2>/dev/null || true
            rm -f "$LAB_DIR/$ns.pid"
        fi
    done
    for ns in "${NS[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    done
    for ns in "${NS[@]}"; do
        # Retry: a namespace whose last process is still exiting can refuse deletion.
        for _ in 1 2 3 4 5; do
            [ -e "/run/netns/$ns" ] || break
            ip netns del "$ns" 2>/dev/null && break
            ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
            sleep 0.2
        done
    done
    rm -rf /etc/netns/dt-client
}

up() {
    down
    trap 'echo "lab: setup failed, tearing down" >&2; down' ERR
    mkdir -p "$LAB_DIR"
    for ns in "${NS[@]}"; do
        ip netns add "$ns"
        x "$ns" ip link set lo up
    done

    # client <-> director (client side), multi-queue.
    ip link add c0 netns dt-client numtxqueues "$QUEUES" numrxqueues "$QUEUES" type veth \
        peer dc netns dt-dir numtxqueues "$QUEUES" numrxqueues "$QUEUES"
    x dt-client ip addr add 198.18.0.100/24 dev c0
    x dt-client ip -6 addr add 2001:db8::100/64 dev c0 nodad
    x dt-dir ip addr add 198.18.0.254/24 dev dc
    x dt-dir ip -6 addr add 2001:db8::fe/64 dev dc nodad
    # director (server side) <-> switch.
    ip link add ds netns dt-dir numtxqueues "$QUEUES" numrxqueues "$QUEUES" type veth \
        peer sw0 netns dt-sw numtxqueues "$QUEUES" numrxqueues "$QUEUES"
    x dt-dir ip addr add 198.18.1.1/24 dev ds
    x dt-dir ip -6 addr add 2001:db8:1::1/64 dev ds nodad
    x dt-sw ip link add br0 type bridge
    x dt-sw ip link set sw0 master br0
    local i=1
    for r in dt-real1 dt-real2 dt-real3; do
        ip link add eth0 netns "$r" type veth peer "sw$i" netns dt-sw
        x dt-sw ip link set "sw$i" master br0
        x dt-sw ip link set "sw$i" up
        x "$r" ip addr add "198.18.1.1$i/24" dev eth0
        x "$r" ip -6 addr add "2001:db8:1::1$i/64" dev eth0 nodad
        x "$r" ip link set eth0 up
        x "$r" ip route add default via 198.18.1.1
        x "$r" ip -6 route add default via 2001:db8:1::1
        i=$((i + 1))
    done
    # The same-address real owns its DIP's address too; the director's kernel reaches it on
    # the server side (for its MAC and health checks), not on the client side where the
    # DIP is answered.
    x dt-real3 ip addr add 198.18.0.3/32 dev eth0
    x dt-sw ip link set sw0 up
    x dt-sw ip link set br0 up
    x dt-client ip link set c0 up
    x dt-dir ip link set dc up
    x dt-dir ip link set ds up
    x dt-dir ip route add 198.18.0.3/32 dev ds
    # The client reaches the rest of the lab through the director's kernel address.
    x dt-client ip route add 198.18.0.0/15 via 198.18.0.254 || true
    x dt-client ip -6 route add 2001:db8::/32 via 2001:db8::fe || true

    # Kernel-side veths send partial checksums unless tx offload is off (DESIGN.md 3).
    x dt-client ethtool -K c0 tx off >/dev/null
    for r in dt-real1 dt-real2 dt-real3; do x "$r" ethtool -K eth0 tx off >/dev/null; done
    x dt-sw ethtool -K sw0 tx off >/dev/null
    # Driver-mode AF_XDP on veth needs the peer's MTU at most 3506; GRO on the peers lets
    # frames sent by the director reach them.
    x dt-client ethtool -K c0 gro on >/dev/null 2>&1 || true
    x dt-sw ethtool -K sw0 gro on >/dev/null 2>&1 || true

    make_certs
    # Real servers: a page naming each, and a large file.
    head -c "$((BIG_MB * 1024 * 1024))" /dev/urandom >"$LAB_DIR/big.bin.tmp"
    mv "$LAB_DIR/big.bin.tmp" "$LAB_DIR/big.bin"
    for r in dt-real1 dt-real2 dt-real3; do
        mkdir -p "$LAB_DIR/$r"
        printf '<html><body><h1>real server %s</h1></body></html>\n' "$r" >"$LAB_DIR/$r/index.html"
        ln -sf "$LAB_DIR/big.bin" "$LAB_DIR/$r/big.bin"
        start_real "$r"
    done
    # Names of the lab, as the client resolves them (`ip netns exec` bind-mounts
    # /etc/netns/<ns>/hosts over /etc/hosts).
    mkdir -p /etc/netns/dt-client
    cat >/etc/netns/dt-client/hosts <<HOSTS
127.0.0.1 localhost
198.18.0.1 www.lab secure.lab
198.18.0.2 real1.lab
198.18.0.4 real2.lab
198.18.0.3 real3.lab
2001:db8::1 www6.lab
2001:db8::2 real1-6.lab
2001:db8::4 real2-6.lab
HOSTS
    trap - ERR
    echo "lab: up (client 198.18.0.100 2001:db8::100, director dc=198.18.0.254 2001:db8::fe ds=198.18.1.1 2001:db8:1::1, reals 198.18.1.11-13 2001:db8:1::11-13)"
}

port_of() { if [ "$1" = dt-real3 ]; then echo 80; else echo 8080; fi; }
tls_port_of() { if [ "$1" = dt-real3 ]; then echo 443; else echo 8443; fi; }

# The lab's test CA and the certificates of its names (never used outside the lab).
make_certs() {
    local d="$LAB_DIR/tls" n
    rm -rf "$d"
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=detour lab test CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    for n in www.lab secure.lab real1.lab real2.lab real3.lab; do
        if [ "$n" = secure.lab ]; then
            openssl genrsa -out "$d/$n.key" 2048 2>/dev/null
        else
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$n.key"
        fi
        openssl req -new -key "$d/$n.key" -subj "/CN=$n" -out "$d/$n.csr"
        printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$n" >"$d/$n.ext"
        openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
            -days 30 -extfile "$d/$n.ext" -out "$d/$n.pem" 2>/dev/null
        rm -f "$d/$n.csr" "$d/$n.ext"
    done
    rm -f "$d/ca.srl"
}

# Start a real's HTTP server and wait (bounded) until it answers.
start_real() {
    local r=$1 port
    port=$(port_of "$r")
    # `--bind ::` listens on both families (http.server's dual-stack server).
    x "$r" python3 -m http.server --bind :: --directory "$LAB_DIR/$r" "$port" \
        >>"$LAB_DIR/$r.log" 2>&1 &
    echo $! >"$LAB_DIR/$r.pid"
    # The same directory over HTTPS, TLS 1.3, with the real's certificate, on both families.
    local name="real${r#dt-real}.lab" tport
    tport=$(tls_port_of "$r")
    x "$r" python3 -c '
import functools, http.server, socket, ssl, sys
d, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
class DualStack(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
s = DualStack(("::", port), h)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
' "$LAB_DIR/$r" "$tport" "$LAB_DIR/tls/$name.pem" "$LAB_DIR/tls/$name.key" >>"$LAB_DIR/$r.tls.log" 2>&1 &
    for _ in $(seq 1 50); do
        x "$r" curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/index.html" &&
            x "$r" curl -s -o /dev/null --max-time 1 --cacert "$LAB_DIR/tls/ca.pem" \
                --resolve "$name:$tport:127.0.0.1" "https://$name:$tport/index.html" && return 0
        sleep 0.1
    done
    echo "lab: $r http or https server did not come up" >&2
    return 1
}

stop_real() {
    local r=$1
    # The server is the only process in its namespace (its pid may be a launcher's).
    ip netns pids "$r" | xargs -r kill 2>/dev/null || true
    rm -f "$LAB_DIR/$r.pid"
    # Until the port is closed.
    for _ in $(seq 1 50); do
        x "$r" curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$(port_of "$r")/" || return 0
        sleep 0.1
    done
}

status() {
    for ns in "${NS[@]}"; do
        if ip netns list | grep -qw "$ns"; then echo "$ns: present"; else echo "$ns: absent"; fi
    done
}

case "${1:-}" in
    up) up ;;
    down) down; echo "lab: down" ;;
    status) status ;;
    stop-real) stop_real "dt-real${2:?which real (1-3)}" ;;
    start-real) start_real "dt-real${2:?which real (1-3)}" ;;
    *) echo "usage: $0 up|down|status|stop-real N|start-real N" >&2; exit 2 ;;
esac
