# Shared helpers for the ci/ scripts; source it, don't run it.
# Kept here so each script installs what it needs the same way (CI starts on a bare Debian 12).

# apt_install PKG...: installs only what is missing. Runs `apt-get update` at most once per
# hour (other ci/ steps of the same run share it), and waits for the dpkg lock, since
# several scripts may install at the same time on a shared machine.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    # The stamp holds the architectures it was made for: adding a foreign one (cross builds
    # add arm64) leaves the lists stale at once.
    local stamp=/var/lib/apt/periodic/portico-ci-update-stamp archs
    archs="$(dpkg --print-architecture) $(dpkg --print-foreign-architectures | tr '\n' ' ')"
    if [[ -z $(find "$stamp" -mmin -60 2>/dev/null) || $(cat "$stamp") != "$archs" ]]; then
        apt-get update -o DPkg::Lock::Timeout=600 -qq
        mkdir -p "${stamp%/*}" && printf '%s' "$archs" >"$stamp"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
}

# ensure_binfmt: foreign (arm64/armhf) binaries run directly via qemu-user-static; needed to
# run maintainer scripts in a foreign chroot and cross binaries in tests.
ensure_binfmt() {
    apt_install qemu-user-static binfmt-support
    if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    update-binfmts --enable >/dev/null 2>&1 || true
}

# now_s: wall clock with sub-second precision, for timings printed by the scripts.
now_s() { date +%s.%N; }

# elapsed START: seconds since START (from now_s), one decimal.
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    local port _
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return 0; }
    done
    die "no free TCP port found on 127.0.0.1"
}

# repo_uri CODENAME: the host's own mirror for that suite (the only one reachable here).
repo_uri() {
    # shellcheck disable=SC2016 # apt's own $(FIELD) syntax, not the shell's
    apt-get indextargets --format '$(REPO_URI) $(CODENAME)' | awk -v c="$1" '$2 == c { print $1; exit }'
}
