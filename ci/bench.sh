#!/usr/bin/env bash
# Benchmarks portico against nginx, lighttpd, busybox httpd and Puma on this machine (issue 7),
# and over HTTPS against nginx and lighttpd (issue 12), and writes the tables to
# docs/benchmarks.md (--short: a quick CI run, written to target/bench/benchmarks-short.md so
# the committed full run stays). Never fails on figures. The size budgets are read from
# ci/cross-build.sh's binaries, if built before.
# Usage: bash ci/bench.sh [--short]     (as root: installs packages, uses cgroups)
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh
start=$(now_s)

short=0
case "${1:-}" in
    --short) short=1 ;;
    "") ;;
    *) die "usage: bash ci/bench.sh [--short]" ;;
esac
((EUID == 0)) || die "run ci/bench.sh as root: it installs packages and puts each server in a cgroup"

# Debian starts nginx and lighttpd on port 80 when they are installed; nothing here wants
# that, so keep invoke-rc.d from starting services while we install (unless a policy exists).
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
fi
# nginx-light is a transitional package for nginx in Debian 12; both are named for clarity.
apt_install nginx-light nginx lighttpd lighttpd-mod-openssl openssl puma ruby-rack wrk linux-perf \
    systemd util-linux python3
# busybox and busybox-static conflict; either serves (the table says which build ran).
command -v busybox >/dev/null || apt_install busybox
if [[ $(trap -p EXIT) ]]; then
    rm -f "$policy"
    trap - EXIT
fi

log "bench: building portico (release)"
nice -n 10 cargo build --release --locked -q -p portico
# A copy, so another build in the shared target/ cannot swap the binary mid-run.
mkdir -p target/bench
portico=$PWD/target/bench/portico
cp target/release/portico "$portico"

# The peers serve the same bytes as portico's compiled-in asset closest to 1 KiB.
asset_file=$(
    for f in app/assets/*; do
        name=${f##*/}
        grep -q "\"/assets/$name\"" app/src/pages/status_page.rs && echo "$(stat -c %s "$f") $f"
    done | awk '{ d = $1 - 1024; if (d < 0) d = -d; print d, $2 }' | sort -n | awk 'NR == 1 { print $2 }'
)
[[ -n $asset_file ]] || die "no app/assets/* file is routed as \"/assets/NAME\" in app/src/pages/status_page.rs: update ci/bench.sh's asset pick"

if ((short)); then
    opts=(--rounds 3 --seconds 3 --warm 1 --cold-reps 5 --tls-seconds 2 --out target/bench/benchmarks-short.md)
    cmd="bash ci/bench.sh --short"
else
    opts=(--rounds 5 --seconds 10 --warm 2 --cold-reps 15 --tls-seconds 10 --out docs/benchmarks.md)
    cmd="bash ci/bench.sh"
fi
python3 ci/bench.py "${opts[@]}" --command "$cmd" --workdir "$PWD/target/bench" \
    --portico "$portico" --aarch64-binary target/aarch64-unknown-linux-gnu/release/portico \
    --aarch64-no-tls-binary target/aarch64-unknown-linux-gnu/release/portico-no-tls \
    --asset "/assets/${asset_file##*/}" --asset-file "$asset_file" \
    --portico-args="--allow-root --workers 1" \
    --portico-note="--workers 1 (one thread: tokio current_thread); --allow-root since the bench runs as root" \
    --machine-note "${BENCH_MACHINE_NOTE:-}"
log "bench: done in $(elapsed "$start") s"
