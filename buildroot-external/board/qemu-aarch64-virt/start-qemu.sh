#!/usr/bin/env bash
# Boots the image of portico_qemu_aarch64_virt_defconfig as a board boots its card: QEMU's
# firmware is U-Boot (u-boot.bin), which finds extlinux/extlinux.conf on disk.img's boot
# partition and starts the kernel from there (post-image.sh copies this script next to
# them). The guest's port 80 answers on 127.0.0.1:8080 of the host and 443 on 8443
# (PORTICO_HOST_PORT and PORTICO_HOST_HTTPS_PORT change them); extra arguments go to QEMU,
# e.g. -snapshot to keep disk.img as it was.
set -euo pipefail
cd "$(dirname "$0")"
port=${PORTICO_HOST_PORT:-8080} https_port=${PORTICO_HOST_HTTPS_PORT:-8443}
command -v qemu-system-aarch64 >/dev/null ||
    { echo "qemu-system-aarch64 not found: apt-get install qemu-system-arm" >&2; exit 1; }
exec qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 512 -nographic -bios u-boot.bin \
    -drive file=disk.img,if=none,format=raw,id=hd0 -device virtio-blk-device,drive=hd0 \
    -netdev "user,id=eth0,hostfwd=tcp:127.0.0.1:${port}-:80,hostfwd=tcp:127.0.0.1:${https_port}-:443" \
    -device virtio-net-device,netdev=eth0 \
    "$@"
