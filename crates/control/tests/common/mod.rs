//! Shared by the control plane's tests: a control plane on a config text, in a scratch
//! directory, with fixed MACs in place of the kernel's neighbour table.
#![allow(dead_code)]

use detour_config::Snapshot;
use detour_control::stats::new_hist;
use detour_control::{Control, Neighbours, Report};
use detour_dataplane::{Counters, RealCounters};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// Every real and the gateway at one MAC, except addresses listed as unresolved.
pub struct FixedMacs(pub Vec<IpAddr>);

impl Neighbours for FixedMacs {
    fn fill(&mut self, s: &mut Snapshot, gateway: Ipv4Addr, missing: &mut Vec<String>) {
        for r in &mut s.reals {
            if self.0.contains(&r.addr.ip()) {
                missing.push(format!("real {}", r.addr));
            } else {
                r.mac = [2, 0, 0, 0, 0, 1];
            }
        }
        s.gateway_mac = [2, 0, 0, 0, 0, 0xfe];
        let _ = gateway;
    }
}

/// A fresh directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("detour-control-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A control plane running `text` (written to `<dir>/detour.conf`), with `workers` workers.
pub fn control(dir: &std::path::Path, text: &str, workers: usize) -> Control {
    let path = dir.join("detour.conf");
    std::fs::write(&path, text).unwrap();
    let model = detour_config::load(text, "t").unwrap();
    Control::new(
        path,
        model,
        "198.18.0.100".parse().unwrap(),
        workers,
        Box::new(FixedMacs(Vec::new())),
    )
}

pub fn config(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../configs/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The line of `text` starting with `prefix`.
pub fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{text}"))
}

/// A synthetic report of `worker` on `epoch`: `per_real` packets (and connections opened,
/// one closed) for every real, `per_url` redirects for every URL.
pub fn report(c: &Control, worker: usize, epoch: u64, per_real: u64, per_url: u64) -> Report {
    let s = &c.snap;
    assert_eq!(s.epoch, epoch);
    let mut counters = Counters::default();
    counters.rx = 100 * per_real;
    counters.redirects = per_url * s.urls.len() as u64;
    Report {
        worker,
        counters,
        batches: 10,
        hist: new_hist(),
        epoch,
        reals: s
            .reals
            .iter()
            .map(|_| RealCounters {
                to_real: per_real,
                opened: per_real,
                closed: 1,
                ..Default::default()
            })
            .collect(),
        urls: vec![per_url; s.urls.len()],
        sockets: Vec::new(),
    }
}
