/* Running an operator's command (a fence command, an event hook, an
 * external device's script): /bin/sh -c CMD, or a program with its argv,
 * in its own process group, with a timeout after which the whole group is
 * killed, stdin from /dev/null, and its output logged line by line under
 * a prefix. */
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

/* Each line of a command's output, after it is logged (the newline cut). */
typedef void run_line_fn(void *ctx, const char *line);

/* As run_cmd, but runs the program ARGV[0] (a path) with ARGV, without a
 * shell, and passes each line of its output to LINE (may be NULL). */
int run_argv(const char *what, const char *const *argv, unsigned timeout_ms,
	     const char *const *vars, run_line_fn *line, void *ctx, char *why, size_t whylen);

#endif
