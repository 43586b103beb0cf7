#!/usr/bin/env bash
# Install, upgrade, downgrade and erase of portico's rpm package in a booted systemd guest,
# with rpm as the package manager for portico, as on a Yocto image with package_rpm
# (poky's default).
#
#   ci/qemu-rpm.sh [x86_64|aarch64]      (x86_64 by default; run as root on Debian 12)
#
# Builds portico v1 and v2 (real builds that differ only in PORTICO_VERSION) and packages
# both with ci/build-rpm.sh (the .deb's files, the shared scriptlet wired as oe-core's
# package_rpm wires it). The guest is a minimal Debian bookworm with Debian's rpm package
# (cached like ci/qemu-test.sh's); rpm's database knows none of Debian's packages, so rpm
# runs with --nodeps. Booted under QEMU (TCG), only guest ports 80 and 2222 (the test's
# control channel) forwarded to 127.0.0.1. Checks, each printing PASS:/FAIL:, then
# "N passed, N failed" and a non-zero exit on any failure: the rpm installs the .deb's
# files; `rpm -i` enables and starts portico.socket and requests from then on are served;
# `rpm -U` (v1 -> v2) and `rpm -U --oldpackage` (v2 -> v1) under a steady request stream
# lose none, change the version, and never take portico.socket out of the active state
# (journal); the socket stays enabled through both (the old package's %preun/%postun do
# nothing on an upgrade); `rpm -e` closes port 80 and leaves no unit, link or file.
#
# x86_64 by default: TCG boots it fastest here and the host builds it natively; rpm's
# scriptlet protocol does not depend on the architecture.
# Environment: QEMU_TEST_TIMEOUT (seconds for the whole run, default 900), QEMU_TEST_KEEP=1
# keeps the console log (target/qemu/console-qemu-rpm-*.log) even on success.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd) QEMU_NAME=qemu-rpm
# shellcheck source=ci/qemu/lib.sh
source "$ROOT/ci/qemu/lib.sh"
qemu_time_bound "${QEMU_TEST_TIMEOUT:-900}" "$@"

qemu_prepare "${1:-x86_64}" "$QEMU_RPM_BASE_PKGS"

# ---------------------------------------------------------------------------------------
# portico v1 and v2, each packaged as an rpm (and the .deb it is made from).
T1=$(now_s)
PKGS=$QEMU_CACHE/rpms-$ARCH
RPM1=$(qemu_package "$V1" build-rpm.sh "$PKGS"); RPM2=$(qemu_package "$V2" build-rpm.sh "$PKGS")
T_BUILD=$(elapsed "$T1")

# ---------------------------------------------------------------------------------------
# Image: the base rootfs with the kernel's virtio/ext4 modules, the test scaffolding
# (ci/qemu/guest), and both packages; portico itself is installed in the booted guest.
T2=$(now_s)
R=$WORK/rootfs
mkdir -p "$R"
tar -C "$R" --numeric-owner --xattrs -xpf "$BASE/rootfs.tar"
qemu_install_modules "$R" virtio_pci virtio_net virtio_blk virtio_rng virtio_console \
    9pnet_virtio 9p ext4 autofs4 crc32c_generic
qemu_systemd_guest "$R" portico-rpm-test
mkdir -p "$R/root/rpms"
cp "$RPM1" "$R/root/rpms/v1.rpm"; cp "$RPM2" "$R/root/rpms/v2.rpm"
qemu_initrd virtio_pci virtio_blk crc32c_generic ext4
qemu_disk "$R"
rm -rf "$R"
T_IMAGE=$(elapsed "$T2")

# ---------------------------------------------------------------------------------------
# From here on every outcome is a PASS:/FAIL: line.
qemu_traps

# 0. The rpm installs what the .deb installs: each file's path, mode and sha256 (the .deb's
# lintian overrides aside, which only Debian's tools read).
deb_files() { # DEB
    local x
    x=$(mktemp -d "$WORK/deb.XXXXXX")
    dpkg-deb -x "$1" "$x"
    (cd "$x" && find . -type f ! -path './usr/share/lintian/*' -printf '%m %P\n' | while read -r m p; do
        echo "$(sha256sum <"$p" | cut -d' ' -f1) $m /$p"; done) | sort
    rm -rf "$x"
}
rpm_files() { # RPM
    rpm -qp --qf '[%{FILEDIGESTS} %{FILEMODES:octal} %{FILENAMES}\n]' "$1" | awk '$2 ~ /^100/ { sub(/^100/, "", $2); print }' | sort
}
deb1=${RPM1%/*}/portico_${V1}_$DEBARCH.deb
if [[ -f $deb1 ]] && d=$(diff <(deb_files "$deb1") <(rpm_files "$RPM1")); then
    pass "0. the rpm installs the .deb's files: $(rpm_files "$RPM1" | wc -l) files, same paths, modes and sha256"
else
    fail "0. the rpm's files differ from the .deb's ($deb1; < deb, > rpm):"; sed 's/^/    /' <<<"${d:-}"
fi

qemu_start "systemd.journald.forward_to_console=1"
if ! wait_ready 1 600; then
    fail "1. boot: the guest never reported its network up"
    tail -n 40 "$WORK/console.log" >&2 || true
    qemu_finish
fi
echo "TIME: QEMU start to guest network up: $(elapsed "$T_QEMU") s"

# 1. rpm -i: %post ($1 = 1) enables and starts portico.socket; from the moment rpm returns,
# every request is served (the first one starts the service).
out=$(guest "rpm -i --nodeps /root/rpms/v1.rpm" 300) && arc=0 || arc=$?
en=$(prop portico.socket UnitFileState); act=$(prop portico.socket ActiveState)
load_start
load_stop
v=$(api .portico.version); u=$(api .process.uid); m=$(api .activation.mode)
if ((arc == 0)) && load_clean && [[ $en == enabled && $act == active && $v == "$V1" && $m == systemd && $u =~ ^[0-9]+$ && $u != 0 ]]; then
    pass "1. rpm -i v1: portico.socket $en and $act when rpm returned; then $(load_summary); serves $v (activation $m, uid $u)"
else
    fail "1. rpm -i v1 (exit $arc): portico.socket $en/$act; then $(load_summary); version '$v', activation '$m', uid '$u'"
    tail -n 15 <<<"$out" | sed 's/^/    /'
fi
echo "TIME: after rpm -i, first request (starts the service): longest stall $(jq -r .longest_stall_ms <<<"$LOAD") ms"

# 2, 3. Upgrade and downgrade under a steady request stream.
upgrade_step "2. upgrade v1->v2" "rpm -U --nodeps /root/rpms/v2.rpm" "$V2"
upgrade_step "3. downgrade v2->v1" "rpm -U --oldpackage --nodeps /root/rpms/v1.rpm" "$V1"
en=$(prop portico.socket UnitFileState); q=$(guest "rpm -q portico" || true)
if [[ $en == enabled && $q == "portico-${V1//-/+}-r0.$ARCH" ]]; then
    pass "4. after both, portico.socket is still $en (the old package's %preun/%postun did nothing) and rpm has $q"
else
    fail "4. after upgrade and downgrade: portico.socket '$en', rpm -q: '$q'"
fi

# 5. rpm -e: %preun ($1 = 0) stops and disables, %postun reloads systemd: port 80 closed,
# no process, no unit file, enable link or configuration left.
out=$(guest "rpm -e --nodeps portico" 300) && arc=0 || arc=$?
left=$(guest "pgrep -a -x portico; rpm -q portico >/dev/null && echo rpm-still-has-it; \
    ls -d /usr/bin/portico /usr/lib/systemd/system/portico.* /usr/lib/systemd/user/portico.* /etc/portico 2>/dev/null; \
    find /etc/systemd /run/systemd/system -name 'portico*' 2>/dev/null; \
    systemctl show -p LoadState --value portico.socket portico.service; \
    if timeout 3 bash -c ': </dev/tcp/127.0.0.1/80' 2>/dev/null; then echo port-80-open; fi" || true)
h=$(status /healthz)
if ((arc == 0)) && [[ $(echo $left) == "not-found not-found" && $h != 200 ]]; then
    pass "5. rpm -e: port 80 closed in the guest, host gets no 200 ($h), no process, units not-found, no file or link left"
else
    fail "5. rpm -e (exit $arc): left: $(echo $left); host /healthz $h"; tail -n 15 <<<"$out" | sed 's/^/    /'
fi

qemu_stop "systemctl --no-block poweroff"
echo "TIME: qemu-rpm $ARCH: base rootfs ${T_BASE} s, v1+v2 builds and packages ${T_BUILD} s, image ${T_IMAGE} s, VM and checks $(elapsed "$T_QEMU") s, total $(elapsed "$T0") s"
qemu_finish
