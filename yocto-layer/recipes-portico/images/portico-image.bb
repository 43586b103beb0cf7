SUMMARY = "A small systemd image that serves portico on port 80 from the first boot"
DESCRIPTION = "core-image with systemd as init and portico, its socket enabled. \
runqemu forwards 127.0.0.1:8080 on the host to port 80 of the guest."
LICENSE = "MIT"

inherit core-image features_check

# portico is started by socket activation; without systemd as init nothing would listen.
REQUIRED_DISTRO_FEATURES = "systemd"

IMAGE_INSTALL = "packagegroup-core-boot portico ${CORE_IMAGE_EXTRA_INSTALL}"
# The package manager stays on the device, so portico can be upgraded by package.
IMAGE_FEATURES += "package-management"

# A disk image to flash (bmaptool copy portico-image-<machine>.rootfs.wic /dev/sdX):
# portico-image.wks, next to this recipe, lays out a GPT with a boot partition that U-Boot
# boots through extlinux.conf and the root filesystem. A BSP layer with its own layout
# sets WKS_FILE (and IMAGE_BOOT_FILES: the kernel, device trees) for its machine.
IMAGE_FSTYPES += "wic wic.bmap"
WKS_FILE ?= "portico-image.wks"
IMAGE_BOOT_FILES ?= "${KERNEL_IMAGETYPE}"

# runqemu's default slirp options forward only ssh and telnet; add the web port.
# runqemu reads QB_* from the image's qemuboot.conf, a name oelint does not know:
# nooelint: oelint.vars.mispell.unknown
QB_SLIRP_OPT = "-netdev user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22"
