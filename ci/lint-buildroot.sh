#!/usr/bin/env bash
# CI checks of buildroot-external/ that need no Buildroot checkout (CI cannot fetch one):
# a shellcheck of its scripts, the package's pin and hashes against this repository, and
# a run of S50portico and of the runit/daemontools run script (ci/test-without-systemd.sh).
# What needs Buildroot itself (the defconfig, `make portico-show-info`,
# `utils/check-package -b`) is run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh
start=$(now_s)
pkg=buildroot-external/package/portico

# The scripts in ci/ are ci/lint.sh's to check.
apt_install shellcheck
shellcheck "$pkg/S50portico" buildroot-external/board/*/*.sh docs/service/portico/run
log "shellcheck: OK"

mk_value() { sed -n "s/^$1 = //p" "$pkg/portico.mk"; }
hash_of() { awk -v f="$1" '$1 == "sha256" && $3 == f { print $2 }' "$pkg/portico.hash"; }
rev=$(mk_value PORTICO_VERSION)
tarball="portico-$rev-git4-cargo6.tar.gz"
[[ -n $(hash_of "$tarball") ]] ||
    die "$pkg/portico.hash has no sha256 for $tarball: after changing PORTICO_VERSION, compute it (README, Buildroot section)"

# The package builds the pinned commit, so the crate, its license files and what
# portico.mk installs must be in that commit. A shallow clone may lack it: then only say so.
if [[ $(git rev-parse --is-shallow-repository) == true ]] && ! git cat-file -e "$rev^{commit}" 2>/dev/null; then
    log "shallow clone without $rev: pin and license checks skipped"
else
    git cat-file -e "$rev^{commit}" 2>/dev/null || die "PORTICO_VERSION $rev is not a commit of this repository"
    # (What it installs is checked below, by installing it.)
    for path in app/Cargo.toml Cargo.lock; do
        git cat-file -e "$rev:$path" 2>/dev/null || die "$path, which portico.mk builds, is not in $rev"
    done
    read -ra licenses <<<"$(mk_value PORTICO_LICENSE_FILES)"
    ((${#licenses[@]})) || die "portico.mk lists no PORTICO_LICENSE_FILES"
    for file in "${licenses[@]}"; do
        want=$(hash_of "$file")
        [[ -n $want ]] || die "$pkg/portico.hash has no sha256 for the license file $file"
        got=$(git show "$rev:$file" | sha256sum | cut -d' ' -f1)
        [[ $got == "$want" ]] || die "$file at $rev has sha256 $got, portico.hash says $want"
    done
    log "pin $rev: crate present, license hashes match (${licenses[*]})"

    # What portico.mk installs (cargo's /usr/bin/portico aside) from the pinned tree, for
    # each kind of init, and the socket enabled by the preset as Buildroot's systemd does.
    apt_install make systemd
    tree=$(mktemp -d /tmp/portico-br-install.XXXXXX)
    trap 'rm -rf "$tree"' EXIT
    mkdir "$tree/src"
    git archive "$rev" | tar -x -C "$tree/src"
    overlay=$(git ls-tree -r --name-only "$rev" rootfs-overlay/ | sed 's|^rootfs-overlay/||')
    for init in systemd sysv; do
        make -s -C "$tree/src" -f "$PWD/ci/buildroot-install.mk" TARGET_DIR="$tree/$init" INIT=$init install
    done
    expect_files() { # DIR FILE...: exactly these files under DIR
        local got want
        got=$(cd "$1" && find . -type f | sed 's|^\./||' | sort)
        want=$(printf '%s\n' "${@:2}" | sort)
        [[ $got == "$want" ]] || die "portico.mk installs into $1:"$'\n'"$got"$'\n'"expected:"$'\n'"$want"
    }
    # shellcheck disable=SC2086 # one overlay path a line, none with spaces
    expect_files "$tree/systemd" $overlay usr/lib/systemd/system-preset/50-portico.preset \
        usr/lib/systemd/{system,user}/portico.{socket,service}
    # shellcheck disable=SC2086
    expect_files "$tree/sysv" $overlay etc/init.d/S50portico
    [[ -x $tree/sysv/etc/init.d/S50portico ]] || die "S50portico is installed without its x bit"
    systemctl --root="$tree/systemd" preset-all >/dev/null 2>&1
    [[ -L $tree/systemd/etc/systemd/system/sockets.target.wants/portico.socket ]] ||
        die "the preset does not enable portico.socket"
    [[ -z $(find "$tree/systemd/etc/systemd" -name 'portico.service' -o -path '*user*' -name 'portico.*') ]] ||
        die "the preset enables more than portico.socket"
    log "install steps: systemd (units, preset enables portico.socket), sysv (S50portico), overlay ($overlay)"
fi

bash ci/test-without-systemd.sh
log "lint-buildroot: OK in $(elapsed "$start") s"
