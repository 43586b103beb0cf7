#!/usr/bin/env bash
# ci/feed.sh: a signed package feed of portico, for devices to update themselves from
# (packaging/portico-update), made from built packages with a key it is given.
#
#   ci/feed.sh key DIR [NAME]             a throwaway signing key (tests): GnuPG home DIR,
#                                         no passphrase; prints its fingerprint and writes
#                                         the public key as DIR/feed.gpg and DIR/feed.asc
#   ci/feed.sh apt|rpm|ipk --key FPR --out DIR PKG...
#                                         the feed in DIR (made afresh) with PKG... in it
#
# The key is used from GNUPGHOME (a device maker's own, kept offline; gpg-agent asks for
# its passphrase). What a device trusts is the public key only (feed.gpg/feed.asc), put
# into the image beside the feed's address (README "Updates in the field"):
#   apt  dists/portico/{InRelease,Release,Release.gpg} signed, the packages in pool/; the
#        device's deb822 .sources file names the key with Signed-By= (never trusted=yes).
#        Made with apt-ftparchive: a Packages index (its SHA256 of each .deb is what makes
#        a package altered after signing fail) and a Release with the indexes' hashes.
#   rpm  each package rpmsign'ed, then createrepo_c, then repodata/repomd.xml.asc; the
#        device's .repo file has gpgcheck=1 and repo_gpgcheck=1.
#   ipk  Packages (with each package's SHA256sum), Packages.gz, and the detached
#        signatures opkg's check_signature looks for, as oe-core's sign_package_feed makes
#        them: Packages.sig (binary, opkg's signature_type gpg) and Packages.asc (armored,
#        gpg-asc).
# Every signature is checked with gpgv against the public key before the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

usage() { die "usage: ci/feed.sh key DIR [NAME] | ci/feed.sh apt|rpm|ipk --key FPR --out DIR PKG... (see --help)"; }

# make_key DIR NAME: see the header. RSA: rpm 4.18's own OpenPGP parser and opkg's gpgme
# both take it, which not every rpm does for Ed25519.
make_key() {
    local home=$1 name=${2:-portico feed (test key)}
    apt_install gnupg
    mkdir -p "$home"; chmod 700 "$home"
    GNUPGHOME=$home gpg -q --batch --pinentry-mode loopback --passphrase '' \
        --quick-gen-key "$name" rsa3072 sign never 2>/dev/null
    local fpr
    fpr=$(GNUPGHOME=$home gpg --batch --with-colons --list-secret-keys "$name" 2>/dev/null | awk -F: '$1 == "fpr" {print $10; exit}')
    GNUPGHOME=$home gpg -q --batch --export "$fpr" >"$home/feed.gpg" 2>/dev/null
    GNUPGHOME=$home gpg -q --batch --armor --export "$fpr" >"$home/feed.asc" 2>/dev/null
    GNUPGHOME=$home gpgconf --kill gpg-agent 2>/dev/null || true
    echo "$fpr"
}

# sign_detached FILE OUT [--armor]: a detached signature of FILE by $key.
sign_detached() {
    gpg -q --batch --yes --local-user "$key" --detach-sign "${@:3}" --output "$2" "$1"
}

# check_sig SIG [FILE]: gpgv with the public key alone, as a device has it.
check_sig() {
    gpgv --keyring "$pubring" "$@" 2>/dev/null || die "the signature $1 does not verify with key $key"
}

feed_apt() {
    apt_install apt-utils xz-utils
    local dist=$out/dists/portico p arch archs=()
    mkdir -p "$out/pool/main"
    for p in "${pkgs[@]}"; do
        arch=$(dpkg-deb -f "$p" Architecture) || die "$p is not a .deb"
        cp "$p" "$out/pool/main/"
        [[ " ${archs[*]} " == *" $arch "* ]] || archs+=("$arch")
    done
    for arch in "${archs[@]}"; do
        mkdir -p "$dist/main/binary-$arch"
        (cd "$out" && apt-ftparchive --arch "$arch" packages pool) >"$dist/main/binary-$arch/Packages"
        xz -k9 "$dist/main/binary-$arch/Packages"
    done
    (cd "$dist" && apt-ftparchive -o APT::FTPArchive::Release::Origin=portico \
        -o APT::FTPArchive::Release::Suite=portico -o APT::FTPArchive::Release::Codename=portico \
        -o APT::FTPArchive::Release::Components=main \
        -o "APT::FTPArchive::Release::Architectures=${archs[*]}" release .) >"$out/Release.tmp"
    mv "$out/Release.tmp" "$dist/Release"
    gpg -q --batch --yes --local-user "$key" --clearsign --output "$dist/InRelease" "$dist/Release"
    sign_detached "$dist/Release" "$dist/Release.gpg"
    check_sig "$dist/InRelease"
    check_sig "$dist/Release.gpg" "$dist/Release"
}

feed_rpm() {
    apt_install rpm createrepo-c
    local p
    for p in "${pkgs[@]}"; do cp "$p" "$out/"; done
    # rpmsign runs gpg itself, with the home and key named here.
    rpmsign --define "_gpg_name $key" --define "_gpg_path ${GNUPGHOME:-$HOME/.gnupg}" --define "__gpg $(command -v gpg)" \
        --addsign "$out"/*.rpm >/dev/null
    local db
    db=$(mktemp -d); rpmkeys --dbpath "$db" --import "$pubasc"
    for p in "$out"/*.rpm; do
        rpmkeys --dbpath "$db" --checksig "$p" | grep -q ': digests signatures OK$' \
            || { rm -rf "$db"; die "rpmsign left $p without a signature rpm verifies"; }
    done
    rm -rf "$db"
    createrepo_c -q "$out"
    sign_detached "$out/repodata/repomd.xml" "$out/repodata/repomd.xml.asc" --armor
    check_sig "$out/repodata/repomd.xml.asc" "$out/repodata/repomd.xml"
}

feed_ipk() {
    apt_install binutils zstd
    local p f
    for p in "${pkgs[@]}"; do
        f=$out/${p##*/}
        cp "$p" "$f"
        # The control file (control.tar.zst or .gz, as the ipk has it), then what
        # opkg-make-index adds: where the package is, its size and its hash.
        local ctl
        ctl=$(ar t "$f" | grep '^control\.tar') || die "$p is not an ipk (no control.tar.* in it)"
        (cd "$scratch" && ar x "$f" "$ctl") && tar -xOf "$scratch/$ctl" ./control
        rm -f "${scratch:?}/$ctl"
        printf 'Filename: %s\nSize: %s\nSHA256sum: %s\n\n' "${f##*/}" "$(stat -c %s "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"
    done >"$out/Packages"
    gzip -9nk "$out/Packages"
    sign_detached "$out/Packages" "$out/Packages.sig"
    sign_detached "$out/Packages" "$out/Packages.asc" --armor
    check_sig "$out/Packages.sig" "$out/Packages"
    check_sig "$out/Packages.asc" "$out/Packages"
}

case ${1:-} in
    key) [[ -n ${2:-} ]] || usage; make_key "$2" "${3:-}"; exit 0 ;;
    apt | rpm | ipk) format=$1; shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) usage ;;
esac
key='' out=''
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --key) key=${2:?--key needs a fingerprint}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
pkgs=("$@")
[[ -n $key && -n $out && ${#pkgs[@]} -gt 0 ]] || usage
for p in "${pkgs[@]}"; do [[ -f $p ]] || die "$p: no such package"; done
apt_install gnupg
gpg --batch --list-secret-keys "$key" >/dev/null 2>&1 \
    || die "no secret key $key in ${GNUPGHOME:-~/.gnupg}: set GNUPGHOME, or make one with ci/feed.sh key DIR"
out=$(realpath -m "$out")
rm -rf "$out"; mkdir -p "$out"
scratch=$(mktemp -d)
# The agent gpg started goes with the run (it starts again when needed).
trap 'rm -rf "$scratch"; gpgconf --kill gpg-agent 2>/dev/null || true' EXIT
pubring=$scratch/pub.gpg pubasc=$scratch/pub.asc
gpg -q --batch --export "$key" >"$pubring"
gpg -q --batch --armor --export "$key" >"$pubasc"
"feed_$format"
log "signed $format feed of ${#pkgs[@]} package(s) in $out (key $key)"
