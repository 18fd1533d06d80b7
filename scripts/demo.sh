#!/usr/bin/env bash
# The main job, as far as it goes today: set up, build, and show detour resolving the
# seed's configurations (and refusing a broken one with file:line:column). The lab with
# namespaces, real servers and a client following the redirect comes with the AF_XDP runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p detour
bin=target/release/detour
for conf in configs/acme.conf configs/load-share.conf; do
    echo "== detour check $conf"
    "$bin" check "$conf"
done
broken=$(mktemp)
trap 'rm -f "$broken"' EXIT
printf 'virtual 198.18.0.1\nurl coyote http://coyote.acme.com/%%d 404\nbind 198.18.0.1 coyote roadrunner\n' >"$broken"
echo "== detour check (a broken config)"
if "$bin" check "$broken"; then
    echo "demo: the broken config was accepted" >&2
    exit 1
fi
echo "demo: ok"
