# secondary/: receiving, buffering and committing checkpoints; ha-receive.
LIB_OBJS += \
	secondary/ckbuf.o \
	secondary/receive.o

UNIT_TESTS += \
	test_ckbuf
