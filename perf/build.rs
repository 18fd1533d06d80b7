//! Compiles the generator's XDP programs (`bpf/gen.bpf.c`) to `$OUT_DIR/gen.bpf.o`, which
//! `src/gen.rs` embeds.

fn main() {
    detour_bpf_build::compile("detour-perf", "bpf/gen.bpf.c", "gen.bpf.o");
}
