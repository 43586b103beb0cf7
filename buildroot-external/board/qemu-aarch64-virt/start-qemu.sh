#!/usr/bin/env bash
# Boots the image of portico_qemu_aarch64_virt_defconfig (post-image.sh copies this script
# next to Image and rootfs.ext4). The guest's port 80 answers on 127.0.0.1:8080 of the host
# (PORTICO_HOST_PORT changes that); extra arguments go to QEMU, e.g. -snapshot.
set -euo pipefail
cd "$(dirname "$0")"
port=${PORTICO_HOST_PORT:-8080}
command -v qemu-system-aarch64 >/dev/null ||
    { echo "qemu-system-aarch64 not found: apt-get install qemu-system-arm" >&2; exit 1; }
# net.ifnames=0 keeps the name eth0, which BR2_SYSTEM_DHCP configures.
exec qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 512 -nographic \
    -kernel Image -append "rootwait root=/dev/vda console=ttyAMA0 net.ifnames=0" \
    -drive file=rootfs.ext4,if=none,format=raw,id=hd0 -device virtio-blk-device,drive=hd0 \
    -netdev "user,id=eth0,hostfwd=tcp:127.0.0.1:${port}-:80" -device virtio-net-device,netdev=eth0 \
    "$@"
