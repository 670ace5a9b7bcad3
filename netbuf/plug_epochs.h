/* The plug backend's epoch logic, apart from netlink: which sch_plug
 * command an event needs (netbuf/plug.c sends it). Pure: the unit test
 * drives it against a model of the kernel qdisc (tests/unit/test_netbuf.c).
 *
 * sch_plug keeps one count for one closed epoch, so while a closed epoch
 * is unacknowledged the epochs closed after it are merged into the next
 * one closed with the qdisc (netbuf/plug_epochs.c says why that is safe
 * and what it costs).
 */
#ifndef HA_NETBUF_PLUG_EPOCHS_H
#define HA_NETBUF_PLUG_EPOCHS_H

#include <stdbool.h>
#include <stdint.h>

enum netbuf_plug_event {
	NETBUF_PLUG_POSTSUSPEND, /* epoch N closed (the guest is paused) */
	NETBUF_PLUG_COMMIT,      /* the secondary acknowledged epochs <= N */
};

enum netbuf_plug_cmd {
	NETBUF_PLUG_NONE,
	NETBUF_PLUG_BUFFER,      /* TCQ_PLUG_BUFFER */
	NETBUF_PLUG_RELEASE_ONE, /* TCQ_PLUG_RELEASE_ONE */
};

struct netbuf_plug_epochs {
	bool closed;        /* the qdisc holds a closed, unreleased count */
	uint64_t closed_at; /* the epoch whose postsuspend closed it: its ACK releases it */
	bool merged;        /* epochs closed since, still in the qdisc's open count */
	uint64_t merged_to; /* the newest of them */
	bool any;           /* an epoch was closed ... */
	uint64_t last;      /* ... the newest is this */
};

/* Decides the command for event ev of epoch (at most one); *next is the
 * state once that command went through (the caller keeps *s if sending it
 * failed). 0, or -EINVAL for an event out of the epoch contract's order
 * (a postsuspend not after the last one, a commit of an epoch not closed). */
int netbuf_plug_decide(const struct netbuf_plug_epochs *s, enum netbuf_plug_event ev,
		       uint64_t epoch, struct netbuf_plug_epochs *next, enum netbuf_plug_cmd *cmd);

#endif
