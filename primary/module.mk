# primary/: the epoch loop, sender and ACK handling; ha-protect.
LIB_OBJS += \
	primary/protect.o

# Linked once the kvm backend exists (hv/kvm.c).
# PROGRAMS += ha-protect
ha-protect_OBJS := \
	primary/ha-protect.o
