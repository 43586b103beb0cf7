#!/usr/bin/env bash
# Builds portico with the oldest Rust it claims (rust-version in Cargo.toml): Debian
# trixie's rustc, in a trixie chroot made with mmdebstrap, against the crates of
# Cargo.lock vendored from the host (the chroot has no network). Yocto and Debian users
# build with such a distribution compiler, not with rustup's newest.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh
started=$(now_s)

[[ $(id -u) == 0 ]] || die "run as root (mmdebstrap --mode=root, chroot)"
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
[[ -n $msrv ]] || die "no rust-version in Cargo.toml"
apt_install mmdebstrap

work=$PWD/target/msrv
root=$work/trixie
if [[ ! -x $root/usr/bin/cargo ]]; then
    mirror=$(repo_uri bookworm)
    [[ -n $mirror ]] || die "no bookworm suite in the host's apt sources to find the Debian mirror by"
    rm -rf "$root"
    mkdir -p "$work"
    mmdebstrap --mode=root --variant=minbase --include=rustc,cargo,gcc,libc6-dev \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        trixie "$root" "deb $mirror trixie main" >&2
fi
compiler=$(chroot "$root" rustc --version)
[[ $compiler == "rustc $msrv"* ]] \
    || die "trixie's compiler is '$compiler', not $msrv: make rust-version and this check agree"

# The workspace as git has it, with the crates beside it.
rm -rf "$root/src"
mkdir -p "$root/src/.cargo"
git archive HEAD Cargo.toml Cargo.lock app examples rootfs-overlay README.md systemd | tar -x -C "$root/src"
cargo vendor --locked --versioned-dirs "$root/src/vendor" >/dev/null
printf '[source.crates-io]\nreplace-with = "vendored"\n[source.vendored]\ndirectory = "/src/vendor"\n' \
    >"$root/src/.cargo/config.toml"
chroot "$root" sh -c 'cd /src && cargo build --locked --offline --workspace --all-targets'
echo "msrv: portico and examples/hello-device build with $compiler (rust-version $msrv)"
echo "msrv.sh wall time: $(elapsed "$started") s"
