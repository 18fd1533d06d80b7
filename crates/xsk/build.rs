//! Compiles the XDP steering program (`bpf/steer.bpf.c`) to `$OUT_DIR/steer.bpf.o`, which
//! `src/steer.rs` embeds.

fn main() {
    detour_bpf_build::compile("detour-xsk", "bpf/steer.bpf.c", "steer.bpf.o");
}
