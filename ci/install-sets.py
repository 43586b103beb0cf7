#!/usr/bin/env python3
"""What each way of installing portico puts on a device, compared; run by ci/layer-builds.sh.

  ci/install-sets.py yocto-cargo-args [VAR=VALUE...]
      prints what the recipe adds to cargo.bbclass's `cargo build` (CARGO_BUILD_FLAGS:append
      and PACKAGECONFIG_CONFARGS of its default PACKAGECONFIG), with the recipe's ??=
      defaults or, as local.conf would set them, VAR=VALUE (PORTICO_CARGO_PACKAGE=...).
  ci/install-sets.py yocto-install S B D [VAR=VALUE...]
      runs the Yocto recipe's install as bitbake would: cargo.bbclass's cargo_do_install
      (every executable in ${B}/target/<triple>/release to ${bindir}), then the recipe's own
      do_install:append, in sh -e with umask 022 and the paths oe-core's bitbake.conf gives
      a usrmerge distro (systemd needs usrmerge). A ${VAR} it does not know fails.
  ci/install-sets.py compare NAME=DIR...
      lists each tree (path, mode, sha256) and fails with the differences. The binary is
      built differently for each (its content differs); everything else comes from the
      source tree and must be the same bytes with the same mode. The few files only one
      way installs are listed below with the reason; a NAME is deb, yocto or buildroot,
      or one of those, a colon and what was built (yocto:hello-device, a team's binary).
  ci/install-sets.py presets DIR
      does to a copy of DIR what oe-core does at rootfs time, after adding the presets
      systemd.bbclass writes into the package: `systemctl --preset-mode=enable-only
      preset-all`, plain and --global. Only portico.socket, (with the default
      PACKAGECONFIG, tls) portico-https.socket and the updater's three units (package
      portico-update) may end up enabled, and no user unit. Then once more without the user preset of the tree, which must enable the user
      units: the check can tell.
"""
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE_GLOB = "yocto-layer/recipes-portico/portico"
BINARY = "usr/bin/portico"

# oe-core meta/conf/bitbake.conf, usrmerge in DISTRO_FEATURES (checked with `bitbake -e
# portico` on whinlatter, wrynose and master).
OE_PATHS = {
    "prefix": "/usr",
    "exec_prefix": "/usr",
    "bindir": "/usr/bin",
    "sbindir": "/usr/sbin",
    "sysconfdir": "/etc",
    "nonarch_base_libdir": "/usr/lib",
    "nonarch_libdir": "/usr/lib",
    "systemd_unitdir": "/usr/lib/systemd",
    "systemd_system_unitdir": "/usr/lib/systemd/system",
    "systemd_user_unitdir": "/usr/lib/systemd/user",
}

# Files that only one way installs, and why. Anything else that differs fails.
ONLY_IN = {
    "deb": {
        "usr/share/doc/portico/copyright": "Debian policy: every package has one",
        "usr/share/doc/portico/changelog.gz": "Debian policy: every package has one",
        "usr/share/lintian/overrides/portico": "read by lintian only",
    },
    "buildroot": {
        "usr/lib/systemd/system-preset/50-portico.preset":
            "Buildroot has no package scripts: its preset-all enables portico.socket "
            "(the .deb's postinst and the preset systemd.bbclass writes at packaging do that)",
    },
    "yocto": {},
}
# Files every way installs but one, and why.
NOT_IN = {
    "buildroot": {
        p: "the updater needs a package manager, which a Buildroot image has not"
        for p in ("usr/sbin/portico-update", "etc/portico/update.conf",
                  "usr/lib/systemd/system/portico-update.service",
                  "usr/lib/systemd/system/portico-update.timer",
                  "usr/lib/systemd/system/portico-update.path")
    },
}
UPDATER_UNITS = ["portico-update.timer", "portico-update.path", "portico-update.service"]


def recipe():
    hits = [f for f in os.listdir(os.path.join(ROOT, RECIPE_GLOB)) if re.match(r"portico_.*\.bb$", f)]
    if len(hits) != 1:
        sys.exit(f"expected one portico_*.bb in {RECIPE_GLOB}, found {hits}")
    with open(os.path.join(ROOT, RECIPE_GLOB, hits[0])) as f:
        return f.read()


def https_socket():
    """PORTICO_HTTPS_SOCKET as the recipe sets it for its default PACKAGECONFIG (??=)."""
    m = re.search(r'^PACKAGECONFIG \?\?= "([^"]*)"', recipe(), re.M)
    if not m:
        sys.exit('no PACKAGECONFIG ??= "..." in the recipe')
    return "portico-https.socket" if "tls" in m.group(1).split() else ""


def expand(text, variables, what):
    def one(m):
        if m.group(1) not in variables:
            sys.exit(f"{what} uses ${{{m.group(1)}}}, which ci/install-sets.py does not set; "
                     "add its value as oe-core sets it (bitbake -e portico | grep ^NAME=)")
        return variables[m.group(1)]
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", one, text)


def includes():
    """The text of the .inc files the recipe requires (the updater's: portico-update.inc)."""
    return "".join(open(os.path.join(ROOT, RECIPE_GLOB, name)).read()
                   for name in re.findall(r"^require (portico-update\.inc)$", recipe(), re.M))


def recipe_defaults(overrides):
    """The recipe's plain `NAME ??= "value"` defaults, with local.conf's NAME=VALUE over them."""
    defaults = dict(re.findall(r'^([A-Z_]+) \?\?= "([^"$@]*)"$', recipe(), re.M))
    for item in overrides:
        name, value = item.split("=", 1)
        if name not in defaults:
            sys.exit(f"{name}: the recipe has no {name} ??= default to set")
        defaults[name] = value
    return defaults


def yocto_cargo_args(overrides):
    text = recipe()
    flags = re.findall(r'^CARGO_BUILD_FLAGS:append = "([^"]*)"$', text, re.M)
    tls = re.search(r'^PACKAGECONFIG\[tls\] = "([^",]*),([^",]*)"$', text, re.M)
    if not tls:
        sys.exit('no PACKAGECONFIG[tls] = "ENABLED,DISABLED" in the recipe')
    confargs = tls.group(1) if https_socket() else tls.group(2)
    return expand(" ".join(flags + [confargs]), recipe_defaults(overrides), "cargo's arguments").split()


def yocto_install(src, build, dest, overrides):
    text = recipe() + includes()
    bodies = re.findall(r"^do_install:append\(\) \{\n(.*?)^\}", text, re.M | re.S)
    if not bodies:
        sys.exit("no do_install:append() { ... } in the recipe")
    # The feed is the image maker's (PORTICO_FEED_URI ??= ""): none here, as by default.
    variables = dict(recipe_defaults(overrides), **OE_PATHS, S=src, B=build, D=dest,
                     PORTICO_HTTPS_SOCKET=https_socket(),
                     PORTICO_FEED_URI="", PORTICO_FEED_KEY="", IMAGE_PKGTYPE="rpm")
    # cargo.bbclass's cargo_do_install, for a binary crate (no libraries, no examples).
    release = os.path.join(build, "target", "aarch64-unknown-linux-gnu", "release")
    installed = 0
    for name in sorted(os.listdir(release)):
        path = os.path.join(release, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            os.makedirs(dest + OE_PATHS["bindir"], exist_ok=True)
            shutil.copy(path, dest + OE_PATHS["bindir"])
            os.chmod(os.path.join(dest + OE_PATHS["bindir"], name), 0o755)
            installed += 1
    if not installed:
        sys.exit(f"cargo_do_install would fail: no executable in {release}")
    body = expand("".join(bodies), variables, "do_install:append")
    run = subprocess.run(["sh", "-e", "-x", "-c", "umask 022\n" + body], cwd=build,
                         capture_output=True, text=True)
    if run.returncode:
        sys.exit(f"the recipe's do_install:append failed:\n{run.stderr}")


def listing(top):
    """{path: (mode, sha256 or None for the binary, or the link target)}."""
    out = {}
    for dirpath, _, files in os.walk(top):
        for name in files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, top)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
                continue
            digest = None
            if rel != BINARY:
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[rel] = (oct(stat.S_IMODE(st.st_mode)), digest)
    return out


def kind(name):
    """deb, yocto or buildroot, for a tree named so or e.g. yocto:hello-device."""
    return name.split(":")[0]


def compare(trees):
    lists = {name: listing(path) for name, path in trees.items()}
    problems = []
    for name, lst in lists.items():
        for path in ONLY_IN.get(kind(name), {}):
            if lst.pop(path, None) is None:
                problems.append(f"{path}: listed as installed by {kind(name)} only, but {name} does not install it")
        missing = NOT_IN.get(kind(name), {})
        for path in missing:
            if path in lst:
                problems.append(f"{path}: listed as not installed by {kind(name)} ({missing[path]}), but {name} installs it")
    # What is left, every tree installs the same, but where NOT_IN says it does not.
    for path in sorted(set().union(*lists.values())):
        have = {name: lst.get(path) for name, lst in lists.items()}
        due = [have[n] for n in lists if path not in NOT_IN.get(kind(n), {})]
        if None in due or len(set(due)) != 1:
            problems.append(path + ":\n" + "".join(
                f"    {n:24} {v[0] + ' ' + (v[1] or '(built)')[:16] if v else 'not installed'}\n"
                for n, v in have.items()))
    if problems:
        print("The ways of installing portico differ:\n" + "".join(problems), file=sys.stderr)
        return 1
    common = len(set().union(*lists.values())) - sum(len(v) for v in NOT_IN.values())
    print(f"PASS install sets: {', '.join(trees)} install the same {common} files "
          f"(path, mode, content; the binary by path and mode), "
          f"plus {', '.join(f'{n} {len(v)}' for n, v in ONLY_IN.items() if v)} of their own, "
          f"and {', '.join(f'{len(v)} not in {n}' for n, v in NOT_IN.items())} (the updater)")
    return 0


def enabled(root):
    return sorted(os.path.relpath(os.path.join(dp, f), root)
                  for dp, _, fs in os.walk(os.path.join(root, "etc", "systemd")) for f in fs
                  if "portico" in f)


def preset_all(tree, drop_user_preset=False):
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        shutil.copytree(tree, root, symlinks=True)
        # What systemd.bbclass adds at packaging for SYSTEMD_SERVICE = "portico.socket
        # ${PORTICO_HTTPS_SOCKET}", SYSTEMD_AUTO_ENABLE = "enable": a 98-<pkg>.preset for the
        # system units and, since user units of that name exist, one for the user units.
        # The updater's package, portico-update, gets its own preset for its three units.
        for kind, units in (("system", sockets() + UPDATER_UNITS), ("user", ["portico.socket"])):
            path = os.path.join(root, "usr/lib/systemd", f"{kind}-preset", "98-portico.preset")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a") as f:
                f.writelines(f"enable {unit}\n" for unit in units)
        if drop_user_preset:
            os.remove(os.path.join(root, "usr/lib/systemd/user-preset/50-portico.preset"))
        for extra in ([], ["--global"]):
            subprocess.run(["systemctl", f"--root={root}", *extra, "--preset-mode=enable-only",
                            "preset-all"], check=True, capture_output=True)
        return enabled(root)


def sockets():
    return ["portico.socket"] + ([https_socket()] if https_socket() else [])


def presets(tree):
    want = sorted([f"etc/systemd/system/sockets.target.wants/{unit}" for unit in sockets()]
                  + ["etc/systemd/system/timers.target.wants/portico-update.timer",
                     "etc/systemd/system/paths.target.wants/portico-update.path",
                     "etc/systemd/system/multi-user.target.wants/portico-update.service"])
    got = preset_all(tree)
    if got != want:
        print(f"FAIL presets: oe-core's rootfs preset-all enables {got}, want only {want}", file=sys.stderr)
        return 1
    control = preset_all(tree, drop_user_preset=True)
    if not any(p.startswith("etc/systemd/user/") for p in control):
        print(f"FAIL presets: without the user preset preset-all --global still enables no user "
              f"unit ({control}); this check cannot tell, look at systemctl's defaults", file=sys.stderr)
        return 1
    print(f"PASS presets: systemctl [--global] --preset-mode=enable-only preset-all enables only "
          f"{', '.join(want)}; without user-preset/50-portico.preset it would enable "
          f"{', '.join(p for p in control if '/user/' in p)}")
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "yocto-cargo-args":
        print(" ".join(yocto_cargo_args(argv[2:])))
        return 0
    if len(argv) >= 5 and argv[1] == "yocto-install":
        yocto_install(*argv[2:5], argv[5:])
        return 0
    if len(argv) >= 3 and argv[1] == "compare":
        return compare(dict(a.split("=", 1) for a in argv[2:]))
    if len(argv) == 3 and argv[1] == "presets":
        return presets(argv[2])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
