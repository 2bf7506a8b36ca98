# pifork as a systemd service (systemd/pifork.service): install, deploy to a
# Pi over ssh, a .deb, checks of the unit and a whole-system test on an
# emulated Pi 4. Included by the top-level Makefile.
#
#   make install [PREFIX=/usr/local] [DESTDIR=]   binary + unit (ExecStart fixed up)
#   make uninstall [PREFIX=/usr/local] [DESTDIR=]
#   make deploy HOST=user@host [SSH_PORT=22] [SSH_OPTS=...] [DEPLOY_PREFIX=/usr/local]
#                        aarch64 build, checked on the target, installed with the
#                        man page, (re)started; rolled back if it does not start
#   make deb             .deb for arm64 (cargo-deb; needs [package.metadata.deb]
#                        and debian/: changelog, postrm, lintian overrides)
#   make lint-deb        lintian on that .deb: no error or warning without an
#                        override that says why
#   make verify-unit     systemd-analyze verify + offline security score + the
#                        system calls pifork makes against @system-service
#   make test-system     emulated Pi 4 with Debian and systemd: deploy the service
#                        for real and check it (ci/test-system.sh)

# This fragment must not change the including Makefile's default goal.
SERVICE_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
# systemd reads /usr/local/lib/systemd/system as well as /usr/lib/systemd/system;
# for any other PREFIX pass UNITDIR=/etc/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
UNIT    := systemd/pifork.service
# What `make install` installs: the host's static release build, unless told otherwise
# (INSTALL_BIN=target/aarch64-unknown-linux-musl/release/pifork for a Pi image).
INSTALL_BIN ?= $(RELEASE)

HOST          ?=
SSH_PORT      ?= 22
SSH_OPTS      ?=
DEPLOY_PREFIX ?= $(PREFIX)
# Upper bound in seconds for each ssh/scp step of a deploy.
DEPLOY_TIMEOUT ?= 300

# The checked-in unit runs /usr/bin/pifork; this rewrites it for another BINDIR.
service_unit_for = sed '/^[^\#]/s|/usr/bin/pifork|$(1)/pifork|g' $(UNIT)

.PHONY: install uninstall deploy deb lint-deb verify-unit test-system

install: $(if $(filter $(RELEASE),$(INSTALL_BIN)),build)
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(UNITDIR)'
	install -m 0755 '$(INSTALL_BIN)' '$(DESTDIR)$(BINDIR)/pifork'
	install -d '$(DESTDIR)$(MANDIR)/man1'
	install -m 0644 doc/pifork.1 '$(DESTDIR)$(MANDIR)/man1/pifork.1'
	$(call service_unit_for,$(BINDIR)) > '$(DESTDIR)$(UNITDIR)/pifork.service'
	chmod 0644 '$(DESTDIR)$(UNITDIR)/pifork.service'
	@echo "install: $(DESTDIR)$(BINDIR)/pifork, $(DESTDIR)$(UNITDIR)/pifork.service (ExecStart=$(BINDIR)/pifork serve)"
	@echo "install: then: systemctl daemon-reload && systemctl enable --now pifork"

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/pifork' '$(DESTDIR)$(UNITDIR)/pifork.service' '$(DESTDIR)$(MANDIR)/man1/pifork.1'

# The usage comes before any build: a forgotten HOST costs nothing.
deploy:
	@if [ -z '$(HOST)' ]; then \
	    echo "deploy: usage: make deploy HOST=user@host [SSH_PORT=22] [SSH_OPTS='-i key ...'] [DEPLOY_PREFIX=/usr/local]" >&2; \
	    exit 2; \
	fi
	$(MAKE) --no-print-directory build-aarch64
	HOST='$(HOST)' SSH_PORT='$(SSH_PORT)' SSH_OPTS='$(SSH_OPTS)' DEPLOY_PREFIX='$(DEPLOY_PREFIX)' \
	    DEPLOY_TIMEOUT='$(DEPLOY_TIMEOUT)' bash scripts/deploy.sh '$(AARCH64_BIN)' '$(UNIT)' doc/pifork.1

# cargo-deb reads [package.metadata.deb] from Cargo.toml; the binary is the
# static aarch64 build, so the package is for arm64 and depends on nothing.
deb: build-aarch64
	@grep -q '^\[package\.metadata\.deb\]' Cargo.toml || { \
	    echo "deb: Cargo.toml has no [package.metadata.deb] table; without it the package would lack the unit" >&2; \
	    exit 1; }
	@command -v cargo-deb >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked
	rm -f $(AARCH64_TARGET_DIR)/debian/pifork_*.deb
	$(CARGO) deb --target $(AARCH64_TARGET) --no-build --no-strip --output $(AARCH64_TARGET_DIR)/debian/

lint-deb: deb
	@bash -c 'PROG=lint-deb; . scripts/lib.sh && need_packages lintian'
	lintian --fail-on error,warning --pedantic $(AARCH64_TARGET_DIR)/debian/pifork_*.deb
	@echo "lint-deb: lintian is clean"

verify-unit:
	bash ci/verify-unit.sh '$(UNIT)'

# The make the system test runs `make deploy` with. Named through a variable, not written out in
# the recipe, so that `make -n test` prints the recipe instead of running the test.
SYSTEM_TEST_MAKE = $(MAKE) -f $(abspath $(firstword $(MAKEFILE_LIST)))

test-system: setup-aarch64 build-aarch64
	PIFORK_MAKE='$(SYSTEM_TEST_MAKE)' bash ci/test-system.sh '$(AARCH64_BIN)'

.DEFAULT_GOAL := $(SERVICE_SAVED_DEFAULT_GOAL)
