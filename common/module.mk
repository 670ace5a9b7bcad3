# common/: logging, exact I/O, bitmaps, monotonic time, sockets.
LIB_OBJS += \
	common/bitmap.o \
	common/clock.o \
	common/conf.o \
	common/ctl.o \
	common/hist.o \
	common/io.o \
	common/log.o \
	common/opt.o \
	common/report.o \
	common/notify.o \
	common/runcmd.o \
	common/service.o \
	common/sock.o \
	common/version.o

# report.c: JSON through yajl's generator; conf.c: the pair file through
# libinih
LDLIBS += -lyajl -linih
# service.c: readiness and status for systemd (sd_notify)
LDLIBS += -lsystemd

UNIT_TESTS += \
	test_common \
	test_conf \
	test_service \
	test_ctl

FUZZERS += \
	fuzz_ctl \
	fuzz_conf
