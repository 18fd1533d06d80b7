//! How the model is written back as commands (the `write` of each entry in
//! [`crate::commands`]): together, in the table's order, they give the canonical config
//! that rebuilds the exact model (`write memory`, `show config`, `check --canonical`).

use crate::lang::{HealthCheck, HealthKind, Role, State};
use crate::model::{Link, Member, Model, VirtualKind};
use crate::predictor::Predictor;
use std::fmt::Write as _;

pub(crate) fn cookie_secret(m: &Model, s: &mut String) {
    if let Some(sec) = &m.settings.cookie_secret {
        s.push_str("cookie-secret ");
        for b in sec {
            let _ = write!(s, "{b:02x}");
        }
        s.push('\n');
    }
}

pub(crate) fn interfaces(m: &Model, s: &mut String) {
    for i in &m.settings.interfaces {
        let role = match i.role {
            Role::Client => "client",
            Role::Server => "server",
        };
        let _ = writeln!(s, "interface {role} {} queues {}", i.name, i.queues);
    }
}

pub(crate) fn cores(m: &Model, s: &mut String) {
    if !m.settings.cores.is_empty() {
        let list: Vec<String> = m.settings.cores.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(s, "cores {}", list.join(","));
    }
}

pub(crate) fn metrics(m: &Model, s: &mut String) {
    if let Some(a) = m.settings.metrics {
        let _ = writeln!(s, "metrics {a}");
    }
}

pub(crate) fn gateway(m: &Model, s: &mut String) {
    if let Some(g) = m.settings.gateway {
        let _ = writeln!(s, "gateway {g}");
    }
}

pub(crate) fn health_checks(m: &Model, s: &mut String) {
    if let Some(h) = &m.settings.default_health {
        let _ = writeln!(s, "health-check all {}", health_text(h));
    }
    for r in &m.reals {
        if let Some(h) = &r.health {
            let _ = writeln!(s, "health-check {} {}", r.addr, health_text(h));
        }
    }
}

pub(crate) fn reals(m: &Model, s: &mut String) {
    for r in &m.reals {
        let _ = writeln!(s, "real {}", r.addr);
    }
}

/// Primary virtuals and DIPs in the model's order (so a reload numbers them alike).
pub(crate) fn virtuals_and_dips(m: &Model, s: &mut String) {
    for v in &m.virtuals {
        match &v.kind {
            VirtualKind::Primary { .. } => {
                let tls = if v.tls { " tls" } else { "" };
                let _ = writeln!(s, "virtual {}{tls}", v.addr);
            }
            VirtualKind::Dip { real } => {
                let ra = m.reals[*real].addr;
                if ra == v.addr {
                    let _ = writeln!(s, "dip {}", v.addr);
                } else {
                    let _ = writeln!(s, "dip {} real {}", v.addr, ra);
                }
            }
        }
    }
}

pub(crate) fn urls(m: &Model, s: &mut String) {
    for u in &m.urls {
        let _ = writeln!(s, "url {} {} {}", u.id, u.template.as_str(), u.code);
    }
}

pub(crate) fn links(m: &Model, s: &mut String) {
    for u in &m.urls {
        if let Some(l) = u.link {
            let t = match l {
                Link::Real(r) => Model::addr_id(m.reals[r].addr),
                Link::Virtual(v) => Model::addr_id(m.virtuals[v].addr),
            };
            let _ = writeln!(s, "link {} {t}", u.id);
        }
    }
}

/// Weights of reals, then of URLs that do not take a real's.
pub(crate) fn weights(m: &Model, s: &mut String) {
    for r in &m.reals {
        if r.weight != 1 {
            let _ = writeln!(s, "weight {} {}", r.addr, r.weight);
        }
    }
    for u in &m.urls {
        if u.weight != 1 && !matches!(u.link, Some(Link::Real(_))) {
            let _ = writeln!(s, "weight {} {}", u.id, u.weight);
        }
    }
}

pub(crate) fn binds(m: &Model, s: &mut String) {
    for v in &m.virtuals {
        if let VirtualKind::Primary { members, .. } = &v.kind {
            if !members.is_empty() {
                let ids: Vec<String> = members
                    .iter()
                    .map(|mem| match *mem {
                        Member::Real(r) => Model::addr_id(m.reals[r].addr),
                        Member::Url(u) => m.urls[u].id.clone(),
                    })
                    .collect();
                let _ = writeln!(s, "bind {} {}", v.addr, ids.join(" "));
            }
        }
    }
}

pub(crate) fn predictors(m: &Model, s: &mut String) {
    for v in &m.virtuals {
        if let VirtualKind::Primary { predictor, .. } = &v.kind {
            if *predictor != Predictor::Weighted {
                let _ = writeln!(s, "predictor {} {}", v.addr, predictor.keyword());
            }
        }
    }
}

pub(crate) fn backups(m: &Model, s: &mut String) {
    for r in &m.reals {
        if let Some(b) = r.backup {
            let _ = writeln!(s, "backup {} {}", r.addr, m.target_id(b));
        }
    }
    for v in &m.virtuals {
        if let Some(b) = v.backup {
            let _ = writeln!(s, "backup {} {}", v.addr, m.target_id(b));
        }
    }
}

/// States other than in service (the operator's; health checks' are never written).
pub(crate) fn states(m: &Model, s: &mut String) {
    for r in &m.reals {
        if r.state != State::InService {
            let _ = writeln!(s, "out-of-service real {} {}", r.addr, r.state.keyword());
        }
    }
    for v in &m.virtuals {
        if v.state != State::InService && matches!(v.kind, VirtualKind::Primary { .. }) {
            let _ = writeln!(s, "out-of-service virtual {} {}", v.addr, v.state.keyword());
        }
    }
    for u in &m.urls {
        if u.state != State::InService {
            let _ = writeln!(s, "out-of-service url {} {}", u.id, u.state.keyword());
        }
    }
}

fn health_text(h: &HealthCheck) -> String {
    let kind = match &h.kind {
        HealthKind::None => "none".to_string(),
        HealthKind::Tcp => "tcp".to_string(),
        HealthKind::Http { path, expect } => format!("http path {path} expect {expect}"),
    };
    format!(
        "{kind} interval {}ms timeout {}ms rise {} fall {}",
        h.interval.as_millis(),
        h.timeout.as_millis(),
        h.rise,
        h.fall
    )
}
