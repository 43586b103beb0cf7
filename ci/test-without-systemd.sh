#!/usr/bin/env bash
# portico without systemd, as started on a device: the Buildroot init script
# buildroot-external/package/portico/S50portico run the way BusyBox init does, with only
# the BusyBox applets it uses (sh, start-stop-daemon, sleep, rm: all in Buildroot's
# busybox-minimal configuration, which has no logger or syslogd), then the runit/daemontools
# run script docs/service/portico/run under daemontools' supervise. All in a throwaway root
# directory with a network namespace of its own, so port 80 is free. S50portico: start
# (port 80 answers, served as user portico), a second start refused while it runs, restart
# (SIGUSR2: the same pid executes portico again with its sockets, still answering), reload
# (SIGHUP), stop (gone, PID file removed), a start that portico
# refuses leaves nothing running. run: up as portico, restarted by `svc -t`, taken down by
# `svc -d`.
# Needs root. PORTICO_BIN names the binary to run (default: a debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

[[ $EUID -eq 0 ]] || die "needs root (chroot, mount and network namespaces)"
apt_install busybox-static daemontools
bin=${PORTICO_BIN:-}
if [[ -z $bin ]]; then
    cargo build --quiet --bin portico
    bin=target/debug/portico
fi

root=$(mktemp -d /tmp/portico-sysv.XXXXXX)
chmod 0755 "$root" # the / of the chroot: user portico must reach its home
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/bin,etc/init.d,etc/default,var/run,var/log,proc,dev,tmp}
cp /bin/busybox "$root/bin/"
for applet in sh start-stop-daemon sleep rm; do
    ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$bin" "$root/usr/bin/portico"
cp /usr/bin/supervise /usr/bin/svc /usr/bin/svstat "$root/usr/bin/"
# The shared libraries of the dynamically linked programs, where the loader looks for them.
for program in "$bin" /usr/bin/supervise /usr/bin/svc /usr/bin/svstat; do
    for lib in $(ldd "$program" | grep -o '/[^ ]*'); do
        cp --parents -L "$lib" "$root"
    done
done
install -m 0755 buildroot-external/package/portico/S50portico "$root/etc/init.d/"
mkdir -p "$root/service" && cp -r docs/service/portico "$root/service/"
# As PORTICO_USERS creates it on the image, with its home, where the certificate goes.
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'portico:x:999:999:portico web server:/var/lib/portico:/bin/false' >>"$root/etc/passwd"
install -d -o 999 -g 999 "$root/var/lib/portico"
printf 'root:x:0:\nportico:x:999:\n' >"$root/etc/group"
mknod -m 0666 "$root/dev/null" c 1 3
if [[ ! -e /proc/net/if_inet6 ]]; then
    log "no IPv6 on this machine: listening on 0.0.0.0:80 only"
    echo 'PORTICO_ARGS="--user portico --listen 0.0.0.0:80 --listen https://0.0.0.0:443 --state-directory /var/lib/portico"' \
        >"$root/etc/default/portico"
fi

# The rest runs inside the namespaces (and is ended with them); $root comes in as $1.
unshare --mount --net --pid --fork --mount-proc -- bash -euo pipefail -s "$root" <<'INSIDE'
root=$1
. ci/lib.sh
bb=/bin/busybox
$bb ip link set lo up
mount -t proc proc "$root/proc"
# A hung script fails the test instead of the CI run.
in_root() { timeout 60 chroot "$root" "$@"; }
# GET /healthz on port 80 answers 200 "ok" (bash's /dev/tcp: BusyBox's static wget crashes
# on glibc hosts).
health() {
    local reply
    exec 3<>/dev/tcp/127.0.0.1/80 || return 1
    printf 'GET /healthz HTTP/1.0\r\nHost: device\r\n\r\n' >&3
    reply=$(timeout 5 cat <&3) || true
    exec 3<&-
    [[ $reply == HTTP/1.[01]" 200 "*$'\r\n\r\nok'* ]]
}
pid() { cat "$root/var/run/portico.pid"; }
uid_of() { awk '/^Uid:/ { print $2 }' "/proc/$1/status"; }
# Alive, not a zombie: this bash is the namespace's init and reaps orphans only now and then.
running() { [[ -e /proc/$1 && $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

wait_healthy() {
    local i
    for ((i = 0; i < 100; i++)); do
        health 2>/dev/null && return 0
        sleep 0.1
    done
    die "/healthz did not answer ok within 10 s $1"
}
# S50portico's OK means started; portico is serving once /healthz answers.
out=$(in_root sh /etc/init.d/S50portico start)
[[ $out == "Starting portico: OK" ]] || die "start said: $out"
first=$(pid)
wait_healthy "after S50portico start"
[[ $(uid_of "$first") == 999 ]] || die "portico runs as uid $(uid_of "$first"), not portico (999)"
log "start: OK, pid $first, uid 999, /healthz ok"

out=$(in_root sh /etc/init.d/S50portico start) && die "a second start returned 0: $out"
[[ $out == "Starting portico: "*FAIL ]] || die "a second start said: $out"
if [[ $(pid) != "$first" ]] || ! running "$first"; then
    die "a second start replaced or stopped $first"
fi
log "second start: FAIL (already running), pid $first kept"

# restart is SIGUSR2: the same process executes portico again, handing itself its
# listening sockets by LISTEN_FDS, which the first start did not have in its environment.
handed_over() { tr '\0' '\n' <"/proc/$1/environ" | grep -q '^LISTEN_FDS='; }
! handed_over "$first" || die "portico $first has LISTEN_FDS before any restart"
out=$(in_root sh /etc/init.d/S50portico restart)
[[ $out == "Restarting portico: OK" ]] || die "restart said: $out"
for ((i = 0; i < 100; i++)); do handed_over "$first" && break; sleep 0.1; done
handed_over "$first" || die "portico $first did not execute itself again within 10 s of restart"
[[ $(pid) == "$first" ]] && running "$first" || die "restart changed the pid ($first -> $(pid))"
wait_healthy "after restart"
[[ $(uid_of "$first") == 999 ]] || die "after restart portico runs as uid $(uid_of "$first")"
out=$(in_root sh /etc/init.d/S50portico reload)
[[ $out == "Reloading portico: OK" ]] && running "$first" || die "reload said: $out"
wait_healthy "after reload"
second=$first
log "restart: OK, pid $first kept, executed again with its sockets (LISTEN_FDS), /healthz ok; reload: OK"

out=$(in_root sh /etc/init.d/S50portico stop)
[[ $out == "Stopping portico: "*OK ]] || die "stop said: $out"
! running "$second" || die "stop left portico $second running"
[[ ! -e $root/var/run/portico.pid ]] || die "stop left the PID file"
! health 2>/dev/null || die "port 80 still answers after stop"
log "stop: OK, process and PID file gone"

# Without --user, as root, portico refuses to serve and exits at once. start-stop-daemon
# has put it in the background by then, so the script says OK (as S01syslogd would); what
# matters is that nothing is left running, as root or otherwise, and stop says so.
echo 'PORTICO_ARGS="--listen 127.0.0.1:80"' >"$root/etc/default/portico"
out=$(in_root sh /etc/init.d/S50portico start)
[[ $out == "Starting portico: OK" ]] || die "a start in the background said: $out"
refused=$(pid)
for ((i = 0; i < 100; i++)); do running "$refused" || break; sleep 0.1; done
! running "$refused" || die "portico $refused started as root without --user and kept running"
out=$(in_root sh /etc/init.d/S50portico stop) && die "stop of a portico that had exited returned 0: $out"
rm -f "$root/etc/default/portico" "$root/var/run/portico.pid"
log "start as root without --user: portico exited at once, nothing running, stop says FAIL"

# The run script under a supervisor; supervise starts it at once and restarts it on exit.
supervised_pid() { in_root svstat /service/portico | sed -n 's/.*: up (pid \([0-9]*\)).*/\1/p'; }
# Its output, portico's log, as a log/run service would get it.
in_root supervise /service/portico >"$root/var/log/run.log" 2>&1 &
wait_healthy "under supervise"
first=$(supervised_pid)
[[ $(uid_of "$first") == 999 ]] || die "the run script's portico runs as uid $(uid_of "$first"), not 999"
grep -q 'switched user after binding' "$root/var/log/run.log" || die "no portico log from the run script"
in_root svc -t /service/portico
# supervise waits a second before it starts the run script again.
for ((i = 0; i < 50; i++)); do
    second=$(supervised_pid)
    [[ -n $second && $second != "$first" ]] && break
    sleep 0.1
done
[[ -n $second && $second != "$first" ]] || die "svc -t did not restart portico ($first, then '$second')"
wait_healthy "after svc -t"
[[ $(uid_of "$second") == 999 ]] || die "after svc -t portico runs as uid $(uid_of "$second")"
in_root svc -dx /service/portico
wait
! health 2>/dev/null || die "port 80 still answers after svc -d"
log "run script under supervise: up as uid 999 (pid $first), svc -t -> pid $second, svc -d: down"
INSIDE
