"""Multi-queue scaling (issue 13 item 6), the `scaling` section of perf/bench.py: detour with
two workers on two queues against one worker on one queue, for L4 forwarding (`flows`) and for
open-loop redirects (`requests`), in the same run, on the same veths.

How frames reach a queue here (veth has no RSS): a frame a kernel socket sends goes to the
peer's rx queue with the index of the tx queue the sender's stack picked (XPS, else the flow
hash), but a frame that arrives by XDP (the generator's XDP_TX from `BPF_PROG_TEST_RUN` live
frames) goes to rx queue `smp_processor_id() % real_num_rx_queues` of the peer
(`veth_select_rxq`): the queue is chosen by the CPU the generator runs on. So the section runs
the generator as one process per CPU (each with half the rate and count, its own flows' source
ports) and sets the number of queues the veths use with `ethtool -L` (veth's channels): with
one queue every CPU's frames land on queue 0, with two the generator on CPU0 feeds queue 0 and
the one on CPU1 feeds queue 1.

Configurations (each a fresh detour; dtbm0's NAPI threads pinned one per CPU, lowest NAPI id,
the first queue's, to the CPU of worker 0):
- `1w-gen0`: one queue, one worker on CPU1, the generator on CPU0 (the rest of the bench's
  placement);
- `1w-gen01`: one queue, one worker on CPU1, the generator on both CPUs (the same generator as
  the two-worker run, so only the number of queues and workers differs);
- `2w-gen01`: two queues, workers on CPU0 and CPU1, the generator on both CPUs.
The machine has two CPUs: the second worker shares CPU0 with the generator, the sink's receive
work (RPS) and the client side, so the ratio 2w / 1w here is a lower bound of what a second
core gives a worker that has it to itself.
"""

import subprocess
import sys
import time

B = sys.modules["__main__"]  # perf/bench.py (run as a script): its topology and helpers

CONFIGS = (
    # name, queues (= workers), generator CPUs
    ("1w-gen0", 1, (0,)),
    ("1w-gen01", 1, (0, 1)),
    ("2w-gen01", 2, (0, 1)),
)
QUEUES = 2  # what the veths are created with; `ethtool -L` picks how many are used

CONF = """# detour-perf bench, scaling section
interface client {m0} queues {q}
interface server {m1} queues {q}
cores {cores}
gateway {gen}
cookie-secret {secret}
virtual {vip}
dip {dip} real {real}:80
url r1 http://{dip}/%d
link r1 {dip}
bind {vip} r1
health-check all none
"""


def channels(q):
    """Use `q` queues on all four veths (the other side of each pair too: a frame a kernel
    socket sends on a tx queue the peer has no rx queue for bypasses the peer's NAPI and XDP)."""
    for ns, dev in ((B.NS_GEN, B.G0), (B.NS_MID, B.M0), (B.NS_MID, B.M1), (B.NS_SINK, B.S0)):
        B.sh(["ethtool", "-L", dev, "rx", str(q), "tx", str(q)], ns=ns)


def pin_napis(q):
    """dtbm0's NAPI threads (one per queue in use), by NAPI id: the first queue's on the CPU of
    worker 0 (CPU1 with one worker, CPU0 with two), the second's on CPU1."""
    pids = sorted(B.napi_pids(), key=lambda pid: int(open(f"/proc/{pid}/comm").read().strip().rsplit("-", 1)[1]))
    cpus = [1] if q == 1 else [0, 1]
    for pid, cpu in zip(pids, cpus):
        B.sh(["taskset", "-pc", str(cpu), str(pid)])
        if B.RT:
            B.sh(["chrt", "-f", "-p", "1", str(pid)])
    return len(pids)


def start_detour(q):
    conf = f"{B.WORK}/detour-scaling.conf"
    cores = "1" if q == 1 else "0,1"
    B.write(conf, CONF.format(m0=B.M0, m1=B.M1, q=q, cores=cores, gen=B.GEN_IP, secret=B.SECRET, vip=B.VIP,
                              dip=B.DIP, real=B.REAL_IP))
    B.detach_xdp()
    p, logp = B.start("detour-scaling", B.rt() + ["taskset", "-c", cores, B.DETOUR, "run", "--config", conf,
                                                  "--summary-secs", "5", "--duration-secs", "900",
                                                  "--ctl-socket", B.CTL], B.NS_MID)
    B.wait_log(p, logp, "worker(s)", "detour")
    if B.RT:
        B.control_threads_normal(p.pid)
    time.sleep(0.3)  # it re-attached dtbm0's XDP program: new NAPI threads
    napis = pin_napis(q)
    if not B.wait_http(f"http://{B.VIP}/"):
        raise RuntimeError(f"detour did not answer 302 on {B.VIP} (see {logp})")
    B.SERVER_PIDS[:] = [p.pid]
    return p, napis


def busy_all():
    """Busy time (s) of every CPU from /proc/stat (as bench.cpu1_busy, for all CPUs)."""
    for line in open("/proc/stat"):
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            return (v[0] + v[1] + v[2] + v[5] + v[6]) / B.os.sysconf("SC_CLK_TCK")
    return 0.0


def make_trial(gen_cpus):
    """A replacement for bench.trial: the generator as one process per CPU in `gen_cpus`,
    each with its share of the rate and count."""
    def trial(kinds, rate, duration, counter, dip=B.DIP):
        pids = B.napi_pids() + B.SERVER_PIDS
        before, busy0, c1_0, mid0, w0 = counter(), busy_all(), B.cpu1_busy(), B.proc_cpu(pids), time.time()
        total = rate * duration if rate else 50_000_000
        procs = []
        for i, cpu in enumerate(gen_cpus):
            cmd = B.gen_cmd(kinds, rate / len(gen_cpus), total / len(gen_cpus), duration, dip=dip)
            cmd[2] = str(cpu)  # taskset -c <cpu>
            procs.append(subprocess.Popen(["ip", "netns", "exec", B.NS_GEN] + cmd, stdout=subprocess.PIPE, text=True))
        outs = []
        for gp in procs:
            try:
                outs.append(B.json.loads(gp.communicate(timeout=duration + 30)[0]))
            finally:
                if gp.poll() is None:
                    gp.kill()
                    gp.wait()
        time.sleep(0.3)  # drain
        after, busy1, c1_1, mid1, w1 = counter(), busy_all(), B.cpu1_busy(), B.proc_cpu(pids), time.time()
        got = after - before
        sent = sum(o["sent"] for o in outs)
        secs = max(o["send_secs"] for o in outs) or duration
        return {
            "offered_pps": rate, "sent": sent, "sent_pps": sent / secs, "received": got,
            "received_pps": got / secs, "loss": (1 - got / sent) if sent else 1.0,
            "gen_cpus": list(gen_cpus),
            "cpu1_busy": (c1_1 - c1_0) / (w1 - w0),
            # Both CPUs' busy time (in CPUs), the generator's and the sink's share included.
            "cpus_busy": (busy1 - busy0) / (w1 - w0),
            "cpus_ns_per_frame": (busy1 - busy0) * 1e9 / got if got else None,
            "mid_ns_per_frame": (mid1 - mid0) * 1e9 / got if got else None,
        }
    return trial


def run(fwd_cfg, req_cfg):
    """One run of every configuration (forwarding and open-loop redirects each). Builds the
    bench's topology again with two-queue veths and leaves it torn down."""
    B.setup(queues=QUEUES)
    out = {}
    saved = B.trial
    try:
        for name, q, gen_cpus in CONFIGS:
            B.detach_xdp()
            channels(q)
            B.attach_pass()
            p, napis = start_detour(q)
            B.trial = make_trial(gen_cpus)
            try:
                B.log(f"  scaling {name}: {q} queue(s), {napis} NAPI thread(s), generator on CPU {gen_cpus}")
                fwd = B.search(f"detour {name}", "flows", B.sink_count, fwd_cfg)
                req = B.search(f"detour {name} open-loop requests", "requests", B.gen_side_count, req_cfg)
            finally:
                B.trial = saved
                B.SERVER_PIDS.clear()
                B.stop(p)
            out[name] = {"queues": q, "gen_cpus": list(gen_cpus), "napi_threads": napis, "fwd": fwd, "req": req}
    finally:
        B.trial = saved
        B.teardown()
    return out


def report(results, heads):
    """The report's section (markdown lines); adds the headline ratio to `heads`."""
    runs = results.get("scaling")
    if not runs:
        return []

    def med(xs):
        xs = [x for x in xs if x is not None]
        return B.statistics.median(xs) if xs else None

    def fig(name, kind, key):
        vals = []
        for r in runs:
            s = r[name][kind]
            vals.append(s["no_loss_pps"] / 1e6 if key == "no_loss" else s["overload"]["received_pps"] / 1e6)
        return vals

    lines = ["## Multi-queue scaling (two workers on two queues against one; `perf/bench_scaling.py`)", "",
             "The generator's frames reach a veth queue by the CPU that sends them (veth has no RSS), so it runs as one "
             "process per CPU listed; with one queue all of them land on queue 0. The machine has two CPUs, so the "
             "second worker shares CPU0 with the generator and the sink: a lower bound of what a second core gives. "
             "Median over runs (min - max).", "",
             "| configuration | queues = workers | generator CPUs | forwarding no-loss Mpps | forwarding overload delivered Mpps "
             "| redirects no-loss Mpps | redirects overload delivered Mpps |",
             "|---|---|---|---|---|---|---|"]
    for name, q, gen_cpus in CONFIGS:
        if name not in runs[0]:
            continue
        cells = []
        for kind, key in (("fwd", "no_loss"), ("fwd", "overload"), ("req", "no_loss"), ("req", "overload")):
            v = fig(name, kind, key)
            cells.append(f"{med(v):.3f} ({min(v):.3f} - {max(v):.3f})")
        lines.append(f"| {name} | {q} | {','.join(map(str, gen_cpus))} | " + " | ".join(cells) + " |")
    lines.append("")
    ratios = []
    for base in ("1w-gen0", "1w-gen01"):
        for kind, key, what in (("fwd", "no_loss", "forwarding no-loss"), ("fwd", "overload", "forwarding overload"),
                                ("req", "no_loss", "redirects no-loss"), ("req", "overload", "redirects overload")):
            per_run = [B.ratio(a, b) for a, b in zip(fig("2w-gen01", kind, key), fig(base, kind, key))]
            r = med(per_run)
            ratios.append(f"- 2w-gen01 / {base}, {what}: **{r:.2f}x**" if r else f"- 2w-gen01 / {base}, {what}: n/a")
            if base == "1w-gen01" and key == "overload":
                heads.append((f"{what} 2 workers / 1 worker (same generator)", "(report)", f"{r:.2f}x" if r else "n/a", ""))
    lines += ratios + [""]
    return lines
