/* Running an operator's command (a fence command, an event hook): /bin/sh
 * -c CMD in its own process group, with a timeout after which the whole
 * group is killed, stdin from /dev/null, and its output logged line by
 * line under a prefix. */
#ifndef HA_COMMON_RUNCMD_H
#define HA_COMMON_RUNCMD_H

#include <stddef.h>

/* vars: NAME=VALUE strings added to (or replacing in) the daemon's
 * environment, NULL-terminated. Waits for the command, at most
 * timeout_ms. Returns 0 if it exited 0; -ETIMEDOUT (killed); -EIO for
 * another exit status or a signal (why says which, naming it as what); or
 * -errno if it could not be started. */
int run_cmd(const char *what, const char *cmd, unsigned timeout_ms, const char *const *vars,
	    char *why, size_t whylen);

#endif
