# tools/: ha-ctl.
PROGRAMS += ha-ctl
ha-ctl_OBJS := \
	tools/ha-ctl.o
