#!/usr/bin/env bash
# Boot test of portico under BusyBox init, the way a Buildroot image without systemd runs it.
#
#   ci/qemu-busybox.sh [x86_64]      (run as root on Debian 12 x86_64)
#
# The guest's root filesystem is laid out as Buildroot lays out a BusyBox-init system
# (ci/qemu/lib.sh's qemu_busybox_root: busybox-static as init, the /etc of
# ci/qemu/busybox/, the portico binary with the shared libraries it links, exactly what
# the Buildroot package's SysV install step installs, and the user of its PORTICO_USERS
# made as Buildroot's mkusers makes it). Debian's kernel
# boots it under QEMU (TCG) with only guest ports 80 and 2222 (the test's control channel)
# forwarded to 127.0.0.1. Checks, each printing PASS:/FAIL:, then "N passed, N failed" and a
# non-zero exit on any failure: port 80 answers after boot with no manual step; it is served
# by the user portico, not root (the guest's process table); `/etc/init.d/S50portico
# restart` (SIGUSR2: the same pid executes portico again with its listening sockets) under
# a steady request stream loses no request; after a reboot (rcK stops it) it serves again.
#
# x86_64 only: TCG boots it fastest here, and the release binary built on this host (with
# the host's glibc) is the one booted, so no cross build or foreign libraries are needed.
# Environment: QEMU_TEST_TIMEOUT (seconds for the whole run, default 2700), QEMU_TEST_KEEP=1
# keeps the console log (target/qemu/console-qemu-busybox-*.log) even on success.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd) QEMU_NAME=qemu-busybox
# shellcheck source=ci/qemu/lib.sh
source "$ROOT/ci/qemu/lib.sh"
# A bound against a hang, not a speed check: it takes in building the packages and the base
# rootfs, which a machine busy with other work makes several times slower (CI, run 1 of this
# session: 900 s ran out mid-test with two CI runs and cargo mutants beside it).
qemu_time_bound "${QEMU_TEST_TIMEOUT:-2700}" "$@"

[[ ${1:-x86_64} == x86_64 ]] || { echo "usage: $0 [x86_64] (the guest runs the host's x86_64 build and its libraries)" >&2; exit 2; }
# Only the kernel and busybox-static of this base are used; it is ci/qemu-oe-packages.sh's,
# so CI builds it once for both.
qemu_prepare x86_64 "$QEMU_RPM_BASE_PKGS"
apt_install make
T1=$(now_s)
qemu_build_portico '' "$WORK/portico"
T_BUILD=$(elapsed "$T1")

# ---------------------------------------------------------------------------------------
# The root filesystem.
T2=$(now_s)
R=$WORK/rootfs
qemu_busybox_root "$R" "$WORK/portico"
echo "$QEMU_NAME: /etc/init.d: $(ls "$R/etc/init.d" | tr '\n' ' ')user: $(grep '^portico:' "$R/etc/passwd")"

# The modules are loaded by the initrd, as a Buildroot kernel would have them built in.
qemu_initrd virtio_pci virtio_blk virtio_net virtio_rng crc32c_generic ext4
qemu_disk "$R"
rm -rf "$R"
T_IMAGE=$(elapsed "$T2")

# ---------------------------------------------------------------------------------------
# Boot. From here on every outcome is a PASS:/FAIL: line.
qemu_traps
qemu_start
qemu_booted "1. boot" 300
T_READY=$(elapsed "$T_QEMU")

# console_line REGEX TIMEOUT: the first console line matching REGEX, waiting up to TIMEOUT s.
console_line() {
    local deadline=$((SECONDS + $2)) line
    until line=$(grep -a -m1 -E "$1" "$WORK/console.log" | tr -d '\r') || ((SECONDS >= deadline)); do sleep 0.2; done
    echo "$line"
}

# not_root WHEN: the portico processes in the guest's process table, the PID file's, and the
# API's uid are all the user portico's.
not_root() {
    local ps_out pid uids a_uid
    ps_out=$(guest "ps -o pid,user,args | grep '[/]usr/bin/portico'" || true)
    pid=$(guest "cat /var/run/portico.pid" || true)
    uids=$(guest "awk '/^Uid:/ { print \$2, \$3, \$4, \$5 }' /proc/$pid/status" || true)
    a_uid=$(api .process.uid)
    if [[ -n $ps_out && $PORTICO_UID != 0 && $a_uid == "$PORTICO_UID" ]] &&
        awk -v p="$pid" '$2 != "portico" { exit 1 } $1 == p { seen = 1 } END { exit !seen }' <<<"$ps_out" &&
        [[ $(tr ' ' '\n' <<<"$uids" | sort -u) == "$PORTICO_UID" ]]; then
        pass "$1 served by user portico (uid $PORTICO_UID), not root: ps: $(echo $ps_out); pid file $pid, its real/effective/saved/fs uid $uids; API uid $a_uid"
    else
        fail "$1 root check: ps: '$(echo $ps_out)'; pid file '$pid', uids '$uids'; API uid '$a_uid' (portico is $PORTICO_UID)"
    fi
}

# 1. Port 80 answers after boot, started by rcS (its line on the console), nothing typed.
if wait_200 60; then
    T_FIRST200=$(elapsed "$T_QEMU")
    v=$(api .portico.version); body=$(curl -s --max-time 10 "$URL/healthz")
    # The script says OK only once portico has had time to fail (it may answer before).
    started=$(console_line 'Starting portico: [A-Z]' 30)
    if [[ $body == ok && $v == "$PKGVER" && $started == *OK* ]]; then
        pass "1. HTTP 200 on guest port 80 after boot with no manual step (/healthz ok, version $v; console: '$started')"
    else
        fail "1. after boot: /healthz '$body', version '$v' (want $PKGVER), console: '$started'"
    fi
else
    T_FIRST200=never; fail "1. no HTTP 200 on guest port 80 within 60 s of the guest network coming up"
fi

# 2. Not root.
not_root "2."
echo "TIME: QEMU start to guest network up: ${T_READY} s; to first HTTP 200: ${T_FIRST200} s"
echo "INFO: activation: $(curl -s --max-time 10 "$URL/api/status" | jq -c .activation 2>/dev/null || true)"

# 3. The init script's restart under a steady request stream. It sends SIGUSR2 and returns;
# portico drains, then executes itself again in the same process, which then has the
# LISTEN_FDS it handed itself in its environment (the first start has none). The stream
# runs until that has happened.
pid0=$(guest "cat /var/run/portico.pid" || true)
handed_over="tr '\\0' '\\n' </proc/$pid0/environ | grep -q '^LISTEN_FDS='"
before=$(guest "if $handed_over; then echo yes; else echo no; fi" || true)
load_start
out=$(guest "/etc/init.d/S50portico restart" 120) && rrc=0 || rrc=$?
after=$(guest "for i in \$(seq 100); do if $handed_over; then echo yes; exit; fi; sleep 0.1; done; echo no" || true)
load_stop
pid1=$(guest "cat /var/run/portico.pid" || true)
if ((rrc == 0)) && load_clean && [[ $pid1 == "$pid0" && $before == no && $after == yes ]]; then
    pass "3. /etc/init.d/S50portico restart under load: $(load_summary) (pid $pid0 kept, executed again with its sockets; said: $(echo $out))"
else
    fail "3. /etc/init.d/S50portico restart (exit $rrc, pid $pid0 -> $pid1, LISTEN_FDS before/after: '$before'/'$after', said: $(echo $out)) under load: $(load_summary)"
fi
echo "TIME: restart: longest stall $(jq -r .close.longest_stall_ms <<<"$LOAD") ms, max request latency $(jq -r .close.max_latency_ms <<<"$LOAD") ms"
not_root "3b. after the restart,"

# 4. Reboot: rcK stops it (its line on the console), and the next boot serves again.
guest "reboot" >/dev/null || true
T_REBOOT=$(now_s)
if wait_ready 2 300 && wait_200 60; then
    t=$(elapsed "$T_REBOOT")
    stopped=$(console_line 'Stopping portico' 0)
    v=$(api .portico.version)
    if [[ $stopped == *OK* && $v == "$PKGVER" ]]; then
        pass "4. after a reboot it serves again: first 200 ${t} s after 'reboot' (version $v; at shutdown: '$stopped')"
    else
        fail "4. after reboot: version '$v', at shutdown: '$stopped' (rcK should have said 'Stopping portico: OK')"
    fi
    not_root "4b. after the reboot,"
else
    fail "4. after reboot: no HTTP 200 (see the console log)"
fi

qemu_stop poweroff
echo "TIME: qemu-busybox: base rootfs ${T_BASE} s, build ${T_BUILD} s, image ${T_IMAGE} s, VM and checks $(elapsed "$T_QEMU") s, total $(elapsed "$T0") s"
qemu_finish
