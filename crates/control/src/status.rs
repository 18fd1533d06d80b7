//! The status page's data (`GET /status.json` on the metrics listener): the same numbers as
//! `show statistics` (counts since the last `clear statistics`), the reals' states and for
//! how long, the rotations and the health checks, as one JSON object. The page itself
//! (plain HTML and a little script, no external assets) computes rates and keeps the charts
//! of the last minutes from successive answers.

use crate::running::Control;
use crate::show::CheckStatus;
use std::fmt::Write as _;

/// A JSON string literal of `s` (quotes, backslashes and control characters escaped).
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Control {
    /// The status page's JSON; `checks` are the health checks' states, `now_ms` the wall
    /// clock (the page's rates divide by its differences).
    pub fn status_json(&self, checks: &[CheckStatus], now_ms: u64) -> String {
        let mut o = String::from("{");
        let _ = write!(
            o,
            "\"now_ms\":{now_ms},\"up_secs\":{:.3},\"epoch\":{},\"health_transitions\":{},",
            self.started.elapsed().as_secs_f64(),
            self.epoch,
            self.health_transitions
        );
        self.status_virtuals(&mut o);
        self.status_reals(checks, &mut o);
        let c = self.stats.totals().counters;
        let events: Vec<String> = c
            .fields()
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", json_str(k)))
            .collect();
        let drops: Vec<String> = c
            .drops_by_reason()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{}:{n}", json_str(r)))
            .collect();
        let _ = write!(
            o,
            ",\"events\":{{{}}},\"drops\":{{{}}},",
            events.join(","),
            drops.join(",")
        );
        self.status_workers(&mut o);
        o.push('}');
        o
    }

    fn status_virtuals(&self, o: &mut String) {
        let s = &self.snap;
        let t = self.stats.totals();
        let url = |i: u32| t.objects.urls.get(i as usize).copied().unwrap_or(0);
        let vs: Vec<String> = s
            .virtuals
            .iter()
            .map(|v| {
                let members: Vec<String> = v
                    .members
                    .iter()
                    .map(|m| {
                        let u = &s.urls[m.url as usize];
                        format!(
                            "{{\"name\":{},\"state\":{},\"weight\":{},\"redirects\":{},\"url\":{}}}",
                            json_str(&u.id),
                            json_str(m.state.keyword()),
                            m.weight,
                            url(m.url),
                            json_str(&format!("{} {}", u.code, u.template.as_str()))
                        )
                    })
                    .collect();
                format!(
                    "{{\"id\":{},\"state\":{},\"predictor\":{},\"members\":[{}]}}",
                    json_str(&v.id.to_string()),
                    json_str(v.state.keyword()),
                    json_str(v.predictor.keyword()),
                    members.join(",")
                )
            })
            .collect();
        let _ = write!(o, "\"virtuals\":[{}]", vs.join(","));
    }

    fn status_reals(&self, checks: &[CheckStatus], o: &mut String) {
        let t = self.stats.totals();
        let active = self.active_conns();
        let rs: Vec<String> = self
            .snap
            .reals
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let rc = t.objects.reals.get(i).copied().unwrap_or_default();
                let health = checks.iter().find(|c| c.addr == r.addr).map_or(
                    "null".to_string(),
                    |c| {
                        format!(
                            "{{\"up\":{},\"for_secs\":{:.1},\"checks\":{},\"failures\":{},\"last\":{}}}",
                            c.up,
                            c.since.elapsed().as_secs_f64(),
                            c.checks,
                            c.failures,
                            json_str(&c.last)
                        )
                    },
                );
                format!(
                    "{{\"id\":{},\"dip\":{},\"state\":{},\"since_secs\":{:.1},\"weight\":{},\"pkts_in\":{},\"bytes_in\":{},\"pkts_out\":{},\"bytes_out\":{},\"active\":{},\"opened\":{},\"health\":{health}}}",
                    json_str(&r.id),
                    r.dip.map_or("null".to_string(), |d| json_str(&d.to_string())),
                    json_str(r.state.keyword()),
                    self.since(r.addr).as_secs_f64(),
                    r.weight,
                    rc.to_real,
                    rc.to_real_bytes,
                    rc.to_client,
                    rc.to_client_bytes,
                    active.get(i).copied().unwrap_or(0),
                    rc.opened
                )
            })
            .collect();
        let _ = write!(o, ",\"reals\":[{}]", rs.join(","));
    }

    fn status_workers(&self, o: &mut String) {
        let ws: Vec<String> = self
            .stats
            .workers()
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let w = w.as_ref()?;
                let (wc, batches) = self.stats.worker_since_clear(i)?;
                let h = &w.hist;
                Some(format!(
                    "{{\"id\":{i},\"rx\":{},\"tx\":{},\"batches\":{batches},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{},\"epoch\":{}}}",
                    wc.rx,
                    wc.tx,
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.9),
                    h.value_at_quantile(0.99),
                    h.value_at_quantile(0.999),
                    h.max(),
                    w.epoch
                ))
            })
            .collect();
        let _ = write!(o, "\"workers\":[{}]", ws.join(","));
    }
}
