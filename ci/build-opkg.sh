#!/usr/bin/env bash
# ci/build-opkg.sh: builds opkg, Yocto's ipk package manager, from a source tree, for
# `ci/qemu-oe-packages.sh --opkg`. Not in CI: neither Debian nor the registries CI reaches
# ship opkg, and CI cannot fetch its source.
#
#   ci/build-opkg.sh SOURCE-DIR      (as root on Debian 12 x86_64)
#
# SOURCE-DIR: a checkout of opkg with the autotools build of the 0.4 to 0.7 releases
# (configure.ac, autogen.sh): Yocto's own, or a fork of it. Built as oe-core's opkg recipe
# builds it (libarchive; no curl, no gpg; zstd and xz for the packages opkg-build makes),
# installed into target/opkg/root. Prints the path of the opkg binary; its shared
# libraries are the host's (ldd lists them).
set -euo pipefail
src=$(realpath "${1:?usage: ci/build-opkg.sh SOURCE-DIR (a checkout of opkg)}")
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh
[[ -f $src/configure.ac && -d $src/libopkg ]] || die "$src is not an opkg source tree (no configure.ac, libopkg/)"
apt_install autoconf automake libtool pkg-config make gcc libarchive-dev

out=$PWD/target/opkg
build=$out/build
rm -rf "$out"; mkdir -p "$build"
cp -r "$src/." "$build/"
(
    cd "$build"
    autoreconf -fi
    ./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
        --disable-curl --disable-gpg --disable-openssl --disable-ssl-curl \
        --enable-sha256 --enable-xz --enable-zstd --disable-shared --enable-static
    make -j"$(nproc)"
    make install DESTDIR="$out/root"
) >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log" >&2; die "building opkg failed (log: $out/build.log)"; }
log "opkg $("$out/root/usr/bin/opkg" --version 2>&1 | sed -n 1p) built from $src"
echo "$out/root/usr/bin/opkg"
