# secondary/: receiving, buffering and committing checkpoints; ha-receive.
LIB_OBJS += \
	secondary/ckbuf.o \
	secondary/postcopy.o \
	secondary/receive.o \
	secondary/serve.o \
	secondary/takeover.o

UNIT_TESTS += \
	test_ckbuf \
	test_receive

INTEG_TESTS += \
	tests/integration/rx_limits.sh \
	tests/integration/failback_disk.sh

PROGRAMS += ha-receive
ha-receive_OBJS := \
	secondary/ha-receive.o
