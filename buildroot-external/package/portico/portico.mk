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
# The crate is app/ in a Cargo workspace.
PORTICO_SUBDIR = app
# With PORTICO_OVERRIDE_SRCDIR, leave out the working tree's build output.
PORTICO_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude /target

# Everything under rootfs-overlay/ is laid onto / as it is (the config file, so far).
define PORTICO_INSTALL_ROOTFS_OVERLAY
	cp -dR --preserve=mode $(@D)/rootfs-overlay/. $(TARGET_DIR)/
endef
PORTICO_POST_INSTALL_TARGET_HOOKS += PORTICO_INSTALL_ROOTFS_OVERLAY

define PORTICO_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 -t $(TARGET_DIR)/usr/lib/systemd/system \
		$(@D)/systemd/portico.socket $(@D)/systemd/portico.service
	$(INSTALL) -D -m 0644 -t $(TARGET_DIR)/usr/lib/systemd/user \
		$(@D)/systemd/user/portico.socket $(@D)/systemd/user/portico.service
	$(INSTALL) -D -m 0644 $(@D)/systemd/user-preset/50-portico.preset \
		$(TARGET_DIR)/usr/lib/systemd/user-preset/50-portico.preset
	$(INSTALL) -D -m 0644 $(PORTICO_PKGDIR)/50-portico.preset \
		$(TARGET_DIR)/usr/lib/systemd/system-preset/50-portico.preset
endef

define PORTICO_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(PORTICO_PKGDIR)/S50portico \
		$(TARGET_DIR)/etc/init.d/S50portico
endef

# systemd runs the service with DynamicUser=yes: a static user is only for the init
# scripts (and runit or daemontools), which start portico as root with --user portico.
ifneq ($(BR2_INIT_SYSTEMD),y)
define PORTICO_USERS
	portico -1 portico -1 * - - - portico web server
endef
endif

$(eval $(cargo-package))
