#!/usr/bin/env bash
# Field updates from a signed feed, in QEMU (issue 18): portico-update on a booted Debian
# guest takes portico from a signed apt feed served on the host's loopback, refuses what
# does not check, rolls back what does not serve, survives a power cut, and does what the
# owner set.
#
#   ci/qemu-update.sh [x86_64|aarch64]    (x86_64 by default; run as root on Debian 12)
#
# x86_64 by default: its guest boots and runs dpkg faster under TCG than aarch64 (notes:
# 10 s to the first 200 against 12-24 s), and its portico is a native build, which CI's
# other steps have compiled the crates of already; the updater is a shell script, the same
# on every architecture, and ci/qemu-test.sh covers the aarch64 package.
#
# Builds portico v1 and v2 (real builds that differ only in PORTICO_VERSION) as .debs with
# ci/build-deb.sh, and test packages made from them with dpkg-deb -R and a re-pack (as
# ci/qemu-test.sh makes its broken one): v3, whose binary exits 1 at start; v3b, which
# serves but reports another version (v2's binary), as a build that starts but fails its
# health check; v4, the same again, for the power cut. Signs feeds with ci/feed.sh and a
# throwaway key, and one with another key. The guest has portico v1, the public key and
# the feed's address (/etc/apt/sources.list.d/portico.sources, Signed-By=) in its image,
# and reaches nothing but the feed: a second network card whose only peer is QEMU's
# guestfwd to an HTTP server on the host's 127.0.0.1 (restrict=on). The host changes the
# feed the guest sees by switching which directory that server serves. Each check prints
# PASS:/FAIL:, the last line is "N passed, N failed".
#
# Environment: QEMU_TEST_TIMEOUT (seconds for the whole run, default 2700),
# QEMU_TEST_KEEP=1 keeps the work dir and console log even on success.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd) QEMU_NAME=qemu-update
# shellcheck source=ci/qemu/lib.sh
source "$ROOT/ci/qemu/lib.sh"
qemu_time_bound "${QEMU_TEST_TIMEOUT:-2700}" "$@"
# The guest has dnf (Debian's) beside apt, for the rpm part.
qemu_prepare "${1:-x86_64}" "$QEMU_BASE_PKGS,rpm,dnf,dnf-plugins-core"
apt_install gnupg apt-utils xz-utils python3 rpm

# ---------------------------------------------------------------------------------------
# Packages and feeds.
T1=$(now_s)
DEBS=$WORK/debs
DEB1=$(qemu_package "$V1" "$DEBS" build-deb.sh); DEB2=$(qemu_package "$V2" "$DEBS" build-deb.sh)
V3=$PKGVER-v3-test V3B=$PKGVER-v3b-test V3C=$PKGVER-v3c-test V4=$PKGVER-v4-test
# relabel FROM VERSION [BINARY-SCRIPT]: FROM's .deb as VERSION, its binary replaced by the
# script when given; prints the new .deb's path.
relabel() {
    local d=$DEBS/relabel out=$DEBS/portico_$2_$DEBARCH.deb
    rm -rf "$d"; dpkg-deb -R "$1" "$d"
    [[ -z ${3:-} ]] || printf '%s\n' '#!/bin/sh' "$3" >"$d/usr/bin/portico"
    sed -i "s/^Version: .*/Version: $2/" "$d/DEBIAN/control"
    dpkg-deb -b "$d" "$out" >/dev/null; rm -rf "$d"
    echo "$out"
}
DEB3=$(relabel "$DEB2" "$V3" 'echo "portico: a broken build, exiting 1" >&2; exit 1')
DEB3B=$(relabel "$DEB2" "$V3B")
# v3c starts, tells systemd it is ready and feeds the watchdog, but answers 500 to every
# request on the sockets systemd passes: a build whose /healthz fails.
DEB3C=$(relabel "$DEB2" "$V3C" 'exec python3 - <<"EOF"
import os, socket, threading, time
def notify(message):
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\0" + address[1:]
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(message, address)
def serve(fd):
    listener = socket.socket(fileno=fd)
    while True:
        client, _ = listener.accept()
        client.recv(4096)
        client.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()
for fd in range(3, 3 + int(os.environ["LISTEN_FDS"])):
    threading.Thread(target=serve, args=(fd,), daemon=True).start()
notify(b"READY=1")
while True:
    notify(b"WATCHDOG=1")
    time.sleep(5)
EOF')
DEB4=$(relabel "$DEB2" "$V4")
T_BUILD=$(elapsed "$T1")

KEYFPR=$(bash "$ROOT/ci/feed.sh" key "$WORK/key")
OTHERFPR=$(bash "$ROOT/ci/feed.sh" key "$WORK/otherkey" "someone else")
# feed NAME KEYDIR FPR DEB...: a signed apt feed in $WORK/feeds/NAME.
feed() {
    GNUPGHOME=$WORK/$2 bash "$ROOT/ci/feed.sh" apt --key "$3" --out "$WORK/feeds/$1" "${@:4}" 2>/dev/null
}
# In the order they are served, a second apart: apt takes an InRelease whose Date is older
# than the one it has for unchanged (it keeps the newer lists: a replay guard), so a feed
# signed before the one served last would go unseen (run 3: the v3 feed, signed before the
# "old" one, offered "nothing newer"). A real feed's next release is always dated later.
feed otherkey otherkey "$OTHERFPR" "$DEB1" "$DEB2"
feed unsigned key "$KEYFPR" "$DEB1" "$DEB2"
rm "$WORK/feeds/unsigned/dists/portico/InRelease" "$WORK/feeds/unsigned/dists/portico/Release.gpg"
sleep 1; feed tampered key "$KEYFPR" "$DEB1" "$DEB2"
# One byte of v2's package changed after signing: same size, another hash.
printf 'X' | dd of="$(ls "$WORK"/feeds/tampered/pool/main/portico_"$V2"_*.deb)" bs=1 seek=2000 conv=notrunc status=none
sleep 1; feed v2 key "$KEYFPR" "$DEB1" "$DEB2"
sleep 1; feed old key "$KEYFPR" "$DEB1"
sleep 1; feed v3 key "$KEYFPR" "$DEB1" "$DEB2" "$DEB3"
sleep 1; feed v3b key "$KEYFPR" "$DEB1" "$DEB2" "$DEB3" "$DEB3B"
sleep 1; feed v3c key "$KEYFPR" "$DEB1" "$DEB2" "$DEB3" "$DEB3B" "$DEB3C"
sleep 1; feed v4 key "$KEYFPR" "$DEB1" "$DEB2" "$DEB3" "$DEB3B" "$DEB3C" "$DEB4"
FEED_BYTES=$(du -sb "$WORK/feeds/v2" | cut -f1)

# The rpm part: v1, v2 and v3b (v2's binary, as a build that serves but reports another
# version) as ci/build-oe-package.sh makes them, from the binaries built above, in signed
# rpm feeds; and one whose repomd.xml was changed after signing.
oe_rpm() { bash "$ROOT/ci/build-oe-package.sh" rpm --binary "$1" --arch "$DEBARCH" --version "$2" --out "$WORK/rpms" | tail -n1; }
RPM1=$(oe_rpm "$DEBS/portico-$V1" "$V1"); RPM2=$(oe_rpm "$DEBS/portico-$V2" "$V2")
RPM3B=$(oe_rpm "$DEBS/portico-$V2" "$V3B")
rpm_feed() { GNUPGHOME=$WORK/key bash "$ROOT/ci/feed.sh" rpm --key "$KEYFPR" --out "$WORK/feeds/$1" "${@:2}" 2>/dev/null; }
rpm_feed rpm-v2 "$RPM1" "$RPM2"
rpm_feed rpm-tampered "$RPM1" "$RPM2"
sed -i 's|<revision>|<revision>1|' "$WORK/feeds/rpm-tampered/repodata/repomd.xml"
rpm_feed rpm-v3b "$RPM1" "$RPM2" "$RPM3B"
# The guest's rpm database knows none of Debian's packages: one package provides what
# portico's rpm requires (libc, /bin/sh), as a Yocto image's packages would.
mkdir -p "$WORK/provides"
{
    printf 'Name: debian-base\nVersion: 1\nRelease: 1\nSummary: what the Debian guest has\nLicense: MIT\n'
    rpm -qp --requires "$RPM1" | grep -v -e '^rpmlib(' -e '^config(' | sort -u | sed 's/^/Provides: /'
    printf '%%description\nTest only.\n%%files\n'
} >"$WORK/provides/base.spec"
rpmbuild --quiet -bb --define "_topdir $WORK/provides" --define "_rpmdir $WORK/provides" \
    --define '_build_name_fmt base.rpm' "$WORK/provides/base.spec" >/dev/null 2>&1

# The feed server: the host's loopback only; $WORK/served says which feed it serves.
FEED_PORT=$(free_port)
# The feeds were all made within seconds: each is dated now when it is served, or the
# server's Last-Modified (seconds) could be no newer than the guest's copy of the last one,
# and apt's If-Modified-Since would keep that (a 304), as a real feed's next release never is.
serve() { find "$WORK/feeds/$1" -type f -exec touch {} +; ln -sfn "$WORK/feeds/$1" "$WORK/served"; }
serve v2
# feed_mode serve|down|stall: what the server does with the next connections: serve the
# feed; close each at once, unanswered (what the guest sees of a feed it cannot reach: its
# connection ends); or hold each unanswered until the mode changes (a feed that stalls).
feed_mode() { echo "$1" >"$WORK/feed-mode.tmp" && mv "$WORK/feed-mode.tmp" "$WORK/feed-mode"; }
feed_mode serve
cat >"$WORK/feed-server.py" <<'PY'
import functools, http.server, sys, time
port, served, modefile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def mode():
    with open(modefile) as f:
        return f.read().strip()
class Handler(http.server.SimpleHTTPRequestHandler):
    def handle(self):
        if mode() == "down":
            return
        t0 = time.monotonic()
        while mode() == "stall" and time.monotonic() - t0 < 900:
            time.sleep(0.5)
        super().handle()
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=served)).serve_forever()
PY
python3 "$WORK/feed-server.py" "$FEED_PORT" "$WORK/served" "$WORK/feed-mode" >"$WORK/feed-server.log" 2>&1 &
FEED_PID=$!

# ---------------------------------------------------------------------------------------
# Image: v1 installed by dpkg (its postinst enables the sockets and the updater's units),
# the feed's address and public key where a maker puts them.
T2=$(now_s)
R=$WORK/rootfs
qemu_systemd_guest "$R" portico-update-test
cp "$DEB1" "$R/root/v1.deb"
chroot "$R" dpkg -i /root/v1.deb >"$WORK/dpkg-v1.log" 2>&1 \
    || { cat "$WORK/dpkg-v1.log" >&2; echo "$QEMU_NAME: installing v1.deb into the image failed" >&2; exit 1; }
for unit in portico-update.timer portico-update.path portico-update.service; do
    [[ $(systemctl --root="$R" is-enabled "$unit" 2>/dev/null) == enabled ]] \
        || { echo "$QEMU_NAME: installing v1.deb did not enable $unit" >&2; exit 1; }
done
qemu_feed_guest "$R" "$WORK/key/feed.gpg"
# /metrics as a maker's Prometheus reads it: a token in the credential metrics-token.
METRICS_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '+/=')
printf '%s' "$METRICS_TOKEN" | install -D -m 0600 /dev/stdin "$R/etc/portico/metrics-token"
printf '[Service]\nLoadCredential=metrics-token:/etc/portico/metrics-token\n' \
    | install -D -m 0644 /dev/stdin "$R/etc/systemd/system/portico.service.d/metrics-token.conf"
# The rpm part's files: the packages, and the dnf repository of portico as a Yocto image
# with PORTICO_FEED_URI has it (portico-update.inc).
mkdir -p "$R/root/rpms"; cp "$RPM1" "$R/root/rpms/v1.rpm"; cp "$WORK/provides/base.rpm" "$R/root/rpms/"
install -D -m 0644 "$WORK/key/feed.asc" "$R/etc/pki/portico-feed/feed.asc"
printf '[portico]\nname=portico\nbaseurl=http://10.0.3.100/\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file:///etc/pki/portico-feed/feed.asc\n' \
    | install -D -m 0644 /dev/stdin "$R/etc/yum.repos.d/portico.repo"
# Debian's dnf-plugins-core turns on its "local" plugin, which runs createrepo_c (not in the
# image) after each transaction and prints a traceback; a Yocto image has no such plugin.
sed -i 's/^enabled *=.*/enabled = 0/' "$R/etc/dnf/plugins/local.conf"
# Debian's rpm keeps its database in ~/.rpmdb (to stay out of dpkg's way); an rpm-based
# image (Yocto's) has it in /var/lib/rpm, which the updater, with ProtectHome=, can reach.
echo '%_dbpath /var/lib/rpm' | install -D -m 0644 /dev/stdin "$R/etc/rpm/macros.dbpath"
qemu_disk "$R"
qemu_initrd virtio_pci virtio_blk crc32c_generic ext4
rm -rf "$R"
T_IMAGE=$(elapsed "$T2")

# ---------------------------------------------------------------------------------------
qemu_traps
trap 'rc=$?; kill "$FEED_PID" 2>/dev/null || true; (exit $rc); qemu_cleanup' EXIT
qemu_feed_nic "$FEED_PORT"
qemu_start --https "systemd.journald.forward_to_console=1"
LOAD_OPTS=(--keepalive 2 --tls-port "$HTTPS_PORT")
qemu_booted "boot" 600
wait_200 60 || fail "boot: no HTTP 200 within 60 s of the guest network"

ST=/var/lib/portico-update/status.json
APPDIR=/var/lib/private/portico
st() { guest "cat $ST" | jq -r "$1" 2>/dev/null || true; } # JQ-FILTER on status.json
installed() { guest "dpkg-query -W -f='\${Version}' portico" || true; }
guest_now() { guest 'date +%s'; }
# wait_run SINCE TIMEOUT: until status.json is "done" with run_at >= SINCE and the service
# has stopped; prints the seconds it took.
wait_run() {
    local t0 deadline=$((SECONDS + $2))
    t0=$(now_s)
    until [[ $(st "select(.run_at >= $1) | .state") == "done" ]] \
        && [[ $(prop portico-update.service ActiveState) != activating ]]; do
        ((SECONDS < deadline)) || return 1; sleep 0.5
    done
    elapsed "$t0"
}
# timer_run: portico-update.timer fires now (a runtime drop-in: OnActiveSec=1s, no delay,
# no coalescing), so the run is the timer's own, as it is daily. The drop-in goes once the
# timer has started the service: portico-update.service's InactiveExitTimestampMonotonic
# changed. (Not the timer's LastTriggerUSecMonotonic: a restart of the timer resets it to
# 0, so a wait for it to change ended at once, the drop-in went before the timer elapsed,
# and the run never came.)
timer_run() {
    local d=/run/systemd/system/portico-update.timer.d
    guest "mkdir -p $d && printf '[Timer]\nOnActiveSec=1s\nRandomizedDelaySec=0\nAccuracySec=1us\n' >$d/now.conf \
        && t=\$(systemctl show -p InactiveExitTimestampMonotonic --value portico-update.service) \
        && systemctl daemon-reload && systemctl restart portico-update.timer \
        && for i in \$(seq 120); do [ \"\$(systemctl show -p InactiveExitTimestampMonotonic --value portico-update.service)\" != \"\$t\" ] && break; sleep 0.5; done; \
        rm $d/now.conf && systemctl daemon-reload" 90 >/dev/null
}
# request WORD: what portico does for "check now"/"install now": a temp file, renamed into
# place (for the runs that test the updater; the owner's own are asked on /settings below).
request() { guest "printf '$1\n' >$APPDIR/update-request.tmp && mv $APPDIR/update-request.tmp $APPDIR/update-request" >/dev/null; }
summary() { guest "cat $ST" | jq -c '{trigger, result, detail, installed, available, rollbacks, skipped}' 2>/dev/null || echo '(no status.json)'; }
# served_since VERSION TIMEOUT T0: until /api/status reports VERSION; prints the seconds since T0.
served_since() {
    local deadline=$((SECONDS + $2))
    until [[ $(api .portico.version) == "$1" ]]; do ((SECONDS < deadline)) || return 1; sleep 0.2; done
    elapsed "$3"
}

# conf_set NAME VALUE / conf_reset: a setting of the guest's /etc/portico/update.conf (root's,
# as a maker or admin sets it) for one check, and the file as the package installed it.
guest "cp /etc/portico/update.conf /root/update.conf.orig" >/dev/null
conf_set() { guest "sed -i '/^$1=/d' /etc/portico/update.conf && echo '$1=$2' >>/etc/portico/update.conf" >/dev/null; }
conf_reset() { guest "cp /root/update.conf.orig /etc/portico/update.conf" >/dev/null; }
# updater_log SINCE: the updater's journal lines since the guest's unix time SINCE, with the
# seconds since boot: where a run's time went.
updater_log() { guest "journalctl -q -o short-monotonic -u portico-update.service --since=@$1 | grep -v -e '^-- ' | cut -c1-220 | sed 's/^/    /'" || true; }

if [[ $(api .portico.version) == "$V1" && $(prop portico-update.timer ActiveState) == active \
    && $(prop portico-update.path ActiveState) == active ]]; then
    pass "boot: v1 serves; portico-update.timer and portico-update.path active (enabled by the package)"
else
    fail "boot: version '$(api .portico.version)', timer $(prop portico-update.timer ActiveState), path $(prop portico-update.path ActiveState)"
fi
echo "TIME: timer: $(guest 'systemctl list-timers --all --no-legend portico-update.timer' | tr -s ' ')"
# The owner: set up over HTTPS with the set-up code from the journal, as on a new device;
# after each rollback the password still logs in.
set_up_owner owner

# What the owner sees and asks on /settings, logged in (again, when a restart of portico
# ended the session), and what /metrics says, with the maker's token.
JAR=$WORK/owner.cookies
owner_settings() { # prints /settings as the owner gets it
    local page
    page=$(scurl /settings -b "$JAR")
    if [[ $page != *'name="csrf"'* ]]; then
        owner_login "$JAR"
        page=$(scurl /settings -b "$JAR")
    fi
    printf '%s\n' "$page"
}
# owner_updates ACTION [AUTOMATIC]: a button of the page's Updates section (save, check,
# install); prints the status code (303 when taken).
owner_updates() {
    local csrf
    csrf=$(owner_settings | grep -o 'name="csrf" value="[^"]*"' | head -n1 | cut -d'"' -f4)
    scurl /settings/updates -b "$JAR" -o /dev/null -w '%{http_code}' --data-urlencode "csrf=$csrf" \
        --data-urlencode "action=$1" ${2:+--data-urlencode "automatic=$2"}
}
# page_says TEXT...: /settings, its entities decoded, has each TEXT.
page_says() {
    local text
    text=$(owner_settings | python3 -c 'import html, sys; print(html.unescape(sys.stdin.read()))')
    for want in "$@"; do [[ $text == *"$want"* ]] || { PAGE_MISSING=$want; return 1; }; done
}
metric() { curl -sk --max-time 10 -H "Authorization: Bearer $METRICS_TOKEN" "$SURL/metrics" | grep "^$1[{ ]" || true; } # NAME: its lines
# shown RESULT: the last run's result and detail on /settings, the result in /metrics.
shown() {
    PAGE_MISSING=
    page_says "data-field=\"update-result\">$1</span>. $(st .detail)</p>" \
        && [[ $(metric portico_update_last_result) == "portico_update_last_result{result=\"$1\"} 1" ]]
}
shown_note() {
    [[ -z ${PAGE_MISSING:-} ]] || printf "the page lacks '%s'; " "$PAGE_MISSING"
    echo "/metrics: $(metric portico_update_last_result)"
}

# ---------------------------------------------------------------------------------------
# Refused: another key, no signature, a package altered after signing, the owner's
# "install now" on /settings each time. Nothing installed, the reason in status.json, on
# /settings and in /metrics.
for bad in otherkey unsigned tampered; do
    serve "$bad"
    t=$(guest_now); asked=$(owner_updates install)
    if [[ $asked == 303 ]] && wait_run "$t" 300 >/dev/null && [[ $(st .result) == refused && $(installed) == "$V1" ]] \
        && [[ $(api .portico.version) == "$V1" ]] && ! guest "ls /var/cache/apt/archives/portico_${V2}_* 2>/dev/null" | grep -q .; then
        pass "refused ($bad feed): nothing installed, v1 serves; $(st .detail)"
    else
        fail "refused ($bad feed): 'install now' answered $asked; installed '$(installed)'; status $(summary)"
    fi
    if shown refused; then pass "refused ($bad feed): the result and its reason on /settings and in /metrics"
    else fail "refused ($bad feed): $(shown_note)"; fi
done

# ---------------------------------------------------------------------------------------
# Bad input gets a clear message and changes nothing, in bounded time: "install now" with
# v2 on offer, and each run must end failed, its detail saying why, within its bound (and,
# for a wait, not before it), v1 installed and serving, dpkg's database clean.
# bad_input NAME MIN MAX DETAIL-REGEX
bad_input() {
    local t t0 secs
    t=$(guest_now); t0=$(now_s); request install
    wait_run "$t" $(($3 + 120)) >/dev/null || true
    secs=$(elapsed "$t0")
    if [[ $(st "select(.run_at >= $t) | .result") == failed && $(st .detail) =~ $4 ]] && within "$secs" "$3" \
        && within "$2" "$secs" && [[ $(installed) == "$V1" && $(api .portico.version) == "$V1" ]] \
        && [[ -z $(guest "dpkg --audit") ]]; then
        pass "$1: failed after $secs s (bounds $2-$3 s), nothing changed; $(st .detail)"
    else
        fail "$1: after $secs s (bounds $2-$3 s): installed '$(installed)', serving '$(api .portico.version)', status $(summary)"
        updater_log "$t"
    fi
}
serve v2
feed_mode down
bad_input "unreachable feed" 0 120 'feed could not be read'
conf_set feed_timeout 30
feed_mode stall
bad_input "feed that stalls (feed_timeout=30)" 30 150 'did not answer within 30 s'
feed_mode serve
conf_reset
guest "fallocate -l \$(( (\$(df -Pk /var | awk 'NR == 2 {print \$4}') - 8192) * 1024 )) /var/fill" >/dev/null
bad_input "full disk (8 MiB left on /var)" 0 150 'not enough free space'
guest "rm -f /var/fill" >/dev/null
conf_set lock_timeout 20
guest "systemd-run -q --unit=hold-dpkg-lock python3 -c 'import fcntl, time; f = open(\"/var/lib/dpkg/lock-frontend\", \"w\"); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(600)'" >/dev/null
bad_input "dpkg's lock held by another process (lock_timeout=20)" 20 180 "held dpkg's lock for more than 20 s"
guest "systemctl stop hold-dpkg-lock" >/dev/null
conf_reset

# ---------------------------------------------------------------------------------------
# v1 -> v2 from the signed feed, the owner's "install now" (through the path unit), under
# the steady, keep-alive and TLS streams: none fails, the socket stays.
serve v2
c=$(cursor portico.socket); st0=$(socket_entered)
load_start "${LOAD_OPTS[@]}"
t=$(guest_now); t_req=$(now_s); owner_updates install >/dev/null
t_v2=$(served_since "$V2" 300 "$t_req") || t_v2=never
wait_run "$t" 300 >/dev/null || true
load_stop
if load_clean && [[ $(st .result) == installed && $(installed) == "$V2" && $(st .trigger) == request ]]; then
    pass "upgrade v1->v2 by the updater under load: $(load_summary); $(st .detail)"
else
    fail "upgrade v1->v2: $(load_summary); status $(summary)"; updater_log "$t"
fi
if socket_stayed "$c" "$st0"; then pass "upgrade v1->v2: $SOCKET_NOTE"; else fail "upgrade v1->v2: $SOCKET_NOTE"; fi
echo "TIME: 'install now' (POST /settings/updates) to $V2 serving: $t_v2 s"
updater_log "$t"
echo "FIGURE: what the updater downloaded: $(guest "journalctl -q -o cat -u portico-update.service | grep -o 'Fetched [^(]*' | tail -n 2 | paste -sd';'" || true) (the whole feed of v1+v2: $FEED_BYTES bytes)"
echo "FIGURE: $(guest "journalctl -q -o cat -u portico-update.service | grep -o 'memory peak of this run: .*' | tail -n1" || true)"

# A feed that offers only an older version (v1): nothing installed.
serve old
t=$(guest_now); request install
if wait_run "$t" 300 >/dev/null && [[ $(st .result) == up-to-date && $(st .detail) =~ 'offers nothing newer' ]] \
    && [[ $(installed) == "$V2" && $(api .portico.version) == "$V2" ]]; then
    pass "older version on the feed: not installed, $V2 serves; $(st .detail)"
else
    fail "older version on the feed: installed '$(installed)', status $(summary)"
fi

# ---------------------------------------------------------------------------------------
# Broken releases, by the timer: installed, found unhealthy, v2 back within 120 s of the
# bad version's install (the updater's bound: a health check of up to 60 s, then the
# rollback); clients that reached the
# guest answered; the owner still logs in; the next run does not install them again,
# though the feed still offers them.
# run_secs: the last run of portico-update.service, from its start (the timer firing) to
# its end (after the updater saw a version serve), in seconds, by the guest's clock: the
# host's own measure would add the test's arming of the timer (two daemon-reloads) and its
# polling.
run_secs() {
    guest "systemctl show -p InactiveExitTimestampMonotonic -p InactiveEnterTimestampMonotonic portico-update.service" \
        | awk -F= '{ t[$1] = $2 } END { printf "%.1f", (t["InactiveEnterTimestampMonotonic"] - t["InactiveExitTimestampMonotonic"]) / 1e6 }'
}
# install_to_end SINCE: seconds from the updater's "installing" line to its run's result line,
# in its journal since the guest's unix time SINCE: how long the bad version was in place.
install_to_end() {
    guest "journalctl -q -o short-monotonic -u portico-update.service --since=@$1" \
        | awk -F'[][]' '/portico-update: installing / && !a { a = $2 } /portico-update: (rolled-back|installed|failed):/ { b = $2 }
            END { if (a != "" && b != "") printf "%.1f", b - a; else print "unknown" }'
}
# broken_check NAME VERSION FEED [any]: any: the bad version's own error answers count as
# answers (v3c answers 500 to everyone while it is in place).
broken_check() {
    local name=$1 v=$2 t t0 secs hsecs isecs unanswered
    serve "$3"
    fault_c=$(cursor portico.socket); fault_st0=$(socket_entered)
    load_start --keepalive 2 --timeout 90
    t=$(guest_now); t0=$(now_s); timer_run
    wait_run "$t" 300 >/dev/null || true
    hsecs=$(elapsed "$t0")
    load_stop
    secs=$(run_secs) isecs=$(install_to_end "$t")
    local rb_from
    rb_from=$(st .last_rollback.from)
    if [[ $(st .result) == rolled-back && $rb_from == "$v" && $(st .trigger) == timer && $(installed) == "$V2" \
        && $(api .portico.version) == "$V2" ]] && [[ $isecs != unknown ]] && within "$isecs" 120; then
        pass "$name: $v installed by the timer's run, found unhealthy, $V2 back and serving ${isecs} s after the install (limit 120 s); $(st .last_rollback.reason)"
    else
        fail "$name: $V2 serving ${isecs} s after the install (limit 120 s): installed '$(installed)', serving '$(api .portico.version)', status $(summary)"
    fi
    echo "TIME: $name: the timer's run (refresh, download, install, health check, rollback, health check) ${secs} s; $v in place (install to $V2 serving) ${isecs} s; on the host, from arming the timer to seeing the run end: ${hsecs} s"
    updater_log "$t"
    if [[ ${4:-} == any ]]; then unanswered=$(load_unanswered); else unanswered=$(load_unserved); fi
    if socket_stayed "$fault_c" "$fault_st0" && [[ $unanswered == 0 ]]; then
        pass "$name: every client that reached the guest was answered: $(load_summary); $SOCKET_NOTE"
    else
        fail "$name: clients: $(load_summary); $SOCKET_NOTE"
    fi
    login_check "$name"
    if shown rolled-back && page_says "Rolled back $(st .rollbacks) times" "from $v to $V2: $(st .last_rollback.reason)" \
        && [[ $(metric portico_update_rollbacks_total) == "portico_update_rollbacks_total $(st .rollbacks)" ]]; then
        pass "$name: the rollback and its reason on /settings, the count ($(st .rollbacks)) in /metrics"
    else
        fail "$name: $(shown_note); $(metric portico_update_rollbacks_total)"
    fi
    t=$(guest_now); timer_run; wait_run "$t" 300 >/dev/null || true
    if [[ $(st .result) == up-to-date && $(installed) == "$V2" && $(st '.skipped | index("'"$v"'")') != null ]] \
        && guest "apt-cache -o Dir::Etc::SourceList=/etc/apt/sources.list.d/portico.sources -o Dir::Etc::SourceParts=/nonexistent madison portico" | grep -qF "$v"; then
        pass "$name: the next run does not install $v again, which the feed still offers: $(st .detail)"
    else
        fail "$name: the next run: installed '$(installed)', status $(summary)"
    fi
}
broken_check "broken v3 (exits at start)" "$V3" v3
broken_check "broken v3b (serves, reports another version)" "$V3B" v3b
broken_check "broken v3c (serves, answers 500 on /healthz)" "$V3C" v3c any

# ---------------------------------------------------------------------------------------
# The owner turns automatic updates off on /settings: the timer's run installs nothing;
# "check now" runs the updater through the path unit and the page shows what is available.
serve v4
asked=$(owner_updates save)
t=$(guest_now); timer_run; wait_run "$t" 300 >/dev/null || true
if [[ $asked == 303 && $(st .result) == off && $(st .available) == "$V4" && $(installed) == "$V2" && $(st .trigger) == timer ]] \
    && shown off; then
    pass "automatic off: the timer's run installed nothing ($(st .detail))"
else
    fail "automatic off: the page's save answered $asked; installed '$(installed)', status $(summary); $(shown_note)"; updater_log "$t"
fi
guest "rm -f $ST" >/dev/null
t=$(guest_now); asked=$(owner_updates check)
if secs=$(wait_run "$t" 120) && [[ $asked == 303 && $(st .result) == available && $(st .available) == "$V4" && $(st .trigger) == request \
    && $(installed) == "$V2" ]] && ! guest "test -e $APPDIR/update-request" && shown available \
    && page_says "Available: portico $V4." && [[ $(metric portico_update_available) == 'portico_update_available 1' ]]; then
    pass "check now on /settings: the path unit started the updater, whose run ended ${secs} s after the request; the page shows it ($(st .detail)), /metrics has portico_update_available 1; request file taken"
else
    fail "check now: the page's button answered $asked; status $(summary); path unit $(prop portico-update.path ActiveState); $(shown_note); $(metric portico_update_available)"
fi
# Untrusted input: a symlink in place of the request is not followed (and removed).
guest "ln -sf /etc/shadow $APPDIR/update-request" >/dev/null
deadline=$((SECONDS + 120))
while guest "test -L $APPDIR/update-request" && ((SECONDS < deadline)); do sleep 1; done
wait_run 0 120 >/dev/null || true
if [[ $(st .result) == available ]] && ! guest "test -e $APPDIR/update-request -o -L $APPDIR/update-request" \
    && guest "journalctl -q -o cat -u portico-update.service | grep -q 'ignored an update-request'"; then
    pass "untrusted request: a symlink is not followed, it is removed and logged"
else
    fail "untrusted request: status $(summary); $(guest "ls -l $APPDIR/" || true)"
fi
asked=$(owner_updates save on) saved=$(guest "cat $APPDIR/update-settings" || true)
if [[ $asked == 303 && $saved == *automatic=yes* ]]; then pass "automatic on again, saved on /settings: update-settings says ${saved//$'\n'/, }"
else fail "automatic on again: the page's save answered $asked; update-settings: $saved"; fi

# A clock far off (set back to 2021, before the updater's build): refused with the reason,
# nothing installed. The timer is stopped meanwhile, so that the clock's jumps start no run.
guest "systemctl stop portico-update.timer && date -s '2021-01-01 12:00:00'" >/dev/null
t=$(guest_now); request install
wait_run "$t" 300 >/dev/null || true
result=$(st .result) detail=$(st .detail)
guest "date -s @$(date +%s) && systemctl start portico-update.timer" >/dev/null
if [[ $result == refused && $detail =~ 'the clock says 2021-01-01' && $(installed) == "$V2" ]]; then
    pass "clock set back to 2021: refused, nothing installed; $detail"
else
    fail "clock set back to 2021: installed '$(installed)', result '$result': $detail"
fi

# ---------------------------------------------------------------------------------------
# Power cut (sysrq b, no sync) while dpkg unpacks v4 ("install now"): after the boot
# portico serves, the boot's run finishes dpkg, and a healthy version serves (v4 fails its
# health check, so v2).
# (systemd-run: a process left behind by the control shell would end with its service.)
guest "systemd-run -q --unit=power-cut bash -c 'until compgen -G \"/var/lib/dpkg/updates/[0-9]*\" >/dev/null; do :; done; echo 1 >/proc/sys/kernel/sysrq; echo b >/proc/sysrq-trigger'" >/dev/null
t_cut=$(now_s); t=$(guest_now); request install
if wait_ready 2 300; then
    secs=$(elapsed "$t_cut")
    wait_200 60 && served=$(api .portico.version) || served=none
    if [[ -n $served && $served != none ]]; then pass "power cut: the guest rebooted (${secs} s) and portico serves ($served)"; else fail "power cut: no 200 after the reboot"; fi
    # The boot's own run (trigger boot), then one more run.
    deadline=$((SECONDS + 180))
    until [[ $(prop portico-update.service ActiveState) != activating ]] || ((SECONDS > deadline)); do sleep 1; done
    boot_status=$(summary)
    updater_log "$t"
    t=$(guest_now); timer_run; wait_run "$t" 300 >/dev/null || true
    audit=$(guest "dpkg --audit" || true)
    v=$(api .portico.version)
    if [[ -z $audit && $v == "$V2" && $(installed) == "$V2" ]] && [[ $(status /healthz) == 200 ]]; then
        pass "power cut: after the next run dpkg --audit is clean and $V2 serves; at boot: $boot_status; then: $(summary)"
    else
        fail "power cut: dpkg --audit '$audit', serving '$v', installed '$(installed)'; at boot: $boot_status; then: $(summary)"
    fi
    updater_log "$t"
    login_check "power cut"
else
    fail "power cut: the guest did not come back"
fi
# ---------------------------------------------------------------------------------------
# rpm with dnf, in the same guest: the .deb purged, v1's rpm installed (its scriptlet
# enables the units again), the updater told to use dnf.
RV1=${V1//-/+}-r0 RV2=${V2//-/+}-r0 RV3B=${V3B//-/+}-r0
rpm_installed() { guest "rpm -q --qf '%{VERSION}-%{RELEASE}' portico" || true; }
serve rpm-v2
out=$(guest "dpkg --purge portico && rpm -i /root/rpms/base.rpm /root/rpms/v1.rpm && echo package_manager=dnf >>/etc/portico/update.conf" 300) || true
if wait_200 60 && [[ $(api .portico.version) == "$V1" && $(rpm_installed) == "$RV1" ]]; then
    pass "rpm: v1's rpm installed in place of the .deb, serves"
else
    fail "rpm: v1's rpm: installed '$(rpm_installed)', serving '$(api .portico.version)'"; tail -n 8 <<<"$out" | sed 's/^/    /'
fi
c=$(cursor portico.socket); st0=$(socket_entered)
load_start --keepalive 2
t=$(guest_now); request install
wait_run "$t" 400 >/dev/null || true
load_stop
if load_clean && [[ $(st .result) == installed && $(rpm_installed) == "$RV2" && $(api .portico.version) == "$V2" ]] \
    && socket_stayed "$c" "$st0"; then
    pass "rpm: dnf upgrade v1->v2 from the signed repository under load: $(load_summary); $(st .detail)"
else
    fail "rpm: dnf upgrade: installed '$(rpm_installed)'; $(load_summary); $SOCKET_NOTE; status $(summary)"
fi
serve rpm-tampered
t=$(guest_now); request check
if wait_run "$t" 300 >/dev/null && [[ $(st .result) == refused && $(rpm_installed) == "$RV2" ]]; then
    pass "rpm: a repository whose repomd.xml changed after signing is refused: $(st .detail)"
else
    fail "rpm: tampered repository: installed '$(rpm_installed)', status $(summary)"
fi
serve rpm-v3b
t=$(guest_now); t0=$(now_s); timer_run
wait_run "$t" 400 >/dev/null || true
secs=$(elapsed "$t0")
if [[ $(st .result) == rolled-back && $(st .last_rollback.from) == "$RV3B" && $(rpm_installed) == "$RV2" && $(api .portico.version) == "$V2" ]]; then
    pass "rpm: $RV3B installed by dnf, found unhealthy, rolled back to $RV2 (rpm -U --oldpackage of the kept package) in ${secs} s; $(st .last_rollback.reason)"
else
    fail "rpm: rollback: installed '$(rpm_installed)', serving '$(api .portico.version)', status $(summary)"
fi

qemu_stop "systemctl --no-block poweroff"
kill "$FEED_PID" 2>/dev/null || true
echo "TIME: $QEMU_NAME $ARCH: base ${T_BASE} s, builds and test packages ${T_BUILD} s, image ${T_IMAGE} s, VM and checks $(elapsed "$T_QEMU") s, total $(elapsed "$T0") s"
qemu_finish
