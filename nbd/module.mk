# nbd/: an NBD client (fixed newstyle, simple replies).
LIB_OBJS += \
	nbd/nbd.o

UNIT_TESTS += \
	test_nbd

FUZZERS += \
	fuzz_nbd_client
