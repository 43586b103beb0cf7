# ci/qemu/lib.sh: what the QEMU boot tests share; source it (it sources ci/lib.sh), don't
# run it.
# shellcheck shell=bash disable=SC2034 # its variables are for the scripts that source it
#
# One way to get a kernel and a base rootfs, to boot, to reach into the guest, to send it
# a steady request stream and to count checks, for ci/qemu-test.sh (Debian image, systemd),
# ci/qemu-busybox.sh (Buildroot-style BusyBox init) and ci/qemu-oe-packages.sh (rpm and
# opkg as package managers). The caller sets ROOT (the checkout) and QEMU_NAME (its name,
# for messages, its work directory and kept logs), and calls, in order:
#   qemu_time_bound SECONDS "$@"   re-exec itself under timeout(1)
#   qemu_prepare ARCH PKGS         host tools, base rootfs, kernel; sets WORK and T0
#   ... build a root directory, then qemu_initrd MODULE...; qemu_disk DIR
#   qemu_traps; qemu_start; wait_ready 1 SECONDS; checks with pass/fail; qemu_finish
# The guest must print "QEMU-TEST-READY <boot id>" on its console once its network is up,
# and serve a root shell per connection on port 2222 (the control channel).

# shellcheck source=ci/lib.sh
source "$ROOT/ci/lib.sh"
QEMU_CACHE=$ROOT/target/qemu
# The base rootfs of a systemd guest (qemu_base); ci/qemu-oe-packages.sh's adds Debian's rpm.
QEMU_BASE_PKGS=systemd-sysv,udev,kmod,procps,apt
QEMU_RPM_BASE_PKGS=$QEMU_BASE_PKGS,rpm
NPASS=0 NFAIL=0 QEMU_PID='' LOAD_PID='' SOCKET_NOTE='not checked'

# qemu_time_bound SECONDS ARGS...: the whole run is bounded. Re-execs the calling script
# under timeout(1), which signals the whole process group (QEMU included) when time is up;
# the EXIT trap (qemu_traps) then still cleans up.
qemu_time_bound() {
    local secs=$1
    shift
    if [[ ${QEMU_UNDER_TIMEOUT:-} != "$0" ]]; then
        export QEMU_UNDER_TIMEOUT=$0
        exec timeout -k 20 "$secs" bash "$0" "$@"
    fi
}

# qemu_arch ARCH: sets DEBARCH, TRIPLE, KFLAVOUR (the kernel package's), CONSOLE, QEMU (the
# command and machine) and QEMU_PKG.
qemu_arch() {
    case $1 in
    aarch64)
        DEBARCH=arm64 TRIPLE=aarch64-unknown-linux-gnu KFLAVOUR=arm64 CONSOLE=ttyAMA0
        QEMU=(qemu-system-aarch64 -M virt -cpu 'max,pauth=off') QEMU_PKG=qemu-system-arm ;;
    x86_64)
        DEBARCH=amd64 TRIPLE=x86_64-unknown-linux-gnu KFLAVOUR=amd64 CONSOLE=ttyS0
        QEMU=(qemu-system-x86_64 -M q35 -cpu max) QEMU_PKG=qemu-system-x86 ;;
    *) echo "usage: $0 [aarch64|x86_64]" >&2; exit 2 ;;
    esac
    ARCH=$1
}

qemu_host_tools() {
    [[ $(id -u) == 0 ]] || { echo "$QEMU_NAME: run as root (mmdebstrap --mode=root, chroot)" >&2; exit 2; }
    mkdir -p "$QEMU_CACHE"
    apt_install "$QEMU_PKG" qemu-system-data ipxe-qemu mmdebstrap eatmydata arch-test kmod cpio \
        zstd xz-utils e2fsprogs curl socat jq python3 file
    [[ $DEBARCH == "$(dpkg --print-architecture)" ]] || ensure_binfmt
}

# qemu_base PKGS: a minimal Debian bookworm rootfs with PKGS (comma-separated), cached as a
# tarball keyed by everything that goes into it, because an arm64 one takes minutes under
# qemu-user. Sets BASE: $BASE/rootfs.tar, and $BASE/debs/ with the kernel and busybox-static
# packages (for the initrd), fetched with the rootfs's own apt config, so the host needs no
# foreign architecture.
qemu_base() {
    local mirror secmirror
    mirror=$(repo_uri bookworm); mirror=${mirror:-http://deb.debian.org/debian}
    secmirror=$(repo_uri bookworm-security); secmirror=${secmirror:-http://deb.debian.org/debian-security}
    local mmdebstrap=(mmdebstrap --mode=root --variant=minbase --arch="$DEBARCH" --include="$1"
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
        --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/lib/udev/hwdb.d/*'
        --aptopt='Acquire::Languages "none"'
        # shellcheck disable=SC2016 # expanded by the hook's shell, in the rootfs's apt setting
        --customize-hook='cd "$1/.." && export APT_CONFIG=$MMDEBSTRAP_APT_CONFIG && k=$(apt-cache depends linux-image-'"$KFLAVOUR"' | awk "/Depends: linux-image-[0-9]/ {print \$2}") && apt-get download -q $k busybox-static'
        bookworm)
    BASE=$QEMU_CACHE/base-$DEBARCH-$(printf '%s\n' "${mmdebstrap[@]}" "$mirror" "$secmirror" | sha256sum | cut -c1-16)
    [[ ! -f $BASE/rootfs.tar ]] || return 0
    local t0 tmp=$BASE.tmp
    t0=$(now_s)
    echo "$QEMU_NAME: building the $DEBARCH base rootfs with $1 (cached as $BASE; arm64 takes minutes under qemu-user)"
    rm -rf "$tmp"; mkdir -p "$tmp/debs"
    # The hook downloads into the parent of the rootfs dir, so the rootfs dir is inside debs/.
    "${mmdebstrap[@]}" "$tmp/debs/rootfs" \
        "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
        "deb $secmirror bookworm-security main" >"$tmp/mmdebstrap.log" 2>&1 \
        || { tail -n 30 "$tmp/mmdebstrap.log" >&2; echo "$QEMU_NAME: mmdebstrap failed (log: $tmp/mmdebstrap.log)" >&2; exit 1; }
    tar -C "$tmp/debs/rootfs" --numeric-owner --xattrs -cf "$tmp/rootfs.tar" .
    rm -rf "$tmp/debs/rootfs"
    mv "$tmp" "$BASE"
    echo "$QEMU_NAME: base rootfs built in $(elapsed "$t0") s"
}

# qemu_kernel: unpacks the base's kernel (with its module index) and busybox-static once.
# Sets KDIR (KDIR/lib/modules/KVER), KVER, KERNEL (what QEMU boots) and BUSYBOX (the binary).
qemu_kernel() {
    KDIR=$BASE/kernel BUSYBOX=$BASE/busybox/bin/busybox
    if [[ ! -d $KDIR/boot ]]; then
        rm -rf "$KDIR" "$BASE/busybox"
        dpkg-deb -x "$(ls "$BASE"/debs/linux-image-*.deb)" "$KDIR.tmp"
        dpkg-deb -x "$(ls "$BASE"/debs/busybox-static_*.deb)" "$BASE/busybox"
        depmod -b "$KDIR.tmp" "$(ls "$KDIR.tmp/lib/modules")"
        mv "$KDIR.tmp" "$KDIR"
    fi
    KVER=$(ls "$KDIR/lib/modules")
    KERNEL=$KDIR/boot/vmlinuz-$KVER
    if [[ $ARCH == x86_64 ]]; then
        # The ELF vmlinux inside the bzImage (its xz payload) boots through PVH, 5 s and more
        # faster under TCG than the bzImage with its own decompressor. Else the bzImage.
        if [[ ! -f $KDIR/vmlinux ]]; then
            local off
            off=$(LC_ALL=C grep -abo -m1 $'\xfd7zXZ' "$KERNEL" | cut -d: -f1 | sed -n 1p)
            # (xz stops reading at the end of its stream: tail's SIGPIPE is no failure.)
            if [[ -n $off ]] && xz -dcq --single-stream <(tail -c +$((off + 1)) "$KERNEL") >"$KDIR/vmlinux.tmp" &&
                [[ $(file -b "$KDIR/vmlinux.tmp") == 'ELF 64-bit'* ]]; then
                mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
            fi
        fi
        [[ ! -f $KDIR/vmlinux ]] || KERNEL=$KDIR/vmlinux
    fi
}

# qemu_prepare ARCH PKGS: all of the above, the base with PKGS. Sets T0 (the start), T_BASE
# (the seconds this took) and WORK ($QEMU_CACHE/run-$QEMU_NAME-$ARCH, made empty).
qemu_prepare() {
    T0=$(now_s)
    qemu_arch "$1"
    qemu_host_tools
    qemu_base "$2"
    qemu_kernel
    T_BASE=$(elapsed "$T0")
    WORK=$QEMU_CACHE/run-$QEMU_NAME-$ARCH
    rm -rf "$WORK"; mkdir -p "$WORK"
}

# qemu_mods_closure MODULE...: their .ko paths (relative to the module dir), dependencies first.
qemu_mods_closure() {
    local m
    for m in "$@"; do modprobe -d "$KDIR" -S "$KVER" --show-depends "$m"; done \
        | awk '$1 == "insmod" {print $2}' | sed "s|^.*/lib/modules/$KVER/||" | awk '!seen[$0]++'
}

# qemu_install_modules DIR MODULE...: the modules and what they need into the rootfs DIR,
# indexed, for a guest that loads modules itself (udev).
qemu_install_modules() {
    local r=$1 m f
    shift
    while read -r m; do
        install -D -m 644 "$KDIR/lib/modules/$KVER/$m" "$r/usr/lib/modules/$KVER/$m"
    done < <(qemu_mods_closure "$@")
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        [[ ! -f $KDIR/lib/modules/$KVER/$f ]] || cp "$KDIR/lib/modules/$KVER/$f" "$r/usr/lib/modules/$KVER/"
    done
    depmod -b "$r" "$KVER"
}

# qemu_systemd_guest DIR HOSTNAME: a systemd guest's root in DIR (made): the base rootfs,
# the kernel's virtio/ext4 module closure and the test scaffolding (ci/qemu/guest: network,
# control channel, readiness line), minus what a throwaway VM doesn't need.
qemu_systemd_guest() {
    local r=$1
    mkdir -p "$r"
    tar -C "$r" --numeric-owner --xattrs -xpf "$BASE/rootfs.tar"
    qemu_install_modules "$r" virtio_pci virtio_net virtio_blk virtio_rng virtio_console \
        9pnet_virtio 9p ext4 autofs4 crc32c_generic
    cp -r "$ROOT/ci/qemu/guest/." "$r/"
    systemctl --root="$r" enable -q systemd-networkd.service qemu-test-ctl.socket qemu-test-ready.service
    # To cut boot time (portico's own units are untouched).
    systemctl --root="$r" mask -q apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
        e2scrub_all.timer e2scrub_reap.service fstrim.timer getty.target \
        systemd-networkd-wait-online.service
    # mmdebstrap leaves it empty, which would make the first boot do first-boot work.
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$r/etc/machine-id"; echo >>"$r/etc/machine-id"
    echo "$2" >"$r/etc/hostname"
}

# qemu_initrd MODULE...: $WORK/initrd.gz, a tiny busybox initrd that loads the modules
# (with what they need), mounts /dev/vda and switch_roots to its /sbin/init.
qemu_initrd() {
    local d=$WORK/initrd m
    rm -rf "$d"; mkdir -p "$d/mods"
    cp "$BUSYBOX" "$d/busybox"
    qemu_mods_closure "$@" | while read -r m; do
        cp "$KDIR/lib/modules/$KVER/$m" "$d/mods/"; echo "${m##*/}"
    done >"$d/mods/order"
    cat >"$d/init" <<'EOF'
#!/busybox sh
/busybox mkdir -p /bin /proc /dev /newroot
/busybox mount -t proc proc /proc && /busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod "/mods/$m"; done
for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; exec sh; }
umount /proc; mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
EOF
    chmod +x "$d/init"
    (cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"
    rm -rf "$d"
}

# qemu_disk DIR: $WORK/disk.img, an ext4 image of DIR (no loop device needed).
qemu_disk() { mkfs.ext4 -q -F -L root -d "$1" "$WORK/disk.img" 1G >/dev/null; }

# ---------------------------------------------------------------------------------------
# Running it. From qemu_traps on, every outcome is a PASS:/FAIL: line.
pass() { echo "PASS: $*"; NPASS=$((NPASS + 1)); }
fail() { echo "FAIL: $*"; NFAIL=$((NFAIL + 1)); }
# qemu_finish: the last line, and the exit code.
qemu_finish() {
    echo "$NPASS passed, $NFAIL failed"
    exit $((NFAIL ? 1 : 0))
}

qemu_cleanup() {
    local rc=$?
    [[ -n $LOAD_PID ]] && kill "$LOAD_PID" 2>/dev/null
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null; sleep 1; kill -9 "$QEMU_PID" 2>/dev/null
    fi
    if ((rc != 0 || NFAIL != 0)) || [[ -n ${QEMU_TEST_KEEP:-} ]]; then
        if [[ -f $WORK/console.log ]]; then
            local keep
            keep=$QEMU_CACHE/console-$QEMU_NAME-$ARCH-$(date -u +%Y%m%dT%H%M%SZ).log
            cp "$WORK/console.log" "$keep"
            echo "$QEMU_NAME: serial console log kept in $keep"
        fi
    else
        rm -rf "$WORK"
    fi
}
qemu_traps() {
    trap qemu_cleanup EXIT
    trap 'echo "$QEMU_NAME: line $LINENO: unexpected failure of: $BASH_COMMAND" >&2' ERR
    trap 'echo "$QEMU_NAME: interrupted or out of time (QEMU_TEST_TIMEOUT)" >&2; exit 124' INT TERM
}

# qemu_start [--https] [KERNEL-ARGS]: boots $WORK/disk.img with the kernel and
# $WORK/initrd.gz in the background, guest ports 80 and 2222 (and with --https 443)
# forwarded to free ports on 127.0.0.1 only, the guest reaching nothing (restrict=on).
# Sets QEMU_PID, HTTP_PORT, CTL_PORT, URL, HTTPS_PORT and SURL (empty without --https) and
# T_QEMU.
qemu_start() {
    local nports=2 fwd
    [[ ${1:-} != --https ]] || { nports=3; shift; }
    read -r HTTP_PORT CTL_PORT HTTPS_PORT < <(python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))' "$nports")
    URL=http://127.0.0.1:$HTTP_PORT SURL=${HTTPS_PORT:+https://127.0.0.1:$HTTPS_PORT}
    fwd=hostfwd=tcp:127.0.0.1:$HTTP_PORT-:80${HTTPS_PORT:+,hostfwd=tcp:127.0.0.1:$HTTPS_PORT-:443}
    T_QEMU=$(now_s)
    "${QEMU[@]}" -smp 2 -m 1024 -nodefaults -no-user-config -display none \
        -serial "file:$WORK/console.log" \
        -kernel "$KERNEL" -initrd "$WORK/initrd.gz" \
        -append "console=$CONSOLE panic=-1 TERM=dumb ${1:-}" \
        -drive "file=$WORK/disk.img,format=raw,if=none,id=hd0,cache=unsafe" -device virtio-blk-pci,drive=hd0 \
        -netdev "user,id=n0,restrict=on,$fwd,hostfwd=tcp:127.0.0.1:$CTL_PORT-:2222" \
        -device virtio-net-pci,netdev=n0,romfile= -device virtio-rng-pci &
    QEMU_PID=$!
}

# qemu_stop CMD: CMD in the guest (its poweroff), then up to 30 s for QEMU to exit.
qemu_stop() {
    guest "$1" >/dev/null || true
    for _ in $(seq 60); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.5; done
}

# qemu_booted NAME TIMEOUT: until the guest's first readiness line; without it in TIMEOUT s,
# FAIL NAME, the console's last lines, and the end of the run.
qemu_booted() {
    wait_ready 1 "$2" && return 0
    fail "$1: the guest never reported its network up"
    tail -n 40 "$WORK/console.log" >&2 || true
    qemu_finish
}
wait_ready() { # N TIMEOUT: until the Nth readiness line of the guest is on the console
    local deadline=$((SECONDS + $2))
    local n
    while n=$(grep -c 'QEMU-TEST-READY ' "$WORK/console.log" 2>/dev/null || true); ((${n:-0} < $1)); do
        kill -0 "$QEMU_PID" 2>/dev/null || { echo "$QEMU_NAME: QEMU exited" >&2; return 1; }
        ((SECONDS < deadline)) || { echo "$QEMU_NAME: guest not ready after $2 s" >&2; return 1; }
        sleep 0.2
    done
}
# guest CMD [TIMEOUT]: run CMD as root in the guest; its output on stdout, its exit code.
guest() {
    local out rc
    # The exit code goes on a line of its own, even after output with no final newline.
    out=$(printf '{ %s\n} </dev/null 2>&1; printf "\\n@@rc=%%s\\n" $?\n' "$1" \
        | timeout "${2:-120}" socat -t "${2:-120}" - "TCP:127.0.0.1:$CTL_PORT") || true
    rc=$(sed -n 's/^@@rc=//p' <<<"$out")
    sed '/^@@rc=/d' <<<"$out"
    return "${rc:-255}"
}
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL$1" || true; }
api() { curl -s --max-time 10 "$URL/api/status" | jq -r "$1" 2>/dev/null || true; }
wait_200() { # TIMEOUT: until /healthz answers 200
    local deadline=$((SECONDS + $1))
    until [[ $(status /healthz) == 200 ]]; do ((SECONDS < deadline)) || return 1; sleep 0.2; done
}
# Load in the background around a guest command: load_start [LOAD.PY OPTION...]; ...;
# load_stop -> $LOAD (JSON). A new connection per request always; what else, the options
# say (see ci/qemu/load.py for what each stream counts).
load_start() {
    rm -f "$WORK/load.stop"
    LOAD_BURST=''; [[ " $* " =~ \ --burst\ ([0-9]+)\  ]] && LOAD_BURST=${BASH_REMATCH[1]} # for load_summary
    # /api/status, a real client's request: /healthz answers 503 "stopping" by design while
    # a process drains, which is a health signal, not a lost request.
    python3 "$ROOT/ci/qemu/load.py" "$HTTP_PORT" "$WORK/load.stop" --max-seconds 600 --path /api/status "$@" \
        >"$WORK/load.json" &
    LOAD_PID=$!
    sleep 1.5 # some requests before the event under test
}
load_stop() {
    sleep 1.5 # and some after
    touch "$WORK/load.stop"; wait "$LOAD_PID" || true; LOAD_PID=
    LOAD=$(cat "$WORK/load.json")
}
# load_summary: what the clients saw, per stream: answered (of which waited 1 s or more in
# the backlog), refused (the port seen closed, or the connection closed unanswered), timed
# out (of which lost on the host, in QEMU's user networking: see ci/qemu/load.py).
load_summary() {
    jq -r --arg burst "$LOAD_BURST" '
        def s: "\(.requests) requests, \(.failed) failed (\(.ok) answered, \(.waited) after waiting >= 1 s, longest \(.max_latency_ms / 100 | round / 10) s; \(.refused) refused or closed unanswered; \(.timeout) timed out, \(.timeout_host) of them lost on the host)";
        def e: if .failed > 0 then " [\(.errors | join("; "))]" else "" end;
        [(.close // empty | "steady: \(s + e)"),
         (.keepalive // empty | "keep-alive: \(s + e), \(.retries) retries after an idle close, \(.reconnects) reconnects after Connection: close"),
         (.tls // empty | "TLS: \(s + e)"),
         (.burst // empty | "bursts of \($burst): \(s + e)")] | join("; ")' <<<"$LOAD"
}
load_clean() { [[ $(jq '[.[] | objects | .failed == 0 and .ok > 0] | all' <<<"$LOAD") == true ]]; }
# load_unserved: clients that reached the guest and were refused or left unanswered, or
# answered other than 200; load_unanswered: the same, any answer counting (a broken
# build's 500).
load_unserved() { jq '[.[] | objects | .failed - .timeout_host] | add' <<<"$LOAD"; }
load_unanswered() { jq '[.[] | objects | .failed - .status - .timeout_host] | add' <<<"$LOAD"; }
within() { awk -v t="$1" -v l="$2" 'BEGIN { exit !(t <= l) }'; } # SECONDS LIMIT

# The owner's side, over the forwarded HTTPS port.
OWNER_PW='Quartz violin harbor 47 lantern'
# scurl PATH CURL-ARG...: a request to the HTTPS port as a browser on this device's page
# sends it (Origin = the Host sent); a POST when there are --data arguments.
scurl() {
    curl -sk --max-time 30 -H "Origin: https://127.0.0.1:$HTTPS_PORT" "${@:2}" "$SURL$1" || true
}
# set_up_owner NAME: the owner's password set on a device that has no owner, with the set-up
# code from the journal (the last one: portico logs a new one at each start until it has an
# owner), by POST /setup over HTTPS.
set_up_owner() {
    local code hdrs
    code=$(guest "journalctl -b -q -o cat -p warning -u portico.service | grep -o 'set-up code [0-9A-Z]\{4\}-[0-9A-Z]\{4\}-[0-9A-Z]\{4\}-[0-9A-Z]\{4\}' | tail -n1 | cut -d' ' -f3" || true)
    if [[ -n $code ]]; then
        pass "$1: the set-up code is in the journal (warning priority)"
    else
        fail "$1: no 'set-up code XXXX-XXXX-XXXX-XXXX' line in the journal (portico.service, warning)"
    fi
    hdrs=$(scurl /setup -D - -o /dev/null --data-urlencode "code=$code" --data-urlencode "password=$OWNER_PW" \
        --data-urlencode "again=$OWNER_PW")
    if [[ $hdrs =~ ^HTTP/[0-9.]+\ 303 && ${hdrs,,} == *set-cookie:* ]]; then
        pass "$1: POST /setup with the code set the owner's password on $(api .portico.version): 303 with Set-Cookie"
    else
        fail "$1: POST /setup answered: $(head -n1 <<<"$hdrs" | tr -d '\r')"
    fi
}
# owner_login JAR: logs in as the owner, the session cookie kept in the curl cookie jar JAR.
owner_login() { scurl /login -c "$1" -o /dev/null --data-urlencode "password=$OWNER_PW"; }
# login_check NAME: the owner's password still logs in (303 with a session cookie).
login_check() {
    local h
    h=$(scurl /login -D - -o /dev/null --data-urlencode "password=$OWNER_PW")
    if [[ $h =~ ^HTTP/[0-9.]+\ 303 && ${h,,} == *set-cookie:* ]]; then
        pass "$1: the owner's password still logs in (POST /login: 303 with Set-Cookie)"
    else
        fail "$1: POST /login answered: $(head -n1 <<<"$h" | tr -d '\r')"
    fi
}

# ---------------------------------------------------------------------------------------
# systemd guests
prop() { guest "systemctl show -p $2 --value $1" || true; } # UNIT PROPERTY
# prop_us UNIT PROPERTY: a time span property (systemctl shows "30s", "1min 30s") in µs
prop_us() { guest "systemd-analyze timespan \"\$(systemctl show -p $2 --value $1)\" | awk '/μs:/ {print \$2}'" || true; }
mainpid() { prop portico.service MainPID; }
# cursor UNIT: where UNIT's journal ends now. The cursor of UNIT's own last entry: given one
# that does not match its -u filter, systemd 252's `journalctl --after-cursor` skips the
# first matching entry after it (systemd issue 30288, fixed in 255).
cursor() { guest "journalctl -q -n 1 -o cat --show-cursor -u $1 | sed -n 's/^-- cursor: //p'" || true; }
# socket_since CURSOR: portico.socket's journal lines since then; fails if it cannot tell.
socket_since() { [[ -n $1 ]] && guest "journalctl -q -o cat --after-cursor='$1' -u portico.socket"; }
socket_entered() { prop portico.socket ActiveEnterTimestampMonotonic; }
# socket_stayed CURSOR ENTERED: portico.socket is active, entered that state at ENTERED (µs
# after boot, as before the event) and its journal since CURSOR says nothing of it closing
# or failing. Not "Listening on": systemd also writes that when a `systemctl start
# portico.socket` job (a scriptlet's, queued while the service restarts) completes on a
# socket that never closed. Sets SOCKET_NOTE.
socket_stayed() {
    local log st state closed jok=0
    log=$(socket_since "$1") && jok=1 || log="(unreadable: cursor '$1')"
    closed=$(grep -E '^Closed |Failed|Deactivated' <<<"$log" || true)
    st=$(socket_entered); state=$(prop portico.socket ActiveState)
    SOCKET_NOTE="portico.socket $state, entered at $2 -> $st µs; journal: $(echo "${log:-nothing}")"
    [[ $jok == 1 && -z $closed && $st == "$2" && $state == active ]]
}

# upgrade_step NAME COMMAND EXPECTED-VERSION [LOAD.PY OPTION...]: the package manager's
# COMMAND replaces portico under a steady request stream (and what the options add): none
# may fail, the version must change, and portico.socket must never leave the active state.
upgrade_step() {
    local name=$1 cmd=$2 want=$3 before c st0 out arc after
    before=$(api .portico.version); c=$(cursor portico.socket); st0=$(socket_entered)
    load_start "${@:4}"
    out=$(guest "$cmd" 300) && arc=0 || arc=$?
    load_stop
    after=$(api .portico.version)
    if ((arc == 0)) && load_clean; then
        pass "$name: '$cmd' under load: $(load_summary)"
    else
        fail "$name: '$cmd' (exit $arc) under load: $(load_summary)"; tail -n 15 <<<"$out" | sed 's/^/    /'
    fi
    echo "TIME: $name: longest stall $(jq -r .close.longest_stall_ms <<<"$LOAD") ms, max request latency $(jq -r .close.max_latency_ms <<<"$LOAD") ms"
    if [[ $after == "$want" && $before != "$want" ]]; then
        pass "$name: /api/status version $before -> $after"
    else
        fail "$name: /api/status version $before -> '$after', expected $want"
    fi
    if socket_stayed "$c" "$st0"; then
        pass "$name: portico.socket never left the active state ($SOCKET_NOTE)"
    else
        fail "$name: portico.socket changed state: $SOCKET_NOTE"
    fi
}

# removal_check NAME EXIT OUTPUT QUERY WANT SAYS: after a removal of portico (the check NAME,
# with its EXIT code and OUTPUT), QUERY in the guest prints WANT (as words) and port 80 is
# closed: in the guest, and the host gets no 200. SAYS: what else the PASS line tells.
removal_check() {
    local left h
    left=$(guest "$4; if timeout 3 bash -c ': </dev/tcp/127.0.0.1/80' 2>/dev/null; then echo port-80-open; fi" || true)
    h=$(status /healthz)
    if (($2 == 0)) && [[ $(echo $left) == "$5" && $h != 200 ]]; then
        pass "$1: port 80 closed in the guest, host gets no 200 ($h), $6"
    else
        fail "$1 (exit $2): left: $(echo $left); host /healthz $h"; tail -n 15 <<<"$3" | sed 's/^/    /'
    fi
}

# ---------------------------------------------------------------------------------------
# The version in Cargo.toml, and the two versions of the upgrade tests: real builds that
# differ only in the version they report.
PKGVER=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")
V1=$PKGVER-v1-test V2=$PKGVER-v2-test

# qemu_package VERSION DIR PACKAGER [ARG...]: portico built to report VERSION, packaged into
# DIR by the project's own ci/PACKAGER (build-deb.sh; build-oe-package.sh rpm), which gets
# the ARGs first; prints the package's path.
qemu_package() {
    local v=$1 dir=$2 bin=$2/portico-$1 pkg
    shift 2
    mkdir -p "$dir"
    qemu_build_portico "$v" "$bin"
    pkg=$(bash "$ROOT/ci/$1" "${@:2}" --binary "$bin" --arch "$DEBARCH" --version "$v" --out "$dir" | tail -n1)
    [[ -f $pkg ]] || { echo "$QEMU_NAME: ci/$* printed no package path ('$pkg')" >&2; exit 1; }
    echo "$pkg"
}

# qemu_build_portico VERSION OUT: a release build of portico for $TRIPLE that reports
# VERSION (PORTICO_VERSION; empty: Cargo.toml's), copied to OUT. A native build uses
# target/release, so that CI's other release builds of it share its crates.
qemu_build_portico() {
    local v=$1 out=$2 env=(env -u PORTICO_VERSION)
    [[ -z $v ]] || env=(env PORTICO_VERSION="$v")
    if [[ $DEBARCH == "$(dpkg --print-architecture)" ]]; then
        (cd "$ROOT" && "${env[@]}" nice -n 10 cargo build --release --locked -q -p portico) >&2
        cp "$ROOT/target/release/portico" "$out"
    else
        # Its own smoke test is skipped: the boot test is a bigger one.
        "${env[@]}" bash "$ROOT/ci/cross-build.sh" --no-smoke "$TRIPLE" >&2
        cp "$ROOT/target/$TRIPLE/release/portico" "$out"
    fi
}

# ---------------------------------------------------------------------------------------
# Buildroot-style guests and disks booted through firmware (ci/qemu-busybox.sh,
# ci/qemu-flash.sh).

# qemu_busybox_root DIR PORTICO: in DIR (made), the root filesystem of a Buildroot
# BusyBox-init system with portico, laid out as Buildroot lays it out: busybox-static as
# init and every applet (links where BusyBox installs them), the /etc of ci/qemu/busybox/
# (inittab, fstab, rcS/rcK running /etc/init.d/S??*, syslogd), the binary PORTICO (for
# $ARCH) with the shared libraries it links, what the package's SysV install step installs
# (ci/buildroot-install.mk INIT=sysv: S50portico and the overlay), and the user of its
# PORTICO_USERS made as Buildroot's mkusers makes it. Sets PORTICO_UID.
qemu_busybox_root() {
    local R=$1 bin=$2 applet users libs guest_path host_path
    mkdir -p "$R"/{bin,sbin,lib,usr/bin,usr/sbin,usr/lib,dev,proc,sys,tmp,run,root,mnt,opt,media} \
        "$R"/var/{cache,lib/misc,spool}
    # skeleton-init-sysv's /var: what is written at run time lives on the tmpfs of /run and /tmp.
    ln -s ../run "$R/var/run"; ln -s ../run/lock "$R/var/lock"; ln -s ../tmp "$R/var/log"; ln -s ../tmp "$R/var/tmp"
    cp -r "$ROOT/ci/qemu/busybox/etc" "$R/"
    chmod 0600 "$R/etc/shadow"
    install -m 0755 "$BUSYBOX" "$R/bin/busybox"
    # The list comes from the binary's own table: any architecture's busybox-static prints it
    # through qemu-user (binfmt) as well as natively.
    "$BUSYBOX" --list-full | while read -r applet; do
        [[ -e $R/$applet ]] || ln -s /bin/busybox "$R/$applet"
    done

    # The Buildroot package: cargo-package installs the binary, its SysV install step the rest.
    install -D -m 0755 "$bin" "$R/usr/bin/portico"
    make -s -C "$ROOT" -f "$ROOT/ci/buildroot-install.mk" TARGET_DIR="$R" INIT=sysv install
    # The shared libraries it links, where that glibc's loader looks for them.
    libs=$(qemu_shared_libs "$bin")
    while read -r guest_path host_path; do
        install -D -m 0755 "$(realpath "$host_path")" "$R$guest_path"
    done <<<"$libs"

    users=$(printf 'print-users:\n\t@:$(info $(PORTICO_USERS))\n' |
        make -s -C "$ROOT" -f "$ROOT/ci/buildroot-install.mk" -f - print-users)
    [[ -n $users ]] || die "buildroot-external's portico.mk defines no PORTICO_USERS for a system without systemd"
    qemu_add_users "$R" <<<"$users"
    PORTICO_UID=$(awk -F: '$1 == "portico" { print $3 }' "$R/etc/passwd")
    [[ -n $PORTICO_UID ]] || die "PORTICO_USERS makes no user portico: $users"
}

# qemu_shared_libs BINARY: "GUEST-PATH HOST-FILE" for each shared library BINARY loads, its
# loader included, as that loader finds them: ldd's answer for a native binary; for a
# foreign one, its loader's own --list, run through qemu-user (binfmt) on the host's
# multiarch libraries of that architecture (libc6:<arch>, which the cross build's standard
# library pulls in). Not libc6-<arch>-cross: its loader and libc are another build of
# glibc than libc6:<arch>'s, and a loader and libc of two builds crash together.
qemu_shared_libs() {
    local bin=$1 interp path
    if [[ $DEBARCH == "$(dpkg --print-architecture)" ]]; then
        for path in $(ldd "$bin" | grep -o '/[^ ]*'); do echo "$path $path"; done
        return
    fi
    apt_install "libc6:$DEBARCH" binutils
    interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
    [[ -n $interp ]] || die "$bin names no program interpreter: a static binary needs no libraries, a broken one is no test"
    for path in $("$interp" --list "$bin" | grep -o '/[^ ]*'); do
        [[ -e $path ]] || die "$bin needs $path, which the host's libc6:$DEBARCH does not have"
        echo "$path $path"
    done
}

# qemu_add_users DIR: the lines of a <PKG>_USERS table (stdin) into DIR's /etc/passwd, group
# and shadow as Buildroot's support/scripts/mkusers adds them: an id of -1 is the lowest
# free system id (100-999), home "-" is /, another home is made and owned by the user,
# shell "-" is /bin/false, a password is taken as it is given.
qemu_add_users() {
    local R=$1 user uid group gid passwd home shell groups comment
    free_id() { # FILE: the lowest id from 100 to 999 that no line of FILE uses
        local id
        for ((id = 100; id <= 999; id++)); do
            awk -F: -v id="$id" '$3 == id { found = 1 } END { exit !found }' "$1" || { echo "$id"; return; }
        done
        die "no free system id in $1"
    }
    while read -r user uid group gid passwd home shell groups comment; do
        [[ -n $user ]] || continue
        [[ $passwd != =* && $passwd != '!='* && $groups == - ]] ||
            die "PORTICO_USERS: encoded passwords and extra groups are not done here: extend qemu_add_users"
        if ! grep -q "^$group:" "$R/etc/group"; then
            ((gid != -1)) || gid=$(free_id "$R/etc/group")
            echo "$group:x:$gid:" >>"$R/etc/group"
        fi
        gid=$(awk -F: -v g="$group" '$1 == g { print $3 }' "$R/etc/group")
        ((uid != -1)) || uid=$(free_id "$R/etc/passwd")
        [[ $passwd != - ]] || passwd=''
        echo "$user:x:$uid:$gid:$comment:${home/#-//}:${shell/#-//bin/false}" >>"$R/etc/passwd"
        echo "$user:$passwd:::::::" >>"$R/etc/shadow"
        [[ $home == - ]] || install -d -o "$uid" -g "$gid" "$R$home"
    done
}

# qemu_initrd_cmdline_root MODULE...: qemu_initrd's initrd (busybox and the modules), with
# an init that mounts the root the kernel line names, as a kernel with those drivers built
# in does: root=PARTLABEL=<GPT partition name> or root=/dev/<node>, rootfstype= (default
# ext4), ro or rw (default ro), waiting up to 10 s for the device. A root it cannot find or
# mount powers the guest off with the reason on the console: a wrong root= in a
# bootloader's configuration fails the boot, as it would on the device.
qemu_initrd_cmdline_root() {
    local d=$WORK/initrd-root
    qemu_initrd "$@"
    rm -rf "$d"; mkdir -p "$d"
    cat >"$d/init" <<'EOF'
#!/busybox sh
/busybox mkdir -p /bin /proc /sys /dev /newroot
/busybox mount -t proc proc /proc && /busybox --install -s /bin
export PATH=/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod "/mods/$m"; done
root='' fstype=ext4 mode=ro
for arg in $(cat /proc/cmdline); do
    case $arg in
        root=*) root=${arg#root=} ;;
        rootfstype=*) fstype=${arg#rootfstype=} ;;
        ro | rw) mode=$arg ;;
    esac
done
find_root() {
    case $root in
        PARTLABEL=*) grep -lx "PARTNAME=${root#PARTLABEL=}" /sys/class/block/*/uevent 2>/dev/null |
            sed -n 's|^/sys/class/block/\([^/]*\)/uevent$|/dev/\1|p' ;;
        /dev/*) echo "$root" ;;
    esac
}
give_up() { echo "initrd: $*"; sync; poweroff -f; }
case $root in
    PARTLABEL=* | /dev/*) ;;
    *) give_up "root='$root' on the kernel line: this initrd takes root=PARTLABEL=<name> or root=/dev/<node>" ;;
esac
dev=''
for i in $(seq 100); do
    dev=$(find_root)
    [ -n "$dev" ] && [ "$(echo "$dev" | wc -l)" = 1 ] && [ -b "$dev" ] && break
    dev=''; sleep 0.1
done
[ -n "$dev" ] || give_up "root=$root: no such device (or more than one) after 10 s: $(cat /proc/partitions | tr -s ' \n' ' ')"
mount -t "$fstype" -o "$mode" "$dev" /newroot || give_up "root=$root: cannot mount $dev as $fstype ($mode)"
echo "initrd: root=$root is $dev, mounted $mode"
umount /sys /proc; mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
EOF
    chmod +x "$d/init"
    # The kernel unpacks concatenated archives in order: this /init replaces qemu_initrd's.
    (cd "$d" && echo init | cpio -o -H newc --quiet | gzip -1) >>"$WORK/initrd.gz"
    rm -rf "$d"
}

# qemu_via_firmware FIRMWARE: from now on qemu_start boots $WORK/disk.img as a board boots
# its card: QEMU runs FIRMWARE (-bios: a bootloader that finds its kernel, initrd and kernel
# line on the disk), and qemu_start's -kernel, -initrd and -append are left out. All else
# (ports, drive, network) is qemu_start's.
qemu_via_firmware() {
    QEMU_FIRMWARE=$1 QEMU_DIRECT=("${QEMU[@]}")
    QEMU=(qemu_exec_firmware)
}
qemu_exec_firmware() { # QEMU-ARGS...: exec's QEMU_DIRECT with them, the firmware in place of a kernel
    local args=()
    while (($#)); do
        case $1 in
            -kernel | -initrd | -append) shift 2 ;;
            *) args+=("$1"); shift ;;
        esac
    done
    exec "${QEMU_DIRECT[@]}" -bios "$QEMU_FIRMWARE" "${args[@]}"
}

# guest_put FILE DEST: FILE from the host to DEST in the guest, over the control channel:
# the command first; once the guest's shell runs it (its "@@ready" comes back), the raw
# bytes, which its head -c reads. Waiting for that line matters: BusyBox's sh reads ahead
# of the command, and would take the bytes for more commands. Fails unless DEST then has
# FILE's size.
guest_put() {
    python3 - "$CTL_PORT" "$1" "$2" <<'PY'
import os, socket, sys
port, src, dest = int(sys.argv[1]), sys.argv[2], sys.argv[3]
size = os.path.getsize(src)
s = socket.create_connection(("127.0.0.1", port), timeout=300)
s.sendall(('echo @@ready; head -c %d >%s; printf "@@size=%%s\\n" "$(wc -c <%s)"; exit\n'
           % (size, dest, dest)).encode())
out = b""
while b"@@ready" not in out:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("guest_put: the guest closed the channel before it was ready: %r" % out)
    out += chunk
with open(src, "rb") as f:
    s.sendall(f.read())
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    out += chunk
got = [line.split("=", 1)[1].strip() for line in out.decode(errors="replace").splitlines()
       if line.startswith("@@size=")]
if got != [str(size)]:
    sys.exit("guest_put: %s has %s bytes in the guest, not %d" % (dest, got, size))
PY
}

# ---------------------------------------------------------------------------------------
# A package feed for the guest (ci/qemu-update.sh).
QEMU_FEED_MAC=52:54:00:0f:ee:d0
# qemu_feed_nic PORT: qemu_start boots the guest with a second network card whose only
# peer is 10.0.3.100:80, forwarded by QEMU (guestfwd) to 127.0.0.1:PORT on the host; with
# restrict=on the guest reaches nothing else through it. Call it before qemu_start.
# guestfwd's "-tcp:HOST:PORT" form is one chardev connection, made once at QEMU's start:
# the guest's second connection fails. "-cmd:" runs the command for each connection.
qemu_feed_nic() {
    QEMU+=(-netdev "user,id=feed,restrict=on,net=10.0.3.0/24,guestfwd=tcp:10.0.3.100:80-cmd:socat STDIO TCP:127.0.0.1:$1"
        -device "virtio-net-pci,netdev=feed,mac=$QEMU_FEED_MAC,romfile=")
}
# qemu_feed_guest DIR KEY: the guest's side of it, in its root DIR: the card's address, and
# the portico feed where a device maker puts it (README "Updates in the field"): the
# public key KEY (binary OpenPGP) and a deb822 sources file that trusts only that key.
qemu_feed_guest() {
    local r=$1
    # Before 10-qemu-test.network, which matches every card by name.
    printf '[Match]\nMACAddress=%s\n\n[Link]\nRequiredForOnline=no\n\n[Network]\nAddress=10.0.3.15/24\n' "$QEMU_FEED_MAC" \
        >"$r/etc/systemd/network/05-qemu-feed.network"
    install -D -m 0644 "$2" "$r/etc/apt/keyrings/portico-feed.gpg"
    printf '%s\n' 'Types: deb' 'URIs: http://10.0.3.100/' 'Suites: portico' 'Components: main' \
        'Signed-By: /etc/apt/keyrings/portico-feed.gpg' >"$r/etc/apt/sources.list.d/portico.sources"
}
