"""The `compare` section of detour's benchmark (issue 10: "no path loses speed ... in the same
run"), called from perf/bench.py with that module as `b` (run as __main__, so passed in rather
than imported). `--before-bin PATH` names another build of detour (e.g. the commit before the
data path's split, built in a scratch worktree); each run puts this build ("now") and that one
("before") through the same trials, one after the other on the same topology, in an order that
alternates between runs (now first in odd runs, before first in even ones) so that a drift of
the machine's load during a run does not favour either:

1. the forwarding search (`b.search`: the highest rate with < 0.1 % loss of 60-byte TCP to the
   DIP, 10,000 flows, then the overload trial), with the middle's own CPU per frame;
2. redirects with wrk (-c50, a new connection per redirect) and the server's CPU per redirect;
3. one redirect at a time (wrk -c1, `probes.one_conn`) with the server's CPU per redirect, and
   the server plus dtbm0's NAPI thread's (the CPU each process spent over the trial / the
   redirects it answered).

The report gives per run the ratio now / before of each figure (the machine's state is common
to both halves of a run) and their median. Every process is started through `b.start_detour`
(in b.PROCS, torn down by the bench's trap) and stopped in `finally`.
"""

import os

# (key, label, getter, higher is better)
FIGURES = (
    ("fwd_no_loss_mpps", "forwarding, highest rate with < 0.1 % loss (Mpps)", lambda r: r["fwd"]["no_loss_pps"] / 1e6, True),
    ("fwd_overload_mpps", "forwarding, delivered under overload (Mpps)",
     lambda r: r["fwd"]["overload"]["received_pps"] / 1e6, True),
    ("fwd_mid_ns", "forwarding, server + NAPI CPU per frame at the no-loss rate (ns)",
     lambda r: (r["fwd"]["no_loss"] or {}).get("mid_ns_per_frame"), False),
    ("redir_rps", "redirects/s, wrk -c50", lambda r: r["redir"][50]["rps"], True),
    ("redir_server_us", "redirect (wrk -c50), server CPU per redirect (us)",
     lambda r: _us(r["redir"][50]["server_cpu_s_per_100k"]), False),
    ("redir_mid_us", "redirect (wrk -c50), server + NAPI CPU per redirect (us)",
     lambda r: _us(r["redir"][50]["mid_cpu_s_per_100k"]), False),
    ("one_rps", "one redirect at a time, redirects/s", lambda r: r["redir"]["one"]["rps"], True),
    ("one_p50_us", "one redirect at a time, p50 (us)", lambda r: r["redir"]["one"]["p50_us"], False),
    ("one_server_us", "one redirect at a time, server CPU per redirect (us)", lambda r: r["one_cpu"]["server_us"], False),
    ("one_mid_us", "one redirect at a time, server + NAPI CPU per redirect (us)", lambda r: r["one_cpu"]["mid_us"], False),
)


def _us(s_per_100k):
    return s_per_100k * 10 if s_per_100k is not None else None


def _one_cpu(b, pid, secs):
    """The one-at-a-time trial with the CPU the server (and dtbm0's NAPI thread) spent on it."""
    b.SERVER_PIDS[:] = [pid]
    c0, n0 = b.proc_cpu([pid]), b.proc_cpu(b.napi_pids())
    o = b.probes.one_conn(b.probe(), b.NS_GEN, f"http://{b.VIP}/", secs)
    c1, n1 = b.proc_cpu([pid]), b.proc_cpu(b.napi_pids())
    n = o["requests"]
    cpu = {"server_us": (c1 - c0) * 1e6 / n if n else None, "mid_us": (c1 - c0 + n1 - n0) * 1e6 / n if n else None}
    return o, cpu


def _one_build(b, name, binary, fwd_cfg, wrk_secs, one_secs):
    base = b.DETOUR
    b.DETOUR = binary
    try:
        p, logp = b.start_detour()
    finally:
        b.DETOUR = base
    try:
        fwd = b.search(f"detour ({name})", "flows", b.sink_count, fwd_cfg)
        redir = {50: b.redirect_bench(f"detour ({name}) c50", f"http://{b.VIP}/", lambda: [p.pid], wrk_secs, 50)}
        o, cpu = _one_cpu(b, p.pid, one_secs)
        b.log(b.probes.fmt_one(f"detour ({name})", o) + f"; server CPU {cpu['server_us'] or 0:.1f} us/redirect, "
              f"server + NAPI {cpu['mid_us'] or 0:.1f} us/redirect")
        redir["one"] = o
    finally:
        b.SERVER_PIDS.clear()
        b.stop_detour(p)
    return {"binary": binary, "fwd": fwd, "redir": redir, "one_cpu": cpu}


def run_once(b, before_bin, run, fwd_cfg, wrk_secs, one_secs, results):
    """One run: both builds through the same trials, the order alternating with `run`."""
    if not before_bin:
        if run == 0:
            b.log("compare: skipped (no --before-bin)")
        return
    if not os.access(before_bin, os.X_OK):
        raise RuntimeError(f"--sections compare needs --before-bin: not an executable (got {before_bin!r})")
    order = [("now", b.DETOUR), ("before", before_bin)]
    if run % 2:
        order.reverse()
    r = {"order": [n for n, _ in order]}
    for name, binary in order:
        b.log(f"compare: detour ({name}) {binary}")
        r[name] = _one_build(b, name, binary, fwd_cfg, wrk_secs, one_secs)
    results.setdefault("compare", []).append(r)


def _med(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _f(x):
    return "–" if x is None else f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"


def report(results, summary, heads):
    """The section's Markdown lines; per-run ratios now / before and their medians into `summary`."""
    runs = results.get("compare") or []
    if not runs:
        return []
    body = ["## Same-run comparison: this build (now) against another build of detour (before)", "",
            f"before: `{runs[0]['before']['binary']}`; now: `{runs[0]['now']['binary']}`. In each run both go through the "
            "same trials one after the other (order per run: " + "; ".join("/".join(r["order"]) for r in runs) + "). "
            "Ratio = now / before of the same run; for rates > 1 is faster, for CPU and latency < 1 is cheaper.", "",
            "| figure | now (median) | before (median) | now / before per run | median ratio |", "|---|---|---|---|---|"]
    for key, label, get, higher in FIGURES:
        now = [get(r["now"]) for r in runs]
        before = [get(r["before"]) for r in runs]
        ratios = [a / c if a is not None and c else None for a, c in zip(now, before)]
        m = _med(ratios)
        summary[f"compare:{key}"] = {"now_median": _med(now), "before_median": _med(before), "now": now,
                                     "before": before, "ratios": ratios, "ratio_median": m, "higher_is_better": higher}
        body.append(f"| {label} | {_f(_med(now))} | {_f(_med(before))} | "
                    f"{', '.join('–' if x is None else f'{x:.2f}' for x in ratios)} | **{_f(m)}** |")
        if key in ("fwd_no_loss_mpps", "one_mid_us", "redir_rps"):
            heads.append((f"now / before: {label}", ">= 1.0" if higher else "<= 1.0", f"{_f(m)}", ""))
    body.append("")
    return body
