# failover/: the replication link (TLS, heartbeats, down timer).
LIB_OBJS += \
	failover/fence.o \
	failover/link.o \
	failover/tls.o

INCLUDES += $(shell pkg-config --cflags gnutls)
LDLIBS += $(shell pkg-config --libs gnutls)

UNIT_TESTS += \
	test_link
