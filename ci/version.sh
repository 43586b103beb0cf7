#!/bin/sh
# ci/version.sh [DIR]: the commit checked out in the portico clone at DIR (default: the
# clone this script is in) and the version that everything built from it carries, printed
# as "COMMIT VERSION". The Yocto recipe and the Buildroot package build COMMIT and bake
# VERSION into the binary (PORTICO_VERSION, shown by /api/status and --version); the Yocto
# package has the same version.
#
# VERSION is <version in Cargo.toml>.<number of commits in the history>.g<commit, 10 hex>,
# e.g. 0.1.0.76.g71032c8d1e: every later commit of a branch has more commits behind it, so
# versions sort by release first, then by commit, in rpm, opkg and dpkg alike, with no PR
# server. It has no "+": oe-core appends its own "AUTOINC+<hash>" to a version with one.
# POSIX sh: bitbake and Buildroot run it on build hosts that may have no bash.
set -eu
dir=${1:-$(dirname "$0")/..}
fail() { echo "ci/version.sh: $*" >&2; exit 1; }
rev=$(git -C "$dir" rev-parse --verify -q HEAD) ||
    fail "$dir is not a git clone of portico with a commit checked out; the Yocto layer and the Buildroot package build the commit of the clone they are in"
[ "$(git -C "$dir" rev-parse --is-shallow-repository)" = false ] ||
    fail "$dir is a shallow clone: the version counts the commits of the history; run: git -C $dir fetch --unshallow"
count=$(git -C "$dir" rev-list --count HEAD)
# The committed Cargo.toml, as the commit is what gets built.
cargo=$(git -C "$dir" show HEAD:Cargo.toml |
    sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p')
[ -n "$cargo" ] || fail "no version under [workspace.package] in Cargo.toml at $rev"
echo "$rev $cargo.$count.g$(echo "$rev" | cut -c1-10)"
