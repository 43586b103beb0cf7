#!/usr/bin/env bash
# ci/lint.sh: static checks of the shell code and the Debian package, and an offline run of
# the package's maintainer scripts.
#   1. shellcheck (warnings and errors fail) over every shell script in ci/ and packaging/;
#      the shared scriptlet also as POSIX sh, with dash -n.
#   2. ci/build-deb.sh for each binary that ci/cross-build.sh left in target/<triple>/release/,
#      then lintian (a warning or error fails; overrides are in packaging/debian/).
#   3. dpkg --root into a scratch root: install, upgrade, downgrade, remove, purge, reinstall,
#      checking what the scripts did to the units (enabled or not), to state and to their
#      markers (an admin's disable of portico-https.socket holds across upgrades). Offline,
#      dpkg sets DPKG_ROOT, so the scripts only enable/disable; the live half (start,
#      try-restart under a stream of requests) is the QEMU upgrade test's (ci/qemu-test.sh).
#      The rpm and opkg argument conventions are run the same way, with Yocto's $D.
#   4. The same scriptlet "live" (as where systemd is PID 1, in a private mount namespace),
#      with a systemctl that records its calls: which units each step starts, stops and
#      resets, in which order (an upgrade revives a failed socket and never stops it), and
#      which markers they leave in the namespace's /var.
#   5. Signed feeds (ci/feed.sh) of each format from the package of step 2, with a
#      throwaway key: each signature verifies with gpgv and the public key alone, and no
#      longer once the signed index is altered. The ipk feed is checked only so, offline:
#      opkg is not built here (the apt feed is booted by ci/qemu-update.sh).
# Run ci/cross-build.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

start=$(now_s)
apt_install shellcheck lintian dash dpkg-dev binutils systemd
passed=0 failed=0
check() { # check NAME COMMAND...: one PASS/FAIL line
    local name=$1
    shift
    if "$@"; then
        echo "PASS $name"; passed=$((passed + 1))
    else
        echo "FAIL $name"; failed=$((failed + 1))
    fi
}

# --- 1. shell
scripts=()
while IFS= read -r -d '' f; do
    case $f in
        *.sh) scripts+=("$f") ;;
        *) head -n1 "$f" | grep -Eq '^#!.*\b(ba|da)?sh\b' && scripts+=("$f") ;;
    esac
done < <(find ci packaging -type f ! -name '*.py' -print0 | sort -z)
check "shellcheck ${#scripts[@]} scripts in ci/ and packaging/" \
    shellcheck -x -S warning -s bash "${scripts[@]}"
check "shellcheck -s sh + dash -n packaging/scriptlets/portico-maint.sh" \
    sh -c 'shellcheck -s sh packaging/scriptlets/portico-maint.sh && dash -n packaging/scriptlets/portico-maint.sh'

# --- 2. packages
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
out=target/deb/lint
rm -rf "$out"
debs=()
for pair in aarch64-unknown-linux-gnu:arm64 armv7-unknown-linux-gnueabihf:armhf x86_64-unknown-linux-gnu:amd64; do
    bin=target/${pair%:*}/release/portico
    [ -x "$bin" ] || continue
    debs+=("$(bash ci/build-deb.sh --binary "$bin" --arch "${pair#*:}" --version "$version" --out "$out")")
done
[ ${#debs[@]} -gt 0 ] || die "no binary in target/<triple>/release/: run ci/cross-build.sh first"
lintian_as=()
[ "$(id -u)" -ne 0 ] || lintian_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp)
for deb in "${debs[@]}"; do
    # Two runs: with --show-overrides, lintian fails on overridden warnings too. Info tags
    # are listed but do not fail: one is spelling-error-in-binary, which some builds get
    # when machine code happens to look like a misspelt word (x86_64: "wtH").
    ok=true
    "${lintian_as[@]}" lintian --display-info --pedantic --tag-display-limit 0 \
        --fail-on warning,pedantic "$deb" >"$out/lintian.log" 2>&1 || ok=false
    tags=$(grep -cE '^[EWIPX]:' "$out/lintian.log" || true)
    overridden=$("${lintian_as[@]}" lintian --display-info --show-overrides "$deb" 2>/dev/null | grep '^O:' |
        cut -d' ' -f3 | sort -u | paste -sd' ' || true)
    check "lintian ${deb##*/}: $tags tags; overridden (packaging/debian/lintian-overrides): $overridden" "$ok"
    [ "$tags" -eq 0 ] || grep -E '^[EWIPX]:' "$out/lintian.log" | sed 's/^/    /'
done

# --- 3. maintainer scripts, offline
failed_before=$failed
tmp=$(mktemp -d "${TMPDIR:-/tmp}/portico-dpkg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
deb1=${debs[0]}
arch=$(dpkg-deb -f "$deb1" Architecture)
# A second version from the same binary: the scripts, not the binary, are under test here.
dpkg-deb -x "$deb1" "$tmp/x"
deb2=$(bash ci/build-deb.sh --binary "$tmp/x/usr/bin/portico" --arch "$arch" \
    --version "$version+lint2" --out "$tmp")
root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
dpkg_root() {
    echo "## dpkg $*" >>"$tmp/dpkg.log"
    dpkg --root="$root" --force-script-chrootless --force-depends --force-architecture "$@" \
        >>"$tmp/dpkg.log" 2>&1
}
wants=$root/etc/systemd/system/sockets.target.wants
# Both sockets or neither: the .deb has portico-https.socket (built with TLS). -L, not -e:
# an enable link points to /usr/lib/systemd/system/..., which the scratch root, not the
# host, has; -e follows it, so "! -e" held with the link there.
enabled() { [ -L "$wants/portico.socket" ] && [ -L "$wants/portico-https.socket" ]; }
disabled() { [ ! -L "$wants/portico.socket" ] && [ ! -L "$wants/portico-https.socket" ]; }
state() { mkdir -p "$root/var/lib/private/portico" && touch "$root/var/lib/private/portico/x"; }
installed_version() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' portico 2>/dev/null; }
# marked VARDIR UNIT...: the scriptlet's markers under VARDIR/lib say it enabled each UNIT.
marked() {
    local var=$1 unit
    shift
    for unit; do [ -f "$var/lib/portico-maint/$unit.enabled" ] || return 1; done
}
# admin ARGS...: what an admin does with systemctl, offline in the scratch root.
admin() { echo "## admin: $*" >>"$tmp/dpkg.log" && systemctl --root="$root" "$@" >>"$tmp/dpkg.log" 2>&1; }

t_install() { dpkg_root -i "$deb1" && enabled && [ -f "$root/etc/portico/portico.toml" ]; }
t_upgrade() { dpkg_root -i "$deb2" && enabled && [ "$(installed_version)" = "$version+lint2" ]; }
t_downgrade() { dpkg_root -i "$deb1" && enabled && [ "$(installed_version)" = "$version" ]; }
t_remove() {
    state && dpkg_root -r portico && disabled && [ ! -e "$root/usr/bin/portico" ] &&
        [ -f "$root/etc/portico/portico.toml" ] && [ -d "$root/var/lib/private/portico" ]
}
t_purge() { dpkg_root -P portico && [ ! -e "$root/etc/portico" ] && [ ! -e "$root/var/lib/private/portico" ]; }
t_reinstall() { dpkg_root -i "$deb1" && enabled; }
t_install_marks() { marked "$root/var" portico.socket portico-https.socket; }
t_upgrade_https_disabled() { # then back on, for the remove below
    admin disable portico-https.socket && dpkg_root -i "$deb2" && [ -L "$wants/portico.socket" ] &&
        [ ! -L "$wants/portico-https.socket" ] && admin enable portico-https.socket
}
t_remove_marks() { marked "$root/var" portico.socket portico-https.socket; }
t_reinstall_removed() { # dpkg passes the removed version: "configure 0.1.0"; then removed again
    dpkg_root -i "$deb1" && enabled && [ ! -e "$root/var/lib/portico-maint/removed" ] && dpkg_root -r portico && disabled
}
t_purge_marks() { # there before (the check above), gone after
    local before=false
    ! marked "$root/var" portico.socket portico-https.socket || before=true
    t_purge && $before && [ ! -e "$root/var/lib/portico-maint" ]
}
check "dpkg -i v1 (install): portico.socket and portico-https.socket enabled, conffile in place" t_install
check "dpkg -i v1 (install): both sockets recorded as enabled in /var/lib/portico-maint" t_install_marks
check "dpkg -i v2 (upgrade): socket still enabled, nothing disabled" t_upgrade
check "dpkg -i v1 (downgrade): socket still enabled" t_downgrade
check "dpkg -i v2 (upgrade) after the admin disabled portico-https.socket: it stays disabled" \
    t_upgrade_https_disabled
check "dpkg -r (remove): socket disabled, binary gone, conffile and state kept" t_remove
check "dpkg -r (remove): the markers stay" t_remove_marks
check "dpkg -i v1 after dpkg -r (not purged, an upgrade to dpkg): both sockets enabled again" t_reinstall_removed
check "dpkg -P (purge): conffile, state and the markers gone" t_purge_marks
check "dpkg -i v1 (reinstall): socket enabled again" t_reinstall
# Offline, an upgrade must not have touched the units at all (no stop, no disable).
check "upgrade and downgrade called no stop/disable" \
    sh -c "! sed -n '/## dpkg -i .*lint2/,/## dpkg -r/p' '$tmp/dpkg.log' | grep -E 'systemctl.*(stop|disable)'"

# The same file, called as Yocto's rpm and opkg scripts are (offline: $D is the image root).
# As sh (dash on Debian), which is what runs them on a device.
maint() {
    echo "## portico_maint $*" >>"$tmp/dpkg.log"
    D=$root sh -c '. packaging/scriptlets/portico-maint.sh && portico_maint "$@"' sh "$@" \
        >>"$tmp/dpkg.log" 2>&1
}
t_rpm() {
    # The package's files, without dpkg's database: rpm or opkg would have put them there.
    dpkg_root -r portico && disabled && dpkg-deb -x "$deb1" "$root" &&
        maint postinst 1 && enabled &&   # %post 1: install
        maint postinst 2 && enabled &&   # new %post 2: upgrade
        maint prerm 1 && enabled &&      # old %preun 1: upgrade, nothing
        maint postrm 1 && enabled &&     # old %postun 1: nothing
        maint prerm 0 && disabled &&    # %preun 0: erase
        maint postrm 0
}
t_opkg() {
    maint postinst configure && enabled &&    # install
        maint prerm upgrade 9.9 && enabled && # old prerm on upgrade: nothing
        maint postrm upgrade 9.9 && enabled &&
        maint postinst configure && enabled && # new postinst: upgrade
        maint prerm remove && disabled &&
        state && maint postrm purge && [ ! -e "$root/var/lib/private/portico" ]
}
check "rpm conventions (\$1 counts): install enables, upgrade keeps, erase disables" t_rpm
t_https_new() { # an upgrade from a package built without portico-https.socket (no marker)
    local args
    for args in "postinst 2" "postinst configure 0.0.1"; do # rpm; dpkg's arguments, here with $D
        rm -rf "$root/var/lib/portico-maint"
        admin disable portico-https.socket && admin enable portico.socket || return 1
        # shellcheck disable=SC2086 # the arguments, split
        maint $args && enabled && marked "$root/var" portico-https.socket || return 1
    done
}
t_rpm_https_disabled() { # the markers from above, the admin's disable, an rpm upgrade
    admin disable portico-https.socket && maint postinst 2 && [ -L "$wants/portico.socket" ] &&
        [ ! -L "$wants/portico-https.socket" ]
}
check "opkg conventions: upgrade keeps the socket, remove disables, purge clears state" t_opkg
check "rpm and dpkg (\$D) upgrade from a package without portico-https.socket: it is enabled and recorded" t_https_new
check "rpm upgrade after the admin disabled portico-https.socket: it stays disabled" t_rpm_https_disabled

# --- 4. maintainer scripts, live: what they ask of systemd where it is PID 1
# The scriptlet takes /run/systemd/system for "systemd runs this machine"; a private mount
# namespace gives it one. systemctl is a recorder there: it logs its arguments and keeps
# the one fact the scriptlet asks about (is portico.socket enabled). What those calls do to
# a real systemd is the QEMU test's part (a failed socket revived by an upgrade, there).
mkdir -p "$tmp/bin"
cat >"$tmp/bin/systemctl" <<'EOF'
#!/bin/sh
echo "$*" >>"$SYSTEMCTL_LOG"
verb=$1 say=echo
shift
for unit; do
    case $verb:$unit in
        *:--quiet) say=: ;;
        *:--*) ;;
        enable:*) touch "$SYSTEMCTL_LOG.$unit" ;;
        disable:*) rm -f "$SYSTEMCTL_LOG.$unit" ;;
        is-enabled:*) if [ -e "$SYSTEMCTL_LOG.$unit" ]; then $say enabled; else $say disabled; exit 1; fi ;;
    esac
done
EOF
chmod +x "$tmp/bin/systemctl"
ns=(unshare --mount)
[ "$(id -u)" -eq 0 ] || ns+=(--map-root-user)
# live ENABLED [https=STATE] [marks=keep] [VAR=VALUE...] SCRIPT ARGS...: runs one maintainer
# script with portico.socket enabled (yes) or not, portico-https.socket installed and enabled
# (STATE yes, the default), installed only (no) or absent (none), and prints the systemctl
# calls that change something, one a line. The unit directories are empty tmpfs in the
# namespace, so what the host has installed does not count; /var is $livevar, where the
# scriptlet's markers stay from one call to the next with marks=keep (else none are there).
livevar=$tmp/live-var
live() {
    local log=$tmp/systemctl.log enabled=$1 https=yes vars=()
    rm -f "$log" "$log".portico*
    shift
    [[ $1 != https=* ]] || { https=${1#https=}; shift; }
    if [[ $1 == marks=keep ]]; then shift; else rm -rf "$livevar/lib/portico-maint"; fi
    mkdir -p "$livevar"
    [ "$enabled" = no ] || touch "$log.portico.socket"
    [ "$https" != yes ] || touch "$log.portico-https.socket"
    while [[ $1 == *=* ]]; do vars+=("$1"); shift; done
    echo "## live, portico.socket enabled: $enabled, portico-https.socket: $https: ${vars[*]} $*" >>"$tmp/dpkg.log"
    env SYSTEMCTL_LOG="$log" PATH="$tmp/bin:$PATH" HTTPS="$https" LIVEVAR="$livevar" "${vars[@]}" "${ns[@]}" sh -c \
        'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && mount --bind "$LIVEVAR" /var &&
         for d in /etc/systemd/system /usr/lib/systemd/system; do mount -t tmpfs tmpfs "$d"; done &&
         { [ "$HTTPS" = none ] || touch /usr/lib/systemd/system/portico-https.socket; } &&
         . packaging/scriptlets/portico-maint.sh && portico_maint "$@"' sh "$@" >>"$tmp/dpkg.log" 2>&1
    grep -v '^is-enabled' "$log" 2>/dev/null | tee -a "$tmp/dpkg.log" || true
}
upgrade_calls=$'daemon-reload\nreset-failed portico.socket portico-https.socket portico.service\nstart portico.socket portico-https.socket\ntry-restart portico.service'
t_live_upgrade() {
    [ "$(live yes DPKG_MAINTSCRIPT_PACKAGE=portico postinst configure 0.0.1)" = "$upgrade_calls" ] &&
        [ "$(live yes postinst 2)" = "$upgrade_calls" ] &&       # rpm %post 2
        [ "$(live yes postinst configure)" = "$upgrade_calls" ] # opkg, socket enabled before
}
t_live_disabled() {
    local calls=$'daemon-reload\nreset-failed portico.socket portico-https.socket portico.service\ntry-restart portico.service'
    [ "$(live no https=no DPKG_MAINTSCRIPT_PACKAGE=portico postinst configure 0.0.1)" = "$calls" ] &&
        live no https=no postinst configure >/dev/null && # opkg: installed, then both disabled
        [ "$(live no https=no marks=keep postinst configure)" = "$calls" ]
}
t_live_https_new() { # from a package without portico-https.socket: it is enabled and started
    [ "$(live yes https=no DPKG_MAINTSCRIPT_PACKAGE=portico postinst configure 0.0.1)" = \
        $'daemon-reload\nreset-failed portico.socket portico-https.socket portico.service\nenable portico-https.socket\nstart portico.socket portico-https.socket\ntry-restart portico.service' ] &&
        [ "$(live yes https=no postinst configure)" = "$(live yes https=no postinst 2)" ]
}
t_live_no_tls() { # a package built without TLS has no portico-https.socket
    [ "$(live no https=none postinst 1)" = $'enable portico.socket\ndaemon-reload\nstart portico.socket' ] &&
        [ "$(live yes https=none postinst 2)" = \
            $'daemon-reload\nreset-failed portico.socket portico.service\nstart portico.socket\ntry-restart portico.service' ] &&
        [ "$(live yes https=none prerm 0)" = \
            $'stop portico.socket portico.service\ndisable portico.socket portico.service\n--global disable portico.socket portico.service' ]
}
t_live_old_prerm() { # the old package's scripts on an upgrade
    [ -z "$(live yes DPKG_MAINTSCRIPT_PACKAGE=portico prerm upgrade 9.9)" ] &&
        [ -z "$(live yes prerm 1)" ] && [ -z "$(live yes postrm 1)" ] &&
        [ -z "$(live yes prerm upgrade 9.9)" ] && [ -z "$(live yes postrm upgrade 9.9)" ]
}
t_live_install() {
    [ "$(live no https=no DPKG_MAINTSCRIPT_PACKAGE=portico postinst configure)" = \
        $'enable portico.socket portico-https.socket\ndaemon-reload\nstart portico.socket portico-https.socket' ]
}
t_live_remove() {
    [ "$(live yes DPKG_MAINTSCRIPT_PACKAGE=portico prerm remove)" = \
        $'stop portico.socket portico-https.socket portico.service\ndisable portico.socket portico-https.socket portico.service\n--global disable portico.socket portico.service' ]
}
check "live upgrade (dpkg, rpm, opkg): daemon-reload, reset-failed, start both sockets, try-restart portico.service" \
    t_live_upgrade
check "live upgrade (dpkg, opkg) with portico.socket disabled by the admin: no socket is enabled or started" t_live_disabled
check "live upgrade from a package without portico-https.socket: it is enabled and started" t_live_https_new
check "live, package built without TLS: only portico.socket is enabled, started, stopped" t_live_no_tls
t_live_install_marks() { # dpkg, rpm, opkg
    live no https=no DPKG_MAINTSCRIPT_PACKAGE=portico postinst configure >/dev/null &&
        marked "$livevar" portico.socket portico-https.socket &&
        live no https=no postinst 1 >/dev/null && marked "$livevar" portico.socket portico-https.socket &&
        live no https=no postinst configure >/dev/null && marked "$livevar" portico.socket portico-https.socket
}
# Upgrades with portico-https.socket recorded and disabled: only portico.socket is started.
upgrade_80_calls=$'daemon-reload\nreset-failed portico.socket portico-https.socket portico.service\nstart portico.socket\ntry-restart portico.service'
t_live_https_disabled() { # installed, then the admin's `disable --now portico-https.socket`
    live no https=no postinst 1 >/dev/null &&
        [ "$(live yes https=no marks=keep DPKG_MAINTSCRIPT_PACKAGE=portico postinst configure 0.0.1)" = "$upgrade_80_calls" ] &&
        [ "$(live yes https=no marks=keep postinst 2)" = "$upgrade_80_calls" ] &&       # rpm
        [ "$(live yes https=no marks=keep postinst configure)" = "$upgrade_80_calls" ] && # opkg
        marked "$livevar" portico-https.socket
}
t_live_https_new_marks() { # recorded when enabled by the upgrade, or found enabled by it
    live yes https=no DPKG_MAINTSCRIPT_PACKAGE=portico postinst configure 0.0.1 >/dev/null &&
        marked "$livevar" portico.socket portico-https.socket &&
        live yes postinst configure >/dev/null && marked "$livevar" portico.socket portico-https.socket &&
        [ "$(live yes https=no marks=keep postinst 2)" = "$upgrade_80_calls" ] # then disabled: stays so
}
t_live_purge_marks() { # rpm's erase keeps them; purge (dpkg's and opkg's are alike) removes them
    live no https=no postinst 1 >/dev/null && live yes marks=keep prerm 0 >/dev/null &&
        live no https=no marks=keep postrm 0 >/dev/null && marked "$livevar" portico.socket portico-https.socket &&
        live no https=no marks=keep postrm purge >/dev/null && [ ! -e "$livevar/lib/portico-maint" ]
}
check "live upgrade: the old package's prerm/postrm (dpkg, rpm, opkg) call no systemctl" t_live_old_prerm
check "live install: enable both sockets, one start for both" t_live_install
check "live remove: stop and disable the sockets and the service, the user units globally" t_live_remove
check "live install (dpkg, rpm, opkg): both sockets recorded as enabled" t_live_install_marks
check "live upgrade (dpkg, rpm, opkg) after the admin disabled portico-https.socket: not enabled, not started" \
    t_live_https_disabled
check "live upgrade enabling portico-https.socket, or finding it enabled (a package before the markers), records it" \
    t_live_https_new_marks
t_live_reinstall() { # dpkg: remove, then install again (dpkg says "configure OLDVERSION")
    live yes DPKG_MAINTSCRIPT_PACKAGE=portico prerm remove >/dev/null &&
        [ "$(live no https=no marks=keep DPKG_MAINTSCRIPT_PACKAGE=portico postinst configure 0.0.1)" = \
            $'enable portico.socket portico-https.socket\ndaemon-reload\nstart portico.socket portico-https.socket' ]
}
check "live rpm erase keeps the markers; purge (dpkg, opkg) removes them" t_live_purge_marks
check "live dpkg reinstall after a remove (not purge): enables and starts both sockets, as an install" t_live_reinstall

# --- 5. signed feeds
feeds=$tmp/feeds
t_feeds() {
    local fpr bin=$tmp/x/usr/bin/portico f rpm ipk
    fpr=$(bash ci/feed.sh key "$feeds/key") || return 1
    rpm=$(bash ci/build-oe-package.sh rpm --binary "$bin" --arch "$arch" --version "$version" --out "$feeds/pkgs" | tail -n1) &&
        ipk=$(bash ci/build-oe-package.sh ipk --binary "$bin" --arch "$arch" --version "$version" --out "$feeds/pkgs" | tail -n1) &&
        GNUPGHOME=$feeds/key bash ci/feed.sh apt --key "$fpr" --out "$feeds/apt" "$deb1" &&
        GNUPGHOME=$feeds/key bash ci/feed.sh rpm --key "$fpr" --out "$feeds/rpm" "$rpm" &&
        GNUPGHOME=$feeds/key bash ci/feed.sh ipk --key "$fpr" --out "$feeds/ipk" "$ipk" || return 1
    gpgv --keyring "$feeds/key/feed.gpg" "$feeds/apt/dists/portico/InRelease" &&
        gpgv --keyring "$feeds/key/feed.gpg" "$feeds/rpm/repodata/repomd.xml.asc" "$feeds/rpm/repodata/repomd.xml" &&
        gpgv --keyring "$feeds/key/feed.gpg" "$feeds/ipk/Packages.sig" "$feeds/ipk/Packages" &&
        gpgv --keyring "$feeds/key/feed.gpg" "$feeds/ipk/Packages.asc" "$feeds/ipk/Packages" || return 1
    # Altered after signing: no longer verifies.
    for f in "$feeds/apt/dists/portico/Release" "$feeds/rpm/repodata/repomd.xml" "$feeds/ipk/Packages"; do
        echo ' ' >>"$f"
    done
    ! gpgv --keyring "$feeds/key/feed.gpg" "$feeds/apt/dists/portico/Release.gpg" "$feeds/apt/dists/portico/Release" &&
        ! gpgv --keyring "$feeds/key/feed.gpg" "$feeds/rpm/repodata/repomd.xml.asc" "$feeds/rpm/repodata/repomd.xml" &&
        ! gpgv --keyring "$feeds/key/feed.gpg" "$feeds/ipk/Packages.sig" "$feeds/ipk/Packages"
} >>"$tmp/dpkg.log" 2>&1
check "signed feeds (ci/feed.sh apt, rpm, ipk): gpgv verifies each with the public key alone, and fails once the index is altered" t_feeds

if [ "$failed" -gt "$failed_before" ]; then
    echo "--- dpkg and scriptlet log:"
    sed 's/^/    /' "$tmp/dpkg.log"
fi
echo "lint: $passed passed, $failed failed"
echo "lint.sh wall time: $(elapsed "$start") s"
[ "$failed" -eq 0 ]
