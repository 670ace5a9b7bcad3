/* The state a protection's files share, inside primary/ only:
 *   protect.c   setup, sessions (connect, sync, wind down), control socket
 *   pipeline.c  the pause path, the epoch loop, pre-copy and the sender
 *   acker.c     the back channel: ACKs release output; the interval feed
 * Locking: mu guards the session's state, the queue of staged epochs and
 * the figures; cv signals their changes. The devices (devset.h) and the
 * lease (lease.h) have locks of their own, never taken with mu held.
 */
#ifndef HA_PRIMARY_PROT_INT_H
#define HA_PRIMARY_PROT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "checkpoint/codec.h"
#include "common/bitmap.h"
#include "common/ctl.h"
#include "common/log.h"
#include "common/notify.h"
#include "failover/link.h"
#include "hv/hv.h"
#include "primary/devset.h"
#include "primary/interval.h"
#include "primary/lease.h"
#include "primary/protect.h"
#include "primary/status.h"

#define NSLOTS 2
#define LAT_RING 256
#define PC_REQ_MAX 4096
#define BATCH CKPT_CODEC_BATCH_MAX

enum prot_state { ST_SYNC, ST_PROTECTED, ST_DEGRADED, ST_STOPPING };

/* One epoch's staged copy: what the sender ships while the guest runs on. */
struct slot {
	bool busy;
	uint64_t epoch;
	uint32_t npages;
	uint64_t *pfns;
	uint8_t *pages;
	const void **ptrs;
	struct hv_state st;
};

/* What the interval controller needs of one epoch, kept until its ACK. */
struct epoch_rec {
	uint64_t epoch, pause_ns, pages, send_ns;
	bool sent;
};

struct prot {
	const struct prot_config *cfg;
	const struct hv_save_ops *ops;
	struct hv_dom *dom;
	struct hv_info info;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum prot_state state;
	uint64_t state_since_ns; /* CLOCK_MONOTONIC */
	char reason[256];
	_Atomic unsigned interval_ms;
	/* ha-ctl verify: the next checkpoint carries HA_VERIFY. */
	atomic_bool verify_req;

	struct fo_link *link;
	int save_fd;
	struct ckpt_encoder *enc;
	struct bitmap dirty;
	struct slot slots[NSLOTS];
	unsigned q[NSLOTS], qhead, qlen;

	uint64_t next_epoch;      /* the epoch the next pause closes */
	int64_t sent, acked;      /* last epoch written / acknowledged, -1 none */
	_Atomic uint64_t committed; /* for heartbeats */
	uint64_t paused_at[LAT_RING];
	struct epoch_rec rec[LAT_RING];

	/* --interval auto (under mu). */
	bool auto_on;
	struct ival ival;
	bool unreachable_logged;

	pthread_t sender, acker;
	bool sender_running, acker_running;
	struct devset *devs;
	bool resync_full; /* the secondary asked for complete disk copies */
	/* Failback: the chunks each disk's replica asked for (HA_DISK_NEED
	 * bodies, malloc'd; NULL none), resent by the next session. */
	uint8_t *need[CKPT_DISK_MAX];
	uint32_t need_len[CKPT_DISK_MAX];

	struct prot_stats stats;
	struct log_rl retry_rl; /* "degraded: retrying" */
	struct notify *notify;	/* --notify-cmd; NULL: none */
	struct prot_sync sync;	/* the pre-copy in progress (under mu) */
	uint64_t epoch_wire_start;
	struct ctl_server *ctl;
	struct ctl_commands cmds;
	FILE *events; /* --event-log, line-buffered; NULL: none */

	/* The witness lease (lease.h); NULL: no witness. */
	struct lease *lease;
	bool end_confirmed; /* the secondary answered our END (a stop) */

	/* The last checkpoint failure left the domain suspended (its resume
	 * failed): only the secondary's copy can run on. */
	bool frozen;
	/* The guest shut itself down, rebooted or crashed (-ESHUTDOWN from
	 * the backend): protection ends, the secondary discards its copy. */
	bool guest_ended;
	bool domain_gone; /* destroyed, or its VMM died: the secondary takes over */

	/* ha-ctl switchover: the next checkpoint is the last here (the domain
	 * stays suspended), then the domain is handed over (switchover.c). */
	atomic_bool switchover_req;
	int64_t switch_epoch;	   /* under mu: that checkpoint, -1 none */
	uint64_t switch_paused_at; /* when its pause began */
	unsigned switch_answer;	   /* under mu: the secondary's last step (READY, RUNS), 0 none */
	int peer_error;		   /* under mu: the code of the secondary's HA_ERROR */
	enum { SW_NONE, SW_DONE, SW_UNCONFIRMED } switch_end;
	int file_fd; /* -b: the file the link writes (the link owns it), -1 none */
	bool stopped_saved; /* --stop: the domain was stopped, its state in the file */
	uint64_t session_t0; /* when the current session began (a migration's start) */

	/* --postcopy (switchover.c): the pages the last checkpoint left out;
	 * under mu, the pages the destination asked for (a ring; more are
	 * dropped, they come in the background anyway), and its HA_PC_END
	 * (pc_placed: the pages its domain waited for). */
	struct bitmap pc_need;
	uint64_t pc_req[PC_REQ_MAX];
	unsigned pc_req_head, pc_req_len;
	bool pc_end;
	uint64_t pc_waited;
};

/* switchover.c: the postcopy's request queue (struct prot.pc_req). */
void prot_pc_request(struct prot *p, const uint64_t *pfns, uint32_t n);

/* protect.c */
/* The session's secondary is lost (the first call of a session says why). */
__attribute__((format(printf, 2, 3))) void prot_degrade(struct prot *p, const char *fmt, ...);
/* The session is in state WANT and no stop was requested. */
bool prot_running(struct prot *p, enum prot_state want);
/* Changes the state (mu held), noting since when. */
void prot_set_state(struct prot *p, enum prot_state s);
/* One --event-log line (protect.h), stamped T or now. */
void prot_event_at(struct prot *p, uint64_t t, const char *what, int64_t epoch);
void prot_event(struct prot *p, const char *what, int64_t epoch);

/* pipeline.c */
int prot_send_config(struct prot *p);
/* Pre-copy rounds of the running guest: 0, or -errno (the session degraded). */
int prot_precopy(struct prot *p);
/* Epochs until the session leaves PROTECTED or a stop: 0, or the -errno of
 * a failed checkpoint (logged; frozen and guest_ended say what is left). */
int prot_epoch_loop(struct prot *p);
/* prot_epoch_loop's return after a switchover's last checkpoint. */
#define PROT_LOOP_SWITCHOVER 1
void *prot_sender_main(void *arg);

/* switchover.c */
/* After the last checkpoint of ha-protect -b --save --stop: END, the file
 * synced, the domain stopped. 0, or -errno with the domain resumed here
 * (or left suspended if that failed: frozen). */
int prot_save_stop(struct prot *p);
/* After the last checkpoint (PROT_LOOP_SWITCHOVER): its ACK, the domain
 * stopped here, the devices handed over, HA_SWITCHOVER, the secondary's
 * answer. 0 when the domain runs there (switch_end SW_DONE); -errno with
 * the domain resumed here when the secondary refused before anything
 * changed hands; -EINPROGRESS with it left suspended (or stopped) when the
 * outcome is not known (switch_end SW_UNCONFIRMED). */
int prot_switchover(struct prot *p);

/* acker.c */
void *prot_acker_main(void *arg);
/* --interval auto: feeds the controller with acknowledged EPOCH (under mu). */
void prot_interval_feed(struct prot *p, uint64_t epoch, uint64_t acked_at);

#endif
