# hv/: hypervisor backends behind struct hv_ops.
LIB_OBJS += \
	hv/hv.o \
	hv/havm.o \
	hv/state.o \
	hv/xen.o \
	hv/xen_config.o \
	hv/xen_copy.o \
	hv/xen_pause.o \
	hv/xen_standby.o \
	hv/xen_suspend.o \
	hv/xen_image.o \
	hv/xen_needs.o

# The xen backend: Debian's libxen-dev.
LDLIBS += -lxenctrl -lxenguest -lxenforeignmemory -lxenevtchn -lxenstore -lxentoollog \
	-lxlutil

UNIT_TESTS += \
	test_xen_image \
	test_xen_needs \
	test_xen_suspend
