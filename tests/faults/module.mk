# tests/faults/: randomized fault injection (make faults N=20 SEED=...).
# Helpers for the harness and the integration tests, built with `make all`
# but not installed: a TCP relay that flips bits on demand, an ARP probe
# that counts the copies of a guest that answer, and a writer of a stream
# whose last checkpoint cannot commit in memory (tests/integration/
# disk_rollback.sh).
FAULT_TOOLS := \
	fault-relay \
	fault-arp \
	fault-forge

fault-relay_SRC := tests/faults/relay.c
fault-arp_SRC := tests/faults/arpprobe.c
fault-forge_SRC := tests/faults/forge.c

define fault_tool_rule
$(B)/tests/$(1): $(B)/$($(1)_SRC:.c=.o) $(B)/libha.a
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(FAULT_TOOLS),$(eval $(call fault_tool_rule,$(t))))

EXTRA_ALL += $(addprefix $(B)/tests/,$(FAULT_TOOLS))

# N faults drawn from SEED (default: the time, printed so the run replays);
# FAULT_GUEST=counter|disk, FAULT_KINDS=a,b,...|all (docs/faults.md).
N           ?= 20
SEED        ?=
FAULT_GUEST ?=
FAULT_KINDS ?=
.PHONY: faults
faults: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)N=$(N) SEED=$(SEED) FAULT_GUEST=$(FAULT_GUEST) FAULT_KINDS=$(FAULT_KINDS) \
		tests/faults/faults.sh $(B)
