/* What `ha-ctl status` shows of a primary: a snapshot taken under the
 * protection's lock (protect.c), formatted here, line by line, as
 * docs/operator-guide.md documents it; ha-sla parses the quantile and
 * histogram lines. */
#ifndef HA_PRIMARY_STATUS_H
#define HA_PRIMARY_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/hist.h"
#include "common/report.h"
#include "primary/interval.h"
#include "primary/lease.h"

/* The running totals of a protection (every session). */
struct prot_stats {
	uint64_t epochs, pause_ns_sum, pause_ns_last, pause_ns_max;
	uint64_t pages_sum, wire_sum, raw_sum;
	uint64_t ack_ns_last, ack_ns_sum, acks;
	uint64_t ack_at_ns; /* when the last ACK was read; 0: none yet */
	uint64_t stretched, degradations, reprotections;
	uint64_t long_pauses; /* epochs whose pause stretched the period */
	struct hist pause_us, ack_us;
};

/* The pre-copy of a session that is starting: round 0 walks the guest's
 * physical map (pfn 0 up to total), later rounds its dirty pages. */
struct prot_sync {
	bool active;
	unsigned round;
	uint64_t pos, total; /* pfns (or dirty pages) walked, to walk */
	uint64_t pages;	     /* pages sent in this round */
	uint64_t t0_ns;	     /* the round's start */
};

/* The names of enum prot_state (prot_int.h), in its order: stable
 * identifiers for status and metrics. */
#define PROT_NSTATES 4
extern const char *const prot_state_names[PROT_NSTATES];

struct prot_status {
	const char *domain;
	const char *peer;  /* NULL: none (-b) */
	const char *state; /* "protected", ... */
	unsigned state_idx; /* in prot_state_names */
	uint64_t state_since_ns;
	char reason[256];  /* why it is degraded; "" */
	uint64_t epoch;	   /* the next to close */
	int64_t acked;	   /* -1: none */
	unsigned interval_ms;
	struct prot_stats stats;
	/* --interval auto */
	bool auto_on;
	struct ival_est est;
	unsigned sla_p99_ms, interval_min_ms, interval_max_ms;
	const char *witness; /* the lease's status line; NULL: no witness */
	struct lease_info lease;
	struct prot_sync sync;
	uint64_t now_ns;
	uint64_t held_age_ns; /* the oldest held output's wait, at most */
	bool held_known;
	uint64_t held_packets;
	int64_t held_bytes; /* -1: not known (NFQUEUE) */
};

/* The percentage, rate (MiB/s) and time left (s) of a pre-copy round at
 * now_ns; eta_s is -1 while unknown. */
void prot_sync_progress(const struct prot_sync *s, uint64_t now_ns, unsigned *pct, double *mibs,
			long *eta_s);

/* Everything but the devices' lines, which follow it. */
void prot_status_print(const struct prot_status *s, FILE *out);
/* The same for machines (common/report.h; docs/monitoring.md). */
void prot_status_report(const struct prot_status *s, struct report *r);

#endif
