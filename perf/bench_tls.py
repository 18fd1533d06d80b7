"""The `tls` section of detour's benchmark (issue 12), called from perf/bench.py with that
module as `b` (its topology, peers, helpers and process list; run as __main__, so it is passed
in rather than imported). One run of it, in the bench's namespaces, the middle on CPU1:

1. The cost of one ECDSA P-256 signature with the workspace's ring (`detour-perf sign`, thread
   CPU time, on CPU1 at the worker's priority).
2. HTTPS redirects, TLS 1.3, one self-signed ECDSA P-256 certificate served by both: nginx
   (`return 302`, 1 worker) on 198.18.0.254:443 and detour's `virtual 198.18.0.1 tls` (1
   worker). Client: `openssl s_time` (a real TLS client: OpenSSL's handshake, TCP of the
   kernel, a new TCP connection per request, `GET /bench HTTP/1.0` and read until the server
   closes), `-new` (full handshakes) and `-reuse` (the first connection's session ticket,
   resumed on every later one; `r` per resumed connection is counted), `TLS_PROCS` processes in
   parallel on CPU0, each bounded by `-time` and a subprocess timeout. Server CPU as the
   redirect section measures it: the server's processes and the server plus dtbm0's NAPI thread.
3. DIP forwarding latency (stamped `flows` through detour's DIP, the latency section's trial)
   at one rate, four times on the same detour: quiet; with one busy loop on CPU0 (the
   control: what sharing CPU0 with another busy task costs the generator); while the s_time
   clients make full handshakes with the same worker as fast as they can; and while a second
   generator offers cookie-valid ClientHellos (`gen --kinds hellos`) beyond what the worker
   takes, so that it signs one server flight per batch, its most (its handshake saturation).

Every process is bounded in time; everything started is in b.PROCS (torn down by the bench's
trap) or stopped here in `finally`.
"""

import json
import os
import re
import subprocess
import time

TLS_PORT = 443
TLS_PROCS = 4  # s_time processes in parallel (closed loop each), all on CPU0
CERT_DIR = "tls"  # under b.WORK
METRICS = "127.0.0.1:9190"  # detour's metrics listener, dtb-mid's loopback (counters)

NGINX_TLS_CONF = """worker_processes 1;
worker_cpu_affinity 10;
daemon off;
pid {work}/nginx-tls.pid;
error_log {work}/nginx-tls-error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
worker_rlimit_nofile 65536;
http {{
    access_log off;
    server_tokens off;
    tcp_nodelay on;
    server {{
        listen {ip}:{port} ssl backlog=8192;
        server_name _;
        ssl_protocols TLSv1.3;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_tickets on;
        location / {{ return 302 http://coyote.example/; }}
    }}
}}
"""

# Appended to the bench's detour config for this section (same worker, same VIP and DIP).
DETOUR_TLS_LINES = """metrics {metrics}
certificate * {cert} {key}
virtual {vip} tls
bind {vip}:{port} r1
"""


def cfg_for(quick, lat_secs=None):
    """Trial lengths: s_time -time is in whole seconds."""
    if quick:
        return {"secs": 1, "lat_rate": 10_000, "hello_rate": 20_000, "lat_secs": lat_secs or 0.5, "sign_rounds": 3, "sign_batch": 200}
    return {"secs": 5, "lat_rate": 10_000, "hello_rate": 30_000, "lat_secs": lat_secs or 3.0, "sign_rounds": 9, "sign_batch": 500}


def make_cert(b):
    """One self-signed ECDSA P-256 certificate (the lab's way, openssl) for both servers."""
    d = os.path.join(b.WORK, CERT_DIR)
    cert, key = os.path.join(d, "bench.pem"), os.path.join(d, "bench.key")
    if not (os.path.exists(cert) and os.path.exists(key)):
        os.makedirs(d, exist_ok=True)
        b.sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-days", "2", "-keyout", key, "-out", cert, "-subj", "/CN=bench.example",
              "-addext", "subjectAltName=DNS:bench.example"])
    return cert, key


def sign_cost(b, cfg):
    """ns of CPU per ECDSA P-256 signature (ring), on CPU1 at the worker's priority."""
    out = b.sh(b.rt() + ["taskset", "-c", "1", b.PERF, "sign", "--batch", str(cfg["sign_batch"]),
                         "--rounds", str(cfg["sign_rounds"]), "--secs", "20"], timeout=60)
    j = b.last_json(out)
    b.log(f"  ECDSA P-256 signature (ring, CPU1): {j['ns_per_sign_median'] / 1e3:.1f} us "
          f"({j['ns_per_sign_min'] / 1e3:.1f} - {j['ns_per_sign_max'] / 1e3:.1f} over {j['rounds']} rounds of {j['signatures_per_round']})")
    return j


def wait_https(b, ip, timeout=10.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = subprocess.run(["ip", "netns", "exec", b.NS_GEN, "curl", "-sk", "--tlsv1.3", "-o", "/dev/null",
                            "-w", "%{http_code}", "--max-time", "1", f"https://{ip}:{TLS_PORT}/"],
                           stdout=subprocess.PIPE, text=True)
        if r.stdout.strip() == "302":
            return True
        time.sleep(0.2)
    return False


def session_facts(b, ip):
    """What was negotiated (one s_client): protocol, suite, key exchange group, signature."""
    r = subprocess.run(["ip", "netns", "exec", b.NS_GEN, "timeout", "5", "openssl", "s_client", "-connect",
                        f"{ip}:{TLS_PORT}", "-tls1_3", "-brief"], input="", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=10)
    facts = {}
    for k, pat in (("protocol", r"Protocol version: (\S+)"), ("suite", r"Ciphersuite: (\S+)"),
                   ("group", r"(?:Server Temp Key|Negotiated TLS1.3 group): ([^\n]+)"),
                   ("signature", r"Peer signature type: (\S+)"), ("peer_key", r"Peer Temp Key: ([^\n]+)")):
        m = re.search(pat, r.stdout)
        if m:
            facts[k] = m.group(1).strip()
    return facts


def s_time_procs(b, ip, mode, secs):
    """Start TLS_PROCS `openssl s_time` clients on CPU0 (-new or -reuse), each bounded by -time."""
    ps = []
    for i in range(TLS_PROCS):
        p = subprocess.Popen(["ip", "netns", "exec", b.NS_GEN, "taskset", "-c", "0", "openssl", "s_time",
                              "-connect", f"{ip}:{TLS_PORT}", "-tls1_3", f"-{mode}", "-time", str(int(secs)),
                              "-www", "/bench"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        b.PROCS.append((p, f"s_time{i}"))
        ps.append(p)
    return ps


def s_time_collect(b, ps, secs):
    """Wait for the clients (bounded); their connections, resumed connections, errors."""
    conns = resumed = 0
    errors = []
    for p in ps:
        try:
            out = p.communicate(timeout=secs + 30)[0]
        except subprocess.TimeoutExpired:
            p.kill()
            out = p.communicate()[0]
            errors.append("timeout")
        b.PROCS[:] = [(q, n) for q, n in b.PROCS if q is not p]
        # The last "N connections in T real seconds" line is the timed loop's.
        m = re.findall(r"(\d+) connections in (\d+) real seconds", out)
        if not m or p.returncode not in (0, None):
            errors.append(out[-300:])
        if m:
            conns += int(m[-1][0])
        # -reuse prints 'r' per resumed connection on its progress line.
        resumed += sum(line.count("r") for line in out.splitlines() if re.fullmatch(r"[r*t123ef]+", line.strip()))
    return conns, resumed, errors


def https_trial(b, name, ip, mode, pids_fn, secs, counters=None):
    """One timed s_time trial: redirects/s, server CPU per redirect (server; server + NAPI)."""
    opens0 = b.nstat_active_opens()
    c0, n0, b0, k0, w0 = b.proc_cpu(pids_fn()), b.proc_cpu(b.napi_pids()), b.cpu1_busy(), counters and counters(), time.time()
    ps = s_time_procs(b, ip, mode, secs)
    conns, resumed, errors = s_time_collect(b, ps, secs)
    c1, n1, b1, w1 = b.proc_cpu(pids_fn()), b.proc_cpu(b.napi_pids()), b.cpu1_busy(), time.time()
    if counters:
        time.sleep(0.7)  # the counters are published every 0.5 s
    k1 = counters and counters()
    opens = b.nstat_active_opens() - opens0
    wall = w1 - w0
    r = {"mode": mode, "clients": TLS_PROCS, "connections": conns, "tcp_opens": opens, "resumed": resumed,
         "wall_s": wall, "rps": opens / wall if wall else 0.0, "errors": errors,
         "server_cpu_us": (c1 - c0) * 1e6 / opens if opens else None,
         "mid_cpu_us": (c1 - c0 + n1 - n0) * 1e6 / opens if opens else None,
         "cpu1_us": (b1 - b0) * 1e6 / opens if opens else None, "cpu1_busy": (b1 - b0) / wall if wall else 0.0}
    if counters:
        r["server_counters"] = {k: k1.get(k, 0) - k0.get(k, 0) for k in k1}
    b.log(f"  {name} {mode}: {r['rps']:,.0f} HTTPS redirects/s ({opens:,} TCP connections, s_time counted {conns:,}, "
          f"{resumed:,} resumed), server CPU {r['server_cpu_us'] or 0:.0f} us, server+NAPI {r['mid_cpu_us'] or 0:.0f} us "
          f"per redirect, CPU1 busy {r['cpu1_busy'] * 100:.0f} %" + (f"; server counters {_brief(r['server_counters'])}" if counters else "")
          + (f"; ERRORS {errors}" if errors else ""))
    # Not slowness: a trial with no connection, a client error or no resumption under -reuse
    # means the set-up (or the TLS virtual) is broken.
    if not opens or errors or (mode == "reuse" and resumed < conns - TLS_PROCS):
        raise RuntimeError(f"{name} {mode}: {opens} connections, {resumed} resumed of {conns}, errors {errors}")
    return r


def _brief(c):
    """The counters worth a log line: frames, redirects, and the nonzero tls ones."""
    return {k: v for k, v in c.items() if k in ("rx", "tx", "redirects") or (k.startswith("tls_") and v)}


def detour_tls_counters(b):
    """detour's counters and drop reasons, from its status page (`/status.json` on the metrics
    listener in dtb-mid's loopback: every counter, published every 0.5 s)."""
    for _ in range(20):  # nothing is published in the first moments after the start
        out = b.sh(["curl", "-s", "--max-time", "2", f"http://{METRICS}/status.json"], ns=b.NS_MID, check=False,
                   timeout=10)
        if out.strip().startswith("{"):
            j = json.loads(out)
            return {**j.get("events", {}), **j.get("drops", {})}
        time.sleep(0.25)
    raise RuntimeError(f"detour's /status.json on {METRICS} gave nothing usable: {out[:200]!r}")


def cpu0_busy():
    """CPU0's busy time (s) from /proc/stat (the client's and the generator's CPU)."""
    for line in open("/proc/stat"):
        if line.startswith("cpu0 "):
            v = [int(x) for x in line.split()[1:]]
            return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def run_nginx(b, cfg, cert, key):
    conf = os.path.join(b.WORK, "nginx-tls.conf")
    b.write(conf, NGINX_TLS_CONF.format(work=b.WORK, ip=b.MID_IP0, port=TLS_PORT, cert=cert, key=key))
    p, logp = b.start("nginx-tls", b.rt() + ["nginx", "-c", conf], b.NS_MID)
    try:
        if not wait_https(b, b.MID_IP0):
            raise RuntimeError(f"nginx did not answer 302 over TLS (see {logp})")
        pids = lambda: [p.pid] + b.all_children(p.pid)
        out = {"facts": session_facts(b, b.MID_IP0)}
        for mode in ("new", "reuse"):
            out[mode] = https_trial(b, "nginx", b.MID_IP0, mode, pids, cfg["secs"])
        return out
    finally:
        b.stop(p)


def spin_cpu0(b, secs, n):
    """`n` busy loops on CPU0 for `secs` (the control: the generator shares CPU0)."""
    ps = []
    for i in range(n):
        p = subprocess.Popen(["taskset", "-c", "0", "timeout", f"{secs:.1f}", "sh", "-c", "while :; do :; done"])
        b.PROCS.append((p, f"spin{i}"))
        ps.append(p)
    return ps


def reap(b, ps, timeout):
    for p in ps:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        b.PROCS[:] = [(q, n) for q, n in b.PROCS if q is not p]


def with_cpu0(f):
    """Run a latency trial and add CPU0's busy share over it."""
    c0, w0 = cpu0_busy(), time.time()
    r = f()
    r["cpu0_busy"] = (cpu0_busy() - c0) / (time.time() - w0)
    return r


def hello_flood(b, rate, secs):
    """`detour-perf gen --kinds hellos`: cookie-valid ACKs carrying a TLS 1.3 ClientHello to
    the VIP's port 443 from 10,000 client flows, at `rate` offered (above what one worker can
    sign), bounded in count and time. Each one the worker takes costs it a full server flight
    (key exchange and signature); past its per-batch budget they are dropped (`tls_deferred`)."""
    cmd = b.gen_cmd("hellos", rate, rate * secs, secs, batch=32) + ["--vip-port", str(TLS_PORT)]
    p = subprocess.Popen(["ip", "netns", "exec", b.NS_GEN] + cmd, stdout=subprocess.PIPE, text=True)
    b.PROCS.append((p, "gen-hellos"))
    return p


def flood_latency(b, cfg, rate, secs):
    """The latency trial while the hello generator keeps the worker at its handshake limit."""
    busy = secs + 2
    k0, f0 = detour_tls_counters(b), b.gen_side_count()
    hp = hello_flood(b, cfg["hello_rate"], busy)
    try:
        time.sleep(1.0)
        k1, f1, c1, t1 = detour_tls_counters(b), b.gen_side_count(), b.proc_cpu(b.SERVER_PIDS) + b.proc_cpu(b.napi_pids()), time.time()
        r = with_cpu0(lambda: b.latency_trial("detour DIP, ClientHello flood", rate, secs))
        k2, f2, c2, t2 = detour_tls_counters(b), b.gen_side_count(), b.proc_cpu(b.SERVER_PIDS) + b.proc_cpu(b.napi_pids()), time.time()
    finally:
        try:
            g = json.loads(hp.communicate(timeout=busy + 30)[0] or "{}")
        except (subprocess.TimeoutExpired, ValueError):
            hp.kill()
            hp.wait()
            g = {}
        b.PROCS[:] = [(q, n) for q, n in b.PROCS if q is not hp]
    d = lambda k: k2.get(k, 0) - k1.get(k, 0)
    r.update({"hellos_offered_pps": cfg["hello_rate"], "hellos_sent": g.get("sent"),
              "hellos_sent_pps": g.get("rate_pps"), "flights_per_s": (f2 - f1) / (t2 - t1),
              "mid_cpu_busy": (c2 - c1) / (t2 - t1), "tls_deferred": d("tls_deferred"),
              "tls_evicted": d("tls_evicted"), "tls_failures": d("tls_failures"),
              "tls_failures_whole": k2.get("tls_failures", 0) - k0.get("tls_failures", 0)})
    if not r["flights_per_s"] or r["tls_failures_whole"]:
        raise RuntimeError(f"ClientHello flood: {r['flights_per_s']:.0f} flights/s answered, "
                           f"{r['tls_failures_whole']} tls_failures (a hello template the server refuses?)")
    b.log(f"  during that trial: {r['flights_per_s']:,.0f} server flights/s answered of {g.get('rate_pps', 0):,.0f} ClientHellos/s "
          f"sent, detour + NAPI {r['mid_cpu_busy'] * 100:.0f} % of CPU1, tls_deferred {r['tls_deferred']}, "
          f"tls_evicted {r['tls_evicted']}, tls_failures {r['tls_failures']}")
    return r


def latency_under_handshakes(b, cfg):
    """DIP latency at cfg['lat_rate']: quiet, CPU0 spinning (control), s_time -new running."""
    rate, secs = cfg["lat_rate"], cfg["lat_secs"]
    out = {"rate": rate, "quiet": with_cpu0(lambda: b.latency_trial("detour DIP, no handshakes", rate, secs))}
    busy = int(secs) + 3
    ps = spin_cpu0(b, busy, 1)
    try:
        time.sleep(0.3)
        out["control"] = with_cpu0(lambda: b.latency_trial("detour DIP, CPU0 spinning (control)", rate, secs))
    finally:
        reap(b, ps, busy + 10)
    k0 = detour_tls_counters(b)
    t0 = time.time()
    ps = s_time_procs(b, b.VIP, "new", busy)
    try:
        time.sleep(1.0)  # the clients at full speed
        k1, c1, t1 = detour_tls_counters(b), b.proc_cpu(b.SERVER_PIDS) + b.proc_cpu(b.napi_pids()), time.time()
        out["handshakes"] = with_cpu0(lambda: b.latency_trial("detour DIP, HTTPS handshakes running", rate, secs))
        k2, c2, t2 = detour_tls_counters(b), b.proc_cpu(b.SERVER_PIDS) + b.proc_cpu(b.napi_pids()), time.time()
    finally:
        conns, _, errors = s_time_collect(b, ps, busy)
    hs = k2.get("tls_handshakes", 0) - k1.get("tls_handshakes", 0)
    out["handshakes"].update({
        "handshakes_per_s": hs / (t2 - t1), "mid_cpu_busy": (c2 - c1) / (t2 - t1),
        "tls_deferred": k2.get("tls_deferred", 0) - k1.get("tls_deferred", 0),
        "tls_failures": k2.get("tls_failures", 0) - k0.get("tls_failures", 0), "client_errors": errors,
        "client_connections": conns, "warmup_handshakes_per_s": (k1.get("tls_handshakes", 0) - k0.get("tls_handshakes", 0)) / (t1 - t0)})
    h = out["handshakes"]
    b.log(f"  during that trial: {h['handshakes_per_s']:,.0f} handshakes/s, detour + NAPI {h['mid_cpu_busy'] * 100:.0f} % of CPU1, "
          f"tls_deferred {h['tls_deferred']}, tls_failures {h['tls_failures']}")
    out["flood"] = flood_latency(b, cfg, rate, secs)
    return out


def run_detour(b, cfg, cert, key):
    extra = DETOUR_TLS_LINES.format(cert=cert, key=key, vip=b.VIP, port=TLS_PORT, metrics=METRICS)
    base = b.DETOUR_CONF
    b.DETOUR_CONF = base + extra.replace("{", "{{").replace("}", "}}")
    try:
        p, logp = b.start_detour()
    finally:
        b.DETOUR_CONF = base
    try:
        if not wait_https(b, b.VIP):
            raise RuntimeError(f"detour did not answer 302 over TLS on {b.VIP}:{TLS_PORT} (see {logp})")
        out = {"facts": session_facts(b, b.VIP)}
        for mode in ("new", "reuse"):
            out[mode] = https_trial(b, "detour", b.VIP, mode, lambda: [p.pid], cfg["secs"], lambda: detour_tls_counters(b))
        out["latency"] = latency_under_handshakes(b, cfg)
        return out
    finally:
        b.stop_detour(p)


def run_once(b, cfg, results):
    """One run of the section: signature, nginx, detour (throughput, then latency)."""
    cert, key = make_cert(b)
    r = {"cfg": cfg, "sign": sign_cost(b, cfg)}
    r["nginx"] = run_nginx(b, cfg, cert, key)
    r["detour"] = run_detour(b, cfg, cert, key)
    r["sign_after"] = sign_cost(b, cfg)
    results.setdefault("tls", []).append(r)


# ---------------------------------------------------------------- report

def _med(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _ratio(a, c):
    return a / c if a and c else float("nan")


def _per_run(xs):
    return ", ".join(f"{x:.2f}" for x in xs)


def _frames(runs):
    """Frames in and out per full-handshake connection, from detour's own counters."""
    fr = [(t["server_counters"].get("rx", 0) / t["tcp_opens"], t["server_counters"].get("tx", 0) / t["tcp_opens"])
          for t in (r["detour"]["new"] for r in runs) if t.get("tcp_opens") and t.get("server_counters")]
    if not fr:
        return "frames"
    return f"{_med([a for a, _ in fr]):.1f} frames in and {_med([c for _, c in fr]):.1f} out"


def report(results, summary, heads):
    """The section's Markdown lines; its medians into `summary`, its headlines into `heads`.
    First HTTPS redirects and the signature, then the DIP latency under handshakes."""
    runs = results.get("tls") or []
    if not runs:
        return []
    sign_us = [_med([r["sign"]["ns_per_sign_median"], r["sign_after"]["ns_per_sign_median"]]) / 1e3 for r in runs]
    f = runs[0]
    facts = "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in f[s]["facts"].items()) for s in ("nginx", "detour"))
    body = ["## HTTPS redirects (TLS 1.3, ECDSA P-256, a new TCP connection per redirect; the middle on CPU1)", "",
            f"Client: `openssl s_time -tls1_3 -new|-reuse -www /bench` x {TLS_PROCS} processes on CPU0 (closed loop each, "
            f"{f['cfg']['secs']} s per trial; `-reuse` resumes the first connection's session ticket on every later "
            "connection). Both servers serve the same self-signed ECDSA P-256 certificate: nginx `return 302` (1 worker, "
            "OpenSSL), detour's `virtual ... tls` (1 worker, rustls + ring). Redirects = the client namespace's TCP opens. "
            "CPU per redirect as in the redirect section: the server's processes, and with dtbm0's NAPI thread. "
            "The client (OpenSSL handshakes, ECDSA verification on full ones) and the kernel's TCP on one CPU are the "
            "limit of the rate, so redirects/s is client-bound; one core's capacity is 1 s / (server + NAPI CPU per redirect). "
            f"Negotiated (one `s_client`): {facts}.", "",
            "| server | handshake | redirects/s | resumed / connections | server CPU us / redirect | server + NAPI us / redirect | one core: redirects/s | CPU1 busy | x signature (server + NAPI) |",
            "|---|---|---|---|---|---|---|---|---|"]
    med = {}
    for srv, name in (("nginx", "nginx `return 302`"), ("detour", "detour")):
        for mode in ("new", "reuse"):
            ts = [r[srv][mode] for r in runs]
            m = {k: _med([t[k] for t in ts]) for k in ("rps", "server_cpu_us", "mid_cpu_us", "cpu1_busy")}
            m["x_sign"] = _med([_ratio(t["mid_cpu_us"], s) for t, s in zip(ts, sign_us)])
            med[(srv, mode)] = m
            summary[f"tls:{srv}:{mode}"] = {**m, "values_mid_cpu_us": [t["mid_cpu_us"] for t in ts],
                                            "values_rps": [t["rps"] for t in ts]}
            res = ", ".join(f"{t['resumed']:,} / {t['connections']:,}" for t in ts)
            body.append(f"| {name} | {'full' if mode == 'new' else 'resumed'} | {m['rps']:,.0f} | {res} | "
                        f"{m['server_cpu_us']:.0f} | {m['mid_cpu_us']:.0f} | {1e6 / m['mid_cpu_us']:,.0f} | "
                        f"{m['cpu1_busy'] * 100:.0f} % | {m['x_sign']:.1f}x |")
    body.append("")
    sm = _med(sign_us)
    summary["tls:sign_us"] = {"median": sm, "values": sign_us}
    body.append(f"- one ECDSA P-256 signature with ring (`detour-perf sign`, thread CPU time on CPU1, before and after each "
                f"run): **{sm:.1f} us** (per run {', '.join(f'{s:.1f}' for s in sign_us)})")
    for mode, what in (("new", "full handshakes"), ("reuse", "resumed")):
        d, n = med[("detour", mode)], med[("nginx", mode)]
        per = [_ratio(r["nginx"][mode]["mid_cpu_us"], r["detour"][mode]["mid_cpu_us"]) for r in runs]
        rps = [_ratio(r["detour"][mode]["rps"], r["nginx"][mode]["rps"]) for r in runs]
        summary[f"tls:nginx_over_detour_cpu:{mode}"] = {"median": _med(per), "values": per}
        body.append(f"- {what}: nginx spends **{_med(per):.2f}x** detour's CPU per redirect in server + NAPI thread "
                    f"(per run {_per_run(per)}; server process alone {_ratio(n['server_cpu_us'], d['server_cpu_us']):.2f}x); "
                    f"redirects/s detour / nginx {_med(rps):.2f}x (client-bound; per run {_per_run(rps)})")
        heads.append((f"HTTPS redirect CPU (server + NAPI), {what}: nginx / detour", "(report)", f"{_med(per):.2f}x", ""))
    d = med[("detour", "new")]
    body.append(f"- how far detour is from the signature alone: a full handshake costs detour's process "
                f"{_ratio(d['server_cpu_us'], sm):.1f}x one signature, **{d['x_sign']:.1f}x** with its NAPI thread (the kernel's "
                f"veth and AF_XDP copy work for the {_frames(runs)} of a TLS connection); resumed (no signature): "
                f"{med[('detour', 'reuse')]['x_sign']:.1f}x. The process's figure holds the whole connection, not only the "
                "handshake's cryptography: the X25519 exchange, the key schedule, the ticket, rustls's allocations, the "
                "request and the 302, the TCP segments, and the worker's system calls (poll wake-ups, transmit kicks).")
    heads.append(("detour's CPU per full HTTPS handshake / one ECDSA P-256 signature", "(report)",
                  f"{d['x_sign']:.1f}x ({d['mid_cpu_us']:.0f} / {sm:.1f} us)", ""))
    body.append("")

    return body + _report_latency(runs, summary, heads)


def _report_latency(runs, summary, heads):
    """The DIP latency table of the section and its ratios."""
    body = []
    lat = [r["detour"]["latency"] for r in runs]
    rate = lat[0]["rate"]
    hr = runs[0]["cfg"]["hello_rate"]
    body += [f"DIP forwarding latency at {rate / 1e3:.0f} kpps (stamped `flows` through detour's DIP, frames one by one, "
             "sampled at the sink as in the latency section) on the same detour worker, in four trials: alone; with one busy "
             "loop on CPU0 (the control: the generator then shares CPU0, as in the two trials after it); while the "
             f"{TLS_PROCS} `s_time -new` clients make full handshakes with the worker as fast as they go (client-bound); and "
             f"while a second generator offers {hr / 1e3:.0f}k cookie-valid ClientHellos/s (`detour-perf gen --kinds hellos`, "
             "10,000 flows; it gets what CPU0 gives it) to the TLS virtual, far more than the worker takes: it answers each "
             "one it takes with its server flight (key exchange + signature, one segment back) and drops the rest "
             "unacknowledged past its per-batch budget of one flight (`tls_deferred`). That is the most handshake work the "
             "worker ever does, its handshake saturation: bounded by the budget (one flight per batch), not by CPU (see the "
             "CPU1 share). Median over runs of each percentile; rates and detour + NAPI CPU from the same interval.", "",
             "| DIP traffic | p50 us | p90 us | p99 us | p99.9 us | max us | lost frames per run | CPU0 busy per run | TLS work per run | detour + NAPI share of CPU1 per run | tls_deferred per run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    q = {}
    rows = (("quiet", "alone"), ("control", "one busy loop on CPU0 (control)"),
            ("handshakes", "with real HTTPS handshakes (s_time)"), ("flood", "with the worker at its handshake limit (ClientHellos)"))
    for k, name in rows:
        ts = [x[k] for x in lat if x.get(k, {}).get("samples")]
        if not ts:
            continue
        q[k] = {p: _med([t[f"{p}_ns"] for t in ts]) / 1e3 for p in ("p50", "p90", "p99", "p999", "max")}
        summary[f"tls:lat:{k}"] = {"median_us": q[k], "p99_us_values": [t["p99_ns"] / 1e3 for t in ts]}
        work = cpu = dfr = ""
        if k == "handshakes":
            work = ", ".join(f"{t['handshakes_per_s']:,.0f} handshakes/s" for t in ts)
        if k == "flood":
            work = ", ".join(f"{t['flights_per_s']:,.0f} flights/s of {t.get('hellos_sent_pps') or 0:,.0f} sent" for t in ts)
        if k in ("handshakes", "flood"):
            cpu = ", ".join(f"{t['mid_cpu_busy'] * 100:.0f} %" for t in ts)
            dfr = ", ".join(str(t["tls_deferred"]) for t in ts)
        cpu0 = ", ".join(f"{t.get('cpu0_busy', 0) * 100:.0f} %" for t in ts)
        body.append(f"| {name} | {q[k]['p50']:.1f} | {q[k]['p90']:.1f} | {q[k]['p99']:.1f} | {q[k]['p999']:.1f} | "
                    f"{q[k]['max']:.0f} | {', '.join(str(t.get('lost', 0)) for t in ts)} | {cpu0} | {work} | {cpu} | {dfr} |")
    body.append("")
    for k, what in (("handshakes", "real handshakes"), ("flood", "the worker at its handshake limit")):
        if "quiet" in q and k in q:
            per = [_ratio(x[k]["p99_ns"], x["quiet"]["p99_ns"]) for x in lat if x.get(k, {}).get("samples")]
            ctl = [_ratio(x[k]["p99_ns"], x["control"]["p99_ns"]) for x in lat if x.get(k, {}).get("samples")]
            summary[f"tls:lat:{k}_over_quiet_p99"] = {"median": _med(per), "values": per}
            body.append(f"- DIP p99 with {what} / alone: **{_ratio(q[k]['p99'], q['quiet']['p99']):.2f}x** "
                        f"({q[k]['p99']:.0f} / {q['quiet']['p99']:.0f} us; per run {_per_run(per)}); / the CPU0 control "
                        f"{_ratio(q[k]['p99'], q['control']['p99']):.2f}x (per run {_per_run(ctl)})")
            heads.append((f"DIP latency p99 at {rate / 1e3:.0f} kpps with {what} / alone", "(report)",
                          f"{q[k]['p99']:.0f} / {q['quiet']['p99']:.0f} us", ""))
    body.append("")
    return body
