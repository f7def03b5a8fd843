#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed first if missing):
#   bash scripts/package.sh            → target/debian/voxprov_<version>-1_<arch>.deb (release)
#   PROFILE=dev bash scripts/package.sh  the unoptimised build (the test suite's, already built)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-release}"
if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-deb" >&2
    cargo install --locked --quiet cargo-deb
fi
locked=()
if [ -f Cargo.lock ]; then locked=(--locked); fi
# The installed configuration is the example with the package's own values set: the state
# in /var/lib/voxprov, HTTPS for everyone on 8443 (a trial certificate until one is
# configured), plain HTTP on the loopback only.
mkdir -p target/deb-assets
sed -e '1i # Installed by the voxprov package. The package set data_dir and tls.listen below.\n' \
    -e 's|^# data_dir = .*|data_dir = "/var/lib/voxprov"|' \
    -e 's|^# listen = "0.0.0.0:8443"$|listen = "0.0.0.0:8443"|' \
    deploy/voxprov.toml.example > target/deb-assets/voxprov.toml
grep -q '^data_dir = "/var/lib/voxprov"$' target/deb-assets/voxprov.toml
grep -q '^listen = "0.0.0.0:8443"$' target/deb-assets/voxprov.toml
if [ "$profile" = release ]; then
    cargo deb "${locked[@]}" --fast
else
    # cargo-deb takes its binary from target/<profile>: the dev profile's is target/debug.
    cargo build "${locked[@]}" --bin voxprov
    mkdir -p target/dev-deb/release
    ln -f target/debug/voxprov target/dev-deb/release/voxprov
    CARGO_TARGET_DIR=target/dev-deb cargo deb "${locked[@]}" --no-build --fast \
        --output target/debian/
fi
ls -1 target/debian/*.deb
