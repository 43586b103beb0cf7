#!/usr/bin/env bash
# CI checks of buildroot-external/ that need no Buildroot checkout (CI cannot fetch one):
# a shellcheck of its scripts, the package's license hashes, what its install steps
# install, and a run of S50portico and of the runit/daemontools run script
# (ci/test-without-systemd.sh). ci/layer-builds.sh builds it as Buildroot would.
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
# The package builds the commit this tree is in (ci/version.sh): no pin to check, but
# the license files must hash as portico.hash says.
# shellcheck disable=SC2016 # make's $(...), not the shell's
grep -q '^PORTICO_VERSION = $(word 1,$(PORTICO_DESCRIBE))$' "$pkg/portico.mk" ||
    die "portico.mk pins PORTICO_VERSION: the package builds the commit it is in (ci/version.sh)"
read -ra licenses <<<"$(mk_value PORTICO_LICENSE_FILES)"
((${#licenses[@]})) || die "portico.mk lists no PORTICO_LICENSE_FILES"
for file in "${licenses[@]}"; do
    want=$(hash_of "$file")
    [[ -n $want ]] || die "$pkg/portico.hash has no sha256 for the license file $file"
    got=$(sha256sum "$file" | cut -d' ' -f1)
    [[ $got == "$want" ]] || die "$file has sha256 $got, portico.hash says $want"
done
log "license hashes match (${licenses[*]})"

# What portico.mk installs (cargo's /usr/bin/portico aside) from the committed tree, for
# each kind of init, and the socket enabled by the preset as Buildroot's systemd does.
apt_install make systemd
tree=$(mktemp -d /tmp/portico-br-install.XXXXXX)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/src"
git archive HEAD | tar -x -C "$tree/src"
overlay=$(git ls-tree -r --name-only HEAD rootfs-overlay/ | sed 's|^rootfs-overlay/||')
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
    usr/lib/systemd/{system,user}/portico.{socket,service} usr/lib/systemd/system/portico-https.socket \
    usr/lib/systemd/user-preset/50-portico.preset
# shellcheck disable=SC2086
expect_files "$tree/sysv" $overlay etc/init.d/S50portico
[[ -x $tree/sysv/etc/init.d/S50portico ]] || die "S50portico is installed without its x bit"
# Buildroot's systemd package runs `systemctl preset-all` (system units only).
systemctl --root="$tree/systemd" preset-all >/dev/null 2>&1
for socket in portico.socket portico-https.socket; do
    [[ -L $tree/systemd/etc/systemd/system/sockets.target.wants/$socket ]] ||
        die "the preset does not enable $socket"
done
[[ -z $(find "$tree/systemd/etc/systemd" -name 'portico.service' -o -path '*user*' -name 'portico.*') ]] ||
    die "the preset enables more than the sockets"
grep -q '^PORTICO_TLS=yes$' "$tree/sysv/etc/init.d/S50portico" || die "S50portico is installed without HTTPS"
# Without BR2_PACKAGE_PORTICO_TLS: no unit for 443, S50portico listens on 80 only.
make -s -C "$tree/src" -f "$PWD/ci/buildroot-install.mk" TARGET_DIR="$tree/notls" INIT=systemd \
    BR2_PACKAGE_PORTICO_TLS= install
make -s -C "$tree/src" -f "$PWD/ci/buildroot-install.mk" TARGET_DIR="$tree/notls" INIT=sysv \
    BR2_PACKAGE_PORTICO_TLS= install
[[ ! -e $tree/notls/usr/lib/systemd/system/portico-https.socket ]] &&
    ! grep -q https "$tree/notls/usr/lib/systemd/system-preset/50-portico.preset" &&
    grep -q '^PORTICO_TLS=no$' "$tree/notls/etc/init.d/S50portico" ||
    die "without BR2_PACKAGE_PORTICO_TLS the install steps still install HTTPS"
# A team's binary (BR2_PACKAGE_PORTICO_BINARY): cargo install puts it under its own name,
# the package's hook makes it /usr/bin/portico, and the rest is the same.
mkdir -p "$tree/team/usr/bin"
echo "hello-device's binary" >"$tree/team/usr/bin/hello-device"
make -s -C "$tree/src" -f "$PWD/ci/buildroot-install.mk" TARGET_DIR="$tree/team" INIT=systemd \
    BR2_PACKAGE_PORTICO_CRATE_DIR='"examples/hello-device"' BR2_PACKAGE_PORTICO_BINARY='"hello-device"' install
[[ $(cat "$tree/team/usr/bin/portico" 2>/dev/null) == "hello-device's binary" ]] ||
    die "with BR2_PACKAGE_PORTICO_BINARY=\"hello-device\", /usr/bin/portico is not hello-device"
rm "$tree/team/usr/bin/portico"
# shellcheck disable=SC2086
expect_files "$tree/team" $overlay usr/lib/systemd/system-preset/50-portico.preset \
    usr/lib/systemd/{system,user}/portico.{socket,service} usr/lib/systemd/system/portico-https.socket \
    usr/lib/systemd/user-preset/50-portico.preset
log "install steps: systemd (units, presets: both sockets enabled), sysv (S50portico), overlay ($overlay); without TLS: port 80 only; a team's binary as /usr/bin/portico"

bash ci/test-without-systemd.sh
log "lint-buildroot: OK in $(elapsed "$start") s"
