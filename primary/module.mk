# primary/: the epoch loop, sender and ACK handling; ha-protect.
LIB_OBJS += \
	primary/protect.o
