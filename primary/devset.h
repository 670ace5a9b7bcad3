/* The checkpoint devices of one protected domain (checkpoint/ckpt_dev.h),
 * driven as one: each call runs its phase on every device, in the order
 * given (teardown and discard in reverse). The epoch loop, the sender, the
 * ACK thread, the witness thread and the control socket never interleave
 * their calls on one device (unless it is concurrent), but a slow call on
 * one device (a flush waiting for the network) holds up no other device,
 * and a concurrent device's slow flush no pause. setup, teardown and
 * discard wait for every other call.
 *
 * Every phase between setup and teardown reaches the devices only while
 * they are up (setup succeeded, no teardown or discard since); a device
 * that was connected but never set up is torn down all the same.
 */
#ifndef HA_PRIMARY_DEVSET_H
#define HA_PRIMARY_DEVSET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "checkpoint/ckpt_dev.h"

#define DEVSET_MAX 5

/* The per-epoch phases (ckpt_dev.h); a device whose callback is NULL is
 * skipped. */
enum devset_phase {
	DEVSET_POSTSUSPEND,
	DEVSET_PRERESUME,
	DEVSET_FLUSH,
	DEVSET_COMMIT,
	DEVSET_HANDOVER,
};

/* Called under the set's lock when the devices start to hold output
 * ("setup") and before they let it go ("teardown") or drop it
 * ("discard"): the --event-log lines (protect.h). */
typedef void devset_event_fn(void *ctx, const char *what);

struct devset;

/* DEVS (at most DEVSET_MAX) stay the caller's. 0 or -errno. */
int devset_new(struct ckpt_dev *const *devs, unsigned ndevs, devset_event_fn *event, void *ctx,
	       struct devset **out);
void devset_free(struct devset *ds);

/* Starts the devices that replicate state of their own (connect). */
int devset_connect(struct devset *ds, const struct ckpt_sink *sink);
/* Sets every device up; on a failure, tears down what was set up or
 * connected. 0 or the first -errno. */
int devset_setup(struct devset *ds);
/* Runs PHASE of EPOCH on every device until one fails: 0 or that -errno
 * (logged, naming the device). 0 when the devices are not up. */
int devset_call(struct devset *ds, enum devset_phase phase, uint64_t epoch);
/* Whether any device takes part in PHASE (its callback is set). */
bool devset_has(struct devset *ds, enum devset_phase phase);
/* Protection ends: everything held is released. */
void devset_teardown(struct devset *ds);
/* The domain is gone: everything held is dropped (discard, else teardown). */
void devset_discard(struct devset *ds);
/* One "device NAME (KIND): STATUS" line per device. */
void devset_status(struct devset *ds, FILE *out);
/* The output its devices hold now (bytes -1: not known); false when no
 * device holds output, or none could say. */
bool devset_held(struct devset *ds, uint64_t *packets, int64_t *bytes);

#endif
