#!/usr/bin/env bash
# ci/layer-builds.sh: the Yocto recipe's and the Buildroot package's way of building and
# installing portico for aarch64, run without bitbake or Buildroot (CI cannot fetch them),
# each from its own vendored crates and with no other crate source, then a comparison of
# what the .deb, the recipe and the package install. Needs root (apt-get) and crates.io.
#
#  Yocto      the crates that portico-crates.inc lists, and no others, fetched as bitbake's
#             crate fetcher fetches them, sha256 checked against the .inc, unpacked where
#             it unpacks them (cargo_home/bitbake/<crate>-<version>, .cargo-checksum.json);
#             cargo_common.bbclass's config.toml; the recipe's exported variables; then
#             cargo.bbclass's `cargo build -v --frozen --target T --profile=release`, and
#             the recipe's install (ci/install-sets.py yocto-install).
#  Buildroot  the source tarball as support/download/git and cargo-post-process make it
#             (the commit's tree, `cargo vendor --locked VENDOR` written over .cargo/config.toml,
#             the same tar and gzip options), its sha256 against portico.hash if that pins
#             one; then, from the unpacked tarball with an empty CARGO_HOME, pkg-cargo.mk's
#             `cargo build --offline --release --locked` and `cargo install` with its
#             environment (default optimisation, no LTO) and portico.mk's, and portico.mk's
#             install steps (ci/buildroot-install.mk).
#  Both builds bake in the version of ci/version.sh, and both binaries must report it.
#  Each is done twice: for portico (the defaults), and for a team's binary, the example
#  crate selected as local.conf (PORTICO_CARGO_PACKAGE, PORTICO_BINARY) and a defconfig
#  (BR2_PACKAGE_PORTICO_CRATE_DIR, BR2_PACKAGE_PORTICO_BINARY) would, in the same target
#  directory; /usr/bin/portico must then be hello-device (its --help names --greeting).
#  Then ci/install-sets.py: the .deb of ci/build-deb.sh, the recipe's ${D} and Buildroot's
#  TARGET_DIR hold the same files, with either binary; and oe-core's rootfs preset-all
#  enables only the socket.
#
# The build source is the commit checked out (HEAD), which is what both layers build.
# Work files: target/layer-builds/; downloads are kept in /var/tmp/portico-ci/ across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

triple=aarch64-unknown-linux-gnu
work=$PWD/target/layer-builds
cache=/var/tmp/portico-ci
total=$(now_s)

dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
apt_install rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu \
    libc6-dev-arm64-cross qemu-user-static curl python3 systemd dpkg-dev make
# Debian's cargo and rustc: the only ones here with an aarch64 standard library.
cargo=/usr/bin/cargo
export RUSTC=/usr/bin/rustc
umask 022

if describe=$(sh ci/version.sh 2>&1); then
    read -r rev version <<<"$describe"
else
    # A shallow clone cannot count its commits; the builds are checked all the same.
    log "$describe"
    rev=$(git rev-parse HEAD) version=0.0.0.0.g$(git rev-parse --short=10 HEAD)
fi
log "building $rev as version $version"
rm -rf "$work"
mkdir -p "$work" "$cache/crates"

# run_logged LOG CMD...: runs CMD with its output in LOG, shown only when it fails.
run_logged() {
    local out=$1
    shift
    "$@" >"$out" 2>&1 || { tail -n 60 "$out" >&2; die "$* failed (log: $out)"; }
}

# reports_version BIN WHAT: the binary says the version both layers give it.
reports_version() {
    local got
    got=$(qemu-aarch64-static -L /usr/aarch64-linux-gnu "$1" --version 2>&1) || true
    [[ $got == *" $version" || $got == "$version" ]] ||
        die "the $2 binary reports '$got', not $version (PORTICO_VERSION was not passed to cargo)"
}

# is_binary BIN WHAT TEAM: the installed /usr/bin/portico is the team's hello-device (yes)
# or portico's (no): hello-device's --help lists its setting --greeting.
is_binary() {
    local help team=no
    help=$(qemu-aarch64-static -L /usr/aarch64-linux-gnu "$1" --help 2>&1) || die "$1 --help failed: $help"
    [[ $help != *"--greeting TEXT"* ]] || team=yes
    [[ $team == "$3" ]] || die "$2 installed the wrong binary as /usr/bin/portico (hello-device's: $team)"
}

# The team's selection: the example crate, as a team names its own.
team=(PORTICO_CARGO_PACKAGE=hello-device PORTICO_BINARY=hello-device)
br_team=(BR2_PACKAGE_PORTICO_CRATE_DIR='"examples/hello-device"' BR2_PACKAGE_PORTICO_BINARY='"hello-device"')

# --- Yocto ---------------------------------------------------------------------------
start=$(now_s)
y=$work/yocto unpack=$work/yocto/sources
S=$unpack/portico-$version B=$y/build D=$y/image
home=$unpack/cargo_home
mkdir -p "$S" "$B" "$home/bitbake"
git archive HEAD | tar -x -C "$S"
inc=$S/yocto-layer/recipes-portico/portico/portico-crates.inc
mapfile -t crates < <(sed -n 's|.*crate://crates.io/\([^/ ]*\)/\([^ \\"]*\).*|\1-\2 \1/\2|p' "$inc")
((${#crates[@]})) || die "no crate:// URL in portico-crates.inc"
# bitbake's crate fetcher (2.18 and later) takes crates.io's crates from this address.
for entry in "${crates[@]}"; do
    file=$cache/crates/${entry%% *}.crate
    [[ -s $file ]] || echo "url = \"https://static.crates.io/crates/${entry#* }/download\"
output = \"$file\""
done >"$y/curl.cfg"
if [[ -s $y/curl.cfg ]]; then
    curl --fail --no-progress-meter --location --parallel --parallel-max 8 --config "$y/curl.cfg" ||
        die "downloading crates from crates.io failed (see above)"
fi
for entry in "${crates[@]}"; do
    name=${entry%% *}
    want=$(sed -n "s/^SRC_URI\[$name\.sha256sum\] = \"\([0-9a-f]*\)\"/\1/p" "$inc")
    got=$(sha256sum "$cache/crates/$name.crate" | cut -d' ' -f1)
    [[ $got == "$want" ]] || { rm -f "$cache/crates/$name.crate"; die "$name.crate: sha256 $got, portico-crates.inc says '$want'"; }
    tar -xz --no-same-owner -f "$cache/crates/$name.crate" -C "$home/bitbake"
    printf '{"files": {}, "package": "%s"}' "$got" >"$home/bitbake/$name/.cargo-checksum.json"
done
# cargo_common_do_configure's config.toml, with Debian's target triple and linkers in
# place of oe-core's (aarch64-poky-linux and its gcc wrapper); no EXTRA_OECARGO_PATHS.
cat >"$home/config.toml" <<EOF
# EXTRA_OECARGO_PATHS
paths = [
]

# Local mirror vendored by bitbake
[source.bitbake]
directory = "$home/bitbake"

[source.crates-io]
replace-with = "bitbake"
local-registry = "/nonexistent"

[http]
# Multiplexing can't be enabled because http2 can't be enabled
# in curl-native without dependency loops
multiplexing = false

# Ignore the hard coded and incorrect path to certificates
cainfo = "/nonexistent/ssl/certs/ca-certificates.crt"

# HOST_SYS
[target.$triple]
linker = "aarch64-linux-gnu-gcc"

# BUILD_SYS
[target.x86_64-unknown-linux-gnu]
linker = "gcc"

[build]
# Use out of tree build destination to avoid polluting the source tree
target-dir = "$B/target"

[term]
progress.when = 'always'
progress.width = 80
EOF
# The recipe's `export NAME = "value"` lines, expanded the way bitbake would here.
recipe_env=()
while IFS= read -r line; do
    value=${line#*= \"}
    value=${value%\"}
    # shellcheck disable=SC2016 # bitbake's ${PV}, not the shell's
    value=${value//'${PV}'/$version}
    # shellcheck disable=SC2016
    [[ $value != *'${'* ]] || die "the recipe exports ${line%% =*} = \"$value\": add that variable to ci/layer-builds.sh"
    recipe_env+=("${line%% =*}=$value")
done < <(sed -n 's/^export \([A-Z_]*\) = /\1 = /p' "$S"/yocto-layer/recipes-portico/portico/portico_*.bb)
log "Yocto: ${#crates[@]} crates from portico-crates.inc, sha256 checked; recipe exports: ${recipe_env[*]}"
# cargo.bbclass's do_compile: in ${B}, CARGO_HOME from cargo_common, RUSTFLAGS from
# rust-common (the remapping; the sysroot -L does not apply to Debian's std), and what the
# recipe adds to the command (the package, the binary, PACKAGECONFIG's features).
# yocto_build DEST [VAR=VALUE...]: built and installed into DEST with local.conf's VARs.
yocto_build() {
    local dest=$1 args bin
    shift
    read -ra args <<<"$(python3 ci/install-sets.py yocto-cargo-args "$@")"
    (cd "$B" && run_logged "$y/build.log" env CARGO_HOME="$home" RUST_BACKTRACE=1 \
        RUSTFLAGS="--remap-path-prefix=$y=/usr/src/debug/portico/$version" \
        CC=aarch64-linux-gnu-gcc PKG_CONFIG_ALLOW_CROSS=1 "${recipe_env[@]}" \
        nice -n 10 "$cargo" build -v --frozen --target "$triple" --profile=release \
        --manifest-path="$S/Cargo.toml" "${args[@]}")
    python3 ci/install-sets.py yocto-install "$S" "$B" "$dest" "$@"
    bin=$dest/usr/bin/portico
    reports_version "$bin" Yocto-style
    is_binary "$bin" "Yocto-style ($*)" "$([[ $* == *hello-device* ]] && echo yes || echo no)"
    log "Yocto-style: ${args[*]}: /usr/bin/portico $(stat -c %s "$bin") bytes"
}
yocto_build "$D"
yocto_s=$(elapsed "$start")
start=$(now_s)
yocto_build "$y/image-team" "${team[@]}"
yocto_team_s=$(elapsed "$start")
log "Yocto-style build and install: $yocto_s s; the team's binary then $yocto_team_s s"

# --- Buildroot -----------------------------------------------------------------------
start=$(now_s)
br=$work/buildroot
base=portico-$rev
dl=$br/dl-tmp/$base
mkdir -p "$dl" "$br/empty-cargo-home" "$cache/br-cargo-home"
git archive HEAD | tar -x -C "$dl"
# support/download/git packs the tree with the commit's date, cargo-post-process keeps it.
date=$(date -d "$(git log -1 --format=%ci HEAD)" -u +%Y-%m-%dT%H:%M:%S+00:00)
# pkg-cargo.mk vendors for the package's Cargo.toml (PORTICO_SUBDIR): the workspace's
# crates, the same for any package of it, so the team's build takes this tarball too.
read -r subdir <<<"$(make -s -C "$dl" -f "$PWD/ci/buildroot-install.mk" cargo-dir)"
(cd "$dl" && mkdir -p .cargo && CARGO_HOME=$cache/br-cargo-home \
    "$cargo" vendor --manifest-path "$subdir/Cargo.toml" --locked VENDOR >.cargo/config.toml 2>"$br/vendor.log") ||
    { cat "$br/vendor.log" >&2; die "cargo vendor failed"; }
# support/download/helpers' mk_tar_gz: files only, sorted, owner 0, fixed mtime, POSIX
# format without atime/ctime/mtime records, modes go=u,go-w, gzip -6 -n.
tarball=$br/$base-git4-cargo6.tar.gz
(cd "$dl" && find . -not -type d | LC_ALL=C sort >"$br/files" &&
    tar cf - --transform="s#^\./#$base/#S" --numeric-owner --owner=0 --group=0 --mtime="$date" \
        --format=posix --pax-option="delete=atime,delete=ctime,delete=mtime,exthdr.name=%d/PaxHeaders/%f,exthdr.mtime={$date}" \
        --mode='go=u,go-w' -T "$br/files" | gzip -6 -n >"$tarball")
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
pinned=$(awk -v f="${tarball##*/}" '$1 == "sha256" && $3 == f { print $2 }' buildroot-external/package/portico/portico.hash)
if [[ -n $pinned ]]; then
    [[ $pinned == "$sum" ]] || die "${tarball##*/}: sha256 $sum, portico.hash pins $pinned"
    log "Buildroot: ${tarball##*/} matches portico.hash"
else
    log "Buildroot: ${tarball##*/} sha256 $sum, $(stat -c %s "$tarball") bytes (portico.hash pins no tarball: the package builds the commit checked out)"
fi
src=$br/build/$base
mkdir -p "$src"
tar -xzf "$tarball" -C "$src" --strip-components=1
read -ra pkg_env <<<"$(make -s -C "$src" -f "$PWD/ci/buildroot-install.mk" cargo-env)"
upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
# pkg-cargo.mk's PKG_CARGO_ENV for a default configuration (BR2_OPTIMIZE_2, no LTO, no
# debug), with an empty CARGO_HOME: nothing but VENDOR/ can provide a crate.
cargo_env=(CARGO_HOME="$br/empty-cargo-home" __CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS=nightly
    CARGO_UNSTABLE_HOST_CONFIG=true CARGO_UNSTABLE_TARGET_APPLIES_TO_HOST=true
    CARGO_TARGET_APPLIES_TO_HOST=false CARGO_BUILD_TARGET="$triple" CARGO_HOST_RUSTFLAGS=
    "CARGO_TARGET_${upper}_LINKER=aarch64-linux-gnu-gcc"
    CARGO_PROFILE_RELEASE_INCREMENTAL=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    CARGO_PROFILE_RELEASE_SPLIT_DEBUGINFO=off CARGO_PROFILE_RELEASE_OPT_LEVEL=2
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_DEBUG=0
    CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=false CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=false
    CC=aarch64-linux-gnu-gcc "${pkg_env[@]}")
# br_build TARGET_DIR [BR2_...=VALUE...]: pkg-cargo.mk's build and install in the package's
# directory, with portico.mk's options, then portico.mk's install steps.
br_build() {
    local target_dir=$1 dir build_opts install_opts bin
    shift
    mk() { make -s -C "$src" -f "$PWD/ci/buildroot-install.mk" "$@"; }
    dir=$(mk "$@" cargo-dir)
    read -ra build_opts <<<"$(mk "$@" cargo-build-opts)"
    read -ra install_opts <<<"$(mk "$@" cargo-install-opts)"
    (cd "$src/$dir" && run_logged "$br/build.log" env "${cargo_env[@]}" nice -n 10 "$cargo" build \
        --offline --release --manifest-path Cargo.toml --locked "${build_opts[@]}")
    (cd "$src/$dir" && run_logged "$br/install.log" env "${cargo_env[@]}" "$cargo" install \
        --offline --root "$target_dir/usr/" --bins --path ./ --no-track --force --locked -Z target-applies-to-host \
        "${install_opts[@]}")
    mk "$@" TARGET_DIR="$target_dir" INIT=systemd install
    bin=$target_dir/usr/bin/portico
    reports_version "$bin" Buildroot-style
    is_binary "$bin" "Buildroot-style ($*)" "$([[ $* == *hello-device* ]] && echo yes || echo no)"
    log "Buildroot-style: $dir ${build_opts[*]}: /usr/bin/portico $(stat -c %s "$bin") bytes"
}
target_dir=$br/target
br_build "$target_dir"
br_s=$(elapsed "$start")
start=$(now_s)
br_build "$br/target-team" "${br_team[@]}"
br_team_s=$(elapsed "$start")
log "Buildroot-style download, build and install: $br_s s; the team's binary then $br_team_s s"

# --- what each installs ----------------------------------------------------------------
deb=$(bash ci/build-deb.sh --binary "$B/target/$triple/release/portico" --arch arm64 \
    --version "$version" --out "$work/deb")
dpkg-deb -x "$deb" "$work/deb/root"
python3 ci/install-sets.py compare deb="$work/deb/root" yocto="$D" buildroot="$target_dir" \
    yocto:hello-device="$y/image-team" buildroot:hello-device="$br/target-team"
python3 ci/install-sets.py presets "$D"
printf 'layer builds: Yocto-style %s s (+%s s hello-device), Buildroot-style %s s (+%s s hello-device), total %s s; binaries %s (Yocto), %s (Buildroot) bytes\n' \
    "$yocto_s" "$yocto_team_s" "$br_s" "$br_team_s" "$(elapsed "$total")" "$(stat -c %s "$D/usr/bin/portico")" \
    "$(stat -c %s "$target_dir/usr/bin/portico")"
