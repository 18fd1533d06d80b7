#!/usr/bin/env python3
"""detour's benchmark, run by scripts/bench.sh (as root): topology, sink, peers, searches, report.

Topology (namespaces and veths of our own, addresses in 198.18.0.0/15 only):

  dtb-gen  dtbg0 198.18.0.100 --veth-- dtbm0 198.18.0.254 [dtb-mid] dtbm1 198.18.1.1 --veth-- dtbs0 198.18.1.11 dtb-sink
  generator + wrk client, CPU0        kernel / nft DNAT / nginx / HAProxy / detour, CPU1      nft counter drop (RPS -> CPU0)

dtbm0 always carries a driver-mode XDP program (`dtb_pass` for the kernel peers, detour's own
steering program for detour) so that frames XDP-transmitted by the generator are received, and
its NAPI runs threaded, pinned to CPU1: all the middle's receive work is on CPU1. dtbg0 and
dtbs0 use RPS to CPU0. Everything is bounded in time and count and torn down on exit.
"""

import argparse
import datetime
import json
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

import bench_compare
import bench_scaling
import bench_tls
import probes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = "/tmp/detour-bench"
PERF = os.path.join(ROOT, "target/release/detour-perf")
# $DETOUR_BIN: another build of detour (e.g. a before/after comparison in one session).
DETOUR = os.environ.get("DETOUR_BIN") or os.path.join(ROOT, "target/release/detour")

NS_GEN, NS_MID, NS_SINK = "dtb-gen", "dtb-mid", "dtb-sink"
NAMESPACES = [NS_GEN, NS_MID, NS_SINK]
G0, M0, M1, S0 = "dtbg0", "dtbm0", "dtbm1", "dtbs0"
MAC = {G0: "02:64:74:62:00:01", M0: "02:64:74:62:00:02", M1: "02:64:74:62:00:03", S0: "02:64:74:62:00:04"}
GEN_IP, MID_IP0, MID_IP1, REAL_IP = "198.18.0.100", "198.18.0.254", "198.18.1.1", "198.18.1.11"
VIP, DIP = "198.18.0.1", "198.18.0.10"
SECRET = "6465746f75722d62656e63682d7365637265742d6e6f742d666f722d70726f64"
CTL = f"{WORK}/detour.sock"  # detour's control socket (ours, not the default /run/detour.sock)
LAT_SAMPLES_PER_S = 6000  # the latency sampler keeps about this many stamped frames a second

PROCS = []  # background processes we started: (Popen, name)
SERVER_PIDS = []  # the middle's server process (detour) while it runs, for CPU accounting
RT = True  # the middle's threads at SCHED_FIFO: NAPI thread 1, server 2 (--no-rt: normal)
COALESCE = None  # (napi_defer_hard_irqs, gro_flush_timeout ns) on the middle's veths (--coalesce)


def rt():
    # The server one step above dtbm0's NAPI thread (FIFO 1): with both at one FIFO priority,
    # an overloaded NAPI thread never yields and the server starves.
    return ["chrt", "-f", "2"] if RT else []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, check=True, ns=None, capture=True, timeout=60):
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip() if r.stderr else ''}")
    return r.stdout if capture else ""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- topology

def teardown():
    for p, name in PROCS:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
    PROCS.clear()
    for ns in NAMESPACES:
        # Only processes inside our own namespaces, by pid.
        out = subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout.split()
        for pid in out:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def setup(queues=1):
    """The topology; `queues` > 1: every veth with that many queues (bench_scaling.py)."""
    teardown()
    mq = ["numtxqueues", str(queues), "numrxqueues", str(queues)] if queues > 1 else []
    os.makedirs(WORK, exist_ok=True)
    for ns in NAMESPACES:
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "set", "lo", "up"], ns=ns)
    sh(["ip", "link", "add", G0, "netns", NS_GEN, "address", MAC[G0]] + mq + ["type", "veth",
        "peer", M0, "netns", NS_MID, "address", MAC[M0]] + mq)
    sh(["ip", "link", "add", M1, "netns", NS_MID, "address", MAC[M1]] + mq + ["type", "veth",
        "peer", S0, "netns", NS_SINK, "address", MAC[S0]] + mq)
    sh(["ip", "addr", "add", f"{GEN_IP}/24", "dev", G0], ns=NS_GEN)
    sh(["ip", "addr", "add", f"{MID_IP0}/24", "dev", M0], ns=NS_MID)
    sh(["ip", "addr", "add", f"{MID_IP1}/24", "dev", M1], ns=NS_MID)
    sh(["ip", "addr", "add", f"{REAL_IP}/24", "dev", S0], ns=NS_SINK)
    for ns, dev in ((NS_GEN, G0), (NS_MID, M0), (NS_MID, M1), (NS_SINK, S0)):
        sh(["ip", "link", "set", dev, "up"], ns=ns)
    # Static neighbours: no ARP anywhere.
    for ip in (MID_IP0, VIP, DIP):
        sh(["ip", "neigh", "replace", ip, "lladdr", MAC[M0], "dev", G0, "nud", "permanent"], ns=NS_GEN)
    sh(["ip", "neigh", "replace", GEN_IP, "lladdr", MAC[G0], "dev", M0, "nud", "permanent"], ns=NS_MID)
    sh(["ip", "neigh", "replace", REAL_IP, "lladdr", MAC[S0], "dev", M1, "nud", "permanent"], ns=NS_MID)
    sh(["ip", "neigh", "replace", MID_IP1, "lladdr", MAC[M1], "dev", S0, "nud", "permanent"], ns=NS_SINK)
    # Routes: generated clients (198.18.2.0/24) and spoofed sources (198.19.0.0/16) live behind the generator.
    sh(["ip", "route", "add", "198.18.2.0/24", "via", GEN_IP], ns=NS_MID)
    sh(["ip", "route", "add", "198.19.0.0/16", "via", GEN_IP], ns=NS_MID)
    sh(["ip", "route", "add", "default", "via", MID_IP1], ns=NS_SINK)
    sh(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=NS_MID)
    for k in ("all", "default", M0, M1):
        sh(["sysctl", "-qw", f"net.ipv4.conf.{k}.rp_filter=0"], ns=NS_MID)
    # Kernel-side veths send partial checksums unless tx offload is off (DESIGN.md 3).
    sh(["ethtool", "-K", G0, "tx", "off"], ns=NS_GEN)
    sh(["ethtool", "-K", S0, "tx", "off"], ns=NS_SINK)
    # RPS: the generator's and the sink's receive work on CPU0.
    for q in range(queues):
        write_sysfs(NS_GEN, f"/sys/class/net/{G0}/queues/rx-{q}/rps_cpus", "1")
        write_sysfs(NS_SINK, f"/sys/class/net/{S0}/queues/rx-{q}/rps_cpus", "1")
    # Sink: count and drop at netdev ingress (as ../shared/baselines/sink.nft).
    nft(NS_SINK, f"""table netdev dtb_sink {{
  chain in {{
    type filter hook ingress device "{S0}" priority 0; policy accept;
    counter drop
  }}
}}""")
    # Generator side: count and drop replies to generated clients and spoofed sources (wrk's
    # traffic to {GEN_IP} passes).
    nft(NS_GEN, f"""table netdev dtb_gen {{
  chain in {{
    type filter hook ingress device "{G0}" priority 0; policy accept;
    ip daddr 198.18.2.0/24 counter drop
    ip daddr 198.19.0.0/16 counter drop
  }}
}}""")
    sh([PERF, "bpf-object", f"{WORK}/gen.bpf.o"])
    attach_pass()
    write_sysfs(NS_MID, f"/sys/class/net/{M0}/threaded", "1")
    pin_napi()


def write_sysfs(ns, path, value):
    sh(["sh", "-c", f"echo {value} > {path}"], ns=ns)


def nft(ns, text):
    path = f"{WORK}/{ns}.nft"
    write(path, text + "\n")
    sh(["nft", "-f", path], ns=ns)


def nft_counters(ns, table):
    out = json.loads(sh(["nft", "-j", "list", "table", "netdev", table], ns=ns))
    return [next(x["counter"]["packets"] for x in e["rule"]["expr"] if "counter" in x)
            for e in out["nftables"] if "rule" in e]


def attach_pass():
    sh(["ip", "link", "set", "dev", M0, "xdpdrv", "obj", f"{WORK}/gen.bpf.o", "sec", "xdp",
        "program", "dtb_pass"], ns=NS_MID)


def detach_xdp():
    sh(["ip", "link", "set", "dev", M0, "xdp", "off"], ns=NS_MID, check=False)


def napi_pids():
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if open(f"/proc/{pid}/comm").read().startswith(f"napi/{M0}-"):
                    out.append(int(pid))
            except OSError:
                pass
    return out


def pin_napi():
    """Pin the NAPI threads of dtbm0 to CPU1 (they are re-created when its XDP changes)."""
    found = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
        except OSError:
            continue
        if comm.startswith(f"napi/{M0}-"):
            sh(["taskset", "-pc", "1", pid])
            if RT:
                sh(["chrt", "-f", "-p", "1", pid])
            found += 1
    coalesce()
    return found


def coalesce():
    """--coalesce: NAPI deferral on both of the middle's veths, for every middle alike (set again
    whenever the NAPIs are re-created, with pin_napi)."""
    if COALESCE:
        for dev in (M0, M1):
            write_sysfs(NS_MID, f"/sys/class/net/{dev}/napi_defer_hard_irqs", str(COALESCE[0]))
            write_sysfs(NS_MID, f"/sys/class/net/{dev}/gro_flush_timeout", str(COALESCE[1]))


def probe():
    """Loss location and CPU1 interference around a trial (perf/probes.py)."""
    return probes.Probe((NS_GEN, G0), (NS_MID, M0), (NS_MID, M1), (NS_SINK, S0), lambda: list(SERVER_PIDS),
                        napi_pids)


def mid_has_pass():
    return "dtb_pass" in sh(["ip", "link", "show", "dev", M0], ns=NS_MID)


# ---------------------------------------------------------------- measurement helpers

def cpu1_busy():
    """CPU1's busy time (s) from /proc/stat: everything but idle and iowait."""
    for line in open("/proc/stat"):
        if line.startswith("cpu1 "):
            v = [int(x) for x in line.split()[1:]]
            tick = os.sysconf("SC_CLK_TCK")
            # user + nice + system + irq + softirq (not idle, iowait, steal; guest is in user)
            return (v[0] + v[1] + v[2] + v[5] + v[6]) / tick
    return 0.0


def proc_cpu(pids):
    """utime + stime (s) of processes (all their threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            f = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        fields = f[f.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            out += [int(c) for c in open(f"/proc/{pid}/task/{tid}/children").read().split()]
    except OSError:
        pass
    return out


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def gen_cmd(kinds, rate, count, duration, dip=DIP, flows=10000, stamp=False, batch=None):
    cmd = ["taskset", "-c", "0", PERF, "gen", "--iface", G0, "--dst-mac", MAC[M0], "--kinds", kinds,
           "--rate", str(int(rate)), "--count", str(int(count)), "--duration", f"{duration:.3f}",
           "--dip", dip, "--vip", VIP, "--flows", str(flows), "--cookie-secret", SECRET]
    if stamp:
        cmd.append("--stamp")
    if batch:
        cmd += ["--batch", str(batch)]
    return cmd


def gen(kinds, rate, count, duration, dip=DIP, flows=10000, stamp=False, batch=None):
    cmd = gen_cmd(kinds, rate, count, duration, dip, flows, stamp, batch)
    return json.loads(sh(cmd, ns=NS_GEN, timeout=duration + 30))


def trial(kinds, rate, duration, counter, dip=DIP):
    """Offer `rate` frames/s of `kinds` for `duration` s; `counter()` reads the receiving count."""
    pids = napi_pids() + SERVER_PIDS
    before, busy0, mid0, w0 = counter(), cpu1_busy(), proc_cpu(pids), time.time()
    g = gen(kinds, rate, rate * duration if rate else 50_000_000, duration, dip=dip)
    time.sleep(0.3)  # drain
    after, busy1, mid1, w1 = counter(), cpu1_busy(), proc_cpu(pids), time.time()
    got = after - before
    sent = g["sent"]
    secs = g["send_secs"] or duration
    return {
        "offered_pps": rate, "sent": sent, "sent_pps": sent / secs, "received": got,
        "received_pps": got / secs, "loss": (1 - got / sent) if sent else 1.0,
        "cpu1_busy": (busy1 - busy0) / (w1 - w0),
        "cpu1_ns_per_frame": (busy1 - busy0) * 1e9 / got if got else None,
        # CPU of the middle's own threads only (dtbm0's NAPI thread + detour): immune to other
        # load on CPU1, but blind to softirq work run outside them.
        "mid_ns_per_frame": (mid1 - mid0) * 1e9 / got if got else None,
    }


def sink_count():
    return nft_counters(NS_SINK, "dtb_sink")[0]


def gen_side_count():
    return sum(nft_counters(NS_GEN, "dtb_gen"))


def search(name, kinds, counter, cfg, dip=DIP):
    """Highest offered rate with < 0.1 % loss (bisection between lo and hi), then 10x overload.
    A trial that loses a little (0.1 % to 1 %) is repeated once and the rate passes if either
    attempt does: on this VM a single stall of a few ms (the vCPU, not the router) costs a 2 s
    trial 0.1-0.3 % at any rate, which otherwise decides the search at random."""
    lo, hi = cfg["lo"], cfg["hi"]
    points = []
    best = None

    def attempt(rate):
        t = None
        for k in range(2 if cfg.get("retry", True) else 1):
            u = trial(kinds, rate, cfg["secs"], counter, dip)
            u["attempt"] = k + 1
            points.append(u)
            log(f"  {name}: offered {rate / 1e6:.3f} Mpps -> {u['received_pps'] / 1e6:.3f} Mpps, loss {u['loss'] * 100:.3f} %, "
                f"CPU1 busy {u['cpu1_busy'] * 100:.0f} %" + (" (repeated)" if k else ""))
            if t is None or u["loss"] < t["loss"]:
                t = u
            if not 0.001 <= u["loss"] < 0.01:
                break
        return t

    t = attempt(lo)
    down = 0
    while t["loss"] >= 0.001 and down < cfg.get("down", 3):
        hi, lo, down = lo, lo / 2, down + 1
        t = attempt(lo)
    if t["loss"] < 0.001:
        best = t
        for _ in range(cfg["steps"]):
            mid = (lo + hi) / 2
            t = attempt(mid)
            if t["loss"] < 0.001:
                lo, best = mid, t
            else:
                hi = mid
    base = best["sent_pps"] if best else lo
    over = trial(kinds, 0, cfg["secs"], counter, dip)  # as fast as the generator goes
    over["target_pps"] = 10 * base
    points.append(over)
    log(f"  {name}: overload (asked 10x = {10 * base / 1e6:.2f} Mpps, generator gave {over['sent_pps'] / 1e6:.2f}) "
        f"-> {over['received_pps'] / 1e6:.3f} Mpps delivered")
    if not any(t["received"] > 0 for t in points):
        # Not slowness: nothing at all came through, so the set-up is broken.
        raise RuntimeError(f"{name}: not one frame delivered in {len(points)} trials (set-up broken?)")
    return {"no_loss_pps": best["received_pps"] if best else 0.0, "no_loss": best,
            "overload": over, "points": points}


# ---------------------------------------------------------------- peers

def start(name, cmd, ns):
    log_path = f"{WORK}/{name}.log"
    f = open(log_path, "w")
    p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdout=f, stderr=subprocess.STDOUT)
    PROCS.append((p, name))
    return p, log_path


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for i, (q, _) in enumerate(PROCS):
        if q is p:
            PROCS.pop(i)
            break


def wait_http(url, timeout=10.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = subprocess.run(["ip", "netns", "exec", NS_GEN, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "--max-time", "1", url], stdout=subprocess.PIPE, text=True)
        if r.stdout.strip() == "302":
            return True
        time.sleep(0.2)
    return False


def nstat_active_opens():
    out = sh(["nstat", "-az", "TcpActiveOpens"], ns=NS_GEN)
    m = re.search(r"TcpActiveOpens\s+(\d+)", out)
    return int(m.group(1)) if m else 0


def wrk(url, secs, conns=50):
    opens0 = nstat_active_opens()
    out = sh(["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency",
              "-H", "Connection: close", url], ns=NS_GEN, timeout=secs + 30)
    opens = nstat_active_opens() - opens0
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    reqs = int(m.group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out)
        if m:
            v = float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
            lat[f"p{pct}_us"] = v
    errs = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": reqs, "rps": rps, "opens_per_request": opens / reqs if reqs else None,
            "socket_errors": errs.group(1) if errs else None,
            "non_3xx": int(non2xx.group(1)) if non2xx else 0, **lat, "raw": out}


def redirect_bench(name, url, pids_fn, secs, conns=50):
    pids = pids_fn()
    c0, b0, n0, w0 = proc_cpu(pids), cpu1_busy(), proc_cpu(napi_pids()), time.time()
    w = wrk(url, secs, conns)
    c1, b1, n1, w1 = proc_cpu(pids_fn()), cpu1_busy(), proc_cpu(napi_pids()), time.time()
    n = w["requests"]
    w["mid_cpu_s_per_100k"] = (c1 - c0 + n1 - n0) * 1e5 / n if n else None
    w["server_cpu_s"] = c1 - c0
    w["server_cpu_s_per_100k"] = (c1 - c0) * 1e5 / n if n else None
    w["cpu1_s_per_100k"] = (b1 - b0) * 1e5 / n if n else None
    w["cpu1_busy"] = (b1 - b0) / (w1 - w0)
    log(f"  {name}: {w['rps'] / 1e3:.1f}k redirects/s (c={conns}), server CPU {w['server_cpu_s_per_100k'] or 0:.2f} s/100k, "
        f"server+NAPI {w['mid_cpu_s_per_100k'] or 0:.2f} s/100k, CPU1 {w['cpu1_s_per_100k'] or 0:.2f} s/100k, p99 {w.get('p99_us', 0):.0f} us, "
        f"opens/request {w['opens_per_request'] or 0:.3f}")
    del w["raw"]
    return w


NGINX_CONF = """worker_processes 1;
worker_cpu_affinity 10;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
worker_rlimit_nofile 65536;
http {{
    access_log off;
    server_tokens off;
    tcp_nodelay on;
    keepalive_timeout 65;
    server {{
        listen {ip}:80 backlog=8192;
        server_name _;
        location / {{ return 302 http://coyote.example/; }}
    }}
}}
"""

HAPROXY_CFG = """global
    nbthread 1
    cpu-map 1/1 1
    maxconn 9000
    log stderr format raw local0 err
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe_redirect
    bind {ip}:80 backlog 8192
    http-request redirect location http://coyote.example/ code 302
"""

DETOUR_CONF = """# detour-perf bench: the middle namespace of perf/bench.py
interface client {m0} queues 1
interface server {m1} queues 1
cores 1
gateway {gen}
cookie-secret {secret}
virtual {vip}
dip {dip} real {real}:80
url r1 http://{dip}/%d
link r1 {dip}
bind {vip} r1
health-check all none
"""


def redirect_runs(name, url, pids_fn, secs, conns_list, one_secs):
    """wrk at each of `conns_list` connections, then the long one-connection trial (`one`)."""
    out = {c: redirect_bench(f"{name} c{c}", url, pids_fn, secs, c) for c in conns_list}
    if one_secs:
        SERVER_PIDS[:] = pids_fn()
        o = probes.one_conn(probe(), NS_GEN, url, one_secs)
        log(probes.fmt_one(name, o))
        out["one"] = o
    return out


def run_nginx(secs, conns_list, one_secs):
    write(f"{WORK}/nginx.conf", NGINX_CONF.format(work=WORK, ip=MID_IP0))
    p, logp = start("nginx", rt() + ["nginx", "-c", f"{WORK}/nginx.conf"], NS_MID)
    try:
        if not wait_http(f"http://{MID_IP0}/"):
            raise RuntimeError(f"nginx did not answer 302 (see {logp})")
        return redirect_runs("nginx", f"http://{MID_IP0}/", lambda: [p.pid] + all_children(p.pid), secs, conns_list,
                             one_secs)
    finally:
        SERVER_PIDS.clear()
        stop(p)


def all_children(pid):
    out, todo = [], [pid]
    while todo:
        c = children(todo.pop())
        out += c
        todo += c
    return out


def run_haproxy(secs, conns_list, one_secs):
    write(f"{WORK}/haproxy.cfg", HAPROXY_CFG.format(ip=MID_IP0))
    p, logp = start("haproxy", rt() + ["haproxy", "-db", "-f", f"{WORK}/haproxy.cfg"], NS_MID)
    try:
        if not wait_http(f"http://{MID_IP0}/"):
            raise RuntimeError(f"haproxy did not answer 302 (see {logp})")
        return redirect_runs("haproxy", f"http://{MID_IP0}/", lambda: [p.pid] + all_children(p.pid), secs, conns_list,
                             one_secs)
    finally:
        SERVER_PIDS.clear()
        stop(p)


def start_detour():
    conf = f"{WORK}/detour.conf"
    write(conf, DETOUR_CONF.format(m0=M0, m1=M1, gen=GEN_IP, secret=SECRET, vip=VIP, dip=DIP, real=REAL_IP))
    detach_xdp()
    p, logp = start("detour", rt() + ["taskset", "-c", "1", DETOUR, "run", "--config", conf, "--summary-secs", "5",
                               "--duration-secs", "900", "--ctl-socket", CTL], NS_MID)
    t0 = time.time()
    while time.time() - t0 < 20:
        if p.poll() is not None:
            raise RuntimeError(f"detour exited ({p.returncode}): {open(logp).read()[-2000:]}")
        if "worker(s)" in open(logp).read():
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"detour did not start: {open(logp).read()[-2000:]}")
    if RT:
        control_threads_normal(p.pid)
    # Detour re-attached dtbm0's XDP: its NAPI thread is new.
    time.sleep(0.3)
    pin_napi()
    if not wait_http(f"http://{VIP}/"):
        raise RuntimeError(f"detour did not answer 302 on {VIP} (see {logp})")
    SERVER_PIDS[:] = [p.pid]
    return p, logp


def control_threads_normal(pid):
    """Only detour's workers (threads `detour-w*`: the data path) stay at SCHED_FIFO; its control
    thread goes back to SCHED_OTHER (still on CPU1), and so do the processes it spawns. Left at
    FIFO 2, the control thread's `ip route get` children (two every 2 s, ~3 ms of CPU each, for
    the neighbour refresh) run above dtbm0's NAPI thread (FIFO 1), which then stalls ~5-9 ms: the
    veth ring (256) overflows and ~0.1-0.2 % of the frames are lost at any rate (the first
    report's "detour loses at any rate")."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
        except OSError:
            continue
        if not comm.startswith("detour-w"):
            sh(["chrt", "-o", "-p", "0", tid], check=False)


def stop_detour(p):
    SERVER_PIDS.clear()
    stop(p)
    attach_pass()
    pin_napi()


def detour_ctl(*words):
    return sh([DETOUR, "ctl", "--socket", CTL] + list(words), ns=NS_MID, timeout=20)


def worker_batch_times(text):
    """Per-worker batch service time (us) from `detour ctl show statistics`."""
    out = {}
    for m in re.finditer(r"^\s*(w\d+): rx (\d+) tx (\d+) batches (\d+) .*?batch service time p50 (\d+)us p90 (\d+)us "
                         r"p99 (\d+)us p99\.9 (\d+)us max (\d+)us", text, re.M):
        out[m.group(1)] = {"rx": int(m.group(2)), "tx": int(m.group(3)), "batches": int(m.group(4)),
                           "p50_us": int(m.group(5)), "p90_us": int(m.group(6)), "p99_us": int(m.group(7)),
                           "p999_us": int(m.group(8)), "max_us": int(m.group(9))}
    return out


def wait_log(p, logp, needle, what, timeout=20.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if p.poll() is not None:
            raise RuntimeError(f"{what} exited ({p.returncode}): {open(logp).read()[-2000:]}")
        if needle in open(logp).read():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s: {open(logp).read()[-2000:]}")


def last_json(text):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def start_fwd():
    """The no-op AF_XDP forwarder (detour-perf fwd: detour-xsk's I/O and steering), CPU1."""
    detach_xdp()
    p, logp = start("fwd", rt() + ["taskset", "-c", "1", PERF, "fwd", "--port0", M0, "--port1", M1,
                                   "--mac0", MAC[G0], "--mac1", MAC[S0], "--owned", DIP,
                                   "--reals", f"{REAL_IP}:80", "--duration-secs", "900"], NS_MID)
    wait_log(p, logp, "ready", "detour-perf fwd")
    # It attached dtbm0's XDP program: the NAPI thread is new.
    time.sleep(0.3)
    pin_napi()
    SERVER_PIDS[:] = [p.pid]
    return p, logp


def stop_fwd(p, logp):
    """Stop the forwarder; its own account (JSON: frames, batch service times)."""
    SERVER_PIDS.clear()
    stop(p)
    attach_pass()
    pin_napi()
    return last_json(open(logp).read())


def lat_sample(rate):
    """1 in this many stamped frames (a power of two) gives about LAT_SAMPLES_PER_S a second."""
    n = 1
    while n * 2 * LAT_SAMPLES_PER_S <= rate:
        n *= 2
    return n


def latency_trial(name, rate, secs, dip=DIP):
    """Offer stamped `flows` at `rate` for `secs` while `detour-perf lat` samples about
    LAT_SAMPLES_PER_S of them a second at the sink (AF_PACKET tap on dtbs0, on CPU0; kernel
    receive timestamps). Generator batches of 1 frame, so the generator holds no frame back."""
    lp = subprocess.Popen(["ip", "netns", "exec", NS_SINK, "taskset", "-c", "0", PERF, "lat", "--iface", S0,
                           "--sample", str(lat_sample(rate)), "--duration-secs", f"{secs + 30:.0f}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    PROCS.append((lp, "lat"))
    try:
        line = ""
        t0 = time.time()
        while "ready" not in line:
            if lp.poll() is not None or time.time() - t0 > 15:
                raise RuntimeError(f"detour-perf lat did not start: {line}{lp.stderr.read() if lp.poll() is not None else ''}")
            if select.select([lp.stderr], [], [], 0.5)[0]:
                line = lp.stderr.readline()
        pr = probe()
        p0, c0 = pr.read(), sink_count()
        g = gen("flows", rate, rate * secs, secs, dip=dip, stamp=True, batch=1)
        time.sleep(0.3)
        got, p1 = sink_count() - c0, pr.read()
        lp.send_signal(signal.SIGTERM)
        out = lp.communicate(timeout=15)[0]
    finally:
        if lp.poll() is None:
            lp.kill()
            lp.wait()
        PROCS[:] = [(q, n) for q, n in PROCS if q is not lp]
    j = last_json(out) or {}
    j.update({"offered_pps": rate, "sent": g["sent"], "received": got, "lost": max(0, g["sent"] - got),
              "loss": (1 - got / g["sent"]) if g["sent"] else 1.0})
    j.update(probes.Probe.delta(p0, p1))
    log(f"  {name} latency at {rate / 1e3:.0f} kpps: p50 {j.get('p50_ns', 0) / 1e3:.1f} us, p99 {j.get('p99_ns', 0) / 1e3:.1f} us, "
        f"p99.9 {j.get('p999_ns', 0) / 1e3:.1f} us, max {j.get('max_ns', 0) / 1e3:.0f} us ({j.get('samples', 0):,} samples); "
        f"lost {j['lost']} of {g['sent']:,} frames; {probes.fmt(j)}")
    return j


def latencies(name, cfg, dip=DIP):
    return {str(r): latency_trial(name, r, cfg["lat_secs"], dip) for r in cfg["lat_rates"]}


def saturation(search_result):
    """detour's saturation rate for the 80 % point: its highest no-loss rate, or the rate it
    delivers under overload when the no-loss rate is tiny next to it (< half)."""
    nl = search_result["no_loss_pps"]
    over = search_result["overload"]["received_pps"]
    if nl >= 0.5 * over:
        return nl, "highest no-loss rate"
    return over, "rate delivered under overload (the no-loss rate is under half of it)"


def batch_at_load(sat_pps, basis, secs):
    """Batch service time at 80 % of detour's saturation: a fresh detour (its histogram then
    holds only this trial and the start-up check), `detour ctl show statistics` after the run;
    then the no-op forwarder, also fresh, at the same offered rate (its own histogram)."""
    rate = 0.8 * sat_pps
    out = {"saturation_pps": sat_pps, "basis": basis, "offered_pps": rate}
    p, logp = start_detour()
    try:
        t = trial("flows", rate, secs, sink_count)
        # The worker reports every 500 ms; a slow machine gets up to 10 s.
        for _ in range(20):
            time.sleep(0.5)
            text = detour_ctl("show", "statistics")
            w = worker_batch_times(text)
            if w and all(v["batches"] > 0 for v in w.values()):
                break
    finally:
        stop_detour(p)
    out["detour"] = {"trial": t, "workers": worker_batch_times(text)}
    w = out["detour"]["workers"]
    log(f"  detour at {rate / 1e6:.3f} Mpps (0.8x {basis} {sat_pps / 1e6:.3f}): loss {t['loss'] * 100:.3f} %, batch "
        + ", ".join(f"{k} p50 {v['p50_us']} us p99 {v['p99_us']} us p99.9 {v['p999_us']} us ({v['batches']:,} batches)"
                    for k, v in w.items()))
    if not w:
        raise RuntimeError(f"no worker line in `detour ctl show statistics`: {text[-1500:]}")
    p, logp = start_fwd()
    try:
        t = trial("flows", rate, secs, sink_count)
    finally:
        j = stop_fwd(p, logp)
    out["fwd"] = {"trial": t, "self": j}
    if j:
        log(f"  no-op forwarder at the same rate: loss {t['loss'] * 100:.3f} %, batch p50 {j['batch_p50_ns'] / 1e3:.0f} us "
            f"p99 {j['batch_p99_ns'] / 1e3:.0f} us p99.9 {j['batch_p999_ns'] / 1e3:.0f} us ({j['batches']:,} batches)")
    return out


# ---------------------------------------------------------------- the runs

SECTIONS = ("search", "latency", "redirect", "memory", "tls", "scaling", "compare")


def forwarding_runs(cfg, results, sections):
    # Kernel routing: frames to the real's address itself.
    if "search" in sections:
        results.setdefault("fwd_kernel", []).append(search("kernel", "flows", sink_count, cfg, dip=REAL_IP))
    if "latency" in sections:
        results.setdefault("lat_kernel", []).append(latencies("kernel", cfg, dip=REAL_IP))
    nft(NS_MID, f"""table ip dtb_nat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {DIP} tcp dport 80 dnat to {REAL_IP}:80
    ip daddr {DIP} udp dport 80 dnat to {REAL_IP}:80
  }}
}}""")
    try:
        if "search" in sections:
            results.setdefault("fwd_dnat", []).append(search("kernel+nft DNAT", "flows", sink_count, cfg))
        if "latency" in sections:
            results.setdefault("lat_dnat", []).append(latencies("kernel+nft DNAT", cfg))
    finally:
        sh(["nft", "delete", "table", "ip", "dtb_nat"], ns=NS_MID, check=False)
        sh(["conntrack", "-F"], ns=NS_MID, check=False)


def fwd_run(cfg, results, sections):
    """The no-op AF_XDP forwarder: same search, same latency trials."""
    p, logp = start_fwd()
    try:
        if "search" in sections:
            results.setdefault("fwd_noop", []).append(search("no-op AF_XDP fwd", "flows", sink_count, cfg))
        if "latency" in sections:
            results.setdefault("lat_noop", []).append(latencies("no-op AF_XDP fwd", cfg))
    finally:
        j = stop_fwd(p, logp)
    if j:
        # Its own account over everything it forwarded (XDP_STATISTICS: frames its sockets lost).
        results.setdefault("noop_self", []).append(j)
        log(f"  no-op forwarder's own account: rx {j['rx']:,} tx {j['tx']:,}, socket drops {j['socket_drops']} "
            f"{j.get('xdp_statistics')}, kick errors {j.get('kick_errors')}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--out", default=os.path.join(ROOT, "perf/results"))
    ap.add_argument("--teardown", action="store_true", help="only tear down and exit")
    ap.add_argument("--no-rt", action="store_true", help="leave the middle's threads at normal priority")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help="comma-separated subset of " + ",".join(SECTIONS) + " (default: all)")
    ap.add_argument("--lat-secs", type=float, help="length of each latency trial (default 2, --quick 0.5)")
    ap.add_argument("--one-secs", type=int, help="length of the one-connection trials (default 15, --quick 2)")
    ap.add_argument("--coalesce", metavar="DEFER,NS",
                    help="the second configuration: napi_defer_hard_irqs DEFER and gro_flush_timeout NS on the "
                         "middle's veths for every middle (e.g. 2,50000); the report gets a -coalesced suffix")
    ap.add_argument("--before-bin", help="section compare: the other build of detour (perf/bench_compare.py)")
    a = ap.parse_args()
    global RT, COALESCE
    RT = not a.no_rt
    if a.coalesce:
        try:
            d, t = (int(x) for x in a.coalesce.split(","))
        except ValueError:
            ap.error("--coalesce: expected DEFER,NS, e.g. 2,50000")
        COALESCE = (d, t)
    if a.teardown:
        teardown()
        return 0
    quick = a.quick
    runs = a.runs or (1 if quick else 3)
    sections = set(a.sections.split(","))
    if not sections <= set(SECTIONS):
        ap.error(f"--sections: unknown {', '.join(sorted(sections - set(SECTIONS)))}")
    # lat_rates: offered rates (frames/s) of the latency trials, lat_secs their length.
    fwd_cfg = ({"lo": 100_000, "hi": 1_000_000, "steps": 1, "secs": 0.5, "down": 0,
                "lat_rates": [100_000], "lat_secs": 0.5} if quick else
               {"lo": 200_000, "hi": 1_600_000, "steps": 5, "secs": 2.0,
                "lat_rates": [10_000, 100_000], "lat_secs": 2.0})
    if a.lat_secs:
        fwd_cfg["lat_secs"] = a.lat_secs
    # The one-connection trials: long enough for tens of thousands of redirects.
    one_secs = a.one_secs or (2 if quick else 15)
    batch_secs = 0.5 if quick else 3.0
    req_cfg = ({"lo": 50_000, "hi": 400_000, "steps": 1, "secs": 0.5, "down": 0} if quick else
               {"lo": 50_000, "hi": 1_200_000, "steps": 5, "secs": 2.0})
    wrk_secs = 1 if quick else 5
    flood_syns = 200_000 if quick else 10_000_000
    flood_rate = 400_000 if quick else 1_000_000
    # The flood's time limit follows its count at the rate the generator achieves, within this.
    flood_cap_secs = 20 if quick else 180
    started = time.time()
    results = {}
    load0 = open("/proc/loadavg").read().split()[:3]
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(), "kernel": os.uname().release, "cpus": os.cpu_count(),
        "quick": quick, "runs": runs, "fwd_search": fwd_cfg, "req_search": req_cfg, "wrk_secs": wrk_secs,
        "one_secs": one_secs, "sections": sorted(sections),
        "lat_samples_per_s": LAT_SAMPLES_PER_S, "batch_secs": batch_secs, "flood_cap_secs": flood_cap_secs,
        "git": sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).strip(),
        "command": "scripts/bench.sh " + " ".join(sys.argv[1:]),
        "rt": RT, "coalesce": COALESCE, "detour_bin": DETOUR,
    }
    for k, cmd in (("nginx", ["nginx", "-v"]), ("haproxy", ["haproxy", "-v"]), ("wrk", ["wrk", "-v"])):
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        meta[k] = r.stdout.strip().splitlines()[0] if r.stdout else "?"
    try:
        log("setting up the namespaces (dtb-gen, dtb-mid, dtb-sink)")
        setup()
        conns = [50]
        for run in range(runs):
            if sections & {"search", "latency"}:
                log(f"run {run + 1}/{runs}: L4 forwarding, kernel peers")
                forwarding_runs(fwd_cfg, results, sections)
                log(f"run {run + 1}/{runs}: L4 forwarding, no-op AF_XDP forwarder (detour-xsk)")
                fwd_run(fwd_cfg, results, sections)
            if "redirect" in sections:
                log(f"run {run + 1}/{runs}: redirects, nginx and HAProxy (wrk {wrk_secs}s; one at a time {one_secs}s)")
                results.setdefault("redir_nginx", []).append(run_nginx(wrk_secs, conns, one_secs))
                results.setdefault("redir_haproxy", []).append(run_haproxy(wrk_secs, conns, one_secs))
            log(f"run {run + 1}/{runs}: detour")
            p, logp = start_detour()
            try:
                if "search" in sections:
                    results.setdefault("fwd_detour", []).append(search("detour", "flows", sink_count, fwd_cfg))
                    results.setdefault("openloop_detour", []).append(
                        search("detour open-loop requests", "requests", gen_side_count, req_cfg))
                if "redirect" in sections:
                    results.setdefault("redir_detour", []).append(
                        redirect_runs("detour", f"http://{VIP}/", lambda: [p.pid], wrk_secs, conns, one_secs))
                if "latency" in sections:
                    results.setdefault("lat_detour", []).append(latencies("detour", fwd_cfg))
            finally:
                stop_detour(p)
            if "tls" in sections:  # perf/bench_tls.py
                log(f"run {run + 1}/{runs}: HTTPS redirects (TLS 1.3), nginx and detour; DIP latency under handshakes")
                bench_tls.run_once(sys.modules[__name__], bench_tls.cfg_for(quick, a.lat_secs), results)
            if "compare" in sections:  # perf/bench_compare.py
                bench_compare.run_once(sys.modules[__name__], a.before_bin, run, fwd_cfg, wrk_secs, one_secs, results)
            if "search" in sections:
                sat, basis = saturation(results["fwd_detour"][-1])
                log(f"run {run + 1}/{runs}: batch service time at 0.8x detour's saturation ({basis})")
                results.setdefault("batch_detour", []).append(batch_at_load(sat, basis, batch_secs))
        if "memory" in sections:
            log(f"memory: detour RSS through a {flood_syns:,}-SYN flood at {flood_rate / 1e6:.1f} Mpps with wrk running")
            results["memory"] = memory_run(flood_syns, flood_rate, quick, flood_cap_secs)
        if "scaling" in sections:
            for run in range(runs):
                log(f"run {run + 1}/{runs}: scaling, detour with one and two workers (two-queue veths)")
                results.setdefault("scaling", []).append(bench_scaling.run(fwd_cfg, req_cfg))
    finally:
        log("tearing down")
        teardown()
    meta["elapsed_s"] = round(time.time() - started, 1)
    meta["loadavg_before"] = " ".join(load0)
    meta["loadavg_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
    report(meta, results, a.out)
    return 0


def wrk_while(secs_cap, during):
    """Run wrk (-c50, new connection per request) against the VIP while `during()` runs, then
    stop it with SIGINT (it prints its figures over the time it ran). Returns (rps, during's
    result)."""
    wp = subprocess.Popen(["ip", "netns", "exec", NS_GEN, "taskset", "-c", "0", "wrk", "-t1", "-c50",
                           f"-d{int(secs_cap) + 5}s", "-H", "Connection: close", f"http://{VIP}/"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    PROCS.append((wp, "wrk"))
    try:
        time.sleep(0.3)  # its connections open
        r = during()
        wp.send_signal(signal.SIGINT)
        out = wp.communicate(timeout=30)[0]
    finally:
        if wp.poll() is None:
            wp.kill()
            wp.wait()
        PROCS[:] = [(q, n) for q, n in PROCS if q is not wp]
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk printed no rate: {out[-1000:]}")
    return float(m.group(1)), r


def flood(syns, rate, cap_secs, sample):
    """Send `syns` spoofed SYNs at `rate` offered. The first second measures the rate the
    generator achieves (it shares CPU0 with wrk); every further part is given count / that
    rate + 25 % + 1 s, all within `cap_secs`. `sample()` runs every 0.2 s."""
    t0 = time.time()
    sent, send_secs, parts, achieved = 0, 0.0, 0, None
    while sent < syns:
        left = cap_secs - (time.time() - t0)
        if left < 1:
            break
        remaining = syns - sent
        secs = 1.0 if achieved is None else remaining / achieved * 1.25 + 1
        secs = min(secs, left)
        gp = subprocess.Popen(["ip", "netns", "exec", NS_GEN] + gen_cmd("synflood", rate, remaining, secs, flows=65536),
                              stdout=subprocess.PIPE, text=True)
        PROCS.append((gp, "gen"))
        try:
            while gp.poll() is None:
                sample()
                time.sleep(0.2)
            g = json.loads(gp.stdout.read())
        finally:
            if gp.poll() is None:
                gp.kill()
                gp.wait()
            PROCS[:] = [(q, n) for q, n in PROCS if q is not gp]
        parts += 1
        sent += g["sent"]
        send_secs += g["send_secs"]
        if g["sent"] and g["send_secs"]:
            achieved = g["sent"] / g["send_secs"]
        elif achieved is None:
            achieved = rate / 10  # sent nothing in its second: assume a slow machine
    return {"syns_sent": sent, "send_secs": send_secs, "syn_rate_pps": sent / send_secs if send_secs else 0.0,
            "parts": parts, "capped": sent < syns, "wall_secs": time.time() - t0}


def memory_run(syns, rate, quick, cap_secs):
    """detour's RSS before, during (every 0.2 s) and after a `syns`-SYN flood, and the
    legitimate redirects/s (wrk against the VIP) before, with the generator spinning but
    sending nothing (it takes its share of CPU0 from wrk, as during the flood), and during
    the flood."""
    p, logp = start_detour()
    phase = 1 if quick else 5
    try:
        time.sleep(1)
        before = rss_kib(p.pid)
        rps_before, _ = wrk_while(phase, lambda: time.sleep(phase))
        # Control: the generator busy on CPU0 (1 SYN/s): what the client loses to it alone.
        rps_control, _ = wrk_while(phase, lambda: gen("synflood", 1, phase + 1, phase, flows=65536))
        samples = []
        c0 = gen_side_count()
        rps_during, f = wrk_while(cap_secs, lambda: flood(syns, rate, cap_secs, lambda: samples.append(rss_kib(p.pid))))
        time.sleep(0.5)
        synacks = gen_side_count() - c0
        after = rss_kib(p.pid)
        # detour's own account: SYN-ACKs sent, SYNs deferred past a full batch's budget.
        st = detour_ctl("show", "statistics")
        sent_synacks = sum(int(x) for x in re.findall(r"syn-acks (\d+)", st)[:1])
        syn_deferred = sum(int(x) for x in re.findall(r"syn_deferred (\d+)", st)[:1])
        r = {**f, "syns_target": syns, "syn_rate_offered": rate, "synacks_seen": synacks,
             "rss_before_kib": before, "rss_during_max_kib": max(samples) if samples else before,
             "rss_after_kib": after, "rss_samples": len(samples),
             "redirects_rps_before": rps_before, "redirects_rps_control": rps_control,
             "redirects_rps_during": rps_during, "detour_syn_acks": sent_synacks, "syn_deferred": syn_deferred,
             "syn_budget": os.environ.get("DETOUR_SYN_BUDGET", "default"),
             "during_over_before": ratio(rps_during, rps_before), "during_over_control": ratio(rps_during, rps_control)}
        log(f"  RSS before {before} KiB, max during {r['rss_during_max_kib']} KiB, after {after} KiB; "
            f"{f['syns_sent']:,} SYNs in {f['send_secs']:.1f} s ({f['parts']} part(s){', CAPPED' if f['capped'] else ''}), "
            f"{synacks:,} SYN-ACKs ({sent_synacks:,} sent, {syn_deferred:,} SYNs deferred); wrk {rps_before / 1e3:.1f}k/s before, {rps_control / 1e3:.1f}k/s with the generator idle-spinning, "
            f"{rps_during / 1e3:.1f}k/s during (x{r['during_over_before']:.2f} of before)")
        return r
    finally:
        stop_detour(p)


# ---------------------------------------------------------------- report

def ratio(a, b):
    return a / b if a and b else float("nan")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return ""
    return f"{min(xs):.3g} – {max(xs):.3g}"


def report(meta, results, outdir):
    os.makedirs(outdir, exist_ok=True)
    stem = (f"{datetime.date.today().isoformat()}-{meta['host']}" + ("-quick" if meta["quick"] else "")
            + ("-coalesced" if meta.get("coalesce") else ""))
    summary = {}
    heads = []  # (figure, target, measured, met)

    def fig(key, getter):
        vals = [getter(r) for r in results.get(key, [])]
        summary[key + ":" + getter.__name__] = {"median": med(vals), "values": vals}
        return med(vals), spread(vals), vals

    def no_loss(r): return r["no_loss_pps"] / 1e6
    def overload(r): return r["overload"]["received_pps"] / 1e6
    def overload_offered(r): return r["overload"]["sent_pps"] / 1e6
    def ns_frame(r): return r["no_loss"]["cpu1_ns_per_frame"] if r["no_loss"] else None
    def mid_ns(r): return r["overload"]["mid_ns_per_frame"]

    def per_run(key_a, key_b, getter):
        """Ratios a/b of the same run (same machine state), for the spread of a ratio."""
        return [ratio(getter(a), getter(b)) for a, b in zip(results.get(key_a, []), results.get(key_b, []))]

    def fmt_ratios(xs):
        return ", ".join(f"{x:.2f}" for x in xs)

    def met(ok):
        return "yes" if ok else "**no**"

    lines = [f"# detour benchmark, {meta['date']} on {meta['host']}", "",
             f"Command: `{meta['command']}` (git {meta['git']}; kernel {meta['kernel']}, {meta['cpus']} CPUs; "
             f"{meta['runs']} run(s); took {meta['elapsed_s']} s). "
             "Median of the runs, with min – max. Topology and method: `perf/README.md`.", "",
             f"Load average before / after: {meta['loadavg_before']} / {meta['loadavg_after']} (the 2 CPUs are shared: "
             "other work on CPU1 lowers every rate here; the per-frame CPU columns of the middle's own threads do not "
             "depend on it). " + ("The middle's threads ran at SCHED_FIFO (dtbm0's NAPI thread 1; the server's data path 2: nginx, "
             "HAProxy, the no-op forwarder, detour's worker; detour's control thread at normal priority, on CPU1 too), so that "
             "other load on CPU1 does not decide the figures." if meta["rt"] else "The middle's threads ran at normal priority."), ""]
    if meta.get("coalesce"):
        d, t = meta["coalesce"]
        lines += [f"**Coalesced configuration**: every middle ran with NAPI deferral on dtbm0 and dtbm1 "
                  f"(`napi_defer_hard_irqs` {d}, `gro_flush_timeout` {t} ns): fewer wake-ups per frame for up to "
                  f"{t / 1e3:.0f} us more latency. Compare with the default report of the same day.", ""]
    if meta["quick"]:
        lines += ["**--quick: a smoke test of the harness. Trials are 0.5-1 s; the figures are not "
                  "measurements to quote.**", ""]
    body = []

    # ---- forwarding
    body += ["## L4 forwarding (60-byte TCP frames, 10,000 flows, the middle on CPU1)", "",
             "| router | no-loss Mpps (< 0.1 %) | spread | CPU1 ns/frame at that rate | overload: offered Mpps | delivered Mpps | middle threads ns/frame (overload) |",
             "|---|---|---|---|---|---|---|"]
    fwd = {}
    for key, name in (("fwd_kernel", "kernel routing"), ("fwd_dnat", "kernel + nftables DNAT"),
                      ("fwd_noop", "no-op AF_XDP forwarder (detour-xsk I/O, MACs only)"),
                      ("fwd_detour", "detour (AF_XDP, 1 worker)")):
        if key not in results:
            continue
        m, s, _ = fig(key, no_loss)
        fwd[key] = m
        n, _, _ = fig(key, ns_frame)
        o, os_, _ = fig(key, overload)
        oo, _, _ = fig(key, overload_offered)
        mn, _, _ = fig(key, mid_ns)
        body.append(f"| {name} | {m:.3f} | {s} | {f'{n:.0f}' if n else '–'} | {oo:.2f} | {o:.3f} ({os_}) | "
                    f"{f'{mn:.0f}' if mn else '–'} |")
    body.append("")
    if fwd.get("fwd_detour") is not None:
        ov = {k: med([r["overload"]["received_pps"] for r in results[k]]) for k in fwd}
        mn = {k: med([r["overload"]["mid_ns_per_frame"] for r in results[k]]) for k in fwd}
        for key, name in (("fwd_noop", "the no-op AF_XDP forwarder"), ("fwd_dnat", "nftables DNAT"),
                          ("fwd_kernel", "kernel routing")):
            if key in ov:
                body.append(f"- under overload, detour delivers **{ratio(ov['fwd_detour'], ov[key]):.2f}x** {name}'s rate "
                            f"(per run: {fmt_ratios(per_run('fwd_detour', key, overload))}); "
                            f"the middle's threads spend {ratio(mn['fwd_detour'], mn[key]):.2f}x its CPU per frame")
        for key, name in (("fwd_noop", "no-op AF_XDP forwarder"), ("fwd_dnat", "nftables DNAT"), ("fwd_kernel", "kernel routing")):
            if fwd.get(key):
                body.append(f"- detour / {name}: **{ratio(fwd['fwd_detour'], fwd[key]):.2f}x** (no-loss rate; per run: "
                            f"{fmt_ratios(per_run('fwd_detour', key, no_loss))})")
        body.append("")
        if fwd.get("fwd_dnat"):
            r = ratio(fwd["fwd_detour"], fwd["fwd_dnat"])
            heads.append(("DIP forwarding, no-loss rate / nftables DNAT", ">= 1.0x", f"{r:.2f}x", met(r >= 1.0)))
        if fwd.get("fwd_noop"):
            r = ratio(fwd["fwd_detour"], fwd["fwd_noop"])
            heads.append(("DIP forwarding, no-loss rate / no-op AF_XDP forwarder", ">= 0.9x", f"{r:.2f}x", met(r >= 0.9)))
        if "fwd_noop" in ov:
            r = ratio(ov["fwd_detour"], ov["fwd_noop"])
            heads.append(("DIP forwarding under overload / no-op AF_XDP forwarder", "(report)", f"{r:.2f}x", ""))
        if "fwd_dnat" in ov:
            r = ratio(ov["fwd_detour"], ov["fwd_dnat"])
            heads.append(("DIP forwarding under overload / nftables DNAT", "(report)", f"{r:.2f}x", ""))

    # ---- latency
    lat_keys = (("lat_kernel", "kernel routing"), ("lat_dnat", "kernel + nftables DNAT"),
                ("lat_noop", "no-op AF_XDP forwarder"), ("lat_detour", "detour"))
    lat_med = {}
    lat_lost = []
    if any(k in results for k, _ in lat_keys):
        body += ["## Forwarding latency (from payload timestamps)", "",
                 "The generator's XDP program writes its send time (CLOCK_MONOTONIC ns) into every `flows` frame "
                 "(generator batches of 1 frame); at the sink an AF_PACKET tap samples about "
                 f"{meta.get('lat_samples_per_s', LAT_SAMPLES_PER_S):,} of them a second (1 in N at random) and takes the kernel's receive timestamp, set when the router's transmit queues the frame "
                 "to the sink's veth. So this is the router's latency (veth hop, NAPI wake-up, processing, transmit), "
                 "not the sink's. Median over runs of each percentile. Lost frames: every trial of every run "
                 "(frames sent minus frames counted at the sink), where they were lost (at the veth ring into the "
                 "middle: dtbg0's tx_dropped), and what else had CPU1 meanwhile (other tasks' CPU time, hypervisor "
                 "steal; `perf/probes.py`).", "",
                 "| router | offered kpps | p50 us | p90 us | p99 us | p99.9 us | max us | samples (1 in N) | lost frames per run | of which at the veth ring | CPU1: other tasks ms / steal ms per run |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        for key, name in lat_keys:
            runs_ = results.get(key, [])
            if not runs_:
                continue
            for rate in sorted({int(r) for run in runs_ for r in run}, key=int):
                trials = [run.get(str(rate)) or run.get(rate) for run in runs_]
                trials = [t for t in trials if t and t.get("samples")]
                if not trials:
                    continue
                q = {p: med([t[f"{p}_ns"] for t in trials]) / 1e3 for p in ("p50", "p90", "p99", "p999", "max")}
                lat_med[(key, rate)] = q
                summary[f"{key}:{rate}"] = {"median_us": q, "p99_us_values": [t["p99_ns"] / 1e3 for t in trials]}
                body.append(f"| {name} | {rate / 1e3:.0f} | {q['p50']:.1f} | {q['p90']:.1f} | {q['p99']:.1f} | {q['p999']:.1f} | "
                            f"{q['max']:.0f} | {sum(t['samples'] for t in trials):,} (1 in {trials[0].get('sample_one_in', '?')}) | "
                            + ", ".join(f"{t.get('lost', 0)} ({t['loss'] * 100:.3f} %)" for t in trials) + " | "
                            + ", ".join(str(t.get("veth_ring_drops", "?")) for t in trials) + " | "
                            + ", ".join(f"{t.get('cpu1_others_ms', 0):.0f} / {t.get('cpu1_steal_ms', 0):.0f}" for t in trials)
                            + " |")
                lat_lost.append(sum(t.get("lost", 0) for t in trials))
        body.append("")
        rates = sorted({r for _, r in lat_med})
        for rate in rates:
            d = lat_med.get(("lat_detour", rate))
            if not d:
                continue
            parts = []
            for key, name in (("lat_noop", "the no-op forwarder"), ("lat_kernel", "kernel routing"), ("lat_dnat", "nftables DNAT")):
                o = lat_med.get((key, rate))
                if o:
                    parts.append(f"{ratio(d['p50'], o['p50']):.2f}x / {ratio(d['p99'], o['p99']):.2f}x {name}'s")
            if parts:
                body.append(f"- at {rate / 1e3:.0f} kpps, detour's p50 / p99 latency: " + "; ".join(parts))
        body.append("")
        if lat_med:
            top = max(rates)
            d, o = lat_med.get(("lat_detour", top)), lat_med.get(("lat_noop", top))
            if d and o:
                heads.append((f"forwarding latency p99 at {top / 1e3:.0f} kpps (detour / no-op forwarder)", "(report)",
                              f"{d['p99']:.0f} us / {o['p99']:.0f} us", ""))
            heads.append(("frames lost in all latency trials (every router, every run)", "0", f"{sum(lat_lost)}",
                          met(sum(lat_lost) == 0)))

    # ---- batch service time
    bd = results.get("batch_detour", [])
    if bd:
        body += ["## Batch service time at 80 % of detour's saturation", "",
                 "A fresh detour (so its histogram holds only this trial) forwards `flows` at 0.8x its saturation rate "
                 "of the same run (its highest no-loss rate, or the rate it delivers under overload when the no-loss rate is "
                 f"under half of that) for {meta.get('batch_secs', '?')} s; then `detour ctl show statistics` gives each "
                 "worker's batch service time (one `run_batch`: receive, process, transmit kicks, completions, refill). The "
                 "no-op forwarder, also fresh, at the same offered rate, for reference (measured the same way).", "",
                 "| run | saturation (basis) | offered Mpps | loss | detour batches | p50 us | p90 us | p99 us | p99.9 us | max us | no-op fwd p50 / p99 us |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        p99s = []
        for i, b in enumerate(bd):
            fj = (b.get("fwd") or {}).get("self") or {}
            for w, v in sorted(b["detour"]["workers"].items()):
                p99s.append(v["p99_us"])
                body.append(f"| {i + 1} ({w}) | {b['saturation_pps'] / 1e6:.3f} Mpps ({'no-loss' if b['basis'].startswith('highest') else 'overload'}) | "
                            f"{b['offered_pps'] / 1e6:.3f} | {b['detour']['trial']['loss'] * 100:.3f} % | {v['batches']:,} | {v['p50_us']} | "
                            f"{v['p90_us']} | {v['p99_us']} | {v['p999_us']} | {v['max_us']} | "
                            + (f"{fj['batch_p50_ns'] / 1e3:.0f} / {fj['batch_p99_ns'] / 1e3:.0f}" if fj else "–") + " |")
        body.append("")
        m = med(p99s)
        summary["batch_detour:p99_us"] = {"median": m, "values": p99s}
        if m is not None:
            body += [f"- detour's batch p99 at 80 % of saturation: **{m:.0f} us** (median over runs; target < 50 us)", ""]
            heads.append(("batch service time p99 at 80 % of saturation", "< 50 us", f"{m:.0f} us", met(m < 50)))

    # ---- redirects
    body += ["## Redirects (wrk -t1 -c50, `Connection: close`, a new connection per request; client on CPU0)", "",
             "| server | redirects/s | spread | server process CPU s / 100k | server + NAPI thread s / 100k | CPU1 busy s / 100k | CPU1 busy | p50 us | p99 us | conns/request |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    red = {}
    for key, name in (("redir_nginx", "nginx `return 302`, 1 worker"), ("redir_haproxy", "HAProxy `http-request redirect`, 1 thread"),
                      ("redir_detour", "detour")):
        rs = [r[50] if 50 in r else r.get("50") for r in results.get(key, [])]
        rs = [r for r in rs if r]
        if not rs:
            continue
        rps = [r["rps"] for r in rs]
        red[key] = {"rps": med(rps), "cpu": med([r["server_cpu_s_per_100k"] for r in rs]),
                    "cpu1": med([r["cpu1_s_per_100k"] for r in rs]), "mid": med([r["mid_cpu_s_per_100k"] for r in rs])}
        body.append(f"| {name} | {med(rps):,.0f} | {spread(rps)} | {red[key]['cpu']:.2f} | {red[key]['mid']:.2f} | {red[key]['cpu1']:.2f} | "
                    f"{med([r['cpu1_busy'] for r in rs]) * 100:.0f} % | {med([r.get('p50_us') for r in rs]) or 0:.0f} | "
                    f"{med([r.get('p99_us') for r in rs]) or 0:.0f} | {med([r['opens_per_request'] for r in rs]) or 0:.3f} |")
    body.append("")
    if "redir_detour" in red:
        for key, name in (("redir_nginx", "nginx"), ("redir_haproxy", "HAProxy")):
            if key in red:
                d, p = red["redir_detour"], red[key]
                body.append(f"- detour / {name}: redirects/s **{ratio(d['rps'], p['rps']):.2f}x**; {name} spends "
                            f"**{ratio(p['mid'], d['mid']):.2f}x** detour's CPU per redirect in server + NAPI thread, "
                            f"{ratio(p['cpu'], d['cpu']):.2f}x in the server process alone, {ratio(p['cpu1'], d['cpu1']):.2f}x of CPU1's busy time")
        body.append("")
        if "redir_nginx" in red:
            heads.append(("redirects/s, wrk -c50 (client-bound) / nginx", "(report)",
                          f"{ratio(red['redir_detour']['rps'], red['redir_nginx']['rps']):.2f}x", ""))
            r = ratio(red["redir_nginx"]["mid"], red["redir_detour"]["mid"])
            heads.append(("CPU per redirect (server + NAPI thread), nginx / detour", ">= 8x", f"{r:.2f}x", met(r >= 8)))
    one = {}
    for key, name in (("redir_nginx", "nginx"), ("redir_haproxy", "HAProxy"), ("redir_detour", "detour")):
        rs = [r.get("one") for r in results.get(key, [])]
        rs = [r for r in rs if r]
        if rs:
            one[name] = rs
    if one:
        body += [f"One connection at a time ({meta.get('one_secs', '?')} s per run: wrk -t1 -c1, `Connection: close`, so one "
                 "TCP connection per redirect; percentiles from wrk's own histogram; client retransmissions from the "
                 "client namespace's `nstat` (TcpRetransSegs; SYN: TcpExtTCPSynRetrans): a retransmission is a frame "
                 "lost somewhere; CPU1 as in the latency table). Median over runs, then each run:", "",
                 "| server | redirects per run | redirects/s | p50 us | p99 us | p99.9 us | max ms | client retransmissions per run | frames dropped: veth ring into the middle / way back to the client | CPU1: other tasks ms / steal ms |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for name, rs in one.items():
            cells = [", ".join(f"{r['requests']:,}" for r in rs), f"{med([r['rps'] for r in rs]):,.0f}"]
            cells += [f"{med([r[k] for r in rs]):.0f}" for k in ("p50_us", "p99_us", "p999_us")]
            cells += [", ".join(f"{r['max_us'] / 1e3:.1f}" for r in rs),
                      ", ".join(f"{r['retransmissions']} (SYN {r['client']['TcpExtTCPSynRetrans']})" for r in rs),
                      ", ".join(f"{r['veth_ring_drops']} / {r.get('client_side_drops', '?')}" for r in rs),
                      ", ".join(f"{r['cpu1_others_ms']:.0f} / {r['cpu1_steal_ms']:.0f}" for r in rs)]
            body.append(f"| {name} | " + " | ".join(cells) + " |")
        body.append("")
        p99 = {n: med([r["p99_us"] for r in rs]) for n, rs in one.items()}
        if "detour" in one and p99.get("nginx"):
            r = ratio(p99["detour"], p99["nginx"])
            heads.append(("client p99 at one connection at a time, detour / nginx", "< 0.5x", f"{r:.2f}x", met(r < 0.5)))
        if "detour" in one:
            d = one["detour"]
            worst = max(r["max_us"] for r in d)
            retr = sum(r["retransmissions"] for r in d)
            heads.append(("detour, one connection at a time: redirects over 10 ms (max) / client retransmissions",
                          "none / 0", f"max {worst / 1e3:.1f} ms / {retr}", met(worst < 10_000 and retr == 0)))

    if "openloop_detour" in results:
        m, s, _ = fig("openloop_detour", no_loss)
        o, os_, _ = fig("openloop_detour", overload)
        oo, _, _ = fig("openloop_detour", overload_offered)
        body += ["## Open-loop redirects (generator: ACK + HTTP request with a valid SYN cookie; one 302+FIN segment back)", "",
                 f"- highest rate with < 0.1 % loss: **{m * 1e3:,.0f}k redirects/s** ({s} Mpps)",
                 f"- overload: offered {oo:.2f} Mpps, answered {o * 1e3:,.0f}k/s ({os_} Mpps)", ""]
        heads.append(("open-loop redirects/s, one core, cookie-valid requests without handshakes (no-loss / overload)", ">= 130k",
                      f"{m * 1e3:,.0f}k / {o * 1e3:,.0f}k", met(m * 1e6 >= 130e3)))

    mem = results.get("memory")
    if mem:
        grow = mem["rss_during_max_kib"] - mem["rss_before_kib"]
        grow_after = mem["rss_after_kib"] - mem["rss_before_kib"]
        body += [f"## Memory through a SYN flood ({mem['syns_sent']:,} of {mem['syns_target']:,} spoofed SYNs, "
                 f"{mem['syn_rate_pps'] / 1e6:.2f} Mpps achieved of {mem['syn_rate_offered'] / 1e6:.1f} offered, "
                 f"{mem['send_secs']:.1f} s, wrk running)", "",
                 "The flood's time limit follows its count: its first second measures the rate the generator achieves "
                 "(it shares CPU0 with wrk), the rest gets count / that rate + 25 % + 1 s, within "
                 f"{meta.get('flood_cap_secs', '?')} s in all" + (" (**the cap was reached**)" if mem.get("capped") else "") + ".", "",
                 "| detour VmRSS before | max during | after | samples | SYN-ACKs seen |",
                 "|---|---|---|---|---|",
                 f"| {mem['rss_before_kib']:,} KiB | {mem['rss_during_max_kib']:,} KiB ({grow:+,}) | {mem['rss_after_kib']:,} KiB ({grow_after:+,}) | "
                 f"{mem['rss_samples']} | {mem['synacks_seen']:,} |", "",
                 "Legitimate redirects (wrk -t1 -c50 against the VIP, client on CPU0 with the generator):", "",
                 "| before | with the generator spinning, sending 1 SYN/s | during the flood | during / before | during / spinning |",
                 "|---|---|---|---|---|",
                 f"| {mem['redirects_rps_before']:,.0f}/s | {mem['redirects_rps_control']:,.0f}/s | {mem['redirects_rps_during']:,.0f}/s | "
                 f"**{mem['during_over_before']:.2f}** | {mem['during_over_control']:.2f} |", "",
                 "The generator and wrk share CPU0 (the machine has two CPUs and the middle has the other): the generator "
                 "spins in its syscall whatever its rate, so the client loses CPU time to it even when it sends nothing; "
                 "the middle column measures that loss alone, so during / spinning is closer to what the flood costs "
                 "detour's legitimate clients.", ""]
        heads.append(("VmRSS through the SYN flood (max during - before)", "<= 1 MiB", f"{grow:+,} KiB", met(abs(grow) <= 1024)))
        heads.append(("legitimate redirects/s during the flood / before", ">= 0.9",
                      f"{mem['during_over_before']:.2f} ({mem['during_over_control']:.2f} of the spinning control)",
                      met(mem["during_over_before"] >= 0.9)))

    body += bench_tls.report(results, summary, heads)  # perf/bench_tls.py
    body += bench_scaling.report(results, heads)  # perf/bench_scaling.py
    body += bench_compare.report(results, summary, heads)  # perf/bench_compare.py
    svg = plot(results, stem)
    if svg:
        write(os.path.join(outdir, stem + ".svg"), svg)
        body += [f"![delivered vs offered, latency percentiles]({stem}.svg)", ""]
    body += ["Versions: " + "; ".join(meta[k] for k in ("nginx", "haproxy", "wrk")), ""]

    if heads:
        lines += ["## Headlines (targets of issue 6)", "", "| figure | target | measured | met |", "|---|---|---|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in heads]
        lines.append("")
    summary["headlines"] = [{"figure": a, "target": b, "measured": c, "met": d} for a, b, c, d in heads]
    lines += body
    write(os.path.join(outdir, stem + ".md"), "\n".join(lines))
    write(os.path.join(outdir, stem + ".json"), json.dumps({"meta": meta, "summary": summary, "results": results},
                                                           indent=1, default=str))
    log(f"report: {os.path.join(outdir, stem + '.md')} (+ .json" + (", .svg)" if svg else ")"))
    print("\n".join(lines))


def plot(results, stem):
    """SVG, two panels: delivered vs offered (Mpps), every forwarding trial of every run
    (overload at the generator's max); and the latency percentiles of each router at the
    highest latency-trial rate (median over runs, log scale)."""
    series = [("fwd_kernel", "kernel", "#1f77b4"), ("fwd_dnat", "nft DNAT", "#ff7f0e"),
              ("fwd_noop", "no-op AF_XDP fwd", "#9467bd"), ("fwd_detour", "detour", "#2ca02c")]
    pts = {k: [(t["sent_pps"] / 1e6, t["received_pps"] / 1e6) for r in results.get(k, []) for t in r["points"]]
           for k, _, _ in series}
    allp = [p for v in pts.values() for p in v]
    if not allp:
        return None
    PW, H, L, B = 560, 400, 60, 50
    W = 2 * PW
    xmax = max(x for x, _ in allp) * 1.05 or 1
    ymax = max(max(y for _, y in allp) * 1.1, 0.1)
    sx = lambda x: L + x / xmax * (PW - L - 20)
    sy = lambda y: H - B - y / ymax * (H - B - 20)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<line x1="{L}" y1="{H - B}" x2="{PW - 20}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="{H - B}" x2="{L}" y2="20" stroke="black"/>',
         f'<text x="{PW / 2}" y="{H - 10}" text-anchor="middle">offered (sent) Mpps</text>',
         f'<text x="15" y="{H / 2}" transform="rotate(-90 15 {H / 2})" text-anchor="middle">delivered Mpps</text>',
         f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(min(xmax, ymax))}" y2="{sy(min(xmax, ymax))}" stroke="#ccc" stroke-dasharray="4"/>']
    for i in range(6):
        x, y = xmax * i / 5, ymax * i / 5
        o.append(f'<text x="{sx(x)}" y="{H - B + 15}" text-anchor="middle">{x:.2f}</text>')
        o.append(f'<text x="{L - 5}" y="{sy(y) + 4}" text-anchor="end">{y:.2f}</text>')
    for j, (k, name, color) in enumerate(series):
        ps = sorted(pts[k])
        if not ps:
            continue
        o.append('<polyline fill="none" stroke="{}" points="{}"/>'.format(color, " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ps)))
        for x, y in ps:
            o.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        o.append(f'<text x="{L + 10}" y="{30 + 15 * j}" fill="{color}">{name}</text>')

    # Right panel: latency percentiles.
    lat = {"fwd_kernel": "lat_kernel", "fwd_dnat": "lat_dnat", "fwd_noop": "lat_noop", "fwd_detour": "lat_detour"}
    rates = {int(r) for k in lat.values() for run in results.get(k, []) for r in run}
    pcts = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9")]
    curves = {}
    if rates:
        rate = max(rates)
        for k, lk in lat.items():
            trials = [run.get(str(rate)) or run.get(rate) for run in results.get(lk, [])]
            trials = [t for t in trials if t and t.get("samples")]
            if trials:
                curves[k] = [max(med([t[f"{p}_ns"] for t in trials]) / 1e3, 0.1) for p, _ in pcts]
    if curves:
        import math
        x0 = PW + L
        lo = 10 ** math.floor(math.log10(min(min(v) for v in curves.values())))
        hi = 10 ** math.ceil(math.log10(max(max(v) for v in curves.values())))
        if hi <= lo:
            hi = lo * 10
        lx = lambda i: x0 + 20 + i * (PW - L - 60) / (len(pcts) - 1)
        ly = lambda v: H - B - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (H - B - 20)
        o += [f'<line x1="{x0}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
              f'<line x1="{x0}" y1="{H - B}" x2="{x0}" y2="20" stroke="black"/>',
              f'<text x="{x0 + (PW - L) / 2}" y="{H - 10}" text-anchor="middle">percentile (latency at {rate / 1e3:.0f} kpps offered)</text>',
              f'<text x="{PW + 15}" y="{H / 2}" transform="rotate(-90 {PW + 15} {H / 2})" text-anchor="middle">latency us (log)</text>']
        for i, (_, label) in enumerate(pcts):
            o.append(f'<text x="{lx(i):.1f}" y="{H - B + 15}" text-anchor="middle">{label}</text>')
        d = lo
        while d <= hi * 1.001:
            o.append(f'<text x="{x0 - 5}" y="{ly(d) + 4:.1f}" text-anchor="end">{d:g}</text>')
            o.append(f'<line x1="{x0}" y1="{ly(d):.1f}" x2="{W - 20}" y2="{ly(d):.1f}" stroke="#eee"/>')
            d *= 10
        for j, (k, name, color) in enumerate(series):
            v = curves.get(k)
            if not v:
                continue
            o.append('<polyline fill="none" stroke="{}" points="{}"/>'.format(
                color, " ".join(f"{lx(i):.1f},{ly(y):.1f}" for i, y in enumerate(v))))
            for i, y in enumerate(v):
                o.append(f'<circle cx="{lx(i):.1f}" cy="{ly(y):.1f}" r="3" fill="{color}"/>')
            o.append(f'<text x="{x0 + 10}" y="{30 + 15 * j}" fill="{color}">{name}</text>')
    o.append("</svg>")
    return "\n".join(o)


if __name__ == "__main__":
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        teardown()
        sys.exit(130)
