//! libFuzzer target `worker6`: the body `detour_fuzzing::worker::worker6` (its doc states the input format
//! and the invariants); a broken invariant is a panic, i.e. a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = detour_fuzzing::worker::worker6(data) {
        panic!("worker6: {e}");
    }
});
