#!/usr/bin/env bash
# The owner's login in a real browser (issue #13): starts a debug portico with a fresh state
# directory, and Debian's Chromium, driven by Playwright (ci/browser/owner-login.cjs), sets it
# up with the one-time code from its log, changes the label and finds it on the status page,
# logs out, is refused a wrong password and logs in again. Screenshots of each page go to
# target/browser/. Run by ci/test.sh after the cargo tests; on Debian 12, as root, it
# installs Chromium and Node.js with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

started=$(now_s)
# Playwright drives this Chromium: it never downloads a browser of its own.
apt_install chromium
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
# The npm packages go under target/, outside the tree that ci/lint.sh shellchecks.
deps=target/browser-deps
mkdir -p "$deps"
cp ci/browser/package.json ci/browser/package-lock.json "$deps/"
(cd "$deps" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    die "npm ci in $deps (from ci/browser/) failed: is the npm registry reachable?"
cargo build --locked --quiet
bin=target/debug/portico

state=$(mktemp -d)
log=$(mktemp)
pid=
cleanup() {
    [[ -z $pid ]] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    rm -rf "$state" "$log"
}
trap cleanup EXIT

# Port 0: the kernel picks free ports, and portico says which once it serves.
args=(--listen 127.0.0.1:0 --listen https://127.0.0.1:0 --state-directory "$state")
# portico never serves as root: as root it binds, then becomes nobody, who must own the state.
if [[ $(id -u) == 0 ]]; then
    chown nobody "$state"
    args+=(--user nobody)
fi
"$bin" "${args[@]}" 2>"$log" &
pid=$!

# tail -f follows the log until portico says it serves (and gives up if portico exits or a
# minute passes); the set-up code was logged before that.
serving=$(grep -m1 ' serving ' < <(timeout 60 tail -n +1 -f --pid="$pid" "$log")) || {
    cat "$log" >&2
    die "portico did not start serving (its log is above)"
}
url=$(grep -o 'https://127\.0\.0\.1:[0-9]*' <<<"$serving") || die "no HTTPS address in: $serving"
code=$(sed -n 's/.*set-up code \([^;]*\);.*/\1/p' "$log")
[[ -n $code ]] || { cat "$log" >&2; die "portico logged no set-up code (its log is above)"; }

log "the owner's login in Chromium (screenshots in target/browser/)"
rm -rf target/browser
if ! PORTICO_URL="$url" SETUP_CODE="$code" SCREENSHOTS=target/browser \
    NODE_PATH="$PWD/$deps/node_modules" node ci/browser/owner-login.cjs; then
    printf -- '--- portico log\n' >&2
    cat "$log" >&2
    die "the browser test failed: see the step above and target/browser/failed.png"
fi
printf 'figure: browser test %s s, with installs and build\n' "$(elapsed "$started")"
