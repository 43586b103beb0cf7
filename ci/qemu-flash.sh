#!/usr/bin/env bash
# Flash test: the disk image a user writes onto a card, built and booted as a board boots it.
#
#   ci/qemu-flash.sh [busybox|systemd]   (both, one after the other, by default; run as root
#                                          on Debian 12 x86_64)
#
# The image is made as portico_qemu_aarch64_virt_defconfig makes it: the post-image
# scripts the defconfig names, run in its order with its arguments (the board's
# post-image.sh puts extlinux/extlinux.conf next to the kernel; support/scripts/genimage.sh,
# stood in for by the same genimage and `bmaptool create` calls, makes disk.img from the
# board's genimage.cfg, and disk.img.bmap), from a root filesystem laid out as the
# Buildroot package installs portico: `busybox`, the BusyBox-init one of ci/qemu-busybox.sh
# (qemu_busybox_root), or `systemd`, a Debian systemd base with what the package's systemd
# install step installs, its socket units enabled by their preset. Its size is the
# defconfig's BR2_TARGET_ROOTFS_EXT2_SIZE (systemd: plus the Debian base, which is far
# bigger than a Buildroot one). The kernel is Debian's arm64 one, which has virtio and ext4
# as modules, so the boot partition also gets an initrd that loads them and mounts what
# root= names (qemu_initrd_cmdline_root): one file more in genimage.cfg's list and one line
# more in extlinux.conf, the only changes made to the board's files.
#
# disk.img is then written with `bmaptool copy` onto a "card", a file of 2 GiB whose first
# 256 MiB hold random bytes, as a used card would, and QEMU boots that card with Debian's
# U-Boot for qemu_arm64 as its firmware (-bios u-boot.bin): no -kernel, no -initrd. Only
# guest ports 80, 443 and 2222 (the test's control channel) are forwarded, to 127.0.0.1.
# Checks, each printing PASS:/FAIL:, then "N passed, N failed" and a non-zero exit on any
# failure: U-Boot found extlinux.conf and the kernel on the card and the kernel mounted the
# root partition root= names; port 80 and port 443 (TLS) answer with no manual step; served
# by an unprivileged user; the owner's set-up code can be read where the README says; the
# root filesystem takes one upgrade (the package's files, as
# a tarball, sent into the running guest onto the root filesystem and unpacked over /, then
# the restart: it serves from the new binary) with the free space measured by df in the
# guest before and after; after a reboot (through U-Boot again) it serves again. The
# image's sizes are printed (SIZE: lines).
#
# Environment: QEMU_TEST_TIMEOUT (seconds for each variant, build included, default
# 1500), QEMU_TEST_KEEP=1 keeps the console log (target/qemu/console-qemu-flash-*.log)
# even on success.
set -euo pipefail
shopt -s inherit_errexit

VARIANT=${1:-}
if [[ -z $VARIANT ]]; then
    rc=0
    for v in busybox systemd; do bash "$0" "$v" || rc=1; done
    exit "$rc"
fi
[[ $VARIANT == busybox || $VARIANT == systemd ]] || { echo "usage: $0 [busybox|systemd]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd) QEMU_NAME=qemu-flash-$VARIANT
# shellcheck source=ci/qemu/lib.sh
source "$ROOT/ci/qemu/lib.sh"
qemu_time_bound "${QEMU_TEST_TIMEOUT:-1500}" "$@"

# The base is ci/qemu-test.sh's, so CI builds it once for both.
qemu_prepare aarch64 "$QEMU_BASE_PKGS"
apt_install make genimage u-boot-qemu bmap-tools mtools dosfstools
FIRMWARE=/usr/lib/u-boot/qemu_arm64/u-boot.bin
EXTERNAL=$ROOT/buildroot-external
DEFCONFIG=$EXTERNAL/configs/portico_qemu_aarch64_virt_defconfig
T1=$(now_s)
# Any version will do; ci/qemu-test.sh builds this one last, so in CI nothing is compiled.
VERSION=$V2
qemu_build_portico "$VERSION" "$WORK/portico"
T_BUILD=$(elapsed "$T1")

# defconfig_value NAME: the defconfig's value of BR2_NAME (quotes removed), with
# $(BR2_EXTERNAL_PORTICO_PATH) expanded as Buildroot expands it.
defconfig_value() {
    local v
    v=$(sed -n "s/^BR2_$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$DEFCONFIG")
    # shellcheck disable=SC2016 # make's $(...), not the shell's
    echo "${v//'$(BR2_EXTERNAL_PORTICO_PATH)'/$EXTERNAL}"
}

# ---------------------------------------------------------------------------------------
# The root filesystem, as the package installs portico.
T2=$(now_s)
R=$WORK/rootfs IMAGES=$WORK/images
mkdir -p "$IMAGES"
if [[ $VARIANT == busybox ]]; then
    qemu_busybox_root "$R" "$WORK/portico"
    RESTART="/etc/init.d/S50portico restart" PIDCMD="cat /var/run/portico.pid"
else
    qemu_systemd_guest "$R" portico-flash
    install -D -m 0755 "$WORK/portico" "$R/usr/bin/portico"
    make -s -C "$ROOT" -f "$ROOT/ci/buildroot-install.mk" TARGET_DIR="$R" INIT=systemd install
    # Buildroot's systemd runs `systemctl preset-all` on the target: here only for portico's
    # units, so the test scaffolding of the Debian base stays as it is.
    systemctl --root="$R" preset -q portico.socket portico-https.socket portico.service
    PORTICO_UID='' RESTART="systemctl restart portico.service" PIDCMD="systemctl show -p MainPID --value portico.service"
fi
# The update the room check installs: the same files, as one tarball.
UPDATE=$WORK/portico-update.tar.gz
mkdir -p "$WORK/update/usr/bin"
install -m 0755 "$WORK/portico" "$WORK/update/usr/bin/portico"
make -s -C "$ROOT" -f "$ROOT/ci/buildroot-install.mk" TARGET_DIR="$WORK/update" \
    INIT="$([[ $VARIANT == busybox ]] && echo sysv || echo systemd)" install
tar -C "$WORK/update" --owner=0 --group=0 -czf "$UPDATE" .
rm -rf "$WORK/update"

size=$(defconfig_value TARGET_ROOTFS_EXT2_SIZE)
[[ $size =~ ^[0-9]+M$ ]] || die "$DEFCONFIG: BR2_TARGET_ROOTFS_EXT2_SIZE is '$size', expected a size in M"
SIZE_MB=${size%M}
[[ $VARIANT == busybox ]] || SIZE_MB=$((SIZE_MB + $(du -sm "$R" | cut -f1)))
# Buildroot's ext4: mkfs.ext4 -d with its label (BR2_TARGET_ROOTFS_EXT2_LABEL, "rootfs").
mkfs.ext4 -q -F -L rootfs -d "$R" "$IMAGES/rootfs.ext4" "${SIZE_MB}M" >/dev/null
CONTENT_MB=$(du -sm "$R" | cut -f1)
rm -rf "$R"
qemu_initrd_cmdline_root virtio_pci virtio_blk virtio_net virtio_rng crc32c_generic ext4
cp "$KERNEL" "$IMAGES/Image"
mv "$WORK/initrd.gz" "$IMAGES/initrd.gz"

# ---------------------------------------------------------------------------------------
# disk.img: the defconfig's post-image scripts, in its order, with its arguments.
# genimage_sh -c CFG: what support/scripts/genimage.sh does, with Debian's genimage and
# bmaptool: an empty root path, then a .bmap of each image CFG names when the defconfig
# has BR2_PACKAGE_HOST_BMAP_TOOLS.
genimage_sh() {
    [[ $1 == -c && -f $2 ]] || die "support/scripts/genimage.sh takes -c GENIMAGE_CFG, not '$*'"
    local cfg=$2 rootpath image
    # Debian's kernel needs its initrd: one more file on the boot partition.
    cfg=$WORK/genimage.cfg
    sed 's|^\(\t*\)"extlinux"$|\1"extlinux",\n\1"initrd.gz"|' "$2" >"$cfg"
    grep -q '"initrd.gz"' "$cfg" || die "$2 lists no \"extlinux\" directory for the boot partition: ci/qemu-flash.sh adds the initrd after it"
    rootpath=$(mktemp -d)
    genimage --rootpath "$rootpath" --tmppath "$WORK/genimage.tmp" --inputpath "$IMAGES" \
        --outputpath "$IMAGES" --config "$cfg" >"$WORK/genimage.log" 2>&1 ||
        { tail -n 30 "$WORK/genimage.log" >&2; die "genimage failed with $2 (log: $WORK/genimage.log)"; }
    rm -rf "$rootpath"
    if grep -qx 'BR2_PACKAGE_HOST_BMAP_TOOLS=y' "$DEFCONFIG"; then
        for image in $(sed -n 's/^image \([^ ]*\) .*/\1/p' "$cfg"); do
            [[ ! -f $IMAGES/$image ]] || bmaptool -q create "$IMAGES/$image" -o "$IMAGES/$image.bmap"
        done
    fi
}
read -ra scripts <<<"$(defconfig_value ROOTFS_POST_IMAGE_SCRIPT)"
read -ra script_args <<<"$(defconfig_value ROOTFS_POST_SCRIPT_ARGS)"
((${#scripts[@]})) || die "$DEFCONFIG names no BR2_ROOTFS_POST_IMAGE_SCRIPT: nothing would make disk.img"
for script in "${scripts[@]}"; do
    case $script in
        support/scripts/genimage.sh)
            # Debian's kernel needs its initrd: one more line in extlinux.conf.
            sed -i 's|^\( *\)kernel \(.*\)$|&\n\1initrd /initrd.gz|' "$IMAGES/extlinux/extlinux.conf"
            grep -q '^ *initrd /initrd.gz$' "$IMAGES/extlinux/extlinux.conf" ||
                die "no kernel line in the board's extlinux.conf: ci/qemu-flash.sh adds the initrd after it"
            genimage_sh "${script_args[@]}" ;;
        "$EXTERNAL"/*)
            BINARIES_DIR=$IMAGES BUILD_DIR=$WORK bash "$script" "$IMAGES" "${script_args[@]}" ;;
        *) die "the defconfig's post-image script $script is neither the tree's nor genimage.sh: teach ci/qemu-flash.sh" ;;
    esac
done
[[ -f $IMAGES/disk.img ]] || die "the post-image scripts made no disk.img in $IMAGES"
[[ -f $IMAGES/disk.img.bmap ]] || die "the post-image scripts made no disk.img.bmap (BR2_PACKAGE_HOST_BMAP_TOOLS?)"

# The card: used before (random bytes where the partition table and the boot partition
# go), 2 GiB, written as a user flashes it (bmaptool finds disk.img.bmap next to disk.img
# and writes only the blocks it maps, then checks their sha256).
CARD=$WORK/disk.img
head -c 256M /dev/urandom >"$CARD"
truncate -s 2G "$CARD"
T3=$(now_s)
bmaptool copy "$IMAGES/disk.img" "$CARD" >"$WORK/bmaptool.log" 2>&1 ||
    { cat "$WORK/bmaptool.log" >&2; die "bmaptool copy failed"; }
T_FLASH=$(elapsed "$T3")
grep -q 'block map format version' "$WORK/bmaptool.log" ||
    { cat "$WORK/bmaptool.log" >&2; die "bmaptool copy did not use disk.img.bmap"; }
echo "SIZE: disk.img $(stat -c %s "$IMAGES/disk.img") bytes, of which mapped (written to the card): $(sed -n 's/.*mapped \([0-9]* blocks ([^)]*)\).*/\1/p' "$WORK/bmaptool.log"); rootfs.ext4 ${SIZE_MB} MiB holding ${CONTENT_MB} MiB; boot partition files: Image $(stat -c %s "$IMAGES/Image"), initrd.gz $(stat -c %s "$IMAGES/initrd.gz") bytes; written in ${T_FLASH} s"
T_IMAGE=$(elapsed "$T2")

# ---------------------------------------------------------------------------------------
# Boot the card through U-Boot. From here on every outcome is a PASS:/FAIL: line.
qemu_via_firmware "$FIRMWARE"
qemu_traps
qemu_start --https
qemu_booted "1. boot" 300
T_READY=$(elapsed "$T_QEMU")
APPEND=$(sed -n 's/^ *append //p' "$EXTERNAL/board/qemu-aarch64-virt/extlinux.conf")

# booted_from_card N NAME: the Nth boot came through U-Boot (its Nth banner), which read
# extlinux.conf from the card; the kernel line is extlinux.conf's; / is the partition
# root= names (the initrd's line).
booted_from_card() {
    local banners cmdline rootdev initrd
    banners=$(grep -a -c '^U-Boot 20' "$WORK/console.log" || true)
    cmdline=$(guest "cat /proc/cmdline" || true)
    rootdev=$(guest "awk '\$2 == \"/\" { print \$1 }' /proc/mounts | tail -n 1" || true)
    initrd=$(grep -a 'initrd: root=' "$WORK/console.log" | tail -n 1 | tr -d '\r')
    if [[ $banners == "$1" && $cmdline == *"$APPEND"* && $rootdev == /dev/vda2 && $initrd == *"is /dev/vda2"* ]] &&
        grep -a -q 'extlinux.conf' "$WORK/console.log"; then
        pass "$2 booted from the card through U-Boot ($banners banners: $(grep -a -m1 '^U-Boot 20' "$WORK/console.log" | tr -d '\r')), extlinux.conf's kernel line ($cmdline), / on $rootdev ('$initrd')"
    else
        fail "$2 boot from the card: U-Boot banners $banners (want $1), kernel line '$cmdline' (want '$APPEND' in it), / on '$rootdev' (want /dev/vda2), initrd said '$initrd'"
    fi
}
booted_from_card 1 "1."

# serves WHAT: port 80 (/healthz, the version) and port 443 (TLS, certificate not checked:
# portico makes itself a self-signed one) answer.
serves() {
    local v body s
    v=$(api .portico.version); body=$(curl -s --max-time 10 "$URL/healthz" || true)
    s=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 20 "$SURL/healthz" || true)
    if [[ $body == ok && $v == "$VERSION" && $s == 200 ]]; then
        pass "$1: port 80 /healthz ok (version $v), port 443 (TLS) /healthz $s"
    else
        fail "$1: port 80 /healthz '$body', version '$v' (want $VERSION); port 443 /healthz '$s'"
    fi
}
# not_root WHAT: every process named portico in the guest runs with real, effective, saved
# and fs uids that are not 0, the same uid the API reports (and, without systemd, the
# uid of the user portico).
not_root() {
    local uids a_uid
    uids=$(guest "for s in /proc/[0-9]*/status; do awk '/^Name:/ { n = \$2 } /^Uid:/ { u = \$2 \" \" \$3 \" \" \$4 \" \" \$5 } END { if (n == \"portico\") print u }' \$s 2>/dev/null; done" || true)
    a_uid=$(api .process.uid)
    if [[ -n $uids && $a_uid =~ ^[1-9][0-9]*$ && $(tr ' ' '\n' <<<"$uids" | sort -u) == "$a_uid" &&
        ${PORTICO_UID:-$a_uid} == "$a_uid" ]]; then
        pass "$1 served by uid $a_uid, not root (processes' real/effective/saved/fs uids: $(echo $uids))"
    else
        fail "$1 root check: processes' uids '$(echo $uids)', API uid '$a_uid'${PORTICO_UID:+, user portico is $PORTICO_UID}"
    fi
}

# 2. Both ports answer after boot, nothing typed; 3. not root.
if wait_200 60; then
    T_FIRST200=$(elapsed "$T_QEMU")
    serves "2. after the first boot"
else
    T_FIRST200=never; fail "2. no HTTP 200 on guest port 80 within 60 s of the guest network coming up"
fi
not_root "3."
echo "TIME: QEMU start (firmware) to guest network up: ${T_READY} s; to first HTTP 200: ${T_FIRST200} s"

# 3b. The owner's next step, as "Flashing a device" in the README tells it: the set-up
# code, from the journal under systemd; without systemd portico's log goes nowhere
# (start-stop-daemon), and reset-owner, as root on the console, prints a new one.
if [[ $VARIANT == systemd ]]; then
    code=$(guest "journalctl -q -o cat -u portico.service | grep 'set-up code'" || true)
else
    code=$(guest "portico reset-owner --state-directory /var/lib/portico" || true)
fi
if [[ $code =~ [Ss]et-up\ code:?\ ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}) ]]; then
    pass "3b. the owner's set-up code is there to read: ${BASH_REMATCH[1]}"
else
    fail "3b. no set-up code where the README says to look: '$(echo $code)'"
fi

# 4. Room for one upgrade: the package's files sent onto the root filesystem and unpacked
# over / (tar writes each file anew, so the old binary's blocks stay taken until the
# restart), then the restart; it must serve from the new file. df, in the guest, before and
# after, in KiB.
df_root() { guest "df -k / | awk 'NR == 2 { print \$2, \$3, \$4 }'" || true; } # total used available
read -r total used0 avail0 <<<"$(df_root)"
ino0=$(guest "stat -c %i /usr/bin/portico" || true)
pkg_kb=$(( ($(stat -c %s "$UPDATE") + 1023) / 1024 ))
if guest_put "$UPDATE" /root/portico-update.tar.gz; then
    out=$(guest "tar -xzf /root/portico-update.tar.gz -C / && $RESTART" 120) && urc=0 || urc=$?
    read -r _ _ avail1 <<<"$(df_root)"
    ino1=$(guest "stat -c %i /usr/bin/portico" || true)
    # The restart drains first: up to 30 s for the running binary to be the new file.
    exe=$(guest "for i in \$(seq 150); do e=\$(ls -l /proc/\$($PIDCMD)/exe 2>/dev/null); case \$e in *' /usr/bin/portico') break ;; esac; sleep 0.2; done; echo \$e" 60 || true)
    if ((urc == 0)) && wait_200 60 && [[ -n $ino1 && $ino1 != "$ino0" && $exe == *' /usr/bin/portico' ]]; then
        pass "4. room for one upgrade: the ${pkg_kb} KiB package sent onto / and unpacked, '$RESTART' done, it serves from the new /usr/bin/portico (inode $ino0 -> $ino1); df /: ${total} KiB, available ${avail0} -> ${avail1} KiB with the package kept"
    else
        fail "4. upgrade (exit $urc: $(echo $out)): inode $ino0 -> '$ino1', exe '$exe'; df /: ${total} KiB, available $avail0 -> '${avail1:-}'"
    fi
else
    fail "4. could not send the ${pkg_kb} KiB package onto / (df /: ${total} KiB, available ${avail0} KiB)"
fi
echo "SIZE: root filesystem ${total:-?} KiB, used ${used0:-?} KiB after the first boot, available ${avail0:-?} KiB: $((${avail0:-0} / pkg_kb)) times the ${pkg_kb} KiB package, $((${avail0:-0} / ($(stat -c %s "$WORK/portico") / 1024))) times the binary"
serves "4b. after the upgrade"

# 5. A second boot, through U-Boot again, serves again.
guest "$([[ $VARIANT == busybox ]] && echo reboot || echo 'systemctl reboot')" >/dev/null || true
T_REBOOT=$(now_s)
if wait_ready 2 300 && wait_200 60; then
    pass "5. after a reboot it serves again: first 200 $(elapsed "$T_REBOOT") s after the reboot command"
    booted_from_card 2 "5b."
    serves "5c. after the reboot"
    not_root "5d. after the reboot,"
else
    fail "5. after reboot: no HTTP 200 (see the console log)"
fi

qemu_stop "$([[ $VARIANT == busybox ]] && echo poweroff || echo 'systemctl poweroff')"
echo "TIME: $QEMU_NAME: base rootfs ${T_BASE} s, build ${T_BUILD} s, image and card ${T_IMAGE} s, VM and checks $(elapsed "$T_QEMU") s, total $(elapsed "$T0") s"
qemu_finish
