/* External devices: executables the operator lists per pair (a vTPM, a
 * license dongle, a storage reservation, a floating IP) that take part in
 * protection, switchover, migration and failover (docs/devices.md).
 *
 * Each call runs  SCRIPT PHASE OPERATION DOMAIN PEER EPOCH  (EPOCH "-"
 * when none is known yet), with the same values in HA_DEVICE_PHASE,
 * HA_DEVICE_OP, HA_DOMAIN, HA_PEER, HA_EPOCH (and HA_DEVICE_INDEX,
 * HA_DEVICE_COUNT, HA_DEVICE_PASSED), in its own process group, bounded by
 * the timeout (the whole group is killed then: a failure). Its output is
 * logged line by line, naming the device.
 *
 * An operation runs its phases in order; each phase runs on every device
 * in list order. A device "passed" a phase once its call exited 0. When a
 * call fails (non-zero exit, a signal, the timeout), the operation is
 * abandoned: every device that passed at least one phase of it (the one
 * that failed too, if it had passed an earlier phase) is called with
 * rollback, in reverse list order; a script that fails a phase undoes its
 * own part of that phase before it exits. extdev_rollback() does the same
 * when the operation is abandoned for another reason (the secondary
 * refused, the domain could not be resumed). Rollback failures are logged;
 * they change nothing.
 *
 * Protection (EXTDEV_PROTECT) differs: its setup is check then prepare;
 * then, per acknowledged epoch, commit EPOCH, only for the devices whose
 * check printed a line "per-epoch"; it ends with release (not rollback)
 * on the devices that passed prepare.
 *
 * Calls are serialized: one script runs at a time per list.
 */
#ifndef HA_CHECKPOINT_EXTDEV_H
#define HA_CHECKPOINT_EXTDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "checkpoint/ckpt_dev.h"

#define EXTDEV_MAX 16
#define EXTDEV_TIMEOUT_DEFAULT_MS 10000
#define EXTDEV_NO_EPOCH UINT64_MAX

enum extdev_op {
	EXTDEV_PROTECT,
	EXTDEV_SWITCHOVER,
	EXTDEV_MIGRATE,
	EXTDEV_FAILOVER,
	EXTDEV_NOPS,
};

enum extdev_phase {
	EXTDEV_CHECK,
	EXTDEV_PREPARE,
	EXTDEV_TRANSFER,
	EXTDEV_COMMIT,
	EXTDEV_ROLLBACK,
	EXTDEV_RELEASE,
};

struct extdev;

/* PATHS (at most EXTDEV_MAX; the strings stay the caller's) must each be
 * an executable regular file: else -ENOENT, -EACCES or -EINVAL, with what
 * is wrong in ERR. DOMAIN and PEER are copied. 0 or -errno. */
int extdev_new(const char *const *paths, unsigned n, unsigned timeout_ms, const char *domain,
	       const char *peer, struct extdev **out, char *err, size_t errlen);
void extdev_free(struct extdev *xd);
unsigned extdev_count(const struct extdev *xd);
const char *extdev_op_name(enum extdev_op op);
const char *extdev_phase_name(enum extdev_phase phase);

/* Forgets what the devices passed in OP: a new operation starts. */
void extdev_begin(struct extdev *xd, enum extdev_op op);
/* Runs PHASE (check, prepare, transfer or commit) of OP on every device,
 * in order. 0; or, when one failed, the operation is rolled back (above)
 * and -EIO (-ETIMEDOUT for a timeout) is returned, the failure logged
 * naming the device (in WHY when not NULL). For EXTDEV_PROTECT's commit,
 * only the devices that asked for per-epoch calls run, and a failure
 * rolls nothing back. */
int extdev_phase(struct extdev *xd, enum extdev_op op, enum extdev_phase phase, uint64_t epoch,
		 char *why, size_t whylen);
/* OP is abandoned: rollback on every device that passed a phase of it, in
 * reverse order. Then nothing is left passed. */
void extdev_rollback(struct extdev *xd, enum extdev_op op, uint64_t epoch);
/* OP ended: release on every device that passed prepare, in reverse
 * order (protection's end). */
void extdev_release(struct extdev *xd, enum extdev_op op, uint64_t epoch);
/* Whether any device passed a phase of OP (and was not rolled back). */
bool extdev_active(struct extdev *xd, enum extdev_op op);

/* The list as a checkpoint device for protection: setup = check then
 * prepare of EXTDEV_PROTECT, commit = its per-epoch commit, teardown =
 * release (rollback if setup failed half way). XD stays the caller's. */
int extdev_ckpt_dev_create(struct extdev *xd, struct ckpt_dev **out);

#endif
