# portico-maint.sh: what every package of portico does to systemd when it is installed,
# upgraded, removed or purged: written once, for dpkg, rpm and opkg alike. POSIX sh.
# shellcheck shell=sh
#
# Not a script to install: package builds paste this file whole into each maintainer script
# and append ONE call line, so that it is there even in postrm, after portico's files are
# gone. ci/build-deb.sh does that for the .deb; a Yocto recipe does it at packaging time
# for ipk, rpm and deb (read the file from ${S} and set pkg_postinst/pkg_prerm/pkg_postrm).
#
# The call line passes the script's own name and arguments through:
#   portico_maint postinst "$@"     portico_maint prerm "$@"     portico_maint postrm "$@"
# How each package manager calls the scripts, and what that means here:
#   dpkg  postinst configure ''          -> install   postinst configure OLDVER -> upgrade
#         (or install, after a remove: dpkg passes the removed version when conffiles remain)
#         postinst abort-remove          -> install (a failed removal had disabled the socket)
#         postinst abort-upgrade|abort-deconfigure -> upgrade
#         prerm remove                   -> remove    prerm upgrade|deconfigure|failed-upgrade -> nothing
#         postrm remove                  -> removed   postrm purge -> purge   others -> nothing
#   rpm   %post 1 -> install, %post 2+ -> upgrade; %preun 0 -> remove, 1+ -> nothing (the new
#         package is already in: an upgrade); %postun 0 -> removed, 1+ -> nothing.
#         rpm has no purge: an erase leaves modified conffiles as .rpmsave, like any package.
#   opkg  the new postinst gets only "configure", for an install and an upgrade alike: an
#         upgrade is told by the marker of portico.socket (below), or, from a package older
#         than the markers, by portico.socket being enabled already (opkg's old prerm was
#         called with "upgrade NEWVER", which does nothing here, so it still is);
#         prerm remove -> remove, prerm upgrade -> nothing; postrm remove -> removed,
#         postrm purge -> purge, postrm upgrade -> nothing.
#
# What each step does, and why:
#   install  enable the sockets (WantedBy=sockets.target) and start them: portico.socket
#            (port 80) and, where the package has it (built with TLS), portico-https.socket
#            (443). portico.service is started by the first connection, so not here.
#            Each socket enabled is recorded (the markers, below).
#   upgrade  daemon-reload (the unit files may have changed); reset-failed the units and
#            start the enabled sockets if portico.socket is enabled: a no-op when they
#            listen, and it revives a socket that an older package's units left failed (a
#            service that hit its start limit takes the socket down with it), so installing
#            a fixed package is enough to bring the ports back. An admin who disabled
#            portico.socket meant it: then nothing is started. portico-https.socket is
#            enabled only when no marker says it was enabled before: that is the upgrade
#            from a package without it. An admin's `systemctl disable --now
#            portico-https.socket` (443 off) therefore holds across upgrades, as Debian's
#            deb-systemd-helper keeps a disable; a mask holds too. Then
#            try-restart portico.service: systemd, PID 1, keeps holding the listening
#            sockets, so connections queue in the kernel while the new binary starts and
#            none is refused. A socket is never stopped or restarted on an upgrade
#            (oe-core's systemd class would restart it, which closes the listener); so a
#            changed socket unit (say, ListenStream=) takes effect at the next boot, or at
#            a `systemctl restart` of it when dropping connections is acceptable.
#   remove   stop and disable the sockets and portico.service (the unit files are still
#            there, which disable needs), and a global enable of the user units. The
#            markers stay (rpm's erase is the same step): an install enables anyway. One
#            more says the package was removed: dpkg configures a reinstall after a remove
#            (not purge) as an upgrade from the version removed, which would enable nothing
#            (the sockets are disabled now); with that marker it is an install.
#   removed  daemon-reload, so systemd forgets the units whose files are gone.
#   The updater (where the package has it: portico-update.timer, .path and .service, see
#   packaging/portico-update): install enables the three (the service for its run at boot)
#   and starts the timer and the path unit; the first upgrade to a package that has them
#   does the same, once (its marker): after that an admin's disable holds. An upgrade
#   starts the enabled timer and path unit and never stops or restarts the service: it
#   may be the updater's own run that installs this package. remove stops the timer and
#   the path unit and disables the three; purge also deletes /var/lib/portico-update.
#   purge    remove what systemd may have left for the service (DynamicUser state, cache
#            and log directories) and the markers, so that a new install starts afresh;
#            /etc/portico goes with the conffile, by the package manager.
# The markers: one empty file per socket the package enabled (or found enabled on an
# upgrade, which covers packages from before them), $root/var/lib/portico-maint/UNIT.enabled,
# and .../removed (see remove).
# They are the package's own bookkeeping, like /var/lib/systemd/deb-systemd-helper-enabled,
# kept out of /var/lib/portico: that is portico.service's StateDirectory, which systemd and
# the service own (with DynamicUser= a link into /var/lib/private that systemd manages).
# rpm and opkg do not tell the version upgraded from, so "seen before" must be written down.
# The first upgrade to a package with markers cannot tell a portico-https.socket the admin
# disabled from one an older package never had: it enables it that once.
# With $D (Yocto building an image) or $DPKG_ROOT set, only the offline part is done
# (enable/disable under that root); nothing is started in the build host. Where systemd is
# not PID 1 (a chroot, an image build, another init) units are not started or stopped either.

# Runs systemctl, and says so; a failure is reported but does not fail the package step:
# a half-configured package is worse for a device than a unit that needs a look.
portico_systemctl() {
    echo "portico: systemctl $*"
    systemctl "$@" || echo "portico: 'systemctl $*' failed; see 'systemctl status portico.socket'" >&2
}

# Whether the unit file $1 is installed. Looks under $root, as systemctl --root would.
portico_has_unit() {
    for dir in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
        if [ -e "$root$dir/$1" ]; then
            return 0
        fi
    done
    return 1
}

# Sets $sockets: portico.socket, and portico-https.socket where the package installed it
# (a build without TLS has no unit for 443).
portico_sockets() {
    sockets=portico.socket
    if portico_has_unit portico-https.socket; then
        sockets="portico.socket portico-https.socket"
    fi
}

# Sets $updater: the updater's units where the package installed them, else nothing.
portico_updater() {
    updater=''
    if portico_has_unit portico-update.timer; then
        updater="portico-update.timer portico-update.path portico-update.service"
    fi
}

# Starts the updater's timer and path unit where they are enabled (an admin's disable holds).
portico_updater_start() {
    for unit in portico-update.timer portico-update.path; do
        if systemctl is-enabled --quiet "$unit"; then
            portico_systemctl start "$unit"
        fi
    done
}

# Records that the package enabled the sockets named (see the markers, above). touch, not a
# redirection: a failed redirection of a builtin would end the whole script under sh.
portico_mark() {
    mkdir -p "$marks" && for unit; do touch "$marks/$unit.enabled"; done ||
        echo "portico: could not record the enabled sockets in $marks; an upgrade may enable portico-https.socket again" >&2
}

# Upgrade: enables portico-https.socket when the package has it, it is neither enabled nor
# masked, and no marker says it was enabled before: an upgrade from a package without it.
# Only where portico.socket is enabled (an admin who disabled that wants portico off).
# Prints the sockets to start: the enabled ones; a socket the admin disabled stays stopped.
portico_upgrade_sockets() {
    systemctl ${root:+"--root=$root"} is-enabled --quiet portico.socket || return 0
    portico_mark portico.socket
    if [ "$sockets" = portico.socket ]; then
        echo portico.socket
        return 0
    fi
    state=$(systemctl ${root:+"--root=$root"} is-enabled portico-https.socket 2>/dev/null) || true
    case $state in
        enabled | enabled-runtime) ;;
        masked | masked-runtime)
            echo portico.socket
            return 0
            ;;
        *)
            if [ -e "$marks/portico-https.socket.enabled" ]; then
                echo portico.socket # enabled before: the admin disabled it since
                return 0
            fi
            portico_systemctl ${root:+"--root=$root"} enable portico-https.socket >&2
            ;;
    esac
    portico_mark portico-https.socket
    echo "$sockets"
}

portico_step() {
    step=$1
    if [ "$step" = upgrade ] && [ -e "$marks/removed" ]; then
        step=install # dpkg reinstalling after a remove
    fi
    if ! command -v systemctl >/dev/null 2>&1; then
        return 0 # no systemd on this system: nothing of this applies
    fi
    live=false
    if [ -z "$root" ] && [ -d /run/systemd/system ]; then
        live=true
    fi
    portico_sockets
    portico_updater
    # $sockets is split into unit names on purpose, here and below.
    # shellcheck disable=SC2086
    case $step in
        install)
            if [ -n "$root" ]; then
                portico_systemctl --root="$root" enable $sockets $updater
            else
                portico_systemctl enable $sockets $updater
                if $live; then
                    portico_systemctl daemon-reload
                    portico_systemctl start $sockets
                    if [ -n "$updater" ]; then
                        portico_updater_start
                    fi
                fi
            fi
            portico_mark $sockets
            if [ -n "$updater" ]; then
                portico_mark portico-update.timer
            fi
            rm -f "$marks/removed"
            ;;
        upgrade)
            if $live; then
                portico_systemctl daemon-reload
                portico_systemctl reset-failed $sockets portico.service
                start=$(portico_upgrade_sockets)
                if [ -n "$start" ]; then
                    portico_systemctl start $start
                fi
                portico_systemctl try-restart portico.service
            elif [ -n "$root" ]; then
                portico_upgrade_sockets >/dev/null
            fi
            if [ -n "$updater" ] && [ ! -e "$marks/portico-update.timer.enabled" ]; then
                portico_systemctl ${root:+"--root=$root"} enable $updater
                portico_mark portico-update.timer
            fi
            if [ -n "$updater" ] && $live; then
                portico_updater_start
            fi
            ;;
        remove)
            if $live; then
                portico_systemctl stop $sockets portico.service
                if [ -n "$updater" ]; then
                    portico_systemctl stop portico-update.timer portico-update.path
                fi
            fi
            if [ -n "$root" ]; then
                portico_systemctl --root="$root" disable $sockets portico.service $updater
            else
                portico_systemctl disable $sockets portico.service $updater
                systemctl --global disable portico.socket portico.service >/dev/null 2>&1 || true
            fi
            mkdir -p "$marks" && touch "$marks/removed" ||
                echo "portico: could not write $marks/removed; after a reinstall, enable the sockets by hand" >&2
            ;;
        removed)
            if $live; then
                portico_systemctl daemon-reload
            fi
            ;;
        purge)
            for d in lib cache log; do
                rm -rf "$root/var/$d/portico" "$root/var/$d/private/portico"
            done
            rm -rf "$marks" "$root/var/lib/portico-update"
            ;;
        nothing) ;;
        *)
            echo "portico_step: unknown step '$step'" >&2
            return 1
            ;;
    esac
}

# portico_maint SCRIPT ARGS...: SCRIPT is postinst, prerm or postrm; ARGS are what the
# package manager passed to it (see the table above).
portico_maint() {
    script=$1
    shift
    action=${1:-}
    root=${D:-${DPKG_ROOT:-}}
    marks=$root/var/lib/portico-maint
    step=nothing
    case $script:$action in
        postinst:configure)
            if [ -n "${2:-}" ]; then
                step=upgrade # dpkg names the version configured before
            elif [ -z "${DPKG_MAINTSCRIPT_PACKAGE:-}" ] && [ -z "$root" ] &&
                { [ -e "$marks/portico.socket.enabled" ] || systemctl is-enabled portico.socket >/dev/null 2>&1; }; then
                step=upgrade # opkg: it says "configure" for both; installed before if marked (or enabled)
            else
                step=install
            fi
            ;;
        postinst:abort-remove) step=install ;;
        postinst:abort-*) step=upgrade ;;
        postinst:[0-9]*) if [ "$action" -ge 2 ]; then step=upgrade; else step=install; fi ;;
        prerm:remove) step=remove ;;
        prerm:[0-9]*) if [ "$action" -eq 0 ]; then step=remove; fi ;;
        postrm:remove) step=removed ;;
        postrm:purge) step=purge ;;
        postrm:[0-9]*) if [ "$action" -eq 0 ]; then step=removed; fi ;;
        postinst:* | prerm:* | postrm:*) ;;
        *)
            echo "portico_maint: unknown script '$script' (want postinst, prerm or postrm)" >&2
            return 1
            ;;
    esac
    portico_step "$step"
}
