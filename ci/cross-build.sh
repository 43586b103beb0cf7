#!/usr/bin/env bash
# ci/cross-build.sh: release builds of portico for the device architectures on a Debian 12
# x86_64 machine, then a smoke test of each binary under qemu-user.
#
#   ci/cross-build.sh [--no-smoke] [TRIPLE...]
#     TRIPLE: aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf (the default pair),
#             x86_64-unknown-linux-gnu (a native build).
#     Output: target/<TRIPLE>/release/portico (default features, so with `tls`); for the
#     size budget also target/<TRIPLE>/release/portico-no-tls (--no-default-features), built
#     for the triples in $NO_TLS_TRIPLES. PORTICO_VERSION, if set, is baked in.
#
# rustup cannot add targets here, so the cross compiler is Debian's rustc-web with its
# multiarch standard library (libstd-rust-web-dev:<arch>), driven by Debian's cargo; the
# native build uses whatever `cargo` is on PATH. See ../shared/notes/toolchains.md.
# The smoke test hands each binary a listening socket through systemd-socket-activate, runs
# it with --require-activation (it refuses to start without a passed socket) as an
# unprivileged user, and wants HTTP 200 "ok" from /healthz and the expected version.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

smoke=1
triples=()
for arg in "$@"; do
    case $arg in
        --no-smoke) smoke=0 ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) die "unknown option $arg (see --help)" ;;
        *) triples+=("$arg") ;;
    esac
done
[ ${#triples[@]} -gt 0 ] || triples=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

# triple_info TRIPLE: sets DEBARCH (Debian architecture), GNU (cross gcc prefix; empty for a
# native build) and QEMU (qemu-user runner; empty for native).
triple_info() {
    case $1 in
        aarch64-unknown-linux-gnu) DEBARCH=arm64 GNU=aarch64-linux-gnu QEMU=qemu-aarch64-static ;;
        armv7-unknown-linux-gnueabihf) DEBARCH=armhf GNU=arm-linux-gnueabihf QEMU=qemu-arm-static ;;
        x86_64-unknown-linux-gnu) DEBARCH=amd64 GNU='' QEMU='' ;;
        *) die "unsupported target $1: use aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf or x86_64-unknown-linux-gnu" ;;
    esac
    if [ -z "$GNU" ] && [ "$(dpkg --print-architecture)" != "$DEBARCH" ]; then
        die "$1 builds natively only on an $DEBARCH host; this script cross-builds from amd64 to ARM"
    fi
}

# armhf_std: the armv7 standard library for Debian's rustc. The armhf indices of
# bookworm-security on the mirror have been seen broken (wrong size), which would make apt
# drop the whole suite if armhf were a configured architecture. So the package is fetched
# with a private apt configuration under target/ that touches nothing of the host's apt:
# the exact rustc-web version from bookworm-security if its index works, else trixie's build
# of the same upstream version (same rustc version string, so its std is compatible).
# Prints the sysroot to pass to rustc.
armhf_std() {
    local top=target/cross-sysroot/armv7-unknown-linux-gnueabihf want upstream apt_dir
    want=$(dpkg-query -W -f='${Version}' rustc-web)
    upstream=${want%-*}
    if [ "$(cat "$top/.version" 2>/dev/null)" = "$upstream" ]; then
        echo "$PWD/$top/usr"; return 0
    fi
    apt_dir=$PWD/target/cross-sysroot/apt-armhf
    rm -rf "$apt_dir" "$top"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$top"
    # The host's own mirrors, with trixie added beside bookworm.
    local main sec keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    main=$(repo_uri bookworm)
    sec=$(repo_uri bookworm-security)
    [ -n "$main" ] || die "no bookworm suite in the host's apt sources; add one (see /etc/apt/sources.list.d/)"
    {
        [ -z "$sec" ] || echo "deb [signed-by=$keyring] $sec bookworm-security main"
        echo "deb [signed-by=$keyring] $main trixie main"
    } >"$apt_dir/sources.list"
    local opts=(-o APT::Architecture=armhf -o APT::Architectures::=armhf
        -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
        -o Dir::State::status=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    # A broken index makes update exit non-zero; the other suite may still have the package.
    apt-get "${opts[@]}" -qq update >&2 || log "some armhf indices failed (known mirror fault); going on"
    local ver
    ver=$(apt-cache "${opts[@]}" madison libstd-rust-web-dev | awk -F' [|] ' -v w="$want" '$2 == w { print $2; exit }')
    [ -n "$ver" ] || ver=$(apt-cache "${opts[@]}" madison libstd-rust-web-dev |
        awk -F' [|] ' -v u="$upstream" 'index($2, u "-") == 1 { print $2; exit }')
    [ -n "$ver" ] || die "no libstd-rust-web-dev:armhf $upstream on the mirror (bookworm-security or trixie); \
install a matching one yourself into $top, or build armv7 elsewhere with cross"
    log "armv7 std: libstd-rust-web-dev:armhf $ver (rustc-web here: $want)"
    (cd "$apt_dir" && apt-get "${opts[@]}" -qq download "libstd-rust-web-dev:armhf=$ver") >&2
    dpkg-deb -x "$apt_dir"/libstd-rust-web-dev_*_armhf.deb "$top"
    rm -f "$apt_dir"/*.deb
    printf '%s' "$upstream" >"$top/.version"
    echo "$PWD/$top/usr"
}

# install_toolchain: what the requested triples need, idempotently.
install_toolchain() {
    local pkgs=(curl iproute2 systemd) t
    for t in "${triples[@]}"; do
        triple_info "$t"
        [ -n "$GNU" ] || continue
        pkgs+=(rustc-web cargo-web "gcc-$GNU" "libc6-dev-$DEBARCH-cross" qemu-user-static)
        if [ "$DEBARCH" = arm64 ]; then
            dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
            pkgs+=(libstd-rust-web-dev:arm64)
        fi
    done
    apt_install "${pkgs[@]}"
}

# build TRIPLE [CARGO_ARG...]: one release build; sets BIN and BUILD_S.
build() {
    local t=$1 start env=() upper
    shift
    triple_info "$t"
    upper=$(echo "$t" | tr 'a-z-' 'A-Z_')
    local cargo=cargo
    if [ -n "$GNU" ]; then
        # Debian's cargo + rustc: rustup's rustc cannot use Debian's std (E0514). The
        # linker ($GNU-gcc) is set in .cargo/config.toml.
        cargo=/usr/bin/cargo
        env+=(RUSTC=/usr/bin/rustc)
        if [ "$DEBARCH" = armhf ]; then
            local sysroot
            sysroot=$(armhf_std)
            env+=("CARGO_TARGET_${upper}_RUSTFLAGS=--sysroot=$sysroot")
        fi
    fi
    log "building $t $* (version ${PORTICO_VERSION:-from Cargo.toml})"
    start=$(now_s)
    env "${env[@]}" nice -n 10 "$cargo" build --release --locked --target "$t" -p portico "$@" ||
        die "cargo build for $t failed (see above)"
    BUILD_S=$(elapsed "$start")
    BIN=target/$t/release/portico
}

# smoke TRIPLE BIN: prints PASS/FAIL; returns non-zero on FAIL.
smoke() {
    local t=$1 bin=$2 port dir runner=() drop=() pid code body want_ver got_ver
    triple_info "$t"
    if [ -n "$QEMU" ]; then
        # The target's ld.so and libc must come from one build. With the multiarch libc6
        # installed (libstd-rust-web-dev:arm64 pulls it in), `-L /usr/$GNU` would pair the
        # cross ld.so with the multiarch libc.so.6 from /lib/$GNU, and the binary spins
        # forever in pthread_create; the host's own multiarch pair is consistent.
        runner=("$QEMU")
        [ -e "/usr/lib/$GNU/libc.so.6" ] || runner+=(-L "/usr/$GNU")
    fi
    dir=target/$t/smoke
    mkdir -p "$dir"
    # Never root, as on a device: systemd's DynamicUser there, nobody here. nobody may not
    # reach into the checkout (a clone under /root), so it runs a copy.
    local exe=$bin
    if [ "$(id -u)" -eq 0 ]; then
        drop=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
        exe=$(mktemp -d /tmp/portico-smoke.XXXXXX)/portico
        chmod 0755 "${exe%/*}"
        install -m 0755 "$bin" "$exe"
    fi
    port=$(free_port)
    # setpriv and qemu-user exec in place, so LISTEN_PID still names the binary's process.
    systemd-socket-activate -l "127.0.0.1:$port" "${drop[@]}" "${runner[@]}" "$(realpath "$exe")" \
        --require-activation >"$dir/log" 2>&1 &
    pid=$!
    # systemd-socket-activate binds in the background: connect once it listens, not before.
    for _ in $(seq 100); do
        ss -Htln "sport = :$port" | grep -q . && break
        sleep 0.1
    done
    rm -f "$dir/healthz"
    code=$(curl -s -o "$dir/healthz" -w '%{http_code}' --max-time 30 "http://127.0.0.1:$port/healthz" || true)
    body=$(cat "$dir/healthz" 2>/dev/null || true)
    got_ver=$(curl -s --max-time 10 "http://127.0.0.1:$port/api/status" |
        sed -n 's/.*"version" *: *"\([^"]*\)".*/\1/p' || true)
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ "$exe" = "$bin" ] || rm -rf "${exe%/*}"
    want_ver=${PORTICO_VERSION:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)}
    local what="$t under ${QEMU:-native}, socket from systemd-socket-activate"
    if [ "$code" = 200 ] && [ "$body" = ok ] && [ "$got_ver" = "$want_ver" ]; then
        echo "PASS smoke $what: /healthz 200 ok, version $got_ver"
    else
        echo "FAIL smoke $what: /healthz $code '$body', version '$got_ver' (want $want_ver); binary's log:"
        sed 's/^/    /' "$dir/log"
        return 1
    fi
}

# The size budgets (issue 12): 1 MiB without TLS, as before it, and 2 MiB with it.
# Figures, never a failure.
budget() { # LABEL BYTES MIB
    awk -v l="$1" -v b="$2" -v m="$3" 'BEGIN {
        printf "size: %s %d bytes = %.3f MiB, %.0f%% of the %d MiB budget (%s)\n",
            l, b, b / 1048576, 100 * b / (m * 1048576), m, b <= m * 1048576 ? "under" : "OVER" }'
}

# Without `tls` for the size budget: another release build, but the dependencies without
# TLS are the same crates with the same features, so it adds portico's own crate and the LTO
# link: about 21 s of CPU per target (measured on 2 cores; the build times printed below
# give the shared dependencies to whichever build comes first). It goes first so that
# target/<TRIPLE>/release/portico ends as the default build, the one the smoke test, the
# bench and the packages use.
NO_TLS_TRIPLES=${NO_TLS_TRIPLES-aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf}
total_start=$(now_s)
install_toolchain
declare -A bins sizes times
for t in "${triples[@]}"; do
    if [[ " $NO_TLS_TRIPLES " == *" $t "* ]]; then
        build "$t" --no-default-features
        cp "$BIN" "$BIN-no-tls"
        bins[$t/no-tls]=$BIN-no-tls times[$t/no-tls]=$BUILD_S sizes[$t/no-tls]=$(stat -c %s "$BIN")
    fi
    build "$t"
    bins[$t]=$BIN times[$t]=$BUILD_S sizes[$t]=$(stat -c %s "$BIN")
done

echo "--- cross builds (release, stripped)"
for t in "${triples[@]}"; do
    for v in "$t" "$t/no-tls"; do
        [ -n "${sizes[$v]:-}" ] || continue
        printf '%-39s %9d bytes  %7.1f KiB  build %6.1f s  %s\n' "$v" "${sizes[$v]}" \
            "$(awk -v b="${sizes[$v]}" 'BEGIN { print b / 1024 }')" "${times[$v]}" "${bins[$v]}"
    done
done
for t in "${triples[@]}"; do
    arch=${t%%-*}
    [ -z "${sizes[$t]:-}" ] || budget "$arch with tls" "${sizes[$t]}" 2
    [ -z "${sizes[$t/no-tls]:-}" ] || budget "$arch without tls" "${sizes[$t/no-tls]}" 1
done

if [ "$smoke" = 1 ]; then
    passed=0 failed=0
    for t in "${triples[@]}"; do
        if smoke "$t" "${bins[$t]}"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
    echo "cross-smoke: $passed passed, $failed failed"
fi
echo "cross-build.sh wall time: $(elapsed "$total_start") s"
[ "${failed:-0}" -eq 0 ]
