//! Used by build scripts (`crates/xsk/build.rs`, `perf/build.rs`) to compile an XDP program
//! written in C to an object file in `$OUT_DIR`, which the crate embeds. Needs clang and
//! libbpf-dev's headers (`scripts/setup.sh` installs them); `$CLANG` overrides the compiler.
#![forbid(unsafe_code)]

use std::env;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;

/// Compile `source` (relative to the calling crate's manifest directory) to
/// `$OUT_DIR/<object>`, telling cargo when to run again. `who` names the crate in errors.
/// Panics with a message that says what is missing: a build script has no other way out.
pub fn compile(who: &str, source: &str, object: &str) {
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLANG");

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join(object);
    let source = manifest.join(source);
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    // asm/types.h lives in the multiarch include directory of the build machine.
    let multiarch = match env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        other => panic!("{who}: unknown multiarch include directory for {other}"),
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
            "{who}: `{clang}` not found: XDP programs need clang and libbpf-dev \
             (run scripts/setup.sh, or set CLANG)"
        ),
        Err(e) => panic!("{who}: running `{clang}`: {e}"),
    };
    if !output.status.success() {
        panic!(
            "{who}: compiling {} with `{clang}` failed ({}); it needs clang and \
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
