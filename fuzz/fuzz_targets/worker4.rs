//! libFuzzer target `worker4`: the body `detour_fuzzing::worker::worker4` (its doc states the input format
//! and the invariants); a broken invariant is a panic, i.e. a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = detour_fuzzing::worker::worker4(data) {
        panic!("worker4: {e}");
    }
});
