//! The live summary line `detour run` prints every `--summary-secs`, and its totals line
//! when it stops.

use detour_control::Control;
use detour_dataplane::Counters;
use hdrhistogram::Histogram;
use std::time::Duration;

fn rate(now: u64, before: u64, secs: f64) -> String {
    let r = now.saturating_sub(before) as f64 / secs.max(1e-3);
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

pub fn summary_line(
    up: Duration,
    secs: f64,
    a: &Counters,
    b: &Counters,
    h: &Histogram<u64>,
    c: &Control,
) -> String {
    let workers = c.stats.workers();
    let per_worker: Vec<String> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| format!("w{i}:{}", w.as_ref().map_or(0, |w| w.counters.rx)))
        .collect();
    let epoch = workers
        .iter()
        .map(|w| w.as_ref().map_or(0, |w| w.epoch))
        .min()
        .unwrap_or(0);
    format!(
        "[{:>6.1}s] rx {}/s tx {}/s | redirects {}/s syn-acks {}/s | to-real {}/s to-client {}/s | drops {}/s | batch p50 {}us p99 {}us ({} batches) | frames {} | epoch {}",
        up.as_secs_f64(),
        rate(b.rx, a.rx, secs),
        rate(b.tx, a.tx, secs),
        rate(b.redirects, a.redirects, secs),
        rate(b.syn_acks, a.syn_acks, secs),
        rate(b.to_real, a.to_real, secs),
        rate(b.to_client, a.to_client, secs),
        rate(b.drops(), a.drops(), secs),
        h.value_at_quantile(0.5) / 1000,
        h.value_at_quantile(0.99) / 1000,
        h.len(),
        per_worker.join(" "),
        epoch
    )
}

pub fn totals_line(t: &Counters) -> String {
    let drops: Vec<String> = t
        .drops_by_reason()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    format!(
        "rx {} tx {} pass {} redirects {} syn-acks {} to-real {} to-client {} arp {} echo {} drops {} [{}]",
        t.rx,
        t.tx,
        t.pass,
        t.redirects,
        t.syn_acks,
        t.to_real,
        t.to_client,
        t.arp_replies,
        t.echo_replies,
        t.drops(),
        drops.join(" ")
    )
}
