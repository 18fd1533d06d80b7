//! The Debian package, installed and run as an operator would: `scripts/package.sh` builds it,
//! `dpkg -i` installs it (binary, conffile, unit, manual pages, completions, the detour user
//! and group), the unit passes `systemd-analyze verify`, and the service runs as its unit says
//! (systemd is not PID 1 on this machine, so the test starts the unit's `ExecStart` itself
//! under the unit's user, group, capabilities and `NoNewPrivileges`, with a `$NOTIFY_SOCKET`
//! standing in for systemd's): ready only once it serves, reloaded by the unit's
//! `ExecReload`, stopped by SIGTERM, then purged. Also: an operator in the detour group uses
//! `detour ctl`, a user outside it is refused; the Grafana dashboard queries only metrics and
//! labels a live `/metrics` has.

use detour_e2e::{lab_config, root, run, Lab, Launch};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

const UNIT: &str = "/lib/systemd/system/detour.service";
const CONF: &str = "/etc/detour/detour.conf";
const SOCKET: &str = "/run/detour/detour.sock";
const OPERATOR: &str = "dtop";
const OUTSIDER: &str = "dtother";

fn must(args: &[&str], secs: u64) -> String {
    let r = run(args, secs);
    assert!(r.ok(), "{args:?}: {r:?}");
    r.stdout
}

/// The values of `key=` in the unit's [Service] section.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key}= missing from the unit"))
        .to_string()
}

/// The package installed for the test's life; purged (and the test users removed) on drop.
struct Installed;

impl Installed {
    fn new() -> Installed {
        let out = must(&[root().join("scripts/package.sh").to_str().unwrap()], 600);
        let deb = root().join(out.trim());
        assert!(deb.exists(), "package.sh printed {out:?}");
        must(&["dpkg", "-i", deb.to_str().unwrap()], 120);
        for (user, group) in [(OPERATOR, true), (OUTSIDER, false)] {
            let _ = run(&["userdel", user], 10);
            must(
                &["useradd", "--no-create-home", "--shell", "/bin/sh", user],
                10,
            );
            if group {
                must(&["usermod", "-aG", "detour", user], 10);
            }
        }
        Installed
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run(&["dpkg", "--purge", "detour"], 120);
        for user in [OPERATOR, OUTSIDER] {
            let _ = run(&["userdel", user], 10);
        }
        let _ = std::fs::remove_dir_all("/run/detour");
    }
}

/// `detour ctl` as `user`.
fn ctl_as(user: &str, command: &str) -> detour_e2e::Run {
    let mut v = vec![
        "runuser",
        "-u",
        user,
        "--",
        "/usr/bin/detour",
        "ctl",
        "--socket",
        SOCKET,
    ];
    v.extend(command.split_whitespace());
    run(&v, 20)
}

/// The unit's ExecStart under the unit's user, group and capabilities (setpriv), as systemd
/// would start it.
fn launch_from_unit(unit: &str, notify: &Path) -> Launch {
    let exec: Vec<String> = unit_value(unit, "ExecStart")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(exec[0], "/usr/bin/detour");
    assert_eq!(exec[1], "run");
    let caps: Vec<String> = unit_value(unit, "AmbientCapabilities")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let caps = caps.join(",");
    assert_eq!(
        unit_value(unit, "CapabilityBoundingSet"),
        unit_value(unit, "AmbientCapabilities")
    );
    let user = unit_value(unit, "User");
    let group = unit_value(unit, "Group");
    let mut wrap: Vec<String> = vec![
        "setpriv".into(),
        format!("--reuid={user}"),
        format!("--regid={group}"),
        "--init-groups".into(),
        format!("--inh-caps=-all,{caps}"),
        format!("--ambient-caps=-all,{caps}"),
        format!("--bounding-set=-all,{caps}"),
    ];
    if unit_value(unit, "NoNewPrivileges") == "yes" {
        wrap.push("--no-new-privs".into());
    }
    // The unit's own --config and --ctl-socket are the Lab's too.
    let mut args = Vec::new();
    let mut it = exec[2..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "--ctl-socket" | "--summary-secs" => {
                let v = it.next().expect("value");
                if a == "--config" {
                    assert_eq!(v, CONF);
                }
                if a == "--ctl-socket" {
                    assert_eq!(v, SOCKET);
                }
            }
            _ => args.push(a.clone()),
        }
    }
    Launch {
        bin: Some(PathBuf::from("/usr/bin/detour")),
        wrap,
        args,
        // systemd connects stderr to the journal and says so.
        env: vec![
            ("NOTIFY_SOCKET".into(), notify.display().to_string()),
            ("JOURNAL_STREAM".into(), "8:4242".into()),
        ],
        config: Some(PathBuf::from(CONF)),
        socket: Some(PathBuf::from(SOCKET)),
    }
}

/// systemd's RuntimeDirectory=detour, RuntimeDirectoryMode=0750, owned by the service user.
fn runtime_dir(unit: &str) {
    assert_eq!(unit_value(unit, "RuntimeDirectory"), "detour");
    let mode = unit_value(unit, "RuntimeDirectoryMode");
    let _ = std::fs::remove_dir_all("/run/detour");
    must(
        &[
            "install",
            "-d",
            "-o",
            "detour",
            "-g",
            "detour",
            "-m",
            &mode,
            "/run/detour",
        ],
        10,
    );
}

fn wait_notify(rx: &UnixDatagram, want: &str, secs: u64) {
    rx.set_read_timeout(Some(Duration::from_secs(secs)))
        .unwrap();
    let mut buf = [0u8; 256];
    loop {
        let n = rx
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {want} from detour within {secs}s: {e}"));
        if String::from_utf8_lossy(&buf[..n]).contains(want) {
            return;
        }
    }
}

#[test]
fn package_installs_runs_least_privileged_reloads_stops_and_purges() {
    let pkg = Installed::new();
    // Files as a user finds them.
    for f in [
        "/usr/bin/detour",
        CONF,
        UNIT,
        "/usr/share/man/man1/detour.1.gz",
        "/usr/share/man/man1/detour-run.1.gz",
        "/usr/share/bash-completion/completions/detour",
        "/usr/share/doc/detour/grafana-detour.json",
    ] {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    let conffiles = must(&["dpkg-query", "-W", "-f", "${Conffiles}", "detour"], 10);
    assert!(
        conffiles.contains(CONF),
        "{CONF} is not a conffile: {conffiles}"
    );
    assert!(must(&["getent", "passwd", "detour"], 10).contains("nologin"));
    let stat = must(&["stat", "-c", "%U:%G %a", CONF], 10);
    assert_eq!(stat.trim(), "detour:detour 640", "config owner and mode");
    must(&["/usr/bin/detour", "check", CONF], 10);
    let page = must(&["zcat", "/usr/share/man/man1/detour-run.1.gz"], 20);
    assert!(
        page.contains(r"\-\-ctl\-mode"),
        "detour-run(1) lacks --ctl-mode:\n{page}"
    );

    let unit = std::fs::read_to_string(UNIT).unwrap();
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let v = run(&["systemd-analyze", "verify", UNIT], 30);
        assert!(v.ok(), "systemd-analyze verify: {v:?}");
    }
    runtime_dir(&unit);
    let notify_path = std::env::temp_dir().join(format!("detour-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    must(&["chown", "detour", notify_path.to_str().unwrap()], 10);

    // The operator edits the packaged config for this site (the lab), keeping its owner.
    let mut lab = Lab::start_with(
        &lab_config("metrics 127.0.0.1:9100"),
        1,
        launch_from_unit(&unit, &notify_path),
    );
    must(&["chown", "detour:detour", CONF], 10);
    wait_notify(&notify, "READY=1", 20);
    // Ready means serving: the control socket answers and a client is redirected.
    assert!(lab.code_and_location("http://www.lab/a").starts_with("302"));

    // It runs as detour, with exactly the unit's capabilities and nothing else.
    let pid = lab.detour_pid().expect("detour runs").to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let uid = must(&["id", "-u", "detour"], 10);
    assert!(field("Uid:").starts_with(uid.trim()), "{status}");
    // Set-up needed CAP_NET_RAW (13), CAP_IPC_LOCK (14) and CAP_PERFMON (38) too; once it
    // serves, the control thread keeps only CAP_NET_ADMIN (12) and CAP_BPF (39), in every
    // set, and no other thread has more (the workers and listeners have none).
    let runtime = (1u64 << 12) | (1 << 39);
    for set in ["CapEff:", "CapPrm:", "CapAmb:"] {
        let v = u64::from_str_radix(&field(set), 16).unwrap();
        assert_eq!(v, runtime, "{set} {v:#x}, want {runtime:#x}");
    }
    let mut bare = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let st = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        let eff = st
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap_or(0);
        assert_eq!(eff & !runtime, 0, "a thread holds {eff:#x}:\n{st}");
        bare += usize::from(eff == 0);
    }
    assert!(
        bare >= 2,
        "the two workers should hold no capability ({bare} threads bare)"
    );
    assert_eq!(field("NoNewPrivs:"), "1");

    // The control socket: the detour group's operators in, everyone else out.
    let sock = must(&["stat", "-c", "%U:%G %a", SOCKET], 10);
    assert_eq!(
        sock.trim(),
        "detour:detour 660",
        "control socket owner and mode"
    );
    let op = ctl_as(OPERATOR, "show real");
    assert!(
        op.ok() && op.stdout.contains("198.18.1.11:8080"),
        "operator: {op:?}"
    );
    let out = ctl_as(OUTSIDER, "show real");
    assert!(!out.ok(), "a user outside the detour group got in: {out:?}");
    assert!(out.stderr.contains("ermission denied"), "{out:?}");

    // ExecReload: a changed config file is applied.
    let reload = unit_value(&unit, "ExecReload");
    assert_eq!(reload, "/bin/kill -HUP $MAINPID");
    let mut conf = std::fs::read_to_string(CONF).unwrap();
    conf.push_str("weight 198.18.0.2 7\n");
    std::fs::write(CONF, conf).unwrap();
    must(&["kill", "-HUP", &pid], 10);
    wait_notify(&notify, "RELOADING=1", 10);
    wait_notify(&notify, "READY=1", 10);
    let log = lab.log_text();
    assert!(
        log.contains("<6>detour: info  start.ready: ")
            && log.contains("<6>detour: info  config.applied: SIGHUP reload: "),
        "journal lines with priority, level and event:\n{log}"
    );
    let real = lab.ctl_ok("show real");
    assert!(
        real.lines()
            .any(|l| l.contains("198.18.1.11:8080") && l.split_whitespace().any(|w| w == "7")),
        "weight 7 after the reload:\n{real}"
    );

    // Stop: SIGTERM (systemd's default), STOPPING=1, exit 0.
    must(&["kill", "-TERM", &pid], 10);
    wait_notify(&notify, "STOPPING=1", 10);
    assert_eq!(lab.wait_exit(15), Some(0), "{}", lab.log_text());
    drop(lab);
    let _ = std::fs::remove_file(&notify_path);

    // Purge removes the config, the unit and the user.
    drop(pkg);
    for f in ["/usr/bin/detour", CONF, UNIT] {
        assert!(!Path::new(f).exists(), "{f} left after purge");
    }
    assert!(
        !run(&["getent", "passwd", "detour"], 10).ok(),
        "user left after purge"
    );
}

/// Metric names and the labels each query uses, from the dashboard's PromQL.
fn dashboard_queries(json: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in json.lines() {
        let Some(rest) = line.trim().strip_prefix("\"expr\": \"") else {
            continue;
        };
        let expr = rest.trim_end_matches(['"', ',']).replace("\\\"", "\"");
        let by: BTreeSet<String> = expr
            .split("by (")
            .skip(1)
            .flat_map(|s| {
                s.split(')')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|l| l.trim().to_string())
            })
            .collect();
        let mut i = 0;
        while let Some(p) = expr[i..].find("detour_") {
            let start = i + p;
            let name: String = expr[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let after = &expr[start + name.len()..];
            let mut labels = by.clone();
            if let Some(m) = after.strip_prefix('{') {
                for matcher in m.split('}').next().unwrap_or("").split(',') {
                    let l: String = matcher
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    labels.insert(l);
                }
            }
            labels.remove("instance"); // added by Prometheus at scrape time
            labels.remove("");
            out.entry(name.clone()).or_default().extend(labels);
            i = start + name.len();
        }
    }
    out
}

#[test]
fn grafana_dashboard_queries_only_metrics_and_labels_that_exist() {
    let json = std::fs::read_to_string(root().join("configs/grafana-detour.json")).unwrap();
    let wanted = dashboard_queries(&json);
    assert!(
        wanted.len() >= 10,
        "too few metrics found in the dashboard: {wanted:?}"
    );
    let lab = Lab::start(&lab_config("metrics 127.0.0.1:9100"), 1);
    for i in 0..5 {
        lab.code_and_location(&format!("http://www.lab/g{i}"));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let m = lab.director(
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://127.0.0.1:9100/metrics",
        ],
        10,
    );
    assert!(m.ok(), "{m:?}");
    let mut have: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in m
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name: String = l
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let labels = have.entry(name.clone()).or_default();
        if let Some(body) = l[name.len()..].strip_prefix('{') {
            for kv in body.split('}').next().unwrap_or("").split(',') {
                if let Some((k, _)) = kv.split_once('=') {
                    labels.insert(k.to_string());
                }
            }
        }
    }
    for (metric, labels) in &wanted {
        let got = have
            .get(metric)
            .unwrap_or_else(|| panic!("the dashboard queries {metric}, which /metrics lacks"));
        for l in labels {
            assert!(got.contains(l), "{metric} has no label {l} (has {got:?})");
        }
    }
    println!(
        "dashboard: {} metrics checked against a live /metrics",
        wanted.len()
    );
}
