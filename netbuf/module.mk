# netbuf/: output commit devices (plug via libnl-route-3, NFQUEUE).
LIB_OBJS += \
	netbuf/netbuf.o \
	netbuf/nfqueue.o \
	netbuf/plug_epochs.o \
	netbuf/plug.o

INCLUDES += -I/usr/include/libnl3
LDLIBS += -lnl-route-3 -lnl-3 -lnetfilter_queue -lnfnetlink -lmnl

PROGRAMS += ha-netbuf
ha-netbuf_OBJS := \
	netbuf/ha-netbuf.o

INTEG_TESTS += \
	tests/integration/netbuf_nfqueue.sh \
	tests/integration/netbuf_plug.sh

BENCH_SCRIPTS += \
	bench/netbuf.sh

UNIT_TESTS += \
	test_netbuf
