# diskrepl/: replicated disks. The secondary's replica and journal; the
# primary's NBD export that mirrors writes (ha-diskrepl); the checkpoint
# device through which ha-protect drives it.
LIB_OBJS += \
	diskrepl/replica.o

UNIT_TESTS += \
	test_replica

LIB_OBJS += \
	diskrepl/dev.o \
	diskrepl/dirtylog.o \
	diskrepl/drbd.o \
	diskrepl/nbdsrv.o \
	diskrepl/source.o

PROGRAMS += ha-diskrepl
ha-diskrepl_OBJS := \
	diskrepl/ha-diskrepl.o

UNIT_TESTS += \
	test_diskrepl \
	test_drbd \
	test_nbdsrv

INTEG_TESTS += \
	tests/integration/disk_failover.sh \
	tests/integration/disk_replica.sh \
	tests/integration/disk_rollback.sh

BENCHES += \
	bench_diskrepl

FUZZERS += \
	fuzz_drbd \
	fuzz_journal \
	fuzz_nbdsrv
