#!/usr/bin/env bash
# The README's "Test it" command, and the first step of .ci/run: installs what the tests
# need on a Debian 12 machine with Rust, then checks formatting and lints, runs every test
# against the real binary, verifies the units and prints the figures issue #2 asks for.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

command -v cargo >/dev/null || die "cargo not found: install Rust first (rustup, or apt-get install cargo)"
# systemd-socket-activate and systemd-analyze are real peers for the tests; chromium renders
# the page; promtool (prometheus) checks /metrics; curl and ss (iproute2) take the figures
# at the end.
apt_install systemd chromium curl iproute2 prometheus

log "format and lints"
cargo fmt --check
# --workspace: the example crate too (the top-level default is portico alone).
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
python3 ci/check-modules.py
# The library's pages: every public item documented (lib.rs denies missing_docs), no broken
# link, with and without tls; and the crate as crates.io would take it (packaged, built
# from the package alone).
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p portico
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p portico --no-default-features
cargo publish --locked --dry-run --allow-dirty -p portico

log "tests"
cargo test --locked
# README's "Adding your own page": examples/hello-device, a team's crate on the library,
# tested against its own binary; in the same target directory, so only what differs in it
# is built again.
cargo test --locked -p hello-device
bash ci/browser-test.sh  # the owner's login in Chromium, screenshots in target/browser/

log "units"
bash ci/check-units.sh

log "release binary"
cargo build --locked --release
bin=target/release/portico
printf 'figure: x86_64 release binary %d bytes\n' "$(stat -c %s "$bin")"
port=$(free_port)
"$bin" --listen "127.0.0.1:$port" --allow-root --workers 1 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
curl -fsS "http://127.0.0.1:$port/" >/dev/null
printf 'figure: idle RSS after serving the page %s kB\n' "$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")"
