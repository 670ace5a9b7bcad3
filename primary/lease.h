/* The witness lease of a protected domain (failover/witness.h), as the
 * primary keeps it: a thread renews the pair's lease every TTL/6 and
 * counts it valid for TTL/2 from when the request was sent, a margin of
 * half the lease before the witness may hand it to the secondary.
 *
 * The rule it enforces: without its secondary, the domain runs (and its
 * held output is released) only under a valid lease and once the witness
 * has taken the claim "alone", so that the secondary's now stale copy is
 * never activated. Otherwise the domain is paused, its output stays held
 * and no new session starts, until the same lease comes back (the domain
 * resumes, unprotected) or the copy is found superseded: the secondary
 * held the lease since, or may have (none was held when it was lost).
 * A superseded copy never runs again.
 *
 *   session lost -> lease_secondary_lost -> lease_may_release:
 *       claim "alone" granted under the lease: true, run unprotected
 *       else: pause, hold, block sessions (lease_blocks)
 *   first ACK of a new session -> lease_protected: claim "protected"
 *
 * Every function is safe to call from any thread.
 */
#ifndef HA_PRIMARY_LEASE_H
#define HA_PRIMARY_LEASE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/notify.h"
#include "failover/tls.h"
#include "hv/hv.h"
#include "primary/devset.h"

struct lease_config {
	const char *witness; /* HOST:PORT */
	struct fo_tls *tls;  /* NULL: plain TCP */
	const char *pair;    /* the pair's name at the witness */
	const char *domain;  /* for the thread's logs */
	unsigned ttl_ms;
	/* What is paused and resumed for want of the lease, and the devices
	 * whose held output is released when the lease comes back. */
	const struct hv_save_ops *ops;
	struct hv_dom *dom;
	struct devset *devs;
	struct notify *notify; /* event hooks (common/notify.h); NULL: none */
};

struct lease;

/* Starts asking for the lease. CFG's strings and objects must outlive the
 * lease. 0 or -errno. */
int lease_start(const struct lease_config *cfg, struct lease **out);
/* Stops renewing (the secondary then waits for the lease to expire); the
 * state stays readable until lease_free. */
void lease_stop(struct lease *l);
void lease_free(struct lease *l);

/* A session may start only while this is false. */
bool lease_blocks(struct lease *l);
/* A session starts: -EAGAIN if lease_blocks, else 0 (the domain is no
 * longer unprotected). */
int lease_session_begins(struct lease *l);
/* The session's secondary was lost now (for the pause's own timing log). */
void lease_secondary_lost(struct lease *l);
/* The secondary's copy is current again (the session's first ACK). */
void lease_protected(struct lease *l);
/* The session ended without its secondary: may its held output be
 * released and the domain run on? Waits for the claim "alone" while the
 * lease is valid; if it is not granted, pauses the domain, keeps its
 * output held and returns false. */
bool lease_may_release(struct lease *l);
/* The domain is paused for want of the lease with its output held. */
bool lease_output_held(struct lease *l);
/* One line for the control socket's status. */
void lease_status(struct lease *l, char *buf, size_t len);
/* The same for machines. */
struct lease_info {
	bool valid;	     /* held, in this host's view */
	double remaining_s;  /* of it */
	double answer_age_s; /* since the witness last answered; -1: never */
	bool superseded, paused, unprotected;
};
void lease_info(struct lease *l, struct lease_info *out);

#endif
