# failover/: the replication link (TLS, heartbeats, down timer), fencing, the
# witness (ha-witness).
LIB_OBJS += \
	failover/fence.o \
	failover/link.o \
	failover/preflight.o \
	failover/reload.o \
	failover/role.o \
	failover/tls.o \
	failover/witness.o

INCLUDES += $(shell pkg-config --cflags gnutls)
LDLIBS += $(shell pkg-config --libs gnutls)

UNIT_TESTS += \
	test_link \
	test_role

PROGRAMS += ha-witness
ha-witness_OBJS := \
	failover/ha-witness.o

INTEG_TESTS += \
	tests/integration/link_tls.sh \
	tests/integration/witness_conns.sh \
	tests/integration/witness_pairs.sh \
	tests/integration/preflight.sh \
	tests/integration/role_record.sh \
	tests/integration/ocf.sh

BENCHES += \
	bench_link

FUZZERS += \
	fuzz_witness
