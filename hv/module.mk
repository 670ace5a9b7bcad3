# hv/: hypervisor backends behind struct hv_ops.
LIB_OBJS += \
	hv/hv.o \
	hv/kvm.o \
	hv/state.o
