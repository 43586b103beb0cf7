#!/usr/bin/env bash
# ci/build-oe-package.sh: the rpm or ipk package of portico as a Yocto build makes it
# (package_rpm, poky's default, or package_ipk), outside bitbake.
#
#   ci/build-oe-package.sh rpm|ipk --binary PATH --arch DEBARCH --version V [--out DIR]
#     After the format, the arguments of ci/build-deb.sh (DEBARCH: amd64, arm64 or armhf;
#     DIR: target/deb by default). Writes to DIR portico-V'-r0.ARCH.rpm (V' is V with '-'
#     made '+', as oe-core makes the rpm version: rpm allows no '-' in one) or
#     portico_V-r0_ARCH.ipk, ARCH being x86_64, aarch64 or armv7hl, and prints its path.
#     rpm needs rpmbuild (Debian's rpm package, installed here); ipk needs only ar and tar.
#
# Its files are those of the .deb, by construction: it runs ci/build-deb.sh (the .deb stays
# in DIR) and packages that package's data, less the Debian-only lintian overrides. Files
# under /etc are configuration (the recipe's CONFFILES). The scriptlets are
# packaging/scriptlets/portico-maint.sh made into pkg_postinst, pkg_prerm and pkg_postrm as
# yocto-layer's recipe makes them (comment lines dropped, one call line), then:
# - rpm, as package_rpm.bbclass's write_specfile writes them: %post as it is, %preun and
#   %postun inside `if [ "$1" = "0" ]` (so the old package's run only on an erase), every
#   directory a %dir of the package, built with do_package_rpm's rpmbuild options.
# - ipk, as package_ipk.bbclass's do_package_ipk writes them: CONTROL/postinst, prerm and
#   postrm as they are, CONTROL/conffiles, then what opkg-build -Z zstd makes of it (an ar
#   archive of debian-binary, control.tar.zst and data.tar.zst, owned by root).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

case ${1:-} in
    rpm | ipk) format=$1; shift ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) die "usage: ci/build-oe-package.sh rpm|ipk --binary PATH --arch DEBARCH --version V [--out DIR]" ;;
esac
if [ "$format" = rpm ]; then apt_install rpm; else apt_install binutils zstd; fi
# ci/build-deb.sh checks the arguments; the .deb then says what they were.
deb=$(bash ci/build-deb.sh "$@" | tail -n1)
[ -f "$deb" ] || die "ci/build-deb.sh printed no .deb path ('$deb')"
out=$(realpath "$(dirname "$deb")") version=$(dpkg-deb -f "$deb" Version)
case $(dpkg-deb -f "$deb" Architecture) in
    amd64) pkgarch=x86_64 ;;
    arm64) pkgarch=aarch64 ;;
    armhf) pkgarch=armv7hl ;;
    *) die "no package architecture for $deb: add it to ci/build-oe-package.sh" ;;
esac
work=$(mktemp -d "${TMPDIR:-/tmp}/portico-oe.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
dpkg-deb -x "$deb" "$root"
rm -r "$root/usr/share/lintian"
maintainer=$(dpkg-deb -f "$deb" Maintainer)
summary=$(dpkg-deb -f "$deb" Description | sed -n 1p)
description() { dpkg-deb -f "$deb" Description | sed '1d; s/^ //; s/^\.$//'; } # the body, unindented
license="MIT OR Apache-2.0"

# pkg_SCRIPT as yocto-layer/recipes-portico/portico/portico_*.bb sets it.
pkg_script() {
    printf '#!/bin/sh\n# %s of portico: packaging/scriptlets/portico-maint.sh and one call.\nset -e\n\n' "$1"
    grep -v '^[[:space:]]*#' packaging/scriptlets/portico-maint.sh
    printf '\nportico_maint %s "$@"\n' "$1"
}

build_rpm() {
    # package_rpm.bbclass's wrap_uninstall: the body after the shebang line runs only on an
    # erase ($1 = 0), never for the old package of an upgrade.
    wrap_uninstall() { sed -e '1a if [ "$1" = "0" ] ; then' -e '$a fi'; }
    # `%attr(MODE,root,root) [%dir|%config] "PATH"` for each directory and file, as
    # write_specfile's walk_files lists them.
    files_list() {
        (cd "$root" && find . -mindepth 1 -printf '%y %m %P\n' | sort -k3) | while read -r type mode path; do
            case $type/$path in
                d/*) echo "%attr($mode,root,root) %dir \"/$path\"" ;;
                f/etc/*) echo "%attr($mode,root,root) %config \"/$path\"" ;;
                f/*) echo "%attr($mode,root,root) \"/$path\"" ;;
                *) die "$path in the .deb is neither a file nor a directory: teach ci/build-oe-package.sh about it" ;;
            esac
        done
    }
    local rpmversion=${version//-/+} spec=$work/portico.spec rpm
    {
        echo "Summary: $summary"
        echo "Name: portico"
        echo "Version: $rpmversion"
        echo "Release: r0"
        echo "License: $license"
        echo "Group: web"
        echo "Packager: $maintainer"
        echo
        echo "%description"
        description
        echo
        echo "%post"; echo "# portico - postinst"; pkg_script postinst; echo
        echo "%preun"; echo "# portico - prerm"; pkg_script prerm | wrap_uninstall; echo
        echo "%postun"; echo "# portico - postrm"; pkg_script postrm | wrap_uninstall; echo
        echo "%files"
        echo "%defattr(-,-,-,-)"
        files_list
    } >"$spec"
    if sed -n '/^%post$/,/^%files$/p' "$spec" | grep -v '^%\(post\|preun\|postun\|files\)$' | grep -q '%'; then
        die "a scriptlet contains '%', which rpmbuild (and so oe-core) would expand as a macro: write it otherwise"
    fi
    # do_package_rpm's options that apply outside bitbake; the buildroot is the staged tree,
    # and nothing in it is changed (no strip, no build-id links). Not --short-circuit: with
    # it Debian's rpmbuild adds "Requires: rpmlib(ShortCircuited)", which rpm provides to no
    # package, so dnf cannot install the package (oe-core's rpm is patched not to add it);
    # the spec has no %prep, %build or %install to skip.
    rpmbuild --quiet --nodeps --target "$pkgarch-linux" --buildroot "$root" \
        --define "_topdir $work/top" --define "_rpmdir $out" --define "_tmppath $work" \
        --define '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm' \
        --define '_build_id_links none' --define 'debug_package %{nil}' \
        --define '__os_install_post %{nil}' --define '_buildhost reproducible' \
        --define "_binary_payload w9.xzdio" -bb "$spec" >"$work/rpmbuild.log" 2>&1 ||
        { cat "$work/rpmbuild.log" >&2; die "rpmbuild failed (above)"; }
    rpm=$out/portico-$rpmversion-r0.$pkgarch.rpm
    [ -f "$rpm" ] || die "rpmbuild wrote no $rpm: $(cat "$work/rpmbuild.log")"
    PKG=$rpm
}

build_ipk() {
    local control=$work/CONTROL ipk=$out/portico_$version-r0_$pkgarch.ipk s
    mkdir "$control"
    {
        echo "Package: portico"
        echo "Version: $version-r0"
        echo "Description: $summary"
        description | sed 's/^/ /; s/^ $/ ./'
        echo "Section: web"
        echo "Priority: optional"
        echo "Maintainer: $maintainer"
        echo "License: $license"
        echo "Architecture: $pkgarch"
        echo "OE: portico"
        echo "Depends: $(dpkg-deb -f "$deb" Depends)"
        echo "Source: portico_${version%%-*}.bb"
    } >"$control/control"
    for s in postinst prerm postrm; do
        pkg_script "$s" >"$control/$s"
        chmod 0755 "$control/$s"
    done
    (cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$control/conffiles"
    # opkg-build's tarballs: ./-relative, sorted, root-owned.
    local tar=(tar --sort=name --owner=0 --group=0 --numeric-owner --format=gnu --zstd)
    (cd "$control" && "${tar[@]}" -cf "$work/control.tar.zst" .)
    (cd "$root" && "${tar[@]}" -cf "$work/data.tar.zst" .)
    echo 2.0 >"$work/debian-binary"
    rm -f "$ipk"
    (cd "$work" && ar -cr "$ipk" debian-binary control.tar.zst data.tar.zst)
    PKG=$ipk
}

"build_$format"
log "built $PKG ($(stat -c %s "$PKG") bytes, from $(basename "$deb"))"
echo "$PKG"
