/* Checkpoint devices: the one interface through which the epoch loop drives
 * everything that must move in step with the guest's memory checkpoints
 * (network output buffering, disk replication, external hook scripts).
 *
 * Epoch contract, as seen by a device:
 *   setup       once, before the first checkpoint. From its return the
 *               device holds the guest's output (it is not released until a
 *               commit says so).
 *   postsuspend the guest has just been paused at the end of epoch N:
 *               everything held and not yet assigned to an epoch belongs
 *               to N; what the guest produces after resume belongs to N+1.
 *   preresume   the guest is about to run again (epoch N+1 begins).
 *   commit      the secondary acknowledged epoch N (memory and disk):
 *               release everything of epochs <= N.
 *   teardown    release everything still held and undo setup; must cope
 *               with a partial setup and be safe to call twice.
 *
 * postsuspend and preresume run while the guest is paused: they must be
 * quick (a netlink message, a barrier record), never network round trips.
 * All callbacks return 0 or -errno. Members marked "may be NULL" are
 * skipped by the epoch loop; the others are required.
 */
#ifndef HA_PRIMARY_CKPT_DEV_H
#define HA_PRIMARY_CKPT_DEV_H

#include <stddef.h>
#include <stdint.h>

struct ckpt_dev;

struct ckpt_dev_ops {
	const char *kind; /* e.g. "netbuf-plug"; for logs and status */
	int (*setup)(struct ckpt_dev *dev);
	int (*postsuspend)(struct ckpt_dev *dev, uint64_t epoch); /* may be NULL */
	int (*preresume)(struct ckpt_dev *dev, uint64_t epoch);   /* may be NULL */
	int (*commit)(struct ckpt_dev *dev, uint64_t epoch);      /* may be NULL */
	void (*teardown)(struct ckpt_dev *dev);
	/* One human-readable status line (counters, drops). May be NULL. */
	int (*status)(struct ckpt_dev *dev, char *buf, size_t len);
	/* Frees the device (after teardown). May be NULL. */
	void (*destroy)(struct ckpt_dev *dev);
};

struct ckpt_dev {
	const struct ckpt_dev_ops *ops;
	char name[64]; /* e.g. the interface it buffers */
	void *priv;
};

#endif
