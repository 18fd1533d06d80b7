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
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = "/tmp/detour-bench"
PERF = os.path.join(ROOT, "target/release/detour-perf")
DETOUR = os.path.join(ROOT, "target/release/detour")

NS_GEN, NS_MID, NS_SINK = "dtb-gen", "dtb-mid", "dtb-sink"
NAMESPACES = [NS_GEN, NS_MID, NS_SINK]
G0, M0, M1, S0 = "dtbg0", "dtbm0", "dtbm1", "dtbs0"
MAC = {G0: "02:64:74:62:00:01", M0: "02:64:74:62:00:02", M1: "02:64:74:62:00:03", S0: "02:64:74:62:00:04"}
GEN_IP, MID_IP0, MID_IP1, REAL_IP = "198.18.0.100", "198.18.0.254", "198.18.1.1", "198.18.1.11"
VIP, DIP = "198.18.0.1", "198.18.0.10"
SECRET = "6465746f75722d62656e63682d7365637265742d6e6f742d666f722d70726f64"

PROCS = []  # background processes we started: (Popen, name)
SERVER_PIDS = []  # the middle's server process (detour) while it runs, for CPU accounting
RT = True  # the middle's threads at SCHED_FIFO: NAPI thread 1, server 2 (--no-rt: normal)


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


def setup():
    teardown()
    os.makedirs(WORK, exist_ok=True)
    for ns in NAMESPACES:
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "set", "lo", "up"], ns=ns)
    sh(["ip", "link", "add", G0, "netns", NS_GEN, "address", MAC[G0], "type", "veth",
        "peer", M0, "netns", NS_MID, "address", MAC[M0]])
    sh(["ip", "link", "add", M1, "netns", NS_MID, "address", MAC[M1], "type", "veth",
        "peer", S0, "netns", NS_SINK, "address", MAC[S0]])
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
    write_sysfs(NS_GEN, f"/sys/class/net/{G0}/queues/rx-0/rps_cpus", "1")
    write_sysfs(NS_SINK, f"/sys/class/net/{S0}/queues/rx-0/rps_cpus", "1")
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
    return found


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


def gen(kinds, rate, count, duration, dip=DIP, flows=10000):
    cmd = ["taskset", "-c", "0", PERF, "gen", "--iface", G0, "--dst-mac", MAC[M0], "--kinds", kinds,
           "--rate", str(int(rate)), "--count", str(int(count)), "--duration", f"{duration:.3f}",
           "--dip", dip, "--vip", VIP, "--flows", str(flows), "--cookie-secret", SECRET]
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
    """Highest offered rate with < 0.1 % loss (bisection between lo and hi), then 10x overload."""
    lo, hi = cfg["lo"], cfg["hi"]
    points = []
    best = None
    t = trial(kinds, lo, cfg["secs"], counter, dip)
    points.append(t)
    log(f"  {name}: offered {lo / 1e6:.3f} Mpps -> {t['received_pps'] / 1e6:.3f} Mpps, loss {t['loss'] * 100:.3f} %, "
        f"CPU1 busy {t['cpu1_busy'] * 100:.0f} %")
    down = 0
    while t["loss"] >= 0.001 and down < cfg.get("down", 3):
        hi, lo, down = lo, lo / 2, down + 1
        t = trial(kinds, lo, cfg["secs"], counter, dip)
        points.append(t)
        log(f"  {name}: offered {lo / 1e6:.3f} Mpps -> {t['received_pps'] / 1e6:.3f} Mpps, loss {t['loss'] * 100:.3f} %, "
            f"CPU1 busy {t['cpu1_busy'] * 100:.0f} %")
    if t["loss"] < 0.001:
        best = t
        for _ in range(cfg["steps"]):
            mid = (lo + hi) / 2
            t = trial(kinds, mid, cfg["secs"], counter, dip)
            points.append(t)
            log(f"  {name}: offered {mid / 1e6:.3f} Mpps -> {t['received_pps'] / 1e6:.3f} Mpps, loss {t['loss'] * 100:.3f} %, "
                f"CPU1 busy {t['cpu1_busy'] * 100:.0f} %")
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


def run_nginx(secs, conns_list):
    write(f"{WORK}/nginx.conf", NGINX_CONF.format(work=WORK, ip=MID_IP0))
    p, logp = start("nginx", rt() + ["nginx", "-c", f"{WORK}/nginx.conf"], NS_MID)
    try:
        if not wait_http(f"http://{MID_IP0}/"):
            raise RuntimeError(f"nginx did not answer 302 (see {logp})")
        return {c: redirect_bench(f"nginx c{c}", f"http://{MID_IP0}/", lambda: [p.pid] + all_children(p.pid), secs, c)
                for c in conns_list}
    finally:
        stop(p)


def all_children(pid):
    out, todo = [], [pid]
    while todo:
        c = children(todo.pop())
        out += c
        todo += c
    return out


def run_haproxy(secs, conns_list):
    write(f"{WORK}/haproxy.cfg", HAPROXY_CFG.format(ip=MID_IP0))
    p, logp = start("haproxy", rt() + ["haproxy", "-db", "-f", f"{WORK}/haproxy.cfg"], NS_MID)
    try:
        if not wait_http(f"http://{MID_IP0}/"):
            raise RuntimeError(f"haproxy did not answer 302 (see {logp})")
        return {c: redirect_bench(f"haproxy c{c}", f"http://{MID_IP0}/", lambda: [p.pid] + all_children(p.pid), secs, c)
                for c in conns_list}
    finally:
        stop(p)


def start_detour():
    conf = f"{WORK}/detour.conf"
    write(conf, DETOUR_CONF.format(m0=M0, m1=M1, gen=GEN_IP, secret=SECRET, vip=VIP, dip=DIP, real=REAL_IP))
    detach_xdp()
    p, logp = start("detour", rt() + ["taskset", "-c", "1", DETOUR, "run", "--config", conf, "--summary-secs", "5",
                               "--duration-secs", "900"], NS_MID)
    t0 = time.time()
    while time.time() - t0 < 20:
        if p.poll() is not None:
            raise RuntimeError(f"detour exited ({p.returncode}): {open(logp).read()[-2000:]}")
        if "worker(s)" in open(logp).read():
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"detour did not start: {open(logp).read()[-2000:]}")
    # Detour re-attached dtbm0's XDP: its NAPI thread is new.
    time.sleep(0.3)
    pin_napi()
    if not wait_http(f"http://{VIP}/"):
        raise RuntimeError(f"detour did not answer 302 on {VIP} (see {logp})")
    SERVER_PIDS[:] = [p.pid]
    return p, logp


def stop_detour(p):
    SERVER_PIDS.clear()
    stop(p)
    attach_pass()
    pin_napi()


# ---------------------------------------------------------------- the runs

def forwarding_runs(cfg, results):
    # Kernel routing: frames to the real's address itself.
    results.setdefault("fwd_kernel", []).append(search("kernel", "flows", sink_count, cfg, dip=REAL_IP))
    nft(NS_MID, f"""table ip dtb_nat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {DIP} tcp dport 80 dnat to {REAL_IP}:80
    ip daddr {DIP} udp dport 80 dnat to {REAL_IP}:80
  }}
}}""")
    try:
        results.setdefault("fwd_dnat", []).append(search("kernel+nft DNAT", "flows", sink_count, cfg))
    finally:
        sh(["nft", "delete", "table", "ip", "dtb_nat"], ns=NS_MID, check=False)
        sh(["conntrack", "-F"], ns=NS_MID, check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--out", default=os.path.join(ROOT, "perf/results"))
    ap.add_argument("--teardown", action="store_true", help="only tear down and exit")
    ap.add_argument("--no-rt", action="store_true", help="leave the middle's threads at normal priority")
    a = ap.parse_args()
    global RT
    RT = not a.no_rt
    if a.teardown:
        teardown()
        return 0
    quick = a.quick
    runs = a.runs or (1 if quick else 3)
    fwd_cfg = ({"lo": 100_000, "hi": 1_000_000, "steps": 1, "secs": 0.5, "down": 0} if quick else
               {"lo": 200_000, "hi": 1_600_000, "steps": 5, "secs": 2.0})
    req_cfg = ({"lo": 50_000, "hi": 400_000, "steps": 1, "secs": 0.5, "down": 0} if quick else
               {"lo": 50_000, "hi": 1_200_000, "steps": 5, "secs": 2.0})
    wrk_secs = 1 if quick else 5
    flood_syns = 200_000 if quick else 10_000_000
    flood_rate = 400_000 if quick else 1_000_000
    started = time.time()
    results = {}
    load0 = open("/proc/loadavg").read().split()[:3]
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(), "kernel": os.uname().release, "cpus": os.cpu_count(),
        "quick": quick, "runs": runs, "fwd_search": fwd_cfg, "req_search": req_cfg, "wrk_secs": wrk_secs,
        "git": sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).strip(),
        "command": "scripts/bench.sh" + (" --quick" if quick else "") + ("" if RT else " --no-rt"),
        "rt": RT,
    }
    for k, cmd in (("nginx", ["nginx", "-v"]), ("haproxy", ["haproxy", "-v"]), ("wrk", ["wrk", "-v"])):
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        meta[k] = r.stdout.strip().splitlines()[0] if r.stdout else "?"
    try:
        log("setting up the namespaces (dtb-gen, dtb-mid, dtb-sink)")
        setup()
        conns = [50] if quick else [50, 1]
        for run in range(runs):
            log(f"run {run + 1}/{runs}: L4 forwarding, kernel peers")
            forwarding_runs(fwd_cfg, results)
            log(f"run {run + 1}/{runs}: redirects, nginx and HAProxy (wrk {wrk_secs}s)")
            results.setdefault("redir_nginx", []).append(run_nginx(wrk_secs, conns))
            results.setdefault("redir_haproxy", []).append(run_haproxy(wrk_secs, conns))
            log(f"run {run + 1}/{runs}: detour")
            p, logp = start_detour()
            try:
                results.setdefault("fwd_detour", []).append(search("detour", "flows", sink_count, fwd_cfg))
                results.setdefault("openloop_detour", []).append(
                    search("detour open-loop requests", "requests", gen_side_count, req_cfg))
                results.setdefault("redir_detour", []).append(
                    {c: redirect_bench(f"detour c{c}", f"http://{VIP}/", lambda: [p.pid], wrk_secs, c) for c in conns})
            finally:
                stop_detour(p)
        log(f"memory: detour RSS through a {flood_syns:,}-SYN flood at {flood_rate / 1e6:.1f} Mpps with wrk running")
        results["memory"] = memory_run(flood_syns, flood_rate, quick)
    finally:
        log("tearing down")
        teardown()
    meta["elapsed_s"] = round(time.time() - started, 1)
    meta["loadavg_before"] = " ".join(load0)
    meta["loadavg_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
    report(meta, results, a.out)
    return 0


def memory_run(syns, rate, quick):
    p, logp = start_detour()
    try:
        secs = syns / rate
        wrk_secs = max(1, int(secs))
        time.sleep(1)
        before = rss_kib(p.pid)
        base = wrk(f"http://{VIP}/", wrk_secs)
        samples = []
        wp = subprocess.Popen(["ip", "netns", "exec", NS_GEN, "taskset", "-c", "0", "wrk", "-t1", "-c50",
                               f"-d{wrk_secs}s", "-H", "Connection: close", f"http://{VIP}/"],
                              stdout=subprocess.PIPE, text=True)
        PROCS.append((wp, "wrk"))
        c0 = gen_side_count()
        gp = subprocess.Popen(["ip", "netns", "exec", NS_GEN, "taskset", "-c", "0", PERF, "gen", "--iface", G0,
                               "--dst-mac", MAC[M0], "--kinds", "synflood", "--flows", "65536",
                               "--rate", str(rate), "--count", str(syns), "--duration", f"{secs + 5:.1f}",
                               "--vip", VIP], stdout=subprocess.PIPE, text=True)
        PROCS.append((gp, "gen"))
        while gp.poll() is None:
            samples.append(rss_kib(p.pid))
            time.sleep(0.2)
        g = json.loads(gp.stdout.read())
        out = wp.communicate(timeout=wrk_secs + 30)[0]
        time.sleep(0.5)
        synacks = gen_side_count() - c0
        after = rss_kib(p.pid)
        during_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        r = {"syns_sent": g["sent"], "syn_rate_pps": g["rate_pps"], "synacks_seen": synacks,
             "rss_before_kib": before, "rss_during_max_kib": max(samples) if samples else before,
             "rss_after_kib": after, "redirects_rps_before": base["rps"], "redirects_rps_during": during_rps}
        log(f"  RSS before {before} KiB, max during {r['rss_during_max_kib']} KiB, after {after} KiB; "
            f"{g['sent']:,} SYNs, {synacks:,} SYN-ACKs; wrk {base['rps'] / 1e3:.1f}k/s before, {during_rps / 1e3:.1f}k/s during")
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
    stem = f"{datetime.date.today().isoformat()}-{meta['host']}" + ("-quick" if meta["quick"] else "")
    summary = {}

    def fig(key, getter):
        vals = [getter(r) for r in results.get(key, [])]
        summary[key + ":" + getter.__name__] = {"median": med(vals), "values": vals}
        return med(vals), spread(vals), vals

    def no_loss(r): return r["no_loss_pps"] / 1e6
    def overload(r): return r["overload"]["received_pps"] / 1e6
    def overload_offered(r): return r["overload"]["sent_pps"] / 1e6
    def ns_frame(r): return r["no_loss"]["cpu1_ns_per_frame"] if r["no_loss"] else None
    def mid_ns(r): return r["overload"]["mid_ns_per_frame"]

    lines = [f"# detour benchmark, {meta['date']} on {meta['host']}", "",
             f"Command: `{meta['command']}` (git {meta['git']}; kernel {meta['kernel']}, {meta['cpus']} CPUs; "
             f"{meta['runs']} run(s); took {meta['elapsed_s']} s). "
             "Median of the runs, with min – max. Topology and method: `perf/README.md`.", "",
             f"Load average before / after: {meta['loadavg_before']} / {meta['loadavg_after']} (the 2 CPUs are shared: "
             "other work on CPU1 lowers every rate here; the per-frame CPU columns of the middle's own threads do not "
             "depend on it). " + ("The middle's threads ran at SCHED_FIFO (dtbm0's NAPI thread 1, the server 2), so that other "
             "load on CPU1 does not decide the figures." if meta["rt"] else "The middle's threads ran at normal priority."), ""]
    if meta["quick"]:
        lines += ["**--quick: a smoke test of the harness. Trials are 0.5-1 s; the figures are not "
                  "measurements to quote.**", ""]
    lines += ["## L4 forwarding (60-byte TCP frames, 10,000 flows, the middle on CPU1)", "",
              "| router | no-loss Mpps (< 0.1 %) | spread | CPU1 ns/frame at that rate | overload: offered Mpps | delivered Mpps | middle threads ns/frame (overload) |",
              "|---|---|---|---|---|---|---|"]
    fwd = {}
    for key, name in (("fwd_kernel", "kernel routing"), ("fwd_dnat", "kernel + nftables DNAT"),
                      ("fwd_detour", "detour (AF_XDP, 1 worker)")):
        if key not in results:
            continue
        m, s, _ = fig(key, no_loss)
        fwd[key] = m
        n, _, _ = fig(key, ns_frame)
        o, os_, _ = fig(key, overload)
        oo, _, _ = fig(key, overload_offered)
        mn, _, _ = fig(key, mid_ns)
        lines.append(f"| {name} | {m:.3f} | {s} | {f'{n:.0f}' if n else '–'} | {oo:.2f} | {o:.3f} ({os_}) | "
                     f"{f'{mn:.0f}' if mn else '–'} |")
    lines.append("")
    if fwd.get("fwd_detour") is not None:
        ov = {k: med([r["overload"]["received_pps"] for r in results[k]]) for k in fwd}
        mn = {k: med([r["overload"]["mid_ns_per_frame"] for r in results[k]]) for k in fwd}
        for key, name in (("fwd_dnat", "nftables DNAT"), ("fwd_kernel", "kernel routing")):
            if key in ov:
                lines.append(f"- under overload, detour delivers **{ratio(ov['fwd_detour'], ov[key]):.2f}x** {name}'s rate; "
                             f"the middle's threads spend {ratio(mn['fwd_detour'], mn[key]):.2f}x its CPU per frame")
        for key, name in (("fwd_dnat", "nftables DNAT"), ("fwd_kernel", "kernel routing")):
            if fwd.get(key):
                lines.append(f"- detour / {name}: **{ratio(fwd['fwd_detour'], fwd[key]):.2f}x** (no-loss rate)")
        lines.append("")

    lines += ["## Redirects (wrk -t1 -c50, `Connection: close`, a new connection per request; client on CPU0)", "",
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
        lines.append(f"| {name} | {med(rps):,.0f} | {spread(rps)} | {red[key]['cpu']:.2f} | {red[key]['mid']:.2f} | {red[key]['cpu1']:.2f} | "
                     f"{med([r['cpu1_busy'] for r in rs]) * 100:.0f} % | {med([r.get('p50_us') for r in rs]) or 0:.0f} | "
                     f"{med([r.get('p99_us') for r in rs]) or 0:.0f} | {med([r['opens_per_request'] for r in rs]) or 0:.3f} |")
    lines.append("")
    if "redir_detour" in red:
        for key, name in (("redir_nginx", "nginx"), ("redir_haproxy", "HAProxy")):
            if key in red:
                d, p = red["redir_detour"], red[key]
                lines.append(f"- detour / {name}: redirects/s **{ratio(d['rps'], p['rps']):.2f}x**; {name} spends "
                             f"**{ratio(p['mid'], d['mid']):.2f}x** detour's CPU per redirect in server + NAPI thread, "
                             f"{ratio(p['cpu'], d['cpu']):.2f}x in the server process alone, {ratio(p['cpu1'], d['cpu1']):.2f}x of CPU1's busy time")
        lines.append("")
    one = {}
    for key, name in (("redir_nginx", "nginx"), ("redir_haproxy", "HAProxy"), ("redir_detour", "detour")):
        rs = [r.get(1) or r.get("1") for r in results.get(key, [])]
        rs = [r for r in rs if r]
        if rs:
            one[name] = (med([r["rps"] for r in rs]), med([r.get("p50_us") for r in rs]), med([r.get("p99_us") for r in rs]))
    if one:
        lines += ["One connection at a time (wrk -c1):", "", "| server | redirects/s | p50 us | p99 us |", "|---|---|---|---|"]
        for name, (r, p50, p99) in one.items():
            lines.append(f"| {name} | {r:,.0f} | {p50 or 0:.0f} | {p99 or 0:.0f} |")
        lines.append("")

    if "openloop_detour" in results:
        m, s, _ = fig("openloop_detour", no_loss)
        o, os_, _ = fig("openloop_detour", overload)
        oo, _, _ = fig("openloop_detour", overload_offered)
        lines += ["## Open-loop redirects (generator: ACK + HTTP request with a valid SYN cookie; one 302+FIN segment back)", "",
                  f"- highest rate with < 0.1 % loss: **{m * 1e3:,.0f}k redirects/s** ({s} Mpps)",
                  f"- overload: offered {oo:.2f} Mpps, answered {o * 1e3:,.0f}k/s ({os_} Mpps)", ""]

    mem = results.get("memory")
    if mem:
        lines += [f"## Memory through a SYN flood ({mem['syns_sent']:,} spoofed SYNs at {mem['syn_rate_pps'] / 1e6:.2f} Mpps, wrk running)", "",
                  "| detour VmRSS before | max during | after | SYN-ACKs seen | redirects/s before | during |",
                  "|---|---|---|---|---|---|",
                  f"| {mem['rss_before_kib']:,} KiB | {mem['rss_during_max_kib']:,} KiB | {mem['rss_after_kib']:,} KiB | "
                  f"{mem['synacks_seen']:,} | {mem['redirects_rps_before']:,.0f} | {mem['redirects_rps_during']:,.0f} |", ""]

    svg = plot(results, stem)
    if svg:
        write(os.path.join(outdir, stem + ".svg"), svg)
        lines += [f"![delivered vs offered]({stem}.svg)", ""]
    lines += ["Versions: " + "; ".join(meta[k] for k in ("nginx", "haproxy", "wrk")), ""]
    write(os.path.join(outdir, stem + ".md"), "\n".join(lines))
    write(os.path.join(outdir, stem + ".json"), json.dumps({"meta": meta, "summary": summary, "results": results},
                                                           indent=1, default=str))
    log(f"report: {os.path.join(outdir, stem + '.md')} (+ .json" + (", .svg)" if svg else ")"))
    print("\n".join(lines))


def plot(results, stem):
    """SVG: delivered vs offered (Mpps), every forwarding trial of every run (overload at the generator's max)."""
    series = [("fwd_kernel", "kernel", "#1f77b4"), ("fwd_dnat", "nft DNAT", "#ff7f0e"), ("fwd_detour", "detour", "#2ca02c")]
    pts = {k: [(t["sent_pps"] / 1e6, t["received_pps"] / 1e6) for r in results.get(k, []) for t in r["points"]]
           for k, _, _ in series}
    allp = [p for v in pts.values() for p in v]
    if not allp:
        return None
    W, H, L, B = 560, 400, 60, 50
    xmax = max(x for x, _ in allp) * 1.05 or 1
    ymax = max(max(y for _, y in allp) * 1.1, 0.1)
    sx = lambda x: L + x / xmax * (W - L - 20)
    sy = lambda y: H - B - y / ymax * (H - B - 20)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="{H - B}" x2="{L}" y2="20" stroke="black"/>',
         f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">offered (sent) Mpps</text>',
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
