# hv/: hypervisor backends behind struct hv_ops.
LIB_OBJS += \
	hv/state.o
