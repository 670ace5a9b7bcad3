/* Fencing: making sure the old primary is off before the secondary
 * activates its copy, so a network partition cannot leave two copies of a
 * domain serving clients.
 *
 * The fence is an operator-supplied command (an IPMI power-off, a cloud
 * API call that stops the instance, a PDU outlet switch), run as
 * /bin/sh -c CMD in its own process group with a timeout. Exit status 0
 * means "the primary is fenced"; anything else, or the timeout, means it
 * may still run. Its output is logged line by line.
 *
 * The command's environment is the daemon's plus HA_DOMAIN (the domain's
 * name), HA_PEER (the primary's address as host:port), HA_PEER_HOST and
 * HA_EPOCH (the last committed epoch).
 */
#ifndef HA_FAILOVER_FENCE_H
#define HA_FAILOVER_FENCE_H

#include <stddef.h>
#include <stdint.h>

struct fo_fence_target {
	const char *domain;
	const char *peer; /* host:port */
	uint64_t epoch;
};

/* Runs the fence command and waits for it, at most timeout_ms (then its
 * whole process group is killed). Returns 0 if it exited 0; -ETIMEDOUT;
 * -EIO for another exit status or a signal (why says which); or -errno if
 * it could not be started. */
int fo_fence_run(const char *cmd, unsigned timeout_ms, const struct fo_fence_target *t, char *why,
		 size_t whylen);

#endif
