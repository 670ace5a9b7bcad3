# ha-protect: checkpointing high availability for virtual machines.
#
#   make              build every binary into $(B)/bin
#   make check        build and run every test (unit + integration)
#   make check SAN=1  the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench        run the benchmarks (figures as ratios vs in-run baselines)
#   make fuzz         build the libFuzzer harnesses (clang) and run each briefly
#   make lab-check    boot Xen + a Debian dom0 under QEMU (TCG) and run tests/lab/
#   make install      install binaries under $(PREFIX)/bin
#   V=1               show the commands
#
# Each module has a module.mk fragment that lists, one per line, the objects
# it adds to the library, the programs it builds, its tests, fuzzers and
# benchmarks. The rules below turn those lists into targets.

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
BENCH_SCRIPTS :=
EXTRA_ALL  :=
INCLUDES   :=

include $(sort $(wildcard */module.mk */*/module.mk */*/*/module.mk))

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
	$(Q)set -e; export HA_BUILD=$(B); for b in $(BENCHES); do $(B)/bench/$$b; done; \
		for s in $(BENCH_SCRIPTS); do sh $$s; done

# libFuzzer harnesses: clang only, always with ASan+UBSan, in their own tree.
FUZZ_B := build/fuzz
FUZZ_CFLAGS := -std=c11 -O1 -g $(WARNINGS) -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
FUZZ_SECONDS ?= 30
define fuzz_rule
$(FUZZ_B)/$(1): tests/fuzz/$(1).c $(foreach o,$(LIB_OBJS),$(o:.o=.c))
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  FUZZ    $$@")
	$$(Q)clang -I. -D_GNU_SOURCE $$(INCLUDES) $$(FUZZ_CFLAGS) -pthread -o $$@ $$^ $$(LDLIBS)
endef
$(foreach f,$(FUZZERS),$(eval $(call fuzz_rule,$(f))))

.PHONY: fuzz
fuzz: deps $(addprefix $(FUZZ_B)/,$(FUZZERS))
	$(Q)set -e; for f in $(FUZZERS); do \
		mkdir -p $(FUZZ_B)/corpus-$$f; \
		echo "fuzz: $$f for $(FUZZ_SECONDS)s"; \
		$(FUZZ_B)/$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			$(FUZZ_B)/corpus-$$f $$(test -d tests/fuzz/corpus/$$f && echo tests/fuzz/corpus/$$f) \
			2>$(FUZZ_B)/$$f.log || \
			{ tail -n 60 $(FUZZ_B)/$$f.log; exit 1; }; \
		grep -E 'stat::number_of_executed_units|Done' $(FUZZ_B)/$$f.log | tail -n 2; \
	done

.PHONY: install
install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix $(B)/bin/,$(PROGRAMS)) $(DESTDIR)$(PREFIX)/bin/

.PHONY: clean
clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

# The README's demo: a protected VM surviving the loss of its primary.
.PHONY: demo
demo: deps all
	$(Q)scripts/demo.sh $(B)

-include $(shell find build -name '*.d' 2>/dev/null)

