/* The state of a secondary's files, inside secondary/ only: receive.c
 * (sessions with a primary, the record dispatcher, the control socket)
 * and takeover.c (fencing, the witness's lease, activation). */
#ifndef HA_SECONDARY_RX_INT_H
#define HA_SECONDARY_RX_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "checkpoint/codec.h"
#include "checkpoint/stream_format.h"
#include "common/ctl.h"
#include "common/notify.h"
#include "diskrepl/drbd.h"
#include "diskrepl/replica.h"
#include "hv/hv.h"
#include "secondary/ckbuf.h"
#include "secondary/receive.h"

enum rx_state { RX_WAITING, RX_SYNCING, RX_PROTECTED, RX_FENCING, RX_FAILING_OVER, RX_ACTIVE };

struct rx {
	const struct rx_config *cfg;
	const struct hv_restore_ops *ops;
	pthread_mutex_t mu;
	struct notify *notify; /* --notify-cmd; NULL: none */
	enum rx_state state;
	uint64_t state_since_ns, commit_at_ns; /* CLOCK_MONOTONIC */
	char domain[64];
	char peer[64];
	_Atomic uint64_t committed; /* UINT64_MAX: none */
	uint64_t checkpoints, pages, bytes, apply_ns_last, failover_ms;
	unsigned fence_attempts;
	char fence_result[420];
	char last_error[320];
	char last_verify[200]; /* the last HA_VERIFY's result, "" if none */
	bool switched;	       /* under mu: activated by a switchover, not a failover */
	bool restored;	       /* under mu: activated from a file (--restore) */
	struct ctl_server *ctl;
	struct ctl_commands cmds;
	bool busy;    /* under mu: a session holds the slot */
	bool closing; /* under mu: rx_run ends, no session may start */
	uint64_t refusal_window_ns; /* under mu: refused connections logged (receive.c) */
	unsigned refusals, refusals_unlogged;

	/* The current session. */
	struct hv_copy *copy;
	struct hv_state state_recs;
	struct ckbuf *buf;
	struct ckpt_decoder *dec;
	struct replica *disks[CKPT_DISK_MAX];
	bool disk_on[CKPT_DISK_MAX]; /* configured by this session's primary */
	struct drbd_res drbd[CKPT_DISK_MAX];
	unsigned drbd_seen; /* HA_DRBD_DISK records of this session */
};

#define DRBD_PROMOTE_TIMEOUT_MS 30000

void rx_set_state(struct rx *x, enum rx_state s);
void rx_set_state_locked(struct rx *x, enum rx_state s); /* mu held */
bool rx_stop_requested(void);

/* The primary is lost: fences it (--fence-cmd), waits for the lease
 * (--witness), promotes the disks and activates the last committed
 * checkpoint. Returns 1 when the domain runs here, -EALREADY when the
 * primary is known alive (discard the copy), another -errno when it was
 * not activated. */
int rx_take_over(struct rx *x, const char *why);
/* The primary handed the domain over (HA_SWITCHOVER): its domain is
 * suspended for good (or stopped) at the last committed checkpoint, so no
 * fencing;
 * promotes the disks and activates it. 1 when the domain runs here, else
 * -errno. */
int rx_switch_over(struct rx *x);
/* --restore: the file ended; activates its last complete checkpoint. 1
 * when the domain runs here, else -errno. */
int rx_restore(struct rx *x);

/* postcopy.c: a migration whose last checkpoint left pages out
 * (HA_POSTCOPY, H among its state records): the copy runs before they are
 * all here. */
struct rx_postcopy;
struct fo_link;
/* Before the activation: the copy drops those pages and, from here on,
 * its first touch of one is asked for on L (HA_PC_REQ), and the pages
 * that come on L are placed, until HA_PC_END. 0, or -errno with ERR
 * saying why (the copy then does not run). */
int rx_postcopy_begin(struct rx *x, struct fo_link *l, const struct ckpt_ha_postcopy_hdr *h,
		      struct rx_postcopy **out, char *err, size_t errlen);
/* After the activation: waits until every page is placed (0: the domain is
 * whole, the primary told with HA_PC_END) or the postcopy fails: the link
 * breaks, the primary ends it short, or the domain waits longer than
 * --postcopy-stall for a page (-errno, logged; the caller stops the
 * domain). Frees PC. */
int rx_postcopy_finish(struct rx_postcopy *pc);
/* The activation failed: stops serving, frees PC. */
void rx_postcopy_abort(struct rx_postcopy *pc);

/* serve.c: a replica served by ha-diskrepl once the domain runs here
 * (--disk IMAGE,serve=NAME). */
/* Where export NAME listens: $HA_RUN_DIR/ha-diskrepl/NAME.nbd. */
void rx_serve_path(const char *name, char *buf, size_t len);
/* Starts ha-diskrepl serving IMAGE as NAME (in its own session: it
 * outlives ha-receive), with its change bitmap in BITMAP (NULL: in
 * memory) and IMAGE a complete copy of LINEAGE (16 octets; NULL: unknown,
 * the next protection copies the whole disk), and waits until it accepts
 * connections: 0, or -errno with ERR saying why. */
int rx_serve_disk(const char *name, const char *image, const char *bitmap,
		  const uint8_t *lineage, char *err, size_t errlen);

#endif
