# failover/: the replication link (heartbeats, down timer).
LIB_OBJS += \
	failover/link.o
