#!/usr/bin/env bash
# Build the Debian package from the workspace: target/debian/detour_<version>_<arch>.deb.
# It holds the release binary, the example config (a conffile: kept on upgrade), the systemd
# unit, the manual pages and the shell completions generated from the command line (clap), the
# Grafana dashboard and the README. Needs dpkg-deb (on every Debian); no root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p detour
bin=target/release/detour
version=$(awk -F'"' '/^version *=/ { print $2; exit }' Cargo.toml)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$bin" "$stage/usr/bin/detour"
install -D -m 0640 packaging/detour.conf "$stage/etc/detour/detour.conf"
install -D -m 0644 packaging/detour.service "$stage/lib/systemd/system/detour.service"
install -D -m 0644 README.md "$stage/usr/share/doc/detour/README.md"
install -D -m 0644 configs/grafana-detour.json "$stage/usr/share/doc/detour/grafana-detour.json"
for c in configs/*.conf; do
    install -D -m 0644 "$c" "$stage/usr/share/doc/detour/examples/$(basename "$c")"
done
mkdir -p "$stage/usr/share/man/man1"
"$bin" man "$stage/usr/share/man/man1"
gzip -9n "$stage"/usr/share/man/man1/*.1
"$bin" completions bash | install -D -m 0644 /dev/stdin "$stage/usr/share/bash-completion/completions/detour"
"$bin" completions zsh | install -D -m 0644 /dev/stdin "$stage/usr/share/zsh/vendor-completions/_detour"
"$bin" completions fish | install -D -m 0644 /dev/stdin "$stage/usr/share/fish/vendor_completions.d/detour.fish"

mkdir -p "$stage/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" packaging/debian/control.in >"$stage/DEBIAN/control"
echo "Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)" >>"$stage/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$s" "$stage/DEBIAN/$s"
done

mkdir -p target/debian
out=target/debian/detour_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
