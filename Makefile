# ha-protect: checkpointing high availability for virtual machines.
#
#   make              build every binary into $(B)/bin
#   make check        build and run every test (unit + integration)
#   make check SAN=1  the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench        run the benchmarks (figures as ratios vs in-run baselines)
#   make fuzz         build the libFuzzer harnesses (clang) and run each briefly
#   make lab-check    boot Xen + a Debian dom0 under QEMU (TCG) and run tests/lab/
#   make install      install under $(PREFIX) (DESTDIR, PREFIX=/usr for a
#                     system install): daemons, tools, units, man pages
#   V=1               show the commands
#
# Each module has a module.mk fragment that lists, one per line, the objects
# it adds to the library, the programs it builds, its tests, fuzzers and
# benchmarks. The rules below turn those lists into targets.

# The module fragments included below define rules of their own: `make`
# with no target still builds everything.
.DEFAULT_GOAL := all

PREFIX  ?= /usr/local
DESTDIR ?=
SAN     ?= 0
V       ?= 0
CC      ?= cc

ifeq ($(V),1)
Q :=
else
Q := @
endif

ifeq ($(SAN),1)
B := build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
B := build/default
SANFLAGS :=
endif

WARNINGS := \
	-Wall \
	-Wextra \
	-Werror \
	-Wshadow \
	-Wstrict-prototypes \
	-Wmissing-prototypes \
	-Wpointer-arith \
	-Wformat=2 \
	-Wformat-nonliteral \
	-Wundef \
	-Wvla \
	-Wwrite-strings \
	-Wimplicit-fallthrough \
	-Wno-unused-parameter

OPTFLAGS ?= -O2 -g
CPPFLAGS += -I. -D_GNU_SOURCE -MMD -MP
CFLAGS   += -std=c11 $(OPTFLAGS) $(WARNINGS) $(SANFLAGS) -pthread
LDFLAGS  += $(SANFLAGS) -pthread
LDLIBS   :=

# Filled by the module fragments.
LIB_OBJS   :=
PROGRAMS   :=
UNIT_TESTS :=
INTEG_TESTS :=
FUZZERS    :=
BENCHES    :=
KVM_BENCHES :=
BENCH_SCRIPTS :=
EXTRA_ALL  :=
INSTALL_SCRIPTS :=
INCLUDES   :=

include $(sort $(wildcard */module.mk */*/module.mk */*/*/module.mk))

# Where /dev/kvm is missing (or HA_KVM=lab), what runs ha-vm guests runs
# in the KVM lab (tests/kvmlab/run.sh: a Linux VM under QEMU with nested
# KVM); HA_KVM=host never.
KVM_RUN = $(if $(filter lab,$(HA_KVM)),tests/kvmlab/run.sh --,$(if $(filter host,$(HA_KVM)),,$(if $(wildcard /dev/kvm),,tests/kvmlab/run.sh --)))

# Modules add include paths (e.g. from pkg-config) to INCLUDES.
CPPFLAGS += $(INCLUDES)

LIB := $(B)/libha.a

.PHONY: all
all: $(addprefix $(B)/bin/,$(PROGRAMS)) $(EXTRA_ALL)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(addprefix $(B)/,$(LIB_OBJS))
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# A program NAME links $(NAME_OBJS) against the library.
define program_rule
$(B)/bin/$(1): $(addprefix $(B)/,$($(1)_OBJS)) $(LIB)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(p))))

# A unit test NAME is tests/unit/NAME.c linked with cmocka and the library.
define unit_rule
$(B)/tests/$(1): $(B)/tests/unit/$(1).o $(LIB)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS) -lcmocka
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_rule,$(t))))

define bench_rule
$(B)/bench/$(1): $(B)/bench/$(1).o $(LIB)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(BENCHES),$(eval $(call bench_rule,$(t))))

.PHONY: deps
deps:
	$(Q)scripts/install-deps.sh

UNIT_BINS := $(addprefix $(B)/tests/,$(UNIT_TESTS))

.PHONY: check
check: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS)
	$(Q)tests/run.sh $(B) $(UNIT_BINS) $(INTEG_TESTS)

# The Xen lab: Xen 4.17 and a Debian dom0 built from Debian packages, booted
# under QEMU (TCG); runs tests/lab/tests/ in dom0 (docs/lab.md).
.PHONY: lab-check
lab-check: deps all
	$(Q)tests/lab/run.sh $(B)

.PHONY: bench
bench: deps
	$(Q)$(MAKE) --no-print-directory all $(addprefix $(B)/bench/,$(BENCHES))
	$(Q)set -e; export HA_BUILD=$(B); for b in $(filter-out $(KVM_BENCHES),$(BENCHES)); do \
		$(B)/bench/$$b; done; \
		for b in $(KVM_BENCHES); do KVMLAB_ENV=HA_BUILD $(KVM_RUN) $(B)/bench/$$b; done; \
		for s in $(BENCH_SCRIPTS); do sh $$s; done

# libFuzzer harnesses: clang only, always with ASan+UBSan, in their own tree.
# The library is built once for them (instrumented for coverage), each
# harness links against it. Every run replays the committed corpus
# (tests/fuzz/corpus/NAME: seeds and the inputs of bugs found) first. An
# input that runs for 30 s counts as a hang (a failure); the input of a
# failure is left as build/fuzz/NAME-crash-* (or -timeout-*, -leak-*).
# See docs/fuzzing.md.
#   make fuzz                      each harness for FUZZ_SECONDS (CI)
#   make fuzz FUZZ_RUNS=10000000   each harness for that many executions
#   make fuzz-long                 the same with 10^7 executions
#   make fuzz FUZZERS=fuzz_ctl     one harness only
#   make fuzz-seeds                regenerate the generated seeds
FUZZ_B := build/fuzz
FUZZ_CFLAGS := -std=c11 -O1 -g $(WARNINGS) -fsanitize=address,undefined \
	-fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SECONDS ?= 30
FUZZ_RUNS ?=
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS))

$(FUZZ_B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -pthread -c -o $@ $<

$(FUZZ_B)/libha.a: $(addprefix $(FUZZ_B)/obj/,$(LIB_OBJS))
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

define fuzz_rule
$(FUZZ_B)/$(1): $(FUZZ_B)/obj/tests/fuzz/$(1).o $(FUZZ_B)/libha.a
	@$$(if $$(Q),echo "  FUZZ    $$@")
	$$(Q)clang $$(FUZZ_CFLAGS) -fsanitize=fuzzer -pthread -o $$@ $$^ $$(LDLIBS)
endef
$(foreach f,$(FUZZERS),$(eval $(call fuzz_rule,$(f))))

.PHONY: fuzz fuzz-long fuzz-build
fuzz-build: $(addprefix $(FUZZ_B)/,$(FUZZERS))

fuzz: deps fuzz-build
	$(Q)set -e; for f in $(FUZZERS); do \
		mkdir -p $(FUZZ_B)/corpus-$$f; \
		echo "fuzz: $$f $(FUZZ_LIMIT)"; \
		$(FUZZ_B)/$$f $(FUZZ_LIMIT) -timeout=30 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_B)/$$f- \
			$(FUZZ_B)/corpus-$$f $$(test -d tests/fuzz/corpus/$$f && echo tests/fuzz/corpus/$$f) \
			2>$(FUZZ_B)/$$f.log || \
			{ tail -n 60 $(FUZZ_B)/$$f.log; exit 1; }; \
		grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|Done' \
			$(FUZZ_B)/$$f.log | tail -n 3; \
	done

fuzz-long:
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_RUNS=10000000

# Seeds that need real checksums or real protocol exchanges are written by
# a program built against the (uninstrumented) library.
$(B)/tests/fuzz_seeds: $(B)/tests/fuzz/fuzz_seeds.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: fuzz-seeds
fuzz-seeds: $(B)/tests/fuzz_seeds
	$(Q)$(B)/tests/fuzz_seeds tests/fuzz/corpus

.PHONY: install
# The installed layout (the Debian package's too, docs/operator-guide.md):
# daemons, the VMM, ha-save, ha-restore and ha-migrate in sbin, operator tools in bin, units, man pages, the
# example pair file; $(LIBDIR)/bin holds links to every program next to the
# test tools, the build-directory shape that ha-sla drives.
SBIN_PROGRAMS := ha-protect ha-receive ha-witness ha-diskrepl ha-netbuf ha-vm
BIN_PROGRAMS  := ha-ctl ha-stream
LIBDIR        ?= $(PREFIX)/lib/ha-protect
UNITDIR       ?= $(PREFIX)/lib/systemd/system
MANDIR        ?= $(PREFIX)/share/man
DOCDIR        ?= $(PREFIX)/share/doc/ha-protect
# Pacemaker finds resource agents under /usr/lib/ocf.
OCFDIR        ?= $(PREFIX)/lib/ocf
SYSCONFDIR    ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MAN_PAGES     := $(wildcard man/*.[158])

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/bin \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(SYSCONFDIR)/ha-protect \
		$(addprefix $(DESTDIR)$(MANDIR)/man,1 5 8) \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(OCFDIR)/resource.d/ha-protect
	install -m 0755 $(addprefix $(B)/bin/,$(SBIN_PROGRAMS)) $(DESTDIR)$(PREFIX)/sbin/
	install -m 0755 $(addprefix $(B)/bin/,$(BIN_PROGRAMS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 scripts/tls-gen.sh $(DESTDIR)$(PREFIX)/bin/ha-tls-gen
	install -m 0755 $(B)/bin/ha-save $(B)/bin/ha-restore $(B)/bin/ha-migrate $(DESTDIR)$(PREFIX)/sbin/
	install -m 0755 $(B)/bin/ha-client $(addprefix $(B)/bin/,$(INSTALL_SCRIPTS)) \
		$(DESTDIR)$(LIBDIR)/bin/
	for p in $(SBIN_PROGRAMS); do ln -sf $(PREFIX)/sbin/$$p $(DESTDIR)$(LIBDIR)/bin/$$p; done
	for p in $(BIN_PROGRAMS); do ln -sf $(PREFIX)/bin/$$p $(DESTDIR)$(LIBDIR)/bin/$$p; done
	ln -sf $(LIBDIR)/bin/ha-sla $(DESTDIR)$(PREFIX)/bin/ha-sla
	install -m 0644 dist/systemd/*.service $(DESTDIR)$(UNITDIR)/
	install -m 0755 dist/systemd/ha-role-follow $(DESTDIR)$(LIBDIR)/
	install -m 0755 dist/ocf/pair $(DESTDIR)$(OCFDIR)/resource.d/ha-protect/pair
	for m in $(MAN_PAGES); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/; done
	ln -sf ha-save.8 $(DESTDIR)$(MANDIR)/man8/ha-restore.8
	install -m 0644 dist/bash-completion/ha-protect $(DESTDIR)$(PREFIX)/share/bash-completion/completions/ha-protect
	for c in ha-receive ha-ctl ha-witness ha-diskrepl ha-stream ha-save ha-restore ha-migrate; do \
		ln -sf ha-protect $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$c; done
	install -m 0644 dist/pair.conf.example docs/examples/ha-protect-alerts.yml \
		$(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/

.PHONY: clean
clean:
	rm -rf build

-include $(shell find build -path build/lab -prune -o -name '*.d' -type f -print 2>/dev/null)

# The README's demo: a protected VM surviving the loss of its primary.
.PHONY: demo
demo: deps all
	$(Q)scripts/demo.sh $(B)


# The reference SLA figures (docs/sla/): ha-sla over the default intervals
# and --interval auto, a recommendation for p99 <= SLA_P99 ms and the load
# step under --interval auto (and unprotected). Needs root; runs in the KVM
# lab where /dev/kvm is missing;
# takes about six minutes.
SLA_P99 ?= 50
.PHONY: sla-report
sla-report: deps all
	$(Q)rm -rf $(B)/sla-report
	$(Q)$(KVM_RUN) $(B)/bin/ha-sla --out $(B)/sla-report --intervals 5,10,25,50,100,200,auto \
		--sla p99=$(SLA_P99) --step
	$(Q)mkdir -p docs/sla && rm -f docs/sla/*.md docs/sla/*.svg docs/sla/*.csv
	$(Q)cp $(B)/sla-report/report.md $(B)/sla-report/*.svg $(B)/sla-report/*.csv docs/sla/
