# For ci/lint-buildroot.sh: runs the install steps of portico.mk (all but cargo's) outside
# Buildroot, with the variables Buildroot would give them stood in. Run it with
# `make -C <source tree> -f <this file> TARGET_DIR=<dir> INIT=systemd|sysv`: $(@D), the
# package's build directory, is then the source tree.
INSTALL = install
# The package's default configuration; BR2_PACKAGE_PORTICO_TLS= on the command line for the other.
BR2_PACKAGE_PORTICO_TLS ?= y
BR2_EXTERNAL_PORTICO_PATH := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../buildroot-external)
PORTICO_PKGDIR = $(BR2_EXTERNAL_PORTICO_PATH)/package/portico/
include $(BR2_EXTERNAL_PORTICO_PATH)/package/portico/portico.mk

install:
	$(PORTICO_INSTALL_ROOTFS_OVERLAY)
	$(if $(filter systemd,$(INIT)),$(PORTICO_INSTALL_INIT_SYSTEMD),$(PORTICO_INSTALL_INIT_SYSV))
# What portico.mk adds to the environment of cargo build and cargo install.
cargo-env:
	@echo $(PORTICO_CARGO_ENV)
.PHONY: install cargo-env
