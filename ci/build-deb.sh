#!/usr/bin/env bash
# ci/build-deb.sh: the Debian package of portico, from a binary built before (cargo build
# --release, or ci/cross-build.sh for ARM), with dpkg-deb alone.
#
#   ci/build-deb.sh --binary PATH --arch DEBARCH --version V [--out DIR]
#     DEBARCH: amd64, arm64 or armhf (must match the binary); V: a Debian version (0.1.0,
#     0.1.0-1); DIR: where portico_V_DEBARCH.deb goes (default target/deb). Prints its path.
#
# It installs the same files as every other way of installing portico (ci/layer-builds.sh
# compares them): /usr/bin/portico, the units of systemd/ (system and user) and the user
# preset, everything under rootfs-overlay/ laid onto / (files under /etc become
# conffiles), the updater (packaging/portico-update as /usr/sbin/portico-update, its units
# and /etc/portico/update.conf), plus copyright and changelog. The maintainer scripts are
# packaging/scriptlets/portico-maint.sh, pasted whole, with one call line each.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

binary='' arch='' version='' out=target/deb
while [ $# -gt 0 ]; do
    case $1 in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --arch) arch=${2:?--arch needs amd64, arm64 or armhf}; shift 2 ;;
        --version) version=${2:?--version needs a version}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
if [ -z "$binary" ] || [ -z "$arch" ] || [ -z "$version" ]; then
    die "usage: ci/build-deb.sh --binary PATH --arch DEBARCH --version V [--out DIR]"
fi
[ -x "$binary" ] || die "$binary is not an executable; build it first (ci/cross-build.sh or cargo build --release)"
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "'$version' is not a Debian version (like 0.1.0 or 0.1.0-1)"

# The ELF machine the binary must be for: a wrong --arch would install and then not run.
case $arch in
    amd64) machine='Advanced Micro Devices X86-64' ;;
    arm64) machine=AArch64 ;;
    armhf) machine=ARM ;;
    *) die "unsupported --arch $arch (amd64, arm64 or armhf)" ;;
esac
apt_install dpkg-dev binutils gzip
readelf -h "$binary" | grep -q "Machine: *$machine\$" ||
    die "$binary is not a $arch binary: readelf says '$(readelf -h "$binary" | sed -n 's/ *Machine: *//p')'"

# Depends, from what the binary links: dpkg-shlibdeps would want the target's libc
# installed, which a cross build host need not have. The libc6 version is the newest
# GLIBC_ symbol version the binary asks for.
depends=()
for lib in $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case $lib in
        libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux*) ;;
        libgcc_s.so.1) depends+=("libgcc-s1") ;;
        *) die "$binary links $lib, which this script cannot map to a package: add it here" ;;
    esac
done
glibc=$(readelf -V "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
depends=("libc6 (>= ${glibc:-2.17})" "${depends[@]}")
depends_line=$(printf '%s, ' "${depends[@]}")
depends_line=${depends_line%, }

# PORTICO_MAINTAINER, else the author of the commit being packaged.
maintainer=${PORTICO_MAINTAINER:-$(git log -1 --format='%an <%ae>' 2>/dev/null || true)}
[[ $maintainer =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] ||
    die "no maintainer: set PORTICO_MAINTAINER='Name <email>' (no git history to take it from)"

mkdir -p "$out"
stage=$(mktemp -d "${TMPDIR:-/tmp}/portico-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
doc=$root/usr/share/doc/portico

install -D -m 0755 "$binary" "$root/usr/bin/portico"
for unit in systemd/portico.socket systemd/portico-https.socket systemd/portico.service; do
    install -D -m 0644 "$unit" "$root/usr/lib/systemd/system/${unit##*/}"
done
for unit in systemd/user/*; do
    install -D -m 0644 "$unit" "$root/usr/lib/systemd/user/${unit##*/}"
done
install -D -m 0755 packaging/portico-update "$root/usr/sbin/portico-update"
for unit in systemd/portico-update.service systemd/portico-update.timer systemd/portico-update.path; do
    install -D -m 0644 "$unit" "$root/usr/lib/systemd/system/${unit##*/}"
done
install -D -m 0644 packaging/update.conf "$root/etc/portico/update.conf"
# Keeps the user units off for an image built with `systemctl --global preset-all`.
install -D -m 0644 -t "$root/usr/lib/systemd/user-preset" systemd/user-preset/*
# The overlay as it is: directories 0755, files keep their executable bit or get 0644.
(cd rootfs-overlay && find . -type f -print0) | while IFS= read -r -d '' f; do
    mode=0644
    [ -x "rootfs-overlay/$f" ] && mode=0755
    install -D -m "$mode" "rootfs-overlay/$f" "$root/${f#./}"
done
install -D -m 0644 packaging/debian/copyright "$doc/copyright"

# A version with a Debian revision (0.1.0-1) is a non-native package: its changelog has
# the other name. The date is the last commit's, so rebuilding the same tree gives the
# same package.
changelog=changelog.gz
[[ $version == *-* ]] && changelog=changelog.Debian.gz
date_r=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'portico (%s) unstable; urgency=medium\n\n  * Built by ci/build-deb.sh from commit %s.\n\n -- %s  %s\n' \
    "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$maintainer" "$date_r" |
    gzip -9n >"$doc/$changelog"
chmod 0644 "$doc/$changelog"
install -D -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/portico"

mkdir -p "$root/DEBIAN"
for script in postinst prerm postrm; do
    {
        printf '#!/bin/sh\n# %s of portico: packaging/scriptlets/portico-maint.sh and one call.\nset -e\n\n' "$script"
        cat packaging/scriptlets/portico-maint.sh
        printf '\nportico_maint %s "$@"\n' "$script"
    } >"$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
done
(cd "$root" && find etc -type f 2>/dev/null | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
[ -s "$root/DEBIAN/conffiles" ] || rm "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

cat >"$root/DEBIAN/control" <<EOF
Package: portico
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends_line
Section: web
Priority: optional
Description: socket-activated status page and JSON API for embedded devices
 portico is a small web server for embedded Linux devices. It serves a status
 page, a JSON API (/api/status) and a health endpoint (/healthz).
 .
 systemd opens port 80 (portico.socket) and 443 for HTTPS (portico-https.socket)
 and starts the service on the first connection, under a transient unprivileged
 user. Upgrades restart only the service: systemd keeps the listening sockets,
 so no request is refused.
 .
 portico-update (daily, or when the owner asks on the page) installs a newer
 portico from the device maker's signed feed, checks that it serves, and puts
 the old version back if it does not.
EOF

deb=$out/portico_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
log "built $deb ($(stat -c %s "$deb") bytes; Depends: $depends_line)"
echo "$deb"
