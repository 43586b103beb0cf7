SUMMARY = "Socket-activated status page and JSON API for embedded Linux devices"
DESCRIPTION = "portico serves a status page (/), a JSON API (/api/status) and a health \
endpoint (/healthz) from one small Rust binary. systemd opens port 80 (portico.socket) \
and, with PACKAGECONFIG tls (the default), port 443 for HTTPS (portico-https.socket), \
and hands the listening sockets to portico.service, which runs unprivileged."
SECTION = "net"
# Dual licensed. master (blacksail) reads SPDX expressions and warns on the "|" form
# that whinlatter and wrynose need; give each the form it parses.
LICENSE = "${@'Apache-2.0 OR MIT' if 'blacksail' in d.getVar('LAYERSERIES_CORENAMES').split() else 'MIT | Apache-2.0'}"
LIC_FILES_CHKSUM = "file://LICENSE;md5=c191f2ec6111e5e485ece64170db6c4d"

# What is built: the commit checked out in the portico clone this layer is a directory of
# (yocto-layer/), fetched with git from that clone, with the crates of that commit's
# Cargo.lock (portico-crates.inc, from the same commit). Check out a release tag or main
# and build: no revision is pinned here, so nothing can fall behind. Uncommitted changes
# are not built (see "externalsrc" in ../../README to build a working tree).
# PORTICO_GIT_URL may name another copy of the repository that has the commit.
# PORTICO_REPO_DIR is the clone: by default the one this layer is in, its real path, so
# that a layer reached through a symlink (sources/meta-portico -> .../portico/yocto-layer)
# finds it; local.conf can name another (a full clone this user can read).
PORTICO_LAYER_CLONE := "${@os.path.realpath(os.path.join(d.getVar('THISDIR'), '..', '..', '..'))}"
PORTICO_REPO_DIR ??= "${PORTICO_LAYER_CLONE}"
PORTICO_GIT_URL ??= "git://${PORTICO_REPO_DIR};protocol=file"

# "COMMIT VERSION" from ci/version.sh of the clone, read once per parse. The version is
# <Cargo.toml version>.<commits in the history>.g<hash>: it sorts by release, then by
# commit, with or without a PR server, and has no "+", so oe-core adds no AUTOINC to it.
# When the clone cannot tell (a layer copied out of its clone, a shallow clone such as
# kas's KAS_CLONE_DEPTH or repo --depth make, a clone owned by another user), this is
# "INVALID INVALID <why>" and the recipe is skipped with that reason (below), so that the
# rest of the build still parses and builds.
def portico_describe(d):
    import subprocess
    repo = d.getVar("PORTICO_REPO_DIR")
    script = os.path.join(repo, "ci", "version.sh")
    if not os.path.isfile(script):
        return "INVALID INVALID %s is not a clone of portico (no ci/version.sh)" % repo
    run = subprocess.run(["sh", script, repo], capture_output=True, text=True)
    if run.returncode or len(run.stdout.split()) != 2:
        return "INVALID INVALID %s" % (run.stderr.strip() or run.stdout.strip())
    return run.stdout.strip()
PORTICO_DESCRIBE := "${@portico_describe(d)}"

# Anonymous Python is the one place bitbake takes a SkipRecipe with its reason (raised in a
# := expansion, the reason is lost); it runs once per parse and starts only git:
# nooelint: oelint.task.noanonpython
python __anonymous() {
    import subprocess
    describe = d.getVar("PORTICO_DESCRIBE").split(None, 2)
    if describe[0] == "INVALID":
        raise bb.parse.SkipRecipe(
            "cannot tell which commit of portico to build: %s. The layer builds the commit "
            "checked out in the portico clone it is in; a copy of the layer outside its clone, "
            "a shallow clone or a clone owned by another user cannot tell it. Make it a full "
            "clone this user can read (git fetch --unshallow; git config --global --add "
            "safe.directory <clone>), or set PORTICO_REPO_DIR = \"/path/to/portico\" in "
            "local.conf to one." % describe[2])
    # bitbake's git fetcher clones the whole repository into DL_DIR once, then refreshes
    # that clone with refs/* only: a commit no branch or tag holds (one made on a detached
    # HEAD) is found by the first fetch and by no later one.
    repo = d.getVar("PORTICO_REPO_DIR")
    held = subprocess.run(["git", "-C", repo, "for-each-ref", "--count=1", "--contains", describe[0]],
                          capture_output=True, text=True)
    if held.returncode == 0 and not held.stdout.strip():
        bb.warn("portico: commit %s (checked out in %s) is on no branch or tag, and bitbake's "
                "git fetcher finds such a commit only when DL_DIR holds no clone of the "
                "repository yet. Give it a branch or a tag: git -C %s branch <name>"
                % (describe[0], repo, repo))
}

# Parse again on every run, so that a new checkout is what gets built (bitbake does the
# same for AUTOREV); a bitbake variable that oelint does not know:
# nooelint: oelint.vars.mispell.unknown
BB_DONT_CACHE = "1"

PV = "${@d.getVar('PORTICO_DESCRIBE').split()[1]}"
# nobranch: a release tag may be checked out, not only a branch head.
SRC_URI = "${PORTICO_GIT_URL};nobranch=1"
SRCREV = "${@d.getVar('PORTICO_DESCRIBE').split()[0]}"

# The crates of Cargo.lock; regenerate with `python3 ci/yocto-crates.py --write`
# (same output as `bitbake -c update_crates portico`).
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd features_check

# portico is started by socket activation (portico.socket); systemd.bbclass drops the
# units on a distro without systemd, where nothing would start it. Such a distro skips
# the recipe with this reason rather than building a package that never runs.
REQUIRED_DISTRO_FEATURES = "systemd"

# S is left at the default ${UNPACKDIR}/${BP}, where the git fetcher unpacks
# (BB_GIT_DEFAULT_DESTSUFFIX) on every release in LAYERSERIES_COMPAT; the workspace
# Cargo.toml and Cargo.lock are at the top of the tree, so CARGO_SRC_DIR stays "".

# The workspace's release profile strips the binary; bitbake strips it itself and keeps
# the debug symbols in portico-dbg, and fails the already-stripped QA check otherwise.
export CARGO_PROFILE_RELEASE_STRIP = "false"

# Same version in `portico --version` and /api/status as in the package (PV).
export PORTICO_VERSION = "${PV}"

# Which binary: portico's, or a team's own built on the portico library in a crate of this
# workspace (examples/hello-device is one). In local.conf or a bbappend:
#   PORTICO_CARGO_PACKAGE = "hello-device"
#   PORTICO_BINARY = "hello-device"
# The binary is installed as /usr/bin/portico, the one the units, the scriptlets and the
# updater know, with everything else unchanged: the library reads portico's config file,
# PORTICO_* and state directory whatever the binary is called.
PORTICO_CARGO_PACKAGE ??= "portico"
PORTICO_BINARY ??= "portico"
CARGO_BUILD_FLAGS:append = " --package ${PORTICO_CARGO_PACKAGE} --bin ${PORTICO_BINARY}"

# tls: HTTPS on port 443 (portico-https.socket) and the owner's login, which only ever
# travels over it; the cargo feature of that name, on by default as in Cargo.toml. Without
# it the binary is smaller (no rustls, no ring) and only port 80 is installed. Named as
# portico/tls, it is the library's feature whichever package is built; a team's crate that
# depends on portico with its default features (hello-device does, for its login) keeps
# tls without it, and only the units leave out 443.
# cargo.bbclass passes ${PACKAGECONFIG_CONFARGS} to cargo build itself (the chosen side
# of each option; cargo refuses --no-default-features given twice).
PACKAGECONFIG ??= "tls"
PACKAGECONFIG[tls] = "--features portico/tls,--no-default-features"
PORTICO_HTTPS_SOCKET = "${@bb.utils.contains('PACKAGECONFIG', 'tls', 'portico-https.socket', '', d)}"

do_install:append() {
    # cargo_do_install installed what cargo built; a team's binary runs as portico.
    if [ "${PORTICO_BINARY}" != portico ]; then
        mv ${D}${bindir}/${PORTICO_BINARY} ${D}${bindir}/portico
    fi
    install -d ${D}${systemd_system_unitdir} ${D}${systemd_user_unitdir}
    for unit in portico.socket portico.service ${PORTICO_HTTPS_SOCKET}; do
        install -m 0644 ${S}/systemd/$unit ${D}${systemd_system_unitdir}/
    done
    install -m 0644 ${S}/systemd/user/portico.socket ${S}/systemd/user/portico.service ${D}${systemd_user_unitdir}/
    # Keeps the user units off when the image build runs `systemctl --global preset-all`.
    install -D -m 0644 ${S}/systemd/user-preset/50-portico.preset ${D}${systemd_unitdir}/user-preset/50-portico.preset
    # rootfs-overlay/ is laid onto / as it is (today: /etc/portico/portico.toml).
    cp -R --no-preserve=ownership ${S}/rootfs-overlay/. ${D}/
}

FILES:${PN} += "${systemd_user_unitdir}"
# Everything the overlay puts under /etc is configuration the device owner may edit.
CONFFILES:${PN} = "${sysconfdir}"

# Enabling the sockets is enough: systemd starts portico.service on the first connection.
# systemd.bbclass packages portico.service along with the socket it names.
SYSTEMD_SERVICE:${PN} = "portico.socket ${PORTICO_HTTPS_SOCKET}"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# No useradd: portico.service uses DynamicUser=yes, so systemd allocates an unprivileged
# user for each run and no static account is needed in /etc/passwd.

# Zero-downtime upgrades: systemd.bbclass's own scriptlets restart every unit named in
# SYSTEMD_SERVICE, the socket too, which closes the listener, and its prerm stops and
# disables the units, which opkg also runs on an upgrade. They are replaced by the shared
# scriptlet of all portico packages, packaging/scriptlets/portico-maint.sh, taken from the
# source tree being packaged (so it is the one of SRCREV), pasted whole into each script
# with one call line, as that file describes. On an upgrade it restarts only
# portico.service; with $D set (image build) it only enables the sockets under $D.
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

# systemd.bbclass also writes a user preset, 98-portico.preset, "enable portico.socket",
# because a user unit of that name exists. 50-portico.preset (above) comes first and
# disables both user units, so that one would not count; it is removed all the same so
# that the package says one thing. The user units are opt-in:
# `systemctl --user enable portico.socket`.
# populate_packages runs after systemd_populate_packages has written the presets into PKGD.
python populate_packages:prepend() {
    preset = oe.path.join(d.getVar("PKGD"), d.getVar("systemd_unitdir"), "user-preset",
                          "98-%s.preset" % d.getVar("PN"))
    if os.path.exists(preset):
        os.remove(preset)
}

# The updater, its own package portico-update (see that file).
require portico-update.inc
