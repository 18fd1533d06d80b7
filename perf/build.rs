//! Compiles the generator's XDP programs (`bpf/gen.bpf.c`) to `$OUT_DIR/gen.bpf.o`, which
//! `src/gen.rs` embeds. Needs clang and libbpf-dev's headers (`scripts/bench.sh` checks
//! them). `$CLANG` overrides the compiler.

use std::env;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "bpf/gen.bpf.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLANG");

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("gen.bpf.o");
    let source = manifest.join(SOURCE);
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    // asm/types.h lives in the multiarch include directory of the build machine.
    let multiarch = match env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        other => panic!("detour-perf: unknown multiarch include directory for {other}"),
    };

    let result = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-target", "bpf"])
        .arg(format!("-I/usr/include/{multiarch}"))
        .arg("-c")
        .arg(&source)
        .arg("-o")
        .arg(&out)
        .output();
    let output = match result {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "detour-perf: `{clang}` not found: the generator needs clang and libbpf-dev \
             (run scripts/setup.sh, or set CLANG)"
        ),
        Err(e) => panic!("detour-perf: running `{clang}`: {e}"),
    };
    if !output.status.success() {
        panic!(
            "detour-perf: compiling {} with `{clang}` failed ({}); it needs clang and \
             libbpf-dev's bpf/bpf_helpers.h (run scripts/setup.sh):\n{}",
            source.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Warnings would otherwise be hidden by cargo.
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        println!("cargo:warning={line}");
    }
}
