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

# runqemu's default slirp options forward only ssh and telnet; add the web port.
# runqemu reads QB_* from the image's qemuboot.conf, a name oelint does not know:
# nooelint: oelint.vars.mispell.unknown
QB_SLIRP_OPT = "-netdev user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22"
