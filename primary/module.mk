# primary/: the epoch loop, sender and ACK handling; ha-protect.
LIB_OBJS += \
	primary/acker.o \
	primary/devset.o \
	primary/interval.o \
	primary/lease.o \
	primary/pipeline.o \
	primary/protect.o \
	primary/status.o \
	primary/switchover.o

LDLIBS += -lm

PROGRAMS += ha-protect
ha-protect_OBJS := \
	primary/ha-protect.o

UNIT_TESTS += \
	test_devset \
	test_lease \
	test_interval

INTEG_TESTS += \
	tests/integration/failover_counter.sh \
	tests/integration/switchover_counter.sh \
	tests/integration/migrate_dirty.sh \
	tests/integration/save_restore.sh \
	tests/integration/standby_replay.sh \
	tests/integration/secondary_loss.sh \
	tests/integration/split_brain.sh \
	tests/integration/ext_devices.sh

BENCHES += \
	bench_core

# Benchmarks that run ha-vm guests (the KVM lab runs them where /dev/kvm
# is missing).
KVM_BENCHES += \
	bench_core
