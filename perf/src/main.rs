//! detour-perf: the benchmark harness's packet generator (XDP live frames), its latency
//! sampler, the no-op AF_XDP forwarder baseline and the cost of one ECDSA P-256 signature
//! (`sign`). The orchestration (topology, sink, peers, searches, report) is `perf/bench.py`,
//! run by `scripts/bench.sh`.

mod frames;
mod fwd;
mod gen;
mod lat;
mod sign;

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use frames::{Endpoints, Kind};

#[derive(Parser)]
#[command(name = "detour-perf", about = "detour's benchmark generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send frame templates out of an interface of this network namespace with XDP live
    /// frames (BPF_PROG_TEST_RUN), at a rate, for a bounded count and time. Prints one JSON
    /// object: what was sent.
    Gen(GenArgs),
    /// The no-op AF_XDP forwarder (the ceiling of detour's I/O path): detour's own shared-UMEM
    /// queue I/O and XDP steering program; rewrites the MACs only, port 0 <-> port 1; sleeps in
    /// poll() when idle, as detour's worker. Stops on SIGTERM/SIGINT or after --duration-secs;
    /// prints one JSON object.
    Fwd(FwdArgs),
    /// Sample forwarding latency at a sink interface from the timestamps of `gen --stamp`
    /// (AF_PACKET tap, 1 in --sample frames, kernel receive timestamps). Stops on
    /// SIGTERM/SIGINT or after --duration-secs; prints one JSON object.
    Lat {
        /// The sink's interface (in this network namespace).
        #[arg(long)]
        iface: String,
        /// Sample one in this many stamped frames (a power of two).
        #[arg(long, default_value_t = 16)]
        sample: u32,
        /// Stop after this many seconds (at most 600).
        #[arg(long, default_value_t = 60.0)]
        duration_secs: f64,
    },
    /// The CPU cost of one ECDSA P-256 signature with the workspace's ring (as rustls signs a
    /// TLS 1.3 handshake): rounds of --batch signatures, thread CPU time. Prints one JSON
    /// object.
    Sign {
        /// Signatures per round.
        #[arg(long, default_value_t = 500)]
        batch: u32,
        /// At most this many rounds.
        #[arg(long, default_value_t = 9)]
        rounds: u32,
        /// At most this many seconds (at most 60).
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// Write the compiled XDP object (programs `dtb_gen` and `dtb_pass`) to a file, for
    /// `ip link set dev X xdpdrv obj FILE sec xdp program dtb_pass`.
    BpfObject {
        /// Where to write it.
        path: std::path::PathBuf,
    },
}

#[derive(Parser)]
struct GenArgs {
    /// Interface to send on (its peer receives).
    #[arg(long)]
    iface: String,
    /// Kinds of frames, comma-separated, interleaved: flows, syn, synflood, malformed, requests.
    #[arg(long, default_value = "flows")]
    kinds: String,
    /// Templates (distinct flows / sources) per kind.
    #[arg(long, default_value_t = 10000)]
    flows: u32,
    /// Frames per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Stop after this many frames.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Stop after this many seconds (at most 600).
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Destination MAC (the receiving interface's).
    #[arg(long)]
    dst_mac: String,
    /// Source MAC (default: the sending interface's).
    #[arg(long)]
    src_mac: Option<String>,
    /// Destination of `flows`.
    #[arg(long, default_value = "198.18.0.10")]
    dip: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    dip_port: u16,
    /// Destination of `syn`, `synflood`, `requests`, `hellos`, `malformed`.
    #[arg(long, default_value = "198.18.0.1")]
    vip: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    vip_port: u16,
    /// The director's cookie secret (64 hex digits), for `requests`.
    #[arg(long)]
    cookie_secret: Option<String>,
    /// Frames per test-run batch (1..=256). Frames sent in a batch leave together at its end,
    /// so latency runs use small batches.
    #[arg(long, default_value_t = 256)]
    batch: u32,
    /// Write the send time into every `flows` frame (for `detour-perf lat`).
    #[arg(long)]
    stamp: bool,
}

#[derive(Parser)]
struct FwdArgs {
    /// Port 0: the client side (frames from it leave on port 1).
    #[arg(long)]
    port0: String,
    /// Port 1: the server side.
    #[arg(long)]
    port1: String,
    /// Next hop's MAC behind port 0 (frames sent on port 0 get it).
    #[arg(long)]
    mac0: String,
    /// Next hop's MAC behind port 1.
    #[arg(long)]
    mac1: String,
    /// Addresses steered to the sockets (the DIP), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    owned: Vec<Ipv4Addr>,
    /// Real servers (addr:port) whose replies are steered to the sockets, comma-separated.
    #[arg(long, value_delimiter = ',')]
    reals: Vec<std::net::SocketAddrV4>,
    /// Frames per batch (detour's default).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Queue id.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Stop after this many seconds (at most 3600).
    #[arg(long, default_value_t = 900.0)]
    duration_secs: f64,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC `{s}`"));
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC `{s}`"))?;
    }
    Ok(m)
}

fn parse_secret(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 {
        return Err("cookie secret: need 64 hex digits".into());
    }
    let mut out = [0u8; 32];
    for i in 0..32 {
        out[i] = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|_| "cookie secret: need 64 hex digits".to_string())?;
    }
    Ok(out)
}

fn ifindex(name: &str) -> Result<u32, String> {
    let path = format!("/sys/class/net/{name}/ifindex");
    std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e} (is {name} in this network namespace?)"))?
        .trim()
        .parse()
        .map_err(|e| format!("{path}: {e}"))
}

fn gen_main(a: GenArgs) -> Result<(), String> {
    if !(a.duration > 0.0 && a.duration <= 600.0) {
        return Err("--duration must be in (0, 600] seconds".into());
    }
    if a.flows == 0 {
        return Err("--flows must be at least 1".into());
    }
    let src_mac = match &a.src_mac {
        Some(m) => parse_mac(m)?,
        None => parse_mac(
            &std::fs::read_to_string(format!("/sys/class/net/{}/address", a.iface))
                .map_err(|e| format!("{}: {e}", a.iface))?,
        )?,
    };
    let ep = Endpoints {
        src_mac,
        dst_mac: parse_mac(&a.dst_mac)?,
        dip: a.dip,
        dip_port: a.dip_port,
        vip: a.vip,
        vip_port: a.vip_port,
    };
    let kinds: Vec<Kind> = a
        .kinds
        .split(',')
        .map(|k| Kind::parse(k.trim()).ok_or_else(|| format!("unknown kind `{k}`")))
        .collect::<Result<_, _>>()?;
    let cookies = match &a.cookie_secret {
        Some(s) => Some(detour_dataplane::cookie::Cookies::new(&parse_secret(s)?)),
        None => None,
    };
    if (kinds.contains(&Kind::Requests) || kinds.contains(&Kind::Hellos)) && cookies.is_none() {
        return Err("`requests` and `hellos` need --cookie-secret (the director's)".into());
    }
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let vip = ep.vip.octets();
    let vip_port = ep.vip_port;
    let cookie = |src: Ipv4Addr, sport: u16, isn: u32| -> u32 {
        cookies
            .as_ref()
            .map(|c| {
                c.make(
                    src.octets(),
                    vip,
                    sport,
                    vip_port,
                    isn,
                    Some(1460),
                    now_secs,
                )
            })
            .unwrap_or(0)
    };
    let per_kind: Vec<Vec<frames::Template>> = kinds
        .iter()
        .map(|&k| {
            let t = frames::templates(&ep, k, a.flows, &cookie);
            if a.stamp {
                t.into_iter().map(frames::Template::with_stamp).collect()
            } else {
                t
            }
        })
        .collect();
    // Interleave the kinds: a b c a b c ...
    let mut templates = Vec::new();
    for i in 0..a.flows as usize {
        for k in &per_kind {
            templates.push(k[i].clone());
        }
    }
    templates.truncate(65536);
    let run = gen::Run {
        ifindex: ifindex(&a.iface)?,
        rate_pps: a.rate,
        max_frames: a.count,
        duration: Duration::from_secs_f64(a.duration),
        batch: a.batch,
    };
    let out = gen::generate(&templates, &run)?;
    let st = &out.state;
    let rate = if out.send_secs > 0.0 {
        st.sent as f64 / out.send_secs
    } else {
        0.0
    };
    let mut by_kind = String::new();
    for k in Kind::ALL {
        let n = st.kind[k as usize];
        if n > 0 {
            if !by_kind.is_empty() {
                by_kind.push_str(", ");
            }
            by_kind.push_str(&format!("\"{}\": {n}", k.name()));
        }
    }
    println!(
        "{{\"sent\": {}, \"send_secs\": {:.6}, \"rate_pps\": {:.0}, \"offered_pps\": {}, \
         \"idle_iterations\": {}, \"wall_secs\": {:.3}, \"calls\": {}, \"templates\": {}, \
         \"kinds\": {{{}}}}}",
        st.sent,
        out.send_secs,
        rate,
        a.rate,
        st.idle,
        out.wall_secs,
        out.calls,
        templates.len(),
        by_kind
    );
    Ok(())
}

fn fwd_main(a: FwdArgs) -> Result<(), String> {
    if !(a.duration_secs > 0.0 && a.duration_secs <= 3600.0) {
        return Err("--duration-secs must be in (0, 3600]".into());
    }
    let f = fwd::Fwd {
        ifaces: [a.port0, a.port1],
        next_mac: [parse_mac(&a.mac0)?, parse_mac(&a.mac1)?],
        owned: a.owned,
        reals: a.reals,
        batch: a.batch,
        queue: a.queue,
        duration: Duration::from_secs_f64(a.duration_secs),
    };
    let j = fwd::run(&f)?;
    println!("{j}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Gen(a) => gen_main(a),
        Cmd::Fwd(a) => fwd_main(a),
        Cmd::Lat {
            iface,
            sample,
            duration_secs,
        } => {
            if !(duration_secs > 0.0 && duration_secs <= 600.0) {
                Err("--duration-secs must be in (0, 600]".into())
            } else {
                lat::run(&iface, sample, Duration::from_secs_f64(duration_secs))
                    .map(|j| println!("{j}"))
            }
        }
        Cmd::Sign {
            batch,
            rounds,
            secs,
        } => {
            if !(secs > 0.0 && secs <= 60.0) || batch == 0 || rounds == 0 {
                Err("--secs must be in (0, 60], --batch and --rounds positive".into())
            } else {
                sign::run(batch, rounds, secs).map(|j| println!("{j}"))
            }
        }
        Cmd::BpfObject { path } => {
            std::fs::write(&path, gen::PROGRAM).map_err(|e| format!("{}: {e}", path.display()))
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("detour-perf: {e}");
            ExitCode::FAILURE
        }
    }
}
