/* The plug backend's epoch logic, apart from netlink: which sch_plug
 * command an event needs (netbuf/plug.c sends it). Pure: the unit test
 * drives it against a model of the kernel qdisc (tests/unit/test_netbuf.c).
 */
#ifndef HA_NETBUF_PLUG_EPOCHS_H
#define HA_NETBUF_PLUG_EPOCHS_H

#include <stdbool.h>
#include <stdint.h>

enum netbuf_plug_event {
	NETBUF_PLUG_POSTSUSPEND, /* epoch N closed (the guest is paused) */
	NETBUF_PLUG_COMMIT,      /* the secondary acknowledged epoch N */
};

enum netbuf_plug_cmd {
	NETBUF_PLUG_NONE,
	NETBUF_PLUG_BUFFER,      /* TCQ_PLUG_BUFFER */
	NETBUF_PLUG_RELEASE_ONE, /* TCQ_PLUG_RELEASE_ONE */
};

#define NETBUF_PLUG_PENDING_MAX 64

struct netbuf_plug_epochs {
	uint64_t pending[NETBUF_PLUG_PENDING_MAX]; /* closed, unreleased epochs, oldest first */
	unsigned npending;
};

/* Decides the command for event ev of epoch; *next is the state once that
 * command went through (the caller keeps *s if sending it failed).
 * 0, or -ENOSPC when too many epochs are held. */
int netbuf_plug_decide(const struct netbuf_plug_epochs *s, enum netbuf_plug_event ev,
		       uint64_t epoch, struct netbuf_plug_epochs *next, enum netbuf_plug_cmd *cmd);

#endif
