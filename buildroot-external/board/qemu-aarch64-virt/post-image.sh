#!/usr/bin/env bash
# Buildroot post-image script: puts start-qemu.sh next to the kernel and rootfs it boots.
set -euo pipefail
install -m 0755 "$(dirname "$0")/start-qemu.sh" "${BINARIES_DIR}/start-qemu.sh"
