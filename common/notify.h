/* Event hooks (--notify-cmd): an operator's command run on the events an
 * on-call engineer wants to hear of (PROTECTED, DEGRADED, FAILOVER, ...),
 * in the spirit of keepalived's notify scripts and DRBD's handlers.
 *
 * notify_event() only queues the event: the commands run one at a time, in
 * order, on a thread of their own, so a hook never delays a checkpoint's
 * pause or an activation, and each is bounded by a timeout (then its
 * process group is killed). A hook that fails or times out is logged and
 * changes nothing. The queue holds NOTIFY_QUEUE events; more are dropped
 * and counted in the log.
 *
 * The command runs as /bin/sh -c CMD with, in its environment:
 *   HA_EVENT   the event (below)
 *   HA_ROLE    primary or secondary
 *   HA_DOMAIN  the domain
 *   HA_PEER    the other host (host:port), or empty
 *   HA_EPOCH   the epoch it concerns (the last acknowledged or committed
 *              one), or empty
 *   HA_REASON  why, in words, or empty
 *   HA_TIME    when it happened (UTC, ISO 8601, milliseconds)
 *   HA_SEQ     1, 2, ...: the events of this daemon, in order
 */
#ifndef HA_COMMON_NOTIFY_H
#define HA_COMMON_NOTIFY_H

#include <stdint.h>

#define NOTIFY_QUEUE 64
#define NOTIFY_NO_EPOCH UINT64_MAX

struct notify;

/* cmd NULL: no hooks. Under systemd (NOTIFY_SOCKET set) the thread still
 * runs, to set the service's STATUS= to each event; otherwise *out is
 * NULL, which notify_event and notify_stop accept. */
int notify_start(const char *cmd, unsigned timeout_ms, const char *role, struct notify **out);
void notify_event(struct notify *n, const char *event, const char *domain, const char *peer,
		  uint64_t epoch, const char *reason);
/* Runs what is queued (each within its timeout), then stops. */
void notify_stop(struct notify *n);

#endif
