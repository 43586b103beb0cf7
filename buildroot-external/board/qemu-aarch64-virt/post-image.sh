#!/usr/bin/env bash
# Buildroot post-image script of the QEMU aarch64 virt board, run before
# support/scripts/genimage.sh (the defconfig names both): puts extlinux/extlinux.conf next
# to the kernel, for genimage.cfg's boot partition, and start-qemu.sh next to the disk.img
# it boots.
set -euo pipefail
board=$(dirname "$0")
install -D -m 0644 "$board/extlinux.conf" "${BINARIES_DIR}/extlinux/extlinux.conf"
install -m 0755 "$board/start-qemu.sh" "${BINARIES_DIR}/start-qemu.sh"
