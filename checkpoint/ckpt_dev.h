/* Checkpoint devices: the one interface through which the epoch loop drives
 * everything that must move in step with the guest's memory checkpoints
 * (network output buffering, disk replication, external hook scripts).
 *
 * Epoch contract, as seen by a device:
 *   connect     the stream to the secondary is open, before pre-copy: a
 *               device that replicates state of its own (a disk) starts
 *               sending it through the sink, concurrently with pre-copy.
 *   setup       once, before the first checkpoint (a replicating device
 *               returns once its initial synchronisation is complete).
 *               From its return the
 *               device holds the guest's output (it is not released until a
 *               commit says so).
 *   postsuspend the guest has just been paused at the end of epoch N:
 *               everything held and not yet assigned to an epoch belongs
 *               to N; what the guest produces after resume belongs to N+1.
 *   preresume   the guest is about to run again (epoch N+1 begins).
 *   flush       the sender is about to write CHECKPOINT(N): returns once
 *               every record of epoch N the device ships is in the stream.
 *   commit      the secondary acknowledged epoch N (memory and disk):
 *               release everything of epochs <= N.
 *   handover    a switchover: the domain stopped here for good after
 *               epoch N, which the secondary acknowledged; give up what
 *               the secondary's copy needs (a DRBD resource: Secondary
 *               here, so that the peer can promote it).
 *   teardown    release everything still held and undo setup; must cope
 *               with a partial setup and be safe to call twice.
 *   discard     instead of teardown when the domain is gone: drop what is
 *               still held (epochs the secondary never acknowledged, which
 *               its copy resumes without), then undo setup as teardown.
 *
 * postsuspend and preresume run while the guest is paused: they must be
 * quick (a netlink message, a barrier request), never network round trips.
 * They run on the epoch loop's thread, flush on the sender's, commit on
 * the ACK thread's: the calls on one device are serialized for it, unless
 * it says it serializes itself (concurrent), so that a slow flush does not
 * hold a pause; calls on different devices may overlap. setup, teardown
 * and discard never overlap any other call.
 * teardown follows connect or setup, whichever came last.
 * All callbacks return 0 or -errno. Members marked "may be NULL" are
 * skipped by the epoch loop; the others are required.
 */
#ifndef HA_CHECKPOINT_CKPT_DEV_H
#define HA_CHECKPOINT_CKPT_DEV_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>
#include <sys/uio.h>

#include "checkpoint/stream_format.h"

struct ckpt_dev;

/* Where a device writes records of its own into the forward stream. */
struct ckpt_sink {
	/* Writes one record; safe to call from any thread. 0 or -errno. */
	int (*record)(void *ctx, uint32_t type, const struct iovec *iov, int iovcnt);
	/* True once the session is ending: long waits give up. */
	bool (*cancelled)(void *ctx);
	void *ctx;
	/* The secondary asked for a complete resynchronisation. */
	bool resync_full;
	/* The chunks each disk's replica asked for (HA_DISK_NEED bodies by
	 * disk index; NULL none): a replicated disk resends them. */
	const uint8_t *need[CKPT_DISK_MAX];
	uint32_t need_len[CKPT_DISK_MAX];
};

struct ckpt_dev_ops {
	const char *kind; /* e.g. "netbuf-plug"; for logs and status */
	/* Its postsuspend, preresume, flush, commit and status may run at
	 * once, from different threads: it locks what they share itself. */
	bool concurrent;
	int (*connect)(struct ckpt_dev *dev, const struct ckpt_sink *sink); /* may be NULL */
	int (*setup)(struct ckpt_dev *dev);
	int (*postsuspend)(struct ckpt_dev *dev, uint64_t epoch); /* may be NULL */
	int (*preresume)(struct ckpt_dev *dev, uint64_t epoch);   /* may be NULL */
	int (*flush)(struct ckpt_dev *dev, uint64_t epoch);       /* may be NULL */
	int (*commit)(struct ckpt_dev *dev, uint64_t epoch);      /* may be NULL */
	int (*handover)(struct ckpt_dev *dev, uint64_t epoch);    /* may be NULL */
	void (*teardown)(struct ckpt_dev *dev);
	void (*discard)(struct ckpt_dev *dev); /* may be NULL: teardown then */
	/* One human-readable status line (counters, drops). May be NULL. */
	int (*status)(struct ckpt_dev *dev, char *buf, size_t len);
	/* Output held now, for status and metrics (*bytes UINT64_MAX: not
	 * known): 0, or -errno when it cannot be read. Called without the
	 * lock the phases take (it must not delay a pause): it locks what it
	 * reads itself. May be NULL (the device holds no output). */
	int (*held)(struct ckpt_dev *dev, uint64_t *packets, uint64_t *bytes);
	/* Frees the device (after teardown). May be NULL. */
	void (*destroy)(struct ckpt_dev *dev);
};

struct ckpt_dev {
	const struct ckpt_dev_ops *ops;
	char name[64]; /* e.g. the interface it buffers */
	void *priv;
};

#endif
