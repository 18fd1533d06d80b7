-- wrk script of the one-connection trial (perf/probes.py): prints the request count and the
-- latency percentiles (us) of wrk's own histogram, which --latency does not (p99.9, max).
done = function(summary, latency, requests)
  io.write(string.format("ONECONN requests=%d errors=%d p50=%d p90=%d p99=%d p999=%d max=%d\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
