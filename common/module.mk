# common/: logging, exact I/O, bitmaps, monotonic time, sockets.
LIB_OBJS += \
	common/bitmap.o \
	common/clock.o \
	common/ctl.o \
	common/hist.o \
	common/io.o \
	common/log.o \
	common/opt.o \
	common/sock.o

UNIT_TESTS += \
	test_common \
	test_ctl

FUZZERS += \
	fuzz_ctl
