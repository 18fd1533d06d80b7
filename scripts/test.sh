#!/usr/bin/env bash
# The test command: set up, check formatting and lints, run every test of the workspace.
set -euo pipefail
# pipefail makes a failing cargo test fail the script although its output goes through tee.
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo build --release -p detour (the binary the end-to-end tests run)"
cargo build --release --quiet -p detour
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s; exit (p == 0 || f > 0) }' "$log"
