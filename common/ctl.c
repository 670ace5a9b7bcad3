#include "common/ctl.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/sock.h"

struct ctl_server {
	int fd;
	int wake[2];
	char path[108];
	ctl_handler_fn fn;
	void *ctx;
	pthread_t thread;
};

void ctl_path(char *buf, size_t len, const char *daemon, const char *domain)
{
	const char *base = getenv("HA_RUN_DIR");
	size_t n = (size_t)snprintf(buf, len, "%s/%s/", base ? base : "/run", daemon);

	for (const char *p = domain; *p && n + 6 < len; p++)
		buf[n++] = (*p == ':' || *p == '/') ? '-' : *p;
	snprintf(buf + n, len - n, ".sock");
}

int ctl_dispatch(void *commands, const char *cmd, const char *arg, FILE *out)
{
	const struct ctl_commands *c = commands;

	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(cmd, c->cmds[i].name))
			return c->cmds[i].fn(c->ctx, arg, out);
	if (!strcmp(cmd, "stop")) {
		*c->stop = 1;
		fprintf(out, "ok: stopping\n");
		return 0;
	}
	fprintf(out, "error: unknown command '%s' (", cmd);
	for (size_t i = 0; i < c->n; i++)
		fprintf(out, "%s, ", c->cmds[i].usage);
	fprintf(out, "stop)\n");
	return -EINVAL;
}

int ctl_serve_fd(int fd, ctl_handler_fn fn, void *ctx)
{
	char line[256], *arg;
	uid_t uid;
	ssize_t n;
	FILE *out;
	char *reply = NULL;
	size_t reply_len = 0;
	struct timeval tv = {.tv_sec = 1};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sock_peer_cred(fd, NULL, &uid, NULL) < 0 || (uid != 0 && uid != geteuid())) {
		io_write_full(fd, "error: permission denied\n", 25);
		return -EPERM;
	}
	/* Up to the end of the first line (or the buffer). */
	n = 0;
	while ((size_t)n < sizeof(line) - 1 && !memchr(line, '\n', (size_t)n)) {
		ssize_t r = read(fd, line + n, sizeof(line) - 1 - (size_t)n);

		/* A signal ends a read with a timeout even under SA_RESTART. */
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
	}
	if (n == 0)
		return -ENODATA; /* hung up (or silent for a second) */
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	out = open_memstream(&reply, &reply_len);
	if (!out)
		return -ENOMEM;
	int rc = fn(ctx, line, arg ? arg : "", out);
	if (rc < 0 && ftell(out) == 0)
		fprintf(out, "error: %s\n", strerror(-rc));
	fclose(out);
	rc = io_write_full(fd, reply, reply_len);
	free(reply);
	return rc;
}

static void *ctl_main(void *arg)
{
	struct ctl_server *s = arg;
	struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN}, {.fd = s->wake[0], .events = POLLIN}};

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int fd = sock_tcp_accept(s->fd);
		if (fd < 0)
			continue;
		ctl_serve_fd(fd, s->fn, s->ctx);
		close(fd);
	}
	return NULL;
}

int ctl_server_start(const char *path, ctl_handler_fn fn, void *ctx, struct ctl_server **out)
{
	struct ctl_server *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	snprintf(s->path, sizeof(s->path), "%s", path);
	sock_mkdir_parents(path);
	s->fn = fn;
	s->ctx = ctx;
	s->fd = sock_unix_listen(path, 8);
	if (s->fd < 0) {
		rc = s->fd;
		free(s);
		return rc;
	}
	chmod(path, 0600);
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		rc = -errno;
		goto err;
	}
	rc = -pthread_create(&s->thread, NULL, ctl_main, s);
	if (rc < 0) {
		close(s->wake[0]);
		close(s->wake[1]);
		goto err;
	}
	*out = s;
	return 0;
err:
	close(s->fd);
	unlink(path);
	free(s);
	return rc;
}

void ctl_server_stop(struct ctl_server *s)
{
	if (!s)
		return;
	io_write_full(s->wake[1], "x", 1);
	pthread_join(s->thread, NULL);
	close(s->wake[0]);
	close(s->wake[1]);
	close(s->fd);
	unlink(s->path);
	free(s);
}

int ctl_request(const char *path, const char *line, FILE *out)
{
	char buf[4096];
	ssize_t n;
	size_t total = 0;
	bool error = false;
	int fd = sock_unix_connect(path);

	if (fd < 0)
		return fd;
	char req[256];
	int n0 = snprintf(req, sizeof(req), "%s\n", line);

	/* One send: the server answers the first line and hangs up. */
	if (n0 >= (int)sizeof(req) || send(fd, req, (size_t)n0, MSG_NOSIGNAL) != n0) {
		close(fd);
		return -EIO;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		/* "error: " is 7 octets: a first read shorter than that is not
		 * one (the server writes its reply at once). */
		if (total == 0 && n >= 7 && !memcmp(buf, "error: ", 7))
			error = true;
		total += (size_t)n;
		fwrite(buf, 1, (size_t)n, out);
	}
	close(fd);
	return error ? 1 : 0;
}
