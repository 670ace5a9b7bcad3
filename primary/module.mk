# primary/: the epoch loop, sender and ACK handling; ha-protect.
LIB_OBJS += \
	primary/protect.o

PROGRAMS += ha-protect
ha-protect_OBJS := \
	primary/ha-protect.o
