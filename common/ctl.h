/* The local control socket of the daemons (ha-protect, ha-receive), used by
 * ha-ctl. One request line per connection ("status", "interval 50",
 * "stop"); the reply is text, ending when the server closes the connection.
 * Only root and the daemon's own user may connect (peer credentials).
 */
#ifndef HA_COMMON_CTL_H
#define HA_COMMON_CTL_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

/* Handles one request: cmd is the first word, arg the rest ("" if none).
 * Writes the reply to out; returns 0, or -errno (the server then replies
 * "error: <strerror>" unless the handler wrote something). */
typedef int (*ctl_handler_fn)(void *ctx, const char *cmd, const char *arg, FILE *out);

/* A daemon's commands as a table, served by ctl_dispatch (pass it as the
 * handler, the table as its ctx). Every daemon also has "stop", which sets
 * *stop and answers "ok: stopping"; an unknown command is answered with
 * the list of all of them. */
struct ctl_cmd {
	const char *name;  /* the request's first word */
	const char *usage; /* the whole command for that list, e.g. "interval MS|auto" */
	int (*fn)(void *ctx, const char *arg, FILE *out); /* as ctl_handler_fn */
};

struct ctl_commands {
	const struct ctl_cmd *cmds;
	size_t n;
	void *ctx; /* the first argument of each fn */
	volatile sig_atomic_t *stop;
};

int ctl_dispatch(void *commands, const char *cmd, const char *arg, FILE *out);

struct ctl_server;

/* Listens on path (creating its directory) and serves on a thread. */
int ctl_server_start(const char *path, ctl_handler_fn fn, void *ctx, struct ctl_server **out);
void ctl_server_stop(struct ctl_server *s);

/* Serves one request on a connected socket (what the server's thread does
 * for each connection; fd is not closed): checks the peer's credentials,
 * reads the request line (at most 255 octets, up to CR or LF), splits it
 * into cmd and arg at the first space, calls fn and writes the reply.
 * Returns 0, or -errno if the request could not be read or answered. */
int ctl_serve_fd(int fd, ctl_handler_fn fn, void *ctx);

/* Client: sends line to the socket at path and copies the reply to out.
 * Returns 0, 1 if the daemon answered with an error (a reply that starts
 * "error: "), or -errno if the daemon cannot be reached. */
int ctl_request(const char *path, const char *line, FILE *out);

/* The socket path of a daemon for a domain: DIR/<domain with ':' and '/'
 * replaced by '-'>.sock, DIR being /run/ha-protect or /run/ha-receive
 * (or $HA_RUN_DIR/ha-protect etc. when set, for tests). */
void ctl_path(char *buf, size_t len, const char *daemon, const char *domain);

#endif
