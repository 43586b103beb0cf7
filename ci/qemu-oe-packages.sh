#!/usr/bin/env bash
# Install, upgrade, downgrade and erase of portico's packages as a Yocto build makes them,
# each with its own package manager, in a booted systemd guest: rpm (package_rpm, poky's
# default) always; ipk with opkg when given an opkg source tree.
#
#   ci/qemu-oe-packages.sh [--opkg OPKG-SOURCE-DIR] [x86_64|aarch64]
#     x86_64 by default; run as root on Debian 12. --opkg (x86_64 only; not in CI, which
#     cannot fetch opkg's source): builds opkg with ci/build-opkg.sh and runs the same steps
#     with it, after rpm's, in the same guest.
#
# Builds portico v1 and v2 (real builds that differ only in PORTICO_VERSION) and packages
# both with ci/build-oe-package.sh (the .deb's files; the shared scriptlet wired as
# oe-core's package_rpm and package_ipk wire it). The guest is a minimal Debian bookworm
# with Debian's rpm package (cached like ci/qemu-test.sh's). Neither package manager's
# database knows Debian's packages, so dependencies are not checked (--nodeps,
# --force-depends). Booted under QEMU (TCG), only guest ports 80 and 2222 (the test's control
# channel) forwarded to 127.0.0.1. Checks, for each package manager, each printing
# PASS:/FAIL:, then "N passed, N failed" and a non-zero exit on any failure: the package
# installs the .deb's files (path, mode, sha256); install enables and starts portico.socket
# and requests from then on are served; upgrade (v1 -> v2) and downgrade (v2 -> v1) under a
# steady request stream lose none, change the version and never take portico.socket out of
# the active state (journal); the socket stays enabled through both; erase closes port 80
# and leaves no unit, link or file.
#
# x86_64 by default: TCG boots it fastest here and the host builds it natively; the package
# managers' scriptlet protocols do not depend on the architecture.
# Environment: QEMU_TEST_TIMEOUT (seconds for the whole run, default 2700), QEMU_TEST_KEEP=1
# keeps the console log (target/qemu/console-qemu-oe-packages-*.log) even on success.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd) QEMU_NAME=qemu-oe-packages
# shellcheck source=ci/qemu/lib.sh
source "$ROOT/ci/qemu/lib.sh"
# A bound against a hang, not a speed check: it takes in building the packages and the base
# rootfs, which a machine busy with other work makes several times slower (CI, run 1 of this
# session: 900 s ran out mid-test with two CI runs and cargo mutants beside it).
qemu_time_bound "${QEMU_TEST_TIMEOUT:-2700}" "$@"

OPKG_SRC=''
if [[ ${1:-} == --opkg ]]; then
    OPKG_SRC=${2:?--opkg needs an opkg source directory}
    shift 2
fi
qemu_prepare "${1:-x86_64}" "$QEMU_RPM_BASE_PKGS"
[[ -z $OPKG_SRC || $ARCH == x86_64 ]] || { echo "$QEMU_NAME: --opkg builds opkg for this host: x86_64 only" >&2; exit 2; }
FORMATS=(rpm ${OPKG_SRC:+ipk})

# ---------------------------------------------------------------------------------------
# portico v1 and v2, each packaged in each format (and the .deb they are made from).
T1=$(now_s)
PKGS=$QEMU_CACHE/oe-packages-$ARCH
declare -A PKG VER=([v1]=$V1 [v2]=$V2)
for v in v1 v2; do
    for f in "${FORMATS[@]}"; do # one build per version: cargo has nothing to do the second time
        PKG[$f.$v]=$(qemu_package "${VER[$v]}" "$PKGS" build-oe-package.sh "$f")
    done
done
[[ -z $OPKG_SRC ]] || OPKG=$(bash "$ROOT/ci/build-opkg.sh" "$OPKG_SRC" | tail -n1)
T_BUILD=$(elapsed "$T1")

# ---------------------------------------------------------------------------------------
# Image: the base rootfs with the kernel's virtio/ext4 modules, the test scaffolding
# (ci/qemu/guest), the packages (portico itself is installed in the booted guest), and
# with --opkg, opkg with the libraries it links and the configuration of a Yocto image.
T2=$(now_s)
R=$WORK/rootfs
qemu_systemd_guest "$R" portico-oe-packages-test
mkdir -p "$R/root/pkgs"
for k in "${!PKG[@]}"; do cp "${PKG[$k]}" "$R/root/pkgs/${k#*.}.${k%.*}"; done
if [[ -n $OPKG_SRC ]]; then
    install -D -m 0755 "$OPKG" "$R/usr/bin/opkg"
    # The guest is the same Debian release as this host: the host's copies of what it lacks.
    for lib in $(ldd "$OPKG" | grep -o '/[^ ]*'); do
        [[ -e $R$lib ]] || install -D -m 0644 "$(realpath "$lib")" "$R$lib"
    done
    mkdir -p "$R/etc/opkg" "$R/var/lib/opkg"
    printf '# As opkg-arch-config writes it for a Yocto image of this architecture.\narch all 1\narch any 6\narch noarch 11\narch %s 16\n' \
        "$ARCH" >"$R/etc/opkg/arch.conf"
fi
qemu_initrd virtio_pci virtio_blk crc32c_generic ext4
qemu_disk "$R"
rm -rf "$R"
T_IMAGE=$(elapsed "$T2")

# ---------------------------------------------------------------------------------------
# From here on every outcome is a PASS:/FAIL: line.
qemu_traps

# The files a package installs: "sha256 mode /path" for each regular file (the .deb's
# lintian overrides aside: only Debian's tools read them).
pkg_files() { # PACKAGE
    local x
    x=$(mktemp -d "$WORK/unpack.XXXXXX")
    case $1 in
        *.deb) dpkg-deb -x "$1" "$x" ;;
        *.rpm) rpm2cpio "$1" | (cd "$x" && cpio -idm --quiet) ;;
        *.ipk) ar p "$1" data.tar.zst | tar --zstd -x -C "$x" ;;
    esac
    (cd "$x" && find . -type f ! -path './usr/share/lintian/*' -printf '%m %P\n' | while read -r m p; do
        echo "$(sha256sum <"$p" | cut -d' ' -f1) $m /$p"; done) | sort
    rm -rf "$x"
}
DEB1=$PKGS/portico_${V1}_$DEBARCH.deb
for f in "${FORMATS[@]}"; do
    if d=$(diff <(pkg_files "$DEB1") <(pkg_files "${PKG[$f.v1]}")); then
        pass "$f 0. the $f package installs the .deb's files: $(pkg_files "$DEB1" | wc -l) files, same paths, modes and sha256"
    else
        fail "$f 0. the $f package's files differ from the .deb's (< deb, > $f):"; sed 's/^/    /' <<<"$d"
    fi
done

qemu_start "systemd.journald.forward_to_console=1"
qemu_booted boot 600
echo "TIME: QEMU start to guest network up: $(elapsed "$T_QEMU") s"

# pm_steps PM INSTALL UPGRADE DOWNGRADE ERASE QUERY INSTALLED-V1 IS-INSTALLED: the package
# manager PM's commands for each step (guest paths), QUERY printing INSTALLED-V1 once v1 is
# back, IS-INSTALLED succeeding while portico is installed.
pm_steps() {
    local pm=$1 install=$2 upgrade=$3 downgrade=$4 erase=$5 query=$6 want_q=$7 installed=$8
    local out arc en act v u m q
    # 1. Install: the postinst enables and starts portico.socket; from the moment the
    # package manager returns, every request is served (the first one starts the service).
    out=$(guest "$install" 300) && arc=0 || arc=$?
    en=$(prop portico.socket UnitFileState); act=$(prop portico.socket ActiveState)
    load_start
    load_stop
    v=$(api .portico.version); u=$(api .process.uid); m=$(api .activation.mode)
    if ((arc == 0)) && load_clean && [[ $en == enabled && $act == active && $v == "$V1" && $m == systemd && $u =~ ^[0-9]+$ && $u != 0 ]]; then
        pass "$pm 1. '$install': portico.socket $en and $act when it returned; then $(load_summary); serves $v (activation $m, uid $u)"
    else
        fail "$pm 1. '$install' (exit $arc): portico.socket $en/$act; then $(load_summary); version '$v', activation '$m', uid '$u'"
        tail -n 15 <<<"$out" | sed 's/^/    /'
    fi
    echo "TIME: $pm: after the install, first request (starts the service): longest stall $(jq -r .close.longest_stall_ms <<<"$LOAD") ms"

    # 2, 3. Upgrade and downgrade under a steady request stream.
    upgrade_step "$pm 2. upgrade v1->v2" "$upgrade" "$V2"
    upgrade_step "$pm 3. downgrade v2->v1" "$downgrade" "$V1"
    en=$(prop portico.socket UnitFileState); q=$(guest "$query" || true)
    if [[ $en == enabled && $q == "$want_q" ]]; then
        pass "$pm 4. after both, portico.socket is still $en (the old package's scripts did not disable it); '$query': $q"
    else
        fail "$pm 4. after upgrade and downgrade: portico.socket '$en'; '$query': '$q' (want '$want_q')"
    fi

    # 5. Erase: the prerm stops and disables, the postrm reloads systemd: port 80 closed, no
    # process, no unit file, enable link, configuration or package left.
    out=$(guest "$erase" 300) && arc=0 || arc=$?
    removal_check "$pm 5. '$erase'" "$arc" "$out" "pgrep -a -x portico; if $installed; then echo still-installed; fi; \
        ls -d /usr/bin/portico /usr/lib/systemd/system/portico.* /usr/lib/systemd/user/portico.* /etc/portico 2>/dev/null; \
        find /etc/systemd /run/systemd/system -name 'portico*' 2>/dev/null; \
        systemctl show -p LoadState --value portico.socket portico.service" \
        "not-found not-found" "no process, units not-found, no file or link left"
}

pm_steps rpm "rpm -i --nodeps /root/pkgs/v1.rpm" "rpm -U --nodeps /root/pkgs/v2.rpm" \
    "rpm -U --oldpackage --nodeps /root/pkgs/v1.rpm" "rpm -e --nodeps portico" \
    "rpm -q portico" "portico-${V1//-/+}-r0.$ARCH" "rpm -q --quiet portico"
if [[ -n $OPKG_SRC ]]; then
    pm_steps opkg "opkg install --force-depends /root/pkgs/v1.ipk" "opkg install --force-depends /root/pkgs/v2.ipk" \
        "opkg install --force-depends --force-downgrade /root/pkgs/v1.ipk" "opkg remove portico" \
        "opkg list-installed portico" "portico - $V1-r0" "opkg list-installed portico | grep -q ."
fi

qemu_stop "systemctl --no-block poweroff"
echo "TIME: $QEMU_NAME $ARCH: base rootfs ${T_BASE} s, v1+v2 builds and packages ${T_BUILD} s, image ${T_IMAGE} s, VM and checks $(elapsed "$T_QEMU") s, total $(elapsed "$T0") s"
qemu_finish
