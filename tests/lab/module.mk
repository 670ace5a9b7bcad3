# tests/lab/: the Xen lab's domU counter service, a static binary that
# tests/lab/build.sh puts into the domU's initramfs (docs/lab.md). Static and
# without sanitizers: the domU has no libraries.
EXTRA_ALL += \
	$(B)/bin/domu-counter

$(B)/bin/domu-counter: tests/lab/domu-counter.c vmm/guest/svc.c vmm/guest/svc.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@ (static)")
	$(Q)$(CC) -static -std=c11 -O2 $(WARNINGS) -I. -D_GNU_SOURCE -o $@ \
		tests/lab/domu-counter.c vmm/guest/svc.c
