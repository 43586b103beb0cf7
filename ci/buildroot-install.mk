# For ci/lint-buildroot.sh: runs the install steps of portico.mk (all but cargo's) outside
# Buildroot, with the variables Buildroot would give them stood in. Run it with
# `make -C <source tree> -f <this file> TARGET_DIR=<dir> INIT=systemd|sysv`: $(@D), the
# package's build directory, is then the source tree.
INSTALL = install
# The package's default configuration; BR2_PACKAGE_PORTICO_TLS= on the command line for the other,
# BR2_PACKAGE_PORTICO_CRATE_DIR='"examples/hello-device"' BR2_PACKAGE_PORTICO_BINARY='"hello-device"'
# for a team's binary.
BR2_PACKAGE_PORTICO_TLS ?= y
BR2_PACKAGE_PORTICO_CRATE_DIR ?= "app"
BR2_PACKAGE_PORTICO_BINARY ?= "portico"
# Buildroot's, from support/misc/utils.mk.
qstrip = $(strip $(subst ",,$(1)))
BR2_EXTERNAL_PORTICO_PATH := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../buildroot-external)
PORTICO_PKGDIR = $(BR2_EXTERNAL_PORTICO_PATH)/package/portico/
include $(BR2_EXTERNAL_PORTICO_PATH)/package/portico/portico.mk

# In pkg-generic.mk's order, after cargo install: the init files, then the package's hooks
# (the overlay; a team's binary renamed, which needs that binary in TARGET_DIR).
define newline


endef
install:
	$(if $(filter systemd,$(INIT)),$(PORTICO_INSTALL_INIT_SYSTEMD),$(PORTICO_INSTALL_INIT_SYSV))
	$(foreach hook,$(PORTICO_POST_INSTALL_TARGET_HOOKS),$($(hook))$(newline))
# What portico.mk adds to the environment of cargo build and cargo install.
cargo-env:
	@echo $(PORTICO_CARGO_ENV)
# Where pkg-cargo.mk runs cargo build and cargo install (the package's directory), and
# their options.
cargo-dir:
	@echo $(PORTICO_SUBDIR)
cargo-build-opts:
	@echo $(PORTICO_CARGO_BUILD_OPTS)
cargo-install-opts:
	@echo $(PORTICO_CARGO_INSTALL_OPTS)
.PHONY: install cargo-env cargo-dir cargo-build-opts cargo-install-opts
