"""Where a trial's frames were lost, and what else had the middle's core meanwhile.

Read before and after a trial (`Probe.read`, then `Probe.delta`): no per-frame cost.

- `veth_ring_drops`: frames the generator's veth could not put into the middle's receive ring
  (dtbg0's `tx_dropped`: it counts both the frames XDP-transmitted by the generator, also shown
  as `tx_queue_0_xdp_xmit_errors` by `ethtool -S`, and those of the kernel's stack, e.g. wrk's;
  the middle's veth shows the same frames again as `rx_dropped`). The ring is the veth's fixed
  256-frame `ptr_ring`, drained only by the middle's NAPI thread: these are frames lost because
  that thread did not run for about 256 / rate seconds (2.6 ms at 100 kpps).
- `sink_side_drops`: the same, one hop later (dtbm1 -> dtbs0) and the sink's veth receive drops.
- `client_side_drops`: the way back to the client (dtbm0's `tx_dropped`, dtbg0's `rx_dropped`)
  and every CPU's backlog drops (`/proc/net/softnet_stat`, column 2: RPS queues full).
- `xsk`: an AF_XDP middle's own socket drops (XDP_STATISTICS), when the caller has them.
- `cpu1_steal_ms`: time the hypervisor did not run CPU1 while the guest wanted it (/proc/stat,
  10 ms ticks).
- `cpu1_others_ms`: CPU1's busy time (/proc/stat, 10 ms ticks) minus the run time of the
  middle's own threads (/proc/<tid>/schedstat, ns): what other tasks of the machine (other
  users' builds) took on the middle's core during the trial.
- `napi_wait_ms`: time dtbm0's NAPI thread spent runnable but not running (its run_delay): the
  wake-up latency of the middle's receive work, summed.
"""

import json
import os
import subprocess

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _run(cmd, ns):
    return subprocess.run(["ip", "netns", "exec", ns] + cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True).stdout


def link_stats(ns, dev):
    out = _run(["ip", "-s", "-j", "link", "show", "dev", dev], ns)
    try:
        s = json.loads(out)[0]["stats64"]
    except (ValueError, IndexError, KeyError):
        return {"rx_dropped": 0, "tx_dropped": 0}
    return {"rx_dropped": s["rx"]["dropped"], "tx_dropped": s["tx"]["dropped"]}


def softnet_drops():
    """Frames dropped because a CPU's backlog queue was full, all CPUs."""
    total = 0
    for line in open("/proc/net/softnet_stat"):
        f = line.split()
        if len(f) > 1:
            total += int(f[1], 16)
    return total


def cpu_ticks(cpu):
    """(busy, steal) of one CPU in /proc/stat ticks."""
    for line in open("/proc/stat"):
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal
            return v[0] + v[1] + v[2] + v[5] + v[6], v[7]
    return 0, 0


def thread_ids(pids):
    out = []
    for pid in pids:
        try:
            out += [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            pass
    return out


def schedstat(tid):
    """(run ns, runnable-but-waiting ns) of one thread."""
    try:
        run, wait, _ = open(f"/proc/{tid}/schedstat").read().split()
        return int(run), int(wait)
    except (OSError, ValueError):
        return 0, 0


class Probe:
    """Counters around one trial. `gen`, `mid`, `sink`: (namespace, device) of the generator's
    veth, the middle's server-side veth and the sink's veth; `mid_pids()` and `napi_pids()` give the
    processes of the middle and dtbm0's NAPI threads, read at each `read`."""

    def __init__(self, gen, mid0, mid1, sink, mid_pids, napi_pids, cpu=1):
        self.gen, self.mid0, self.mid1, self.sink = gen, mid0, mid1, sink
        self.mid_pids, self.napi_pids, self.cpu = mid_pids, napi_pids, cpu

    def read(self):
        busy, steal = cpu_ticks(self.cpu)
        napi = self.napi_pids()
        tids = set(thread_ids(list(self.mid_pids()))) | set(napi)
        return {
            "veth_ring_drops": link_stats(*self.gen)["tx_dropped"],
            "sink_side_drops": link_stats(*self.mid1)["tx_dropped"] + link_stats(*self.sink)["rx_dropped"],
            "client_side_drops": link_stats(*self.mid0)["tx_dropped"] + link_stats(*self.gen)["rx_dropped"]
            + softnet_drops(),
            "cpu1_busy_ms": busy * TICK_MS,
            "cpu1_steal_ms": steal * TICK_MS,
            "mid_run_ms": sum(schedstat(t)[0] for t in tids) / 1e6,
            "napi_wait_ms": sum(schedstat(t)[1] for t in napi) / 1e6,
            "tids": sorted(tids),
        }

    @staticmethod
    def delta(a, b):
        d = {k: b[k] - a[k] for k in ("veth_ring_drops", "sink_side_drops", "client_side_drops", "cpu1_steal_ms",
                                       "napi_wait_ms")}
        # Threads that appeared during the trial (a NAPI thread re-created) count from zero.
        d["cpu1_others_ms"] = max(0.0, (b["cpu1_busy_ms"] - a["cpu1_busy_ms"]) - (b["mid_run_ms"] - a["mid_run_ms"]))
        for k in ("cpu1_steal_ms", "napi_wait_ms", "cpu1_others_ms"):
            d[k] = round(d[k], 1)
        return d


def fmt(d):
    """One line for the log."""
    return (f"lost at the veth ring into the middle {d['veth_ring_drops']}, after it {d['sink_side_drops']}, "
            f"on the way back {d['client_side_drops']}; "
            f"CPU1: other tasks {d['cpu1_others_ms']:.0f} ms, steal {d['cpu1_steal_ms']:.0f} ms; "
            f"NAPI thread waited {d['napi_wait_ms']:.1f} ms")


LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c1.lua")
# Client-side TCP counters (nstat) that show a lost segment or a timeout.
CLIENT_LOSS = ("TcpRetransSegs", "TcpExtTCPSynRetrans", "TcpExtTCPTimeouts", "TcpExtTCPLossProbes",
               "TcpActiveOpens", "TcpAttemptFails")


def nstat(ns):
    out = _run(["nstat", "-az"] + list(CLIENT_LOSS), ns)
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in CLIENT_LOSS:
            got[parts[0]] = int(parts[1])
    return {k: got.get(k, 0) for k in CLIENT_LOSS}


def one_conn(probe, ns, url, secs, cpu=0):
    """The long one-connection trial: wrk -t1 -c1 (`Connection: close`, so one TCP connection per
    redirect, one at a time) for `secs` from namespace `ns` on `cpu`; wrk's own histogram gives
    p50-max (us). Around it: the client's TCP loss counters (a retransmitted SYN or segment is a
    frame lost somewhere) and `probe`'s loss location and interference."""
    p0, n0 = probe.read(), nstat(ns)
    r = subprocess.run(["ip", "netns", "exec", ns, "taskset", "-c", str(cpu), "wrk", "-t1", "-c1", f"-d{secs}s",
                        "-s", LUA, "-H", "Connection: close", url],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=secs + 60)
    p1, n1 = probe.read(), nstat(ns)
    line = next((x for x in r.stdout.splitlines() if x.startswith("ONECONN ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no ONECONN line: {r.stdout[-1500:]}")
    v = {k: int(x) for k, x in (kv.split("=") for kv in line.split()[1:])}
    out = {"requests": v["requests"], "errors": v["errors"], "secs": secs, "rps": v["requests"] / secs,
           "p50_us": v["p50"], "p90_us": v["p90"], "p99_us": v["p99"], "p999_us": v["p999"], "max_us": v["max"],
           "client": {k: n1[k] - n0[k] for k in CLIENT_LOSS}}
    out.update(Probe.delta(p0, p1))
    out["retransmissions"] = out["client"]["TcpRetransSegs"]
    return out


def fmt_one(name, o):
    return (f"  {name} one connection at a time, {o['secs']} s: {o['requests']:,} redirects ({o['rps']:,.0f}/s), "
            f"p50 {o['p50_us']} us p99 {o['p99_us']} us p99.9 {o['p999_us']} us max {o['max_us'] / 1e3:.1f} ms; "
            f"client retransmissions {o['retransmissions']} (SYN {o['client']['TcpExtTCPSynRetrans']}), "
            f"errors {o['errors']}; " + fmt(o))
