#!/usr/bin/env bash
# ci/build-rpm.sh: the rpm package of portico as a Yocto build with package_rpm (poky's
# default) makes it, with rpmbuild from Debian's rpm package.
#
#   ci/build-rpm.sh --binary PATH --arch DEBARCH --version V [--out DIR]
#     The arguments of ci/build-deb.sh (DEBARCH: amd64, arm64 or armhf; DIR: target/deb by
#     default). Writes portico-V'-r0.ARCH.rpm to DIR, V' being V with '-' made '+' as
#     oe-core makes PKGV (rpm allows no '-' in a version), and prints its path.
#
# Its files are those of the .deb, by construction: it runs ci/build-deb.sh (the .deb stays
# in DIR beside the .rpm) and packages that package's data, less the Debian-only lintian
# overrides. The scriptlets are packaging/scriptlets/portico-maint.sh made into
# pkg_postinst, pkg_prerm and pkg_postrm as yocto-layer's recipe makes them (comment lines
# dropped, one call line), then written into the spec as oe-core's package_rpm.bbclass
# (write_specfile) writes them: %post as it is, %preun and %postun inside
# `if [ "$1" = "0" ]`, so that the old package's scripts do nothing on an upgrade. Files
# under /etc are %config (the recipe's CONFFILES), every directory is a %dir of the package.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

case ${1:-} in -h | --help) sed -n '2,17p' "$0"; exit 0 ;; esac
apt_install rpm
# ci/build-deb.sh checks the arguments; the .deb then says what they were.
deb=$(bash ci/build-deb.sh "$@" | tail -n1)
[ -f "$deb" ] || die "ci/build-deb.sh printed no .deb path ('$deb')"
out=$(realpath "$(dirname "$deb")") version=$(dpkg-deb -f "$deb" Version)
case $(dpkg-deb -f "$deb" Architecture) in
    amd64) rpmarch=x86_64 ;;
    arm64) rpmarch=aarch64 ;;
    armhf) rpmarch=armv7hl ;;
    *) die "no rpm architecture for $deb: add it to ci/build-rpm.sh" ;;
esac
work=$(mktemp -d "${TMPDIR:-/tmp}/portico-rpm.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
dpkg-deb -x "$deb" "$root"
rm -r "$root/usr/share/lintian"

# pkg_SCRIPT as yocto-layer/recipes-portico/portico/portico_*.bb sets it.
pkg_script() {
    printf '#!/bin/sh\n# %s of portico: packaging/scriptlets/portico-maint.sh and one call.\nset -e\n\n' "$1"
    grep -v '^[[:space:]]*#' packaging/scriptlets/portico-maint.sh
    printf '\nportico_maint %s "$@"\n' "$1"
}
# package_rpm.bbclass's wrap_uninstall: the body after the shebang line runs only on an
# erase ($1 = 0), never for the old package of an upgrade.
wrap_uninstall() {
    sed -e '1a if [ "$1" = "0" ] ; then' -e '$a fi'
}
# `%attr(MODE,root,root) [%dir|%config] "PATH"` for each directory and file, as
# write_specfile's walk_files lists them (the .deb's owner is root for all).
files_list() {
    (cd "$root" && find . -mindepth 1 -printf '%y %m %P\n' | sort -k3) | while read -r type mode path; do
        case $type/$path in
            d/*) echo "%attr($mode,root,root) %dir \"/$path\"" ;;
            f/etc/*) echo "%attr($mode,root,root) %config \"/$path\"" ;;
            f/*) echo "%attr($mode,root,root) \"/$path\"" ;;
            *) die "$path in the .deb is neither a file nor a directory: teach ci/build-rpm.sh about it" ;;
        esac
    done
}

maintainer=$(dpkg-deb -f "$deb" Maintainer)
rpmversion=${version//-/+}
spec=$work/portico.spec
{
    echo "Summary: socket-activated status page and JSON API for embedded devices"
    echo "Name: portico"
    echo "Version: $rpmversion"
    echo "Release: r0"
    echo "License: MIT OR Apache-2.0"
    echo "Group: web"
    echo "Packager: $maintainer"
    echo
    echo "%description"
    dpkg-deb -f "$deb" Description | sed '1d; s/^ //; s/^\.$//'
    echo
    echo "%post"; echo "# portico - postinst"; pkg_script postinst; echo
    echo "%preun"; echo "# portico - prerm"; pkg_script prerm | wrap_uninstall; echo
    echo "%postun"; echo "# portico - postrm"; pkg_script postrm | wrap_uninstall; echo
    echo "%files"
    echo "%defattr(-,-,-,-)"
    files_list
} >"$spec"
grep -q '%' <(sed -n '/^%post$/,/^%files$/p' "$spec" | grep -v '^%\(post\|preun\|postun\|files\)$') &&
    die "a scriptlet contains '%', which rpmbuild (and so oe-core) would expand as a macro: write it otherwise"

# The options of package_rpm.bbclass's do_package_rpm that apply outside bitbake; the
# buildroot is the staged tree, and nothing in it is changed (no strip, no build-id links).
rpmbuild --quiet --nodeps --short-circuit --target "$rpmarch-linux" --buildroot "$root" \
    --define "_topdir $work/top" --define "_rpmdir $out" --define "_tmppath $work" \
    --define '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm' \
    --define '_build_id_links none' --define 'debug_package %{nil}' \
    --define '__os_install_post %{nil}' --define '_buildhost reproducible' \
    --define "_binary_payload w9.xzdio" -bb "$spec" >"$work/rpmbuild.log" 2>&1 ||
    { cat "$work/rpmbuild.log" >&2; die "rpmbuild failed (above)"; }
rpm=$out/portico-$rpmversion-r0.$rpmarch.rpm
[ -f "$rpm" ] || die "rpmbuild wrote no $rpm: $(cat "$work/rpmbuild.log")"
log "built $rpm ($(stat -c %s "$rpm") bytes, from $(basename "$deb"))"
echo "$rpm"
