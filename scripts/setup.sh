#!/usr/bin/env bash
# Install what detour needs on a fresh Debian machine. Idempotent: installs only what is
# missing, and runs apt-get update only when something is.
set -euo pipefail

# Debian packages the build, the tests and the lab use.
PKGS=(iproute2 bird2 nftables iputils-ping ethtool curl python3 python3-requests openssl clang llvm libelf-dev m4 libbpf-dev zlib1g-dev pkg-config make adduser chromium)

missing=()
for p in "${PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is not installed; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true
echo "setup: ok ($(cargo --version))"
