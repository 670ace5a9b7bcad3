/* The secondary: receives a protected domain's checkpoints, commits each
 * one whole, acknowledges it, and activates the domain from the last
 * committed checkpoint when the primary is lost.
 *
 * Per connection: headers -> HA_DOMAIN_CONFIG -> an incoming domain is
 * created -> pre-copy pages are written straight into it (nothing is
 * committed yet, so nothing can be lost) -> from then on every record is
 * buffered until CHECKPOINT(N), whose trailer the reader has verified; the
 * checkpoint is applied all or nothing and ACK(N) goes back.
 *
 * Replicated disks (diskrepl/replica.h): HA_DISK_WRITE records go to each
 * disk's journal; CHECKPOINT(N) first makes every disk's epoch N durable
 * (its barrier must have arrived), then commits memory, then sends
 * ACK(N, memory|disk), then applies the journalled writes to the replicas.
 * On failover the replicas hold exactly the committed state.
 *
 * A broken stream, a validation failure or silence past the down timer
 * means failover once a checkpoint is committed; before that it is an
 * error and the incoming domain is discarded. A local failure (a replica's
 * disk full or failing) is reported to the primary as HA_ERROR and ends
 * the session without failover: the primary is alive and runs degraded.
 * END means a clean stop.
 *
 * DRBD resources are checked at start (Secondary here) and promoted on
 * failover, after fencing and before activation; a disk that is not
 * UpToDate, or a failed promotion, means no activation.
 *
 * With a fence command, activation happens only after it reported the
 * primary fenced; a failed fence leaves the domain passive (state
 * "fencing", retried every fence_retry_ms until it succeeds or a stop).
 * With a witness, activation waits for the witness to grant the pair's
 * lease; if the primary is seen renewing it (alive beyond the partition),
 * the copy is discarded and the secondary waits for the primary to
 * re-protect.
 */
#ifndef HA_SECONDARY_RECEIVE_H
#define HA_SECONDARY_RECEIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "checkpoint/extdev.h"
#include "checkpoint/stream_format.h"
#include "failover/tls.h"
#include "hv/hv.h"

struct rx_config {
	const char *listen;     /* host:port */
	unsigned timeout_ms;    /* down timer for the primary */
	/* A postcopy's bound on how long the domain may wait for a page it
	 * touched before the postcopy counts as failed (ms). */
	unsigned postcopy_stall_ms;
	size_t max_ckpt_bytes;  /* memory bound of one buffered checkpoint */
	const char *ctl_path;   /* NULL: derived from the domain name */
	/* --domain: the one domain this secondary serves (its control socket
	 * exists from the start, and a primary of another domain is refused);
	 * NULL: whichever the first primary announces. */
	const char *domain;
	bool once;              /* exit after the first session ends (tests) */
	/* --restore FILE: no listening; the stream comes from FILE (written
	 * by ha-protect --save) and its last complete checkpoint is
	 * activated where the file ends. */
	const char *restore_path;
	/* With restore_path: write that checkpoint to this file in the
	 * hypervisor's own save format (Xen: for `xl restore`) instead of
	 * running it. */
	const char *save_file;
	/* Replicated disks, by index: replica image and journal (NULL: next
	 * to the image). Opened, and their journals recovered, at start. */
	const char *disks[CKPT_DISK_MAX];
	const char *journals[CKPT_DISK_MAX];
	/* Once the domain runs here, ha-diskrepl serves the replica as this
	 * export and the domain reaches its disk through it, so that this
	 * host can protect it in turn (NULL: the domain opens the replica). */
	const char *serve[CKPT_DISK_MAX];
	/* Failback: the replica is this disk's old primary image, whose
	 * ha-diskrepl kept this bitmap file (replica_adopt); NULL: none. The
	 * served export (serve) keeps its bitmap there too. */
	const char *bitmaps[CKPT_DISK_MAX];
	unsigned ndisks;
	unsigned long long journal_limit; /* compaction threshold, octets (0: default) */
	/* DRBD resources (diskrepl/drbd.h) replicating the domain's disks:
	 * Secondary here, promoted on failover before activation. With no
	 * replica above, the first one's device is the resumed domain's disk. */
	const char *drbd[CKPT_DISK_MAX];
	unsigned ndrbd;
	struct fo_tls *tls; /* the link's TLS; NULL: plain TCP (--insecure) */
	/* Fencing (failover/fence.h): run before activation; activation
	 * waits until it succeeds. NULL: none (unsafe on a partition). */
	const char *fence_cmd;
	unsigned fence_timeout_ms;
	unsigned fence_retry_ms;
	/* The witness (failover/witness.h), asked for the pair's lease before
	 * activation; NULL: none. Uses the link's TLS settings. */
	const char *witness;
	unsigned witness_ttl_ms;
	struct fo_tls *witness_tls; /* client side of the same settings */
	/* --notify-cmd (common/notify.h); NULL: none. */
	const char *notify_cmd;
	unsigned notify_timeout_ms;
	/* --ext-device scripts (checkpoint/extdev.h), checked at startup:
	 * called for a failover's activation (check, prepare, transfer,
	 * commit, before anything else is activated), rolled back when the
	 * activation fails after them. Not in a switchover: the primary
	 * calls its own. */
	const char *ext[EXTDEV_MAX];
	unsigned n_ext;
	unsigned ext_timeout_ms;
};

/* Runs until a failover completed (returns 1: the domain runs here), a
 * switchover did (2: the same, handed over by the primary), a restore did
 * (3), a stop was requested (0), or a fatal error (-errno). */
int rx_run(const struct rx_config *cfg, const struct hv_restore_ops *ops);
void rx_request_stop(void);

#endif
