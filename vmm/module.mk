# vmm/: ha-vm, the built-in KVM VMM, its control protocol client, and the
# freestanding guest programs it embeds.
LIB_OBJS += \
	vmm/vmm_ctl.o

PROGRAMS += ha-vm
ha-vm_OBJS := \
	vmm/blk.o \
	vmm/ha-vm.o \
	vmm/server.o \
	vmm/vm.o \
	vmm/vm_state.o \
	vmm/vm_postcopy.o \
	guest/counter.o \
	guest/dirty.o \
	guest/disk.o \
	guest/kv.o

# Guests: 64-bit, CPL3, no libc, loaded flat at 0x100000 (vmm/guest/abi.h).
GUEST_CFLAGS := -std=c11 -O2 -g0 -ffreestanding -nostdlib -static -fno-pic -fno-pie -no-pie \
	-fno-stack-protector -mno-red-zone -mgeneral-regs-only -fno-asynchronous-unwind-tables \
	-fcf-protection=none $(WARNINGS) -I.
GUEST_RT := vmm/guest/rt.c vmm/guest/gnet.c vmm/guest/svc.c vmm/guest/netsvc.c vmm/guest/diskseq.c

$(B)/guest/%.elf: vmm/guest/%.c $(GUEST_RT) vmm/guest/guest.ld vmm/guest/abi.h vmm/guest/rt.h vmm/guest/netsvc.h vmm/guest/diskseq.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GUEST   $@")
	$(Q)$(CC) $(GUEST_CFLAGS) -T vmm/guest/guest.ld -Wl,--build-id=none -Wl,--no-warn-rwx-segments -o $@ $< $(GUEST_RT) -lgcc

$(B)/guest/%.bin: $(B)/guest/%.elf
	$(Q)objcopy -O binary $< $@

# Embedded as _binary_NAME_bin_start/_end.
$(B)/guest/%.o: $(B)/guest/%.bin
	$(Q)cd $(B)/guest && ld -r -b binary -z noexecstack -o $*.o $*.bin

.SECONDARY: $(patsubst %,$(B)/guest/%.elf,counter dirty disk kv) \
	$(patsubst %,$(B)/guest/%.bin,counter dirty disk kv)

UNIT_TESTS += \
	test_gnet \
	test_vmm

FUZZERS += \
	fuzz_gnet

BENCHES += \
	bench_vmm

KVM_BENCHES += \
	bench_vmm

# The guests' stack and services also run on the host, for tests.
LIB_OBJS += \
	vmm/guest/gnet.o \
	vmm/guest/svc.o
