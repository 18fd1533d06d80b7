//! `detour-perf sign`: the CPU cost of one ECDSA P-256 signature (SHA-256, ASN.1 encoding, as
//! rustls's ring provider signs a TLS 1.3 CertificateVerify) with the workspace's own `ring`,
//! on this machine, in the benchmark's run. A fresh key from ring; rounds of `--batch`
//! signatures of a 130-byte message (the size of TLS 1.3's signed content for SHA-256), each
//! round timed in the thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), so other load on the
//! core stretches wall time but not the figure. Bounded: at most `--rounds` rounds and
//! `--secs` seconds. Prints one JSON object: per-round ns per signature (median, min, max).

use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

/// The thread's CPU time so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Sign `batch` messages per round for up to `rounds` rounds or `secs` seconds.
pub fn run(batch: u32, rounds: u32, secs: f64) -> Result<String, String> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| "ring: key generation failed")?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| "ring: key rejected")?;
    // TLS 1.3's signed content: 64 spaces, the context string, a zero byte, a SHA-256 hash.
    let mut msg = [0x20u8; 130];
    msg[64..97].copy_from_slice(b"TLS 1.3, server CertificateVerify");
    msg[97] = 0;
    let start = Instant::now();
    let mut per_sign = Vec::new();
    let mut len = 0usize;
    while per_sign.len() < rounds as usize && start.elapsed().as_secs_f64() < secs {
        let c0 = thread_cpu();
        for i in 0..batch {
            msg[98..102].copy_from_slice(&i.to_le_bytes());
            let sig = key.sign(&rng, &msg).map_err(|_| "ring: sign failed")?;
            len = sig.as_ref().len();
        }
        let spent = thread_cpu().saturating_sub(c0);
        per_sign.push(spent.as_nanos() as f64 / f64::from(batch.max(1)));
    }
    if per_sign.is_empty() {
        return Err("no round finished".into());
    }
    let mut sorted = per_sign.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok(format!(
        "{{\"algorithm\":\"ECDSA P-256 SHA-256 (ring)\",\"rounds\":{},\"signatures_per_round\":{},\"signature_len\":{},\"ns_per_sign_median\":{:.0},\"ns_per_sign_min\":{:.0},\"ns_per_sign_max\":{:.0},\"wall_secs\":{:.3}}}",
        per_sign.len(),
        batch,
        len,
        median,
        sorted[0],
        sorted[sorted.len() - 1],
        start.elapsed().as_secs_f64()
    ))
}
