# tools/: ha-ctl.
PROGRAMS += ha-ctl
ha-ctl_OBJS := \
	tools/ha-ctl.o

PROGRAMS += ha-client
ha-client_OBJS := \
	tools/ha-client.o
