/* Stock DRBD (8.4, the module in Debian's kernel) as the disk replication
 * of a protected domain, for operators who already run it.
 *
 * The domain's disk is a DRBD device, Primary on the protecting host and
 * Secondary on the other, replicating with protocol C: a guest write
 * completes only once the peer has written it. So the disk part of ACK(N)
 * is DRBD's own completion, checked on the primary before CHECKPOINT(N)
 * goes out (the "flush" phase):
 *
 *   flush(N)   fsync the DRBD device (a flush DRBD passes to the peer),
 *              then read the resource's state: Connected, Primary,
 *              UpToDate/UpToDate, protocol C and nothing out of sync.
 *              Every write the guest saw complete before the pause that
 *              ended epoch N is then on the peer's disk. Otherwise the
 *              epoch is not committed and protection degrades, naming the
 *              state (the peer is lost, resyncing, or the disk failed).
 *
 * The secondary (ha-receive --drbd RES) checks at start that RES is
 * Secondary here; on failover, after fencing, it checks the disk is
 * UpToDate and promotes the resource before the domain is activated.
 *
 * Consistency, compared with the built-in path (diskrepl/replica.h): DRBD
 * writes the peer's disk as the guest writes, not per checkpoint, so after
 * a failover the disk can hold writes of the epoch that was never
 * committed (and of requests in flight at its pause): the disk is at most
 * one epoch ahead of the memory it is resumed with, never behind. The
 * resumed guest reissues what it had in flight; a guest that later writes
 * other data to those blocks overwrites them. Software that reads a block
 * it has not written since the checkpoint may see the newer data
 * (docs/diskrepl.md).
 *
 * State is read from /proc/drbd (DRBD 8.4's format, one line per minor:
 * no process is started per epoch); commands go through drbdsetup.
 */
#ifndef HA_DISKREPL_DRBD_H
#define HA_DISKREPL_DRBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/ckpt_dev.h"

/* One minor's line of /proc/drbd. */
struct drbd_state {
	char cs[24];                   /* connection state: Connected, WFConnection, ... */
	char role[16], peer_role[16];  /* Primary, Secondary, Unknown */
	char disk[24], peer_disk[24];  /* UpToDate, Inconsistent, DUnknown, Diskless, ... */
	char protocol;                 /* 'A', 'B', 'C' */
	uint64_t oos_kib;              /* out of sync, KiB */
	int sync_permille;             /* resync progress, -1 when not syncing */
};

/* A resource (volume 0) and its device. */
struct drbd_res {
	char name[64]; /* the resource name, or "minor N" when given a device */
	unsigned minor;
	char dev[32]; /* /dev/drbdN */
};

/* Parses the text of /proc/drbd for minor. 0; -ENODEV when the minor is
 * not configured; -EPROTONOSUPPORT when the text is not DRBD 8.4's format
 * (DRBD 9 keeps its state elsewhere); -EBADMSG when the line is garbled. */
int drbd_parse_proc(const char *text, unsigned minor, struct drbd_state *st);

/* Reads /proc/drbd (HA_DRBD_PROC overrides the path) for minor. */
int drbd_read_state(unsigned minor, struct drbd_state *st);

/* One line: "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C oos:0". */
void drbd_state_str(const struct drbd_state *st, char *buf, size_t len);

/* Resolves spec, a resource name or /dev/drbdN, to its minor (a name by
 * `drbdsetup show NAME`). 0 or -errno, with the reason in err. */
int drbd_resolve(const char *spec, struct drbd_res *out, char *err, size_t errlen);

/* Why the primary side's state does not guarantee that completed writes
 * are on the peer's disk; NULL when it does. */
const char *drbd_primary_unsafe(const struct drbd_state *st);

/* The DRBD module's version (/proc/drbd's first line) into VER: 0 for
 * 8.4; -EPROTONOSUPPORT for another (VER says which, or is ""); -ENOPKG
 * when DRBD is not loaded. */
int drbd_version(char *ver, size_t len);

/* For the primary's preflight: 0 when the resource is Primary here,
 * connected and in sync with protocol C (ERR then describes it), else
 * -errno with the reason in ERR. */
int drbd_check_primary(const struct drbd_res *r, char *err, size_t errlen);

/* The secondary at start: 0 when the resource is configured and
 * Secondary here, else -errno with the reason in err. */
int drbd_check_secondary(const struct drbd_res *r, char *err, size_t errlen);

/* Failover: checks that the local disk is UpToDate, then makes the
 * resource Primary (`drbdsetup primary MINOR`, at most timeout_ms).
 * 0 or -errno with the reason in err; -EBUSY while the peer is still
 * connected as Primary (worth retrying: its host may be going down). */
int drbd_promote(const struct drbd_res *r, unsigned timeout_ms, char *err, size_t errlen);
/* Makes the resource Secondary here (a switchover hands it over), retrying
 * while the device is still open, for at most timeout_ms: 0, or -errno
 * with err. */
int drbd_demote(const struct drbd_res *r, unsigned timeout_ms, char *err, size_t errlen);

/* The primary's checkpoint device for spec (see the top of this file).
 * setup waits at most setup_timeout_ms for the resource to be connected
 * and in sync (longer while a resync is visibly progressing). */
int drbd_dev_create(const char *spec, unsigned setup_timeout_ms, struct ckpt_dev **out);

/* The device of a checkpoint device drbd_dev_create made (/dev/drbdN). */
const char *drbd_dev_path(const struct ckpt_dev *dev);

#endif
