#!/usr/bin/env bash
# Verifies the unit files with systemd-analyze and gates the service's exposure score.
# Run after a debug build: verify needs an ExecStart= binary that exists.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

max_exposure=1.5
# The updater runs as root, as the package manager needs (its unit says what is closed).
max_update_exposure=3.5
bin=$PWD/target/debug/portico
[[ -x $bin ]] || die "$bin missing: run cargo build first"

# Verify copies whose ExecStart= points at the built binary instead of /usr/bin/portico.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for scope in system user; do
    mkdir -p "$work/$scope"
    src=systemd; [[ $scope == user ]] && src=systemd/user
    units=("$src"/portico*.socket "$src"/portico.service)
    [[ $scope == user ]] || units+=("$src"/portico-update.service "$src"/portico-update.timer "$src"/portico-update.path)
    for unit in "${units[@]}"; do
        sed -e "s|^ExecStart=/usr/bin/portico|ExecStart=$bin|" \
            -e "s|^ExecStart=/usr/sbin/portico-update|ExecStart=$PWD/packaging/portico-update|" \
            -e "s|^ExecStart=%h/.cargo/bin/portico|ExecStart=$bin|" "$unit" >"$work/$scope/${unit##*/}"
    done
done
# verify exits 0 on unknown keys and unparsable values, which it only prints: any output fails.
mkdir -p "$work/run"
findings=$(
    systemd-analyze verify "$work/system/portico.socket" "$work/system/portico-https.socket" \
        "$work/system/portico.service" "$work/system/portico-update.service" \
        "$work/system/portico-update.timer" "$work/system/portico-update.path" 2>&1
    # A user manager needs a runtime directory even to verify.
    XDG_RUNTIME_DIR=$work/run systemd-analyze verify --user "$work/user/portico.socket" "$work/user/portico.service" 2>&1
) || true
[[ -z $findings ]] || die "systemd-analyze verify found problems in systemd/:"$'\n'"$findings"
echo "systemd-analyze verify: system and user units OK"

score=$(systemd-analyze security --offline=yes systemd/portico.service | sed -n 's/.*Overall exposure level for portico.service: \([0-9.]*\).*/\1/p')
[[ -n $score ]] || die "systemd-analyze security printed no score"
printf 'figure: portico.service exposure %s (gate: %s or lower)\n' "$score" "$max_exposure"
awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }' \
    || die "portico.service exposure $score is above $max_exposure: restore the hardening in systemd/portico.service"

score=$(systemd-analyze security --offline=yes systemd/portico-update.service | sed -n 's/.*Overall exposure level for portico-update.service: \([0-9.]*\).*/\1/p')
[[ -n $score ]] || die "systemd-analyze security printed no score for portico-update.service"
printf 'figure: portico-update.service exposure %s (gate: %s or lower; root, for the package manager)\n' "$score" "$max_update_exposure"
awk -v s="$score" -v m="$max_update_exposure" 'BEGIN { exit !(s <= m) }' \
    || die "portico-update.service exposure $score is above $max_update_exposure: restore the hardening in systemd/portico-update.service"
