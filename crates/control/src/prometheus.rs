//! The Prometheus text exposition of the control plane's statistics (monotonic: `clear
//! statistics` does not touch it). Rendered on the control thread and published; scrapes
//! are served from the published text by other threads.

use crate::running::Control;
use std::fmt::Write as _;

impl Control {
    pub fn prometheus(&self) -> String {
        let t = self.stats.totals_ever();
        let s = &self.snap;
        let mut o = String::new();
        let _ = writeln!(o, "# HELP detour_up_seconds Seconds since detour started.\n# TYPE detour_up_seconds gauge");
        let _ = writeln!(
            o,
            "detour_up_seconds {:.3}",
            self.started.elapsed().as_secs_f64()
        );
        let _ = writeln!(
            o,
            "# TYPE detour_config_epoch gauge\ndetour_config_epoch {}",
            self.epoch
        );
        let _ = writeln!(o, "# HELP detour_events_total Frames and answers by kind, all workers.\n# TYPE detour_events_total counter");
        for (name, v) in t.counters.fields() {
            let _ = writeln!(o, "detour_events_total{{kind=\"{name}\"}} {v}");
        }
        let _ = writeln!(o, "# HELP detour_drops_total Frames dropped, by reason.\n# TYPE detour_drops_total counter");
        for (r, n) in t.counters.drops_by_reason() {
            let _ = writeln!(o, "detour_drops_total{{reason=\"{r}\"}} {n}");
        }
        let _ = writeln!(o, "# HELP detour_redirects_total Redirects sent, by URL.\n# TYPE detour_redirects_total counter");
        for (i, u) in s.urls.iter().enumerate() {
            let n = t.objects.urls.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "detour_redirects_total{{url=\"{}\",code=\"{}\"}} {n}",
                u.id, u.code
            );
        }
        self.prometheus_reals(&t, &mut o);
        self.prometheus_workers(&mut o);
        o
    }

    fn prometheus_reals(&self, t: &crate::stats::Totals, o: &mut String) {
        let _ = writeln!(o, "# TYPE detour_real_packets_total counter\n# TYPE detour_real_bytes_total counter\n# TYPE detour_real_connections_opened_total counter\n# TYPE detour_real_active_connections gauge\n# TYPE detour_real_in_service gauge");
        let active = self.active_conns();
        for (i, r) in self.snap.reals.iter().enumerate() {
            let rc = t.objects.reals.get(i).copied().unwrap_or_default();
            let l = format!("real=\"{}\"", r.id);
            for (dir, pkts, bytes) in [
                ("to_real", rc.to_real, rc.to_real_bytes),
                ("to_client", rc.to_client, rc.to_client_bytes),
            ] {
                let _ = writeln!(
                    o,
                    "detour_real_packets_total{{{l},direction=\"{dir}\"}} {pkts}"
                );
                let _ = writeln!(
                    o,
                    "detour_real_bytes_total{{{l},direction=\"{dir}\"}} {bytes}"
                );
            }
            let _ = writeln!(
                o,
                "detour_real_connections_opened_total{{{l}}} {}",
                rc.opened
            );
            let _ = writeln!(
                o,
                "detour_real_active_connections{{{l}}} {}",
                active.get(i).copied().unwrap_or(0)
            );
            let _ = writeln!(
                o,
                "detour_real_in_service{{{l},state=\"{}\"}} {}",
                r.state.keyword(),
                u8::from(r.state.takes_new())
            );
        }
    }

    fn prometheus_workers(&self, o: &mut String) {
        let _ = writeln!(o, "# HELP detour_batch_seconds Batch service time per worker.\n# TYPE detour_batch_seconds summary");
        for (i, w) in self.stats.workers().iter().enumerate() {
            let Some(w) = w else { continue };
            for q in [0.5, 0.9, 0.99, 0.999] {
                let _ = writeln!(
                    o,
                    "detour_batch_seconds{{worker=\"{i}\",quantile=\"{q}\"}} {:.9}",
                    w.hist.value_at_quantile(q) as f64 / 1e9
                );
            }
            let _ = writeln!(
                o,
                "detour_batch_seconds_count{{worker=\"{i}\"}} {}",
                w.batches
            );
            let _ = writeln!(
                o,
                "detour_worker_frames_total{{worker=\"{i}\",direction=\"rx\"}} {}",
                w.counters.rx
            );
            let _ = writeln!(
                o,
                "detour_worker_frames_total{{worker=\"{i}\",direction=\"tx\"}} {}",
                w.counters.tx
            );
            for (name, v) in &w.sockets {
                let _ = writeln!(
                    o,
                    "detour_xsk_socket_total{{worker=\"{i}\",counter=\"{name}\"}} {v}"
                );
            }
        }
    }
}
