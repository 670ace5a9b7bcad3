/* The primary: protects one domain by checkpointing it to a secondary.
 *
 *   pre-copy rounds (guest running) -> devices setup -> epochs:
 *     pause | harvest | copy to staging | save state | devices postsuspend | resume
 *     sender thread: encode, write pages + state + trailer + CHECKPOINT(N)
 *     ack thread: ACK(N) -> devices commit(N) (output of N released)
 *
 * The guest is paused only for the harvest and the copies; compression and
 * network I/O happen on the sender thread while the next epoch runs. At most
 * max_inflight epochs are unacknowledged; when the secondary falls behind,
 * the next pause waits (the epoch stretches) rather than queueing without
 * bound. When the secondary is lost the primary releases held output, runs
 * the guest unprotected (degraded) and keeps trying to re-protect. With a
 * witness, it does so only while it holds the pair's lease: without the
 * secondary and the lease it pauses the domain and keeps its output held.
 */
#ifndef HA_PRIMARY_PROTECT_H
#define HA_PRIMARY_PROTECT_H

#include <stdbool.h>
#include <stddef.h>

#include "failover/tls.h"
#include "hv/hv.h"
#include "checkpoint/ckpt_dev.h"
#include "primary/devset.h"

#define PROT_MAX_DEVS DEVSET_MAX
/* Disks: the devices but the output buffer and the external devices. */
#define PROT_MAX_DISKS (PROT_MAX_DEVS - 2)

struct extdev;

struct prot_config {
	const char *domain;   /* "kvm:NAME" */
	const char *peer;     /* host:port; NULL with blackhole */
	struct fo_tls *tls;   /* the link's TLS; NULL: plain TCP (--insecure) */
	struct fo_tls *witness_tls; /* the witness's (client side); NULL: plain TCP */
	unsigned interval_ms; /* epoch period */
	unsigned timeout_ms;  /* down timer for the secondary */
	unsigned max_inflight;
	unsigned precopy_rounds;
	/* A pre-copy round that leaves at most this many pages dirty ends the
	 * pre-copy (so does one that does not shrink the dirty set). */
	unsigned converge_pages;
	/* --migrate: once the first checkpoint is acknowledged, switch over
	 * (a live migration); one session, no re-protection. */
	bool migrate;
	/* --postcopy (with migrate): after the pre-copy, the last checkpoint
	 * leaves out the pages still dirty; the secondary runs the domain at
	 * once and they follow, those it touches first (switchover.c). */
	bool postcopy;
	unsigned retry_ms; /* between re-protection attempts */
	bool compress;
	size_t cache_pages;
	int level;
	bool blackhole;        /* -b: stream to save_path or /dev/null, no ACKs */
	const char *save_path; /* also write the stream here */
	/* --stop (with -b, --save and max_epochs): the last checkpoint leaves
	 * the domain suspended; once the file holds it durably, the domain is
	 * stopped (a save that does not run on). */
	bool stop_at_end;
	bool need_disk_ack;
	const char *ctl_path;
	struct ckpt_dev *devs[PROT_MAX_DEVS];
	unsigned ndevs;
	/* --ext-device scripts (checkpoint/extdev.h; NULL: none). They take
	 * part in a switchover (check and prepare before its last pause,
	 * transfer once the domain is suspended, commit once the secondary
	 * acknowledged the last checkpoint) or, with migrate, in the
	 * migration (check before connecting); protection's own calls go
	 * through their entry in devs (not with migrate). */
	struct extdev *ext;
	/* --interval auto: p99 of the output latency checkpointing may add
	 * (0: the interval stays interval_ms unless ha-ctl changes it); the
	 * interval then moves within [interval_min_ms, interval_max_ms]. */
	unsigned sla_p99_ms;
	unsigned interval_min_ms, interval_max_ms;
	/* The witness (failover/witness.h): while running without the
	 * secondary the domain runs only while the pair's lease is held;
	 * NULL: none. */
	const char *witness;
	unsigned witness_ttl_ms;
	/* Stop after this many checkpoints (0: run until stopped). */
	unsigned long long max_epochs;
	/* --event-log: appends one line per output-commit event, for tests
	 * that check invariant 1 against packet captures (NULL: none):
	 *   <CLOCK_MONOTONIC ns> setup|closed N|ack N|released N|teardown|discard
	 * setup: the devices hold output from now on; closed N: epoch N's
	 * barrier is set (postsuspend returned); ack N: ACK(N) read, before any
	 * of N's output is released; released N: commit(N) returned; teardown:
	 * everything held released (protection over); discard: dropped. */
	const char *event_log;
	/* --notify-cmd (common/notify.h; NULL: none), each run bounded by
	 * notify_timeout_ms. */
	const char *notify_cmd;
	unsigned notify_timeout_ms;
	/* Told (from the protecting thread) when the secondary comes to hold
	 * a copy it may activate (HELD: a session is protected) and when it no
	 * longer does (it confirmed END and discarded it): what the role
	 * record keeps (failover/role.h). NULL: nobody is told. */
	void (*on_copy)(void *ctx, bool held);
	void *on_copy_ctx;
};

/* prot_run's return when the domain was handed over (ha-ctl switchover):
 * it runs at the secondary now. */
#define PROT_HANDED_OVER 2
/* Runs until stopped (SIGINT/SIGTERM, ha-ctl stop, max_epochs) or handed
 * over. Returns 0 on a clean stop; PROT_HANDED_OVER after a switchover;
 * -EINPROGRESS when a switchover's outcome is unknown (the domain left
 * suspended or stopped here); -ESRCH when the domain is gone (the
 * secondary takes over); -ESHUTDOWN when the guest ended itself; -ESTALE
 * when it stopped with the domain left paused by the witness rule
 * (superseded, or no lease); another -errno when protection could not
 * start at all. */
int prot_run(const struct prot_config *cfg, const struct hv_save_ops *ops, struct hv_dom *dom);

/* Asks a running prot_run to stop (async-signal-safe). */
void prot_request_stop(void);
/* Whether a stop was asked for (a signal, ha-ctl stop). */
bool prot_stop_requested(void);

#endif
