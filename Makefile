# splitmx: build, run, test.  GNU make.
PREFIX	?= /usr/local
DESTDIR	?=
SBINDIR	?= $(PREFIX)/sbin
MANDIR	?= $(PREFIX)/share/man
UNITDIR	?= $(PREFIX)/lib/systemd/system
# Where splitmxd looks by default (smtpd/splitmx.h): not under PREFIX.
CONFDIR	 = /etc/splitmx
SPOOLDIR = /var/spool/splitmx
VERSION	 = $(shell sed -n 's/^\#define SPLITMX_VERSION[^"]*"\(.*\)"/\1/p' \
	   smtpd/splitmx.h)
OBJ	?= obj
CC	?= cc
PYTHON	 = /usr/bin/python3

PKGS	 = libbsd-overlay libevent libtls libunbound libcrypto libcurl ldap \
	   libseccomp libsystemd
OPT	?= -O2 -g
SAN	?=
WARN	 = -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
	   -Wpointer-arith -Wcast-qual -fstack-protector-strong
ALL_CFLAGS = $(OPT) $(SAN) $(WARN) -D_GNU_SOURCE -Ilib -Ismtpd -I$(OBJ) \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)
LDLIBS	+= $(shell pkg-config --libs $(PKGS) 2>/dev/null)
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined

LIB_SRCS = $(wildcard lib/*.c)
D_SRCS	 = $(wildcard smtpd/*.c smtp/*.c lookup/*.c queue/*.c relay/*.c \
	   filter/*.c) \
	   $(filter-out control/splitmxctl%.c control/import%.c, \
	   $(wildcard control/*.c))
D_OBJS	 = $(patsubst %.c,$(OBJ)/%.o,$(LIB_SRCS) $(D_SRCS)) $(OBJ)/smtpd/parse.o
# The request table (control_verbs.c) is linked into both programs;
# splitmxctl import checks the new directory with the daemon's loader.
CTL_OBJS = $(patsubst %.c,$(OBJ)/%.o,$(LIB_SRCS) control/splitmxctl.c \
	   control/splitmxctl_request.c control/control_verbs.c \
	   control/splitmxctl_import.c control/splitmxctl_import_read.c \
	   control/import.c control/import_rules.c lookup/table_file.c)
CTL_LIBS = -lresolv
HDRS	 = $(wildcard lib/*.h smtpd/*.h smtp/*.h lookup/*.h queue/*.h relay/*.h \
	   control/*.h filter/*.h)
UNIT_SRCS = $(wildcard regress/lib/*_test.c)
UNIT_BINS = $(patsubst regress/lib/%.c,$(OBJ)/regress/%,$(UNIT_SRCS))

DEB_BUILD = gcc make bison pkg-config libevent-dev libtls-dev libbsd-dev \
	    libunbound-dev libssl-dev libcurl4-openssl-dev libldap-dev \
	    libseccomp-dev libsystemd-dev dns-root-data
DEB_TEST  = python3 python3-pytest python3-aiosmtpd python3-dnslib swaks \
	    openssl procps slapd ldap-utils libnet-ssleay-perl nsd ldnsutils \
	    opendkim opendkim-tools rspamd python3-milter python3-dkim
# make deb, and the test that builds the package and installs it
DEB_PKG	  = debhelper dpkg-dev fakeroot lintian
# clang 14's -fsanitize=fuzzer needs libFuzzer from libclang-rt-14-dev.
DEB_FUZZ  = clang libclang-rt-14-dev
DEB_ALL	  = $(DEB_BUILD) $(DEB_TEST) $(DEB_PKG) $(DEB_FUZZ)

.PHONY: all progs deps run test test-asan unit e2e install deb clean bench \
	fuzz fuzz-build fuzz-replay

all: progs $(UNIT_BINS)

progs: $(OBJ)/splitmxd $(OBJ)/splitmxctl $(OBJ)/splitmx.service

$(OBJ)/splitmxd: $(D_OBJS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(D_OBJS) $(LDLIBS)

$(OBJ)/splitmxctl: $(CTL_OBJS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(CTL_OBJS) $(LDLIBS) \
	    $(CTL_LIBS)

# The unit names the programs where this install puts them.
$(OBJ)/splitmx.service: etc/systemd/splitmx.service
	@mkdir -p $(@D)
	sed 's|/usr/sbin/|$(SBINDIR)/|g' $< > $@

$(OBJ)/smtpd/parse.c: smtpd/parse.y
	@mkdir -p $(@D)
	bison -o $@ $<

$(OBJ)/smtpd/parse.o: $(OBJ)/smtpd/parse.c $(HDRS)
	$(CC) $(ALL_CFLAGS) -Wno-unused-but-set-variable -c -o $@ $<

$(OBJ)/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Unit tests link every object of the daemon but its main(), and the
# export readers and import rules of splitmxctl.
UNIT_LINK = $(filter-out $(OBJ)/smtpd/splitmxd.o,$(D_OBJS)) \
	    $(OBJ)/control/import.o $(OBJ)/control/import_rules.o
$(OBJ)/regress/%: regress/lib/%.c $(UNIT_LINK) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -Iregress/lib -Icontrol -o $@ $< \
	    $(UNIT_LINK) $(LDLIBS) $(CTL_LIBS)

# Fuzzing (fuzz/README).  Every fuzz/NAME_fuzz.c is a libFuzzer target,
# $(OBJ)/fuzz/NAME_fuzz, linked from the sources its "fuzz-link:"
# comment lines name (what the unit tests link if it has none), all
# built apart with clang and the sanitizers under
# $(OBJ)/fuzz/o; its seeds are fuzz/corpus/NAME/.  Nothing here is
# built by "all": only by fuzz-build, "make fuzz" and "make test".
FUZZ_CC	  ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN  = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	    -fno-omit-frame-pointer
# clang also warns of libseccomp's SCMP_A* initialisers: not ours.
FUZZ_CFLAGS = -O1 -g $(FUZZ_SAN) $(WARN) -Wno-missing-field-initializers \
	    -D_GNU_SOURCE -Ilib -Ismtpd \
	    -Ismtp -Ilookup -Iqueue -Irelay -Icontrol -Ifilter -I$(OBJ) \
	    $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
FUZZ_NAMES = $(patsubst fuzz/%_fuzz.c,%,$(wildcard fuzz/*_fuzz.c))
FUZZ_BINS = $(patsubst %,$(OBJ)/fuzz/%_fuzz,$(FUZZ_NAMES))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FO	  = $(OBJ)/fuzz/o
FUZZ_DEFAULT = $(patsubst $(OBJ)/%,$(FO)/%,$(UNIT_LINK))
# The objects a target links: its fuzz-link sources (parse.y is the
# generated parse.c), or the default; and its fuzz-libs libraries.
fuzz_srcs = $(wildcard $(shell sed -n 's/^.*fuzz-link://p' fuzz/$(1)_fuzz.c))
fuzz_libs = $(shell sed -n 's/^.*fuzz-libs://p' fuzz/$(1)_fuzz.c) \
	    $(if $(call fuzz_srcs,$(1)),,$(CTL_LIBS))
fuzz_objs = $(if $(call fuzz_srcs,$(1)),$(patsubst %.c,$(FO)/%.o, \
	    $(patsubst %.y,%.c,$(call fuzz_srcs,$(1)))),$(FUZZ_DEFAULT))

fuzz-build: $(FUZZ_BINS)

$(FO)/%.o: %.c $(HDRS) $(wildcard fuzz/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FO)/smtpd/parse.o: $(OBJ)/smtpd/parse.c $(HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	    -Wno-unused-but-set-variable -c -o $@ $<

define fuzz_target
$(OBJ)/fuzz/$(1)_fuzz: $(FO)/fuzz/$(1)_fuzz.o $(call fuzz_objs,$(1))
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$^ $$(LDLIBS) \
	    $(call fuzz_libs,$(1))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call fuzz_target,$(n))))

# Each target for FUZZ_SECONDS from its seeds; what it finds goes to
# $(OBJ)/fuzz/corpus/NAME, a crash to $(OBJ)/fuzz/NAME-crash-*.
fuzz: deps fuzz-build
	@for n in $(FUZZ_TARGETS); do \
		mkdir -p $(OBJ)/fuzz/corpus/$$n || exit 1; \
		echo "make fuzz: $$n for $(FUZZ_SECONDS) s"; \
		$(OBJ)/fuzz/$${n}_fuzz -max_total_time=$(FUZZ_SECONDS) \
		    -print_final_stats=1 -artifact_prefix=$(OBJ)/fuzz/$$n- \
		    $(OBJ)/fuzz/corpus/$$n fuzz/corpus/$$n || exit 1; \
	done

# Every seed through its target once (make test does it in pytest).
fuzz-replay: fuzz-build
	@for n in $(FUZZ_TARGETS); do \
		$(OBJ)/fuzz/$${n}_fuzz fuzz/corpus/$$n/* >/dev/null 2>&1 || \
		    { echo "fuzz-replay: $$n failed"; exit 1; }; \
		echo "fuzz-replay: $$n ok"; \
	done

# Installs only the Debian packages that are missing, with one update.
deps:
	@missing=""; for p in $(DEB_ALL); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
		    grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		    apt-get install -y -qq --no-install-recommends $$missing \
		    >/dev/null || exit 1; \
	else \
		echo "make deps: all Debian packages present"; \
	fi

run: deps all
	@sh etc/demo/run.sh $(OBJ)

test: deps all fuzz-build
	SPLITMX_OBJ=$(OBJ) $(PYTHON) -m pytest -q regress

test-asan:
	$(MAKE) deps
	$(MAKE) OBJ=obj-asan OPT="-O1 -g" SAN="$(SANFLAGS)" all
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	SPLITMX_OBJ=obj-asan $(PYTHON) -m pytest -q regress

bench: deps all
	@sh bench/run.sh $(OBJ)

# The programs, man pages and systemd unit; the example configuration
# and directory unless there are files of that name already (they are
# kept, never overwritten); the spool and the children's empty root.
# Without DESTDIR, as root, also the user _splitmx (given the spool) and
# /run/splitmx; with DESTDIR (a package) that is the package's work.
install: progs
	install -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR)
	install -m 0755 $(OBJ)/splitmxd $(OBJ)/splitmxctl $(DESTDIR)$(SBINDIR)
	install -m 0644 man/splitmx.conf.5 $(DESTDIR)$(MANDIR)/man5
	install -m 0644 man/splitmxd.8 man/splitmxctl.8 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(OBJ)/splitmx.service $(DESTDIR)$(UNITDIR)
	@for f in splitmx.conf:0640 directory:0644; do \
		n=$${f%%:*}; m=$${f##*:}; t=$(DESTDIR)$(CONFDIR)/$$n; \
		if [ -e "$$t" ]; then \
			echo "keeping $$t, the example is etc/$$n"; \
		else \
			echo "install -m $$m etc/$$n $$t"; \
			install -m $$m etc/$$n "$$t" || exit 1; \
		fi; \
	done
	[ -d $(DESTDIR)$(SPOOLDIR) ] || install -d -m 0700 $(DESTDIR)$(SPOOLDIR)
	[ -d $(DESTDIR)/var/empty ] || install -d -m 0755 $(DESTDIR)/var/empty
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		if ! getent passwd _splitmx >/dev/null; then \
			echo "useradd --system ... _splitmx"; \
			useradd --system --user-group --no-create-home \
			    --home-dir /nonexistent --shell /usr/sbin/nologin \
			    _splitmx || exit 1; \
		fi; \
		chown _splitmx:_splitmx $(SPOOLDIR) && \
		install -d -m 0755 /run/splitmx || exit 1; \
	fi

# The Debian package, built from a copy of this tree under $(OBJ)/deb
# (debian/; no network while it builds), then checked with lintian.
deb:
	$(MAKE) deps DEB_ALL="$(DEB_BUILD) $(DEB_PKG)"
	rm -rf $(OBJ)/deb
	mkdir -p $(OBJ)/deb/splitmx-$(VERSION)
	tar -cf - --exclude='./obj*' --exclude=./.git --exclude=__pycache__ \
	    --exclude=.pytest_cache . | tar -xf - -C $(OBJ)/deb/splitmx-$(VERSION)
	cd $(OBJ)/deb/splitmx-$(VERSION) && dpkg-buildpackage -us -uc -b
	lintian --info $(OBJ)/deb/splitmx_*.changes || true
	@ls $(OBJ)/deb/*.deb

clean:
	rm -rf obj obj-asan regress/__pycache__ regress/*/__pycache__ \
	    .pytest_cache
