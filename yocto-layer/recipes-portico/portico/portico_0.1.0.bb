SUMMARY = "Socket-activated status page and JSON API for embedded Linux devices"
DESCRIPTION = "portico serves a status page (/), a JSON API (/api/status) and a health \
endpoint (/healthz) from one small Rust binary. systemd opens port 80 (portico.socket) \
and hands the listening socket to portico.service, which runs unprivileged."
SECTION = "net"
# Dual licensed. master (blacksail) reads SPDX expressions and warns on the "|" form
# that whinlatter and wrynose need; give each the form it parses.
LICENSE = "${@'Apache-2.0 OR MIT' if 'blacksail' in d.getVar('LAYERSERIES_CORENAMES').split() else 'MIT | Apache-2.0'}"
LIC_FILES_CHKSUM = "file://LICENSE;md5=c191f2ec6111e5e485ece64170db6c4d"

# Where the source comes from. There is no public repository yet, so by default the
# recipe fetches from the git clone this layer sits in (yocto-layer/ is a directory of
# the portico repository). Set PORTICO_GIT_URL to your own mirror when the layer lives
# elsewhere, e.g. in local.conf or kas:
#   PORTICO_GIT_URL = "git://git.example.com/portico.git;protocol=https"
# To build a working tree instead (no commit needed), see "externalsrc" in ../../README.
PORTICO_REPO_DIR = "${@os.path.abspath(os.path.join(d.getVar('THISDIR'), '..', '..', '..'))}"
PORTICO_GIT_URL ??= "git://${PORTICO_REPO_DIR};protocol=file"
PORTICO_GIT_BRANCH ??= "main"

PV .= "+git"
SRC_URI = "${PORTICO_GIT_URL};branch=${PORTICO_GIT_BRANCH}"
# Pinned: bitbake resolves AUTOREV over the network at parse time, and the crate list
# below is the one of this revision's Cargo.lock (ci/yocto-crates.py checks both agree).
SRCREV = "6dac5dc4a60965789a155dd679d4d16519463e11"

# The crates of Cargo.lock; regenerate with `python3 ci/yocto-crates.py --write`
# (same output as `bitbake -c update_crates portico`).
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd

# S is left at the default ${UNPACKDIR}/${BP}, where the git fetcher unpacks
# (BB_GIT_DEFAULT_DESTSUFFIX) on every release in LAYERSERIES_COMPAT; the workspace
# Cargo.toml and Cargo.lock are at the top of the tree, so CARGO_SRC_DIR stays "".

# The workspace's release profile strips the binary; bitbake strips it itself and keeps
# the debug symbols in portico-dbg, and fails the already-stripped QA check otherwise.
export CARGO_PROFILE_RELEASE_STRIP = "false"

# Same version string in `portico --version` and /api/status as in the package.
export PORTICO_VERSION = "${PV}"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${systemd_user_unitdir}
    install -m 0644 ${S}/systemd/portico.socket ${S}/systemd/portico.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/systemd/user/portico.socket ${S}/systemd/user/portico.service ${D}${systemd_user_unitdir}/
    # rootfs-overlay/ is laid onto / as it is (today: /etc/portico/portico.toml).
    cp -R --no-preserve=ownership ${S}/rootfs-overlay/. ${D}/
}

FILES:${PN} += "${systemd_user_unitdir}"
# Everything the overlay puts under /etc is configuration the device owner may edit.
CONFFILES:${PN} = "${sysconfdir}"

# Enabling the socket is enough: systemd starts portico.service on the first connection.
# systemd.bbclass packages portico.service along with the socket it names.
SYSTEMD_SERVICE:${PN} = "portico.socket"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# No useradd: portico.service uses DynamicUser=yes, so systemd allocates an unprivileged
# user for each run and no static account is needed in /etc/passwd.

# Zero-downtime upgrades: systemd.bbclass's own scriptlets restart every unit named in
# SYSTEMD_SERVICE, the socket too, which closes the listener, and its prerm stops and
# disables the units, which opkg also runs on an upgrade. They are replaced by the shared
# scriptlet of all portico packages, packaging/scriptlets/portico-maint.sh, taken from the
# source tree being packaged (so it is the one of SRCREV), pasted whole into each script
# with one call line, as that file describes. On an upgrade it restarts only
# portico.service; with $D set (image build) it only enables portico.socket under $D.
PORTICO_MAINT = "${S}/packaging/scriptlets/portico-maint.sh"
python portico_scriptlets() {
    pn = d.getVar("PN")
    # Without its comment lines: bitbake expands ${NAME} in scriptlets, and the comments
    # may name bitbake variables (${S}), which would put build paths into the package.
    with open(d.getVar("PORTICO_MAINT")) as f:
        body = "".join(line for line in f if not line.lstrip().startswith("#"))
    if d.expand(body) != body:
        bb.fatal("%s: bitbake would expand a ${NAME} of its code; write $NAME there instead"
                 % d.getVar("PORTICO_MAINT"))
    for script in ("postinst", "prerm", "postrm"):
        d.setVar("pkg_%s:%s" % (script, pn),
                 '#!/bin/sh\n# %s of portico: packaging/scriptlets/portico-maint.sh and one call.\n'
                 'set -e\n\n%s\nportico_maint %s "$@"\n' % (script, body, script))
    # systemd_populate_packages runs next and appends these: leave it nothing to append.
    d.setVar("systemd_postinst", "")
    d.setVar("systemd_prerm", "")
}
PACKAGESPLITFUNCS =+ "portico_scriptlets"

# systemd.bbclass would also write a user preset because a user unit of the same name
# exists, and `systemctl --global preset-all` at rootfs time would then start portico in
# every user session. The user units are opt-in (`systemctl --user enable portico.socket`).
# populate_packages runs after systemd_populate_packages has written the presets into PKGD.
python populate_packages:prepend() {
    preset_dir = oe.path.join(d.getVar("PKGD"), d.getVar("systemd_unitdir"), "user-preset")
    preset = os.path.join(preset_dir, "98-%s.preset" % d.getVar("PN"))
    if os.path.exists(preset):
        os.remove(preset)
        if not os.listdir(preset_dir):
            os.rmdir(preset_dir)
}
