################################################################################
#
# portico
#
################################################################################

# Built from the commit checked out in the clone this external tree is a directory of,
# fetched with git rather than used as a local directory: Buildroot vendors the crates
# when it downloads the source, and the build runs offline. Check out a release tag or main
# and build: no revision is pinned here, so nothing can fall behind. ci/version.sh prints
# that commit and the version baked into the binary (/api/status), the same as the Yocto
# package's. A clone published elsewhere can point PORTICO_SITE at its URL. To build a
# working tree, see PORTICO_OVERRIDE_SRCDIR in the README.
PORTICO_DESCRIBE := $(shell sh $(BR2_EXTERNAL_PORTICO_PATH)/../ci/version.sh $(BR2_EXTERNAL_PORTICO_PATH)/.. 2>&1)
ifeq ($(BR2_PACKAGE_PORTICO),y)
ifneq ($(words $(PORTICO_DESCRIBE)),2)
$(error portico: $(PORTICO_DESCRIBE))
endif
endif
PORTICO_VERSION = $(word 1,$(PORTICO_DESCRIBE))
PORTICO_SITE = file://$(BR2_EXTERNAL_PORTICO_PATH)/..
PORTICO_SITE_METHOD = git
# The tarball of a commit (its tree and vendored crates) has no hash to pin in advance:
# the commit itself names the tree, and cargo checks every crate against Cargo.lock.
BR_NO_CHECK_HASH_FOR += $(PORTICO_SOURCE)
PORTICO_CARGO_ENV = PORTICO_VERSION=$(word 2,$(PORTICO_DESCRIBE))
PORTICO_LICENSE = MIT or Apache-2.0
PORTICO_LICENSE_FILES = LICENSE
# The crate is app/ in a Cargo workspace, or a team's crate on the portico library in the
# same workspace (BR2_PACKAGE_PORTICO_CRATE_DIR, e.g. examples/hello-device), whose binary
# (BR2_PACKAGE_PORTICO_BINARY) is installed as /usr/bin/portico: the units and S50portico
# run that, and the library reads portico's config file and state whatever its name.
PORTICO_SUBDIR = $(call qstrip,$(BR2_PACKAGE_PORTICO_CRATE_DIR))
PORTICO_BINARY = $(call qstrip,$(BR2_PACKAGE_PORTICO_BINARY))
# With PORTICO_OVERRIDE_SRCDIR, leave out the working tree's build output.
PORTICO_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude /target

# BR2_PACKAGE_PORTICO_TLS: HTTPS on port 443 and the owner's login (the cargo feature tls,
# on by default in Cargo.toml). cargo install builds again, so it gets the feature too.
# Named portico/tls, it is the library's whichever crate is built; a team's crate that
# depends on portico with its default features keeps tls without it (only the units and
# S50portico leave out 443).
# portico keeps its certificate and the login state in /var/lib/portico, the home of the
# user portico (mkusers creates it, owned by that user) under the init scripts, and in
# systemd's StateDirectory= under systemd.
ifeq ($(BR2_PACKAGE_PORTICO_TLS),y)
PORTICO_CARGO_FEATURES = --features portico/tls
PORTICO_HTTPS_SOCKET = portico-https.socket
PORTICO_HOME = /var/lib/portico
else
PORTICO_CARGO_FEATURES = --no-default-features
PORTICO_HTTPS_SOCKET =
PORTICO_HOME = -
endif
PORTICO_CARGO_BUILD_OPTS = $(PORTICO_CARGO_FEATURES)
PORTICO_CARGO_INSTALL_OPTS = $(PORTICO_CARGO_FEATURES)

# Everything under rootfs-overlay/ is laid onto / as it is (the config file, so far).
define PORTICO_INSTALL_ROOTFS_OVERLAY
	cp -dR --preserve=mode $(@D)/rootfs-overlay/. $(TARGET_DIR)/
endef
PORTICO_POST_INSTALL_TARGET_HOOKS += PORTICO_INSTALL_ROOTFS_OVERLAY

# cargo install put the team's binary under its own name.
ifneq ($(PORTICO_BINARY),portico)
define PORTICO_INSTALL_AS_PORTICO
	mv $(TARGET_DIR)/usr/bin/$(PORTICO_BINARY) $(TARGET_DIR)/usr/bin/portico
endef
PORTICO_POST_INSTALL_TARGET_HOOKS += PORTICO_INSTALL_AS_PORTICO
endif

define PORTICO_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 -t $(TARGET_DIR)/usr/lib/systemd/system \
		$(addprefix $(@D)/systemd/,portico.socket portico.service $(PORTICO_HTTPS_SOCKET))
	$(INSTALL) -D -m 0644 -t $(TARGET_DIR)/usr/lib/systemd/user \
		$(@D)/systemd/user/portico.socket $(@D)/systemd/user/portico.service
	$(INSTALL) -D -m 0644 $(@D)/systemd/user-preset/50-portico.preset \
		$(TARGET_DIR)/usr/lib/systemd/user-preset/50-portico.preset
	$(INSTALL) -D -m 0644 $(PORTICO_PKGDIR)/50-portico.preset \
		$(TARGET_DIR)/usr/lib/systemd/system-preset/50-portico.preset
	$(if $(PORTICO_HTTPS_SOCKET),echo 'enable $(PORTICO_HTTPS_SOCKET)' \
		>>$(TARGET_DIR)/usr/lib/systemd/system-preset/50-portico.preset)
endef

# S50portico listens on 443 too unless told PORTICO_TLS=no.
define PORTICO_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(PORTICO_PKGDIR)/S50portico \
		$(TARGET_DIR)/etc/init.d/S50portico
	$(if $(PORTICO_HTTPS_SOCKET),,sed -i 's/^PORTICO_TLS=yes$$/PORTICO_TLS=no/' \
		$(TARGET_DIR)/etc/init.d/S50portico)
endef

# systemd runs the service with DynamicUser=yes: a static user is only for the init
# scripts (and runit or daemontools), which start portico as root with --user portico.
ifneq ($(BR2_INIT_SYSTEMD),y)
define PORTICO_USERS
	portico -1 portico -1 * $(PORTICO_HOME) - - portico web server
endef
endif

$(eval $(cargo-package))
